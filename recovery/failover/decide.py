"""Pure decisions of the failover runbooks: from one observed `ClusterState`, an action and a sentence.

Each function returns a `Decision` whose `reason` is the sentence an operator reads in the plan, the
journal and the report; tests check those sentences verbatim, as Patroni tests its HA loop. Nothing here
does I/O: observing is `observe.py`'s job, acting is the runbooks'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recovery.failover.state import ClusterState, SiteName, SiteState, other

Action = Literal["switchover", "failover", "failback", "refuse", "nothing", "fence"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    to: SiteName | None = None
    # Failover only: the writes the promotion gives up, as far as the standby's last measured lag says.
    expected_loss_seconds: float | None = None
    expected_loss_bytes: int | None = None


def _why_not_standby(site: SiteState) -> str | None:
    """Why `site` cannot be promoted, or None when it is a healthy standby."""
    db = site.database
    if not db.reachable:
        return f"its database does not answer ({db.problem or 'no reason given'})"
    if db.in_recovery is False:
        return "its database is not a standby (it already takes writes)"
    # RDS's ReplicaLag gives seconds without bytes: either measure places the standby.
    if db.lag_bytes is None and db.lag_seconds is None:
        return "its replication position is unknown"
    return None


def _describe_down(site: SiteState) -> str:
    parts = []
    if not site.database.reachable:
        parts.append(f"database: {site.database.problem or 'does not answer'}")
    elif not site.database.writable:
        parts.append("database: refuses writes")
    if not site.service.answering:
        parts.append(f"service: {site.service.problem or 'not answering'}")
    elif not site.service.healthy:
        parts.append(f"service: unhealthy ({site.service.problem or 'no reason given'})")
    return "; ".join(parts) or "no fault seen"


def _bytes(value: int | None) -> str:
    """A lag's bytes in parentheses; nothing when only seconds are known (RDS's ReplicaLag)."""
    return "" if value is None else f" ({value} bytes)"


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def decide_switchover(state: ClusterState, to: SiteName | None = None) -> Decision:
    """A planned move of the writer to the other site: both must be up, and it must lose nothing."""
    source = state.writer
    target = to or other(source)
    if target == source:
        return Decision("refuse", f"the {target} site already holds the writable database; nothing to switch")
    writer, candidate = state.site(source), state.site(target)
    if not writer.database.writable:
        return Decision(
            "refuse",
            f"the {source} site's database does not take writes ({_describe_down(writer)}); a switchover "
            f"needs both sites up: use `recovery failover` if the {source} site is lost",
        )
    problem = _why_not_standby(candidate)
    if problem is not None:
        return Decision("refuse", f"the {target} site is not a healthy standby: {problem}")
    if candidate.database.epoch is not None and candidate.database.epoch != state.epoch:
        return Decision(
            "refuse",
            f"the {target} site's database carries generation {candidate.database.epoch}, not the current "
            f"{state.epoch}: rebuild it as a standby (`recovery failback`) first",
        )
    lag = candidate.database.lag_bytes or 0
    return Decision(
        "switchover",
        f"both sites are up and the {target} site replays {lag} bytes behind: the {source} site will be "
        f"fenced, the {target} site promoted once it has replayed everything, so nothing is lost",
        to=target,
    )


def decide_failover(
    state: ClusterState,
    *,
    rpo_seconds: float,
    to: SiteName | None = None,
    max_data_loss_seconds: float | None = None,
) -> Decision:
    """An unplanned promotion of the standby because the writer's site is lost or broken.

    Refuses while the writer still takes writes and answers (that is a switchover's job), when the
    standby is not promotable, and when its lag exceeds what the operator accepts: the target's RPO
    objective, or `--max-data-loss` when given. An unknown lag is never assumed to be small."""
    source = state.writer
    target = to or other(source)
    if target == source:
        return Decision(
            "refuse", f"the {target} site already holds the writable database; nothing to fail over"
        )
    writer, candidate = state.site(source), state.site(target)
    if writer.database.writable and writer.service.healthy:
        return Decision(
            "refuse",
            f"the {source} site takes writes and its service is healthy: use `recovery switchover` for a "
            "planned move",
        )
    problem = _why_not_standby(candidate)
    if problem is not None:
        return Decision("refuse", f"the {target} site cannot take over: {problem}")
    allowed = rpo_seconds if max_data_loss_seconds is None else max_data_loss_seconds
    lag_s = candidate.database.lag_seconds
    lag_b = candidate.database.lag_bytes
    if lag_s is None:
        if max_data_loss_seconds is None:
            return Decision(
                "refuse",
                f"the {target} site's lag in seconds is unknown, so the loss cannot be bounded: pass "
                "--max-data-loss SECONDS to accept whatever it is",
            )
    elif lag_s > allowed:
        limit = "--max-data-loss" if max_data_loss_seconds is not None else "the RPO objective"
        return Decision(
            "refuse",
            f"the {target} site lags {_seconds(lag_s)}{_bytes(lag_b)} behind, beyond {limit} of "
            f"{_seconds(allowed)}: a failover now would lose up to {_seconds(lag_s)} of writes; pass "
            f"--max-data-loss {lag_s:.0f} or more to accept it",
        )
    loss = "an unknown amount" if lag_s is None else f"up to {_seconds(lag_s)}{_bytes(lag_b)}"
    return Decision(
        "failover",
        f"the {source} site is lost or broken ({_describe_down(writer)}); the {target} site is a healthy "
        f"standby and promoting it gives up {loss} of writes, within {_seconds(allowed)}",
        to=target,
        expected_loss_seconds=lag_s,
        expected_loss_bytes=lag_b,
    )


def decide_returning_site(state: ClusterState) -> Decision:
    """What to do with the site that is not the writer: a database there that takes writes, or carries
    an older generation, is an old primary that came back (it restarted by itself, or was never fenced)
    and must be fenced before it takes a single write; never two writable primaries. One that refuses
    writes but serves the order service's sessions (its login fence lost) is fenced too: the service
    would answer from a stale database."""
    name = other(state.writer)
    site = state.site(name)
    db = site.database
    if not db.reachable:
        return Decision("nothing", f"the {name} site's database does not answer; nothing can write there")
    if db.writable:
        return Decision(
            "fence",
            f"the {name} site's database takes writes although the {state.writer} site holds generation "
            f"{state.epoch}: fence it now, then rebuild it as a standby with `recovery failback`",
            to=name,
        )
    if not db.in_recovery and db.service_sessions:
        return Decision(
            "fence",
            f"the {name} site's database serves {db.service_sessions} session(s) of the order service "
            f"although the {state.writer} site holds generation {state.epoch}: fence it now, then rebuild it "
            "as a standby with `recovery failback`",
            to=name,
        )
    if db.epoch is not None and db.epoch < state.epoch:
        return Decision(
            "nothing",
            f"the {name} site is an old primary of generation {db.epoch} and refuses writes; rebuild it as "
            "a standby with `recovery failback`",
        )
    return Decision("nothing", f"the {name} site is a standby of generation {state.epoch}")


def decide_failback(state: ClusterState) -> Decision:
    """Whether the site that is not the writer must be brought back as a standby of the writer.

    Its database must answer: what it acknowledged after the split is read from it before a rewind
    discards it (it stays fenced while it runs). A standby of the current generation needs nothing."""
    name = other(state.writer)
    writer, site = state.site(state.writer), state.site(name)
    if not writer.database.writable:
        return Decision(
            "refuse",
            f"the {state.writer} site's database does not take writes ({_describe_down(writer)}); a failback "
            "needs a working writer to rebuild from",
        )
    db = site.database
    if not db.reachable:
        return Decision(
            "refuse",
            f"the {name} site's database does not answer ({db.problem or 'no reason given'}): start it (it "
            "stays fenced) so the writes it acknowledged after the split can be carried over, then run the "
            "failback again",
        )
    if db.in_recovery and db.epoch == state.epoch:
        return Decision(
            "nothing", f"the {name} site is already a standby of generation {state.epoch}; nothing to rebuild"
        )
    generation = "no generation" if db.epoch is None else f"generation {db.epoch}"
    return Decision(
        "failback",
        f"the {name} site's database is an old writer ({generation}, the {state.writer} site holds "
        f"{state.epoch}): what it acknowledged after the split will be carried into the {state.writer} "
        "site, then it is rebuilt as a standby",
        to=name,
    )
