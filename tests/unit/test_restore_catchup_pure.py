"""The pure parts of the catch-up: which rows a snapshot may not have seen, the SQL, the decisions."""

from __future__ import annotations

import pytest

from recovery.errors import ExitCode, PreconditionFailed
from recovery.restore.catchup import (
    ForeignKey,
    SequencePosition,
    SnapshotBound,
    TableShape,
    delete_statement,
    needs_deletes,
    reference_refusal,
    sequence_behind,
    table_unchanged,
    upsert_statement,
)

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
