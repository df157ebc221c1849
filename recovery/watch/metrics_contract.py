"""The metrics the watch publishes and the Pulumi stacks alarm on: one contract, imported by both.

This module is plain constants and pure helpers with no imports from the rest of the toolkit, so the Pulumi
program (infra/) can import it without pulling in the runbooks. A name changed here changes the watch's
`PutMetricData` and the stacks' CloudWatch alarms together; the infra tests check that every alarm on this
namespace uses a metric, dimensions and unit declared here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NAMESPACE = "OrderRecovery"

# Dimension names. Every metric carries Site (primary or standby: where the measured thing lives).
SITE = "Site"
DOMAIN = "Domain"  # a backup domain: orders, transactions, catalog, ...
KIND = "Kind"  # a backup kind: realtime or daily
PROBE = "Probe"  # what a probe checked: front-door, service, database

BackupKind = Literal["realtime", "daily"]
BACKUP_KINDS: tuple[BackupKind, ...] = ("realtime", "daily")

# CloudWatch unit names (the `Unit` of PutMetricData); an alarm's `unit` must match what is published.
SECONDS = "Seconds"
BYTES = "Bytes"
COUNT = "Count"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    dimensions: tuple[str, ...]
    meaning: str


# Age of the newest verified backup of one domain and kind at one site (both copies verified): now - the
# time its data reaches. A realtime backup reaches as far as the WAL shipped after it, while the archiver
# works and the spool keeps being shipped: it stays near 0 on an idle primary and grows once shipping stops.
BACKUP_AGE = Metric(
    "BackupAgeSeconds",
    SECONDS,
    (SITE, DOMAIN, KIND),
    "seconds since the time the newest verified backup of this domain and kind reaches",
)
# The oldest backup age over every domain of a kind: what the stacks alarm on, so a new domain needs no new
# alarm. Published by the watch next to the per-domain figures.
BACKUP_AGE_OLDEST_DOMAIN = Metric(
    "BackupAgeSecondsOldestDomain",
    SECONDS,
    (SITE, KIND),
    "the largest BackupAgeSeconds over every domain of this kind",
)
# Age of the oldest WAL segment still waiting in the primary's spool (0 when the spool is empty).
WAL_SPOOL_AGE = Metric(
    "WalSpoolOldestAgeSeconds",
    SECONDS,
    (SITE,),
    "seconds since the oldest unshipped WAL segment in the spool was written (0 when empty)",
)
# Replication lag measured by the watch, not RDS's ReplicaLag: bytes are pg_current_wal_lsn() on the
# primary minus pg_last_wal_replay_lsn() on the standby; seconds are how long ago the watch first saw the
# primary at a position the standby has not replayed yet (0 once it has replayed everything). Both stay at
# 0 when the primary is idle, where a last-replayed-transaction timestamp would read as minutes of lag.
REPLICATION_LAG_BYTES = Metric(
    "ReplicationLagBytes",
    BYTES,
    (SITE,),
    "WAL bytes written on the primary and not yet replayed on this standby",
)
REPLICATION_LAG_SECONDS = Metric(
    "ReplicationLagSeconds",
    SECONDS,
    (SITE,),
    "seconds since the primary was first seen at a WAL position this standby has not replayed",
)
# A probe that failed in a cycle counts 1, one that passed counts 0: Sum over a period is the failures.
PROBE_FAILURES = Metric(
    "ProbeFailures",
    COUNT,
    (SITE, PROBE),
    "1 for each failed probe of this kind in a cycle, 0 for a passed one",
)

METRICS: tuple[Metric, ...] = (
    BACKUP_AGE,
    BACKUP_AGE_OLDEST_DOMAIN,
    WAL_SPOOL_AGE,
    REPLICATION_LAG_BYTES,
    REPLICATION_LAG_SECONDS,
    PROBE_FAILURES,
)
PROBES = ("front-door", "service", "database")

# How often the watch publishes, at most. Alarms use periods of at least this, and treat a period with no
# data point as breaching only when the watch should have published in it (see docs/deploy.md).
PUBLISH_INTERVAL_SECONDS = 60


def metric(name: str) -> Metric:
    """The declared metric of that name; KeyError names the ones that exist."""
    for candidate in METRICS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"{name} is not in the metrics contract ({', '.join(m.name for m in METRICS)})")
