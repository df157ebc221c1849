"""Swap staged tables in for live's in one transaction, keeping live's tables aside as the safe copy.

`swap_tables_in` moves live's tables of the restored domains into `replaced_<id>` and the staging
tables of `restore_<id>` into `public`, in one transaction: both moves commit together or not at all,
so a crash (even `kill -9` of the server) leaves either live's tables or the restored ones in `public`,
whole. Sequences and indexes owned by a table move with it and keep their names, so the service's
queries (unqualified names, its search path untouched) find the restored tables. Foreign keys of live's
other tables that referenced the old tables are dropped and made again against the new ones (validated
in the same transaction). `swap_tables_back` undoes it; `drop_replaced_tables` (confirmed) is the only
thing that removes the set-aside tables. The caller fences the service first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from recovery.drivers.db import connect, refuse_password
from recovery.errors import ConfirmationRequired, ExternalFailure, PreconditionFailed, first_line
from recovery.restore.staged import LIVE_SCHEMA, REPLACED_PREFIX, schema_exists, staging_names

# How long the swap waits for a lock (a session the fence did not end) before it gives up unchanged.
SWAP_LOCK_TIMEOUT = "15s"


@dataclass(frozen=True)
class TableSwap:
    live_db: str
    restore_id: str
    direction: Literal["in", "back"]
    tables: tuple[str, ...]
    set_aside_in: str  # the schema the tables that were live are in now
    already_done: bool  # an earlier attempt committed it (a resumed run)
    swapped_at: datetime


@dataclass(frozen=True)
class _Move:
    """One exchange: `tables` of `public` go to `out_to`, those of `in_from` come into `public`."""

    out_to: str
    in_from: str


def swap_tables_in(conninfo_admin: str, *, live_db: str, restore_id: str, tables: Sequence[str]) -> TableSwap:
    """Make the staged tables live; live's go to `replaced_<id>`. Idempotent: after a committed swap
    (staging schema gone, replaced schema there) it changes nothing and says so."""
    names = staging_names(live_db, restore_id)
    done = _exchange(conninfo_admin, live_db, _Move(out_to=names.replaced, in_from=names.staging), tables)
    return TableSwap(live_db, restore_id, "in", tuple(tables), names.replaced, done, datetime.now(UTC))


def swap_tables_back(
    conninfo_admin: str, *, live_db: str, restore_id: str, tables: Sequence[str]
) -> TableSwap:
    """Undo `swap_tables_in`: the set-aside tables are live again; the restored ones go back to
    `restore_<id>` (rows written to them while they were live stay with them)."""
    names = staging_names(live_db, restore_id)
    done = _exchange(conninfo_admin, live_db, _Move(out_to=names.staging, in_from=names.replaced), tables)
    return TableSwap(live_db, restore_id, "back", tuple(tables), names.staging, done, datetime.now(UTC))


def drop_replaced_tables(
    conninfo_admin: str, *, live_db: str, restore_id: str, confirmed: bool = False
) -> bool:
    """Drop `replaced_<id>` (the tables a swap set aside, the way back); refused unless `confirmed`.
    False when there is nothing to drop, so a rerun is harmless."""
    names = staging_names(live_db, restore_id)
    if not confirmed:
        raise ConfirmationRequired(
            f"dropping schema {names.replaced} of {live_db} removes the tables it replaced and the way back; "
            "confirm explicitly (--yes) to drop it"
        )
    with _live(conninfo_admin, live_db) as conn:
        if not schema_exists(conn, names.replaced):
            return False
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(names.replaced)))
        return True


def replaced_schemas(conn: psycopg.Connection[Any]) -> list[str]:
    """Restore ids whose set-aside tables are kept in the connected database (`replaced_<id>`), sorted."""
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY 1", (REPLACED_PREFIX,)
    ).fetchall()
    return [str(row[0])[len(REPLACED_PREFIX) :] for row in rows]


def _exchange(conninfo_admin: str, live_db: str, move: _Move, tables: Sequence[str]) -> bool:
    """Run the exchange in one transaction. True when an earlier attempt had committed it already."""
    with _live(conninfo_admin, live_db) as conn:
        incoming, outgoing = schema_exists(conn, move.in_from), schema_exists(conn, move.out_to)
        if outgoing and not incoming:
            return True
        if not incoming:
            raise PreconditionFailed(
                f"schema {move.in_from} of {live_db} does not exist: there is nothing to swap in; run the "
                "restore again"
            )
        if outgoing:
            raise PreconditionFailed(
                f"schema {move.out_to} of {live_db} already exists; drop it (with confirmation) first"
            )
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(SWAP_LOCK_TIMEOUT)))
                _exchange_in_transaction(conn, move, tables)
        except psycopg.errors.LockNotAvailable:
            raise PreconditionFailed(
                f"tables of {live_db} stayed locked for {SWAP_LOCK_TIMEOUT}; fence or stop the order "
                "service, then swap again (nothing was changed)",
                code="restore.swap_busy",
            ) from None
        except psycopg.errors.ForeignKeyViolation as exc:
            raise PreconditionFailed(
                f"swapping in would break a reference from live's other tables: {first_line(exc)}; restore "
                "the referencing domain too (nothing was changed)",
                code="restore.swap_reference",
            ) from None
        except psycopg.Error as exc:
            raise ExternalFailure(
                f"swapping tables of {live_db} failed: {first_line(exc)}; nothing was changed",
                code="restore.swap_failed",
            ) from None
    return False


def _exchange_in_transaction(conn: psycopg.Connection[Any], move: _Move, tables: Sequence[str]) -> None:
    owner = _schema_owner(conn, move.in_from)
    conn.execute(
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(move.out_to), sql.Identifier(owner)
        )
    )
    # Foreign keys of the tables that stay (other domains) point at the outgoing tables by identity:
    # drop them and make them again, by name, against the incoming tables once those are in place.
    referencing = _foreign_keys_into(conn, tables)
    for table, name, _ in referencing:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(LIVE_SCHEMA, table), sql.Identifier(name)
            )
        )
    before = _sequence_positions(conn, LIVE_SCHEMA, tables)
    for table in tables:  # live's out first: names are per schema
        conn.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(LIVE_SCHEMA, table), sql.Identifier(move.out_to)
            )
        )
    for table in tables:
        conn.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(move.in_from, table), sql.Identifier(LIVE_SCHEMA)
            )
        )
    for table, name, definition in referencing:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(LIVE_SCHEMA, table), sql.Identifier(name), sql.SQL(definition)
            )
        )
    # Never hand out an id live already handed out: a sequence only moves forward.
    after = _sequence_positions(conn, LIVE_SCHEMA, tables)
    for (table, column), used in before.items():
        if after.get((table, column), used - 1) < used:
            conn.execute(
                "SELECT setval(pg_get_serial_sequence(%s, %s), %s, true)",
                (f"{LIVE_SCHEMA}.{table}", column, used),
            )
    # Left in it: the views of live's tables the verification read (nothing that holds data).
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(move.in_from)))


def _foreign_keys_into(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of live's foreign keys from the other tables into `tables`."""
    conn.execute("SET LOCAL search_path = pg_catalog")  # definitions spell `public.t`: found by name later
    rows = conn.execute(
        "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid"
        " WHERE c.contype = 'f' AND t.relnamespace = %s::regnamespace AND r.relnamespace = %s::regnamespace"
        " AND r.relname = ANY(%s) AND NOT t.relname = ANY(%s) ORDER BY 1, 2",
        (LIVE_SCHEMA, LIVE_SCHEMA, list(tables), list(tables)),
    ).fetchall()
    conn.execute("SET LOCAL search_path = DEFAULT")
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def _sequence_positions(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]
) -> dict[tuple[str, str], int]:
    """(table, column) -> the last value its owned sequence handed out, for the sequences that did."""
    rows = conn.execute(
        "SELECT c.relname, a.attname, s.last_value FROM pg_class c"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " JOIN pg_sequences s ON format('%%I.%%I', s.schemaname, s.sequencename)"
        " = pg_get_serial_sequence(format('%%I.%%I', %s::text, c.relname), a.attname)"
        " WHERE c.relnamespace = %s::regnamespace AND c.relname = ANY(%s) AND s.last_value IS NOT NULL",
        (schema, schema, list(tables)),
    ).fetchall()
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


def _schema_owner(conn: psycopg.Connection[Any], schema: str) -> str:
    row = conn.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (schema,)
    ).fetchone()
    if row is None:
        raise PreconditionFailed(f"schema {schema} does not exist")
    return str(row[0])


def _live(conninfo_admin: str, live_db: str) -> psycopg.Connection[Any]:
    refuse_password(conninfo_admin)
    return connect(make_conninfo(conninfo_admin, dbname=live_db), autocommit=True, what=f"database {live_db}")
