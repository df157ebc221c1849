"""`recovery watch`: probe, publish, decide, tell and run the backup schedule, until stopped.

Parses, builds the watch, runs it until SIGTERM or Ctrl-C (each ends the current cycle and the job in
hand cleanly), or one cycle with `--once`, printing what it saw and decided.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated, Any

import typer

from recovery.cli.common import OutputFormat, OutputOpt, TargetOpt, emit
from recovery.errors import UsageError
from recovery.targets import load_target
from recovery.watch.loop import Watch, WatchOptions


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--prometheus {value!r} must be ADDRESS:PORT, e.g. 127.0.0.1:9464")
    return host, int(port)


def watch_command(
    target: TargetOpt = "lab",
    once: Annotated[
        bool, typer.Option("--once", help="one cycle without the schedule: print what it sees")
    ] = False,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="serve Prometheus text on ADDRESS:PORT (/metrics)")
    ] = None,
    publish_every: Annotated[
        float, typer.Option("--publish-every", help="seconds between CloudWatch publications", min=1)
    ] = 60.0,
    freshness_every: Annotated[
        float, typer.Option("--freshness-every", help="seconds between reads of the backup catalog", min=1)
    ] = 15.0,
    schedule: Annotated[
        bool, typer.Option("--schedule/--no-schedule", help="run the backup schedule (default on)")
    ] = True,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Watch the target: probes, metrics (CloudWatch, Prometheus), alarms and pages, the backup schedule."""
    loaded = load_target(target)
    options = WatchOptions(
        target_ref=target,
        publish_every=publish_every,
        freshness_every=freshness_every,
        prometheus=_address(prometheus) if prometheus else None,
        schedule=schedule and not once,
    )
    watch = Watch(loaded, options)
    stop = threading.Event()
    if once:
        decision = watch.cycle()
        snapshot = watch.last_snapshot
        assert snapshot is not None
        result = {
            "decision": {"action": decision.action, "reason": decision.reason},
            "writer": snapshot.writer,
            "problems": list(snapshot.problems),
            "lag_bytes": snapshot.lag_bytes,
            "lag_seconds": snapshot.lag_seconds,
            "backups": [
                {"domain": a.domain, "kind": a.kind, "age_seconds": round(a.age_seconds), "newest": a.newest}
                for a in snapshot.backups
            ],
        }
        emit(output, "watch", result, _render_once)
        return

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watch.run(stop)


def _render_once(result: dict[str, Any]) -> None:
    typer.echo(f"{result['decision']['action']}: {result['decision']['reason']}")
    typer.echo(f"writer site: {result['writer']}")
    if result["lag_bytes"] is not None:
        typer.echo(f"standby lag: {result['lag_bytes']} B, {result['lag_seconds']:.1f} s")
    for age in result["backups"]:
        typer.echo(
            f"backup {age['domain']}/{age['kind']}: {age['age_seconds']} s old ({age['newest'] or 'none'})"
        )
    for problem in result["problems"]:
        typer.echo(f"problem: {problem}")
