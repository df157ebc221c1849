"""Builders for catalog entries in the pure decision tests (selection, retention, freshness)."""

from __future__ import annotations

from datetime import datetime

from recovery.backup.catalog import CatalogEntry, CopyState, CopyStatus
from recovery.backup.manifest import KeyInfo, Manifest, Sizes, SourcePosition, TableSummary
from recovery.backup.naming import BackupName

OK = CopyStatus(CopyState.VERIFIED, "sha256 matches the manifest")
MISSING = CopyStatus(CopyState.MISSING, "s3://b/orders/x.bak does not exist")
DAMAGED = CopyStatus(CopyState.DAMAGED, "sha256 differs")
UNVERIFIED = CopyStatus(CopyState.PRESENT)


def manifest_for(name: BackupName, at: datetime, restore_point: str | None = None) -> Manifest:
    return Manifest(
        format_version=1,
        backup_id=name.backup_id,
        domain=name.domain,
        kind=name.kind,
        created_at=at,
        source=SourcePosition(at=at, lsn="0/16B3748", restore_point=restore_point),
        schema_version="1",
        service_version="1.0.0",
        tables=(TableSummary(name=name.domain, rows=10, content_hash="ab" * 32),),
        sizes=Sizes(raw=100, compressed=40, stored=120),
        sha256="0" * 64,
        chunk_size=4 * 1024 * 1024,
        key=KeyInfo(source="keyring", key_id="kek-1", wrapped_data_key=b"w" * 40),
    )


def entry(
    backup_id: str,
    at: datetime,
    local: CopyStatus = OK,
    remote: CopyStatus = OK,
    restore_point: str | None = None,
) -> CatalogEntry:
    name = BackupName.parse(backup_id)
    manifest = manifest_for(name, at, restore_point)
    return CatalogEntry(name, local, remote, local_manifest=manifest, remote_manifest=manifest)
