"""Fence the service out of its database while a rollback swaps the database under it.

Instead of stopping the service on every host (a playbook run of its own), the rollback keeps the
service's database role from logging in and ends that role's sessions. The faulty release keeps running
but can no longer write anything: not into the failed database (so the carry-over reads everything it
acknowledged), and not into the restored one once it is swapped in. Its /health answers 503 meanwhile,
so no client sees an acknowledgement. The fence is lifted once every host runs the previous release.

The service's role is the owner of the live database (the role that migrates and serves it); the
toolkit itself connects as a superuser and is never fenced. A superuser role is refused as a fence:
NOLOGIN would not stop it, and fencing the toolkit's own role would lock the rollback out.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from recovery.drivers import db as db_driver
from recovery.errors import PreconditionFailed
from recovery.targets.model import Database


@dataclass(frozen=True)
class Fence:
    role: str
    terminated_sessions: int
    already: bool  # the role could not log in before this call (a rerun after an interruption)


_OWNER = """
SELECT r.rolname, r.rolsuper, r.rolcanlogin FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
WHERE d.datname = %s
"""

_TERMINATE = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE usename = %s AND pid <> pg_backend_pid()
"""


def service_role(db: Database, live_db: str | None = None) -> str:
    """The role the service uses: the owner of the live database (refused when it is a superuser or the
    toolkit's own user)."""
    name = live_db or db.name
    with db_driver.connect(db, dbname="postgres") as conn:
        row = conn.execute(_OWNER, (name,)).fetchone()
    if row is None:
        raise PreconditionFailed(f"database {name!r} does not exist; cannot fence its service")
    role, superuser = str(row[0]), bool(row[1])
    if superuser or role == db.user:
        raise PreconditionFailed(
            f"database {name!r} is owned by {role!r}, a superuser or the toolkit's own role: it cannot be "
            "fenced; give the service its own owner role"
        )
    return role


def fence(db: Database, role: str) -> Fence:
    """Keep `role` from logging in, then end its sessions (in that order: none can slip in between)."""
    with db_driver.connect(db, dbname="postgres") as conn:
        row = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if row is None:
            raise PreconditionFailed(f"role {role!r} does not exist; cannot fence it")
        already = not bool(row[0])
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
        ended = conn.execute(_TERMINATE, (role,)).fetchone()
    return Fence(role, int(str(ended[0])) if ended else 0, already)


def lift(db: Database, role: str) -> None:
    """Let `role` log in again."""
    with db_driver.connect(db, dbname="postgres") as conn:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))


def is_fenced(db: Database, role: str) -> bool:
    with db_driver.connect(db, dbname="postgres") as conn:
        row = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return row is not None and not bool(row[0])
