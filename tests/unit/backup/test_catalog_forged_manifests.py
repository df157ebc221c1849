"""A backup someone else wrote is never a candidate: manifests authenticate, data keys bind their backup.

The issue's reproduction: a newer backup written to the local copy only, by a holder of the data key
source who cannot authenticate manifests (an order host), was listed "local: verified, remote: missing"
and chosen by the default restore.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from raw_checker import summarise

from recovery.backup.catalog import Catalog, CopyState
from recovery.backup.keys import Keyring, backup_context, write_keyring
from recovery.backup.manifest import Manifest, SourcePosition
from recovery.backup.naming import BackupName
from recovery.backup.repository import BackupMetadata, manifest_key, read_backup, write_backup
from recovery.backup.stores import FilesystemStore
from recovery.errors import IntegrityError, KeyUnavailable
from recovery.restore.selection import select_backups

DAY = date(2026, 11, 25)
AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
Stores = tuple[FilesystemStore, FilesystemStore]


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return FilesystemStore(tmp_path / "local", "local"), FilesystemStore(tmp_path / "remote", "remote")


def _write(
    stores: Stores | tuple[FilesystemStore], keyring: Keyring, data: bytes, seq: int, at: datetime
) -> Manifest:
    metadata = BackupMetadata(SourcePosition(at=at), "1", "1.0.0", summarise(data))
    name = BackupName(DAY, "users", "daily", seq)
    return write_backup(io.BytesIO(data), name, metadata, stores, keyring)


def _replace_manifest(store: FilesystemStore, manifest: Manifest) -> None:
    path = store.root / manifest_key(manifest.name)
    path.unlink()
    store.put_bytes(manifest_key(manifest.name), manifest.to_json())


def _verified(stores: Stores, keyring: Keyring) -> Catalog:
    return Catalog(stores[0], stores[1], keyring)


def test_a_forged_backup_without_authentication_is_not_a_candidate(stores: Stores, keyring: Keyring) -> None:
    genuine = _write(stores, keyring, b"users\t1\tgenuine\n", 1, AT)
    # The forger writes the local copy only, with a data key of the site's key source, but cannot
    # authenticate its manifest: it writes it without a code (or with one it made up).
    forged = _write((stores[0],), keyring, b"users\t1\tforged\n", 2, AT + timedelta(hours=1))
    _replace_manifest(stores[0], forged.model_copy(update={"mac": None}))
    catalog = _verified(stores, keyring)
    entries = [catalog.verify(entry.backup_id) for entry in catalog.entries()]
    by_id = {entry.backup_id: entry for entry in entries}
    assert by_id[forged.backup_id].local.state is CopyState.DAMAGED
    assert "not trusted: it carries no authentication code" in by_id[forged.backup_id].local.detail
    assert by_id[forged.backup_id].manifest is None
    selection = select_backups(entries, ["users"])
    chosen = selection.choice("users")
    assert chosen is not None and chosen.backup_id == genuine.backup_id
    with pytest.raises(IntegrityError, match="not trusted"):
        read_backup(stores[0], forged.name, io.BytesIO(), keyring, forged.model_copy(update={"mac": None}))


def test_a_changed_field_breaks_the_authentication(stores: Stores, keyring: Keyring) -> None:
    genuine = _write(stores, keyring, b"users\t1\tgenuine\n", 1, AT)
    # Moving the backup's position forward (to be picked as the newest) keeps the old code: refused.
    moved = genuine.model_copy(update={"source": SourcePosition(at=AT + timedelta(days=1))})
    _replace_manifest(stores[0], moved)
    entry = _verified(stores, keyring).verify(genuine.backup_id)
    assert entry.local.state is CopyState.DAMAGED
    assert "authentication code does not match its content" in entry.local.detail
    assert entry.remote.state is CopyState.VERIFIED and entry.position == AT
    selection = select_backups([entry], ["users"])
    chosen = selection.choice("users")
    assert chosen is not None and chosen.copy == "remote"


def test_a_data_key_opens_only_the_backup_it_was_made_for(keyring: Keyring) -> None:
    mine = backup_context("20261125-users-daily", "users", "daily")
    other = backup_context("20261125-users-daily-2", "users", "daily")
    data_key = keyring.new_data_key(context=mine)
    assert keyring.unwrap("kek-2026", data_key.wrapped, context=mine).plaintext == data_key.plaintext
    with pytest.raises(KeyUnavailable, match="belongs to another backup"):
        keyring.unwrap("kek-2026", data_key.wrapped, context=other)


def test_no_trusted_manifest_at_all_is_a_refusal_naming_why(
    stores: Stores, keyring: Keyring, tmp_path: Path
) -> None:
    _write(stores, keyring, b"users\t1\tgenuine\n", 1, AT)
    other_path = tmp_path / "other.json"
    write_keyring(other_path, {"kek-2027": os.urandom(32)}, active="kek-2027")
    catalog = Catalog(stores[0], stores[1], Keyring.load(other_path))
    selection = select_backups(catalog.entries(), ["users"])
    refusal = selection.refusal("users")
    assert refusal is not None and "no backup of users has a trusted manifest" in refusal.reason
    assert "which keyring" in refusal.reason and "fails verification" in refusal.reason
