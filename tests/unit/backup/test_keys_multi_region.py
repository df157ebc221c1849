"""A backup's data key, wrapped in one region under a multi-region KMS key, is opened in the region the
controller works in (after a failover: the other one) with that region's copy of the key."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from recovery.backup.keys import KmsKeys, multi_region_key_in

PRIMARY_KEY = "arn:aws:kms:eu-central-1:123456789012:key/mrk-1234abcd"


def test_a_multi_region_key_is_named_in_the_region_asked_for() -> None:
    assert multi_region_key_in(PRIMARY_KEY, "eu-west-1") == (
        "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd"
    )


def test_anything_but_a_multi_region_key_arn_has_no_regional_copy() -> None:
    assert multi_region_key_in("arn:aws:kms:eu-central-1:123456789012:key/1234abcd", "eu-west-1") is None
    assert multi_region_key_in("alias/order-recovery", "eu-west-1") is None
    assert multi_region_key_in("mrk-1234abcd", "eu-west-1") is None


class _RecordingKms:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def decrypt(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"Plaintext": b"k" * 32, "KeyId": kwargs["KeyId"]}


class _Driver:
    def __init__(self, kms: _RecordingKms) -> None:
        self._kms = kms
        self.regions: list[str] = []

    def kms(self, region: str) -> _RecordingKms:
        self.regions.append(region)
        return self._kms

    @contextlib.contextmanager
    def translate(self, action: str, what: str) -> Iterator[None]:
        yield


def test_a_key_wrapped_in_the_lost_region_is_opened_with_the_copy_where_the_controller_works() -> None:
    kms = _RecordingKms()
    driver = _Driver(kms)
    keys = KmsKeys(driver, PRIMARY_KEY.replace("eu-central-1", "eu-west-1"), "eu-west-1")  # type: ignore[arg-type]
    opened = keys.unwrap(PRIMARY_KEY, b"wrapped", context={"backup": "b1"})
    assert driver.regions == ["eu-west-1"]
    assert kms.calls[0]["KeyId"] == "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd"
    # The data key keeps the ARN it was stored under: what the manifest says stays true.
    assert opened.key_id == PRIMARY_KEY
