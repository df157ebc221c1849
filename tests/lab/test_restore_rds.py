"""The restore runbook end to end with the RDS driver: the lab's database declared `kind: rds`, its RDS
instance in the lab's moto server, and the scratch instance a point-in-time recovery makes answered by a
real PostgreSQL: the lab's standby, its replay paused before a change to live, holds live as it was then.

The runbook runs as an operator runs it (`recovery restore ... --yes`): RDS point-in-time recovery is
chosen (no backup exists in S3 at all), the scratch instance is created through moto, the domains are
copied beside live from the standby standing in for it, verified, the service fenced by the restore
playbook, the copy swapped in, the service started and smoke-tested; the scratch instance is deleted.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from rds_sites import PRIMARY_ID, build_sites

from recovery.cli.main import main
from recovery.drivers import db as dbdriver
from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import SCRATCH_PREFIX, RdsInstance
from recovery.errors import ExitCode
from recovery.lab.plan import PRIMARY_REGION, STANDBY_REGION, LabPlan
from recovery.restore import rds_source
from recovery.targets.model import Database, Target

pytestmark = pytest.mark.lab


class Lab:  # the shape of the `lab` fixture (tests/lab/conftest.py)
    dir: Path
    plan: LabPlan
    target: Target


@pytest.fixture(autouse=True)
def _lab_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto accepts any credentials; the lab's target names none (its endpoint is the lab's moto server).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lab")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lab")


def _rds_variant(lab: Lab, folder: Path) -> Path:
    """The lab's target with its primary database declared an RDS instance (its passfile kept)."""
    document = yaml.safe_load((lab.dir / "target.yaml").read_text())
    document["primary"]["database"].update(kind="rds", rds_instance_id=PRIMARY_ID)
    path = folder / "target.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _connect(database: Database, dbname: str | None = None) -> psycopg.Connection[Any]:
    return dbdriver.connect(database, dbname=dbname)


def _scratch_instances(aws: AwsDriver) -> list[str]:
    found = aws.client("rds", PRIMARY_REGION).describe_db_instances()["DBInstances"]
    return [i["DBInstanceIdentifier"] for i in found if i["DBInstanceIdentifier"].startswith(SCRATCH_PREFIX)]


def _step(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in doc["result"]["steps"] if s["name"] == name)["output"]
    return found


def test_a_point_in_time_recovery_on_rds_restores_through_the_same_runbook(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = AwsDriver(lab.target.aws)
    build_sites(aws, (PRIMARY_REGION, STANDBY_REGION))
    live, standby = lab.target.primary.database, lab.target.standby.database
    reached: list[RdsInstance] = []

    @contextlib.contextmanager
    def the_standby_answers(instance: RdsInstance, live_db: Database, *_: object) -> Iterator[Database]:
        reached.append(instance)
        yield standby.model_copy(update={"name": live_db.name})

    monkeypatch.setattr(rds_source, "SCRATCH_ACCESS", the_standby_answers)
    with _connect(standby, "postgres") as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        with _connect(live) as conn:
            gone = [
                str(r[0]) for r in conn.execute("SELECT id FROM transactions ORDER BY id LIMIT 7").fetchall()
            ]
            conn.execute("DELETE FROM transactions WHERE id = ANY(%s::uuid[])", (gone,))
        capsys.readouterr()
        code = main(
            [
                "restore",
                "--domains",
                "orders,transactions",
                "--yes",
                "-o",
                "json",
                "-t",
                str(_rds_variant(lab, tmp_path)),
            ]
        )
        out, err = capsys.readouterr()
    finally:
        with _connect(standby, "postgres") as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    choices = _step(doc, "restore-beside")["choices"]
    assert {c["domain"]: (c["kind"], c["copy"]) for c in choices} == {
        "orders": ("realtime", "local"),
        "transactions": ("realtime", "local"),
    }
    # Both domains from one RDS point-in-time recovery, to the latest restorable time seen at the choice.
    assert len({c["backup_id"] for c in choices}) == 1 and choices[0]["backup_id"].startswith(
        "rds-pitr:local:"
    )
    # One scratch instance served both domains, and it is gone.
    assert len(reached) == 1 and reached[0].identifier.startswith(SCRATCH_PREFIX)
    assert _scratch_instances(aws) == []
    assert _step(doc, "verify-restored")["invariants"] == "passed"
    assert _step(doc, "start-service")["smoke_test"] == "passed"
    with _connect(live) as conn:
        back = conn.execute(
            "SELECT count(*) FROM transactions WHERE id = ANY(%s::uuid[])", (gone,)
        ).fetchone()
    assert back is not None and back[0] == 7
