"""The lab's AWS: moto's server on loopback, and the resources the toolkit expects in it.

Created with plain boto3 and idempotent (an `up` after a moto restart recreates what is missing): S3
buckets for the local (primary region) and remote (standby region) backup copies with versioning, a KMS
key with alias/order-backups, a Route53 zone with a health check and PRIMARY/SECONDARY failover A
records for the shop, SNS topics for the team and customers, and an SQS intake queue with a dead-letter
queue.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from recovery.backup.keys import DEFAULT_MANIFEST_MAC_KEY
from recovery.drivers.aws import failover_record_upsert, http_health_check_config, new_client
from recovery.engine.lock import LAB_LOCK_TABLE
from recovery.errors import EnvironmentProblem, ExternalFailure
from recovery.lab.plan import (
    CUSTOMER_TOPIC,
    HOSTED_ZONE,
    INTAKE_DLQ,
    INTAKE_QUEUE,
    KMS_ALIAS,
    LOCAL_BUCKET,
    MOTO_ADDRESS,
    PRIMARY_REGION,
    REMOTE_BUCKET,
    SHOP_RECORD,
    STANDBY_REGION,
    TEAM_TOPIC,
    LabPlan,
)
from recovery.lab.processes import spawn_daemon, start_ticks, wait_port
from recovery.lab.state import ProcessRecord

RECORD_TTL = 10


def client(service: str, endpoint_url: str, region: str = PRIMARY_REGION) -> Any:
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=10)
    return new_client(service, region, endpoint_url=endpoint_url, config=config)


def start_moto(plan: LabPlan, on_started: Callable[[ProcessRecord], None]) -> None:
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.is_file():
        raise EnvironmentProblem(f"{moto} is missing; install moto[server] (run scripts/bootstrap.sh)")
    pid = spawn_daemon(
        [str(moto), "-H", MOTO_ADDRESS, "-p", str(plan.moto_port)],
        log=plan.moto_dir / "moto.log",
        cwd=plan.moto_dir,
    )
    on_started(ProcessRecord(name="moto", kind="moto", pid=pid, start_ticks=start_ticks(pid)))
    wait_port(MOTO_ADDRESS, plan.moto_port, timeout=30, pid=pid, what="moto server")


def provision(plan: LabPlan) -> dict[str, str]:
    """Create (or find) every AWS resource of the lab; return their ids for lab.json and target.yaml."""
    url = plan.moto_url
    try:
        return _provision(plan, url)
    except (ClientError, BotoCoreError) as exc:
        raise ExternalFailure(f"creating the lab's AWS resources in moto at {url} failed: {exc}") from None


def _provision(plan: LabPlan, url: str) -> dict[str, str]:
    for bucket, region in ((LOCAL_BUCKET, PRIMARY_REGION), (REMOTE_BUCKET, STANDBY_REGION)):
        s3 = client("s3", url, region)
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    kms = client("kms", url, PRIMARY_REGION)
    try:
        key_arn = kms.describe_key(KeyId=KMS_ALIAS)["KeyMetadata"]["Arn"]
    except ClientError:
        key_arn = kms.create_key(Description="order-recovery backup data keys (lab)")["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key_arn)

    # The HMAC key that authenticates backup manifests (recovery.backup.keys), apart from the data keys.
    try:
        kms.describe_key(KeyId=DEFAULT_MANIFEST_MAC_KEY)
    except ClientError:
        mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName=DEFAULT_MANIFEST_MAC_KEY, TargetKeyId=mac_key)

    # The lock every controller takes for this target (partition key lock_id; recovery.engine.lock).
    dynamodb = client("dynamodb", url, PRIMARY_REGION)
    if LAB_LOCK_TABLE not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName=LAB_LOCK_TABLE,
            KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    zone_id, health_check_id = _route53(plan, url)

    sns = client("sns", url, PRIMARY_REGION)
    team = sns.create_topic(Name=TEAM_TOPIC)["TopicArn"]
    customers = sns.create_topic(Name=CUSTOMER_TOPIC)["TopicArn"]

    sqs = client("sqs", url, PRIMARY_REGION)
    dlq_url = sqs.create_queue(QueueName=INTAKE_DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(QueueName=INTAKE_QUEUE, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    return {
        "kms_key_arn": key_arn,
        "hosted_zone_id": zone_id,
        "health_check_id": health_check_id,
        "team_topic_arn": team,
        "customer_topic_arn": customers,
        "intake_queue_url": queue_url,
        "intake_dlq_url": dlq_url,
    }


def _route53(plan: LabPlan, url: str) -> tuple[str, str]:
    r53 = client("route53", url)
    zones = r53.list_hosted_zones_by_name(DNSName=HOSTED_ZONE)["HostedZones"]
    zone = next((z for z in zones if z["Name"].rstrip(".") == HOSTED_ZONE), None)
    if zone is None:
        zone = r53.create_hosted_zone(
            Name=HOSTED_ZONE, CallerReference=f"order-recovery-lab-{plan.base_port}"
        )["HostedZone"]
    zone_id = str(zone["Id"]).split("/")[-1]
    primary = plan.primary
    checks = r53.list_health_checks()["HealthChecks"]
    check = next(
        (
            c
            for c in checks
            if c["HealthCheckConfig"].get("IPAddress") == primary.address
            and c["HealthCheckConfig"].get("Port") == primary.service_port
        ),
        None,
    )
    if check is None:
        check = r53.create_health_check(
            CallerReference=f"order-recovery-lab-primary-{plan.base_port}",
            HealthCheckConfig=http_health_check_config(primary.address, primary.service_port),
        )["HealthCheck"]
    check_id = str(check["Id"])
    if current_records(plan.moto_url, zone_id) == {}:
        r53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Changes": [
                    failover_record_upsert(SHOP_RECORD, "PRIMARY", primary.address, RECORD_TTL, check_id),
                    failover_record_upsert(SHOP_RECORD, "SECONDARY", plan.standby.address, RECORD_TTL),
                ]
            },
        )
    return zone_id, check_id


def current_records(
    endpoint_url: str, zone_id: str, record_name: str = SHOP_RECORD, route53: Any | None = None
) -> dict[str, str]:
    """Failover role (PRIMARY/SECONDARY) -> address of the shop's A records."""
    r53 = route53 or client("route53", endpoint_url)
    found: dict[str, str] = {}
    sets = r53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=record_name, StartRecordType="A"
    )["ResourceRecordSets"]
    for rs in sets:
        if rs["Name"].rstrip(".") == record_name.rstrip(".") and rs["Type"] == "A" and rs.get("Failover"):
            values = rs.get("ResourceRecords") or []
            if values:
                found[str(rs["Failover"])] = str(values[0]["Value"])
    return found


def point_primary_record(
    endpoint_url: str,
    zone_id: str,
    address: str,
    health_check_id: str | None = None,
    record_name: str = SHOP_RECORD,
) -> None:
    """UPSERT the PRIMARY failover record to `address` (the lab's traffic switch)."""
    r53 = client("route53", endpoint_url)
    change = failover_record_upsert(record_name, "PRIMARY", address, RECORD_TTL, health_check_id)
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [change]})
