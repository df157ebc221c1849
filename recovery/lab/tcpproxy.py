"""A small asyncio TCP proxy: each client connection is forwarded to the backend chosen at connect time.

Both the front door (backend from the Route53 failover record) and a fault proxy (delay, reset, black
hole) use this one forwarding loop; what differs is the backend chooser and the fault policy, both
callables read per connection (and the delay per chunk), so they can change while the proxy runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FaultMode = Literal["pass", "reset", "blackhole"]
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fault:
    """What happens to traffic: pass it (optionally delayed), reset new connections, or swallow them."""

    mode: FaultMode = "pass"
    delay_seconds: float = 0.0


NO_FAULT = Fault()
Backend = tuple[str, int]
BackendChooser = Callable[[], Backend | None]
FaultPolicy = Callable[[], Fault]


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fault: FaultPolicy) -> None:
    try:
        while data := await reader.read(CHUNK):
            delay = fault().delay_seconds
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _close(writer: asyncio.StreamWriter, *, reset: bool = False) -> None:
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close sends RST instead of FIN (a "connection reset by peer" for the client).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def forward(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    backend: BackendChooser,
    fault: FaultPolicy = lambda: NO_FAULT,
    connect_timeout: float = 3.0,
) -> None:
    """Forward one client connection until both directions end."""
    now = fault()
    if now.mode == "reset":
        await _close(client_writer, reset=True)
        return
    if now.mode == "blackhole":
        # Accept and never answer; the client's own timeout ends it.
        with contextlib.suppress(ConnectionError, OSError):
            while await client_reader.read(CHUNK):
                pass
        await _close(client_writer)
        return
    target = backend()
    if target is None:
        await _close(client_writer, reset=True)
        return
    try:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), connect_timeout)
    except (OSError, TimeoutError):
        await _close(client_writer, reset=True)
        return
    await asyncio.gather(_pump(client_reader, up_writer, fault), _pump(up_reader, client_writer, fault))
    await _close(up_writer)
    await _close(client_writer)


async def serve(
    host: str, port: int, backend: BackendChooser, fault: FaultPolicy = lambda: NO_FAULT
) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await forward(reader, writer, backend, fault)

    return await asyncio.start_server(handle, host, port, reuse_address=True, backlog=256)
