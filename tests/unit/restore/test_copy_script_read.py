"""read_script: the plain-SQL form of a data-only dump read into COPY targets, nothing else executed."""

from __future__ import annotations

import io

import pytest

from recovery.errors import IntegrityError
from recovery.restore import copy_script
from recovery.restore.copy_script import SequencePosition, read_script, split_columns

HEADER = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n"
    b"SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n"
    b"SELECT pg_catalog.set_config('search_path', '', false);\n\n"
)


class Sink:
    def __init__(self) -> None:
        self.rows: dict[str, io.BytesIO] = {}
        self.columns: dict[str, tuple[str, ...]] = {}
        self.done: list[str] = []
        self.sequences: list[SequencePosition] = []
        self.encodings: list[str] = []

    def client_encoding(self, encoding: str) -> None:
        self.encodings.append(encoding)

    def copy(self, table: str, columns: tuple[str, ...]) -> io.BytesIO:
        self.columns[table] = columns
        return self.rows.setdefault(table, io.BytesIO())

    def copy_done(self, table: str) -> None:
        self.done.append(table)

    def sequence(self, position: SequencePosition) -> None:
        self.sequences.append(position)


def script(*blocks: bytes) -> io.BytesIO:
    return io.BytesIO(HEADER + b"".join(blocks) + b"\\unrestrict abc123\n")


TABLES = {"public.orders": "orders", "public.order_items": "order_items"}


def test_rows_go_to_their_mapped_tables_and_sequences_are_handed_over() -> None:
    orders = b"".join(b"id-%d\t%d\tplaced\n" % (n, n) for n in range(5000))
    sink = Sink()
    loaded = read_script(
        script(
            b"COPY public.orders (id, user_id, status) FROM stdin;\n" + orders + b"\\.\n\n",
            b"COPY public.order_items (order_id, line_no) FROM stdin;\n\\.\n\n",
            b"SELECT pg_catalog.setval('public.orders_seq', 42, true);\n",
        ),
        sink,
        tables=TABLES,
        stopped=lambda: False,
    )
    assert loaded == ("orders", "order_items")
    assert sink.rows["orders"].getvalue() == orders
    assert sink.rows["order_items"].getvalue() == b""
    assert sink.columns["orders"] == ("id", "user_id", "status")
    assert sink.done == ["orders", "order_items"]
    assert sink.sequences == [SequencePosition("public.orders_seq", 42, True)]
    assert sink.encodings == ["UTF8"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 64])
def test_the_end_marker_is_found_wherever_reads_split_it(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(copy_script, "CHUNK", chunk)
    rows = b"a\\.b\t1\n\\\\.\t2\nlast\t3\n"  # `\.` inside a value, and an escaped backslash before a dot
    sink = Sink()
    read_script(
        script(b"COPY public.orders (id, n) FROM stdin;\n" + rows + b"\\.\n\n"),
        sink,
        tables=TABLES,
        stopped=lambda: False,
    )
    assert sink.rows["orders"].getvalue() == rows


def test_a_table_of_another_domain_is_refused() -> None:
    with pytest.raises(IntegrityError, match=r"public\.users"):
        read_script(
            script(b"COPY public.users (id) FROM stdin;\n1\n\\.\n"),
            Sink(),
            tables=TABLES,
            stopped=lambda: False,
        )


@pytest.mark.parametrize(
    "statement",
    [b"DROP TABLE public.orders;\n", b"CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql;\n"],
)
def test_any_other_statement_is_refused_not_run(statement: bytes) -> None:
    with pytest.raises(IntegrityError, match="does not expect"):
        read_script(script(statement), Sink(), tables=TABLES, stopped=lambda: False)


def test_a_dump_cut_inside_rows_is_truncated() -> None:
    with pytest.raises(IntegrityError, match="truncated"):
        read_script(
            io.BytesIO(HEADER + b"COPY public.orders (id) FROM stdin;\n1\n2\n"),
            Sink(),
            tables=TABLES,
            stopped=lambda: False,
        )


def test_quoted_column_names_are_unquoted() -> None:
    assert split_columns('id, "Odd, ""name""", total') == ("id", 'Odd, "name"', "total")
    with pytest.raises(IntegrityError):
        split_columns("id); DROP TABLE x; --")
