"""The watch's probes: each looks at one thing once and returns what it saw. A failure is a result
(ok False and the problem in one line), never an exception: the watch must outlive the outage it reports.

- `probe_http`: GET /health through the front door or of one site's service: answered, healthy, latency.
- `probe_database`: one site's database: up, role, its WAL position (current on a primary, replayed on a
  standby) and, on a primary, whether its archiver is failing.
- `probe_spool`: the WAL spool on the primary's host (over SSH): files waiting and the oldest one's age.
- `replication_lag`: bytes and seconds a standby is behind, from positions the watch saw. Pure.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from recovery.backup.realtime import database_host, spool_dir
from recovery.backup.wal import is_wal_file_name
from recovery.drivers import db, remote
from recovery.errors import RecoveryError
from recovery.targets.model import Database, SiteName, Target

PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class HttpProbe:
    probe: Literal["front-door", "service"]
    site: SiteName
    url: str
    ok: bool
    latency_ms: float
    problem: str | None = None


@dataclass(frozen=True)
class DatabaseProbe:
    site: SiteName
    ok: bool
    role: Literal["primary", "standby"] | None = None
    lsn: int | None = None  # pg_current_wal_lsn() on a primary, pg_last_wal_replay_lsn() on a standby
    archiver_failing: bool = False  # the primary's last archive attempt failed after its last success
    archiver_problem: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class SpoolProbe:
    ok: bool
    files: int = 0
    oldest_age_seconds: float = 0.0
    problem: str | None = None


def parse_lsn(text: str) -> int:
    """A PostgreSQL LSN ("16/B374D848") as a byte position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def probe_http(probe: Literal["front-door", "service"], site: SiteName, base_url: str) -> HttpProbe:
    url = base_url.rstrip("/") + "/health"
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_SECONDS) as response:  # noqa: S310
            body = json.loads(response.read() or b"{}")
            status = int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return HttpProbe(probe, site, url, False, _ms(started), f"{url} answered HTTP {error.code}")
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return HttpProbe(probe, site, url, False, _ms(started), f"{url} did not answer ({reason})")
    healthy = status == 200 and isinstance(body, dict) and body.get("status", "ok") == "ok"
    problem = None if healthy else f"{url} answered {status} but is not healthy"
    return HttpProbe(probe, site, url, healthy, _ms(started), problem)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def probe_database(site: SiteName, database: Database) -> DatabaseProbe:
    try:
        with db.connect(database, dbname="postgres", connect_timeout=int(PROBE_TIMEOUT_SECONDS)) as conn:
            conn.execute(f"SET statement_timeout = {int(PROBE_TIMEOUT_SECONDS * 1000)}")
            standby = db.in_recovery(conn)
            if standby:
                row = conn.execute("SELECT pg_last_wal_replay_lsn()").fetchone()
                lsn = parse_lsn(str(row[0])) if row and row[0] else None
                return DatabaseProbe(site, True, "standby", lsn)
            row = conn.execute(
                "SELECT pg_current_wal_lsn(), current_setting('archive_mode'), last_failed_wal,"
                " coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)"
                " FROM pg_stat_archiver"
            ).fetchone()
    except RecoveryError as error:
        return DatabaseProbe(site, False, problem=error.message)
    except Exception as error:  # a server dying mid-query: report it, never stop the watch
        return DatabaseProbe(site, False, problem=f"{type(error).__name__}: {error}".splitlines()[0])
    assert row is not None
    failing = bool(row[3]) or str(row[1]) == "off"
    why = None
    if str(row[1]) == "off":
        why = "archive_mode is off"
    elif failing:
        why = f"archiving {row[2]} failed"
    return DatabaseProbe(site, True, "primary", parse_lsn(str(row[0])), failing, why)


def probe_spool(target: Target, now: datetime | None = None) -> SpoolProbe:
    host = database_host(target)
    try:
        spool = spool_dir(target.writable.database)
        with remote.sftp(host) as sftp:
            listing = sftp.listdir_attr(str(spool))
    except RecoveryError as error:
        return SpoolProbe(False, problem=f"cannot list the WAL spool on {host.name}: {error.message}")
    except Exception as error:  # paramiko raises its own types when the host goes away mid-call
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        return SpoolProbe(False, problem=f"cannot list the WAL spool on {host.name}: {reason}")
    moment = (now or datetime.now(UTC)).timestamp()
    times = [entry.st_mtime or moment for entry in listing if is_wal_file_name(entry.filename)]
    oldest = max((moment - t for t in times), default=0.0)
    return SpoolProbe(True, len(times), max(oldest, 0.0))


@dataclass(frozen=True)
class Position:
    """The primary's WAL position at one moment, as the watch saw it."""

    at: float  # seconds (the watch's clock)
    lsn: int


def replication_lag(seen: Sequence[Position], replayed: int, now: float) -> tuple[int, float]:
    """(bytes, seconds) a standby that replayed up to `replayed` is behind. Pure.

    Bytes: the primary's newest position minus the replayed one. Seconds: how long ago the primary was
    first seen at a position the standby has not replayed yet; 0 when it replayed everything. An idle
    primary writes nothing, so the standby catches up and both stay 0 (RDS's ReplicaLag, by contrast,
    grows while the primary is idle); a timestamp of the last replayed transaction would read as minutes
    of lag after a quiet spell.
    """
    if not seen:
        return 0, 0.0
    behind = max(seen[-1].lsn - replayed, 0)
    if behind == 0:
        return 0, 0.0
    first_unreplayed = next(position.at for position in seen if position.lsn > replayed)
    return behind, max(now - first_unreplayed, 0.0)
