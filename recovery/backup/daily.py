"""The daily backup of data domains: dumped in one held snapshot, each into both encrypted copies.

Every object holds the schema dump, the host files (logs domain) and the domain dump (the layout is in
`recovery.backup.sections`); its manifest carries the snapshot's position and time, the schema and
service versions and the fingerprints of the domain's tables taken in that snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import psycopg

from recovery.backup.catalog import catalog_for
from recovery.backup.codec import Readable
from recovery.backup.keys import KeyProvider, key_provider
from recovery.backup.manifest import Manifest, SourcePosition, TableSummary
from recovery.backup.naming import BackupName, Domain
from recovery.backup.pgdump import dump_domain, dump_schema
from recovery.backup.repository import BackupMetadata, next_backup_name, write_backup
from recovery.backup.sections import DUMP, FILE_PREFIX, SCHEMA, Part, SectionSource
from recovery.backup.stores import ObjectStore, stores_for
from recovery.drivers import remote
from recovery.drivers.aws import AwsDriver
from recovery.drivers.db import connect, in_recovery, pg_bin
from recovery.drivers.db import conninfo as db_conninfo
from recovery.errors import PreconditionFailed, RecoveryError, VerificationFailed
from recovery.release.installed import read_host_release
from recovery.targets.model import Host, Target
from recovery.verify.domains import tables_for
from recovery.verify.fingerprint import TableFingerprint, fastest_algorithm, fingerprint_tables

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
    with (
        connect(conninfo, autocommit=False, what="the database to back up") as conn,
        ThreadPoolExecutor(1) as worker,
    ):
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


def _read_all(stream: Readable) -> bytes:
    parts = []
    while chunk := stream.read(1024 * 1024):
        parts.append(chunk)
    return b"".join(parts)


def _service_version(target: Target) -> str:
    """The release the primary site's hosts run ("unknown" when it cannot be read: not a reason to skip
    a backup)."""
    for host in target.writable.hosts:
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


@dataclass(frozen=True)
class BackupCut:
    """What every domain object of one backup run shares: the source, the held snapshot and the schema
    dump taken in it, the versions and restore point the manifests record, and where the copies go."""

    conninfo: str
    bin_dir: Path
    held: HeldSnapshot
    schema: bytes
    schema_version: int | None
    service_version: Future[str]
    restore_point: str | None
    point_lsn: str | None
    stores: Sequence[ObjectStore]
    keys: KeyProvider
    progress: Callable[[str], None]


@dataclass(frozen=True)
class DomainObject:
    """One object to write: a domain of the cut under its new name, with its host files (logs only)."""

    domain: Domain
    name: BackupName
    host_files: tuple[HostFile, ...] = ()


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
    """Back up `domains` of the target's primary database in one snapshot, each to both copies."""
    db = target.writable.database
    conninfo = db_conninfo(db)
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
        bin_dir = pg_bin(db)
        with dump_schema(conninfo, bin_dir, snapshot=held.snapshot_id) as schema_stream:
            schema = _read_all(schema_stream)
            schema_version = schema_stream.info.schema_version
        cut = BackupCut(
            conninfo=conninfo,
            bin_dir=bin_dir,
            held=held,
            schema=schema,
            schema_version=schema_version,
            service_version=service_version,
            restore_point=restore_point,
            point_lsn=point_lsn,
            stores=stores,
            keys=keys,
            progress=progress,
        )
        for domain in domains:
            name = next_backup_name(stores, held.taken_at.date(), domain, "daily")
            progress(f"{domain}: writing {name} to both copies")
            files = tuple(host_files) if domain == "logs" else ()
            manifests.append(_backup_one(cut, DomainObject(domain, name, files)))
    return manifests


def _backup_one(cut: BackupCut, wanted: DomainObject) -> Manifest:
    domain, progress = wanted.domain, cut.progress
    with ExitStack() as stack:
        file_parts: list[tuple[HostFile, _Counting, int]] = []
        for host_file in wanted.host_files:
            sftp = stack.enter_context(remote.sftp(host_file.host))
            size = sftp.stat(str(host_file.path)).st_size or 0
            handle = stack.enter_context(sftp.open(str(host_file.path), "rb"))
            handle.prefetch(size)
            file_parts.append((host_file, _Counting(handle), size))
        stream = stack.enter_context(
            dump_domain(cut.conninfo, cut.bin_dir, domain, snapshot=cut.held.snapshot_id)
        )
        dump = _Counting(stream, lambda done: progress(f"{domain}: {done // (1024 * 1024)} MiB dumped"))
        source = SectionSource(
            [
                Part(SCHEMA, len(cut.schema), cut.schema),
                *(Part(host_file.section, size, counted) for host_file, counted, size in file_parts),
                Part(DUMP, None, dump),
            ]
        )

        def metadata() -> BackupMetadata:
            prints = cut.held.fingerprints()
            tables = [
                TableSummary(
                    name=table,
                    rows=prints[table].rows,
                    content_hash=prints[table].content_hash,
                    algorithm=prints[table].algorithm,
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
                    at=cut.held.taken_at,
                    lsn=cut.point_lsn or cut.held.position,
                    restore_point=cut.restore_point,
                ),
                schema_version=str(cut.schema_version) if cut.schema_version is not None else "unknown",
                service_version=cut.service_version.result(),
                tables=tuple(tables),
            )

        return write_backup(source, wanted.name, metadata, cut.stores, cut.keys, created_at=datetime.now(UTC))


# --- the checks around a backup run --------------------------------------------------------------------


@dataclass(frozen=True)
class PrimaryFacts:
    database: str  # address:port/name
    server_version: str


def check_primary(target: Target) -> PrimaryFacts:
    """The primary database answers and is not in recovery (a standby cannot be backed up here)."""
    db = target.writable.database
    with connect(db, what="the primary database") as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
        standby = in_recovery(conn)
    assert row is not None
    if standby:
        raise PreconditionFailed(
            f"the primary database {db.address}:{db.port} is in recovery (a standby); back up the primary"
        )
    return PrimaryFacts(f"{db.address}:{db.port}/{db.name}", str(row[0]))


def verify_new_copies(target: Target, backup_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Both copies of every new backup checked against its manifest; the state of each copy by backup id.
    Raises VerificationFailed when one backup does not count."""
    catalog = catalog_for(target, with_keys=False)
    states: dict[str, dict[str, str]] = {}
    failures: list[str] = []
    for backup_id in backup_ids:
        entry = catalog.verify(backup_id)
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
    return states
