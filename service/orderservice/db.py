"""Connections to the order database: a thread-safe pool; the password only ever comes from the passfile."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import psycopg2.pool

from orderservice.config import DbConfig


def connect_kwargs(db: DbConfig, *, timeout: int = 5) -> dict:
    kwargs = {
        "host": db.host,
        "port": db.port,
        "dbname": db.name,
        "user": db.user,
        "connect_timeout": timeout,
        "application_name": "orderservice",
    }
    if db.passfile:
        kwargs["passfile"] = db.passfile
    return kwargs


def connect(db: DbConfig) -> psycopg2.extensions.connection:
    return psycopg2.connect(**connect_kwargs(db))


class Database:
    """A lazily filled connection pool; broken connections are discarded instead of being reused."""

    def __init__(self, db: DbConfig, minconn: int, maxconn: int) -> None:
        self._db = db
        self._minconn = minconn
        self._maxconn = maxconn
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()
        # ThreadedConnectionPool raises instead of waiting when empty: bound the borrowers instead.
        self._slots = threading.BoundedSemaphore(maxconn)

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(
                    self._minconn, self._maxconn, **connect_kwargs(self._db)
                )
            return self._pool

    def _live_connection(self, pool: psycopg2.pool.ThreadedConnectionPool) -> psycopg2.extensions.connection:
        """A pooled connection that answers; dead ones (database restarted, backend terminated) are dropped.

        A restart of PostgreSQL kills every idle pooled connection at once. Without this check each of
        them would fail one client request before being discarded; a round trip on loopback is cheap.
        """
        for _ in range(self._maxconn + 1):
            conn = pool.getconn()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.rollback()
                return conn
            except psycopg2.Error:
                pool.putconn(conn, close=True)
        raise psycopg2.OperationalError("the database did not answer on a fresh connection")

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        if not self._slots.acquire(timeout=10):
            raise psycopg2.OperationalError("no database connection free within 10 s")
        try:
            pool = self._get_pool()
            conn = self._live_connection(pool)
            broken = False
            try:
                yield conn
                if conn.status != psycopg2.extensions.STATUS_READY:
                    conn.rollback()
            except BaseException:
                broken = conn.closed != 0
                if not broken:
                    try:
                        conn.rollback()
                    except psycopg2.Error:
                        broken = True
                raise
            finally:
                pool.putconn(conn, close=broken or conn.closed != 0)
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self.connection() as conn, conn.cursor() as cur:
            try:
                yield cur
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None
