"""Per-backup data keys: a fresh 256-bit key for every backup, wrapped by KMS or by an offline keyring.

The data key encrypts one backup and nothing else; only its wrapped form is stored (in the manifest).
KMS wraps it in the lab (moto) and in AWS. Air-gapped sites use a keyring file instead: a JSON file,
mode 0600, holding key-encryption keys by id; the data key is wrapped with AES key wrap (RFC 3394),
which also detects a wrong key-encryption key when unwrapping. Key material never appears in a message,
a repr or a log line.

Every data key is bound to what it encrypts: KMS gets an encryption context (`backup_id`, `domain`,
`kind`) that `Decrypt` must repeat, the keyring wraps under a key derived from the keyring key and the
same context. A wrapped key lifted into another backup's manifest does not open there.

The same providers authenticate manifests (`mac` / `verify_mac`): KMS `GenerateMac`/`VerifyMac` under a
separate HMAC key that only the runbook side may use (the order hosts have no grant on it), or for a
keyring an HMAC key derived from the keyring key. See docs/backup-format.md, "Who can do what".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from recovery.errors import KeyUnavailable

if TYPE_CHECKING:
    from recovery.drivers.aws import AwsDriver
    from recovery.targets.model import KeySource

DATA_KEY_BYTES = 32
KeySourceKind = Literal["kms", "keyring"]
KeyContext = Mapping[str, str]
# The KMS HMAC key that authenticates manifests when the target names none: the stacks and the lab
# create it under this alias.
DEFAULT_MANIFEST_MAC_KEY = "alias/order-recovery-manifests"
MAC_ALGORITHM = "HMAC_SHA_256"


def backup_context(backup_id: str, domain: str, kind: str) -> dict[str, str]:
    """The encryption context binding a data key to one backup (or WAL file): checked at unwrap."""
    return {"backup_id": backup_id, "domain": domain, "kind": kind}


def _canonical(context: KeyContext) -> bytes:
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode("utf-8")


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(key)


@dataclass(frozen=True)
class Mac:
    """An authentication code over a canonical document, and the key that made it."""

    source: KeySourceKind
    key_id: str
    value: bytes


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

    def new_data_key(self, *, context: KeyContext) -> DataKey: ...

    def unwrap(self, key_id: str, wrapped: bytes, *, context: KeyContext) -> DataKey: ...

    def mac(self, message: bytes) -> Mac: ...

    def verify_mac(self, message: bytes, mac: Mac) -> str | None:
        """None when `mac` authenticates `message` under a key of ours, else the reason it does not."""
        ...


def multi_region_key_in(key_arn: str, region: str) -> str | None:
    """The copy in `region` of a multi-region key's ARN (same key id, that region); None for anything
    else (a single-region key, a key id or alias without a region). Pure."""
    parts = key_arn.split(":")
    if len(parts) < 6 or parts[2] != "kms" or not parts[5].startswith("key/mrk-"):
        return None
    return ":".join([*parts[:3], region, *parts[4:]])


class KmsKeys:
    """Data keys from KMS `generate_data_key`, opened again with `decrypt`."""

    source: KeySourceKind = "kms"

    def __init__(
        self, aws: AwsDriver, key_id: str, region: str, mac_key_id: str = DEFAULT_MANIFEST_MAC_KEY
    ) -> None:
        self._aws = aws
        self._key_id = key_id
        self._region = region
        self._mac_key_id = mac_key_id
        self._mac_key_names: tuple[str, str] | None = None  # (ARN, key id) of the manifest key
        self._usable = False  # the key's state was seen Enabled by this provider

    def _check_usable(self) -> None:
        """Refuse a key KMS holds but would not use (disabled, pending deletion, pending import) before
        anything is encrypted under it: the refusal names the key's state, not a failed upload. Asked once
        per provider (one DescribeKey per run; the runbook role may describe the site key)."""
        if self._usable:
            return
        kms = self._aws.kms(self._region)
        with self._aws.translate("look up the backup key", f"KMS key {self._key_id}"):
            state = str(kms.describe_key(KeyId=self._key_id)["KeyMetadata"].get("KeyState", "Enabled"))
        if state != "Enabled":
            raise KeyUnavailable(
                f"KMS key {self._key_id} is {state}, so no backup can be encrypted under it; enable the key "
                "(or point the target's key source at a usable one) and run the backup again"
            )
        self._usable = True

    def new_data_key(self, *, context: KeyContext) -> DataKey:
        self._check_usable()
        kms = self._aws.kms(self._region)
        with self._aws.translate("generate a data key", f"KMS key {self._key_id}"):
            answer = kms.generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=dict(context)
            )
        # KMS answers with the key's ARN; store that so unwrapping never depends on an alias.
        return DataKey("kms", answer["KeyId"], answer["CiphertextBlob"], answer["Plaintext"])

    def unwrap(self, key_id: str, wrapped: bytes, *, context: KeyContext) -> DataKey:
        kms = self._aws.kms(self._region)
        # The stored ARN names the region the backup was taken in; after a failover the controller works
        # in the other region, where KMS opens it with its copy of the multi-region key.
        regional = multi_region_key_in(key_id, self._region) or key_id
        with self._aws.translate("decrypt the data key", f"KMS key {key_id}"):
            answer = kms.decrypt(CiphertextBlob=wrapped, KeyId=regional, EncryptionContext=dict(context))
        return DataKey("kms", key_id, wrapped, answer["Plaintext"])

    def mac(self, message: bytes) -> Mac:
        kms = self._aws.kms(self._region)
        with self._aws.translate("authenticate a manifest", f"KMS key {self._mac_key_id}"):
            answer = kms.generate_mac(Message=message, KeyId=self._mac_key_id, MacAlgorithm=MAC_ALGORITHM)
        return Mac("kms", answer["KeyId"], answer["Mac"])

    def verify_mac(self, message: bytes, mac: Mac) -> str | None:
        if mac.source != "kms":
            return f"it was authenticated by a {mac.source}, this target uses KMS"
        kms = self._aws.kms(self._region)
        # The MAC must come from our manifest key: a code made under any other HMAC key proves nothing.
        if self._mac_key_names is None:
            with self._aws.translate("look up the manifest key", f"KMS key {self._mac_key_id}"):
                metadata = kms.describe_key(KeyId=self._mac_key_id)["KeyMetadata"]
            self._mac_key_names = (str(metadata["Arn"]), str(metadata["KeyId"]))
        ours = self._mac_key_names[0]
        if mac.key_id not in self._mac_key_names:
            return f"it was authenticated with {mac.key_id}, not with this target's manifest key"
        with self._aws.translate("check a manifest's authentication", f"KMS key {ours}"):
            try:
                kms.verify_mac(Message=message, KeyId=ours, MacAlgorithm=MAC_ALGORITHM, Mac=mac.value)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "KMSInvalidMacException":
                    return "its authentication code does not match its content"
                raise
        return None


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

    def _wrapping_key(self, key_id: str, context: KeyContext) -> bytes:
        kek = self._keys.get(key_id)
        if kek is None:
            raise KeyUnavailable(
                f"keyring {self._origin} has no key {key_id!r}; load the keyring that holds it"
            )
        # One wrapping key per backup: the context is bound the way KMS binds its encryption context.
        return _derive(kek, b"order-recovery data key wrap v1\n" + _canonical(context))

    def new_data_key(self, *, context: KeyContext) -> DataKey:
        plaintext = os.urandom(DATA_KEY_BYTES)
        wrapped = aes_key_wrap(self._wrapping_key(self._active, context), plaintext)
        return DataKey("keyring", self._active, wrapped, plaintext)

    def unwrap(self, key_id: str, wrapped: bytes, *, context: KeyContext) -> DataKey:
        kek = self._wrapping_key(key_id, context)
        try:
            plaintext = aes_key_unwrap(kek, wrapped)
        except (InvalidUnwrap, ValueError):
            raise KeyUnavailable(
                f"key {key_id!r} of keyring {self._origin} does not unwrap this data key; "
                "the manifest is damaged, belongs to another backup or to another keyring"
            ) from None
        return DataKey("keyring", key_id, wrapped, plaintext)

    def _mac_key(self, key_id: str) -> bytes:
        return _derive(self._keys[key_id], b"order-recovery manifest mac v1")

    def mac(self, message: bytes) -> Mac:
        value = hmac.new(self._mac_key(self._active), message, hashlib.sha256).digest()
        return Mac("keyring", self._active, value)

    def verify_mac(self, message: bytes, mac: Mac) -> str | None:
        if mac.source != "keyring":
            return f"it was authenticated by {mac.source}, this target uses a keyring"
        if mac.key_id not in self._keys:
            return f"it was authenticated with key {mac.key_id!r}, which keyring {self._origin} lacks"
        expected = hmac.new(self._mac_key(mac.key_id), message, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac.value):
            return "its authentication code does not match its content"
        return None


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
        mac_key = source.manifest_mac_key_id or DEFAULT_MANIFEST_MAC_KEY
        return KmsKeys(aws, source.kms_key_id, source.region, mac_key)
    if source.keyring is None:
        raise KeyUnavailable("the target's keyring key source lacks the keyring path; complete it")
    return Keyring.load(source.keyring)
