"""`lab down`: stop every process lab.json records, by pid, verify each is gone, and optionally purge.

Order matters: the watch first, then clients (front door, services), then the hosts, the standby before
the primary (a primary stopping first makes the standby retry), and moto last.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recovery.drivers import remote
from recovery.errors import ExternalFailure
from recovery.lab import postgres, service
from recovery.lab.plan import plan_lab
from recovery.lab.processes import LabUser, is_alive, lab_user, start_ticks, stop_pid, stop_tree
from recovery.lab.state import ProcessRecord, read_state, write_state

# The watch first: it would page about the lab going down.
STOP_ORDER = {"watch": -1, "frontdoor": 0, "service": 1, "sshd": 2, "postgres": 3, "moto": 4}


@dataclass
class DownReport:
    lab_dir: Path
    stopped: list[str] = field(default_factory=list)
    not_running: list[str] = field(default_factory=list)
    purged: bool = False
    found: bool = True


def stop_order(records: Iterable[ProcessRecord]) -> list[ProcessRecord]:
    """Records in the order they are stopped (pure)."""

    def key(r: ProcessRecord) -> tuple[int, int]:
        return (STOP_ORDER[r.kind], 0 if r.name.endswith("standby") else 1)

    return sorted(records, key=key)


def stop_record(user: LabUser, record: ProcessRecord, pg_bin: Path | None) -> bool:
    if record.kind == "postgres":
        return postgres.stop(user, record, pg_bin)
    if record.kind == "sshd":
        return stop_tree(record.pid, record.start_ticks)
    return stop_pid(record.pid, record.start_ticks)


def stop_records(user: LabUser, records: Iterable[ProcessRecord], pg_bin: Path | None) -> list[str]:
    """Stop `records`; return the names of those still alive afterwards."""
    remote.close_all()
    return [r.name for r in stop_order(records) if not stop_record(user, r, pg_bin)]


def _with_current_services(
    records: tuple[ProcessRecord, ...], lab_dir: Path, base_port: int
) -> list[ProcessRecord]:
    """The recorded processes plus the services their pidfiles name now (a redeploy restarts them) and
    the postmasters their data dirs name now (a restart, e.g. to turn on WAL archiving)."""
    found = list(records)
    plan = plan_lab(lab_dir, base_port, allow_reserved=True)
    for record in records:
        if record.kind == "postgres" and record.data_dir is not None:
            postmaster = postgres.running_postmaster(record.data_dir)
            if postmaster is not None and all(r.pid != postmaster for r in found):
                found.append(
                    record.model_copy(
                        update={
                            "name": f"{record.name}-{postmaster}",
                            "pid": postmaster,
                            "start_ticks": start_ticks(postmaster),
                        }
                    )
                )
    for site in plan.sites:
        current = service.service_record(site)
        if current is not None and all(r.pid != current.pid for r in found):
            found.append(current.model_copy(update={"name": f"{current.name}-{current.pid}"}))
    return found


def down(lab_dir: Path, *, purge: bool = False) -> DownReport:
    lab_dir = lab_dir.resolve()
    report = DownReport(lab_dir=lab_dir)
    state = read_state(lab_dir / "lab.json")
    if state is None:
        report.found = False
        if purge and lab_dir.is_dir():
            shutil.rmtree(lab_dir)
            report.purged = True
        return report
    user = lab_user()
    remote.close_all()
    survivors = []
    for record in stop_order(_with_current_services(state.processes, lab_dir, state.base_port)):
        if not is_alive(record.pid, record.start_ticks):
            report.not_running.append(record.name)
        elif stop_record(user, record, state.pg_bin):
            report.stopped.append(record.name)
        else:
            survivors.append(record)
    state = state.model_copy(update={"processes": tuple(survivors)})
    write_state(state, lab_dir / "lab.json")
    if survivors:
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in survivors)
        raise ExternalFailure(f"could not stop {names}; stop them by pid, then run `recovery lab down` again")
    if purge:
        shutil.rmtree(lab_dir)
        report.purged = True
    return report
