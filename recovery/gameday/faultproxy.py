"""The game day's fault proxy: a TCP proxy in front of one object store that delays, resets, black-holes
or refuses connections, as told by a control file it rereads while it runs.

Run as its own process (`python -m recovery.gameday.faultproxy --backend HOST:PORT --control FILE
--ready FILE`), started and stopped by `recovery.gameday.faults`; it forwards through the lab's
forwarding loop (`recovery.lab.tcpproxy`). The control file is JSON: `{"serial": N, "mode":
"pass"|"reset"|"blackhole"|"refuse", "delay_seconds": D, "count": C, "seconds": S}`; a new serial
starts a new fault:
- pass: forward, each chunk delayed by D seconds (a slow link);
- reset: reset the next C new connections (every one when C is null), then pass (a flaky link);
- blackhole: accept new connections and never answer, for S seconds from the first connection it
  swallows (for ever when S is null; counted from the first connection so that a client that starts
  late still meets it); when it ends the held connections are reset, as a path that comes back breaks
  the stalled ones;
- refuse: stop listening (the port stays bound, so connecting is refused: a store's endpoint down).
A fault applies to new connections: a connection set up before it keeps its own decision.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recovery.lab.tcpproxy import NO_FAULT, Fault, forward

ProxyMode = Literal["pass", "reset", "blackhole", "refuse"]
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class ProxyFault:
    serial: int = 0
    mode: ProxyMode = "pass"
    delay_seconds: float = 0.0
    count: int | None = None  # reset: how many new connections
    seconds: float | None = None  # blackhole: how long

    @classmethod
    def parse(cls, text: str) -> ProxyFault:
        doc = json.loads(text)
        mode = doc.get("mode", "pass")
        if mode not in ("pass", "reset", "blackhole", "refuse"):
            raise ValueError(f"unknown fault mode {mode!r}")
        return cls(
            serial=int(doc.get("serial", 0)),
            mode=mode,
            delay_seconds=float(doc.get("delay_seconds") or 0.0),
            count=None if doc.get("count") is None else int(doc["count"]),
            seconds=None if doc.get("seconds") is None else float(doc["seconds"]),
        )


class FaultState:
    """The fault now in force and what is left of it (resets to make, the black hole's end). Decides per
    new connection; pure apart from the clock it is given."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.fault = ProxyFault()
        self.resets_left: int | None = None
        self.blackhole_until: float | None = None

    def apply(self, fault: ProxyFault) -> None:
        self.fault = fault
        self.resets_left = fault.count if fault.mode == "reset" else None
        self.blackhole_until = None

    def blackholing(self) -> bool:
        if self.fault.mode != "blackhole":
            return False
        return self.blackhole_until is None or self._clock() < self.blackhole_until

    def on_connect(self) -> Literal["pass", "reset", "blackhole"]:
        if self.fault.mode == "reset":
            if self.resets_left is None:
                return "reset"
            if self.resets_left > 0:
                self.resets_left -= 1
                return "reset"
        if self.blackholing():
            if self.blackhole_until is None and self.fault.seconds is not None:
                self.blackhole_until = self._clock() + self.fault.seconds
            return "blackhole"
        return "pass"

    def chunk_fault(self) -> Fault:
        delay = self.fault.delay_seconds
        return Fault(delay_seconds=delay) if delay > 0 else NO_FAULT


class FaultProxy:
    def __init__(self, backend: tuple[str, int], control: Path) -> None:
        self.backend = backend
        self.control = control
        self.state = FaultState()
        self.server: asyncio.Server | None = None
        self.refusing: socket.socket | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decision = self.state.on_connect()
        if decision == "reset":
            await forward(reader, writer, lambda: self.backend, lambda: Fault(mode="reset"))
        elif decision == "blackhole":
            await self._hold(reader, writer)
        else:
            await forward(reader, writer, lambda: self.backend, self.state.chunk_fault)

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Swallow the connection while the black hole lasts, then reset it."""
        drain = asyncio.ensure_future(_swallow(reader))
        while self.state.blackholing() and not drain.done():
            await asyncio.sleep(POLL_SECONDS)
        drain.cancel()
        await forward(reader, writer, lambda: None, lambda: Fault(mode="reset"))

    async def listen(self) -> None:
        if self.refusing is not None:
            self.refusing.close()
            self.refusing = None
        self.server = await asyncio.start_server(
            self.handle, "127.0.0.1", self.port, reuse_address=True, backlog=256
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        if self.refusing is None:
            # Bound but not listening: the port stays ours and every connection is refused.
            held = socket.socket()
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            held.bind(("127.0.0.1", self.port))
            self.refusing = held

    async def follow(self) -> None:
        """Reread the control file; apply a fault with a new serial."""
        try:
            fault = ProxyFault.parse(self.control.read_text())
        except (OSError, ValueError):
            return
        if fault.serial == self.state.fault.serial:
            return
        self.state.apply(fault)
        if fault.mode == "refuse":
            await self.refuse()
        elif self.server is None:
            await self.listen()


async def _swallow(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while await reader.read(64 * 1024):
            pass


async def run(backend: tuple[str, int], control: Path, ready: Path) -> None:
    proxy = FaultProxy(backend, control)
    await proxy.listen()
    await proxy.follow()
    partial = ready.with_suffix(".partial")
    partial.write_text(json.dumps({"port": proxy.port, "pid": os.getpid()}))
    partial.replace(ready)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    while not stop.is_set():
        await proxy.follow()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description="a fault-injecting TCP proxy for game days")
    parser.add_argument("--backend", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--control", required=True, type=Path, help="the JSON control file")
    parser.add_argument("--ready", required=True, type=Path, help="written with the port once listening")
    args = parser.parse_args()
    host, _, port = str(args.backend).rpartition(":")
    asyncio.run(run((host, int(port)), args.control, args.ready))


if __name__ == "__main__":
    main()
