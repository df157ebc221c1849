"""The upgrade's pure decisions: gates of one round, the latency gate, what a failed deploy task means,
and the parameters it refuses."""

from __future__ import annotations

import pytest

from recovery.errors import UsageError
from recovery.runbooks.upgrade import (
    GateRound,
    HostHealth,
    classify_deploy_failure,
    judge_latency,
    judge_round,
    upgrade_params,
)
from recovery.targets.model import Objectives

HEALTHY = (HostHealth("primary-app", 200, "v2"), HostHealth("standby-app", 200, "v2"))


def _round(hosts: tuple[HostHealth, ...] = HEALTHY, bad: int = 0, smoke: bool = True) -> GateRound:
    return GateRound(hosts, bad, tuple(f"order-{i}" for i in range(bad)), smoke,
                     "" if smoke else "smoke test step create_order: total wrong", 5.0)


def test_a_healthy_round_passes() -> None:
    assert judge_round("v2", _round()).passed


@pytest.mark.parametrize(
    ("hosts", "words"),
    [
        ((HostHealth("primary-app", None, None), HEALTHY[1]), "primary-app does not answer"),
        ((HEALTHY[0], HostHealth("standby-app", 503, "v2", ("database check failed",))),
         "standby-app is unhealthy (database check failed)"),
        ((HostHealth("primary-app", 200, "v1"), HEALTHY[1]), "primary-app runs v1, not v2"),
    ],
)
def test_health_gate_names_the_host_and_why(hosts: tuple[HostHealth, ...], words: str) -> None:
    verdict = judge_round("v2", _round(hosts))
    assert (verdict.passed, verdict.gate) == (False, "health")
    assert words in verdict.reason


def test_health_is_judged_before_business_and_smoke() -> None:
    verdict = judge_round("v2", _round((HostHealth("primary-app", None, None),), bad=3, smoke=False))
    assert verdict.gate == "health"


def test_business_gate_counts_orders_whose_total_does_not_match() -> None:
    verdict = judge_round("v2", _round(bad=4))
    assert verdict.gate == "business"
    assert verdict.reason.startswith("4 orders") and "order-0" in verdict.reason


def test_smoke_gate_carries_the_smoke_reason() -> None:
    verdict = judge_round("v2", _round(smoke=False))
    assert verdict.gate == "smoke" and "total wrong" in verdict.reason


def test_latency_gate_uses_the_median_against_the_objective() -> None:
    objectives = Objectives(latency_p95_ms=100)
    assert judge_latency([20, 30, 900], objectives, None).passed  # one slow moment is not a slow release
    verdict = judge_latency([150, 160, 20], objectives, None)
    assert (verdict.passed, verdict.gate) == (False, "latency")
    assert "150 ms" in verdict.reason and "100 ms" in verdict.reason


def test_latency_gate_compares_with_the_previous_release() -> None:
    objectives = Objectives(latency_p95_ms=500)
    assert judge_latency([16, 17, 18], objectives, baseline_ms=5.0).passed  # 2.5 * 5 + 5 = 17.5
    verdict = judge_latency([29, 30, 31], objectives, baseline_ms=5.0)
    assert not verdict.passed and "previous release's 5.0 ms" in verdict.reason


def test_latency_gate_without_samples_fails() -> None:
    assert judge_latency([], Objectives(), 5.0).gate == "latency"


@pytest.mark.parametrize(
    ("task", "gate"),
    [
        ("Apply the pending migrations, each in its own transaction", "migrate"),
        ("Read the database's schema version and pending migrations", "migrate"),
        ("Fail when the release did not become healthy", "health"),
        ("Start the service with start-stop-daemon unless it runs", "health"),
        ("Unpack the release tarball into its own directory", "deploy"),
        (None, "deploy"),
    ],
)
def test_a_failed_deploy_task_names_its_gate(task: str | None, gate: str) -> None:
    assert classify_deploy_failure(task) == gate


def test_bad_parameters_are_refused_before_anything_runs() -> None:
    with pytest.raises(UsageError, match="unknown release 'v9'"):
        upgrade_params("v9")
    with pytest.raises(UsageError, match="--watch"):
        upgrade_params("v2", watch_seconds=-1)
    with pytest.raises(UsageError, match="--health-timeout"):
        upgrade_params("v2", health_timeout=0)
    params = upgrade_params("v2", watch_seconds=3)
    assert params == {"release": "v2", "watch_seconds": 3, "health_timeout": 20}
