"""Which tables hold each data domain.

Backups, restores and verification all speak of domains (what an operator restores) while the database
speaks of tables. This mapping is the one place that links the two; the `logs` domain also covers the
service's log files on each host, which are not database tables and are not listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from recovery.backup.naming import DOMAINS, Domain
from recovery.errors import UsageError

DOMAIN_TABLES: Mapping[Domain, tuple[str, ...]] = MappingProxyType(
    {
        "orders": ("orders", "order_items"),
        "users": ("users",),
        "products": ("products",),
        "transactions": ("transactions",),
        "logs": ("events",),
    }
)

# The domains themselves are named once, in recovery.backup.naming; every one has its tables here.
assert tuple(DOMAIN_TABLES) == DOMAINS, "DOMAIN_TABLES must list every domain of recovery.backup.naming"

# Every data table, in an order where each table comes after the tables it references.
ALL_TABLES: tuple[str, ...] = ("users", "products", "orders", "order_items", "transactions", "events")


def tables_for(domains: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The tables of the given domains, in dependency order, without duplicates."""
    unknown = [domain for domain in domains if domain not in DOMAIN_TABLES]
    if unknown:
        raise UsageError(
            f"unknown data domain {unknown[0]!r}: choose from {', '.join(DOMAINS)}",
            code="verify.unknown_domain",
        )
    wanted = {table for domain in domains for table in DOMAIN_TABLES[domain]}  # type: ignore[index]
    return tuple(table for table in ALL_TABLES if table in wanted)
