"""Game day measures, objectives, reports (HTML, Markdown, JUnit, JSON) and history."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gameday_runs import OBJECTIVES, game_day, measured

from recovery.errors import UsageError
from recovery.gameday.history import read_runs, trends
from recovery.gameday.measure import error_rate_between, evaluate, load_buckets
from recovery.gameday.model import from_json, to_json
from recovery.gameday.report import html_report, junit_report, markdown_report
from recovery.load.ledger import AckedOrder, Failure, Ledger


def test_the_ledger_becomes_load_per_second_with_failures_and_p95() -> None:
    ledger = Ledger(
        orders=tuple(AckedOrder(f"o{i}", 100.0 + i * 0.1, 100, float(i)) for i in range(20)),
        payments=(),
        failures=(Failure("order", 101.5, "HTTP 503", 3.0), Failure("order", 103.2, "no answer", 5000.0)),
    )
    buckets = load_buckets(ledger, started=100.0)
    assert [(b.at_s, b.acknowledged, b.failed) for b in buckets] == [
        (0, 10, 0),
        (1, 10, 1),
        (2, 0, 0),
        (3, 0, 1),
    ]
    assert buckets[0].p95_ms == 9.0 and buckets[2].p95_ms is None
    assert error_rate_between(buckets, 1.0, 3.0) == 2 / 12


def test_objectives_pass_and_miss_with_the_reason() -> None:
    results = {r.name: r for r in evaluate(OBJECTIVES, measured(detect=4.2, rto=31.0, lost=2))}
    assert (
        results["time to detect"].passed
        and results["time to detect"].reason == "4.2 s within the goal of 10 s"
    )
    assert not results["time to recover (RTO)"].passed
    assert results["time to recover (RTO)"].reason == "31 s misses the goal of 30 s"
    assert results["orders lost"].reason == "2 misses the goal of 0"
    never = {r.name: r for r in evaluate(OBJECTIVES, measured(rto=None))}["time to recover (RTO)"]
    assert not never.passed and never.reason == "time to recover (RTO) was never reached"


def test_html_report_escapes_run_text_and_draws_both_charts() -> None:
    page = html_report(game_day())
    assert "<fast>" not in page and "&lt;fast&gt;" in page
    assert '<svg id="timeline"' in page and '<svg id="load"' in page
    assert page.count("<circle") == 5 and page.count("<rect") == 1  # one bar: the runbook step
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_markdown_and_junit_name_each_objective() -> None:
    run = game_day(values=measured(rto=45.0))
    text = markdown_report(run)
    assert "| time to recover (RTO) | <= 30 s | 45 s | **miss** |" in text
    suite = ET.fromstring(junit_report([run])).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failure = suite.find("testcase[@name='time to recover (RTO)']/failure")
    assert failure is not None and failure.get("message") == "45 s misses the goal of 30 s"


def test_an_experiment_that_did_not_complete_fails_even_with_every_objective_met() -> None:
    run = game_day(status="failed")
    assert all(r.passed for r in run.results) and not run.passed
    suite = ET.fromstring(junit_report([run])).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"


def test_json_round_trips_and_history_shows_the_trend(tmp_path: Path) -> None:
    older = game_day("r1", "2026-12-01T10:00:00Z", values=measured(detect=9.0, rto=25.0))
    newer = game_day("r2", "2026-12-06T10:00:00Z", values=measured(detect=4.0, rto=12.0))
    other = game_day("r3", "2026-12-05T10:00:00Z", scenario="restore-under-load")
    for run in (newer, older, other):
        (tmp_path / run.run_id).mkdir()
        (tmp_path / run.run_id / "run.json").write_text(to_json(run))
    assert from_json(to_json(older), Path("x")) == older
    runs = read_runs(tmp_path, "failed-upgrade-unhealthy")
    assert [r.run_id for r in runs] == ["r1", "r2"]
    [trend] = trends(runs)
    assert trend.sentence() == (
        "failed-upgrade-unhealthy: 2 of 2 runs passed; time to detect 9.0 s -> 4.0 s (better); "
        "RTO 25.0 s -> 12.0 s (better)"
    )


def test_a_damaged_report_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "run.json").write_text('{"format": 99}')
    with pytest.raises(UsageError, match=r"r1/run.json is not a game day report \(report format 99"):
        read_runs(tmp_path)
