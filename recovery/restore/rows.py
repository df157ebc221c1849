"""Rows carried from one database into another: the one place that knows a table's shape (columns,
primary key, owned sequences) from pg_catalog, and how an upsert or a sequence move is written.

The catch-up (`catchup.py`: rows written to live during a restore, into the copy) and the carry-over
(`carryover.py`: orders accepted after a restore point, from the failed database into live) both build
on it; neither spells a table's columns or a sequence's name by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from recovery.errors import PreconditionFailed

SCHEMA = "public"


@dataclass(frozen=True)
class TableShape:
    """What the upsert needs to know about a table of the copy."""

    table: str
    columns: tuple[str, ...]  # insertable columns in table order (no generated columns)
    key: tuple[str, ...]  # primary key columns, in key order
    identity_always: bool  # a GENERATED ALWAYS AS IDENTITY column: the insert must override it


@dataclass(frozen=True)
class SequencePosition:
    last_value: int
    is_called: bool  # False: last_value is the next value handed out, not one already handed out
    increment: int

    @property
    def used(self) -> int:
        """The last value handed out (or the one before the first, for a fresh sequence)."""
        return self.last_value if self.is_called else self.last_value - self.increment


def sequence_behind(copy: SequencePosition, live: SequencePosition) -> bool:
    """True when the copy's sequence would hand out a value live already handed out. Pure.

    Only ever moved forward: a value the copy handed out (a rolled-back insert) must not come again."""
    if live.increment < 0:
        return copy.used > live.used
    return copy.used < live.used


def table_shape(copy: psycopg.Connection[Any], table: str) -> TableShape:
    """The insertable columns and the primary key of `table`, from pg_catalog."""
    columns = copy.execute(
        "SELECT attname, attidentity FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    key = copy.execute(
        "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY"
        " AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n",
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    if not key:
        raise PreconditionFailed(
            f"table {table} of the restored copy has no primary key, so rows written to live cannot be "
            "matched to its rows; restore its domain too",
            code="restore.catch_up_no_key",
        )
    return TableShape(
        table=table,
        columns=tuple(str(row[0]) for row in columns),
        key=tuple(str(row[0]) for row in key),
        identity_always=any(row[1] == "a" for row in columns),
    )


def owned_sequences(conn: psycopg.Connection[Any], table: str) -> list[str]:
    """Sequences the table owns: serial columns (deptype 'a') and identity columns ('i')."""
    rows = conn.execute(
        "SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
        " AND d.refobjid = %s::regclass AND d.deptype IN ('a', 'i') ORDER BY 1",
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    return [str(row[0]) for row in rows]


def sequence_position(conn: psycopg.Connection[Any], sequence: str) -> SequencePosition:
    row = conn.execute(
        sql.SQL("SELECT s.last_value, s.is_called, p.seqincrement FROM {} AS s, pg_sequence AS p").format(
            sql.Identifier(SCHEMA, sequence)
        )
        + sql.SQL(" WHERE p.seqrelid = {}::regclass").format(sql.Literal(f"{SCHEMA}.{sequence}"))
    ).fetchone()
    assert row is not None  # a sequence relation always has its one row
    return SequencePosition(int(row[0]), bool(row[1]), int(row[2]))


def level_sequences(live: psycopg.Connection[Any], copy: psycopg.Connection[Any], table: str) -> int:
    """Move the copy's sequences owned by `table` up to live's positions (never back); how many moved."""
    moved = 0
    for sequence in owned_sequences(live, table):
        position = sequence_position(live, sequence)
        if not sequence_behind(sequence_position(copy, sequence), position):
            continue
        copy.execute(
            "SELECT setval(%s::regclass, %s, %s)",
            (f"{SCHEMA}.{sequence}", position.last_value, position.is_called),
        )
        moved += 1
    return moved


def column_names(conn: psycopg.Connection[Any], table: str, schema: str = SCHEMA) -> frozenset[str]:
    """Every column `table` has now (a release may have renamed or added some)."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (f"{schema}.{table}",),
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def insert_statement(
    shape: TableShape, *, update: tuple[str, ...] = (), when: str | None = None, report_inserted: bool = False
) -> sql.Composed:
    """INSERT one row of `shape` (placeholders in its column order). A row whose key exists is left alone,
    or with `update` has those columns set from the new row, only `when` (SQL over `target` and
    `excluded`) holds. `report_inserted` returns one boolean: inserted (True) or updated (False). Pure."""
    overriding = sql.SQL(" OVERRIDING SYSTEM VALUE") if shape.identity_always else sql.SQL("")
    statement = sql.SQL("INSERT INTO {} AS target ({}){} VALUES ({}) ON CONFLICT ({})").format(
        sql.Identifier(SCHEMA, shape.table),
        sql.SQL(", ").join(sql.Identifier(name) for name in shape.columns),
        overriding,
        sql.SQL(", ").join(sql.Placeholder() for _ in shape.columns),
        sql.SQL(", ").join(sql.Identifier(name) for name in shape.key),
    )
    parts: list[sql.Composable] = [statement]
    if not update:
        parts.append(sql.SQL(" DO NOTHING"))
    else:
        parts.append(
            sql.SQL(" DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(name), sql.Identifier("excluded", name))
                    for name in update
                )
            )
        )
        if when:
            parts.append(sql.SQL(" WHERE ") + sql.SQL(when))  # type: ignore[arg-type]  # a constant of ours
    if report_inserted:
        parts.append(sql.SQL(" RETURNING (xmax = 0)"))
    return sql.Composed(parts)


def owned_sequence_columns(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str]]:
    """(sequence, column) for each sequence `table` owns (serial and identity columns), from pg_depend."""
    rows = conn.execute(
        "SELECT s.relname, a.attname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
        " WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
        " AND d.refobjid = %s::regclass AND d.deptype IN ('a', 'i') ORDER BY 1",
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    return [(str(row[0]), str(row[1])) for row in rows]


def advance_sequences_past_rows(conn: psycopg.Connection[Any], table: str) -> int:
    """After rows were inserted with explicit ids: move each sequence `table` owns past the largest value
    in its column (never back), so the next generated id is new. How many moved."""
    moved = 0
    for sequence, column in owned_sequence_columns(conn, table):
        row = conn.execute(
            sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(SCHEMA, table))
        ).fetchone()
        largest = None if row is None or row[0] is None else int(row[0])
        position = sequence_position(conn, sequence)
        if largest is None or largest <= position.used:
            continue
        conn.execute("SELECT setval(%s::regclass, %s, true)", (f"{SCHEMA}.{sequence}", largest))
        moved += 1
    return moved
