"""Database session helpers shared by the checks: one consistent snapshot and stable text output.

Every verification reads several tables and must see them at one instant (an order written between
reading `orders` and reading `order_items` would otherwise look like an order without items), so the
checks run inside one REPEATABLE READ, READ ONLY transaction when the caller's connection is idle.
Content hashes are computed over each row's text form, which depends on session settings (time zone,
date style, float digits, bytea format); they are pinned here so that the same rows give the same hash on
any connection and any server configured differently.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from recovery.errors import UsageError, VerificationFailed

Connection = psycopg.Connection[Any]

# Settings that change how a row is rendered as text; each is pinned for the snapshot's transaction.
_TEXT_SETTINGS: tuple[tuple[str, str], ...] = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)


@contextmanager
def consistent_snapshot(conn: Connection) -> Iterator[None]:
    """Run the body in one read-only snapshot with pinned text settings.

    When the connection is idle, a REPEATABLE READ, READ ONLY transaction is opened and ended here; when
    the caller already has a transaction open, its snapshot is used (as a savepoint) and the pinned
    settings last until the caller's transaction ends.
    """
    was_idle = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if was_idle:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for name, value in _TEXT_SETTINGS:
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        yield


def check_schema_name(schema: str) -> None:
    """Refuse a schema name that is empty or absurd before it reaches SQL (it is quoted there anyway)."""
    if not schema or len(schema) > 63 or "\x00" in schema:
        raise UsageError(
            f"invalid schema name {schema!r}: give a PostgreSQL schema name of 1 to 63 characters",
            code="verify.bad_schema",
        )


def qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def existing_tables(conn: Connection, schema: str) -> frozenset[str]:
    """The names of the tables in a schema (empty when the schema does not exist). Views count: a
    restore's staging schema shows live's tables of the domains not restored through views."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v')",
        (schema,),
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def require_tables(conn: Connection, schema: str, tables: tuple[str, ...]) -> None:
    """Fail with one line when the schema lacks any of the tables the check reads."""
    present = existing_tables(conn, schema)
    missing = [table for table in tables if table not in present]
    if not present:
        raise VerificationFailed(
            f"schema {schema!r} has no tables in database {conn.info.dbname!r}: check the schema name "
            "or restore the data first",
            code="verify.schema_missing",
        )
    if missing:
        raise VerificationFailed(
            f"schema {schema!r} lacks table{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
            "the data is incomplete; restore the missing tables before verifying",
            code="verify.table_missing",
        )


def table_columns(conn: Connection, schema: str, table: str) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (schema, table),
    ).fetchall()
    return tuple(str(row[0]) for row in rows)
