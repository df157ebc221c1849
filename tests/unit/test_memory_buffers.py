"""A fixed mmap threshold gives freed MiB-sized buffers back to the OS (glibc), in a fresh interpreter
each so the test process's own allocator state does not matter."""

from __future__ import annotations

import subprocess
import sys

from recovery.memory import return_large_buffers_to_the_os

# Allocates and frees an 8 MiB buffer a few times (as the backup stream does) and prints how many KiB
# of it stayed resident after the last free.
_PROBE = """
import sys
from pathlib import Path
if sys.argv[1] == "fixed":
    from recovery.memory import return_large_buffers_to_the_os
    assert return_large_buffers_to_the_os()
def resident():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4
before = resident()
for _ in range(4):
    block = bytearray(8 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    del block
print(resident() - before)
"""


def _kept_kib(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def test_freed_large_buffers_leave_the_process_only_with_the_fixed_threshold() -> None:
    assert _kept_kib("default") >= 4 * 1024  # glibc's dynamic threshold keeps the freed 8 MiB
    assert _kept_kib("fixed") < 1024


def test_it_says_whether_it_changed_anything() -> None:
    assert return_large_buffers_to_the_os() is True  # this project runs on glibc (Debian)
