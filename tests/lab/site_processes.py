"""Stop every process of one lab site at once (kill -9, as a site lost to a power cut), and start them
again as they were: the same sshd, the same PostgreSQL data directory, the same order service command
line, environment and user. lab.json and the service's pidfile are updated, so `lab down` stops the
restarted processes too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from recovery.lab import postgres, service, sshd
from recovery.lab.plan import LabPlan, SitePlan
from recovery.lab.processes import descendants, lab_user
from recovery.lab.state import ProcessRecord, read_state, write_state


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
    assert pidfile is not None, f"no service pidfile on the {site.site} site"
    pid = int(pidfile.read_text().split()[0])
    proc = Path(f"/proc/{pid}")
    argv = [part for part in (proc / "cmdline").read_bytes().decode().split("\0") if part]
    env = dict(
        line.split("=", 1) for line in (proc / "environ").read_bytes().decode().split("\0") if "=" in line
    )
    info = proc.stat()
    return ServiceCommand(argv, os.readlink(proc / "cwd"), env, info.st_uid, info.st_gid, pidfile)


def _kill_tree(pid: int | None) -> None:
    if pid is None:
        return
    for victim in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def stop_site(plan: LabPlan, site: SitePlan) -> ServiceCommand:
    """kill -9 the site's order service, PostgreSQL (postmaster and backends) and sshd."""
    command = _service_command(site)
    state = read_state(plan.lab_dir / "lab.json")
    assert state is not None
    record = state.process(f"sshd-{site.site}")
    _kill_tree(int(command.pidfile.read_text().split()[0]))
    _kill_tree(postgres.running_postmaster(site.pg_data))
    _kill_tree(record.pid if record else None)
    return command


def _record(plan: LabPlan, process: ProcessRecord) -> None:
    path = plan.lab_dir / "lab.json"
    state = read_state(path)
    assert state is not None
    write_state(state.with_process(process), path)


def restart_site(plan: LabPlan, site: SitePlan, command: ServiceCommand) -> None:
    """Start the site's processes again as they were, as if its machines came back by themselves."""
    state = read_state(plan.lab_dir / "lab.json")
    assert state is not None and state.pg_bin is not None
    user = lab_user()
    sshd.start(user, site, lambda r: _record(plan, r))
    postgres.start(user, plan, site, state.pg_bin, lambda r: _record(plan, r))
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
