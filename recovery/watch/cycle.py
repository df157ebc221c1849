"""One cycle of the watch, pure: from what the probes saw, the readings the decision judges, the samples
the metrics get, and the messages the team gets (each once: when a check crosses its threshold, when it
is back, when the watch pages or fails over).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from recovery.targets.model import Objectives, SiteName
from recovery.watch import metrics_contract as contract
from recovery.watch.decide import Reading, WatchDecision
from recovery.watch.probes import DatabaseProbe, HttpProbe, SpoolProbe
from recovery.watch.publish import Sample, sample


@dataclass(frozen=True)
class BackupAge:
    domain: str
    kind: Literal["realtime", "daily"]
    age_seconds: float
    newest: str | None  # the newest backup that counts; None: none yet


@dataclass(frozen=True)
class Snapshot:
    target: str  # how a person names the target in a command (`--target X`)
    writer: SiteName
    http: tuple[HttpProbe, ...] = ()
    databases: tuple[DatabaseProbe, ...] = ()
    spool: SpoolProbe | None = None
    backups: tuple[BackupAge, ...] = ()
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    error_rate: float = 0.0  # failed share of the front door's recent probes
    latency_ms: float = 0.0  # the 95th percentile of the front door's recent probes
    problems: tuple[str, ...] = ()  # probes that could not run at all (catalog unreadable, ...)

    @property
    def archiver_failing(self) -> bool:
        return any(probe.archiver_failing for probe in self.databases if probe.role == "primary")


def _backup_command(snapshot: Snapshot, age: BackupAge) -> str:
    ref = snapshot.target
    if age.kind == "daily":
        return f"recovery backup run --domain {age.domain} --target {ref}"
    if snapshot.archiver_failing:
        return f"recovery backup setup-archiving --target {ref} --yes"
    if age.newest is None:
        return f"recovery backup realtime --target {ref}"
    return f"recovery backup ship --target {ref}"


def readings(snapshot: Snapshot, objectives: Objectives) -> tuple[Reading, ...]:
    """Every measured value against its threshold, each with the command that fixes it."""
    look = f"recovery watch --once --target {snapshot.target}"
    found = [
        Reading(
            f"backup age {age.domain}/{age.kind}",
            round(age.age_seconds),
            objectives.realtime_backup_max_age_seconds
            if age.kind == "realtime"
            else objectives.daily_backup_max_age_hours * 3600,
            "s",
            _backup_command(snapshot, age),
        )
        for age in snapshot.backups
    ]
    if snapshot.spool is not None and snapshot.spool.ok:
        found.append(
            Reading(
                "WAL spool age",
                round(snapshot.spool.oldest_age_seconds),
                objectives.realtime_backup_max_age_seconds,
                "s",
                f"recovery backup ship --target {snapshot.target}",
            )
        )
    if snapshot.lag_seconds is not None:
        found.append(
            Reading(
                "replication lag of the standby",
                round(snapshot.lag_seconds, 1),
                objectives.replication_lag_max_seconds,
                "s",
                look,
            )
        )
    found.append(
        Reading(
            "front door error rate",
            round(snapshot.error_rate * 100, 1),
            objectives.error_rate_max * 100,
            "%",
            look,
        )
    )
    found.append(
        Reading("front door latency p95", round(snapshot.latency_ms), objectives.latency_p95_ms, "ms", look)
    )
    return tuple(found)


def samples(snapshot: Snapshot) -> list[Sample]:
    """The cycle's figures in the metrics contract's names and dimensions."""
    out: list[Sample] = []
    writer = snapshot.writer
    oldest: dict[str, float] = {}
    for age in snapshot.backups:
        out.append(
            sample(contract.BACKUP_AGE, age.age_seconds, Site=writer, Domain=age.domain, Kind=age.kind)
        )
        oldest[age.kind] = max(oldest.get(age.kind, 0.0), age.age_seconds)
    for kind, value in sorted(oldest.items()):
        out.append(sample(contract.BACKUP_AGE_OLDEST_DOMAIN, value, Site=writer, Kind=kind))
    if snapshot.spool is not None and snapshot.spool.ok:
        out.append(sample(contract.WAL_SPOOL_AGE, snapshot.spool.oldest_age_seconds, Site=writer))
    standby: SiteName = "standby" if writer == "primary" else "primary"
    if snapshot.lag_bytes is not None:
        out.append(sample(contract.REPLICATION_LAG_BYTES, snapshot.lag_bytes, Site=standby))
    if snapshot.lag_seconds is not None:
        out.append(sample(contract.REPLICATION_LAG_SECONDS, snapshot.lag_seconds, Site=standby))
    for probe in snapshot.http:
        out.append(sample(contract.PROBE_FAILURES, 0 if probe.ok else 1, Site=probe.site, Probe=probe.probe))
    for database in snapshot.databases:
        out.append(
            sample(contract.PROBE_FAILURES, 0 if database.ok else 1, Site=database.site, Probe="database")
        )
    return out


# --- messages -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    event: str  # a template: team/alarm, team/alarm-cleared, team/watch-page, ...
    fields: dict[str, object]
    key: str  # what it is about: once raised, not sent again until it clears


@dataclass(frozen=True)
class Memory:
    """What the team has been told and is still true: checks in alarm, pages and failovers sent."""

    raised: frozenset[str] = frozenset()
    streaks: tuple[tuple[str, int], ...] = ()  # consecutive breached cycles per check
    told: frozenset[str] = frozenset()


def _value(reading: Reading) -> str:
    return f"{reading.value:g} {reading.unit}"


def notices(
    decision: WatchDecision,
    every: Sequence[Reading],
    memory: Memory,
    *,
    at: str,
    cycles_to_alarm: int,
    failover_command: str,
) -> tuple[list[Notice], Memory]:
    """The messages this cycle owes the team, and what to remember. A check is alarmed after
    `cycles_to_alarm` breached cycles in a row (one odd sample never pages anyone), once, and said clear
    once when it is back; a page or a failover is told once per episode."""
    streaks = dict(memory.streaks)
    out: list[Notice] = []
    raised = set(memory.raised)
    for reading in every:
        streaks[reading.check] = streaks.get(reading.check, 0) + 1 if reading.breached else 0
        limit = f"{reading.threshold:g} {reading.unit}"
        if reading.breached and streaks[reading.check] >= cycles_to_alarm and reading.check not in raised:
            did = (
                f"it holds ({decision.reason.split(';')[0]}) and keeps watching"
                if decision.action == "hold"
                else "it keeps watching; fixing this needs the command below"
            )
            fields: dict[str, object] = {
                "check": reading.check,
                "observed": _value(reading),
                "threshold": limit,
                "at": at,
            }
            out.append(
                Notice(
                    "team/alarm", {**fields, "action": did, "command": f"`{reading.command}`"}, reading.check
                )
            )
            raised.add(reading.check)
        elif not reading.breached and reading.check in raised:
            fields = {"check": reading.check, "observed": _value(reading), "threshold": limit, "at": at}
            out.append(Notice("team/alarm-cleared", fields, reading.check))
            raised.discard(reading.check)
    told = set(memory.told)
    if decision.action in ("page", "failover"):
        stuck = _STUCK_RUN.match(decision.reason)
        key = f"run {stuck.group(1)}" if stuck else f"writer database: {decision.action}"
        if key not in told:
            told.add(key)
            out.append(_episode_notice(decision, key, at, failover_command))
    else:
        # The outage is over: the next one pages again. A stuck run is paged once for good.
        told = {key for key in told if key.startswith("run ")}
    return out, Memory(frozenset(raised), tuple(sorted(streaks.items())), frozenset(told))


_STUCK_RUN = re.compile(r"^run (\S+) \(")
_COMMAND = re.compile(r"`([^`]+)`")


def _episode_notice(decision: WatchDecision, key: str, at: str, failover_command: str) -> Notice:
    if decision.action == "failover":
        return Notice(
            "team/watch-failover", {"message": decision.reason, "command": failover_command, "at": at}, key
        )
    commands = _COMMAND.findall(decision.reason)
    action = f"run `{commands[-1]}`" if commands else "look at the target"
    return Notice("team/watch-page", {"message": decision.reason, "action": action, "at": at}, key)
