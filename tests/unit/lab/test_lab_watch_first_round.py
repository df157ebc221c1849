"""`lab up --watch` waits for the watch's first round of jobs; when it does not come, the one line says
which job the round is stuck in (a CI log then names the culprit, not only a timeout)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from recovery.errors import EnvironmentProblem
from recovery.lab.build import wait_first_round
from recovery.lab.plan import plan_lab


def _write_status(tmp_path: Path, **fields: object) -> Path:
    plan = plan_lab(tmp_path, 45000)
    status = plan.state_dir / "watch" / "status.json"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"pid": os.getpid()} | fields))
    return tmp_path


def test_the_wait_returns_once_the_watch_reports_its_first_round_done(tmp_path: Path) -> None:
    _write_status(tmp_path, first_round_done=True, running_job=None)
    wait_first_round(plan_lab(tmp_path, 45000), os.getpid(), timeout=5)


def test_a_round_that_does_not_finish_names_the_job_it_is_stuck_in(tmp_path: Path) -> None:
    _write_status(tmp_path, first_round_done=False, running_job="daily-backup")
    with pytest.raises(EnvironmentProblem) as caught:
        wait_first_round(plan_lab(tmp_path, 45000), os.getpid(), timeout=0.6)
    assert "within 1 s (still running the daily-backup job)" in caught.value.message
    assert "watch.log" in caught.value.message


def test_another_watch_s_status_is_not_taken_for_this_one(tmp_path: Path) -> None:
    # A status left by an earlier watch (another pid) neither ends the wait nor names its job.
    _write_status(tmp_path, pid=1, first_round_done=True, running_job="daily-backup")
    with pytest.raises(EnvironmentProblem) as caught:
        wait_first_round(plan_lab(tmp_path, 45000), os.getpid(), timeout=0.6)
    assert "still running" not in caught.value.message
