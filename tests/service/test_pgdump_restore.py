"""Dump domains, restore them beside live data, swap: against the real PostgreSQL of tests/service.

Every database a test creates is dropped by the `live` fixture (also the scratch and replaced copies),
and the subprocess of the interruption test is killed by its own process group when the test ends.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from restore_helpers import drop_family, dump_bytes, fingerprints, opener, restore_from_dumps, restore_id

from recovery.backup.codec import decode, encode
from recovery.backup.keys import DataKey
from recovery.backup.pgdump import dump_domain, dump_domains, dump_schema
from recovery.errors import (
    ConfirmationRequired,
    ExitCode,
    ExternalFailure,
    IntegrityError,
    PreconditionFailed,
    RecoveryError,
    UsageError,
)
from recovery.lab.seed import seed_lab_data
from recovery.restore.database import (
    FromDatabase,
    FromWriter,
    RestoredDatabase,
    discard_restored,
    drop_replaced,
    plan_restore,
    restore_beside,
    restore_names,
    swap_back,
    swap_in,
)

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres


# --- helpers -----------------------------------------------------------------------------------------


def database_exists(postgres: Postgres, name: str) -> bool:
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (1,)


def one_line(error: RecoveryError, *secrets: str) -> str:
    text = str(error)
    assert "\n" not in text
    for secret in secrets:
        assert secret not in text
    return text


# --- pure planning -----------------------------------------------------------------------------------


def test_plan_takes_the_domains_not_chosen_from_live() -> None:
    plan = plan_restore("orders", "r1", ["transactions", "orders"], keep_live_domains=True)
    assert plan.from_backup == ("orders", "transactions")
    assert plan.from_live == ("users", "products", "logs")
    assert plan.names.scratch == "orders_restore_r1"
    assert plan.names.replaced == "orders_replaced_r1"


def test_plan_without_live_domains_needs_every_domain() -> None:
    with pytest.raises(UsageError, match="missing users, products, transactions, logs"):
        plan_restore("orders", "r1", ["orders"], keep_live_domains=False)
    whole = plan_restore(
        "orders", "r1", ["logs", "users", "products", "orders", "transactions"], keep_live_domains=False
    )
    assert whole.from_live == ()


@pytest.mark.parametrize(
    ("live_db", "rid", "fragment"),
    [
        ("orders", "Bad-Id", "lower-case letters"),
        ("orders", "x" * 60, "too long"),
        ("Orders; drop", "r1", "plain lower-case identifier"),
    ],
)
def test_bad_names_are_refused(live_db: str, rid: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as caught:
        restore_names(live_db, rid)
    assert caught.value.exit_code == ExitCode.USAGE


def test_unknown_domain_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown data domain 'payments'"):
        plan_restore("orders", "r1", ["payments"], keep_live_domains=True)


# --- dump ----------------------------------------------------------------------------------------------


def test_dump_records_where_it_was_cut(postgres: Postgres, live: str) -> None:
    data, info = dump_bytes(dump_domain(postgres.conninfo(live, user="orders"), postgres.bin_dir, "orders"))
    assert data.startswith(b"PGDMP")  # pg_dump's custom format
    assert info.kind == "domains"
    assert info.tables == ("orders", "order_items")
    assert info.schema_version == 1
    assert not info.from_standby
    assert info.server_version_num // 10000 == postgres.major
    with psycopg.connect(postgres.conninfo(live)) as conn:
        row = conn.execute(
            "SELECT pg_current_wal_lsn() >= %s::pg_lsn, now() >= %s", (info.position, info.taken_at)
        ).fetchone()
    assert row == (True, True)
    schema, schema_info = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    assert schema_info.kind == "schema" and schema_info.tables == ()
    # The schema dump holds no domain rows: it is a small fraction of the orders dump.
    assert len(schema) < len(data) / 5


def test_dump_of_a_missing_table_fails_in_one_line(postgres: Postgres, live: str) -> None:
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        conn.execute("ALTER TABLE events RENAME TO events_old")
    with pytest.raises(ExternalFailure) as caught:
        dump_bytes(dump_domain(postgres.conninfo(live, user="orders"), postgres.bin_dir, "logs"))
    text = one_line(caught.value, postgres.password)
    assert "no matching tables were found" in text and "events" in text
    assert caught.value.code == "backup.dump_failed"


def test_dump_without_permission_fails_in_one_line(postgres: Postgres, live: str, tmp_path: Path) -> None:
    password = uuid.uuid4().hex
    role = f"reader_{uuid.uuid4().hex[:6]}"
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:{role}:{password}\n")
    passfile.chmod(0o600)
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        conninfo = f"host=127.0.0.1 port={postgres.port} dbname={live} user={role} passfile={passfile}"
        with pytest.raises(ExternalFailure) as caught:
            dump_bytes(dump_domain(conninfo, postgres.bin_dir, "orders"))
        assert "permission denied" in one_line(caught.value, password, postgres.password)
    finally:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_a_password_in_the_connection_string_is_refused(postgres: Postgres, live: str) -> None:
    conninfo = postgres.conninfo(live) + f" password={postgres.password}"
    with pytest.raises(UsageError) as caught:
        dump_bytes(dump_domain(conninfo, postgres.bin_dir, "users"))
    assert "pgpass" in one_line(caught.value, postgres.password)


def test_pg_dump_dying_after_writing_bytes_fails_the_whole_dump(postgres: Postgres, live: str) -> None:
    add_events(postgres, live, 100_000)
    with (
        pytest.raises(ExternalFailure) as caught,
        dump_domain(postgres.conninfo(live), postgres.bin_dir, "logs") as stream,
    ):
        first = stream.read(64 * 1024)
        assert first.startswith(b"PGDMP")
        # pg_dump is now blocked writing to us in the middle of COPY: end its server session.
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            ended = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'pg_dump'",
                (live,),
            ).fetchone()
        assert ended == (1,)
        while stream.read(1024 * 1024):
            pass
    text = one_line(caught.value, postgres.password)
    assert "dump of domain logs failed after" in text and "must not be kept" in text


def test_leaving_a_dump_unread_is_an_error_not_a_short_backup(postgres: Postgres, live: str) -> None:
    with (
        pytest.raises(ExternalFailure, match="closed before its end"),
        dump_domains(postgres.conninfo(live), postgres.bin_dir, ["orders", "transactions"]) as stream,
    ):
        stream.read(100)
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'pg_dump'",
            (live,),
        ).fetchone()
    assert left == (0,)


# --- restore beside ------------------------------------------------------------------------------------


def add_events(postgres: Postgres, dbname: str, count: int) -> None:
    with psycopg.connect(postgres.conninfo(dbname, user="orders")) as conn:
        conn.execute(
            "INSERT INTO events (at, kind, subject, payload)"
            " SELECT now(), 'bulk', 'subject-' || n, jsonb_build_object('n', n, 'pad', repeat('x', 200))"
            " FROM generate_series(1, %s) AS n",
            (count,),
        )


def change_live(postgres: Postgres, dbname: str) -> None:
    """What happens to live after a backup: new users, orders, payments, events; stock moves."""
    with psycopg.connect(postgres.conninfo(dbname, user="orders")) as conn:
        conn.execute("INSERT INTO users (email, name) VALUES ('late@shop.example', 'Late Customer')")
        conn.execute("UPDATE products SET stock = stock + 5 WHERE id <= 3")
        conn.execute(
            "INSERT INTO orders (id, user_id, status, total_cents)"
            " SELECT gen_random_uuid(), 1, 'paid', 500 FROM generate_series(1, 25)"
        )
        conn.execute("DELETE FROM transactions WHERE id IN (SELECT id FROM transactions LIMIT 10)")
        conn.execute("INSERT INTO events (kind, subject) VALUES ('late', 'after the backup')")


def test_round_trip_of_one_domain(postgres: Postgres, live: str, admin: str) -> None:
    tables = ("orders", "order_items")
    before = fingerprints(postgres, live, tables)
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    orders, _ = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, "orders"))
    rid = restore_id()
    restored = restore_beside(
        admin,
        postgres.bin_dir,
        live_db=live,
        restore_id=rid,
        schema_stream=opener(schema),
        domain_streams={"orders": opener(orders)},
    )
    assert restored.name == f"{live}_restore_{rid}"
    assert restored.from_backup == ("orders",)
    assert fingerprints(postgres, restored.name, tables) == before
    assert restored.schema_version == 1
    assert [step.step for step in restored.steps][-2:] == ["indexes and constraints", "analyze"]


def test_restore_beside_keeps_live_domains_current_and_live_untouched(
    postgres: Postgres, live: str, admin: str
) -> None:
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    backup: dict[str, bytes] = {}
    for domain in ("orders", "transactions"):
        backup[domain], _ = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, domain))
    at_backup = fingerprints(postgres, live)
    change_live(postgres, live)
    live_now = fingerprints(postgres, live)
    assert live_now != at_backup

    restored = restore_beside(
        admin,
        postgres.bin_dir,
        live_db=live,
        restore_id=restore_id(),
        schema_stream=opener(schema),
        domain_streams={d: opener(b) for d, b in backup.items()},
    )
    copy = fingerprints(postgres, restored.name)
    for table in ("orders", "order_items", "transactions"):
        assert copy[table] == at_backup[table], table  # the backup's rows
    for table in ("users", "products", "events"):
        assert copy[table] == live_now[table], table  # live's current rows
    assert fingerprints(postgres, live) == live_now  # live was only read
    assert restored.from_live == ("users", "products", "logs")
    assert restored.live_copy is not None and restored.live_copy.tables == ("users", "products", "events")

    with psycopg.connect(postgres.conninfo(restored.name, user="orders")) as conn:
        # Constraints and indexes are back (and were validated when they were created).
        constraints = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype IN ('p', 'f', 'u', 'c')"
            " AND connamespace = 'public'::regnamespace"
        ).fetchone()
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        # Sequences continue after the restored rows, so the service can insert at once.
        conn.execute("INSERT INTO events (kind, subject) VALUES ('after', 'restore')")
        conn.execute("INSERT INTO users (email, name) VALUES ('new@shop.example', 'New')")
        migrations = conn.execute("SELECT version FROM schema_migrations").fetchall()
    with psycopg.connect(postgres.conninfo(live)) as conn:
        live_constraints = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype IN ('p', 'f', 'u', 'c')"
            " AND connamespace = 'public'::regnamespace"
        ).fetchone()
    assert constraints == live_constraints
    assert owners == [("orders",)]
    assert migrations == [(1,)]


def test_a_broken_stream_drops_the_scratch_database(postgres: Postgres, live: str, admin: str) -> None:
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    orders, _ = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, "orders"))
    before = fingerprints(postgres, live)
    rid = restore_id()
    with pytest.raises(ExternalFailure) as caught:
        restore_beside(
            admin,
            postgres.bin_dir,
            live_db=live,
            restore_id=rid,
            schema_stream=opener(schema),
            domain_streams={"orders": opener(orders[: len(orders) // 2])},
        )
    assert "loading the orders domain" in one_line(caught.value, postgres.password)
    assert not database_exists(postgres, f"{live}_restore_{rid}")
    assert fingerprints(postgres, live) == before


def test_references_broken_across_domains_fail_at_constraints(
    postgres: Postgres, live: str, admin: str
) -> None:
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    orders, _ = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, "orders"))
    users, _ = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, "users"))
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        # A product the backed-up order items reference disappears from live.
        conn.execute("ALTER TABLE order_items DROP CONSTRAINT order_items_product_id_fkey")
        conn.execute("DELETE FROM products WHERE id = (SELECT max(product_id) FROM order_items)")
    rid = restore_id()
    with pytest.raises(ExternalFailure) as caught:
        restore_beside(
            admin,
            postgres.bin_dir,
            live_db=live,
            restore_id=rid,
            schema_stream=opener(schema),
            domain_streams={"orders": opener(orders), "users": opener(users)},
        )
    text = one_line(caught.value)
    assert "indexes and constraints" in text and "foreign key" in text
    assert not database_exists(postgres, f"{live}_restore_{rid}")


def test_an_admin_role_that_may_not_create_databases_fails_in_one_line(postgres: Postgres, live: str) -> None:
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    rid = restore_id()
    with pytest.raises(ExternalFailure) as caught:
        restore_beside(
            postgres.conninfo("postgres", user="orders"),
            postgres.bin_dir,
            live_db=live,
            restore_id=rid,
            schema_stream=opener(schema),
            domain_streams={"logs": opener(b"")},
        )
    assert "permission denied to create database" in one_line(caught.value, postgres.password)
    assert not database_exists(postgres, f"{live}_restore_{rid}")


def test_live_at_another_schema_version_is_refused(postgres: Postgres, live: str, admin: str) -> None:
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    orders, _ = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, "orders"))
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (2, 'upgrade')")
    rid = restore_id()
    with pytest.raises(PreconditionFailed, match="schema version 2 but the backup at 1"):
        restore_beside(
            admin,
            postgres.bin_dir,
            live_db=live,
            restore_id=rid,
            schema_stream=opener(schema),
            domain_streams={"orders": opener(orders)},
        )
    assert not database_exists(postgres, f"{live}_restore_{rid}")


def test_a_database_source_stands_in_for_a_stream(postgres: Postgres, live: str, admin: str) -> None:
    """The shape a point-in-time restore uses: every domain read from another running database."""
    source = postgres.create_database("rdbsrc")
    try:
        seed_lab_data(postgres.conninfo(source, user="orders"), orders=500, seed=11)
        expected = fingerprints(postgres, source)
        from_source = FromDatabase(postgres.conninfo(source), postgres.bin_dir)
        restored = restore_beside(
            admin,
            postgres.bin_dir,
            live_db=live,
            restore_id=restore_id(),
            schema_stream=from_source,
            domain_streams=dict.fromkeys(
                ("orders", "users", "products", "transactions", "logs"), from_source
            ),
            keep_live_domains=False,
        )
        assert restored.from_live == () and restored.live_copy is None
        assert fingerprints(postgres, restored.name) == expected
    finally:
        drop_family(postgres, source)


def test_restore_from_encrypted_backups_through_the_codec(postgres: Postgres, live: str, admin: str) -> None:
    """The codec encodes straight from the dump stream and decodes straight into pg_restore."""
    key = DataKey("keyring", "test-key", b"wrapped", os.urandom(32))
    stored: dict[str, bytes] = {}
    for name, opened in (
        ("schema", dump_schema(postgres.conninfo(live), postgres.bin_dir)),
        ("orders", dump_domain(postgres.conninfo(live), postgres.bin_dir, "orders")),
    ):
        out = io.BytesIO()
        with opened as stream:
            encode(stream, out, key, f"20261125-{name}-daily")
        stored[name] = out.getvalue()
    at_backup = fingerprints(postgres, live, ("orders", "order_items"))
    change_live(postgres, live)

    def decoder(name: str, data: bytes) -> FromWriter:
        return FromWriter(lambda sink: decode(io.BytesIO(data), sink, key, f"20261125-{name}-daily"))

    restored = restore_beside(
        admin,
        postgres.bin_dir,
        live_db=live,
        restore_id=restore_id(),
        schema_stream=decoder("schema", stored["schema"]),
        domain_streams={"orders": decoder("orders", stored["orders"])},
    )
    assert fingerprints(postgres, restored.name, ("orders", "order_items")) == at_backup

    # One flipped bit in the middle of the stored orders backup: the restore fails, nothing is left.
    damaged = bytearray(stored["orders"])
    damaged[len(damaged) // 2] ^= 0x01
    rid = restore_id()
    with pytest.raises(IntegrityError):
        restore_beside(
            admin,
            postgres.bin_dir,
            live_db=live,
            restore_id=rid,
            schema_stream=decoder("schema", stored["schema"]),
            domain_streams={"orders": decoder("orders", bytes(damaged))},
        )
    assert not database_exists(postgres, f"{live}_restore_{rid}")


# --- swap ------------------------------------------------------------------------------------------------


def restore_orders(postgres: Postgres, live: str, admin: str) -> RestoredDatabase:
    return restore_from_dumps(postgres, live, admin, ("orders",))


def test_swap_in_and_back(postgres: Postgres, live: str, admin: str) -> None:
    at_backup = fingerprints(postgres, live)
    restored = restore_orders(postgres, live, admin)
    change_live(postgres, live)
    changed = fingerprints(postgres, live)
    restored_content = fingerprints(postgres, restored.name)
    assert restored_content != changed

    straggler = psycopg.connect(postgres.conninfo(live, user="orders"), autocommit=True)
    try:
        swapped = swap_in(admin, live_db=live, restored=restored)
        assert swapped.terminated_sessions >= 1
        with pytest.raises(psycopg.OperationalError):
            straggler.execute("SELECT 1")
    finally:
        straggler.close()
    assert swapped.set_aside_as == f"{live}_replaced_{restored.restore_id}"
    assert fingerprints(postgres, live) == restored_content
    assert fingerprints(postgres, live)["orders"] == at_backup["orders"]
    assert fingerprints(postgres, swapped.set_aside_as) == changed
    assert not database_exists(postgres, restored.name)

    # A second swap of the same restore is refused while the replaced copy exists.
    with pytest.raises(PreconditionFailed, match="already exists"):
        swap_in(admin, live_db=live, restored=restored)

    back = swap_back(admin, live_db=live, restore_id=restored.restore_id)
    assert back.direction == "back"
    assert fingerprints(postgres, live) == changed
    assert fingerprints(postgres, restored.name) == restored_content
    assert not database_exists(postgres, swapped.set_aside_as)

    # Swap in again, then prune the replaced database: only with explicit confirmation.
    swap_in(admin, live_db=live, restored=restored)
    with pytest.raises(ConfirmationRequired) as caught:
        drop_replaced(admin, live_db=live, restore_id=restored.restore_id)
    assert caught.value.exit_code == ExitCode.NEEDS_CONFIRMATION
    assert database_exists(postgres, swapped.set_aside_as)
    assert drop_replaced(admin, live_db=live, restore_id=restored.restore_id, confirmed=True)
    assert not database_exists(postgres, swapped.set_aside_as)
    assert not drop_replaced(admin, live_db=live, restore_id=restored.restore_id, confirmed=True)
    assert fingerprints(postgres, live) == restored_content


def test_swap_refuses_an_admin_connection_on_the_live_database(postgres: Postgres, live: str) -> None:
    restored = restore_orders(postgres, live, postgres.conninfo())
    with pytest.raises(UsageError, match="maintenance database"):
        swap_in(postgres.conninfo(live), live_db=live, restored=restored)
    assert discard_restored(postgres.conninfo(), live_db=live, restore_id=restored.restore_id)
    assert not database_exists(postgres, restored.name)


# --- interrupted restore ---------------------------------------------------------------------------------

_RESTORE_SCRIPT = textwrap.dedent(
    """
    import contextlib, sys
    from pathlib import Path
    from recovery.restore.database import restore_beside

    admin, bin_dir, live, rid, schema_file, logs_file = sys.argv[1:]
    restore_beside(
        admin, Path(bin_dir), live_db=live, restore_id=rid,
        schema_stream=lambda: Path(schema_file).open("rb"),
        domain_streams={"logs": lambda: Path(logs_file).open("rb")},
    )
    """
)


def test_an_interrupted_restore_leaves_live_untouched_and_a_rerun_succeeds(
    postgres: Postgres, live: str, admin: str, tmp_path: Path
) -> None:
    add_events(postgres, live, 400_000)
    schema_file, logs_file = tmp_path / "schema.dump", tmp_path / "logs.dump"
    schema, _ = dump_bytes(dump_schema(postgres.conninfo(live), postgres.bin_dir))
    logs, _ = dump_bytes(dump_domain(postgres.conninfo(live), postgres.bin_dir, "logs"))
    schema_file.write_bytes(schema)
    logs_file.write_bytes(logs)
    expected_events = fingerprints(postgres, live, ("events",))
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        conn.execute("DELETE FROM events WHERE kind = 'bulk' AND id % 2 = 0")  # live moves on
    before = fingerprints(postgres, live)
    rid = restore_id()
    scratch = f"{live}_restore_{rid}"

    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _RESTORE_SCRIPT,
            admin,
            str(postgres.bin_dir),
            live,
            rid,
            str(schema_file),
            str(logs_file),
        ],
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the killed run's spool directory stays in tmp_path
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        copied = wait_for_copy_progress(postgres, scratch, "events", process)
        os.killpg(process.pid, signal.SIGKILL)  # the restore and its pg_restore child, mid-load
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert 0 < copied < len(logs)  # it really was half-way
    assert database_exists(postgres, scratch)  # the leftover the rerun must clean up
    assert fingerprints(postgres, live) == before

    restored = restore_beside(
        admin,
        postgres.bin_dir,
        live_db=live,
        restore_id=rid,
        schema_stream=lambda: schema_file.open("rb"),
        domain_streams={"logs": lambda: logs_file.open("rb")},
    )
    assert restored.name == scratch
    assert fingerprints(postgres, scratch, ("events",)) == expected_events
    assert fingerprints(postgres, live) == before


def wait_for_copy_progress(
    postgres: Postgres, dbname: str, table: str, process: subprocess.Popen[bytes]
) -> int:
    """Bytes a COPY into `table` of `dbname` has read, once past 1 MiB (the load is under way)."""
    deadline = time.monotonic() + 60

    def check_alive() -> None:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"the restore ended before it could be interrupted: {error[-500:]}")

    while not database_exists(postgres, dbname):
        check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{dbname} was not created within 60 s")
        time.sleep(0.01)
    # relid is an oid of the scratch database: resolve it there.
    with psycopg.connect(postgres.conninfo(dbname), autocommit=True) as conn:
        while time.monotonic() < deadline:
            check_alive()
            row = conn.execute(
                "SELECT p.bytes_processed FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid"
                " WHERE p.datname = current_database() AND c.relname = %s",
                (table,),
            ).fetchone()
            if row is not None and row[0] > 1024 * 1024:
                return int(row[0])
            time.sleep(0.01)
    pytest.fail(f"no COPY into {dbname}.{table} within 60 s")


# --- the upgrade's restore point ---------------------------------------------------------------------


def test_an_upgrade_restore_point_is_encrypted_at_rest_and_restores_whole(
    postgres: Postgres, live: str, admin: str, tmp_path: Path
) -> None:
    from recovery.backup.keys import Keyring, write_keyring
    from recovery.runbooks.upgrade import RestorePoint, take_restore_point
    from recovery.targets.model import Database

    keyring_path = tmp_path / "keyring.json"
    write_keyring(keyring_path, {"k1": os.urandom(32)}, "k1")
    keys = Keyring.load(keyring_path)
    database = Database(
        address="127.0.0.1",
        port=postgres.port,
        name=live,
        passfile=postgres.passfile,
        bin_dir=postgres.bin_dir,
    )
    point = take_restore_point(database, tmp_path / "point", "v1", keys)
    # A value that is certainly in the orders dump never appears on disk in the clear.
    with psycopg.connect(postgres.conninfo(live)) as conn:
        row = conn.execute("SELECT id::text FROM orders ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    for name in ("schema", "orders", "users", "products", "transactions", "logs"):
        stored = (point.directory / f"{name}.dump").read_bytes()
        assert stored.startswith(b"ORBK") and row[0].encode() not in stored
    assert "wrapped_key" in (point.directory / "point.json").read_text()

    reread = RestorePoint.from_json(point.to_json())
    rid = restore_id()
    restored = restore_beside(
        admin,
        postgres.bin_dir,
        live_db=live,
        restore_id=rid,
        schema_stream=FromWriter(reread.write_plain(reread.schema_file(), keys)),
        domain_streams={
            domain: FromWriter(reread.write_plain(reread.domain_file(domain), keys))
            for domain in ("orders", "users", "products", "transactions", "logs")
        },
        keep_live_domains=False,
    )
    assert fingerprints(postgres, restored.name) == fingerprints(postgres, live)

    # Files swapped between names are refused, not restored.
    orders, users = reread.domain_file("orders"), reread.domain_file("users")
    orders_bytes = orders.read_bytes()
    orders.write_bytes(users.read_bytes())
    with pytest.raises(IntegrityError):
        reread.write_plain(orders, keys)(io.BytesIO())
    orders.write_bytes(orders_bytes)
