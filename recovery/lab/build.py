"""`lab up`: build the lab, or complete a partly running one.

Independent parts start concurrently (moto + AWS resources, PostgreSQL primary + standby, the two sshds);
then the inventory and target are written, the front door starts, release v1 is deployed through the
deploy playbook and the database is seeded. Every process is recorded in lab.json as soon as it runs;
if anything fails, what this run started is stopped again and one line names what failed.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recovery.drivers import db
from recovery.errors import EnvironmentProblem, RecoveryError, UsageError
from recovery.lab import aws, postgres, render, service, sshd
from recovery.lab.pgbin import resolve_pg_bin, server_version
from recovery.lab.plan import (
    DB_OWNER,
    DB_SUPERUSER,
    FRONT_DOOR_ADDRESS,
    SHOP_RECORD,
    LabPlan,
    plan_lab,
)
from recovery.lab.processes import (
    LabUser,
    can_traverse,
    give_to,
    is_alive,
    lab_user,
    port_free,
    spawn_daemon,
    start_ticks,
    wait_port,
)
from recovery.lab.state import LabState, ProcessRecord, read_state, write_state
from recovery.lab.teardown import stop_records
from recovery.notify.templates import PENDING_EVENT, load_templates
from recovery.targets.load import write_target
from recovery.watch.act import recovery_argv

DEFAULT_ORDERS = 10_000


@dataclass(frozen=True)
class UpOptions:
    lab_dir: Path
    base_port: int
    orders: int = DEFAULT_ORDERS
    pg_bin: Path | None = None
    deploy: bool = True
    watch: bool = True  # start `recovery watch` (and wait for its first backups)


@dataclass
class UpReport:
    lab_dir: Path
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)
    seeded: dict[str, int] | None = None
    release: str | None = None


class _Recorder:
    """Writes lab.json after every started process; remembers what this run started (to undo it)."""

    def __init__(self, state: LabState, path: Path) -> None:
        self.state, self.path = state, path
        self.started: list[ProcessRecord] = []
        self._lock = threading.Lock()

    def add(self, record: ProcessRecord) -> None:
        with self._lock:
            self.state = self.state.with_process(record)
            self.started.append(record)
            write_state(self.state, self.path)

    def update(self, **changes: object) -> None:
        with self._lock:
            self.state = self.state.model_copy(update=changes)
            write_state(self.state, self.path)


def _alive(state: LabState, name: str) -> bool:
    record = state.process(name)
    return record is not None and is_alive(record.pid, record.start_ticks)


def up(options: UpOptions) -> UpReport:
    plan = plan_lab(options.lab_dir, options.base_port)
    if options.orders < 0:
        raise UsageError(
            f"--orders {options.orders} is negative; give a number of orders (0 to skip seeding)"
        )
    user = lab_user()
    sshd.sshd_binary()
    _prepare_lab_dir(user, plan)
    previous = read_state(plan.state_file)
    if previous is not None and previous.base_port != plan.base_port:
        raise UsageError(
            f"the lab at {plan.lab_dir} uses base port {previous.base_port}; run `recovery lab down` first "
            f"or use --base-port {previous.base_port}"
        )
    pg_bin = resolve_pg_bin(user, options.pg_bin)
    state = _with_restarted_postmasters(
        previous or LabState(lab_dir=plan.lab_dir, base_port=plan.base_port, run_as=user.name)
    )
    state = state.model_copy(update={"pg_bin": pg_bin, "pg_version": server_version(pg_bin)})
    report = UpReport(lab_dir=plan.lab_dir)
    missing = [n for n in _process_names(plan) if not _alive(state, n)]
    report.already_running = [n for n in _process_names(plan) if n not in missing]
    _check_ports(plan, missing, state)
    recorder = _Recorder(
        state.model_copy(update={"processes": tuple(p for p in state.processes if _alive(state, p.name))}),
        plan.state_file,
    )
    write_state(recorder.state, plan.state_file)
    try:
        _build(user, plan, pg_bin, options, recorder, missing, report)
    except BaseException:
        stop_records(user, recorder.started, pg_bin)
        recorder.state = recorder.state.model_copy(
            update={"processes": tuple(p for p in recorder.state.processes if p not in recorder.started)}
        )
        write_state(recorder.state, plan.state_file)
        raise
    report.started = [r.name for r in recorder.started]
    return report


def _with_restarted_postmasters(state: LabState) -> LabState:
    """The lab's own postmasters restarted outside `lab up` (wal-archive.yml restarts the primary to turn
    archiving on): a recorded server whose pid is gone, while its data dir's postmaster.pid names a live
    postgres serving that very data dir, is recorded again under its new pid instead of being missing
    (its port would then look foreign)."""
    for record in state.processes:
        if record.kind != "postgres" or record.data_dir is None or is_alive(record.pid, record.start_ticks):
            continue
        pid = postgres.running_postmaster(record.data_dir)
        if pid is not None:
            state = state.with_process(
                record.model_copy(update={"pid": pid, "start_ticks": start_ticks(pid)})
            )
    return state


def _process_names(plan: LabPlan) -> list[str]:
    names = ["moto"]
    for s in plan.sites:
        names += [f"postgres-{s.site}", f"sshd-{s.site}"]
    return [*names, "frontdoor"]


def _prepare_lab_dir(user: LabUser, plan: LabPlan) -> None:
    plan.lab_dir.mkdir(parents=True, exist_ok=True)
    plan.lab_dir.chmod(0o755)
    if not can_traverse(user, plan.lab_dir):
        raise EnvironmentProblem(
            f"the lab user {user.name} cannot reach {plan.lab_dir}; choose a --lab-dir under a directory it "
            "can traverse (e.g. /var/tmp) or make the parents searchable (chmod o+x)"
        )
    for folder in (
        plan.state_dir,
        plan.artifacts_dir,
        plan.moto_dir,
        plan.front_door_dir,
        plan.inventory_dir,
        plan.lab_dir / "hosts",
        plan.lab_dir / "pg",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    for s in plan.sites:
        s.app_dir.mkdir(parents=True, exist_ok=True)
        give_to(user, s.host_dir, s.app_dir)


def _check_ports(plan: LabPlan, missing: list[str], state: LabState) -> None:
    wanted = {
        "watch metrics": "watch",
        "front door": "frontdoor",
        "moto server": "moto",
        "primary sshd": "sshd-primary",
        "standby sshd": "sshd-standby",
        "primary PostgreSQL": "postgres-primary",
        "standby PostgreSQL": "postgres-standby",
    }
    for part, address, port in plan.listeners():
        name = wanted.get(part)
        if name is None:  # the order service: busy is fine when it is our own deployed service
            if state.release is not None:
                continue
        elif name not in missing:
            continue
        if not port_free(address, port):
            raise EnvironmentProblem(
                f"port {address}:{port} ({part}) is in use; "
                "stop what listens there or pick another --base-port"
            )


def _passwords(user: LabUser, plan: LabPlan) -> dict[str, str]:
    """The roles' passwords: those the controller's passfile holds, any missing role's made new; every
    passfile is (re)written so each holds its reader's roles only and belongs to its reader (a lab from
    before the replication role had one passfile, the lab user's, with the superuser in it)."""
    found = render.parse_pgpass(plan.pgpass.read_text()) if plan.pgpass.is_file() else {}
    if DB_SUPERUSER not in found:  # a new lab (an existing cluster keeps its superuser's password)
        found = {}
    passwords = {role: found.get(role) or secrets.token_urlsafe(24) for role in postgres.CONTROLLER_ROLES}
    postgres.write_pgpass(user, plan, passwords)
    return passwords


def _ignore(_: object) -> None:
    """Adapts a call whose result is not needed to `_timed`."""


def _timed(report: UpReport, name: str, fn: Callable[[], None]) -> None:
    started = time.monotonic()
    fn()
    report.steps[name] = round(time.monotonic() - started, 3)


def _build(
    user: LabUser,
    plan: LabPlan,
    pg_bin: Path,
    options: UpOptions,
    recorder: _Recorder,
    missing: list[str],
    report: UpReport,
) -> None:
    passwords = _passwords(user, plan)
    aws_ids: dict[str, str] = {}

    def moto_part() -> None:
        if "moto" in missing:
            aws.start_moto(plan, recorder.add)
        aws_ids.update(aws.provision(plan))

    def postgres_part() -> None:
        if "postgres-primary" in missing:
            postgres.init_primary(user, plan, pg_bin, passwords[DB_SUPERUSER])
            postgres.start(user, plan, plan.primary, pg_bin, recorder.add)
        postgres.create_roles(plan, pg_bin, passwords)
        if "postgres-standby" in missing:
            postgres.make_standby(user, plan, pg_bin)
            postgres.start(user, plan, plan.standby, pg_bin, recorder.add)
        elif postgres.set_primary_conninfo(user, plan):  # a running standby of an older lab
            postgres.reload(user, plan.standby, pg_bin)

    def sshd_part() -> None:
        sshd.prepare_keys(user, plan)
        for s in plan.sites:
            if f"sshd-{s.site}" in missing:
                sshd.start(user, s, recorder.add)

    parts = {"moto+aws": moto_part, "postgres": postgres_part, "sshd": sshd_part}
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        futures = {name: pool.submit(_timed, report, name, fn) for name, fn in parts.items()}
    errors = [f.exception() for f in futures.values() if f.exception() is not None]
    if errors:
        first = next((e for e in errors if isinstance(e, RecoveryError)), errors[0])
        raise first  # type: ignore[misc]
    recorder.update(aws=aws_ids)
    _timed(report, "inventory+target", lambda: _write_descriptions(user, plan, pg_bin, aws_ids))
    if "frontdoor" in missing:
        _timed(report, "frontdoor", lambda: _start_front_door(plan, aws_ids, recorder.add))
    if options.deploy:
        _deploy_and_seed(plan, pg_bin, options, recorder, report)
    if options.watch and options.deploy:
        _timed(report, "watch", lambda: _start_watch(plan, recorder))


def _deploy_and_seed(
    plan: LabPlan, pg_bin: Path, options: UpOptions, recorder: _Recorder, report: UpReport
) -> None:
    state = recorder.state
    healthy = all(service.health(s.address, s.service_port).healthy for s in plan.sites)
    if state.release is None or not healthy:
        # Restart what the hosts last ran (a later deploy may have moved on from the recorded release).
        release = service.deployed_release(plan.primary) or state.release or service.FIRST_RELEASE
        _timed(report, f"deploy {release}", lambda: _ignore(service.deploy(plan, release)))
        recorder.update(release=release)
    report.release = recorder.state.release
    for s in plan.sites:
        record = service.service_record(s)
        if record is not None and not _alive(recorder.state, record.name):
            recorder.add(record)
    if recorder.state.seeded_orders is None and options.orders > 0:
        primary = postgres.database(plan, plan.primary, pg_bin)
        conninfo = db.conninfo(primary, user=DB_OWNER)
        started = time.monotonic()
        report.seeded = service.seed(conninfo, options.orders)
        report.steps["seed"] = round(time.monotonic() - started, 3)
        recorder.update(seeded_orders=options.orders)


# The watch's first round (archiving, a realtime base backup, the daily backups of every domain) takes
# about 20 s on an idle machine; the limit leaves room for a loaded one.
WATCH_FIRST_ROUND_SECONDS = 300
# The lab publishes every 10 s (CloudWatch in production: every 60 s) so a test sees metrics soon.
LAB_PUBLISH_EVERY = 10
LAB_FRESHNESS_EVERY = 5


def _start_watch(plan: LabPlan, recorder: _Recorder) -> None:
    """Start `recovery watch` on the lab (unless it runs), then wait until its first round of the schedule
    is done, so a preflight right after `lab up` finds fresh backups."""
    record = recorder.state.process("watch")
    if record is None or not is_alive(record.pid, record.start_ticks):
        argv = recovery_argv(
            "watch",
            "--target",
            str(plan.target_file),
            "--prometheus",
            f"{FRONT_DOOR_ADDRESS}:{plan.watch_metrics_port}",
            "--publish-every",
            str(LAB_PUBLISH_EVERY),
            "--freshness-every",
            str(LAB_FRESHNESS_EVERY),
        )
        plan.watch_dir.mkdir(parents=True, exist_ok=True)
        pid = spawn_daemon(argv, log=plan.watch_dir / "watch.log", cwd=plan.watch_dir)
        record = ProcessRecord(name="watch", kind="watch", pid=pid, start_ticks=start_ticks(pid))
        recorder.add(record)
    wait_first_round(plan, record.pid, WATCH_FIRST_ROUND_SECONDS)


def wait_first_round(plan: LabPlan, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status_file = plan.state_dir / "watch" / "status.json"
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        if not is_alive(pid, None):
            raise EnvironmentProblem(f"the watch (pid {pid}) exited; see {plan.watch_dir / 'watch.log'}")
        with contextlib.suppress(OSError, ValueError):
            status = json.loads(status_file.read_text())
            if status.get("pid") == pid and status.get("first_round_done"):
                return
        time.sleep(0.5)
    # The job the round is stuck in is what an engineer (or a CI log) needs first.
    running = status.get("running_job") if status.get("pid") == pid else None
    stuck = f" (still running the {running} job)" if running else ""
    raise EnvironmentProblem(
        f"the watch (pid {pid}) did not finish its first backups within {timeout:.0f} s{stuck}; see "
        f"{plan.watch_dir / 'watch.log'} and `recovery runs list --target {plan.target_file}`"
    )


def _write_descriptions(user: LabUser, plan: LabPlan, pg_bin: Path, aws_ids: dict[str, str]) -> None:
    inventory = render.inventory(
        plan,
        ssh_user=user.name,
        intake_queue_url=aws_ids["intake_queue_url"],
        customer_topic_arn=aws_ids["customer_topic_arn"],
        pending=load_templates().source_text(PENDING_EVENT),
    )
    plan.inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    if service.GROUP_VARS.is_dir():
        shutil.copytree(service.GROUP_VARS, plan.inventory_dir / "group_vars", dirs_exist_ok=True)
    target = render.target(
        plan,
        ssh_user=user.name,
        pg_bin=pg_bin,
        hosted_zone_id=aws_ids["hosted_zone_id"],
        kms_key_id=aws_ids["kms_key_arn"],
        intake_queue_url=aws_ids["intake_queue_url"],
        team_topic_arn=aws_ids["team_topic_arn"],
        customer_topic_arn=aws_ids["customer_topic_arn"],
    )
    write_target(target, plan.target_file)
    plan.state_dir.mkdir(parents=True, exist_ok=True)


def _start_front_door(
    plan: LabPlan, aws_ids: dict[str, str], on_started: Callable[[ProcessRecord], None]
) -> None:
    argv = [
        sys.executable,
        "-m",
        "recovery.lab.frontdoor",
        "--listen-address",
        FRONT_DOOR_ADDRESS,
        "--listen-port",
        str(plan.front_door_port),
        "--endpoint",
        plan.moto_url,
        "--zone-id",
        aws_ids["hosted_zone_id"],
        "--record",
        SHOP_RECORD,
        "--service-port",
        str(plan.primary.service_port),
        "--state-file",
        str(plan.front_door_dir / "backend.json"),
    ]
    pid = spawn_daemon(argv, log=plan.front_door_dir / "frontdoor.log", cwd=plan.front_door_dir)
    on_started(ProcessRecord(name="frontdoor", kind="frontdoor", pid=pid, start_ticks=start_ticks(pid)))
    wait_port(FRONT_DOOR_ADDRESS, plan.front_door_port, timeout=15, pid=pid, what="front door")
