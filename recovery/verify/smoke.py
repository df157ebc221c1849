"""A business smoke test of the order service, through its HTTP API only.

It proves what a customer needs after a restore, failover or upgrade: the service is healthy, a new
order for an existing product can be placed, read back and paid, the payment is recorded, and a client's
retry of the same order returns the stored order instead of a second one. The orders it places are real
orders of a dedicated smoke-test user (two lines, quantities 2 and 3, of in-stock products); the last
step removes the order through the API (`DELETE /orders/{id}`: stock back, payment, items and events
gone), and a run that stops early removes it too, so no smoke-test order stays in the shop's books.
Each step is timed; the test stops at the first failing step.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from recovery.errors import UsageError
from recovery.verify.reports import CheckResult, Frozen

SMOKE_USER_EMAIL = "smoke-test@order-recovery.invalid"
SMOKE_USER_NAME = "order-recovery smoke test"
DEFAULT_TIMEOUT_SECONDS = 5.0
# Quantities above one, and different per line, so a total that ignores quantities (or mixes up lines)
# differs from the sum of the lines.
QUANTITIES: tuple[int, ...] = (2, 3)
PRODUCT_PAGE = 20

STEP_NAMES: tuple[str, ...] = (
    "health",
    "find_product",
    "find_user",
    "create_order",
    "read_order",
    "pay_order",
    "read_paid_order",
    "payment_recorded",
    "replay_create",
    "remove_order",
)


class SmokeStep(Frozen):
    name: str
    passed: bool
    seconds: float = Field(ge=0)
    reason: str


class SmokeReport(Frozen):
    base_url: str
    order_id: str
    passed: bool
    steps: tuple[SmokeStep, ...]  # the steps that ran, in order
    not_run: tuple[str, ...]  # the steps after the first failure
    seconds: float = Field(ge=0)

    @property
    def subject(self) -> str:
        return f"the order service at {self.base_url}"

    @property
    def checks(self) -> tuple[CheckResult, ...]:
        return tuple(
            CheckResult(
                name=step.name, passed=step.passed, violations=0 if step.passed else 1, reason=step.reason
            )
            for step in self.steps
        )


class StepFailed(Exception):
    """A step observed something wrong; the message is the step's reason sentence."""


class _Http:
    """JSON over HTTP with the standard library; every answer is (status, document)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - check_base_url allows http(s) only
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return int(response.status), _json(response.read(), method, path)
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), _json(error.read(), method, path)
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise StepFailed(f"{method} {path} did not get an answer: {reason}") from None


def _json(raw: bytes, method: str, path: str) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StepFailed(f"{method} {path} answered with a body that is not JSON") from None


def _expect(condition: bool, reason: str) -> None:
    if not condition:
        raise StepFailed(reason)


def _answer(status: int, document: Any, wanted: tuple[int, ...], what: str) -> dict[str, Any]:
    """The answer's JSON object when the status is one of `wanted`; otherwise the step fails."""
    if status not in wanted:
        detail = document.get("message") if isinstance(document, dict) else None
        raise StepFailed(
            f"{what} answered {status}, expected {' or '.join(map(str, wanted))}"
            + (f": {detail}" if detail else "")
        )
    _expect(isinstance(document, dict), f"{what} answered {status} without a JSON object")
    assert isinstance(document, dict)
    return document


def check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(
            f"invalid service URL {base_url!r}: give http://HOST:PORT of the order service",
            code="verify.bad_url",
        )
    return base_url.rstrip("/")


class _Smoke:
    """The steps; each returns its success sentence or raises StepFailed with the reason."""

    def __init__(self, http: _Http, user_id: int | None, order_id: uuid.UUID) -> None:
        self.http = http
        self.user_id = user_id
        self.order_id = str(order_id)
        self.products: list[dict[str, Any]] = []
        self.order: dict[str, Any] = {}
        self.transaction: dict[str, Any] = {}

    def order_request(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "user_id": self.user_id,
            "items": [
                {"product_id": product["id"], "quantity": quantity}
                for product, quantity in zip(self.products, QUANTITIES, strict=False)
            ],
        }

    def health(self) -> str:
        status, document = self.http.call("GET", "/health")
        report = _answer(status, document, (200,), "GET /health")
        _expect(
            report.get("status") == "ok", f"GET /health reports status {report.get('status')!r}, not 'ok'"
        )
        return f"healthy: release {report.get('version')}, site {report.get('site')}"

    def find_product(self) -> str:
        status, document = self.http.call("GET", f"/products?in_stock=1&limit={PRODUCT_PAGE}")
        products = _answer(status, document, (200,), "GET /products").get("products") or []
        assert isinstance(products, list)
        stocked = [product for product in products if product.get("stock", 0) >= max(QUANTITIES)]
        _expect(
            bool(stocked), f"no product has {max(QUANTITIES)} or more in stock, so no order can be placed"
        )
        self.products = stocked[: len(QUANTITIES)]
        return f"product{'s' if len(self.products) > 1 else ''} " + ", ".join(
            f"{product['id']} ({product['stock']} in stock)" for product in self.products
        )

    def find_user(self) -> str:
        if self.user_id is not None:
            status, document = self.http.call("GET", f"/users/{self.user_id}")
            _answer(status, document, (200,), f"GET /users/{self.user_id}")
            return f"user {self.user_id} exists"
        status, document = self.http.call(
            "POST", "/users", {"email": SMOKE_USER_EMAIL, "name": SMOKE_USER_NAME}
        )
        user = _answer(status, document, (200, 201), "POST /users")
        _expect(isinstance(user.get("id"), int), "POST /users answered without a user id")
        self.user_id = int(user["id"])
        return f"smoke-test user {self.user_id} {'created' if status == 201 else 'exists'}"

    def create_order(self) -> str:
        status, document = self.http.call("POST", "/orders", self.order_request())
        self.order = _answer(status, document, (201,), f"POST /orders for new order {self.order_id}")
        _expect(self.order.get("id") == self.order_id, "the created order came back with another id")
        _expect(
            self.order.get("status") == "placed", f"the new order is {self.order.get('status')!r}, not placed"
        )
        items = self.order.get("items") or []
        expected_total = sum(item["quantity"] * item["unit_price_cents"] for item in items)
        _expect(
            len(items) == len(self.products),
            f"the new order has {len(items)} items, expected {len(self.products)}",
        )
        for item in items:
            # Release v2 stores each line's total; where present it must agree with quantity * price.
            line_total = item.get("line_total_cents", item["quantity"] * item["unit_price_cents"])
            _expect(
                line_total == item["quantity"] * item["unit_price_cents"],
                f"line {item.get('line_no')} has total {line_total}, not quantity times unit price",
            )
        _expect(
            self.order.get("total_cents") == expected_total,
            f"the new order's total {self.order.get('total_cents')} is not its items' sum {expected_total}",
        )
        return f"order {self.order_id} placed, total {expected_total} cents"

    def read_order(self) -> str:
        status, document = self.http.call("GET", f"/orders/{self.order_id}")
        order = _answer(status, document, (200,), f"GET /orders/{self.order_id}")
        _expect(
            (order.get("status"), order.get("total_cents"), order.get("items"))
            == ("placed", self.order["total_cents"], self.order["items"]),
            "the order read back differs from the order created",
        )
        return "the order reads back as created"

    def pay_order(self) -> str:
        status, document = self.http.call("POST", f"/orders/{self.order_id}/pay")
        self.transaction = _answer(status, document, (201,), f"POST /orders/{self.order_id}/pay")
        _expect(
            self.transaction.get("status") == "captured",
            f"the payment is {self.transaction.get('status')!r}, not captured",
        )
        _expect(
            self.transaction.get("amount_cents") == self.order["total_cents"],
            f"the payment of {self.transaction.get('amount_cents')} cents is not the order's total "
            f"{self.order['total_cents']}",
        )
        captured = self.transaction["amount_cents"]
        return f"paid: transaction {self.transaction.get('id')} captured {captured} cents"

    def read_paid_order(self) -> str:
        status, document = self.http.call("GET", f"/orders/{self.order_id}")
        order = _answer(status, document, (200,), f"GET /orders/{self.order_id}")
        _expect(order.get("status") == "paid", f"the paid order reads back as {order.get('status')!r}")
        return "the order reads back as paid"

    def payment_recorded(self) -> str:
        # Paying again is idempotent: the service answers with the transaction it stored (200, not 201),
        # which proves through the API alone that the payment is recorded.
        status, document = self.http.call("POST", f"/orders/{self.order_id}/pay")
        stored = _answer(status, document, (200,), f"a repeated POST /orders/{self.order_id}/pay")
        _expect(
            stored.get("id") == self.transaction.get("id") and stored.get("status") == "captured",
            "paying again did not return the stored captured transaction",
        )
        return f"transaction {stored.get('id')} is recorded and paying again does not charge twice"

    def replay_create(self) -> str:
        status, document = self.http.call("POST", "/orders", self.order_request())
        order = _answer(status, document, (200,), f"a replayed POST /orders for {self.order_id}")
        _expect(
            order.get("id") == self.order_id and order.get("status") == "paid",
            "replaying the create did not return the stored (paid) order",
        )
        _expect(order.get("total_cents") == self.order["total_cents"], "the replayed order has another total")
        return "replaying the create returns the stored order, not a new one"

    def remove_order(self) -> str:
        status, document = self.http.call("DELETE", f"/orders/{self.order_id}")
        removed = _answer(status, document, (200,), f"DELETE /orders/{self.order_id}")
        units = sum(item["quantity"] for item in self.order["items"])
        _expect(
            removed.get("removed") is True and removed.get("stock_returned") == units,
            f"removing the smoke-test order gave back {removed.get('stock_returned')} units, not {units}",
        )
        self.order = {}
        return f"the smoke-test order is removed and its {units} units are back in stock"

    def leave_no_order(self) -> None:
        """After a failed step: take the order out of the books anyway (best effort; the gates sweep)."""
        if self.order:
            with contextlib.suppress(StepFailed):
                self.http.call("DELETE", f"/orders/{self.order_id}")

    def steps(self) -> tuple[tuple[str, Callable[[], str]], ...]:
        return tuple((name, getattr(self, name)) for name in STEP_NAMES)


def smoke_test(
    base_url: str,
    *,
    user_id: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> SmokeReport:
    """Run the smoke test against the service at `base_url` (e.g. http://127.0.0.11:27080).

    `user_id` names an existing user to order as; by default the dedicated smoke-test user is used
    (created on first use, through the API).
    """
    base = check_base_url(base_url)
    smoke = _Smoke(_Http(base, timeout), user_id, uuid.uuid4())
    steps: list[SmokeStep] = []
    started = time.monotonic()
    pending = list(smoke.steps())
    while pending:
        name, step = pending.pop(0)
        step_started = time.monotonic()
        try:
            reason, passed = step(), True
        except (StepFailed, KeyError, TypeError) as failure:
            # KeyError/TypeError: the service answered a document of another shape than its API promises.
            reason, passed = _failure_reason(failure), False
        steps.append(
            SmokeStep(name=name, passed=passed, seconds=time.monotonic() - step_started, reason=reason)
        )
        if not passed:
            smoke.leave_no_order()
            break
    return SmokeReport(
        base_url=base,
        order_id=smoke.order_id,
        passed=not pending and all(step.passed for step in steps),
        steps=tuple(steps),
        not_run=tuple(name for name, _ in pending),
        seconds=time.monotonic() - started,
    )


def _failure_reason(failure: Exception) -> str:
    if isinstance(failure, StepFailed):
        return str(failure)
    return f"the service answered a document without the expected field ({type(failure).__name__}: {failure})"
