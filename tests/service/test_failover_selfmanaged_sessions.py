"""The self-managed platform counts the order service's sessions on a writer (real PostgreSQL): what the
watch reads to tell a returning old primary that serves the service although it refuses writes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from recovery.failover.selfmanaged import SelfManaged
from recovery.targets.model import Database, Host, Site

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres


def test_the_service_roles_sessions_on_a_writer_are_counted(postgres: Postgres, tmp_path: Path) -> None:
    with postgres.seeded_database("sessions", orders=5) as name:
        database = Database(address="127.0.0.1", port=postgres.port, name=name, passfile=postgres.passfile)
        host = Host(name="app", address="127.0.0.1", ssh_user="nobody", base_dir=tmp_path, service_port=9)
        site = Site(name="primary", region="us-east-1", hosts=(host,), database=database)
        platform = SelfManaged((site,))
        before = platform.observe(site, None)
        assert before.reachable and before.in_recovery is False and before.service_sessions is not None
        with (
            psycopg.connect(postgres.conninfo(name, user="orders")),
            psycopg.connect(postgres.conninfo(name, user="orders")),
        ):
            during = platform.observe(site, None)
        assert during.service_sessions == before.service_sessions + 2
        assert platform.service_role == "orders"
