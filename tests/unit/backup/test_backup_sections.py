"""The layout of a daily backup object: framed sections written as a pull stream, split as a push sink."""

from __future__ import annotations

import io

import pytest

from recovery.backup.sections import DUMP, MAGIC, SCHEMA, Collect, Part, SectionSource, SectionSplitter, frame
from recovery.errors import IntegrityError


def read_all(source: SectionSource, size: int) -> bytes:
    out = bytearray()
    while chunk := source.read(size):
        out += chunk
    return bytes(out)


def split(data: bytes, step: int) -> tuple[dict[str, bytes], SectionSplitter]:
    sinks: dict[str, Collect] = {}

    def route(name: str, size: int | None) -> Collect:
        return sinks.setdefault(name, Collect())

    splitter = SectionSplitter(route)
    for start in range(0, len(data), step):
        splitter.write(data[start : start + step])
    return {name: bytes(sink.data) for name, sink in sinks.items()}, splitter


def sample() -> SectionSource:
    return SectionSource(
        [
            Part(SCHEMA, 5, b"ddl!!"),
            Part("file:primary-app", 0, b""),
            Part("file:standby-app", 3, io.BytesIO(b"log")),
            Part(DUMP, None, io.BytesIO(bytes(range(256)) * 1000)),
        ]
    )


@pytest.mark.parametrize("read_size,write_size", [(1, 7), (7, 1), (4096, 3), (1 << 20, 1 << 20)])
def test_sections_round_trip_whatever_the_chunking(read_size: int, write_size: int) -> None:
    data = read_all(sample(), read_size)
    assert data.startswith(MAGIC)
    parts, splitter = split(data, write_size)
    splitter.finish()
    assert parts == {
        SCHEMA: b"ddl!!",
        "file:primary-app": b"",
        "file:standby-app": b"log",
        DUMP: bytes(range(256)) * 1000,
    }
    assert [name for name, _ in splitter.sections] == [SCHEMA, "file:primary-app", "file:standby-app", DUMP]


def test_a_route_returning_none_drops_that_section() -> None:
    data = read_all(sample(), 4096)
    kept = Collect()
    splitter = SectionSplitter(lambda name, size: kept if name == DUMP else None)
    splitter.write(data)
    splitter.finish()
    assert bytes(kept.data) == bytes(range(256)) * 1000


def test_content_cut_inside_a_sized_section_is_truncated() -> None:
    data = read_all(SectionSource([Part(SCHEMA, 10, b"0123456789"), Part(DUMP, None, b"x")]), 4096)
    _, splitter = split(data[: len(MAGIC) + len(frame(SCHEMA, 10)) + 4], 3)
    with pytest.raises(IntegrityError, match="truncated"):
        splitter.finish()


def test_foreign_content_is_refused() -> None:
    splitter = SectionSplitter(lambda name, size: None)
    with pytest.raises(IntegrityError, match="section marker"):
        splitter.write(b"PGDMP\x01\x0e\x00 not ours")


def test_a_file_that_delivers_fewer_bytes_than_announced_fails_the_stream() -> None:
    source = SectionSource([Part("file:primary-app", 10, io.BytesIO(b"short")), Part(DUMP, None, b"")])
    with pytest.raises(IntegrityError, match="delivered 5 bytes, not the 10"):
        read_all(source, 4096)


def test_only_the_last_section_may_run_to_the_end() -> None:
    with pytest.raises(ValueError, match="only the last"):
        SectionSource([Part(DUMP, None, b""), Part(SCHEMA, 0, b"")])
