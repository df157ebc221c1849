"""The layout of a daily backup object's plaintext (what the codec encrypts): framed sections.

`ORSECT1\\n`, then sections one after the other, each a frame `<name length: 1 byte><name: ASCII><size: 8
bytes big-endian>` followed by `size` bytes; the size `TO_END` (2^64 - 1) means the section runs to the
end of the stream (only the last may). A domain backup holds `schema` (the schema dump restore_beside
needs, a few KiB, so every object is self-sufficient), for the logs domain one `file:<host>` tar of the
service's log files per app host, and `dump` (the domain's pg_dump custom-format stream, to the end).
Writing (`SectionSource`) is a pull stream for the encoder; reading (`SectionSplitter`) is a push sink for
the decoder that routes each section's bytes by name, so nothing is ever held whole in memory or written
to disk in plaintext.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from recovery.backup.codec import Readable, Sink
from recovery.errors import IntegrityError

MAGIC = b"ORSECT1\n"
TO_END = 2**64 - 1
_SIZE = struct.Struct(">Q")
SCHEMA = "schema"
DUMP = "dump"
FILE_PREFIX = "file:"


def frame(name: str, size: int | None) -> bytes:
    """The frame that opens a section; `size` None means "to the end of the stream"."""
    raw = name.encode("ascii")
    if not 1 <= len(raw) <= 255:
        raise ValueError(f"section name {name!r} must be 1-255 ASCII characters")
    return bytes([len(raw)]) + raw + _SIZE.pack(TO_END if size is None else size)


@dataclass(frozen=True)
class Part:
    """One section to write: its name, its size (None: the last, to the end) and its bytes."""

    name: str
    size: int | None
    data: bytes | Readable


class SectionSource:
    """A readable stream of MAGIC and the given parts, framed; a stream part must deliver exactly `size`."""

    def __init__(self, parts: Sequence[Part]) -> None:
        if any(part.size is None for part in parts[:-1]):
            raise ValueError("only the last section may run to the end of the stream")
        self._queue: list[bytes | Readable] = [MAGIC]
        self._sizes: list[tuple[str, int | None]] = []
        for part in parts:
            self._queue.append(frame(part.name, part.size))
            self._queue.append(part.data)
            self._sizes.append((part.name, part.size))
        self._streamed = 0
        self._index = 0

    def read(self, size: int = -1, /) -> bytes:
        while self._index < len(self._queue):
            item = self._queue[self._index]
            if isinstance(item, bytes):
                self._index += 1
                if item:
                    return item
                continue
            chunk = item.read(size if size and size > 0 else 1024 * 1024)
            if chunk:
                self._streamed += len(chunk)
                return chunk
            self._check_stream_length(self._index)
            self._index += 1
            self._streamed = 0
        return b""

    def _check_stream_length(self, index: int) -> None:
        name, expected = self._sizes[(index - 2) // 2]
        if expected is not None and self._streamed != expected:
            raise IntegrityError(
                f"section {name} delivered {self._streamed} bytes, not the {expected} announced; the file "
                "changed while it was backed up, run the backup again"
            )


Route = Callable[[str, int | None], Sink | None]


class SectionSplitter:
    """A sink for decoded plaintext that sends each section's bytes to `route(name, size)` (None: drop).

    `finish()` checks the stream ended at a section boundary; `sections` lists what was seen.
    """

    def __init__(self, route: Route) -> None:
        self._route = route
        self._pending = b""
        self._magic_seen = False
        self._sink: Sink | None = None
        self._left: int | None = 0  # bytes left in the current section; None: to the end
        self._in_section = False
        self.sections: list[tuple[str, int]] = []

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        while view:
            if not self._magic_seen:
                view = self._take_magic(view)
                continue
            if not self._in_section:
                view = self._take_frame(view)
                continue
            view = self._feed(view)
        return len(data)

    def _take_magic(self, view: memoryview) -> memoryview:
        need = len(MAGIC) - len(self._pending)
        self._pending += bytes(view[:need])
        if len(self._pending) == len(MAGIC):
            if self._pending != MAGIC:
                raise IntegrityError("the backup's content does not start with the section marker")
            self._magic_seen, self._pending = True, b""
        return view[need:]

    def _take_frame(self, view: memoryview) -> memoryview:
        if not self._pending:
            self._pending, view = bytes(view[:1]), view[1:]
            return view
        whole = 1 + self._pending[0] + _SIZE.size
        missing = whole - len(self._pending)
        self._pending, view = self._pending + bytes(view[:missing]), view[missing:]
        if len(self._pending) < whole:
            return view
        try:
            name = self._pending[1 : whole - _SIZE.size].decode("ascii")
        except UnicodeDecodeError:
            raise IntegrityError("the backup's content has a damaged section frame") from None
        (size,) = _SIZE.unpack(self._pending[whole - _SIZE.size : whole])
        self._pending = b""
        self._left = None if size == TO_END else size
        self._sink = self._route(name, self._left)
        self._in_section = self._left != 0
        self.sections.append((name, 0))
        return view

    def _feed(self, view: memoryview) -> memoryview:
        take = len(view) if self._left is None else min(self._left, len(view))
        if take and self._sink is not None:
            self._sink.write(bytes(view[:take]))
        name, seen = self.sections[-1]
        self.sections[-1] = (name, seen + take)
        if self._left is not None:
            self._left -= take
            if self._left == 0:
                self._in_section = False
        return view[take:]

    def finish(self) -> None:
        if not self._magic_seen or self._pending or (self._in_section and self._left is not None):
            raise IntegrityError("the backup's content ends inside a section; the object is truncated")


class Collect:
    """A sink that keeps what it is given (small sections: the schema dump)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes, /) -> int:
        self.data += data
        return len(data)


class Hash:
    """A sink that counts and hashes what it is given (host file sections)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        self.count += len(data)
        return len(data)
