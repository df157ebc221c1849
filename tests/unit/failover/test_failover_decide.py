"""The failover decisions, checked on their reason sentences (what an operator reads)."""

from __future__ import annotations

from dataclasses import replace

from recovery.failover.decide import (
    decide_failback,
    decide_failover,
    decide_returning_site,
    decide_switchover,
)
from recovery.failover.state import ClusterState, DatabaseState, ServiceState, SiteState

WRITER_DB = DatabaseState(reachable=True, in_recovery=False, read_only=False, epoch=3)
STANDBY_DB = DatabaseState(
    reachable=True, in_recovery=True, read_only=True, epoch=3, lag_bytes=4096, lag_seconds=0.4
)
HEALTHY = ServiceState(answering=True, healthy=True)
DOWN_DB = DatabaseState(reachable=False, problem="connection refused")
NO_SERVICE = ServiceState(answering=False, problem="connection refused")


def cluster(
    primary_db: DatabaseState = WRITER_DB,
    primary_service: ServiceState = HEALTHY,
    standby_db: DatabaseState = STANDBY_DB,
    standby_service: ServiceState = HEALTHY,
) -> ClusterState:
    return ClusterState(
        writer="primary",
        epoch=3,
        sites=(
            SiteState("primary", primary_db, primary_service),
            SiteState("standby", standby_db, standby_service),
        ),
        traffic_to="primary",
    )


def test_switchover_with_both_sites_up_loses_nothing() -> None:
    decision = decide_switchover(cluster())
    assert decision.action == "switchover" and decision.to == "standby"
    assert decision.reason == (
        "both sites are up and the standby site replays 4096 bytes behind: the primary site will be "
        "fenced, the standby site promoted once it has replayed everything, so nothing is lost"
    )


def test_switchover_refuses_a_lost_writer_and_points_to_failover() -> None:
    decision = decide_switchover(cluster(primary_db=DOWN_DB, primary_service=NO_SERVICE))
    assert decision.action == "refuse"
    assert decision.reason == (
        "the primary site's database does not take writes (database: connection refused; service: "
        "connection refused); a switchover needs both sites up: use `recovery failover` if the primary "
        "site is lost"
    )


def test_switchover_refuses_a_site_that_is_not_a_healthy_standby() -> None:
    writable = replace(STANDBY_DB, in_recovery=False, read_only=False)
    assert decide_switchover(cluster(standby_db=writable)).reason == (
        "the standby site is not a healthy standby: its database is not a standby (it already takes writes)"
    )
    assert decide_switchover(cluster(standby_db=DOWN_DB)).reason == (
        "the standby site is not a healthy standby: its database does not answer (connection refused)"
    )
    assert decide_switchover(cluster(), to="primary").reason == (
        "the primary site already holds the writable database; nothing to switch"
    )


def test_switchover_refuses_a_standby_of_another_generation() -> None:
    old = replace(STANDBY_DB, epoch=2)
    assert decide_switchover(cluster(standby_db=old)).reason == (
        "the standby site's database carries generation 2, not the current 3: rebuild it as a standby "
        "(`recovery failback`) first"
    )


def test_failover_promotes_a_standby_within_the_objective() -> None:
    decision = decide_failover(cluster(primary_db=DOWN_DB, primary_service=NO_SERVICE), rpo_seconds=5)
    assert decision.action == "failover" and decision.to == "standby"
    assert decision.expected_loss_seconds == 0.4 and decision.expected_loss_bytes == 4096
    assert decision.reason == (
        "the primary site is lost or broken (database: connection refused; service: connection refused); "
        "the standby site is a healthy standby and promoting it gives up up to 0.4 s (4096 bytes) of "
        "writes, within 5.0 s"
    )


def test_failover_refuses_while_the_writer_is_healthy() -> None:
    assert decide_failover(cluster(), rpo_seconds=5).reason == (
        "the primary site takes writes and its service is healthy: use `recovery switchover` for a "
        "planned move"
    )


def test_failover_of_a_broken_service_on_a_writable_database_is_allowed() -> None:
    broken = ServiceState(answering=True, healthy=False, problem="health says database error")
    decision = decide_failover(cluster(primary_service=broken), rpo_seconds=5)
    assert decision.action == "failover"
    assert "(service: unhealthy (health says database error))" in decision.reason


def test_failover_refuses_a_lag_beyond_the_objective_and_says_what_it_would_cost() -> None:
    lagging = replace(STANDBY_DB, lag_seconds=12.3, lag_bytes=9_000_000)
    state = cluster(primary_db=DOWN_DB, primary_service=NO_SERVICE, standby_db=lagging)
    decision = decide_failover(state, rpo_seconds=5)
    assert decision.action == "refuse"
    assert decision.reason == (
        "the standby site lags 12.3 s (9000000 bytes) behind, beyond the RPO objective of 5.0 s: a "
        "failover now would lose up to 12.3 s of writes; pass --max-data-loss 12 or more to accept it"
    )
    accepted = decide_failover(state, rpo_seconds=5, max_data_loss_seconds=15)
    assert accepted.action == "failover" and accepted.expected_loss_seconds == 12.3
    assert decide_failover(state, rpo_seconds=5, max_data_loss_seconds=10).reason.startswith(
        "the standby site lags 12.3 s (9000000 bytes) behind, beyond --max-data-loss of 10.0 s"
    )


def test_failover_never_assumes_an_unknown_lag_is_small() -> None:
    unknown = replace(STANDBY_DB, lag_seconds=None)
    state = cluster(primary_db=DOWN_DB, primary_service=NO_SERVICE, standby_db=unknown)
    assert decide_failover(state, rpo_seconds=5).reason == (
        "the standby site's lag in seconds is unknown, so the loss cannot be bounded: pass "
        "--max-data-loss SECONDS to accept whatever it is"
    )
    accepted = decide_failover(state, rpo_seconds=5, max_data_loss_seconds=60)
    assert accepted.action == "failover" and "gives up an unknown amount of writes" in accepted.reason


def test_failover_takes_a_lag_known_in_seconds_only_and_a_position_known_by_neither_is_refused() -> None:
    # RDS's ReplicaLag (CloudWatch) gives seconds and no bytes when the endpoint does not answer.
    seconds_only = replace(STANDBY_DB, lag_bytes=None, lag_seconds=2.0)
    state = cluster(primary_db=DOWN_DB, primary_service=NO_SERVICE, standby_db=seconds_only)
    decision = decide_failover(state, rpo_seconds=5)
    assert decision.action == "failover" and decision.expected_loss_bytes is None
    assert decision.reason.endswith("promoting it gives up up to 2.0 s of writes, within 5.0 s")
    lagging = replace(seconds_only, lag_seconds=9.0)
    refused = decide_failover(
        replace(state, sites=(state.sites[0], replace(state.sites[1], database=lagging))), rpo_seconds=5
    )
    assert refused.reason.startswith("the standby site lags 9.0 s behind, beyond the RPO objective")
    neither = replace(STANDBY_DB, lag_bytes=None, lag_seconds=None)
    unknown = cluster(primary_db=DOWN_DB, primary_service=NO_SERVICE, standby_db=neither)
    assert decide_failover(unknown, rpo_seconds=5).reason == (
        "the standby site cannot take over: its replication position is unknown"
    )


def test_a_returning_old_primary_that_takes_writes_is_fenced() -> None:
    after = ClusterState(
        writer="standby",
        epoch=4,
        sites=(
            SiteState("primary", WRITER_DB, HEALTHY),
            SiteState("standby", replace(WRITER_DB, epoch=4), HEALTHY),
        ),
        traffic_to="standby",
    )
    decision = decide_returning_site(after)
    assert decision.action == "fence" and decision.to == "primary"
    assert decision.reason == (
        "the primary site's database takes writes although the standby site holds generation 4: fence "
        "it now, then rebuild it as a standby with `recovery failback`"
    )
    fenced = replace(
        after, sites=(SiteState("primary", replace(WRITER_DB, read_only=True), HEALTHY), after.sites[1])
    )
    assert decide_returning_site(fenced).reason == (
        "the primary site is an old primary of generation 3 and refuses writes; rebuild it as a standby "
        "with `recovery failback`"
    )


def after_failover(primary_db: DatabaseState) -> ClusterState:
    """The standby site took over at generation 4; the primary site is what `primary_db` says."""
    return ClusterState(
        writer="standby",
        epoch=4,
        sites=(
            SiteState("primary", primary_db, NO_SERVICE),
            SiteState("standby", replace(WRITER_DB, epoch=4), HEALTHY),
        ),
        traffic_to="standby",
    )


def test_failback_rebuilds_an_old_writer_after_carrying_its_writes() -> None:
    fenced_old = replace(WRITER_DB, read_only=True)
    decision = decide_failback(after_failover(fenced_old))
    assert decision.action == "failback" and decision.to == "primary"
    assert decision.reason == (
        "the primary site's database is an old writer (generation 3, the standby site holds 4): what it "
        "acknowledged after the split will be carried into the standby site, then it is rebuilt as a standby"
    )


def test_failback_needs_the_old_database_to_answer() -> None:
    assert decide_failback(after_failover(DOWN_DB)).reason == (
        "the primary site's database does not answer (connection refused): start it (it stays fenced) so "
        "the writes it acknowledged after the split can be carried over, then run the failback again"
    )


def test_failback_of_a_standby_of_the_current_generation_does_nothing() -> None:
    rebuilt = replace(STANDBY_DB, epoch=4)
    decision = decide_failback(after_failover(rebuilt))
    assert decision.action == "nothing"
    assert decision.reason == "the primary site is already a standby of generation 4; nothing to rebuild"


def test_failback_refuses_without_a_writer() -> None:
    state = after_failover(replace(WRITER_DB, read_only=True))
    lost = replace(state, sites=(state.sites[0], SiteState("standby", DOWN_DB, NO_SERVICE)))
    assert decide_failback(lost).reason == (
        "the standby site's database does not take writes (database: connection refused; service: "
        "connection refused); a failback needs a working writer to rebuild from"
    )


def test_a_read_only_old_primary_serving_the_order_service_is_fenced() -> None:
    serving = replace(WRITER_DB, read_only=True, service_sessions=2)
    decision = decide_returning_site(after_failover(serving))
    assert (decision.action, decision.to) == ("fence", "primary")
    assert decision.reason == (
        "the primary site's database serves 2 session(s) of the order service although the standby site "
        "holds generation 4: fence it now, then rebuild it as a standby with `recovery failback`"
    )
    # Locked out (no sessions), it is left fenced; a standby's reads are its service's, as built.
    locked_out = replace(serving, service_sessions=0)
    assert decide_returning_site(after_failover(locked_out)).action == "nothing"
    reading = replace(STANDBY_DB, epoch=4, service_sessions=3)
    assert (
        decide_returning_site(after_failover(reading)).reason
        == "the primary site is a standby of generation 4"
    )
