"""The catalog: every backup across the local and remote copies, and the state of each copy.

A copy is `missing` (no object), `present` (object and manifest exist, not verified yet), `verified`
(checked), `damaged` (with the reason) or `unreachable` (its store did not answer: one region's store
down must not stop a restore from the other copy, so the catalog says so instead of failing). Shallow
verification streams the stored object and compares its sha256 and size with the manifest; deep
verification decrypts and decompresses it into a content checker supplied by the caller (the restore
side checks row counts and content hashes through PostgreSQL) and compares what the checker saw with the
manifest's tables. A backup counts only when both copies exist and verify.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Protocol, TypeVar

from recovery.backup.keys import KeyProvider, key_provider
from recovery.backup.manifest import Manifest, TableSummary
from recovery.backup.naming import BackupName, Domain, Kind
from recovery.backup.repository import (
    backup_names,
    manifest_key,
    object_key,
    read_backup,
    read_manifest,
    stored_sha256,
)
from recovery.backup.stores import ObjectStore, stores_for
from recovery.drivers.aws import AwsDriver
from recovery.errors import ExternalFailure, IntegrityError, KeyUnavailable, UsageError
from recovery.targets.model import Target


class CopyState(StrEnum):
    MISSING = "missing"
    PRESENT = "present"
    VERIFIED = "verified"
    DAMAGED = "damaged"
    UNREACHABLE = "unreachable"  # the store did not answer: the copy may exist but cannot be read now


@dataclass(frozen=True)
class CopyStatus:
    state: CopyState
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.state is CopyState.VERIFIED


def _label(label: str) -> str:
    if label not in ("local", "remote"):
        raise UsageError(f"unknown copy {label!r}; use local or remote")
    return label


@dataclass(frozen=True)
class CatalogEntry:
    """One backup: the state of each copy and each copy's own trusted manifest (None: missing, damaged or
    not authenticated). A copy is only ever read with its own manifest (`manifest_of`): one damaged
    manifest must not make the other, good copy unreadable."""

    name: BackupName
    local: CopyStatus
    remote: CopyStatus
    local_manifest: Manifest | None = None
    remote_manifest: Manifest | None = None
    # Realtime backups only: the last time their shipped WAL reaches (recovery.backup.realtime fills it);
    # None means the backup reaches only its position and its kind's objective after it.
    covered_until: datetime | None = None

    @property
    def backup_id(self) -> str:
        return self.name.backup_id

    @property
    def domain(self) -> Domain:
        return self.name.domain

    @property
    def kind(self) -> Kind:
        return self.name.kind

    @property
    def manifest(self) -> Manifest | None:
        """What the backup is, for listing and selection: a verified copy's manifest first, else either."""
        for label in ("local", "remote"):
            if self.copy(label).usable and self.manifest_of(label) is not None:
                return self.manifest_of(label)
        return self.local_manifest or self.remote_manifest

    def manifest_of(self, label: str) -> Manifest | None:
        """The trusted manifest read from one copy: the only one that copy is read and checked with."""
        return self.local_manifest if _label(label) == "local" else self.remote_manifest

    @property
    def counts(self) -> bool:
        """Both copies exist and verified: the only backups freshness and retention rely on."""
        return self.local.usable and self.remote.usable and self.manifest is not None

    @property
    def position(self) -> datetime | None:
        """The database time the backup's data is consistent with."""
        return self.manifest.source.at if self.manifest else None

    def copy(self, label: str) -> CopyStatus:
        return self.local if _label(label) == "local" else self.remote


class ContentCheck(Protocol):
    """Receives a backup's plaintext and reports what it found, table by table."""

    def write(self, data: bytes, /) -> object: ...

    def finish(self) -> Sequence[TableSummary]: ...


ContentChecker = Callable[[Manifest], ContentCheck]


def compare_tables(expected: Sequence[TableSummary], seen: Sequence[TableSummary]) -> str | None:
    """The first difference between the manifest's tables and what a checker saw, as a sentence."""
    found = {table.name: table for table in seen}
    for table in expected:
        actual = found.pop(table.name, None)
        if actual is None:
            return f"table {table.name} is missing from the restored data"
        if actual.rows != table.rows:
            return f"table {table.name} has {actual.rows} rows, the manifest says {table.rows}"
        if actual.content_hash != table.content_hash:
            return f"table {table.name} content hash differs from the manifest"
    if found:
        return f"the data holds tables the manifest does not list: {', '.join(sorted(found))}"
    return None


T = TypeVar("T")


class _StoreDown(Exception):
    """A store call failed after the driver's retries; the catalog remembers the store as unreachable."""


class Catalog:
    """The backups of one target: its local and remote stores, and the keys to open them."""

    def __init__(self, local: ObjectStore, remote: ObjectStore, keys: KeyProvider | None = None) -> None:
        self.local = local
        self.remote = remote
        self.keys = keys
        # Store label -> why it did not answer. Asked once: every retry of a dead store costs seconds.
        self.unreachable: dict[str, str] = {}

    def _stores(self) -> tuple[tuple[str, ObjectStore], ...]:
        return (("local", self.local), ("remote", self.remote))

    def store(self, label: str) -> ObjectStore:
        return self.local if _label(label) == "local" else self.remote

    def trusted_manifest(self, label: str, name: BackupName) -> Manifest:
        """One copy's own manifest, read now and authenticated; an IntegrityError saying why not."""
        status, manifest = self._observe(self.store(label), name)
        if manifest is None:
            raise IntegrityError(f"{status.detail}; use the other copy")
        return manifest

    def _label_of(self, store: ObjectStore) -> str:
        return "local" if store is self.local else "remote"

    def _ask(self, store: ObjectStore, call: Callable[[], T]) -> T:
        """One call to a store; a store that failed once is not asked again (`_StoreDown`)."""
        label = self._label_of(store)
        if label in self.unreachable:
            raise _StoreDown
        try:
            return call()
        except ExternalFailure as exc:
            self.unreachable[label] = exc.message
            raise _StoreDown from exc

    def _down(self, store: ObjectStore) -> CopyStatus:
        return CopyStatus(CopyState.UNREACHABLE, self.unreachable[self._label_of(store)])

    def _observe(
        self, store: ObjectStore, name: BackupName, listed: Set[str] | None = None
    ) -> tuple[CopyStatus, Manifest | None]:
        if self._label_of(store) in self.unreachable:
            return self._down(store), None
        try:
            return self._observe_reachable(store, name, listed)
        except _StoreDown:
            return self._down(store), None

    def _observe_reachable(
        self, store: ObjectStore, name: BackupName, listed: Set[str] | None
    ) -> tuple[CopyStatus, Manifest | None]:
        exists = (
            object_key(name) in listed
            if listed is not None
            else self._ask(store, lambda: store.head(object_key(name))) is not None
        )
        if not exists:
            return CopyStatus(CopyState.MISSING, f"{store.describe(object_key(name))} does not exist"), None
        try:
            manifest = self._ask(store, lambda: read_manifest(store, name))
        except IntegrityError as exc:
            return CopyStatus(CopyState.DAMAGED, exc.message), None
        if manifest is None:
            return CopyStatus(CopyState.DAMAGED, f"{store.describe(manifest_key(name))} is missing"), None
        # Nothing in a manifest is believed before it authenticates: not its time, not its hashes.
        problem = manifest.authentication_problem(self.keys)
        if problem is not None:
            where = store.describe(manifest_key(name))
            return CopyStatus(CopyState.DAMAGED, f"manifest {where} is not trusted: {problem}"), None
        return CopyStatus(CopyState.PRESENT), manifest

    def entry(self, name: BackupName) -> CatalogEntry:
        local, local_manifest = self._observe(self.local, name)
        remote, remote_manifest = self._observe(self.remote, name)
        return CatalogEntry(name, local, remote, local_manifest, remote_manifest)

    def entries(self, domain: Domain | None = None) -> list[CatalogEntry]:
        """Every backup found in either copy, oldest first, each copy present, missing or damaged."""
        # One listing per store; then only the manifests are fetched.
        listed: dict[str, set[str]] = {}
        for label, store in self._stores():
            try:
                found = self._ask(store, partial(backup_names, store, domain))
                listed[label] = {object_key(name) for name in found}
            except _StoreDown:
                listed[label] = set()  # every copy in it observes as unreachable below
        names = sorted({BackupName.parse(key.rpartition("/")[2]) for keys in listed.values() for key in keys})
        entries: list[CatalogEntry] = []
        for name in names:
            local, local_manifest = self._observe(self.local, name, listed["local"])
            remote, remote_manifest = self._observe(self.remote, name, listed["remote"])
            entries.append(CatalogEntry(name, local, remote, local_manifest, remote_manifest))
        return entries

    def verify(
        self, backup_id: str, *, deep: bool = False, checker: ContentChecker | None = None
    ) -> CatalogEntry:
        """Verify both copies of one backup; deep verification needs the keys and a content checker."""
        name = BackupName.parse(backup_id)
        if deep and (checker is None or self.keys is None):
            raise UsageError("deep verification needs a content checker and the target's keys")
        entry = self.entry(name)
        statuses: dict[str, CopyStatus] = {}
        for label, store in self._stores():
            status, manifest = entry.copy(label), entry.manifest_of(label)
            if status.state is CopyState.PRESENT and manifest is not None:
                status = self._verify_copy(store, name, manifest, deep, checker)
            statuses[label] = status
        return replace(entry, local=statuses["local"], remote=statuses["remote"])

    def verify_all(
        self, domain: Domain | None = None, *, deep: bool = False, checker: ContentChecker | None = None
    ) -> list[CatalogEntry]:
        return [self.verify(entry.backup_id, deep=deep, checker=checker) for entry in self.entries(domain)]

    def _verify_copy(
        self,
        store: ObjectStore,
        name: BackupName,
        manifest: Manifest,
        deep: bool,
        checker: ContentChecker | None,
    ) -> CopyStatus:
        """Check one copy against its own manifest (never the other copy's)."""
        stored = manifest.object_name  # another backup's when it shares that one's object
        where = store.describe(object_key(stored))
        try:
            if stored != name and self._ask(store, lambda: store.head(object_key(stored))) is None:
                return CopyStatus(CopyState.DAMAGED, f"{where}, which holds its bytes, does not exist")
            if not deep:
                digest, size = self._ask(store, lambda: stored_sha256(store, stored))
        except _StoreDown:
            return self._down(store)
        if not deep:
            if size != manifest.sizes.stored:
                return CopyStatus(
                    CopyState.DAMAGED, f"{where} is {size} bytes, the manifest says {manifest.sizes.stored}"
                )
            if digest != manifest.sha256:
                return CopyStatus(CopyState.DAMAGED, f"{where} does not match the sha256 in its manifest")
            return CopyStatus(CopyState.VERIFIED, "sha256 matches the manifest")
        assert checker is not None and self.keys is not None
        # A key that cannot be unwrapped (KMS down, keyring without the id) is the operator's problem to
        # fix, not a verdict on the copy: that error propagates instead of marking the copy damaged.
        data_key = manifest.unwrap_key(self.keys)
        check = checker(manifest)
        try:
            read_backup(store, name, check, self.keys, manifest, data_key=data_key)
        except IntegrityError as exc:  # includes a data key that does not open this object
            return CopyStatus(CopyState.DAMAGED, exc.message)
        difference = compare_tables(manifest.tables, check.finish())
        if difference is not None:
            return CopyStatus(CopyState.DAMAGED, f"{where}: {difference}")
        return CopyStatus(CopyState.VERIFIED, "decrypted, sha256 and table contents match the manifest")

    def delete(self, backup_id: str) -> None:
        """Remove a backup from both copies (object, then manifest); absent objects are no error."""
        name = BackupName.parse(backup_id)
        for _, store in self._stores():
            store.delete(object_key(name))
            store.delete(manifest_key(name))


def catalog_for(target: Target, aws: AwsDriver | None = None, *, with_keys: bool = True) -> Catalog:
    """The catalog of a target's two S3 copies and its keys.

    The keys authenticate every manifest, so they are always loaded; `with_keys=False` only tolerates a
    keyring that is not at hand (its manifests then count as unauthenticated, never as trusted).
    """
    driver = aws or AwsDriver(target.aws)
    local, remote = stores_for(target, driver)
    try:
        keys: KeyProvider | None = key_provider(target.keys, driver)
    except KeyUnavailable:
        if with_keys:
            raise
        keys = None
    return Catalog(local, remote, keys)
