"""The forwarding loop the front door (and later a fault proxy) uses, over real loopback sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from recovery.lab.tcpproxy import Fault, serve


async def _named_echo(port: int, name: bytes) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(1024)
        writer.write(name + b":" + data)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def _ask(port: int, payload: bytes = b"hello") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(1024), 3)
    writer.close()
    return data


def test_new_connections_follow_the_chosen_backend_and_faults(free_port: Callable[[], int]) -> None:
    PROXY_PORT, BACKEND_A, BACKEND_B = free_port(), free_port(), free_port()

    async def scenario() -> None:
        a = await _named_echo(BACKEND_A, b"a")
        b = await _named_echo(BACKEND_B, b"b")
        backend: list[tuple[str, int] | None] = [("127.0.0.1", BACKEND_A)]
        fault = [Fault()]
        proxy = await serve("127.0.0.1", PROXY_PORT, lambda: backend[0], lambda: fault[0])
        try:
            assert await _ask(PROXY_PORT) == b"a:hello"
            backend[0] = ("127.0.0.1", BACKEND_B)
            assert await _ask(PROXY_PORT, b"x") == b"b:x"

            fault[0] = Fault(delay_seconds=0.2)
            started = time.monotonic()
            assert await _ask(PROXY_PORT, b"slow") == b"b:slow"
            assert time.monotonic() - started >= 0.35  # delayed both ways

            fault[0] = Fault(mode="reset")
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                data = await _ask(PROXY_PORT)
                if not data:
                    raise ConnectionResetError("closed without data")

            fault[0] = Fault(mode="blackhole")
            with pytest.raises(TimeoutError):
                reader, writer = await asyncio.open_connection("127.0.0.1", PROXY_PORT)
                writer.write(b"anyone?")
                try:
                    await asyncio.wait_for(reader.read(10), 0.3)
                finally:
                    writer.close()

            fault[0] = Fault()
            backend[0] = None  # no backend known: the client is reset at once, not left hanging
            with pytest.raises(ConnectionResetError):
                await _ask(PROXY_PORT)
        finally:
            for server in (proxy, a, b):
                server.close()
                await server.wait_closed()

    asyncio.run(scenario())
