"""Runs that died while the order service was fenced: the one decision, from a run's journal alone.

A runbook that fences the service (stops it, or keeps its database role out) lifts the fence in a later
step. When its process dies in between (kill -9, a lost terminal, a reboot) the service stays down and
nothing else says so. Such a run is resumable: `recovery runs resume` finishes it. `lab status`, `runs
list` and a watch call `interrupted_inside_fence` on a run's records to say it plainly.

Which steps fence and which lift is declared here, per runbook (the runbooks name their steps; a test
checks that these names are theirs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery.engine.journal import is_running, journal_path, read_journal, run_ids
from recovery.engine.result import NotAJournal, summarize

# runbook -> (the step that fences the service, the step that lifts the fence)
FENCED_SPANS: Mapping[str, tuple[str, str]] = {
    "restore": ("fence-service", "start-service"),
    "rollback": ("fence", "switch-release"),
    "switchover": ("fence", "open-for-writes"),
    "failover": ("fence", "open-for-writes"),
}


@dataclass(frozen=True)
class FencedInterruption:
    """A run whose process died after its fence step started and before its lifting step finished."""

    run_id: str
    runbook: str
    target: str
    fence_step: str
    lift_step: str
    last_step: str  # the last step the journal shows started

    def resume_command(self, target_ref: str | None = None) -> str:
        """The command that ends it; `target_ref` is how the operator names the target (a lab's
        target.yaml path, say), else the name the run journaled."""
        return f"recovery runs resume {self.run_id} --target {target_ref or self.target}"

    def sentence(self, target_ref: str | None = None) -> str:
        return (
            f"run {self.run_id} ({self.runbook}) was interrupted at step {self.last_step} while the order "
            f"service was fenced: the service stays stopped until `{self.resume_command(target_ref)}` ends it"
        )


def interrupted_inside_fence(
    records: Sequence[Mapping[str, Any]], *, lock_held: bool
) -> FencedInterruption | None:
    """The interruption when `records` (a run's journal) show a run inside its fence whose lock holder is
    gone; None for a run that finished, still runs (`lock_held`), never fenced, or already lifted it."""
    if lock_held:
        return None
    try:
        result = summarize(records, running=False)
    except NotAJournal:
        return None
    span = FENCED_SPANS.get(result.runbook)
    if result.status != "interrupted" or span is None:
        return None
    fence_step, lift_step = span
    steps = {step.name: step for step in result.steps}
    if fence_step not in steps or lift_step not in steps:
        return None
    if steps[fence_step].attempts == 0 or steps[lift_step].status == "ok":
        return None
    started = [str(r["step"]) for r in records if r.get("event") == "step.started" and "step" in r]
    return FencedInterruption(
        run_id=result.run_id,
        runbook=result.runbook,
        target=result.target,
        fence_step=fence_step,
        lift_step=lift_step,
        last_step=started[-1] if started else fence_step,
    )


def open_fences(
    runs: Iterable[tuple[Sequence[Mapping[str, Any]], bool]],
) -> list[FencedInterruption]:
    """Of a target's runs, newest first, as (journal records, lock held): the fenced interruptions not
    superseded by a newer run of a fencing runbook that lifted its fence (the service runs again)."""
    found: list[FencedInterruption] = []
    for records, lock_held in runs:
        hit = interrupted_inside_fence(records, lock_held=lock_held)
        if hit is not None:
            found.append(hit)
        elif _lifted(records):
            break
    return found


def _lifted(records: Sequence[Mapping[str, Any]]) -> bool:
    runbook = records[0].get("runbook") if records else None
    span = FENCED_SPANS.get(str(runbook))
    return span is not None and any(
        r.get("event") == "step.finished" and r.get("step") == span[1] for r in records
    )


def target_open_fences(state_dir: Path) -> list[FencedInterruption]:
    """`open_fences` over the journals under a target's state dir."""

    def runs() -> Iterator[tuple[list[dict[str, Any]], bool]]:
        for run_id in run_ids(state_dir):
            path = journal_path(state_dir, run_id)
            yield read_journal(path), is_running(path)

    return open_fences(runs())
