"""Orders entered from a CSV file: each bad row reported by line, no half order, a rerun queues nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from recovery.errors import UsageError
from recovery.intake.csv_orders import Catalog, Product, parse_csv_orders
from recovery.intake.record import from_message, order_id_for

NOW = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
CATALOG = Catalog(
    users={"ann@example.test": 7, "bob@example.test": 8},
    products={"SKU-1": Product(101, 1299), "SKU-2": Product(102, 450)},
)
HEADER = "order_ref,channel,user_email,sku,quantity,unit_price_cents,received_at\n"


def parse(body: str | bytes, already: frozenset = frozenset()):  # type: ignore[no-untyped-def,type-arg]
    data = body.encode() if isinstance(body, str) else body
    return parse_csv_orders(data, "orders.csv", CATALOG, NOW, already)


def test_rows_of_one_reference_form_one_order_with_a_stable_id() -> None:
    result = parse(
        HEADER
        + "T-1,phone,Ann@example.test,SKU-1,2,1299,2026-12-06T20:10:00+00:00\n"
        + "T-1,phone,ann@example.test,SKU-2,1,450,2026-12-06T20:10:00+00:00\n"
        + "M-9,email,bob@example.test,SKU-2,3,450,2026-12-06T20:30:00Z\n"
    )
    assert result.problems == ()
    first, second = result.orders
    assert first.order_id == order_id_for("phone", "T-1") and first.user_id == 7
    assert [(i.product_id, i.quantity) for i in first.items] == [(101, 2), (102, 1)]
    assert first.reference == "orders.csv line 2"
    assert second.channel == "email" and second.user_id == 8
    assert from_message(first.to_message()) == first


def test_each_bad_row_is_reported_by_line_and_its_order_is_not_half_queued() -> None:
    result = parse(
        HEADER
        + "T-1,phone,ann@example.test,SKU-1,2,1299,2026-12-06T20:10:00Z\n"  # good line of a bad order
        + "T-1,phone,ann@example.test,SKU-404,1,450,2026-12-06T20:10:00Z\n"
        + "T-2,phone,ann@example.test,SKU-2,-1,450,2026-12-06T20:10:00Z\n"
        + "T-3,phone,nobody@example.test,SKU-2,1,450,2026-12-06T20:10:00Z\n"
        + "T-4,fax,ann@example.test,SKU-2,1,450,2026-12-06T20:10:00Z\n"
        + "T-5,phone,ann@example.test,SKU-2,1,999,2026-12-06T20:10:00Z\n"
        + "T-6,phone,ann@example.test,SKU-2,1,450,2027-01-01T00:00:00Z\n"
        + "T-7,phone,ann@example.test,SKU-2,1,450,2026-12-06 20:10\n"
        + "T-8,phone,bob@example.test,SKU-2,1,450,2026-12-06T20:10:00Z\n"
    )
    assert [str(p) for p in result.problems] == [
        "line 2: not queued: order T-1 has a bad line",
        "line 3: unknown product SKU 'SKU-404'",
        "line 4: quantity -1 is out of range (1-10000)",
        "line 5: unknown user e-mail 'nobody@example.test'",
        "line 6: channel 'fax' is not one of phone, email",
        "line 7: unit price 999 of SKU-2 differs from the catalog's 450",
        "line 8: received_at 2027-01-01T00:00:00Z is in the future",
        "line 9: received_at '2026-12-06 20:10' has no time zone (add Z or +01:00)",
    ]
    assert [o.order_id for o in result.orders] == [order_id_for("phone", "T-8")]


def test_a_line_that_is_not_utf8_is_reported_and_the_others_go_through() -> None:
    good = b"T-1,phone,ann@example.test,SKU-1,1,1299,2026-12-06T20:10:00Z\n"
    bad = b"T-2,phone,ann@example.test,SKU-\xff,1,1299,2026-12-06T20:10:00Z\n"
    result = parse(HEADER.encode() + good + bad)
    assert [str(p) for p in result.problems] == ["line 3: not UTF-8 text; save the file as UTF-8"]
    assert len(result.orders) == 1


def test_a_missing_column_refuses_the_whole_file() -> None:
    with pytest.raises(UsageError) as raised:
        parse("order_ref,channel,user_email,sku,unit_price_cents,received_at\n")
    assert raised.value.message == (
        "orders.csv: missing column quantity; the header must name order_ref, channel, user_email, sku, "
        "quantity, unit_price_cents, received_at"
    )


def test_a_second_run_of_the_same_file_queues_nothing_twice() -> None:
    body = HEADER + "T-1,phone,ann@example.test,SKU-1,1,1299,2026-12-06T20:10:00Z\n"
    first = parse(body)
    second = parse(body, frozenset(o.order_id for o in first.orders))
    assert second.orders == () and second.already == (first.orders[0].order_id,)


def test_a_row_with_too_few_fields_is_reported() -> None:
    result = parse(HEADER + "T-1,phone,ann@example.test\n")
    assert [str(p) for p in result.problems] == ["line 2: expected 7 fields"]
