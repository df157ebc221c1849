"""From what a run recorded to what it measured: load per second, detection, recovery, objectives. Pure."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from recovery.gameday.model import Bucket, Measured, ObjectiveResult, Objectives, TimelineEvent
from recovery.gameday.scenario import Response
from recovery.load.ledger import Ledger


def _p95(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def load_buckets(ledger: Ledger, started: float) -> tuple[Bucket, ...]:
    """Orders, payments and failures of the ledger, per whole second since `started`."""
    acked: dict[int, list[float]] = defaultdict(list)
    failed: dict[int, int] = defaultdict(int)
    for at, latency in [(o.at, o.latency_ms) for o in ledger.orders] + [
        (p.at, p.latency_ms) for p in ledger.payments
    ]:
        acked[int(at - started)].append(latency)
    for failure in ledger.failures:
        failed[int(failure.at - started)] += 1
    seconds = sorted(set(acked) | set(failed))
    if not seconds:
        return ()
    return tuple(
        Bucket(second, len(acked.get(second, ())), failed.get(second, 0), _p95(acked.get(second, ())))
        for second in range(max(0, seconds[0]), seconds[-1] + 1)
    )


def first(events: Iterable[TimelineEvent], kind: str) -> float | None:
    return next((event.at_s for event in events if event.kind == kind), None)


def error_rate_between(buckets: Sequence[Bucket], start: float | None, end: float | None) -> float:
    """Failed requests over all requests from the fault to recovery (the whole run when either is unknown)."""
    chosen = [
        b for b in buckets if (start is None or b.at_s >= int(start)) and (end is None or b.at_s <= end)
    ]
    total = sum(b.acknowledged + b.failed for b in chosen)
    return sum(b.failed for b in chosen) / total if total else 0.0


def _shown(value: float, unit: str) -> str:
    return f"{value:.1%}" if unit == "%" else f"{value:g}{unit}"


def _check(name: str, goal: float | None, value: float | None, unit: str) -> ObjectiveResult | None:
    if goal is None:
        return None
    wanted = f"<= {_shown(goal, unit)}"
    if value is None:
        return ObjectiveResult(name, wanted, "not measured", False, f"{name} was never reached")
    passed = value <= goal
    verdict = "within" if passed else "misses"
    shown = _shown(value, unit)
    return ObjectiveResult(name, wanted, shown, passed, f"{shown} {verdict} the goal of {_shown(goal, unit)}")


def evaluate(objectives: Objectives, measured: Measured) -> tuple[ObjectiveResult, ...]:
    """Each objective the scenario sets, passed or missed, with the sentence that says why."""
    rate = None if objectives.error_rate is None else measured.error_rate
    checks = (
        _check("time to detect", objectives.time_to_detect_s, measured.time_to_detect_s, " s"),
        _check("time to recover (RTO)", objectives.rto_s, measured.rto_s, " s"),
        _check(
            "orders lost",
            None if objectives.orders_lost is None else float(objectives.orders_lost),
            float(measured.orders_lost),
            "",
        ),
        _check("error rate during the incident", objectives.error_rate, rate, "%"),
    )
    return tuple(check for check in checks if check is not None)


def _answer(response: Response, run: Mapping[str, Any] | None) -> tuple[str, bool, str]:
    """(what was seen, whether it is the expected answer, why) for one command of the method."""
    if run is None:
        return "did not run", False, f"{response.activity} never ran"
    output = run.get("output")
    if not isinstance(output, Mapping) or "status" not in output:
        raised = run.get("exception")  # chaostoolkit-lib keeps the traceback as a list of lines
        text = (
            "".join(raised) if isinstance(raised, list) else str(raised or run.get("status") or "no output")
        )
        failure = [line for line in text.splitlines() if line.strip()]
        last = failure[-1].strip() if failure else "?"
        return "no exit code", False, f"{response.activity} gave no exit code ({last})"
    code = int(output["status"])
    lines = [line for line in str(output.get("stderr") or "").splitlines() if line.strip()]
    seen = f"exit {code}" + (f", {lines[0][:120]}" if len(lines) == 1 else f", {len(lines)} stderr lines")
    if code != response.exit_code:
        return seen, False, f"{response.activity} exited {code}, expected {response.exit_code}"
    if response.exit_code == 0:
        return seen, True, f"{response.activity} succeeded"
    wanted = f"error[{response.error}]" if response.error else "error["
    if len(lines) != 1 or not lines[0].startswith(wanted):
        return seen, False, f"{response.activity} did not say why in one `{wanted}...` line on stderr"
    return seen, True, f"{response.activity} exited {code} with one line: {lines[0][:160]}"


def check_responses(
    responses: Sequence[Response], chaos_journal: Mapping[str, Any]
) -> tuple[ObjectiveResult, ...]:
    """Each expected answer of a command of the method against what Chaos Toolkit's journal recorded."""
    runs: dict[str, Mapping[str, Any]] = {}
    for run in chaos_journal.get("run") or []:
        name = str((run.get("activity") or {}).get("name", ""))
        runs.setdefault(name, run)
    results = []
    for response in responses:
        seen, passed, reason = _answer(response, runs.get(response.activity))
        goal = f"exit {response.exit_code}" + (
            f", one line error[{response.error}]" if response.error else ""
        )
        results.append(ObjectiveResult(f"response: {response.activity}", goal, seen, passed, reason))
    return tuple(results)
