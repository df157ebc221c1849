"""The RDS failover platform's SQL half on real PostgreSQL standing in for the RDS endpoint, its API half
on moto in process: the fence confirmed by both means, and opening for writes undoing both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from rds_sites import PRIMARY_ID, PRIMARY_REGION, build_sites, moto_in_process
from target_files import unit_target_doc

from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import RdsDriver
from recovery.failover.rds import RdsPlatform
from recovery.targets.model import Target

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsDriver]:
    with moto_in_process(monkeypatch) as driver:
        yield driver


def _target(root: Path, postgres: Postgres, name: str) -> Target:
    doc = unit_target_doc(root, "shop")
    doc["kind"] = "aws"
    for site, region, identifier in (
        ("primary", PRIMARY_REGION, PRIMARY_ID),
        ("standby", "us-west-2", "order-recovery-standby"),
    ):
        doc[site]["region"] = region
        doc[site]["database"] = {
            "kind": "rds",
            "address": "127.0.0.1",
            "port": postgres.port,
            "name": name,
            "passfile": str(postgres.passfile),
            "rds_instance_id": identifier,
        }
    return Target.model_validate(doc)


def test_the_fence_is_confirmed_by_groups_and_sql_and_opening_undoes_both(
    aws: AwsDriver, postgres: Postgres, tmp_path: Path
) -> None:
    sites = build_sites(aws)
    with postgres.seeded_database("rdsfence", orders=3) as name:
        target = _target(tmp_path, postgres, name)
        platform = RdsPlatform(target, aws)
        try:
            with psycopg.connect(postgres.conninfo(name, user="orders")) as session:
                means = platform.fence(target.primary)
                assert [(m.means, m.confirmed) for m in means] == [
                    ("security-group", True),
                    ("database", True),
                ]
                assert "role orders may not log in: True" in means[1].detail
                with pytest.raises(psycopg.OperationalError):
                    session.execute("SELECT 1")  # its session was ended
            with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
                psycopg.connect(postgres.conninfo(name, user="orders"))
            assert platform.fence(target.primary)[1].confirmed  # a rerun confirms again
            fenced = platform.observe(target.primary, None)
            assert fenced.reachable and fenced.read_only is True  # by the groups, as RDS reports them
            platform.open_for_writes(target.primary, 4)
        finally:
            postgres.execute("postgres", "ALTER ROLE orders LOGIN")
            postgres.execute("postgres", "ALTER ROLE orders RESET default_transaction_read_only")
        with psycopg.connect(postgres.conninfo(name, user="orders")) as conn:
            row = conn.execute("SELECT current_setting('default_transaction_read_only')").fetchone()
            assert row == ("off",)
        opened = platform.observe(target.primary, None)
        assert opened.writable and opened.epoch == 4
        # No replica any more in moto: promotion is a no-op whose position is read from PostgreSQL.
        promotion = platform.promote(target.primary)
        assert promotion.already and "/" in promotion.lsn and promotion.timeline >= 1
        groups = RdsDriver(aws, PRIMARY_REGION).describe(PRIMARY_ID).security_groups
        assert groups == (sites.primary.security_group,)
