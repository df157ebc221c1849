"""The lab's PostgreSQL: a primary and a streaming standby, run by the lab user from `pg_bin`.

The primary is made with initdb (scram passwords for TCP, peer on the lab's own socket directory), the
standby with `pg_basebackup -R -X stream -c fast` over a replication slot; both then get their own
address and port. Passwords reach the server only through a temporary pwfile and SQL over TCP; they
are stored only in pgpass files, each holding what its reader needs: the controller's (superuser,
service and replication roles; the controller's own, mode 0600, never the lab user's), each service
host's (the service's role) and each database host's replication passfile (the replication role, which
the standby streams as; the lab user's servers read it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from psycopg import sql

from recovery.drivers import db
from recovery.errors import EnvironmentProblem
from recovery.lab import render
from recovery.lab.plan import DB_NAME, DB_OWNER, DB_REPLICATOR, DB_SUPERUSER, LabPlan, SitePlan
from recovery.lab.processes import LabUser, give_to, run_as, start_ticks, stop_pid, wait_gone
from recovery.lab.state import ProcessRecord
from recovery.targets.model import Database

SETTINGS_FILE = "lab.conf"
STANDBY_SLOT = "standby_slot"


def database(plan: LabPlan, site: SitePlan, pg_bin: Path) -> Database:
    return Database(
        address=site.address,
        port=site.pg_port,
        name=DB_NAME,
        user=DB_SUPERUSER,
        passfile=plan.pgpass,
        bin_dir=pg_bin,
        data_dir=site.pg_data,
    )


def _prepare_dirs(user: LabUser, site: SitePlan) -> None:
    for path in (site.pg_dir, site.pg_socket_dir):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        give_to(user, path)


def _write_settings(user: LabUser, site: SitePlan) -> None:
    settings = site.pg_data / SETTINGS_FILE
    settings.write_text(render.postgres_settings(site))
    give_to(user, settings)
    conf = site.pg_data / "postgresql.conf"
    include = f"include_if_exists = '{SETTINGS_FILE}'"
    if include not in conf.read_text():
        with conf.open("a") as out:
            out.write(f"\n# the lab's settings (address, port, replication)\n{include}\n")


def init_primary(user: LabUser, plan: LabPlan, pg_bin: Path, superuser_password: str) -> None:
    """initdb the primary's data dir (skipped when it exists)."""
    site = plan.primary
    _prepare_dirs(user, site)
    if (site.pg_data / "PG_VERSION").is_file():
        return
    pwfile = site.pg_dir / ".initdb-pw"
    pwfile.touch(mode=0o600)
    try:
        pwfile.write_text(superuser_password + "\n")
        give_to(user, pwfile)
        run_as(
            user,
            [
                str(pg_bin / "initdb"),
                "-D",
                str(site.pg_data),
                "-U",
                DB_SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=site.pg_dir,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    _write_settings(user, site)
    hba = site.pg_data / "pg_hba.conf"
    hba.write_text(render.pg_hba())
    give_to(user, hba)


def start(
    user: LabUser, plan: LabPlan, site: SitePlan, pg_bin: Path, on_started: Callable[[ProcessRecord], None]
) -> None:
    """Start the server of `site` (pg_ctl waits until it accepts connections).

    The postmaster is recorded through `on_started` even when pg_ctl gives up waiting, so a failed
    `up` can still stop it.
    """
    try:
        run_as(
            user,
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(site.pg_data),
                "-l",
                str(site.pg_log),
                "-w",
                "-t",
                "60",
                "start",
            ],
            cwd=site.pg_dir,
            # A standby's walreceiver streams with the replication role's passfile (also named in its
            # primary_conninfo); never the controller's.
            env={"PGPASSFILE": str(site.replication_pgpass)},
            timeout=90,
        )
    finally:
        pid = postmaster_pid(site.pg_data)
        if pid is not None and _is_postmaster_of(pid, site.pg_data):
            on_started(
                ProcessRecord(
                    name=f"postgres-{site.site}",
                    kind="postgres",
                    pid=pid,
                    start_ticks=start_ticks(pid),
                    pidfile=site.pg_data / "postmaster.pid",
                    data_dir=site.pg_data,
                )
            )
    if pid is None:
        raise EnvironmentProblem(
            f"PostgreSQL ({site.site}) started but left no postmaster.pid; see {site.pg_log}"
        )


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """True when `pid` is a postgres serving `data_dir` (a stale pidfile may name an unrelated process)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"postgres") and str(data_dir).encode() in argv


def running_postmaster(data_dir: Path) -> int | None:
    """The pid of the postmaster serving `data_dir` now (a restart, e.g. for WAL archiving, changes it)."""
    pid = postmaster_pid(data_dir)
    return pid if pid is not None and _is_postmaster_of(pid, data_dir) else None


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.strip().isdigit() else None


def create_roles(plan: LabPlan, pg_bin: Path, passwords: dict[str, str]) -> None:
    """Role `orders` and database `orders` owned by it, and the replication role (REPLICATION, not a
    superuser) the standby streams as (idempotent), over TCP as postgres.

    The server gets a SCRAM verifier, never the password: not even a failed statement in the server log
    can reveal it.
    """
    primary = database(plan, plan.primary, pg_bin)
    with db.connect(primary, dbname="postgres") as conn:
        for role, attributes in ((DB_OWNER, "LOGIN"), (DB_REPLICATOR, "LOGIN REPLICATION NOSUPERUSER")):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
            conn.execute(
                sql.SQL("{} ROLE {} {} PASSWORD {}").format(
                    verb,
                    sql.Identifier(role),
                    sql.SQL(attributes),
                    sql.Literal(render.scram_verifier(passwords[role])),
                )
            )
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DB_NAME), sql.Identifier(DB_OWNER)
                )
            )
        slot = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (STANDBY_SLOT,))
        if slot.fetchone() is None:
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (STANDBY_SLOT,))


def make_standby(user: LabUser, plan: LabPlan, pg_bin: Path) -> None:
    """pg_basebackup the primary into the standby's data dir as the replication role (skipped when it
    exists), then point its primary_conninfo at the primary with that role."""
    site = plan.standby
    _prepare_dirs(user, site)
    if not (site.pg_data / "PG_VERSION").is_file():
        _base_backup(user, plan, pg_bin)
    set_primary_conninfo(user, plan)


def _base_backup(user: LabUser, plan: LabPlan, pg_bin: Path) -> None:
    site = plan.standby
    run_as(
        user,
        [
            str(pg_bin / "pg_basebackup"),
            "-h",
            plan.primary.address,
            "-p",
            str(plan.primary.pg_port),
            "-U",
            DB_REPLICATOR,
            "-D",
            str(site.pg_data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-S",
            STANDBY_SLOT,
            "--no-sync",
        ],
        cwd=site.pg_dir,
        env={"PGPASSFILE": str(site.replication_pgpass)},
        timeout=600,
    )
    _write_settings(user, site)


def set_primary_conninfo(user: LabUser, plan: LabPlan) -> bool:
    """Make the standby's primary_conninfo (postgresql.auto.conf, where `pg_basebackup -R` wrote it)
    name the replication role and its passfile; True when it changed. A standby made before the
    replication role existed streamed as the superuser with the controller's passfile: this moves it."""
    auto = plan.standby.pg_data / "postgresql.auto.conf"
    wanted = f"primary_conninfo = '{render.standby_conninfo(plan)}'"
    lines = auto.read_text().splitlines() if auto.is_file() else []
    kept = [line for line in lines if not line.startswith("primary_conninfo")]
    if [*kept, wanted] == lines:
        return False
    auto.write_text("\n".join([*kept, wanted]) + "\n")
    give_to(user, auto)
    return True


def reload(user: LabUser, site: SitePlan, pg_bin: Path) -> None:
    """Make a running server reread its configuration (a standby's walreceiver restarts with it)."""
    run_as(user, [str(pg_bin / "pg_ctl"), "-D", str(site.pg_data), "reload"], cwd=site.pg_dir)


def stop(user: LabUser, record: ProcessRecord, pg_bin: Path | None) -> bool:
    """pg_ctl stop -m fast; falls back to signals by pid. True when the postmaster is gone."""
    if record.data_dir is not None and pg_bin is not None and (pg_bin / "pg_ctl").is_file():
        with contextlib.suppress(EnvironmentProblem):
            if start_ticks(record.pid) is not None and record.data_dir.is_dir():
                run_as(
                    user,
                    [
                        str(pg_bin / "pg_ctl"),
                        "-D",
                        str(record.data_dir),
                        "stop",
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "30",
                    ],
                    cwd=record.data_dir.parent,
                    timeout=45,
                )
        if wait_gone(record.pid, record.start_ticks, 2):
            return True
    return stop_pid(record.pid, record.start_ticks)


CONTROLLER_ROLES = (DB_SUPERUSER, DB_OWNER, DB_REPLICATOR)


def write_pgpass(user: LabUser, plan: LabPlan, passwords: dict[str, str]) -> None:
    """The controller's passfile (every role; the controller's own: the lab user cannot read it), each
    service host's (the service's role) and each database host's replication passfile (the replication
    role), both the lab user's."""
    _write_private(None, plan.pgpass, render.pgpass(plan, passwords, roles=CONTROLLER_ROLES))
    for site in plan.sites:
        _write_private(user, site.service_pgpass, render.pgpass(plan, passwords, roles=(DB_OWNER,)))
        _write_private(user, site.replication_pgpass, render.pgpass(plan, passwords, roles=(DB_REPLICATOR,)))


def _write_private(user: LabUser | None, path: Path, text: str) -> None:
    """Write `path` mode 0600, owned by `user` (None: by whoever runs this, the controller)."""
    path.parent.mkdir(parents=True, exist_ok=True)  # a host's folder, before its sshd is set up
    tmp = path.with_name(path.name + ".tmp")
    # O_NOFOLLOW: a symlink planted at the temporary name must not redirect the passwords elsewhere.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # a leftover temporary file keeps its old mode through O_TRUNC
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if user is not None:
        give_to(user, tmp)
    tmp.replace(path)
