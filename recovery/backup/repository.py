"""Backups on stores: object keys, writing one backup to every copy in one pass, reading one back.

Object keys are `<domain>/<name>` and `<domain>/<name>.manifest.json`, under each store's prefix. A
backup is encoded once and the encrypted stream is written to both copies at the same time; the
manifests are written only after both objects are complete, so a manifest never points at a partial
object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime

from recovery.backup.codec import (
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    DecodeResult,
    Readable,
    Sink,
    Source,
    decode,
    encode,
)
from recovery.backup.keys import DataKey, KeyProvider, backup_context
from recovery.backup.manifest import Manifest, Sizes, SourcePosition, TableSummary, key_info
from recovery.backup.naming import MANIFEST_SUFFIX, SUFFIX, BackupName, Domain, Kind, next_name
from recovery.backup.stores import ObjectStore
from recovery.errors import IntegrityError, UsageError

HASH_BLOCK = 1024 * 1024


def object_key(name: BackupName) -> str:
    return f"{name.domain}/{name.file_name}"


def manifest_key(name: BackupName) -> str:
    return f"{name.domain}/{name.manifest_name}"


@dataclass(frozen=True)
class BackupMetadata:
    """What the database side knows about the data it hands to the encoder."""

    source: SourcePosition
    schema_version: str
    service_version: str
    tables: tuple[TableSummary, ...]


class _Tee:
    """Hands every write of the encoded stream to every copy, as it is.

    The codec writes immutable bytes, so the copies get the same objects: an S3 copy keeps them as its
    part's pieces (stores._MultipartUpload) and both copies share that memory; a directory copy writes
    them through. Nothing is buffered or copied here.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self._sinks = sinks

    def write(self, data: bytes) -> int:
        for sink in self._sinks:
            sink.write(data)
        return len(data)


def backup_names(store: ObjectStore, domain: Domain | None = None) -> list[BackupName]:
    """The backups a store holds (by object; manifests and foreign files are not names)."""
    names: list[BackupName] = []
    for key in store.list_keys(f"{domain}/" if domain else ""):
        folder, _, file_name = key.rpartition("/")
        if not file_name.endswith(SUFFIX) or file_name.endswith(MANIFEST_SUFFIX):
            continue
        try:
            name = BackupName.parse(file_name)
        except UsageError:
            continue  # not ours: the catalog only speaks of well-named backups
        if folder == name.domain:
            names.append(name)
    return sorted(names)


def next_backup_name(stores: Sequence[ObjectStore], day: date, domain: Domain, kind: Kind) -> BackupName:
    taken = [name for store in stores for name in backup_names(store, domain)]
    return next_name(day, domain, kind, taken)


def write_backup(
    source: Source,
    name: BackupName,
    metadata: BackupMetadata | Callable[[], BackupMetadata],
    stores: Sequence[ObjectStore],
    keys: KeyProvider,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 0,
    created_at: datetime | None = None,
) -> Manifest:
    """Encode `source` once into every store, then write each store's manifest; return the manifest.

    `metadata` may be a callable, evaluated after the stream ended, for callers that count rows while
    dumping. A failure leaves no object behind in any store (uploads are aborted, partial files removed).
    """
    if not stores:
        raise UsageError("a backup needs at least one store to write to")
    started = created_at or datetime.now(UTC)
    data_key = keys.new_data_key(context=backup_context(name.backup_id, name.domain, name.kind))
    with ExitStack() as stack:
        sinks = [stack.enter_context(store.create(object_key(name))) for store in stores]
        result = encode(source, _Tee(sinks), data_key, name.backup_id, chunk_size=chunk_size, threads=threads)
    known = metadata() if callable(metadata) else metadata
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        backup_id=name.backup_id,
        domain=name.domain,
        kind=name.kind,
        created_at=started,
        source=known.source,
        schema_version=known.schema_version,
        service_version=known.service_version,
        tables=known.tables,
        sizes=Sizes(raw=result.raw_bytes, compressed=result.compressed_bytes, stored=result.stored_bytes),
        sha256=result.sha256,
        chunk_size=result.chunk_size,
        key=key_info(data_key),
    ).signed(keys)
    for store in stores:
        store.put_bytes(manifest_key(name), manifest.to_json())
    return manifest


SHARED_MARKER = b"order-recovery: this backup's bytes are in the object its manifest's `shares` names\n"


def write_shared_backup(
    owner: Manifest, name: BackupName, stores: Sequence[ObjectStore], keys: KeyProvider
) -> Manifest:
    """Record `name` as a backup of the same bytes as `owner` without storing them again; return its
    manifest. `owner` must be written and verified in every store first.

    Its object is a short marker (so the catalog, which lists backups by object, sees it), and its
    manifest carries `owner`'s sizes, sha256 and wrapped key with `shares` naming the owner.
    """
    if owner.shares is not None or owner.kind != name.kind:
        raise UsageError(
            f"{name.backup_id} can only share the object of a {name.kind} backup that has its own"
        )
    manifest = owner.model_copy(
        update={"backup_id": name.backup_id, "domain": name.domain, "shares": owner.backup_id, "mac": None}
    )
    manifest = Manifest.model_validate(manifest.model_dump()).signed(keys)
    for store in stores:
        store.put_bytes(object_key(name), SHARED_MARKER)
        store.put_bytes(manifest_key(name), manifest.to_json())
    return manifest


def read_manifest(store: ObjectStore, name: BackupName) -> Manifest | None:
    """The store's manifest of `name`; None when absent, IntegrityError when damaged or foreign."""
    data = store.get_bytes(manifest_key(name))
    if data is None:
        return None
    where = store.describe(manifest_key(name))
    manifest = Manifest.from_json(data, where)
    if manifest.backup_id != name.backup_id:
        raise IntegrityError(f"manifest {where} describes backup {manifest.backup_id}; use the other copy")
    return manifest


def stored_sha256(store: ObjectStore, name: BackupName) -> tuple[str, int]:
    """sha256 and size of the stored object, streamed (`name`: the manifest's `object_name`)."""
    digest = hashlib.sha256()
    size = 0
    with store.open(object_key(name)) as stream:
        reader: Readable = stream
        while block := reader.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_backup(
    store: ObjectStore,
    name: BackupName,
    sink: Sink,
    keys: KeyProvider,
    manifest: Manifest | None = None,
    *,
    data_key: DataKey | None = None,
    decompress: bool = True,
) -> tuple[Manifest, DecodeResult]:
    """Decrypt and decompress one copy of `name` into `sink` (with `decompress` False, its zstd stream,
    for a reader that decompresses it elsewhere).

    Chunks reach the sink only after they authenticated; an IntegrityError raised part-way means the
    whole read failed and whatever the sink received must be discarded.
    """
    if manifest is None:
        manifest = read_manifest(store, name)
        if manifest is None:
            raise IntegrityError(f"{store.describe(manifest_key(name))} is missing; use the other copy")
    problem = manifest.authentication_problem(keys)
    if problem is not None:
        raise IntegrityError(
            f"{store.describe(manifest_key(name))} is not trusted: {problem}; use the other copy or a "
            "backup written by the runbook side"
        )
    if data_key is None:
        data_key = manifest.unwrap_key(keys)
    # A backup that shares another's object (one base backup for both realtime domains) reads that
    # object, bound to that backup's id as it was encoded.
    stored = manifest.object_name
    with store.open(object_key(stored)) as stream:
        result = decode(stream, sink, data_key, stored.backup_id, decompress=decompress)
    size = manifest.sizes.raw if decompress else manifest.sizes.compressed
    if result.sha256 != manifest.sha256 or result.raw_bytes != size:
        raise IntegrityError(
            f"{store.describe(object_key(stored))} decrypted but does not match its manifest "
            "(sha256 or size); use the other copy"
        )
    return manifest, result
