"""The PostgreSQL driver's connection strings, tool lookup and failure messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from recovery.drivers.db import connect, conninfo, pg_tool
from recovery.errors import EnvironmentProblem, ExternalFailure
from recovery.targets.model import Database


def test_conninfo_names_the_passfile_never_a_password(tmp_path: Path) -> None:
    database = Database(
        address="127.0.0.11", port=45432, name="orders", user="postgres", passfile=tmp_path / "pgpass"
    )
    parts = conninfo_to_dict(conninfo(database, user="orders"))
    assert parts["host"] == "127.0.0.11" and parts["port"] == "45432"
    assert parts["dbname"] == "orders" and parts["user"] == "orders"
    assert parts["passfile"] == str(tmp_path / "pgpass")
    assert "password" not in parts
    assert conninfo_to_dict(conninfo(database, dbname="postgres"))["dbname"] == "postgres"


def test_pg_tool_comes_from_the_bin_dir(tmp_path: Path) -> None:
    (tmp_path / "pg_dump").write_text("#!/bin/sh\n")
    database = Database(address="127.0.0.1", bin_dir=tmp_path)
    assert pg_tool(database, "pg_dump") == tmp_path / "pg_dump"
    with pytest.raises(EnvironmentProblem, match="pg_restore is missing"):
        pg_tool(database, "pg_restore")


def test_an_unreachable_server_is_an_external_failure_naming_the_endpoint(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{port}:*:postgres:do-not-print-me\n")
    pgpass.chmod(0o600)
    database = Database(address="127.0.0.1", port=port, passfile=pgpass)
    with pytest.raises(ExternalFailure) as info:
        connect(database, connect_timeout=2)
    assert f"127.0.0.1:{port} as postgres" in str(info.value)
    assert "do-not-print-me" not in str(info.value)
