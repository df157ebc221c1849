"""The backup runbooks: `backup` (daily backup of data domains) and `backup-prune` (retention applied).

The backup: check the primary, pack the hosts' log files (playbooks/backup.yml, logs domain only), dump
every chosen domain in one exported snapshot (fingerprints taken in it too) into both copies
(`recovery.backup.daily`), verify both copies against their manifests, remove the packed files from the
hosts. The prune: decide again what retention deletes, delete backups and WAL series from both copies,
check the result (`recovery.backup.prune`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from recovery.backup.daily import HostFile, backup_domains, check_primary, host_log_file, verify_new_copies
from recovery.backup.manifest import Manifest
from recovery.backup.naming import DOMAINS, Domain, parse_domain
from recovery.backup.prune import (
    PrunePlan,
    check_after_prune,
    confirmed_decision,
    delete_backups,
    delete_series,
    plan_prune,
)
from recovery.backup.retention import RetentionPolicy
from recovery.drivers.ansible import require_success, run_files_dir, run_playbook
from recovery.engine import Runbook, RunContext, Step, TypedOutput, register_runbook
from recovery.errors import UsageError
from recovery.paths import PLAYBOOKS_DIR
from recovery.restore.rds_source import is_rds_target, point_snapshot_id, take_point_snapshot
from recovery.targets.model import Target

LOG_PLAYBOOK = PLAYBOOKS_DIR / "backup.yml"


class BackupSummary(TypedOutput):
    backup_id: str
    domain: str
    position: str
    restore_point: str | None
    raw_bytes: int
    stored_bytes: int
    rows: dict[str, int]

    @classmethod
    def of(cls, manifest: Manifest) -> BackupSummary:
        return cls(
            backup_id=manifest.backup_id,
            domain=manifest.domain,
            position=manifest.source.at.isoformat(),
            restore_point=manifest.source.restore_point,
            raw_bytes=manifest.sizes.raw,
            stored_bytes=manifest.sizes.stored,
            rows={table.name: table.rows for table in manifest.tables},
        )


class BackedUp(TypedOutput):
    backups: tuple[BackupSummary, ...]


def _params(ctx: RunContext) -> tuple[list[Domain], str | None]:
    domains = [parse_domain(str(domain)) for domain in ctx.params["domains"]]
    point = ctx.params.get("restore_point")
    return domains, str(point) if point else None


def _check_database(ctx: RunContext) -> dict[str, object]:
    facts = check_primary(ctx.target)
    return {"database": facts.database, "server_version": facts.server_version}


def _log_playbook(ctx: RunContext, phase: str) -> None:
    result = run_playbook(
        ctx.target.inventory,
        str(LOG_PLAYBOOK),
        extravars={"order_backup_logs_phase": phase, "order_backup_logs_run": ctx.run_id},
        private_data_dir=run_files_dir(ctx.target.state_dir, ctx.run_id, f"logs-{phase}"),
    )
    require_success(result)


def _gather_logs(ctx: RunContext) -> dict[str, object]:
    ctx.progress("packing the service's log files on every app host")
    _log_playbook(ctx, "gather")
    return {"files": {host.name: str(host_log_file(host, ctx.run_id)) for host in ctx.target.hosts()}}


def _back_up(ctx: RunContext) -> BackedUp:
    domains, point = _params(ctx)
    files = [HostFile(host, host_log_file(host, ctx.run_id)) for host in ctx.target.hosts()]
    manifests = backup_domains(
        ctx.target,
        domains,
        restore_point=point,
        host_files=files if "logs" in domains else (),
        progress=ctx.progress,
    )
    for manifest in manifests:
        ctx.note(
            f"{manifest.backup_id}: {manifest.sizes.raw} bytes, stored {manifest.sizes.stored}",
            backup_id=manifest.backup_id,
        )
    return BackedUp(backups=tuple(BackupSummary.of(manifest) for manifest in manifests))


def _verify_copies(ctx: RunContext) -> dict[str, object]:
    backed_up = ctx.output("back-up", BackedUp)
    return {"copies": verify_new_copies(ctx.target, [backup.backup_id for backup in backed_up.backups])}


def _clean_host_files(ctx: RunContext) -> dict[str, object]:
    _log_playbook(ctx, "cleanup")
    return {"removed": [str(host_log_file(host, ctx.run_id)) for host in ctx.target.hosts()]}


def _snapshot_point(ctx: RunContext) -> dict[str, object]:
    _, point = _params(ctx)
    assert point is not None
    ctx.progress(f"snapshotting the RDS instance as restore point {point!r}")
    taken = take_point_snapshot(ctx.target, point)
    return {"snapshot": taken.snapshot_id, "local": taken.local, "remote": taken.remote}


def _buckets(target: Target) -> tuple[str, str]:
    return (f"s3://{target.backup.local.bucket}", f"s3://{target.backup.remote.bucket}")


def backup_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    """params: domains (list), restore_point (str or None)."""
    domains = [parse_domain(str(domain)) for domain in params["domains"]]
    point = params.get("restore_point")
    hosts = tuple(host.name for host in target.hosts())
    what = ", ".join(domains) + (f" as restore point {point!r}" if point else "")
    steps: list[Step] = [
        Step("check-database", "check that the primary database answers", _check_database, mutating=False),
    ]
    if "logs" in domains:
        steps.append(
            Step("gather-logs", "pack the service's log files on each app host", _gather_logs, acts_on=hosts)
        )
    steps += [
        Step(
            "back-up",
            f"dump {what} in one snapshot into both encrypted copies",
            _back_up,
            acts_on=_buckets(target),
        ),
        Step(
            "verify-copies",
            "check both copies of every new backup against its manifest",
            _verify_copies,
            mutating=False,
        ),
    ]
    if point and is_rds_target(target):
        point_snapshot_id(str(point))  # a name RDS cannot take is refused before anything runs
        # On RDS a restore point is also a snapshot of the instance, copied into the other region: what a
        # restore to that point recovers the realtime domains from (recovery/restore/rds_source.py).
        steps.append(
            Step(
                "snapshot-point",
                f"snapshot the RDS instance as restore point {point!r} and copy it into the other region",
                _snapshot_point,
                acts_on=(f"RDS instance {target.writable.database.rds_instance_id}",),
            )
        )
    if "logs" in domains:
        steps.append(
            Step(
                "clean-host-files",
                "remove the packed log files from the app hosts",
                _clean_host_files,
                acts_on=hosts,
            )
        )
    return Runbook(name="backup", steps=tuple(steps), params=dict(params))


def backup_params(domains: Sequence[Domain], restore_point: str | None = None) -> dict[str, object]:
    chosen = list(dict.fromkeys(domains)) or list(DOMAINS)
    if restore_point is not None and not _POINT_NAME.match(restore_point):
        raise UsageError(
            f"restore point name {restore_point!r} must be 1-63 letters, digits, '.', '_' or '-'"
        )
    return {"domains": chosen, "restore_point": restore_point}


_POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")

register_runbook("backup", backup_runbook)


# Retention: `recovery backup prune` ---------------------------------------------------------------------


class PruneDecided(TypedOutput):
    backups: tuple[str, ...]
    wal_series: tuple[str, ...]
    kept_realtime: tuple[str, ...]


class BackupsDeleted(TypedOutput):
    deleted: tuple[str, ...]


class SeriesDeleted(TypedOutput):
    deleted_objects: dict[str, dict[str, int]]


def _prune_decide(ctx: RunContext) -> PruneDecided:
    """Decide again at run time and delete only what the operator confirmed and is still outside
    the retention."""
    policy = RetentionPolicy(daily=int(ctx.params["keep_daily"]), weekly=int(ctx.params["keep_weekly"]))
    ctx.progress("checking both copies of every backup")
    plan = plan_prune(ctx.target, policy)
    decision = confirmed_decision(plan, list(ctx.params["backups"]), list(ctx.params["wal_series"]))
    for name in decision.no_longer_doomed:
        ctx.note(f"{name}: no longer outside the retention; kept")
    reasons = plan.reasons()
    for name in decision.backups + decision.wal_series:
        ctx.note(f"{name}: delete: {reasons[name]}")
    return PruneDecided(
        backups=decision.backups, wal_series=decision.wal_series, kept_realtime=decision.kept_realtime
    )


def _prune_backups(ctx: RunContext) -> BackupsDeleted:
    decided = ctx.output("decide", PruneDecided)
    return BackupsDeleted(deleted=tuple(delete_backups(ctx.target, decided.backups, ctx.progress)))


def _prune_wal(ctx: RunContext) -> SeriesDeleted:
    decided = ctx.output("decide", PruneDecided)
    return SeriesDeleted(deleted_objects=delete_series(ctx.target, decided.wal_series, ctx.progress))


def _prune_check(ctx: RunContext) -> dict[str, object]:
    checked = check_after_prune(
        ctx.target,
        ctx.output("delete-backups", BackupsDeleted).deleted,
        list(ctx.output("delete-wal-series", SeriesDeleted).deleted_objects),
        ctx.output("decide", PruneDecided).kept_realtime,
    )
    return {"realtime_segments": checked}


def prune_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    """params: keep_daily, keep_weekly, backups and wal_series (what the operator confirmed)."""
    backups, series = list(params["backups"]), list(params["wal_series"])
    return Runbook(
        name="backup-prune",
        params=dict(params),
        confirm=f"deleting {len(backups)} backups and {len(series)} WAL series from both copies",
        steps=(
            Step(
                "decide",
                "check both copies of every backup and decide again what retention deletes",
                _prune_decide,
                mutating=False,
            ),
            Step(
                "delete-backups",
                f"delete {len(backups)} backups outside the retention from both copies",
                _prune_backups,
                acts_on=_buckets(target),
            ),
            Step(
                "delete-wal-series",
                f"delete {len(series)} WAL series no kept realtime backup needs from both copies",
                _prune_wal,
                acts_on=_buckets(target),
            ),
            Step(
                "check-after",
                "check that the deleted objects are gone and kept realtime backups still reach their WAL",
                _prune_check,
                mutating=False,
            ),
        ),
    )


def prune_params(policy: RetentionPolicy, plan: PrunePlan) -> dict[str, object]:
    return {
        "keep_daily": policy.daily,
        "keep_weekly": policy.weekly,
        "backups": plan.doomed_backups,
        "wal_series": plan.doomed_series,
    }


register_runbook("backup-prune", prune_runbook)
