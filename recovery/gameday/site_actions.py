"""Site-loss actions and probes of the `recovery` extension (python provider, module
`recovery.gameday.site_actions`): the faults the site game days inject on the lab, and what they wait for.

- `kill_site_database`: kill -9 one site's PostgreSQL (a crashed database on a machine that stays up);
- `start_site_database`: start it again on its data directory (fences it had survive the restart);
- `lose_site` / `restore_site`: every process of one site killed at once, then started again as it was
  (recovery/lab/outage.py, as the failover tests do);
- `pause_standby_replay` / `resume_standby_replay`: the standby stops replaying the WAL it receives
  (`pg_wal_replay_pause`), so it falls behind the writer for real, then catches up;
- `watch_decision`: what the running watch decided, waited for until it is one of the given actions;
- `watch_alarm`: the running watch's alarm about one reading (its check's name), waited for;
- `standby_caught_up`: whether the standby replays everything the writer has written (steady state);
- `failover_done`: the failover run the watch started (automatic failover on) followed to its end, or,
  when the watch paged a person instead, `recovery failover --yes` run as that person would;
- `writer_site`: which site the site record names as the writer.

Faults act on the lab only (its processes are this machine's); a real target refuses them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from recovery.drivers import db
from recovery.errors import UsageError
from recovery.failover.state import other
from recovery.gameday.probes import last_run
from recovery.lab import outage, postgres
from recovery.lab.plan import LabPlan, SitePlan, plan_lab
from recovery.lab.processes import lab_user
from recovery.lab.state import ProcessRecord, read_state, write_state
from recovery.targets import load_target
from recovery.targets.load import resolve_target_path
from recovery.targets.model import Site
from recovery.targets.sites import read_site_record
from recovery.watch.act import recovery_argv
from recovery.watch.loop import read_status

# Services restarted by `restore_site` need the command `lose_site` read from the killed process.
_LOST: dict[str, outage.ServiceCommand] = {}


def _lab_site(target: str, site: str) -> tuple[LabPlan, SitePlan]:
    loaded = load_target(target)
    if loaded.kind != "lab":
        raise UsageError(f"target {loaded.name} is not a lab: site faults are injected on the lab only")
    lab_dir = resolve_target_path(target).parent
    state = read_state(lab_dir / "lab.json")
    if state is None:
        raise UsageError(f"no lab at {lab_dir}; run `recovery lab up` first")
    plan = plan_lab(lab_dir, state.base_port, allow_reserved=True)
    found = next((s for s in plan.sites if s.site == site), None)
    if found is None:
        raise UsageError(f"unknown site {site!r}; give primary or standby")
    return plan, found


def kill_site_database(site: str = "primary", target: str = "lab") -> dict[str, Any]:
    """kill -9 the site's postmaster; its host, sshd and order service keep running."""
    _, found = _lab_site(target, site)
    pid = postgres.running_postmaster(found.pg_data)
    if pid is None:
        raise UsageError(f"the {site} site's database is not running")
    os.kill(pid, signal.SIGKILL)
    return {"site": site, "killed": pid}


def start_site_database(site: str = "primary", target: str = "lab") -> dict[str, Any]:
    """Start a killed site database again on its own data directory (a fenced old primary stays fenced:
    its fences survive a restart), so a failback can read what it acknowledged after the split."""
    plan, found = _lab_site(target, site)
    state = read_state(plan.lab_dir / "lab.json")
    if state is None or state.pg_bin is None:
        raise UsageError(f"{plan.lab_dir / 'lab.json'} names no PostgreSQL binaries; run `recovery lab up`")

    def recorded(process: ProcessRecord) -> None:
        now = read_state(plan.lab_dir / "lab.json")
        if now is not None:
            write_state(now.with_process(process), plan.lab_dir / "lab.json")

    postgres.start(lab_user(), plan, found, state.pg_bin, recorded)
    return {"site": site, "started": True}


def lose_site(site: str = "primary", target: str = "lab") -> dict[str, Any]:
    """Every process of the site killed at once (service, PostgreSQL, sshd), as a site lost to a power cut."""
    plan, found = _lab_site(target, site)
    _LOST[site] = outage.stop_site(plan, found)
    return {"site": site, "lost": True}


def restore_site(site: str = "primary", target: str = "lab") -> dict[str, Any]:
    """The lost site's processes started again as they were (its machines came back by themselves)."""
    plan, found = _lab_site(target, site)
    command = _LOST.pop(site, None)
    if command is None:
        raise UsageError(f"the {site} site was not lost by this game day")
    outage.restart_site(plan, found, command)
    return {"site": site, "restored": True}


def _lab_standby(target: str) -> Site:
    """The standby site of the lab (a real standby is never paused by a game day)."""
    loaded = load_target(target)
    _lab_site(target, other(loaded.writer))
    return loaded.site(other(loaded.writer))


def pause_standby_replay(target: str = "lab") -> dict[str, Any]:
    """The standby keeps receiving WAL but stops replaying it: it lags behind the writer for real, and
    a promotion now would give up everything it has not replayed."""
    standby = _lab_standby(target)
    with db.connect(standby.database, dbname="postgres", connect_timeout=5) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        row = conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
    return {"site": standby.name, "replay": row[0] if row else None}


def resume_standby_replay(target: str = "lab") -> dict[str, Any]:
    """The standby replays again (also when it was not paused: a rollback may run it twice)."""
    standby = _lab_standby(target)
    with db.connect(standby.database, dbname="postgres", connect_timeout=5) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if row and row[0]:
            conn.execute("SELECT pg_wal_replay_resume()")
    return {"site": standby.name, "replay": "resumed"}


def standby_caught_up(target: str = "lab", timeout: float = 30) -> bool:
    """True when the standby has replayed the writer's WAL position read now (waited for up to
    `timeout`): the standby keeps up, so a failover would give up nothing beyond what is in flight."""
    loaded = load_target(target)
    writer, standby = loaded.site(loaded.writer), loaded.site(other(loaded.writer))
    with db.connect(writer.database, dbname="postgres", connect_timeout=5) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    deadline = time.monotonic() + timeout
    with db.connect(standby.database, dbname="postgres", connect_timeout=5) as conn:
        while True:
            found = conn.execute(
                "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s::pg_lsn) >= 0, false)",
                (row[0],),
            ).fetchone()
            if (found and found[0]) or time.monotonic() > deadline:
                return bool(found and found[0])
            time.sleep(0.5)


def watch_alarm(check: str, target: str = "lab", timeout: float = 60) -> dict[str, Any]:
    """The running watch's alarm about the reading named `check` (e.g. "replication lag of the
    standby"), waited for until its decision names it (or `timeout` passed): `alarmed` and the sentence."""
    state_dir = load_target(target).state_dir
    deadline = time.monotonic() + timeout
    while True:
        decision = dict((read_status(state_dir) or {}).get("decision") or {})
        sentences = [s for s in str(decision.get("reason", "")).split("; ") if s.startswith(f"{check} is ")]
        if (decision.get("action") == "alarm" and sentences) or time.monotonic() > deadline:
            return {"alarmed": bool(sentences), "alarm": sentences[0] if sentences else None, **decision}
        time.sleep(0.5)


def watch_decision(actions: list[str], target: str = "lab", timeout: float = 60) -> dict[str, Any]:
    """The running watch's decision, waited for until it is one of `actions` (or `timeout` passed)."""
    state_dir = load_target(target).state_dir
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(state_dir) or {}
        decision = dict(status.get("decision") or {})
        if decision.get("action") in actions or time.monotonic() > deadline:
            return {**decision, "writer": status.get("writer"), "failover": status.get("failover_started")}
        time.sleep(0.5)


def failover_done(target: str = "lab", timeout: float = 300) -> dict[str, Any]:
    """The failover to its end: the run the watch started when it started one (automatic failover on),
    else `recovery failover --yes` run as the person the watch paged would. Its run id and status."""
    state_dir = load_target(target).state_dir
    by = "watch"
    if (read_status(state_dir) or {}).get("failover_started") is None:
        by = "person"
        # Its output is captured: the game day's own stdout may be a JSON envelope.
        subprocess.run(
            recovery_argv("failover", "--yes", "--target", target),
            timeout=timeout,
            check=False,
            capture_output=True,
        )
    deadline = time.monotonic() + timeout
    run = last_run("failover", target)
    while (run is None or run["status"] == "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        run = last_run("failover", target)
    return {"by": by, **(run or {"status": "none"}), "writer": read_site_record(state_dir).writer}


def writer_site(target: str = "lab") -> str:
    """The site the site record names as the writer."""
    return read_site_record(load_target(target).state_dir).writer
