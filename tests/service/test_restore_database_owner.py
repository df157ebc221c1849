"""A restore runs the backup's content as the live database's owner, not as the superuser it connects as.

A crafted schema dump that needs a superuser (here an event trigger, which would then run on every DDL
statement with the rights of whoever fires it) must fail the restore instead of being installed.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from recovery.backup.pgdump import dump_domain, dump_schema
from recovery.errors import ExternalFailure
from recovery.lab.seed import seed_lab_data
from recovery.restore.database import restore_beside

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres


def _bytes(opened: contextlib.AbstractContextManager) -> bytes:  # type: ignore[type-arg]
    with opened as stream:
        data = bytearray()
        while chunk := stream.read(256 * 1024):
            data += chunk
        return bytes(data)


def _opener(data: bytes) -> Callable[[], contextlib.AbstractContextManager[io.BytesIO]]:
    return lambda: contextlib.nullcontext(io.BytesIO(data))


@pytest.fixture
def databases(postgres: Postgres) -> Iterator[tuple[str, str]]:
    live, crafted = postgres.create_database("own"), postgres.create_database("crafted")
    try:
        for name in (live, crafted):
            seed_lab_data(postgres.conninfo(name, user="orders"), orders=50)
        yield live, crafted
    finally:
        for name in postgres.query(
            "postgres",
            "SELECT datname FROM pg_database WHERE datname LIKE %s OR datname LIKE %s",
            (f"{live}%", f"{crafted}%"),
        ):
            postgres.drop_database(name[0])


def test_a_schema_that_needs_a_superuser_is_refused(postgres: Postgres, databases: tuple[str, str]) -> None:
    live, crafted = databases
    postgres.execute(
        crafted,
        "CREATE FUNCTION public.watch() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;"
        "CREATE EVENT TRIGGER watch ON ddl_command_end EXECUTE FUNCTION public.watch()",
    )
    schema = _bytes(dump_schema(postgres.conninfo(crafted), postgres.bin_dir))
    orders = _bytes(dump_domain(postgres.conninfo(crafted), postgres.bin_dir, "orders"))
    rid = uuid.uuid4().hex[:10]
    with pytest.raises(ExternalFailure, match=r"permission denied|must be superuser"):
        restore_beside(
            postgres.conninfo(),
            postgres.bin_dir,
            live_db=live,
            restore_id=rid,
            schema_stream=_opener(schema),
            domain_streams={"orders": _opener(orders)},
        )
    assert postgres.query(
        "postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (f"{live}_restore_{rid}",)
    ) == [(0,)]


def test_restored_objects_belong_to_the_owner(postgres: Postgres, databases: tuple[str, str]) -> None:
    live, _ = databases
    schema = _bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    orders = _bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, "orders"))
    restored = restore_beside(
        postgres.conninfo(),
        postgres.bin_dir,
        live_db=live,
        restore_id=uuid.uuid4().hex[:10],
        schema_stream=_opener(schema),
        domain_streams={"orders": _opener(orders)},
    )
    owners = postgres.query(
        restored.name, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
    )
    assert owners == [("orders",)]
