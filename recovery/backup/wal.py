"""WAL archive objects on the backup stores: names, keys and the manifest beside each one (pure).

Every file PostgreSQL archives (a 16 MiB segment, a `.history` or a `.backup` file) is stored as one
encrypted object plus a small JSON manifest, in a WAL series named after the realtime backup of the day
it was archived: `orders/<YYYYMMDD>-orders-realtime.wal/<file>` and `<file>.json`. The series keeps the
plan's order of parts (date, domain, kind) and a WAL file name is unique in a cluster's history, so the
key never collides; the catalog ignores these keys (they are not `.bak` names). The WAL belongs to the
whole cluster, so the transactions domain reads the same series as orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from recovery.backup.keys import backup_context
from recovery.backup.manifest import KeyInfo, Sha256Hex, Sizes, StoredDocument
from recovery.errors import UsageError

WAL_DOMAIN = "orders"
SERIES_SUFFIX = ".wal"
WAL_MANIFEST_SUFFIX = ".json"
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024

_SEGMENT = re.compile(r"^(?P<tli>[0-9A-F]{8})(?P<log>[0-9A-F]{8})(?P<seg>[0-9A-F]{8})\Z")
_BACKUP_HISTORY = re.compile(r"^[0-9A-F]{24}\.[0-9A-F]{8}\.backup\Z")
_TIMELINE_HISTORY = re.compile(r"^[0-9A-F]{8}\.history\Z")
_LSN = re.compile(r"^(?P<hi>[0-9A-Fa-f]{1,8})/(?P<lo>[0-9A-Fa-f]{1,8})\Z")


def is_wal_file_name(name: str) -> bool:
    """A segment, backup history or timeline history file name, as PostgreSQL archives them."""
    return bool(_SEGMENT.match(name) or _BACKUP_HISTORY.match(name) or _TIMELINE_HISTORY.match(name))


def parse_lsn(text: str) -> int:
    match = _LSN.match(text.strip())
    if match is None:
        raise UsageError(f"{text!r} is not a PostgreSQL LSN; expected e.g. 0/3000060")
    return (int(match["hi"], 16) << 32) | int(match["lo"], 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(frozen=True, order=True)
class Segment:
    """One WAL segment: timeline and segment number (the position divided by the segment size)."""

    timeline: int
    number: int

    def name(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
        per_log = 0x1_0000_0000 // segment_size
        return f"{self.timeline:08X}{self.number // per_log:08X}{self.number % per_log:08X}"

    @classmethod
    def parse(cls, name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
        match = _SEGMENT.match(name)
        if match is None:
            raise UsageError(f"{name!r} is not a WAL segment name (24 hex digits)")
        per_log = 0x1_0000_0000 // segment_size
        return cls(int(match["tli"], 16), int(match["log"], 16) * per_log + int(match["seg"], 16))

    @classmethod
    def containing(cls, lsn: str, timeline: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
        return cls(timeline, parse_lsn(lsn) // segment_size)


def series_id(day: date, system_identifier: str | None = None) -> str:
    """The WAL series of a day and a cluster: `<YYYYMMDD>-orders-realtime.<system identifier>.wal`.

    A WAL file name restarts at `000000010000000000000001` in a cluster made anew by initdb, so the day
    alone cannot tell two clusters apart: the cluster's system identifier is part of the series. Series
    written before carried no identifier (`<YYYYMMDD>-orders-realtime.wal`).
    """
    cluster = f".{system_identifier}" if system_identifier else ""
    return f"{day:%Y%m%d}-{WAL_DOMAIN}-realtime{cluster}{SERIES_SUFFIX}"


def series_system(series: str) -> str | None:
    """The cluster's system identifier a series belongs to; None for a series written without one."""
    middle = series.removesuffix(SERIES_SUFFIX).split(".")
    return middle[1] if len(middle) == 2 and middle[1].isdigit() else None


# XLogLongPageHeaderData: xlp_magic u16, xlp_info u16, xlp_tli u32, xlp_pageaddr u64, xlp_rem_len u32,
# padding to 24 bytes, then xlp_sysid u64 (little-endian on the hosts we run on).
_XLP_LONG_HEADER = 0x0002


def segment_system_identifier(raw: bytes) -> str | None:
    """The system identifier written in a WAL segment's first page header; None when it has none."""
    if len(raw) < 32 or not int.from_bytes(raw[2:4], "little") & _XLP_LONG_HEADER:
        return None
    return str(int.from_bytes(raw[24:32], "little"))


def wal_object_key(series: str, file_name: str) -> str:
    return f"{WAL_DOMAIN}/{series}/{file_name}"


def wal_manifest_key(series: str, file_name: str) -> str:
    return wal_object_key(series, file_name) + WAL_MANIFEST_SUFFIX


def codec_id(series: str, file_name: str) -> str:
    """The id bound into the encrypted header: a segment cannot be passed off as another one."""
    return f"{series}/{file_name}"


def wal_key_context(series: str, file_name: str) -> dict[str, str]:
    """The encryption context of a WAL file's data key: its data key opens that file only."""
    return backup_context(codec_id(series, file_name), WAL_DOMAIN, "wal")


@dataclass(frozen=True)
class WalKey:
    """A WAL object found in a store listing."""

    series: str
    file_name: str

    @property
    def object_key(self) -> str:
        return wal_object_key(self.series, self.file_name)

    @property
    def manifest_key(self) -> str:
        return wal_manifest_key(self.series, self.file_name)


def parse_wal_keys(keys: list[str]) -> list[WalKey]:
    """The WAL objects among a store's keys under `orders/` (manifests and foreign keys are skipped)."""
    found: list[WalKey] = []
    for key in keys:
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != WAL_DOMAIN or not parts[1].endswith(SERIES_SUFFIX):
            continue
        if is_wal_file_name(parts[2]):
            found.append(WalKey(parts[1], parts[2]))
    return sorted(found, key=lambda item: (item.file_name, item.series))


class WalManifest(StoredDocument):
    """What one archived WAL file is and how it is stored (never the data key itself)."""

    document_name: ClassVar[str] = "WAL manifest"

    manifest_format: Literal[1] = 1
    kind: Literal["wal"] = "wal"
    format_version: int = Field(ge=1)
    series: str
    file_name: str
    written_at: datetime = Field(description="Last write of the file on the database host (UTC)")
    shipped_at: datetime
    sizes: Sizes
    sha256: Sha256Hex
    chunk_size: int = Field(gt=0)
    key: KeyInfo
    # The cluster that wrote the file (pg_control's system identifier); None in older manifests.
    system_identifier: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")

    @field_validator("written_at", "shipped_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("times must carry a time zone")
        return value.astimezone(UTC)

    @field_validator("file_name")
    @classmethod
    def _wal_name(cls, value: str) -> str:
        if not is_wal_file_name(value):
            raise ValueError(f"{value!r} is not a WAL file name")
        return value


class RestorePoint(StoredDocument):
    """A named restore point: where it is in the WAL and when it was taken."""

    document_name: ClassVar[str] = "restore point record"

    manifest_format: Literal[1] = 1
    kind: Literal["restore-point"] = "restore-point"
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    lsn: str
    timeline: int = Field(ge=1)
    created_at: datetime
    segment: str


RESTORE_POINT_FOLDER = "restore-points"


def restore_point_key(name: str) -> str:
    return f"{WAL_DOMAIN}/{RESTORE_POINT_FOLDER}/{name}{WAL_MANIFEST_SUFFIX}"


def check_restore_point_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        raise UsageError(
            f"restore point name {name!r} is not allowed; use 1-63 letters, digits, '.', '_' or '-'"
        )
    return name
