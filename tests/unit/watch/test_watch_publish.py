"""Publishing the watch's figures: CloudWatch (moto in process) in the contract's namespace, names, units
and dimensions, each site's to its region; and the Prometheus text endpoint."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from moto import mock_aws

from recovery.drivers.aws import AwsDriver
from recovery.errors import RecoveryError
from recovery.targets.model import AwsEndpoint
from recovery.watch import metrics_contract as contract
from recovery.watch.publish import CloudWatchPublisher, PrometheusEndpoint, prometheus_name, sample

REGIONS = {"primary": "eu-central-1", "standby": "eu-west-1"}
FIGURES = [
    sample(contract.BACKUP_AGE, 42, Site="primary", Domain="orders", Kind="realtime"),
    sample(contract.BACKUP_AGE_OLDEST_DOMAIN, 42, Site="primary", Kind="realtime"),
    sample(contract.REPLICATION_LAG_BYTES, 0, Site="standby"),
    sample(contract.PROBE_FAILURES, 1, Site="standby", Probe="database"),
]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsDriver]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield AwsDriver()


def _metrics(aws: AwsDriver, region: str) -> dict[str, list[dict[str, str]]]:
    listed = aws.client("cloudwatch", region).list_metrics(Namespace=contract.NAMESPACE)["Metrics"]
    return {m["MetricName"]: sorted(m["Dimensions"], key=lambda d: d["Name"]) for m in listed}


def test_each_sites_figures_reach_its_regions_cloudwatch_under_the_contracts_names(aws: AwsDriver) -> None:
    sent = CloudWatchPublisher(aws, REGIONS).publish(FIGURES, datetime.now(UTC))
    assert sent == 4
    assert _metrics(aws, "eu-central-1") == {
        "BackupAgeSeconds": [
            {"Name": "Domain", "Value": "orders"},
            {"Name": "Kind", "Value": "realtime"},
            {"Name": "Site", "Value": "primary"},
        ],
        "BackupAgeSecondsOldestDomain": [
            {"Name": "Kind", "Value": "realtime"},
            {"Name": "Site", "Value": "primary"},
        ],
    }
    assert set(_metrics(aws, "eu-west-1")) == {"ReplicationLagBytes", "ProbeFailures"}
    stats = aws.client("cloudwatch", "eu-central-1").get_metric_statistics(
        Namespace=contract.NAMESPACE,
        MetricName="BackupAgeSeconds",
        Dimensions=[
            {"Name": "Site", "Value": "primary"},
            {"Name": "Domain", "Value": "orders"},
            {"Name": "Kind", "Value": "realtime"},
        ],
        StartTime=datetime(2026, 1, 1, tzinfo=UTC),
        EndTime=datetime(2030, 1, 1, tzinfo=UTC),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [(p["Maximum"], p["Unit"]) for p in stats] == [(42.0, "Seconds")]


def test_a_sample_refuses_dimensions_the_contract_does_not_declare() -> None:
    with pytest.raises(ValueError, match="BackupAgeSeconds takes"):
        sample(contract.BACKUP_AGE, 1, Site="primary")


def test_an_unreachable_endpoint_is_one_toolkit_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    driver = AwsDriver(AwsEndpoint(endpoint_url="http://127.0.0.1:9"), attempts=1, connect_timeout=1)
    with pytest.raises(RecoveryError, match="publish the watch's metrics"):
        CloudWatchPublisher(driver, {"primary": "eu-central-1"}).publish(FIGURES[:1], datetime.now(UTC))


def test_the_prometheus_endpoint_serves_the_latest_samples_as_text() -> None:
    endpoint = PrometheusEndpoint()
    endpoint.update(FIGURES)
    endpoint.update([sample(contract.REPLICATION_LAG_BYTES, 512, Site="standby")])
    port = endpoint.start("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    finally:
        endpoint.stop()
    assert 'order_recovery_backup_age_seconds{domain="orders",kind="realtime",site="primary"} 42.0' in text
    assert 'order_recovery_replication_lag_bytes{site="standby"} 512.0' in text
    assert 'order_recovery_probe_failures{probe="database",site="standby"} 1.0' in text
    assert (
        prometheus_name(contract.BACKUP_AGE_OLDEST_DOMAIN)
        == "order_recovery_backup_age_seconds_oldest_domain"
    )
