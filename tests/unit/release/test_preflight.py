"""Preflight's pure decisions: every check's pass and fail, with the reason sentence it gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery.backup.catalog import CatalogEntry, CopyState, CopyStatus
from recovery.backup.manifest import KeyInfo, Manifest, Sizes, SourcePosition, TableSummary
from recovery.backup.naming import BackupName
from recovery.errors import ExitCode, PreconditionFailed, UsageError
from recovery.release.catalog import Requirements, get_release
from recovery.release.preflight import (
    DatabaseFacts,
    PreflightCheck,
    PreflightOptions,
    PreflightReport,
    ReplicationFacts,
    apply_skip,
    decide_backups,
    decide_dry_run,
    decide_host,
    decide_postgres,
    decide_replication,
    ensure_passed,
)
from recovery.release.preflight_checks.backups import BackupFacts, StoreFacts
from recovery.release.preflight_checks.dry_run import DryRunFacts
from recovery.release.preflight_checks.hosts import HostFacts
from recovery.targets.model import Objectives

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REQUIRES = Requirements(
    postgres_min_major=13, python_min="3.9", disk_free_mb=64, memory_mb=128, ports=("service", "database")
)
VERIFIED = CopyStatus(CopyState.VERIFIED, "sha256 matches the manifest")
STORES = (
    StoreFacts("local", "s3://l (eu-central-1)", None),
    StoreFacts("remote", "s3://r (eu-west-1)", None),
)


def host(**changes: object) -> HostFacts:
    facts = {
        "host": "primary-app",
        "reachable": True,
        "python": (3, 11, 2),
        "disk_free_mb": 1000,
        "disk_path": "/srv/app",
        "memory_mb": 2048,
        "service_port": 8080,
        "port_state": "free",
        "port_detail": "Connection refused",
        "reached": ("primary database", "standby database"),
    }
    facts.update(changes)
    return HostFacts(**facts)  # type: ignore[arg-type]


def by_name(checks: list[PreflightCheck]) -> dict[str, PreflightCheck]:
    return {c.name: c for c in checks}


def test_a_host_that_meets_every_requirement_passes_each_check() -> None:
    checks = by_name(decide_host(host(), REQUIRES))
    assert set(checks) == {"ssh", "python", "disk", "memory", "service_port", "connectivity"}
    assert all(c.status == "pass" for c in checks.values())
    assert checks["python"].reason == "Python 3.11.2 on the host, the release needs 3.9 or newer"
    assert checks["service_port"].reason == "port 8080 is free"


def test_an_unreachable_host_fails_one_check_that_says_why() -> None:
    checks = decide_host(
        host(reachable=False, problem="cannot reach host primary-app at 127.0.0.11:22"), REQUIRES
    )
    assert [(c.name, c.status) for c in checks] == [("ssh", "fail")]
    assert "127.0.0.11:22" in checks[0].reason


@pytest.mark.parametrize(
    ("changes", "name", "words"),
    [
        (
            {"python": (3, 8, 10)},
            "python",
            "Python 3.8.10 on the host, the release needs 3.9 or newer; install",
        ),
        ({"disk_free_mb": 10}, "disk", "10 MB free under /srv/app, the release needs 64 MB"),
        ({"memory_mb": 100}, "memory", "100 MB memory available, the release needs 128 MB"),
        ({"memory_mb": None}, "memory", "cannot read the available memory"),
        (
            {"port_state": "other", "port_detail": "HTTPError"},
            "service_port",
            "held by another program (HTTPError)",
        ),
        (
            {"unreachable": (("primary database", "Connection refused"),), "reached": ()},
            "connectivity",
            "cannot connect to the primary database: Connection refused",
        ),
    ],
)
def test_each_host_requirement_fails_with_its_reason(
    changes: dict[str, object], name: str, words: str
) -> None:
    checks = by_name(decide_host(host(**changes), REQUIRES))
    assert checks[name].status == "fail"
    assert words in checks[name].reason
    assert [c.name for c in checks.values() if c.status == "fail"] == [name]


def test_a_port_held_by_the_order_service_itself_passes() -> None:
    check = by_name(decide_host(host(port_state="ours", port_detail="v1"), REQUIRES))["service_port"]
    assert check.status == "pass"
    assert "held by the order service (release v1)" in check.reason


def test_the_postgres_version_decides_against_the_release_requirement() -> None:
    old = decide_postgres(
        DatabaseFacts("primary", "127.0.0.11:5432", 18), get_release("v2-needs-newer-postgres").requires
    )
    assert old.status == "fail"
    assert old.reason.startswith("PostgreSQL 18 at 127.0.0.11:5432, the release needs 19 or newer")
    assert decide_postgres(DatabaseFacts("primary", "127.0.0.11:5432", 18), REQUIRES).status == "pass"
    down = decide_postgres(DatabaseFacts("standby", "127.0.0.12:5432", None, "connection refused"), REQUIRES)
    assert (down.status, down.subject) == ("fail", "standby database")
    assert "connection refused" in down.reason


def test_replication_needs_a_streaming_standby_within_the_lag_objective() -> None:
    objectives = Objectives(replication_lag_max_seconds=5)
    ok = decide_replication(ReplicationFacts((("standby", "streaming", 0.4),)), objectives)
    assert ok.status == "pass" and "0.4 s behind" in ok.reason
    late = decide_replication(ReplicationFacts((("standby", "streaming", 9.0),)), objectives)
    assert late.status == "fail" and "9.0 s behind the primary (objective at most 5 s)" in late.reason
    none = decide_replication(ReplicationFacts((("standby", "catchup", 0.0),)), objectives)
    assert none.status == "fail" and "no standby is streaming" in none.reason
    broken = decide_replication(ReplicationFacts((), "cannot connect"), objectives)
    assert broken.status == "fail" and "cannot connect" in broken.reason


def _entry(backup_id: str, at: datetime) -> CatalogEntry:
    name = BackupName.parse(backup_id)
    manifest = Manifest(
        format_version=1,
        backup_id=name.backup_id,
        domain=name.domain,
        kind=name.kind,
        created_at=at,
        source=SourcePosition(at=at),
        schema_version="1",
        service_version="v1",
        tables=(TableSummary(name=name.domain, rows=1, content_hash="ab" * 32),),
        sizes=Sizes(raw=1, compressed=1, stored=1),
        sha256="0" * 64,
        chunk_size=1024,
        key=KeyInfo(source="keyring", key_id="k", wrapped_data_key=b"w" * 40),
    )
    return CatalogEntry(name, VERIFIED, VERIFIED, local_manifest=manifest, remote_manifest=manifest)


def _fresh() -> tuple[CatalogEntry, ...]:
    return (
        _entry("20261125-orders-realtime", NOW - timedelta(seconds=30)),
        _entry("20261125-transactions-realtime", NOW - timedelta(seconds=30)),
        *(
            _entry(f"20261125-{d}-daily", NOW - timedelta(hours=2))
            for d in ("orders", "users", "products", "transactions", "logs")
        ),
    )


def test_fresh_verified_backups_pass_per_domain_and_kind() -> None:
    checks = decide_backups(
        BackupFacts(STORES, _fresh(), None, NOW), Objectives(), NOW, restore_point_pending=False, target="lab"
    )
    fresh = [c for c in checks if c.name == "backups_fresh"]
    assert len(fresh) == 7 and all(c.status == "pass" for c in checks)
    orders = next(c for c in fresh if c.subject == "orders realtime")
    assert orders.reason == "20261125-orders-realtime verified, 30 s old (objective 120 s)"


def test_missing_backups_fail_and_name_the_command_that_makes_one() -> None:
    entries = tuple(e for e in _fresh() if e.domain != "users")
    checks = decide_backups(
        BackupFacts(STORES, entries, None, NOW), Objectives(), NOW, restore_point_pending=False, target="lab"
    )
    failed = [c for c in checks if c.status == "fail"]
    assert [c.subject for c in failed] == ["users daily"]
    assert "no verified daily backup of users exists" in failed[0].reason
    assert "`recovery backup run --target lab`" in failed[0].reason


def test_a_missing_realtime_backup_names_the_realtime_command_not_backup_run() -> None:
    entries = tuple(e for e in _fresh() if not (e.domain == "orders" and e.kind == "realtime"))
    checks = decide_backups(
        BackupFacts(STORES, entries, None, NOW), Objectives(), NOW, restore_point_pending=False, target="lab"
    )
    failed = [c for c in checks if c.status == "fail"]
    assert [c.subject for c in failed] == ["orders realtime"]
    assert failed[0].reason == (
        "no verified realtime backup of orders exists (both copies must exist and verify); make one with "
        "`recovery backup realtime --target lab` (or let the upgrade take a restore point: "
        "--restore-point-pending)"
    )


def test_a_pending_restore_point_accepts_missing_backups_and_says_so() -> None:
    checks = decide_backups(
        BackupFacts(STORES, (), None, NOW), Objectives(), NOW, restore_point_pending=True, target="lab"
    )
    fresh = [c for c in checks if c.name == "backups_fresh"]
    assert len(fresh) == 7 and all(c.status == "pass" for c in fresh)
    assert all(
        "accepted: a restore point of every domain is taken before any change" in c.reason for c in fresh
    )


def test_an_unreachable_store_fails_even_with_a_pending_restore_point() -> None:
    stores = (STORES[0], StoreFacts("remote", "s3://r (eu-west-1)", "AccessDenied"))
    checks = decide_backups(
        BackupFacts(stores, (), "a backup store cannot be reached", NOW),
        Objectives(),
        NOW,
        restore_point_pending=True,
        target="lab",
    )
    assert [(c.name, c.subject, c.status) for c in checks if c.status == "fail"] == [
        ("backup_store", "remote", "fail"),
        ("backups_fresh", "all domains", "fail"),
    ]


def test_the_dry_run_decision_names_the_failing_migration() -> None:
    release = get_release("v2-bad-migration")
    failed = DryRunFacts(
        True, False, ("0002_x",), "0003_backfill: CheckViolation: boom", 2, {"orders": 2000}, 0.5
    )
    check = decide_dry_run(failed, release, ())
    assert check.status == "fail"
    assert check.reason.startswith(
        "migration 0003_backfill: CheckViolation: boom failed on a scratch copy (2000 newest"
    )
    ok = DryRunFacts(True, True, ("0002_a", "0003_b"), None, 4, {"orders": 10}, 0.5)
    assert decide_dry_run(ok, release, ()).reason.startswith(
        "migrations 0002_a, 0003_b applied on a scratch copy"
    )
    broken = DryRunFacts(False, False, (), None, None, {}, 0.1, "pg_dump failed")
    assert decide_dry_run(broken, release, ()).reason == "the dry run could not run: pg_dump failed"
    blocked = decide_dry_run(None, release, ("postgres_version", "disk", "disk"))
    assert blocked.status == "skip" and blocked.reason.startswith("not run: disk, postgres_version failed")


def test_skipping_a_check_reports_it_as_skipped_never_as_passed() -> None:
    check = PreflightCheck("disk", "primary-app", "fail", "10 MB free")
    skipped = apply_skip(check, {"disk"})
    assert skipped.status == "skip" and "10 MB free" in skipped.reason
    assert apply_skip(check, {"memory"}) == check
    with pytest.raises(UsageError, match="unknown preflight check 'disks'"):
        PreflightOptions(skip=frozenset({"disks"}))


def test_a_refused_report_raises_refused_naming_the_first_failure() -> None:
    report = PreflightReport(
        "v2",
        "lab",
        (
            PreflightCheck("ssh", "primary-app", "pass", "ok"),
            PreflightCheck("postgres_version", "primary database", "fail", "PostgreSQL 18, needs 19"),
            PreflightCheck("postgres_version", "standby database", "fail", "PostgreSQL 18, needs 19"),
        ),
    )
    with pytest.raises(PreconditionFailed) as caught:
        ensure_passed(report)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert caught.value.message == (
        "preflight refused v2 on lab: postgres_version (primary database): PostgreSQL 18, needs 19 "
        "(and 1 more failing check); nothing was changed"
    )
    ensure_passed(PreflightReport("v2", "lab", (PreflightCheck("ssh", "h", "pass", "ok"),)))
