"""The HTTP front of the service: JSON in and out, a thread per request, routes as a small table."""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2
import psycopg2.errors

from orderservice import catalog, edge, health, intake, notices, orders, probes
from orderservice.config import Config, IntakeConfig
from orderservice.db import Database
from orderservice.errors import ApiError, BadRequest, ReadOnly, Unavailable
from orderservice.release_info import ReleaseInfo, load_release_info

log = logging.getLogger("orderservice")

Reply = tuple[int, Any]

# The database failures that mean "cannot write now" (down, fenced, read-only, being swapped, no free
# connection): only these send an order to the intake queue; any other error is answered as before.
CANNOT_WRITE = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    psycopg2.errors.ReadOnlySqlTransaction,
)
# After a write the database could not take, reads say they are degraded for this long (or until a
# write succeeds again).
DEGRADED_WINDOW_S = 30.0
DEGRADED_HEADER = "X-Order-Service-Degraded"
# At a clean stop, how long the "received, pending" messages already handed over may still take.
NOTICE_DRAIN_S = 5.0


class App:
    """Everything a request needs; handlers are methods returning (status, JSON document)."""

    def __init__(self, config: Config, info: ReleaseInfo) -> None:
        self.config = config
        self.info = info
        self.db = Database(config.db, config.pool_min, config.pool_max)
        degraded = config.intake is not None and config.intake.degraded_mode
        self.intake = intake.IntakeQueue(config.intake) if degraded and config.intake else None
        self.notices = _pending_notices(config.intake) if degraded and config.intake else None
        self._write_blocked_at: float | None = None
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            ("GET", re.compile(r"/health"), self.health),
            ("GET", re.compile(r"/version"), self.version),
            ("POST", re.compile(r"/users"), self.create_user),
            ("GET", re.compile(r"/users/(\d{1,18})"), self.get_user),
            ("GET", re.compile(r"/products"), self.list_products),
            ("GET", re.compile(r"/products/(\d{1,18})"), self.get_product),
            ("POST", re.compile(r"/orders"), self.create_order),
            ("GET", re.compile(r"/orders"), self.list_orders),
            ("GET", re.compile(r"/orders/([0-9a-fA-F-]{32,36})"), self.get_order),
            ("POST", re.compile(r"/orders/([0-9a-fA-F-]{32,36})/pay"), self.pay_order),
            ("DELETE", re.compile(r"/orders/([0-9a-fA-F-]{32,36})"), self.remove_probe_order),
        ]

    def health(self, query: dict[str, str], body: Any) -> Reply:
        healthy, report = health.check(self.db, self.config, self.info)
        report["degraded_mode"] = "queue" if self.intake is not None else "off"
        report["writes_blocked"] = self.degraded()
        return (200 if healthy else 503), report

    def version(self, query: dict[str, str], body: Any) -> Reply:
        return 200, {
            "version": self.info.version,
            "schema_version": self.info.schema_version,
            "site": self.config.site,
        }

    def create_user(self, query: dict[str, str], body: Any) -> Reply:
        created, user = catalog.create_user(self.db, body)
        return (201 if created else 200), user

    def get_user(self, query: dict[str, str], body: Any, user_id: str) -> Reply:
        return 200, catalog.get_user(self.db, int(user_id))

    def list_products(self, query: dict[str, str], body: Any) -> Reply:
        return 200, catalog.list_products(
            self.db,
            _int(query, "after", 0, 0, 2**62),
            _int(query, "limit", 50, 1, 500),
            query.get("in_stock") == "1",
        )

    def get_product(self, query: dict[str, str], body: Any, product_id: str) -> Reply:
        return 200, catalog.get_product(self.db, int(product_id))

    def create_order(self, query: dict[str, str], body: Any) -> Reply:
        request = orders.parse_order_request(body)
        try:
            created, order = orders.create_order(self.db, request)
        except CANNOT_WRITE as exc:
            self._write_blocked_at = time.monotonic()
            if self.intake is None:
                raise
            return self.accept_pending(request, exc)
        self._write_blocked_at = None
        return (201 if created else 200), order

    def accept_pending(self, request: orders.OrderRequest, cause: Exception) -> Reply:
        """Degraded mode: the order goes durably into the intake queue, then (only then) a 202."""
        order_id = str(request.order_id)
        received_at = datetime.now(intake.UTC_ZONE)
        message = intake.message_for(order_id, request.user_id, request.lines, received_at)
        assert self.intake is not None
        message_id = self.intake.send(order_id, message)
        log.warning(
            "order %s queued (message %s): the database cannot take writes (%s)",
            order_id,
            message_id,
            type(cause).__name__,
        )
        if self.notices is not None:
            self.notices.tell(order_id, received_at.isoformat())
        return 202, {
            "status": "pending",
            "order_id": order_id,
            "idempotency_key": order_id,
            "received_at": received_at.isoformat(),
            "message": "accepted, pending: the order is queued and will be entered once the order system "
            "is back; do not order again",
        }

    def degraded(self) -> bool:
        """Whether a recent write found the database unable to take it (reads then say so)."""
        blocked = self._write_blocked_at
        return blocked is not None and time.monotonic() - blocked < DEGRADED_WINDOW_S

    def list_orders(self, query: dict[str, str], body: Any) -> Reply:
        after = orders.parse_uuid(query["after"], "after") if query.get("after") else None
        return 200, orders.list_orders(self.db, after, _int(query, "limit", 50, 1, 500))

    def get_order(self, query: dict[str, str], body: Any, order_id: str) -> Reply:
        return 200, orders.get_order(self.db, orders.parse_uuid(order_id, "order id"))

    def pay_order(self, query: dict[str, str], body: Any, order_id: str) -> Reply:
        created, transaction = orders.pay_order(self.db, orders.parse_uuid(order_id, "order id"))
        return (201 if created else 200), transaction

    def remove_probe_order(self, query: dict[str, str], body: Any, order_id: str) -> Reply:
        return 200, probes.remove_probe_order(self.db, orders.parse_uuid(order_id, "order id"))

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                allowed = True
                continue
            try:
                return handler(query, body, *match.groups())
            except ApiError as exc:
                return exc.status, {"error": exc.code, "message": exc.message}
            except psycopg2.errors.ReadOnlySqlTransaction:
                error = ReadOnly(
                    f"the {self.config.site} site's database is read-only; send writes to the primary site"
                )
                return error.status, {"error": error.code, "message": error.message}
            except psycopg2.OperationalError as exc:
                log.warning("database unavailable: %s", str(exc).strip().splitlines()[:1])
                said = "; orders are still accepted as pending" if self.intake is not None else ""
                error = Unavailable(f"the database is unavailable{said}; retry later")
                return error.status, {"error": error.code, "message": error.message, "degraded": True}
        if allowed:
            return 405, {"error": "method_not_allowed", "message": f"{method} is not allowed on {path}"}
        return 404, {"error": "not_found", "message": f"no route for {path}"}


def _pending_notices(config: IntakeConfig) -> notices.PendingNotices | None:
    notice = config.pending_notice
    if notice is None:
        return None
    region = notice.topic_arn.split(":")[3]
    return notices.PendingNotices(notice, lambda: intake.aws_client("sns", region, config.endpoint_url))


def _int(query: dict[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{key} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}")
    return value


class Handler(BaseHTTPRequestHandler):
    server_version = "orderservice"
    protocol_version = "HTTP/1.1"
    app: App  # set on the subclass the server builds

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        status, document = 500, {"error": "internal", "message": "internal error; see the service log"}
        try:
            body = self._read_body() if method in ("POST", "PUT", "PATCH") else None
            status, document = self.app.dispatch(method, parts.path.rstrip("/") or "/", query, body)
        except ApiError as exc:
            status, document = exc.status, {"error": exc.code, "message": exc.message}
        except Exception:
            log.exception("unhandled error on %s %s", method, parts.path)
        payload = json.dumps(document, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if method == "GET" and self.app.degraded():
            # A read served while writes cannot be taken: the answer may be stale, orders are pending.
            self.send_header(DEGRADED_HEADER, "writes are queued; this answer may not show recent orders")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        log.info("%s %s %d %.1fms", method, parts.path, status, (time.monotonic() - started) * 1000)

    def _read_body(self) -> Any:
        try:
            return edge.read_body(self.headers, self.rfile)
        except BadRequest:
            # The rest of a refused body is never read: the connection cannot carry another request.
            self.close_connection = True
            raise

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        # Access lines go through _handle with the duration; the stdlib's stderr lines are dropped.
        return


def setup_logging(log_file: str) -> None:
    Path(log_file).resolve().parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def serve(config: Config) -> int:
    setup_logging(config.log_file)
    info = load_release_info()
    app = App(config, info)
    problem = app.intake.prepare() if app.intake is not None else None
    if problem:
        log.error("%s: orders the database cannot take will be refused", problem)
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((config.listen, config.port), handler)
    server.daemon_threads = True

    def stop(signum: int, frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "release %s (schema %d) serving the %s site on %s:%d",
        info.version,
        info.schema_version,
        config.site,
        config.listen,
        config.port,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if app.notices is not None and not app.notices.drain(NOTICE_DRAIN_S):
            log.warning("stopping with 'received, pending' messages not yet published")
        app.db.close()
        log.info("stopped")
    return 0
