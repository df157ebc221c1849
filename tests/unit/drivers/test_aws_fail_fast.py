"""An endpoint that could not be reached once in this process is asked with fewer attempts and a shorter
connect timeout by every client made after that (another catalog, another step of the same run), until
a call to it succeeds; an endpoint never seen failing keeps the full retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto_helpers import moto_server_at

from recovery.drivers.aws import FAST_FAIL_ATTEMPTS, FAST_FAIL_CONNECT_TIMEOUT, UNREACHABLE, AwsDriver
from recovery.errors import ExternalFailure
from recovery.targets.model import AwsEndpoint

ATTEMPTS = 3  # fewer than the default 5 keeps the first round of backoff short


@pytest.fixture(autouse=True)
def nothing_known_unreachable() -> Iterator[None]:
    UNREACHABLE.forget()
    yield
    UNREACHABLE.forget()


def _attempts_to_list_buckets(driver: AwsDriver) -> int:
    """How many HTTP attempts one ListBuckets made through the driver's current client; the call's
    outcome is ignored (a dead endpoint fails, a live one answers)."""
    client = driver.s3("eu-west-1")
    sent: list[object] = []

    def count(**_: Any) -> None:
        sent.append(None)

    client.meta.events.register("before-send", count)
    try:
        with driver.translate("list buckets", "s3"):
            client.list_buckets()
    except ExternalFailure:
        pass
    finally:
        client.meta.events.unregister("before-send", count)
    return len(sent)


def test_a_refusing_endpoint_fails_fast_for_every_later_client_until_it_answers(
    free_port: Callable[[], int],
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = AwsDriver(AwsEndpoint(endpoint_url=url), attempts=ATTEMPTS)
    assert url not in UNREACHABLE
    assert _attempts_to_list_buckets(first) == ATTEMPTS  # never seen failing: the full retries
    assert url in UNREACHABLE

    # A catalog read later in the same run builds its own driver: it asks the dead store briefly.
    later = AwsDriver(AwsEndpoint(endpoint_url=url), attempts=ATTEMPTS)
    fast = later.s3("eu-west-1")
    assert fast.meta.config.retries["total_max_attempts"] == FAST_FAIL_ATTEMPTS
    assert fast.meta.config.connect_timeout == FAST_FAIL_CONNECT_TIMEOUT
    assert _attempts_to_list_buckets(later) == FAST_FAIL_ATTEMPTS
    with pytest.raises(ExternalFailure) as caught, later.translate("list", "s3://b (remote copy)"):
        later.s3("eu-west-1").list_buckets()
    assert caught.value.message.startswith(f"cannot reach {url}/ to list on s3://b (remote copy)")

    # The store comes back: the first call answers, and the next clients retry fully again.
    with moto_server_at(port):
        assert _attempts_to_list_buckets(later) == 1
        assert url not in UNREACHABLE
        again = later.s3("eu-west-1")
        assert again is not fast
        assert again.meta.config.retries["total_max_attempts"] == ATTEMPTS


def test_an_error_answer_is_no_sign_of_an_unreachable_endpoint(free_port: Callable[[], int]) -> None:
    port = free_port()
    with moto_server_at(port) as url:
        driver = AwsDriver(AwsEndpoint(endpoint_url=url), attempts=ATTEMPTS)
        with pytest.raises(ExternalFailure), driver.translate("list", "s3://missing"):
            driver.s3("eu-west-1").list_objects_v2(Bucket="missing")  # NoSuchBucket: it answered
        assert url not in UNREACHABLE
        assert driver.s3("eu-west-1").meta.config.retries["total_max_attempts"] == ATTEMPTS
