"""Carry rows written to live's copied domains during a restore over into the restored copy.

A restore of some domains copies the other domains from live at the start (`restore_beside`, one
pg_dump snapshot) while the order service still runs; the service is fenced only before the swap. Rows it
writes to the copied tables in between (new users, events, stock changes) would otherwise stay behind in
the replaced database. `catch_up` runs with the service fenced (nothing writes to live) and brings the
copy's copied tables level with live, in one transaction on the copy:

1. rows of live that the copy's snapshot may not have seen (`SnapshotBound`: judged by their xmin) are
   moved with binary COPY into a temporary table on the copy and upserted by primary key;
2. when the copy then holds more rows than live, the rows whose key is gone from live are deleted (live's
   keys are moved with COPY into a temporary table);
3. every changed table's fingerprint must then equal live's, still inside the transaction;
4. sequences the copied tables own get live's position, or ids handed out after the swap collide.

A row that breaks a foreign key of the copy (a payment for an order the restored backup does not have,
a user deleted from live whom restored orders reference) is never dropped: the transaction is rolled back,
the copy stays as it was and VerificationFailed names the table, the number of rows and what to do.

Why not copy the domains again while fenced: that is a full dump and load of users, products and events
inside the fence (the service is down for it); the rows written during a restore are a few thousand at
most, and finding them by xmin costs one sequential scan per table (docs/decisions.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from recovery.drivers.db import connect
from recovery.errors import ExternalFailure, PreconditionFailed, VerificationFailed, first_line
from recovery.restore.rows import SCHEMA, TableShape, level_sequences, table_shape
from recovery.verify.domains import ALL_TABLES, DOMAIN_TABLES
from recovery.verify.fingerprint import fastest_algorithm, fingerprint_tables

_XID_MODULUS = 2**32
_XID_HALF = 2**31
_SNAPSHOT_TEXT = re.compile(r"^(\d+):(\d+):((?:\d+(?:,\d+)*)?)\Z")


# --- pure parts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotBound:
    """Which rows a snapshot may not have seen, from its `pg_current_snapshot()` text. Pure.

    The text is `xmin:xmax:xip,...` in 64-bit transaction ids: every transaction before `xmin` had ended
    when the snapshot was taken, those from `xmax` on had not started, and the listed `xip` were running.
    A row's `xmin` column (the transaction that wrote this version of it) is a 32-bit id that wraps
    around, so it is compared circularly with the low 32 bits of the bound: `(xid - bound) mod 2^32 <
    2^31` means "at or after the bound", exactly as PostgreSQL orders ids (TransactionIdPrecedes). The
    comparison is right for every row written since the snapshot, as long as fewer than 2^31 ids pass
    before the catch-up (PostgreSQL itself stops assigning ids long before that, to avoid wraparound).

    The bound is the snapshot's `xmin`, not its `xmax` with the `xip` list: `xip` lists top-level
    transactions only, so a row written by a subtransaction (a savepoint) of a transaction that was
    running at the snapshot has an id below `xmax` that is not in `xip`, and would be taken as seen.
    Every such id is at or after `xmin` (a subtransaction's id is assigned after its parent's). The rows
    of transactions that committed between `xmin` and `xmax` are taken too although the copy has them:
    they are upserted with the same values, which changes nothing (the upsert skips equal rows).

    Every insert and update writes a row version with a new xmin, so a row that is not taken has not
    changed since the snapshot. A very old frozen row may keep an xmin from before a wraparound (or the
    special ids 1 and 2 of old servers), which can compare as "after": such a row is upserted again with
    its own values, which is harmless.
    """

    xmin: int
    xmax: int
    xip: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> SnapshotBound:
        found = _SNAPSHOT_TEXT.match(text.strip())
        if found is None:
            raise PreconditionFailed(
                f"the recorded live snapshot {text!r} is not pg_current_snapshot() text (xmin:xmax:xip); "
                "start a new restore",
                code="restore.catch_up_snapshot",
            )
        xip = tuple(int(item) for item in found[3].split(",") if item)
        return cls(int(found[1]), int(found[2]), xip)

    @property
    def bound32(self) -> int:
        """The low 32 bits of the snapshot's xmin: what a row's 32-bit xmin is compared with."""
        return self.xmin % _XID_MODULUS

    def may_be_new(self, row_xmin: int) -> bool:
        """The Python twin of `row_filter`: True when a row with this 32-bit xmin must be carried over."""
        return (row_xmin - self.bound32) % _XID_MODULUS < _XID_HALF

    def row_filter(self) -> sql.Composed:
        """The WHERE condition choosing live's rows the snapshot may not have seen (bigint arithmetic:
        `& 4294967295` turns a negative difference into its value mod 2^32)."""
        return sql.SQL("((xmin::text::bigint - {}) & 4294967295) < 2147483648").format(
            sql.Literal(self.bound32)
        )


def temp_name(table: str, what: str) -> str:
    return f"catch_up_{what}_{table}"


def upsert_statement(shape: TableShape, temp: str) -> sql.Composed:
    """INSERT the temporary table's rows into the table, updating the rows whose key exists. Pure.

    Rows equal to the copy's (compared as text, which every type has) are left alone, so the statement's
    row count is the number of rows inserted or changed and a rerun changes nothing."""
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in shape.columns)
    overriding = sql.SQL(" OVERRIDING SYSTEM VALUE") if shape.identity_always else sql.SQL("")
    rest = [name for name in shape.columns if name not in shape.key]
    head = sql.SQL("INSERT INTO {} AS target ({}){} SELECT {} FROM {} ON CONFLICT ({})").format(
        sql.Identifier(SCHEMA, shape.table),
        columns,
        overriding,
        columns,
        sql.Identifier(temp),
        sql.SQL(", ").join(sql.Identifier(name) for name in shape.key),
    )
    if not rest:
        return sql.Composed([head, sql.SQL(" DO NOTHING")])
    targets = sql.SQL(", ").join(sql.Identifier(name) for name in rest)
    excluded = sql.SQL(", ").join(sql.Identifier("excluded", name) for name in rest)
    current = sql.SQL(", ").join(sql.Identifier("target", name) for name in rest)
    return sql.Composed(
        [
            head,
            sql.SQL(
                " DO UPDATE SET ({}) = ROW({}) WHERE ROW({})::text IS DISTINCT FROM ROW({})::text"
            ).format(targets, excluded, current, excluded),
        ]
    )


def delete_statement(shape: TableShape, keys_temp: str) -> sql.Composed:
    """DELETE the table's rows whose primary key is not among live's keys (the temporary table). Pure."""
    match = sql.SQL(" AND ").join(
        sql.SQL("live_key.{} = target.{}").format(sql.Identifier(name), sql.Identifier(name))
        for name in shape.key
    )
    return sql.SQL(
        "DELETE FROM {} AS target WHERE NOT EXISTS (SELECT 1 FROM {} AS live_key WHERE {})"
    ).format(sql.Identifier(SCHEMA, shape.table), sql.Identifier(keys_temp), match)


def table_unchanged(new_rows: int, live_rows: int, copy_rows: int) -> bool:
    """True when live holds nothing the copy lacks. Pure.

    Every insert and update writes a row version with a new xmin, so with no row taken by the snapshot
    bound nothing was inserted or updated; a delete since then lowers live's count, unless an insert
    made up for it, and that insert would have been taken."""
    return new_rows == 0 and live_rows == copy_rows


def needs_deletes(copy_rows_after_upsert: int, live_rows: int) -> bool:
    """After the upsert the copy holds every key of live (each live row was seen by the snapshot or
    taken since), so its keys equal live's exactly when the counts are equal. Pure."""
    return copy_rows_after_upsert != live_rows


def domain_of(table: str) -> str:
    return next((domain for domain, tables in DOMAIN_TABLES.items() if table in tables), table)


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str  # the referencing table
    columns: tuple[str, ...]
    referenced: str
    referenced_columns: tuple[str, ...]


def reference_refusal(key: ForeignKey, rows: int | None, *, deleting: bool) -> str:
    """The one line for rows that would break a foreign key of the copy (`rows` None: not counted).
    Pure."""
    if rows is None:
        return (
            f"catch-up: rows written to live during the restore break {key.name} ({key.table} references "
            f"{key.referenced}) in the restored copy; restore the {domain_of(key.table)} and "
            f"{domain_of(key.referenced)} domains together; the restored copy was not changed"
        )
    if deleting:
        what = (
            f"{rows} {key.referenced} row{'s' if rows != 1 else ''} deleted from live during the restore "
            f"{'are' if rows != 1 else 'is'} still referenced by {key.table} in the restored copy "
            f"({key.name})"
        )
        todo = f"restore the {domain_of(key.referenced)} domain too"
    else:
        what = (
            f"{rows} {key.table} row{'s' if rows != 1 else ''} written to live during the restore "
            f"reference{'' if rows != 1 else 's'} {key.referenced} rows the restored copy does not have "
            f"({key.name})"
        )
        todo = f"restore the {domain_of(key.table)} domain too"
    return (
        f"catch-up of {key.table if not deleting else key.referenced}: {what}; {todo} (or restore from "
        "a backup that has those rows); the restored copy was not changed"
    )


@dataclass(frozen=True)
class TableCatchUp:
    table: str
    new_rows: int  # rows of live taken by the snapshot bound
    upserted: int  # rows inserted or changed in the copy
    deleted: int
    sequences_set: int
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.upserted or self.deleted or self.sequences_set)


@dataclass(frozen=True)
class CatchUpReport:
    tables: tuple[TableCatchUp, ...]
    seconds: float

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(item.table for item in self.tables if item.changed)

    def to_json(self) -> dict[str, object]:
        return {
            "tables": {
                item.table: {
                    "new_rows": item.new_rows,
                    "upserted": item.upserted,
                    "deleted": item.deleted,
                    "sequences_set": item.sequences_set,
                    "seconds": item.seconds,
                }
                for item in self.tables
            },
            "changed": list(self.changed),
            "seconds": self.seconds,
        }


# --- I/O ------------------------------------------------------------------------------------------------


def catch_up(live_conninfo: str, copy_conninfo: str, tables: Sequence[str], snapshot: str) -> CatchUpReport:
    """Bring the copy's `tables` level with live; call it only while nothing writes to live.

    Tables run in ALL_TABLES order (referenced tables first). Everything happens in one transaction on
    the copy: on any failure the copy is left as it was. Raises VerificationFailed for rows that would
    break a foreign key and when a changed table's fingerprint differs from live's afterwards.
    """
    bound = SnapshotBound.parse(snapshot)
    ordered = tuple(table for table in ALL_TABLES if table in tables)
    unknown = [table for table in tables if table not in ALL_TABLES]
    if unknown:
        raise PreconditionFailed(f"cannot catch up table {unknown[0]!r}: it belongs to no data domain")
    started = time.perf_counter()
    with (
        connect(live_conninfo, autocommit=False, what="the live database") as live,
        connect(copy_conninfo, autocommit=False, what="the restored copy") as copy,
    ):
        try:
            # One snapshot of live for every read: counts, keys and fingerprints agree with each other.
            live.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            results = _catch_up_tables(live, copy, ordered, bound)
            copy.commit()
        except psycopg.Error as exc:
            raise ExternalFailure(
                f"catch-up of the restored copy failed: {first_line(exc)}; the restored copy was not changed",
                code="restore.catch_up_failed",
            ) from None
        finally:
            live.rollback()
    return CatchUpReport(tuple(results), round(time.perf_counter() - started, 3))


@dataclass
class _Progress:
    """One table's work so far (mutable while the transaction runs; reported as TableCatchUp)."""

    shape: TableShape
    new_rows: int = 0
    upserted: int = 0
    deleted: int = 0
    seconds: float = 0.0


def _catch_up_tables(
    live: psycopg.Connection[Any], copy: psycopg.Connection[Any], tables: Sequence[str], bound: SnapshotBound
) -> list[TableCatchUp]:
    """Upserts referenced tables first (a new row's parent is in before it), deletes referencing tables
    first (a row's children are gone before it), so a foreign key between two copied tables never
    fails on the way; only references into restored tables can."""
    try:
        work = [_Progress(table_shape(copy, table)) for table in tables]
        for item in work:
            began = time.perf_counter()
            _upsert_table(live, copy, item, bound)
            item.seconds += time.perf_counter() - began
        for item in reversed(work):
            began = time.perf_counter()
            _delete_from_table(live, copy, item)
            item.seconds += time.perf_counter() - began
        changed = [item.shape.table for item in work if item.upserted or item.deleted]
        if changed:
            _check_fingerprints(live, copy, changed)
        # Sequences last: setval is not undone by a rollback, so it runs once every check has passed.
        # Checked for every table, changed or not: an insert that was rolled back still used up its id.
        results: list[TableCatchUp] = []
        for item in work:
            began = time.perf_counter()
            moved = level_sequences(live, copy, item.shape.table)
            seconds = round(item.seconds + time.perf_counter() - began, 3)
            results.append(
                TableCatchUp(item.shape.table, item.new_rows, item.upserted, item.deleted, moved, seconds)
            )
    except BaseException:
        copy.rollback()
        raise
    return results


def _upsert_table(
    live: psycopg.Connection[Any], copy: psycopg.Connection[Any], item: _Progress, bound: SnapshotBound
) -> None:
    """Take live's rows the snapshot may not have seen into a temporary table, then upsert them."""
    shape = item.shape
    rows = temp_name(shape.table, "rows")
    copy.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
            sql.Identifier(rows), sql.Identifier(SCHEMA, shape.table)
        )
    )
    select = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        _columns(shape.columns), sql.Identifier(SCHEMA, shape.table), bound.row_filter()
    )
    item.new_rows = _move(live, copy, select, rows, shape.columns)
    if item.new_rows:
        upsert = upsert_statement(shape, rows)
        item.upserted = max(_guarded(copy, shape, rows, lambda: copy.execute(upsert).rowcount), 0)


def _delete_from_table(live: psycopg.Connection[Any], copy: psycopg.Connection[Any], item: _Progress) -> None:
    """Delete the rows whose key is gone from live, when the counts say there are any."""
    shape = item.shape
    table = shape.table
    live_rows = _count(live, table)
    copy_rows = _count(copy, table)
    if table_unchanged(item.new_rows, live_rows, copy_rows) or not needs_deletes(copy_rows, live_rows):
        return
    keys = temp_name(table, "keys")
    copy.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(keys), _columns(shape.key), sql.Identifier(SCHEMA, table)
        )
    )
    live_keys = sql.SQL("SELECT {} FROM {}").format(_columns(shape.key), sql.Identifier(SCHEMA, table))
    _move(live, copy, live_keys, keys, shape.key)
    copy.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(keys)))
    delete = delete_statement(shape, keys)
    item.deleted = max(_guarded(copy, shape, keys, lambda: copy.execute(delete).rowcount, deleting=True), 0)


def _guarded(
    copy: psycopg.Connection[Any],
    shape: TableShape,
    temp: str,
    statement: Callable[[], int],
    *,
    deleting: bool = False,
) -> int:
    """Run an upsert or delete; a foreign key it would break becomes VerificationFailed with a count."""
    try:
        with copy.transaction():  # a savepoint: the counting below needs a working transaction
            return int(statement())
    except psycopg.errors.ForeignKeyViolation as exc:
        name = exc.diag.constraint_name or ""
        key = _foreign_key(copy, name)
        if key is None:
            raise
        # An update of a key that other tables reference breaks their rows, not ours: no count then.
        ours = key.referenced == shape.table if deleting else key.table == shape.table
        rows = _count_breaking(copy, key, shape, temp, deleting=deleting) if ours else None
        raise VerificationFailed(
            reference_refusal(key, rows, deleting=deleting), code="restore.catch_up_reference"
        ) from None


def _move(
    live: psycopg.Connection[Any],
    copy: psycopg.Connection[Any],
    select: sql.Composable,
    temp: str,
    columns: Sequence[str],
) -> int:
    """COPY the rows of `select` on live into the temporary table on the copy (binary; same server
    major, same column types). Returns the number of rows moved."""
    out = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(select)
    into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(sql.Identifier(temp), _columns(columns))
    with copy.cursor() as writer:
        with live.cursor().copy(out) as source, writer.copy(into) as sink:
            for chunk in source:
                sink.write(chunk)
        return max(writer.rowcount, 0)


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, table))).fetchone()
    return int(row[0]) if row else 0


def _columns(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def _foreign_key(copy: psycopg.Connection[Any], name: str) -> ForeignKey | None:
    row = copy.execute(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text,"
        " ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
        "   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),"
        " ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
        "   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)"
        " FROM pg_constraint c WHERE c.contype = 'f' AND c.conname = %s"
        " AND c.connamespace = %s::regnamespace",
        (name, SCHEMA),
    ).fetchone()
    if row is None:
        return None
    return ForeignKey(
        name, _bare(str(row[0])), tuple(map(str, row[2])), _bare(str(row[1])), tuple(map(str, row[3]))
    )


def _bare(regclass: str) -> str:
    return regclass.split(".")[-1].strip('"')


def _count_breaking(
    copy: psycopg.Connection[Any], key: ForeignKey, shape: TableShape, temp: str, *, deleting: bool
) -> int:
    """How many rows break `key`: taken rows without their referenced row, or, for a delete, rows of the
    table being deleted from (gone from live) that the copy still references."""
    if not deleting:
        match = sql.SQL(" AND ").join(
            sql.SQL("ref.{} = new.{}").format(sql.Identifier(r), sql.Identifier(c))
            for c, r in zip(key.columns, key.referenced_columns, strict=True)
        )
        present = sql.SQL(" AND ").join(
            sql.SQL("new.{} IS NOT NULL").format(sql.Identifier(c)) for c in key.columns
        )
        query = sql.SQL(
            "SELECT count(*) FROM {} AS new WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS ref WHERE {})"
        ).format(sql.Identifier(temp), present, sql.Identifier(SCHEMA, key.referenced), match)
    else:
        gone = sql.SQL(" AND ").join(
            sql.SQL("live_key.{} = gone.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in shape.key
        )
        used = sql.SQL(" AND ").join(
            sql.SQL("child.{} = gone.{}").format(sql.Identifier(c), sql.Identifier(r))
            for c, r in zip(key.columns, key.referenced_columns, strict=True)
        )
        query = sql.SQL(
            "SELECT count(*) FROM {} AS gone WHERE NOT EXISTS (SELECT 1 FROM {} AS live_key WHERE {})"
            " AND EXISTS (SELECT 1 FROM {} AS child WHERE {})"
        ).format(
            sql.Identifier(SCHEMA, key.referenced),
            sql.Identifier(temp),
            gone,
            sql.Identifier(SCHEMA, key.table),
            used,
        )
    row = copy.execute(query).fetchone()
    return int(row[0]) if row else 0


def _check_fingerprints(
    live: psycopg.Connection[Any], copy: psycopg.Connection[Any], tables: Sequence[str]
) -> None:
    """Every changed table must now be live's, row for row (the copy's side sees this transaction)."""
    algorithm = fastest_algorithm(copy)
    expected = fingerprint_tables(live, SCHEMA, tables, algorithm=algorithm)
    found = fingerprint_tables(copy, SCHEMA, tables, algorithm=algorithm)
    for table in tables:
        want, got = expected[table], found[table]
        if (want.rows, want.content_hash) != (got.rows, got.content_hash):
            raise VerificationFailed(
                f"catch-up of {table}: the restored copy holds {got.rows} rows (hash {got.content_hash}) "
                f"but live {want.rows} (hash {want.content_hash}) after the catch-up; is the order service "
                "really fenced? the restored copy was not changed",
                code="restore.catch_up_mismatch",
            )


def report_lines(report: CatchUpReport) -> Mapping[str, str]:
    """One sentence per table for the run's notes. Pure."""
    lines: dict[str, str] = {}
    for item in report.tables:
        if not item.changed:
            lines[item.table] = f"{item.table}: unchanged since the copy was taken"
            continue
        lines[item.table] = (
            f"{item.table}: {item.upserted} rows inserted or updated, {item.deleted} deleted, "
            f"{item.sequences_set} sequences moved to live's position ({item.seconds:.2f} s)"
        )
    return lines
