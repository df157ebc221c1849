"""The codec: round trips, and every kind of damage refused before unauthenticated data is released."""

from __future__ import annotations

import io
import os
import struct
import threading
import tracemalloc
from collections.abc import Iterator

import pytest
import zstandard

from recovery.backup.codec import MIN_CHUNK_SIZE, _Reader, decode, encode, read_header
from recovery.backup.keys import DataKey
from recovery.errors import IntegrityError, KeyUnavailable, UsageError

BACKUP_ID = "20261125-orders-daily"
SMALL_CHUNK = MIN_CHUNK_SIZE


def make_key(key_id: str = "kek-1", material: bytes | None = None) -> DataKey:
    return DataKey("keyring", key_id, b"wrapped", material or os.urandom(32))


def order_rows(count: int, start: int = 0) -> bytes:
    return b"".join(
        b"%d\t%d\tpaid\t%d\t2026-11-25 10:%02d:00+00\n" % (i, i % 977, (i * 37) % 100000, i % 60)
        for i in range(start, start + count)
    )


def encoded(data: bytes, key: DataKey, backup_id: str = BACKUP_ID, chunk_size: int = SMALL_CHUNK) -> bytes:
    out = io.BytesIO()
    encode(io.BytesIO(data), out, key, backup_id, chunk_size=chunk_size)
    return out.getvalue()


def record_offsets(stream: bytes) -> list[int]:
    """Where each record starts, found by walking the format as documented."""
    reader = _Reader(io.BytesIO(stream))
    _, header = read_header(reader, "test")
    offsets, position = [], len(header)
    while position < len(stream):
        offsets.append(position)
        _, length = struct.unpack_from(">BI", stream, position)
        position += 5 + length
    return offsets


@pytest.fixture(scope="module")
def key() -> DataKey:
    return make_key()


@pytest.fixture(scope="module")
def incompressible() -> bytes:
    # Random bytes do not compress, so 3.5 chunks of input make 4 records: small and multi-chunk.
    return os.urandom(SMALL_CHUNK * 3 + SMALL_CHUNK // 2)


@pytest.fixture(scope="module")
def small_stream(incompressible: bytes, key: DataKey) -> bytes:
    return encoded(incompressible, key)


def test_round_trip_from_file_object_keeps_bytes_and_counts(key: DataKey) -> None:
    data = order_rows(200_000)
    out, back = io.BytesIO(), io.BytesIO()
    result = encode(io.BytesIO(data), out, key, BACKUP_ID, chunk_size=64 * 1024)
    decoded = decode(io.BytesIO(out.getvalue()), back, key, BACKUP_ID)
    assert back.getvalue() == data
    assert result.raw_bytes == decoded.raw_bytes == len(data)
    assert result.stored_bytes == decoded.stored_bytes == len(out.getvalue())
    assert result.sha256 == decoded.sha256
    assert result.compressed_bytes < len(data) // 3  # order-like rows compress well at level 1
    assert result.chunks == decoded.chunks > 1


def test_round_trip_from_iterator_with_threads_and_odd_block_sizes(key: DataKey) -> None:
    data = order_rows(50_000)
    blocks: Iterator[bytes] = (data[i : i + 7777] for i in range(0, len(data), 7777))
    out = io.BytesIO()
    encode(blocks, out, key, BACKUP_ID, chunk_size=SMALL_CHUNK, threads=2, prefetch=2)
    stored = out.getvalue()
    pieces = (stored[i : i + 1000] for i in range(0, len(stored), 1000))
    back = io.BytesIO()
    decode(pieces, back, key, BACKUP_ID)
    assert back.getvalue() == data


@pytest.mark.parametrize("size", [0, 1, SMALL_CHUNK, SMALL_CHUNK * 2])
def test_round_trip_edge_sizes(key: DataKey, size: int) -> None:
    data = os.urandom(size)
    back = io.BytesIO()
    decode(io.BytesIO(encoded(data, key)), back, key, BACKUP_ID)
    assert back.getvalue() == data


def test_stored_stream_contains_no_plaintext(key: DataKey) -> None:
    data = b"customer-secret-email@example.com\n" * 1000
    assert b"customer-secret" not in encoded(data, key)


def test_two_encodings_of_the_same_input_differ(key: DataKey) -> None:
    data = order_rows(1000)
    assert encoded(data, key) != encoded(data, key)  # fresh nonce prefix per object


def test_every_single_byte_flip_is_refused(small_stream: bytes, incompressible: bytes, key: DataKey) -> None:
    assert len(record_offsets(small_stream)) == 4
    for position in range(len(small_stream)):
        damaged = bytearray(small_stream)
        damaged[position] ^= 0xFF
        sink = io.BytesIO()
        with pytest.raises(IntegrityError):
            decode(io.BytesIO(bytes(damaged)), sink, key, BACKUP_ID)
        # Only chunks that authenticated before the flip may have been released.
        assert incompressible.startswith(sink.getvalue()), f"flip at {position} released bad data"


def test_truncation_anywhere_is_refused(small_stream: bytes, incompressible: bytes, key: DataKey) -> None:
    boundaries = record_offsets(small_stream)
    for length in range(len(small_stream)):
        sink = io.BytesIO()
        with pytest.raises(IntegrityError) as caught:
            decode(io.BytesIO(small_stream[:length]), sink, key, BACKUP_ID)
        assert incompressible.startswith(sink.getvalue())
        if length in boundaries[1:]:
            assert "without its end-of-stream marker" in caught.value.message


def test_truncation_after_released_chunks_still_fails(
    small_stream: bytes, incompressible: bytes, key: DataKey
) -> None:
    last = record_offsets(small_stream)[-1]
    sink = io.BytesIO()
    with pytest.raises(IntegrityError, match="truncated"):
        decode(io.BytesIO(small_stream[:last]), sink, key, BACKUP_ID)
    assert 0 < len(sink.getvalue()) < len(incompressible)  # released, yet the decode failed


def test_swapped_chunks_are_refused(small_stream: bytes, key: DataKey) -> None:
    first, second, third, _ = record_offsets(small_stream)
    swapped = (
        small_stream[:first] + small_stream[second:third] + small_stream[first:second] + small_stream[third:]
    )
    sink = io.BytesIO()
    with pytest.raises(IntegrityError, match="chunk 0 failed authentication"):
        decode(io.BytesIO(swapped), sink, key, BACKUP_ID)
    assert sink.getvalue() == b""


def test_dropped_middle_chunk_is_refused(small_stream: bytes, key: DataKey) -> None:
    _, second, third, _ = record_offsets(small_stream)
    with pytest.raises(IntegrityError, match="chunk 1 failed authentication"):
        decode(io.BytesIO(small_stream[:second] + small_stream[third:]), io.BytesIO(), key, BACKUP_ID)


def test_trailing_bytes_are_refused(small_stream: bytes, key: DataKey) -> None:
    with pytest.raises(IntegrityError, match="after its end-of-stream marker"):
        decode(io.BytesIO(small_stream + b"\x00"), io.BytesIO(), key, BACKUP_ID)


def test_wrong_key_material_is_refused_as_key_unavailable(small_stream: bytes, key: DataKey) -> None:
    other = make_key(key.key_id)
    sink = io.BytesIO()
    with pytest.raises(KeyUnavailable, match="does not open backup"):
        decode(io.BytesIO(small_stream), sink, other, BACKUP_ID)
    assert sink.getvalue() == b""


def test_wrong_key_id_is_refused(small_stream: bytes, key: DataKey) -> None:
    with pytest.raises(KeyUnavailable, match="encrypted under key kek-1, not kek-2"):
        decode(io.BytesIO(small_stream), io.BytesIO(), make_key("kek-2", key.plaintext), BACKUP_ID)


def test_wrong_backup_id_is_refused(small_stream: bytes, key: DataKey) -> None:
    with pytest.raises(IntegrityError, match="belongs to backup 20261125-orders-daily"):
        decode(io.BytesIO(small_stream), io.BytesIO(), key, "20261125-orders-daily-2")


def test_header_from_another_backup_is_refused(incompressible: bytes, key: DataKey) -> None:
    mine = encoded(incompressible, key, "20261125-users-daily")
    theirs = encoded(incompressible, key, "20261125-users-daily-2")
    transplanted = theirs[: record_offsets(theirs)[0]] + mine[record_offsets(mine)[0] :]
    sink = io.BytesIO()
    with pytest.raises(IntegrityError, match="chunk 0 failed authentication"):
        decode(io.BytesIO(transplanted), sink, key, "20261125-users-daily-2")
    assert sink.getvalue() == b""


def test_not_a_backup_object_is_refused(key: DataKey) -> None:
    with pytest.raises(IntegrityError, match="not a backup object"):
        decode(io.BytesIO(b"PGDMP custom dump"), io.BytesIO(), key, BACKUP_ID)


def test_bad_parameters_are_refused_before_writing(key: DataKey) -> None:
    out = io.BytesIO()
    with pytest.raises(UsageError, match="chunk size"):
        encode(io.BytesIO(b"x"), out, key, BACKUP_ID, chunk_size=100)
    with pytest.raises(UsageError, match="ASCII"):
        encode(io.BytesIO(b"x"), out, key, "bäckup")
    assert out.getvalue() == b""


def test_source_errors_propagate_from_the_reader_thread(key: DataKey) -> None:
    def failing() -> Iterator[bytes]:
        yield b"x" * 1000
        raise OSError("pipe broke")

    with pytest.raises(OSError, match="pipe broke"):
        encode(failing(), io.BytesIO(), key, BACKUP_ID, prefetch=2)


class _CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


def _peak_encode_decode(total: int, key: DataKey) -> int:
    block = order_rows(20_000)
    blocks = (block for _ in range(total // len(block)))
    stored = io.BytesIO()
    tracemalloc.start()
    try:
        encode(blocks, stored, key, BACKUP_ID, chunk_size=1024 * 1024)
        encode_peak = tracemalloc.get_traced_memory()[1] - len(stored.getbuffer())
        tracemalloc.reset_peak()
        stored.seek(0)
        baseline = tracemalloc.get_traced_memory()[0]
        decode(stored, _CountingSink(), key, BACKUP_ID)
        decode_peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    return max(encode_peak, decode_peak)


def test_memory_does_not_grow_with_input_size(key: DataKey) -> None:
    small = _peak_encode_decode(16 * 1024 * 1024, key)
    large = _peak_encode_decode(128 * 1024 * 1024, key)
    assert large < 24 * 1024 * 1024, f"peak {large} bytes for 128 MiB of input"
    assert large < small * 2 + 4 * 1024 * 1024


class _FailingSink:
    def __init__(self, fail_after: int) -> None:
        self.writes = 0
        self.fail_after = fail_after

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes > self.fail_after:
            raise OSError("upload refused")
        return len(data)


def test_a_failing_sink_stops_the_reader_thread(key: DataKey) -> None:
    endless = (os.urandom(64 * 1024) for _ in range(10_000))
    with pytest.raises(OSError, match="upload refused"):
        encode(endless, _FailingSink(fail_after=2), key, BACKUP_ID, chunk_size=SMALL_CHUNK, prefetch=2)
    assert not [thread for thread in threading.enumerate() if thread.name == "backup-source-reader"]


def test_without_decompressing_the_sink_gets_one_zstd_stream_of_the_data() -> None:
    """What a restore sends a host that decompresses itself: authenticated, still compressed."""
    key = make_key()
    data = order_rows(20_000)
    stream = encoded(data, key)
    out = io.BytesIO()
    result = decode(io.BytesIO(stream), out, key, BACKUP_ID, decompress=False)
    assert result.raw_bytes == result.compressed_bytes == len(out.getvalue()) < len(data) // 2
    assert zstandard.ZstdDecompressor().decompressobj().decompress(out.getvalue()) == data
    damaged = bytearray(stream)
    damaged[-5] ^= 1
    with pytest.raises(IntegrityError, match="failed authentication"):
        decode(io.BytesIO(bytes(damaged)), io.BytesIO(), key, BACKUP_ID, decompress=False)
