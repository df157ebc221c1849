"""`db.promoted`, the question a point-in-time recovery repeats until its scratch server has promoted: a
server that stops between the connect and the question (a recovery that ended before its target shuts the
server down) is "no answer", never an exception that ends the recovery's wait. A real PostgreSQL, reached
through a relay that cuts the connection when the first query arrives, as a server shutting down does."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from recovery.drivers import db

STARTUP_CODE = 196608  # protocol 3.0: after it every frontend message starts with its type byte
QUERY_TYPES = {b"Q", b"P"}  # simple and extended query


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_RDWR)


def _client_until_first_query(client: socket.socket, server: socket.socket) -> None:
    """Forward the client's messages until its first query, then close both ends."""
    buffer = b""
    typed = False
    with contextlib.suppress(OSError):
        while chunk := client.recv(65536):
            buffer += chunk
            while True:
                if not typed:
                    if len(buffer) < 8:
                        break
                    (length,) = struct.unpack("!I", buffer[:4])
                    if len(buffer) < length:
                        break
                    (code,) = struct.unpack("!I", buffer[4:8])
                    typed = code == STARTUP_CODE
                    message, buffer = buffer[:length], buffer[length:]
                else:
                    if len(buffer) < 5:
                        break
                    if buffer[:1] in QUERY_TYPES:
                        return
                    (length,) = struct.unpack("!I", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    message, buffer = buffer[: 1 + length], buffer[1 + length :]
                server.sendall(message)
    # (leaving closes both: see the caller)


@contextlib.contextmanager
def _cutting_relay(upstream_port: int) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []
    sockets: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            client, _ = listener.accept()
            server = socket.create_connection(("127.0.0.1", upstream_port))
            sockets.extend((client, server))
            back = threading.Thread(target=_pump, args=(server, client), daemon=True)
            back.start()
            threads.append(back)
            _client_until_first_query(client, server)
            for end in (client, server):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    accepting = threading.Thread(target=serve, daemon=True)
    accepting.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for end in sockets:
            end.close()
        accepting.join(timeout=10)
        for thread in threads:
            thread.join(timeout=10)


def _through(postgres, port: int, tmp_path: Path) -> str:
    """The fixture's conninfo, through the relay's port (with a passfile entry for that port)."""
    passfile = tmp_path / f"pgpass-{port}"
    passfile.touch(mode=0o600)
    passfile.write_text(postgres.passfile.read_text().replace(f":{postgres.port}:", f":{port}:"))
    params = conninfo_to_dict(postgres.conninfo())
    return make_conninfo(**(params | {"port": str(port), "passfile": str(passfile), "sslmode": "disable"}))


def test_a_primary_answers_promoted(postgres) -> None:
    assert db.promoted(postgres.conninfo()) is True


def test_a_server_that_does_not_listen_is_no_answer(postgres, tmp_path: Path) -> None:
    with _cutting_relay(postgres.port) as port:
        pass  # the relay is gone: its port is closed
    assert db.promoted(_through(postgres, port, tmp_path), connect_timeout=2) is None


def test_a_server_that_closes_the_connection_before_answering_is_no_answer(postgres, tmp_path: Path) -> None:
    # The same cut, asked directly: the error the recovery's wait used to let escape.
    cut = pytest.raises(psycopg.OperationalError, match="server closed the connection unexpectedly")
    with _cutting_relay(postgres.port) as port, cut, db.connect(_through(postgres, port, tmp_path)) as conn:
        db.in_recovery(conn)
    with _cutting_relay(postgres.port) as port:
        assert db.promoted(_through(postgres, port, tmp_path), connect_timeout=5) is None
