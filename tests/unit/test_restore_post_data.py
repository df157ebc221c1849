"""The split of a schema dump's post-data entries into the exclusive and the shared pass."""

from __future__ import annotations

from recovery.restore.database import split_post_data

LISTING = """;
; Archive created at 2026-11-26 04:05:00 UTC
;     dbname: orders
;
2475; 2606 16507 CONSTRAINT public events events_pkey orders
2465; 2606 16428 CONSTRAINT public products products_sku_key orders
2468; 1259 16508 INDEX public orders_user_id_idx orders
2477; 2606 16510 FK CONSTRAINT public order_items order_items_order_id_fkey orders
2480; 2620 16530 TRIGGER public orders orders_touch orders
2481; 0 0 INDEX ATTACH public orders_part_idx orders
2482; 2618 16540 RULE public orders orders_rule orders
2483; 2606 16550 CHECK CONSTRAINT public orders orders_total_check orders
2484; 3256 16560 POLICY public orders orders_policy orders
"""


def test_share_locking_kinds_go_beside_readers_and_the_rest_first() -> None:
    passes = split_post_data(LISTING)
    assert [line.split()[3] for line in passes.shared] == ["INDEX", "FK", "TRIGGER"]
    assert [line.split()[0] for line in passes.exclusive] == [
        "2475;",
        "2465;",
        "2481;",  # attaching a partition's index locks the parent: not beside readers
        "2482;",
        "2483;",
        "2484;",
    ]


def test_comments_and_blank_lines_are_dropped_and_every_entry_kept_once() -> None:
    passes = split_post_data(LISTING + "\n   \n; trailing comment\n")
    entries = [line for line in LISTING.splitlines() if line and not line.startswith(";")]
    assert sorted(passes.exclusive + passes.shared) == sorted(entries)


def test_an_empty_listing_gives_two_empty_passes() -> None:
    passes = split_post_data(";\n; nothing\n")
    assert passes.exclusive == () and passes.shared == ()
