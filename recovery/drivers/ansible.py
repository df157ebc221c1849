"""ansible-runner driver: run one playbook against an inventory and return a typed, frozen result.

Each run gets a fresh private data dir (runner writes env/ files on the first run that would override
later keyword arguments). `ansible-playbook` is taken from this virtualenv. SSH uses ControlPersist and
pipelining (a playbook over SSH drops from ~6 s to ~2 s); host keys are checked (inventories point at
their known_hosts). Output is quiet: ansible's stdout goes to the artifacts dir only, and extra vars must
never carry secrets (pass paths of files that hold them).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from recovery.errors import EnvironmentProblem, ExternalFailure, UsageError

CONTROL_DIR = Path(tempfile.gettempdir()) / "order-recovery-cp"


@dataclass(frozen=True)
class HostStats:
    ok: int = 0
    changed: int = 0
    failures: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class FailedTask:
    task: str
    host: str
    message: str


@dataclass(frozen=True)
class PlaybookResult:
    playbook: str
    status: str  # runner's status: successful, failed, timeout, canceled
    rc: int
    hosts: Mapping[str, HostStats] = field(default_factory=dict)
    failed_task: FailedTask | None = None
    artifacts_dir: Path | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


def private_control_dir(path: Path) -> Path:
    """Create the SSH control-socket directory private to this user, or refuse one someone else made.

    It sits in the shared temporary directory: a directory planted there by another user would let them
    replace or hijack the multiplexed SSH connections to the hosts.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or mode & 0o077:
        raise EnvironmentProblem(
            f"the SSH control directory {path} is not a private directory of this user (owner uid "
            f"{info.st_uid}, mode {mode:04o}); remove it and retry"
        )
    return path


def ansible_env(control_dir: Path = CONTROL_DIR) -> dict[str, str]:
    """The environment of every ansible run: venv tools first, SSH multiplexing, quiet, host keys checked."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s -o ServerAliveInterval=15",
        # A short control path: socket paths longer than 108 bytes fail.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_SYSTEM_WARNINGS": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_STDOUT_CALLBACK": "default",
    }


def run_files_dir(state_dir: Path, run_id: str, what: str) -> Path:
    """Where a runbook run keeps one playbook run's files: beside its journal, in the target's state."""
    return state_dir / "ansible" / f"{run_id}-{what}"


def run_playbook(
    inventory: Path,
    playbook: str,
    *,
    extravars: dict[str, Any],
    limit: str | None = None,
    check: bool = False,
    private_data_dir: Path | None = None,
    timeout: int | None = None,
) -> PlaybookResult:
    """Run `playbook` (a path) against `inventory`; a failed run is a result, not an exception.

    ansible-runner's files (events, stdout, the artifacts a failure message points to) stay in
    `private_data_dir` when one is given: a runbook keeps them with its run. Without one they go to a
    temporary directory that is removed after the run, so nothing piles up in /tmp run after run; the
    failed task's one line is in the result either way."""
    book = Path(playbook).resolve()
    if not book.is_file():
        raise UsageError(f"playbook {playbook} not found; give the path of a playbook under playbooks/")
    if not inventory.is_file() and not inventory.is_dir():
        raise UsageError(f"inventory {inventory} not found; run `recovery lab up` or give the inventory path")
    with contextlib.ExitStack() as stack:
        if private_data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ansible-run-")))
        else:
            data_dir = private_data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        private_control_dir(CONTROL_DIR)
        started = time.monotonic()
        runner = ansible_runner.run(
            private_data_dir=str(data_dir),
            playbook=str(book),
            inventory=str(inventory.resolve()),
            extravars=dict(extravars),
            limit=limit,
            cmdline="--check --diff" if check else None,
            envvars=ansible_env(),
            quiet=True,
            suppress_env_files=True,
            timeout=timeout,
        )
        kept = private_data_dir is not None and runner.config.artifact_dir
        return PlaybookResult(
            playbook=book.name,
            status=str(runner.status),
            rc=int(runner.rc if runner.rc is not None else -1),
            hosts=parse_stats(runner.stats),
            failed_task=first_failure(runner.events),
            artifacts_dir=Path(runner.config.artifact_dir) if kept else None,  # a temporary one is gone
            duration=time.monotonic() - started,
        )


def parse_stats(stats: Mapping[str, Mapping[str, int]] | None) -> dict[str, HostStats]:
    """Turn runner's per-category stats ({"ok": {host: n}, ...}) into per-host HostStats."""
    if not stats:
        return {}
    names = {
        "ok": "ok",
        "changed": "changed",
        "failures": "failures",
        "dark": "unreachable",
        "skipped": "skipped",
        "rescued": "rescued",
        "ignored": "ignored",
    }
    per_host: dict[str, dict[str, int]] = {}
    for category, counts in stats.items():
        if category not in names:
            continue
        for host, count in (counts or {}).items():
            per_host.setdefault(host, {})[names[category]] = int(count)
    return {host: HostStats(**counts) for host, counts in sorted(per_host.items())}


def first_failure(events: Any) -> FailedTask | None:
    """The first task that failed (or found its host unreachable) and was not ignored."""
    for event in events:
        kind = event.get("event")
        if kind not in ("runner_on_failed", "runner_on_unreachable"):
            continue
        data = event.get("event_data", {})
        if data.get("ignore_errors"):
            continue
        return FailedTask(
            task=str(data.get("task") or "?"),
            host=str(data.get("host") or "?"),
            message=one_line(data.get("res") or {}),
        )
    return None


def one_line(res: Mapping[str, Any]) -> str:
    """One line that says why a task failed, from the module's result (msg, stderr or its rc); for a
    loop, from its first failed item."""
    if res.get("_ansible_no_log") or res.get("censored"):
        return "output hidden (no_log)"
    items = res.get("results")
    if isinstance(items, list):
        failed = next((i for i in items if isinstance(i, Mapping) and i.get("failed")), None)
        if failed is not None:
            return one_line(failed)
    for key in ("msg", "stderr", "module_stderr", "stdout"):
        value = res.get(key)
        if isinstance(value, str) and value.strip():
            lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
            line = lines[-1] if key != "msg" else _first_sentence(lines)
            return (line + _command_note(res))[:300]
    if "rc" in res:
        return f"exit code {res['rc']}"
    return "no message"


def _first_sentence(lines: list[str]) -> str:
    """A module message's first line, with the next one when the first only announces it
    ("Validation of arguments failed:" is followed by the reason)."""
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def _command_note(res: Mapping[str, Any]) -> str:
    """` (cmd: rc N)` for command modules, whose own message ("Error executing command.") names neither."""
    cmd = res.get("cmd")
    if not cmd or "rc" not in res:
        return ""
    shown = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
    return f" ({shown[:80]}: rc {res['rc']})"


def require_success(result: PlaybookResult) -> PlaybookResult:
    """Raise ExternalFailure with the failed task's one-line message unless the run succeeded."""
    if result.ok:
        return result
    where = f"; see {result.artifacts_dir}" if result.artifacts_dir else ""
    if result.failed_task is not None:
        f = result.failed_task
        raise ExternalFailure(f"{result.playbook}: task {f.task!r} failed on {f.host}: {f.message}{where}")
    raise ExternalFailure(f"{result.playbook} ended {result.status} (rc {result.rc}){where}")
