"""Database credentials read from Secrets Manager at run time, handed to libpq without leaking them.

RDS keeps the master password in a secret it manages (`manage_master_user_password`): a JSON document
with `username` and `password`. The toolkit reads it when a run needs it, keeps the password in a
`SecretStr` (its repr is masked), tells the redactor the value so no journal, report or error can carry
it, and gives it to libpq only through a passfile that lives for the run: mode 0600 in a 0700 directory
of its own, removed on the way out, also when the run fails (`run_time_passfile`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from recovery.drivers.aws import AwsDriver, aws_call
from recovery.engine.redact import remember_secret
from recovery.errors import ConfigError


@dataclass(frozen=True)
class DatabaseCredentials:
    username: str
    password: SecretStr


def read_credentials(aws: AwsDriver, region: str, secret_arn: str) -> DatabaseCredentials:
    """The username and password in an RDS-managed (or same-shaped) secret."""
    client = aws.client("secretsmanager", region)
    found = aws_call(
        lambda: client.get_secret_value(SecretId=secret_arn),
        "read the database secret",
        f"secret {secret_arn}",
    )
    text = str((found or {}).get("SecretString") or "")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    # Never quote the secret's text: only say what shape was expected.
    if not isinstance(document, dict) or not document.get("username") or not document.get("password"):
        raise ConfigError(
            f"secret {secret_arn} is not a JSON object with username and password; point the target at the "
            "database's RDS-managed master secret"
        )
    password = str(document["password"])
    remember_secret(password)
    return DatabaseCredentials(username=str(document["username"]), password=SecretStr(password))


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_lines(credentials: DatabaseCredentials, endpoints: Sequence[tuple[str, int]]) -> str:
    """pgpass lines giving the credentials for every database on each endpoint. Pure."""
    user = _pgpass_field(credentials.username)
    secret = _pgpass_field(credentials.password.get_secret_value())
    return "".join(f"{_pgpass_field(host)}:{port}:*:{user}:{secret}\n" for host, port in endpoints)


@contextlib.contextmanager
def run_time_passfile(
    credentials: DatabaseCredentials, endpoints: Sequence[tuple[str, int]]
) -> Iterator[Path]:
    """A passfile holding the credentials for `endpoints` while the block runs; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="order-recovery-pass-"))  # mkdtemp: mode 0700, ours alone
    try:
        path = folder / "pgpass"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(pgpass_lines(credentials, endpoints))
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
