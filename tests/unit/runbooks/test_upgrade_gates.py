"""The upgrade's own pure decisions (its gates are recovery.release.gates, tested in test_gates.py):
which release the hosts run, what a failed deploy task means, and the parameters it refuses."""

from __future__ import annotations

import pytest

from recovery.errors import PreconditionFailed, UsageError
from recovery.release.gates import HostHealth, LatencyBaseline, Request, decide_health, decide_latency
from recovery.runbooks.upgrade import classify_deploy_failure, running_release, upgrade_params
from recovery.targets.model import Objectives


def test_the_running_release_is_the_one_every_host_runs() -> None:
    assert running_release({"primary-app": "v1", "standby-app": "v1"}, "v2") == "v1"


@pytest.mark.parametrize(
    ("hosts", "code", "words"),
    [
        ({"primary-app": "v1", "standby-app": None}, "preflight.hosts", "standby-app"),
        ({"primary-app": "v1", "standby-app": "v2"}, "preflight.hosts", "different releases (v1, v2)"),
        ({"primary-app": "v2", "standby-app": "v2"}, "preflight.same_release", "already runs v2"),
        ({}, "preflight.hosts", "no hosts"),
    ],
)
def test_hosts_that_disagree_or_are_unknown_refuse_the_upgrade(
    hosts: dict[str, str | None], code: str, words: str
) -> None:
    with pytest.raises(PreconditionFailed, match=words.replace("(", r"\(").replace(")", r"\)")) as caught:
        running_release(hosts, "v2")
    assert caught.value.code == code


def test_health_fails_a_host_left_on_another_release() -> None:
    hosts = [HostHealth("primary-app", True, "release v2", "v2"), HostHealth("standby-app", True, "", "v1")]
    result = decide_health(hosts, "v2")
    assert not result.passed and "standby-app runs v1, not v2" in result.reason
    assert decide_health(hosts[:1], "v2").passed
    assert decide_health(hosts).passed  # without a release, only health counts


def _requests(ms: float, n: int = 20) -> list[Request]:
    return [Request(True, ms, "201")] * n


@pytest.mark.parametrize(
    ("baseline_ms", "good_ms", "slow_ms"),
    # Medians of 20 sixteen-line probe orders measured on the lab (10,000 orders, load average 10-11):
    # v1 34-85 ms, v2 48-68 ms, v2-slow 712-956 ms.
    [(34.0, 68.0, 712.0), (85.0, 48.0, 712.0), (34.0, 130.0, 956.0)],
)
def test_the_latency_rule_holds_v2_and_fails_v2_slow_at_the_measured_figures(
    baseline_ms: float, good_ms: float, slow_ms: float
) -> None:
    baseline = LatencyBaseline(baseline_ms, baseline_ms * 2, 20)
    objectives = Objectives(latency_p95_ms=5000)
    assert decide_latency(_requests(good_ms), objectives, baseline).passed
    failed = decide_latency(_requests(slow_ms), objectives, baseline)
    assert not failed.passed and "measured before the deploy" in failed.reason


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
    with pytest.raises(UsageError, match="--watch"):
        upgrade_params("v2", watch_seconds=7200)
    with pytest.raises(UsageError, match="--health-timeout"):
        upgrade_params("v2", health_timeout=0)
    with pytest.raises(UsageError, match="unknown preflight check 'disks'"):
        upgrade_params("v2", skip_checks=["disks"])
    params = upgrade_params("v2", watch_seconds=3, skip_checks=["migration_dry_run"])
    assert params == {
        "release": "v2",
        "watch_seconds": 3,
        "health_timeout": 20,
        "skip_checks": ["migration_dry_run"],
        "restore_ahead": True,
    }
