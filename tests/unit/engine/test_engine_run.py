"""A run: steps in order, outputs flowing forward, the journal, events, failures and dry runs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import SAMPLE, calls, sample_runbook

from recovery.engine import Engine, Event, Runbook, RunContext, Step, failed_run
from recovery.engine.journal import RUN_ID_PATTERN, new_run_id
from recovery.errors import EnvironmentProblem, ExternalFailure, RecoveryError
from recovery.targets import Target


def params(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"calls": str(tmp_path / "calls.txt"), "version": "v2", **extra}


def journal_records(target: Target, run_id: str) -> list[dict[str, Any]]:
    path = target.state_dir / "runs" / run_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_steps_run_once_in_order_and_see_earlier_outputs(target: Target, tmp_path: Path) -> None:
    result = Engine(target).run(sample_runbook(target, params(tmp_path)))

    assert [name for name, _ in calls(tmp_path / "calls.txt")] == ["prepare", "wait", "apply", "verify"]
    assert result.status == "ok" and result.ok
    assert [(s.name, s.status, s.attempts) for s in result.steps] == [
        ("prepare", "ok", 1),
        ("wait", "ok", 1),
        ("apply", "ok", 1),
        ("verify", "ok", 1),
    ]
    assert result.step("apply").output == {"applied": "v2", "after": "v2"}
    assert all(s.duration_s is not None and s.duration_s >= 0 for s in result.steps)
    assert RUN_ID_PATTERN.match(result.run_id) and f"-{SAMPLE}-" in result.run_id


def test_run_ids_sort_by_start_time() -> None:
    now = datetime(2026, 11, 25, 22, 15, tzinfo=UTC)
    ids = [
        new_run_id("zz", now),
        new_run_id("aa", now + timedelta(seconds=1)),
        new_run_id("mm", now + timedelta(hours=3)),
    ]
    assert sorted(ids) == ids
    assert ids[0].startswith("20261125T221500Z-zz-")


def test_journal_records_every_event_in_order(target: Target, tmp_path: Path) -> None:
    result = Engine(target).run(sample_runbook(target, params(tmp_path)))
    records = journal_records(target, result.run_id)

    assert [(r["event"], r.get("step")) for r in records] == [
        ("run.started", None),
        ("step.started", "prepare"),
        ("step.note", "prepare"),
        ("step.finished", "prepare"),
        ("step.started", "wait"),
        ("step.finished", "wait"),
        ("step.started", "apply"),
        ("step.finished", "apply"),
        ("step.started", "verify"),
        ("step.finished", "verify"),
        ("run.finished", None),
    ]
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert {r["run_id"] for r in records} == {result.run_id}
    for record in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["at"])
        assert datetime.fromisoformat(record["at"]).tzinfo is not None
    head = records[0]
    assert head["runbook"] == SAMPLE and head["target"] == "testsite" and head["format"] == 1
    assert head["params"] == params(tmp_path)
    assert head["user"] and head["host"] and isinstance(head["pid"], int)
    assert [s["name"] for s in head["steps"]] == ["prepare", "wait", "apply", "verify"]
    assert [s["mutating"] for s in head["steps"]] == [False, True, True, False]
    finished = [r for r in records if r["event"] == "step.finished"]
    assert all(isinstance(r["duration_s"], float) for r in finished)
    assert finished[2]["output"] == {"applied": "v2", "after": "v2"}
    assert records[-1]["status"] == "ok" and records[-1]["failed_step"] is None


def test_subscribers_get_events_after_the_journal_has_them(target: Target, tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    def subscriber(event: Event) -> None:
        journal = target.state_dir / "runs" / event.run_id / "journal.jsonl"
        seen.append((event.kind, len(journal.read_text().splitlines())))

    Engine(target, [subscriber]).run(sample_runbook(target, params(tmp_path)))
    kinds = [kind for kind, _ in seen]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    assert "step.progress" not in kinds  # no gate: the wait step reports nothing
    journaled = [lines for kind, lines in seen if kind != "step.progress"]
    assert journaled == list(range(1, len(journaled) + 1))  # line n is on disk when event n arrives


def test_progress_events_reach_subscribers_but_not_the_journal(target: Target, tmp_path: Path) -> None:
    def chatty(ctx: RunContext) -> None:
        ctx.progress("half way", done=1, total=2)

    kinds: list[str] = []
    runbook = Runbook("chatty", (Step("talk", "say how far it is", chatty, mutating=False),))
    result = Engine(target, [lambda e: kinds.append(e.kind)]).run(runbook)
    assert "step.progress" in kinds
    assert "step.progress" not in [r["event"] for r in journal_records(target, result.run_id)]


def test_secrets_never_reach_the_journal(target: Target, tmp_path: Path) -> None:
    given = params(tmp_path, api_token="tok-123456", db={"url": "postgresql://orders:pw-in-url@db/orders"})
    result = Engine(target).run(sample_runbook(target, given))
    path = target.state_dir / "runs" / result.run_id / "journal.jsonl"
    text = path.read_text()

    for secret in ("tok-123456", "pw-in-url", "hunter2", "s3cret", "tok-not-for-logs"):
        assert secret not in text
    records = journal_records(target, result.run_id)
    assert records[0]["params"]["api_token"] == "<redacted>"
    assert records[0]["params"]["db"]["url"] == "postgresql://orders:<redacted>@db/orders"
    assert records[0]["params"]["version"] == "v2"  # only secrets are replaced
    prepare = result.step("prepare").output
    assert prepare == {
        "version": "v2",
        "password": "<redacted>",
        "dsn": "postgresql://orders:<redacted>@127.0.0.1:15432/orders",
    }
    note = next(r for r in records if r["event"] == "step.note")
    assert note["data"] == {"version": "v2", "token": "<redacted>"}


def test_a_failing_step_fails_the_run_with_its_code(target: Target, tmp_path: Path) -> None:
    with pytest.raises(ExternalFailure) as raised:
        Engine(target).run(sample_runbook(target, params(tmp_path, fail="apply")))

    assert [name for name, _ in calls(tmp_path / "calls.txt")] == ["prepare", "wait", "apply"]
    result = failed_run(raised.value)
    assert result is not None
    assert result.status == "failed" and result.failed_step == "apply"
    assert result.code == "external.failed" and "could not reach the host" in (result.message or "")
    assert [s.status for s in result.steps] == ["ok", "ok", "failed", "not_run"]
    records = journal_records(target, result.run_id)
    failed = next(r for r in records if r["event"] == "step.failed")
    assert failed["step"] == "apply" and failed["code"] == "external.failed" and failed["traceback"] is None
    assert records[-1] == {
        **records[-1],
        "event": "run.finished",
        "status": "failed",
        "failed_step": "apply",
        "code": "external.failed",
    }
    assert "verify" not in [r.get("step") for r in records]


def test_an_unexpected_exception_fails_with_code_internal(target: Target, tmp_path: Path) -> None:
    with pytest.raises(RecoveryError) as raised:
        Engine(target).run(sample_runbook(target, params(tmp_path, boom="wait")))

    error = raised.value
    assert error.code == "internal"
    assert isinstance(error.__cause__, ValueError)
    assert "\n" not in error.message and "ValueError" in error.message
    assert "hunter2" not in error.message
    result = failed_run(error)
    assert result is not None and result.failed_step == "wait" and result.code == "internal"
    failed = next(r for r in journal_records(target, result.run_id) if r["event"] == "step.failed")
    assert "Traceback" in failed["traceback"] and "ValueError" in failed["traceback"]
    assert "hunter2" not in json.dumps(failed)


def test_output_that_is_not_json_fails_the_step(target: Target, tmp_path: Path) -> None:
    with pytest.raises(RecoveryError) as raised:
        Engine(target).run(sample_runbook(target, params(tmp_path, bad_output="apply")))
    assert raised.value.code == "internal" and "not JSON" in raised.value.message
    result = failed_run(raised.value)
    assert result is not None and result.failed_step == "apply"


def test_steps_cannot_change_earlier_outputs(target: Target) -> None:
    def produce(ctx: RunContext) -> dict[str, Any]:
        return {"hosts": ["a", "b"], "meta": {"n": 1}}

    def tamper(ctx: RunContext) -> None:
        ctx.outputs["produce"]["meta"]["n"] = 2

    runbook = Runbook("tamper", (Step("produce", "make output", produce), Step("tamper", "edit it", tamper)))
    with pytest.raises(RecoveryError) as raised:
        Engine(target).run(runbook)
    assert raised.value.code == "internal" and "TypeError" in raised.value.message
    result = failed_run(raised.value)
    assert result is not None and result.step("produce").output == {"hosts": ["a", "b"], "meta": {"n": 1}}


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_dry_run_plans_and_changes_nothing(target: Target, tmp_path: Path) -> None:
    before = tree(tmp_path)
    plan = Engine(target).plan(sample_runbook(target, params(tmp_path, api_token="tok-9")))

    assert tree(tmp_path) == before
    assert not target.state_dir.exists()
    assert not (tmp_path / "calls.txt").exists()
    assert [s.name for s in plan.steps] == ["prepare", "wait", "apply", "verify"]
    assert plan.steps[2].acts_on == ("primary-app", "database orders")
    assert plan.mutating and plan.lock == target.state_dir / "locks" / "testsite.lock"
    assert plan.params["api_token"] == "<redacted>"


def test_invalid_runbooks_are_refused_at_definition() -> None:
    def nothing(ctx: RunContext) -> None:
        return None

    with pytest.raises(ValueError, match="repeats step names: a"):
        Runbook("dup", (Step("a", "one", nothing), Step("a", "two", nothing)))
    with pytest.raises(ValueError, match="must match"):
        Step("Bad Name", "x", nothing)
    with pytest.raises(ValueError, match="JSON"):
        Runbook("params", (Step("a", "one", nothing),), params={"when": datetime.now(UTC)})


def test_an_unwritable_state_dir_is_an_environment_problem(target: Target, tmp_path: Path) -> None:
    target.state_dir.parent.mkdir(parents=True, exist_ok=True)
    target.state_dir.write_text("a file where the state directory should be")
    with pytest.raises(EnvironmentProblem, match="make the target's state_dir writable"):
        Engine(target).run(sample_runbook(target, params(tmp_path)))
    assert not (tmp_path / "calls.txt").exists()
