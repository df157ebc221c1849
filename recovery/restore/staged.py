"""Restore chosen domains into a staging schema of the live database, beside live's own tables.

Only the chosen domains' tables are built: `CREATE TABLE restore_<id>.t (LIKE public.t ...)` from live's
definitions (live must be at the backup's schema version), their rows loaded from the backup, then
their indexes, constraints and foreign keys (to the staging tables, or to live's tables of the domains
not restored, which checks every reference across domains), grants and statistics. Live's tables are
only read. The verification then reads the staging tables through a search path that puts the staging
schema first, and `recovery.restore.table_swap` moves the tables in, in one transaction.
docs/restore.md explains why this replaced a whole database rebuilt beside live.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from recovery.drivers.db import (
    connect,
    database_owner,
    first_error_line,
    refuse_password,
    schema_version,
    tool_env,
    tool_path,
)
from recovery.errors import ExternalFailure, PreconditionFailed
from recovery.restore.copy_script import CopyTarget, SequencePosition, read_script
from recovery.restore.database import (
    Source,
    StepTime,
    _feed,
    _run_loads,
    _Stopped,
    _Timer,
    plan_restore,
    restore_names,
)
from recovery.verify.domains import ALL_TABLES, DOMAIN_TABLES, tables_for

LIVE_SCHEMA = "public"
STAGING_PREFIX = "restore_"
REPLACED_PREFIX = "replaced_"
STAGING_NEEDS_SAME_VERSION = "restore.staging_version"  # the code of that refusal
# Index builds and loads of the staging tables: their commits may be lost in a server crash (the
# restore is rerun then); the swap commits synchronously.
_SESSION = ("SET synchronous_commit = off", "SET maintenance_work_mem = '256MB'")


@dataclass(frozen=True)
class StagingNames:
    live_db: str
    restore_id: str
    staging: str  # the schema the restored tables are built in
    replaced: str  # the schema live's tables are set aside in by the swap


def staging_names(live_db: str, restore_id: str) -> StagingNames:
    """Validate the names (the same rules as a whole-database restore's). Pure."""
    names = restore_names(live_db, restore_id)
    return StagingNames(live_db, names.restore_id, STAGING_PREFIX + restore_id, REPLACED_PREFIX + restore_id)


@dataclass(frozen=True)
class StagedTables:
    """The chosen domains' tables, restored and indexed in the staging schema, ready to verify and swap."""

    live_db: str
    restore_id: str
    schema: str
    domains: tuple[str, ...]
    tables: tuple[str, ...]
    schema_version: int | None
    steps: tuple[StepTime, ...]


def restore_into_schema(
    conninfo_admin: str,
    bin_dir: Path,
    *,
    live_db: str,
    restore_id: str,
    schema_stream: Source,
    domain_streams: Mapping[str, Source],
    jobs: int | None = None,
) -> StagedTables:
    """Build `restore_<id>` in the live database with the chosen domains' tables from their sources.

    `conninfo_admin` reaches the server as a superuser (any database: the live one is connected to by
    name). A leftover staging schema of the same id is dropped first. On any failure the staging schema
    is dropped and the error raised; live's tables are only read.
    """
    plan = plan_restore(live_db, restore_id, tuple(domain_streams), keep_live_domains=True)
    names = staging_names(live_db, restore_id)
    refuse_password(conninfo_admin)
    live = make_conninfo(conninfo_admin, dbname=live_db)
    tables = tables_for(list(plan.from_backup))
    timer = _Timer()
    pg_restore = tool_path(bin_dir, "pg_restore")
    with _session(live, names) as conn:
        owner = _owner(conn, live_db)
        if _schema_exists(conn, names.replaced):
            raise PreconditionFailed(
                f"restore id {restore_id!r} was already swapped in (schema {names.replaced} exists); "
                "use a new restore id"
            )
        with timer("backup schema version"):
            backup_version = _backup_schema_version(pg_restore, schema_stream)
        live_version = schema_version(conn)
        if live_version != backup_version:
            raise PreconditionFailed(
                f"the live database is at schema version {live_version} but the backup at {backup_version}: "
                "tables cannot be swapped across versions",
                code=STAGING_NEEDS_SAME_VERSION,
            )
        shapes = {table: _read_shape(conn, table) for table in tables}
        with timer("create staging tables"):
            _drop_schema(conn, names.staging)
            _create_tables(conn, names, owner, shapes)
    try:
        parallel = max(jobs if jobs is not None else min(os.cpu_count() or 1, 4), 1)
        sequences = _sequence_map(live, names, shapes)
        loads = {
            f"load {domain}": partial(
                _load_domain, pg_restore, live, names, owner, domain, domain_streams[domain], sequences
            )
            for domain in plan.from_backup
        }
        with timer("load data"), _database_errors(f"loading into schema {names.staging}"):
            _run_loads(loads, parallel, timer)
        with timer("indexes and constraints"), _database_errors(f"indexing schema {names.staging}"):
            _build_in_parallel(live, names, owner, [_indexes_of(names, shapes[t]) for t in tables], parallel)
            foreign_keys = [_foreign_keys_of(names, shapes[t], tables) for t in tables]
            # Adding takes a lock on both tables, so one after the other (quick); validating locks the
            # referencing table only, so one table's keys beside another's.
            _build_in_parallel(live, names, owner, [[add for adds, _ in foreign_keys for add in adds]], 1)
            _build_in_parallel(live, names, owner, [checks for _, checks in foreign_keys], parallel)
        with (
            timer("grants and analyze"),
            _database_errors(f"analyzing schema {names.staging}"),
            _session(live, names) as conn,
        ):
            for table in tables:
                for statement in _grants_of(names, shapes[table]):
                    conn.execute(statement)
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(names.staging, table)))
            _show_live_tables(conn, names, owner, tables)
    except BaseException:
        discard_staged_quietly(conninfo_admin, live_db=live_db, restore_id=restore_id)
        raise
    return StagedTables(
        live_db=live_db,
        restore_id=restore_id,
        schema=names.staging,
        domains=plan.from_backup,
        tables=tables,
        schema_version=backup_version,
        steps=tuple(timer.steps),
    )


def _show_live_tables(
    conn: psycopg.Connection[Any], names: StagingNames, owner: str, restored: Sequence[str]
) -> None:
    """Views of live's other tables in the staging schema, so the verification reads one schema whose
    invariants span the restored tables and live's current rows of every other domain. The swap drops
    them with the staging schema."""
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
    for table in (*ALL_TABLES, "schema_migrations"):
        if table not in restored:
            conn.execute(
                sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                    sql.Identifier(names.staging, table), sql.Identifier(LIVE_SCHEMA, table)
                )
            )
    conn.execute("RESET ROLE")


def discard_staged(conninfo_admin: str, *, live_db: str, restore_id: str) -> bool:
    """Drop the staging schema (e.g. it failed verification); live's tables are not touched."""
    names = staging_names(live_db, restore_id)
    with _session(make_conninfo(conninfo_admin, dbname=live_db), names) as conn:
        return _drop_schema(conn, names.staging)


def discard_staged_quietly(conninfo_admin: str, *, live_db: str, restore_id: str) -> None:
    """Best-effort cleanup after a failure; the original error is the one worth reporting."""
    with suppress(Exception):
        discard_staged(conninfo_admin, live_db=live_db, restore_id=restore_id)


# --- live's table definitions -----------------------------------------------------------------------


@dataclass(frozen=True)
class TableShape:
    """What the staging copy of one of live's tables needs beyond `LIKE`."""

    table: str
    serial_columns: tuple[tuple[str, str, str], ...]  # (column, sequence, data type): serial defaults
    constraints: tuple[tuple[str, str], ...]  # (name, definition): primary key, unique, exclusion
    indexes: tuple[str, ...]  # CREATE INDEX statements of indexes no constraint owns
    foreign_keys: tuple[tuple[str, str, str], ...]  # (name, definition, referenced table)
    grants: tuple[tuple[str, str], ...]  # (privilege, grantee or PUBLIC) beyond the owner's own


def _read_shape(conn: psycopg.Connection[Any], table: str) -> TableShape:
    qualified = f"{LIVE_SCHEMA}.{table}"
    serial = conn.execute(
        "SELECT a.attname, s.relname, format_type(q.seqtypid, NULL) FROM pg_depend d"
        " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " JOIN pg_sequence q ON q.seqrelid = s.oid"
        " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
        " WHERE d.refobjid = %s::regclass AND d.deptype = 'a' AND a.attidentity = ''",
        (qualified,),
    ).fetchall()
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x') ORDER BY contype, conname",
        (qualified,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        " ORDER BY i.indexrelid",
        (qualified,),
    ).fetchall()
    foreign_keys = conn.execute(
        "SELECT c.conname, pg_get_constraintdef(c.oid), r.relname FROM pg_constraint c"
        " JOIN pg_class r ON r.oid = c.confrelid"
        " WHERE c.conrelid = %s::regclass AND c.contype = 'f' ORDER BY c.conname",
        (qualified,),
    ).fetchall()
    grants = conn.execute(
        "SELECT a.privilege_type, coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC')"
        " FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a"
        " WHERE c.oid = %s::regclass AND a.grantee <> c.relowner ORDER BY 2, 1",
        (qualified,),
    ).fetchall()
    return TableShape(
        table=table,
        serial_columns=tuple((str(r[0]), str(r[1]), str(r[2])) for r in serial),
        constraints=tuple((str(r[0]), str(r[1])) for r in constraints),
        indexes=tuple(str(r[0]) for r in indexes),
        foreign_keys=tuple((str(r[0]), str(r[1]), str(r[2])) for r in foreign_keys),
        grants=tuple((str(r[0]), str(r[1])) for r in grants),
    )


def _create_tables(
    conn: psycopg.Connection[Any], names: StagingNames, owner: str, shapes: Mapping[str, TableShape]
) -> None:
    """The staging schema and its tables, owned by live's owner, without indexes (built after the load)."""
    conn.execute(
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(names.staging), sql.Identifier(owner)
        )
    )
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
    for table, shape in shapes.items():
        staged = sql.Identifier(names.staging, table)
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING INDEXES)").format(
                staged, sql.Identifier(LIVE_SCHEMA, table)
            )
        )
        # LIKE copies a serial column's default, which would share live's sequence: give the staging
        # table its own, owned by its column, so the sequence moves with the table when swapped.
        for column, sequence, data_type in shape.serial_columns:
            own = sql.Identifier(names.staging, sequence)
            conn.execute(
                sql.SQL("CREATE SEQUENCE {} AS {} OWNED BY {}.{}").format(
                    own, sql.SQL(data_type), staged, sql.Identifier(column)
                )
            )
            conn.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT nextval({})").format(
                    staged, sql.Identifier(column), sql.Literal(f"{names.staging}.{sequence}")
                )
            )
    conn.execute("RESET ROLE")


def _sequence_map(live: str, names: StagingNames, shapes: Mapping[str, TableShape]) -> dict[str, str]:
    """Live's sequence (as a dump names it) -> the staging table's sequence of the same column."""
    mapping: dict[str, str] = {}
    with _session(live, names) as conn:
        for table in shapes:
            rows = conn.execute(
                "SELECT pg_get_serial_sequence(%s, a.attname), pg_get_serial_sequence(%s, a.attname)"
                " FROM pg_attribute a"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (f"{LIVE_SCHEMA}.{table}", f"{names.staging}.{table}", f"{LIVE_SCHEMA}.{table}"),
            ).fetchall()
            mapping.update({str(r[0]): str(r[1]) for r in rows if r[0] and r[1]})
    return mapping


def _indexes_of(names: StagingNames, shape: TableShape) -> list[sql.Composed | sql.SQL]:
    staged = sql.Identifier(names.staging, shape.table)
    statements: list[sql.Composed | sql.SQL] = [
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            staged, sql.Identifier(name), sql.SQL(definition)
        )
        for name, definition in shape.constraints
    ]
    live_table = f" ON {LIVE_SCHEMA}.{shape.table} USING "
    for definition in shape.indexes:
        if live_table not in definition:
            raise PreconditionFailed(f"cannot read the definition of an index of {shape.table}: {definition}")
        # Index names are per schema: the staging index keeps live's name and takes it into public.
        statements.append(
            sql.SQL(definition.replace(live_table, f" ON {names.staging}.{shape.table} USING "))
        )
    return statements


def _foreign_keys_of(
    names: StagingNames, shape: TableShape, restored: Sequence[str]
) -> tuple[list[sql.Composed], list[sql.Composed]]:
    """Each foreign key of the table, to the staging table when its domain is restored too, else to
    live's: (the statements adding them NOT VALID, the statements validating them). Validating apart
    never blocks live's writers, and the tables' validations can run side by side."""
    staged = sql.Identifier(names.staging, shape.table)
    adds: list[sql.Composed] = []
    validations: list[sql.Composed] = []
    for name, live_definition, referenced in shape.foreign_keys:
        schema = names.staging if referenced in restored else LIVE_SCHEMA
        definition = point_foreign_key_at(live_definition, referenced, schema)
        adds.append(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
                staged, sql.Identifier(name), sql.SQL(definition)
            )
        )
        validations.append(
            sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(staged, sql.Identifier(name))
        )
    return adds, validations


def point_foreign_key_at(definition: str, referenced: str, schema: str) -> str:
    """`FOREIGN KEY (a) REFERENCES public.t(id) ...` -> the same referencing `schema.t`. Pure."""
    for spelled in (f" REFERENCES {LIVE_SCHEMA}.{referenced}(", f" REFERENCES {referenced}("):
        if spelled in definition:
            return definition.replace(spelled, f" REFERENCES {schema}.{referenced}(", 1)
    raise PreconditionFailed(f"cannot read the foreign key definition {definition!r}")


def _grants_of(names: StagingNames, shape: TableShape) -> list[sql.Composed | sql.SQL]:
    staged = sql.Identifier(names.staging, shape.table)
    return [
        sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(privilege), staged, sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        )
        for privilege, grantee in shape.grants
    ]


def _build_in_parallel(
    live: str,
    names: StagingNames,
    owner: str,
    groups: Sequence[Sequence[sql.Composed | sql.SQL]],
    workers: int,
) -> None:
    """Run each group's statements in order on its own connection, `workers` groups at a time."""

    def run(statements: Sequence[sql.Composed | sql.SQL]) -> None:
        with _session(live, names, role=owner) as conn:
            for statement in statements:
                conn.execute(statement)

    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="restore-index") as pool:
        for future in [pool.submit(run, group) for group in groups if group]:
            future.result()


# --- loading rows ---------------------------------------------------------------------------------


class _StagingSink:
    """Where read_script puts one domain's rows: COPY into the staging tables, sequences mapped."""

    def __init__(
        self, conn: psycopg.Connection[Any], names: StagingNames, sequences: Mapping[str, str]
    ) -> None:
        self._conn = conn
        self._names = names
        self._sequences = sequences
        self._copy: AbstractContextManager[Any] | None = None

    def client_encoding(self, encoding: str) -> None:
        self._conn.execute("SELECT set_config('client_encoding', %s, false)", (encoding,))

    def copy(self, table: str, columns: tuple[str, ...]) -> CopyTarget:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self._names.staging, table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        self._copy = self._conn.cursor().copy(statement)
        target: CopyTarget = self._copy.__enter__()
        return target

    def copy_done(self, table: str) -> None:
        if self._copy is not None:
            self._copy.__exit__(None, None, None)
            self._copy = None

    def abandon(self, error: BaseException) -> None:
        """End a COPY left open by a failure (the server is told it failed, so the session is free)."""
        if self._copy is not None:
            with suppress(Exception):
                self._copy.__exit__(type(error), error, error.__traceback__)
            self._copy = None

    def sequence(self, position: SequencePosition) -> None:
        staged = self._sequences.get(position.sequence)
        if staged is None:
            raise ExternalFailure(
                f"the dump sets sequence {position.sequence}, which no restored table owns",
                code="restore.load_failed",
            )
        self._conn.execute("SELECT setval(%s::regclass, %s, %s)", (staged, position.value, position.called))


def _load_domain(
    pg_restore: Path,
    live: str,
    names: StagingNames,
    owner: str,
    domain: str,
    source: Source,
    sequences: Mapping[str, str],
    stop: threading.Event,
) -> None:
    """pg_restore turns the domain's custom-format dump into SQL; its rows go into the staging tables."""
    expected = {f"{LIVE_SCHEMA}.{table}": table for table in DOMAIN_TABLES[domain]}  # type: ignore[index]
    with (
        tempfile.TemporaryFile() as stderr,
        _session(live, names, role=owner, autocommit=False) as conn,
    ):
        process = subprocess.Popen(
            [str(pg_restore), "--data-only", "--format=custom", "--file=-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=tool_env(),
        )
        assert process.stdin is not None and process.stdout is not None  # started with both piped
        feeder = _Feeder(source, domain, process.stdin, stop)
        feeder.start()
        sink = _StagingSink(conn, names, sequences)
        read_error: BaseException | None = None
        try:
            read_script(process.stdout, sink, tables=expected, stopped=stop.is_set)
            if stop.is_set():
                raise _Stopped(domain)
        except BaseException as exc:
            read_error = exc
            sink.abandon(exc)
            process.kill()
        finally:
            feeder.join()
            returncode = process.wait()
        # The first cause: the source (a damaged backup), then pg_restore's own line, then the script.
        if feeder.error is not None:
            raise feeder.error
        if returncode != 0 and not isinstance(read_error, _Stopped | KeyboardInterrupt):
            reason = first_error_line(stderr, fallback=f"pg_restore exited with status {returncode}")
            raise ExternalFailure(
                f"reading the {domain} dump failed: {reason}; the staging schema was dropped and live is "
                "untouched",
                code="restore.load_failed",
            )
        if read_error is not None:
            raise read_error
        conn.commit()  # only a whole, cleanly read dump is kept


class _Feeder(threading.Thread):
    """Feeds a source into pg_restore's stdin while the loading thread reads its output; an error is
    kept for the loading thread to raise once pg_restore has ended."""

    def __init__(self, source: Source, domain: str, stdin: Any, stop: threading.Event) -> None:
        super().__init__(name=f"restore-feed-{domain}", daemon=True)
        self._source = source
        self._domain = domain
        self._stdin = stdin
        self._halt = stop  # not `_stop`: Thread has a method of that name
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with suppress(BrokenPipeError):
                _feed(self._source, self._domain, _StoppableSink(self._stdin, self._halt))
        except BaseException as exc:
            self.error = exc
        finally:
            with suppress(OSError):
                self._stdin.close()


class _StoppableSink:
    def __init__(self, stdin: Any, stop: threading.Event) -> None:
        self._stdin = stdin
        self._stop = stop

    def write(self, data: bytes, /) -> int:
        if self._stop.is_set():
            raise _Stopped("feed")
        return int(self._stdin.write(data))


def _backup_schema_version(pg_restore: Path, source: Source) -> int | None:
    """max(version) of the backup's own schema_migrations rows, read from its schema dump."""
    with tempfile.TemporaryDirectory(prefix="restore-") as work:
        schema_file = Path(work) / "schema.dump"
        with schema_file.open("wb") as out:
            _feed(source, None, out)
        done = subprocess.run(
            [str(pg_restore), "--data-only", "--table=schema_migrations", "--file=-", str(schema_file)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=tool_env(),
            check=False,
        )
    if done.returncode != 0:
        reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[0]
        raise ExternalFailure(
            f"reading the backup's schema dump failed: {reason}", code="restore.load_failed"
        )
    collected = _Collected()
    read_script(
        io.BytesIO(done.stdout),
        collected,
        tables={f"{LIVE_SCHEMA}.schema_migrations": "schema_migrations"},
        stopped=lambda: False,
    )
    return collected.max_of("version")


class _Collected:
    """A ScriptSink that keeps the (small) rows of the tables it is given."""

    def __init__(self) -> None:
        self.columns: tuple[str, ...] = ()
        self.data = io.BytesIO()

    def client_encoding(self, encoding: str) -> None:
        return None

    def copy(self, table: str, columns: tuple[str, ...]) -> CopyTarget:
        self.columns = columns
        return self.data

    def copy_done(self, table: str) -> None:
        return None

    def sequence(self, position: SequencePosition) -> None:
        return None

    def max_of(self, column: str) -> int | None:
        if column not in self.columns:
            return None
        at = self.columns.index(column)
        values = [int(line.split(b"\t")[at]) for line in self.data.getvalue().splitlines() if line]
        return max(values, default=None)


# --- connections ----------------------------------------------------------------------------------


@contextmanager
def _session(
    conninfo: str, names: StagingNames, *, role: str | None = None, autocommit: bool = True
) -> Iterator[psycopg.Connection[Any]]:
    """A superuser session on the live database (as `role` when given), with the load settings."""
    with connect(conninfo, autocommit=autocommit, what=f"database {names.live_db}") as conn:
        for statement in _SESSION:
            conn.execute(statement)
        if role is not None:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        yield conn


@contextmanager
def _database_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExternalFailure(
            f"{doing} failed: {first}; the staging schema was dropped and live is untouched",
            code="restore.load_failed",
        ) from None


def _owner(conn: psycopg.Connection[Any], live_db: str) -> str:
    owner = database_owner(conn, live_db)
    if owner is None:
        raise PreconditionFailed(f"database {live_db!r} does not exist; name the live order database")
    return owner


def _schema_exists(conn: psycopg.Connection[Any], schema: str) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return bool(row and row[0])


def _drop_schema(conn: psycopg.Connection[Any], schema: str) -> bool:
    if not _schema_exists(conn, schema):
        return False
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return True


def schema_exists(conn: psycopg.Connection[Any], schema: str) -> bool:
    return _schema_exists(conn, schema)
