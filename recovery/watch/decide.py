"""The watch's decision: from one cycle's observations, what to do and the sentence that says why. Pure.

Order of precedence, most urgent first:
1. a run interrupted while it held the service fenced: page at once (the shop takes no orders until a
   person resumes it);
2. a runbook holds the target's lock: hold, whatever else is seen (the watch never fights a rollback, a
   restore or a failover in progress), but still say what it would have raised;
3. the writer's database down for longer than the detection objective (consecutive failed probes, so one
   failed probe changes nothing): fail over when the target allows it automatically, else page;
4. anything past its threshold (backup age per domain and kind, WAL spool age, replication lag, error
   rate, latency): alarm, each naming the command that fixes it;
5. otherwise nothing.

Beside it, every cycle without a lock held, `judge_returning_site`: a site that is not the writer and
takes writes (an old primary that came back unfenced) is fenced again at once and paged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recovery.failover.decide import Decision as FailoverDecision
from recovery.failover.decide import decide_returning_site
from recovery.failover.state import ClusterState

Action = Literal["nothing", "alarm", "failover", "page", "hold"]


@dataclass(frozen=True)
class ProbeStreak:
    """How long a probe has been failing: consecutive failures and the seconds since the first of them."""

    failures: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Reading:
    """One measured value against its threshold, e.g. the age of the newest realtime orders backup."""

    check: str  # "backup age orders/realtime"
    value: float
    threshold: float
    unit: str  # "s", "bytes", "%", "ms"
    command: str  # what a person runs to fix it

    @property
    def breached(self) -> bool:
        return self.value > self.threshold


@dataclass(frozen=True)
class Interrupted:
    run_id: str
    runbook: str
    step: str


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    runbook: str


@dataclass(frozen=True)
class Observations:
    target: str
    writer_database: ProbeStreak
    readings: tuple[Reading, ...] = ()
    lock: LockHolder | None = None
    interrupted_in_fence: Interrupted | None = None


@dataclass(frozen=True)
class Policy:
    failures_to_act: int = 3  # consecutive failed probes of the writer's database before acting
    seconds_to_act: float = 2.0  # and at least this long since the first of them
    automatic_failover: bool = False


@dataclass(frozen=True)
class WatchDecision:
    action: Action
    reason: str
    alarms: tuple[Reading, ...] = ()


def _value(reading: Reading) -> str:
    return f"{reading.value:g} {reading.unit}"


def _alarm_sentence(alarms: tuple[Reading, ...]) -> str:
    return "; ".join(
        f"{a.check} is {_value(a)}, beyond {a.threshold:g} {a.unit}: run `{a.command}`" for a in alarms
    )


def decide(observed: Observations, policy: Policy) -> WatchDecision:
    alarms = tuple(reading for reading in observed.readings if reading.breached)
    stuck = observed.interrupted_in_fence
    if stuck is not None:
        return WatchDecision(
            "page",
            f"run {stuck.run_id} ({stuck.runbook}) was interrupted in step {stuck.step} while the order "
            f"service was fenced: the shop takes no orders until a person runs `recovery runs resume "
            f"{stuck.run_id} --target {observed.target}`",
            alarms,
        )
    if observed.lock is not None:
        held = f"run {observed.lock.run_id} ({observed.lock.runbook}) holds the target's lock"
        if alarms:
            return WatchDecision("hold", f"{held}; holding, though {_alarm_sentence(alarms)}", alarms)
        return WatchDecision("hold", f"{held}; holding until it ends", alarms)
    streak = observed.writer_database
    if streak.failures >= policy.failures_to_act and streak.seconds >= policy.seconds_to_act:
        down = f"the writer's database failed {streak.failures} probes in a row over {streak.seconds:.1f} s"
        if policy.automatic_failover:
            return WatchDecision("failover", f"{down}: failing over to the standby", alarms)
        return WatchDecision(
            "page",
            f"{down}; automatic failover is off: a person decides, e.g. `recovery failover --target "
            f"{observed.target}`",
            alarms,
        )
    if alarms:
        return WatchDecision("alarm", _alarm_sentence(alarms), alarms)
    if streak.failures:
        return WatchDecision(
            "nothing",
            f"the writer's database failed {streak.failures} probe(s) over {streak.seconds:.1f} s; "
            f"acting after {policy.failures_to_act} over {policy.seconds_to_act:g} s",
        )
    return WatchDecision("nothing", "every check is within its threshold")


# --- a returning old primary ----------------------------------------------------------------------------


def judge_returning_site(state: ClusterState, lock: LockHolder | None) -> FailoverDecision | None:
    """Whether the watch must fence the site that is not the writer (`decide_returning_site`'s
    "fence"), or None. Never while a runbook holds the lock: a failover or switchover in progress has a
    promoted database that the site record does not name yet, and fencing it would be fencing the new
    writer; the runbook fences the old one itself."""
    if lock is not None:
        return None
    decision = decide_returning_site(state)
    return decision if decision.action == "fence" else None
