"""The realtime backup runbooks: `wal-archive` (set up WAL archiving on the primary) and `backup-realtime`
(a base backup of orders and transactions now).

`wal-archive` runs playbooks/wal-archive.yml against the primary site's database host: the role writes
the archive settings and restarts PostgreSQL when archive_mode changes (a restart of the primary: the
command asks first). `backup-realtime` refuses at once when archiving is off (a base backup would
otherwise wait a minute for a segment that is never archived), then streams a base backup into both
copies and checks both copies against their manifests. The watch runs both on its schedule; the CLI runs
them on demand (`recovery backup setup-archiving`, `recovery backup realtime`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recovery.backup.daily import verify_new_copies
from recovery.backup.realtime import database_host, take_base_backup, wal_archive_extravars
from recovery.drivers import db
from recovery.drivers.ansible import require_success, run_files_dir, run_playbook
from recovery.engine import Runbook, RunContext, Step, TypedOutput, register_runbook
from recovery.errors import PreconditionFailed
from recovery.paths import PLAYBOOKS_DIR
from recovery.targets.model import Target

WAL_ARCHIVE_PLAYBOOK = PLAYBOOKS_DIR / "wal-archive.yml"
SETUP_COMMAND = "recovery backup setup-archiving"
REALTIME_COMMAND = "recovery backup realtime"


class ArchivingSetUp(TypedOutput):
    host: str
    changed: int


class RealtimeTaken(TypedOutput):
    backups: tuple[str, ...]
    position: str
    start_lsn: str
    end_lsn: str


def archiving_on(target: Target) -> bool:
    """Whether the primary archives WAL (archive_mode on and an archive command set)."""
    with db.connect(target.writable.database, dbname="postgres", what="the primary database") as conn:
        row = conn.execute(
            "SELECT current_setting('archive_mode'), current_setting('archive_command')"
        ).fetchone()
    return row is not None and str(row[0]) in ("on", "always") and bool(str(row[1]).strip())


def _set_up(ctx: RunContext) -> ArchivingSetUp:
    host = database_host(ctx.target)
    ctx.progress(f"running {WAL_ARCHIVE_PLAYBOOK.name} on {host.name}")
    result = require_success(
        run_playbook(
            ctx.target.inventory,
            str(WAL_ARCHIVE_PLAYBOOK),
            extravars=wal_archive_extravars(ctx.target),
            private_data_dir=run_files_dir(ctx.target.state_dir, ctx.run_id, "wal-archive"),
        )
    )
    stats = result.hosts.get(host.name)
    return ArchivingSetUp(host=host.name, changed=stats.changed if stats else 0)


def _check_archiving(ctx: RunContext) -> dict[str, object]:
    if not archiving_on(ctx.target):
        raise PreconditionFailed(
            f"the primary database of {ctx.target.name} does not archive WAL, so a realtime backup could "
            f"never be completed; run `{SETUP_COMMAND} --target {ctx.target.name} --yes` first",
            code="backup.archiving_off",
        )
    return {"archiving": True}


def _base_backup(ctx: RunContext) -> RealtimeTaken:
    ctx.progress("streaming a base backup of the primary into both encrypted copies")
    base = take_base_backup(ctx.target)
    for manifest in base.manifests:
        ctx.note(f"{manifest.backup_id}: stored {manifest.sizes.stored} bytes", backup_id=manifest.backup_id)
    return RealtimeTaken(
        backups=tuple(manifest.backup_id for manifest in base.manifests),
        position=base.manifests[0].source.at.isoformat(),
        start_lsn=base.wal_range.start_lsn,
        end_lsn=base.wal_range.end_lsn,
    )


def _verify(ctx: RunContext) -> dict[str, object]:
    taken = ctx.output("base-backup", RealtimeTaken)
    return {"copies": verify_new_copies(ctx.target, list(taken.backups))}


def wal_archive_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    host = database_host(target).name
    return Runbook(
        name="wal-archive",
        steps=(
            Step(
                "set-up-archiving",
                "turn on WAL archiving into the host's spool (restarts the primary when it changes)",
                _set_up,
                acts_on=(host,),
            ),
        ),
        params=dict(params),
        confirm=f"setting up WAL archiving may restart the primary database of {target.name}",
    )


def realtime_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    buckets = (f"s3://{target.backup.local.bucket}", f"s3://{target.backup.remote.bucket}")
    return Runbook(
        name="backup-realtime",
        steps=(
            Step("check-archiving", "check that the primary archives WAL", _check_archiving, mutating=False),
            Step(
                "base-backup",
                "stream a base backup of orders and transactions into both encrypted copies",
                _base_backup,
                acts_on=buckets,
            ),
            Step(
                "verify-copies",
                "check both copies of the new backups against their manifests",
                _verify,
                mutating=False,
            ),
        ),
        params=dict(params),
    )


register_runbook("wal-archive", wal_archive_runbook)
register_runbook("backup-realtime", realtime_runbook)
