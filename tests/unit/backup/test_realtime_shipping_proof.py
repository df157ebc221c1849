"""A spooled WAL file is forgotten only when a copy is proven to hold its very bytes.

Before: a copy counted as shipped when its object matched the manifest beside it, so a planted pair,
or an older cluster's segment of the same name (a re-initdb the same day), let the spool delete a
segment that was never uploaded.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recovery.backup.keys import Keyring, write_keyring
from recovery.backup.realtime import holds_bytes, seal_wal, store_wal, store_wal_once, verified_wal_copy
from recovery.backup.stores import FilesystemStore
from recovery.backup.wal import Segment, series_id
from recovery.errors import PreconditionFailed

AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
NAME = Segment(1, 1).name()
SERIES = series_id(AT.date())


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "local", "local")


def test_another_clusters_segment_of_the_same_name_does_not_count(
    store: FilesystemStore, keyring: Keyring
) -> None:
    old_cluster, new_cluster = b"old cluster's first segment" * 100, b"new cluster's first segment" * 100
    store_wal(store, seal_wal(SERIES, NAME, old_cluster, AT, keyring))
    # The stored pair agrees with itself (what the old check looked at) ...
    assert verified_wal_copy(store, SERIES, NAME) is not None
    # ... but does not hold the spooled bytes: the spool must keep the new cluster's segment.
    assert holds_bytes(store, SERIES, NAME, new_cluster, keyring) is False
    assert holds_bytes(store, SERIES, NAME, old_cluster, keyring) is True


def test_a_planted_object_with_its_own_manifest_does_not_count(
    store: FilesystemStore, keyring: Keyring, tmp_path: Path
) -> None:
    stranger_path = tmp_path / "stranger.json"
    write_keyring(stranger_path, {"kek-2026": os.urandom(32)}, active="kek-2026")
    future = Segment(1, 7).name()
    # Planted under a future name by a writer of the store, sealed with a key of its own.
    store_wal(store, seal_wal(SERIES, future, b"whatever", AT, Keyring.load(stranger_path)))
    assert verified_wal_copy(store, SERIES, future) is not None
    assert holds_bytes(store, SERIES, future, b"the real segment", keyring) is False


def test_a_file_another_shipper_stored_first_counts_as_shipped(
    store: FilesystemStore, keyring: Keyring
) -> None:
    import hashlib

    raw = b"a segment two shippers fetched at once" * 100
    # Each shipper seals its own encoding (its own nonces): the second's write-once put is refused.
    store_wal(store, seal_wal(SERIES, NAME, raw, AT, keyring))
    assert (
        store_wal_once(store, seal_wal(SERIES, NAME, raw, AT, keyring), hashlib.sha256(raw).digest(), keyring)
        == 0
    )
    assert holds_bytes(store, SERIES, NAME, raw, keyring)


def test_a_different_file_stored_first_is_still_refused(store: FilesystemStore, keyring: Keyring) -> None:
    import hashlib

    store_wal(store, seal_wal(SERIES, NAME, b"another cluster's segment" * 100, AT, keyring))
    raw = b"this cluster's segment" * 100
    with pytest.raises(PreconditionFailed):
        store_wal_once(store, seal_wal(SERIES, NAME, raw, AT, keyring), hashlib.sha256(raw).digest(), keyring)
