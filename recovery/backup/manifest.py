"""The manifest stored beside every backup object (`<name>.manifest.json`).

It says what the backup holds (domain, kind, source position, schema and service version, per-table
row counts and content hashes), how it is stored (sizes, sha256 of the stored object, chunk size,
format version) and how to open it (key source, key id and the wrapped data key; never the data key).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from recovery.backup.keys import DataKey, KeyProvider, Mac, backup_context
from recovery.backup.naming import BackupName, Domain, Kind
from recovery.errors import IntegrityError, UsageError

MANIFEST_FORMAT = 1


def _b64_decode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError("not valid base64") from exc


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_b64_decode),
    PlainSerializer(lambda raw: base64.b64encode(raw).decode("ascii"), return_type=str),
]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoredDocument(_Frozen):
    """A JSON document stored beside the backups in both copies: written indented, read back strictly;
    a damaged or foreign one is an IntegrityError naming where it came from."""

    document_name: ClassVar[str] = "document"

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes, origin: str) -> Self:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise IntegrityError(
                f"{cls.document_name} {origin} is damaged or not a {cls.document_name} "
                f"({where}: {first['msg']}); use the other copy"
            ) from None


class SourcePosition(_Frozen):
    """Where in the source database's history the backup was taken."""

    at: datetime = Field(description="Database time the backup's data is consistent with (UTC)")
    lsn: str | None = Field(default=None, pattern=r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
    restore_point: str | None = Field(default=None, description="Named restore point taken at this position")

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("the source time must carry a time zone")
        return value.astimezone(UTC)


TableHash = Literal["hashtextextended", "md5", "hashrecordextended", "sha256"]


class TableSummary(_Frozen):
    name: str = Field(min_length=1)
    rows: int = Field(ge=0)
    content_hash: str = Field(min_length=1, description="Hash of the table's rows in key order (hex)")
    # How content_hash was computed: a fingerprint algorithm (recovery.verify.fingerprint) for tables,
    # sha256 for host files. Manifests written before this field hashed tables with hashtextextended.
    algorithm: TableHash = "hashtextextended"


class Sizes(_Frozen):
    raw: int = Field(ge=0, description="Bytes given to the encoder")
    compressed: int = Field(ge=0, description="Bytes of the zstd stream")
    stored: int = Field(ge=0, description="Bytes of the encrypted object")


class KeyInfo(_Frozen):
    source: Literal["kms", "keyring"]
    key_id: str = Field(min_length=1)
    wrapped_data_key: Base64Bytes


class ManifestMac(_Frozen):
    """Who authenticated the manifest, and the code: HMAC-SHA256 over `Manifest.signed_bytes()`."""

    source: Literal["kms", "keyring"]
    key_id: str = Field(min_length=1)
    value: Base64Bytes


class Manifest(StoredDocument):
    document_name: ClassVar[str] = "backup manifest"

    manifest_format: Literal[1] = 1
    format_version: int = Field(ge=1, description="Version of the encrypted object's format")
    backup_id: str
    domain: Domain
    kind: Kind
    created_at: datetime
    source: SourcePosition
    schema_version: str
    service_version: str
    tables: tuple[TableSummary, ...]
    sizes: Sizes
    sha256: Sha256Hex = Field(description="sha256 of the stored (encrypted) object")
    chunk_size: int = Field(gt=0)
    key: KeyInfo
    # Written by the runbook side with a key the order hosts cannot use; a manifest without a valid one
    # is never trusted (recovery.backup.catalog). Absent only in manifests written before it existed.
    mac: ManifestMac | None = None
    # Set when this backup has no object of its own: the backup id whose stored object holds its bytes
    # (one realtime base backup of the cluster serves both realtime domains). Sizes, sha256, chunk size
    # and key are then that object's; the MAC covers this field, so it cannot be pointed elsewhere.
    shares: str | None = None

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at must carry a time zone")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _name_agrees(self) -> Manifest:
        try:
            name = BackupName.parse(self.backup_id)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        if (name.domain, name.kind) != (self.domain, self.kind):
            raise ValueError(f"backup id {self.backup_id} does not match domain {self.domain}/{self.kind}")
        if self.shares is not None:
            try:
                owner = BackupName.parse(self.shares)
            except UsageError as exc:
                raise ValueError(f"shares: {exc}") from None
            if owner.kind != self.kind or owner.backup_id == self.backup_id:
                raise ValueError(f"backup {self.backup_id} cannot share the object of {self.shares}")
        return self

    @property
    def name(self) -> BackupName:
        return BackupName.parse(self.backup_id)

    def to_json(self) -> bytes:
        # Without `shares` while unset: every manifest but a sharing one stays readable by older readers.
        unset = set() if self.shares else {"shares"}
        return self.model_dump_json(indent=2, exclude=unset).encode("utf-8") + b"\n"

    @property
    def object_name(self) -> BackupName:
        """The backup whose stored object holds this backup's bytes: its own, or the one it shares."""
        return BackupName.parse(self.shares or self.backup_id)

    def table(self, name: str) -> TableSummary | None:
        return next((table for table in self.tables if table.name == name), None)

    @property
    def key_context(self) -> dict[str, str]:
        """The encryption context its data key was wrapped with (and must be unwrapped with): that of
        the backup whose object it is."""
        owner = self.object_name
        return backup_context(owner.backup_id, owner.domain, owner.kind)

    def signed_bytes(self) -> bytes:
        """The canonical form the MAC covers: every field but the MAC, sorted keys, no spaces."""
        # `shares` only when set: manifests written before it existed keep the bytes their MAC covers.
        fields = self.model_dump(mode="json", exclude={"mac"} if self.shares else {"mac", "shares"})
        body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return b"order-recovery backup manifest v1\n" + body.encode("ascii")

    def signed(self, keys: KeyProvider) -> Manifest:
        mac = keys.mac(self.signed_bytes())
        return self.model_copy(
            update={"mac": ManifestMac(source=mac.source, key_id=mac.key_id, value=mac.value)}
        )

    def authentication_problem(self, keys: KeyProvider | None) -> str | None:
        """None when the manifest authenticates under the target's keys, else why it does not."""
        if self.mac is None:
            return "it carries no authentication code"
        if keys is None:
            return "the target's keys are not at hand to check its authentication code"
        return keys.verify_mac(self.signed_bytes(), Mac(self.mac.source, self.mac.key_id, self.mac.value))

    def unwrap_key(self, keys: KeyProvider) -> DataKey:
        return keys.unwrap(self.key.key_id, self.key.wrapped_data_key, context=self.key_context)


def key_info(data_key: DataKey) -> KeyInfo:
    return KeyInfo(source=data_key.source, key_id=data_key.key_id, wrapped_data_key=data_key.wrapped)
