"""The ledger: an append-only JSON-lines file of what the load generator saw acknowledged.

One line per event, each a JSON object with a `kind`:
  {"kind": "order", "order_id", "at", "status", "total_cents", "latency_ms"}
      an order the service acknowledged; `status` is `acknowledged` (201/200: stored) or `pending` (202:
      accepted and queued, to be stored later; its total may still be null). Ledgers written before the
      field existed read as `acknowledged`.
  {"kind": "payment", "order_id", "at", "amount_cents", "latency_ms"}  a payment the service acknowledged
  {"kind": "failure", "op", "at", "reason", "http_status", "latency_ms"}
      a request that was refused (an HTTP status that is not an acknowledgement) or failed (no answer:
      `http_status` null); every one is written with its time, so a report can give the window of errors
  {"kind": "summary", ...}                                             written once when the run stops
`at` is Unix time in seconds. Lines are written whole and fsync'd in batches, so a crash loses at most
the last batch and can leave at most one torn last line, which the reader reports and skips. Nothing
secret is ever written here: order ids, amounts and HTTP outcomes only.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from recovery.errors import UsageError

FSYNC_EVERY_LINES = 50
FSYNC_EVERY_SECONDS = 0.5


OrderStatus = Literal["acknowledged", "pending"]
ORDER_STATUSES: tuple[OrderStatus, ...] = ("acknowledged", "pending")


@dataclass(frozen=True)
class AckedOrder:
    order_id: str
    at: float
    total_cents: int | None  # None only for a pending order whose total the service did not give yet
    latency_ms: float
    status: OrderStatus = "acknowledged"


@dataclass(frozen=True)
class AckedPayment:
    order_id: str
    at: float
    amount_cents: int
    latency_ms: float


@dataclass(frozen=True)
class Failure:
    op: str
    at: float
    reason: str
    latency_ms: float
    http_status: int | None = None  # the refusal's status; None when no answer came


@dataclass(frozen=True)
class ErrorWindow:
    """When requests were refused or failed: from the first to the last, how many, of which kind."""

    first_at: float
    last_at: float
    failures: int
    by_op: tuple[tuple[str, int], ...]
    no_answer: int  # failures without an HTTP answer (refused connections, timeouts)

    @property
    def seconds(self) -> float:
        return round(self.last_at - self.first_at, 3)


def error_window(failures: Iterable[Failure]) -> ErrorWindow | None:
    """The window of errors of a run (None when every request was acknowledged). Pure."""
    seen = sorted(failures, key=lambda f: f.at)
    if not seen:
        return None
    ops: dict[str, int] = {}
    for failure in seen:
        ops[failure.op] = ops.get(failure.op, 0) + 1
    return ErrorWindow(
        first_at=seen[0].at,
        last_at=seen[-1].at,
        failures=len(seen),
        by_op=tuple(sorted(ops.items())),
        no_answer=sum(1 for f in seen if f.http_status is None),
    )


@dataclass(frozen=True)
class Ledger:
    """A ledger as read back: acknowledged orders (first acknowledgement per id) and payments, failures."""

    orders: tuple[AckedOrder, ...]
    payments: tuple[AckedPayment, ...]
    failures: tuple[Failure, ...]
    conflicting_acks: tuple[str, ...] = ()  # ids acknowledged twice with different totals
    torn_last_line: bool = False

    def order(self, order_id: str) -> AckedOrder | None:
        return next((o for o in self.orders if o.order_id == order_id), None)

    @property
    def pending(self) -> tuple[AckedOrder, ...]:
        """Orders acknowledged as accepted-pending (202), not yet known to be stored."""
        return tuple(o for o in self.orders if o.status == "pending")

    @property
    def error_window(self) -> ErrorWindow | None:
        return error_window(self.failures)


class LedgerWriter:
    """Append lines to a ledger file from many threads; fsync every FSYNC_EVERY_LINES or _SECONDS."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"cannot open the ledger {path} for appending ({exc.strerror}); give a writable --ledger path"
            ) from None
        self._lock = threading.Lock()
        self._unsynced = 0
        self._last_sync = time.monotonic()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock:
            self._file.write(line)
            self._unsynced += 1
            if (
                self._unsynced >= FSYNC_EVERY_LINES
                or time.monotonic() - self._last_sync >= FSYNC_EVERY_SECONDS
            ):
                self._sync()

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._unsynced = 0
        self._last_sync = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._sync()
                self._file.close()

    def order(
        self, order_id: str, total_cents: int | None, latency_ms: float, status: OrderStatus = "acknowledged"
    ) -> None:
        if total_cents is None and status != "pending":
            raise ValueError("only a pending order may be recorded without its total")
        self.append(
            _record("order", order_id=order_id, status=status, total_cents=total_cents, latency_ms=latency_ms)
        )

    def payment(self, order_id: str, amount_cents: int, latency_ms: float) -> None:
        self.append(_record("payment", order_id=order_id, amount_cents=amount_cents, latency_ms=latency_ms))

    def failure(self, op: str, reason: str, latency_ms: float, http_status: int | None = None) -> None:
        self.append(_record("failure", op=op, reason=reason, latency_ms=latency_ms, http_status=http_status))


def _record(kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "at": round(time.time(), 6), **fields}


Kind = Literal["order", "payment", "failure", "summary"]


@dataclass
class _Parsing:
    orders: dict[str, AckedOrder] = field(default_factory=dict)
    payments: dict[str, AckedPayment] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _field(doc: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = doc.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UsageError(f"{where}: field {key!r} must be {kind.__name__}; the ledger is damaged")
    return value


def parse_ledger(lines: Iterable[str], source: str = "ledger") -> Ledger:
    """Read ledger lines. Pure.

    A last line without its newline that is not valid JSON is a torn write (the writer died mid-line):
    it is skipped and reported. Any other malformed line is a damaged ledger: UsageError naming the line.
    """
    state = _Parsing()
    torn = False
    all_lines = list(lines)
    for number, raw in enumerate(all_lines, start=1):
        where = f"{source} line {number}"
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError:
            if number == len(all_lines) and not raw.endswith("\n"):
                torn = True
                continue
            raise UsageError(
                f"{where} is not JSON; the ledger is damaged (give the file load wrote)"
            ) from None
        if not isinstance(doc, dict):
            raise UsageError(f"{where} is not a JSON object; the ledger is damaged")
        _parse_line(doc, where, state)
    return Ledger(
        orders=tuple(state.orders.values()),
        payments=tuple(state.payments.values()),
        failures=tuple(state.failures),
        conflicting_acks=tuple(state.conflicts),
        torn_last_line=torn,
    )


def _optional_int(doc: dict[str, Any], key: str, where: str) -> int | None:
    return None if doc.get(key) is None else int(_field(doc, key, int, where))


def _order_id(doc: dict[str, Any], where: str) -> str:
    value = _field(doc, "order_id", str, where)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise UsageError(f"{where}: order_id {value!r} is not a UUID; the ledger is damaged") from None


def _parse_line(doc: dict[str, Any], where: str, state: _Parsing) -> None:
    kind = doc.get("kind")
    if kind == "order":
        status = doc.get("status", "acknowledged")
        if status not in ORDER_STATUSES:
            raise UsageError(f"{where}: order status {status!r} is not one of {', '.join(ORDER_STATUSES)}")
        pending_without_total = status == "pending" and doc.get("total_cents") is None
        order = AckedOrder(
            order_id=_order_id(doc, where),
            at=_field(doc, "at", float, where),
            total_cents=None if pending_without_total else _field(doc, "total_cents", int, where),
            latency_ms=_field(doc, "latency_ms", float, where),
            status=status,
        )
        seen = state.orders.get(order.order_id)
        if seen is None:
            state.orders[order.order_id] = order
        elif seen.total_cents != order.total_cents and order.order_id not in state.conflicts:
            # A replay is acknowledged with the stored order: a different total is itself a finding.
            state.conflicts.append(order.order_id)
    elif kind == "payment":
        payment = AckedPayment(
            order_id=_order_id(doc, where),
            at=_field(doc, "at", float, where),
            amount_cents=_field(doc, "amount_cents", int, where),
            latency_ms=_field(doc, "latency_ms", float, where),
        )
        state.payments.setdefault(payment.order_id, payment)
    elif kind == "failure":
        state.failures.append(
            Failure(
                op=_field(doc, "op", str, where),
                at=_field(doc, "at", float, where),
                reason=_field(doc, "reason", str, where),
                latency_ms=_field(doc, "latency_ms", float, where),
                http_status=_optional_int(doc, "http_status", where),
            )
        )
    elif kind != "summary":
        raise UsageError(f"{where}: unknown kind {kind!r}; the ledger is damaged or not a ledger")


def read_ledger(path: Path) -> Ledger:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return parse_ledger(handle, source=str(path))
    except FileNotFoundError:
        raise UsageError(f"no ledger at {path}; give the file `recovery load --ledger` wrote") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read the ledger {path} ({type(exc).__name__}); give a readable one"
        ) from None
