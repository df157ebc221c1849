"""Restore data domains into a scratch database beside the live one, then swap it in by renaming.

The live database's data is never written here. `restore_beside` builds `<live>_restore_<id>` from a
schema dump and one source per chosen domain, copies the other domains from live (read-only, one
snapshot), then builds indexes and constraints, whose foreign keys check every reference across the
restored and copied domains. `swap_in` exchanges names with the live database in one transaction; the
replaced database stays as `<live>_replaced_<id>` for `swap_back` until an operator drops it
(`drop_replaced`, refused unless confirmed). docs/restore.md explains the order of the steps and why.

A domain's source is either a stream opener (a backup being decoded) or `FromDatabase`, a running
database to dump the domain from: the live copy uses it, and so will a point-in-time restore, whose source
is a scratch cluster recovered to the chosen moment.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from recovery.backup.naming import DOMAINS
from recovery.backup.pgdump import (
    ByteSink,
    DumpInfo,
    ReadableStream,
    dump_domain,
    dump_domains,
    dump_schema,
)
from recovery.drivers.db import (
    connect,
    database_exists,
    first_error_line,
    refuse_password,
    schema_version,
    tool_env,
    tool_path,
)
from recovery.errors import (
    ConfirmationRequired,
    ExternalFailure,
    PreconditionFailed,
    UsageError,
    first_line,
)

StreamOpener = Callable[[], AbstractContextManager[ReadableStream]]

_CHUNK = 1024 * 1024
_NAME_LIMIT = 63  # PostgreSQL truncates longer identifiers (NAMEDATALEN - 1)
_LIVE_NAME = re.compile(r"^[a-z_][a-z0-9_]*\Z")
_RESTORE_ID = re.compile(r"^[a-z0-9][a-z0-9_]*\Z")
_SWAP_WAIT_SECONDS = 15.0
# Scratch loads may lose their last commits in a server crash (the restore is rerun from scratch then);
# the final ANALYZE commits synchronously, which flushes all WAL before it.
_LOAD_OPTIONS = "-c synchronous_commit=off"
_INDEX_OPTIONS = "-c maintenance_work_mem=256MB -c synchronous_commit=off"


@dataclass(frozen=True)
class FromDatabase:
    """Take a domain's rows (or the schema) from a running database instead of a backup stream."""

    conninfo: str
    bin_dir: Path


@dataclass(frozen=True)
class FromWriter:
    """A source that pushes its bytes into a sink, e.g. the backup codec's `decode(source, sink, ...)`.

    Whatever `write_to` raises (an integrity error halfway through) fails the restore.
    """

    write_to: Callable[[ByteSink], object]


Source = StreamOpener | FromDatabase | FromWriter


@dataclass(frozen=True)
class RestoreNames:
    """The three database names one restore id uses."""

    live: str
    restore_id: str
    scratch: str  # the restored copy until it is swapped in
    replaced: str  # the former live database after the swap, kept for rollback


def restore_id_for(upgrade_run: str) -> str:
    """The restore id of an upgrade's database rollback: one per upgrade, so the speculative copy, a
    rollback and a second rollback run of the same upgrade all name the same databases."""
    stamp, _, rest = upgrade_run.partition("-")
    suffix = rest.rsplit("-", 1)[-1]
    return re.sub(r"[^a-z0-9_]", "_", f"up{stamp.lower()}_{suffix}")


def replaced_prefix(live_db: str) -> str:
    """What every `<live>_replaced_<id>` name starts with (the one place that spells it)."""
    return f"{live_db}_replaced_"


def restore_names(live_db: str, restore_id: str) -> RestoreNames:
    """Validate the names of a restore. Pure."""
    if not _LIVE_NAME.match(live_db):
        raise UsageError(
            f"live database name {live_db!r} is not a plain lower-case identifier; name the order database"
        )
    if not _RESTORE_ID.match(restore_id):
        raise UsageError(
            f"restore id {restore_id!r} must be lower-case letters, digits and underscores, "
            "starting with a letter or digit"
        )
    names = RestoreNames(
        live=live_db,
        restore_id=restore_id,
        scratch=f"{live_db}_restore_{restore_id}",
        replaced=f"{replaced_prefix(live_db)}{restore_id}",
    )
    if len(names.replaced) > _NAME_LIMIT:
        raise UsageError(
            f"restore id {restore_id!r} is too long: {names.replaced!r} exceeds {_NAME_LIMIT} characters; "
            f"use at most {_NAME_LIMIT - len(replaced_prefix(live_db))} characters"
        )
    return names


@dataclass(frozen=True)
class RestorePlan:
    names: RestoreNames
    from_backup: tuple[str, ...]  # domains loaded from the given sources, in domain order
    from_live: tuple[str, ...]  # domains copied from the live database


def plan_restore(
    live_db: str, restore_id: str, chosen: Sequence[str], *, keep_live_domains: bool
) -> RestorePlan:
    """Decide where every domain's rows come from. Pure.

    With keep_live_domains (the default) the domains not chosen are copied from live, so the restored
    copy is whole. Without it every domain must be given: the caller asserts a whole-database restore and
    a forgotten domain is refused rather than left empty (its foreign keys would fail late anyway).
    """
    names = restore_names(live_db, restore_id)
    unknown = [domain for domain in chosen if domain not in DOMAINS]
    if unknown:
        raise UsageError(f"unknown data domain {unknown[0]!r}: choose from {', '.join(DOMAINS)}")
    if not chosen:
        raise UsageError(f"no domain to restore: choose one or more of {', '.join(DOMAINS)}")
    from_backup = tuple(domain for domain in DOMAINS if domain in chosen)
    rest = tuple(domain for domain in DOMAINS if domain not in chosen)
    if rest and not keep_live_domains:
        raise UsageError(
            f"a restore without live data needs every domain; missing {', '.join(rest)}: give their "
            "backups or keep the live domains"
        )
    return RestorePlan(names=names, from_backup=from_backup, from_live=rest)


@dataclass(frozen=True)
class StepTime:
    step: str
    seconds: float


@dataclass(frozen=True)
class RestoredDatabase:
    """A complete restored copy beside the live database, ready to verify and swap in."""

    name: str
    live_db: str
    restore_id: str
    from_backup: tuple[str, ...]
    from_live: tuple[str, ...]
    schema_version: int | None  # from the schema dump's schema_migrations
    live_copy: DumpInfo | None  # where in live's history the copied domains were cut
    steps: tuple[StepTime, ...]


@dataclass(frozen=True)
class SwapResult:
    live_db: str
    restore_id: str
    direction: Literal["in", "back"]
    now_live: str  # the name the database serving as live had before this swap
    set_aside_as: str  # the name the previous live database has now
    terminated_sessions: int
    swapped_at: datetime


class _Timer:
    def __init__(self) -> None:
        self.steps: list[StepTime] = []

    def record(self, step: str, seconds: float) -> None:
        self.steps.append(StepTime(step, round(seconds, 3)))  # list.append is atomic: loads run in threads

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.record(step, time.perf_counter() - started)


def restore_beside(
    conninfo_admin: str,
    bin_dir: Path,
    *,
    live_db: str,
    restore_id: str,
    schema_stream: Source,
    domain_streams: Mapping[str, Source],
    keep_live_domains: bool = True,
    jobs: int | None = None,
) -> RestoredDatabase:
    """Build `<live_db>_restore_<restore_id>` from the schema and the chosen domains' sources.

    `conninfo_admin` reaches a maintenance database (postgres) as a superuser. A leftover scratch
    database of the same restore id (an interrupted run) is dropped and rebuilt. On any failure the
    scratch database is dropped and the error raised; the live database is only ever read.
    """
    plan = plan_restore(live_db, restore_id, tuple(domain_streams), keep_live_domains=keep_live_domains)
    names = plan.names
    pg_restore = tool_path(bin_dir, "pg_restore")
    _refuse_admin_on(conninfo_admin, names)
    timer = _Timer()
    with _admin(conninfo_admin, f"preparing {names.scratch}") as admin:
        live = _database_facts(admin, names.live)
        if live is None:
            raise PreconditionFailed(f"database {names.live!r} does not exist; name the live order database")
        if database_exists(admin, names.replaced):
            raise PreconditionFailed(
                f"restore id {restore_id!r} was already swapped in ({names.replaced!r} exists); "
                "use a new restore id"
            )
        with timer("create scratch database"):
            _drop(admin, names.scratch)  # a leftover of an interrupted run with this id: start clean
            _create_like(admin, names.scratch, live)
    try:
        with _database_errors(f"restoring into {names.scratch}"):
            # The restored content runs as the live database's owner, never as the superuser we connect
            # as: a schema or rows crafted into a backup get only the owner's rights.
            as_owner = _AsOwner(pg_restore, live.owner)
            return _fill(conninfo_admin, bin_dir, as_owner, plan, schema_stream, domain_streams, timer, jobs)
    except BaseException:
        _drop_quietly(conninfo_admin, names.scratch)
        raise


@contextmanager
def _database_errors(doing: str) -> Iterator[None]:
    """A database error no step translated becomes one ExternalFailure line (its first line only)."""
    try:
        yield
    except psycopg.Error as exc:
        raise ExternalFailure(f"{doing} failed: {first_line(exc)}", code="restore.database_error") from None


@contextmanager
def _admin(conninfo_admin: str, doing: str) -> Iterator[psycopg.Connection[Any]]:
    """The maintenance connection (autocommit: CREATE, DROP and ALTER DATABASE need it)."""
    with (
        connect(conninfo_admin, autocommit=True, what="the maintenance database") as admin,
        _database_errors(doing),
    ):
        yield admin


@dataclass(frozen=True)
class _AsOwner:
    """pg_restore run as the owner role: `--role` switches to it after connecting, `--no-owner` keeps
    the dump from handing objects to anyone else."""

    tool: Path
    owner: str

    def argv(self, scratch: str) -> list[str]:
        return [str(self.tool), f"--dbname={scratch}", f"--role={self.owner}", "--no-owner"]


def _fill(
    conninfo_admin: str,
    bin_dir: Path,
    pg_restore: _AsOwner,
    plan: RestorePlan,
    schema_source: Source,
    sources: Mapping[str, Source],
    timer: _Timer,
    jobs: int | None,
) -> RestoredDatabase:
    names = plan.names
    scratch = make_conninfo(conninfo_admin, dbname=names.scratch)
    live = make_conninfo(conninfo_admin, dbname=names.live)
    with tempfile.TemporaryDirectory(prefix="restore-") as work:
        # The schema dump is small and read three times (pre-data, its own rows, post-data): keep it
        # in a file, which also lets post-data build indexes in parallel.
        schema_file = Path(work) / "schema.dump"
        with timer("schema: tables"):
            _spool_schema(schema_source, schema_file)
            _restore_file(pg_restore, scratch, schema_file, ["--section=pre-data"], "the schema", names)
            # schema_migrations rows and sequence positions; the domains' own positions come later.
            _restore_file(pg_restore, scratch, schema_file, ["--section=data"], "the schema's rows", names)
        schema_version = _schema_version(scratch)
        if plan.from_live:
            live_version = _schema_version(live)
            if live_version != schema_version:
                raise PreconditionFailed(
                    f"the live database is at schema version {live_version} but the backup at "
                    f"{schema_version}: domains cannot be mixed across versions; restore every domain "
                    "from the backup"
                )
        parallel = max(jobs if jobs is not None else min(os.cpu_count() or 1, 4), 1)
        # The domains' tables have no constraints yet, so their loads are independent: run them side by
        # side (each is one pg_restore and one server backend), `parallel` at a time.
        loads: dict[str, _Load] = {
            f"load {domain}": partial(_load_domain, pg_restore, scratch, domain, sources[domain], names)
            for domain in plan.from_backup
        }
        live_step = f"copy from live: {', '.join(plan.from_live)}"
        if plan.from_live:
            loads[live_step] = partial(
                _copy_from_live, pg_restore, scratch, live, bin_dir, plan.from_live, names
            )
        with timer("load data"):
            results = _run_loads(loads, parallel, timer)
        live_copy = results.get(live_step)
        with timer("indexes and constraints"):
            _restore_file(
                pg_restore,
                scratch,
                schema_file,
                ["--section=post-data", f"--jobs={parallel}"],
                "indexes and constraints",
                names,
                options=_INDEX_OPTIONS,
            )
    with timer("analyze"), connect(scratch, autocommit=True, what=f"database {names.scratch}") as conn:
        conn.execute("ANALYZE")
    return RestoredDatabase(
        name=names.scratch,
        live_db=names.live,
        restore_id=names.restore_id,
        from_backup=plan.from_backup,
        from_live=plan.from_live,
        schema_version=schema_version,
        live_copy=live_copy,
        steps=tuple(timer.steps),
    )


def _spool_schema(source: Source, target: Path) -> None:
    with target.open("wb") as out:
        _feed(source, None, out)


def _feed(source: Source, domain: str | None, sink: ByteSink) -> None:
    """Push a source's bytes (the schema when `domain` is None, else that domain's rows) into `sink`."""
    if isinstance(source, FromWriter):
        source.write_to(sink)
        return
    opened: AbstractContextManager[ReadableStream]
    if isinstance(source, FromDatabase):
        if domain is None:
            opened = dump_schema(source.conninfo, source.bin_dir)
        else:
            opened = dump_domain(source.conninfo, source.bin_dir, domain)
    else:
        opened = source()
    with opened as stream:
        _copy(stream, sink)


def _copy(stream: ReadableStream, sink: ByteSink) -> None:
    while chunk := stream.read(_CHUNK):
        sink.write(chunk)


_Load = Callable[[threading.Event], DumpInfo | None]


class _Stopped(Exception):
    """A load gave up because another load failed (that failure is the one reported)."""


def _run_loads(loads: Mapping[str, _Load], workers: int, timer: _Timer) -> dict[str, DumpInfo | None]:
    """Run the loads in threads; the first failure stops the others and is raised once all have ended."""
    stop = threading.Event()
    results: dict[str, DumpInfo | None] = {}
    errors: list[BaseException] = []

    def run(step: str, load: _Load) -> None:
        if stop.is_set():
            return
        started = time.perf_counter()
        try:
            results[step] = load(stop)
        except BaseException as exc:
            stop.set()
            errors.append(exc)
            return
        timer.record(step, time.perf_counter() - started)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore-load")
    try:
        for future in [pool.submit(run, step, load) for step, load in loads.items()]:
            future.result()
    except BaseException:
        stop.set()  # interrupted while waiting: the loads end at their next chunk
        raise
    finally:
        pool.shutdown(wait=True)
    if errors:
        raise next((error for error in errors if not isinstance(error, _Stopped)), errors[0])
    return results


def _load_domain(
    pg_restore: _AsOwner,
    scratch: str,
    domain: str,
    source: Source,
    names: RestoreNames,
    stop: threading.Event,
) -> None:
    _pipe_into(pg_restore, scratch, partial(_feed, source, domain), f"the {domain} domain", names, stop)


def _copy_from_live(
    pg_restore: _AsOwner,
    scratch: str,
    live: str,
    bin_dir: Path,
    domains: tuple[str, ...],
    names: RestoreNames,
    stop: threading.Event,
) -> DumpInfo:
    # One pg_dump for all live domains: one snapshot, so references between them are consistent.
    with dump_domains(live, bin_dir, domains) as stream:
        _pipe_into(
            pg_restore, scratch, partial(_copy, stream), f"the live {', '.join(domains)} rows", names, stop
        )
        return stream.info


class _StdinSink:
    """pg_restore's stdin as a sink that gives up as soon as another load has failed."""

    def __init__(self, stdin: IO[bytes], stop: threading.Event, what: str) -> None:
        self._stdin = stdin
        self._stop = stop
        self._what = what

    def write(self, data: bytes, /) -> int:
        if self._stop.is_set():
            raise _Stopped(self._what)
        return self._stdin.write(data)


def _pipe_into(
    pg_restore: _AsOwner,
    scratch: str,
    feed: Callable[[ByteSink], None],
    what: str,
    names: RestoreNames,
    stop: threading.Event,
) -> None:
    """Feed a data-only custom-format dump to pg_restore's stdin as it arrives (bounded memory)."""
    argv = [*pg_restore.argv(scratch), "--format=custom", "--data-only", "--exit-on-error"]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [*argv, "--no-password"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=tool_env(extra={"PGOPTIONS": _LOAD_OPTIONS}),
        )
        assert process.stdin is not None  # started with stdin=PIPE
        try:
            # A broken pipe means pg_restore stopped reading: its exit status and stderr say why.
            with suppress(BrokenPipeError):
                feed(_StdinSink(process.stdin, stop, what))
            with suppress(BrokenPipeError):
                process.stdin.close()
        except BaseException:
            process.kill()
            process.wait()
            raise
        returncode = process.wait()
        if returncode != 0:
            reason = first_error_line(stderr, fallback=f"pg_restore exited with status {returncode}")
            raise ExternalFailure(
                f"loading {what} into {names.scratch} failed: {reason}; the scratch database was dropped "
                "and the live database is untouched",
                code="restore.load_failed",
            )


def _restore_file(
    pg_restore: _AsOwner,
    scratch: str,
    dump: Path,
    args: list[str],
    what: str,
    names: RestoreNames,
    *,
    options: str = _LOAD_OPTIONS,
) -> None:
    argv = [*pg_restore.argv(scratch), "--exit-on-error", "--no-password", *args, str(dump)]
    with tempfile.TemporaryFile() as stderr:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=tool_env(extra={"PGOPTIONS": options}),
            check=False,
        )
        if done.returncode != 0:
            reason = first_error_line(stderr, fallback=f"pg_restore exited with status {done.returncode}")
            raise ExternalFailure(
                f"restoring {what} into {names.scratch} failed: {reason}; the scratch database was dropped "
                "and the live database is untouched",
                code="restore.load_failed",
            )


def _schema_version(conninfo: str) -> int | None:
    name = conninfo_to_dict(conninfo).get("dbname", "?")
    with connect(conninfo, autocommit=True, what=f"database {name}") as conn:
        return schema_version(conn)


# --- database-level operations on the maintenance connection -------------------------------------------


@dataclass(frozen=True)
class _DatabaseFacts:
    owner: str
    encoding: str
    collate: str
    ctype: str
    provider: str  # c = libc, i = icu, b = builtin
    locale: str | None  # the icu or builtin locale


def _refuse_admin_on(conninfo_admin: str, names: RestoreNames) -> None:
    refuse_password(conninfo_admin)
    dbname = conninfo_to_dict(conninfo_admin).get("dbname")
    if dbname in (names.live, names.scratch, names.replaced):
        raise UsageError(
            f"the admin connection must use a maintenance database (postgres), not {dbname!r}, because "
            "databases being created, dropped or renamed cannot be connected to"
        )


def _database_facts(admin: psycopg.Connection[Any], name: str) -> _DatabaseFacts | None:
    version_row = admin.execute("SELECT current_setting('server_version_num')::int").fetchone()
    version = int(version_row[0]) if version_row else 0
    # The locale columns moved between major versions.
    locale_column = "datlocale" if version >= 170000 else "daticulocale"
    provider = "datlocprovider::text" if version >= 150000 else "'c'"
    locale = locale_column if version >= 150000 else "NULL"
    row = admin.execute(
        sql.SQL(
            "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, {}, {}"
            " FROM pg_database WHERE datname = %s"
        ).format(sql.SQL(provider), sql.SQL(locale)),
        (name,),
    ).fetchone()
    if row is None:
        return None
    return _DatabaseFacts(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), row[5])


def _create_like(admin: psycopg.Connection[Any], name: str, like: _DatabaseFacts) -> None:
    """Create an empty database with the live one's owner, encoding and locale (template0: nothing else)."""
    parts = [
        sql.SQL(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
        ).format(
            sql.Identifier(name),
            sql.Identifier(like.owner),
            sql.Literal(like.encoding),
            sql.Literal(like.collate),
            sql.Literal(like.ctype),
        )
    ]
    if like.provider == "i" and like.locale:
        parts.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(like.locale)))
    elif like.provider == "b" and like.locale:
        parts.append(sql.SQL("LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(sql.Literal(like.locale)))
    try:
        admin.execute(sql.SQL(" ").join(parts))
    except psycopg.Error as exc:
        raise ExternalFailure(
            f"cannot create the scratch database {name}: {first_line(exc)}; check the admin role may "
            "create databases",
            code="restore.create_failed",
        ) from None


def _drop(admin: psycopg.Connection[Any], name: str) -> bool:
    """Drop a database (its sessions are ended first). Only ever called with scratch or replaced names."""
    if not database_exists(admin, name):
        return False
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return True


def _drop_quietly(conninfo_admin: str, name: str) -> None:
    """Best-effort cleanup after a failure; the original error is the one worth reporting."""
    with (
        suppress(Exception),
        connect(conninfo_admin, autocommit=True, what="the maintenance database") as admin,
    ):
        _drop(admin, name)


def _terminate(admin: psycopg.Connection[Any], databases: Sequence[str]) -> int:
    row = admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
        (list(databases),),
    ).fetchone()
    return int(row[0]) if row else 0


def _exchange(
    admin: psycopg.Connection[Any], *, live: str, set_aside_as: str, incoming: str, wait_seconds: float
) -> int:
    """Rename `live` to `set_aside_as` and `incoming` to `live` in one transaction (both or neither).

    New sessions on the live database are refused while its remaining sessions are ended; on failure the
    live database accepts connections again under its own name.
    """
    live_id, aside_id, incoming_id = (sql.Identifier(n) for n in (live, set_aside_as, incoming))
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(live_id))
    terminated = 0
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            terminated += _terminate(admin, (live, incoming))
            try:
                with admin.transaction():
                    admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(live_id, aside_id))
                    admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(incoming_id, live_id))
                    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(aside_id))
                return terminated
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise PreconditionFailed(
                        f"sessions on {live} or {incoming} kept coming back for {wait_seconds:.0f} s; stop "
                        "or fence the order service, then swap again",
                        code="restore.swap_busy",
                    ) from None
                time.sleep(0.1)
    except BaseException:
        with suppress(psycopg.Error):
            admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(live_id))
        raise


def swap_in(
    conninfo_admin: str, *, live_db: str, restored: RestoredDatabase, wait_seconds: float = _SWAP_WAIT_SECONDS
) -> SwapResult:
    """Make the restored copy the live database: live becomes `<live>_replaced_<id>`, the copy `live`.

    The caller stops or fences the order service first; sessions still open on either database are
    ended. Both renames commit together or not at all.
    """
    if restored.live_db != live_db:
        raise UsageError(f"the restored copy {restored.name} was made for {restored.live_db}, not {live_db}")
    names = restore_names(live_db, restored.restore_id)
    _refuse_admin_on(conninfo_admin, names)
    with _admin(conninfo_admin, f"swapping {names.scratch} in as {names.live}") as admin:
        if database_exists(admin, names.replaced):
            raise PreconditionFailed(
                f"{names.replaced} already exists: this restore id was swapped in before; swap it back or "
                "drop it (drop_replaced with confirmation) first"
            )
        _require(admin, names.scratch, "the restored copy is gone; run the restore again")
        _require(admin, names.live, "name the live order database")
        terminated = _exchange(
            admin,
            live=names.live,
            set_aside_as=names.replaced,
            incoming=names.scratch,
            wait_seconds=wait_seconds,
        )
    return SwapResult(
        live_db=names.live,
        restore_id=names.restore_id,
        direction="in",
        now_live=names.scratch,
        set_aside_as=names.replaced,
        terminated_sessions=terminated,
        swapped_at=datetime.now(UTC),
    )


def swap_back(
    conninfo_admin: str, *, live_db: str, restore_id: str, wait_seconds: float = _SWAP_WAIT_SECONDS
) -> SwapResult:
    """Undo `swap_in`: the replaced database is live again and the restored copy is `<live>_restore_<id>`.

    Rows written to the restored copy while it was live stay in it (now the scratch name), not in live.
    """
    names = restore_names(live_db, restore_id)
    _refuse_admin_on(conninfo_admin, names)
    with _admin(conninfo_admin, f"swapping {names.replaced} back in as {names.live}") as admin:
        _require(
            admin, names.replaced, "there is nothing to swap back (it was never swapped in or was dropped)"
        )
        _require(admin, names.live, "name the live order database")
        if database_exists(admin, names.scratch):
            raise PreconditionFailed(
                f"{names.scratch} exists, so {names.live} cannot take that name back; drop or rename it first"
            )
        terminated = _exchange(
            admin,
            live=names.live,
            set_aside_as=names.scratch,
            incoming=names.replaced,
            wait_seconds=wait_seconds,
        )
    return SwapResult(
        live_db=names.live,
        restore_id=names.restore_id,
        direction="back",
        now_live=names.replaced,
        set_aside_as=names.scratch,
        terminated_sessions=terminated,
        swapped_at=datetime.now(UTC),
    )


def drop_replaced(conninfo_admin: str, *, live_db: str, restore_id: str, confirmed: bool = False) -> bool:
    """Drop `<live>_replaced_<id>`, the only way back after a swap; refused unless `confirmed`.

    Returns False when there was nothing to drop (so a rerun is harmless).
    """
    names = restore_names(live_db, restore_id)
    if not confirmed:
        raise ConfirmationRequired(
            f"dropping {names.replaced} removes the data it replaced and the way back; confirm explicitly "
            "(--yes) to drop it"
        )
    _refuse_admin_on(conninfo_admin, names)
    with _admin(conninfo_admin, f"dropping {names.replaced}") as admin:
        return _drop(admin, names.replaced)


def discard_restored(conninfo_admin: str, *, live_db: str, restore_id: str) -> bool:
    """Drop the restored copy `<live>_restore_<id>` (e.g. it failed verification); live is not touched."""
    names = restore_names(live_db, restore_id)
    _refuse_admin_on(conninfo_admin, names)
    with _admin(conninfo_admin, f"dropping {names.scratch}") as admin:
        return _drop(admin, names.scratch)


def _require(admin: psycopg.Connection[Any], name: str, hint: str) -> None:
    if not database_exists(admin, name):
        raise PreconditionFailed(f"database {name} does not exist: {hint}")
