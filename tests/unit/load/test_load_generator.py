"""The load generator against a small HTTP server on loopback that answers like the order service's API
and fails on purpose: errors are counted, the run goes on, and only acknowledged orders reach the ledger.
(The lab test runs it against the real service through the front door.)"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from recovery.errors import ExternalFailure, UsageError
from recovery.load.generator import LoadGenerator, LoadSettings, run_load
from recovery.load.ledger import read_ledger


class Shop:
    """What the server stored; every third order is refused with 503, like a service being restarted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.orders: dict[str, int] = {}
        self.paid: set[str] = set()
        self.calls = 0
        self.delay_s = 0.0
        self.url = ""
        self.pending_every = 0  # every Nth order is accepted-pending (202), as in degraded mode


def handler_for(shop: Shop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def reply(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/products"):
                self.reply(200, {"products": [{"id": 1, "stock": 1000}, {"id": 2, "stock": 1000}]})
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            if self.path == "/users":
                self.reply(201, {"id": 42})
                return
            if self.path == "/orders":
                time.sleep(shop.delay_s)
                with shop.lock:
                    shop.calls += 1
                    refuse = shop.calls % 3 == 0
                    queued = bool(shop.pending_every) and shop.calls % shop.pending_every == 0 and not refuse
                    total = sum(item["quantity"] * 100 for item in body["items"])
                    if not refuse:
                        shop.orders[body["order_id"]] = total
                if refuse:
                    self.reply(503, {"error": "read_only", "message": "the database is read-only"})
                elif queued:
                    self.reply(202, {"id": body["order_id"], "status": "pending"})
                else:
                    self.reply(201, {"id": body["order_id"], "total_cents": total})
                return
            order_id = self.path.split("/")[2]
            with shop.lock:
                shop.paid.add(order_id)
                amount = shop.orders[order_id]
            self.reply(201, {"order_id": order_id, "amount_cents": amount, "status": "captured"})

    return Handler


@pytest.fixture
def shop() -> Iterator[Shop]:
    state = Shop()
    # Port 0: the kernel picks a free port, so parallel runs never collide.
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_errors_are_counted_and_only_acknowledged_orders_reach_the_ledger(shop: Shop, tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.jsonl"
    settings = LoadSettings(shop.url, rate=40, duration_s=1.5, pay_fraction=0.5, seed=7)
    summary = run_load(settings, ledger_path)
    ledger = read_ledger(ledger_path)
    assert summary.sent == summary.acked + summary.failed
    assert summary.failed >= 1 and summary.acked >= 2 * summary.failed - 2
    assert summary.failures == {"order: HTTP 503 read_only": summary.failed}
    assert {o.order_id: o.total_cents for o in ledger.orders} == shop.orders
    assert {p.order_id for p in ledger.payments} == shop.paid
    assert summary.payments_acked == len(shop.paid) and summary.payments_sent == summary.payments_acked
    assert len(ledger.failures) == summary.failed
    assert summary.p50_ms is not None and summary.p95_ms is not None and summary.p50_ms <= summary.p95_ms


def test_a_rate_is_held_steady_and_busy_workers_drop_instead_of_queueing(shop: Shop, tmp_path: Path) -> None:
    shop.delay_s = 0.5  # each order holds a worker for half a second
    generator = LoadGenerator(
        LoadSettings(shop.url, rate=50, duration_s=1.0, workers=2, pay_fraction=0),
        tmp_path / "l",
    )
    generator.start()
    summary = generator.wait()
    # 50 orders were due; two workers busy for 0.5 s each can take only a handful, the rest are dropped.
    assert summary.sent + summary.dropped == 50
    assert summary.sent <= 8 and summary.dropped >= 42
    assert not generator.running


def test_stop_ends_an_open_ended_load_and_the_ledger_holds_a_summary(shop: Shop, tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    generator = LoadGenerator(LoadSettings(shop.url, rate=30, pay_fraction=0), path)
    generator.start()
    time.sleep(0.5)
    summary = generator.stop()
    assert generator.stop() is summary
    assert summary.sent >= 5
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["kind"] == "summary" and last["acked"] == summary.acked


def test_an_unreachable_service_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
        generator = LoadGenerator(
            LoadSettings(f"http://127.0.0.1:{closed_port}", rate=5, duration_s=1), tmp_path / "l"
        )
        with pytest.raises(ExternalFailure, match="cannot take load: no answer"):
            generator.start()
    assert not (tmp_path / "l").exists()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"rate": 0}, "--rate 0 is out of range"),
        ({"rate": 10_000}, "--rate 10000 is out of range"),
        ({"duration_s": -1}, "--duration -1 is out of range"),
        ({"pay_fraction": 2}, "--pay-fraction 2 must be between 0 and 1"),
        ({"workers": 0}, "--workers 0 must be between 1 and 64"),
        ({"base_url": "http://10.1.2.3:80"}, "only sends to loopback addresses"),
        ({"base_url": "ftp://127.0.0.1:80"}, "invalid front door URL"),
    ],
)
def test_unbounded_or_non_loopback_settings_are_refused(changes: dict[str, Any], words: str) -> None:
    settings: dict[str, Any] = {"base_url": "http://127.0.0.1:80", "rate": 10, "duration_s": 5}
    settings.update(changes)
    with pytest.raises(UsageError, match=words):
        LoadSettings(**settings)


def test_refusals_are_recorded_with_time_and_status_and_202_as_pending(shop: Shop, tmp_path: Path) -> None:
    shop.pending_every = 4
    ledger_path = tmp_path / "ledger.jsonl"
    started = time.time()
    summary = run_load(LoadSettings(shop.url, rate=40, duration_s=1.5, pay_fraction=1.0, seed=3), ledger_path)
    ledger = read_ledger(ledger_path)
    pending = {o.order_id for o in ledger.pending}
    assert pending and summary.pending == len(pending)
    assert all(o.total_cents is None for o in ledger.pending)
    assert all(o.status == "acknowledged" for o in ledger.orders if o.order_id not in pending)
    assert not pending & {p.order_id for p in ledger.payments}  # a pending order is not paid
    assert len(ledger.failures) == summary.failed >= 1
    assert {(f.op, f.http_status) for f in ledger.failures} == {("order", 503)}
    window = ledger.error_window
    assert window is not None and window.failures == summary.failed and window.no_answer == 0
    assert started <= window.first_at <= window.last_at <= time.time()
