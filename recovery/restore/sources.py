"""Where a restore reads each domain from: a chosen backup becomes a `Source` per domain.

A daily backup's section (`dump`, `schema`) is streamed out of the codec; a realtime choice's source is
the scratch cluster point-in-time recovery made (a `FromDatabase`). A copy that fails while it is read
raises `CopyReadFailed`, which names the backup and the copy, so the restore can mark exactly that copy
damaged and choose again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recovery.backup.catalog import Catalog
from recovery.backup.keys import KeyProvider
from recovery.backup.manifest import Manifest
from recovery.backup.naming import BackupName
from recovery.backup.pgdump import ByteSink
from recovery.backup.repository import read_backup
from recovery.backup.sections import DUMP, SCHEMA, SectionSplitter
from recovery.backup.stores import ObjectStore
from recovery.errors import IntegrityError, KeyUnavailable, PreconditionFailed
from recovery.restore.database import FromDatabase, FromWriter, Source
from recovery.restore.selection import DomainChoice


class CopyReadFailed(IntegrityError):
    """One copy of one chosen backup failed while it was read or recovered (it changed after it was
    checked): the typed fields say which, so the caller never has to find it in the message."""

    def __init__(self, cause: IntegrityError, choice: DomainChoice) -> None:
        super().__init__(cause.message, code=cause.code)
        self.backup_id = choice.backup_id
        self.copy = choice.copy


class _SectionRead(Exception):
    """Raised by the splitter's router once the wanted section is complete: stop decoding early."""


def section_source(
    store: ObjectStore, name: BackupName, keys: KeyProvider, manifest: Manifest, section: str
) -> Source:
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
            read_backup(store, name, splitter, keys, manifest)
        except _SectionRead:
            return
        splitter.finish()
        if section not in seen:
            raise IntegrityError(f"{name} has no {section} section; it is not a daily backup of this format")

    return FromWriter(write_to)


@dataclass(frozen=True)
class Sources:
    schema: Source
    domains: Mapping[str, Source]


def sources_for(
    catalog: Catalog,
    choices: Sequence[DomainChoice],
    manifests: Mapping[str, Manifest],
    recovered: Mapping[str, FromDatabase] | None = None,
) -> Sources:
    """One source per chosen domain plus the schema (from the first daily backup chosen, else from a
    recovered cluster). A realtime choice's source is its recovered scratch cluster (`recovered`)."""
    found = recovered or {}
    if catalog.keys is None:
        raise KeyUnavailable("restoring needs the target's keys; check its key source")
    keys = catalog.keys
    domains: dict[str, Source] = {}
    for choice in choices:
        if choice.kind == "realtime":
            if choice.domain not in found:
                raise PreconditionFailed(
                    f"{choice.backup_id} is realtime: recover it to a scratch cluster first"
                )
            domains[choice.domain] = found[choice.domain]
            continue
        domains[choice.domain] = _choice_section(catalog, keys, choice, manifests, DUMP)
    daily = [choice for choice in choices if choice.kind == "daily"]
    if not daily:
        return Sources(found[choices[0].domain], domains)
    return Sources(_choice_section(catalog, keys, daily[0], manifests, SCHEMA), domains)


def _choice_section(
    catalog: Catalog, keys: KeyProvider, choice: DomainChoice, manifests: Mapping[str, Manifest], section: str
) -> Source:
    """One section of a chosen daily backup, its read failures attributed to the chosen copy."""
    store = catalog.local if choice.copy == "local" else catalog.remote
    inner = section_source(
        store, BackupName.parse(choice.backup_id), keys, manifests[choice.backup_id], section
    )
    assert isinstance(inner, FromWriter)

    def write_to(sink: ByteSink) -> None:
        try:
            inner.write_to(sink)
        except (CopyReadFailed, KeyUnavailable):
            raise  # already attributed; a key problem is not this copy's damage
        except IntegrityError as exc:
            raise CopyReadFailed(exc, choice) from exc

    return FromWriter(write_to)
