"""Measure the lab: time of `lab up` with the default data, time of seeding 1,000,000 orders, and peak
memory (RSS and PSS) of our own processes (CLI, moto, front door) and of the whole lab (plus
PostgreSQL, sshd and the order services), sampled every 0.2 s. Prints a small table.

Usage: python benchmarks/lab_up.py [--base-port 22600] [--orders 1000000] [--keep]
Uses lab dirs under /var/tmp and ports B..B+432 (default B=22600); both labs are stopped and purged
at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
RECOVERY = str(VENV_BIN / "recovery")
OURS = {"moto", "frontdoor"}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree(roots: list[int], tree: dict[int, list[int]]) -> set[int]:
    found, queue = set(), list(roots)
    while queue:
        pid = queue.pop()
        if pid not in found:
            found.add(pid)
            queue.extend(tree.get(pid, []))
    return found


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB; PSS splits shared pages (PostgreSQL's shared buffers) between their users."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class Sampler(threading.Thread):
    """Peak memory of the CLI's process tree plus every process lab.json names (and their children)."""

    def __init__(self, lab_dir: Path, cli_pid: int) -> None:
        super().__init__(daemon=True)
        self.lab_dir, self.cli_pid = lab_dir, cli_pid
        self.stop = threading.Event()
        self.peak = {"ours_rss": 0, "ours_pss": 0, "lab_rss": 0, "lab_pss": 0}

    def sample(self) -> None:
        ours: list[int] = [self.cli_pid]
        servers: list[int] = []
        try:
            state = json.loads((self.lab_dir / "lab.json").read_text())
        except (OSError, ValueError):
            state = {"processes": []}
        for p in state["processes"]:
            (ours if p["kind"] in OURS else servers).append(p["pid"])
        for pidfile in self.lab_dir.glob("hosts/*/app/shared/**/*.pid"):
            try:
                servers.append(int(pidfile.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                continue
        tree = _children()
        server_pids = _tree(servers, tree)
        # The CLI's tree includes ansible-playbook and ssh (ours), and sshds it spawned (servers).
        groups = {"ours": _tree(ours, tree) - server_pids, "lab": _tree(ours, tree) | server_pids}
        for kind, pids in groups.items():
            memory = [_memory(p) for p in pids]
            self.peak[f"{kind}_rss"] = max(self.peak[f"{kind}_rss"], sum(m[0] for m in memory))
            self.peak[f"{kind}_pss"] = max(self.peak[f"{kind}_pss"], sum(m[1] for m in memory))

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.2)


def lab_up(lab_dir: Path, base_port: int, orders: int | None) -> tuple[float, dict[str, Any], dict[str, int]]:
    argv = [RECOVERY, "lab", "up", "--lab-dir", str(lab_dir), "--base-port", str(base_port)]
    # The lab's own parts, comparable with earlier runs; benchmarks/watch_detection.py measures the watch.
    argv += ["--output", "json", "--no-watch"]
    if orders is not None:
        argv += ["--orders", str(orders)]
    started = time.monotonic()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(lab_dir, child.pid)
    sampler.start()
    out, err = child.communicate()
    elapsed = time.monotonic() - started
    sampler.sample()  # the running lab after up, services included
    sampler.stop.set()
    if child.returncode != 0:
        sys.exit(f"lab up failed ({child.returncode}): {err.strip()}")
    return elapsed, json.loads(out)["result"], sampler.peak


def lab_down(lab_dir: Path, purge: bool) -> None:
    argv = [RECOVERY, "lab", "down", "--lab-dir", str(lab_dir)] + (["--purge"] if purge else [])
    subprocess.run(argv, check=False, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-port", type=int, default=22600)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    first = Path(tempfile.mkdtemp(prefix="order-recovery-bench-", dir="/var/tmp"))
    first.chmod(0o755)
    try:
        elapsed, result, peak = lab_up(first, args.base_port, None)
        rows.append(("lab up, default data (10,000 orders)", f"{elapsed:8.2f} s"))
        for step, seconds in result["steps_seconds"].items():
            rows.append((f"  step: {step}", f"{seconds:8.2f} s"))
        ours = peak["ours_rss"] / 1024
        rows.append(("peak RSS, our processes (CLI, ansible, moto, front door)", f"{ours:8.0f} MiB"))
        rows.append(("peak PSS, our processes", f"{peak['ours_pss'] / 1024:8.0f} MiB"))
        rows.append(
            (
                "peak RSS, whole lab (sum, shared pages counted per process)",
                f"{peak['lab_rss'] / 1024:8.0f} MiB",
            )
        )
        rows.append(("peak PSS, whole lab", f"{peak['lab_pss'] / 1024:8.0f} MiB"))
        again = time.monotonic()
        lab_up(first, args.base_port, None)
        rows.append(("lab up again (already running)", f"{time.monotonic() - again:8.2f} s"))
    finally:
        lab_down(first, purge=not args.keep)
    second = Path(tempfile.mkdtemp(prefix="order-recovery-bench-", dir="/var/tmp"))
    second.chmod(0o755)
    try:
        elapsed, result, peak = lab_up(second, args.base_port, args.orders)
        seconds = result["steps_seconds"].get("seed", 0.0)
        rows.append((f"lab up with {args.orders:,} orders", f"{elapsed:8.2f} s"))
        rows.append((f"  seeding {args.orders:,} orders", f"{seconds:8.2f} s"))
        if seconds:
            rows.append(("  seeding rate", f"{args.orders / seconds:8.0f} orders/s"))
        rows.append(("peak PSS, whole lab while seeding", f"{peak['lab_pss'] / 1024:8.0f} MiB"))
    finally:
        lab_down(second, purge=not args.keep)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print("-" * (width + 16))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
