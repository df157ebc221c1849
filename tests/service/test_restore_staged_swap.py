"""Restore a domain into a staging schema of live, then swap its tables in: real PostgreSQL.

The `live` fixture drops the database (with its staging and replaced schemas) afterwards; the swap
killed half-way runs in a subprocess of its own process group, killed by the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
import pytest
from restore_helpers import dump_bytes, fingerprints, opener, restore_id

from recovery.backup.pgdump import dump_domain, dump_schema
from recovery.errors import ConfirmationRequired, ExternalFailure, PreconditionFailed
from recovery.restore.database import FromDatabase
from recovery.restore.staged import (
    StagedTables,
    StagingNames,
    discard_staged,
    restore_into_schema,
    staging_names,
)
from recovery.restore.table_swap import (
    drop_replaced_tables,
    replaced_schemas,
    swap_tables_back,
    swap_tables_in,
)
from recovery.verify import fingerprint_tables
from recovery.verify.restored import check_restored_copy

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres

ORDERS = ("orders", "order_items")


def backup_of(postgres: Postgres, live: str, domain: str) -> tuple[bytes, bytes]:
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    data, _ = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, domain))
    return schema, data


def schema_fingerprints(postgres: Postgres, live: str, schema: str, tables: tuple[str, ...]) -> dict:
    with psycopg.connect(postgres.conninfo(live)) as conn:
        return fingerprint_tables(conn, schema, tables)


def schemas(postgres: Postgres, live: str) -> set[str]:
    rows = postgres.query(live, "SELECT nspname FROM pg_namespace WHERE nspname ~ '^(restore|replaced)_'")
    return {row[0] for row in rows}


def later_orders(postgres: Postgres, live: str) -> None:
    """Live moves on after the backup: new orders (no payments), a status change."""
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        conn.execute(
            "INSERT INTO orders (id, user_id, status, total_cents)"
            " SELECT gen_random_uuid(), 1, 'placed', 500 FROM generate_series(1, 25)"
        )
        conn.execute("UPDATE orders SET status = 'cancelled' WHERE id IN (SELECT id FROM orders LIMIT 3)")


@dataclass(frozen=True)
class Moved:
    """A backup of orders, then live moved on: the fingerprints of both and the restore's names."""

    schema: bytes
    orders: bytes
    at_backup: dict
    live_before: dict
    rid: str
    names: StagingNames


def backup_then_later_orders(postgres: Postgres, live: str) -> Moved:
    schema, orders = backup_of(postgres, live, "orders")
    at_backup = fingerprints(postgres, live, ORDERS)
    later_orders(postgres, live)
    rid = restore_id()
    return Moved(schema, orders, at_backup, fingerprints(postgres, live), rid, staging_names(live, rid))


def stage(
    postgres: Postgres, live: str, admin: str, rid: str, schema: bytes, data: bytes, domain: str = "orders"
) -> StagedTables:
    return restore_into_schema(
        admin,
        postgres.bin_dir,
        live_db=live,
        restore_id=rid,
        schema_stream=opener(schema),
        domain_streams={domain: opener(data)},
    )


def test_a_domain_is_staged_beside_live_then_swapped_in_whole(
    postgres: Postgres, live: str, admin: str
) -> None:
    moved = backup_then_later_orders(postgres, live)
    schema, orders, at_backup, live_before = moved.schema, moved.orders, moved.at_backup, moved.live_before
    rid, names = moved.rid, moved.names

    staged = stage(postgres, live, admin, rid, schema, orders)

    assert staged.tables == ORDERS and staged.schema == names.staging and staged.schema_version == 1
    assert schema_fingerprints(postgres, live, names.staging, ORDERS) == at_backup
    assert fingerprints(postgres, live) == live_before  # live's tables were only read
    # The verification reads one schema: the restored tables, and live's others through views.
    reports, invariants = check_restored_copy(
        lambda: psycopg.connect(postgres.conninfo(live)), at_backup, schema=names.staging
    )
    assert [report.passed for report in reports] == [True] and invariants.passed, (reports, invariants)
    assert schema_fingerprints(postgres, live, names.staging, ("users",)) == {"users": live_before["users"]}

    swapped = swap_tables_in(admin, live_db=live, restore_id=rid, tables=staged.tables)

    assert not swapped.already_done and swapped.set_aside_in == names.replaced
    now = fingerprints(postgres, live)
    assert {t: now[t] for t in ORDERS} == at_backup
    assert {t: now[t] for t in now if t not in ORDERS} == {t: live_before[t] for t in now if t not in ORDERS}
    assert schema_fingerprints(postgres, live, names.replaced, ORDERS) == {t: live_before[t] for t in ORDERS}
    assert schemas(postgres, live) == {names.replaced}
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        # Same constraints and indexes by name, owned by the owner, in public.
        assert catalog_of(conn, "public") == catalog_of(conn, names.replaced)
        # The payments' foreign key now guards the restored orders.
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO transactions (id, order_id, amount_cents, status)"
                " VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'captured')"
            )
    # Idempotent: a resumed run finds the swap done.
    assert swap_tables_in(admin, live_db=live, restore_id=rid, tables=ORDERS).already_done
    assert replaced_schemas(psycopg.connect(postgres.conninfo(live))) == [rid]

    back = swap_tables_back(admin, live_db=live, restore_id=rid, tables=ORDERS)
    assert back.set_aside_in == names.staging
    assert fingerprints(postgres, live) == live_before


def len_of(prints: dict, table: str) -> int:
    return int(prints[table].rows)


def catalog_of(conn: psycopg.Connection, schema: str) -> list[tuple]:
    return conn.execute(
        "SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner),"
        " (SELECT array_agg(conname ORDER BY conname) FROM pg_constraint WHERE conrelid = c.oid)"
        " FROM pg_class c WHERE c.relnamespace = %s::regnamespace"
        " AND c.relname IN ('orders', 'order_items', 'orders_pkey', 'order_items_pkey', 'orders_user_id_idx')"
        " ORDER BY 1",
        (schema,),
    ).fetchall()


def test_the_restored_table_continues_after_ids_live_handed_out(
    postgres: Postgres, live: str, admin: str
) -> None:
    schema, events = backup_of(postgres, live, "logs")
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        conn.execute("INSERT INTO events (kind, subject) SELECT 'late', 'x' FROM generate_series(1, 10)")
        live_last = conn.execute("SELECT max(id) FROM events").fetchone()[0]
    rid = restore_id()
    staged = stage(postgres, live, admin, rid, schema, events, domain="logs")
    swap_tables_in(admin, live_db=live, restore_id=rid, tables=staged.tables)
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        new_id = conn.execute(
            "INSERT INTO events (kind, subject) VALUES ('new', 'y') RETURNING id"
        ).fetchone()[0]
        default = conn.execute(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'public.events'::regclass"
            " AND adnum = 1"
        ).fetchone()[0]
    assert new_id > live_last
    assert default == "nextval('events_id_seq'::regclass)"  # its own sequence, moved in with it


def test_a_swap_that_would_orphan_live_rows_changes_nothing(
    postgres: Postgres, live: str, admin: str
) -> None:
    schema, orders = backup_of(postgres, live, "orders")
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        order = conn.execute(
            "INSERT INTO orders (id, user_id, status, total_cents)"
            " VALUES (gen_random_uuid(), 1, 'paid', 500) RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO transactions (id, order_id, amount_cents, status)"
            " VALUES (gen_random_uuid(), %s, 500, 'captured')",
            (order,),
        )
    before = fingerprints(postgres, live)
    rid = restore_id()
    stage(postgres, live, admin, rid, schema, orders)
    with pytest.raises(PreconditionFailed) as refused:
        swap_tables_in(admin, live_db=live, restore_id=rid, tables=ORDERS)
    assert refused.value.code == "restore.swap_reference"
    assert "transactions" in str(refused.value) and "nothing was changed" in str(refused.value)
    assert fingerprints(postgres, live) == before
    assert schemas(postgres, live) == {staging_names(live, rid).staging}
    assert discard_staged(admin, live_db=live, restore_id=rid)
    assert schemas(postgres, live) == set()


def test_live_at_another_schema_version_is_refused_before_any_table_is_made(
    postgres: Postgres, live: str, admin: str
) -> None:
    schema, orders = backup_of(postgres, live, "orders")
    postgres.execute(live, "INSERT INTO schema_migrations (version, name) VALUES (2, 'later')")
    with pytest.raises(PreconditionFailed) as refused:
        stage(postgres, live, admin, restore_id(), schema, orders)
    assert refused.value.code == "restore.staging_version"
    assert schemas(postgres, live) == set()


def test_a_broken_dump_drops_the_staging_schema(postgres: Postgres, live: str, admin: str) -> None:
    schema, orders = backup_of(postgres, live, "orders")
    before = fingerprints(postgres, live)
    with pytest.raises(ExternalFailure) as failed:
        stage(postgres, live, admin, restore_id(), schema, orders[: len(orders) // 2])
    assert failed.value.code == "restore.load_failed"
    assert "live is untouched" in str(failed.value) and "\n" not in str(failed.value)
    assert schemas(postgres, live) == set()
    assert fingerprints(postgres, live) == before


def test_a_running_database_stands_in_for_a_backup(postgres: Postgres, live: str, admin: str) -> None:
    """A point-in-time restore's source: the domain dumped from a recovered cluster (here: another db)."""
    with postgres.seeded_database("pitr", orders=200) as source:
        expected = fingerprints(postgres, source, ORDERS)
        # The source's users and products are live's (same seed), so the foreign keys hold.
        staged = restore_into_schema(
            admin,
            postgres.bin_dir,
            live_db=live,
            restore_id=restore_id(),
            schema_stream=FromDatabase(postgres.conninfo(source), postgres.bin_dir),
            domain_streams={"orders": FromDatabase(postgres.conninfo(source), postgres.bin_dir)},
        )
    assert schema_fingerprints(postgres, live, staged.schema, ORDERS) == expected


def test_dropping_the_replaced_tables_needs_confirmation(postgres: Postgres, live: str, admin: str) -> None:
    schema, orders = backup_of(postgres, live, "orders")
    rid = restore_id()
    stage(postgres, live, admin, rid, schema, orders)
    swap_tables_in(admin, live_db=live, restore_id=rid, tables=ORDERS)
    with pytest.raises(ConfirmationRequired):
        drop_replaced_tables(admin, live_db=live, restore_id=rid)
    assert schemas(postgres, live) == {staging_names(live, rid).replaced}
    assert drop_replaced_tables(admin, live_db=live, restore_id=rid, confirmed=True)
    assert not drop_replaced_tables(admin, live_db=live, restore_id=rid, confirmed=True)
    assert schemas(postgres, live) == set()


_SWAP_SCRIPT = """
import sys
from recovery.restore.table_swap import swap_tables_in
swap_tables_in(sys.argv[1], live_db=sys.argv[2], restore_id=sys.argv[3], tables=("orders", "order_items"))
"""


def test_a_swap_killed_half_way_leaves_live_whole_and_a_rerun_swaps(
    postgres: Postgres, live: str, admin: str
) -> None:
    moved = backup_then_later_orders(postgres, live)
    schema, orders, at_backup, live_before = moved.schema, moved.orders, moved.at_backup, moved.live_before
    rid, names = moved.rid, moved.names
    stage(postgres, live, admin, rid, schema, orders)

    # Hold the last staging table the swap moves: it stops there, with live's tables already moved
    # out and the first restored one moved in (uncommitted), and is killed in that state.
    with psycopg.connect(postgres.conninfo(live)) as holder:
        holder.execute(f"LOCK TABLE {names.staging}.order_items IN ACCESS SHARE MODE")
        process = subprocess.Popen(
            [sys.executable, "-c", _SWAP_SCRIPT, admin, live, rid],
            start_new_session=True,
            stderr=subprocess.PIPE,
        )
        try:
            waiting = wait_blocked_on(postgres, live, f"{names.staging}.order_items", process)
            assert waiting["moved out"] == 2  # both of live's tables were set aside in the transaction
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        holder.rollback()  # the orphaned backend goes on, then finds its client gone: it never commits
    wait_no_sessions_of(postgres, live, waiting["pid"])

    assert fingerprints(postgres, live) == live_before
    assert schema_fingerprints(postgres, live, names.staging, ORDERS) == at_backup
    assert schemas(postgres, live) == {names.staging}

    swap_tables_in(admin, live_db=live, restore_id=rid, tables=ORDERS)
    assert fingerprints(postgres, live, ORDERS) == at_backup


def wait_blocked_on(postgres: Postgres, live: str, relation: str, process: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        rows = postgres.query(
            live,
            "SELECT l.pid FROM pg_locks l WHERE NOT l.granted AND l.relation = %s::regclass",
            (relation,),
        )
        if rows:
            pid = rows[0][0]
            out = postgres.query(
                live,
                "SELECT count(*) FROM pg_locks m WHERE m.pid = %s AND m.granted"
                " AND m.mode = 'AccessExclusiveLock' AND m.locktype = 'relation'"
                " AND m.relation IN (SELECT oid FROM pg_class WHERE relname IN ('orders', 'order_items')"
                " AND relnamespace = 'public'::regnamespace)",
                (pid,),
            )
            return {"pid": pid, "moved out": int(out[0][0])}
        time.sleep(0.05)
    pytest.fail("the swap never reached the held table")


def wait_no_sessions_of(postgres: Postgres, live: str, pid: int) -> None:
    deadline = time.monotonic() + 60
    while postgres.query("postgres", "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))[0][0]:
        assert time.monotonic() < deadline, "the killed swap's session never ended"
        time.sleep(0.05)
