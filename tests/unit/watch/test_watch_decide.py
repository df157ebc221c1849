"""The watch's decision, checked on the sentences it gives (what reaches the team)."""

from __future__ import annotations

from recovery.failover.state import ClusterState, DatabaseState, ServiceState, SiteState
from recovery.watch.decide import (
    Interrupted,
    LockHolder,
    Observations,
    Policy,
    ProbeStreak,
    Reading,
    decide,
    judge_returning_site,
)

FRESH = Reading("backup age orders/realtime", 40, 120, "s", "recovery backup ship --target shop")
STALE = Reading(
    "backup age users/daily", 100000, 93600, "s", "recovery backup run --domain users --target shop"
)
DOWN = ProbeStreak(failures=3, seconds=2.5)


def test_all_within_thresholds_does_nothing() -> None:
    decision = decide(Observations("shop", ProbeStreak(), (FRESH,)), Policy())
    assert (decision.action, decision.reason) == ("nothing", "every check is within its threshold")


def test_one_failed_probe_changes_nothing() -> None:
    decision = decide(
        Observations("shop", ProbeStreak(failures=1, seconds=0.0)), Policy(automatic_failover=True)
    )
    assert decision.action == "nothing"
    assert decision.reason == ("the writer's database failed 1 probe(s) over 0.0 s; acting after 3 over 2 s")


def test_three_failures_within_the_window_are_not_enough_either() -> None:
    fast = ProbeStreak(failures=5, seconds=1.0)
    assert decide(Observations("shop", fast), Policy(automatic_failover=True)).action == "nothing"


def test_a_lost_writer_fails_over_when_the_target_allows_it() -> None:
    decision = decide(Observations("shop", DOWN), Policy(automatic_failover=True))
    assert decision.action == "failover"
    assert decision.reason == (
        "the writer's database failed 3 probes in a row over 2.5 s: failing over to the standby"
    )


def test_a_lost_writer_pages_when_failover_is_manual() -> None:
    decision = decide(Observations("shop", DOWN), Policy())
    assert decision.action == "page"
    assert decision.reason == (
        "the writer's database failed 3 probes in a row over 2.5 s; automatic failover is off: a person "
        "decides, e.g. `recovery failover --target shop`"
    )


def test_a_stale_backup_alarms_naming_the_domain_and_the_command() -> None:
    decision = decide(Observations("shop", ProbeStreak(), (FRESH, STALE)), Policy())
    assert decision.action == "alarm" and decision.alarms == (STALE,)
    assert decision.reason == (
        "backup age users/daily is 100000 s, beyond 93600 s: run `recovery backup run --domain users "
        "--target shop`"
    )


def test_the_watch_holds_while_a_runbook_holds_the_lock_even_with_the_writer_down() -> None:
    observed = Observations(
        "shop", DOWN, (STALE,), lock=LockHolder("20261206T200000Z-rollback-1a2b", "rollback")
    )
    decision = decide(observed, Policy(automatic_failover=True))
    assert decision.action == "hold"
    assert decision.reason.startswith(
        "run 20261206T200000Z-rollback-1a2b (rollback) holds the target's lock; holding, though backup age "
        "users/daily is 100000 s"
    )


def test_a_run_interrupted_inside_the_fence_pages_first() -> None:
    observed = Observations(
        "shop",
        DOWN,
        lock=LockHolder("x", "restore"),
        interrupted_in_fence=Interrupted("20261206T200000Z-restore-9f00", "restore", "swap-in"),
    )
    decision = decide(observed, Policy(automatic_failover=True))
    assert decision.action == "page"
    assert decision.reason == (
        "run 20261206T200000Z-restore-9f00 (restore) was interrupted in step swap-in while the order "
        "service was fenced: the shop takes no orders until a person runs `recovery runs resume "
        "20261206T200000Z-restore-9f00 --target shop`"
    )


# --- a returning old primary ----------------------------------------------------------------------------

NEW_WRITER = DatabaseState(reachable=True, in_recovery=False, read_only=False, epoch=2)
UNFENCED_OLD = DatabaseState(reachable=True, in_recovery=False, read_only=False, epoch=None)


def _after_failover(old_primary: DatabaseState) -> ClusterState:
    return ClusterState(
        writer="standby",
        epoch=2,
        sites=(
            SiteState("primary", old_primary, ServiceState(answering=True)),
            SiteState("standby", NEW_WRITER, ServiceState(answering=True, healthy=True)),
        ),
        traffic_to="standby",
    )


def test_an_old_primary_back_and_taking_writes_is_fenced_when_no_run_holds_the_lock() -> None:
    decision = judge_returning_site(_after_failover(UNFENCED_OLD), None)
    assert decision is not None
    assert (decision.action, decision.to, decision.reason) == (
        "fence",
        "primary",
        "the primary site's database takes writes although the standby site holds generation 2: fence it "
        "now, then rebuild it as a standby with `recovery failback`",
    )


def test_a_returning_site_is_never_fenced_while_a_runbook_holds_the_lock() -> None:
    # Mid-failover the promoted standby takes writes before the site record names it.
    assert judge_returning_site(_after_failover(UNFENCED_OLD), LockHolder("r1", "failover")) is None


def test_an_old_primary_that_refuses_writes_or_does_not_answer_is_left_alone() -> None:
    fenced = DatabaseState(reachable=True, in_recovery=False, read_only=True, epoch=1)
    assert judge_returning_site(_after_failover(fenced), None) is None
    gone = DatabaseState(reachable=False, problem="connection refused")
    assert judge_returning_site(_after_failover(gone), None) is None
