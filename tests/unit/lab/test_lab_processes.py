"""Process identity by pid plus start time, stopping by pid, and port probes."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from recovery.lab.processes import (
    descendants,
    is_alive,
    port_free,
    port_open,
    spawn_daemon,
    start_ticks,
    stop_pid,
    stop_tree,
)


def test_a_daemon_is_identified_by_pid_and_start_time_and_stopped(tmp_path: Path) -> None:
    pid = spawn_daemon(
        [sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "d.log", cwd=tmp_path
    )
    try:
        ticks = start_ticks(pid)
        assert ticks is not None
        assert is_alive(pid, ticks)
        assert not is_alive(pid, ticks + 1)  # a recycled pid is not ours
        assert stop_pid(pid, ticks + 1)  # and is never signalled
        assert is_alive(pid, ticks)
        assert stop_pid(pid, ticks, timeout=5)
        assert not is_alive(pid)
    finally:
        subprocess.run(["kill", "-9", str(pid)], capture_output=True, check=False)


def test_stop_tree_also_stops_children(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; "
        "time.sleep(60)']); time.sleep(60)"
    )
    pid = spawn_daemon([sys.executable, "-c", code], log=tmp_path / "t.log", cwd=tmp_path)
    children: list[int] = []
    try:
        for _ in range(200):
            children = descendants(pid)
            if children:
                break
            import time

            time.sleep(0.02)
        assert len(children) == 1
        assert stop_tree(pid, start_ticks(pid), timeout=5)
        assert not is_alive(pid) and not is_alive(children[0])
    finally:
        for p in [pid, *children]:
            subprocess.run(["kill", "-9", str(p)], capture_output=True, check=False)


def test_port_probes_see_a_listener(free_port: Callable[[], int]) -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_open("127.0.0.1", port)
        assert not port_free("127.0.0.1", port)
    assert port_free("127.0.0.1", port)
    assert not port_open("127.0.0.1", port)
