"""The site game days on a real lab with its watch running (automatic failover off, as the lab's default):
a crashed primary database and a lost primary site are paged about, failed over, kept fenced and failed
back losing no order; a lagging standby is alarmed about and a failover beyond the RPO is refused. One lab
for the module, its own (not test_gamedays.py's), so pytest-xdist runs the two modules side by side."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Lab
from gameday_library import Library, activity_output, library_runner, response

from recovery.gameday.probes import last_run
from recovery.gameday.site_actions import standby_caught_up, writer_site
from recovery.lab.processes import stop_pid
from recovery.watch.act import recovery_argv
from recovery.watch.loop import read_status

LOAD_SECONDS = 15  # enough load to span each fault and its response, not the scenarios' own minute


@pytest.fixture(scope="module")
def watched(lab: Lab) -> Iterator[Lab]:
    """The lab with its watch running, without the backup schedule (these game days need its probes and
    decisions only), once the watch has seen the writer's database up for a few cycles."""
    target = str(lab.dir / "target.yaml")
    log = (lab.dir / "gameday-watch.log").open("ab")
    argv = recovery_argv("watch", "--target", target, "--no-schedule")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            status = read_status(lab.target.state_dir) or {}
            if status.get("pid") == process.pid and status.get("cycles", 0) >= 3:
                break
            assert process.poll() is None, f"the watch exited with {process.returncode}; see {log.name}"
            assert time.monotonic() < deadline, "the watch wrote no status within 120 s"
            time.sleep(0.5)
        yield lab
    finally:
        stop_pid(process.pid, None, timeout=30)
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def run_library(
    watched: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Library]:
    return library_runner(watched, tmp_path, capsys, monkeypatch)


def test_a_crashed_primary_database_and_a_lost_site_are_failed_over_and_back_losing_no_order(
    watched: Lab, run_library: Callable[..., Library]
) -> None:
    names = ("primary-database-crash", "site-lost")
    runs, stored, reports = run_library(LOAD_SECONDS, *names)
    target = str(watched.dir / "target.yaml")
    for name in names:
        assert runs[name]["orders_acknowledged"] > 0
        assert 0 < runs[name]["time_to_detect_s"] < runs[name]["rto_s"]
        kinds = [event.kind for event in stored[name].timeline]
        assert kinds.index("fault") < kinds.index("detected") < kinds.index("recovered")
        folder = reports / stored[name].run_id
        decided = activity_output(folder, "the watch decides")
        assert decided["action"] == "page" and "automatic failover is off" in decided["reason"]
        failed_over = activity_output(folder, "fail over")
        assert (failed_over["by"], failed_over["status"], failed_over["writer"]) == (
            "person",
            "ok",
            "standby",
        )
        switched_back = activity_output(folder, "fail back and switch back")
        assert switched_back["status"] == 0, switched_back["stderr"][-2000:]
        measured = stored[name].measured
        assert measured.orders_replayed == measured.orders_queued
        print(
            f"\n{name}: detected after {measured.time_to_detect_s} s, RTO {measured.rto_s} s, acknowledged "
            f"{measured.orders_acknowledged}, lost {measured.orders_lost}, queued {measured.orders_queued}"
        )
    # The database crash found the service up: it queued the orders meanwhile, the failover replayed them.
    assert stored["primary-database-crash"].measured.orders_queued > 0
    # The lost site came back by itself and stayed fenced: the standby site kept the writes and traffic.
    lost = reports / stored["site-lost"].run_id
    assert (
        activity_output(lost, "the writer while the old site is back (the watch keeps it fenced)")
        == "standby"
    )
    assert activity_output(lost, "the front door still answers from the standby site") is True
    # Failback carried over, rebuilt the old primary as a standby and switched back: as at the start.
    failback = last_run("failback", target)
    assert failback is not None and failback["status"] == "ok"
    assert writer_site(target) == "primary" and standby_caught_up(target)


def test_a_lagging_standby_is_alarmed_and_a_failover_beyond_the_rpo_is_refused(
    watched: Lab, run_library: Callable[..., Library]
) -> None:
    runs, stored, reports = run_library(LOAD_SECONDS, "standby-lagging")
    folder = reports / stored["standby-lagging"].run_id
    alarm = activity_output(folder, "the watch alarms about the lag")
    assert alarm["alarmed"] and alarm["alarm"].startswith("replication lag of the standby is ")
    refused = response(runs["standby-lagging"], "fail over while the standby lags")
    assert "exited 3 with one line: error[failover.refused]: the standby site lags" in refused
    assert "beyond the RPO objective of 5.0 s" in refused
    # Nothing changed: the primary site kept the writer; then the standby caught up again.
    assert activity_output(folder, "the writer after the refused failover") == "primary"
    failover = last_run("failover", str(watched.dir / "target.yaml"))
    assert failover is not None and (failover["status"], failover["failed_step"], failover["code"]) == (
        "failed",
        "observe",
        "failover.refused",
    )
    replayed = activity_output(folder, "replay the orders queued while the database was down")
    assert replayed["status"] == 0
    # Orders the service queued while the primary's database was down were entered once, none lost.
    measured = stored["standby-lagging"].measured
    assert measured.orders_replayed == measured.orders_queued
    print(f"\nstandby lagging: detected after {measured.time_to_detect_s} s; queued {measured.orders_queued}")
    assert standby_caught_up(str(watched.dir / "target.yaml"))
