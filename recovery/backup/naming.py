"""Backup names: `<YYYYMMDD>-<domain>-<kind>.bak`, and `-<n>` before `.bak` for later backups that day.

The first backup of a domain and kind on a day carries exactly the plan's name
(`20261125-orders-daily.bak`); the second the same day becomes `20261125-orders-daily-2.bak`, and so on,
so a later backup never overwrites an earlier one. The parts keep the plan's order (date, domain, kind)
and the sequence sits last, so the base name stays recognisable. Names are ASCII and parsed strictly:
a name that does not match exactly is refused, never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, get_args

from recovery.errors import UsageError

Domain = Literal["orders", "users", "products", "transactions", "logs"]
Kind = Literal["realtime", "daily"]

DOMAINS: tuple[Domain, ...] = get_args(Domain)
KINDS: tuple[Kind, ...] = get_args(Kind)
# Realtime backups exist only for the domains whose loss costs money within minutes.
REALTIME_DOMAINS: tuple[Domain, ...] = ("orders", "transactions")

SUFFIX = ".bak"
MANIFEST_SUFFIX = ".manifest.json"

_NAME = re.compile(
    r"^(?P<day>[0-9]{8})-(?P<domain>[a-z]+)-(?P<kind>[a-z]+)(?:-(?P<seq>[1-9][0-9]{0,5}))?\.bak\Z"
)


def kinds_of(domain: Domain) -> tuple[Kind, ...]:
    """The kinds of backup a domain has, realtime first when it has one."""
    return ("realtime", "daily") if domain in REALTIME_DOMAINS else ("daily",)


def parse_domain(text: str) -> Domain:
    for domain in DOMAINS:
        if text == domain:
            return domain
    raise UsageError(f"unknown backup domain {text!r}; use one of {', '.join(DOMAINS)}")


def parse_kind(text: str) -> Kind:
    for kind in KINDS:
        if text == kind:
            return kind
    raise UsageError(f"unknown backup kind {text!r}; use one of {', '.join(KINDS)}")


@dataclass(frozen=True, order=True)
class BackupName:
    """One backup's name; `seq` 1 is the plain name, 2 and up add `-<seq>`."""

    day: date
    domain: Domain
    kind: Kind
    seq: int = 1

    def __post_init__(self) -> None:
        if self.kind == "realtime" and self.domain not in REALTIME_DOMAINS:
            raise UsageError(
                f"{self.domain} has no realtime backups; realtime is for {', '.join(REALTIME_DOMAINS)}"
            )
        if not 1 <= self.seq <= 999_999:
            raise UsageError(f"backup sequence {self.seq} is out of range; use 1 to 999999")

    @property
    def backup_id(self) -> str:
        """The name without `.bak`: what the encrypted header and the manifest carry."""
        base = f"{self.day:%Y%m%d}-{self.domain}-{self.kind}"
        return base if self.seq == 1 else f"{base}-{self.seq}"

    @property
    def file_name(self) -> str:
        return self.backup_id + SUFFIX

    @property
    def manifest_name(self) -> str:
        return self.file_name + MANIFEST_SUFFIX

    def __str__(self) -> str:
        return self.file_name

    @classmethod
    def parse(cls, text: str) -> BackupName:
        """Parse `20261125-orders-daily.bak` or `20261125-orders-daily-2.bak` (the id without .bak too)."""
        candidate = text if text.endswith(SUFFIX) else text + SUFFIX
        match = _NAME.match(candidate) if candidate.isascii() else None
        if match is None:
            raise UsageError(
                f"{text!r} is not a backup name; expected <YYYYMMDD>-<domain>-<kind>[-<n>].bak, "
                "e.g. 20261125-orders-realtime.bak"
            )
        try:
            day = datetime.strptime(match["day"], "%Y%m%d").date()
        except ValueError:
            raise UsageError(f"{text!r} has an impossible date {match['day']}; use YYYYMMDD") from None
        seq_text = match["seq"]
        seq = int(seq_text) if seq_text else 1
        if seq == 1 and seq_text:
            raise UsageError(f"{text!r}: the first backup of a day has no -1 suffix; drop it")
        return cls(day, parse_domain(match["domain"]), parse_kind(match["kind"]), seq)


def is_backup_name(text: str) -> bool:
    try:
        BackupName.parse(text)
    except UsageError:
        return False
    return text.endswith(SUFFIX)


def next_name(day: date, domain: Domain, kind: Kind, existing: Iterable[BackupName]) -> BackupName:
    """The next free name for `domain`/`kind` on `day`, after every name already taken in any copy."""
    taken = [name.seq for name in existing if (name.day, name.domain, name.kind) == (day, domain, kind)]
    return BackupName(day, domain, kind, max(taken, default=0) + 1)
