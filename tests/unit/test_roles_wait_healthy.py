"""The deploy's health wait (the role's files/wait_healthy.py): only "not yet" waits."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "playbooks/roles/order_service/files/wait_healthy.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wait_healthy", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wait_healthy = _load()


def _report(
    status: str, *, version: str = "v2", problems: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    return {"status": status, "version": version, "problems": list(problems), **extra}


def test_the_release_answering_ok_is_healthy() -> None:
    assert wait_healthy.decide((200, _report("ok")), True, "v2")[0] == "healthy"


def test_a_definite_problem_of_the_release_ends_the_wait() -> None:
    problem = (
        'database check failed: UndefinedTable (SQLSTATE 42P01): relation "feature_flags" does not exist'
    )
    verdict = wait_healthy.decide(
        (503, _report("unhealthy", problems=(problem,), transient=False)), True, "v2"
    )
    assert verdict == ("unhealthy", problem)


def test_an_exited_process_ends_the_wait() -> None:
    assert wait_healthy.decide(None, False, "v2")[0] == "exited"


@pytest.mark.parametrize(
    ("answer", "alive"),
    [
        (None, True),  # the process is starting and does not listen yet
        ((200, _report("ok", version="v1")), True),  # the previous release still answers
        ((503, _report("unhealthy", problems=("the database did not answer",), transient=True)), True),
        ((503, _report("unhealthy", problems=("database schema is at 1, this release needs 4",))), True),
        ((503, None), True),  # an answer that is not the service's JSON
    ],
)
def test_not_yet_keeps_waiting(answer: tuple[int, Any] | None, alive: bool) -> None:
    assert wait_healthy.decide(answer, alive, "v2") is None


def test_an_exited_process_with_no_pid_alive_is_seen_from_its_pidfile(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pidfile = tmp_path / "service.pid"
    pidfile.write_text(done.stdout)
    assert not wait_healthy._pid_alive(str(pidfile))
    pidfile.write_text(f"{os.getpid()}\n")
    assert wait_healthy._pid_alive(str(pidfile))
    assert not wait_healthy._pid_alive(str(tmp_path / "missing.pid"))


def test_the_wait_prints_one_verdict_line_when_nothing_answers_and_the_process_is_gone(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "service.pid"
    pidfile.write_text("999999999\n")
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--url",
            "http://127.0.0.1:9/health",
            "--release",
            "v2",
            "--timeout",
            "60",
            "--pidfile",
            str(pidfile),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    line = json.loads(result.stdout)
    assert line["verdict"] == "exited" and line["waited_s"] < 60
