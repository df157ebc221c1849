"""Game days on the real lab: `recovery gameday run` measures a failed upgrade and fails on a missed
objective; a scenario also runs as a plain Chaos Toolkit experiment (`chaos run`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import Lab

from recovery.cli.main import main
from recovery.errors import ExitCode
from recovery.gameday.history import read_runs
from recovery.gameday.probes import last_run, service_version

LIBRARY = Path(__file__).resolve().parents[2] / "gamedays"


def test_a_game_day_with_an_impossible_rto_reports_the_miss_and_exits_non_zero(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = yaml.safe_load((LIBRARY / "failed-upgrade-unhealthy.yaml").read_text())
    scenario["extensions"][0]["objectives"]["rto_s"] = 0.001  # no rollback is that fast
    path = tmp_path / "impossible-rto.yaml"
    path.write_text(yaml.safe_dump(scenario))
    monkeypatch.setenv("RECOVERY_GAMEDAY_LOAD_SECONDS", "20")
    reports = tmp_path / "reports"
    target = str(lab.dir / "target.yaml")
    code = main(
        [
            "gameday",
            "run",
            str(path),
            "--target",
            target,
            "--report-dir",
            str(reports),
            "--yes",
            "--output",
            "json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == ExitCode.VERIFY_FAILED, err
    assert "error[gameday.objective_missed]: game day missed its objectives: impossible-rto" in err
    [run] = json.loads(out)["result"]["runs"]
    assert run["experiment_status"] == "completed" and not run["passed"]
    results = {o["name"]: o for o in run["objectives"]}
    assert not results["time to recover (RTO)"]["passed"]
    assert results["time to recover (RTO)"]["reason"].endswith("misses the goal of 0.001 s")
    assert results["orders lost"]["passed"] and run["orders_lost"] == 0 and run["orders_acknowledged"] > 0
    assert 0 < run["time_to_detect_s"] < run["rto_s"]
    # The rollback left the shop as it was: the next game day starts from the same baseline.
    assert service_version(target) == "v1"
    assert last_run("rollback", target)["status"] == "ok"
    [stored] = read_runs(reports)
    kinds = [event.kind for event in stored.timeline]
    assert kinds.index("fault") < kinds.index("detected") < kinds.index("recovered") < kinds.index("verified")
    folder = reports / stored.run_id
    assert {p.name for p in folder.iterdir()} >= {
        "report.html",
        "report.md",
        "junit.xml",
        "run.json",
        "ledger.jsonl",
    }


def test_a_scenario_runs_as_a_plain_chaos_toolkit_experiment(lab: Lab, tmp_path: Path) -> None:
    target = str(lab.dir / "target.yaml")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "RECOVERY_TARGET": target,
        "RECOVERY_GAMEDAY_LEDGER": str(tmp_path / "ledger.jsonl"),
        "RECOVERY_GAMEDAY_LOAD_SECONDS": "6",
    }
    chaos = str(Path(sys.executable).parent / "chaos")
    done = subprocess.run(
        [chaos, "run", str(LIBRARY / "incompatible-release-refused.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "completed" and journal["steady_states"]["after"]["steady_state_met"]
    refused = next(r for r in journal["run"] if r["activity"]["name"] == "which step refused the upgrade")
    assert refused["output"]["failed_step"] == "preflight"
    assert service_version(target) == "v1"
