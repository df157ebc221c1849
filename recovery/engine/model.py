"""What a runbook is: an ordered tuple of named, idempotent steps, and what a step sees when it runs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from recovery.engine.events import Event, PlannedStep, StepNote, StepProgress
from recovery.engine.redact import redact
from recovery.targets.model import Target

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*\Z")


class TypedOutput(BaseModel):
    """A step's result as a typed, frozen model: a step returns one, a later step reads it back with
    `ctx.output(step, Model)`. The journal keeps its JSON form, so a resumed run reads the same."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, serialize_by_alias=True)


OutputT = TypeVar("OutputT", bound=TypedOutput)
StepOutput = Mapping[str, Any] | TypedOutput
StepFn = Callable[["RunContext"], StepOutput | None]


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with milliseconds, e.g. 2026-11-25T22:15:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def thaw(value: Any) -> Any:
    """A plain JSON value from a frozen one (the inverse of `freeze`)."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


def freeze(value: Any) -> Any:
    """A read-only view of a JSON value: mappings become MappingProxyType, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


@dataclass(frozen=True)
class Step:
    """One named, idempotent step. `run` may be called again after an interruption, so it must check
    what is already done before doing it. `mutating` defaults to True: a step must say it is read-only."""

    name: str
    description: str  # one sentence, shown in the plan and the progress display
    run: StepFn = field(repr=False, compare=False)
    mutating: bool = True
    acts_on: tuple[str, ...] = ()  # what the step touches (hosts, databases, buckets), for the plan

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"step name {self.name!r} must match {NAME_PATTERN.pattern}")
        if not self.description.strip() or "\n" in self.description:
            raise ValueError(f"step {self.name!r} needs a one-line description")

    def planned(self) -> PlannedStep:
        return PlannedStep(self.name, self.description, self.mutating, tuple(self.acts_on))


@dataclass(frozen=True)
class Runbook:
    """A runbook instance: its registered name, its steps in order, and the parameters it was built from
    (journaled after redaction; resume rebuilds the runbook from the name and these parameters)."""

    name: str
    steps: tuple[Step, ...]
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    confirm: str | None = None  # a sentence naming what is destructive; the CLI asks before running

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"runbook name {self.name!r} must match {NAME_PATTERN.pattern}")
        if not self.steps:
            raise ValueError(f"runbook {self.name!r} has no steps")
        names = [step.name for step in self.steps]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"runbook {self.name!r} repeats step names: {', '.join(duplicates)}")
        try:
            json.dumps(self.params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"runbook {self.name!r}: parameters must be JSON values ({exc})") from None
        object.__setattr__(self, "params", freeze(dict(self.params)))

    @property
    def mutating(self) -> bool:
        return any(step.mutating for step in self.steps)

    def planned(self) -> tuple[PlannedStep, ...]:
        return tuple(step.planned() for step in self.steps)


class StepOutputs(Mapping[str, Mapping[str, Any]]):
    """Read-only access to the recorded outputs of the steps finished so far (by name)."""

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self._outputs = MappingProxyType({name: freeze(value) for name, value in outputs.items()})

    def __getitem__(self, step: str) -> Mapping[str, Any]:
        try:
            value: Mapping[str, Any] = self._outputs[step]
        except KeyError:
            done = ", ".join(self._outputs) or "none"
            raise KeyError(f"no recorded output of step {step!r} (finished steps: {done})") from None
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


@dataclass(frozen=True)
class RunContext:
    """What a step gets: where it acts, which run it belongs to, earlier outputs and a way to report."""

    target: Target
    run_id: str
    runbook: str
    step: str
    params: Mapping[str, Any]
    outputs: StepOutputs
    emit: Callable[[Event], None] = field(repr=False, compare=False)

    def output(self, step: str, model: type[OutputT]) -> OutputT:
        """The recorded result of an earlier step, read back as its typed model."""
        return model.model_validate(thaw(self.outputs[step]))

    def progress(self, message: str, done: float | None = None, total: float | None = None) -> None:
        """Tell the display how far the step is (not journaled)."""
        self.emit(StepProgress(self.run_id, utc_now(), self.step, message, done, total))

    def note(self, message: str, **data: Any) -> None:
        """Put a line on the audit record, e.g. a decision and its reason (redacted like outputs)."""
        self.emit(StepNote(self.run_id, utc_now(), self.step, str(redact(message)), freeze(redact(data))))
