"""The upgrade runbook: preflight, a restore point, deploy, health gates over a watch window.

Steps (each journaled, so `recovery rollback` can find the restore point and the release that ran
before, also after this process was killed):

1. preflight       `recovery.release.preflight` (every check `recovery preflight` runs), every host on
                   one release, and the latency baseline of the running release (`gates.measure_baseline`)
2. restore-point   one consistent snapshot of the database dumped to files (schema + every domain); then
                   the point is restored beside live and verified in the background (runbooks/speculative)
   snapshot-point  (RDS targets) the instance snapshotted as restore point <run id>, copied into the
                   other region: a safe copy AWS keeps (`recovery restore --point <run id>`)
3. deploy          playbooks/deploy.yml: unpack, migrate once, switch `current`, restart, wait for health
4. gates           `recovery.release.gates.watch_gates` over the watch window (health and release of every
                   host, error rate, latency against the baseline, smoke test, invariants)
5. discard-copy    the upgrade held: drop the copy restored ahead for a rollback

A failed step raises an error whose code names the gate (`gate.migrate`, `gate.health`, ...); the
rollback runbook (recovery/runbooks/rollback.py) undoes the attempt. docs/upgrade-rollback.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from recovery.backup.keys import key_provider
from recovery.drivers.ansible import PlaybookResult, run_files_dir, run_playbook
from recovery.drivers.aws import AwsDriver
from recovery.engine import Runbook, RunContext, Step, register_runbook
from recovery.errors import PreconditionFailed, RecoveryError, UsageError
from recovery.intake.book import pending_notice_vars
from recovery.paths import PLAYBOOKS_DIR
from recovery.release import gates
from recovery.release.artifacts import build_release_artifact
from recovery.release.catalog import get_release
from recovery.release.installed import read_target_releases
from recovery.release.preflight import CHECK_NAMES, PreflightOptions, ensure_passed, run_preflight
from recovery.restore.database import restore_id_for
from recovery.restore.rds_source import is_rds_target, point_copy_key, take_point_snapshot
from recovery.runbooks import speculative
from recovery.runbooks.upgrade_point import (
    RestorePoint,
    restore_point_file_id,
    restore_points_dir,
    take_restore_point,
)
from recovery.targets.model import Target

__all__ = [
    "RestorePoint",
    "restore_point_file_id",
    "restore_points_dir",
    "take_restore_point",
]

RUNBOOK = "upgrade"
DEFAULT_WATCH_SECONDS = 10.0
DEFAULT_HEALTH_TIMEOUT = 20  # seconds the deploy waits for /health: a release that never answers fails fast
GATE_INTERVAL_SECONDS = 1.0
# How long the gates wait for the copy restored ahead before they watch: the latency gate must not
# judge a release while a restore competes with it for the CPU (a million orders: about 1.5 minutes).
COPY_WAIT_SECONDS = 900.0


class GateFailed(RecoveryError):
    """A step or gate of the upgrade found the release bad; `code` is `gate.<name>`."""

    def __init__(self, gate: str, reason: str) -> None:
        super().__init__(f"gate {gate} failed: {reason}", code=f"gate.{gate}")
        self.gate = gate
        self.reason = reason


def classify_deploy_failure(task: str | None) -> str:
    """Which gate a failed deploy task stands for (its task names are the role's, see tasks/*.yml)."""
    name = (task or "").lower()
    if "migration" in name or "schema" in name:
        return "migrate"
    if "health" in name or "start" in name or "restart" in name:
        return "health"
    return "deploy"


def running_release(releases: Mapping[str, str | None], upgrading_to: str) -> str:
    """The one release every host runs, which the upgrade replaces and a rollback returns to. Pure;
    PreconditionFailed (exit 3) when hosts are unknown, disagree, or already run the new release."""
    unknown = sorted(host for host, release in releases.items() if release is None)
    if unknown:
        raise PreconditionFailed(
            f"cannot tell which release {unknown[0]} runs; fix the host first", code="preflight.hosts"
        )
    running = sorted({str(r) for r in releases.values()})
    if not running:
        raise PreconditionFailed("the target lists no hosts", code="preflight.hosts")
    if len(running) > 1:
        raise PreconditionFailed(
            f"the hosts run different releases ({', '.join(running)}); run `recovery rollback` first",
            code="preflight.hosts",
        )
    if running[0] == upgrading_to:
        raise PreconditionFailed(
            f"every host already runs {upgrading_to}; nothing to upgrade", code="preflight.same_release"
        )
    return running[0]


# Steps -------------------------------------------------------------------------------------------


def _preflight(ctx: RunContext) -> dict[str, Any]:
    release = get_release(str(ctx.params["release"]))
    skip = frozenset(str(s) for s in ctx.params.get("skip_checks") or ())
    # The upgrade takes its own restore point of every domain before it changes anything.
    report = run_preflight(ctx.target, release, PreflightOptions(restore_point_pending=True, skip=skip))
    ensure_passed(report)
    hosts = read_target_releases(ctx.target)
    previous = running_release({h.host: h.release for h in hosts}, release.name)
    baseline = gates.measure_baseline(ctx.target)
    shown = f"{baseline.p50_ms:.1f} ms median" if baseline else "no baseline (too few answered)"
    ctx.note(
        f"upgrade {previous} -> {release.name}; preflight passed in {report.seconds:.1f} s; "
        f"probe orders on {previous}: {shown}"
    )
    return {
        "previous_release": previous,
        "release": release.name,
        "hosts": {h.host: h.release for h in hosts},
        "checks": {f"{c.name} {c.subject}": c.status for c in report.checks},
        "preflight_seconds": round(report.seconds, 3),
        "baseline": None
        if baseline is None
        else {
            "p50_ms": round(baseline.p50_ms, 2),
            "p95_ms": round(baseline.p95_ms, 2),
            "requests": baseline.requests,
        },
    }


def _restore_point(ctx: RunContext) -> dict[str, Any]:
    previous = str(ctx.outputs["preflight"]["previous_release"])
    directory = restore_points_dir(ctx.target) / ctx.run_id
    keys = key_provider(ctx.target.keys, AwsDriver(ctx.target.aws))
    point = take_restore_point(ctx.target.writable.database, directory, previous, keys)
    ctx.note(f"restore point at {point.taken_at} (schema {point.schema_version}, {point.size_bytes} bytes)")
    if ctx.params.get("restore_ahead", True):
        started = speculative.start_copy(ctx.target, point, restore_id_for(ctx.run_id))
        ctx.note(f"restoring the point beside live ahead of a rollback: {started}")
    return point.to_json()


def _snapshot_point(ctx: RunContext) -> dict[str, Any]:
    """On RDS, the restore point is also a snapshot of the instance and its copy in the other region,
    named after this run: a safe copy kept by AWS that outlives the controller's files, which
    `recovery restore --point <run id>` recovers from like any restore point."""
    ctx.progress(f"snapshotting the RDS instance as restore point {ctx.run_id!r}")
    taken = take_point_snapshot(ctx.target, ctx.run_id)
    ctx.note(f"RDS snapshot {taken.snapshot_id} carries restore point {ctx.run_id!r} in both regions")
    return {"point": ctx.run_id, "snapshot": taken.snapshot_id, "local": taken.local, "remote": taken.remote}


def deploy_release(target: Target, release: str, health_timeout: int, run_id: str) -> PlaybookResult:
    artifact = build_release_artifact(release, target.state_dir / "artifacts")
    return run_playbook(
        target.inventory,
        str(PLAYBOOKS_DIR / "deploy.yml"),
        extravars={
            "order_service_release": release,
            "order_service_artifact": str(artifact),
            "order_service_health_timeout": health_timeout,
            **pending_notice_vars(target),
        },
        private_data_dir=run_files_dir(target.state_dir, run_id, "deploy"),
    )


def _deploy(ctx: RunContext) -> dict[str, Any]:
    release = str(ctx.params["release"])
    started = datetime.now().astimezone().isoformat()
    result = deploy_release(ctx.target, release, int(ctx.params["health_timeout"]), ctx.run_id)
    if not result.ok:
        task = result.failed_task.task if result.failed_task else None
        message = result.failed_task.message if result.failed_task else f"ended {result.status}"
        where = f" on {result.failed_task.host}" if result.failed_task else ""
        raise GateFailed(classify_deploy_failure(task), f"deploy task {task!r}{where}: {message}")
    return {"release": release, "started_at": started, "playbook_seconds": round(result.duration, 3)}


def _gates(ctx: RunContext) -> dict[str, Any]:
    release = str(ctx.params["release"])
    waited = _wait_for_copy(ctx)
    base = ctx.outputs["preflight"].get("baseline")
    baseline = (
        None
        if not base
        else gates.LatencyBaseline(float(base["p50_ms"]), float(base["p95_ms"]), int(base["requests"]))
    )
    window = float(ctx.params["watch_seconds"])
    report = gates.watch_gates(
        ctx.target,
        max(window, GATE_INTERVAL_SECONDS),
        GATE_INTERVAL_SECONDS,
        baseline=baseline,
        release=release,
        deploy_started=datetime.fromisoformat(str(ctx.outputs["deploy"]["started_at"])),
    )
    for sample in report.samples:
        ctx.progress(
            f"{sample.at_s:.1f} s: "
            + ", ".join(f"{r.gate} {'ok' if r.passed else 'FAILED'}" for r in sample.results)
        )
    if not report.passed:
        raise GateFailed(str(report.failed_gate), report.reason)
    return {
        "rounds": len(report.samples),
        "requests": report.requests,
        "errors": report.errors,
        "p95_ms": None if report.p95_ms is None else round(report.p95_ms, 1),
        "watch_seconds": report.watched_s,
        "waited_for_copy_s": waited,
        "reason": report.reason,
    }


def _point(ctx: RunContext) -> RestorePoint:
    return RestorePoint.from_json(ctx.outputs["restore-point"])


def _wait_for_copy(ctx: RunContext) -> float:
    if not ctx.params.get("restore_ahead", True):
        return 0.0
    state = speculative.wait_for_copy(
        ctx.target, _point(ctx), restore_id_for(ctx.run_id), timeout=COPY_WAIT_SECONDS
    )
    ctx.note(f"copy restored ahead: {state.copy.database if state.copy else 'none'} ({state.reason})")
    return round(state.waited_s, 3)


def _discard_copy(ctx: RunContext) -> dict[str, Any]:
    restore_id = restore_id_for(ctx.run_id)
    dropped = speculative.discard_copy(ctx.target, _point(ctx), restore_id)
    if dropped:
        ctx.note(f"the upgrade held: dropped the copy restored ahead ({restore_id})")
    return {"restore_id": restore_id, "dropped": dropped}


def upgrade_params(
    release: str,
    *,
    watch_seconds: float = DEFAULT_WATCH_SECONDS,
    health_timeout: int = DEFAULT_HEALTH_TIMEOUT,
    skip_checks: Sequence[str] = (),
    restore_ahead: bool = True,
) -> dict[str, Any]:
    """Validated parameters of an upgrade run (bad input is refused before anything runs)."""
    get_release(release)  # UsageError for an unknown release
    if watch_seconds < 0:
        raise UsageError(f"--watch must be 0 seconds or more, not {watch_seconds}")
    if watch_seconds > 3600:
        raise UsageError(f"--watch of {watch_seconds:g} s is over an hour; give at most 3600 s")
    if health_timeout < 1:
        raise UsageError(f"--health-timeout must be at least 1 second, not {health_timeout}")
    unknown = sorted(set(skip_checks) - set(CHECK_NAMES))
    if unknown:
        raise UsageError(f"unknown preflight check {unknown[0]!r}; checks are: {', '.join(CHECK_NAMES)}")
    return {
        "release": release,
        "watch_seconds": watch_seconds,
        "health_timeout": health_timeout,
        "skip_checks": sorted(set(skip_checks)),
        "restore_ahead": restore_ahead,
    }


def upgrade_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    release = str(params["release"])
    hosts = tuple(h.name for h in target.hosts())
    db = target.writable.database
    database = f"{db.address}:{db.port}/{db.name}"
    if is_rds_target(target):
        point_copy_key(target)  # a target that cannot copy the snapshot is refused before anything runs
    rds_snapshot = (
        Step(
            "snapshot-point",
            "snapshot the RDS instance as this run's restore point and copy it into the other region",
            _snapshot_point,
            acts_on=(f"RDS instance {db.rds_instance_id}",),
        ),
    )
    return Runbook(
        name=RUNBOOK,
        params=dict(params),
        steps=(
            Step(
                "preflight",
                f"check that {release} may be deployed on every host",
                _preflight,
                mutating=False,
                acts_on=(database, *hosts),
            ),
            Step(
                "restore-point",
                "dump one consistent snapshot of the database to files",
                _restore_point,
                acts_on=(database,),
            ),
            *(rds_snapshot if is_rds_target(target) else ()),
            Step(
                "deploy",
                f"deploy {release}: unpack, migrate, switch current, restart, wait for health",
                _deploy,
                acts_on=hosts,
            ),
            Step(
                "gates",
                "watch health, errors, latency, the smoke test and the invariants over the watch window",
                _gates,
                mutating=False,
                acts_on=hosts,
            ),
            Step(
                "discard-copy",
                "drop the copy of the restore point restored ahead for a rollback",
                _discard_copy,
                acts_on=(database,),
            ),
        ),
    )


register_runbook(RUNBOOK, upgrade_runbook)
