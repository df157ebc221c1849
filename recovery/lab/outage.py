"""A site outage in the lab: stop every process of one site at once (kill -9, as a site lost to a power
cut), and start them again as they were: the same sshd, the same PostgreSQL data directory, the same
order service command line, environment and user, as machines that come back by themselves. Or its
database alone, killed and started again while the rest of the site stays up. lab.json and the service's
pidfile are updated, so `lab down` stops the restarted processes too. Used by the failover tests and
benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from recovery.drivers import db
from recovery.errors import EnvironmentProblem
from recovery.lab import postgres, service, sshd
from recovery.lab.plan import LabPlan, SitePlan
from recovery.lab.processes import descendants, lab_user, start_ticks, wait_gone
from recovery.lab.state import LabState, ProcessRecord, read_state, write_state
from recovery.targets.model import Target


@dataclass(frozen=True)
class ServiceCommand:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    uid: int
    gid: int
    pidfile: Path


def _service_command(site: SitePlan) -> ServiceCommand:
    pidfile = service.find_pidfile(site)
    if pidfile is None:
        raise EnvironmentProblem(f"the {site.site} site runs no order service (no pidfile); run `lab up`")
    pid = int(pidfile.read_text().split()[0])
    proc = Path(f"/proc/{pid}")
    argv = [part for part in (proc / "cmdline").read_bytes().decode().split("\0") if part]
    env = dict(
        line.split("=", 1) for line in (proc / "environ").read_bytes().decode().split("\0") if "=" in line
    )
    info = proc.stat()
    return ServiceCommand(argv, str((proc / "cwd").readlink()), env, info.st_uid, info.st_gid, pidfile)


def _kill_tree(pid: int | None) -> None:
    if pid is None:
        return
    victims = [(p, start_ticks(p)) for p in [pid, *descendants(pid)]]
    for victim, _ in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    for victim, ticks in victims:
        wait_gone(victim, ticks, 10)  # gone or a zombie: nothing of it runs any more


def stop_site(plan: LabPlan, site: SitePlan) -> ServiceCommand:
    """kill -9 the site's order service, PostgreSQL (postmaster and backends) and sshd."""
    command = _service_command(site)
    record = _state(plan).process(f"sshd-{site.site}")
    _kill_tree(int(command.pidfile.read_text().split()[0]))
    stop_database(site)
    _kill_tree(record.pid if record else None)
    return command


def stop_database(site: SitePlan) -> None:
    """kill -9 the site's PostgreSQL only (postmaster and backends): its order service and sshd stay up."""
    _kill_tree(postgres.running_postmaster(site.pg_data))


def _state(plan: LabPlan) -> LabState:
    state = read_state(plan.lab_dir / "lab.json")
    if state is None:
        raise EnvironmentProblem(f"no lab at {plan.lab_dir}; run `recovery lab up` first")
    return state


def _record(plan: LabPlan, process: ProcessRecord) -> None:
    write_state(_state(plan).with_process(process), plan.lab_dir / "lab.json")


def restart_site(plan: LabPlan, site: SitePlan, command: ServiceCommand) -> None:
    """Start the site's processes again as they were, as if its machines came back by themselves."""
    sshd.start(lab_user(), site, lambda r: _record(plan, r))
    restart_database(plan, site)
    log = (site.app_dir / "shared" / "restarted-service.log").open("ab")
    with log:
        started = subprocess.Popen(
            command.argv,
            cwd=command.cwd,
            env=command.env,
            user=command.uid,
            group=command.gid,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    command.pidfile.write_text(f"{started.pid}\n")


def restart_database(plan: LabPlan, site: SitePlan) -> None:
    """Start the site's PostgreSQL again on its data directory, as it was."""
    state = _state(plan)
    if state.pg_bin is None:
        raise EnvironmentProblem(f"{plan.lab_dir / 'lab.json'} names no PostgreSQL binaries; run `lab up`")
    postgres.start(lab_user(), plan, site, state.pg_bin, lambda r: _record(plan, r))


def walsender_pid(target: Target) -> int:
    """The writer's walsender that streams to the other site (freeze it to hold WAL back from the
    standby, as a stalled network would)."""
    with db.connect(target.writable.database, dbname="postgres") as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_replication WHERE application_name = %s", (target.replica.name,)
        ).fetchone()
    if row is None:
        raise EnvironmentProblem(f"the {target.replica.name} site does not stream from the writer")
    return int(row[0])
