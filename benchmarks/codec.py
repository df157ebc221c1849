"""Backup codec throughput: encode (zstd level 1 + AES-256-GCM + sha256) and decode of order-like rows.

Prints MiB/s of raw data for encode (zstd single-threaded and with worker threads) and decode, the
compression ratio and the peak RSS after each phase. The input is generated once as a pool of
pg_dump-like COPY rows and streamed repeatedly, so the input itself costs little memory; the pool is
larger than zstd's level-1 window, so repeats do not inflate the ratio.

    .venv/bin/python benchmarks/codec.py [--mib 500] [--chunk-mib 4] [--threads 0 2]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from recovery.backup.codec import decode, encode
from recovery.backup.keys import DataKey

MIB = 1024 * 1024
POOL_MIB = 24
STATUSES = ("placed", "paid", "paid", "paid", "cancelled")


def order_pool(size: int) -> bytearray:
    """COPY-format rows of orders, items and transactions, roughly as pg_dump writes them."""
    rng = random.Random(20261125)
    pool = bytearray()  # grown in place: the pool must not inflate the peak RSS measured later
    order = 0
    while len(pool) < size:
        order += 1
        uuid = f"{rng.getrandbits(128):032x}"
        uuid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
        minute = order // 60
        day, hour = 1 + minute // 1440 % 28, minute // 60 % 24
        stamp = f"2026-11-{day:02d} {hour:02d}:{minute % 60:02d}:{order % 60:02d}+00"
        total_cents = 0
        for line_no in range(1, rng.randint(1, 4) + 1):
            price = rng.randint(199, 25_000)
            quantity = rng.randint(1, 3)
            total_cents += price * quantity
            pool += f"{uuid}\t{line_no}\t{rng.randint(1, 5000)}\t{quantity}\t{price}\n".encode()
        status = rng.choice(STATUSES)
        pool += f"{uuid}\t{rng.randint(1, 100_000)}\t{status}\t{total_cents}\t{stamp}\t{stamp}\n".encode()
        if status == "paid":
            pool += f"{rng.getrandbits(128):032x}\t{uuid}\t{total_cents}\tcaptured\t{stamp}\n".encode()
    del pool[size:]
    return pool


def blocks(pool: bytearray, total: int, block: int = MIB) -> Iterator[bytes]:
    view = memoryview(pool)
    sent = 0
    while sent < total:
        offset = sent % len(pool)
        piece = bytes(view[offset : offset + min(block, total - sent, len(pool) - offset)])
        sent += len(piece)
        yield piece


class Discard:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_phase_peak() -> float:
    """Reset the kernel's RSS high-water mark (Linux clear_refs) and return the current RSS in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def phase_memory(before: float) -> str:
    peak = _status_mib("VmHWM")
    return (
        f"phase peak RSS {peak:.0f} MiB (+{peak - before:.0f} over its start), "
        f"process peak (getrusage) {peak_rss_mib():.0f} MiB"
    )


class Clock:
    """Wall and process CPU time (all threads) of one phase: CPU time stays meaningful on a busy machine."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    def rates(self, mib: float) -> str:
        return f"{mib / self.wall:7.1f} MiB/s wall, {mib / self.cpu:7.1f} MiB per CPU-second"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=500, help="raw input size in MiB")
    parser.add_argument("--chunk-mib", type=int, default=4, help="plaintext chunk size in MiB")
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 2], help="zstd worker thread counts")
    args = parser.parse_args()
    total, chunk = args.mib * MIB, args.chunk_mib * MIB
    key = DataKey("keyring", "bench", b"w" * 40, os.urandom(32))
    pool = order_pool(POOL_MIB * MIB)
    print(f"input: {args.mib} MiB of order-like COPY rows (pool {POOL_MIB} MiB), chunk {args.chunk_mib} MiB")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"peak RSS after building the pool: {peak_rss_mib():.0f} MiB")
    for threads in args.threads:
        start = reset_phase_peak()
        with Clock() as clock:
            result = encode(blocks(pool, total), Discard(), key, "bench", chunk_size=chunk, threads=threads)
        print(
            f"encode threads={threads}: {clock.rates(args.mib)}, "
            f"ratio {result.raw_bytes / result.compressed_bytes:.2f}; {phase_memory(start)}"
        )
    threads = args.threads[-1]
    with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
        stored = Path(scratch) / "bench.bak"
        start = reset_phase_peak()
        with Clock() as clock, stored.open("wb") as sink:
            result = encode(blocks(pool, total), sink, key, "bench", chunk_size=chunk, threads=threads)
        print(
            f"encode to a file (threads={threads}): {clock.rates(args.mib)}, "
            f"stored {result.stored_bytes / MIB:.1f} MiB; {phase_memory(start)}"
        )
        start = reset_phase_peak()
        with Clock() as clock, stored.open("rb") as source:
            decoded = decode(source, Discard(), key, "bench")
        if decoded.raw_bytes != total or decoded.sha256 != result.sha256:
            raise SystemExit("decode did not return the encoded bytes")
        print(f"decode from the file: {clock.rates(args.mib)}; {phase_memory(start)}")


if __name__ == "__main__":
    main()
