"""A game day scenario: a Chaos Toolkit experiment (YAML) with a `recovery` extension block.

The experiment itself is the field's format, run by chaostoolkit-lib (`chaos run` works on it as it is).
The extension block adds what a game day measures and Chaos Toolkit does not know about:

    extensions:
      - name: recovery
        load: {rate: 10}                  # orders per second while the scenario runs (the ledger)
        fault: deploy v2-unhealthy        # the method activity whose start is the fault
        detected_when: {runbook: upgrade, event: step.failed}   # or {activity: NAME}: when it ended
        recovered_when: {runbook: rollback, event: run.finished}
        objectives: {time_to_detect_s: 30, rto_s: 60, orders_lost: 0, error_rate: 0.5}
        responses:                        # what a command of the method must answer
          - {activity: deploy v2-unhealthy, exit_code: 6, error: upgrade.rolled_back}

A malformed scenario is refused with one line naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recovery.errors import UsageError
from recovery.gameday.model import Objectives

EXTENSION = "recovery"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LoadPlan(_Strict):
    rate: float = Field(gt=0, le=200)


class Marker(_Strict):
    """What marks a moment: the first `event` of a `runbook` run after the fault (the run journals), or
    the end of a method `activity` (a probe that waited for the watch's alarm, when no runbook runs)."""

    # pydantic matches with Rust regex, where `$` is the very end (a trailing newline is refused)
    runbook: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]*$")
    event: Literal["run.started", "step.finished", "step.failed", "run.finished"] | None = None
    status: Literal["ok", "failed"] | None = None  # run.finished only: which outcome counts
    step: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]*$")  # step events: only this step
    activity: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Marker:
        if self.activity is not None:
            if any(v is not None for v in (self.runbook, self.event, self.status, self.step)):
                raise ValueError("an activity marker takes no runbook, event, status or step")
        elif self.runbook is None or self.event is None:
            raise ValueError("give runbook and event (a run-journal event) or activity (a method activity)")
        return self


class Response(_Strict):
    """What a command of the method must answer: its exit code and, when it fails, exactly one line on
    stderr naming the error code (`error[CODE]: ...`), as the README's exit-code table promises."""

    activity: str = Field(min_length=1)
    exit_code: int = Field(ge=0, le=255)
    error: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_.]*$")


class ObjectivesBlock(_Strict):
    time_to_detect_s: float | None = Field(default=None, gt=0)
    rto_s: float | None = Field(default=None, gt=0)
    orders_lost: int | None = Field(default=0, ge=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)


class RecoveryBlock(_Strict):
    name: Literal["recovery"]
    load: LoadPlan | None = None
    fault: str = Field(min_length=1)
    detected_when: Marker | None = None
    recovered_when: Marker | None = None
    objectives: ObjectivesBlock = ObjectivesBlock()
    responses: tuple[Response, ...] = ()

    def to_objectives(self) -> Objectives:
        o = self.objectives
        return Objectives(o.time_to_detect_s, o.rto_s, o.orders_lost, o.error_rate)


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str  # the file's stem
    title: str
    experiment: dict[str, Any]
    recovery: RecoveryBlock


def _line_of(node: yaml.Node, path: tuple[str | int, ...]) -> int:
    """The 1-based line of the node at `path` (as deep as it exists) in a composed YAML document."""
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next((value for key, value in node.value if getattr(key, "value", None) == part), None)
            if found is None:
                break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return node.start_mark.line + 1


def _refuse(path: Path, line: int, what: str) -> UsageError:
    return UsageError(f"{path}:{line}: {what}", code="gameday.scenario_invalid")


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read the scenario {path} ({exc}); give a YAML file", code="gameday.scenario_invalid"
        ) from None
    try:
        root = yaml.compose(text)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise _refuse(path, line, f"not YAML ({getattr(exc, 'problem', exc)})") from None
    if root is None or not isinstance(document, dict):
        raise _refuse(path, 1, "a scenario is a Chaos Toolkit experiment: a mapping with title, method, ...")
    for field_name in ("title", "description", "method"):
        if field_name not in document:
            raise _refuse(path, 1, f"field {field_name} is missing (a Chaos Toolkit experiment needs it)")
    extensions = document.get("extensions") or []
    index = next(
        (n for n, ext in enumerate(extensions) if isinstance(ext, dict) and ext.get("name") == EXTENSION),
        None,
    )
    if index is None:
        raise _refuse(path, _line_of(root, ("extensions",)), "no `extensions` entry named recovery")
    try:
        block = RecoveryBlock.model_validate(extensions[index])
    except ValidationError as exc:
        error = exc.errors()[0]
        where = tuple(error["loc"])
        line = _line_of(root, ("extensions", index, *where))
        field = ".".join(str(part) for part in where) or "recovery"
        raise _refuse(path, line, f"extensions[recovery].{field}: {error['msg']}") from None
    names = [a.get("name") for a in document.get("method") or [] if isinstance(a, dict)]
    if block.fault not in names:
        line = _line_of(root, ("extensions", index, "fault"))
        raise _refuse(path, line, f"extensions[recovery].fault: no method activity is named {block.fault!r}")
    for marker_field in ("detected_when", "recovered_when"):
        marker = getattr(block, marker_field)
        if marker is not None and marker.activity is not None and marker.activity not in names:
            line = _line_of(root, ("extensions", index, marker_field, "activity"))
            raise _refuse(
                path,
                line,
                f"extensions[recovery].{marker_field}.activity: no method activity is named "
                f"{marker.activity!r}",
            )
    for number, response in enumerate(block.responses):
        if response.activity not in names:
            line = _line_of(root, ("extensions", index, "responses", number, "activity"))
            raise _refuse(
                path,
                line,
                f"extensions[recovery].responses.{number}.activity: no method activity is named "
                f"{response.activity!r}",
            )
    return Scenario(path, path.stem, str(document["title"]), document, block)
