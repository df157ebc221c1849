"""Builders the restore tests of tests/service share: dumps taken now, fingerprints, a copy restored
from fresh dumps beside live. The fixtures (`live`, `admin`) are in conftest.py."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from recovery.backup.naming import Domain
from recovery.backup.pgdump import DumpInfo, dump_domain, dump_domains, dump_schema
from recovery.restore.database import RestoredDatabase, restore_beside
from recovery.restore.scope import Cut
from recovery.restore.staged import restore_into_schema
from recovery.restore.table_swap import swap_tables_in
from recovery.verify import ALL_TABLES, TableFingerprint, fingerprint_tables, tables_for

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


@dataclass(frozen=True)
class Backup:
    """Dumps of some domains and the schema, taken in one snapshot, and their cut."""

    schema: bytes
    domains: Mapping[str, bytes]
    cuts: Mapping[Domain, Cut]


def take_backup(postgres: Postgres, live: str, domains: tuple[Domain, ...]) -> Backup:
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    data: dict[str, bytes] = {}
    cuts: dict[Domain, Cut] = {}
    for domain in domains:
        dumped, info = dump_bytes(dump_domains(postgres.conninfo(live), postgres.bin_dir, [domain]))
        counted = {
            table: int(postgres.query(live, f"SELECT count(*) FROM {table}")[0][0])
            for table in tables_for([domain])
        }
        data[domain] = dumped
        # What a daily backup's manifest says: its position and the rows per table.
        cuts[domain] = Cut(domain, f"test-{domain}", info.taken_at, counted)
    return Backup(schema, data, cuts)


def restore_copy(postgres: Postgres, live: str, backup: Backup, domains: tuple[str, ...]) -> RestoredDatabase:
    """`domains` from `backup` beside live, every other domain copied from live."""
    restored = restore_beside(
        postgres.conninfo(),
        postgres.bin_dir,
        live_db=live,
        restore_id=restore_id(),
        schema_stream=opener(backup.schema),
        domain_streams={domain: opener(backup.domains[domain]) for domain in domains},
    )
    return restored


def swap_staged_copy(postgres: Postgres, live: str, backup: Backup, domains: tuple[str, ...]) -> str:
    """`domains` from `backup` staged in a schema of live and swapped in; the schema live's tables are in."""
    rid = restore_id()
    staged = restore_into_schema(
        postgres.conninfo(),
        postgres.bin_dir,
        live_db=live,
        restore_id=rid,
        schema_stream=opener(backup.schema),
        domain_streams={domain: opener(backup.domains[domain]) for domain in domains},
    )
    return swap_tables_in(
        postgres.conninfo(), live_db=live, restore_id=rid, tables=staged.tables
    ).set_aside_in


def place_order(
    conn: psycopg.Connection, user: int, product: int, *, paid: bool, total: int | None = None
) -> str:
    """An order with one line (and a payment), as the service writes them; `total` other than the line's
    sum is what a corrupting release leaves."""
    order = str(uuid.uuid4())
    price = 250
    conn.execute(
        "INSERT INTO orders (id, user_id, status, total_cents) VALUES (%s, %s, %s, %s)",
        (order, user, "paid" if paid else "placed", price if total is None else total),
    )
    conn.execute(
        "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price_cents)"
        " VALUES (%s, 1, %s, 1, %s)",
        (order, product, price),
    )
    if paid:
        conn.execute(
            "INSERT INTO transactions (id, order_id, amount_cents, status) VALUES (%s, %s, %s, 'captured')",
            (str(uuid.uuid4()), order, price),
        )
    return order


def first_ids(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute("SELECT (SELECT min(id) FROM users), (SELECT min(id) FROM products)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
