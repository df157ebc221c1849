"""Backups: codec (zstd + AES-256-GCM chunks), naming, manifest, keys, stores, catalog, retention."""

from recovery.backup.catalog import (
    Catalog,
    CatalogEntry,
    ContentCheck,
    ContentChecker,
    CopyState,
    CopyStatus,
    catalog_for,
)
from recovery.backup.codec import DecodeResult, EncodeResult, decode, encode
from recovery.backup.freshness import FreshnessFinding, stale_backups
from recovery.backup.keys import DataKey, KeyProvider, Keyring, KmsKeys, key_provider, write_keyring
from recovery.backup.manifest import Manifest, SourcePosition, TableSummary
from recovery.backup.naming import DOMAINS, KINDS, BackupName, Domain, Kind, kinds_of, next_name
from recovery.backup.repository import (
    BackupMetadata,
    backup_names,
    next_backup_name,
    read_backup,
    read_manifest,
    write_backup,
)
from recovery.backup.retention import RetentionDecision, RetentionPolicy, plan_retention
from recovery.backup.stores import FilesystemStore, ObjectStore, S3Store, stores_for

__all__ = [
    "DOMAINS",
    "KINDS",
    "BackupMetadata",
    "BackupName",
    "Catalog",
    "CatalogEntry",
    "ContentCheck",
    "ContentChecker",
    "CopyState",
    "CopyStatus",
    "DataKey",
    "DecodeResult",
    "Domain",
    "EncodeResult",
    "FilesystemStore",
    "FreshnessFinding",
    "KeyProvider",
    "Keyring",
    "Kind",
    "KmsKeys",
    "Manifest",
    "ObjectStore",
    "RetentionDecision",
    "RetentionPolicy",
    "S3Store",
    "SourcePosition",
    "TableSummary",
    "backup_names",
    "catalog_for",
    "decode",
    "encode",
    "key_provider",
    "kinds_of",
    "next_backup_name",
    "next_name",
    "plan_retention",
    "read_backup",
    "read_manifest",
    "stale_backups",
    "stores_for",
    "write_backup",
    "write_keyring",
]
