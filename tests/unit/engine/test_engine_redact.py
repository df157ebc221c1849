"""Redaction: secret-named keys and secrets inside text are replaced; everything else is kept."""

from __future__ import annotations

from typing import Any

import pytest

from recovery.engine.redact import REDACTED, contains_redaction, is_secret_key, redact, redact_text


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "db_password",
        "PGPASSWORD",
        "passphrase",
        "client_secret",
        "secretAccessKey",
        "aws_secret_access_key",
        "session_token",
        "api-token",
        "private_key",
        "privateKey",
        "data_key",
        "key_material",
        "api_key",
        "credentials",
        "key",
    ],
)
def test_secret_key_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "kms_key_id",
        "ssh_key",
        "passfile",
        "pgpass",
        "keyring",
        "version",
        "bypass_cache",
        "monkey",
        "keys",
    ],
)
def test_ordinary_key_names(name: str) -> None:
    assert not is_secret_key(name)


def test_nested_values_are_redacted_and_the_rest_kept() -> None:
    value: dict[str, Any] = {
        "version": "v2",
        "db": {"host": "127.0.0.1", "password": "pw1", "passfile": "/lab/pgpass"},
        "stores": [{"bucket": "b", "secretAccessKey": "AKIAxyz"}, ("x", {"token": "t0"})],
        "kms_key_id": "alias/backup",
        "password_hint": None,
    }
    assert redact(value) == {
        "version": "v2",
        "db": {"host": "127.0.0.1", "password": REDACTED, "passfile": "/lab/pgpass"},
        "stores": [{"bucket": "b", "secretAccessKey": REDACTED}, ["x", {"token": REDACTED}]],
        "kms_key_id": "alias/backup",
        "password_hint": None,
    }
    assert value["db"]["password"] == "pw1"  # the input is not modified


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://orders:s3cr3t@127.0.0.1:5432/orders", "s3cr3t"),
        ("host=db port=5432 user=orders password=s3cr3t dbname=orders", "s3cr3t"),
        ("host=db password='s3 cr3t' dbname=orders", "s3 cr3t"),
        ("Authorization: Bearer eyJhbGciOi.s3cr3t", "eyJhbGciOi.s3cr3t"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXk",
        ),
    ],
)
def test_secrets_inside_text_are_cut(text: str, secret: str) -> None:
    cleaned = redact_text(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_text_without_secrets_is_unchanged() -> None:
    text = "restored orders from 20261125-orders-daily.bak to 127.0.0.1:47432 in 3.2s (key alias/backup)"
    assert redact_text(text) == text
    assert redact({"message": text}) == {"message": text}


def test_contains_redaction_finds_replaced_values() -> None:
    assert contains_redaction(redact({"a": [{"token": "x"}]}))
    assert not contains_redaction(redact({"a": [{"name": "x"}]}))


@pytest.mark.parametrize(
    "text",
    [
        "connect failed with {'password': 'hunter2', 'user': 'orders'}",
        '{"user": "orders", "password": "hunter2"}',
        '{"password":"hunter2"}',
        "PGPASSWORD=hunter2 pg_dump -h db orders",
        "env: AWS_SECRET_ACCESS_KEY=hunter2 AWS_ACCESS_KEY_ID=AKIAEXAMPLE",
        "aws_secret_access_key: hunter2",
        "pg_dump --password hunter2 --host db",
        "run --db-password=hunter2",
        "127.0.0.1:5432:orders:orders:hunter2",
        "lines:\n*:*:*:postgres:hunter2\n",
        "DB_PASSWORD='hunter 2'",
    ],
)
def test_secrets_under_any_secret_name_are_cut(text: str) -> None:
    cleaned = redact_text(text)
    assert "hunter" not in cleaned
    assert REDACTED in cleaned


def test_the_text_around_a_cut_secret_is_kept() -> None:
    assert redact_text("PGPASSWORD=hunter2 pg_dump -h db") == f"PGPASSWORD={REDACTED} pg_dump -h db"
    cleaned = redact_text("{'password': 'x', 'user': 'orders'}")
    assert cleaned == f"{{'password': {REDACTED}, 'user': 'orders'}}"
    assert redact_text('password authentication failed for user "orders"') == (
        'password authentication failed for user "orders"'
    )
