"""A service restarting mid-answer (its body cut short) is an unhealthy sample, never an unexpected error:
it once failed a rollback's wait for every host to run the previous release."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.release.gates import OrderProbe, observe_host_health
from recovery.targets.model import Host

CUT = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 303\r\n\r\n{"


@pytest.fixture
def cutting_server() -> Iterator[int]:
    """Answers every request with headers promising 303 bytes, one byte of body, then closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))  # the kernel picks a free port
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(CUT)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_a_health_answer_cut_short_is_an_unhealthy_sample(cutting_server: int) -> None:
    host = Host(
        name="primary-app",
        address="127.0.0.1",
        ssh_user="app",
        base_dir=Path("/srv"),
        service_port=cutting_server,
    )
    health = observe_host_health(host, timeout=5)
    assert not health.healthy and health.release is None
    assert "got no answer" in health.detail


def test_a_probe_order_answer_cut_short_is_a_failed_request(cutting_server: int) -> None:
    result = OrderProbe(f"http://127.0.0.1:{cutting_server}", timeout=5).one()
    assert not result.ok and "failed" in result.detail
