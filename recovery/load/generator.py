"""The load generator: real orders (some paid) through the front door at a steady rate.

A scheduler thread releases one order every 1/rate seconds to a bounded pool of worker threads; when
every worker is still busy (the service is slow or hanging) the order is not sent and is counted as
dropped, so neither threads nor queued work grow without bound. Every acknowledged order and payment goes
to the ledger; every other outcome (HTTP error, refused connection, timeout) is counted and the load
keeps going, because the service may be down for a while during a rollback or failover.

Use it from Python in the background:

    generator = LoadGenerator(LoadSettings(base_url, rate=20), ledger_path)
    generator.start()
    ...  # the upgrade, the fault, the failover
    summary = generator.stop()
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recovery.errors import ExternalFailure, UsageError
from recovery.load.ledger import LedgerWriter
from recovery.load.stats import percentile

LOAD_USER_EMAIL = "load-generator@order-recovery.invalid"
LOAD_USER_NAME = "order-recovery load generator"
MAX_RATE = 500.0
MAX_WORKERS = 64
MAX_DURATION_S = 24 * 3600.0
PRODUCT_PAGE = 50


@dataclass(frozen=True)
class LoadSettings:
    base_url: str
    rate: float  # orders per second
    duration_s: float | None = None  # None: until stop()
    pay_fraction: float = 0.3
    workers: int = 8
    timeout_s: float = 5.0
    seed: int | None = None

    def __post_init__(self) -> None:
        check_settings(self)


def check_settings(settings: LoadSettings) -> None:
    """Refuse settings that would be unbounded or leave loopback. Pure."""
    if not 0 < settings.rate <= MAX_RATE:
        raise UsageError(f"--rate {settings.rate:g} is out of range: give 0 < rate <= {MAX_RATE:g} orders/s")
    if settings.duration_s is not None and not 0 < settings.duration_s <= MAX_DURATION_S:
        raise UsageError(
            f"--duration {settings.duration_s:g} is out of range: give 0 < seconds <= {MAX_DURATION_S:g}"
        )
    if not 0 <= settings.pay_fraction <= 1:
        raise UsageError(f"--pay-fraction {settings.pay_fraction:g} must be between 0 and 1")
    if not 1 <= settings.workers <= MAX_WORKERS:
        raise UsageError(f"--workers {settings.workers} must be between 1 and {MAX_WORKERS}")
    if not settings.timeout_s > 0:
        raise UsageError("the request timeout must be positive")
    parts = urlsplit(settings.base_url)
    host = parts.hostname or ""
    if parts.scheme != "http" or not host:
        raise UsageError(f"invalid front door URL {settings.base_url!r}: give http://127.x.x.x:PORT")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"the load generator only sends to loopback addresses; {host!r} is not one")


@dataclass(frozen=True)
class LoadSummary:
    sent: int
    acked: int
    failed: int
    dropped: int  # not sent: every worker was still busy
    payments_sent: int
    payments_acked: int
    p50_ms: float | None  # of acknowledged order placements
    p95_ms: float | None
    max_ms: float | None
    seconds: float
    failures: dict[str, int]  # reason -> count
    ledger: str
    pending: int = 0  # of the acknowledged: accepted-pending (202), not yet stored


@dataclass
class _Tally:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    dropped: int = 0
    payments_sent: int = 0
    payments_acked: int = 0
    pending: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


class _Answer(Exception):
    """A request that got no acknowledgement; the message is the counted reason, `status` the HTTP status
    of a refusal (None when no answer came)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def _call(base_url: str, method: str, path: str, body: Any, timeout: float) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - check_settings allows http to loopback only
        base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            raw = error.read()
            status = int(error.code)
    except (OSError, http.client.HTTPException) as error:  # no answer, or one cut short by a restart
        reason = getattr(error, "reason", error)
        name = type(reason).__name__ if isinstance(reason, BaseException) else str(reason)
        raise _Answer(f"no answer ({name})") from None
    try:
        return status, json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Answer(f"HTTP {status} with a body that is not JSON", status) from None


def _http_reason(status: int, document: Any) -> str:
    code = document.get("error") if isinstance(document, dict) else None
    return f"HTTP {status}" + (f" {code}" if code else "")


class LoadGenerator:
    def __init__(self, settings: LoadSettings, ledger_path: Path) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.ledger_path = ledger_path
        self._random = random.Random(settings.seed)
        self._tally = _Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._in_flight = threading.BoundedSemaphore(settings.workers)
        self._scheduler: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ledger: LedgerWriter | None = None
        self._user_id = 0
        self._product_ids: list[int] = []
        self._started = 0.0
        self._ended: float | None = None
        self._summary: LoadSummary | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Find a user and in-stock products through the API, then start sending in the background."""
        if self._scheduler is not None:
            raise UsageError("this load generator was already started; make a new one")
        self._discover()
        self._ledger = LedgerWriter(self.ledger_path)
        self._pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="load")
        self._started = time.monotonic()
        self._scheduler = threading.Thread(target=self._schedule, name="load-scheduler", daemon=True)
        self._scheduler.start()

    def wait(self) -> LoadSummary:
        """Block until the duration has passed (or stop() was called), then stop and summarize."""
        if self.settings.duration_s is None:
            raise UsageError("wait() needs a duration; call stop() to end an open-ended load")
        if self._scheduler is not None:
            self._scheduler.join()
        return self.stop()

    def stop(self) -> LoadSummary:
        """Stop sending, let requests in flight finish (each bounded by the timeout), close the ledger."""
        if self._summary is not None:
            return self._summary
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._ended = time.monotonic()
        summary = self.snapshot()
        if self._ledger is not None:
            self._ledger.append({"kind": "summary", **_summary_fields(summary)})
            self._ledger.close()
        self._summary = summary
        return summary

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.is_alive()

    def snapshot(self) -> LoadSummary:
        """The figures so far (safe to call while running)."""
        with self._lock:
            tally = self._tally
            latencies = list(tally.latencies_ms)
            end = self._ended if self._ended is not None else time.monotonic()
            return LoadSummary(
                sent=tally.sent,
                acked=tally.acked,
                failed=tally.failed,
                dropped=tally.dropped,
                payments_sent=tally.payments_sent,
                payments_acked=tally.payments_acked,
                p50_ms=percentile(latencies, 50),
                p95_ms=percentile(latencies, 95),
                max_ms=max(latencies) if latencies else None,
                seconds=round(end - self._started, 3) if self._started else 0.0,
                failures=dict(tally.failures.most_common()),
                ledger=str(self.ledger_path),
                pending=tally.pending,
            )

    # -- work ------------------------------------------------------------------------------------

    def _discover(self) -> None:
        timeout = self.settings.timeout_s
        try:
            path = f"/products?in_stock=1&limit={PRODUCT_PAGE}"
            status, document = _call(self.base_url, "GET", path, None, timeout)
            products = document.get("products") if status == 200 and isinstance(document, dict) else None
            if not products:
                raise _Answer(f"GET /products answered {_http_reason(status, document)} without products")
            self._product_ids = [int(p["id"]) for p in products if int(p.get("stock", 0)) > 100] or [
                int(p["id"]) for p in products
            ]
            status, document = _call(
                self.base_url, "POST", "/users", {"email": LOAD_USER_EMAIL, "name": LOAD_USER_NAME}, timeout
            )
            if status not in (200, 201) or not isinstance(document, dict) or "id" not in document:
                raise _Answer(f"POST /users answered {_http_reason(status, document)}")
            self._user_id = int(document["id"])
        except _Answer as problem:
            raise ExternalFailure(
                f"the order service at {self.base_url} cannot take load: {problem}; "
                "check that it runs (`recovery lab status`)"
            ) from None

    def _schedule(self) -> None:
        interval = 1.0 / self.settings.rate
        duration = self.settings.duration_s
        sequence = 0
        while not self._stop.is_set():
            due = self._started + sequence * interval
            if duration is not None and due - self._started >= duration:
                return
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            sequence += 1
            if not self._in_flight.acquire(blocking=False):
                with self._lock:
                    self._tally.dropped += 1
                continue
            assert self._pool is not None
            self._pool.submit(self._one_order)

    def _one_order(self) -> None:
        try:
            self._place_order()
        finally:
            self._in_flight.release()

    def _items(self) -> list[dict[str, int]]:
        count = self._random.randint(1, min(3, len(self._product_ids)))
        chosen = self._random.sample(self._product_ids, count)
        return [{"product_id": pid, "quantity": self._random.randint(1, 3)} for pid in chosen]

    def _place_order(self) -> None:
        assert self._ledger is not None
        order_id = str(uuid.uuid4())
        body = {"order_id": order_id, "user_id": self._user_id, "items": self._items()}
        pay = self._random.random() < self.settings.pay_fraction
        started = time.monotonic()
        with self._lock:
            self._tally.sent += 1
        try:
            status, document = _call(self.base_url, "POST", "/orders", body, self.settings.timeout_s)
            latency = (time.monotonic() - started) * 1000
            total = document.get("total_cents") if isinstance(document, dict) else None
            pending = status == 202
            if pending:
                # Accepted and queued (degraded mode): a promise to store it, recorded as such; it is not
                # paid, since the service may not hold it yet.
                self._ledger.order(order_id, total if isinstance(total, int) else None, latency, "pending")
            elif status in (200, 201) and isinstance(total, int):
                self._ledger.order(order_id, total, latency)
            else:
                raise _Answer(_http_reason(status, document), status)
        except _Answer as problem:
            self._count_failure("order", str(problem), (time.monotonic() - started) * 1000, problem.status)
            return
        with self._lock:
            self._tally.acked += 1
            self._tally.pending += int(pending)
            self._tally.latencies_ms.append(latency)
        if pay and not pending:
            self._pay(order_id)

    def _pay(self, order_id: str) -> None:
        assert self._ledger is not None
        started = time.monotonic()
        with self._lock:
            self._tally.payments_sent += 1
        try:
            path = f"/orders/{order_id}/pay"
            status, document = _call(self.base_url, "POST", path, None, self.settings.timeout_s)
            amount = document.get("amount_cents") if isinstance(document, dict) else None
            if status not in (200, 201) or not isinstance(amount, int):
                raise _Answer(_http_reason(status, document), status)
        except _Answer as problem:
            self._count_failure("payment", str(problem), (time.monotonic() - started) * 1000, problem.status)
            return
        self._ledger.payment(order_id, amount, (time.monotonic() - started) * 1000)
        with self._lock:
            self._tally.payments_acked += 1

    def _count_failure(self, op: str, reason: str, latency_ms: float, http_status: int | None) -> None:
        assert self._ledger is not None
        self._ledger.failure(op, reason, latency_ms, http_status)
        with self._lock:
            if op == "order":
                self._tally.failed += 1
            self._tally.failures[f"{op}: {reason}"] += 1


def _summary_fields(summary: LoadSummary) -> dict[str, Any]:
    fields = dict(summary.__dict__)
    fields.pop("ledger")
    return fields


def run_load(settings: LoadSettings, ledger_path: Path) -> LoadSummary:
    """Run a load for its duration in the foreground and return the summary."""
    generator = LoadGenerator(settings, ledger_path)
    generator.start()
    try:
        return generator.wait()
    finally:
        generator.stop()
