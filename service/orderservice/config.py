"""The service's configuration: one JSON file written by the deploy role. Passwords never live here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class ConfigProblem(Exception):
    """The config file is missing or wrong; the message names the field and what to do."""


@dataclass(frozen=True)
class DbConfig:
    host: str
    port: int
    name: str
    user: str
    passfile: str | None


@dataclass(frozen=True)
class PendingNotice:
    """Where and what "received, pending" is for an order the service queued (orderservice.notices): the
    customer SNS topic and the toolkit's `customer/order-pending` template, handed over by the deploy."""

    topic_arn: str
    subject: str
    body: str


@dataclass(frozen=True)
class IntakeConfig:
    """Where orders go while the database cannot take writes (the SQS intake queue).

    No credentials here: a real host signs with its instance role; a loopback endpoint (the lab's moto)
    gets fixed, non-secret ones (orderservice.intake)."""

    queue_url: str
    region: str
    endpoint_url: str | None = None
    # Off: the service refuses orders it cannot write, as before degraded mode existed (to compare).
    degraded_mode: bool = True
    pending_notice: PendingNotice | None = None  # None: the 202 answer is the only "received, pending"


@dataclass(frozen=True)
class Config:
    release: str
    site: str
    listen: str
    port: int
    db: DbConfig
    log_file: str
    pool_min: int = 1
    pool_max: int = 8
    intake: IntakeConfig | None = None


def _field(data: dict, key: str, kind: type, where: str) -> object:
    if key not in data:
        raise ConfigProblem(f"{where}: missing field {key!r}; add it to the config file")
    value = data[key]
    if kind is int and isinstance(value, str) and value.isdigit():
        value = int(value)  # templating tools sometimes render numbers as strings
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigProblem(f"{where}: field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _region_of(queue_url: str) -> str:
    """The region of an AWS queue URL (https://sqs.<region>.amazonaws.com/...); '' for other endpoints."""
    host = queue_url.split("/")[2] if "://" in queue_url else ""
    parts = host.split(".")
    return parts[1] if len(parts) >= 3 and parts[0] == "sqs" else ""


def _intake(data: dict, path: str) -> IntakeConfig | None:
    """The optional `intake` object; absent or without a queue URL: no degraded mode."""
    raw = data.get("intake")
    if raw is None:
        return None
    where = f"{path} intake"
    if not isinstance(raw, dict):
        raise ConfigProblem(f"{where}: must be an object with queue_url and region")
    if not raw.get("queue_url"):
        return None
    endpoint = raw.get("endpoint_url") or None
    if endpoint is not None and not isinstance(endpoint, str):
        raise ConfigProblem(f"{where}: field 'endpoint_url' must be a URL string")
    degraded = raw.get("degraded_mode", True)
    if isinstance(degraded, str) and degraded.lower() in ("true", "false"):
        degraded = degraded.lower() == "true"  # templating tools sometimes render booleans as strings
    if not isinstance(degraded, bool):
        raise ConfigProblem(f"{where}: field 'degraded_mode' must be true or false")
    queue_url = str(_field(raw, "queue_url", str, where))
    region = raw.get("region") or _region_of(queue_url)
    if not isinstance(region, str) or not region:
        raise ConfigProblem(f"{where}: field 'region' is missing and the queue URL names none; set it")
    return IntakeConfig(
        queue_url=queue_url,
        region=region,
        endpoint_url=endpoint,
        degraded_mode=degraded,
        pending_notice=_pending_notice(raw, where),
    )


def _pending_notice(intake: dict, where: str) -> PendingNotice | None:
    """The optional `pending_notice` object of `intake`; absent or without a topic: no such message."""
    raw = intake.get("pending_notice")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigProblem(f"{where}: 'pending_notice' must be an object with topic_arn, subject and body")
    if not raw.get("topic_arn"):
        return None
    inner = f"{where} pending_notice"
    topic = str(_field(raw, "topic_arn", str, inner))
    if len(topic.split(":")) != 6 or not topic.startswith("arn:aws:sns:"):
        raise ConfigProblem(f"{inner}: 'topic_arn' {topic!r} is not an SNS topic ARN")
    subject, body = str(_field(raw, "subject", str, inner)), str(_field(raw, "body", str, inner))
    if not subject.strip() or not body.strip():
        raise ConfigProblem(f"{inner}: 'subject' and 'body' must not be empty; deploy the template's text")
    return PendingNotice(topic_arn=topic, subject=subject, body=body)


def load_config(path: str) -> Config:
    if not Path(path).is_file():
        raise ConfigProblem(f"config file {path} does not exist; deploy the release or pass --config")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ConfigProblem(f"{path}: not valid JSON (line {exc.lineno}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigProblem(f"{path}: expected a JSON object at the top level")
    db = _field(data, "db", dict, path)
    assert isinstance(db, dict)
    site = str(_field(data, "site", str, path))
    if site not in ("primary", "standby"):
        raise ConfigProblem(f"{path}: field 'site' must be primary or standby, got {site!r}")
    passfile = db.get("passfile") or None
    if passfile is not None and not isinstance(passfile, str):
        raise ConfigProblem(f"{path}: field 'db.passfile' must be a path string")
    pool = data.get("pool", {})
    return Config(
        release=str(_field(data, "release", str, path)),
        site=site,
        listen=str(_field(data, "listen", str, path)),
        port=int(_field(data, "port", int, path)),  # type: ignore[call-overload]
        db=DbConfig(
            host=str(_field(db, "host", str, f"{path} db")),
            port=int(_field(db, "port", int, f"{path} db")),  # type: ignore[call-overload]
            name=str(_field(db, "name", str, f"{path} db")),
            user=str(_field(db, "user", str, f"{path} db")),
            passfile=passfile,
        ),
        log_file=str(_field(data, "log_file", str, path)),
        pool_min=int(_field(pool, "min", int, f"{path} pool")) if "min" in pool else 1,  # type: ignore[call-overload]
        pool_max=int(_field(pool, "max", int, f"{path} pool")) if "max" in pool else 8,  # type: ignore[call-overload]
        intake=_intake(data, path),
    )
