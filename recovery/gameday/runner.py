"""Run a scenario through chaostoolkit-lib, then add what its journal lacks: the ledger, the timeline of
the toolkit's own runbooks, the objectives, and the reports.

The experiment gets four configuration values from here (a plain `chaos run` takes them from the
environment or their defaults): `recovery_target`, `ledger` (where the load generator writes every
acknowledged order of this run), `faulty_target` (where a network fault writes the target whose store
sits behind the fault proxy) and `recovery_bin` (the directory of the `recovery` command the process
activities call).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recovery.engine.journal import read_journal, run_ids, runs_dir
from recovery.errors import PreconditionFailed
from recovery.gameday.history import RUN_FILE
from recovery.gameday.measure import check_responses, error_rate_between, evaluate, load_buckets
from recovery.gameday.model import GameDayRun, Measured, to_json
from recovery.gameday.report import html_report, junit_report, markdown_report
from recovery.gameday.scenario import Scenario
from recovery.gameday.timeline import build_timeline, moment
from recovery.load.ledger import Ledger, read_ledger
from recovery.load.ledger_check import verify_ledger
from recovery.notify.publish import read_outbox
from recovery.targets.model import Target


@contextmanager
def _recovery_on_path() -> Iterator[Path]:
    """The process activities call `recovery`: the one installed beside this Python, first on PATH."""
    bin_dir = Path(sys.executable).parent
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{before}"
    try:
        yield bin_dir
    finally:
        os.environ["PATH"] = before


def _journals_since(target: Target, started: datetime) -> list[list[dict[str, Any]]]:
    found = []
    for run_id in run_ids(target.state_dir):
        records = read_journal(runs_dir(target.state_dir) / run_id / "journal.jsonl")
        if records and moment(records[0]["at"]) >= started:
            found.append(records)
    return sorted(found, key=lambda records: str(records[0]["at"]))


def _chaos(scenario: Scenario, config: dict[str, str]) -> dict[str, Any]:
    # Imported here: chaostoolkit-lib configures logging on import, which only game days want.
    from chaoslib.experiment import ensure_experiment_is_valid, run_experiment

    experiment = json.loads(json.dumps(scenario.experiment))  # chaoslib mutates what it runs
    ensure_experiment_is_valid(experiment)
    journal: dict[str, Any] = run_experiment(experiment, settings={}, experiment_vars=(config, {}))
    plain: dict[str, Any] = json.loads(json.dumps(journal, default=str))
    return plain


def run_game_day(
    scenario: Scenario, target: Target, target_ref: str, report_dir: Path, run_id: str
) -> GameDayRun:
    out = report_dir / run_id
    out.mkdir(parents=True, exist_ok=False)
    ledger_path = out / "ledger.jsonl"
    started = datetime.now(UTC)
    clock = time.monotonic()
    with _recovery_on_path() as bin_dir:
        config = {
            "recovery_target": target_ref,
            "ledger": str(ledger_path),
            "faulty_target": str(out / "faulty-target.yaml"),
            "recovery_bin": str(bin_dir),
        }
        chaos_journal = _chaos(scenario, config)
    duration = time.monotonic() - clock
    (out / "chaos-journal.json").write_text(json.dumps(chaos_journal, indent=2) + "\n")
    if chaos_journal.get("status") != "completed" and not (chaos_journal.get("run") or []):
        before = (chaos_journal.get("steady_states") or {}).get("before") or {}
        if before and not before.get("steady_state_met"):
            raise PreconditionFailed(
                f"{scenario.path}: the system is not in its steady state before the fault (see "
                f"{out / 'chaos-journal.json'}); fix it first, nothing was injected",
                code="gameday.not_steady",
            )
    timeline = build_timeline(started, chaos_journal, _journals_since(target, started), scenario.recovery)
    ledger = read_ledger(ledger_path) if ledger_path.is_file() else Ledger((), (), ())
    buckets = load_buckets(ledger, started.timestamp())
    verdict = verify_ledger(target, ledger)
    notifications = tuple(
        str(record["event"]) for record in read_outbox(target) if moment(str(record["at"])) >= started
    )
    measured = Measured(
        time_to_detect_s=timeline.time_to_detect_s,
        rto_s=timeline.rto_s,
        orders_acknowledged=verdict.acknowledged,
        orders_lost=verdict.lost.count,
        orders_set_aside=verdict.set_aside.count,
        orders_queued=verdict.pending,  # acknowledged as accepted-pending (202) while the database was out
        orders_replayed=verdict.pending_present,
        error_rate=error_rate_between(buckets, timeline.fault_at_s, timeline.recovered_at_s),
        seconds_of_writes_lost=None,
        notifications=notifications,
    )
    objectives = scenario.recovery.to_objectives()
    run = GameDayRun(
        run_id=run_id,
        scenario=scenario.name,
        title=scenario.title,
        target=target.name,
        started_at=started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        duration_s=round(duration, 3),
        experiment_status=str(chaos_journal.get("status", "unknown")),
        objectives=objectives,
        measured=measured,
        results=evaluate(objectives, measured) + check_responses(scenario.recovery.responses, chaos_journal),
        timeline=timeline.events,
        load=buckets,
    )
    (out / RUN_FILE).write_text(to_json(run))
    (out / "report.html").write_text(html_report(run))
    (out / "report.md").write_text(markdown_report(run))
    (out / "junit.xml").write_bytes(junit_report([run]))
    return run
