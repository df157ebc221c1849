"""Site failover on a real lab: a switchover under load, refusals that change nothing, the loss of a whole
site while orders flow (failover, the old site returning by itself, failback with carry-over, a
switchover back), a switchover killed at each of its mutating steps then resumed, and last a failover
killed at its fence and its resume killed at the promotion. One lab for the module; the tests run in
file order and each starts from where the previous one left the sites."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab

from recovery.cli.main import main
from recovery.drivers import db
from recovery.engine import LockHolder, journal_path, read_journal, run_ids, summarize
from recovery.engine.lock import target_lock
from recovery.errors import ExitCode
from recovery.failover import hostops
from recovery.failover.observe import observe
from recovery.failover.service import base_url, host_health
from recovery.failover.state import SiteName
from recovery.gameday.site_actions import kill_site_database
from recovery.lab.outage import restart_site, stop_site, walsender_pid
from recovery.load.generator import LoadGenerator, LoadSettings
from recovery.load.ledger import Ledger, read_ledger
from recovery.load.ledger_check import verify_ledger
from recovery.runbooks.failover import platform_for
from recovery.targets import Target, load_target
from recovery.targets.model import Database
from recovery.targets.sites import read_site_record
from recovery.verify.smoke import smoke_test


def _target(lab: Lab) -> Target:
    return load_target(lab.dir / "target.yaml")


def _cli(capsys: pytest.CaptureFixture[str], lab: Lab, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--target", str(lab.dir / "target.yaml"), "--yes"])
    out, err = capsys.readouterr()
    return code, out, err


def writable_sites(target: Target) -> list[str]:
    found: list[str] = []
    for site in (target.primary, target.standby):
        try:
            with db.connect(site.database, dbname="postgres", connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT NOT pg_is_in_recovery()"
                    " AND current_setting('default_transaction_read_only') = 'off'"
                ).fetchone()
        except Exception:
            continue
        if row and row[0]:
            found.append(site.name)
    return found


def front_door_site(lab: Lab) -> str | None:
    backend = json.loads((lab.plan.front_door_dir / "backend.json").read_text())["backend"]
    address = backend.rsplit(":", 1)[0]
    return next((s.site for s in lab.plan.sites if s.address == address), None)


def last_output(target: Target, runbook: str, step: str) -> dict[str, Any]:
    """The output of `step` in the target's last run of `runbook`."""
    run_id = next(r for r in run_ids(target.state_dir) if f"-{runbook}-" in r)
    return dict(summarize(read_journal(journal_path(target.state_dir, run_id))).step(step).output or {})


def _lost(target: Target, ledger: Ledger) -> int:
    return verify_ledger(target, ledger).lost.count


# --- refusals on the healthy lab ---------------------------------------------------------------------


def test_refusals_are_one_line_with_their_code_and_change_nothing(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(capsys, lab, "switchover", "--to", "primary")
    assert code == ExitCode.REFUSED
    assert err.strip().splitlines()[-1] == (
        "error[switchover.refused]: the primary site already holds the writable database; nothing to switch"
    )
    code, _, err = _cli(capsys, lab, "failover")
    assert code == ExitCode.REFUSED
    assert "the primary site takes writes and its service is healthy: use `recovery switchover`" in err

    # A second runbook while one holds the target's lock.
    target = _target(lab)
    holder = LockHolder(
        "20261206T100000Z-restore-0001", "restore", os.getpid(), "ci", "ci", "2026-12-06T10:00:00Z"
    )
    with target_lock(target, holder):
        code, _, err = _cli(capsys, lab, "switchover")
    assert code == ExitCode.LOCKED and len(err.strip().splitlines()) == 1

    # A fence that cannot be confirmed: the primary's service does not answer (frozen).
    pidfile = next(p for p in (lab.plan.primary.app_dir / "shared").rglob("*.pid"))
    service_pid = int(pidfile.read_text().split()[0])
    os.kill(service_pid, signal.SIGSTOP)
    try:
        code, _, err = _cli(capsys, lab, "switchover")
    finally:
        os.kill(service_pid, signal.SIGCONT)
    assert code == ExitCode.REFUSED
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            "error[switchover.fence_unconfirmable]: the fence of the primary site cannot be confirmed: the "
            "service on primary-app does not answer /health; nothing was changed"
        )
    )
    after = _target(lab)
    assert after.writer == "primary" and writable_sites(after) == ["primary"]
    assert front_door_site(lab) == "primary"


# --- switchover under load ---------------------------------------------------------------------------


def test_switchover_under_load_loses_no_acknowledged_order(lab: Lab, tmp_path: Path) -> None:
    ledger_path = tmp_path / "switchover.jsonl"
    with LoadGenerator(LoadSettings(lab.target.traffic.front_door_url, rate=20), ledger_path):
        time.sleep(1.5)
        code = main(["switchover", "--target", str(lab.dir / "target.yaml"), "--yes"])
        time.sleep(1.5)
    assert code == ExitCode.OK
    target = _target(lab)
    assert target.writer == "standby" and writable_sites(target) == ["standby"]
    assert front_door_site(lab) == "standby"
    ledger = read_ledger(ledger_path)
    verdict = verify_ledger(target, ledger)
    assert verdict.passed and verdict.lost.count == 0 and verdict.acknowledged > 20, verdict.summary()
    # The old primary was confirmed read-only by both means before the promotion, and is a standby now.
    fence = last_output(target, "switchover", "fence")
    assert fence["unconfirmed"] == [] and {m["means"] for m in fence["means"]} == {"database", "service"}
    with db.connect(target.primary.database, dbname="postgres") as conn:
        assert db.in_recovery(conn)
    assert last_output(target, "switchover", "rejoin")["method"] == "rewind"
    record = last_output(target, "switchover", "record")
    window = ledger.error_window
    print(
        f"switchover: writes refused {record['writes_refused_seconds']} s by the runbook's clock; "
        f"client errors {window.failures if window else 0} over {window.seconds if window else 0} s"
    )


# --- site loss, return, failback, switch back ---------------------------------------------------------


def test_site_loss_failover_return_and_failback_lose_nothing(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lost_site = lab.plan.standby  # the writer since the switchover
    ledger_path = tmp_path / "site-loss.jsonl"
    with LoadGenerator(LoadSettings(lab.target.traffic.front_door_url, rate=20), ledger_path):
        time.sleep(1.0)
        # The writer stops sending WAL a moment before its site is lost, so it acknowledges orders the
        # standby never gets: what a failback must carry over.
        sender = walsender_pid(_target(lab))
        os.kill(sender, signal.SIGSTOP)
        try:
            time.sleep(1.0)
            command = stop_site(lab.plan, lost_site)
        finally:  # never leave a frozen process behind, whatever failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(sender, signal.SIGCONT)
        code, _, err = _cli(capsys, lab, "failover")
        assert code == ExitCode.OK, err
        failed_over_at = time.time()
        time.sleep(1.5)  # the new writer takes orders through the front door
    target = _target(lab)
    assert target.writer == "primary" and writable_sites(target) == ["primary"]
    assert front_door_site(lab) == "primary"
    fence = last_output(target, "failover", "fence")
    assert any(m["means"] == "lab-disk" and m["confirmed"] for m in fence["means"]), fence
    ledger = read_ledger(ledger_path)
    assert any(o.at > failed_over_at for o in ledger.orders)  # acknowledged by the new writer
    stranded = _lost(target, ledger)

    # The lost site comes back by itself: it takes no write and gets no traffic.
    restart_site(lab.plan, lost_site, command)
    returned = target.standby
    with db.connect(returned.database, dbname="postgres") as conn:
        row = conn.execute("SELECT current_setting('default_transaction_read_only')").fetchone()
    assert row is not None and row[0] == "on"
    time.sleep(1.0)
    assert not host_health(returned.hosts[0]).writable
    assert writable_sites(target) == ["primary"] and front_door_site(lab) == "primary"
    code, _, err = _cli(capsys, lab, "switchover", "--to", "standby")
    assert code == ExitCode.REFUSED and "the standby site is not a healthy standby" in err

    # Failback carries what the lost site acknowledged after the split, rebuilds it, switches back.
    code, _, err = _cli(capsys, lab, "failback", "--switch-back")
    assert code == ExitCode.OK, err
    target = _target(lab)
    carried = last_output(target, "failback", "carry-over")
    verdict = verify_ledger(target, ledger)
    assert verdict.lost.count == 0, verdict.summary()
    assert stranded > 0 and int(carried["orders_inserted"]) >= stranded
    assert target.writer == "standby" and writable_sites(target) == ["standby"]
    assert front_door_site(lab) == "standby"
    print(f"site loss: {stranded} acknowledged orders not on the standby at promotion; carried {carried}")


# --- kill -9 at each step, then resume ----------------------------------------------------------------

# Every mutating step of a switchover, in order, killed as soon as it started; then the steps whose effect
# shows well before they finish, killed once it shows (the old writer refuses writes; its database is
# down for its rewind). Nothing is left to replay once the writer is fenced, so wait-replay would end
# before a kill reaches it: the standby's replay is paused for that kill (the fence's own writes then wait)
# and resumed after it, as when replication stalls and a person stops the run. Each kill's switchover goes
# the other way from the one before (a switchover without --to moves the writer to the other site), so
# no switch back is needed.
KILLS = (
    *(
        (step, "started")
        for step in ("fence", "wait-replay", "promote", "open-for-writes", "move-traffic", "rejoin")
    ),
    ("fence", "old writer read-only"),
    ("rejoin", "old writer down"),
)


def _effect_shows(lab: Lab, effect: str, source: SiteName) -> bool:
    target = _target(lab)
    if effect == "started":
        return True
    try:
        with db.connect(target.site(source).database, dbname="postgres", connect_timeout=1) as conn:
            row = conn.execute("SELECT current_setting('default_transaction_read_only') = 'on'").fetchone()
    except Exception:
        return effect == "old writer down"
    return effect == "old writer read-only" and bool(row and row[0])


@pytest.mark.parametrize(("step", "effect"), KILLS)
def test_a_switchover_killed_at_a_step_resumes_to_one_writer(lab: Lab, step: str, effect: str) -> None:
    # The kill chases the runbook: on a loaded machine a short step (the rest of the fence once the old
    # writer is read-only) can end before the kill lands. Each attempt is still a kill -9 and a resume
    # checked to the end; another attempt is made until one lands in the step.
    landed: list[str] = []
    while len(landed) < ATTEMPTS and step not in landed:
        landed.append(_kill_in_step_and_resume(lab, step, effect))
    assert step in landed, f"the kills landed in {landed}, each after {step} had finished"


ATTEMPTS = 3


def _kill_in_step_and_resume(lab: Lab, step: str, effect: str) -> str:
    target_file = str(lab.dir / "target.yaml")
    source = _target(lab).writer
    expected: SiteName = "primary" if source == "standby" else "standby"
    replica = _target(lab).site(expected)
    with _replay_paused(replica.database) if step == "wait-replay" else contextlib.nullcontext():
        run_id, landed = _kill_switchover_at(lab, step, lambda: _effect_shows(lab, effect, source))
    assert main(["runs", "resume", run_id, "--target", target_file, "--yes"]) == ExitCode.OK
    target = _target(lab)
    assert summarize(read_journal(journal_path(target.state_dir, run_id))).status == "ok"
    assert writable_sites(target) == [target.writer] == [expected]
    state = observe(target, platform_for(target))
    assert state.traffic_to == expected and front_door_site(lab) == expected
    assert _replication_state(target) == "streaming"
    smoke = smoke_test(base_url(target.writable.hosts[0]))
    assert smoke.passed, [s for s in smoke.steps if not s.passed]
    return landed


def _kill_switchover_at(lab: Lab, step: str, when: Callable[[], bool]) -> tuple[str, str]:
    """Start a switchover, kill -9 it once it started `step` and `when` holds; its run id and the step
    it was in."""
    target = _target(lab)
    before = set(run_ids(target.state_dir))
    process = _recovery(lab, "switchover")
    try:
        run_id = _wait_for_step(target, before, step)
        deadline = time.monotonic() + 60
        while not when() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        _kill(process)
    return run_id, _interrupted_in(target, run_id)


def _recovery(lab: Lab, *args: str) -> subprocess.Popen[bytes]:
    """The `recovery` CLI in a process of its own (to kill -9), on the lab's target, with --yes."""
    cli = Path(sys.executable).with_name("recovery")
    return subprocess.Popen(
        [str(cli), *args, "--target", str(lab.dir / "target.yaml"), "--yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def _interrupted_in(target: Target, run_id: str) -> str:
    """The step an interrupted run was in when it was killed."""
    summary = summarize(read_journal(journal_path(target.state_dir, run_id)))
    assert summary.status == "interrupted"
    return next((s.name for s in summary.steps if s.status == "running"), "between steps")


@contextlib.contextmanager
def _replay_paused(standby: Database) -> Iterator[None]:
    with db.connect(standby, dbname="postgres") as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with db.connect(standby, dbname="postgres") as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


def _replication_state(target: Target) -> str | None:
    """How the replica's walreceiver stands on the writer (streaming when it follows it)."""
    with db.connect(target.writable.database, dbname="postgres") as conn:
        row = conn.execute(
            "SELECT state FROM pg_stat_replication WHERE application_name = %s", (target.replica.name,)
        ).fetchone()
    return None if row is None else str(row[0])


def _wait_for_step(target: Target, before: set[str], step: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for run_id in set(run_ids(target.state_dir)) - before:
            if _starts_of(target, run_id, step):
                return run_id
        time.sleep(0.01)
    raise AssertionError(f"no new run reached step {step}")


def _starts_of(target: Target, run_id: str, step: str) -> int:
    """How many times the run's journal says `step` started (each resume starts it again)."""
    records = read_journal(journal_path(target.state_dir, run_id))
    return sum(1 for r in records if r.get("event") == "step.started" and r.get("step") == step)


# --- a failover killed at its fence, its resume killed at the promotion ---------------------------------


def test_a_failover_killed_at_its_fence_and_at_its_promotion_resumes_to_one_writer(lab: Lab) -> None:
    """The writer's database crashes (kill -9; its host and sshd stay up, so the fence goes over SSH into
    its data directory). The failover is killed once its fence started, the resume once the promotion
    started, and a second resume ends the run: one writable database, one more generation, traffic and
    the front door at it, the old writer fenced."""
    before = _target(lab)
    source, expected = before.writer, before.replica.name
    epoch = read_site_record(before.state_dir).epoch
    kill_site_database(source, str(lab.dir / "target.yaml"))
    known = set(run_ids(before.state_dir))

    failover = _recovery(lab, "failover")
    try:
        run_id = _wait_for_step(before, known, "fence")
    finally:
        _kill(failover)
    assert _interrupted_in(before, run_id) == "fence"

    resume = _recovery(lab, "runs", "resume", run_id)
    try:
        deadline = time.monotonic() + 60
        while not _starts_of(before, run_id, "promote") and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        _kill(resume)
    assert _interrupted_in(before, run_id) == "promote"

    assert main(["runs", "resume", run_id, "--target", str(lab.dir / "target.yaml"), "--yes"]) == ExitCode.OK
    target = _target(lab)
    summary = summarize(read_journal(journal_path(target.state_dir, run_id)))
    assert summary.status == "ok" and _starts_of(target, run_id, "promote") == 2
    assert writable_sites(target) == [target.writer] == [expected]
    assert read_site_record(target.state_dir).epoch == epoch + 1  # promoted once, however often resumed
    fence = summary.step("fence").output or {}
    assert any(m["means"] == "data-dir" and m["confirmed"] for m in fence["means"]), fence
    hba = (next(s for s in lab.plan.sites if s.site == source).pg_data / "pg_hba.conf").read_text()
    assert f"reject {hostops.MARK}" in hba  # the old writer stays fenced when it restarts
    state = observe(target, platform_for(target))
    assert state.traffic_to == expected and front_door_site(lab) == expected
    smoke = smoke_test(base_url(target.writable.hosts[0]))
    assert smoke.passed, [s for s in smoke.steps if not s.passed]
