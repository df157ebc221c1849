"""The backup stores and the newest verified backup of every domain and kind, as preflight sees them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from recovery.backup.catalog import CatalogEntry, catalog_for
from recovery.backup.naming import Domain, Kind
from recovery.backup.realtime import realtime_stores, with_coverage
from recovery.drivers.aws import AwsDriver
from recovery.errors import RecoveryError
from recovery.targets.model import Target


@dataclass(frozen=True)
class StoreFacts:
    label: str  # local | remote
    where: str  # s3://bucket (region)
    problem: str | None  # None when the bucket answered


@dataclass(frozen=True)
class BackupFacts:
    stores: tuple[StoreFacts, ...]
    entries: tuple[CatalogEntry, ...]  # the newest of each (domain, kind) verified, older ones as listed
    problem: str | None  # the catalog could not be read
    observed_at: datetime


def observe_backups(target: Target) -> BackupFacts:
    aws = AwsDriver(target.aws)
    stores: list[StoreFacts] = []
    for label, store in (("local", target.backup.local), ("remote", target.backup.remote)):
        where = f"s3://{store.bucket} ({store.region})"
        try:
            with aws.translate("reach the bucket", where):
                aws.s3(store.region, store.endpoint_url).head_bucket(Bucket=store.bucket)
            stores.append(StoreFacts(label, where, None))
        except RecoveryError as exc:
            stores.append(StoreFacts(label, where, exc.message))
    now = datetime.now(UTC)
    if any(s.problem for s in stores):
        return BackupFacts(tuple(stores), (), "a backup store cannot be reached", now)
    try:
        catalog = catalog_for(target, aws, with_keys=False)
        listed = catalog.entries()
        # Verify (shallow: sha256 and size against the manifest) newest first, until one of each domain
        # and kind verifies: freshness only ever counts the newest verified backup.
        newest_first = sorted(
            listed, key=lambda e: (e.position is not None, e.position, e.backup_id), reverse=True
        )
        done: set[tuple[Domain, Kind]] = set()
        checked: list[CatalogEntry] = []
        for entry in newest_first:
            if (entry.domain, entry.kind) in done:
                checked.append(entry)
                continue
            verified = catalog.verify(entry.backup_id)
            checked.append(verified)
            if verified.counts:
                done.add((entry.domain, entry.kind))
    except RecoveryError as exc:
        return BackupFacts(tuple(stores), (), exc.message, now)
    # A realtime backup reaches as far as the WAL shipped after it; without the keys at hand it counts
    # from its own position only.
    with contextlib.suppress(RecoveryError):
        checked = with_coverage(checked, realtime_stores(target, aws))
    return BackupFacts(tuple(stores), tuple(checked), None, now)
