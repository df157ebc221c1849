"""The pure parts of the restore runbook: parameters, refusals, fallback marking, expected fingerprints."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from target_files import unit_target as target

from recovery.backup.catalog import CatalogEntry, CopyState, CopyStatus
from recovery.backup.manifest import KeyInfo, Manifest, Sizes, SourcePosition, TableSummary
from recovery.backup.naming import BackupName
from recovery.errors import IntegrityError, PreconditionFailed, UsageError
from recovery.restore.choose import (
    mark_damaged,
    new_restore_id,
    parse_at,
    recovery_groups,
    refusal_error,
    schema_versions_agree,
    with_choice,
)
from recovery.restore.selection import DomainChoice, select_backups
from recovery.runbooks.restore import restore_params, restore_runbook
from recovery.verify.fingerprint import fastest_algorithm
from recovery.verify.restored import expected_fingerprints, recovered_expectations

NOW = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
OK = CopyStatus(CopyState.VERIFIED, "sha256 matches the manifest")


def manifest(backup_id: str, at: datetime, schema: str = "1") -> Manifest:
    name = BackupName.parse(backup_id)
    return Manifest(
        format_version=1,
        backup_id=backup_id,
        domain=name.domain,
        kind=name.kind,
        created_at=at,
        source=SourcePosition(at=at, lsn="0/16B3748"),
        schema_version=schema,
        service_version="v1",
        tables=(
            TableSummary(name="orders", rows=10, content_hash="00000000000000ab"),
            TableSummary(name="file:primary-app", rows=512, content_hash="cd" * 32),
        ),
        sizes=Sizes(raw=100, compressed=40, stored=120),
        sha256="0" * 64,
        chunk_size=4096,
        key=KeyInfo(source="keyring", key_id="kek-1", wrapped_data_key=b"w" * 40),
    )


def entry(backup_id: str, at: datetime) -> CatalogEntry:
    described = manifest(backup_id, at)
    return CatalogEntry(
        BackupName.parse(backup_id), OK, OK, local_manifest=described, remote_manifest=described
    )


def test_a_copy_that_failed_while_read_makes_the_selection_fall_back() -> None:
    entries = [entry("20261124-users-daily", NOW - timedelta(days=1)), entry("20261125-users-daily", NOW)]
    first = select_backups(entries, ["users"]).choices[0]
    assert (first.backup_id, first.copy) == ("20261125-users-daily", "local")
    local_bad = mark_damaged(entries, "20261125-users-daily", "local", "chunk 3 failed authentication")
    second = select_backups(local_bad, ["users"]).choices[0]
    assert (second.backup_id, second.copy) == ("20261125-users-daily", "remote")
    assert "chunk 3 failed authentication" in second.reason
    both_bad = mark_damaged(local_bad, "20261125-users-daily", "remote", "truncated")
    third = select_backups(both_bad, ["users"]).choices[0]
    assert third.backup_id == "20261124-users-daily"
    assert entries[1].local is OK, "marking is pure: the input entries are unchanged"


def test_refusals_say_what_is_wrong_with_the_right_error() -> None:
    none = select_backups([], ["users"])
    error = refusal_error(none)
    assert isinstance(error, PreconditionFailed) and error.code == "restore.no_backup"
    assert "no backup of users exists" in error.message
    damaged = [
        mark_damaged(
            mark_damaged([entry("20261125-users-daily", NOW)], "20261125-users-daily", "local", "x"),
            "20261125-users-daily",
            "remote",
            "y",
        )[0]
    ]
    error = refusal_error(select_backups(damaged, ["users"]))
    assert isinstance(error, IntegrityError) and error.code == "restore.backups_damaged"


def test_backups_of_different_schema_versions_are_not_mixed() -> None:
    assert schema_versions_agree([manifest("20261125-users-daily", NOW)] * 2) is None
    problem = schema_versions_agree(
        [manifest("20261125-users-daily", NOW), manifest("20261125-orders-daily", NOW, schema="2")]
    )
    assert problem is not None and "1, 2" in problem


def test_expected_fingerprints_leave_out_host_files() -> None:
    expected = expected_fingerprints(manifest("20261125-logs-daily", NOW))
    assert list(expected) == ["orders"] and expected["orders"].rows == 10


def test_at_needs_a_zone_and_params_refuse_at_with_point() -> None:
    assert parse_at("2026-11-25T10:00:00Z") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    with pytest.raises(UsageError, match="time zone"):
        parse_at("2026-11-25T10:00:00")
    with pytest.raises(UsageError, match="not a time"):
        parse_at("yesterday")
    with pytest.raises(UsageError, match="either --at or --point"):
        restore_params(["orders"], at="2026-11-25T10:00:00Z", point="p", restore_id="x")
    with pytest.raises(UsageError, match="no domains"):
        restore_params([], at=None, point=None, restore_id="x")


def test_the_runbook_asks_first_and_swaps_only_after_verifying(tmp_path: Path) -> None:
    restore_id = new_restore_id(NOW)
    assert restore_id.startswith("20261125220000_")
    book = restore_runbook(
        target(tmp_path), restore_params(["orders"], at=None, point=None, restore_id=restore_id)
    )
    names = [step.name for step in book.steps]
    assert names.index("verify-restored") < names.index("fence-service") < names.index("swap-in")
    # Rows written to live's other domains are carried over with the service fenced, before the swap.
    assert names.index("fence-service") + 1 == names.index("catch-up-live") == names.index("swap-in") - 1
    assert book.confirm is not None and f"orders_replaced_{restore_id}" in book.confirm


def test_thaw_turns_recorded_outputs_into_json_values() -> None:
    from types import MappingProxyType

    from recovery.engine.model import freeze, thaw

    assert thaw(MappingProxyType({"a": (1, MappingProxyType({"b": 2}))})) == {"a": [1, {"b": 2}]}
    assert thaw(freeze({"a": [1, {"b": [2]}]})) == {"a": [1, {"b": [2]}]}


def test_with_choice_replaces_a_domains_decision() -> None:
    from recovery.restore.selection import DomainChoice, DomainRefusal, Selection

    daily = DomainChoice("orders", "20261125-orders-daily", "daily", "local", "daily")
    users = DomainChoice("users", "20261125-users-daily", "daily", "local", "daily")
    realtime = DomainChoice("orders", "20261125-orders-realtime", "realtime", "remote", "point in WAL")
    merged = with_choice(Selection((daily, users), ()), realtime)
    assert merged.choice("orders") == realtime and merged.choice("users") == users
    refused = Selection((), (DomainRefusal("orders", "none"),))
    assert not with_choice(refused, realtime).refused


def test_realtime_choices_of_one_base_backup_share_one_recovery() -> None:
    orders = manifest("20261125-orders-realtime", NOW)
    transactions = manifest("20261125-transactions-realtime", NOW)
    older = manifest("20261124-transactions-realtime", NOW - timedelta(days=1))
    daily = manifest("20261125-users-daily", NOW)
    manifests = {m.backup_id: m for m in (orders, transactions, older, daily)}

    def choice(m: Manifest, copy: str = "local") -> DomainChoice:
        return DomainChoice(m.domain, m.backup_id, m.kind, copy, "test")  # type: ignore[arg-type]

    same = recovery_groups([choice(orders), choice(transactions, "remote"), choice(daily)], manifests)
    assert same == [(choice(orders), ("orders", "transactions"))]
    apart = recovery_groups([choice(orders), choice(older)], manifests)
    assert apart == [(choice(orders), ("orders",)), (choice(older), ("transactions",))]
    assert recovery_groups([choice(daily)], manifests) == []


def test_recovered_fingerprints_come_back_from_the_recorded_output() -> None:
    found = recovered_expectations({"orders": {"rows": 3, "content_hash": "00000000000000ab"}})
    assert found["orders"].rows == 3 and found["orders"].content_hash == "00000000000000ab"
    assert recovered_expectations({}) == {}


def test_expected_fingerprints_keep_each_tables_algorithm_old_manifests_meaning_hashtextextended() -> None:
    old = manifest("20261125-orders-daily", NOW)
    document = json.loads(old.to_json())
    for table in document["tables"]:
        table.pop("algorithm")  # written before manifests named the algorithm
    parsed = Manifest.model_validate(document)
    assert {fp.algorithm for fp in expected_fingerprints(parsed).values()} == {"hashtextextended"}
    fast = old.model_copy(
        update={
            "tables": (
                TableSummary(
                    name="orders", rows=3, content_hash="00000000000000ab", algorithm="hashrecordextended"
                ),
                TableSummary(name="file:primary-app", rows=10, content_hash="ab" * 32, algorithm="sha256"),
            )
        }
    )
    assert {name: fp.algorithm for name, fp in expected_fingerprints(fast).items()} == {
        "orders": "hashrecordextended"
    }


def test_the_fastest_fingerprint_needs_postgresql_14() -> None:
    class Info:
        def __init__(self, version: int) -> None:
            self.server_version = version

    class Conn:
        def __init__(self, version: int) -> None:
            self.info = Info(version)

    assert fastest_algorithm(Conn(180001)) == "hashrecordextended"  # type: ignore[arg-type]
    assert fastest_algorithm(Conn(130020)) == "hashtextextended"  # type: ignore[arg-type]
