"""The one small engine that runs any runbook: lock, journal, steps in order, events, resume.

Flow of a run: take the target's lock (mutating runbooks only), create the journal, record
run.started, then for each step record step.started, call it, and record step.finished with its
(redacted, JSON) output or step.failed with an error code; stop at the first failure; record
run.finished. A crash or kill anywhere leaves an interrupted run that `resume` continues.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recovery.engine.events import (
    Event,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFailed,
    StepFinished,
    StepReused,
    StepStarted,
    Subscriber,
)
from recovery.engine.journal import JournalWriter, is_running, journal_path, new_run_id, read_journal
from recovery.engine.lock import LockHolder, target_lock
from recovery.engine.model import Runbook, RunContext, Step, StepOutputs, TypedOutput, utc_now
from recovery.engine.plan import Plan, make_plan
from recovery.engine.redact import contains_redaction, redact, redact_text
from recovery.engine.registry import build_runbook, factory_module
from recovery.engine.result import NotAJournal, RunResult, summarize
from recovery.errors import PreconditionFailed, RecoveryError, UsageError
from recovery.targets.model import Target

MAX_OUTPUT_BYTES = 64 * 1024  # outputs are small facts (ids, versions, paths), not data
INTERNAL = "internal"
_RESULT_ATTR = "_recovery_run_result"


def failed_run(error: BaseException) -> RunResult | None:
    """The result of the failed run an error was raised from (None for errors raised before a run)."""
    result = getattr(error, _RESULT_ATTR, None)
    return result if isinstance(result, RunResult) else None


@dataclass(frozen=True)
class _Identity:
    user: str
    host: str
    pid: int

    @classmethod
    def current(cls) -> _Identity:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            user = str(os.getuid())
        return cls(user, socket.gethostname(), os.getpid())


class _Bus:
    """Delivers each event to the journal first, then to the other subscribers, in order."""

    def __init__(self, subscribers: Sequence[Subscriber]) -> None:
        self._subscribers = tuple(subscribers)

    def __call__(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber(event)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class Engine:
    """Runs runbooks against one target. Subscribers get every event after the journal has it."""

    def __init__(self, target: Target, subscribers: Sequence[Subscriber] = ()) -> None:
        self.target = target
        self.subscribers = tuple(subscribers)

    def plan(self, runbook: Runbook) -> Plan:
        """What a run would do; reads and writes nothing (this is `--dry-run`)."""
        return make_plan(self.target, runbook)

    def run(self, runbook: Runbook) -> RunResult:
        """Run every step in order. Returns the result of a successful run; on failure raises the
        failing step's RecoveryError (code `internal` for unexpected exceptions), with the run's
        result available through `failed_run(error)`. Raises LockHeld when another run holds the target."""
        me = _Identity.current()
        run_id = new_run_id(runbook.name)
        started_at = utc_now()
        with contextlib.ExitStack() as stack:
            if runbook.mutating:
                holder = LockHolder(run_id, runbook.name, me.pid, me.user, me.host, started_at)
                stack.enter_context(target_lock(self.target, holder))
            journal = JournalWriter.create(self.target.state_dir, run_id)
            stack.callback(journal.close)
            bus = _Bus((journal, *self.subscribers))
            bus(
                RunStarted(
                    run_id,
                    started_at,
                    runbook.name,
                    factory_module(runbook.name),
                    self.target.name,
                    redact(runbook.params),
                    runbook.planned(),
                    runbook.mutating,
                    me.user,
                    me.host,
                    me.pid,
                )
            )
            return self._execute(runbook, run_id, journal, bus, done={}, attempts={})
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow

    def resume(self, run_id: str, approve: Callable[[Runbook], None] | None = None) -> RunResult:
        """Continue an interrupted run: finished steps are not rerun (their recorded outputs are given
        to later steps), the step that was in progress is rerun, then the rest. Refuses finished runs.
        `approve` sees the rebuilt runbook before anything is locked or written (the CLI asks there)."""
        path = journal_path(self.target.state_dir, run_id)
        if not path.is_file():
            raise UsageError(
                f"no run {run_id} for target {self.target.name}; `recovery runs list` shows its runs"
            )
        records = read_journal(path)
        self._check_resumable(run_id, records, running=is_running(path))
        head = records[0]
        runbook = build_runbook(head["runbook"], self.target, head["params"], head.get("runbook_module", ""))
        if [s.name for s in runbook.steps] != [s["name"] for s in head["steps"]]:
            raise PreconditionFailed(
                f"runbook {runbook.name} has changed since run {run_id} started (its steps differ); "
                "start a new run"
            )
        if approve is not None:
            approve(runbook)
        me = _Identity.current()
        with contextlib.ExitStack() as stack:
            if runbook.mutating:
                holder = LockHolder(run_id, runbook.name, me.pid, me.user, me.host, utc_now())
                stack.enter_context(target_lock(self.target, holder))
            journal = JournalWriter.reopen(self.target.state_dir, run_id)
            stack.callback(journal.close)
            # Reread under the journal lock: another resume may have finished the run meanwhile.
            summary = self._check_resumable(run_id, journal.records, running=False)
            done = {s.name: s.output or {} for s in summary.steps if s.status == "ok"}
            attempts = {s.name: s.attempts for s in summary.steps}
            bus = _Bus((journal, *self.subscribers))
            bus(
                RunResumed(
                    run_id, utc_now(), runbook.name, self.target.name, tuple(done), me.user, me.host, me.pid
                )
            )
            total = len(runbook.steps)
            for index, step in enumerate(runbook.steps, 1):
                if step.name in done:
                    bus(StepReused(run_id, utc_now(), step.name, index, total))
            return self._execute(runbook, run_id, journal, bus, done=done, attempts=attempts)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_resumable(self, run_id: str, records: list[dict[str, Any]], *, running: bool) -> RunResult:
        try:
            summary = summarize(records, running=running)
        except NotAJournal:
            raise UsageError(
                f"run {run_id} has no readable run.started record; it cannot be resumed"
            ) from None
        if summary.target != self.target.name:
            raise UsageError(f"run {run_id} belongs to target {summary.target}, not {self.target.name}")
        if summary.status == "running":
            raise PreconditionFailed(
                f"run {run_id} is still running in another process; wait for it or stop that process"
            )
        if summary.status != "interrupted":
            raise PreconditionFailed(
                f"run {run_id} already finished ({summary.status}); a finished run cannot be resumed, "
                "start a new run"
            )
        if contains_redaction(summary.params):
            raise PreconditionFailed(
                f"run {run_id} had a secret among its parameters, which the journal does not keep; "
                "start a new run (pass secrets by reference: a file path or key id)"
            )
        return summary

    def _execute(
        self,
        runbook: Runbook,
        run_id: str,
        journal: JournalWriter,
        bus: _Bus,
        *,
        done: dict[str, Mapping[str, Any]],
        attempts: Mapping[str, int],
    ) -> RunResult:
        began = time.monotonic()
        total = len(runbook.steps)
        for index, step in enumerate(runbook.steps, 1):
            if step.name in done:
                continue
            bus(
                StepStarted(
                    run_id,
                    utc_now(),
                    step.name,
                    index,
                    total,
                    step.description,
                    attempts.get(step.name, 0) + 1,
                )
            )
            context = RunContext(
                self.target, run_id, runbook.name, step.name, runbook.params, StepOutputs(done), bus
            )
            step_began = time.monotonic()
            output, error, trace = self._call(step, context)
            duration = round(time.monotonic() - step_began, 6)
            if error is None:
                bus(StepFinished(run_id, utc_now(), step.name, index, total, duration, output))
                done[step.name] = output
                continue
            message = redact_text(error.message)
            bus(StepFailed(run_id, utc_now(), step.name, index, total, duration, error.code, message, trace))
            bus(
                RunFinished(
                    run_id,
                    utc_now(),
                    "failed",
                    round(time.monotonic() - began, 6),
                    step.name,
                    error.code,
                    message,
                )
            )
            setattr(error, _RESULT_ATTR, summarize(journal.records))
            raise error
        bus(RunFinished(run_id, utc_now(), "ok", round(time.monotonic() - began, 6)))
        return summarize(journal.records)

    def _call(
        self, step: Step, context: RunContext
    ) -> tuple[dict[str, Any], RecoveryError | None, str | None]:
        """Run one step; turn whatever it raises into (error, traceback) and its output into JSON."""
        try:
            raw = step.run(context)
        except RecoveryError as exc:
            return {}, exc, None
        except Exception as exc:
            error = RecoveryError(
                redact_text(
                    _one_line(
                        f"step {step.name} failed unexpectedly ({type(exc).__name__}: {exc}); "
                        f"the journal of run {context.run_id} has the traceback"
                    )
                ),
                code=INTERNAL,
            )
            error.__cause__ = exc
            return {}, error, redact_text("".join(traceback.format_exception(exc)))
        try:
            return _recorded_output(step.name, raw), None, None
        except RecoveryError as exc:
            return {}, exc, None


def _recorded_output(step: str, raw: Any) -> dict[str, Any]:
    """The output as the journal keeps it: a redacted JSON object, at most MAX_OUTPUT_BYTES."""
    if raw is None:
        return {}
    if isinstance(raw, TypedOutput):
        raw = raw.model_dump(mode="json")
    if not isinstance(raw, Mapping):
        raise RecoveryError(f"step {step} returned a {type(raw).__name__}, not a mapping", code=INTERNAL)
    try:
        text = json.dumps(redact(raw), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RecoveryError(f"step {step} returned output that is not JSON ({exc})", code=INTERNAL) from None
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        raise RecoveryError(
            f"step {step} returned {len(text.encode())} bytes of output (limit {MAX_OUTPUT_BYTES}); "
            "keep large data in files and return their paths",
            code=INTERNAL,
        )
    value: dict[str, Any] = json.loads(text)
    return value
