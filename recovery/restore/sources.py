"""Where a restore reads each domain from: a chosen backup becomes a `Source` per domain.

Each chosen copy is opened first (`open_copy`): its own manifest read again from that copy and
authenticated, its data key unwrapped with that manifest, before anything is created. A daily backup's
section (`dump`, `schema`) is then streamed out of the codec with that copy's manifest and key; a realtime
choice's source is the scratch cluster point-in-time recovery made (a `FromDatabase`). A copy that fails
while it is opened or read raises `CopyReadFailed`, which names the backup and the copy, so the restore can
mark exactly that copy damaged and choose again (the other copy first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recovery.backup.catalog import Catalog
from recovery.backup.keys import DataKey, KeyProvider
from recovery.backup.manifest import Manifest
from recovery.backup.naming import BackupName
from recovery.backup.pgdump import ByteSink
from recovery.backup.repository import read_backup
from recovery.backup.sections import DUMP, SCHEMA, SectionSplitter
from recovery.backup.stores import ObjectStore
from recovery.errors import IntegrityError, KeyUnavailable, PreconditionFailed, RecoveryError
from recovery.restore.database import FromDatabase, FromWriter, Source
from recovery.restore.selection import DomainChoice


class CopyReadFailed(IntegrityError):
    """One copy of one chosen backup failed while it was opened (its manifest missing, untrusted or
    holding a data key that does not unwrap), read or recovered: the typed fields say which, so the caller
    never has to find it in the message."""

    def __init__(self, cause: RecoveryError, choice: DomainChoice) -> None:
        super().__init__(cause.message, code=cause.code)
        self.backup_id = choice.backup_id
        self.copy = choice.copy


@dataclass(frozen=True)
class OpenedCopy:
    """A chosen copy with its own manifest (authenticated) and the data key that manifest unwrapped."""

    choice: DomainChoice
    store: ObjectStore
    manifest: Manifest
    data_key: DataKey
    keys: KeyProvider

    @property
    def name(self) -> BackupName:
        return BackupName.parse(self.choice.backup_id)


def open_copy(catalog: Catalog, choice: DomainChoice) -> OpenedCopy:
    """Read the chosen copy's own manifest and unwrap its data key with it.

    Any failure is this copy's (`CopyReadFailed`), the other copy's manifest is never borrowed: a copy
    damaged in its manifest alone (a zeroed hash, a data key of another backup) must not make the
    other, good copy unreadable, nor refuse the restore while that copy is there."""
    if catalog.keys is None:
        raise KeyUnavailable("restoring needs the target's keys; check its key source")
    name = BackupName.parse(choice.backup_id)
    try:
        manifest = catalog.trusted_manifest(choice.copy, name)
        data_key = manifest.unwrap_key(catalog.keys)
    except RecoveryError as exc:
        raise CopyReadFailed(exc, choice) from exc
    return OpenedCopy(choice, catalog.store(choice.copy), manifest, data_key, catalog.keys)


def open_copies(catalog: Catalog, choices: Sequence[DomainChoice]) -> dict[str, OpenedCopy]:
    """Every chosen copy opened, by backup id (one choice per domain, so one copy per backup)."""
    return {choice.backup_id: open_copy(catalog, choice) for choice in choices}


class _SectionRead(Exception):
    """Raised by the splitter's router once the wanted section is complete: stop decoding early."""


def section_source(opened: OpenedCopy, section: str) -> Source:
    """A restore source streaming one section of a stored daily backup out of the codec."""

    def write_to(sink: ByteSink) -> None:
        seen: list[str] = []

        def route(found: str, size: int | None) -> ByteSink | None:
            if seen and seen[-1] == section:
                raise _SectionRead  # the wanted section is complete; the rest is not needed
            seen.append(found)
            return sink if found == section else None

        splitter = SectionSplitter(route)
        try:
            read_backup(
                opened.store, opened.name, splitter, opened.keys, opened.manifest, data_key=opened.data_key
            )
        except _SectionRead:
            return
        splitter.finish()
        if section not in seen:
            raise IntegrityError(
                f"{opened.name} has no {section} section; it is not a daily backup of this format"
            )

    return FromWriter(write_to)


@dataclass(frozen=True)
class Sources:
    schema: Source
    domains: Mapping[str, Source]


def sources_for(opened: Sequence[OpenedCopy], recovered: Mapping[str, FromDatabase] | None = None) -> Sources:
    """One source per chosen domain plus the schema (from the first daily backup chosen, else from a
    recovered cluster). A realtime choice's source is its recovered scratch cluster (`recovered`)."""
    found = recovered or {}
    domains: dict[str, Source] = {}
    for copy in opened:
        choice = copy.choice
        if choice.kind == "realtime":
            if choice.domain not in found:
                raise PreconditionFailed(
                    f"{choice.backup_id} is realtime: recover it to a scratch cluster first"
                )
            domains[choice.domain] = found[choice.domain]
            continue
        domains[choice.domain] = _choice_section(copy, DUMP)
    daily = [copy for copy in opened if copy.choice.kind == "daily"]
    if not daily:
        return Sources(found[opened[0].choice.domain], domains)
    return Sources(_choice_section(daily[0], SCHEMA), domains)


def _choice_section(opened: OpenedCopy, section: str) -> Source:
    """One section of a chosen daily backup, its read failures attributed to the chosen copy."""
    inner = section_source(opened, section)
    assert isinstance(inner, FromWriter)

    def write_to(sink: ByteSink) -> None:
        try:
            inner.write_to(sink)
        except CopyReadFailed:
            raise
        except IntegrityError as exc:
            raise CopyReadFailed(exc, opened.choice) from exc

    return FromWriter(write_to)
