"""Read the plain-SQL form of a data-only dump (`pg_restore --data-only -f -`) and load it elsewhere.

A custom-format dump names every table with its schema (`COPY public.orders ...`), so pg_restore can only
load rows into the tables they came from. To restore a domain into a staging schema of the live
database, its rows are read from pg_restore's SQL output instead and loaded with COPY into the tables
`targets` names. Nothing of the script is executed: only three kinds of statement are understood (COPY
blocks, sequence positions, session settings) and anything else is refused, so a crafted backup can put
rows into the expected tables and nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Protocol

from recovery.errors import IntegrityError

CHUNK = 1024 * 1024
_END_OF_DATA = b"\n\\.\n"  # a COPY block ends with a line holding only `\.`
_KEEP = len(_END_OF_DATA) - 1  # bytes kept back in case the end marker straddles two reads

_IDENT = r'(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)'
_COPY = re.compile(rf"^COPY (?P<schema>{_IDENT})\.(?P<table>{_IDENT}) \((?P<columns>.*)\) FROM stdin;\n\Z")
_SETVAL = re.compile(
    r"^SELECT pg_catalog\.setval\('(?P<sequence>[^']+)', (?P<value>-?\d+), (?P<called>true|false)\);\n\Z"
)
_CLIENT_ENCODING = re.compile(r"^SET client_encoding = '(?P<encoding>[A-Za-z0-9_]+)';\n\Z")
# Session settings pg_restore writes before the data; they change nothing COPY needs.
_IGNORED = re.compile(
    r"^(--.*|\s*|SET [a-z_]+ = .*;|SELECT pg_catalog\.set_config\('search_path', '', false\);"
    r"|\\(un)?restrict [A-Za-z0-9]+)\n?\Z"
)
_COLUMN = re.compile(_IDENT)


def unquote(identifier: str) -> str:
    """A quoted identifier without its quotes (doubled quotes halved); a plain one as it is. Pure."""
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def split_columns(text: str) -> tuple[str, ...]:
    """The column names of a COPY header's list (`id, "Name", total_cents`). Pure."""
    names = []
    for part in _split_outside_quotes(text):
        if not _COLUMN.fullmatch(part):
            raise IntegrityError(f"the dump's column list {text[:80]!r} is not a list of column names")
        names.append(unquote(part))
    return tuple(names)


def _split_outside_quotes(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


class CopyTarget(Protocol):
    """Where the rows of one table go: `write` takes raw COPY text data, in order."""

    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class SequencePosition:
    sequence: str  # as the dump names it, e.g. public.events_id_seq
    value: int
    called: bool


class ScriptSink(Protocol):
    """What the reader hands each statement it understood to."""

    def client_encoding(self, encoding: str) -> None: ...

    def copy(self, table: str, columns: tuple[str, ...]) -> CopyTarget: ...

    def copy_done(self, table: str) -> None: ...

    def sequence(self, position: SequencePosition) -> None: ...


def read_script(
    raw: IO[bytes], sink: ScriptSink, *, tables: Mapping[str, str], stopped: Callable[[], bool]
) -> tuple[str, ...]:
    """Hand every statement of a data-only script to `sink`; return the tables loaded, in order.

    `tables` maps each expected `schema.table` of the dump (unquoted) to the name `sink.copy` receives;
    a COPY of any other table, or a statement of any other kind, is refused (`IntegrityError`).
    `stopped` is asked between reads: when it says so, reading ends early (another load failed).
    """
    stream = _ScriptStream(raw)
    loaded: list[str] = []
    while not stopped():
        line = stream.readline()
        if not line:
            return tuple(loaded)
        text = line.decode("utf-8", errors="replace")
        if copy := _COPY.match(text):
            source = f"{unquote(copy['schema'])}.{unquote(copy['table'])}"
            if source not in tables:
                raise IntegrityError(
                    f"the dump holds rows of {source}, which this domain does not have; nothing of it was "
                    "swapped in"
                )
            target = tables[source]
            _copy_block(stream, sink.copy(target, split_columns(copy["columns"])), stopped)
            sink.copy_done(target)
            loaded.append(target)
        elif setval := _SETVAL.match(text):
            sink.sequence(
                SequencePosition(setval["sequence"], int(setval["value"]), setval["called"] == "true")
            )
        elif encoding := _CLIENT_ENCODING.match(text):
            sink.client_encoding(encoding["encoding"])
        elif not _IGNORED.match(text):
            raise IntegrityError(
                f"the dump holds a statement a data-only restore does not expect: {text.strip()[:80]!r}"
            )
    return tuple(loaded)


def _copy_block(stream: _ScriptStream, target: CopyTarget, stopped: Callable[[], bool]) -> None:
    """Pass a COPY block's data to `target` in large pieces, up to (not including) its `\\.` line."""
    pending = stream.read1()
    if pending.startswith(b"\\.\n"):  # an empty table: the end marker comes first
        stream.push_back(pending[3:])
        return
    while True:
        end = pending.find(_END_OF_DATA)
        if end >= 0:
            target.write(pending[: end + 1])
            stream.push_back(pending[end + len(_END_OF_DATA) :])
            return
        if len(pending) > _KEEP:
            target.write(pending[:-_KEEP])
            pending = pending[-_KEEP:]
        if stopped():
            return
        more = stream.read1()
        if not more:
            raise IntegrityError("the dump ends inside a table's rows: it is truncated")
        pending += more


class _ScriptStream:
    """Lines and large reads from one binary stream, with the bytes read past a COPY block given back."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._buffer = b""

    def push_back(self, data: bytes) -> None:
        self._buffer = data + self._buffer

    def read1(self) -> bytes:
        if self._buffer:
            data, self._buffer = self._buffer, b""
            return data
        return self._raw_read()

    def _raw_read(self) -> bytes:
        read1 = getattr(self._raw, "read1", None)
        return bytes(read1(CHUNK) if read1 is not None else self._raw.read(CHUNK))

    def readline(self) -> bytes:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[: newline + 1], self._buffer[newline + 1 :]
                return line
            more = self._raw_read()
            if not more:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += more
