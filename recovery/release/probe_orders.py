"""The toolkit's own probe orders, and the sweep that leaves none of them in the shop's books.

The gates' latency probes and the smoke test place real orders through the API, as users of the reserved
domain `order-recovery.invalid` (RFC 2606: never a customer's address). Each probe removes its order
through the API right after it placed it (`DELETE /orders/{id}`, which gives the stock back). A release
under test may fail that request, so the gates also sweep the database when their watch ends, before any
rollback reads live rows to carry them over: every order of a probe user goes, with its stock given back,
its payments, items and events, in one transaction. Only the two probe users' orders: the load
generator's user lives in the same domain, and its orders are the ones a drill must keep. The probe
users themselves stay (one row each, reused by the next run, with no order).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from recovery.verify.smoke import SMOKE_USER_EMAIL

PROBE_EMAIL_DOMAIN = "order-recovery.invalid"
GATE_PROBE_EMAIL = f"gate-probe@{PROBE_EMAIL_DOMAIN}"
# The probe users, by name: the load generator (load-generator@ in the same domain) places the orders a
# drill's ledger proves were kept, and the sweep must never touch them.
PROBE_EMAILS: tuple[str, ...] = (GATE_PROBE_EMAIL, SMOKE_USER_EMAIL)


@dataclass(frozen=True)
class ProbeSweep:
    """What one sweep removed."""

    orders: int
    stock_returned: int  # units put back on the shelf
    payments: int
    events: int


# One statement, so the sweep is all or nothing and sees one snapshot: every part reads the rows as they
# were when it started (the stock is summed from items deleted by the same statement), and the foreign
# keys are checked when the whole statement is done.
_SWEEP = """
WITH probe AS (
    SELECT o.id FROM orders o JOIN users u ON u.id = o.user_id
    WHERE u.email = ANY(%(emails)s)
    FOR UPDATE OF o
), units AS (
    SELECT i.product_id, sum(i.quantity) AS units FROM order_items i
    WHERE i.order_id IN (SELECT id FROM probe) GROUP BY i.product_id
), restocked AS (
    UPDATE products p SET stock = p.stock + units.units FROM units WHERE p.id = units.product_id
    RETURNING units.units
), gone_events AS (
    DELETE FROM events WHERE subject IN (SELECT id::text FROM probe) RETURNING 1
), gone_payments AS (
    DELETE FROM transactions WHERE order_id IN (SELECT id FROM probe) RETURNING 1
), gone_items AS (
    DELETE FROM order_items WHERE order_id IN (SELECT id FROM probe) RETURNING 1
), gone_orders AS (
    DELETE FROM orders WHERE id IN (SELECT id FROM probe) RETURNING 1
)
SELECT (SELECT count(*) FROM gone_orders), (SELECT coalesce(sum(units), 0) FROM restocked),
       (SELECT count(*) FROM gone_payments), (SELECT count(*) FROM gone_events)
"""


def sweep_probe_orders(conn: psycopg.Connection[tuple[object, ...]]) -> ProbeSweep:
    """Remove every order of the probe users (PROBE_EMAILS) from the database `conn` is connected to; stock
    goes back."""
    with conn.transaction():
        row = conn.execute(_SWEEP, {"emails": list(PROBE_EMAILS)}).fetchone()
    assert row is not None
    orders, units, payments, events = (int(str(value)) for value in row)
    return ProbeSweep(orders=orders, stock_returned=units, payments=payments, events=events)
