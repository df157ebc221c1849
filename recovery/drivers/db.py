"""PostgreSQL driver: connection strings with a passfile, psycopg 3 connections, pg_* tools of the
server's major version, and replication status.

Passwords live only in the pgpass file a Database names; they never appear in a conninfo, a log line or
an exception message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg.conninfo import make_conninfo

from recovery.errors import EnvironmentProblem, ExternalFailure
from recovery.targets.model import Database

APPLICATION_NAME = "order-recovery"
SYSTEM_PG_ROOT = Path("/usr/lib/postgresql")


def conninfo(
    db: Database, *, dbname: str | None = None, user: str | None = None, connect_timeout: int = 5
) -> str:
    """A libpq connection string for `db` (the password comes from its passfile, never from here)."""
    params: dict[str, str | int] = {
        "host": db.address,
        "port": db.port,
        "dbname": dbname or db.name,
        "user": user or db.user,
        "connect_timeout": connect_timeout,
        "application_name": APPLICATION_NAME,
    }
    if db.passfile is not None:
        params["passfile"] = str(db.passfile)
    return make_conninfo(**params)  # type: ignore[arg-type]


def connect(
    db: Database,
    *,
    dbname: str | None = None,
    user: str | None = None,
    autocommit: bool = True,
    connect_timeout: int = 5,
) -> psycopg.Connection[tuple[object, ...]]:
    """Open a psycopg connection; a failure becomes ExternalFailure naming the endpoint, not the secret."""
    who = user or db.user
    try:
        return psycopg.connect(
            conninfo(db, dbname=dbname, user=user, connect_timeout=connect_timeout), autocommit=autocommit
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ExternalFailure(
            f"cannot connect to PostgreSQL at {db.address}:{db.port} as {who}: {first}; "
            "check that the server runs and the passfile holds the role's password"
        ) from None


def server_major(db: Database) -> int:
    with connect(db, dbname="postgres") as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None  # SHOW always returns one row
    return int(str(row[0])) // 10000


def pg_tool(db: Database, name: str) -> Path:
    """The path of pg_* tool `name` of the server's major version (a newer dump is unreadable by an older
    pg_restore, so the tools must match the server)."""
    if db.bin_dir is not None:
        tool = db.bin_dir / name
        if tool.is_file():
            return tool
        raise EnvironmentProblem(f"{name} is missing from {db.bin_dir}; install the PostgreSQL client tools")
    major = server_major(db)
    tool = SYSTEM_PG_ROOT / str(major) / "bin" / name
    if tool.is_file():
        return tool
    raise EnvironmentProblem(
        f"{name} for PostgreSQL {major} not found under {tool.parent}; install postgresql-client-{major} "
        "or set the database's bin_dir"
    )


@dataclass(frozen=True)
class ReplicaLag:
    """One standby as the primary sees it (pg_stat_replication)."""

    application_name: str
    client_address: str | None
    state: str
    lag_bytes: int
    lag_seconds: float


@dataclass(frozen=True)
class ReplicationStatus:
    role: Literal["primary", "standby"]
    wal_lsn: str
    replicas: tuple[ReplicaLag, ...] = ()
    receiving: bool = False
    replay_delay_seconds: float | None = None


def replication_status(db: Database) -> ReplicationStatus:
    """Observe `db`: its role and, for a primary, the lag of every attached standby."""
    with connect(db, dbname="postgres") as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        in_recovery = bool(row and row[0])
        if in_recovery:
            row = conn.execute(
                "SELECT pg_last_wal_replay_lsn()::text,"
                " (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') > 0,"
                " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
                " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
            ).fetchone()
            assert row is not None
            return ReplicationStatus(
                role="standby",
                wal_lsn=str(row[0]),
                receiving=bool(row[1]),
                replay_delay_seconds=float(str(row[2])) if row[2] is not None else None,
            )
        rows = conn.execute(
            "SELECT application_name, client_addr::text, state,"
            " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint,"
            " coalesce(extract(epoch FROM replay_lag), 0)::float8"
            " FROM pg_stat_replication ORDER BY application_name"
        ).fetchall()
        lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert lsn is not None
    replicas = tuple(
        ReplicaLag(
            str(r[0]), None if r[1] is None else str(r[1]), str(r[2]), int(str(r[3])), float(str(r[4]))
        )
        for r in rows
    )
    return ReplicationStatus(role="primary", wal_lsn=str(lsn[0]), replicas=replicas)


def lsn_caught_up(primary: Database, standby: Database) -> bool:
    """True when the standby has replayed everything the primary had written when asked."""
    with connect(primary, dbname="postgres") as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target_lsn = str(row[0])
    with connect(standby, dbname="postgres") as conn:
        done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target_lsn,)).fetchone()
    return bool(done and done[0])


def wait_caught_up(primary: Database, standby: Database, *, timeout: float = 30) -> float:
    """Wait until the standby replays up to the primary's current position; return the seconds waited."""
    started = time.monotonic()
    while not lsn_caught_up(primary, standby):
        if time.monotonic() - started > timeout:
            raise ExternalFailure(
                f"standby {standby.address}:{standby.port} did not catch up within {timeout:.0f} s; "
                "check replication (recovery lab status)"
            )
        time.sleep(0.05)
    return time.monotonic() - started
