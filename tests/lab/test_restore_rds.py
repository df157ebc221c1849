"""The restore, backup and upgrade runbooks end to end with the RDS driver: the lab's database declared
`kind: rds`, its RDS instance in the lab's moto server, and the scratch instance a point-in-time recovery
makes answered by a real PostgreSQL: the lab's standby, its replay paused before a change to live, holds
live as it was then.

The runbook runs as an operator runs it (`recovery restore ... --yes`): RDS point-in-time recovery is
chosen (no backup exists in S3 at all), the scratch instance is created through moto, the domains are
copied beside live from the standby standing in for it, verified, the service fenced by the restore
playbook, the copy swapped in, the service started and smoke-tested; the scratch instance is deleted.

The daily backup and an upgrade with its rollback then run on a target whose writer is the RDS instance
with no passfile at all: its credentials are read from the instance's managed secret in moto (holding the
lab's password), and the upgrade's restore point is also an RDS snapshot copied into the other region.
Last, a failback with both sites on RDS (it leaves the lab's standby the writer).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import psycopg
import pytest
import yaml
from rds_sites import PRIMARY_ID, STANDBY_ID, CallRecorder, RdsSites, build_sites, mirror_subnet_group

from recovery.cli.main import main
from recovery.drivers import db as dbdriver
from recovery.drivers import orderservice
from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import SCRATCH_PREFIX, RdsDriver, RdsInstance
from recovery.engine import run_ids
from recovery.errors import ExitCode
from recovery.failover import rds as rds_failover
from recovery.failover.platform import Rebuild
from recovery.failover.rds import set_aside_name, snapshot_name
from recovery.failover.selfmanaged import SelfManaged, record_generation
from recovery.failover.service import base_url
from recovery.lab.plan import PRIMARY_REGION, STANDBY_REGION, LabPlan
from recovery.lab.render import parse_pgpass
from recovery.restore import rds_source
from recovery.restore.rds_source import point_snapshot_id
from recovery.targets.model import Database, Site, Target
from recovery.targets.sites import SiteRecord, read_site_record, write_site_record

pytestmark = pytest.mark.lab


class Lab:  # the shape of the `lab` fixture (tests/lab/conftest.py)
    dir: Path
    plan: LabPlan
    target: Target


@pytest.fixture(autouse=True, scope="module")
def _lab_aws_credentials() -> Iterator[None]:
    # moto accepts any credentials; the lab's target names none (its endpoint is the lab's moto server).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "lab")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "lab")
        yield


@pytest.fixture(scope="module")
def sites(lab: Lab) -> RdsSites:
    """The lab's database as an RDS instance and its cross-region replica, in the lab's moto server."""
    return build_sites(AwsDriver(lab.target.aws), (PRIMARY_REGION, STANDBY_REGION))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> CallRecorder:
    """Every AWS call any driver of the test's runs sends, in order."""
    recorder = CallRecorder()
    attached: set[int] = set()
    make_client = AwsDriver.client

    def client(self: AwsDriver, service: str, region: str, endpoint_url: str | None = None) -> Any:
        made = make_client(self, service, region, endpoint_url)
        if id(made) not in attached:
            attached.add(id(made))
            recorder.attach(made, region)
        return made

    monkeypatch.setattr(AwsDriver, "client", client)
    return recorder


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
    lab: Lab,
    sites: RdsSites,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    aws = AwsDriver(lab.target.aws)
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


# What a failback may change through the RDS and EC2 APIs.
CHANGES = frozenset(
    {
        "CreateSecurityGroup",
        "RevokeSecurityGroupEgress",
        "AuthorizeSecurityGroupIngress",
        "AddTagsToResource",
        "ModifyDBInstance",
        "CreateDBSnapshot",
        "CreateDBInstanceReadReplica",
        "DeleteDBInstance",
        "PromoteReadReplica",
    }
)


def _writer_by_secret(lab: Lab, sites: RdsSites, folder: Path) -> tuple[Path, str]:
    """The lab's target with its writer the RDS instance, known by its managed secret only (no passfile)."""
    aws = AwsDriver(lab.target.aws)
    secret = aws.client("rds", PRIMARY_REGION).describe_db_instances(DBInstanceIdentifier=PRIMARY_ID)[
        "DBInstances"
    ][0]["MasterUserSecret"]["SecretArn"]
    # The secret RDS manages holds the endpoint's master credentials: here the lab server's superuser.
    password = parse_pgpass(lab.plan.pgpass.read_text())["postgres"]
    aws.client("secretsmanager", PRIMARY_REGION).put_secret_value(
        SecretId=secret, SecretString=json.dumps({"username": "postgres", "password": password})
    )
    # What RDS publishes and preflight reads: the instance's free storage (40 of its 50 GiB).
    aws.client("cloudwatch", PRIMARY_REGION).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "FreeStorageSpace",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": sites.primary.identifier}],
                "Value": 40 * 1024**3,
                "Unit": "Bytes",
            }
        ],
    )
    document = yaml.safe_load((lab.dir / "target.yaml").read_text())
    document["primary"]["database"].update(
        kind="rds", rds_instance_id=PRIMARY_ID, master_secret_arn=secret, passfile=None
    )
    path = folder / "target.yaml"
    path.write_text(yaml.safe_dump(document))
    return path, secret


def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main([*args, "-o", "json"])
    out, err = capsys.readouterr()
    assert out, err
    return code, json.loads(out)


def test_the_daily_backup_and_an_upgrade_rolled_back_run_with_the_rds_writers_secret(
    lab: Lab,
    sites: RdsSites,
    tmp_path: Path,
    recorder: CallRecorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # moto's server has no DescribePendingMaintenanceActions (tests/aws/test_rds_driver.py checks that
    # call with botocore's Stubber): nothing is pending.
    monkeypatch.setattr(RdsDriver, "pending_maintenance", lambda self, arn: [])
    # A snapshot copy is encrypted with the other region's copy of the target's multi-region key. moto
    # cannot decrypt data keys of a multi-region key (its 40-character id overflows moto's ciphertext
    # header), so the lab's backups keep the lab's key and the copy names the standby site's own key.
    monkeypatch.setattr(rds_source, "key_in_region", lambda key, region: sites.standby.kms_key_arn)
    path, secret = _writer_by_secret(lab, sites, tmp_path)
    target = str(path)
    with _connect(lab.target.primary.database) as conn:
        orders_before = conn.execute("SELECT count(*) FROM orders").fetchone()
    recorder.clear()

    code, doc = _json(["backup", "run", "--domain", "orders", "-t", target], capsys)
    assert code == ExitCode.OK, doc
    # The password was read from the secret first; the dump went into both buckets; RDS saw no call.
    assert recorder.calls[0] == (PRIMARY_REGION, "GetSecretValue", {"SecretId": secret})
    written = {
        params["Bucket"] for params in recorder.params("PutObject") + recorder.params("CreateMultipartUpload")
    }
    assert written == {lab.target.backup.local.bucket, lab.target.backup.remote.bucket}
    assert not [operation for operation in recorder.operations() if "DB" in operation]

    recorder.clear()
    code, doc = _json(
        [
            "upgrade",
            "--release",
            # Its migration fails half way, the deploy's earliest failure: the database must be restored.
            "v2-bad-migration",
            "--skip-check",
            "migration_dry_run",  # which would refuse it (tests/service/test_dry_run_master_credentials.py)
            "--auto-rollback",
            "--watch",
            "3",
            "--health-timeout",
            "8",
            "--yes",
            "-t",
            target,
        ],
        capsys,
    )
    result = doc["result"]
    assert code == ExitCode.ROLLED_BACK, result["reason"]
    assert result["failed_gate"] == "migrate"
    assert result["rollback"]["status"] == "ok" and result["rollback"]["database_restored"] is True
    assert recorder.calls[0] == (PRIMARY_REGION, "GetSecretValue", {"SecretId": secret})
    # The restore point is also a snapshot of the instance named after the upgrade run, copied into the
    # other region with that region's key; the rollback itself restores the point's files, so these are
    # every RDS call of the upgrade and its rollback, in order.
    created = recorder.params("CreateDBSnapshot")
    assert len(created) == 1
    run_id = dict((t["Key"], t["Value"]) for t in created[0]["Tags"])["restore-point"]
    assert run_id in run_ids(lab.target.state_dir) and "-upgrade-" in run_id
    snapshot = point_snapshot_id(run_id)
    local_arn = f"arn:aws:rds:{PRIMARY_REGION}:123456789012:snapshot:{snapshot}"
    rds_calls = [(region, op) for region, op, _ in recorder.calls if "DB" in op]
    assert rds_calls == [
        (PRIMARY_REGION, "DescribeDBInstances"),  # preflight
        (PRIMARY_REGION, "DescribeDBSnapshots"),  # not taken yet
        (PRIMARY_REGION, "CreateDBSnapshot"),
        (PRIMARY_REGION, "DescribeDBSnapshots"),  # the waiter
        (PRIMARY_REGION, "DescribeDBSnapshots"),
        (STANDBY_REGION, "DescribeDBSnapshots"),  # not copied yet
        (STANDBY_REGION, "CopyDBSnapshot"),
        (STANDBY_REGION, "DescribeDBSnapshots"),  # the waiter
        (STANDBY_REGION, "DescribeDBSnapshots"),
    ]
    assert created[0]["DBInstanceIdentifier"] == PRIMARY_ID and created[0]["DBSnapshotIdentifier"] == snapshot
    assert recorder.params("CopyDBSnapshot") == [
        {
            "SourceDBSnapshotIdentifier": local_arn,
            "TargetDBSnapshotIdentifier": snapshot,
            "KmsKeyId": sites.standby.kms_key_arn,
            "SourceRegion": PRIMARY_REGION,
            "CopyTags": True,
        }
    ]
    aws = AwsDriver(lab.target.aws)
    for region in (PRIMARY_REGION, STANDBY_REGION):
        kept = aws.client("rds", region).describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"]
        assert [s["Status"] for s in kept] == ["available"]
    with _connect(lab.target.primary.database) as conn:
        orders_after = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert orders_after == orders_before


def test_failback_on_rds_carries_the_old_writers_orders_over_and_rebuilds_it_as_a_replica(
    lab: Lab,
    sites: RdsSites,
    tmp_path: Path,
    recorder: CallRecorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Both sites on RDS after a failover to the standby: the lab's standby promoted (RDS promoted its
    replica in moto), the old primary still taking orders. The failback fences it through the API and
    SQL, carries those orders into the writer, and RDS re-creates it as a replica of the writer under its
    old name; the endpoint keeps its address, so the lab's old primary becomes a streaming standby of the
    new one (what RDS does behind CreateDBInstanceReadReplica)."""
    aws = AwsDriver(lab.target.aws)
    document = yaml.safe_load((lab.dir / "target.yaml").read_text())
    for name, identifier in (("primary", PRIMARY_ID), ("standby", STANDBY_ID)):
        # The controller runs on loopback here: the fence still admits it.
        document[name]["database"].update(kind="rds", rds_instance_id=identifier, fence_admit=["127.0.0.0/8"])
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(document))
    # The replica in the primary's region is encrypted with that region's copy of the target's multi-region
    # key: the primary site's own key here (moto cannot decrypt under multi-region keys, see above).
    monkeypatch.setattr(rds_failover, "key_in_region", lambda key, region: sites.primary.kms_key_arn)
    mirror_subnet_group(aws, sites.primary, STANDBY_REGION)
    rebuild_by_api = rds_failover.RdsPlatform.rebuild_as_standby

    def rebuilt_like_rds(self: Any, site: Site, source: Site, run_id: str) -> Rebuild:
        made = rebuild_by_api(self, site, source, run_id)
        lab_site, lab_source = lab.target.site(site.name), lab.target.site(source.name)
        SelfManaged((lab_source, lab_site)).rebuild_as_standby(lab_site, lab_source, run_id)
        return made

    monkeypatch.setattr(rds_failover.RdsPlatform, "rebuild_as_standby", rebuilt_like_rds)

    # The failover: the standby promoted (the database and its RDS instance), at the next generation.
    primary, standby = lab.target.primary, lab.target.standby
    epoch = read_site_record(lab.target.state_dir).epoch + 1
    with _connect(standby.database, "postgres") as conn:
        conn.execute("SELECT pg_promote()")
        record_generation(conn, standby, epoch)
    aws.client("rds", STANDBY_REGION).promote_read_replica(DBInstanceIdentifier=STANDBY_ID)
    split = datetime.now(UTC)
    write_site_record(
        lab.target.state_dir, SiteRecord(writer="standby", epoch=epoch, changed_at=split.isoformat())
    )
    # Orders the old primary's service acknowledged after the split.
    with _connect(primary.database) as conn:
        users = [r[0] for r in conn.execute("SELECT id FROM users ORDER BY id LIMIT 3")]
        products = [
            r[0] for r in conn.execute("SELECT id FROM products WHERE stock > 10 ORDER BY id LIMIT 3")
        ]
    stock_sql = "SELECT id, stock FROM products WHERE id = ANY(%s) ORDER BY id"
    with _connect(standby.database) as conn:
        stock_at_split = dict(conn.execute(stock_sql, (products,)).fetchall())
    acknowledged = []
    for index in range(3):
        order_id = str(uuid.uuid4())
        body = {
            "order_id": order_id,
            "user_id": users[index],
            "items": [{"product_id": products[index], "quantity": 2}],
        }
        status, _ = orderservice.call(base_url(primary.hosts[0]), "POST", "/orders", body)
        assert status == 201
        acknowledged.append(order_id)

    recorder.clear()
    code, doc = _json(["failback", "--yes", "-t", str(path)], capsys)
    assert code == ExitCode.OK, doc
    steps = {s["name"]: s["output"] for s in doc["result"]["steps"]}
    assert steps["carry-over"]["orders_inserted"] == 3 and steps["carry-over"]["needs_a_person"] == 0
    with _connect(standby.database) as conn:
        carried = conn.execute(
            "SELECT count(*) FROM orders WHERE id = ANY(%s::uuid[])", (acknowledged,)
        ).fetchone()
    assert carried == (3,)
    with _connect(standby.database) as conn:
        # The stock the old primary's orders took is taken on the writer too, not overwritten.
        assert dict(conn.execute(stock_sql, (products,)).fetchall()) == {
            product: stock - 2 for product, stock in stock_at_split.items()
        }
    # The RDS and EC2 calls that change anything, in order: the fence (a group admitting only the
    # controller, the old groups kept in a tag, the instance moved into it), then the rebuild (a snapshot,
    # the old writer renamed aside, a replica of the writer under its old name).
    run_id = doc["result"]["run_id"]
    changes = [(region, op, params) for region, op, params in recorder.calls if op in CHANGES]
    assert [(region, op) for region, op, _ in changes] == [
        (PRIMARY_REGION, "CreateSecurityGroup"),
        (PRIMARY_REGION, "RevokeSecurityGroupEgress"),
        (PRIMARY_REGION, "AuthorizeSecurityGroupIngress"),
        (PRIMARY_REGION, "AddTagsToResource"),
        (PRIMARY_REGION, "ModifyDBInstance"),
        (PRIMARY_REGION, "CreateDBSnapshot"),
        (PRIMARY_REGION, "ModifyDBInstance"),
        (PRIMARY_REGION, "CreateDBInstanceReadReplica"),
    ]
    group, admitted, fenced, snapshot, rename, replica = (changes[i][2] for i in (0, 2, 4, 5, 6, 7))
    assert group["VpcId"] == sites.primary.vpc_id
    assert admitted["IpPermissions"][0]["IpRanges"][0]["CidrIp"] == "127.0.0.0/8"
    assert admitted["IpPermissions"][0]["FromPort"] == 5432
    assert fenced["DBInstanceIdentifier"] == PRIMARY_ID and fenced["VpcSecurityGroupIds"] == [
        admitted["GroupId"]
    ]
    assert snapshot["DBSnapshotIdentifier"] == snapshot_name(PRIMARY_ID, run_id)
    assert rename["NewDBInstanceIdentifier"] == set_aside_name(PRIMARY_ID, run_id)
    assert replica["DBInstanceIdentifier"] == PRIMARY_ID
    assert (replica["SourceDBInstanceIdentifier"], replica["SourceRegion"]) == (
        sites.standby.arn,
        STANDBY_REGION,
    )
    assert replica["VpcSecurityGroupIds"] == [sites.primary.security_group]  # its groups before the fence
    assert RdsDriver(aws, PRIMARY_REGION).describe(PRIMARY_ID).replica_source in (
        sites.standby.arn,
        STANDBY_ID,
    )
    # The lab's old primary streams from the writer at the new generation; the records point at both.
    assert steps["verify"] == {"writer": "standby", "standby": "primary", "epoch": epoch, "lag_bytes": ANY}
    with _connect(primary.database, "postgres") as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
