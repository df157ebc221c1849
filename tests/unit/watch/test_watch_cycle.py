"""One cycle, pure: readings with the command that fixes each, samples in the contract's names, and the
messages the team gets (each once, debounced)."""

from __future__ import annotations

from recovery.targets.model import Objectives
from recovery.watch import metrics_contract as contract
from recovery.watch.cycle import BackupAge, Memory, Notice, Snapshot, notices, readings, samples
from recovery.watch.decide import Observations, Policy, ProbeStreak, decide
from recovery.watch.probes import DatabaseProbe, HttpProbe, SpoolProbe

AT = "2026-12-07T00:00:00+00:00"
FRONT = HttpProbe("front-door", "primary", "http://shop/health", True, 12.0)
PRIMARY = DatabaseProbe("primary", True, "primary", 5000)
STANDBY = DatabaseProbe("standby", True, "standby", 5000)
STALE_ORDERS = BackupAge("orders", "realtime", 300, "20261207-orders-realtime")


def _snapshot(**changes: object) -> Snapshot:
    base: dict[str, object] = {
        "target": "shop",
        "writer": "primary",
        "http": (FRONT,),
        "databases": (PRIMARY, STANDBY),
        "spool": SpoolProbe(True, 1, 4.0),
        "backups": (BackupAge("users", "daily", 3600, "20261207-users-daily"),),
        "lag_bytes": 0,
        "lag_seconds": 0.0,
    }
    return Snapshot(**(base | changes))  # type: ignore[arg-type]


def _run(snapshot: Snapshot, memory: Memory | None = None, cycles: int = 3) -> tuple[list[Notice], Memory]:
    every = readings(snapshot, Objectives())
    decision = decide(Observations("shop", ProbeStreak(), every), Policy())
    return notices(decision, every, memory or Memory(), at=AT, cycles_to_alarm=cycles, failover_command="f")


def test_a_stale_realtime_backup_names_its_domain_and_the_shipping_command() -> None:
    found = readings(_snapshot(backups=(STALE_ORDERS,)), Objectives())
    orders = next(r for r in found if r.check == "backup age orders/realtime")
    assert (orders.value, orders.threshold, orders.breached) == (300, 120, True)
    assert orders.command == "recovery backup ship --target shop"


def test_a_failing_archiver_points_at_setting_archiving_up_and_a_missing_backup_at_taking_one() -> None:
    failing = DatabaseProbe("primary", True, "primary", 5000, archiver_failing=True)
    found = readings(_snapshot(databases=(failing, STANDBY), backups=(STALE_ORDERS,)), Objectives())
    assert found[0].command == "recovery backup setup-archiving --target shop --yes"
    missing = BackupAge("transactions", "realtime", 30, None)
    found = readings(_snapshot(backups=(missing,)), Objectives())
    assert found[0].command == "recovery backup realtime --target shop"
    daily = readings(_snapshot(backups=(BackupAge("users", "daily", 10**6, None),)), Objectives())
    assert daily[0].command == "recovery backup run --domain users --target shop"


def test_an_alarm_is_sent_after_the_debounce_once_and_cleared_once() -> None:
    stale = _snapshot(backups=(STALE_ORDERS,))
    sent, memory = _run(stale)
    assert sent == []
    sent, memory = _run(stale, memory)
    assert sent == []
    sent, memory = _run(stale, memory)
    assert sent == [
        Notice(
            "team/alarm",
            {
                "check": "backup age orders/realtime",
                "observed": "300 s",
                "threshold": "120 s",
                "at": AT,
                "action": "it keeps watching; fixing this needs the command below",
                "command": "`recovery backup ship --target shop`",
            },
            "backup age orders/realtime",
        )
    ]
    sent, memory = _run(stale, memory)
    assert sent == [], "told once"
    fresh = _snapshot(backups=(BackupAge("orders", "realtime", 3, "20261207-orders-realtime"),))
    sent, memory = _run(fresh, memory)
    assert [(n.event, n.fields["observed"]) for n in sent] == [("team/alarm-cleared", "3 s")]
    assert memory.raised == frozenset()


def test_one_odd_sample_between_good_ones_never_alarms() -> None:
    memory = Memory()
    for snapshot in (_snapshot(backups=(STALE_ORDERS,)), _snapshot(), _snapshot(backups=(STALE_ORDERS,))):
        sent, memory = _run(snapshot, memory)
        assert sent == []


def test_a_page_is_told_once_per_outage_with_the_command_a_person_runs() -> None:
    every = readings(_snapshot(), Objectives())
    down = decide(Observations("shop", ProbeStreak(3, 2.5), every), Policy())
    sent, memory = notices(down, every, Memory(), at=AT, cycles_to_alarm=3, failover_command="f")
    assert sent == [
        Notice(
            "team/watch-page",
            {
                "message": "the writer's database failed 3 probes in a row over 2.5 s; automatic failover is "
                "off: a person decides, e.g. `recovery failover --target shop`",
                "action": "run `recovery failover --target shop`",
                "at": AT,
            },
            "writer database: page",
        )
    ]
    longer = decide(Observations("shop", ProbeStreak(9, 8.5), every), Policy())
    assert notices(longer, every, memory, at=AT, cycles_to_alarm=3, failover_command="f")[0] == []
    well = decide(Observations("shop", ProbeStreak(), every), Policy())
    _, memory = notices(well, every, memory, at=AT, cycles_to_alarm=3, failover_command="f")
    again, _ = notices(down, every, memory, at=AT, cycles_to_alarm=3, failover_command="f")
    assert [n.event for n in again] == ["team/watch-page"], "a new outage pages again"


def test_automatic_failover_is_told_with_the_command_the_watch_runs() -> None:
    every = readings(_snapshot(), Objectives())
    decision = decide(Observations("shop", ProbeStreak(3, 2.5), every), Policy(automatic_failover=True))
    sent, _ = notices(
        decision,
        every,
        Memory(),
        at=AT,
        cycles_to_alarm=3,
        failover_command="recovery failover --yes --target shop",
    )
    assert [(n.event, n.fields["command"]) for n in sent] == [
        ("team/watch-failover", "recovery failover --yes --target shop")
    ]


def test_samples_use_the_contracts_names_and_dimensions() -> None:
    snapshot = _snapshot(
        backups=(STALE_ORDERS, BackupAge("transactions", "realtime", 20, "x")),
        lag_bytes=128,
        lag_seconds=0.4,
        http=(FRONT, HttpProbe("service", "standby", "http://s/health", False, 3.0, "refused")),
    )
    found = {(s.metric.name, s.dimensions): s.value for s in samples(snapshot)}
    assert (
        found[("BackupAgeSeconds", (("Domain", "orders"), ("Kind", "realtime"), ("Site", "primary")))] == 300
    )
    assert found[("BackupAgeSecondsOldestDomain", (("Kind", "realtime"), ("Site", "primary")))] == 300
    assert found[("ReplicationLagBytes", (("Site", "standby"),))] == 128
    assert found[("ReplicationLagSeconds", (("Site", "standby"),))] == 0.4
    assert found[("WalSpoolOldestAgeSeconds", (("Site", "primary"),))] == 4.0
    assert found[("ProbeFailures", (("Probe", "service"), ("Site", "standby")))] == 1
    assert found[("ProbeFailures", (("Probe", "front-door"), ("Site", "primary")))] == 0
    assert found[("ProbeFailures", (("Probe", "database"), ("Site", "primary")))] == 0
    assert {name for name, _ in found} <= {metric.name for metric in contract.METRICS}
