"""Message templates: one file per event a person is told about, editable by the team that runs the shop.

A template file holds comment lines (`#`) first, then `subject: ...`, a line `---`, then the body.
Placeholders are `${field}`. Each event declares the fields it offers (`EVENT_FIELDS`), so a template
naming any other field (a typo, or something that must never reach a message: a password, a payment
amount) is refused when the templates are loaded, with the file, the line and the field. Loading happens
when a notifier is built, i.e. before a runbook or the watch starts, never in the middle of an incident.

A team overrides any template by putting a file of the same relative path (`team/alarm.txt`) in its own
directory (the target's `notification_templates`); the others keep the defaults shipped here.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from recovery.engine.redact import redact_text
from recovery.errors import ConfigError

Audience = Literal["team", "customer"]

DEFAULT_DIR = Path(__file__).resolve().parent / "templates"
# SNS refuses a subject over 100 characters, or one with a line break.
SUBJECT_LIMIT = 100
SEPARATOR = "---"

_RUN = frozenset({"target", "runbook", "run_id", "at"})
# Customer messages offer the order id and when it was received: no amounts, no payment details, no
# address. A template cannot ask for more because nothing more is offered.
_ORDER = frozenset({"order_id", "received_at"})
# The order service sends this one itself when it queues an order (orderservice/notices.py): the deploy
# hands it the template's text, and it fills the same two fields.
PENDING_EVENT = "customer/order-pending"
EVENT_FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "team/run-started": _RUN | {"user", "host", "steps"},
        "team/run-succeeded": _RUN | {"duration_s"},
        "team/run-failed": _RUN | {"failed_step", "message", "code", "duration_s"},
        "team/rolled-back": _RUN | {"release", "failed_gate"},
        "team/page-a-human": _RUN | {"message", "action"},
        "team/alarm": frozenset({"target", "check", "observed", "threshold", "action", "command", "at"}),
        "team/alarm-cleared": frozenset({"target", "check", "observed", "threshold", "at"}),
        "team/watch-page": frozenset({"target", "message", "action", "at"}),
        "team/watch-failover": frozenset({"target", "message", "command", "at"}),
        "team/watch-fenced": frozenset({"target", "message", "fence", "command", "at"}),
        "customer/order-pending": _ORDER,  # also rendered by the order service (PENDING_EVENT)
        "customer/order-confirmed": _ORDER,
        "customer/order-needs-attention": _ORDER,
    }
)


@dataclass(frozen=True)
class Message:
    """A rendered message: what a topic's subscribers receive."""

    audience: Audience
    event: str
    subject: str
    body: str


@dataclass(frozen=True)
class Template:
    event: str  # "team/alarm"
    subject: string.Template
    body: string.Template
    source: Path

    @property
    def audience(self) -> Audience:
        return "customer" if self.event.startswith("customer/") else "team"

    def render(self, fields: Mapping[str, object]) -> Message:
        """The message with every placeholder filled. Values pass through redaction; the subject is one
        line within SNS's limit."""
        text = {name: redact_text(str(value)) for name, value in fields.items()}
        missing = sorted(set(EVENT_FIELDS[self.event]) - set(text))
        if missing:
            raise ValueError(f"{self.event}: the caller gave no {', '.join(missing)}")
        subject = " ".join(self.subject.substitute(text).split())
        if len(subject) > SUBJECT_LIMIT:
            subject = subject[: SUBJECT_LIMIT - 3] + "..."
        return Message(self.audience, self.event, subject, self.body.substitute(text).strip() + "\n")


def _fail(source: Path, line: int, what: str) -> ConfigError:
    return ConfigError(f"{source}:{line}: {what}", code="notify.template_invalid")


# The deploy hands the order service its template through Ansible, which would evaluate these.
JINJA_MARKERS = ("{{", "{%", "{#")


def _placeholders(source: Path, line_no: int, line: str, allowed: frozenset[str], event: str = "") -> None:
    if event == PENDING_EVENT and any(marker in line for marker in JINJA_MARKERS):
        raise _fail(
            source,
            line_no,
            "`{{`, `{%` and `{#` cannot appear here: the order service gets this text through Ansible, "
            "which would evaluate them",
        )
    found = string.Template(line)
    if not found.is_valid():
        raise _fail(source, line_no, "a `$` that starts no ${field}; write `$$` for a dollar sign")
    for name in found.get_identifiers():
        if name not in allowed:
            raise _fail(
                source,
                line_no,
                f"unknown field ${{{name}}}; this message offers {', '.join(sorted(allowed))}",
            )


def parse_template(text: str, source: Path, event: str) -> Template:
    """One template file's text, checked against the fields its event offers."""
    allowed = EVENT_FIELDS[event]
    lines = text.splitlines()
    index = 0
    while index < len(lines) and (not lines[index].strip() or lines[index].lstrip().startswith("#")):
        index += 1
    if index == len(lines) or not lines[index].startswith("subject:"):
        raise _fail(source, index + 1, "the first line after the comments must be `subject: ...`")
    subject_line = lines[index].removeprefix("subject:").strip()
    if not subject_line:
        raise _fail(source, index + 1, "the subject is empty")
    _placeholders(source, index + 1, subject_line, allowed, event)
    if index + 1 >= len(lines) or lines[index + 1].strip() != SEPARATOR:
        raise _fail(source, index + 2, f"a line `{SEPARATOR}` must follow the subject")
    body_lines = lines[index + 2 :]
    if not any(line.strip() for line in body_lines):
        raise _fail(source, index + 3, "the body is empty")
    for offset, line in enumerate(body_lines):
        _placeholders(source, index + 3 + offset, line, allowed, event)
    return Template(event, string.Template(subject_line), string.Template("\n".join(body_lines)), source)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(path, 1, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", code="notify.template_invalid") from None


@dataclass(frozen=True)
class TemplateSet:
    templates: Mapping[str, Template]

    def render(self, event: str, fields: Mapping[str, object]) -> Message:
        return self.templates[event].render(fields)

    def source_text(self, event: str) -> tuple[str, str]:
        """(subject, body) of `event`'s template as written, placeholders unfilled: for a renderer
        outside the toolkit (the order service's "received, pending"), after this set checked them."""
        chosen = self.templates[event]
        return chosen.subject.template, chosen.body.template


def load_templates(override_dir: Path | None = None) -> TemplateSet:
    """Every event's template: the team's file where `override_dir` has one, else the default. A file
    in `override_dir` that matches no event is refused (a misspelt name would silently do nothing)."""
    chosen: dict[str, Path] = {event: DEFAULT_DIR / f"{event}.txt" for event in EVENT_FIELDS}
    if override_dir is not None:
        if not override_dir.is_dir():
            raise ConfigError(
                f"notification templates directory {override_dir} does not exist; create it or drop "
                "notification_templates from the target",
                code="notify.template_invalid",
            )
        for path in sorted(override_dir.rglob("*.txt")):
            event = path.relative_to(override_dir).with_suffix("").as_posix()
            if event not in EVENT_FIELDS:
                raise _fail(path, 1, f"no event is called {event}; use one of {', '.join(EVENT_FIELDS)}")
            chosen[event] = path
    return TemplateSet(
        MappingProxyType({event: parse_template(_read(path), path, event) for event, path in chosen.items()})
    )
