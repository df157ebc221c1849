"""What the failover decisions look at: a frozen snapshot of both sites, taken once by `observe`.

The snapshot names sites by their role in the target (`primary`, `standby`: where they were built), while
`writer` says which site holds the writable database now: after a failover the standby site is the writer
until a failback and a switchover return it. The generation number (`epoch`) is bumped by every
promotion; a site whose database carries an older epoch than the authoritative one is a returning old
primary and must never take writes or traffic until it is rebuilt as a standby.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SiteName = Literal["primary", "standby"]


def other(site: SiteName) -> SiteName:
    return "standby" if site == "primary" else "primary"


@dataclass(frozen=True)
class DatabaseState:
    """One site's database as probed. Fields other than `reachable` and `problem` are None when it is not."""

    reachable: bool
    problem: str | None = None  # why it is not reachable, one line (e.g. "connection refused")
    in_recovery: bool | None = None  # True on a standby (pg_is_in_recovery)
    read_only: bool | None = None  # True when fenced (default_transaction_read_only) or in recovery
    epoch: int | None = None
    # Standby only: how far its replay is behind the writer, in bytes and in seconds. Seconds are
    # measured from the writer's side (the age of the oldest commit not yet replayed), so an idle writer
    # reads 0 s rather than the time since its last commit.
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    # A writer (not in recovery) only: sessions of the order service's role on it; None when not read.
    service_sessions: int | None = None

    @property
    def writable(self) -> bool:
        return self.reachable and self.in_recovery is False and self.read_only is False


@dataclass(frozen=True)
class ServiceState:
    answering: bool
    healthy: bool = False
    problem: str | None = None


@dataclass(frozen=True)
class SiteState:
    name: SiteName
    database: DatabaseState
    service: ServiceState
    reachable_over_ssh: bool | None = None  # None when the target gives no host to reach

    @property
    def down(self) -> bool:
        """Neither the database nor the service answers: the site is lost, as far as we can see."""
        return not self.database.reachable and not self.service.answering


@dataclass(frozen=True)
class ClusterState:
    """Both sites, the traffic switch and the authoritative generation, observed at one moment."""

    writer: SiteName  # the site the authoritative epoch record names as holding the writable database
    epoch: int
    sites: tuple[SiteState, SiteState]
    traffic_to: SiteName | None  # where the PRIMARY failover record points; None if it matches neither

    def site(self, name: SiteName) -> SiteState:
        return next(site for site in self.sites if site.name == name)
