"""The stacks and the watch agree: every alarm on the watch's namespace (both stacks, under Pulumi's mocks)
watches a metric and dimension values the watch publishes, for a writer at either site."""

from __future__ import annotations

from stack_harness import StackRun

from recovery.watch import metrics_contract as contract
from recovery.watch.cycle import BackupAge, Snapshot, samples
from recovery.watch.probes import DatabaseProbe, HttpProbe, SpoolProbe

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def _published(writer: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    other = "standby" if writer == "primary" else "primary"
    snapshot = Snapshot(
        target="shop",
        writer=writer,  # type: ignore[arg-type]
        http=(
            HttpProbe("front-door", writer, "http://shop/health", True, 5.0),  # type: ignore[arg-type]
            HttpProbe("service", "primary", "http://a/health", True, 5.0),
            HttpProbe("service", "standby", "http://b/health", True, 5.0),
        ),
        databases=(
            DatabaseProbe(writer, True, "primary", 10),  # type: ignore[arg-type]
            DatabaseProbe(other, True, "standby", 10),  # type: ignore[arg-type]
        ),
        spool=SpoolProbe(True),
        backups=tuple(
            BackupAge(domain, kind, 1.0, "x")  # type: ignore[arg-type]
            for domain, kind in (("orders", "realtime"), ("transactions", "realtime"), ("users", "daily"))
        ),
        lag_bytes=0,
        lag_seconds=0.0,
    )
    return {(s.metric.name, s.dimensions) for s in samples(snapshot)}


def test_every_watch_alarm_of_both_stacks_gets_data_from_the_watch(
    primary: StackRun, standby: StackRun
) -> None:
    published = _published("primary") | _published("standby")
    alarms = [
        a.inputs
        for run in (primary, standby)
        for a in run.of_type(ALARM)
        if a.inputs["namespace"] == contract.NAMESPACE
    ]
    assert alarms
    for inputs in alarms:
        key = (inputs["metricName"], tuple(sorted(inputs["dimensions"].items())))
        assert key in published, f"no sample feeds the alarm on {key}"


def test_with_the_primary_writing_the_standbys_own_alarms_get_data_too(standby: StackRun) -> None:
    """The standby stack's lag alarms and its probes' silence alarm are fed while it is a standby."""
    published = _published("primary")
    for a in standby.of_type(ALARM):
        inputs = a.inputs
        if inputs["namespace"] != contract.NAMESPACE:
            continue
        dims = inputs["dimensions"]
        if inputs["metricName"].startswith("ReplicationLag") or dims.get("Probe") in ("service", "database"):
            assert (inputs["metricName"], tuple(sorted(dims.items()))) in published
