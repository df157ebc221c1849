"""Game days over time: every run of a scenario found under a report directory, oldest first, with the
trend of its detection and recovery times (the plan's own measures of response speed and efficiency)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recovery.gameday.model import GameDayRun, from_json

RUN_FILE = "run.json"


def read_runs(report_dir: Path, scenario: str | None = None) -> list[GameDayRun]:
    runs = [
        from_json(path.read_text(encoding="utf-8"), path) for path in sorted(report_dir.glob(f"*/{RUN_FILE}"))
    ]
    chosen = [run for run in runs if scenario is None or run.scenario == scenario]
    return sorted(chosen, key=lambda run: run.started_at)


@dataclass(frozen=True)
class Trend:
    scenario: str
    runs: int
    passed: int
    detect_first: float | None
    detect_last: float | None
    rto_first: float | None
    rto_last: float | None
    rto_best: float | None

    def sentence(self) -> str:
        def change(first: float | None, last: float | None) -> str:
            if first is None or last is None:
                return "not measured"
            word = "better" if last < first else "worse" if last > first else "unchanged"
            return f"{first:.1f} s -> {last:.1f} s ({word})"

        return (
            f"{self.scenario}: {self.passed} of {self.runs} runs passed; time to detect "
            f"{change(self.detect_first, self.detect_last)}; RTO {change(self.rto_first, self.rto_last)}"
        )


def trends(runs: Sequence[GameDayRun]) -> list[Trend]:
    """One trend per scenario, from its first run to its latest. Pure."""
    by_scenario: dict[str, list[GameDayRun]] = {}
    for run in runs:
        by_scenario.setdefault(run.scenario, []).append(run)
    found = []
    for scenario, chosen in sorted(by_scenario.items()):
        rtos = [run.measured.rto_s for run in chosen if run.measured.rto_s is not None]
        found.append(
            Trend(
                scenario,
                len(chosen),
                sum(run.passed for run in chosen),
                chosen[0].measured.time_to_detect_s,
                chosen[-1].measured.time_to_detect_s,
                chosen[0].measured.rto_s,
                chosen[-1].measured.rto_s,
                min(rtos) if rtos else None,
            )
        )
    return found
