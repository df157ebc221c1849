"""Table fingerprints against the real PostgreSQL of tests/service, on data seeded by the lab's seeder.

The restored copy of a backup lives beside the live data: here a `CREATE TABLE ... AS` copy in a scratch
schema of the same database, and a pg_dump/pg_restore copy in a scratch database. Every schema and
database a test creates is dropped afterwards, also when the test fails.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from recovery.errors import ExitCode, UsageError, VerificationFailed
from recovery.verify import (
    ALL_TABLES,
    DOMAIN_TABLES,
    TableFingerprint,
    compare_fingerprints,
    ensure_passed,
    fingerprint_tables,
    tables_for,
    verify_fingerprints,
)

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres

ORDERS = 2000


@pytest.fixture(scope="module")
def seeded(postgres: Postgres) -> Iterator[str]:
    """A database with the v1 schema and a seeded order history (read-only for the tests)."""
    with postgres.seeded_database("verify_fp", ORDERS) as name:
        yield name


@pytest.fixture
def conn(postgres: Postgres, seeded: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres.conninfo(seeded), autocommit=True) as connection:
        yield connection


@pytest.fixture
def copy_schema(conn: psycopg.Connection) -> Iterator[str]:
    """restore_<id>: every table of public copied with CREATE TABLE ... AS, rows in reverse key order."""
    schema = f"restore_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        for table in (*ALL_TABLES, "schema_migrations"):
            # Reverse physical order: the fingerprint must not depend on the order rows are stored in.
            conn.execute(
                sql.SQL("CREATE TABLE {}.{} AS SELECT * FROM public.{} ORDER BY 1 DESC").format(
                    sql.Identifier(schema), sql.Identifier(table), sql.Identifier(table)
                )
            )
        yield schema
    finally:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def mismatched_tables(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    expected = fingerprint_tables(conn, "public", ALL_TABLES)
    report = verify_fingerprints(conn, schema, expected)
    return {
        check.name.removeprefix("fingerprint "): check.reason for check in report.checks if not check.passed
    }


def test_identical_copy_has_identical_fingerprints(conn: psycopg.Connection, copy_schema: str) -> None:
    live = fingerprint_tables(conn, "public", ALL_TABLES)
    copy = fingerprint_tables(conn, copy_schema, ALL_TABLES)
    assert copy == live
    assert live["orders"].rows == ORDERS
    assert live["order_items"].rows > ORDERS  # 1-4 items per order
    assert len({fingerprint.content_hash for fingerprint in live.values()}) == len(ALL_TABLES)
    report = verify_fingerprints(conn, copy_schema, live)
    assert report.passed and report.mismatches == ()
    ensure_passed(report)


def test_md5_fingerprints_also_match_and_differ_from_the_fast_hash(
    conn: psycopg.Connection, copy_schema: str
) -> None:
    live = fingerprint_tables(conn, "public", ["orders"], algorithm="md5")
    assert fingerprint_tables(conn, copy_schema, ["orders"], algorithm="md5") == live
    assert (
        live["orders"].content_hash != fingerprint_tables(conn, "public", ["orders"])["orders"].content_hash
    )
    assert verify_fingerprints(conn, copy_schema, live).passed


def test_session_time_zone_does_not_change_the_fingerprint(conn: psycopg.Connection) -> None:
    utc = fingerprint_tables(conn, "public", ["orders", "events"])
    conn.execute("SET TimeZone = 'America/New_York'")
    conn.execute("SET DateStyle = 'SQL, DMY'")
    assert fingerprint_tables(conn, "public", ["orders", "events"]) == utc
    # The pinned settings last only for the fingerprint's own transaction.
    assert conn.execute("SHOW TimeZone").fetchone() == ("America/New_York",)


def test_a_single_changed_value_is_a_content_mismatch(conn: psycopg.Connection, copy_schema: str) -> None:
    conn.execute(
        sql.SQL("UPDATE {}.products SET name = name || '.' WHERE id = 7").format(sql.Identifier(copy_schema))
    )
    mismatches = mismatched_tables(conn, copy_schema)
    assert list(mismatches) == ["products"]
    assert "has the expected" in mismatches["products"] and "different content" in mismatches["products"]


def test_a_deleted_row_is_a_row_count_mismatch(conn: psycopg.Connection, copy_schema: str) -> None:
    conn.execute(
        sql.SQL("DELETE FROM {}.events WHERE id = (SELECT min(id) FROM {}.events)").format(
            sql.Identifier(copy_schema), sql.Identifier(copy_schema)
        )
    )
    mismatches = mismatched_tables(conn, copy_schema)
    assert list(mismatches) == ["events"]
    assert "(1 fewer): rows were lost or added" in mismatches["events"]


def test_a_duplicated_row_is_a_row_count_mismatch(conn: psycopg.Connection, copy_schema: str) -> None:
    conn.execute(
        sql.SQL("INSERT INTO {}.order_items SELECT * FROM {}.order_items LIMIT 1").format(
            sql.Identifier(copy_schema), sql.Identifier(copy_schema)
        )
    )
    mismatches = mismatched_tables(conn, copy_schema)
    assert list(mismatches) == ["order_items"]
    assert "(1 more)" in mismatches["order_items"]


def test_a_row_replaced_by_a_duplicate_keeps_the_count_but_not_the_hash(
    conn: psycopg.Connection, copy_schema: str
) -> None:
    # Same row count, so only the content hash can see it; XOR of hashes would also see it, but a sum
    # also sees a row that appears twice after another was lost.
    schema = sql.Identifier(copy_schema)
    conn.execute(sql.SQL("DELETE FROM {}.users WHERE id = 3").format(schema))
    conn.execute(sql.SQL("INSERT INTO {}.users SELECT * FROM {}.users WHERE id = 4").format(schema, schema))
    mismatches = mismatched_tables(conn, copy_schema)
    assert list(mismatches) == ["users"]
    assert "different content" in mismatches["users"]


def test_every_mismatch_is_reported_and_the_error_names_the_first(
    conn: psycopg.Connection, copy_schema: str
) -> None:
    schema = sql.Identifier(copy_schema)
    conn.execute(
        sql.SQL(
            "DELETE FROM {}.transactions WHERE ctid IN (SELECT ctid FROM {}.transactions LIMIT 3)"
        ).format(schema, schema)
    )
    conn.execute(sql.SQL("UPDATE {}.products SET stock = stock + 1 WHERE id = 2").format(schema))
    report = verify_fingerprints(conn, copy_schema, fingerprint_tables(conn, "public", ALL_TABLES))
    assert not report.passed
    assert len(report.mismatches) == 2
    with pytest.raises(VerificationFailed) as raised:
        ensure_passed(report)
    message = str(raised.value)
    assert raised.value.exit_code == ExitCode.VERIFY_FAILED
    assert "\n" not in message
    assert message.startswith(f"verification of schema {copy_schema} of database ")
    assert "fingerprint products found 1 problem (and 1 more failing check)" in message


def test_restore_into_a_scratch_database_has_the_same_fingerprints(
    postgres: Postgres, seeded: str, conn: psycopg.Connection
) -> None:
    scratch = postgres.create_database("verify_fp_scratch")
    environment = {**os.environ, "PGPASSFILE": str(postgres.passfile)}
    try:
        dump = subprocess.run(
            [
                str(postgres.bin_dir / "pg_dump"),
                "-Fc",
                "-h",
                "127.0.0.1",
                "-p",
                str(postgres.port),
                "-U",
                "postgres",
                "-d",
                seeded,
            ],
            capture_output=True,
            check=True,
            env=environment,
        )
        subprocess.run(
            [
                str(postgres.bin_dir / "pg_restore"),
                "-h",
                "127.0.0.1",
                "-p",
                str(postgres.port),
                "-U",
                "postgres",
                "-d",
                scratch,
                "--no-owner",
            ],
            input=dump.stdout,
            capture_output=True,
            check=True,
            env=environment,
        )
        with psycopg.connect(postgres.conninfo(scratch)) as restored:
            restored_fingerprints = fingerprint_tables(restored, "public", ALL_TABLES)
        assert restored_fingerprints == fingerprint_tables(conn, "public", ALL_TABLES)
    finally:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))


def test_a_missing_table_or_schema_fails_before_hashing(conn: psycopg.Connection, copy_schema: str) -> None:
    conn.execute(sql.SQL("DROP TABLE {}.events").format(sql.Identifier(copy_schema)))
    with pytest.raises(VerificationFailed, match="lacks table events: the data is incomplete"):
        fingerprint_tables(conn, copy_schema, ALL_TABLES)
    with pytest.raises(VerificationFailed, match="schema 'no_such_schema' has no tables"):
        fingerprint_tables(conn, "no_such_schema", ["orders"])
    with pytest.raises(UsageError, match="no tables to fingerprint"):
        fingerprint_tables(conn, "public", [])


def test_fingerprint_reads_in_the_callers_open_transaction(postgres: Postgres, seeded: str) -> None:
    with psycopg.connect(postgres.conninfo(seeded)) as connection:
        before = fingerprint_tables(connection, "public", ["products"])
        connection.execute("UPDATE products SET stock = stock + 1 WHERE id = 2")
        during = fingerprint_tables(connection, "public", ["products"])
        connection.rollback()
        after = fingerprint_tables(connection, "public", ["products"])
    assert during["products"].content_hash != before["products"].content_hash
    assert after == before


# --- pure comparison ---------------------------------------------------------------------------------


def fingerprint(
    table: str, rows: int, content_hash: str, algorithm: str = "hashtextextended"
) -> TableFingerprint:
    return TableFingerprint.model_validate(
        {"table": table, "rows": rows, "content_hash": content_hash, "algorithm": algorithm}
    )


def test_comparison_reasons_name_table_counts_and_hashes() -> None:
    expected = {
        "orders": fingerprint("orders", 10, "00000000000000aa"),
        "users": fingerprint("users", 5, "00000000000000bb"),
        "events": fingerprint("events", 3, "00000000000000cc"),
        "products": fingerprint("products", 2, "00000000000000dd", "md5"),
    }
    actual = {
        "orders": fingerprint("orders", 10, "00000000000000aa"),
        "users": fingerprint("users", 5, "00000000000000ff"),
        "products": fingerprint("products", 2, "00000000000000dd"),
        "extra": fingerprint("extra", 1, "0000000000000001"),
    }
    report = compare_fingerprints(expected, actual, subject="schema r1")
    assert not report.passed
    assert report.mismatches == (
        "table users in schema r1 has the expected 5 rows but different content (hash 00000000000000ff, "
        "expected 00000000000000bb): values were changed or rows replaced by others",
        "table events in schema r1 was not fingerprinted, so its 3 expected rows are unverified",
        "table products in schema r1 was hashed with hashtextextended but the expected fingerprint uses md5;"
        " fingerprint it again with md5",
    )
    assert [check.violations for check in report.checks] == [0, 1, 3, 1]


def test_an_empty_expectation_never_passes() -> None:
    assert not compare_fingerprints({}, {}, subject="schema r1").passed


def test_fingerprints_round_trip_through_a_manifest_and_reject_bad_hashes() -> None:
    original = fingerprint("orders", 10, "0123456789abcdef")
    assert TableFingerprint.model_validate_json(original.model_dump_json()) == original
    with pytest.raises(ValueError, match="content_hash"):
        fingerprint("orders", 10, "not-a-hash")
    with pytest.raises(ValueError, match="rows"):
        fingerprint("orders", -1, "0123456789abcdef")


def test_domains_map_to_their_tables() -> None:
    assert dict(DOMAIN_TABLES) == {
        "orders": ("orders", "order_items"),
        "users": ("users",),
        "products": ("products",),
        "transactions": ("transactions",),
        "logs": ("events",),
    }
    assert tables_for(["transactions", "orders"]) == ("orders", "order_items", "transactions")
    assert set(tables_for(list(DOMAIN_TABLES))) == set(ALL_TABLES)
    with pytest.raises(UsageError, match="unknown data domain 'payments': choose from orders, users"):
        tables_for(["payments"])
