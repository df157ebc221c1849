"""A second controller holding the target's lock, for the operator-error game day: it takes the lock
exactly as a run does (the target's DynamoDB lease, which every controller sees, or the flock of a
target without a lock table) and keeps it, renewed, until it is stopped.

`python -m recovery.gameday.holdlock --target PATH --ready FILE`, started by `recovery.gameday.faults`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

from recovery.drivers.aws import AwsDriver
from recovery.engine.journal import new_run_id
from recovery.engine.lock import DynamoLock, LockHolder, TargetLock, lock_table_of
from recovery.targets import load_target

RUNBOOK = "another controller's run"


def main() -> None:
    parser = argparse.ArgumentParser(description="hold a target's lock as another controller would")
    parser.add_argument("--target", required=True)
    parser.add_argument("--ready", required=True, type=Path)
    args = parser.parse_args()
    target = load_target(args.target)
    holder = LockHolder(
        run_id=new_run_id("gameday-holder"),
        runbook=RUNBOOK,
        pid=os.getpid(),
        user=getpass.getuser(),
        host=socket.gethostname(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    table = lock_table_of(target)
    lock: DynamoLock | TargetLock = (
        DynamoLock(AwsDriver(target.aws), table[0], table[1], target.name, holder)
        if table is not None
        else TargetLock(target.state_dir, target.name, holder)
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with lock:
        partial = args.ready.with_suffix(".partial")
        partial.write_text(json.dumps({"run_id": holder.run_id, "shared": table is not None}))
        partial.replace(args.ready)
        stop.wait()


if __name__ == "__main__":
    main()
