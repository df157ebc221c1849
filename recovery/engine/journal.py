"""The append-only audit journal of a run: `<state_dir>/runs/<run_id>/journal.jsonl`.

One JSON object per line, one line per event, written with a single O_APPEND write and fsync'd before
the engine moves on, so a killed run leaves every record it announced. The process running (or
resuming) a run holds an exclusive flock on its journal: the kernel drops it when the process dies,
which is how `runs list` tells a running run from an interrupted one without trusting pids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recovery.engine.events import JOURNALED, Event
from recovery.errors import EnvironmentProblem, PreconditionFailed, UsageError

JOURNAL_NAME = "journal.jsonl"
JOURNAL_FORMAT = 1
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[a-z][a-z0-9-]*-[0-9a-f]{4}\Z")

Record = dict[str, Any]


def new_run_id(runbook: str, now: datetime | None = None) -> str:
    """A run id that sorts by start time: 20261125T221500Z-upgrade-3f2a."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{runbook}-{secrets.token_hex(2)}"


def runs_dir(state_dir: Path) -> Path:
    return state_dir / "runs"


def journal_path(state_dir: Path, run_id: str) -> Path:
    if not RUN_ID_PATTERN.match(run_id):
        raise UsageError(f"{run_id!r} is not a run id; `recovery runs list` shows the runs of a target")
    return runs_dir(state_dir) / run_id / JOURNAL_NAME


def _plain(value: Any) -> Any:
    # Frozen views (MappingProxyType) serialise as plain objects, planned steps as their fields.
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def record_of(event: Event, seq: int) -> Record:
    """The journal line of an event: seq, at, event, run_id, then the event's own fields."""
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    record: Record = {"seq": seq, "at": fields.pop("at"), "event": event.kind, "run_id": fields.pop("run_id")}
    record.update(fields)
    if event.kind == "run.started":
        record["format"] = JOURNAL_FORMAT
    return json.loads(json.dumps(record, default=_plain, allow_nan=False))  # type: ignore[no-any-return]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_journal(fd: int, run_id: str, tries: int = 25) -> None:
    # A `runs list` probe holds a shared lock for microseconds: retry briefly before calling it running.
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == tries - 1:
                raise PreconditionFailed(
                    f"run {run_id} is still running in another process; wait for it or stop that process"
                ) from None
            time.sleep(0.02)


class JournalWriter:
    """The journal subscriber: appends each journaled event as one fsync'd line and keeps the records."""

    def __init__(self, path: Path, run_id: str, fd: int, records: list[Record]) -> None:
        self.path = path
        self.run_id = run_id
        self._fd: int | None = fd
        self.records = records

    @classmethod
    def create(cls, state_dir: Path, run_id: str) -> JournalWriter:
        path = journal_path(state_dir, run_id)
        try:
            path.parent.mkdir(parents=True, mode=0o750)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot create the journal {path} ({exc.strerror}); make the target's state_dir writable"
            ) from None
        _lock_journal(fd, run_id)
        _fsync_dir(path.parent)
        _fsync_dir(path.parent.parent)
        return cls(path, run_id, fd, [])

    @classmethod
    def reopen(cls, state_dir: Path, run_id: str) -> JournalWriter:
        """Take over an interrupted run's journal for appending (refused while its process lives)."""
        path = journal_path(state_dir, run_id)
        if not path.is_file():
            raise UsageError(
                f"no run {run_id} under {runs_dir(state_dir)}; `recovery runs list` shows the runs"
            )
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        try:
            _lock_journal(fd, run_id)
            raw = path.read_bytes()
            if raw and not raw.endswith(b"\n"):
                # The process died inside a write: end the torn line so later records stay parseable.
                os.write(fd, b"\n")
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, run_id, fd, read_journal(path))

    def __call__(self, event: Event) -> None:
        if not isinstance(event, JOURNALED):
            return
        if self._fd is None:
            raise RuntimeError(f"journal of run {self.run_id} is closed")
        record = record_of(event, len(self.records))
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        os.write(self._fd, line)
        os.fsync(self._fd)
        self.records.append(record)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def read_journal(path: Path) -> list[Record]:
    """The records of a journal, in order. A line that is not a JSON object (torn by a kill) is skipped."""
    records: list[Record] = []
    with path.open("rb") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(record, dict) and isinstance(record.get("event"), str):
                records.append(record)
    return records


def is_running(path: Path) -> bool:
    """True while some process holds the run's journal lock (it is running or being resumed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def run_ids(state_dir: Path) -> Iterator[str]:
    """The run ids of a target, newest first."""
    root = runs_dir(state_dir)
    if not root.is_dir():
        return
    for entry in sorted((p.name for p in root.iterdir()), reverse=True):
        if RUN_ID_PATTERN.match(entry) and (root / entry / JOURNAL_NAME).is_file():
            yield entry


@contextlib.contextmanager
def closing_journal(journal: JournalWriter) -> Iterator[JournalWriter]:
    try:
        yield journal
    finally:
        journal.close()
