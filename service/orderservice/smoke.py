"""The business smoke check: one real customer journey through the API, checked at every step.

Create (or find) a smoke user, place an order of two lines with quantities above one on products in
stock, replay it, read it back, check its total against its lines, pay it twice and check one capture.
`--read-only` checks only what a standby can answer. Standard library only: it runs on the hosts too.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

SMOKE_EMAIL = "smoke-check@orderservice.invalid"


class SmokeFailure(Exception):
    pass


def _call(base_url: str, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"the service URL must be http(s), got {base_url[:40]!r}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        base_url.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except json.JSONDecodeError:
            return exc.code, {"raw": raw[:200].decode(errors="replace")}


class _Run:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.checks: list[dict[str, Any]] = []

    def expect(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"check": name, "ok": ok, "detail": detail})
        if not ok:
            raise SmokeFailure(f"{name}: {detail}")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return _call(self.base_url, method, path, body)


def _order_total_matches(order: dict[str, Any]) -> tuple[bool, str]:
    expected = sum(item["quantity"] * item["unit_price_cents"] for item in order["items"])
    return order["total_cents"] == expected, f"total {order['total_cents']}, lines sum to {expected}"


def run_smoke(base_url: str, *, read_only: bool = False) -> dict[str, Any]:
    """Run the journey; the report lists every check and whether the service passed."""
    started = time.monotonic()
    run = _Run(base_url)
    try:
        status, health = run.call("GET", "/health")
        run.expect("health", status == 200, f"HTTP {status}: {health}")
        status, page = run.call("GET", "/orders?limit=5")
        run.expect("list orders", status == 200 and isinstance(page, dict), f"HTTP {status}")
        for order in page["orders"]:
            ok, detail = _order_total_matches(order)
            run.expect(f"stored order {order['id']} total", ok, detail)
        if not read_only:
            _write_journey(run)
    except SmokeFailure:
        pass
    except (OSError, KeyError, TypeError, ValueError) as exc:
        run.checks.append({"check": "transport", "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
    return {
        "ok": all(c["ok"] for c in run.checks) and bool(run.checks),
        "url": base_url,
        "seconds": round(time.monotonic() - started, 3),
        "checks": run.checks,
    }


def _write_journey(run: _Run) -> None:
    status, user = run.call("POST", "/users", {"email": SMOKE_EMAIL, "name": "Smoke Check"})
    run.expect("create user", status in (200, 201), f"HTTP {status}: {user}")
    status, page = run.call("GET", "/products?in_stock=1&limit=100")
    run.expect("list products", status == 200, f"HTTP {status}")
    usable = [p for p in page["products"] if p["stock"] >= 3 and p["price_cents"] > 0]
    run.expect("products in stock", len(usable) >= 2, f"{len(usable)} products with stock >= 3")
    first, second = usable[0], usable[1]
    order_id = str(uuid.uuid4())
    lines = [{"product_id": first["id"], "quantity": 2}, {"product_id": second["id"], "quantity": 3}]
    body = {"order_id": order_id, "user_id": user["id"], "items": lines}
    status, order = run.call("POST", "/orders", body)
    run.expect("place order", status == 201, f"HTTP {status}: {order}")
    expected = 2 * first["price_cents"] + 3 * second["price_cents"]
    run.expect(
        "order total",
        order["total_cents"] == expected,
        f"total {order['total_cents']}, expected {expected} from the catalog prices",
    )
    status, replay = run.call("POST", "/orders", body)
    run.expect(
        "replay returns the same order", status == 200 and replay.get("id") == order_id, f"HTTP {status}"
    )
    status, fetched = run.call("GET", f"/orders/{order_id}")
    run.expect("read order back", status == 200 and len(fetched["items"]) == 2, f"HTTP {status}")
    ok, detail = _order_total_matches(fetched)
    run.expect("stored total equals its lines", ok, detail)
    status, stock_after = run.call("GET", f"/products/{first['id']}")
    run.expect(
        "stock decremented",
        status == 200 and stock_after["stock"] <= first["stock"] - 2,
        f"stock {stock_after.get('stock')} after {first['stock']} - 2",
    )
    status, payment = run.call("POST", f"/orders/{order_id}/pay")
    run.expect(
        "pay order", status == 201 and payment["amount_cents"] == expected, f"HTTP {status}: {payment}"
    )
    status, again = run.call("POST", f"/orders/{order_id}/pay")
    run.expect("payment is idempotent", status == 200 and again["id"] == payment["id"], f"HTTP {status}")
    status, paid = run.call("GET", f"/orders/{order_id}")
    run.expect("order is paid", status == 200 and paid["status"] == "paid", f"status {paid.get('status')}")
