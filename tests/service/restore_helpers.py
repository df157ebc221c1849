"""Builders the restore tests of tests/service share: dumps taken now, fingerprints, a copy restored
from fresh dumps beside live. The fixtures (`live`, `admin`) are in conftest.py."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg

from recovery.backup.pgdump import DumpInfo, dump_domain, dump_schema
from recovery.restore.database import RestoredDatabase, restore_beside
from recovery.verify import ALL_TABLES, TableFingerprint, fingerprint_tables

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres


def fingerprints(
    postgres: Postgres, dbname: str, tables: tuple[str, ...] = ALL_TABLES
) -> dict[str, TableFingerprint]:
    with psycopg.connect(postgres.conninfo(dbname)) as conn:
        return fingerprint_tables(conn, "public", tables)


def dump_bytes(opened: contextlib.AbstractContextManager) -> tuple[bytes, DumpInfo]:  # type: ignore[type-arg]
    with opened as stream:
        data = bytearray()
        while chunk := stream.read(256 * 1024):
            data += chunk
        return bytes(data), stream.info


def opener(data: bytes) -> Callable[[], contextlib.AbstractContextManager[io.BytesIO]]:
    return lambda: contextlib.nullcontext(io.BytesIO(data))


def drop_family(postgres: Postgres, live_db: str) -> None:
    """Drop the live database and every scratch or replaced copy named after it."""
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s OR datname LIKE %s",
                (live_db, f"{live_db}\\_restore\\_%", f"{live_db}\\_replaced\\_%"),
            ).fetchall()
        ]
        for name in names:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def restore_id() -> str:
    return uuid.uuid4().hex[:10]


def restore_from_dumps(
    postgres: Postgres, live: str, admin: str, domains: tuple[str, ...]
) -> RestoredDatabase:
    """`domains` from dumps taken now, every other domain copied from live by restore_beside."""
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    backup = {
        domain: dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, domain))[0]
        for domain in domains
    }
    return restore_beside(
        admin,
        postgres.bin_dir,
        live_db=live,
        restore_id=restore_id(),
        schema_stream=opener(schema),
        domain_streams={domain: opener(data) for domain, data in backup.items()},
    )
