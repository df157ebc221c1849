"""A restore carries the rows written after its moment back from what it replaced (real PostgreSQL): the
tables it set aside in a schema of live, or the whole database it replaced.

Orders and transactions go back to a backup; orders placed after it, one of them with a total its line
does not add up to (what a corrupting release leaves), are in the replaced database only. The restore's
carry-over writes the good ones (with their lines and payments) into live, lists the damaged one with its
payment for a person, and touches no table it did not restore (stock levels stay the restored copy's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from restore_helpers import first_ids, place_order, restore_copy, swap_staged_copy, take_backup

from recovery.restore.carryover import RESTORE_CARRIES, carry_over
from recovery.restore.database import swap_in
from recovery.targets.model import Database
from recovery.verify import tables_for

if TYPE_CHECKING:
    from conftest import Postgres


@pytest.mark.parametrize("swapped", ["tables into live", "whole database"])
def test_rows_after_the_moment_come_back_and_damaged_orders_go_to_a_person(
    postgres: Postgres, live: str, swapped: str
) -> None:
    backup = take_backup(postgres, live, ("orders", "transactions"))
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        user, product = first_ids(conn)
        good = [place_order(conn, user, product, paid=True) for _ in range(2)]
        damaged = place_order(conn, user, product, paid=True, total=1)
        conn.execute("UPDATE products SET stock = stock - 3 WHERE id = %s", (product,))
    stock = postgres.query(live, "SELECT stock FROM products WHERE id = %s", (product,))
    if swapped == "whole database":
        copy = restore_copy(postgres, live, backup, ("orders", "transactions"))
        failed = {"failed_db": swap_in(postgres.conninfo(), live_db=live, restored=copy).set_aside_as}
    else:  # live's tables were set aside in a schema of live itself
        failed = {
            "failed_db": live,
            "set_aside": swap_staged_copy(postgres, live, backup, ("orders", "transactions")),
        }
    assert postgres.query(
        live, "SELECT count(*) FROM orders WHERE id = ANY(%s::uuid[])", ([*good, damaged],)
    ) == [(0,)], "the restore alone drops them"

    tables = tuple(table for table in tables_for(["orders", "transactions"]) if table in RESTORE_CARRIES)
    database = Database(address="127.0.0.1", port=postgres.port, name=live, passfile=postgres.passfile)
    report = carry_over(
        database, **failed, restore_point_at=backup.cuts["orders"].at.isoformat(), tables=tables
    )

    assert report.orders_inserted == 2 and report.items == 2 and report.transactions == 2
    assert [order.order_id for order in report.damaged] == [damaged]
    assert len(report.damaged[0].payments) == 1
    back = postgres.query(live, "SELECT id::text FROM orders WHERE id = ANY(%s::uuid[])", ([*good, damaged],))
    assert {row[0] for row in back} == set(good)
    paid = postgres.query(live, "SELECT count(*) FROM transactions WHERE order_id = ANY(%s::uuid[])", (good,))
    assert paid == [(2,)]
    # Not restored, not written: the restored copy's stock level (copied from live at the start) stays.
    assert report.stock_updates == 0 and report.users == 0 and report.events == 0
    assert postgres.query(live, "SELECT stock FROM products WHERE id = %s", (product,)) == stock
    # A rerun finds everything there and writes nothing.
    again = carry_over(
        database, **failed, restore_point_at=backup.cuts["orders"].at.isoformat(), tables=tables
    )
    assert (again.orders_inserted, again.items, again.transactions) == (0, 0, 0)
