"""Each copy is read with its own manifest; a copy that cannot be opened or read falls back to the other.

The issue's reproductions, in memory (two filesystem copies and a keyring): a catalog entry kept one
manifest for both copies and the restore read either copy with it, unwrapping its data key up front. The
local manifest's sha256 zeroed made the verified remote copy unreadable too; a wrapped data key of another
backup in one manifest refused the restore although the other copy's manifest was right. The manifests
here are authenticated (re-signed with the keyring), as a faulty writer on the runbook side would leave
them: authentication alone does not catch them.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from recovery.backup.catalog import Catalog, CatalogEntry, CopyState
from recovery.backup.keys import Keyring
from recovery.backup.manifest import KeyInfo, Manifest, SourcePosition, TableSummary
from recovery.backup.naming import BackupName
from recovery.backup.repository import BackupMetadata, manifest_key, write_backup
from recovery.backup.sections import DUMP, SCHEMA, Part, SectionSource
from recovery.backup.stores import FilesystemStore
from recovery.errors import IntegrityError
from recovery.restore.beside import with_fallbacks
from recovery.restore.choose import refusal_error
from recovery.restore.selection import Selection, select_backups
from recovery.restore.sources import open_copies, sources_for

DAY = date(2026, 11, 25)
AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TABLES = (TableSummary(name="users", rows=1, content_hash="ab" * 32),)


@pytest.fixture
def catalog(tmp_path: Path, keyring: Keyring) -> Catalog:
    return Catalog(
        FilesystemStore(tmp_path / "local", "local"), FilesystemStore(tmp_path / "remote", "remote"), keyring
    )


def _write(stores: tuple[FilesystemStore, ...], keyring: Keyring, dump: bytes, seq: int) -> Manifest:
    source = SectionSource([Part(SCHEMA, 6, b"schema"), Part(DUMP, None, io.BytesIO(dump))])
    metadata = BackupMetadata(SourcePosition(at=AT.replace(hour=10 + seq)), "1", "1.0.0", TABLES)
    return write_backup(source, BackupName(DAY, "users", "daily", seq), metadata, stores, keyring)


def _replace_manifest(store: FilesystemStore, manifest: Manifest, keyring: Keyring) -> None:
    """Put an authenticated (re-signed) but wrong manifest in one copy."""
    (store.root / manifest_key(manifest.name)).unlink()
    store.put_bytes(manifest_key(manifest.name), manifest.signed(keyring).to_json())


def _restore(catalog: Catalog, notes: list[str]) -> dict[str, tuple[str, bytes]]:
    """Choose from freshly verified entries and read every chosen domain, falling back as a restore does;
    what was read, by domain: (the copy, the dump bytes)."""

    def candidates() -> list[CatalogEntry]:
        return [catalog.verify(entry.backup_id) for entry in catalog.entries()]

    def choose_from(entries: object) -> Selection:
        return select_backups(list(entries), ["users"])  # type: ignore[call-overload]

    def read(selection: Selection) -> dict[str, tuple[str, bytes]]:
        opened = open_copies(catalog, selection.choices)
        sources = sources_for(list(opened.values()))
        found: dict[str, tuple[str, bytes]] = {}
        for choice in selection.choices:
            sink = io.BytesIO()
            sources.domains[choice.domain].write_to(sink)  # type: ignore[union-attr]
            found[choice.domain] = (choice.copy, sink.getvalue())
        return found

    first = choose_from(candidates())
    if first.refused:
        raise refusal_error(first)
    return with_fallbacks(first, read, candidates=candidates, choose_from=choose_from, note=notes.append)


def test_a_zeroed_hash_in_the_local_manifest_leaves_the_remote_copy_readable(
    catalog: Catalog, keyring: Keyring
) -> None:
    stores = (catalog.local, catalog.remote)
    genuine = _write(stores, keyring, b"users\t1\tgenuine\n", 1)
    assert isinstance(catalog.local, FilesystemStore)
    _replace_manifest(catalog.local, genuine.model_copy(update={"sha256": "0" * 64}), keyring)

    entry = catalog.verify(genuine.backup_id)
    assert entry.local.state is CopyState.DAMAGED, entry.local
    assert "does not match the sha256 in its manifest" in entry.local.detail
    assert entry.remote.state is CopyState.VERIFIED, "the remote copy is checked with its own manifest"
    assert entry.manifest_of("remote") == genuine and entry.manifest == genuine

    notes: list[str] = []
    assert _restore(catalog, notes) == {"users": ("remote", b"users\t1\tgenuine\n")}
    assert notes == [], "the remote copy was chosen and read at once"


def test_a_data_key_of_another_backup_in_one_manifest_falls_back_to_the_other_copy(
    catalog: Catalog, keyring: Keyring
) -> None:
    stores = (catalog.local, catalog.remote)
    older = _write(stores, keyring, b"users\t1\tolder\n", 1)
    newer = _write(stores, keyring, b"users\t1\tnewer\n", 2)
    # The wrapped keys of the two backups swapped in their local manifests: both still authenticate and
    # match their objects' sha256, so the shallow check passes both copies of both backups.
    assert isinstance(catalog.local, FilesystemStore)
    _replace_manifest(catalog.local, newer.model_copy(update={"key": older.key}), keyring)
    _replace_manifest(catalog.local, older.model_copy(update={"key": newer.key}), keyring)
    entry = catalog.verify(newer.backup_id)
    assert (entry.local.state, entry.remote.state) == (CopyState.VERIFIED, CopyState.VERIFIED)

    notes: list[str] = []
    assert _restore(catalog, notes) == {"users": ("remote", b"users\t1\tnewer\n")}
    assert f"{newer.backup_id} (local copy) failed while being read" in notes[0]
    assert "does not unwrap this data key" in notes[0]
    assert notes[1].startswith(f"users: now {newer.backup_id} (remote copy)")


def test_no_usable_copy_is_one_clear_error(catalog: Catalog, keyring: Keyring, tmp_path: Path) -> None:
    stores = (catalog.local, catalog.remote)
    only = _write(stores, keyring, b"users\t1\tonly\n", 1)
    elsewhere = FilesystemStore(tmp_path / "elsewhere", "elsewhere")
    stranger = _write((elsewhere,), keyring, b"users\t1\tstranger\n", 2)
    wrong = KeyInfo.model_validate(stranger.key.model_dump())
    assert isinstance(catalog.local, FilesystemStore) and isinstance(catalog.remote, FilesystemStore)
    for store in (catalog.local, catalog.remote):
        _replace_manifest(store, only.model_copy(update={"key": wrong}), keyring)

    notes: list[str] = []
    with pytest.raises(IntegrityError) as raised:
        _restore(catalog, notes)
    error = raised.value
    assert error.code == "restore.backups_damaged"
    assert error.message.startswith("cannot restore users: no usable backup of users")
    assert f"{only.backup_id} fails verification in both copies" in error.message
    assert error.message.count("does not unwrap this data key") == 2, "each copy says why"
    assert "nothing was changed" in error.message and "\n" not in error.message
    assert [note.split(" (")[1].split(" copy)")[0] for note in notes if "failed while" in note] == [
        "local",
        "remote",
    ]
