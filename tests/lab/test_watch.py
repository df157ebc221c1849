"""The watch on the real lab: `lab up --watch` leaves a watch that took the first realtime and daily
backups (so preflight finds them fresh), publishes to moto's CloudWatch and serves Prometheus text. Then a
watch restarted with tight objectives (its own process, the lab's state): archiving broken -> the realtime
backups' age crosses its threshold -> an alarm naming the domain and the command reaches an SQS queue
subscribed to the team topic; a run holding the lock -> the watch holds; the primary database killed with
automatic failover off -> a page and nothing else.

The tests run in file order and share one lab; the last one kills the primary database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BASE_PORT, Lab, running_lab

from recovery.backup.catalog import catalog_for
from recovery.backup.naming import DOMAINS, kinds_of
from recovery.backup.realtime import spool_dir
from recovery.drivers import db
from recovery.drivers.aws import AwsDriver
from recovery.engine import Engine, Runbook, RunContext, Step, run_ids
from recovery.lab import postgres
from recovery.lab.processes import is_alive
from recovery.lab.state import read_state
from recovery.release.preflight import decide_backups
from recovery.release.preflight_checks.backups import observe_backups
from recovery.targets.load import load_target
from recovery.targets.model import Target
from recovery.watch import metrics_contract as contract
from recovery.watch.act import recovery_argv
from recovery.watch.loop import read_status

pytestmark = pytest.mark.lab

WAIT = 90  # seconds any one awaited effect may take on a loaded machine (never a speed assertion)


@pytest.fixture(scope="module")
def lab(lab_reachable_tmp: Callable[[str], Path]) -> Iterator[Lab]:
    with running_lab(lab_reachable_tmp("watch"), BASE_PORT, "--watch") as built:
        yield built


def _until(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def test_lab_up_leaves_a_watch_whose_first_backups_make_preflight_pass(lab: Lab) -> None:
    state = read_state(lab.dir / "lab.json")
    assert state is not None
    record = state.process("watch")
    assert record is not None and is_alive(record.pid, record.start_ticks)
    entries = catalog_for(lab.target).verify_all()
    counted = {(e.domain, e.kind) for e in entries if e.counts}
    assert counted == {(domain, kind) for domain in DOMAINS for kind in kinds_of(domain)}
    checks = decide_backups(
        observe_backups(lab.target),
        lab.target.objectives,
        datetime.now(UTC),
        restore_point_pending=False,
        target="lab",
    )
    assert [c.reason for c in checks if c.status != "pass"] == []


def test_metrics_reach_motos_cloudwatch_and_the_prometheus_endpoint_answers(lab: Lab) -> None:
    aws = AwsDriver(lab.target.aws)

    def names(region: str) -> set[str]:
        listed = aws.client("cloudwatch", region).list_metrics(Namespace=contract.NAMESPACE)["Metrics"]
        return {m["MetricName"] for m in listed}

    primary = _until("metrics in CloudWatch", lambda: names(lab.target.primary.region))
    assert {
        "BackupAgeSeconds",
        "BackupAgeSecondsOldestDomain",
        "ProbeFailures",
        "WalSpoolOldestAgeSeconds",
    } <= primary
    assert {"ReplicationLagBytes", "ReplicationLagSeconds"} <= names(lab.target.standby.region)
    url = f"http://127.0.0.1:{lab.plan.watch_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    assert 'order_recovery_backup_age_seconds{domain="orders",kind="realtime",site="primary"}' in text
    assert 'order_recovery_probe_failures{probe="database",site="primary"} 0.0' in text


# --- a watch with tight objectives, restarted on the lab's state --------------------------------------


def _team_queue(lab: Lab) -> str:
    aws = AwsDriver(lab.target.aws)
    region = lab.target.primary.region
    sqs, sns = aws.client("sqs", region), aws.client("sns", region)
    queue = sqs.create_queue(QueueName=f"team-inbox-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert lab.target.team_topic_arn is not None
    sns.subscribe(TopicArn=lab.target.team_topic_arn, Protocol="sqs", Endpoint=arn)
    return str(queue)


def _messages(lab: Lab, queue: str) -> list[dict[str, Any]]:
    sqs = AwsDriver(lab.target.aws).client("sqs", lab.target.primary.region)
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not got:
            return out
        for message in got:
            out.append(json.loads(message["Body"]))  # the SNS envelope: Subject, Message
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


class Inbox:
    def __init__(self, lab: Lab) -> None:
        self.lab, self.queue, self.seen = lab, _team_queue(lab), []  # type: ignore[var-annotated]

    def wait_for(self, subject_part: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            self.seen += _messages(self.lab, self.queue)
            return next((m for m in self.seen if subject_part in m.get("Subject", "")), None)

        return _until(f"a team message with {subject_part!r}", found)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tight(lab: Lab) -> Iterator[tuple[Target, Path, Inbox]]:
    """The lab's watch stopped and a watch with a 10 s realtime objective started on the lab's state
    (a restart: it must not take the day's backups again)."""
    state = read_state(lab.dir / "lab.json")
    record = state.process("watch") if state is not None else None
    assert record is not None
    os.kill(record.pid, signal.SIGTERM)
    _until("the lab's watch to stop", lambda: not is_alive(record.pid, record.start_ticks))
    doc = yaml.safe_load((lab.dir / "target.yaml").read_text())
    doc["objectives"] = {**doc.get("objectives", {}), "realtime_backup_max_age_seconds": 10}
    doc["watch"] = {"automatic_failover": False, "failures_to_act": 3, "seconds_to_act": 2}
    path = lab.dir / "tight" / "target.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    inbox = Inbox(lab)
    runs_before = set(run_ids(lab.target.state_dir))
    argv = recovery_argv("watch", "--target", str(path), "--freshness-every", "2")
    with (path.parent / "watch.log").open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        target = load_target(path)
        _until(
            "the restarted watch's first cycle",
            lambda: (read_status(target.state_dir) or {}).get("pid") == process.pid,
        )
        _until(
            "the restarted watch's schedule",
            lambda: (read_status(target.state_dir) or {}).get("first_round_done"),
        )
        assert set(run_ids(lab.target.state_dir)) == runs_before, "a restart takes no backup the day has"
        yield target, path, inbox
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_broken_archiving_alarms_the_team_naming_the_domain_and_the_command(
    lab: Lab, tight: tuple[Target, Path, Inbox]
) -> None:
    target, path, inbox = tight
    spool = spool_dir(target.primary.database)
    mode = spool.stat().st_mode & 0o777
    spool.chmod(0o500)  # the archive command can no longer write: archiving fails on the next segment
    try:
        with db.connect(target.primary.database) as conn:
            conn.execute("INSERT INTO events (kind, subject, payload) VALUES ('test', 'watch', '{}')")
            conn.execute("SELECT pg_switch_wal()")
        alarm = inbox.wait_for("ALARM backup age orders/realtime")
    finally:
        spool.chmod(mode)
    assert alarm["Subject"] == f"[{target.name}] ALARM backup age orders/realtime"
    assert "beyond its threshold of 10 s" in alarm["Message"]
    assert f"run `recovery backup setup-archiving --target {path} --yes`" in alarm["Message"]


def _holding_run(target: Target, release: threading.Event, started: threading.Event) -> None:
    def wait(ctx: RunContext) -> dict[str, object]:
        started.set()
        release.wait(WAIT)
        return {}

    Engine(target).run(Runbook("watch-test-hold", (Step("hold", "hold the lock a while", wait),)))


def test_while_a_run_holds_the_lock_the_watch_holds(tight: tuple[Target, Path, Inbox]) -> None:
    target, _, _ = tight
    release, started = threading.Event(), threading.Event()
    worker = threading.Thread(target=_holding_run, args=(target, release, started))
    worker.start()
    try:
        assert started.wait(WAIT)
        decision = _until(
            "the watch to hold",
            lambda: (
                (d := (read_status(target.state_dir) or {}).get("decision", {})).get("action") == "hold" and d
            ),
        )
        assert "(watch-test-hold) holds the target's lock" in decision["reason"]
    finally:
        release.set()
        worker.join()


def test_the_primary_database_killed_with_automatic_failover_off_pages_and_nothing_else(
    lab: Lab, tight: tuple[Target, Path, Inbox]
) -> None:
    target, _, inbox = tight
    runs_before = set(run_ids(target.state_dir))
    postmaster = postgres.running_postmaster(lab.plan.primary.pg_data)
    assert postmaster is not None
    killed = time.monotonic()
    os.kill(postmaster, signal.SIGKILL)
    page = inbox.wait_for("PAGE: the watch needs a person")
    print(
        f"\nkill -9 of the primary database to the page on the team topic: {time.monotonic() - killed:.1f} s"
    )
    assert "automatic failover is off" in page["Message"]
    assert "run `recovery failover --target" in page["Message"]
    time.sleep(3)  # a few more cycles: still nothing started
    assert not (target.state_dir / "watch" / "failover.log").exists()
    assert set(run_ids(target.state_dir)) == runs_before, "no runbook was started"
    status = read_status(target.state_dir)
    assert status is not None and status["decision"]["action"] == "page"
    with contextlib.suppress(ProcessLookupError):
        os.kill(postmaster, 0)
