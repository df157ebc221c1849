"""Where the watch's figures go: CloudWatch (what the stacks alarm on) and a Prometheus text endpoint.

Every figure is a `Sample` of a metric declared in `metrics_contract`, with that metric's dimensions,
so the names, units and dimensions CloudWatch receives are those the alarms were built from. Samples of
a site go to that site's region (each stack alarms in its own region). The Prometheus endpoint serves
the same samples, named in snake case (`BackupAgeSeconds` -> `order_recovery_backup_age_seconds`, the
dimensions as lower-case labels), on an address the caller chooses (loopback in the lab).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from recovery.drivers.aws import AwsDriver
from recovery.watch import metrics_contract as contract

PROMETHEUS_PREFIX = "order_recovery_"
# PutMetricData takes at most 1000 data points a request.
CLOUDWATCH_BATCH = 1000


@dataclass(frozen=True)
class Sample:
    metric: contract.Metric
    value: float
    dimensions: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        names = tuple(name for name, _ in self.dimensions)
        if set(names) != set(self.metric.dimensions):
            raise ValueError(f"{self.metric.name} takes {self.metric.dimensions}, not {names}")

    @property
    def site(self) -> str:
        return dict(self.dimensions)[contract.SITE]


def sample(metric: contract.Metric, value: float, **dimensions: str) -> Sample:
    return Sample(metric, float(value), tuple(sorted(dimensions.items())))


def metric_data(samples: Sequence[Sample], at: datetime) -> list[dict[str, Any]]:
    """PutMetricData's MetricData for `samples`. Pure."""
    return [
        {
            "MetricName": item.metric.name,
            "Dimensions": [{"Name": name, "Value": value} for name, value in item.dimensions],
            "Timestamp": at,
            "Value": item.value,
            "Unit": item.metric.unit,
        }
        for item in samples
    ]


class CloudWatchPublisher:
    """PutMetricData in the contract's namespace, one call per region and batch."""

    def __init__(self, driver: AwsDriver, regions: Mapping[str, str]) -> None:
        self._driver = driver
        self._regions = dict(regions)  # site -> region

    def publish(self, samples: Sequence[Sample], at: datetime) -> int:
        """Publish; returns the data points sent. A failure raises the driver's one-line error."""
        sent = 0
        for site, region in self._regions.items():
            data = metric_data([item for item in samples if item.site == site], at)
            client = self._driver.client("cloudwatch", region)
            for start in range(0, len(data), CLOUDWATCH_BATCH):
                batch = data[start : start + CLOUDWATCH_BATCH]
                with self._driver.translate("publish the watch's metrics", f"CloudWatch in {region}"):
                    client.put_metric_data(Namespace=contract.NAMESPACE, MetricData=batch)
                sent += len(batch)
        return sent


def prometheus_name(metric: contract.Metric) -> str:
    return PROMETHEUS_PREFIX + re.sub(r"(?<!^)(?=[A-Z])", "_", metric.name).lower()


class PrometheusEndpoint:
    """The latest samples as Prometheus text, served over HTTP (`/metrics`) from a thread."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._gauges = {
            metric.name: Gauge(
                prometheus_name(metric),
                metric.meaning,
                [name.lower() for name in metric.dimensions],
                registry=self.registry,
            )
            for metric in contract.METRICS
        }
        self._lock = threading.Lock()
        self._server: Any = None

    def update(self, samples: Sequence[Sample]) -> None:
        with self._lock:
            for item in samples:
                labels = {name.lower(): value for name, value in item.dimensions}
                self._gauges[item.metric.name].labels(**labels).set(item.value)

    def start(self, address: str, port: int) -> int:
        """Serve on address:port (port 0: any free one); returns the port."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
