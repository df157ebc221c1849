"""Prove every acknowledged order of a ledger exists exactly once in the database with its total.

`observe_orders` reads the orders the ledger names from the primary database (I/O); `check_ledger`
decides (pure): an acknowledged order (stored at once, or accepted as pending into the intake queue and
stored by its replay) is present, set aside for a person (absent from the books but
listed in a rollback's hand-over file: not lost, a person decides), lost (no row and in no list),
duplicated (more than one row with its id: only possible when a restore or carry-over broke the primary
key), mismatched (its total differs from the acknowledged one) or, for an acknowledged payment, unpaid
(the order is not `paid`). The check fails on lost orders and on damaged ones, never on hand-overs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recovery.drivers import db
from recovery.load.ledger import Ledger
from recovery.restore.handover import handed_over_since
from recovery.targets.model import Database, Target

MAX_EXAMPLES = 5
_BATCH = 5000


@dataclass(frozen=True)
class StoredOrder:
    order_id: str
    total_cents: int
    status: str


@dataclass(frozen=True)
class Finding:
    """One kind of finding: how many orders have it and every one of them, each with what was seen."""

    count: int
    examples: tuple[str, ...]  # all of them (the text summary shows the first MAX_EXAMPLES)


@dataclass(frozen=True)
class LedgerVerdict:
    acknowledged: int
    payments: int
    present: int
    set_aside: Finding  # "<order id> (<hand-over file>)"
    lost: Finding  # in the books under no id and in no hand-over file
    duplicated: Finding
    mismatched: Finding
    unpaid: Finding
    conflicting_acks: Finding
    pending: int = 0  # of the acknowledged: accepted-pending (202), stored only once the queue is replayed
    pending_present: int = 0

    @property
    def passed(self) -> bool:
        findings = (self.lost, self.duplicated, self.mismatched, self.unpaid, self.conflicting_acks)
        return not any(finding.count for finding in findings)

    def summary(self) -> str:
        if self.passed:
            aside = (
                f"; {self.set_aside.count} set aside for a person, none lost" if self.set_aside.count else ""
            )
            queued = (
                f"; {self.pending_present} of them were accepted as pending and replayed"
                if self.pending
                else ""
            )
            return (
                f"{self.present} of {self.acknowledged} acknowledged orders exist exactly once with their "
                f"acknowledged totals ({self.payments} acknowledged payments are paid){queued}{aside}"
            )
        parts = []
        for label, finding in (
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("with another total", self.mismatched),
            ("acknowledged as paid but not paid", self.unpaid),
            ("acknowledged twice with different totals", self.conflicting_acks),
        ):
            if finding.count:
                parts.append(f"{finding.count} {label} (e.g. {', '.join(finding.examples[:MAX_EXAMPLES])})")
        if self.set_aside.count:
            parts.append(f"{self.set_aside.count} set aside for a person (not lost)")
        if self.pending_present < self.pending:
            parts.append(
                f"{self.pending - self.pending_present} of the {self.pending} accepted as pending are not "
                "stored yet: replay the intake queue (`recovery intake replay`), then check again"
            )
        return f"of {self.acknowledged} acknowledged orders: {self.present} present; " + "; ".join(parts)


def _finding(examples: Sequence[str]) -> Finding:
    return Finding(len(examples), tuple(examples))


def check_ledger(
    ledger: Ledger, stored: Mapping[str, Sequence[StoredOrder]], handed_over: Mapping[str, Path] | None = None
) -> LedgerVerdict:
    """Compare the ledger with the rows found for its order ids and the orders handed over to a person
    (order id -> the file listing it). Pure."""
    handed_over = handed_over or {}
    set_aside: list[str] = []
    lost: list[str] = []
    duplicated: list[str] = []
    mismatched: list[str] = []
    for order in sorted(ledger.orders, key=lambda o: o.at):
        rows = stored.get(order.order_id, ())
        if not rows:
            if order.order_id in handed_over:
                set_aside.append(f"{order.order_id} ({handed_over[order.order_id]})")
            else:
                lost.append(order.order_id)
            continue
        if len(rows) > 1:
            duplicated.append(f"{order.order_id} ({len(rows)} rows)")
        # A pending order acknowledged without its total (202) can only be checked for existence.
        if order.total_cents is not None and any(row.total_cents != order.total_cents for row in rows):
            found = ", ".join(str(row.total_cents) for row in rows)
            mismatched.append(f"{order.order_id} (acknowledged {order.total_cents}, stored {found})")
    unpaid: list[str] = []
    for payment in sorted(ledger.payments, key=lambda p: p.at):
        rows = stored.get(payment.order_id, ())
        if rows and any(row.status != "paid" for row in rows):
            unpaid.append(f"{payment.order_id} (status {rows[0].status})")
        elif not rows and ledger.order(payment.order_id) is None:
            # A payment whose order was not in the ledger (its order ack was lost to a timeout) still
            # proves the order was accepted.
            if payment.order_id in handed_over:
                set_aside.append(f"{payment.order_id} ({handed_over[payment.order_id]})")
            else:
                lost.append(payment.order_id)
    return LedgerVerdict(
        acknowledged=len(ledger.orders),
        payments=len(ledger.payments),
        present=sum(1 for order in ledger.orders if stored.get(order.order_id)),
        set_aside=_finding(set_aside),
        lost=_finding(lost),
        duplicated=_finding(duplicated),
        mismatched=_finding(mismatched),
        unpaid=_finding(unpaid),
        conflicting_acks=_finding(list(ledger.conflicting_acks)),
        pending=len(ledger.pending),
        pending_present=sum(1 for order in ledger.pending if stored.get(order.order_id)),
    )


def ledger_order_ids(ledger: Ledger) -> list[str]:
    return sorted({o.order_id for o in ledger.orders} | {p.order_id for p in ledger.payments})


def observe_orders(database: Database, order_ids: Sequence[str]) -> dict[str, list[StoredOrder]]:
    """Every row of `orders` whose id is one of `order_ids` (in batches, one snapshot)."""
    found: dict[str, list[StoredOrder]] = {}
    with db.connect(database, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for start in range(0, len(order_ids), _BATCH):
            batch = list(order_ids[start : start + _BATCH])
            rows = conn.execute(
                "SELECT id::text, total_cents, status FROM orders WHERE id = ANY(%s::uuid[])", (batch,)
            ).fetchall()
            for row in rows:
                stored = StoredOrder(str(row[0]), int(str(row[1])), str(row[2]))
                found.setdefault(stored.order_id, []).append(stored)
        conn.rollback()
    return found


def ledger_started(ledger: Ledger) -> datetime | None:
    """When the ledger's first request was made (None for an empty ledger): hand-overs of runs that
    started since then can hold its orders."""
    moments = (
        [o.at for o in ledger.orders] + [p.at for p in ledger.payments] + [f.at for f in ledger.failures]
    )
    return datetime.fromtimestamp(min(moments), UTC) if moments else None


def verify_ledger(target: Target, ledger: Ledger) -> LedgerVerdict:
    """The ledger against the target's writer database and the hand-over files of the runs since the
    ledger's first request (I/O, then `check_ledger`)."""
    started = ledger_started(ledger)
    handed = handed_over_since(target.state_dir, started) if started else {}
    return check_ledger(ledger, observe_orders(target.writable.database, ledger_order_ids(ledger)), handed)
