"""Bad input at the service's edge answers 400 with one sentence; /health names a failure, not the database's
address. Against the real service (v1 and v2) over a real PostgreSQL, with raw HTTP where a client library
would refuse to send what an attacker can."""

from __future__ import annotations

import json
import socket
import uuid

import pytest

PRODUCTS = "INSERT INTO products (sku, name, price_cents, stock) VALUES ('A', 'Apple', 250, 10)"


@pytest.fixture(params=["v1", "v2"])
def service(request, serve_release):
    return serve_release(request.param, "input", PRODUCTS)


def _raw(port: int, head: str, body: bytes = b"", *, send_eof: bool = True) -> tuple[int, dict]:
    """Send a request as bytes; return the status and JSON document of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        if send_eof:
            sock.shutdown(socket.SHUT_WR)
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _length(raw):
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    header, payload = raw.split(b"\r\n\r\n", 1)
    return int(header.split()[1]), json.loads(payload[: _length(raw)])


def _length(raw: bytes) -> int:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _post_head(path: str, length: str) -> str:
    return f"POST {path} HTTP/1.1\nHost: shop\nContent-Type: application/json\nContent-Length: {length}\n"


def test_a_negative_content_length_is_refused_without_reading_the_stream(service):
    # The client keeps its side open: a server that reads "to the end" would wait for the timeout.
    status, doc = _raw(service.port, _post_head("/users", "-1"), b'{"email": "a@b.example"', send_eof=False)
    assert status == 400
    assert doc["error"] == "bad_request" and "Content-Length" in doc["message"]


@pytest.mark.parametrize("length", ["abc", "12abc", "1e3", "99999999999999999999"])
def test_a_content_length_that_is_not_a_number_of_bytes_is_a_400(service, length):
    status, doc = _raw(service.port, _post_head("/users", length), b"{}")
    assert status == 400, doc
    assert doc["error"] == "bad_request"


def _post_json(service, path: str, text: str) -> tuple[int, dict]:
    body = text.encode()
    return _raw(service.port, _post_head(path, str(len(body))), body)


def _order_body(service, user_id: str) -> str:
    items = '[{"product_id": 1, "quantity": 1}]'
    return f'{{"order_id": "{uuid.uuid4()}", "user_id": {user_id}, "items": {items}}}'


def test_a_number_of_five_thousand_digits_is_a_400(service):
    status, doc = _post_json(service, "/orders", _order_body(service, "9" * 5000))
    assert status == 400 and doc["error"] == "bad_request"
    assert "digits" in doc["message"]


def test_an_id_wider_than_a_bigint_is_a_400(service):
    status, doc = _post_json(service, "/orders", _order_body(service, str(2**63)))
    assert status == 400 and "user_id" in doc["message"]
    status, doc = service.call("GET", "/users/" + "9" * 30)
    assert status == 404  # no route takes an id that long: never a 500 from int() or PostgreSQL


def test_a_nul_in_a_string_is_a_400_and_nothing_is_stored(service, postgres):
    status, doc = _post_json(service, "/users", '{"email": "nul@shop.example", "name": "A\\u0000B"}')
    assert status == 400 and "NUL" in doc["message"]
    assert postgres.query(service.db, "SELECT count(*) FROM users") == [(0,)]


@pytest.mark.parametrize("text", ['{"n": NaN}', '{"n": Infinity}', '{"n": 1e999}'])
def test_numbers_json_does_not_have_are_a_400(service, text):
    status, doc = _post_json(service, "/users", text)
    assert status == 400 and doc["error"] == "bad_request"


def test_a_chunked_body_is_refused(service):
    head = "POST /users HTTP/1.1\nHost: shop\nTransfer-Encoding: chunked\n"
    status, doc = _raw(service.port, head, b"2\r\n{}\r\n0\r\n\r\n")
    assert status == 400 and "Content-Length" in doc["message"]


def test_health_names_a_database_failure_without_its_address(postgres, deploy):
    # The database does not exist: libpq's error names the host, the port and the role.
    run = deploy("v1", f"missing_{uuid.uuid4().hex[:8]}")
    run.start()
    assert run.wait_listening()
    status, health = run.call("GET", "/health")
    assert status == 503 and health["status"] == "unhealthy"
    problem = " ".join(health["problems"])
    assert "OperationalError" in problem
    for detail in ("127.0.0.1", str(postgres.port), '"orders"', "missing_", str(postgres.passfile)):
        assert detail not in problem
    assert health["transient"] is True  # a database that does not answer may answer in a moment


def test_a_release_whose_health_query_is_wrong_reports_a_definite_failure(postgres, deploy):
    db = postgres.create_database("definite")
    run = deploy("v2-unhealthy", db)
    assert run.migrate().returncode == 0
    run.start()
    assert run.wait_listening()
    status, health = run.call("GET", "/health")
    assert status == 503 and health["version"] == "v2-unhealthy"
    assert health["transient"] is False
    assert "UndefinedTable" in health["problems"][0] and "feature_flags" in health["problems"][0]
