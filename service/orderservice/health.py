"""Health: the code's release, the site's role, and whether the database is reachable and on our schema."""

from __future__ import annotations

from typing import Any

import psycopg2

from orderservice import problems
from orderservice.config import Config
from orderservice.db import Database
from orderservice.release_info import ReleaseInfo


def check(db: Database, config: Config, info: ReleaseInfo) -> tuple[bool, dict[str, Any]]:
    """(healthy, report). Unhealthy when the database is unreachable or its schema is not this code's."""
    report: dict[str, Any] = {
        "version": info.version,
        "site": config.site,
        "db": {"reachable": False, "read_only": None, "schema_version": None},
        "expected_schema_version": info.schema_version,
        "problems": [],
        # Every problem may clear without a change (the database does not answer yet, the schema is not
        # at this release's version yet): a deploy waits on transient problems and fails on the others.
        "transient": True,
    }
    try:
        with db.transaction() as cur:
            cur.execute(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on',"
                " to_regclass('schema_migrations') IS NOT NULL"
            )
            read_only, has_table = cur.fetchone()
            schema = None
            if has_table:
                cur.execute("SELECT max(version) FROM schema_migrations")
                schema = cur.fetchone()[0]
        report["db"] = {"reachable": True, "read_only": bool(read_only), "schema_version": schema}
        if schema != info.schema_version:
            report["problems"].append(
                f"database schema is at {schema}, this release needs {info.schema_version}"
            )
    except psycopg2.Error as exc:
        problem, transient = problems.database_problem(exc)
        report["problems"].append(problem)
        report["transient"] = transient
    healthy = not report["problems"]
    report["status"] = "ok" if healthy else "unhealthy"
    return healthy, report
