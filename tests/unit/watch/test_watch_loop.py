"""The watch's loop against a target where nothing answers (closed loopback ports): probe failures are
reported, never raised; the writer's database down pages when automatic failover is off and does nothing
else, and starts the failover command once when it is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from target_files import unit_target_doc

from recovery.engine.events import PlannedStep, RunStarted, StepFinished, StepStarted
from recovery.engine.journal import JournalWriter, new_run_id
from recovery.notify import read_outbox
from recovery.runbooks.restore import restore_params, restore_runbook
from recovery.targets.model import Target
from recovery.watch import act
from recovery.watch.loop import Watch, WatchOptions, read_status

CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port here


def _target(tmp_path: Path, **watch: object) -> Target:
    doc: dict[str, Any] = unit_target_doc(tmp_path, "shop")
    doc["aws"] = {"endpoint_url": CLOSED}
    doc["watch"] = {"failures_to_act": 2, "seconds_to_act": 0, **watch}
    doc["primary"]["database"]["data_dir"] = str(tmp_path / "pg" / "data")  # its spool: over SSH, closed
    return Target.model_validate(doc)


class Recorder:
    def __init__(self) -> None:
        self.started: list[tuple[str, Path]] = []

    def __call__(self, target_ref: str, log: Path) -> act.Started:
        self.started.append((target_ref, log))
        return act.Started(4242, act.failover_argv(target_ref), log)


def _watch(target: Target, recorder: Recorder) -> Watch:
    options = WatchOptions(target_ref="shop", schedule=False, cloudwatch=False)
    return Watch(target, options, start_failover=recorder)


def test_with_automatic_failover_off_a_dead_writer_pages_once_and_nothing_else(tmp_path: Path) -> None:
    target, recorder = _target(tmp_path), Recorder()
    watch = _watch(target, recorder)
    first = watch.cycle()
    # One failed probe of the database is no outage yet; the front door failing every probe is an alarm.
    assert (first.action, first.reason) == (
        "alarm",
        "front door error rate is 100 %, beyond 1 %: run `recovery watch --once --target shop`",
    )
    decisions = [watch.cycle().action for _ in range(3)]
    assert decisions == ["page", "page", "page"]
    assert recorder.started == [], "automatic failover is off: nothing is started"
    pages = [m for m in read_outbox(target) if m["event"] == "team/watch-page"]
    assert len(pages) == 1, "one page per outage"
    assert "automatic failover is off" in pages[0]["body"]
    assert "run `recovery failover --target shop`" in pages[0]["body"]
    status = read_status(target.state_dir)
    assert status is not None and status["decision"]["action"] == "page" and status["cycles"] == 4
    assert any("PostgreSQL at 127.0.0.11:15432" in p for p in status["problems"])
    assert any(p.startswith("backups: ") for p in status["problems"]), status["problems"]
    assert any(p.startswith("cannot list the WAL spool on primary-app") for p in status["problems"]), (
        "the SSH outage is reported"
    )


def test_with_automatic_failover_on_the_watch_starts_the_failover_command_once(tmp_path: Path) -> None:
    target, recorder = _target(tmp_path, automatic_failover=True), Recorder()
    watch = _watch(target, recorder)
    actions = [watch.cycle().action for _ in range(4)]
    assert actions == ["alarm", "failover", "failover", "failover"]
    assert recorder.started == [("shop", target.state_dir / "watch" / "failover.log")]
    told = [m for m in read_outbox(target) if m["event"] == "team/watch-failover"]
    assert len(told) == 1 and "recovery failover --yes --target shop" in told[0]["body"]


def test_the_failover_command_is_the_failover_runbooks() -> None:
    argv = act.failover_argv("shop")
    assert argv[1:] == ("-m", "recovery.cli.main", "failover", "--yes", "--target", "shop")
    assert act.failover_command("shop") == "recovery failover --yes --target shop"


def test_a_restore_killed_inside_its_fence_is_paged_at_once_with_the_resume_command(tmp_path: Path) -> None:
    target, recorder = _target(tmp_path, automatic_failover=True), Recorder()
    steps = tuple(
        step.name
        for step in restore_runbook(
            target, restore_params(["orders"], at=None, point=None, restore_id="r1")
        ).steps
    )
    run_id = new_run_id("restore")
    journal = JournalWriter.create(target.state_dir, run_id)
    at = "2026-12-07T00:00:00+00:00"
    journal(
        RunStarted(
            run_id,
            at,
            "restore",
            "recovery.runbooks.restore",
            "shop",
            {},
            tuple(PlannedStep(name, f"{name} step", True) for name in steps),
            True,
            "root",
            "host",
            4242,
        )
    )
    cut = steps.index("fence-service")
    for index, name in enumerate(steps[:cut], 1):
        journal(StepStarted(run_id, at, name, index, len(steps), f"{name} step", 1))
        journal(StepFinished(run_id, at, name, index, len(steps), 0.1, {}))
    journal(StepStarted(run_id, at, "fence-service", cut + 1, len(steps), "fence-service step", 1))
    journal.close()  # the process was killed: the kernel dropped the journal's lock

    decision = _watch(target, recorder).cycle()
    assert decision.action == "page"
    assert decision.reason == (
        f"run {run_id} (restore) was interrupted in step fence-service while the order service was fenced: "
        f"the shop takes no orders until a person runs `recovery runs resume {run_id} --target shop`"
    )
    assert recorder.started == [], "a fenced run is a person's to resume, never a failover's"
    pages = [m for m in read_outbox(target) if m["event"] == "team/watch-page"]
    assert len(pages) == 1 and f"run `recovery runs resume {run_id} --target shop`" in pages[0]["body"]
