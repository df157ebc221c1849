"""The staging schema's names and foreign keys re-pointed at it (pure)."""

from __future__ import annotations

import pytest

from recovery.errors import PreconditionFailed, UsageError
from recovery.restore.staged import point_foreign_key_at, staging_names


def test_staging_and_replaced_schemas_follow_the_restore_id() -> None:
    names = staging_names("orders", "20261207a")
    assert (names.staging, names.replaced) == ("restore_20261207a", "replaced_20261207a")
    with pytest.raises(UsageError):
        staging_names("orders", "Bad-Id")


@pytest.mark.parametrize(
    "definition",
    [
        "FOREIGN KEY (order_id) REFERENCES public.orders(id)",
        "FOREIGN KEY (order_id) REFERENCES orders(id)",  # as spelled when public is on the search path
    ],
)
def test_a_foreign_key_is_pointed_at_the_schema_its_table_is_restored_in(definition: str) -> None:
    assert point_foreign_key_at(definition, "orders", "restore_x") == (
        "FOREIGN KEY (order_id) REFERENCES restore_x.orders(id)"
    )
    # The referencing column of the same name is not touched, only the referenced table.
    assert point_foreign_key_at(
        "FOREIGN KEY (orders) REFERENCES public.orders(id) ON DELETE CASCADE", "orders", "public"
    ) == ("FOREIGN KEY (orders) REFERENCES public.orders(id) ON DELETE CASCADE")


def test_an_unreadable_definition_is_refused_not_guessed() -> None:
    with pytest.raises(PreconditionFailed):
        point_foreign_key_at("FOREIGN KEY (a) REFERENCES other.orders(id)", "orders", "restore_x")
