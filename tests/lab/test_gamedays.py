"""Game days on the real lab: `recovery gameday run` measures a failed upgrade and fails on a missed
objective; a scenario also runs as a plain Chaos Toolkit experiment (`chaos run`); every other scenario
of the library runs on the same lab and meets its objectives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import Lab
from gameday_library import LIBRARY, Library, activity_output, gameday_run, library_runner, response

from recovery.errors import ExitCode
from recovery.gameday.history import read_runs
from recovery.gameday.probes import backups_whole, catalogue_intact, last_run, service_version


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
    code = gameday_run(lab, reports, path)
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


@pytest.fixture
def run_library(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Library]:
    return library_runner(lab, tmp_path, capsys, monkeypatch)


def test_the_faulty_releases_that_corrupt_totals_or_break_a_migration_are_rolled_back(
    lab: Lab, run_library: Callable[..., Library]
) -> None:
    names = ("failed-upgrade-corrupts-totals", "failed-upgrade-bad-migration")
    runs, stored, _ = run_library(25, *names)
    for name in names:
        assert 0 < runs[name]["time_to_detect_s"] < runs[name]["rto_s"]
        kinds = [event.kind for event in stored[name].timeline]
        assert kinds.index("fault") < kinds.index("detected") < kinds.index("recovered")
    gates = {
        name: response(runs[name], f"deploy v2-{name.removeprefix('failed-upgrade-')}") for name in names
    }
    assert "gate smoke failed" in gates["failed-upgrade-corrupts-totals"]  # only the business check sees it
    assert "gate migrate failed" in gates["failed-upgrade-bad-migration"]
    assert service_version(str(lab.dir / "target.yaml")) == "v1"


def test_a_restore_reads_the_other_copy_when_one_is_corrupted_missing_or_unreachable(
    lab: Lab, run_library: Callable[..., Library]
) -> None:
    names = ("backup-copy-corrupted", "backup-copy-missing", "backup-region-unavailable")
    _, stored, reports = run_library(8, *names)
    read = {
        name: activity_output(reports / stored[name].run_id, "the copy the restore read") for name in names
    }
    [corrupted] = read["backup-copy-corrupted"]["choices"]
    assert corrupted["copy"] == "remote" and "local copy is damaged" in corrupted["reason"]
    [missing] = read["backup-copy-missing"]["choices"]
    assert missing["copy"] == "remote" and "local copy is missing" in missing["reason"]
    [local] = read["backup-region-unavailable"]["choices"]
    assert local["copy"] == "local"
    region = reports / stored["backup-region-unavailable"].run_id
    listed = json.loads(activity_output(region, "list the backups while the remote store is down")["stdout"])
    remote_states = {row["remote"]["state"] for row in listed["result"]["backups"]}
    assert remote_states == {"unreachable"}
    failed = activity_output(region, "back up while the remote store is down")["stderr"].strip()
    assert failed.startswith("error[external.failed]:") and "remote copy" in failed
    # The copies are as the backups wrote them again, and the faulty target is gone.
    assert backups_whole(str(lab.dir / "target.yaml"))["passed"]
    assert not (region / "faulty-target.yaml").exists()


def test_backups_ride_out_network_trouble_and_refuse_clearly_without_the_link_or_the_key(
    lab: Lab, run_library: Callable[..., Library]
) -> None:
    _, stored, reports = run_library(8, "backup-upload-network-trouble", "backup-key-disabled")
    refused = activity_output(
        reports / stored["backup-key-disabled"].run_id, "back up while the key is disabled"
    )
    assert "is Disabled, so no backup can be encrypted" in refused["stderr"]
    assert backups_whole(str(lab.dir / "target.yaml"))["passed"]


def test_operator_errors_are_refused_with_one_line(run_library: Callable[..., Library]) -> None:
    _, stored, reports = run_library(8, "operator-errors")
    held = activity_output(
        reports / stored["operator-errors"].run_id, "back up while another controller holds the lock"
    )
    assert "locked by run" in held["stderr"] and "another controller's run" in held["stderr"]


def test_a_restore_under_load_loses_no_order(lab: Lab, run_library: Callable[..., Library]) -> None:
    # The load outlasts the restore's fence: orders fail while the service is fenced, none is lost.
    _, stored, _ = run_library(30, "restore-under-load")
    under_load = stored["restore-under-load"]
    restore = next(e for e in under_load.timeline if e.label.startswith("restore started"))
    recovered = next(e for e in under_load.timeline if e.kind == "recovered")
    during = [b for b in under_load.load if restore.at_s <= b.at_s <= recovered.at_s]
    assert sum(b.acknowledged for b in during) > 0  # orders were placed while the restore ran
    assert catalogue_intact(str(lab.dir / "target.yaml"))["passed"]
