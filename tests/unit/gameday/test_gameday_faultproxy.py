"""The game day's fault proxy on real loopback sockets: it passes (delayed), resets a counted number of
new connections, black-holes for a while and then resets the held ones, and refuses once its store's
endpoint is down; each new fault comes from its control file."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from recovery.gameday.faultproxy import FaultProxy, FaultState, ProxyFault


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@asynccontextmanager
async def proxy_to_echo(control: Path) -> AsyncIterator[FaultProxy]:
    backend = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = FaultProxy(("127.0.0.1", backend.sockets[0].getsockname()[1]), control)
    await proxy.listen()
    try:
        yield proxy
    finally:
        if proxy.server is not None:
            proxy.server.close()
        if proxy.refusing is not None:
            proxy.refusing.close()
        backend.close()


async def _exchange(port: int, timeout: float = 2.0) -> str:
    """'echo' when the bytes came back, 'reset' when the connection was reset or closed empty,
    'silent' when nothing came back in time, 'refused' when the connection was refused."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return "refused"
    try:
        writer.write(b"ping")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4), timeout)
        return "echo" if data == b"ping" else "reset"
    except TimeoutError:
        return "silent"
    except ConnectionError:
        return "reset"
    finally:
        writer.close()


async def _tell(proxy: FaultProxy, control: Path, **fault: object) -> None:
    serial = proxy.state.fault.serial + 1
    control.write_text(json.dumps({"serial": serial, **fault}))
    await proxy.follow()


def test_the_proxy_passes_resets_black_holes_and_refuses_as_told(tmp_path: Path) -> None:
    control = tmp_path / "control.json"

    async def scenario() -> None:
        async with proxy_to_echo(control) as proxy:
            port = proxy.port
            assert await _exchange(port) == "echo"
            await _tell(proxy, control, mode="reset", count=2)
            assert [await _exchange(port) for _ in range(3)] == ["reset", "reset", "echo"]
            await _tell(proxy, control, mode="pass", delay_seconds=0.3)
            began = time.monotonic()
            assert await _exchange(port) == "echo" and time.monotonic() - began >= 0.3
            await _tell(proxy, control, mode="blackhole", seconds=0.6)
            began = time.monotonic()
            held = asyncio.ensure_future(_exchange(port, timeout=5))
            assert await _exchange(port, timeout=0.2) == "silent"
            assert await held == "reset" and time.monotonic() - began >= 0.5
            assert await _exchange(port) == "echo"  # the black hole is over
            await _tell(proxy, control, mode="refuse")
            assert await _exchange(port) == "refused"
            await _tell(proxy, control, mode="pass")
            assert proxy.port == port and await _exchange(port) == "echo"

    asyncio.run(scenario())


def test_a_black_hole_lasts_from_the_first_connection_it_swallows() -> None:
    now = [100.0]
    state = FaultState(clock=lambda: now[0])
    state.apply(ProxyFault(serial=1, mode="blackhole", seconds=3))
    now[0] = 150.0  # the client connects long after the fault was set
    assert state.on_connect() == "blackhole"
    now[0] = 152.9
    assert state.on_connect() == "blackhole" and state.blackholing()
    now[0] = 153.1
    assert state.on_connect() == "pass" and not state.blackholing()


def test_a_fault_with_the_serial_already_applied_is_not_applied_again(tmp_path: Path) -> None:
    state = FaultState()
    state.apply(ProxyFault(serial=1, mode="reset", count=1))
    assert [state.on_connect(), state.on_connect()] == ["reset", "pass"]
    control = tmp_path / "control.json"
    proxy = FaultProxy(("127.0.0.1", 9), control)
    proxy.state = state
    control.write_text(json.dumps({"serial": 1, "mode": "reset", "count": 1}))
    asyncio.run(proxy.follow())
    assert proxy.state.on_connect() == "pass"  # the same fault is not counted again


@pytest.mark.parametrize("text", ['{"mode": "flood"}', "not json"])
def test_a_bad_control_file_changes_nothing(tmp_path: Path, text: str) -> None:
    control = tmp_path / "control.json"
    control.write_text(text)
    proxy = FaultProxy(("127.0.0.1", 9), control)
    asyncio.run(proxy.follow())
    assert proxy.state.fault == ProxyFault()
