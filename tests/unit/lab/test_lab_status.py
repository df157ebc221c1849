"""The pure judgement of a lab status snapshot, and the stop order of `lab down`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from recovery.lab.state import ProcessRecord
from recovery.lab.status import (
    DatabaseStatus,
    FrontDoorStatus,
    HostStatus,
    LabStatus,
    MotoStatus,
    WatchStatus,
    problems,
)
from recovery.lab.teardown import stop_order


def _healthy() -> LabStatus:
    return LabStatus(
        lab_dir="/lab",
        release="v1",
        moto=MotoStatus("http://127.0.0.1:45001", True),
        databases=(
            DatabaseStatus("primary", "127.0.0.11", 45432, True, "primary", "primary"),
            DatabaseStatus(
                "standby",
                "127.0.0.12",
                45432,
                True,
                "standby",
                "standby",
                lag_bytes=0,
                lag_seconds=0.0,
                streaming=True,
            ),
        ),
        hosts=(
            HostStatus("primary-app", "primary", "127.0.0.11", 45022, True, True, True, "v1"),
            HostStatus("standby-app", "standby", "127.0.0.12", 45022, True, True, True, "v1"),
        ),
        active_site="primary",
        records={"PRIMARY": "127.0.0.11", "SECONDARY": "127.0.0.12"},
        front_door=FrontDoorStatus("http://127.0.0.1:45000", True, "127.0.0.11:45080", "primary"),
        replication_lag_max_seconds=5,
    )


def test_a_healthy_lab_has_no_problems() -> None:
    doc = _healthy().to_dict()
    assert doc["healthy"] is True and doc["problems"] == []


def test_each_broken_part_is_named() -> None:
    status = _healthy()
    lagging = replace(status.databases[1], lag_seconds=9.5)
    broken = replace(
        status,
        moto=MotoStatus("http://127.0.0.1:45001", False),
        databases=(replace(status.databases[0], role="standby"), lagging),
        hosts=(
            replace(status.hosts[0], ssh_reachable=False),
            replace(status.hosts[1], service_healthy=False),
        ),
    )
    found = problems(broken)
    assert found == [
        "moto server at http://127.0.0.1:45001 is not reachable",
        "primary database is standby, expected primary",
        "standby database lags 9.5 s (limit 5 s)",
        "host primary-app is not reachable over SSH",
        "order service on standby-app reports unhealthy",
    ]
    assert broken.to_dict()["healthy"] is False


def test_a_watch_lab_up_started_that_is_gone_is_a_problem_and_one_never_started_is_not() -> None:
    assert problems(_healthy()) == []  # lab up --no-watch
    running = WatchStatus(
        True, True, 4242, "nothing: every check is within its threshold", "http://x/metrics"
    )
    assert problems(replace(_healthy(), watch=running)) == []
    gone = replace(running, running=False)
    assert problems(replace(_healthy(), watch=gone)) == [
        "the watch (pid 4242) is not running; `recovery lab up` starts it again"
    ]


def test_front_door_must_follow_the_active_site() -> None:
    status = replace(_healthy(), active_site="standby", records={"PRIMARY": "127.0.0.12"}, writer="standby")
    assert problems(status) == ["front door forwards to 127.0.0.11:45080, not to the active site"]


def test_the_traffic_record_must_point_at_the_writer_of_the_site_record() -> None:
    status = replace(_healthy(), writer="standby")
    assert problems(status) == [
        "the PRIMARY failover record points at the primary site, but the standby site holds the writable "
        "database"
    ]


def test_down_stops_the_watch_first_then_clients_and_the_standby_before_the_primary() -> None:
    def rec(name: str, kind: str) -> ProcessRecord:
        return ProcessRecord(name=name, kind=kind, pid=1, data_dir=Path("/d"))  # type: ignore[arg-type]

    records = [
        rec("moto", "moto"),
        rec("postgres-primary", "postgres"),
        rec("postgres-standby", "postgres"),
        rec("sshd-primary", "sshd"),
        rec("frontdoor", "frontdoor"),
        rec("service-standby", "service"),
        rec("watch", "watch"),
    ]
    assert [r.name for r in stop_order(records)] == [
        "watch",
        "frontdoor",
        "service-standby",
        "sshd-primary",
        "postgres-standby",
        "postgres-primary",
        "moto",
    ]
