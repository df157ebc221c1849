"""The column names the business checks read, per schema version.

A release that changes the schema may rename columns the invariants need. The checks therefore never
hard-code a column name: they read it from the `ColumnNames` of the data's schema version. The version
comes from `schema_migrations` in the same schema when it is there (a restore copy may lack it); when it
is not, the newest known set whose columns all exist is used. Deciding is pure (`choose_columns`); only
`resolve_columns` reads the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from recovery.errors import VerificationFailed
from recovery.verify.reports import Frozen
from recovery.verify.session import Connection, existing_tables, qualified, table_columns


class ColumnNames(Frozen):
    """Where each fact the invariants need is stored."""

    order_id: str = "id"
    order_status: str = "status"
    order_total: str = "total_cents"
    item_order: str = "order_id"
    item_line: str = "line_no"
    item_product: str = "product_id"
    item_quantity: str = "quantity"
    item_unit_price: str = "unit_price_cents"
    transaction_id: str = "id"
    transaction_order: str = "order_id"
    transaction_amount: str = "amount_cents"
    transaction_status: str = "status"
    product_id: str = "id"
    product_stock: str = "stock"

    def required(self) -> Mapping[str, frozenset[str]]:
        """The columns each table must have for the checks to run."""
        return {
            "orders": frozenset({self.order_id, self.order_status, self.order_total}),
            "order_items": frozenset(
                {self.item_order, self.item_line, self.item_product, self.item_quantity, self.item_unit_price}
            ),
            "transactions": frozenset(
                {
                    self.transaction_id,
                    self.transaction_order,
                    self.transaction_amount,
                    self.transaction_status,
                }
            ),
            "products": frozenset({self.product_id, self.product_stock}),
        }


# The column names of each schema version that changed one of them; a version not listed uses the
# newest listed version below it. Release v2 (migrations 2-4) renames users.name and adds
# orders.currency and order_items.line_total_cents, none of which the checks read: version 1's names hold
# for both releases.
COLUMNS_BY_VERSION: Mapping[int, ColumnNames] = {
    1: ColumnNames(),
}

INVARIANT_TABLES: tuple[str, ...] = ("products", "orders", "order_items", "transactions")


def missing_columns(names: ColumnNames, present: Mapping[str, frozenset[str]]) -> tuple[str, ...]:
    """`table.column` for every required column that is not present."""
    return tuple(
        f"{table}.{column}"
        for table, columns in names.required().items()
        for column in sorted(columns)
        if column not in present.get(table, frozenset())
    )


def choose_columns(
    version: int | None, present: Mapping[str, frozenset[str]]
) -> tuple[int, ColumnNames] | str:
    """The (known version, column names) to use, or a reason sentence when none fits. Pure."""
    known = sorted(COLUMNS_BY_VERSION, reverse=True)
    if version is not None:
        fitting = [v for v in known if v <= version]
        if not fitting:
            return f"schema version {version} is older than any version the checks know ({known[-1]})"
        names = COLUMNS_BY_VERSION[fitting[0]]
        missing = missing_columns(names, present)
        if missing:
            return (
                f"schema version {version} should have columns {', '.join(missing)} but they are "
                "missing: the data is damaged or was restored from another release"
            )
        return fitting[0], names
    for candidate in known:
        if not missing_columns(COLUMNS_BY_VERSION[candidate], present):
            return candidate, COLUMNS_BY_VERSION[candidate]
    newest = missing_columns(COLUMNS_BY_VERSION[known[0]], present)
    return (
        "the schema has no schema_migrations table and its columns match no known schema version "
        f"(missing for version {known[0]}: {', '.join(newest)})"
    )


def detect_schema_version(conn: Connection, schema: str) -> int | None:
    """The highest applied migration recorded in the schema, or None when the schema does not record it."""
    if "schema_migrations" not in existing_tables(conn, schema):
        return None
    query = sql.SQL("SELECT max(version) FROM {}").format(qualified(schema, "schema_migrations"))
    row = conn.execute(query).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def resolve_columns(conn: Connection, schema: str) -> tuple[int | None, ColumnNames]:
    """(recorded schema version, column names to use); raises VerificationFailed when nothing fits."""
    version = detect_schema_version(conn, schema)
    present = {table: frozenset(table_columns(conn, schema, table)) for table in INVARIANT_TABLES}
    choice = choose_columns(version, present)
    if isinstance(choice, str):
        raise VerificationFailed(
            f"cannot run the business checks on schema {schema!r}: {choice}", code="verify.schema_unknown"
        )
    return version, choice[1]
