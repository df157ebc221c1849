"""`lab status`: observe every part of the lab (I/O), then judge the snapshot (pure).

Parts: moto (the S3 buckets and the KMS key the toolkit uses, each probed with a cheap call of that
API), each database (role, replication lag, reachable), each host (SSH through
Fabric), the service on each host (version and /health), the active site (where the PRIMARY failover
record points), the front door (reachable, backend), and runs interrupted while the order service was
fenced (recovery/engine/interrupted.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from recovery.drivers import db, remote
from recovery.engine.interrupted import target_open_fences
from recovery.errors import RecoveryError, TargetNotFound
from recovery.lab import aws, service
from recovery.lab.plan import (
    KMS_ALIAS,
    LOCAL_BUCKET,
    PRIMARY_REGION,
    REMOTE_BUCKET,
    STANDBY_REGION,
    LabPlan,
    plan_lab,
)
from recovery.lab.processes import is_alive, port_open
from recovery.lab.state import ProcessRecord, read_state
from recovery.targets.load import load_target
from recovery.targets.model import Host, SiteName, Target
from recovery.watch.loop import read_status as read_watch_status


@dataclass(frozen=True)
class MotoStatus:
    url: str
    reachable: bool
    failures: tuple[str, ...] = ()  # each probed API that did not answer, with its reason


@dataclass(frozen=True)
class DatabaseStatus:
    site: SiteName
    address: str
    port: int
    reachable: bool
    role: str | None
    expected_role: str
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    streaming: bool | None = None
    error: str | None = None


@dataclass(frozen=True)
class HostStatus:
    name: str
    site: SiteName
    address: str
    ssh_port: int
    ssh_reachable: bool
    service_reachable: bool
    service_healthy: bool
    service_version: str | None
    error: str | None = None


@dataclass(frozen=True)
class FrontDoorStatus:
    url: str
    reachable: bool
    backend: str | None
    backend_site: SiteName | None


@dataclass(frozen=True)
class WatchStatus:
    """`recovery watch` as lab up started it: recorded in lab.json, alive, and what it last decided."""

    recorded: bool
    running: bool
    pid: int | None = None
    decision: str | None = None  # "nothing: every check is within its threshold"
    metrics_url: str | None = None


@dataclass(frozen=True)
class LabStatus:
    lab_dir: str
    release: str | None
    moto: MotoStatus
    databases: tuple[DatabaseStatus, ...]
    hosts: tuple[HostStatus, ...]
    active_site: SiteName | None
    records: dict[str, str]
    front_door: FrontDoorStatus
    replication_lag_max_seconds: float
    # Runs that died while the order service was fenced: each says so and names the command that ends it.
    interrupted_fenced_runs: tuple[str, ...] = ()
    watch: WatchStatus = WatchStatus(recorded=False, running=False)
    writer: SiteName = "primary"  # the site the site record names as holding the writable database

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["problems"] = problems(self)
        doc["healthy"] = not doc["problems"]
        return doc


def problems(status: LabStatus) -> list[str]:
    """Every reason the lab is not healthy, one sentence each (empty: healthy)."""
    found: list[str] = []
    if not status.moto.reachable:
        found += [f"moto server at {status.moto.url}: {failure}" for failure in status.moto.failures] or [
            f"moto server at {status.moto.url} is not reachable"
        ]
    for d in status.databases:
        if not d.reachable:
            found.append(f"{d.site} database at {d.address}:{d.port} is not reachable")
            continue
        if d.role != d.expected_role:
            found.append(f"{d.site} database is {d.role}, expected {d.expected_role}")
        if d.expected_role == "standby":
            if not d.streaming:
                found.append(f"{d.site} database is not streaming from the primary")
            if d.lag_seconds is not None and d.lag_seconds > status.replication_lag_max_seconds:
                found.append(
                    f"{d.site} database lags {d.lag_seconds:.1f} s "
                    f"(limit {status.replication_lag_max_seconds:.0f} s)"
                )
    for h in status.hosts:
        if not h.ssh_reachable:
            found.append(f"host {h.name} is not reachable over SSH")
        if not h.service_reachable:
            found.append(f"order service on {h.name} is not reachable")
        elif not h.service_healthy:
            found.append(f"order service on {h.name} reports unhealthy")
    if status.active_site is None:
        found.append("the PRIMARY failover record points at no lab host")
    elif status.active_site != status.writer:
        found.append(
            f"the PRIMARY failover record points at the {status.active_site} site, but the {status.writer} "
            "site holds the writable database"
        )
    if not status.front_door.reachable:
        found.append(f"front door at {status.front_door.url} is not reachable")
    elif status.front_door.backend_site != status.active_site:
        found.append(f"front door forwards to {status.front_door.backend}, not to the active site")
    found += status.interrupted_fenced_runs
    if status.watch.recorded and not status.watch.running:
        found.append(f"the watch (pid {status.watch.pid}) is not running; `recovery lab up` starts it again")
    return found


def _observe_watch(plan: LabPlan, record: ProcessRecord | None, state_dir: Path) -> WatchStatus:
    if record is None:
        return WatchStatus(recorded=False, running=False)
    running = is_alive(record.pid, record.start_ticks)
    doc = read_watch_status(state_dir) or {}
    decision = doc.get("decision") if doc.get("pid") == record.pid else None
    said = f"{decision['action']}: {decision['reason']}" if isinstance(decision, dict) else None
    url = f"http://127.0.0.1:{plan.watch_metrics_port}/metrics"
    return WatchStatus(True, running, record.pid, said, url)


def _site_of(plan: LabPlan, address: str | None) -> SiteName | None:
    return next((s.site for s in plan.sites if s.address == address), None)


def _observe_databases(target: Target) -> tuple[DatabaseStatus, ...]:
    """Both databases, the writer first: the site record says which one should take writes."""
    found: list[DatabaseStatus] = []
    writer_view: db.ReplicationStatus | None = None
    for site in (target.writable, target.replica):
        database = site.database
        expected: SiteName = "primary" if site.name == target.writer else "standby"
        try:
            observed = db.replication_status(database)
        except RecoveryError as exc:
            found.append(
                DatabaseStatus(
                    site=site.name,
                    address=database.address,
                    port=database.port,
                    reachable=False,
                    role=None,
                    expected_role=expected,
                    error=exc.message,
                )
            )
            continue
        if expected == "primary":
            writer_view = observed
            found.append(
                DatabaseStatus(
                    site=site.name,
                    address=database.address,
                    port=database.port,
                    reachable=True,
                    role=observed.role,
                    expected_role="primary",
                )
            )
            continue
        replica = _replica_of(writer_view, site.name)
        found.append(
            DatabaseStatus(
                site=site.name,
                address=database.address,
                port=database.port,
                reachable=True,
                role=observed.role,
                expected_role="standby",
                streaming=observed.receiving,
                lag_bytes=replica.lag_bytes if replica else None,
                lag_seconds=replica.lag_seconds if replica else observed.replay_delay_seconds,
            )
        )
    return tuple(sorted(found, key=lambda d: d.site))


def _replica_of(view: db.ReplicationStatus | None, name: str) -> db.ReplicaLag | None:
    """The writer's view of the standby `name` (its walreceiver reports the site name, cluster_name)."""
    if view is None:
        return None
    named = [r for r in view.replicas if r.application_name == name]
    return named[0] if named else (view.replicas[0] if len(view.replicas) == 1 else None)


def _observe_host(host: Host, site: SiteName) -> HostStatus:
    error = None
    try:
        ssh_ok = remote.run(host, "true", timeout=10).ok
    except RecoveryError as exc:
        ssh_ok, error = False, exc.message
    health = service.health(host.address, host.service_port)
    return HostStatus(
        name=host.name,
        site=site,
        address=host.address,
        ssh_port=host.ssh_port,
        ssh_reachable=ssh_ok,
        service_reachable=health.reachable,
        service_healthy=health.healthy,
        service_version=health.version,
        error=error,
    )


def _observe_records(plan: LabPlan, zone_id: str | None) -> dict[str, str]:
    if not zone_id:
        return {}
    try:
        return aws.current_records(plan.moto_url, zone_id)
    except Exception:  # moto down or the zone gone: reported as "no active site"
        return {}


def _observe_front_door(plan: LabPlan) -> FrontDoorStatus:
    reachable = port_open("127.0.0.1", plan.front_door_port, timeout=2)
    backend = None
    state_file = plan.front_door_dir / "backend.json"
    try:
        backend = json.loads(state_file.read_text()).get("backend")
    except (OSError, ValueError):
        backend = None
    address = backend.rsplit(":", 1)[0] if backend else None
    return FrontDoorStatus(
        url=plan.front_door_url, reachable=reachable, backend=backend, backend_site=_site_of(plan, address)
    )


def observe_moto(url: str, kms_key: str | None) -> MotoStatus:
    """Probe the AWS APIs the toolkit uses, one cheap call each: HEAD of both backup buckets and a
    describe of the backup key. (moto's own /moto-api/data.json answers 500 once buckets hold objects,
    so it cannot tell a healthy server from a broken one.)"""

    def head_bucket(bucket: str, region: str) -> Callable[[], object]:
        return lambda: aws.client("s3", url, region).head_bucket(Bucket=bucket)

    key = kms_key or KMS_ALIAS
    probes: list[tuple[str, Callable[[], object]]] = [
        (f"S3 bucket {LOCAL_BUCKET}", head_bucket(LOCAL_BUCKET, PRIMARY_REGION)),
        (f"S3 bucket {REMOTE_BUCKET}", head_bucket(REMOTE_BUCKET, STANDBY_REGION)),
        (f"KMS key {key}", lambda: aws.client("kms", url, PRIMARY_REGION).describe_key(KeyId=key)),
    ]
    failures: list[str] = []
    for what, call in probes:
        try:
            call()
        except (BotoCoreError, ClientError) as exc:
            failures.append(f"{what} did not answer ({_reason(exc)})")
    return MotoStatus(url=url, reachable=not failures, failures=tuple(failures))


def _reason(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')} {error.get('Message', '')}".strip()
    return str(exc)


def observe(lab_dir: Path) -> LabStatus:
    lab_dir = lab_dir.resolve()
    state = read_state(lab_dir / "lab.json")
    if state is None or not (lab_dir / "target.yaml").is_file():
        raise TargetNotFound(f"no lab at {lab_dir}; run `recovery lab up` first (or pass --lab-dir)")
    plan = plan_lab(lab_dir, state.base_port, allow_reserved=True)
    target = load_target(lab_dir / "target.yaml")
    hosts = [(h, site.name) for site in (target.primary, target.standby) for h in site.hosts]
    with ThreadPoolExecutor(max_workers=6) as pool:
        moto = pool.submit(observe_moto, plan.moto_url, state.aws.get("kms_key_arn"))
        records = pool.submit(_observe_records, plan, state.aws.get("hosted_zone_id"))
        databases = pool.submit(_observe_databases, target)
        host_futures = [pool.submit(_observe_host, h, s) for h, s in hosts]
        door = pool.submit(_observe_front_door, plan)
        fenced = pool.submit(target_open_fences, target.state_dir)
    found = records.result()
    # The command names this lab by its target file: `--target lab` means the default lab only.
    target_ref = str(lab_dir / "target.yaml")
    return LabStatus(
        lab_dir=str(lab_dir),
        release=state.release,
        moto=moto.result(),
        databases=databases.result(),
        hosts=tuple(f.result() for f in host_futures),
        active_site=_site_of(plan, found.get("PRIMARY")),
        records=found,
        front_door=door.result(),
        replication_lag_max_seconds=target.objectives.replication_lag_max_seconds,
        interrupted_fenced_runs=tuple(run.sentence(target_ref) for run in fenced.result()),
        watch=_observe_watch(plan, state.process("watch"), target.state_dir),
        writer=target.writer,
    )
