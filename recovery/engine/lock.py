"""One lock per target: `<state_dir>/locks/<target>.lock`, an fcntl.flock held for the whole run.

The kernel releases a flock when its process dies, so a killed run never leaves a stale lock. The
file also holds a JSON record of the holder (run id, pid, runbook, start) so a refused run can say
who holds it. The file itself is never deleted: unlinking a lock file races with the next acquirer.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from recovery.errors import EnvironmentProblem, LockHeld


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    runbook: str
    pid: int
    user: str
    host: str
    started_at: str


def lock_path(state_dir: Path, target: str) -> Path:
    return state_dir / "locks" / f"{target}.lock"


def read_holder(path: Path) -> LockHolder | None:
    """The holder record in a lock file (it may be from a finished run: only the flock says who holds)."""
    try:
        data = json.loads(path.read_text())
        return LockHolder(**data)
    except (OSError, ValueError, TypeError):
        return None


class TargetLock:
    """The exclusive lock of one target. Use as a context manager around a mutating run."""

    def __init__(self, state_dir: Path, target: str, holder: LockHolder) -> None:
        self.target = target
        self.path = lock_path(state_dir, target)
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            # No O_TRUNC: the current holder's record must survive our failed attempt.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot open the lock {self.path} ({exc.strerror}); make the target's state_dir writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(self._refusal()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(self.holder)).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def _refusal(self) -> str:
        holder = read_holder(self.path)
        if holder is None:
            return (f"target {self.target} is locked by another run that is just starting; "
                    "wait for it to finish (`recovery runs list`)")
        return (f"target {self.target} is locked by run {holder.run_id} ({holder.runbook}, pid {holder.pid} "
                f"on {holder.host}, since {holder.started_at}); wait for it to finish")

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no holder any more; an empty record reads as "free"
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> TargetLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
