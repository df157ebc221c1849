"""The daily backup: the runbook, the backup of domains in one snapshot, and the layout of an object.

Layout of a daily backup object's plaintext (what the codec encrypts): `ORSECT1\\n`, then sections one
after the other, each a frame `<name length: 1 byte><name: ASCII><size: 8 bytes big-endian>` followed by
`size` bytes; the size `TO_END` (2^64 - 1) means the section runs to the end of the stream (only the last
may). A domain backup holds `schema` (the schema dump restore_beside needs, a few KiB, so every object is
self-sufficient), for the logs domain one `file:<host>` tar of the service's log files per app host, and
`dump` (the domain's pg_dump custom-format stream, to the end). Writing (`SectionSource`) is a pull
stream for the encoder; reading (`SectionSplitter`) is a push sink for the decoder that routes each
section's bytes by name, so nothing is ever held whole in memory or written to disk in plaintext.

The runbook (`backup`): check the primary, pack the hosts' log files (playbooks/backup.yml, logs domain
only), dump every chosen domain in one exported snapshot (fingerprints taken in it too) into both copies,
verify both copies against their manifests, remove the packed files from the hosts.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from psycopg import sql

from recovery.backup.catalog import catalog_for
from recovery.backup.codec import Readable, Sink
from recovery.backup.keys import KeyProvider, key_provider
from recovery.backup.manifest import Manifest, SourcePosition, TableSummary
from recovery.backup.naming import DOMAINS, BackupName, Domain, parse_domain
from recovery.backup.pgdump import connect, dump_domain, dump_schema, first_error_line, tool_env
from recovery.backup.realtime import coverage, delete_wal_range, delete_wal_series, wal_series
from recovery.backup.repository import BackupMetadata, next_backup_name, object_key, write_backup
from recovery.backup.retention import (
    RetentionDecision,
    RetentionPolicy,
    WalSeriesDecision,
    plan_retention,
    plan_wal_retention,
)
from recovery.backup.stores import ObjectStore, stores_for
from recovery.backup.wal import WAL_DOMAIN
from recovery.drivers import remote
from recovery.drivers.ansible import require_success, run_playbook
from recovery.drivers.aws import AwsDriver
from recovery.drivers.db import conninfo as db_conninfo
from recovery.drivers.db import pg_tool
from recovery.engine import Runbook, RunContext, Step, register_runbook
from recovery.errors import IntegrityError, PreconditionFailed, RecoveryError, UsageError, VerificationFailed
from recovery.release.installed import read_host_release
from recovery.targets.model import Database, Host, Target
from recovery.verify.domains import tables_for
from recovery.verify.fingerprint import (
    DEFAULT_ALGORITHM,
    TableFingerprint,
    fastest_algorithm,
    fingerprint_tables,
)

MAGIC = b"ORSECT1\n"
TO_END = 2**64 - 1
_SIZE = struct.Struct(">Q")
SCHEMA = "schema"
DUMP = "dump"
FILE_PREFIX = "file:"


def frame(name: str, size: int | None) -> bytes:
    """The frame that opens a section; `size` None means "to the end of the stream"."""
    raw = name.encode("ascii")
    if not 1 <= len(raw) <= 255:
        raise ValueError(f"section name {name!r} must be 1-255 ASCII characters")
    return bytes([len(raw)]) + raw + _SIZE.pack(TO_END if size is None else size)


@dataclass(frozen=True)
class Part:
    """One section to write: its name, its size (None: the last, to the end) and its bytes."""

    name: str
    size: int | None
    data: bytes | Readable


class SectionSource:
    """A readable stream of MAGIC and the given parts, framed; a stream part must deliver exactly `size`."""

    def __init__(self, parts: Sequence[Part]) -> None:
        if any(part.size is None for part in parts[:-1]):
            raise ValueError("only the last section may run to the end of the stream")
        self._queue: list[bytes | Readable] = [MAGIC]
        self._sizes: list[tuple[str, int | None]] = []
        for part in parts:
            self._queue.append(frame(part.name, part.size))
            self._queue.append(part.data)
            self._sizes.append((part.name, part.size))
        self._streamed = 0
        self._index = 0

    def read(self, size: int = -1, /) -> bytes:
        while self._index < len(self._queue):
            item = self._queue[self._index]
            if isinstance(item, bytes):
                self._index += 1
                if item:
                    return item
                continue
            chunk = item.read(size if size and size > 0 else 1024 * 1024)
            if chunk:
                self._streamed += len(chunk)
                return chunk
            self._check_stream_length(self._index)
            self._index += 1
            self._streamed = 0
        return b""

    def _check_stream_length(self, index: int) -> None:
        name, expected = self._sizes[(index - 2) // 2]
        if expected is not None and self._streamed != expected:
            raise IntegrityError(
                f"section {name} delivered {self._streamed} bytes, not the {expected} announced; the file "
                "changed while it was backed up, run the backup again"
            )


Route = Callable[[str, int | None], Sink | None]


class SectionSplitter:
    """A sink for decoded plaintext that sends each section's bytes to `route(name, size)` (None: drop).

    `finish()` checks the stream ended at a section boundary; `sections` lists what was seen.
    """

    def __init__(self, route: Route) -> None:
        self._route = route
        self._pending = b""
        self._magic_seen = False
        self._sink: Sink | None = None
        self._left: int | None = 0  # bytes left in the current section; None: to the end
        self._in_section = False
        self.sections: list[tuple[str, int]] = []

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        while view:
            if not self._magic_seen:
                view = self._take_magic(view)
                continue
            if not self._in_section:
                view = self._take_frame(view)
                continue
            view = self._feed(view)
        return len(data)

    def _take_magic(self, view: memoryview) -> memoryview:
        need = len(MAGIC) - len(self._pending)
        self._pending += bytes(view[:need])
        if len(self._pending) == len(MAGIC):
            if self._pending != MAGIC:
                raise IntegrityError("the backup's content does not start with the section marker")
            self._magic_seen, self._pending = True, b""
        return view[need:]

    def _take_frame(self, view: memoryview) -> memoryview:
        if not self._pending:
            self._pending, view = bytes(view[:1]), view[1:]
            return view
        whole = 1 + self._pending[0] + _SIZE.size
        missing = whole - len(self._pending)
        self._pending, view = self._pending + bytes(view[:missing]), view[missing:]
        if len(self._pending) < whole:
            return view
        try:
            name = self._pending[1 : whole - _SIZE.size].decode("ascii")
        except UnicodeDecodeError:
            raise IntegrityError("the backup's content has a damaged section frame") from None
        (size,) = _SIZE.unpack(self._pending[whole - _SIZE.size : whole])
        self._pending = b""
        self._left = None if size == TO_END else size
        self._sink = self._route(name, self._left)
        self._in_section = self._left != 0
        self.sections.append((name, 0))
        return view

    def _feed(self, view: memoryview) -> memoryview:
        take = len(view) if self._left is None else min(self._left, len(view))
        if take and self._sink is not None:
            self._sink.write(bytes(view[:take]))
        name, seen = self.sections[-1]
        self.sections[-1] = (name, seen + take)
        if self._left is not None:
            self._left -= take
            if self._left == 0:
                self._in_section = False
        return view[take:]

    def finish(self) -> None:
        if not self._magic_seen or self._pending or (self._in_section and self._left is not None):
            raise IntegrityError("the backup's content ends inside a section; the object is truncated")


# The daily backup runbook ------------------------------------------------------------------------------

LOG_PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "backup.yml"
_PROGRESS_EVERY = 16 * 1024 * 1024
_OBSERVE = (
    "SELECT pg_export_snapshot(),"
    " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text,"
    " clock_timestamp()"
)


@dataclass(frozen=True)
class HeldSnapshot:
    """A snapshot exported from a transaction kept open: every dump and fingerprint of a backup uses it.

    The fingerprints are computed on the holding connection while the dumps run (it is idle otherwise);
    `fingerprints()` waits for them.
    """

    snapshot_id: str
    position: str
    taken_at: datetime
    pending: Future[dict[str, TableFingerprint]]

    def fingerprints(self) -> Mapping[str, TableFingerprint]:
        return self.pending.result()


@contextmanager
def held_snapshot(conninfo: str, tables: Sequence[str]) -> Iterator[HeldSnapshot]:
    """Open a REPEATABLE READ transaction, export its snapshot and fingerprint `tables` in it."""
    with connect(conninfo, what="the database to back up") as conn, ThreadPoolExecutor(1) as worker:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute(_OBSERVE).fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        snapshot_id, position, taken_at = row
        # Fingerprints in the dumps' snapshot: the manifest then describes exactly the rows dumped. Only
        # this thread uses the connection from here until the result is in.
        algorithm = fastest_algorithm(conn)
        pending = worker.submit(
            lambda: fingerprint_tables(conn, "public", tables, algorithm=algorithm) if tables else {}
        )
        try:
            yield HeldSnapshot(str(snapshot_id), str(position), taken_at, pending)
        finally:
            with suppress(Exception):
                pending.result()  # the connection is free again before it is closed
        conn.rollback()


@dataclass(frozen=True)
class HostFile:
    """A file gathered on a host (the logs domain's tar of the service's log files)."""

    host: Host
    path: PurePosixPath

    @property
    def section(self) -> str:
        return f"{FILE_PREFIX}{self.host.name}"


def host_log_file(host: Host, run_id: str) -> PurePosixPath:
    """Where backup.yml leaves a host's log tar for a run (the playbook computes the same path)."""
    return PurePosixPath(str(host.base_dir)) / "shared" / "backup" / f"logs-{run_id}.tar"


class _Counting:
    """Pass-through reader that hashes what it delivers and reports progress now and then."""

    def __init__(self, inner: Readable, report: Callable[[int], None] | None = None) -> None:
        self._inner = inner
        self._report = report
        self.count = 0
        self._next_report = _PROGRESS_EVERY
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._inner.read(size)
        self.count += len(chunk)
        self.digest.update(chunk)
        if self._report is not None and self.count >= self._next_report:
            self._next_report += _PROGRESS_EVERY
            self._report(self.count)
        return chunk


def _pg_bin(db: Database) -> Path:
    return pg_tool(db, "pg_dump").parent


def _read_all(stream: Readable) -> bytes:
    parts = []
    while chunk := stream.read(1024 * 1024):
        parts.append(chunk)
    return b"".join(parts)


def _service_version(target: Target) -> str:
    """The release the primary site's hosts run ("unknown" when it cannot be read: not a reason to skip
    a backup)."""
    for host in target.primary.hosts:
        try:
            release = read_host_release(host, "primary").release
        except RecoveryError:
            continue
        if release:
            return release
    return "unknown"


def _restore_point(conninfo: str, name: str) -> str:
    """pg_create_restore_point(name) on the primary: the realtime kind can recover to exactly it."""
    with connect(conninfo, autocommit=True, what="the primary database (restore point)") as conn:
        row = conn.execute("SELECT pg_create_restore_point(%s)::text", (name,)).fetchone()
        assert row is not None
        return str(row[0])


def backup_domains(
    target: Target,
    domains: Sequence[Domain],
    *,
    restore_point: str | None = None,
    host_files: Sequence[HostFile] = (),
    stores: Sequence[ObjectStore] | None = None,
    keys: KeyProvider | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Manifest]:
    """Back up `domains` of the target's primary database in one snapshot, each to both copies.

    Every object holds the schema dump, the host files (logs domain) and the domain dump; its manifest
    carries the snapshot's position and time, the schema and service versions and the fingerprints of
    the domain's tables taken in that snapshot.
    """
    db = target.primary.database
    conninfo = db_conninfo(db)
    bin_dir = _pg_bin(db)
    if stores is None or keys is None:
        driver = AwsDriver(target.aws)
        stores = stores if stores is not None else stores_for(target, driver)
        keys = keys if keys is not None else key_provider(target.keys, driver)
    manifests: list[Manifest] = []
    # The release is read over SSH (a connection set-up and a remote command) while the
    # dumps run; only the manifests, written after each stream ends, need it.
    with (
        ThreadPoolExecutor(1, thread_name_prefix="service-version") as asking,
        held_snapshot(conninfo, tables_for(list(domains))) as held,
    ):
        service_version = asking.submit(_service_version, target)
        point_lsn = _restore_point(conninfo, restore_point) if restore_point else None
        with dump_schema(conninfo, bin_dir, snapshot=held.snapshot_id) as schema_stream:
            schema = _read_all(schema_stream)
            schema_version = schema_stream.info.schema_version
        for domain in domains:
            name = next_backup_name(stores, held.taken_at.date(), domain, "daily")
            progress(f"{domain}: writing {name} to both copies")
            manifests.append(
                _backup_one(
                    conninfo,
                    bin_dir,
                    domain,
                    name,
                    held,
                    schema,
                    schema_version,
                    service_version,
                    restore_point,
                    point_lsn,
                    [f for f in host_files if domain == "logs"],
                    stores,
                    keys,
                    progress,
                )
            )
    return manifests


def _backup_one(
    conninfo: str,
    bin_dir: Path,
    domain: Domain,
    name: BackupName,
    held: HeldSnapshot,
    schema: bytes,
    schema_version: int | None,
    service_version: Future[str],
    restore_point: str | None,
    point_lsn: str | None,
    host_files: Sequence[HostFile],
    stores: Sequence[ObjectStore],
    keys: KeyProvider,
    progress: Callable[[str], None],
) -> Manifest:
    with ExitStack() as stack:
        file_parts: list[tuple[HostFile, _Counting, int]] = []
        for host_file in host_files:
            # Fabric keeps one SFTP session per connection and hands it out again: not closed here.
            sftp = remote.connection(host_file.host).sftp()
            size = sftp.stat(str(host_file.path)).st_size or 0
            handle = stack.enter_context(sftp.open(str(host_file.path), "rb"))
            handle.prefetch(size)
            file_parts.append((host_file, _Counting(handle), size))
        stream = stack.enter_context(dump_domain(conninfo, bin_dir, domain, snapshot=held.snapshot_id))
        dump = _Counting(stream, lambda done: progress(f"{domain}: {done // (1024 * 1024)} MiB dumped"))
        source = SectionSource(
            [
                Part(SCHEMA, len(schema), schema),
                *(Part(host_file.section, size, counted) for host_file, counted, size in file_parts),
                Part(DUMP, None, dump),
            ]
        )

        def metadata() -> BackupMetadata:
            tables = [
                TableSummary(
                    name=table,
                    rows=held.fingerprints()[table].rows,
                    content_hash=held.fingerprints()[table].content_hash,
                    algorithm=held.fingerprints()[table].algorithm,
                )
                for table in tables_for([domain])
            ]
            # Host files: "rows" is the byte count, the hash the sha256 of the tar.
            tables += [
                TableSummary(
                    name=host_file.section,
                    rows=counted.count,
                    content_hash=counted.digest.hexdigest(),
                    algorithm="sha256",
                )
                for host_file, counted, _ in file_parts
            ]
            return BackupMetadata(
                source=SourcePosition(
                    at=held.taken_at, lsn=point_lsn or held.position, restore_point=restore_point
                ),
                schema_version=str(schema_version) if schema_version is not None else "unknown",
                service_version=service_version.result(),
                tables=tuple(tables),
            )

        return write_backup(source, name, metadata, stores, keys, created_at=datetime.now(UTC))


def _params(ctx: RunContext) -> tuple[list[Domain], str | None]:
    domains = [parse_domain(str(domain)) for domain in ctx.params["domains"]]
    point = ctx.params.get("restore_point")
    return domains, str(point) if point else None


def _check_database(ctx: RunContext) -> dict[str, object]:
    db = ctx.target.primary.database
    with connect(db_conninfo(db), what="the primary database") as conn:
        row = conn.execute("SELECT current_setting('server_version'), pg_is_in_recovery()").fetchone()
    assert row is not None
    if row[1]:
        raise PreconditionFailed(
            f"the primary database {db.address}:{db.port} is in recovery (a standby); back up the primary"
        )
    return {"database": f"{db.address}:{db.port}/{db.name}", "server_version": str(row[0])}


def _log_playbook(ctx: RunContext, phase: str) -> None:
    result = run_playbook(
        ctx.target.inventory,
        str(LOG_PLAYBOOK),
        extravars={"order_backup_logs_phase": phase, "order_backup_logs_run": ctx.run_id},
    )
    require_success(result)


def _gather_logs(ctx: RunContext) -> dict[str, object]:
    ctx.progress("packing the service's log files on every app host")
    _log_playbook(ctx, "gather")
    return {"files": {host.name: str(host_log_file(host, ctx.run_id)) for host in ctx.target.hosts()}}


def _back_up(ctx: RunContext) -> dict[str, object]:
    domains, point = _params(ctx)
    files = [HostFile(host, host_log_file(host, ctx.run_id)) for host in ctx.target.hosts()]
    manifests = backup_domains(
        ctx.target,
        domains,
        restore_point=point,
        host_files=files if "logs" in domains else (),
        progress=ctx.progress,
    )
    for manifest in manifests:
        ctx.note(
            f"{manifest.backup_id}: {manifest.sizes.raw} bytes, stored {manifest.sizes.stored}",
            backup_id=manifest.backup_id,
        )
    return {"backups": [_summary(manifest) for manifest in manifests]}


def _summary(manifest: Manifest) -> dict[str, object]:
    return {
        "backup_id": manifest.backup_id,
        "domain": manifest.domain,
        "position": manifest.source.at.isoformat(),
        "restore_point": manifest.source.restore_point,
        "raw_bytes": manifest.sizes.raw,
        "stored_bytes": manifest.sizes.stored,
        "rows": {table.name: table.rows for table in manifest.tables},
    }


def _verify_copies(ctx: RunContext) -> dict[str, object]:
    catalog = catalog_for(ctx.target, with_keys=False)
    states: dict[str, dict[str, str]] = {}
    failures: list[str] = []
    for backup in ctx.outputs["back-up"]["backups"]:
        entry = catalog.verify(str(backup["backup_id"]))
        states[entry.backup_id] = {"local": str(entry.local.state), "remote": str(entry.remote.state)}
        if not entry.counts:
            failures.append(
                f"{entry.backup_id} (local {entry.local.state} {entry.local.detail}; "
                f"remote {entry.remote.state} {entry.remote.detail})"
            )
    if failures:
        raise VerificationFailed(
            f"backup does not count, both copies must exist and verify: {failures[0]}; run the backup again"
        )
    return {"copies": states}


def _clean_host_files(ctx: RunContext) -> dict[str, object]:
    _log_playbook(ctx, "cleanup")
    return {"removed": [str(host_log_file(host, ctx.run_id)) for host in ctx.target.hosts()]}


def backup_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    """params: domains (list), restore_point (str or None)."""
    domains = [parse_domain(str(domain)) for domain in params["domains"]]
    point = params.get("restore_point")
    hosts = tuple(host.name for host in target.hosts())
    buckets = (f"s3://{target.backup.local.bucket}", f"s3://{target.backup.remote.bucket}")
    what = ", ".join(domains) + (f" as restore point {point!r}" if point else "")
    steps: list[Step] = [
        Step("check-database", "check that the primary database answers", _check_database, mutating=False),
    ]
    if "logs" in domains:
        steps.append(
            Step("gather-logs", "pack the service's log files on each app host", _gather_logs, acts_on=hosts)
        )
    steps += [
        Step("back-up", f"dump {what} in one snapshot into both encrypted copies", _back_up, acts_on=buckets),
        Step(
            "verify-copies",
            "check both copies of every new backup against its manifest",
            _verify_copies,
            mutating=False,
        ),
    ]
    if "logs" in domains:
        steps.append(
            Step(
                "clean-host-files",
                "remove the packed log files from the app hosts",
                _clean_host_files,
                acts_on=hosts,
            )
        )
    return Runbook(name="backup", steps=tuple(steps), params=dict(params))


def backup_params(domains: Sequence[Domain], restore_point: str | None = None) -> dict[str, object]:
    chosen = list(dict.fromkeys(domains)) or list(DOMAINS)
    if restore_point is not None and not _POINT_NAME.match(restore_point):
        raise UsageError(
            f"restore point name {restore_point!r} must be 1-63 letters, digits, '.', '_' or '-'"
        )
    return {"domains": chosen, "restore_point": restore_point}


_POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")

register_runbook("backup", backup_runbook)


# Retention: `recovery backup prune` ---------------------------------------------------------------------


@dataclass(frozen=True)
class PrunePlan:
    """What retention decided: every backup and every WAL series, each with its reason."""

    backups: tuple[RetentionDecision, ...]
    wal_series: tuple[WalSeriesDecision, ...]

    @property
    def doomed_backups(self) -> list[str]:
        return [decision.backup_id for decision in self.backups if not decision.keep]

    @property
    def doomed_series(self) -> list[str]:
        return [decision.series for decision in self.wal_series if not decision.keep]


def plan_prune(target: Target, policy: RetentionPolicy) -> PrunePlan:
    """Shallow-verify every backup (both copies), then decide backups and WAL series (both copies)."""
    catalog = catalog_for(target, with_keys=False)
    entries = [catalog.verify(entry.backup_id) for entry in catalog.entries()]
    decisions = plan_retention(entries, policy)
    series = sorted(set(wal_series(catalog.local)) | set(wal_series(catalog.remote)))
    return PrunePlan(tuple(decisions), tuple(plan_wal_retention(series, entries, decisions)))


def _prune_decide(ctx: RunContext) -> dict[str, object]:
    """Decide again at run time and delete only what the operator confirmed and is still outside
    the retention (a backup verified or taken since the confirmation can change the answer)."""
    policy = RetentionPolicy(daily=int(ctx.params["keep_daily"]), weekly=int(ctx.params["keep_weekly"]))
    ctx.progress("checking both copies of every backup")
    plan = plan_prune(ctx.target, policy)
    confirmed_backups = set(ctx.params["backups"])
    confirmed_series = set(ctx.params["wal_series"])
    backups = [backup_id for backup_id in plan.doomed_backups if backup_id in confirmed_backups]
    series = [name for name in plan.doomed_series if name in confirmed_series]
    for name in sorted((confirmed_backups - set(backups)) | (confirmed_series - set(series))):
        ctx.note(f"{name}: no longer outside the retention; kept")
    reasons = {d.backup_id: d.reason for d in plan.backups} | {d.series: d.reason for d in plan.wal_series}
    for name in backups + series:
        ctx.note(f"{name}: delete: {reasons[name]}")
    return {
        "backups": backups,
        "wal_series": series,
        "kept_realtime": [
            d.backup_id for d in plan.backups if d.keep and BackupName.parse(d.backup_id).kind == "realtime"
        ],
    }


def _prune_backups(ctx: RunContext) -> dict[str, object]:
    catalog = catalog_for(ctx.target, with_keys=False)
    deleted: list[str] = []
    for backup_id in ctx.outputs["decide"]["backups"]:
        ctx.progress(f"deleting {backup_id} from both copies")
        catalog.delete(str(backup_id))
        name = BackupName.parse(str(backup_id))
        if name.kind == "realtime":
            for store in (catalog.local, catalog.remote):
                delete_wal_range(store, name)
        deleted.append(str(backup_id))
    return {"deleted": deleted}


def _prune_wal(ctx: RunContext) -> dict[str, object]:
    catalog = catalog_for(ctx.target, with_keys=False)
    objects: dict[str, dict[str, int]] = {}
    for series in ctx.outputs["decide"]["wal_series"]:
        ctx.progress(f"deleting WAL series {series} from both copies")
        objects[str(series)] = {
            "local": delete_wal_series(catalog.local, str(series)),
            "remote": delete_wal_series(catalog.remote, str(series)),
        }
    return {"deleted_objects": objects}


def _prune_check(ctx: RunContext) -> dict[str, object]:
    """After deleting: nothing deleted is left in either copy, and every kept realtime backup still
    reaches its WAL from the segment holding its end in each copy that held it before."""
    catalog = catalog_for(ctx.target, with_keys=False)
    problems: list[str] = []
    for backup_id in ctx.outputs["delete-backups"]["deleted"]:
        key = object_key(BackupName.parse(str(backup_id)))
        for store in (catalog.local, catalog.remote):
            if store.head(key) is not None:
                problems.append(f"{store.describe(key)} is still there")
    for series in ctx.outputs["delete-wal-series"]["deleted_objects"]:
        for label, store in (("local", catalog.local), ("remote", catalog.remote)):
            if store.list_keys(f"{WAL_DOMAIN}/{series}/"):
                problems.append(f"WAL series {series} still has objects in the {label} copy")
    checked: dict[str, int] = {}
    for backup_id in ctx.outputs["decide"]["kept_realtime"]:
        name = BackupName.parse(str(backup_id))
        for label, store in (("local", catalog.local), ("remote", catalog.remote)):
            if store.head(object_key(name)) is None:
                continue
            try:
                found = coverage(store, name)
            except IntegrityError as exc:
                problems.append(f"{backup_id} ({label} copy): {exc.message}")
                continue
            first = found.wal_range.first_segment.name()
            if not found.segments or found.segments[0].file_name != first:
                problems.append(f"{backup_id} ({label} copy) no longer finds its first WAL segment {first}")
            checked[f"{backup_id} ({label})"] = len(found.segments)
    if problems:
        raise VerificationFailed(f"after pruning: {problems[0]}")
    return {"realtime_segments": checked}


def prune_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    """params: keep_daily, keep_weekly, backups and wal_series (what the operator confirmed)."""
    buckets = (f"s3://{target.backup.local.bucket}", f"s3://{target.backup.remote.bucket}")
    backups, series = list(params["backups"]), list(params["wal_series"])
    return Runbook(
        name="backup-prune",
        params=dict(params),
        confirm=f"deleting {len(backups)} backups and {len(series)} WAL series from both copies",
        steps=(
            Step(
                "decide",
                "check both copies of every backup and decide again what retention deletes",
                _prune_decide,
                mutating=False,
            ),
            Step(
                "delete-backups",
                f"delete {len(backups)} backups outside the retention from both copies",
                _prune_backups,
                acts_on=buckets,
            ),
            Step(
                "delete-wal-series",
                f"delete {len(series)} WAL series no kept realtime backup needs from both copies",
                _prune_wal,
                acts_on=buckets,
            ),
            Step(
                "check-after",
                "check that the deleted objects are gone and kept realtime backups still reach their WAL",
                _prune_check,
                mutating=False,
            ),
        ),
    )


def prune_params(policy: RetentionPolicy, plan: PrunePlan) -> dict[str, object]:
    return {
        "keep_daily": policy.daily,
        "keep_weekly": policy.weekly,
        "backups": plan.doomed_backups,
        "wal_series": plan.doomed_series,
    }


register_runbook("backup-prune", prune_runbook)


# Deep verification: a backup's contents restored into a throw-away database and fingerprinted ----------


class _Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes, /) -> int:
        self.data += data
        return len(data)


class _Hash:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        self.count += len(data)
        return len(data)


class ScratchCheck:
    """A catalog ContentCheck: the `dump` section is loaded by pg_restore into an empty throw-away
    database made from the backup's own schema section, then fingerprinted like live tables; host file
    sections are hashed. No live data is read or written. `close()` drops the database whatever happened.
    """

    def __init__(self, db: Database, manifest: Manifest) -> None:
        self._db = db
        self._manifest = manifest
        self._bin = _pg_bin(db)
        self.scratch = f"{db.name}_verify_{secrets.token_hex(4)}"
        self._schema = _Collect()
        self._files: dict[str, _Hash] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._splitter = SectionSplitter(self._route)

    def _route(self, name: str, size: int | None) -> Sink | None:
        if name == SCHEMA:
            return self._schema
        if name.startswith(FILE_PREFIX):
            return self._files.setdefault(name, _Hash())
        if name == DUMP:
            return self._start_load()
        return None

    def _admin(self) -> str:
        return db_conninfo(self._db, dbname="postgres")

    def _start_load(self) -> Sink:
        with connect(self._admin(), autocommit=True, what="the server for deep verification") as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(self.scratch))
            )
        target = db_conninfo(self._db, dbname=self.scratch)
        with tempfile.NamedTemporaryFile(prefix="verify-schema-") as schema:
            schema.write(self._schema.data)
            schema.flush()
            subprocess.run(
                [
                    str(self._bin / "pg_restore"),
                    f"--dbname={target}",
                    "--section=pre-data",
                    "--exit-on-error",
                    "--no-owner",
                    schema.name,
                ],
                check=True,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=tool_env(),
            )
        self._process = subprocess.Popen(
            [str(self._bin / "pg_restore"), f"--dbname={target}", "--data-only", "--exit-on-error"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=tool_env(),
        )
        assert self._process.stdin is not None
        return self._process.stdin

    def write(self, data: bytes, /) -> int:
        self._splitter.write(data)
        return len(data)

    def finish(self) -> Sequence[TableSummary]:
        self._splitter.finish()
        if self._process is None:
            raise IntegrityError(f"{self._manifest.backup_id} holds no dump section")
        assert self._process.stdin is not None
        self._process.stdin.close()
        if self._process.wait() != 0:
            reason = first_error_line(self._stderr, fallback="pg_restore failed")
            return [TableSummary(name=f"(pg_restore failed: {reason})", rows=0, content_hash="-")]
        with connect(
            db_conninfo(self._db, dbname=self.scratch), autocommit=True, what="the scratch copy"
        ) as conn:
            # Hash each table the way the manifest says it was hashed when backed up.
            recorded = {table.name: table.algorithm for table in self._manifest.tables}
            found = {}
            for table in tables_for([self._manifest.domain]):
                algorithm = recorded.get(table, DEFAULT_ALGORITHM)
                chosen = algorithm if algorithm != "sha256" else DEFAULT_ALGORITHM
                found.update(fingerprint_tables(conn, "public", [table], algorithm=chosen))
        summaries = [
            TableSummary(
                name=name, rows=print_.rows, content_hash=print_.content_hash, algorithm=print_.algorithm
            )
            for name, print_ in found.items()
        ]
        summaries += [
            TableSummary(
                name=name, rows=hashed.count, content_hash=hashed.digest.hexdigest(), algorithm="sha256"
            )
            for name, hashed in self._files.items()
        ]
        return summaries

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stderr.close()
        with connect(self._admin(), autocommit=True, what="the server for deep verification") as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.scratch))
            )


class DeepChecker:
    """The ContentChecker `Catalog.verify(deep=True)` takes; `close()` drops every scratch database."""

    def __init__(self, target: Target) -> None:
        self._db = target.primary.database
        self._checks: list[ScratchCheck] = []

    def __call__(self, manifest: Manifest) -> ScratchCheck:
        check = ScratchCheck(self._db, manifest)
        self._checks.append(check)
        return check

    def close(self) -> None:
        for check in self._checks:
            check.close()
        self._checks.clear()


def deep_checker(target: Target) -> DeepChecker:
    return DeepChecker(target)
