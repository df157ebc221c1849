"""The game day's helper processes (a fault proxy, a second controller holding the lock): started detached
so they outlive the Chaos Toolkit activity that starts them, recorded under the target's state_dir so a
later activity (or a rollback in another process) stops exactly them, by pid and start time."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recovery.errors import EnvironmentProblem
from recovery.lab.processes import is_alive, spawn_daemon, start_ticks, stop_pid

READY_TIMEOUT_S = 20.0


def helpers_dir(state_dir: Path) -> Path:
    return state_dir / "gamedays" / "helpers"


def helper_record(state_dir: Path, name: str) -> dict[str, Any] | None:
    """The record of a running helper (pid, start ticks, what it wrote when ready), None when none runs."""
    path = helpers_dir(state_dir) / f"{name}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not is_alive(int(record["pid"]), record.get("ticks")):
        path.unlink(missing_ok=True)
        return None
    return record


def start_helper(state_dir: Path, name: str, module: str, args: Sequence[str]) -> dict[str, Any]:
    """Start `python -m module args --ready FILE` detached, wait until it writes FILE; return its record."""
    folder = helpers_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / f"{name}.ready"
    ready.unlink(missing_ok=True)
    pid = spawn_daemon(
        [sys.executable, "-m", module, *args, "--ready", str(ready)], log=folder / f"{name}.log", cwd=folder
    )
    ticks = start_ticks(pid)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.is_file():
        if not is_alive(pid, ticks) or time.monotonic() > deadline:
            stop_pid(pid, ticks, timeout=2)
            raise EnvironmentProblem(
                f"the game day helper {name} did not start; its log is {folder / f'{name}.log'}"
            )
        time.sleep(0.05)
    record = {"name": name, "pid": pid, "ticks": ticks, **json.loads(ready.read_text())}
    (folder / f"{name}.json").write_text(json.dumps(record))
    ready.unlink(missing_ok=True)
    return record


def stop_helper(state_dir: Path, name: str) -> bool:
    """Stop the helper if it runs; True when one was stopped."""
    record = helper_record(state_dir, name)
    if record is None:
        return False
    stop_pid(int(record["pid"]), record.get("ticks"), timeout=5)
    (helpers_dir(state_dir) / f"{name}.json").unlink(missing_ok=True)
    return True
