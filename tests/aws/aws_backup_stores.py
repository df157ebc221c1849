"""The two backup copies the moto tests use: apart in bucket and region, as a target requires."""

from recovery.targets.model import BackupStore

LOCAL = BackupStore(bucket="orders-backup-local", region="eu-west-1", prefix="backups/")
REMOTE = BackupStore(bucket="orders-backup-remote", region="eu-central-1", prefix="backups/")
