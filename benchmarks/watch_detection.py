"""Measure the watch on the lab: time from `kill -9` of the primary database to the watch's decision
(page, automatic failover being off) over N runs, and what the watch costs: CPU share and peak memory
(RSS high-water mark) of its process while the lab idles with the schedule running.

Usage: python benchmarks/watch_detection.py [--base-port 24100] [--runs 5] [--idle 60] [--keep]
Builds a lab with `lab up --watch` in a fresh dir under /var/tmp on ports B..B+432, and stops and purges
it at the end unless --keep is given. Prints a small table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recovery.lab import postgres
from recovery.lab.plan import plan_lab
from recovery.lab.processes import lab_user
from recovery.lab.state import read_state

RECOVERY = str(Path(sys.executable).parent / "recovery")
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB: the resident set now and its peak since the process started."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def _decision(status_file: Path) -> str | None:
    try:
        return str(json.loads(status_file.read_text())["decision"]["action"])
    except (OSError, ValueError, KeyError):
        return None


def _wait(status_file: Path, wanted: set[str], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _decision(status_file) in wanted:
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"the watch did not decide {sorted(wanted)} within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-port", type=int, default=24100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle lab to measure CPU over")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    lab_dir = Path(tempfile.mkdtemp(prefix="watch-bench-", dir="/var/tmp"))
    lab_dir.chmod(0o755)
    up = [RECOVERY, "lab", "up", "--lab-dir", str(lab_dir), "--base-port", str(args.base_port), "--watch"]
    started = time.monotonic()
    subprocess.run(up, check=True, stdout=subprocess.DEVNULL)
    up_seconds = time.monotonic() - started
    try:
        state = read_state(lab_dir / "lab.json")
        assert state is not None and state.pg_bin is not None
        record = state.process("watch")
        assert record is not None
        watch = record.pid
        plan = plan_lab(lab_dir, args.base_port)
        status_file = plan.state_dir / "watch" / "status.json"
        load_before = os.getloadavg()[0]
        cpu0, wall0 = _cpu_seconds(watch), time.monotonic()
        time.sleep(args.idle)
        cpu_share = (_cpu_seconds(watch) - cpu0) / (time.monotonic() - wall0)
        rss, peak = _memory_kib(watch)
        detections = []
        user = lab_user()
        for _ in range(args.runs):
            _wait(status_file, {"nothing", "alarm"}, 120)
            postmaster = postgres.running_postmaster(plan.primary.pg_data)
            assert postmaster is not None
            killed = time.monotonic()
            os.kill(postmaster, signal.SIGKILL)
            detections.append(_wait(status_file, {"page", "failover"}, 60) - killed)
            postgres.start(user, plan, plan.primary, state.pg_bin, lambda _record: None)
        rss_after, peak_after = _memory_kib(watch)
    finally:
        if not args.keep:
            subprocess.run([RECOVERY, "lab", "down", "--lab-dir", str(lab_dir), "--purge"], check=False)
    print(f"lab up with the watch's first backups: {up_seconds:.1f} s")
    print(f"load average before the idle measurement: {load_before:.1f}")
    print("| runs | detection median (s) | worst (s) | each (s) | goal |")
    print("|---|---|---|---|---|")
    each = ", ".join(f"{d:.2f}" for d in detections)
    median, worst = statistics.median(detections), max(detections)
    print(f"| {len(detections)} | {median:.2f} | {worst:.2f} | {each} | 3 s |")
    print(f"watch CPU while idle: {cpu_share * 100:.1f} % of one core over {args.idle:.0f} s")
    peak_mib = max(peak, peak_after) / 1024
    print(f"watch memory: RSS {rss / 1024:.0f} MiB idle, {rss_after / 1024:.0f} MiB after", end="")
    print(f"; peak {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
