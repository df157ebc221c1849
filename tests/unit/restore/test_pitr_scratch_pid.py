"""The scratch server is stopped by the pid of the process the toolkit started, never by a pid file.

The host's shell is the local one here (the commands are the real ones `_Scratch` sends over SSH), and
`postgres` a stand-in that only sleeps, with the same command line shape.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.drivers import remote
from recovery.drivers.remote import CommandResult
from recovery.restore.pitr import _Scratch
from recovery.targets.model import Database, Host


def _local_run(host: Host, command: str, *, timeout: float = 30) -> CommandResult:
    done = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=False
    )
    return CommandResult(done.returncode, done.stdout, done.stderr, 0.0)


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Scratch:
    monkeypatch.setattr(remote, "run", _local_run)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "postgres"
    # Like postgres, it sets its own SIGQUIT handler (immediate shutdown, what `stop` sends): a background
    # job starts with SIGINT and SIGQUIT ignored.
    fake.write_text(
        f"#!{sys.executable}\nimport signal, sys, time\n"
        "signal.signal(signal.SIGQUIT, lambda *_: sys.exit(0))\ntime.sleep(120)\n"
    )
    fake.chmod(0o755)
    (tmp_path / "live").mkdir()
    database = Database(address="127.0.0.1", data_dir=tmp_path / "live", bin_dir=bin_dir)
    host = Host(name="db", address="127.0.0.1", ssh_user="x", base_dir=tmp_path, service_port=1)
    made = _Scratch(host, database)
    made.create()
    return made


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process the restored data's postmaster.pid names: someone else's, to be left alone."""
    process = subprocess.Popen(["sleep", "120"])
    yield process
    process.kill()
    process.wait()


def _plant(scratch: _Scratch, pid: int) -> None:
    Path(str(scratch.data / "postmaster.pid")).write_text(f"{pid}\n/srv/data\n")


def test_a_planted_pid_file_is_never_signalled(scratch: _Scratch, bystander: subprocess.Popen[bytes]) -> None:
    _plant(scratch, bystander.pid)
    scratch.stop()  # nothing was started (a failure before the start): nothing is signalled
    time.sleep(0.2)
    assert bystander.poll() is None


def test_the_started_process_is_the_one_stopped(
    scratch: _Scratch, bystander: subprocess.Popen[bytes]
) -> None:
    scratch.start()
    _plant(scratch, bystander.pid)
    started = scratch.pid
    assert started is not None and started != bystander.pid
    deadline = time.monotonic() + 5
    while not scratch.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scratch.alive()
    scratch.stop()
    assert bystander.poll() is None
    assert _gone(started)


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody reaped yet (the shell that started it is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"
