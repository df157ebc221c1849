"""Data keys: the KMS envelope (moto's KMS), and the offline keyring's file permissions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from recovery.backup.keys import Keyring, KmsKeys, backup_context, key_provider, write_keyring
from recovery.drivers.aws import AwsDriver
from recovery.errors import KeyUnavailable
from recovery.targets.model import KeySource

REGION = "eu-west-1"
CTX = backup_context("20261125-orders-daily", "orders", "daily")


def make_kms_key(aws: AwsDriver, alias: str = "alias/order-backups") -> str:
    kms = aws.kms(REGION)
    key_id = kms.create_key(Description="backup data keys")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def test_kms_envelope_makes_fresh_keys_and_opens_them_again(aws: AwsDriver) -> None:
    make_kms_key(aws)
    keys = KmsKeys(aws, "alias/order-backups", REGION)
    first, second = keys.new_data_key(context=CTX), keys.new_data_key(context=CTX)
    assert len(first.plaintext) == 32 and first.plaintext != second.plaintext
    assert first.wrapped != first.plaintext and first.plaintext not in first.wrapped
    assert first.key_id.startswith("arn:aws:kms:eu-west-1:")  # the ARN, not the alias
    opened = keys.unwrap(first.key_id, first.wrapped, context=CTX)
    assert opened.plaintext == first.plaintext
    assert repr(first.plaintext) not in repr(first) and first.plaintext.hex() not in repr(first)


def test_kms_refuses_a_wrapped_key_under_another_key(aws: AwsDriver) -> None:
    make_kms_key(aws)
    other = make_kms_key(aws, "alias/other")
    keys = KmsKeys(aws, "alias/order-backups", REGION)
    data_key = keys.new_data_key(context=CTX)
    with pytest.raises(KeyUnavailable, match="cannot decrypt the data key with KMS key"):
        keys.unwrap(other, data_key.wrapped, context=CTX)


def test_kms_unknown_key_is_key_unavailable_with_one_line(aws: AwsDriver) -> None:
    keys = KmsKeys(aws, "alias/does-not-exist", REGION)
    with pytest.raises(KeyUnavailable) as caught:
        keys.new_data_key(context=CTX)
    assert "NotFoundException" in caught.value.message and "\n" not in caught.value.message


def test_key_provider_follows_the_target_key_source(aws: AwsDriver, tmp_path: Path) -> None:
    make_kms_key(aws)
    kms = key_provider(KeySource(kind="kms", kms_key_id="alias/order-backups", region=REGION), aws)
    assert kms.source == "kms"
    path = tmp_path / "keyring.json"
    write_keyring(path, {"kek-1": os.urandom(32)}, active="kek-1")
    ring = key_provider(KeySource(kind="keyring", keyring=path), aws)
    data_key = ring.new_data_key(context=CTX)
    assert ring.unwrap("kek-1", data_key.wrapped, context=CTX).plaintext == data_key.plaintext


def test_keyring_file_is_created_0600_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    write_keyring(path, {"kek-1": os.urandom(32)}, active="kek-1")
    assert path.stat().st_mode & 0o777 == 0o600
    ring = Keyring.load(path)
    data_key = ring.new_data_key(context=CTX)
    assert ring.unwrap("kek-1", data_key.wrapped, context=CTX).plaintext == data_key.plaintext


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700, 0o400])
def test_keyring_refused_unless_mode_0600(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keyring.json"
    secret = os.urandom(32)
    write_keyring(path, {"kek-1": secret}, active="kek-1")
    path.chmod(mode)
    with pytest.raises(KeyUnavailable, match=f"has mode {mode:04o}; run `chmod 600") as caught:
        Keyring.load(path)
    assert secret.hex() not in caught.value.message


def test_malformed_keyring_is_refused_without_showing_key_material(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"format": 1, "active": "kek-1", "keys": {"kek-1": "c2hvcnQta2V5LW1hdGVyaWFs"}}, handle)
    with pytest.raises(KeyUnavailable, match="key 'kek-1' is not base64 of 32 bytes") as caught:
        Keyring.load(path)
    assert "c2hvcnQta2V5" not in caught.value.message
    with pytest.raises(KeyUnavailable, match="does not exist"):
        Keyring.load(tmp_path / "absent.json")


def test_keyring_without_the_id_refuses_to_unwrap(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    write_keyring(path, {"kek-1": os.urandom(32)}, active="kek-1")
    ring = Keyring.load(path)
    with pytest.raises(KeyUnavailable, match="has no key 'kek-9'"):
        ring.unwrap("kek-9", b"x" * 40, context=CTX)
    assert "kek-1" in repr(ring) and os.fsdecode(path) in repr(ring)
