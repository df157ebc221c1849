"""Running scenarios of the game day library on a test's lab through `recovery gameday run`, shared by
the game day modules (each module builds its own lab, so pytest-xdist can run them side by side)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab

from recovery.cli.main import main
from recovery.errors import ExitCode
from recovery.gameday.history import read_runs
from recovery.gameday.model import GameDayRun

LIBRARY = Path(__file__).resolve().parents[2] / "gamedays"

# Each run's summary by scenario, each stored report by scenario, and the report folder.
Library = tuple[dict[str, dict[str, Any]], dict[str, GameDayRun], Path]


def gameday_run(lab: Lab, reports: Path, *scenarios: Path, target: Path | None = None) -> int:
    target_file = target or lab.dir / "target.yaml"
    args = ["gameday", "run", *map(str, scenarios), "--target", str(target_file)]
    return main([*args, "--report-dir", str(reports), "--yes", "--output", "json"])


def library_runner(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Library]:
    """`run(load_seconds, *names)`: `recovery gameday run` of library scenarios on the lab with
    `load_seconds` of load. Asserts that each met its objectives and responses and lost no order (and
    that stdout is the JSON envelope alone)."""

    def run(load_seconds: int, *names: str) -> Library:
        monkeypatch.setenv("RECOVERY_GAMEDAY_LOAD_SECONDS", str(load_seconds))
        reports = tmp_path / "reports"
        code = gameday_run(lab, reports, *(LIBRARY / f"{name}.yaml" for name in names))
        out, err = capsys.readouterr()
        assert code == ExitCode.OK, err[-3000:]
        summaries = {run["scenario"]: run for run in json.loads(out)["result"]["runs"]}
        for name in names:
            summary = summaries[name]
            missed = [f"{o['name']}: {o['reason']}" for o in summary["objectives"] if not o["passed"]]
            assert summary["passed"] and summary["experiment_status"] == "completed", missed
            assert summary["orders_lost"] == 0
            assert any(o["name"].startswith("response: ") for o in summary["objectives"])
        return summaries, {run.scenario: run for run in read_runs(reports)}, reports

    return run


def response(summary: dict[str, Any], activity: str) -> str:
    """The reason sentence of the response objective of one method activity."""
    return str(next(o["reason"] for o in summary["objectives"] if o["name"] == f"response: {activity}"))


def activity_output(run_dir: Path, name: str) -> Any:
    """What one activity of the experiment returned, from Chaos Toolkit's journal in the run's folder."""
    journal = json.loads((run_dir / "chaos-journal.json").read_text())
    return next(r["output"] for r in journal["run"] if r["activity"]["name"] == name)
