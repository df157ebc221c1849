"""A content checker over a raw stream of `<table>\\t<row>` lines: what the restore side does in SQL."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from recovery.backup.manifest import Manifest, TableSummary


def summarise(data: bytes) -> tuple[TableSummary, ...]:
    checker = LineCheck()
    checker.write(data)
    return tuple(checker.finish())


class LineCheck:
    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._hashes: dict[str, hashlib._Hash] = {}
        self._partial = b""

    def write(self, data: bytes) -> int:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            table = line.split(b"\t", 1)[0].decode()
            self._rows[table] = self._rows.get(table, 0) + 1
            self._hashes.setdefault(table, hashlib.sha256()).update(line + b"\n")
        return len(data)

    def finish(self) -> Sequence[TableSummary]:
        assert self._partial == b"", "the stream ended inside a line"
        return [
            TableSummary(name=table, rows=rows, content_hash=self._hashes[table].hexdigest())
            for table, rows in sorted(self._rows.items())
        ]


def line_checker(manifest: Manifest) -> LineCheck:
    return LineCheck()
