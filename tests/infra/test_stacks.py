"""What the primary and standby stacks declare, asserted on the real program run under mocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stack_harness import ACCOUNT, Registered, StackRun, stack_config

from recovery.targets.pulumi_outputs import REQUIRED_OUTPUTS, OperatorInputs, target_from_pulumi_outputs

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
NAT = "aws:ec2/natGateway:NatGateway"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
LB = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
RDS = "aws:rds/instance:Instance"
QUEUE = "aws:sqs/queue:Queue"
TOPIC = "aws:sns/topic:Topic"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
KEY = "aws:kms/key:Key"
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
BUCKET = "aws:s3/bucket:Bucket"
RECORD = "aws:route53/record:Record"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def _statements(policy: Registered) -> list[dict[str, Any]]:
    document = json.loads(policy.inputs["policy"])
    return list(document["Statement"])


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _key_arn(run: StackRun) -> str:
    return str(run.outputs["kmsKeyArn"])


# -- every resource in its region, through an explicit provider --------------------------------------------


def test_every_aws_resource_has_an_explicit_provider_in_its_sites_region(
    primary: StackRun, standby: StackRun
) -> None:
    for run, region in ((primary, "us-east-1"), (standby, "us-west-2")):
        aws_resources = [r for r in run.resources if r.typ.startswith("aws:")]
        assert len(aws_resources) > 50
        for resource in aws_resources:
            expected = region
            if resource.typ == "aws:s3/bucketReplicationConfig:BucketReplicationConfig":
                expected = "us-east-1"  # the rule lives on the primary's bucket
            assert run.region_of(resource) == expected, resource.name


def test_the_program_makes_no_invokes(primary: StackRun, standby: StackRun) -> None:
    # The account comes from config (and the providers refuse any other), not from the credentials at hand.
    assert primary.calls == standby.calls == []


def test_components_are_typed_and_parent_their_resources(primary: StackRun) -> None:
    components = {r.typ for r in primary.resources if r.typ.startswith("order-recovery:")}
    assert components == {
        "order-recovery:infra:BackupStorage",
        "order-recovery:infra:OrderStack",
        "order-recovery:infra:Network",
        "order-recovery:infra:FailoverRouting",
    }
    bucket = primary.one(BUCKET)
    assert "order-recovery:infra:BackupStorage" in bucket.parent
    assert "order-recovery:infra:Network" in primary.one(VPC).parent


# -- network -----------------------------------------------------------------------------------------------


def test_network_spans_two_zones_with_private_and_public_subnets(
    primary: StackRun, standby: StackRun
) -> None:
    for run, cidr, zones in (
        (primary, "10.10.0.0/16", {"us-east-1a", "us-east-1b"}),
        (standby, "10.20.0.0/16", {"us-west-2a", "us-west-2b"}),
    ):
        assert run.one(VPC).inputs["cidrBlock"] == cidr
        subnets = run.of_type(SUBNET)
        tiers: dict[str, set[str]] = {"public": set(), "private": set()}
        for subnet in subnets:
            tiers[subnet.inputs["tags"]["tier"]].add(subnet.inputs["availabilityZone"])
            assert subnet.inputs["mapPublicIpOnLaunch"] is False
        assert tiers == {"public": zones, "private": zones}
        assert len(run.of_type(NAT)) == 2
        nat_ids = {n.id for n in run.of_type(NAT)}
        private_tables = [t for t in run.of_type(ROUTE_TABLE) if t.inputs["tags"]["tier"] == "private"]
        assert {t.inputs["routes"][0]["natGatewayId"] for t in private_tables} == nat_ids


def test_security_groups_admit_only_the_tier_in_front(primary: StackRun) -> None:
    groups = {g.inputs["tags"]["tier"]: g for g in primary.of_type(SECURITY_GROUP)}
    assert set(groups) == {"lb", "app", "db"}
    for group in groups.values():
        assert "ingress" not in group.inputs and "egress" not in group.inputs  # rules are separate resources
    by_id = {g.id: tier for tier, g in groups.items()}

    def rules(typ: str, tier: str) -> set[tuple[int, str]]:
        found = set()
        for rule in primary.of_type(typ):
            if rule.inputs["securityGroupId"] != groups[tier].id:
                continue
            assert rule.inputs["ipProtocol"] == "tcp"
            assert rule.inputs["fromPort"] == rule.inputs["toPort"]
            peer = rule.inputs.get("cidrIpv4") or by_id[rule.inputs["referencedSecurityGroupId"]]
            found.add((rule.inputs["fromPort"], peer))
        return found

    assert rules(INGRESS, "lb") == {(443, "0.0.0.0/0"), (80, "0.0.0.0/0")}
    assert rules(INGRESS, "app") == {(8080, "lb"), (22, "10.255.0.0/24")}
    assert rules(INGRESS, "db") == {(5432, "app"), (5432, "10.255.0.0/24")}
    assert rules(EGRESS, "lb") == {(8080, "app")}
    assert rules(EGRESS, "app") == {(443, "0.0.0.0/0"), (5432, "db")}
    assert rules(EGRESS, "db") == set()


# -- the order service tier --------------------------------------------------------------------------------


def test_launch_template_and_auto_scaling_group(primary: StackRun, standby: StackRun) -> None:
    template = primary.one(LAUNCH_TEMPLATE)
    assert template.inputs["metadataOptions"]["httpTokens"] == "required"
    ebs = template.inputs["blockDeviceMappings"][0]["ebs"]
    assert (ebs["encrypted"], ebs["kmsKeyId"]) == ("true", _key_arn(primary))
    profile = primary.one("aws:iam/instanceProfile:InstanceProfile")
    assert template.inputs["iamInstanceProfile"]["arn"] == profile.state["arn"]

    group = primary.one(ASG)
    private = {s.id for s in primary.of_type(SUBNET) if s.inputs["tags"]["tier"] == "private"}
    assert set(group.inputs["vpcZoneIdentifiers"]) == private
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"], group.inputs["maxSize"]) == (2, 2, 6)
    assert group.inputs["healthCheckType"] == "ELB"
    assert group.inputs["launchTemplate"]["id"] == template.id
    assert group.inputs["targetGroupArns"] == [primary.one(TARGET_GROUP).state["arn"]]
    tags = {t["key"]: t for t in group.inputs["tags"]}
    assert tags["site"]["value"] == "primary" and tags["site"]["propagateAtLaunch"] is True
    assert standby.one(ASG).inputs["desiredCapacity"] == 1


def test_load_balancer_health_checks_and_tls(primary: StackRun) -> None:
    balancer = primary.one(LB)
    public = {s.id for s in primary.of_type(SUBNET) if s.inputs["tags"]["tier"] == "public"}
    assert set(balancer.inputs["subnets"]) == public
    assert balancer.inputs["loadBalancerType"] == "application"
    assert balancer.inputs["internal"] is False
    assert balancer.inputs["dropInvalidHeaderFields"] is True
    health = primary.one(TARGET_GROUP).inputs["healthCheck"]
    assert (health["path"], health["matcher"], health["enabled"]) == ("/health", "200", True)
    listeners = {listener.inputs["port"]: listener.inputs for listener in primary.of_type(LISTENER)}
    assert listeners[443]["protocol"] == "HTTPS"
    assert listeners[443]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    validation = primary.one("aws:acm/certificateValidation:CertificateValidation")
    assert listeners[443]["certificateArn"] == validation.state["certificateArn"]
    assert listeners[443]["defaultActions"][0]["targetGroupArn"] == primary.one(TARGET_GROUP).state["arn"]
    redirect = listeners[80]["defaultActions"][0]
    assert (redirect["type"], redirect["redirect"]["protocol"]) == ("redirect", "HTTPS")


# -- the database ------------------------------------------------------------------------------------------


def test_primary_database_is_multi_az_encrypted_protected(primary: StackRun) -> None:
    db = primary.one(RDS)
    inputs = db.inputs
    assert inputs["engine"] == "postgres"
    assert inputs["multiAz"] is True
    assert inputs["storageEncrypted"] is True
    assert inputs["kmsKeyId"] == _key_arn(primary)
    assert inputs["deletionProtection"] is True
    assert inputs["backupRetentionPeriod"] == 14
    assert inputs["performanceInsightsEnabled"] is True
    assert inputs["performanceInsightsKmsKeyId"] == _key_arn(primary)
    assert inputs["manageMasterUserPassword"] is True
    assert "password" not in inputs
    assert inputs["publiclyAccessible"] is False
    assert db.protect is True


def test_standby_database_is_a_cross_region_replica_of_the_primary(
    primary: StackRun, standby: StackRun
) -> None:
    replica = standby.one(RDS)
    assert replica.inputs["replicateSourceDb"] == primary.outputs["dbInstanceArn"]
    assert primary.outputs["dbInstanceArn"].startswith("arn:aws:rds:us-east-1:")
    assert standby.region_of(replica) == "us-west-2"
    assert replica.inputs["kmsKeyId"] == _key_arn(standby)
    assert _key_arn(standby).startswith("arn:aws:kms:us-west-2:")
    assert replica.inputs["storageEncrypted"] is True
    assert replica.inputs["deletionProtection"] is True
    assert replica.inputs["performanceInsightsEnabled"] is True
    inherited_or_refused = ("engine", "username", "dbName", "manageMasterUserPassword", "allocatedStorage")
    for inherited in inherited_or_refused:
        assert inherited not in replica.inputs
    # RDS for PostgreSQL 14.1+ keeps automated backups of a read replica: the standby has its own.
    assert replica.inputs["backupRetentionPeriod"] == 14
    assert replica.inputs["backupWindow"] == "03:00-04:00"
    assert standby.outputs["dbAddress"].endswith(".us-west-2.rds.amazonaws.com")


def test_standby_reads_the_primary_through_a_stack_reference(standby: StackRun) -> None:
    reference = standby.one("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == stack_config("standby")["order-recovery:primaryStack"]


# -- intake queue, topics, alarms --------------------------------------------------------------------------


def test_intake_queue_has_an_encrypted_dead_letter_queue(primary: StackRun) -> None:
    queues = {q.name: q for q in primary.of_type(QUEUE)}
    intake, dead = queues["primary-intake"], queues["primary-intake-dlq"]
    redrive = json.loads(intake.inputs["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dead.state["arn"], "maxReceiveCount": 5}
    for queue in (intake, dead):
        assert queue.inputs["kmsMasterKeyId"] == _key_arn(primary)
    assert dead.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


def test_team_and_customer_topics_are_encrypted(primary: StackRun) -> None:
    topics = {t.inputs["tags"]["audience"]: t for t in primary.of_type(TOPIC)}
    assert set(topics) == {"team", "customers"}
    assert all(t.inputs["kmsMasterKeyId"] == _key_arn(primary) for t in topics.values())
    assert primary.outputs["teamTopicArn"] == topics["team"].state["arn"]


def _alarms(run: StackRun) -> dict[str, dict[str, Any]]:
    return {a.name.split("-", 1)[1]: a.inputs for a in run.of_type(ALARM)}


def test_alarms_watch_5xx_unhealthy_hosts_and_backup_age(primary: StackRun, standby: StackRun) -> None:
    alarms = _alarms(primary)
    assert set(alarms) == {
        "lb-5xx",
        "target-5xx",
        "unhealthy-hosts",
        "replication-slot-lag",
        "backup-age-realtime",
        "backup-age-daily",
        "probe-front-door",
        "probe-service",
        "probe-database",
        "watch-silent",
        "traffic-health-alarm",
    }
    team = primary.outputs["teamTopicArn"]
    for alarm in alarms.values():
        assert alarm["alarmActions"] == [team]
    balancer_suffix = primary.one(LB).state["arnSuffix"]
    assert alarms["lb-5xx"]["metricName"] == "HTTPCode_ELB_5XX_Count"
    assert alarms["lb-5xx"]["dimensions"] == {"LoadBalancer": balancer_suffix}
    assert alarms["unhealthy-hosts"]["metricName"] == "UnHealthyHostCount"
    assert (
        alarms["unhealthy-hosts"]["dimensions"]["TargetGroup"] == primary.one(TARGET_GROUP).state["arnSuffix"]
    )
    assert alarms["backup-age-daily"]["threshold"] == 26 * 3600
    assert alarms["backup-age-daily"]["dimensions"] == {"Site": "primary", "Kind": "daily"}
    assert alarms["backup-age-realtime"]["threshold"] == 300
    # Missing backup figures are the watch not running, said once by watch-silent, not by every alarm.
    assert alarms["backup-age-realtime"]["treatMissingData"] == "missing"
    assert alarms["watch-silent"]["treatMissingData"] == "breaching"
    slot = alarms["replication-slot-lag"]
    assert (slot["namespace"], slot["metricName"]) == ("AWS/RDS", "OldestReplicationSlotLag")
    assert slot["dimensions"] == {"DBInstanceIdentifier": "order-recovery-primary"}
    assert slot["threshold"] == 64 * 1024 * 1024

    standby_alarms = _alarms(standby)
    assert "replication-slot-lag" not in standby_alarms and "traffic-health-alarm" not in standby_alarms
    # RDS's ReplicaLag grows to minutes on an idle primary: the standby alarms on the watch's own figures.
    assert not [a for a in standby_alarms.values() if a["metricName"] == "ReplicaLag"]
    lag = standby_alarms["replication-lag-seconds"]
    assert (lag["namespace"], lag["metricName"]) == ("OrderRecovery", "ReplicationLagSeconds")
    assert lag["dimensions"] == {"Site": "standby"}
    assert lag["threshold"] == 30
    assert standby_alarms["replication-lag-bytes"]["threshold"] == 64 * 1024 * 1024
    assert lag["alarmActions"] == [standby.outputs["teamTopicArn"]]


# -- backup storage ----------------------------------------------------------------------------------------


def test_primary_key_is_multi_region_with_rotation_and_standby_holds_its_replica(
    primary: StackRun, standby: StackRun
) -> None:
    key = primary.one(KEY)
    assert key.inputs["multiRegion"] is True
    assert key.inputs["enableKeyRotation"] is True
    sids = {s["Sid"] for s in json.loads(key.inputs["policy"])["Statement"]}
    assert "CloudWatchAlarmsPublishToEncryptedTopics" in sids
    assert not standby.of_type(KEY)
    replica = standby.one(REPLICA_KEY)
    assert replica.inputs["primaryKeyArn"] == _key_arn(primary)


def _configs(run: StackRun, typ: str) -> Registered:
    found = run.of_type(f"aws:s3/{typ}")
    assert len(found) == 1, typ
    assert found[0].inputs["bucket"] == run.outputs["backupBucketName"]
    return found[0]


def test_backup_bucket_is_versioned_encrypted_private_tls_only_and_locked(
    primary: StackRun, standby: StackRun
) -> None:
    for run in (primary, standby):
        bucket = run.one(BUCKET)
        assert bucket.inputs["objectLockEnabled"] is True
        assert bucket.inputs["forceDestroy"] is False
        assert bucket.protect is True
        versioning = _configs(run, "bucketVersioning:BucketVersioning")
        assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
        sse = _configs(run, "bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
        default = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": _key_arn(run)}
        block = _configs(run, "bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
        assert all(block[f] is True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                              "restrictPublicBuckets"))  # fmt: skip
        ownership = _configs(run, "bucketOwnershipControls:BucketOwnershipControls")
        assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
        statements = _statements(_configs(run, "bucketPolicy:BucketPolicy"))
        tls = next(s for s in statements if s["Sid"] == "DenyInsecureTransport")
        assert tls["Effect"] == "Deny" and tls["Principal"] == "*"
        assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert all(s["Effect"] == "Deny" for s in statements)
        lock = _configs(run, "bucketObjectLockConfiguration:BucketObjectLockConfiguration").inputs
        assert lock["objectLockEnabled"] == "Enabled"
        assert lock["rule"]["defaultRetention"] == {"mode": "GOVERNANCE", "days": 35}


def test_lifecycle_moves_backups_colder_then_expires_them(primary: StackRun) -> None:
    rule = _configs(primary, "bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"][0]
    assert rule["status"] == "Enabled"
    assert rule["filter"]["prefix"] == "backups/"
    assert [(t["storageClass"], t["days"]) for t in rule["transitions"]] == [
        ("STANDARD_IA", 30),
        ("GLACIER_IR", 90),
    ]
    assert rule["expiration"]["days"] == 365
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 35


def test_standby_replicates_the_primary_hosts_logs_into_its_bucket(
    primary: StackRun, standby: StackRun
) -> None:
    assert not primary.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    replication = standby.one("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    assert replication.inputs["bucket"] == primary.outputs["backupBucketName"]
    rule = replication.inputs["rules"][0]
    assert rule["status"] == "Enabled"
    assert rule["destination"]["bucket"] == standby.outputs["backupBucketArn"]
    assert rule["destination"]["encryptionConfiguration"]["replicaKmsKeyId"] == _key_arn(standby)
    assert rule["sourceSelectionCriteria"]["sseKmsEncryptedObjects"]["status"] == "Enabled"
    assert rule["deleteMarkerReplication"]["status"] == "Disabled"
    role = next(r for r in standby.of_type(ROLE) if "replication" in r.name)
    assert replication.inputs["role"] == role.state["arn"]
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "s3.amazonaws.com"
    }
    policy = next(p for p in standby.of_type(ROLE_POLICY) if "replication" in p.name)
    statements = {s["Sid"]: s for s in _statements(policy)}
    assert statements["WriteReplicas"]["Resource"] == [f"{standby.outputs['backupBucketArn']}/logs/primary/*"]
    assert "s3:ReplicateDelete" not in _actions(statements["WriteReplicas"])
    assert statements["DecryptSourceObjects"]["Resource"] == [_key_arn(primary)]
    assert statements["EncryptReplicas"]["Resource"] == [_key_arn(standby)]
    assert standby.outputs["replicationRoleArn"] == role.state["arn"]


def test_lock_table_is_one_global_table_both_sites_see(primary: StackRun, standby: StackRun) -> None:
    table = primary.one("aws:dynamodb/table:Table")
    inputs = table.inputs
    assert inputs["hashKey"] == "lock_id"
    assert inputs["attributes"] == [{"name": "lock_id", "type": "S"}]
    assert inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": _key_arn(primary)}
    assert inputs["pointInTimeRecovery"]["enabled"] is True
    assert inputs["deletionProtectionEnabled"] is True
    # No TTL: released leases keep their item, so fencing tokens only grow (recovery/engine/lock.py).
    assert "ttl" not in inputs
    # A global table needs streams; the replica is the standby stack's, so this stack must not drop it.
    assert (inputs["streamEnabled"], inputs["streamViewType"]) == (True, "NEW_AND_OLD_IMAGES")
    assert "replicas" in table.ignore_changes
    assert not standby.of_type("aws:dynamodb/table:Table")
    replica = standby.one("aws:dynamodb/tableReplica:TableReplica")
    assert replica.inputs["globalTableArn"] == primary.outputs["lockTableArn"]
    assert replica.inputs["kmsKeyArn"] == _key_arn(standby)
    assert replica.inputs["pointInTimeRecovery"] is True
    assert replica.inputs["deletionProtectionEnabled"] is True
    assert standby.region_of(replica) == "us-west-2"
    # One name in both regions; each stack says where its replica answers.
    assert primary.outputs["lockTableName"] == standby.outputs["lockTableName"]
    assert (primary.outputs["lockTableRegion"], standby.outputs["lockTableRegion"]) == (
        "us-east-1",
        "us-west-2",
    )


# -- traffic -----------------------------------------------------------------------------------------------


def test_failover_records_primary_with_health_check_and_secondary(
    primary: StackRun, standby: StackRun
) -> None:
    check = primary.one(HEALTH_CHECK).inputs
    assert (check["type"], check["port"], check["resourcePath"]) == ("HTTPS", 443, "/health")
    assert check["fqdn"] == primary.outputs["loadBalancerDnsName"]
    assert not standby.of_type(HEALTH_CHECK)

    def failover_record(run: StackRun) -> dict[str, Any]:
        records = [r.inputs for r in run.of_type(RECORD) if "failoverRoutingPolicies" in r.inputs]
        assert len(records) == 1
        return records[0]

    first, second = failover_record(primary), failover_record(standby)
    assert first["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert second["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    assert first["healthCheckId"] == primary.one(HEALTH_CHECK).id == primary.outputs["healthCheckId"]
    assert "healthCheckId" not in second
    assert (first["name"], first["zoneId"], first["type"]) == (
        second["name"],
        second["zoneId"],
        second["type"],
    )
    assert first["name"] == "orders.example.com" and first["type"] == "A"
    assert first["setIdentifier"] != second["setIdentifier"]
    assert first["aliases"][0]["name"] == primary.outputs["loadBalancerDnsName"]
    assert second["aliases"][0]["name"] == standby.outputs["loadBalancerDnsName"]
    assert all(r["aliases"][0]["evaluateTargetHealth"] is True for r in (first, second))


def test_a_pulumi_up_never_moves_traffic_back_from_where_a_runbook_pointed_it(
    primary: StackRun, standby: StackRun
) -> None:
    # After a failover the PRIMARY alias names the standby's load balancer, without the primary's health
    # check: the stacks create the records but leave their target to the runbooks.
    for run in (primary, standby):
        (record,) = [r for r in run.of_type(RECORD) if "failoverRoutingPolicies" in r.inputs]
        assert set(record.ignore_changes) == {"aliases", "healthCheckId"}


# -- least privilege ---------------------------------------------------------------------------------------


def _role_policy(run: StackRun, part: str) -> dict[str, dict[str, Any]]:
    policy = next(p for p in run.of_type(ROLE_POLICY) if part in p.name)
    return {s["Sid"]: s for s in _statements(policy)}


def test_instance_role_writes_only_its_log_files_and_never_makes_data_keys(
    primary: StackRun, standby: StackRun
) -> None:
    for run in (primary, standby):
        site = run.outputs["site"]
        statements = _role_policy(run, "instance-policy")
        bucket = run.outputs["backupBucketArn"]
        writes = [s for s in statements.values() if s["Effect"] == "Allow" and "s3:PutObject" in _actions(s)]
        assert [s["Resource"] for s in writes] == [[f"{bucket}/logs/{site}/*"]]
        # Nothing of the hosts' may touch the backup prefix: no write, no read.
        for statement in statements.values():
            if statement["Effect"] == "Allow":
                assert not any("/backups/" in r for r in statement["Resource"]), statement["Sid"]
        deny = statements["NeverDestroyBackups"]
        assert deny["Effect"] == "Deny"
        for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"):
            assert action in _actions(deny)
        assert set(deny["Resource"]) == {bucket, f"{bucket}/*"}
        # The site key only through S3, SQS and SNS, and through S3 only for its own prefixes: a host
        # cannot ask KMS for a data key to wrap a backup.
        kms = [s for s in statements.values() if any(a.startswith("kms:") for a in _actions(s))]
        assert len(kms) == 1
        key = kms[0]
        assert key["Resource"] == [_key_arn(run)]
        region = run.outputs["region"]
        assert key["Condition"]["StringEquals"] == {
            "kms:ViaService": [f"{svc}.{region}.amazonaws.com" for svc in ("s3", "sqs", "sns")]
        }
        assert key["Condition"]["StringLikeIfExists"]["kms:EncryptionContext:aws:s3:arn"] == [
            bucket,
            f"{bucket}/logs/{site}/*",
            f"{bucket}/releases/*",
        ]
        assert "kms:Encrypt" not in _actions(key)
        for statement in statements.values():
            if statement["Effect"] != "Allow":
                continue
            actions = _actions(statement)
            assert not any(a == "*" or a.endswith(":*") or a.startswith("s3:Delete") for a in actions)
            assert statement["Resource"] != ["*"], statement["Sid"]
        assert statements["ReadServiceDatabasePassword"]["Resource"] == [run.outputs["serviceDbSecretArn"]]


def test_runbook_role_is_separate_and_scoped_to_its_site(primary: StackRun, standby: StackRun) -> None:
    for run in (primary, standby):
        statements = _role_policy(run, "runbook-policy")
        promote = statements["ObserveAndPromoteDatabase"]
        assert "rds:PromoteReadReplica" in _actions(promote)
        assert promote["Resource"] == [run.outputs["dbInstanceArn"]]
        assert statements["SwitchTraffic"]["Resource"] == [
            "arn:aws:route53:::hostedzone/Z0EXAMPLE0PUBLICZONE"
        ]
        assert statements["NeverDestroyBackups"]["Effect"] == "Deny"
        for statement in statements.values():
            if statement["Effect"] == "Allow":
                actions = _actions(statement)
                assert not any(a == "*" or a.endswith(":*") or a.startswith("s3:Delete") for a in actions)
        role = next(r for r in run.of_type(ROLE) if "runbook" in r.name)
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert len(trust) == 1
        assert trust[0]["Principal"] == {
            "AWS": [
                f"arn:aws:iam::{ACCOUNT}:role/order-recovery-operators",
                f"arn:aws:iam::{ACCOUNT}:role/order-recovery-pipeline",
            ]
        }
        assert not any(p.endswith(":root") for p in trust[0]["Principal"]["AWS"])
        assert run.outputs["runbookRoleArn"] == role.state["arn"] != run.outputs["instanceRoleArn"]
        # The backups the runbooks write: the key without a ViaService condition, the backup prefix of
        # this site's bucket and of the other site's (the remote copy), found by its name prefix.
        other = "standby" if run.outputs["site"] == "primary" else "primary"
        assert statements["ReadAndWriteBackups"]["Resource"] == [
            f"{run.outputs['backupBucketArn']}/backups/*",
            f"arn:aws:s3:::order-recovery-{other}-backups-*/backups/*",
        ]
        assert "kms:GenerateDataKey" in _actions(statements["UseTheSiteKey"])
        assert "Condition" not in statements["UseTheSiteKey"]


# -- outputs: the contract with `recovery target from-pulumi` ----------------------------------------------


def test_outputs_hold_what_the_target_converter_needs(primary: StackRun, standby: StackRun) -> None:
    for run in (primary, standby):
        assert set(REQUIRED_OUTPUTS) <= set(run.outputs)
    assert primary.outputs["site"] == "primary" and standby.outputs["site"] == "standby"
    assert "healthCheckId" in primary.outputs and "replicationRoleArn" in standby.outputs


def test_mocked_outputs_convert_into_a_valid_target(
    primary: StackRun, standby: StackRun, tmp_path: Path
) -> None:
    # Round trip through JSON, exactly as `pulumi stack output --json > file` would hand them over.
    primary_outputs = json.loads(json.dumps(primary.outputs))
    standby_outputs = json.loads(json.dumps(standby.outputs))
    target = target_from_pulumi_outputs(
        primary_outputs,
        standby_outputs,
        OperatorInputs(
            primary_hosts=("10.10.10.5",),
            standby_hosts=("10.20.10.5",),
            ssh_user="ec2-user",
            state_dir=tmp_path / "state",
            inventory=tmp_path / "aws_ec2.yml",
        ),
    )
    assert (target.backup.local.bucket, target.backup.local.region) == (
        primary.outputs["backupBucketName"],
        "us-east-1",
    )
    assert (target.backup.remote.bucket, target.backup.remote.region) == (
        standby.outputs["backupBucketName"],
        "us-west-2",
    )
    assert target.primary.database.rds_instance_id == "order-recovery-primary"
    assert target.standby.database.address == standby.outputs["dbAddress"]
    assert target.keys.kms_key_id == _key_arn(primary)
    assert target.traffic.record_name == "orders.example.com"
    assert target.traffic.hosted_zone_id == "Z0EXAMPLE0PUBLICZONE"
    for site, run in (("primary", primary), ("standby", standby)):
        balancer = target.site(site).load_balancer  # type: ignore[arg-type]
        assert balancer is not None
        assert (balancer.arn, balancer.dns_name, balancer.hosted_zone_id) == (
            run.outputs["loadBalancerArn"],
            run.outputs["loadBalancerDnsName"],
            run.outputs["loadBalancerZoneId"],
        )
    assert target.objectives.rto_seconds == 900
    assert target.primary.hosts[0].service_port == 8080
    assert target.intake_queue_url == primary.outputs["intakeQueueUrl"]
    # The lease is taken in the writable site's region of the one global table.
    assert target.lock_table is not None
    assert (target.lock_table.name, target.lock_table.region) == (
        primary.outputs["lockTableName"],
        "us-east-1",
    )
