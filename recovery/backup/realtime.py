"""Realtime backups of orders and transactions: shipped WAL, base backups, restore points, coverage.

- The database host archives every completed WAL segment into a spool directory (the order_wal_archive
  role). `ship_wal` fetches each spooled file over SSH, encrypts it (the backup codec, a fresh data key
  per file), writes it and its manifest to both copies, reads both back to verify them, and only then
  removes it from the spool. Shipping is idempotent: a file already stored and verifying is not
  written again, only removed from the spool.
- `take_base_backup` streams `pg_basebackup -D - -Ft -X fetch` through the codec into both copies as the
  day's `orders` realtime backup; the `transactions` realtime backup of the same day shares that object
  (the cluster holds both domains: its manifest names the orders backup in `shares`, so the bytes are
  encrypted and stored once). Beside each, `<name>.wal-range.json` records the start and end LSN,
  timeline and times of the base backup.
- `create_restore_point` names the current WAL position, forces a segment switch and ships it.
- `coverage` says from when to when a realtime backup can be recovered: from the end of its base
  backup to the last write of the newest segment in the unbroken run shipped after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shlex
import stat
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

from pydantic import Field

from recovery.backup.catalog import CatalogEntry, CopyState
from recovery.backup.codec import FORMAT_VERSION, Readable, Sink, decode, encode
from recovery.backup.keys import KeyProvider, key_provider
from recovery.backup.manifest import Manifest, Sizes, SourcePosition, StoredDocument, key_info
from recovery.backup.naming import BackupName, Domain
from recovery.backup.repository import (
    BackupMetadata,
    next_backup_name,
    object_key,
    read_manifest,
    write_backup,
    write_shared_backup,
)
from recovery.backup.stores import ObjectStore, stores_for
from recovery.backup.wal import (
    SERIES_SUFFIX,
    WAL_DOMAIN,
    WAL_MANIFEST_SUFFIX,
    RestorePoint,
    Segment,
    WalKey,
    WalManifest,
    check_restore_point_name,
    codec_id,
    is_wal_file_name,
    parse_wal_keys,
    restore_point_key,
    segment_system_identifier,
    series_id,
    series_system,
    wal_key_context,
    wal_manifest_key,
    wal_object_key,
)
from recovery.drivers import db, remote
from recovery.drivers.aws import AwsDriver
from recovery.errors import ExternalFailure, IntegrityError, PreconditionFailed, UsageError
from recovery.targets.model import Database, Host, Target

SPOOL_DIR_NAME = "wal-spool"
WAL_RANGE_SUFFIX = ".wal-range.json"
WAL_CHUNK_SIZE = 1024 * 1024
_HASH_BLOCK = 1024 * 1024
_PAGE_HEADER = 32  # a segment's first page header: where its cluster's system identifier is


# --- where things are ---------------------------------------------------------------------------------


def database_host(target: Target) -> Host:
    """The primary site's database host: its first app host (docs/architecture.md, Ansible contract)."""
    return target.writable.hosts[0]


def spool_dir(database: Database) -> Path:
    """The spool the order_wal_archive role fills: `wal-spool` beside the data directory."""
    if database.data_dir is None:
        raise UsageError(
            "the target's primary database has no data_dir; add it so the WAL spool can be found"
        )
    return database.data_dir.parent / SPOOL_DIR_NAME


def wal_archive_extravars(target: Target) -> dict[str, str]:
    """Extra vars of playbooks/wal-archive.yml for `target` (paths only, never secrets)."""
    database = target.writable.database
    if database.data_dir is None or database.bin_dir is None:
        raise UsageError("the target's primary database needs data_dir and bin_dir to set up WAL archiving")
    return {
        "order_wal_archive_data_dir": str(database.data_dir),
        "order_wal_archive_bin_dir": str(database.bin_dir),
        "order_wal_archive_spool_dir": str(spool_dir(database)),
    }


@dataclass(frozen=True)
class RealtimeStores:
    """The two copies and the keys: what every realtime operation writes to or reads from."""

    local: ObjectStore
    remote: ObjectStore
    keys: KeyProvider

    @property
    def both(self) -> tuple[ObjectStore, ObjectStore]:
        return (self.local, self.remote)

    def copy(self, label: str) -> ObjectStore:
        if label not in ("local", "remote"):
            raise UsageError(f"unknown copy {label!r}; use local or remote")
        return self.local if label == "local" else self.remote


def realtime_stores(target: Target, aws: AwsDriver | None = None) -> RealtimeStores:
    driver = aws or AwsDriver(target.aws)
    local, remote_store = stores_for(target, driver)
    return RealtimeStores(local, remote_store, key_provider(target.keys, driver))


# --- shipping -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedFile:
    file_name: str
    series: str
    written_at: datetime
    raw_bytes: int
    stored_bytes: int
    uploaded_to: tuple[str, ...]  # copies written this time; empty when both already held it


@dataclass(frozen=True)
class ShipReport:
    files: tuple[ShippedFile, ...]
    spool: str
    seconds: float

    @property
    def uploaded(self) -> int:
        return sum(1 for item in self.files if item.uploaded_to)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(item.file_name for item in self.files)


def _sha256_of(store: ObjectStore, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with store.open(key) as stream:
        reader: Readable = stream
        while block := reader.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def verified_wal_copy(store: ObjectStore, series: str, file_name: str) -> WalManifest | None:
    """The copy's manifest when object and manifest exist and the object matches it; else None."""
    data = store.get_bytes(wal_manifest_key(series, file_name))
    if data is None or store.head(wal_object_key(series, file_name)) is None:
        return None
    try:
        manifest = WalManifest.from_json(data, store.describe(wal_manifest_key(series, file_name)))
    except IntegrityError:
        return None
    digest, size = _sha256_of(store, wal_object_key(series, file_name))
    if digest != manifest.sha256 or size != manifest.sizes.stored:
        return None
    return manifest


class _Digest:
    """A sink that only hashes what it is given."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return len(data)


def holds_bytes(store: ObjectStore, series: str, file_name: str, raw: bytes, keys: KeyProvider) -> bool:
    """True only when the copy's object decrypts to exactly `raw` (the spooled file)."""
    return holds_digest(store, series, file_name, hashlib.sha256(raw).digest(), keys)


def holds_digest(store: ObjectStore, series: str, file_name: str, sha256: bytes, keys: KeyProvider) -> bool:
    """True only when the copy's object decrypts to bytes whose sha256 is `sha256` (the spooled file's).

    A stored object and a manifest that agree with each other prove nothing about the spooled file: a
    planted pair under a future segment name, or the segment of an older cluster with the same name,
    agree too. Decrypting the object under its own name and comparing the plaintext's digest with the
    spooled file's is what lets the spool forget the file.
    """
    if verified_wal_copy(store, series, file_name) is None:
        return False
    sink = _Digest()
    try:
        fetch_wal(store, WalKey(series, file_name), sink, keys)
    except IntegrityError:  # includes a data key that does not open it
        return False
    return sink.hash.digest() == sha256


@dataclass(frozen=True)
class SealedWal:
    """One WAL file encrypted once; the same bytes and manifest go to every copy that lacks it."""

    data: bytes
    manifest: WalManifest


def seal_wal(
    series: str, file_name: str, raw: bytes | Readable, written_at: datetime, keys: KeyProvider
) -> SealedWal:
    """Encrypt one WAL file, given as bytes or as a stream of them (a spooled copy read from its start)."""
    data_key = keys.new_data_key(context=wal_key_context(series, file_name))
    sealed = io.BytesIO()
    source = io.BytesIO(raw) if isinstance(raw, bytes) else raw
    result = encode(source, sealed, data_key, codec_id(series, file_name), chunk_size=WAL_CHUNK_SIZE)
    manifest = WalManifest(
        format_version=FORMAT_VERSION,
        series=series,
        file_name=file_name,
        written_at=written_at,
        shipped_at=datetime.now(UTC),
        sizes=Sizes(raw=result.raw_bytes, compressed=result.compressed_bytes, stored=result.stored_bytes),
        sha256=result.sha256,
        chunk_size=result.chunk_size,
        key=key_info(data_key),
        system_identifier=series_system(series),
    )
    return SealedWal(sealed.getvalue(), manifest)


def store_wal(store: ObjectStore, sealed: SealedWal) -> WalManifest:
    """Write one sealed WAL file and its manifest to `store`, read it back, return the verified manifest."""
    series, file_name = sealed.manifest.series, sealed.manifest.file_name
    key = wal_object_key(series, file_name)
    # An object without a manifest is a write that broke off before it was complete: replace it.
    if store.get_bytes(wal_manifest_key(series, file_name)) is None and store.head(key) is not None:
        store.delete(key)
    store.put_bytes(key, sealed.data)
    store.put_bytes(wal_manifest_key(series, file_name), sealed.manifest.to_json())
    verified = verified_wal_copy(store, series, file_name)
    if verified is None or verified.sha256 != sealed.manifest.sha256:
        raise IntegrityError(f"{store.describe(key)} does not verify after upload; retry the shipment")
    return verified


def store_wal_once(store: ObjectStore, sealed: SealedWal, sha256: bytes, keys: KeyProvider) -> int:
    """`store_wal`, where another shipper (the watch beside a `backup ship`) storing the same file first is
    success: its write-once refusal is accepted when the copy now holds these very bytes. Bytes stored."""
    try:
        return store_wal(store, sealed).sizes.stored
    except PreconditionFailed:
        manifest = sealed.manifest
        if holds_digest(store, manifest.series, manifest.file_name, sha256, keys):
            return 0
        raise


# Runs on the database host with its system Python: compressing there moves a mostly empty 16 MiB
# segment over SSH as tens of KiB (measured: 0.4 s instead of 1.2 s through SFTP). It sends the file's
# modification time in nanoseconds first: SFTP listings round it down to whole seconds.
_FETCH = (
    "import os,sys,zlib; p=sys.argv[1]; d=open(p,'rb').read(); "
    "sys.stdout.buffer.write(os.stat(p).st_mtime_ns.to_bytes(8,'big') + zlib.compress(d,1))"
)


def _fetch_spooled(host: Host, path: str, expected_size: int, into: IO[bytes]) -> tuple[datetime, bytes]:
    """Copy the spooled file into `into`; return its last write (to the nanosecond) and its sha256.

    Inflated as it arrives, a MiB at a time, into a local file: a segment (16 MiB, or up to 1 GiB with
    a larger `wal_segsize`) is never held in memory, neither compressed nor whole.
    """
    client = remote.connection(host).client
    command = f"{shlex.quote(host.python)} -c {shlex.quote(_FETCH)} {shlex.quote(path)}"
    _, stdout, stderr = client.exec_command(command, timeout=120)
    stamp = stdout.read(8)
    inflate = zlib.decompressobj()
    digest = hashlib.sha256()
    size = 0
    broken = False
    try:
        while block := stdout.read(_HASH_BLOCK):
            while block:
                piece = inflate.decompress(block, _HASH_BLOCK)
                into.write(piece)
                digest.update(piece)
                size += len(piece)
                block = inflate.unconsumed_tail
        piece = inflate.flush()
        into.write(piece)
        digest.update(piece)
        size += len(piece)
    except zlib.error:
        broken = True  # a host that failed half-way: its status and stderr say why
    status = stdout.channel.recv_exit_status()
    if status != 0 or len(stamp) < 8 or broken:
        last = stderr.read().decode("utf-8", "replace").strip().splitlines()
        raise ExternalFailure(
            f"cannot read spooled WAL file {path} on host {host.name}: {last[-1] if last else status}"
        )
    if size != expected_size:
        raise ExternalFailure(f"spooled WAL file {path} changed while it was read; ship again")
    return datetime.fromtimestamp(int.from_bytes(stamp, "big") / 1e9, UTC), digest.digest()


def _still_spooled(sftp: Any, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def cluster_system_identifier(target: Target) -> str:
    """The primary cluster's system identifier: the first 8 bytes of `global/pg_control` on its host."""
    database = target.writable.database
    if database.data_dir is None:
        raise UsageError("the target's primary database has no data_dir; add it so its identity can be read")
    host = database_host(target)
    path = f"{database.data_dir}/global/pg_control"
    try:
        with remote.sftp(host) as sftp, sftp.open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise ExternalFailure(f"cannot read {path} on host {host.name}: {exc}") from None
    if len(head) != 8:
        raise ExternalFailure(f"{path} on host {host.name} is too short to name its cluster")
    return str(int.from_bytes(head, "little"))


def ship_wal(
    target: Target,
    *,
    stores: RealtimeStores | None = None,
    aws: AwsDriver | None = None,
    only: Collection[str] | None = None,
) -> ShipReport:
    """Ship every spooled WAL file of the primary to both copies; remove each only when both verify.

    `only`: ship just these file names (those still spooled), leaving the rest for the next shipment.
    """
    started = time.monotonic()
    chosen = stores or realtime_stores(target, aws)
    host = database_host(target)
    spool = spool_dir(target.writable.database)
    # A session of this call's own: the watch ships in a thread of its own while its jobs read the hosts.
    with remote.sftp(host) as sftp:
        try:
            listing = sftp.listdir_attr(str(spool))
        except OSError as exc:
            raise ExternalFailure(
                f"cannot list the WAL spool {spool} on host {host.name}: {exc}; run playbooks/wal-archive.yml"
            ) from None
        spooled = sorted(
            (
                entry
                for entry in listing
                if is_wal_file_name(entry.filename)
                and stat.S_ISREG(entry.st_mode or 0)
                and (only is None or entry.filename in only)
            ),
            key=lambda entry: entry.filename,
        )
        shipped: list[ShippedFile] = []
        cluster: str | None = None
        for entry in spooled:
            path = f"{spool}/{entry.filename}"
            with tempfile.TemporaryFile() as copy:
                try:
                    written_at, digest = _fetch_spooled(host, path, entry.st_size or 0, copy)
                except ExternalFailure:
                    if not _still_spooled(sftp, path):
                        # Another shipper (the watch, `backup ship`) shipped and removed it meanwhile.
                        continue
                    raise
                copy.seek(0)
                # A segment names the cluster that wrote it; a history or backup-label file is the running
                # cluster's (it is archived as it is written).
                system = segment_system_identifier(copy.read(_PAGE_HEADER))
                if system is None:
                    cluster = cluster or cluster_system_identifier(target)
                    system = cluster
                series = series_id(written_at.date(), system)
                missing = [
                    store
                    for store in chosen.both
                    if not holds_digest(store, series, entry.filename, digest, chosen.keys)
                ]
                stored_bytes = 0
                if missing:
                    copy.seek(0)
                    sealed = seal_wal(series, entry.filename, copy, written_at, chosen.keys)
                    for store in missing:
                        # Write-once: a different object already under this name (planted, or another
                        # cluster's segment) refuses the write, and the file stays in the spool for a person
                        # to look at. Read back by `store_wal`: the stored object is our own encoding.
                        stored_bytes = store_wal_once(store, sealed, digest, chosen.keys)
            # Both copies proven to hold these very bytes: only now may the host forget the file (another
            # shipper may have done so already).
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(path)
            shipped.append(
                ShippedFile(
                    entry.filename,
                    series,
                    written_at,
                    entry.st_size or 0,
                    stored_bytes,
                    tuple(store.label for store in missing),
                )
            )
    return ShipReport(tuple(shipped), str(spool), time.monotonic() - started)


def follow_wal(
    target: Target,
    stop: threading.Event,
    *,
    interval: float = 1.0,
    stores: RealtimeStores | None = None,
    on_report: Callable[[ShipReport], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
) -> int:
    """Ship until `stop` is set, polling the spool every `interval` seconds; returns the files shipped.

    A failed round (host or store unreachable) is reported through `on_error` and retried on the next
    round: the files stay in the spool, so nothing is lost while the copies are away.
    """
    chosen = stores or realtime_stores(target)
    total = 0
    while not stop.is_set():
        try:
            report = ship_wal(target, stores=chosen)
        except (ExternalFailure, IntegrityError, OSError) as exc:
            if on_error is None:
                raise
            on_error(exc)
        else:
            total += len(report.files)
            if on_report is not None and report.files:
                on_report(report)
        stop.wait(interval)
    return total


# --- base backups -------------------------------------------------------------------------------------


class WalRange(StoredDocument):
    """Where a realtime backup's base backup sits in the WAL (stored beside it in both copies)."""

    document_name: ClassVar[str] = "WAL range record"

    manifest_format: Literal[1] = 1
    backup_id: str
    timeline: int = Field(ge=1)
    start_lsn: str
    end_lsn: str
    started_at: datetime
    ended_at: datetime
    # The cluster the base backup is of: only that cluster's WAL series extend it (None: older records,
    # which read the series written without an identifier).
    system_identifier: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")

    @property
    def first_segment(self) -> Segment:
        """The first segment recovery needs from the archive (the one holding the end of the backup)."""
        return Segment.containing(self.end_lsn, self.timeline)


def wal_range_key(name: BackupName) -> str:
    return object_key(name) + WAL_RANGE_SUFFIX


def read_wal_range(store: ObjectStore, name: BackupName) -> WalRange:
    key = wal_range_key(name)
    data = store.get_bytes(key)
    if data is None:
        raise IntegrityError(f"{store.describe(key)} is missing; this realtime backup cannot be recovered")
    found = WalRange.from_json(data, store.describe(key))
    if found.backup_id != name.backup_id:
        raise IntegrityError(f"{store.describe(key)} names backup {found.backup_id}; use the other copy")
    return found


_START = re.compile(r"write-ahead log start point: (?P<lsn>[0-9A-F]+/[0-9A-F]+) on timeline (?P<tli>\d+)")
_END = re.compile(r"write-ahead log end point: (?P<lsn>[0-9A-F]+/[0-9A-F]+)")


def parse_basebackup_log(text: str) -> tuple[str, int, str]:
    """(start LSN, timeline, end LSN) from `pg_basebackup -v` output."""
    start = _START.search(text)
    end = _END.search(text)
    if start is None or end is None:
        raise ExternalFailure(
            "pg_basebackup did not report its start and end WAL positions; check its version"
        )
    return start["lsn"], int(start["tli"]), end["lsn"]


class _ProcessStream:
    """pg_basebackup's stdout: ends only when the process succeeded, raises otherwise."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
        assert process.stdout is not None
        self._process = process
        self._stdout = process.stdout
        self._stderr = stderr

    def read(self, size: int = -1, /) -> bytes:
        data = self._stdout.read(size) if size >= 0 else self._stdout.read()
        if data:
            return data
        code = self._process.wait()
        if code != 0:
            self._stderr.seek(0)
            lines = [line for line in self._stderr.read().decode("utf-8", "replace").splitlines() if line]
            errors = [line for line in lines if "error" in line.lower()] or lines or [f"exit {code}"]
            raise ExternalFailure(f"pg_basebackup failed: {errors[0][:300]}", code="backup.basebackup_failed")
        return b""

    def abort(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


def _db_facts(database: Database) -> tuple[datetime, str]:
    """The server's clock and its schema version (max applied migration) right now."""
    with db.connect(database, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        found = db.schema_version(conn)
    assert row is not None and isinstance(row[0], datetime)
    return row[0].astimezone(UTC), "" if found is None else str(found)


@dataclass(frozen=True)
class BaseBackup:
    """The realtime backups one base backup produced: one manifest per realtime domain."""

    manifests: tuple[Manifest, ...]
    wal_range: WalRange

    def manifest(self, domain: Domain) -> Manifest:
        return next(item for item in self.manifests if item.domain == domain)


def take_base_backup(
    target: Target,
    *,
    stores: RealtimeStores | None = None,
    service_version: str = "",
    day: date | None = None,
) -> BaseBackup:
    """Base-back-up the primary into both copies as the day's orders and transactions realtime backups."""
    chosen = stores or realtime_stores(target)
    database = target.writable.database
    pg_basebackup = db.pg_tool(database, "pg_basebackup")
    today = day or datetime.now(UTC).date()
    orders_name = next_backup_name(chosen.both, today, "orders", "realtime")
    system_identifier = cluster_system_identifier(target)
    started_at, _ = _db_facts(database)
    env = db.tool_env(database)
    argv = [
        str(pg_basebackup),
        "-h",
        database.address,
        "-p",
        str(database.port),
        "-U",
        database.user,
        "--no-password",
        "-D",
        "-",
        "-F",
        "t",
        "-X",
        "fetch",
        "-c",
        "fast",
        "-v",
        "-l",
        orders_name.backup_id,
    ]
    facts: dict[str, object] = {}

    def metadata() -> BackupMetadata:
        stderr.seek(0)
        start_lsn, timeline, end_lsn = parse_basebackup_log(stderr.read().decode("utf-8", "replace"))
        ended_at, schema_version = _db_facts(database)
        facts.update(start_lsn=start_lsn, timeline=timeline, end_lsn=end_lsn, ended_at=ended_at)
        return BackupMetadata(
            source=SourcePosition(at=ended_at, lsn=end_lsn),
            schema_version=schema_version,
            service_version=service_version,
            tables=(),
        )

    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
        stream = _ProcessStream(process, stderr)
        try:
            orders = write_backup(
                stream, orders_name, metadata, chosen.both, chosen.keys, created_at=started_at
            )
        except BaseException:
            stream.abort()
            raise
    wal_range = WalRange(
        backup_id=orders_name.backup_id,
        timeline=int(str(facts["timeline"])),
        start_lsn=str(facts["start_lsn"]),
        end_lsn=str(facts["end_lsn"]),
        started_at=started_at,
        ended_at=orders.source.at,
        system_identifier=system_identifier,
    )
    for store in chosen.both:
        store.put_bytes(wal_range_key(orders_name), wal_range.to_json())
    # The cluster holds transactions too: the same object serves it (its manifest shares the orders
    # one's), so the bytes are encrypted and stored once; it keeps its own name, manifest and WAL range.
    transactions_name = next_backup_name(chosen.both, today, "transactions", "realtime")
    transactions = write_shared_backup(orders, transactions_name, chosen.both, chosen.keys)
    transactions_range = wal_range.model_copy(update={"backup_id": transactions_name.backup_id})
    for store in chosen.both:
        store.put_bytes(wal_range_key(transactions_name), transactions_range.to_json())
    manifests = [orders, transactions]
    # Complete and ship the segment holding the backup's end, so the backup is recoverable at once.
    # Only the segments from that one to the switched one: whatever else the spool holds (a backlog
    # written during a long backup, or while no shipper ran) is the shipper's (the watch, `backup
    # ship`) and does not make this backup recoverable; shipping it here cost most of the wall time.
    switched = Segment.parse(switch_and_wait_archived(database))
    first = wal_range.first_segment
    needed = {Segment(first.timeline, number).name() for number in range(first.number, switched.number + 1)}
    # A promotion in between started a new timeline: its names are not in that range, ship everything.
    ship_wal(target, stores=chosen, only=needed if switched.timeline == first.timeline else None)
    return BaseBackup(tuple(manifests), wal_range)


# --- restore points -----------------------------------------------------------------------------------


def switch_and_wait_archived(database: Database, *, timeout: float = 60) -> str:
    """Force a segment switch and wait until PostgreSQL archived everything written before it.

    Returns the name of the segment waited for. pg_switch_wal() returns the end of the segment it just
    closed, or, when nothing was written since the last switch (archive_timeout may have switched a
    moment ago), the start of the current one; either way that LSN sits on a segment boundary, for which
    pg_walfile_name() names the segment before it: the last one that holds anything written so far.
    (Reading pg_current_wal_lsn() first and switching after races with archive_timeout.)
    Measured on PostgreSQL 18: right after a switch (a base backup's end, say) with nothing written
    since, the no-op switch's LSN names the current, empty segment, which is never archived; the one
    to wait for is then the segment before it.
    A logical message (a WAL record that commits nothing) is written first, so the switch always closes
    a segment written now: the shipped WAL then provably reaches this moment. Without it, a segment that
    archive_timeout closed just before left the WAL's known end earlier than "now", and a recovery to a
    time between the two was refused as outside the backup's coverage although nothing was written.
    """
    with db.connect(database, dbname="postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_logical_emit_message(false, 'order-recovery', 'wal switch')")
        row = conn.execute(
            "SELECT pg_walfile_name(pg_switch_wal()), pg_walfile_name(pg_current_wal_insert_lsn())"
        ).fetchone()
        assert row is not None
        segment, current = str(row[0]), str(row[1])
        if segment == current:
            empty = Segment.parse(current)
            segment = Segment(empty.timeline, empty.number - 1).name()
        deadline = time.monotonic() + timeout
        while True:
            done = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_ls_archive_statusdir() WHERE name = %s || '.done')"
                " OR (length(last_archived_wal) = 24 AND last_archived_wal >= %s), last_failed_wal,"
                " last_failed_time > coalesce(last_archived_time, '-infinity') FROM pg_stat_archiver",
                (segment, segment),
            ).fetchone()
            if done is not None and done[0]:
                return segment
            if time.monotonic() > deadline:
                failing = f"; the last failure was {done[1]}" if done is not None and done[2] else ""
                raise ExternalFailure(
                    f"segment {segment} was not archived within {timeout:.0f} s{failing}; check archive_mode "
                    "and the archive command (playbooks/wal-archive.yml) and the server log"
                )
            time.sleep(0.1)


def create_restore_point(target: Target, name: str, *, stores: RealtimeStores | None = None) -> RestorePoint:
    """Name the current WAL position, complete its segment, ship it, and record the point in both copies."""
    check_restore_point_name(name)
    chosen = stores or realtime_stores(target)
    key = restore_point_key(name)
    if any(store.head(key) is not None for store in chosen.both):
        raise UsageError(f"restore point {name!r} already exists; choose another name")
    database = target.writable.database
    with db.connect(database, dbname="postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT lsn::text, (SELECT timeline_id FROM pg_control_checkpoint()), clock_timestamp()"
            " FROM pg_create_restore_point(%s) AS lsn",
            (name,),
        ).fetchone()
    assert row is not None
    lsn, timeline, created_at = str(row[0]), int(str(row[1])), row[2]
    assert isinstance(created_at, datetime)
    switch_and_wait_archived(database)
    ship_wal(target, stores=chosen)
    point = RestorePoint(
        name=name,
        lsn=lsn,
        timeline=timeline,
        created_at=created_at.astimezone(UTC),
        segment=Segment.containing(lsn, timeline).name(),
    )
    for store in chosen.both:
        store.put_bytes(key, point.to_json())
    return point


def read_restore_point(store: ObjectStore, name: str) -> RestorePoint | None:
    data = store.get_bytes(restore_point_key(check_restore_point_name(name)))
    if data is None:
        return None
    return RestorePoint.from_json(data, store.describe(restore_point_key(name)))


# --- coverage -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """The times a realtime backup can be recovered to, and the WAL files that get it there."""

    backup_id: str
    starts_at: datetime
    ends_at: datetime
    wal_range: WalRange
    segments: tuple[WalKey, ...]  # the unbroken run from the base backup's end, oldest first
    written_at: tuple[datetime, ...]  # each segment's last write, same order

    def segments_until(self, moment: datetime) -> tuple[WalKey, ...]:
        """The run up to and including the first segment last written at or after `moment`."""
        chosen: list[WalKey] = []
        for key, written in zip(self.segments, self.written_at, strict=True):
            chosen.append(key)
            if written >= moment:
                break
        return tuple(chosen)

    def segments_through(self, segment_name: str) -> tuple[WalKey, ...]:
        chosen: list[WalKey] = []
        for key in self.segments:
            chosen.append(key)
            if key.file_name == segment_name:
                return tuple(chosen)
        raise UsageError(f"WAL segment {segment_name} is not in the shipped WAL after {self.backup_id}")


def coverage(store: ObjectStore, name: BackupName) -> Coverage:
    """What one copy's WAL series lets `name` reach (IntegrityError when its WAL range is unreadable)."""
    if name.kind != "realtime":
        raise UsageError(
            f"{name.backup_id} is not a realtime backup; only realtime backups have WAL coverage"
        )
    manifest = read_manifest(store, name)
    if manifest is None:
        raise IntegrityError(f"{store.describe(object_key(name))} has no manifest; use the other copy")
    wal_range = read_wal_range(store, name)
    first = wal_range.first_segment
    by_segment: dict[Segment, WalKey] = {}
    for found in parse_wal_keys(store.list_keys("orders/")):
        if series_system(found.series) != wal_range.system_identifier:
            continue  # another cluster's WAL, even with the same file names: never part of this run
        with contextlib.suppress(UsageError):
            segment = Segment.parse(found.file_name)
            if segment.timeline == first.timeline and segment.number >= first.number:
                by_segment.setdefault(segment, found)
    run: list[WalKey] = []
    written: list[datetime] = []
    number = first.number
    while (key := by_segment.get(Segment(first.timeline, number))) is not None:
        data = store.get_bytes(key.manifest_key)
        if data is None:
            break  # an object without its manifest is not complete yet
        wal_manifest = WalManifest.from_json(data, store.describe(key.manifest_key))
        run.append(key)
        written.append(wal_manifest.written_at)
        number += 1
    ends_at = max([manifest.source.at, *written])
    return Coverage(name.backup_id, manifest.source.at, ends_at, wal_range, tuple(run), tuple(written))


def wal_series(store: ObjectStore) -> list[str]:
    """The WAL series one copy holds (`<YYYYMMDD>-orders-realtime.wal`), also partly deleted ones."""
    found = set()
    for key in store.list_keys(f"{WAL_DOMAIN}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[1].endswith(SERIES_SUFFIX):
            found.add(parts[1])
    return sorted(found)


def delete_wal_series(store: ObjectStore, series: str) -> int:
    """Delete one WAL series from one copy; returns how many objects went (0 when already gone).

    Manifests go first: a WAL object without its manifest already ends any coverage run, so a
    deletion that breaks off half-way never leaves a series that looks complete but is not.
    """
    if not series.endswith(SERIES_SUFFIX) or "/" in series:
        raise UsageError(f"{series!r} is not a WAL series name")
    keys = store.list_keys(f"{WAL_DOMAIN}/{series}/")
    manifests = [key for key in keys if key.endswith(WAL_MANIFEST_SUFFIX)]
    for key in manifests + [key for key in keys if key not in set(manifests)]:
        store.delete(key)
    return len(keys)


def delete_wal_range(store: ObjectStore, name: BackupName) -> None:
    """Remove the WAL range record beside a realtime backup (absent is no error)."""
    store.delete(wal_range_key(name))


def fetch_wal(
    store: ObjectStore, key: WalKey, sink: Sink, keys: KeyProvider, *, decompress: bool = True
) -> WalManifest:
    """Decrypt one stored WAL file into `sink` (with `decompress` False, its zstd stream); IntegrityError
    when it was tampered with."""
    data = store.get_bytes(key.manifest_key)
    if data is None:
        raise IntegrityError(f"{store.describe(key.manifest_key)} is missing; use the other copy")
    manifest = WalManifest.from_json(data, store.describe(key.manifest_key))
    if (manifest.series, manifest.file_name) != (key.series, key.file_name):
        raise IntegrityError(
            f"{store.describe(key.manifest_key)} describes another WAL file; use the other copy"
        )
    data_key = keys.unwrap(
        manifest.key.key_id, manifest.key.wrapped_data_key, context=wal_key_context(key.series, key.file_name)
    )
    with store.open(key.object_key) as stream:
        result = decode(stream, sink, data_key, codec_id(key.series, key.file_name), decompress=decompress)
    size = manifest.sizes.raw if decompress else manifest.sizes.compressed
    if result.sha256 != manifest.sha256 or result.raw_bytes != size:
        raise IntegrityError(
            f"{store.describe(key.object_key)} decrypted but does not match its manifest; use the other copy"
        )
    return manifest


def with_coverage(entries: Sequence[CatalogEntry], stores: RealtimeStores) -> list[CatalogEntry]:
    """The catalog entries with `covered_until` filled for realtime backups (from a readable copy).

    Selection then knows a realtime backup reaches any time from its position to the end of its shipped
    WAL. A copy whose WAL range cannot be read leaves the entry as it was (position plus objective).
    """
    filled: list[CatalogEntry] = []
    for entry in entries:
        if entry.kind != "realtime" or entry.manifest is None:
            filled.append(entry)
            continue
        ends_at = None
        for label in ("local", "remote"):
            if entry.copy(label).state in (CopyState.MISSING, CopyState.DAMAGED):
                continue
            try:
                ends_at = coverage(stores.copy(label), entry.name).ends_at
            except IntegrityError:
                continue
            break
        filled.append(replace(entry, covered_until=ends_at))
    return filled
