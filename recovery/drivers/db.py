"""PostgreSQL driver: the one place that connects to PostgreSQL, runs its pg_* tools and answers the
catalog questions (does a database exist, its schema version, the server's role and lag).

Passwords live only in the pgpass file a Database names; they never appear in a conninfo, a log line or
an exception message: a connection string that carries one is refused.

The autocommit contract, the same for every connection: autocommit is on unless the caller asks for a
transaction (`autocommit=False`: a held snapshot, writes that commit together, as in dumps, catch-up and
carry-over). Catalog questions and CREATE/DROP DATABASE need it on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from recovery.errors import EnvironmentProblem, ExternalFailure, UsageError
from recovery.targets.model import Database

APPLICATION_NAME = "order-recovery"
SYSTEM_PG_ROOT = Path("/usr/lib/postgresql")
# Environment for every pg_* child: untranslated messages (the first line is quoted in our errors) and
# never a prompt for a password (a missing pgpass entry must fail, not hang).
_TOOL_ENV: Mapping[str, str] = {"LC_MESSAGES": "C", "PGCONNECT_TIMEOUT": "10"}
_CONNINFO_TIMEOUT = 10  # seconds, for connections given as a conninfo string

Connection = psycopg.Connection[Any]


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


def refuse_password(conninfo: str) -> None:
    """Refuse a connection string that carries a password: passwords live only in the pgpass file."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        raise UsageError("the PostgreSQL connection string is malformed; give key=value pairs") from None
    if params.get("password"):
        raise UsageError(
            "the PostgreSQL connection string contains a password; put it in a pgpass file and name "
            "that file with passfile=... instead"
        )


def connect(
    where: Database | str,
    *,
    autocommit: bool = True,
    dbname: str | None = None,
    user: str | None = None,
    connect_timeout: int | None = None,
    what: str | None = None,
) -> Connection:
    """Open a psycopg connection to a Database (optionally another `dbname`/`user` on it) or to a conninfo
    string. A failure becomes one ExternalFailure line naming `what` (default: the endpoint), never the
    secret."""
    if isinstance(where, Database):
        timeout = connect_timeout or 5
        target = conninfo(where, dbname=dbname, user=user, connect_timeout=timeout)
        what = what or f"PostgreSQL at {where.address}:{where.port} as {user or where.user}"
    else:
        refuse_password(where)
        timeout = connect_timeout or _CONNINFO_TIMEOUT
        target = where
        what = what or "PostgreSQL"
    try:
        return psycopg.connect(target, autocommit=autocommit, connect_timeout=timeout)
    except psycopg.OperationalError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ExternalFailure(
            f"cannot connect to {what}: {lines[-1] if lines else type(exc).__name__}; check that the "
            "server runs and the pgpass file holds the role's password"
        ) from None


# --- pg_* tools ---------------------------------------------------------------------------------------


def tool_env(db: Database | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a pg_* child: ours plus the database's pgpass file (PGPASSFILE) and `extra`."""
    env = dict(os.environ)
    env.update(_TOOL_ENV)
    if db is not None and db.passfile is not None:
        env["PGPASSFILE"] = str(db.passfile)
    env.update(extra or {})
    return env


def tool_path(bin_dir: Path, name: str) -> Path:
    """The pg_* tool `name` in `bin_dir` (which must match the server's major version)."""
    tool = bin_dir / name
    if not tool.is_file() or not os.access(tool, os.X_OK):
        raise EnvironmentProblem(
            f"{name} not found in {bin_dir}; give the bin directory of the server's PostgreSQL version"
        )
    return tool


def first_error_line(stderr: IO[bytes], *, fallback: str) -> str:
    """The first meaningful line a pg_* tool wrote to stderr (its error), or `fallback` when silent."""
    stderr.seek(0)
    text = stderr.read(64 * 1024).decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line or "FATAL:" in line or "ERROR:" in line]
    chosen = (errors or lines or [fallback])[0]
    return chosen if len(chosen) <= 300 else chosen[:297] + "..."


def server_major(db: Database) -> int:
    with connect(db, dbname="postgres", autocommit=True) as conn:
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


def pg_bin(db: Database) -> Path:
    """The bin directory of the server's pg_* tools."""
    return pg_tool(db, "pg_dump").parent


# --- catalog questions --------------------------------------------------------------------------------


def database_exists(conn: Connection, name: str) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return bool(row and row[0])


def databases_with_prefix(conn: Connection, prefix: str) -> list[str]:
    """Names of the databases starting with `prefix`, sorted."""
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,)
    ).fetchall()
    return [str(row[0]) for row in rows]


def database_owner(conn: Connection, name: str) -> str | None:
    row = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    return None if row is None else str(row[0])


def schema_version(conn: Connection) -> int | None:
    """max(schema_migrations.version) of the connected database; None without that table or rows."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return None if version is None or version[0] is None else int(version[0])


@dataclass(frozen=True)
class ForeignKeyInfo:
    """One foreign key of a schema: `table` (`columns`) references `referenced` (`referenced_columns`)."""

    name: str
    table: str
    columns: tuple[str, ...]
    referenced: str
    referenced_columns: tuple[str, ...]


def foreign_keys(conn: Connection, schema: str = "public") -> list[ForeignKeyInfo]:
    """Every foreign key between tables of `schema`, columns in key order, sorted by name."""
    rows = conn.execute(
        "SELECT c.conname, r.relname, f.relname,"
        " ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
        "   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),"
        " ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
        "   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)"
        " FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_class f ON f.oid = c.confrelid"
        " WHERE c.contype = 'f' AND c.connamespace = %s::regnamespace"
        " AND f.relnamespace = %s::regnamespace ORDER BY c.conname",
        (schema, schema),
    ).fetchall()
    return [
        ForeignKeyInfo(str(row[0]), str(row[1]), tuple(row[3]), str(row[2]), tuple(row[4])) for row in rows
    ]


def timestamp_columns(conn: Connection, table: str, schema: str = "public") -> list[str]:
    """The `timestamp with time zone` columns of `table`, in table order."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
        " AND NOT attisdropped AND atttypid = 'timestamptz'::regtype ORDER BY attnum",
        (f"{schema}.{table}",),
    ).fetchall()
    return [str(row[0]) for row in rows]


def in_recovery(conn: Connection) -> bool:
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def promoted(where: str, *, connect_timeout: int = 5) -> bool | None:
    """Whether the server at conninfo `where` has left recovery; None when it does not answer.

    A server still starting refuses the connection; one that stops (a recovery that ended before its
    target shuts the server down) may do so between the connect and the question, which then fails with
    "server closed the connection unexpectedly". Both are "no answer": the caller tells them apart by
    the process and its log.
    """
    try:
        with connect(where, autocommit=True, connect_timeout=connect_timeout) as conn:
            return not in_recovery(conn)
    except (ExternalFailure, psycopg.OperationalError):
        return None


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
    with connect(db, dbname="postgres", autocommit=True) as conn:
        if in_recovery(conn):
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
    with connect(primary, dbname="postgres", autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target_lsn = str(row[0])
    with connect(standby, dbname="postgres", autocommit=True) as conn:
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
