"""Shared pieces of the engine tests: a small target, a sample runbook, and runs in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from target_files import write_unit_target

from recovery.cli.commands import CommandProperties
from recovery.engine import Runbook, RunContext, Step, register_runbook
from recovery.errors import ExternalFailure
from recovery.targets import Target, load_target

HERE = Path(__file__).resolve().parent
SAMPLE = "engine-sample"


def write_target(root: Path, name: str = "testsite") -> Path:
    """A minimal valid target.yaml whose state_dir is under `root`; returns its path."""
    return write_unit_target(root, name)


def _record_call(ctx: RunContext) -> None:
    with Path(ctx.params["calls"]).open("a") as handle:
        handle.write(f"{ctx.step} {os.getpid()}\n")


def _maybe_fail(ctx: RunContext) -> None:
    if ctx.params.get("fail") == ctx.step:
        raise ExternalFailure(f"step {ctx.step} could not reach the host; check the host and retry")
    if ctx.params.get("boom") == ctx.step:
        raise ValueError("boom: connect failed for dsn host=db password=hunter2")


def _prepare(ctx: RunContext) -> Mapping[str, Any]:
    _record_call(ctx)
    _maybe_fail(ctx)
    ctx.note("chose release", version=ctx.params["version"], token="tok-not-for-logs")
    return {
        "version": ctx.params["version"],
        "password": "hunter2",
        "dsn": "postgresql://orders:s3cret@127.0.0.1:15432/orders",
    }


def _wait(ctx: RunContext) -> Mapping[str, Any]:
    _record_call(ctx)
    gate = ctx.params.get("gate")
    if gate:
        deadline = time.monotonic() + 60
        while not Path(gate).exists():
            if time.monotonic() > deadline:
                raise ExternalFailure("the gate file never appeared")
            ctx.progress("waiting for the gate")
            time.sleep(0.02)
    _maybe_fail(ctx)
    return {"seen_version": ctx.outputs["prepare"]["version"]}


def _apply(ctx: RunContext) -> Mapping[str, Any]:
    _record_call(ctx)
    _maybe_fail(ctx)
    if ctx.params.get("bad_output") == ctx.step:
        return {"not-json": {1, 2}}
    return {"applied": ctx.outputs["prepare"]["version"], "after": ctx.outputs["wait"]["seen_version"]}


def _verify(ctx: RunContext) -> None:
    _record_call(ctx)
    _maybe_fail(ctx)


def sample_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    host = target.primary.hosts[0].name
    return Runbook(
        name=SAMPLE,
        params=params,
        steps=(
            Step("prepare", "choose the release to apply", _prepare, mutating=False),
            Step("wait", "wait until the gate opens", _wait, acts_on=(host,)),
            Step("apply", "apply the chosen release", _apply, acts_on=(host, "database orders")),
            Step("verify", "check the release answers", _verify, mutating=False),
        ),
    )


register_runbook(SAMPLE, sample_runbook)
# How a command running the sample runbook is declared (the CLI's table holds the real commands).
SAMPLE_COMMAND = CommandProperties(SAMPLE, SAMPLE, takes_lock=True, destructive=False, journaled=True)


def read_only_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    return Runbook(
        name="engine-readonly",
        params=params,
        steps=(Step("look", "look at the target", _verify, mutating=False),),
    )


register_runbook("engine-readonly", read_only_runbook)


def calls(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]


_CHILD = """
import sys
from pathlib import Path
sys.path[:0] = [sys.argv[1], str(Path(sys.argv[1]).parents[1])]  # engine_helpers and tests/ (target_files)
import json, engine_helpers
from recovery.engine import Engine, build_runbook
from recovery.targets import load_target
target = load_target(engine_helpers.Path(sys.argv[2]))
Engine(target).run(build_runbook(engine_helpers.SAMPLE, target, json.loads(sys.argv[3])))
"""


def start_child_run(target_path: Path, params: Mapping[str, Any]) -> subprocess.Popen[bytes]:
    """Run the sample runbook in a child process (so it can be killed for real)."""
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(HERE), str(target_path), json.dumps(params)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_step(target_path: Path, step: str, child: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """Wait until the child's run is inside `step` (journaled as started, and the step has recorded its
    call in the calls file); returns the run id."""
    state = load_target(target_path).state_dir
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in sorted((state / "runs").glob("*/journal.jsonl")):
            try:
                records = [json.loads(line) for line in journal.read_text().splitlines()]
            except ValueError:  # a line being written right now
                continue
            started = [r for r in records if r["event"] == "step.started" and r["step"] == step]
            if started and (step, child.pid) in calls(Path(records[0]["params"]["calls"])):
                return str(started[0]["run_id"])
        if child.poll() is not None:
            raise AssertionError(f"child ended early: {child.stderr.read().decode() if child.stderr else ''}")
        time.sleep(0.02)
    raise AssertionError(f"step {step} did not start within {timeout}s")
