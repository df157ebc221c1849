"""Regressions a reviewer found the suite letting through, and the behaviour added against them.

Each test names the mutation it catches: turning a protection off, dropping an ordering, flipping an
alarm, widening the metadata hop limit, skipping the primary's final snapshot. They read what the program
registered under mocks, including each resource's `dependencies` (what the engine waits for).
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from stack_harness import ACCOUNT, Registered, StackRun

from recovery.targets.pulumi_outputs import OperatorInputs, target_from_pulumi_outputs
from recovery.watch import metrics_contract as contract

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RDS = "aws:rds/instance:Instance"
LB = "aws:lb/loadBalancer:LoadBalancer"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
RECORD = "aws:route53/record:Record"
CERT_VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
KEY = "aws:kms/key:Key"
TOPIC = "aws:sns/topic:Topic"
SERVICE_LINKED_ROLE = "aws:iam/serviceLinkedRole:ServiceLinkedRole"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def _s3(run: StackRun, typ: str) -> Registered:
    return run.one(f"aws:s3/{typ}")


def _alarms(run: StackRun) -> dict[str, Registered]:
    return {a.name.split("-", 1)[1]: a for a in run.of_type(ALARM)}


# -- protections that must stay on -------------------------------------------------------------------------


def test_load_balancers_keep_deletion_protection(primary: StackRun, standby: StackRun) -> None:
    for run in (primary, standby):
        assert run.one(LB).inputs["enableDeletionProtection"] is True


def test_metadata_is_imdsv2_with_one_hop(primary: StackRun, standby: StackRun) -> None:
    for run in (primary, standby):
        metadata = run.one(LAUNCH_TEMPLATE).inputs["metadataOptions"]
        assert metadata == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}


def test_primary_database_takes_a_final_snapshot(primary: StackRun) -> None:
    db = primary.one(RDS).inputs
    assert db["skipFinalSnapshot"] is False
    assert db["finalSnapshotIdentifier"] == "order-recovery-primary-final"
    assert db["deletionProtection"] is True


def test_bucket_configuration_waits_for_what_s3_needs_first(primary: StackRun, standby: StackRun) -> None:
    for run in (primary, standby):
        versioning = _s3(run, "bucketVersioning:BucketVersioning")
        # S3 refuses an object lock configuration (and noncurrent-version rules) before versioning is on;
        # both only share the bucket's id with it, so only an explicit depends_on orders them.
        assert _s3(run, "bucketObjectLockConfiguration:BucketObjectLockConfiguration").waits_for(versioning)
        assert _s3(run, "bucketLifecycleConfiguration:BucketLifecycleConfiguration").waits_for(versioning)
        public_access = _s3(run, "bucketPublicAccessBlock:BucketPublicAccessBlock")
        assert _s3(run, "bucketPolicy:BucketPolicy").waits_for(public_access)
        assert not versioning.waits_for(public_access)  # the harness records real orderings, not everything


def test_replication_rule_waits_for_its_role_policy(standby: StackRun) -> None:
    rule = standby.one("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    policy = next(p for p in standby.of_type(ROLE_POLICY) if "replication" in p.name)
    assert rule.waits_for(policy)


# -- alarms: the direction of every comparison --------------------------------------------------------------

# Every alarm either stack declares, with the only comparison that makes it fire on trouble. A new alarm
# fails the test until it is listed here.
EXPECTED_COMPARISONS = {
    # suffix: (comparison, missing data, evaluation periods, period in seconds)
    "lb-5xx": ("GreaterThanThreshold", "notBreaching", 5, 60),
    "target-5xx": ("GreaterThanThreshold", "notBreaching", 5, 60),
    "unhealthy-hosts": ("GreaterThanThreshold", "notBreaching", 3, 60),
    "replication-slot-lag": ("GreaterThanThreshold", "notBreaching", 3, 60),
    "replication-lag-bytes": ("GreaterThanThreshold", "missing", 3, 60),
    "replication-lag-seconds": ("GreaterThanThreshold", "missing", 3, 60),
    "backup-age-realtime": ("GreaterThanThreshold", "missing", 1, 300),
    "backup-age-daily": ("GreaterThanThreshold", "missing", 1, 300),
    "probe-front-door": ("GreaterThanOrEqualToThreshold", "missing", 1, 300),
    "probe-service": ("GreaterThanOrEqualToThreshold", "missing", 1, 300),
    "probe-database": ("GreaterThanOrEqualToThreshold", "missing", 1, 300),
    "watch-silent": ("LessThanThreshold", "breaching", 3, 300),
    "traffic-health-alarm": ("LessThanThreshold", "breaching", 2, 60),
}


def test_every_alarm_fires_in_the_right_direction(primary: StackRun, standby: StackRun) -> None:
    seen = set()
    for run in (primary, standby):
        for suffix, alarm in _alarms(run).items():
            seen.add(suffix)
            inputs = alarm.inputs
            settings = (
                inputs["comparisonOperator"],
                inputs["treatMissingData"],
                inputs["evaluationPeriods"],
                inputs["period"],
            )
            assert settings == EXPECTED_COMPARISONS[suffix], suffix
            assert inputs["alarmActions"] == inputs["okActions"] != []
    assert seen == set(EXPECTED_COMPARISONS)


def test_alarm_thresholds_sit_where_the_objectives_say(primary: StackRun, standby: StackRun) -> None:
    alarms = {**_alarms(primary), **_alarms(standby)}
    thresholds = {suffix: alarm.inputs["threshold"] for suffix, alarm in alarms.items()}
    assert thresholds["lb-5xx"] == thresholds["target-5xx"] == 10
    assert (
        alarms["lb-5xx"].inputs["datapointsToAlarm"] == alarms["target-5xx"].inputs["datapointsToAlarm"] == 3
    )
    assert thresholds["unhealthy-hosts"] == 0
    assert {thresholds[f"probe-{p}"] for p in contract.PROBES} == {3}
    assert thresholds["backup-age-realtime"] == 300
    assert thresholds["backup-age-daily"] == 26 * 3600
    assert thresholds["replication-lag-seconds"] == 30
    assert thresholds["replication-lag-bytes"] == thresholds["replication-slot-lag"] == 64 * 1024 * 1024
    assert thresholds["watch-silent"] == 1 and alarms["watch-silent"].inputs["statistic"] == "SampleCount"
    health = alarms["traffic-health-alarm"].inputs
    assert (health["threshold"], health["statistic"]) == (1, "Minimum")


def test_watch_alarms_match_the_metrics_contract(primary: StackRun, standby: StackRun) -> None:
    ours = [
        a.inputs
        for run in (primary, standby)
        for a in run.of_type(ALARM)
        if a.inputs["namespace"] == contract.NAMESPACE
    ]
    assert len(ours) == 14  # 6 per site, plus the standby's 2 lag alarms
    for inputs in ours:
        metric = contract.metric(inputs["metricName"])
        assert tuple(sorted(inputs["dimensions"])) == tuple(sorted(metric.dimensions))
        assert inputs["unit"] == metric.unit
        assert inputs["period"] >= contract.PUBLISH_INTERVAL_SECONDS
    assert {i["metricName"] for i in ours} == {
        "BackupAgeSecondsOldestDomain",
        "ProbeFailures",
        "ReplicationLagBytes",
        "ReplicationLagSeconds",
    }


def test_route53_health_check_alarm_lives_where_route53_publishes(primary: StackRun) -> None:
    alarm = _alarms(primary)["traffic-health-alarm"]
    check = primary.one("aws:route53/healthCheck:HealthCheck")
    assert primary.region_of(alarm) == "us-east-1"
    assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == ("AWS/Route53", "HealthCheckStatus")
    assert alarm.inputs["dimensions"] == {"HealthCheckId": check.id}
    assert alarm.inputs["alarmActions"] == [primary.outputs["teamTopicArn"]]


def test_a_primary_outside_us_east_1_alarms_through_its_own_topic_there(primary_elsewhere: StackRun) -> None:
    run = primary_elsewhere
    alarm = _alarms(run)["traffic-health-alarm"]
    assert run.region_of(alarm) == "us-east-1"
    topic = run.one(TOPIC, "alarm-topic")
    assert run.region_of(topic) == "us-east-1"
    assert alarm.inputs["alarmActions"] == [topic.state["arn"]]
    key = run.one(KEY, "alarm-key")
    assert topic.inputs["kmsMasterKeyId"] == key.state["arn"]
    sids = {s["Sid"] for s in json.loads(key.inputs["policy"])["Statement"]}
    assert "CloudWatchAlarmsPublishToEncryptedTopics" in sids
    # Everything else stays in the site's region.
    assert run.region_of(run.one(RDS)) == "us-east-2"


# -- hosts that boot into the service ----------------------------------------------------------------------


def _user_data(run: StackRun) -> str:
    return base64.b64decode(run.one(LAUNCH_TEMPLATE).inputs["userData"]).decode()


def test_hosts_boot_into_the_service_with_the_ansible_role(
    primary: StackRun, standby: StackRun, tmp_path: Path
) -> None:
    for run in (primary, standby):
        script = _user_data(run)
        path = tmp_path / f"{run.stack}.sh"
        path.write_text(script)
        subprocess.run(["bash", "-n", str(path)], check=True)  # a syntax error would fail every boot
        assert script.startswith("#!/bin/bash\n") and "set -euo pipefail" in script
        bucket = run.outputs["backupBucketName"]
        assert f"s3://{bucket}/releases/current" in script
        assert '"$work/playbooks/deploy.yml"' in script
        for setting in (
            f"order_site={run.stack}",
            "order_service_supervisor=systemd",
            "order_service_listen=0.0.0.0",
            "order_service_port=8080",
            f"order_db_host={run.outputs['dbAddress']}",
            "order_service_run_migrations=false",
            f"order_service_intake_queue_url={run.outputs['intakeQueueUrl']}",
            "order_service_install_packages=true",
        ):
            assert f"-e {setting}" in script or f"-e '{setting}'" in script, setting
        assert run.outputs["serviceDbSecretArn"] in script
        assert "python3-boto3" in script  # the service's degraded mode sends to SQS with it
        assert "password" not in run.one(LAUNCH_TEMPLATE).inputs  # only the secret's ARN travels


def test_template_changes_roll_out_through_instance_refresh(primary: StackRun) -> None:
    template = primary.one(LAUNCH_TEMPLATE)
    group = primary.one(ASG).inputs
    assert group["launchTemplate"] == {"id": template.id, "version": str(template.state["latestVersion"])}
    refresh = group["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["minHealthyPercentage"] == 50
    assert group["healthCheckGracePeriod"] >= 600


# -- ACM validation: one record, one owner -----------------------------------------------------------------


def test_only_the_primary_owns_the_certificate_validation_record(
    primary: StackRun, standby: StackRun
) -> None:
    validation_records = [
        r for run in (primary, standby) for r in run.of_type(RECORD) if "cert-validation" in r.name
    ]
    assert [r.urn.split("::")[0] for r in validation_records] == ["urn:pulumi:primary"]
    assert "allowOverwrite" not in validation_records[0].inputs
    assert primary.one(CERT_VALIDATION).inputs["validationRecordFqdns"] == [
        validation_records[0].state["fqdn"]
    ]
    assert not standby.one(CERT_VALIDATION).inputs.get("validationRecordFqdns")


# -- providers, trust, the Auto Scaling service-linked role -------------------------------------------------


def test_providers_act_only_in_the_account_and_tag_everything(
    primary: StackRun, standby: StackRun, primary_elsewhere: StackRun
) -> None:
    for run in (primary, standby, primary_elsewhere):
        providers = run.of_type("pulumi:providers:aws")
        assert len(providers) >= 1
        for provider in providers:
            assert json.loads(provider.inputs["allowedAccountIds"]) == [ACCOUNT]
            tags = json.loads(provider.inputs["defaultTags"])["tags"]
            assert tags == {
                "project": "order-recovery",
                "site": run.stack,
                "owner": "orders-platform",
                "cost-center": "ecommerce",
                "managed-by": "pulumi",
            }


def _statement(document: str, sid: str) -> dict[str, Any]:
    return next(s for s in json.loads(document)["Statement"] if s["Sid"] == sid)


def test_key_and_group_wait_for_the_service_linked_role_they_name(
    primary: StackRun, primary_elsewhere: StackRun
) -> None:
    role = primary_elsewhere.one(SERVICE_LINKED_ROLE)
    assert role.inputs["awsServiceName"] == "autoscaling.amazonaws.com"
    key = primary_elsewhere.one(KEY, "backup-key")
    assert key.waits_for(role)
    assert _statement(key.inputs["policy"], "AutoScalingUsesKeyForVolumes")["Principal"] == {
        "AWS": role.state["arn"]
    }
    group = primary_elsewhere.one(ASG)
    assert group.waits_for(role)
    assert group.inputs["serviceLinkedRoleArn"] == role.state["arn"]
    # In an account that has the role (the default), nothing declares it and the key names its known ARN.
    assert not primary.of_type(SERVICE_LINKED_ROLE)
    known = (
        f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    )
    assert _statement(primary.one(KEY).inputs["policy"], "AutoScalingUsesKeyForVolumes")["Principal"] == {
        "AWS": known
    }
    assert primary.one(ASG).inputs["serviceLinkedRoleArn"] == known


# -- OrderStack's registered outputs ------------------------------------------------------------------------


def test_order_stack_registers_every_output(primary: StackRun, promoted_standby: StackRun) -> None:
    for run in (primary, promoted_standby):
        component = run.one("order-recovery:infra:OrderStack")
        registered = run.component_outputs[component.urn]
        assert len(registered) == 20  # pruningRoleArn too
        for name, value in registered.items():
            if name in run.outputs:
                assert run.outputs[name] == value, name
        assert registered["dbMasterSecretArn"] == run.outputs["dbMasterSecretArn"]
    storage = primary.one("order-recovery:infra:BackupStorage")
    assert set(primary.component_outputs[storage.urn]) == {
        "keyArn",
        "keyId",
        "bucketName",
        "bucketArn",
        "lockTableName",
        "lockTableArn",
        "lockTableRegion",
    }


# -- the promoted standby (after a failover or switchover) ---------------------------------------------------


def test_promoted_standby_has_no_replica_source_and_keeps_its_protection(promoted_standby: StackRun) -> None:
    db = promoted_standby.one(RDS)
    inputs = db.inputs
    assert "replicateSourceDb" not in inputs
    assert inputs["deletionProtection"] is True
    assert db.protect is True
    assert inputs["skipFinalSnapshot"] is False
    assert inputs["finalSnapshotIdentifier"] == "order-recovery-standby-final"
    assert inputs["backupRetentionPeriod"] == 14
    assert inputs["multiAz"] is True
    assert inputs["manageMasterUserPassword"] is True
    assert inputs["masterUserSecretKmsKeyId"] == promoted_standby.outputs["kmsKeyArn"]
    assert inputs["identifier"] == "order-recovery-standby"  # the same instance, not a new one
    # Attributes RDS fixes at creation stay undeclared: declaring them could replace the database.
    for fixed in ("engine", "dbName", "username", "allocatedStorage"):
        assert fixed not in inputs
    assert promoted_standby.outputs["dbRole"] == "primary"
    assert promoted_standby.outputs["dbMasterSecretArn"].startswith("arn:aws:secretsmanager:us-west-2:")
    # The watch's replication lag alarms are for a replica; the promoted site has none.
    assert not {"replication-lag-bytes", "replication-lag-seconds"} & set(_alarms(promoted_standby))


def test_runbook_roles_can_promote_fail_back_and_read_secrets_on_either_site(
    primary: StackRun, standby: StackRun, promoted_standby: StackRun
) -> None:
    for run in (primary, standby, promoted_standby):
        policy = next(p for p in run.of_type(ROLE_POLICY) if "runbook-policy" in p.name)
        statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
        own = statements["ObserveAndPromoteDatabase"]
        for action in ("rds:PromoteReadReplica", "rds:ModifyDBInstance", "rds:DescribeDBInstances"):
            assert action in own["Action"]
        assert own["Resource"] == [run.outputs["dbInstanceArn"]]
        rebuild = statements["RebuildAsReplicaOfTheOtherSite"]
        assert "rds:CreateDBInstanceReadReplica" in rebuild["Action"]
        assert f"arn:aws:rds:*:{ACCOUNT}:db:order-recovery-*" in rebuild["Resource"]
        # A database is deleted only as a restore's own scratch instance, never a live one.
        deleting = [st for st in statements.values() if "rds:DeleteDBInstance" in st["Action"]]
        assert [st["Resource"] for st in deleting] == [
            [f"arn:aws:rds:*:{ACCOUNT}:db:order-recovery-scratch-*"]
        ]
        assert statements["ConnectWithIamAuthentication"]["Resource"] == [
            f"arn:aws:rds-db:*:{ACCOUNT}:dbuser:{run.outputs['dbResourceId']}/orders_admin"
        ]
        assert "route53:ChangeResourceRecordSets" in statements["SwitchTraffic"]["Action"]
        assert statements["RunbookLocks"]["Resource"] == [
            f"arn:aws:dynamodb:*:{ACCOUNT}:table/{primary.outputs['lockTableName']}"
        ]
        secrets = statements["ReadDatabaseMasterSecret"]["Resource"]
        assert primary.outputs["dbMasterSecretArn"] in secrets  # the replica's credentials are the primary's
        if "dbMasterSecretArn" in run.outputs:
            assert run.outputs["dbMasterSecretArn"] in secrets
    assert "dbMasterSecretArn" not in standby.outputs  # a replica has no secret of its own


def test_target_follows_the_writable_site(
    primary: StackRun, standby: StackRun, promoted_standby: StackRun, tmp_path: Path
) -> None:
    operator = OperatorInputs(
        primary_hosts=("10.10.10.5",),
        standby_hosts=("10.20.10.5",),
        ssh_user="ec2-user",
        state_dir=tmp_path / "state",
        inventory=tmp_path / "aws_ec2.yml",
    )
    as_json = json.loads(json.dumps(primary.outputs))
    before = target_from_pulumi_outputs(as_json, json.loads(json.dumps(standby.outputs)), operator)
    after = target_from_pulumi_outputs(as_json, json.loads(json.dumps(promoted_standby.outputs)), operator)
    assert (before.keys.kms_key_id, before.keys.region) == (primary.outputs["kmsKeyArn"], "us-east-1")
    assert (after.keys.kms_key_id, after.keys.region) == (promoted_standby.outputs["kmsKeyArn"], "us-west-2")
    assert after.backup.local.bucket == promoted_standby.outputs["backupBucketName"]
    assert after.backup.remote.bucket == primary.outputs["backupBucketName"]
    assert after.intake_queue_url == promoted_standby.outputs["intakeQueueUrl"]
    assert after.team_topic_arn == promoted_standby.outputs["teamTopicArn"]
    # The sites keep their stacks' names and databases; only what follows the writable site moved.
    assert after.standby.database.rds_instance_id == "order-recovery-standby"
    assert before.backup.local.bucket == primary.outputs["backupBucketName"]


@pytest.mark.parametrize("role", ["writer", ""])
def test_target_refuses_an_unknown_database_role(primary: StackRun, standby: StackRun, role: str) -> None:
    from recovery.errors import ConfigError

    outputs = {**json.loads(json.dumps(standby.outputs)), "dbRole": role}
    with pytest.raises(ConfigError, match="dbRole output"):
        target_from_pulumi_outputs(
            json.loads(json.dumps(primary.outputs)),
            outputs,
            OperatorInputs(
                primary_hosts=("10.10.10.5",),
                standby_hosts=("10.20.10.5",),
                ssh_user="ec2-user",
                state_dir=Path("/var/lib/x"),
                inventory=Path("/etc/x.yml"),
            ),
        )


# -- values that only a reviewer would notice ----------------------------------------------------------------


def test_intake_queue_keeps_messages_four_days(primary: StackRun) -> None:
    intake = next(q for q in primary.of_type("aws:sqs/queue:Queue") if q.name == "primary-intake")
    assert intake.inputs["messageRetentionSeconds"] == 4 * 24 * 3600
    assert (intake.inputs["visibilityTimeoutSeconds"], intake.inputs["receiveWaitTimeSeconds"]) == (60, 20)


def test_site_key_is_administered_by_its_own_account(primary: StackRun, standby: StackRun) -> None:
    for run in (primary, standby):
        key = run.one(KEY) if run is primary else run.one("aws:kms/replicaKey:ReplicaKey")
        admin = _statement(key.inputs["policy"], "AccountAdministersThroughIam")
        assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
        assert admin["Action"] == "kms:*"


def test_replication_decrypts_in_the_source_region_and_is_timed(standby: StackRun) -> None:
    policy = next(p for p in standby.of_type(ROLE_POLICY) if "replication" in p.name)
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert statements["DecryptSourceObjects"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    }
    assert statements["EncryptReplicas"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}
    }
    destination = standby.one("aws:s3/bucketReplicationConfig:BucketReplicationConfig").inputs["rules"][0][
        "destination"
    ]
    assert destination["replicationTime"] == {"status": "Enabled", "time": {"minutes": 15}}
    assert destination["metrics"] == {"status": "Enabled", "eventThreshold": {"minutes": 15}}


def test_vpc_resolves_names_and_replica_stays_single_az(primary: StackRun, standby: StackRun) -> None:
    for run in (primary, standby):
        vpc = run.one("aws:ec2/vpc:Vpc").inputs
        # RDS endpoints and the interface endpoints of AWS services need DNS inside the VPC.
        assert (vpc["enableDnsSupport"], vpc["enableDnsHostnames"]) == (True, True)
    # A replica is single-AZ (its Multi-AZ comes with promotion); the primary's database is Multi-AZ.
    assert standby.one(RDS).inputs["multiAz"] is False
    assert primary.one(RDS).inputs["multiAz"] is True


def test_lifecycle_aborts_stale_multipart_uploads_after_a_week(primary: StackRun) -> None:
    rule = _s3(primary, "bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"][0]
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}


def test_one_provider_per_region_and_iam_auth_everywhere(
    primary: StackRun, standby: StackRun, promoted_standby: StackRun
) -> None:
    # The primary is in us-east-1: its health check alarm uses the site's provider, not a second one.
    assert [p.inputs["region"] for p in primary.of_type("pulumi:providers:aws")] == ["us-east-1"]
    for run in (primary, standby, promoted_standby):
        assert run.one(RDS).inputs["iamDatabaseAuthenticationEnabled"] is True
        policy = next(p for p in run.of_type(ROLE_POLICY) if "runbook-policy" in p.name)
        scale = _statement(policy.inputs["policy"], "ScaleTheOrderService")
        assert scale["Resource"] == [run.one(ASG).state["arn"]]
