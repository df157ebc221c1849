"""The tests' ports, shifted per pytest-xdist worker so two workers never listen on the same one.

Every port a test listens on (or plans for a lab) is written as its value for a serial run, which uses
25000-26299: labs at RECOVERY_TEST_BASE_PORT (default 25000) and a spare lab at 25500, single-port unit
tests 25900-25999, the service tests 26100-26259. Worker gwN adds N * 3000 to all of them (gw0
25000-26299, gw1 28000-29299, gw2 31000-32299): below the kernel's ephemeral range (32768 up), where an
outgoing connection could hold a port for a moment, and clear of the benchmarks (21000-24999) and the
default lab (27000-27999). A serial run (no xdist) shifts nothing.
"""

from __future__ import annotations

import os

STRIDE = 3000
HIGHEST_SERIAL_PORT = 26299  # the top of the serial run's range (see above)
EPHEMERAL_START = 32768


def worker_index(worker: str | None = None) -> int:
    """0 for a serial run or gw0, N for gwN (pytest-xdist names its workers gw0, gw1, ...)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    if not name:
        return 0
    if not (name.startswith("gw") and name[2:].isdigit()):
        raise RuntimeError(f"unexpected pytest-xdist worker name {name!r} (expected gw0, gw1, ...)")
    return int(name[2:])


def _shift() -> int:
    shift = worker_index() * STRIDE
    if HIGHEST_SERIAL_PORT + shift >= EPHEMERAL_START:
        most = (EPHEMERAL_START - 1 - HIGHEST_SERIAL_PORT) // STRIDE + 1
        raise RuntimeError(
            f"too many pytest-xdist workers: at most {most} fit below the ephemeral range; use -n {most}"
        )
    return shift


SHIFT = _shift()


def port(serial: int) -> int:
    """This worker's port for what a serial run uses `serial` for."""
    return serial + SHIFT


def ports(start: int, stop: int) -> range:
    """This worker's ports for what a serial run uses range(start, stop) for."""
    return range(start + SHIFT, stop + SHIFT)


def base_port(env: str, default: int) -> int:
    """A lab base port: the environment's choice (a serial run's value) or the default, shifted."""
    return port(int(os.environ.get(env, str(default))))
