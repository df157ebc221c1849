"""The restore point restored beside live ahead of need, while the upgrade deploys and watches.

Restoring a million orders beside live and verifying the copy takes minutes; a rollback that starts it
only after a gate failed spends them on its hot path. So the upgrade starts `build_verified_copy` in a
background thread as soon as its restore point exists: it builds `<live>_restore_<id>` from the point's
files (`recovery.restore.database.restore_beside`, the same code path as a rollback's) and checks the
business invariants on it. When both are done it writes `speculative.json` beside the point's files, so
a rollback in another process (after the upgrade itself was killed) can trust the copy too; without that
file a copy is never used (it may be half-built), and the rollback builds its own as before.

A successful upgrade drops the copy (its `discard-copy` step). The live database is only ever read.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from recovery.backup.keys import key_provider
from recovery.backup.naming import DOMAINS
from recovery.drivers import db as db_driver
from recovery.drivers.aws import AwsDriver
from recovery.errors import RecoveryError, VerificationFailed
from recovery.restore.database import FromWriter, restore_beside, restore_names
from recovery.runbooks.upgrade_point import RestorePoint
from recovery.targets.model import Target
from recovery.verify.invariants import run_invariants
from recovery.verify.reports import failure_line

MARKER = "speculative.json"


@dataclass(frozen=True)
class VerifiedCopy:
    """A restored copy of the restore point whose invariants held when it was built."""

    database: str
    restore_id: str
    schema_version: int | None
    restore_s: float
    verify_s: float
    steps: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "restore_id": self.restore_id,
            "schema_version": self.schema_version,
            "restore_s": self.restore_s,
            "verify_s": self.verify_s,
            "steps": self.steps,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifiedCopy:
        version = data.get("schema_version")
        return cls(
            str(data["database"]),
            str(data["restore_id"]),
            None if version is None else int(version),
            float(data["restore_s"]),
            float(data["verify_s"]),
            {str(k): float(v) for k, v in dict(data.get("steps") or {}).items()},
        )


def build_verified_copy(target: Target, point: RestorePoint, restore_id: str) -> VerifiedCopy:
    """Restore `point` beside live as `<live>_restore_<restore_id>` and check its invariants.

    A copy that fails its invariants is dropped and VerificationFailed raised: live is untouched."""
    db = target.writable.database
    keys = key_provider(target.keys, AwsDriver(target.aws))
    started = time.monotonic()
    restored = restore_beside(
        db_driver.conninfo(db, dbname="postgres"),
        db_driver.pg_tool(db, "pg_restore").parent,
        live_db=db.name,
        restore_id=restore_id,
        schema_stream=FromWriter(point.write_plain(point.schema_file(), keys)),
        domain_streams={
            domain: FromWriter(point.write_plain(point.domain_file(domain), keys)) for domain in DOMAINS
        },
    )
    restored_at = time.monotonic()
    with db_driver.connect(db, dbname=restored.name, autocommit=True) as conn:
        report = run_invariants(conn, "public")
    line = failure_line(report)
    if line is not None:
        drop_copy(target, restore_id)
        raise VerificationFailed(
            f"the restored copy {restored.name} failed verification; live is untouched: {line}"
        )
    return VerifiedCopy(
        restored.name,
        restore_id,
        restored.schema_version,
        round(restored_at - started, 3),
        round(time.monotonic() - restored_at, 3),
        {s.step: round(s.seconds, 3) for s in restored.steps},
    )


def drop_copy(target: Target, restore_id: str) -> bool:
    """Drop the scratch copy of `restore_id` (never live, never a replaced database). True if it existed."""
    db = target.writable.database
    name = restore_names(db.name, restore_id).scratch
    with db_driver.connect(db, dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            return False
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return True


# The background job ----------------------------------------------------------------------------------


class _Job:
    """One copy being built in a thread of this process; `wait` gives its copy or the reason it failed."""

    def __init__(self, target: Target, point: RestorePoint, restore_id: str) -> None:
        self.target, self.point, self.restore_id = target, point, restore_id
        self.copy: VerifiedCopy | None = None
        self.error: str | None = None
        self.discarded = False
        self._done = threading.Event()
        # Not a daemon: a process that ends while the copy is built waits for it, so the copy is whole
        # and marked (or dropped by restore_beside on failure), never left half-built by our exit.
        self._thread = threading.Thread(target=self._run, name=f"speculative-{restore_id}", daemon=False)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            copy = build_verified_copy(self.target, self.point, self.restore_id)
            if self.discarded:  # cancelled while it was built: nobody will use it
                drop_copy(self.target, self.restore_id)
                self.error = "cancelled"
                return
            marker = self.point.directory / MARKER
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(json.dumps(copy.to_json()))
            tmp.replace(marker)
            self.copy = copy
        except RecoveryError as exc:
            self.error = exc.message
        except Exception as exc:  # a background job reports; the rollback builds its own
            self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            self._done.set()

    def wait(self, timeout: float | None) -> bool:
        return self._done.wait(timeout)


_jobs: dict[str, _Job] = {}
_jobs_lock = threading.Lock()


def start_copy(target: Target, point: RestorePoint, restore_id: str) -> str:
    """Start building the verified copy in the background (once per restore id); says what it did."""
    if read_marker(target, point, restore_id) is not None:
        return "already built and verified"
    with _jobs_lock:
        job = _jobs.get(restore_id)
        if job is not None and not job.discarded:
            return "already being built"
        job = _Job(target, point, restore_id)
        _jobs[restore_id] = job
    job.start()
    return "started"


def read_marker(target: Target, point: RestorePoint, restore_id: str) -> VerifiedCopy | None:
    """The copy a finished job recorded, when its database still exists (else None)."""
    marker = point.directory / MARKER
    try:
        copy = VerifiedCopy.from_json(json.loads(marker.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if copy.restore_id != restore_id:
        return None
    db = target.writable.database
    with db_driver.connect(db, dbname="postgres", autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (copy.database,)).fetchone()
    return copy if found else None


@dataclass(frozen=True)
class CopyState:
    copy: VerifiedCopy | None
    reason: str  # why there is no copy, or how long we waited for it
    waited_s: float


def wait_for_copy(
    target: Target, point: RestorePoint, restore_id: str, timeout: float | None = None
) -> CopyState:
    """The verified copy of `restore_id`: wait for this process's job when one runs, else trust the
    marker a finished job left. None (with the reason) when there is none: build it then."""
    started = time.monotonic()
    with _jobs_lock:
        job = _jobs.get(restore_id)
    if job is not None and not job.discarded:
        if not job.wait(timeout):
            return CopyState(None, f"still being built after {timeout:g} s", time.monotonic() - started)
        if job.copy is None:
            return CopyState(None, f"the background restore failed: {job.error}", time.monotonic() - started)
    copy = read_marker(target, point, restore_id)
    waited = round(time.monotonic() - started, 3)
    if copy is None:
        return CopyState(None, "no verified copy was built ahead", waited)
    return CopyState(copy, f"waited {waited:.1f} s for the copy built ahead", waited)


def cancel_copy(target: Target, point: RestorePoint, restore_id: str) -> bool:
    """The database stays as it is (a code-only rollback): stop the copy's job at once and drop the copy,
    so its restore does not compete with the rollback's switch for the CPU. True if a copy existed."""
    with _jobs_lock:
        job = _jobs.get(restore_id)
    if job is not None:
        job.discarded = True  # the job drops what it finishes after this
    (point.directory / MARKER).unlink(missing_ok=True)
    # Dropping with FORCE ends the restore's sessions: its pg_restore fails and the job ends.
    return drop_copy(target, restore_id)


def discard_copy(target: Target, point: RestorePoint, restore_id: str) -> bool:
    """After a successful upgrade: wait for the job (never drop under it), drop the copy and its marker."""
    with _jobs_lock:
        job = _jobs.get(restore_id)
    if job is not None:
        job.wait(None)
        job.discarded = True
    (point.directory / MARKER).unlink(missing_ok=True)
    return drop_copy(target, restore_id)
