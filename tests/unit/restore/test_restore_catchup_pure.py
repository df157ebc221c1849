"""The pure parts of the catch-up: which rows a snapshot may not have seen, the SQL, the decisions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from target_files import unit_target as target

from recovery.engine.events import Event
from recovery.engine.model import RunContext, StepOutputs
from recovery.errors import ExitCode, ExternalFailure, PreconditionFailed, VerificationFailed
from recovery.restore.catchup import (
    ForeignKey,
    SnapshotBound,
    delete_statement,
    needs_deletes,
    reference_refusal,
    table_unchanged,
    upsert_statement,
)
from recovery.restore.rows import SequencePosition, TableShape, sequence_behind
from recovery.runbooks import restore as restore_runbook_module
from recovery.runbooks.restore import restore_runbook


def catchup_step(ctx: RunContext) -> Any:
    """The restore runbook's catch-up step, run on its own (the public way in: the runbook's steps)."""
    runbook = restore_runbook(ctx.target, ctx.params)
    return next(step for step in runbook.steps if step.name == "catch-up-live").run(ctx)


TWO_32 = 2**32


def test_snapshot_text_is_parsed_and_malformed_text_refused() -> None:
    bound = SnapshotBound.parse("748:752:748,750")
    assert (bound.xmin, bound.xmax, bound.xip) == (748, 752, (748, 750))
    assert SnapshotBound.parse("10:10:").xip == ()
    for text in ("", "10:11", "a:b:", "10:11:1,,2", "10:11:1;drop"):
        with pytest.raises(PreconditionFailed, match="not pg_current_snapshot") as caught:
            SnapshotBound.parse(text)
        assert caught.value.exit_code == ExitCode.REFUSED


def test_rows_from_the_snapshots_xmin_on_are_taken_older_ones_not() -> None:
    bound = SnapshotBound.parse("1000:1005:1000,1003")
    assert bound.may_be_new(1000)  # running at the snapshot
    assert bound.may_be_new(1001)  # committed before it: taken anyway, upserted with equal values
    assert bound.may_be_new(1005) and bound.may_be_new(2_000_000)  # after it
    assert not bound.may_be_new(999) and not bound.may_be_new(3)
    # Half the id space ahead is "after"; further ahead is a row from before a wraparound.
    assert bound.may_be_new(1000 + 2**31 - 1)
    assert not bound.may_be_new(1000 + 2**31)


def test_the_64_bit_snapshot_is_compared_in_32_bits_across_a_wraparound() -> None:
    # Epoch 3, just before the 32-bit counter wraps: rows written after the wrap have small xmins.
    xmin = 3 * TWO_32 + TWO_32 - 10
    bound = SnapshotBound.parse(f"{xmin}:{xmin + 2}:")
    assert bound.bound32 == TWO_32 - 10
    assert bound.may_be_new(TWO_32 - 10) and bound.may_be_new(TWO_32 - 1)
    assert bound.may_be_new(3) and bound.may_be_new(500)  # after the wrap
    assert not bound.may_be_new(TWO_32 - 11) and not bound.may_be_new(2**31)


def test_the_row_filter_is_the_same_arithmetic_in_sql() -> None:
    bound = SnapshotBound.parse(f"{5 * TWO_32 + 77}:{5 * TWO_32 + 80}:")
    text = bound.row_filter().as_string(None)
    assert text == "((xmin::text::bigint - 77) & 4294967295) < 2147483648"


SHAPE = TableShape("users", ("id", "email", "name", "created_at"), ("id",), identity_always=False)


def test_the_upsert_updates_by_primary_key_and_skips_equal_rows() -> None:
    text = upsert_statement(SHAPE, "catch_up_rows_users").as_string(None)
    assert text == (
        'INSERT INTO "public"."users" AS target ("id", "email", "name", "created_at") SELECT "id", "email", '
        '"name", "created_at" FROM "catch_up_rows_users" ON CONFLICT ("id") DO UPDATE SET ("email", '
        '"name", "created_at") = ROW("excluded"."email", "excluded"."name", "excluded"."created_at") WHERE '
        'ROW("target"."email", "target"."name", "target"."created_at")::text IS DISTINCT FROM '
        'ROW("excluded"."email", "excluded"."name", "excluded"."created_at")::text'
    )


def test_the_upsert_overrides_an_always_identity_and_a_key_only_table_does_nothing() -> None:
    always = TableShape("events", ("id", "kind"), ("id",), identity_always=True)
    assert "OVERRIDING SYSTEM VALUE SELECT" in upsert_statement(always, "t").as_string(None)
    pairs = TableShape("tags", ("a", "b"), ("a", "b"), identity_always=False)
    assert upsert_statement(pairs, "t").as_string(None).endswith('ON CONFLICT ("a", "b") DO NOTHING')


def test_the_delete_keeps_every_key_live_still_has() -> None:
    shape = TableShape("order_items", ("order_id", "line_no", "qty"), ("order_id", "line_no"), False)
    assert delete_statement(shape, "k").as_string(None) == (
        'DELETE FROM "public"."order_items" AS target WHERE NOT EXISTS (SELECT 1 FROM "k" AS live_key '
        'WHERE live_key."order_id" = target."order_id" AND live_key."line_no" = target."line_no")'
    )


def test_a_table_without_new_rows_and_with_live_s_count_is_unchanged() -> None:
    assert table_unchanged(0, 10, 10)
    assert not table_unchanged(1, 10, 10)  # an update, or an insert with a delete
    assert not table_unchanged(0, 9, 10)  # a delete
    assert needs_deletes(11, 10) and not needs_deletes(10, 10)


def test_sequences_only_ever_move_forward() -> None:
    live = SequencePosition(120, True, 1)
    assert sequence_behind(SequencePosition(100, True, 1), live)
    assert not sequence_behind(SequencePosition(120, True, 1), live)
    assert not sequence_behind(SequencePosition(121, True, 1), live)  # the copy handed out one more
    # A fresh sequence (is_called false) has handed out nothing yet.
    assert sequence_behind(SequencePosition(120, False, 1), live)
    assert not sequence_behind(SequencePosition(121, False, 1), live)
    assert sequence_behind(SequencePosition(-5, True, -1), SequencePosition(-9, True, -1))


def test_a_broken_reference_names_table_rows_and_what_to_do() -> None:
    key = ForeignKey("transactions_order_id_fkey", "transactions", ("order_id",), "orders", ("id",))
    text = reference_refusal(key, 2, deleting=False)
    assert text.startswith("catch-up of transactions: 2 transactions rows written to live")
    assert "reference orders rows the restored copy does not have" in text
    assert "restore the transactions domain too" in text
    user_key = ForeignKey("orders_user_id_fkey", "orders", ("user_id",), "users", ("id",))
    one = reference_refusal(user_key, 1, deleting=True)
    assert one.startswith("catch-up of users: 1 users row deleted from live during the restore is still")
    assert "restore the users domain too" in one
    uncounted = reference_refusal(user_key, None, deleting=False)
    assert "restore the orders and users domains together" in uncounted
    assert all("\n" not in line for line in (text, one, uncounted))


# --- the runbook step: skips, and what a failure leaves behind ------------------------------------------


class FakeAdmin:
    """The maintenance connection's answer: the scratch copy exists, nothing was swapped in yet."""

    def __enter__(self) -> FakeAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str, params: object = None) -> FakeAdmin:
        return self

    def fetchone(self) -> tuple[int, int]:
        return (1, 0)


def step_context(tmp_path: Path, restored: dict[str, Any], events: list[Event]) -> RunContext:
    return RunContext(
        target(tmp_path),
        "run-1",
        "restore",
        "catch-up-live",
        {"domains": ["orders", "transactions"], "restore_id": "r1", "at": None, "point": None},
        StepOutputs({"restore-beside": restored}),
        events.append,
    )


BESIDE = {"live_tables": ["users", "products", "events"], "live_snapshot": "700:705:702"}


def test_the_step_skips_saying_why_when_there_is_nothing_to_catch_up(tmp_path: Path) -> None:
    events: list[Event] = []
    whole = catchup_step(step_context(tmp_path, {"live_tables": [], "live_snapshot": None}, events))
    assert "every domain came from its backup" in str(whole["skipped"])
    old = catchup_step(step_context(tmp_path, {"live_tables": ["users"], "live_snapshot": None}, events))
    assert "PostgreSQL before 13" in str(old["skipped"])
    # A run journaled before the catch-up existed has neither key: skipped too, not an error.
    assert "skipped" in catchup_step(step_context(tmp_path, {}, events))


@pytest.mark.parametrize("start_fails", [False, True])
def test_a_failed_catch_up_drops_the_copy_and_starts_the_service_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_fails: bool
) -> None:
    calls: list[str] = []

    def refuse(live: str, copy: str, tables: Sequence[str], snapshot: str) -> None:
        calls.append(f"catch_up {','.join(tables)} {snapshot}")
        raise VerificationFailed(
            "catch-up of transactions: 2 transactions rows ...; the restored copy was not changed",
            code="restore.catch_up_reference",
        )

    def service(ctx: RunContext, phase: str) -> None:
        calls.append(f"service {phase}")
        if start_fails:
            raise ExternalFailure("the playbook failed on primary-app")

    def discard(admin: str, *, live_db: str, restore_id: str) -> bool:
        calls.append(f"discard {live_db} {restore_id}")
        return True

    monkeypatch.setattr(restore_runbook_module, "catch_up", refuse)
    monkeypatch.setattr(restore_runbook_module, "_service", service)
    monkeypatch.setattr(restore_runbook_module, "discard_restored", discard)
    monkeypatch.setattr(restore_runbook_module.dbdriver, "connect", lambda *a, **k: FakeAdmin())

    with pytest.raises(VerificationFailed) as caught:
        catchup_step(step_context(tmp_path, BESIDE, []))

    text = str(caught.value)
    assert calls == ["catch_up users,products,events 700:705:702", "discard orders r1", "service start"]
    assert caught.value.code == "restore.catch_up_reference"  # the cause's code and exit code are kept
    assert text.startswith("catch-up of transactions: 2 transactions rows")
    assert "not changed" not in text  # the copy is gone: the message says so instead
    assert "the restored copy was dropped" in text
    if start_fails:
        assert text.endswith("start it by hand; live is unchanged")
        assert "starting the order service again failed too (the playbook failed on primary-app)" in text
    else:
        assert text.endswith("the order service was started again on live, which is unchanged")
