"""The database platform behind the failover runbooks: one small interface, one implementation per kind
of database (self-managed PostgreSQL over SQL and SSH: selfmanaged.py; RDS through its API: rds.py).

The runbooks call these operations and nothing else on a database, so the same steps (observe, fence,
wait for replay, promote, open for writes, rebuild as a standby) run against either kind. Every
operation is idempotent: a resumed run calls it again after an interruption.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol

from recovery.errors import RecoveryError
from recovery.failover.state import DatabaseState
from recovery.targets.model import Site


@dataclass(frozen=True)
class FenceMeans:
    """One way of keeping a site from taking writes, and whether it was confirmed (one line why not)."""

    means: str  # e.g. "database", "service", "data-dir"
    confirmed: bool
    detail: str


@dataclass(frozen=True)
class Promotion:
    already: bool  # the database was not in recovery any more (a rerun after an interruption)
    lsn: str  # the new writer's WAL position right after promotion (the start of its new timeline)
    timeline: int


@dataclass(frozen=True)
class Rebuild:
    # "none": it already streams from the writer; "replica": RDS made a new replica under the old name
    method: Literal["rewind", "base-backup", "replica", "none"]
    detail: str
    set_aside: str | None = None  # where a replaced data directory (or RDS instance) was moved


class DatabasePlatform(Protocol):
    """What the runbooks may do to a site's database."""

    @property
    def service_role(self) -> str:
        """The database role the order service logs in as (what a fence keeps out)."""
        ...

    def observe(self, site: Site, writer: Site | None) -> DatabaseState:
        """The site's database as probed now; `writer` (when known and not `site`) gives its lag."""
        ...

    def fence(self, site: Site) -> tuple[FenceMeans, ...]:
        """Make the database refuse the service's writes, by every means the platform has; each means
        says whether it was confirmed. Must survive a restart of the database."""
        ...

    def write_position(self, site: Site) -> str:
        """The writer's current WAL position (after a fence: the last thing it will ever have written)."""
        ...

    def replayed(self, site: Site, position: str) -> bool:
        """Whether the standby `site` has replayed up to `position`."""
        ...

    def promote(self, site: Site) -> Promotion:
        """Make the standby `site` a writer (waits until it is)."""
        ...

    def open_for_writes(self, site: Site, epoch: int) -> None:
        """Lift every fence on the promoted `site` and record its generation in the database."""
        ...

    def rebuild_as_standby(self, site: Site, source: Site, run_id: str) -> Rebuild:
        """Turn the old writer `site` into a streaming standby of `source` (rewind, else a fresh copy)."""
        ...


def wait_replayed(
    platform: DatabasePlatform, site: Site, position: str, *, timeout: float, poll: float = 0.02
) -> float | None:
    """Wait until the standby `site` has replayed up to `position`; the seconds waited, or None when
    `timeout` passed first. A database that does not answer yet (starting) is waited for too."""
    started = time.monotonic()
    while True:
        try:
            if platform.replayed(site, position):
                return time.monotonic() - started
        except RecoveryError:
            pass  # not accepting connections yet
        if time.monotonic() - started > timeout:
            return None
        time.sleep(poll)
