"""A local AWS endpoint (the lab's moto server) works on a machine with no AWS configuration at all."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto_helpers import moto_server_at
from worker_ports import ports

from recovery.drivers.aws import AwsDriver, is_local_endpoint
from recovery.targets.model import AwsEndpoint

UNIT_PORTS = ports(25900, 26000)  # the unit tests' single ports (tests/conftest.py), per xdist worker


def _free_port() -> int:
    for port in UNIT_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {UNIT_PORTS.start}-{UNIT_PORTS.stop - 1}")


@pytest.fixture
def moto_url() -> Iterator[str]:
    with moto_server_at(_free_port()) as url:
        yield url


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:27001", True),
        ("http://127.0.0.12:1", True),
        ("http://localhost:4566", True),
        ("https://s3.eu-west-1.amazonaws.com", False),
        ("http://10.0.0.5:4566", False),
        (None, False),
    ],
)
def test_only_loopback_endpoints_count_as_local(url: str | None, local: bool) -> None:
    assert is_local_endpoint(url) is local


def test_a_local_endpoint_needs_no_configured_credentials(no_aws_configuration: None, moto_url: str) -> None:
    driver = AwsDriver(AwsEndpoint(endpoint_url=moto_url))
    s3 = driver.s3("eu-west-1")
    with driver.translate("create a bucket", "s3://probe"):
        s3.create_bucket(Bucket="probe", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["probe"]


def test_configured_credentials_win_over_the_local_placeholder(
    no_aws_configuration: None, monkeypatch: pytest.MonkeyPatch, moto_url: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    driver = AwsDriver(AwsEndpoint(endpoint_url=moto_url))
    driver.s3("eu-west-1")
    credentials = driver._session.get_credentials() if driver._session else None
    assert credentials is not None and credentials.access_key == "AKIAEXAMPLEKEYID0000"
