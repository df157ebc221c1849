"""Schema migrations: numbered SQL files and Python data migrations, each applied in its own transaction.

A file `NNNN_name.sql` is executed as is; a file `NNNN_name.py` defines `migrate(conn)` and must not commit
(the runner commits the migration together with its schema_migrations row). Migrations run under an
advisory lock so two deploys cannot migrate the same database at once.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LOCK_KEY = 7_415_200  # advisory lock id shared by every release's migrate


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for entry in sorted(directory.iterdir()):
        stem, ext = entry.stem, entry.suffix
        if ext not in (".sql", ".py") or not stem[:4].isdigit() or "_" not in stem:
            continue
        number, name = stem.split("_", 1)
        version = int(number)
        if version in found:
            raise ValueError(f"two migrations share number {version}: rename one of them")
        found[version] = Migration(version, name, entry)
    return [found[v] for v in sorted(found)]


def ensure_table(conn: psycopg2.extensions.connection) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    conn.commit()


def applied_versions(conn: psycopg2.extensions.connection) -> set[int]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return set()
        cur.execute("SELECT version FROM schema_migrations")
        return {int(r[0]) for r in cur.fetchall()}


def _apply_one(conn: psycopg2.extensions.connection, migration: Migration) -> None:
    if migration.path.suffix == ".sql":
        with conn.cursor() as cur:
            cur.execute(migration.path.read_text(encoding="utf-8"))
    else:
        spec = importlib.util.spec_from_file_location(f"migration_{migration.version}", migration.path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load migration {migration.path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.migrate(conn)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
            (migration.version, migration.name),
        )


def migrate(conn: psycopg2.extensions.connection, directory: Path = MIGRATIONS_DIR) -> dict:
    """Apply every pending migration in order; stop at the first failure, leaving earlier ones applied."""
    ensure_table(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    conn.commit()
    applied: list[dict] = []
    try:
        done = applied_versions(conn)
        for migration in discover(directory):
            if migration.version in done:
                continue
            started = time.monotonic()
            try:
                _apply_one(conn, migration)
                conn.commit()
            except Exception as exc:
                conn.rollback()
                return {
                    "ok": False,
                    "applied": applied,
                    "failed": {
                        "version": migration.version,
                        "name": migration.name,
                        "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
                    },
                    "schema_version": max(applied_versions(conn), default=0),
                }
            applied.append(
                {
                    "version": migration.version,
                    "name": migration.name,
                    "seconds": round(time.monotonic() - started, 3),
                }
            )
        return {
            "ok": True,
            "applied": applied,
            "failed": None,
            "schema_version": max(applied_versions(conn), default=0),
        }
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        conn.commit()


def status(conn: psycopg2.extensions.connection, directory: Path = MIGRATIONS_DIR) -> dict:
    done = applied_versions(conn)
    known = discover(directory)
    return {
        "schema_version": max(done, default=0),
        "applied": sorted(done),
        "pending": [m.version for m in known if m.version not in done],
        "unknown_applied": sorted(done - {m.version for m in known}),
    }
