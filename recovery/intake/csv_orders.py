"""Orders taken by phone or e-mail while the system was down, entered in bulk from a CSV file. Pure.

One row per order line; rows sharing a channel and an order reference form one order. Every row is
checked against a snapshot of the catalog (users by e-mail, products by SKU with their prices): each bad
row is reported with its line number and why, and an order with any bad row is not queued at all (never
half an order). Ids are derived from the channel and the reference (`order_id_for`), so a second run of
the same file names the same orders and `already` lets the caller skip what it queued before.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime

from recovery.errors import UsageError
from recovery.intake.record import MAX_LINES, Channel, IntakeItem, IntakeOrder, order_id_for

COLUMNS = ("order_ref", "channel", "user_email", "sku", "quantity", "unit_price_cents", "received_at")
CHANNELS: tuple[Channel, ...] = ("phone", "email")
MAX_QUANTITY = 10_000


@dataclass(frozen=True)
class Product:
    product_id: int
    price_cents: int


@dataclass(frozen=True)
class Catalog:
    """What rows are checked against: user ids by e-mail, products by SKU."""

    users: Mapping[str, int]
    products: Mapping[str, Product]


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class CsvOrders:
    orders: tuple[IntakeOrder, ...]  # complete, valid and not queued before
    problems: tuple[RowProblem, ...]
    already: tuple[uuid.UUID, ...]  # valid orders a previous run queued: skipped


@dataclass
class _Draft:
    channel: Channel
    reference: str
    first_line: int
    user_id: int | None = None
    received_at: datetime | None = None
    items: list[IntakeItem] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: bool = False


def _positive(text: str, what: str, highest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a whole number") from None
    if not 0 < value <= highest:
        raise ValueError(f"{what} {value} is out of range (1-{highest})")
    return value


def _when(text: str, now: datetime) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"received_at {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"received_at {text!r} has no time zone (add Z or +01:00)")
    if moment > now:
        raise ValueError(f"received_at {text} is in the future")
    return moment


def _check_row(row: Mapping[str, str], catalog: Catalog, now: datetime) -> tuple[int, IntakeItem, datetime]:
    """The row's user, line and time; ValueError with the reason when any field is wrong."""
    email = row["user_email"].strip().lower()
    user_id = catalog.users.get(email)
    if user_id is None:
        raise ValueError(f"unknown user e-mail {email!r}")
    product = catalog.products.get(row["sku"].strip())
    if product is None:
        raise ValueError(f"unknown product SKU {row['sku'].strip()!r}")
    quantity = _positive(row["quantity"].strip(), "quantity", MAX_QUANTITY)
    try:
        price = int(row["unit_price_cents"].strip())
    except ValueError:
        raise ValueError(f"unit_price_cents {row['unit_price_cents']!r} is not a whole number") from None
    if price != product.price_cents:
        raise ValueError(
            f"unit price {price} of {row['sku'].strip()} differs from the catalog's {product.price_cents}"
        )
    return (
        user_id,
        IntakeItem(product_id=product.product_id, quantity=quantity),
        _when(row["received_at"].strip(), now),
    )


def _rows(data: bytes, source: str) -> tuple[list[tuple[int, dict[str, str]]], list[RowProblem]]:
    # surrogateescape keeps undecodable bytes visible per row, so one bad line does not refuse the file.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise UsageError(
            f"{source}: missing column {missing[0]}; the header must name {', '.join(COLUMNS)}",
            code="intake.csv_columns",
        )
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[RowProblem] = []
    for row in reader:
        line = reader.line_num
        if None in row or any(value is None for value in row.values()):
            problems.append(RowProblem(line, f"expected {len(header)} fields"))
            continue
        values = {key: value for key, value in row.items() if key is not None}
        if any(_undecodable(value) for value in values.values()):
            problems.append(RowProblem(line, "not UTF-8 text; save the file as UTF-8"))
            continue
        if not any(value.strip() for value in values.values()):
            continue  # a blank line
        rows.append((line, values))
    return rows, problems


def _undecodable(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def parse_csv_orders(
    data: bytes, source: str, catalog: Catalog, now: datetime, already: Set[uuid.UUID] = frozenset()
) -> CsvOrders:
    rows, problems = _rows(data, source)
    drafts: dict[tuple[str, str], _Draft] = {}
    for line, row in rows:
        channel = row["channel"].strip()
        reference = row["order_ref"].strip()
        if channel not in CHANNELS:
            problems.append(RowProblem(line, f"channel {channel!r} is not one of {', '.join(CHANNELS)}"))
            continue
        if not reference:
            problems.append(RowProblem(line, "order_ref is empty"))
            continue
        draft = drafts.setdefault((channel, reference), _Draft(channel, reference, line))
        draft.lines.append(line)
        try:
            user_id, item, received_at = _check_row(row, catalog, now)
            if draft.user_id is not None and (user_id, received_at) != (draft.user_id, draft.received_at):
                raise ValueError(
                    f"order {reference} has another user or received_at on line {draft.first_line}"
                )
            if len(draft.items) >= MAX_LINES:
                raise ValueError(f"order {reference} has more than {MAX_LINES} lines")
        except ValueError as exc:
            problems.append(RowProblem(line, str(exc)))
            draft.bad = True
            continue
        draft.user_id, draft.received_at = user_id, received_at
        draft.items.append(item)
    orders: list[IntakeOrder] = []
    skipped: list[uuid.UUID] = []
    for draft in drafts.values():
        if draft.bad or draft.user_id is None or draft.received_at is None:
            for line in draft.lines:
                if not any(p.line == line for p in problems):
                    problems.append(RowProblem(line, f"not queued: order {draft.reference} has a bad line"))
            continue
        order_id = order_id_for(draft.channel, draft.reference)
        if order_id in already:
            skipped.append(order_id)
            continue
        orders.append(
            IntakeOrder(
                order_id=order_id,
                user_id=draft.user_id,
                items=tuple(draft.items),
                received_at=draft.received_at,
                channel=draft.channel,
                reference=f"{source} line {draft.first_line}",
            )
        )
    return CsvOrders(tuple(orders), tuple(sorted(problems, key=lambda p: p.line)), tuple(skipped))
