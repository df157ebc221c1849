"""Health gates: each gate's pass and fail decision over observations, and which failure decides."""

from __future__ import annotations

import pytest

from recovery.errors import UsageError
from recovery.release.gates import (
    MIN_REQUESTS,
    GateResult,
    HostHealth,
    LatencyBaseline,
    Request,
    check_window,
    decide_error_rate,
    decide_health,
    decide_invariants,
    decide_latency,
    decide_smoke,
    first_failure,
    slowdown_limit,
)
from recovery.targets.model import Objectives
from recovery.verify.invariants import INVARIANTS, CheckObservation
from recovery.verify.invariants import decide_invariants as judge_invariants
from recovery.verify.smoke import SmokeReport, SmokeStep

OBJECTIVES = Objectives(latency_p95_ms=500, error_rate_max=0.05)


def requests(ok: int, failed: int = 0, latency_ms: float = 20) -> list[Request]:
    return [Request(True, latency_ms, "201")] * ok + [
        Request(False, 3.0, "POST /orders answered 503")
    ] * failed


def test_health_passes_only_when_every_host_is_healthy() -> None:
    healthy = [HostHealth("primary-app", True, "release v2"), HostHealth("standby-app", True, "release v2")]
    assert decide_health(healthy) == GateResult("health", True, "all 2 hosts answer /health ok")
    sick = [*healthy, HostHealth("standby-app", False, "GET http://127.0.0.12:80/health answered 503")]
    result = decide_health(sick)
    assert not result.passed
    assert result.reason == "host standby-app is not healthy: GET http://127.0.0.12:80/health answered 503"
    assert not decide_health([]).passed


def test_error_rate_over_the_objective_fails_and_quotes_the_first_error() -> None:
    assert decide_error_rate(requests(19, 1), OBJECTIVES).passed  # 5 % is the objective itself
    result = decide_error_rate(requests(18, 2), OBJECTIVES)
    assert not result.passed
    assert result.reason == (
        "2 of 20 requests failed (10.0%, objective at most 5.0%); first: POST /orders answered 503"
    )


def test_few_requests_fail_the_error_rate_only_when_already_too_many_failed() -> None:
    assert decide_error_rate(requests(3, 0), OBJECTIVES).passed
    failing = decide_error_rate(requests(0, 3), OBJECTIVES)
    assert not failing.passed and failing.reason.startswith("3 of the first 3 requests failed")


def test_latency_fails_when_p95_exceeds_the_objective() -> None:
    fast = requests(19, latency_ms=40) + requests(1, latency_ms=900)
    assert decide_latency(fast, OBJECTIVES).passed  # one slow request in 20 is the 5 % above p95
    slow = requests(18, latency_ms=40) + requests(2, latency_ms=900)
    result = decide_latency(slow, OBJECTIVES)
    assert not result.passed
    assert result.reason == "p95 latency 900 ms over 20 requests exceeds the objective 500 ms"


def test_latency_waits_for_enough_answered_requests() -> None:
    result = decide_latency(requests(MIN_REQUESTS - 1, latency_ms=5000), OBJECTIVES)
    assert result.passed and "p95 needs" in result.reason


def test_smoke_gate_reports_the_failing_step() -> None:
    step = SmokeStep(
        name="create_order", passed=False, seconds=0.1, reason="the new order's total 100 is not 250"
    )
    failed = SmokeReport(
        base_url="http://x", order_id="o", passed=False, steps=(step,), not_run=("read_order",), seconds=0.2
    )
    result = decide_smoke(failed)
    assert not result.passed and "the new order's total 100 is not 250" in result.reason
    ok_step = SmokeStep(name="health", passed=True, seconds=0.1, reason="healthy")
    assert decide_smoke(
        SmokeReport(base_url="http://x", order_id="o", passed=True, steps=(ok_step,), not_run=(), seconds=0.1)
    ).passed


def test_invariants_gate_reports_the_broken_rule() -> None:
    observations = [CheckObservation(name=i.name, violations=0, examples=()) for i in INVARIANTS]
    assert decide_invariants(judge_invariants("schema public", 4, observations)).passed
    observations[1] = CheckObservation(name=INVARIANTS[1].name, violations=3, examples=("a", "b", "c"))
    result = decide_invariants(judge_invariants("schema public", 4, observations))
    assert not result.passed
    assert "order_total_matches_items found 3 problems: 3 orders break the rule" in result.reason
    assert "(e.g. a, b, c)" in result.reason


def test_the_first_failing_gate_in_gate_order_decides() -> None:
    results = [
        GateResult("latency", False, "slow"),
        GateResult("health", True, "ok"),
        GateResult("invariants", False, "broken"),
        GateResult("error_rate", False, "errors"),
    ]
    assert first_failure(results) == GateResult("error_rate", False, "errors")
    assert first_failure([GateResult("health", True, "ok")]) is None


@pytest.mark.parametrize(("window", "interval"), [(10, 0), (10, 11), (4000, 10)])
def test_a_bad_window_is_refused(window: float, interval: float) -> None:
    with pytest.raises(UsageError):
        check_window(window, interval)


def test_a_baseline_fails_a_release_several_times_slower_than_the_one_it_replaced() -> None:
    baseline = LatencyBaseline(p50_ms=60, p95_ms=80, requests=20)
    assert slowdown_limit(baseline) == 180
    slow = requests(20, latency_ms=300)  # well under the 500 ms objective, but five times slower
    assert decide_latency(slow, OBJECTIVES).passed
    result = decide_latency(slow, OBJECTIVES, baseline)
    assert not result.passed
    assert result.reason == (
        "median latency 300 ms over 20 requests is 5.0x the 60 ms measured before the deploy "
        "(at most 3x allowed)"
    )
    fine = decide_latency(requests(20, latency_ms=170), OBJECTIVES, baseline)
    assert fine.passed and fine.reason.endswith("median 170 ms against 60 ms before")


def test_the_slowdown_limit_keeps_a_slack_for_fast_requests() -> None:
    assert slowdown_limit(LatencyBaseline(p50_ms=5, p95_ms=9, requests=20)) == 105  # 5 + 100 ms slack
    assert slowdown_limit(LatencyBaseline(p50_ms=5, p95_ms=9, requests=20), max_slowdown=30) == 150


def test_the_objective_stays_the_hard_limit_with_a_baseline() -> None:
    baseline = LatencyBaseline(p50_ms=400, p95_ms=450, requests=20)
    result = decide_latency(requests(20, latency_ms=600), OBJECTIVES, baseline)
    assert not result.passed and result.reason.endswith("exceeds the objective 500 ms")
