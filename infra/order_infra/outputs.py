"""The names of the stack outputs: the contract with `recovery target from-pulumi` (docs/deploy.md).

recovery/targets/pulumi_outputs.py reads these names from `pulumi stack output --json`; the infra tests
check that what the program exports is what the converter needs.
"""

from __future__ import annotations

SITE = "site"
REGION = "region"
VPC_ID = "vpcId"
LOAD_BALANCER_ARN = "loadBalancerArn"
LOAD_BALANCER_DNS_NAME = "loadBalancerDnsName"
LOAD_BALANCER_ZONE_ID = "loadBalancerZoneId"
AUTO_SCALING_GROUP_NAME = "autoScalingGroupName"
SERVICE_PORT = "servicePort"
DB_INSTANCE_IDENTIFIER = "dbInstanceIdentifier"
DB_INSTANCE_ARN = "dbInstanceArn"
DB_ADDRESS = "dbAddress"
DB_PORT = "dbPort"
DB_NAME = "dbName"
DB_USERNAME = "dbUsername"
DB_RESOURCE_ID = "dbResourceId"  # for IAM database authentication (rds-db:connect)
DB_ROLE = "dbRole"  # primary (writable) or replica: the standby stack says primary once promoted
DB_MASTER_SECRET_ARN = "dbMasterSecretArn"  # noqa: S105 - an output name; a writable primary's secret
SERVICE_DB_SECRET_ARN = "serviceDbSecretArn"  # noqa: S105 - an output name
KMS_KEY_ARN = "kmsKeyArn"
KMS_KEY_ID = "kmsKeyId"
BACKUP_BUCKET_NAME = "backupBucketName"
BACKUP_BUCKET_ARN = "backupBucketArn"
BACKUP_PREFIX = "backupPrefix"
LOCK_TABLE_NAME = "lockTableName"  # one global table: the same name in both regions
LOCK_TABLE_ARN = "lockTableArn"
LOCK_TABLE_REGION = "lockTableRegion"  # this site's replica of the lock table
INTAKE_QUEUE_URL = "intakeQueueUrl"
INTAKE_QUEUE_ARN = "intakeQueueArn"
DEAD_LETTER_QUEUE_URL = "deadLetterQueueUrl"
TEAM_TOPIC_ARN = "teamTopicArn"
CUSTOMER_TOPIC_ARN = "customerTopicArn"
HOSTED_ZONE_ID = "hostedZoneId"
RECORD_NAME = "recordName"
FRONT_DOOR_URL = "frontDoorUrl"
HEALTH_CHECK_ID = "healthCheckId"  # primary only
INSTANCE_ROLE_ARN = "instanceRoleArn"
RUNBOOK_ROLE_ARN = "runbookRoleArn"
PRUNING_ROLE_ARN = "pruningRoleArn"  # the one role `recovery backup prune` may delete backups with
REPLICATION_ROLE_ARN = "replicationRoleArn"  # standby only
OBJECTIVES = "objectives"
# Where the recovery controller connects from (network.adminCidrs): what the RDS fence still admits.
ADMIN_CIDRS = "adminCidrs"
