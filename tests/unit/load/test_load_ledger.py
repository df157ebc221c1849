"""The ledger: writing, reading back (torn last line, damage), percentiles, and the ledger check."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from recovery.errors import UsageError
from recovery.load.ledger import Failure, LedgerWriter, error_window, parse_ledger, read_ledger
from recovery.load.ledger_check import StoredOrder, check_ledger, ledger_order_ids
from recovery.load.stats import percentile, summarize_latencies

A, B, C = (str(uuid.UUID(int=i)) for i in (1, 2, 3))


def line(**doc: object) -> str:
    return json.dumps(doc) + "\n"


def order(order_id: str, total: int, at: float = 1.0) -> str:
    return line(kind="order", order_id=order_id, at=at, total_cents=total, latency_ms=5.0)


def payment(order_id: str, amount: int) -> str:
    return line(kind="payment", order_id=order_id, at=2.0, amount_cents=amount, latency_ms=4)


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [([], 95, None), ([7.0], 95, 7.0), ([1, 2, 3, 4], 50, 2), ([float(i) for i in range(1, 101)], 95, 95.0)],
)
def test_percentile_is_the_nearest_rank(values: list[float], pct: float, expected: float | None) -> None:
    assert percentile(values, pct) == expected


def test_latency_summary_and_bad_percentiles() -> None:
    summary = summarize_latencies([10.0, 30.0, 20.0])
    assert (summary.count, summary.p50_ms, summary.p95_ms, summary.max_ms) == (3, 20.0, 30.0, 30.0)
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 0)


def test_written_lines_read_back_with_orders_payments_and_failures(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.jsonl"
    writer = LedgerWriter(path)
    threads = [
        threading.Thread(target=writer.order, args=(str(uuid.UUID(int=i)), i * 100, 3.5))
        for i in range(1, 121)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.payment(str(uuid.UUID(int=7)), 700, 2.0)
    writer.failure("order", "HTTP 503 read_only", 1.0)
    writer.close()
    ledger = read_ledger(path)
    assert len(ledger.orders) == 120
    assert ledger.order(str(uuid.UUID(int=7))) is not None
    assert {o.total_cents for o in ledger.orders} == {i * 100 for i in range(1, 121)}
    assert [(p.order_id, p.amount_cents) for p in ledger.payments] == [(str(uuid.UUID(int=7)), 700)]
    assert [(f.op, f.reason) for f in ledger.failures] == [("order", "HTTP 503 read_only")]
    assert not ledger.torn_last_line


def test_a_torn_last_line_is_skipped_and_reported() -> None:
    ledger = parse_ledger([order(A, 100), '{"kind": "order", "order_id": "'])
    assert [o.order_id for o in ledger.orders] == [A]
    assert ledger.torn_last_line


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (['{"kind": "order"\n', order(A, 1)], "ledger line 1 is not JSON"),
        (
            [line(kind="order", order_id="nope", at=1, total_cents=1, latency_ms=1)],
            "order_id 'nope' is not a UUID",
        ),
        (
            [line(kind="order", order_id=A, at=1, total_cents="9", latency_ms=1)],
            "field 'total_cents' must be int",
        ),
        ([line(kind="refund", order_id=A)], "unknown kind 'refund'"),
        (["[1, 2]\n"], "ledger line 1 is not a JSON object"),
    ],
)
def test_a_damaged_ledger_is_refused_naming_the_line(lines: list[str], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_ledger(lines)


def test_a_missing_ledger_file_says_which_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no ledger at"):
        read_ledger(tmp_path / "absent.jsonl")


def test_an_order_acknowledged_twice_with_different_totals_is_a_finding() -> None:
    ledger = parse_ledger([order(A, 100), order(A, 100), order(B, 5), order(B, 6)])
    assert len(ledger.orders) == 2
    assert ledger.conflicting_acks == (B,)


def stored(order_id: str, total: int, status: str = "placed") -> StoredOrder:
    return StoredOrder(order_id, total, status)


def test_the_ledger_check_passes_when_every_ack_is_stored_once_with_its_total() -> None:
    ledger = parse_ledger([order(A, 100), order(B, 200), payment(B, 200)])
    verdict = check_ledger(ledger, {A: [stored(A, 100)], B: [stored(B, 200, "paid")]})
    assert verdict.passed
    assert verdict.summary() == (
        "2 of 2 acknowledged orders exist exactly once with their acknowledged totals "
        "(1 acknowledged payments are paid)"
    )
    assert ledger_order_ids(ledger) == sorted([A, B])


def test_the_ledger_check_counts_and_names_missing_duplicated_mismatched_and_unpaid() -> None:
    ledger = parse_ledger([order(A, 100, at=1), order(B, 200, at=2), order(C, 300, at=3), payment(C, 300)])
    verdict = check_ledger(ledger, {B: [stored(B, 200), stored(B, 200)], C: [stored(C, 299)]})
    assert not verdict.passed
    assert (verdict.lost.count, verdict.lost.examples) == (1, (A,))
    assert verdict.present == 2
    assert verdict.duplicated.examples == (f"{B} (2 rows)",)
    assert verdict.mismatched.examples == (f"{C} (acknowledged 300, stored 299)",)
    assert verdict.unpaid.examples == (f"{C} (status placed)",)
    assert verdict.summary().startswith(
        f"of 3 acknowledged orders: 2 present; 1 lost (e.g. {A}); 1 duplicated"
    )


def test_a_paid_order_whose_order_ack_was_lost_must_still_exist() -> None:
    verdict = check_ledger(parse_ledger([payment(A, 100)]), {})
    assert verdict.lost.examples == (A,)


def test_orders_handed_to_a_person_are_set_aside_not_lost_and_every_id_is_listed(tmp_path: Path) -> None:
    ids = [f"{n:08d}-7a53-4a0b-9d31-3f0a9d3c2c11" for n in range(8)]
    ledger = parse_ledger([order(i, 100, at=float(n)) for n, i in enumerate(ids)])
    handed = {i: tmp_path / "needs-a-person.json" for i in ids[:6]}
    verdict = check_ledger(ledger, {ids[6]: [stored(ids[6], 100)]}, handed)
    assert not verdict.passed  # ids[7] is in the books under no id and in no list: lost
    assert verdict.present == 1 and verdict.lost.examples == (ids[7],)
    assert verdict.set_aside.count == 6 and len(verdict.set_aside.examples) == 6  # all, not five
    assert verdict.set_aside.examples[0] == f"{ids[0]} ({tmp_path / 'needs-a-person.json'})"
    assert "6 set aside for a person (not lost)" in verdict.summary()
    handed[ids[7]] = tmp_path / "needs-a-person.json"
    passed = check_ledger(ledger, {ids[6]: [stored(ids[6], 100)]}, handed)
    assert passed.passed
    assert passed.summary().endswith("7 set aside for a person, none lost")


def test_pending_orders_and_refusals_round_trip_with_their_status(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    writer = LedgerWriter(path)
    writer.order("0b5c3f5e-7a53-4a0b-9d31-3f0a9d3c2c11", 1200, 10.0)
    writer.order("1b5c3f5e-7a53-4a0b-9d31-3f0a9d3c2c11", None, 11.0, "pending")
    writer.failure("order", "HTTP 503 read_only", 5.0, 503)
    writer.failure("payment", "no answer (ConnectionRefusedError)", 1.0)
    writer.close()
    ledger = read_ledger(path)
    assert [(o.status, o.total_cents) for o in ledger.orders] == [("acknowledged", 1200), ("pending", None)]
    assert [o.order_id[:2] for o in ledger.pending] == ["1b"]
    assert [(f.op, f.http_status) for f in ledger.failures] == [("order", 503), ("payment", None)]
    window = ledger.error_window
    assert window is not None
    assert (window.failures, window.no_answer, window.by_op) == (2, 1, (("order", 1), ("payment", 1)))
    assert window.first_at == ledger.failures[0].at and window.last_at == ledger.failures[1].at


def test_an_acknowledged_order_needs_its_total_and_a_status_must_be_known() -> None:
    with pytest.raises(UsageError, match="total_cents"):
        parse_ledger(
            [
                '{"kind":"order","order_id":"0b5c3f5e-7a53-4a0b-9d31-3f0a9d3c2c11","at":1.0,'
                '"status":"acknowledged","total_cents":null,"latency_ms":1.0}\n'
            ]
        )
    with pytest.raises(UsageError, match="status 'queued'"):
        parse_ledger(
            [
                '{"kind":"order","order_id":"0b5c3f5e-7a53-4a0b-9d31-3f0a9d3c2c11","at":1.0,'
                '"status":"queued","total_cents":1,"latency_ms":1.0}\n'
            ]
        )
    old = parse_ledger(
        [
            '{"kind":"order","order_id":"0b5c3f5e-7a53-4a0b-9d31-3f0a9d3c2c11","at":1.0,'
            '"total_cents":5,"latency_ms":1.0}\n'
        ]
    )
    assert old.orders[0].status == "acknowledged"  # ledgers written before the field existed
    assert old.error_window is None


def test_the_error_window_is_ordered_by_time_whatever_the_write_order() -> None:
    failures = [Failure("order", 30.0, "HTTP 503", 1.0, 503), Failure("order", 10.0, "no answer", 1.0)]
    window = error_window(failures)
    assert window is not None and (window.first_at, window.last_at, window.seconds) == (10.0, 30.0, 20.0)


def pending(order_id: str, at: float = 1.0) -> str:
    return line(kind="order", order_id=order_id, at=at, status="pending", total_cents=None, latency_ms=5.0)


def test_pending_orders_pass_once_replayed_and_fail_with_the_replay_to_run_before() -> None:
    ledger = parse_ledger([order(A, 100), pending(B), pending(C)])
    before = check_ledger(ledger, {A: [stored(A, 100)], B: [stored(B, 450)]})
    assert not before.passed and before.lost.examples == (C,)
    assert (before.pending, before.pending_present) == (2, 1)
    assert "1 of the 2 accepted as pending are not stored yet: replay the intake queue" in before.summary()
    after = check_ledger(ledger, {A: [stored(A, 100)], B: [stored(B, 450)], C: [stored(C, 90)]})
    assert after.passed and (after.pending, after.pending_present) == (2, 2)
    assert after.summary().endswith("2 of them were accepted as pending and replayed")
    twice = check_ledger(
        ledger, {A: [stored(A, 100)], B: [stored(B, 450), stored(B, 450)], C: [stored(C, 9)]}
    )
    assert not twice.passed and twice.duplicated.examples == (f"{B} (2 rows)",)
