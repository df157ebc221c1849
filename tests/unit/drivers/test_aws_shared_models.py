"""Every AWS session of a process reads the service models through one loader: a second driver's S3
client must not parse S3's model again (14 MiB resident each time before). Measured in a fresh
interpreter, so the test process's own clients and allocator state do not count."""

from __future__ import annotations

import subprocess
import sys

# Builds an S3 client through N independent drivers (as a run's lock, notifications and stores each
# do) and prints the KiB each added to the resident size, then the loader's search path.
_PROBE = """
import sys
from pathlib import Path
import recovery.drivers.aws as aws
from recovery.drivers.aws import AwsDriver
from recovery.targets.model import AwsEndpoint

def resident():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4
endpoint = AwsEndpoint(endpoint_url="http://127.0.0.1:9")
costs = []
for region in ("us-east-1", "eu-west-1", "us-east-1"):
    before = resident()
    AwsDriver(endpoint).s3(region)
    costs.append(resident() - before)
print(" ".join(str(cost) for cost in costs))
print("|".join(aws._models.search_paths))
"""


def _probe() -> tuple[list[int], list[str]]:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    costs, paths = done.stdout.strip().splitlines()
    return [int(cost) for cost in costs.split()], paths.split("|")


def test_later_drivers_reuse_the_parsed_service_model() -> None:
    costs, _ = _probe()
    assert costs[0] > 4 * 1024  # the first S3 client parses the model (about 7 MiB; 14 before aws_models)
    assert max(costs[1:]) < 4 * 1024, costs  # the next drivers' clients reuse it


def test_the_shared_loader_search_path_does_not_grow_with_sessions() -> None:
    _, paths = _probe()
    assert len(paths) == len(set(paths)), paths
