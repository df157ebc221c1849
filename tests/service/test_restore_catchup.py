"""The catch-up of a restored copy with live, against the real PostgreSQL of tests/service.

A copy is built the way the restore runbook builds it (orders and transactions from dumps, the other
domains from live in one snapshot), then live moves on as the running service would move it before the
fence: `catch_up` must bring the copied tables level with live, or refuse without changing the copy.
Every database is dropped by the `live` fixture (also the scratch copies).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from restore_helpers import dump_bytes, fingerprints, restore_from_dumps

from recovery.backup.pgdump import dump_domain
from recovery.errors import ExitCode, VerificationFailed
from recovery.restore.catchup import SnapshotBound, catch_up
from recovery.restore.database import RestoredDatabase

if TYPE_CHECKING:
    from conftest import Postgres

COPIED = ("users", "products", "events")


def snapshot_of(restored: RestoredDatabase) -> str:
    assert restored.live_copy is not None
    assert restored.live_copy.snapshot is not None
    return str(restored.live_copy.snapshot)


def sequences(postgres: Postgres, dbname: str) -> dict[str, tuple[int, bool]]:
    positions: dict[str, tuple[int, bool]] = {}
    with psycopg.connect(postgres.conninfo(dbname)) as conn:
        for name in ("users_id_seq", "products_id_seq", "events_id_seq"):
            row = conn.execute(f"SELECT last_value, is_called FROM {name}").fetchone()
            assert row is not None
            positions[name] = (int(row[0]), bool(row[1]))
    return positions


def write_like_the_service(postgres: Postgres, dbname: str) -> None:
    """New users and events, a stock change, an event deleted: what the service does before the fence."""
    with psycopg.connect(postgres.conninfo(dbname, user="orders")) as conn:
        conn.execute(
            "INSERT INTO users (email, name) VALUES ('late1@shop.example', 'Late One'),"
            " ('late2@shop.example', 'Late Two')"
        )
        conn.execute(
            "INSERT INTO events (kind, subject) SELECT 'late', 'event ' || n FROM generate_series(1, 3) n"
        )
        conn.execute("UPDATE products SET stock = stock + 7 WHERE id = 2")
        conn.execute("DELETE FROM events WHERE id = (SELECT min(id) FROM events)")
    with psycopg.connect(postgres.conninfo(dbname, user="orders")) as conn, conn.transaction():
        # An insert that rolls back still moves the sequence: the copy must not hand that id out again.
        conn.execute("SAVEPOINT s")
        conn.execute("INSERT INTO users (email, name) VALUES ('gone@shop.example', 'Rolled Back')")
        conn.execute("ROLLBACK TO SAVEPOINT s")


def test_the_dump_records_its_snapshot(postgres: Postgres, live: str) -> None:
    _, info = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, "users"))
    assert info.snapshot is not None and re.fullmatch(r"\d+:\d+:(\d+(,\d+)*)?", info.snapshot)
    xmin, xmax = (int(part) for part in info.snapshot.split(":")[:2])
    assert xmin <= xmax
    with psycopg.connect(postgres.conninfo(live)) as conn:
        # The snapshot is in the past: ids handed out since are at or after its xmax.
        now = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    assert now is not None and now[0] >= xmax


def test_catch_up_brings_the_copied_domains_level_with_live(
    postgres: Postgres, live: str, admin: str
) -> None:
    restored = restore_from_dumps(postgres, live, admin, ("orders", "transactions"))
    assert restored.live_copy is not None and restored.live_copy.tables == COPIED
    restored_tables = fingerprints(postgres, restored.name, ("orders", "order_items", "transactions"))
    write_like_the_service(postgres, live)
    live_now = fingerprints(postgres, live, COPIED)
    assert fingerprints(postgres, restored.name, COPIED) != live_now

    report = catch_up(
        postgres.conninfo(live), postgres.conninfo(restored.name), COPIED, snapshot_of(restored)
    )

    by_table = {item.table: item for item in report.tables}
    assert [item.table for item in report.tables] == list(COPIED)
    assert (by_table["users"].upserted, by_table["users"].deleted) == (2, 0)
    assert (by_table["products"].upserted, by_table["products"].deleted) == (1, 0)
    assert (by_table["events"].upserted, by_table["events"].deleted) == (3, 1)
    assert by_table["users"].sequences_set == 1 and by_table["events"].sequences_set == 1
    assert by_table["products"].sequences_set == 0  # no product was added
    assert fingerprints(postgres, restored.name, COPIED) == live_now
    # The restored domains were not touched, and live was only read.
    assert fingerprints(postgres, restored.name, tuple(restored_tables)) == restored_tables
    assert fingerprints(postgres, live, COPIED) == live_now
    assert sequences(postgres, restored.name) == sequences(postgres, live)

    with psycopg.connect(postgres.conninfo(restored.name, user="orders")) as conn:
        # Ids handed out after the swap continue after every id live handed out (the rolled back too).
        user_id = conn.execute(
            "INSERT INTO users (email, name) VALUES ('after@shop.example', 'After') RETURNING id"
        ).fetchone()
        conn.rollback()
    with psycopg.connect(postgres.conninfo(live)) as conn:
        highest = conn.execute("SELECT max(id) FROM users").fetchone()
    assert user_id is not None and highest is not None and user_id[0] == highest[0] + 2

    again = catch_up(postgres.conninfo(live), postgres.conninfo(restored.name), COPIED, snapshot_of(restored))
    assert again.changed == ()  # a rerun (a resumed step) finds everything equal
    assert all(item.upserted == item.deleted == item.sequences_set == 0 for item in again.tables)
    assert fingerprints(postgres, restored.name, COPIED) == live_now


def test_a_table_nobody_wrote_to_is_reported_unchanged(postgres: Postgres, live: str, admin: str) -> None:
    restored = restore_from_dumps(postgres, live, admin, ("orders", "transactions"))
    postgres.execute(live, "INSERT INTO events (kind, subject) VALUES ('late', 'only events')")

    report = catch_up(
        postgres.conninfo(live), postgres.conninfo(restored.name), COPIED, snapshot_of(restored)
    )

    by_table = {item.table: item for item in report.tables}
    assert report.changed == ("events",)
    assert by_table["users"].new_rows == by_table["products"].new_rows == 0
    assert not by_table["users"].changed and not by_table["products"].changed
    assert by_table["events"].upserted == 1
    assert fingerprints(postgres, restored.name, COPIED) == fingerprints(postgres, live, COPIED)


def test_a_payment_for_an_order_the_copy_lacks_is_refused_and_nothing_changes(
    postgres: Postgres, live: str, admin: str
) -> None:
    restored = restore_from_dumps(postgres, live, admin, ("orders",))  # transactions come from live
    copied = restored.live_copy.tables if restored.live_copy else ()
    assert "transactions" in copied
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        conn.execute("INSERT INTO users (email, name) VALUES ('payer@shop.example', 'Payer')")
        conn.execute(
            "INSERT INTO orders (id, user_id, status, total_cents) VALUES"
            " ('00000000-0000-4000-8000-000000000001', 1, 'paid', 900),"
            " ('00000000-0000-4000-8000-000000000002', 1, 'paid', 400)"
        )
        conn.execute(
            "INSERT INTO transactions (id, order_id, amount_cents, status) VALUES"
            " (gen_random_uuid(), '00000000-0000-4000-8000-000000000001', 900, 'captured'),"
            " (gen_random_uuid(), '00000000-0000-4000-8000-000000000002', 400, 'captured')"
        )
    before = fingerprints(postgres, restored.name)
    sequences_before = sequences(postgres, restored.name)

    with pytest.raises(VerificationFailed) as caught:
        catch_up(postgres.conninfo(live), postgres.conninfo(restored.name), copied, snapshot_of(restored))

    text = str(caught.value)
    assert "\n" not in text and postgres.password not in text
    assert text.startswith("catch-up of transactions: 2 transactions rows")
    assert "restore the transactions domain too" in text and "not changed" in text
    assert caught.value.exit_code == ExitCode.VERIFY_FAILED
    # Not even the new user, which broke nothing, went in: one transaction, rolled back.
    assert fingerprints(postgres, restored.name) == before
    assert sequences(postgres, restored.name) == sequences_before


def test_a_user_deleted_from_live_whom_restored_orders_reference_is_refused(
    postgres: Postgres, live: str, admin: str
) -> None:
    restored = restore_from_dumps(postgres, live, admin, ("orders",))
    copied = restored.live_copy.tables if restored.live_copy else ()
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        # Live forgets a customer completely; the restored orders still have theirs.
        user = conn.execute("SELECT user_id FROM orders ORDER BY user_id LIMIT 1").fetchone()
        assert user is not None
        conn.execute(
            "DELETE FROM transactions WHERE order_id IN (SELECT id FROM orders WHERE user_id = %s)", user
        )
        conn.execute(
            "DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id = %s)", user
        )
        conn.execute("DELETE FROM orders WHERE user_id = %s", user)
        conn.execute("DELETE FROM users WHERE id = %s", user)
    before = fingerprints(postgres, restored.name)

    with pytest.raises(VerificationFailed, match=r"^catch-up of users: 1 users row deleted from live"):
        catch_up(postgres.conninfo(live), postgres.conninfo(restored.name), copied, snapshot_of(restored))

    assert fingerprints(postgres, restored.name) == before


def test_the_row_filter_agrees_with_its_python_twin_in_postgresql(postgres: Postgres) -> None:
    two_32 = 2**32
    bounds = [SnapshotBound.parse(f"{x}:{x}:") for x in (3, 1000, 3 * two_32 + two_32 - 10, 2**31 + 5)]
    xids = (3, 999, 1000, 1001, 2**31 - 1, 2**31, 2**31 + 4, 2**31 + 5, two_32 - 11, two_32 - 1)
    with psycopg.connect(postgres.conninfo()) as conn:
        for bound in bounds:
            query = sql.SQL("SELECT {} FROM (SELECT %s::text::xid AS xmin) AS row_version").format(
                bound.row_filter()
            )
            for xid in xids:
                found = conn.execute(query, (str(xid),)).fetchone()
                assert found == (bound.may_be_new(xid),), (bound, xid)
