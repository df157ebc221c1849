"""Processes of the lab: who runs them, how they are started as daemons, probed and stopped by pid.

PostgreSQL and sshd refuse to run as root, so when the toolkit runs as root every lab server runs as the
unprivileged lab user; otherwise as the current user. Every process is identified by its pid plus its
start time (from /proc), so a recycled pid is never mistaken for ours and never signalled.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from recovery.errors import EnvironmentProblem

LAB_USER = "orderlab"


@dataclass(frozen=True)
class LabUser:
    """The account lab servers run as; `switch` is true when we are root and must drop to it."""

    name: str
    uid: int
    gid: int
    home: Path
    switch: bool


def lab_user() -> LabUser:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return LabUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), switch=False)
    try:
        entry = pwd.getpwnam(LAB_USER)
    except KeyError:
        raise EnvironmentProblem(
            f"running as root but the lab user {LAB_USER!r} does not exist; "
            f"create it with `useradd --system --create-home {LAB_USER}` (or run scripts/bootstrap.sh)"
        ) from None
    return LabUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), switch=True)


def user_kwargs(user: LabUser) -> dict[str, object]:
    """subprocess keyword arguments that run a child as the lab user (nothing when we already are it)."""
    if not user.switch:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def user_env(user: LabUser, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(user.home),
        "USER": user.name,
        "LOGNAME": user.name,
        "LANG": "C.UTF-8",
    }
    env.update(extra or {})
    return env


def give_to(user: LabUser, *paths: Path) -> None:
    """Hand files and directories to the lab user (a no-op when we are that user)."""
    if not user.switch:
        return
    for path in paths:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)


def run_as(
    user: LabUser,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a short command as the lab user; raise EnvironmentProblem with its last stderr line on failure."""
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=user_env(user, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **user_kwargs(user),  # type: ignore[call-overload]
        )
    except FileNotFoundError:
        raise EnvironmentProblem(f"{argv[0]} is missing; install it or point the lab at it") from None
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise EnvironmentProblem(f"{Path(argv[0]).name} failed: {last}")
    return done  # type: ignore[no-any-return]


def spawn_daemon(
    argv: Sequence[str],
    *,
    log: Path,
    cwd: Path,
    user: LabUser | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start a long-running process in its own session with output to `log`; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    kwargs = user_kwargs(user) if user is not None else {}
    full_env = dict(os.environ) if user is None else user_env(user)
    full_env.update(env or {})
    with open(log, "ab") as out:
        try:
            child = subprocess.Popen(  # type: ignore[call-overload]
                list(argv),
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kwargs,
            )
        except FileNotFoundError:
            raise EnvironmentProblem(f"{argv[0]} is missing; install it and retry") from None
    return int(child.pid)


def start_ticks(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        _reap(pid)
        return None
    return int(fields[19])


def is_alive(pid: int, ticks: int | None = None) -> bool:
    """True when `pid` runs and, if `ticks` is given, is the very process that was recorded."""
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def _reap(pid: int) -> None:
    # Our own children (the lab run inside a test process) linger as zombies until waited for.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, ticks: int | None, *, timeout: float = 10) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True when the process is gone."""
    if not is_alive(pid, ticks):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, ticks, timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return wait_gone(pid, ticks, 5)


def wait_gone(pid: int, ticks: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, ticks):
            return True
        time.sleep(0.02)
    return not is_alive(pid, ticks)


def port_open(address: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on address:port."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(address: str, port: int) -> bool:
    """True when we could bind address:port now (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def wait_port(address: str, port: int, *, timeout: float, pid: int | None = None, what: str) -> None:
    """Wait until address:port accepts connections; fail early if the process that should serve it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(address, port, timeout=0.2):
            return
        if pid is not None and not is_alive(pid):
            raise EnvironmentProblem(f"{what} exited before listening on {address}:{port}; see its log")
        time.sleep(0.03)
    raise EnvironmentProblem(f"{what} did not listen on {address}:{port} within {timeout:.0f} s; see its log")


def can_traverse(user: LabUser, path: Path) -> bool:
    """True when the lab user can reach `path` (every parent directory searchable by it)."""
    if not user.switch:
        return os.access(path, os.X_OK if path.is_dir() else os.R_OK)
    done = subprocess.run(
        ["test", "-r", str(path)],
        env=user_env(user),
        check=False,
        user=user.uid,
        group=user.gid,
        extra_groups=[],
        cwd="/",
    )
    return done.returncode == 0


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children first found, then theirs), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def stop_tree(pid: int, ticks: int | None, *, timeout: float = 10) -> bool:
    """Stop `pid` and whatever it forked (sshd's per-connection children outlive a stopped listener)."""
    if not is_alive(pid, ticks):
        return True
    children = [(c, start_ticks(c)) for c in descendants(pid)]
    gone = stop_pid(pid, ticks, timeout=timeout)
    for child, child_ticks in children:
        gone = stop_pid(child, child_ticks, timeout=timeout) and gone
    return gone
