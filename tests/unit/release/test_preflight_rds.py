"""The RDS preflight checks: pure decisions over an observed snapshot of an instance."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from recovery.release.preflight_checks.rds import GIB, RdsFacts, decide_rds, engine_major
from recovery.targets.model import Objectives

NOW = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
OBJECTIVES = Objectives(realtime_backup_max_age_seconds=360, replication_lag_max_seconds=30)
HEALTHY = RdsFacts(
    site="standby",
    instance="order-recovery-standby",
    engine_version="16.4",
    status="available",
    is_replica=True,
    backup_retention_days=14,
    latest_restorable_time=NOW - timedelta(seconds=200),
    replica_lag_seconds=3.0,
    free_storage_bytes=60 * GIB,
    allocated_storage_gb=100,
)


def _by_name(facts: RdsFacts, minimum: int = 15) -> dict[str, tuple[bool, str]]:
    findings = decide_rds(facts, postgres_min_major=minimum, objectives=OBJECTIVES, now=NOW)
    return {f.name: (f.ok, f.reason) for f in findings}


def test_a_healthy_replica_passes_every_check_with_its_figures() -> None:
    found = _by_name(HEALTHY)
    assert found == {
        "rds_engine_version": (True, "RDS PostgreSQL 16.4, the release needs 15 or newer"),
        "rds_maintenance": (True, "no maintenance action pending"),
        "rds_backups": (True, "restorable to 200 s ago, 14 days kept (objective 360 s)"),
        "rds_replica_lag": (True, "ReplicaLag 3.0 s (objective at most 30 s)"),
        "rds_free_storage": (True, "60.0 GiB free of 100 GiB (at least 10% wanted)"),
    }


def test_a_primary_has_no_lag_check() -> None:
    assert "rds_replica_lag" not in _by_name(replace(HEALTHY, is_replica=False, replica_lag_seconds=None))


@pytest.mark.parametrize(
    ("change", "check", "says"),
    [
        ({"engine_version": "14.12"}, "rds_engine_version", "needs 15 or newer; upgrade the engine"),
        ({"engine_version": "postgres"}, "rds_engine_version", "unreadable"),
        (
            {"pending_maintenance": ("system-update", "db-upgrade")},
            "rds_maintenance",
            "system-update (and 1 more)",
        ),
        ({"backup_retention_days": 0}, "rds_backups", "automated backups are off"),
        ({"latest_restorable_time": None}, "rds_backups", "no latest restorable time"),
        ({"latest_restorable_time": NOW - timedelta(seconds=361)}, "rds_backups", "361 s ago"),
        ({"replica_lag_seconds": 30.5}, "rds_replica_lag", "ReplicaLag 30.5 s"),
        ({"replica_lag_seconds": None}, "rds_replica_lag", "no ReplicaLag datapoint"),
        ({"free_storage_bytes": 9.9 * GIB}, "rds_free_storage", "9.9 GiB free of 100 GiB"),
        ({"free_storage_bytes": None}, "rds_free_storage", "free storage is unknown"),
    ],
)
def test_each_check_fails_on_its_own_fact(change: dict[str, object], check: str, says: str) -> None:
    found = _by_name(replace(HEALTHY, **change))  # type: ignore[arg-type]
    ok, reason = found[check]
    assert not ok and says in reason
    assert [name for name, (passed, _) in found.items() if not passed] == [check]


def test_the_limits_themselves_pass() -> None:
    at_limits = replace(
        HEALTHY,
        engine_version="15.0",
        latest_restorable_time=NOW - timedelta(seconds=360),
        replica_lag_seconds=30.0,
        free_storage_bytes=10 * GIB,
    )
    assert all(ok for ok, _ in _by_name(at_limits).values())


def test_an_instance_that_cannot_be_observed_fails_once_with_the_reason() -> None:
    findings = decide_rds(
        RdsFacts("primary", "order-recovery-primary", "AWS refused to describe: AccessDenied"),
        postgres_min_major=15,
        objectives=OBJECTIVES,
        now=NOW,
    )
    assert [(f.name, f.ok) for f in findings] == [("rds_engine_version", False)]
    assert "AccessDenied" in findings[0].reason


def test_engine_major() -> None:
    assert engine_major("16.4") == 16 and engine_major("9") == 9 and engine_major("") is None
