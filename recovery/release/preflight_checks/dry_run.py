"""The migration dry run: the release's own migrate entry point against a scratch copy of the database.

The scratch database `<live>_preflight_<id>` is made on the primary's server from a schema-only dump of
the live database plus a sample of its data: the newest orders with their items, payments, users and
products, the newest events, and all of schema_migrations (so the migrations see the live schema version).
A sample, not a full copy, keeps the dry run to seconds at any size of the live database; a data
migration that fails only on rows outside the sample is caught at deploy time, where the upgrade runbook
rolls it back. The release's artifact is built and unpacked in a temporary directory, and
`python3 -m orderservice migrate` runs from it with a config that points at the scratch database as the
live database's owner. The scratch database is always dropped; the live database is only read.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from recovery.drivers import db
from recovery.drivers.db import tool_env
from recovery.errors import RecoveryError
from recovery.release.artifacts import build_release_artifact
from recovery.release.catalog import Release
from recovery.targets.model import Target

DEFAULT_SAMPLE_ORDERS = 2000
MIGRATE_TIMEOUT_S = 600

# (table, query choosing the sample's rows); {orders} is the sampled order ids. In foreign-key order.
_SAMPLE: tuple[tuple[str, str], ...] = (
    ("schema_migrations", "SELECT * FROM schema_migrations"),
    ("users", "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE id IN ({orders}))"),
    (
        "products",
        "SELECT * FROM products WHERE id IN"
        " (SELECT product_id FROM order_items WHERE order_id IN ({orders}))",
    ),
    ("orders", "SELECT * FROM orders WHERE id IN ({orders})"),
    ("order_items", "SELECT * FROM order_items WHERE order_id IN ({orders})"),
    ("transactions", "SELECT * FROM transactions WHERE order_id IN ({orders})"),
    ("events", "SELECT * FROM events ORDER BY id DESC LIMIT {limit}"),
)


@dataclass(frozen=True)
class DryRunFacts:
    ran: bool  # False when the scratch copy could not be made (then `problem` says why)
    ok: bool
    applied: tuple[str, ...]  # "0002_name" of every migration the dry run applied
    failed: str | None  # "0003_name: Error: ..." of the failing migration
    schema_version: int | None
    sample_rows: dict[str, int]
    seconds: float
    problem: str | None = None


def _first_line(text: str, fallback: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "error" in line or "FATAL" in line]
    return (errors or lines or [fallback])[-1][:300]


def _copy_schema(target: Target, scratch: str) -> None:
    database = target.writable.database
    pg_dump, psql = db.pg_tool(database, "pg_dump"), db.pg_tool(database, "psql")
    with tempfile.TemporaryFile() as schema_err, tempfile.TemporaryFile() as load_err:
        dump = subprocess.Popen(
            [str(pg_dump), "--schema-only", "--dbname", db.conninfo(database)],
            stdout=subprocess.PIPE,
            stderr=schema_err,
            env=tool_env(),
        )
        assert dump.stdout is not None
        load = subprocess.run(
            [
                str(psql),
                "-q",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "--dbname",
                db.conninfo(database, dbname=scratch),
            ],
            stdin=dump.stdout,
            stdout=subprocess.DEVNULL,
            stderr=load_err,
            env=tool_env(),
            check=False,
            timeout=MIGRATE_TIMEOUT_S,
        )
        dump.stdout.close()
        dump_rc = dump.wait(timeout=60)
        if dump_rc != 0:
            schema_err.seek(0)
            raise RecoveryError(
                f"pg_dump --schema-only failed: {_first_line(schema_err.read().decode(), 'no output')}"
            )
        if load.returncode != 0:
            load_err.seek(0)
            raise RecoveryError(
                f"loading the schema into {scratch} failed: "
                f"{_first_line(load_err.read().decode(), 'no output')}"
            )


def _copy_sample(target: Target, scratch: str, sample_orders: int) -> dict[str, int]:
    database = target.writable.database
    chosen = sql.SQL("SELECT id FROM orders ORDER BY created_at DESC, id DESC LIMIT {}").format(
        sql.Literal(sample_orders)
    )
    counts: dict[str, int] = {}
    with (
        db.connect(database, autocommit=False) as live,
        db.connect(database, dbname=scratch, autocommit=False) as copy,
    ):
        live.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for table, query in _SAMPLE:
            exists = live.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)).fetchone()
            if not exists or not exists[0]:
                continue
            select = sql.SQL(query).format(orders=chosen, limit=sql.Literal(sample_orders))
            with live.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(select)) as source:
                cursor = copy.cursor()
                with cursor.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as sink:
                    for chunk in source:
                        sink.write(chunk)
                counts[table] = cursor.rowcount
        _advance_sequences(copy)
        copy.commit()
        live.rollback()
    return counts


def _advance_sequences(conn: psycopg.Connection[Any]) -> None:
    """Move every column sequence past the copied ids, so rows a migration inserts do not collide."""
    columns = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND (column_default LIKE 'nextval%' OR is_identity = 'YES')"
    ).fetchall()
    for table, column in columns:
        conn.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({qualified}, {column}),"
                " coalesce(max({col}), 0) + 1, false) FROM {table}"
            ).format(
                qualified=sql.Literal(f"public.{table}"),
                column=sql.Literal(column),
                col=sql.Identifier(str(column)),
                table=sql.Identifier(str(table)),
            )
        )


def role_option(role: str) -> str:
    """libpq's PGOPTIONS that make a session act as `role` from its start (its spaces escaped). Pure."""
    escaped = role.replace("\\", "\\\\").replace(" ", "\\ ")
    return f"-c role={escaped}"


def _run_migrate(target: Target, release: Release, scratch: str, owner: str, workdir: Path) -> dict[str, Any]:
    database = target.writable.database
    artifact = build_release_artifact(release.name, workdir / "artifacts")
    tree = workdir / "release"
    with tarfile.open(artifact) as archive:
        archive.extractall(tree, filter="data")
    config = workdir / "config.json"
    config.write_text(
        json.dumps(
            {
                "release": release.name,
                "site": "primary",
                "listen": "127.0.0.1",
                "port": 9,  # never served: migrate only reads the db section
                "log_file": str(workdir / "migrate.log"),
                "db": {
                    "host": database.address,
                    "port": database.port,
                    "name": scratch,
                    # The controller's own role and passfile (on RDS the master user's, from its secret: it
                    # holds no password of the owner), switched to the owner as a restore does (--role).
                    "user": database.user,
                    "passfile": str(database.passfile) if database.passfile else None,
                },
            }
        )
    )
    python = target.writable.hosts[0].python
    result = subprocess.run(
        [python, "-m", "orderservice", "migrate", "--config", str(config)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT_S,
        check=False,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PGOPTIONS": role_option(owner)},
    )
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        raise RecoveryError(
            f"`python3 -m orderservice migrate` of {release.name} exited {result.returncode} "
            "without a report: "
            f"{_first_line(result.stderr, 'no output')}"
        )
    return report


def dry_run_migrations(
    target: Target, release: Release, *, sample_orders: int = DEFAULT_SAMPLE_ORDERS
) -> DryRunFacts:
    """Run `release`'s migrations on a scratch copy of the primary database; always drop the copy."""
    database = target.writable.database
    scratch = f"{database.name}_preflight_{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    counts: dict[str, int] = {}
    try:
        with db.connect(database, dbname="postgres", autocommit=True) as admin:
            found_owner = db.database_owner(admin, database.name)
            if found_owner is None:
                return DryRunFacts(
                    False, False, (), None, None, {}, 0.0, f"database {database.name!r} does not exist"
                )
            owner = found_owner
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                    sql.Identifier(scratch), sql.Identifier(owner)
                )
            )
        try:
            _copy_schema(target, scratch)
            counts = _copy_sample(target, scratch, sample_orders)
            with tempfile.TemporaryDirectory(prefix="order-recovery-preflight-") as workdir:
                report = _run_migrate(target, release, scratch, owner, Path(workdir))
        finally:
            _drop(target, scratch)
    except (RecoveryError, psycopg.Error, OSError, subprocess.TimeoutExpired) as exc:
        message = exc.message if isinstance(exc, RecoveryError) else _first_line(str(exc), type(exc).__name__)
        return DryRunFacts(False, False, (), None, None, counts, time.monotonic() - started, message)
    applied = tuple(f"{int(m['version']):04d}_{m['name']}" for m in report.get("applied") or [])
    failed = report.get("failed")
    failure = (
        f"{int(failed['version']):04d}_{failed['name']}: {failed['error']}"
        if isinstance(failed, dict)
        else None
    )
    version = report.get("schema_version")
    return DryRunFacts(
        ran=True,
        ok=bool(report.get("ok")),
        applied=applied,
        failed=failure,
        schema_version=int(version) if isinstance(version, int) else None,
        sample_rows=counts,
        seconds=round(time.monotonic() - started, 3),
    )


def _drop(target: Target, scratch: str) -> None:
    with db.connect(target.writable.database, dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
