"""Seed the lab's order database with a consistent, deterministic history, fast (COPY, four streams).

What holds after seeding (the invariants verification checks): every order has 1-4 items (plus, for
orders after the free-gift promotion started half-way through the history, sometimes a free gift line);
order total = sum of its lines; every paid order has exactly one captured transaction of its total;
stock is never negative; identity sequences are past the highest id. One `order.placed` event per order
and one `order.paid` per payment.

Speed: the four big tables are loaded at once over four connections while Python generates the rows.
Foreign keys between them cannot be checked row by row across uncommitted streams, so they are dropped
for the load and re-created (and validated) afterwards with their original names and definitions. The
streams commit only when all of them succeeded; the foreign keys are restored whatever happens.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from recovery.errors import ExternalFailure, PreconditionFailed, UsageError

SERVICE_MIGRATIONS = Path(__file__).resolve().parents[2] / "service" / "orderservice" / "migrations"
SCHEMA_FILE = SERVICE_MIGRATIONS / "0001_initial_schema.sql"
HISTORY_START = 1767225600  # 2026-01-01T00:00:00Z: a fixed start keeps the seeded data reproducible
HISTORY_SECONDS = 90 * 86400
CHUNK_ORDERS = 20_000
FREE_GIFT_PRODUCT_ID = 1
FREE_GIFT_EVERY = 37
PAID_SHARE = 0.70
CANCELLED_SHARE = 0.05
LOADED_TABLES = ("orders", "order_items", "transactions", "events")
V7_VARIANT = 0b10 << 62  # RFC 9562 variant bits inside the 76 bits after the version nibble
V7_CLEAR = ~(0b11 << 62)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedPlan:
    orders: int
    users: int
    products: int
    seed: int
    schema: int  # 1: v1 columns; 2 or more: v2 columns (full_name, currency, line_total_cents)


def plan_seed(orders: int, seed: int, schema: int) -> SeedPlan:
    """How many users and products go with `orders` orders."""
    if orders < 1:
        raise UsageError(f"--orders must be at least 1, got {orders}")
    return SeedPlan(
        orders=orders,
        users=max(10, orders // 10),
        products=max(20, min(5000, orders // 200)),
        seed=seed,
        schema=schema,
    )


def _timestamp_text(epoch: int, cache: dict[int, str]) -> str:
    """ISO text of a UTC epoch second; the minute prefix is formatted once per minute."""
    minute, second = divmod(epoch, 60)
    prefix = cache.get(minute)
    if prefix is None:
        prefix = time.strftime("%Y-%m-%d %H:%M:", time.gmtime(minute * 60))
        cache[minute] = prefix
    return f"{prefix}{second:02d}+00"


def _product_prices(plan: SeedPlan) -> list[int]:
    rng = random.Random(plan.seed * 7919 + 1)
    # Index 0 unused; product 1 is the free gift (price 0, allowed by the schema's price_cents >= 0).
    return [0, 0] + [rng.randrange(99, 25_000) for _ in range(plan.products - 1)]


def _user_rows(plan: SeedPlan) -> bytes:
    created = _timestamp_text(HISTORY_START, {})
    return "".join(
        f"{n}\tuser{n}@shop.example\tCustomer {n}\t{created}\n" for n in range(1, plan.users + 1)
    ).encode()


def _product_rows(plan: SeedPlan, prices: list[int]) -> bytes:
    rng = random.Random(plan.seed * 7919 + 2)
    lines = [f"{FREE_GIFT_PRODUCT_ID}\tGIFT-0001\tFree gift\t0\t{10 * plan.orders + 1000}\n"]
    lines += [
        f"{n}\tSKU-{n:06d}\tProduct {n}\t{prices[n]}\t{rng.randrange(5_000, 50_000)}\n"
        for n in range(2, plan.products + 1)
    ]
    return "".join(lines).encode()


def _generate(plan: SeedPlan, prices: list[int], emit: Callable[[dict[str, bytes]], None]) -> dict[str, int]:
    """Generate orders, items, transactions and events in chunks; returns the row counts."""
    rng = random.Random(plan.seed)
    rand = rng.random
    getrandbits = rng.getrandbits
    v2 = plan.schema >= 2
    step = HISTORY_SECONDS / plan.orders
    promotion_start = plan.orders // 2
    cache: dict[int, str] = {}
    counts = dict.fromkeys(LOADED_TABLES, 0)
    event_id = 0
    users, products = plan.users, plan.products - 1
    # Every (product, quantity 1-3) line is formatted once: index product_id * 4 + quantity.
    line_totals = [0] * ((plan.products + 1) * 4)
    line_tails = [""] * ((plan.products + 1) * 4)
    for product_id in range(2, plan.products + 1):
        for quantity in (1, 2, 3):
            price = prices[product_id]
            line_totals[product_id * 4 + quantity] = quantity * price
            line_tails[product_id * 4 + quantity] = f"\t{product_id}\t{quantity}\t{price}" + (
                f"\t{quantity * price}\n" if v2 else "\n"
            )
    line_numbers = [f"\t{n}" for n in range(8)]
    for chunk_start in range(0, plan.orders, CHUNK_ORDERS):
        orders: list[str] = []
        items: list[str] = []
        payments: list[str] = []
        events: list[str] = []
        for i in range(chunk_start, min(plan.orders, chunk_start + CHUNK_ORDERS)):
            epoch = HISTORY_START + i * step
            at = _timestamp_text(int(epoch), cache)
            # Time-ordered ids (UUIDv7 layout: milliseconds, version 7, random bits) keep index inserts
            # at the right edge of the btree, as a live service issuing v7 ids would.
            stamp = f"{int(epoch * 1000):012x}7"
            order_id = f"{stamp}{(getrandbits(76) & V7_CLEAR) | V7_VARIANT:019x}"
            user_id = 1 + int(rand() * users)
            n_lines = 1 + int(rand() * 4)
            total = 0
            for line_no in range(1, n_lines + 1):
                line = (2 + int(rand() * products)) * 4 + 1 + int(rand() * 3)
                total += line_totals[line]
                items.append(order_id + line_numbers[line_no] + line_tails[line])
            if i >= promotion_start and (i % FREE_GIFT_EVERY == 0 or i == plan.orders - 1):
                line_no = n_lines + 1
                items.append(
                    f"{order_id}\t{line_no}\t{FREE_GIFT_PRODUCT_ID}\t1\t0\t0\n"
                    if v2
                    else f"{order_id}\t{line_no}\t{FREE_GIFT_PRODUCT_ID}\t1\t0\n"
                )
                n_lines += 1
            draw = rand()
            status = (
                "paid"
                if draw < PAID_SHARE
                else "cancelled"
                if draw < PAID_SHARE + CANCELLED_SHARE
                else "placed"
            )
            orders.append(
                f"{order_id}\t{user_id}\t{status}\t{total}\t{at}\t{at}\tEUR\n"
                if v2
                else f"{order_id}\t{user_id}\t{status}\t{total}\t{at}\t{at}\n"
            )
            event_id += 1
            events.append(
                f"{event_id}\t{at}\torder.placed\t{order_id}\t"
                f'{{"lines": {n_lines}, "total_cents": {total}, "user_id": {user_id}}}\n'
            )
            if status == "paid":
                payment_id = f"{stamp}{(getrandbits(76) & V7_CLEAR) | V7_VARIANT:019x}"
                payments.append(f"{payment_id}\t{order_id}\t{total}\tcaptured\t{at}\n")
                event_id += 1
                events.append(f'{event_id}\t{at}\torder.paid\t{order_id}\t{{"amount_cents": {total}}}\n')
        counts["orders"] += len(orders)
        counts["order_items"] += len(items)
        counts["transactions"] += len(payments)
        counts["events"] += len(events)
        emit(
            {
                "orders": "".join(orders).encode(),
                "order_items": "".join(items).encode(),
                "transactions": "".join(payments).encode(),
                "events": "".join(events).encode(),
            }
        )
    return counts


def _copy_statements(schema: int) -> dict[str, str]:
    v2 = schema >= 2
    return {
        "users": f"COPY users (id, email, {'full_name' if v2 else 'name'}, created_at) FROM STDIN",
        "products": "COPY products (id, sku, name, price_cents, stock) FROM STDIN",
        "orders": "COPY orders (id, user_id, status, total_cents, created_at, updated_at"
        + (", currency" if v2 else "")
        + ") FROM STDIN",
        "order_items": "COPY order_items (order_id, line_no, product_id, quantity, unit_price_cents"
        + (", line_total_cents" if v2 else "")
        + ") FROM STDIN",
        "transactions": "COPY transactions (id, order_id, amount_cents, status, created_at) FROM STDIN",
        "events": "COPY events (id, at, kind, subject, payload) FROM STDIN",
    }


def _ensure_schema(conn: psycopg.Connection) -> int:
    """The database's schema version; an empty database first gets the v1 schema (migration 0001)."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
        if conn.execute("SELECT to_regclass('orders')").fetchone() != (None,):
            raise PreconditionFailed(
                "the database has an orders table but no schema_migrations; "
                "seed a database created by the service's migrations"
            )
        conn.execute(SCHEMA_FILE.read_text(encoding="utf-8"))  # type: ignore[call-overload]
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'initial_schema')")
        conn.commit()
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _foreign_keys(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(table, constraint name, definition) of every foreign key on the loaded tables."""
    rows = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY conname",
        (list(LOADED_TABLES),),
    ).fetchall()
    return [(str(t), str(n), str(d)) for t, n, d in rows]


def _secondary_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the loaded tables' indexes that back no constraint."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid)"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = ANY(%s::regclass[])"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY c.relname",
        (list(LOADED_TABLES),),
    ).fetchall()
    return [(str(name), str(definition)) for name, definition in rows]


def _restore_foreign_keys(conn: psycopg.Connection, conninfo: str, keys: list[tuple[str, str, str]]) -> None:
    """Re-create the foreign keys, then validate them in parallel.

    Added NOT VALID first (instant); VALIDATE CONSTRAINT takes locks that do not conflict with each other,
    so the four checks run at once on their own connections. A key whose check fails is left NOT VALID
    and the failure raised.
    """
    present = {name for _, name, _ in _foreign_keys(conn)}
    added = [(table, name) for table, name, _ in keys if name not in present]
    for table, name, definition in keys:
        if name not in present:
            conn.execute(  # type: ignore[call-overload]
                f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition} NOT VALID'
            )
    conn.commit()
    _run_parallel(conninfo, [f'ALTER TABLE {table} VALIDATE CONSTRAINT "{name}"' for table, name in added])


def _run_parallel(conninfo: str, statements: list[str]) -> None:
    errors: list[BaseException] = []

    def run(statement: str) -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(statement)  # type: ignore[call-overload]
        except BaseException as exc:  # collected and raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in statements]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        first = str(errors[0]).strip().splitlines()[0] if str(errors[0]).strip() else type(errors[0]).__name__
        raise ExternalFailure(f"seeding: a check after the load failed: {first}")


class _Stream(threading.Thread):
    """One COPY into one table over its own connection, fed chunks through a queue; commits on request."""

    def __init__(self, conninfo: str, statement: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(conninfo)
        self.statement = statement
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None

    def run(self) -> None:
        finished = False
        try:
            with self.conn.cursor() as cur, cur.copy(self.statement) as copy:  # type: ignore[arg-type]
                while (chunk := self.chunks.get()) is not None:
                    if chunk:
                        copy.write(chunk)
                finished = True  # the server may still refuse the data when the COPY ends
        except BaseException as exc:  # reported by the seeder after the join
            self.error = exc
            # Drain until the end marker so the producer never blocks on a full queue.
            while not finished and self.chunks.get() is not None:
                pass


def seed_lab_data(conninfo: str, *, orders: int, seed: int = 7) -> dict[str, int]:
    """Load a consistent order history of `orders` orders into an empty order database.

    Returns row counts per table. Refuses (PreconditionFailed) when the database already has orders.
    """
    plan_seed(orders, seed, 1)  # reject a bad count before touching the database
    try:
        conn = psycopg.connect(conninfo)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed"
        raise ExternalFailure(f"cannot reach the order database to seed it: {first}") from None
    with conn:
        schema = _ensure_schema(conn)
        plan = plan_seed(orders, seed, schema)
        if conn.execute("SELECT EXISTS (SELECT 1 FROM orders)").fetchone() != (False,) or conn.execute(
            "SELECT EXISTS (SELECT 1 FROM users)"
        ).fetchone() != (False,):
            raise PreconditionFailed(
                "the order database already has users or orders; seed an empty one "
                "(recreate the lab or restore an empty database)"
            )
        statements = _copy_statements(schema)
        prices = _product_prices(plan)
        keys = _foreign_keys(conn)
        indexes = _secondary_indexes(conn)
        for table, name, _ in keys:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')  # type: ignore[call-overload]
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')  # type: ignore[call-overload]
        conn.commit()
        try:
            # Users and products stay uncommitted until every history stream has loaded.
            with conn.cursor() as cur:
                with cur.copy(statements["users"]) as copy:  # type: ignore[arg-type]
                    copy.write(_user_rows(plan))
                with cur.copy(statements["products"]) as copy:  # type: ignore[arg-type]
                    copy.write(_product_rows(plan, prices))
            started = time.perf_counter()
            counts = _load_history(conninfo, plan, prices, statements, commit_first=conn.commit)
            log.info("seed: loaded %d orders in %.2f s", plan.orders, time.perf_counter() - started)
        except BaseException:
            conn.rollback()
            raise
        finally:
            started = time.perf_counter()
            # One bulk build per index is cheaper than maintaining it row by row during the load.
            _run_parallel(
                conninfo, [d.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1) for _, d in indexes]
            )
            _restore_foreign_keys(conn, conninfo, keys)
            log.info("seed: indexes and foreign keys restored in %.2f s", time.perf_counter() - started)
        for table in ("users", "products", "events"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # type: ignore[call-overload]
            )
        conn.commit()
        started = time.perf_counter()
        _run_parallel(conninfo, [f"ANALYZE {table}" for table in ("users", "products", *LOADED_TABLES)])
        log.info("seed: analyzed in %.2f s", time.perf_counter() - started)
        return {"users": plan.users, "products": plan.products, **counts}


def _load_history(
    conninfo: str,
    plan: SeedPlan,
    prices: list[int],
    statements: dict[str, str],
    *,
    commit_first: Callable[[], None],
) -> dict[str, int]:
    streams = {table: _Stream(conninfo, statements[table]) for table in LOADED_TABLES}
    try:
        for stream in streams.values():
            stream.start()

        def emit(chunks: dict[str, bytes]) -> None:
            for table, data in chunks.items():
                streams[table].chunks.put(data)

        try:
            counts = _generate(plan, prices, emit)
        finally:
            for stream in streams.values():
                stream.chunks.put(None)
            for stream in streams.values():
                stream.join()
        failed = [(t, s.error) for t, s in streams.items() if s.error is not None]
        if failed:
            table, error = failed[0]
            raise ExternalFailure(
                f"seeding {table} failed: {type(error).__name__}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            )
        commit_first()
        for stream in streams.values():
            stream.conn.commit()
        return counts
    finally:
        for stream in streams.values():
            stream.conn.close()
