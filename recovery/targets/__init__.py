"""Targets: one validated description of where everything is (sites, hosts, databases, stores, keys)."""

from recovery.targets.load import load_target, resolve_target_path
from recovery.targets.model import (
    AwsEndpoint,
    BackupStore,
    BackupStores,
    Database,
    Host,
    KeySource,
    Objectives,
    Site,
    Target,
    Traffic,
)

__all__ = [
    "AwsEndpoint",
    "BackupStore",
    "BackupStores",
    "Database",
    "Host",
    "KeySource",
    "Objectives",
    "Site",
    "Target",
    "Traffic",
    "load_target",
    "resolve_target_path",
]
