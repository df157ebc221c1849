"""Self-managed PostgreSQL as a failover platform: SQL through the db driver, host work over SSH.

Fence: the service's role may not log in, its sessions are ended, and `default_transaction_read_only`
is set with ALTER SYSTEM (kept in postgresql.auto.conf, so a restart keeps it). When SQL does not
answer but the host does, the same fence is written into the data directory over SSH (`hostops.py`),
and the server is stopped. Promote: `pg_promote()`. Rebuild: over SSH, pg_rewind from the new writer,
or a fresh pg_basebackup when rewinding is impossible (the old data directory is kept aside).
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from recovery.drivers import db as db_driver
from recovery.drivers import remote
from recovery.errors import ExternalFailure, PreconditionFailed, RecoveryError, first_line
from recovery.failover.platform import FenceMeans, Promotion, Rebuild
from recovery.failover.state import DatabaseState
from recovery.restore.fence import service_role
from recovery.targets.model import Database, Host, Site

HOSTOPS = Path(__file__).with_name("hostops.py")
PROMOTE_WAIT_SECONDS = 60
_GENERATION = """
CREATE TABLE IF NOT EXISTS recovery_generation (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch integer NOT NULL,
    site text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
)
"""
_TERMINATE = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE usename = %s AND pid <> pg_backend_pid()
"""


def slot_name(site: Site) -> str:
    """The replication slot a writer keeps for the standby at `site` (named after that site)."""
    return f"{site.name}_slot"


# The functions pg_rewind calls on its source (PostgreSQL's documented grants for a non-superuser).
_REWIND_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)


def _streaming_login(conn: db_driver.Connection, writer: Database) -> tuple[str, str | None]:
    """The role and passfile a rebuilt standby streams with: those the writer streamed with while it was
    a standby itself (its primary_conninfo stays set after promotion; database hosts keep the passfile
    at the same path), else the toolkit's own role and passfile."""
    row = conn.execute("SELECT current_setting('primary_conninfo', true)").fetchone()
    login = conninfo_to_dict(str(row[0])) if row and row[0] else {}
    user = str(login.get("user") or writer.user)
    passfile = login.get("passfile") or (str(writer.passfile) if writer.passfile else None)
    return user, None if passfile is None else str(passfile)


def db_host(site: Site) -> Host:
    """The host the site's database runs on: the one at its address, else the site's first host."""
    return next((h for h in site.hosts if h.address == site.database.address), site.hosts[0])


class SelfManaged:
    """The self-managed platform of a target's two sites. The role it fences is the service's own, the
    owner of the orders database (restore/fence.py's rule), read from whichever site's database answers
    first (a standby has the same catalog), once."""

    def __init__(self, sites: tuple[Site, ...]) -> None:
        self._sites = sites
        self._role: str | None = None

    @property
    def service_role(self) -> str:
        if self._role is None:
            problems = []
            for site in self._sites:
                try:
                    self._role = service_role(site.database)
                    break
                except ExternalFailure as exc:
                    problems.append(f"{site.name}: {first_line(exc)}")
            else:
                raise ExternalFailure(
                    f"no database answers, so the service's role cannot be read ({'; '.join(problems)})"
                )
        return self._role

    # --- observe -------------------------------------------------------------------------------------

    def observe(self, site: Site, writer: Site | None) -> DatabaseState:
        try:
            with db_driver.connect(site.database, dbname="postgres", connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on',"
                    " to_regclass('recovery_generation') IS NOT NULL"
                ).fetchone()
                assert row is not None
                in_recovery, read_only, has_generation = bool(row[0]), bool(row[1]), bool(row[2])
                epoch = None
                if has_generation:
                    found = conn.execute("SELECT epoch FROM recovery_generation").fetchone()
                    epoch = int(found[0]) if found else None
                lag_bytes: int | None = None
                lag_seconds: float | None = None
                sessions: int | None = None
                if in_recovery:
                    lag_bytes, lag_seconds = self._lag(conn, site, writer)
                else:
                    sessions = self._service_sessions(conn)
        except RecoveryError as exc:
            return DatabaseState(reachable=False, problem=first_line(exc))
        return DatabaseState(
            reachable=True,
            in_recovery=in_recovery,
            read_only=in_recovery or read_only,
            epoch=epoch,
            lag_bytes=lag_bytes,
            lag_seconds=lag_seconds,
            service_sessions=sessions,
        )

    def _service_sessions(self, conn: db_driver.Connection) -> int | None:
        """Sessions of the service's role on this database (None when the role cannot be read: no
        database answers it, so a session count would mean nothing)."""
        try:
            role = self.service_role
        except RecoveryError:
            return None
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,)).fetchone()
        return int(row[0]) if row else None

    def _lag(
        self, conn: db_driver.Connection, site: Site, writer: Site | None
    ) -> tuple[int | None, float | None]:
        """Bytes and seconds the standby is behind: measured on the writer when it answers (its WAL
        position against the standby's replay; seconds from pg_stat_replication, 0 when idle), else
        what the standby itself received but has not replayed."""
        replay = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        replayed = str(replay[0]) if replay and replay[0] else None
        if writer is not None and writer.name != site.name and replayed is not None:
            try:
                with db_driver.connect(writer.database, dbname="postgres", connect_timeout=3) as w:
                    row = w.execute(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint,"
                        " (SELECT coalesce(extract(epoch FROM replay_lag), 0)::float8"
                        "  FROM pg_stat_replication WHERE application_name = %s LIMIT 1),"
                        " pg_is_in_recovery()",
                        (replayed, site.name),
                    ).fetchone()
                if row is not None and not row[2]:
                    seconds = 0.0 if int(row[0]) <= 0 else (float(row[1]) if row[1] is not None else None)
                    return max(int(row[0]), 0), seconds
            except RecoveryError:
                pass  # the writer does not answer: what the standby knows is all there is
        row = conn.execute(
            "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)"
            "::bigint,"
            " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
            " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8"
        ).fetchone()
        if row is None:
            return None, None
        return int(row[0]), None if row[1] is None else float(row[1])

    # --- fence ---------------------------------------------------------------------------------------

    def fence(self, site: Site) -> tuple[FenceMeans, ...]:
        try:
            return (self._fence_sql(site.database),)
        except RecoveryError as exc:
            over_sql = FenceMeans("database", False, f"SQL did not answer: {first_line(exc)}")
        return (over_sql, self._fence_over_ssh(site))

    def _fence_sql(self, database: Database) -> FenceMeans:
        with db_driver.connect(database, dbname="postgres", connect_timeout=3) as conn:
            conn.execute("SET default_transaction_read_only = off")  # our own session only
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(self.service_role)))
            conn.execute(_TERMINATE, (self.service_role,))
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            conn.execute("SELECT pg_reload_conf()")
        return self._confirm_sql(database)

    def _confirm_sql(self, database: Database) -> FenceMeans:
        """Read the fence back from a new session: read-only by default, the role locked out, none of
        its sessions left (a reload reaches sessions between statements: give it a moment)."""
        deadline = time.monotonic() + 5
        while True:
            with db_driver.connect(database, dbname="postgres", connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT current_setting('default_transaction_read_only') = 'on',"
                    " (SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = %s),"
                    " (SELECT count(*) FROM pg_stat_activity WHERE usename = %s)",
                    (self.service_role, self.service_role),
                ).fetchone()
            assert row is not None
            read_only, locked, sessions = bool(row[0]), bool(row[1]), int(row[2])
            if read_only and locked and sessions == 0:
                return FenceMeans(
                    "database",
                    True,
                    f"read-only by default, role {self.service_role} may not log in, no sessions",
                )
            if time.monotonic() > deadline:
                return FenceMeans(
                    "database",
                    False,
                    f"read-only={read_only}, role {self.service_role} locked={locked}, "
                    f"{sessions} sessions left",
                )
            time.sleep(0.1)

    def _fence_over_ssh(self, site: Site) -> FenceMeans:
        try:
            result = run_hostops(site, "fence", {"role": self.service_role})
        except RecoveryError as exc:
            return FenceMeans("data-dir", False, f"host did not answer: {first_line(exc)}")
        return FenceMeans("data-dir", True, str(result.get("detail", "fenced on disk")))

    # --- replay and promotion ------------------------------------------------------------------------

    def write_position(self, site: Site) -> str:
        with db_driver.connect(site.database, dbname="postgres") as conn:
            row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def replayed(self, site: Site, position: str) -> bool:
        with db_driver.connect(site.database, dbname="postgres") as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery() IS FALSE OR pg_last_wal_replay_lsn() >= %s::pg_lsn", (position,)
            ).fetchone()
        return bool(row and row[0])

    def promote(self, site: Site) -> Promotion:
        with db_driver.connect(site.database, dbname="postgres") as conn:
            already = not db_driver.in_recovery(conn)
            if not already:
                done = conn.execute("SELECT pg_promote(true, %s)", (PROMOTE_WAIT_SECONDS,)).fetchone()
                if not done or not done[0]:
                    raise ExternalFailure(
                        f"the {site.name} site's database did not finish promotion within "
                        f"{PROMOTE_WAIT_SECONDS} s; see its server log"
                    )
            lsn, timeline = wal_position(conn)
        return Promotion(already=already, lsn=lsn, timeline=timeline)

    def open_for_writes(self, site: Site, epoch: int) -> None:
        with db_driver.connect(site.database, dbname="postgres") as conn:
            record_generation(conn, site, epoch)
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(self.service_role)))

    # --- rebuild -------------------------------------------------------------------------------------

    def rebuild_as_standby(self, site: Site, source: Site, run_id: str) -> Rebuild:
        slot = slot_name(site)
        src = source.database
        with db_driver.connect(src, dbname="postgres") as conn:
            # pg_rewind reads the source's timeline from its control file: a checkpoint writes the new one.
            conn.execute("CHECKPOINT")
            if (
                conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
                is None
            ):
                conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
            user, passfile = _streaming_login(conn, src)
            if user != src.user:
                for function in _REWIND_FUNCTIONS:  # what pg_rewind reads, for a role that is no superuser
                    conn.execute(
                        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                            sql.SQL(function), sql.Identifier(user)
                        )
                    )
        params: dict[str, Any] = {
            "host": src.address,
            "port": src.port,
            "user": user,
            "dbname": "postgres",
            "application_name": site.name,
        }
        if passfile:
            params["passfile"] = passfile
        result = run_hostops(
            site,
            "rebuild",
            {"source": make_conninfo(**params), "slot": slot, "run_id": run_id},
            timeout=900,
        )
        return Rebuild(
            method=result["method"], detail=str(result.get("detail", "")), set_aside=result.get("set_aside")
        )


def wal_position(conn: db_driver.Connection) -> tuple[str, int]:
    """A writer's current WAL position and timeline. The timeline is the first 8 hex digits of the current
    WAL file's name (the control file's checkpoint still names the old one until the first checkpoint
    after promotion)."""
    row = conn.execute(
        "SELECT pg_current_wal_lsn()::text,"
        " ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def record_generation(conn: db_driver.Connection, site: Site, epoch: int) -> None:
    """The site's generation in its database. The session is made writable first (a fenced database is
    read-only by default), and stays so for what the caller does next on it."""
    conn.execute("SET default_transaction_read_only = off")
    conn.execute(_GENERATION)
    conn.execute(
        "INSERT INTO recovery_generation (epoch, site) VALUES (%s, %s)"
        " ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, site = excluded.site, at = now()",
        (epoch, site.name),
    )


def run_hostops(site: Site, action: str, args: dict[str, Any], *, timeout: float = 120) -> dict[str, Any]:
    """Run `hostops.py ACTION` on the site's database host over SSH; its last stdout line is JSON."""
    database = site.database
    if database.data_dir is None or database.bin_dir is None:
        raise PreconditionFailed(
            f"the {site.name} site's database has no data_dir or bin_dir in the target; the host "
            "cannot be reached for this"
        )
    host = db_host(site)
    payload = {**args, "data_dir": str(database.data_dir), "bin_dir": str(database.bin_dir)}
    script = base64.b64encode(HOSTOPS.read_bytes()).decode()
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    # The script travels inside the command (no file on the host to race for or leave behind).
    command = f'{shlex.quote(host.python)} -c "$(echo {script} | base64 -d)" {action} {encoded}'
    result = remote.run(host, command, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not result.ok or not lines:
        why = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExternalFailure(f"{action} on host {host.name} failed (exit {result.rc}): {why}")
    try:
        answer: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise ExternalFailure(f"{action} on host {host.name} answered no result: {lines[-1][:120]}") from None
    return answer
