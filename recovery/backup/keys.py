"""Per-backup data keys: a fresh 256-bit key for every backup, wrapped by KMS or by an offline keyring.

The data key encrypts one backup and nothing else; only its wrapped form is stored (in the manifest).
KMS wraps it in the lab (moto) and in AWS. Air-gapped sites use a keyring file instead: a JSON file,
mode 0600, holding key-encryption keys by id; the data key is wrapped with AES key wrap (RFC 3394),
which also detects a wrong key-encryption key when unwrapping. Key material never appears in a message,
a repr or a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from recovery.errors import KeyUnavailable

if TYPE_CHECKING:
    from recovery.drivers.aws import AwsDriver
    from recovery.targets.model import KeySource

DATA_KEY_BYTES = 32
KeySourceKind = Literal["kms", "keyring"]


@dataclass(frozen=True)
class DataKey:
    """A data key in the clear plus how it is stored; `plaintext` is never shown."""

    source: KeySourceKind
    key_id: str
    wrapped: bytes
    plaintext: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.plaintext) != DATA_KEY_BYTES:
            raise KeyUnavailable(f"the data key under {self.key_id} is not 256 bits; it cannot be used")


class KeyProvider(Protocol):
    """Makes fresh data keys and opens wrapped ones."""

    source: KeySourceKind

    def new_data_key(self) -> DataKey: ...

    def unwrap(self, key_id: str, wrapped: bytes) -> DataKey: ...


class KmsKeys:
    """Data keys from KMS `generate_data_key`, opened again with `decrypt`."""

    source: KeySourceKind = "kms"

    def __init__(self, aws: AwsDriver, key_id: str, region: str) -> None:
        self._aws = aws
        self._key_id = key_id
        self._region = region

    def new_data_key(self) -> DataKey:
        kms = self._aws.kms(self._region)
        with self._aws.translate("generate a data key", f"KMS key {self._key_id}"):
            answer = kms.generate_data_key(KeyId=self._key_id, KeySpec="AES_256")
        # KMS answers with the key's ARN; store that so unwrapping never depends on an alias.
        return DataKey("kms", answer["KeyId"], answer["CiphertextBlob"], answer["Plaintext"])

    def unwrap(self, key_id: str, wrapped: bytes) -> DataKey:
        kms = self._aws.kms(self._region)
        with self._aws.translate("decrypt the data key", f"KMS key {key_id}"):
            answer = kms.decrypt(CiphertextBlob=wrapped, KeyId=key_id)
        return DataKey("kms", key_id, wrapped, answer["Plaintext"])


class Keyring:
    """An offline keyring: `{"format": 1, "active": "<id>", "keys": {"<id>": "<base64 32 bytes>"}}`."""

    source: KeySourceKind = "keyring"

    def __init__(self, keys: dict[str, bytes], active: str, origin: str) -> None:
        if active not in keys:
            raise KeyUnavailable(f"keyring {origin} names active key {active!r} but does not hold it")
        self._keys = dict(keys)
        self._active = active
        self._origin = origin

    def __repr__(self) -> str:
        return f"Keyring({self._origin}, ids={sorted(self._keys)})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read a keyring file, refusing it unless only its owner can read it (mode 0600)."""
        check_keyring_mode(path)
        try:
            document: Any = json.loads(path.read_bytes())
        except (OSError, ValueError):
            raise KeyUnavailable(
                f"keyring {path} cannot be read as JSON; restore it from its escrow copy"
            ) from None
        return cls.from_document(document, str(path))

    @classmethod
    def from_document(cls, document: Any, origin: str) -> Keyring:
        bad = KeyUnavailable(
            f"keyring {origin} is malformed; expected "
            '{"format": 1, "active": "<id>", "keys": {"<id>": "<base64 of 32 bytes>"}}'
        )
        if not isinstance(document, dict) or document.get("format") != 1:
            raise bad
        active, entries = document.get("active"), document.get("keys")
        if not isinstance(active, str) or not isinstance(entries, dict) or not entries:
            raise bad
        keys: dict[str, bytes] = {}
        for key_id, encoded in entries.items():
            try:
                material = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
            except (binascii.Error, ValueError):
                material = b""
            if len(material) != DATA_KEY_BYTES or not key_id:
                # Name the id only: the material itself must never reach a message.
                raise KeyUnavailable(f"keyring {origin}: key {key_id!r} is not base64 of 32 bytes")
            keys[key_id] = material
        return cls(keys, active, origin)

    def new_data_key(self) -> DataKey:
        plaintext = os.urandom(DATA_KEY_BYTES)
        wrapped = aes_key_wrap(self._keys[self._active], plaintext)
        return DataKey("keyring", self._active, wrapped, plaintext)

    def unwrap(self, key_id: str, wrapped: bytes) -> DataKey:
        kek = self._keys.get(key_id)
        if kek is None:
            raise KeyUnavailable(
                f"keyring {self._origin} has no key {key_id!r}; load the keyring that holds it"
            )
        try:
            plaintext = aes_key_unwrap(kek, wrapped)
        except (InvalidUnwrap, ValueError):
            raise KeyUnavailable(
                f"key {key_id!r} of keyring {self._origin} does not unwrap this data key; "
                "the manifest is damaged or belongs to another keyring"
            ) from None
        return DataKey("keyring", key_id, wrapped, plaintext)


def check_keyring_mode(path: Path) -> None:
    try:
        info = path.stat()
    except OSError:
        raise KeyUnavailable(
            f"keyring {path} does not exist or cannot be read; check key_source.keyring"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyUnavailable(f"keyring {path} is not a regular file; point keys.keyring at the keyring file")
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o600:
        raise KeyUnavailable(f"keyring {path} has mode {mode:04o}; run `chmod 600 {path}` and retry")
    if info.st_uid != os.geteuid():
        raise KeyUnavailable(f"keyring {path} belongs to uid {info.st_uid}, not to this user; fix its owner")


def write_keyring(path: Path, keys: dict[str, bytes], active: str) -> None:
    """Create a new keyring file with mode 0600 from the start (never readable by others, even briefly)."""
    document = {
        "format": 1,
        "active": active,
        "keys": {key_id: base64.b64encode(material).decode("ascii") for key_id, material in keys.items()},
    }
    Keyring.from_document(document, str(path))  # refuse a malformed keyring before writing anything
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        json.dump(document, handle)


def key_provider(source: KeySource, aws: AwsDriver) -> KeyProvider:
    """The key provider a target's `keys` section describes."""
    if source.kind == "kms":
        if source.kms_key_id is None or source.region is None:
            raise KeyUnavailable("the target's kms key source lacks kms_key_id or region; complete it")
        return KmsKeys(aws, source.kms_key_id, source.region)
    if source.keyring is None:
        raise KeyUnavailable("the target's keyring key source lacks the keyring path; complete it")
    return Keyring.load(source.keyring)
