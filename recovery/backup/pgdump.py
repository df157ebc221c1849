"""Dump data domains and the schema of the order database as byte streams (pg_dump custom format).

What a dump holds:
- a domain dump (`dump_domain`): the rows of the domain's tables and the positions of the sequences those
  tables own (`pg_dump -Fc -Z0 --data-only --strict-names -t ...`);
- the schema dump (`dump_schema`): every definition of the database plus the rows of the tables that
  belong to no domain (`schema_migrations`), i.e. a full dump with the domain tables' data excluded. A
  restored copy needs those bookkeeping rows from the backup, not from live: after a failed upgrade live
  says "version 2" while the restored tables are version 1.

pg_dump's own compression is single-threaded zlib (five times slower than the dump itself here), so the
dump is uncompressed (`-Z0`) and the backup codec compresses it with zstd.

Each dump runs in a snapshot exported from a REPEATABLE READ transaction this module holds open, so the
source position (WAL LSN), the time and the schema version recorded in `DumpInfo` describe exactly the
rows in the stream, and a multi-domain dump is one consistent cut across its tables.

The stream fails loudly: a pg_dump that exits non-zero, even after writing bytes, raises ExternalFailure
from `read()` where the stream would otherwise end, so a consumer (the codec) never seals a truncated
dump as a good backup. Messages carry pg_dump's first stderr line; connection strings with a password are
refused up front (passwords live only in a pgpass file).
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast

import psycopg
from psycopg import sql

from recovery.drivers.db import connect, first_error_line, tool_env, tool_path
from recovery.errors import ExternalFailure, UsageError
from recovery.verify.domains import ALL_TABLES, DOMAIN_TABLES, tables_for

DumpKind = Literal["domains", "schema"]

_CHUNK = 1024 * 1024


class ReadableStream(Protocol):
    """What restore reads and the codec wraps: a binary stream read in chunks until b""."""

    def read(self, size: int = -1, /) -> bytes: ...


class ByteSink(Protocol):
    """Where bytes are pushed (a file, pg_restore's stdin); the backup codec's Sink has this shape."""

    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class DumpInfo:
    """Where in the source's history a dump was cut, and what it holds."""

    kind: DumpKind
    domains: tuple[str, ...]  # the domains whose rows the dump holds (empty for the schema dump)
    tables: tuple[str, ...]  # the tables whose rows it holds
    position: str  # WAL LSN at the snapshot: no transaction in the dump committed after it
    taken_at: datetime  # the source server's clock at the snapshot
    schema_version: int | None  # max(schema_migrations.version), None when the table does not exist
    server_version_num: int  # e.g. 150018; a dump restores only with pg_restore of that major or newer
    from_standby: bool  # the source was in recovery (position is then its replay LSN)
    # pg_current_snapshot()::text of the same snapshot (`xmin:xmax:xip,...`, 64-bit transaction ids):
    # which transactions' rows the dump holds, so rows written after it can be found by their xmin
    # (recovery.restore.catchup). None before PostgreSQL 13, which has no pg_current_snapshot.
    snapshot: str | None = None


class DumpStream(io.RawIOBase):
    """pg_dump's stdout as a readable stream that raises instead of ending when pg_dump failed."""

    def __init__(
        self, process: subprocess.Popen[bytes], stderr: IO[bytes], info: DumpInfo, what: str
    ) -> None:
        super().__init__()
        assert process.stdout is not None  # started with stdout=PIPE
        self._process = process
        self._stdout = cast(io.BufferedReader, process.stdout)  # Popen's default buffering
        self._stderr = stderr
        self._what = what
        self.info = info
        self.bytes_read = 0
        self.finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = self._stdout.readinto(view)
        if count:
            self.bytes_read += count
            return count
        self._check_exit()
        return 0

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        chunk = self._stdout.read1(size) if size else b""
        if chunk or size == 0:
            self.bytes_read += len(chunk)
            return chunk
        self._check_exit()
        return b""

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def _check_exit(self) -> None:
        """At the end of stdout: the stream ends only if pg_dump succeeded."""
        if self.finished:
            return
        returncode = self._process.wait()
        if returncode != 0:
            reason = first_error_line(self._stderr, fallback=f"pg_dump exited with status {returncode}")
            raise ExternalFailure(
                f"dump of {self._what} failed after {self.bytes_read} bytes: {reason}; the partial dump "
                "must not be kept",
                code="backup.dump_failed",
            )
        self.finished = True

    def abort(self) -> None:
        """Stop pg_dump (the consumer gave up); safe to call more than once."""
        if self._process.poll() is None:
            self._process.kill()
        with suppress(OSError):
            self._stdout.close()
        self._process.wait()


def pg_dump_argv(pg_dump: Path, conninfo: str, snapshot: str, selection: Sequence[str]) -> list[str]:
    """pg_dump of one exported snapshot: custom format (pg_restore can reorder and filter it), not
    compressed (the backup codec compresses, much faster than pg_dump's zlib), never prompting."""
    return [
        str(pg_dump),
        f"--dbname={conninfo}",
        "--format=custom",
        "--compress=0",
        "--no-password",
        f"--snapshot={snapshot}",
        *selection,
    ]


def dump_args(kind: DumpKind, tables: Sequence[str]) -> list[str]:
    """pg_dump's selection for a schema dump or a dump of `tables`' rows."""
    if kind == "schema":
        # Definitions of everything, rows of everything outside a domain (schema_migrations).
        return [f"--exclude-table-data={table}" for table in ALL_TABLES]
    # --strict-names: a table that is missing fails the dump instead of being skipped silently.
    return ["--data-only", "--strict-names", *(f"--table={table}" for table in tables)]


_CURRENT_SNAPSHOT_SINCE = 130000  # server_version_num of the first release with pg_current_snapshot()
_OBSERVE = (
    "SELECT pg_export_snapshot(),"
    " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text,"
    " clock_timestamp(), current_setting('server_version_num')::int, pg_is_in_recovery(),"
    " to_regclass('schema_migrations') IS NOT NULL"
)


def _observe(
    conn: psycopg.Connection[Any],
    kind: DumpKind,
    domains: tuple[str, ...],
    tables: tuple[str, ...],
    what: str,
) -> tuple[DumpInfo, str]:
    """Export the snapshot pg_dump will use and record where it stands; returns (info, snapshot id)."""
    try:
        row = conn.execute(_OBSERVE).fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        snapshot, position, taken_at, server_version_num, in_recovery, has_migrations = row
        visible = None
        if int(server_version_num) >= _CURRENT_SNAPSHOT_SINCE:
            # Same REPEATABLE READ transaction, so the same snapshot as the one exported above.
            visible_row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
            visible = None if visible_row is None else str(visible_row[0])
        schema_version = None
        if has_migrations:
            version_row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
            if version_row is not None and version_row[0] is not None:
                schema_version = int(version_row[0])
    except psycopg.Error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ExternalFailure(
            f"cannot start the dump of {what}: {lines[0] if lines else type(exc).__name__}; check that "
            "the role may read the tables",
            code="backup.dump_failed",
        ) from None
    info = DumpInfo(
        kind=kind,
        domains=domains,
        tables=tables,
        position=str(position),
        taken_at=taken_at,
        schema_version=schema_version,
        server_version_num=int(server_version_num),
        from_standby=bool(in_recovery),
        snapshot=visible,
    )
    return info, str(snapshot)


@contextmanager
def _dump(
    conninfo: str, bin_dir: Path, kind: DumpKind, domains: tuple[str, ...], snapshot: str | None = None
) -> Iterator[DumpStream]:
    pg_dump = tool_path(bin_dir, "pg_dump")
    tables = tables_for(domains) if kind == "domains" else ()
    what = f"domain{'s' if len(domains) > 1 else ''} {', '.join(domains)}" if kind == "domains" else "schema"
    with connect(conninfo, autocommit=False, what=f"the database to dump ({what})") as conn:
        # The snapshot lives as long as this transaction: it stays open until pg_dump is done.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        if snapshot is not None:
            # Join a snapshot the caller holds open, so several dumps (and the caller's own reads, e.g.
            # fingerprints) see exactly the same rows.
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        info, exported = _observe(conn, kind, domains, tables, what)
        argv = pg_dump_argv(pg_dump, conninfo, exported, dump_args(kind, tables))
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=tool_env()
            )
            stream = DumpStream(process, stderr, info, what)
            try:
                yield stream
            except BaseException:
                stream.abort()
                raise
            if not stream.finished:
                stream.abort()
                raise ExternalFailure(
                    f"the dump of {what} was closed before its end ({stream.bytes_read} bytes read); "
                    "read the stream to its end before leaving the block",
                    code="backup.dump_incomplete",
                )
            conn.rollback()


def dump_domains(
    conninfo: str, bin_dir: Path, domains: Sequence[str], *, snapshot: str | None = None
) -> AbstractContextManager[DumpStream]:
    """The rows of several domains in one consistent snapshot, as one pg_dump custom-format stream.

    `snapshot`: an exported snapshot id (pg_export_snapshot) of a transaction the caller keeps open; the
    dump then sees exactly that snapshot's rows."""
    chosen = tuple(dict.fromkeys(domains))
    if not chosen:
        raise UsageError("no domain to dump: name at least one of " + ", ".join(DOMAIN_TABLES))
    tables_for(chosen)  # refuses unknown domains before anything starts
    return _dump(conninfo, bin_dir, "domains", chosen, snapshot)


def dump_domain(
    conninfo: str, bin_dir: Path, domain: str, *, snapshot: str | None = None
) -> AbstractContextManager[DumpStream]:
    """`with dump_domain(conninfo, bin_dir, "orders") as stream:` read `stream` to b""; `stream.info` is
    the DumpInfo. pg_dump runs while the block is open; leaving it early stops pg_dump."""
    return dump_domains(conninfo, bin_dir, (domain,), snapshot=snapshot)


def dump_schema(
    conninfo: str, bin_dir: Path, *, snapshot: str | None = None
) -> AbstractContextManager[DumpStream]:
    """The schema dump: every definition plus the rows of tables outside any domain (small)."""
    return _dump(conninfo, bin_dir, "schema", (), snapshot)
