"""The scope of a restore: which domains must go back together, decided before any work.

A restore puts the chosen domains back to their backups' moment (the cut) and copies every other domain
from live. Rows of a domain kept from live that reference rows newer than the cut of a restored domain
(a payment for an order placed after the orders backup, an order of a user who signed up after the users
backup) would reference nothing in the restored copy: its foreign keys fail, late, in pg_restore. So the
restore first looks at the foreign keys between the domains' tables (pg_catalog), counts such rows in
live, and decides (`decide_scope`, pure): restore as asked, widen the scope to the dependent domains (the
reason says why), or refuse with one line naming the rows that would be orphaned and the scope that
works. `--scope` chooses between widening and refusing; refusing is the default (docs/decisions.md).

How a row is told newer than a cut: by its table's creation time (`created_at`, or `at` for events);
a table without one by its parent in the same domain (an order line by its order), else by key order past
the rows the backup's manifest counted (products: rows are only ever added, with growing ids). When none
applies the count is unknown and pg_restore's foreign-key check stays the judge.

The same counts say, before the restore starts, how many rows written after the cut the restore sets
aside (they stay in the replaced database) or carries over (`recovery.restore.carryover`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from psycopg import sql

from recovery.backup.naming import DOMAINS, Domain
from recovery.drivers import db as dbdriver
from recovery.drivers.db import ForeignKeyInfo
from recovery.restore.carryover import RESTORE_CARRIES, damaged_since
from recovery.restore.rows import table_shape
from recovery.verify.domains import DOMAIN_TABLES, tables_for

ScopePolicy = Literal["strict", "widen"]
SCOPE_POLICIES: tuple[ScopePolicy, ...] = get_args(ScopePolicy)
DEFAULT_SCOPE_POLICY: ScopePolicy = "strict"
ScopeAction = Literal["as-asked", "widen", "refuse"]
# Columns that say when a row was written, in order of preference.
CREATION_COLUMNS = ("created_at", "at")
SCHEMA = "public"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def domain_of_table(table: str) -> Domain | None:
    return next((domain for domain, tables in DOMAIN_TABLES.items() if table in tables), None)


def in_domain_order(domains: Collection[str]) -> tuple[Domain, ...]:
    return tuple(domain for domain in DOMAINS if domain in domains)


# --- the graph (pure) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainGraph:
    """The foreign keys between tables of different data domains: which domain depends on which."""

    references: tuple[ForeignKeyInfo, ...]

    def into(self, domain: Domain) -> tuple[ForeignKeyInfo, ...]:
        """The foreign keys of other domains' tables that reference `domain`'s tables."""
        return tuple(key for key in self.references if domain_of_table(key.referenced) == domain)

    def dependants(self, domain: Domain) -> tuple[Domain, ...]:
        return in_domain_order({str(domain_of_table(key.table)) for key in self.into(domain)})


def domain_graph(keys: Sequence[ForeignKeyInfo]) -> DomainGraph:
    """The cross-domain foreign keys among `keys` (those inside one domain are restored together). Pure."""
    crossing = []
    for key in keys:
        source, target = domain_of_table(key.table), domain_of_table(key.referenced)
        if source is not None and target is not None and source != target:
            crossing.append(key)
    return DomainGraph(tuple(crossing))


# --- the decision (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Orphans:
    """Rows of a domain kept from live that reference rows of a restored domain newer than its cut."""

    restored: Domain
    dependant: Domain
    table: str
    referenced: str
    constraint: str
    rows: int

    def phrase(self) -> str:
        return (
            f"{_plural(self.rows, 'row')} of {self.table} ({self.constraint}: they reference "
            f"{self.referenced} newer than the {self.restored} backup)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "restored": self.restored,
            "dependant": self.dependant,
            "table": self.table,
            "referenced": self.referenced,
            "constraint": self.constraint,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class ScopeDecision:
    """What to restore: `domains` (for a refusal: the scope that would work) and the reason sentence."""

    action: ScopeAction
    domains: tuple[Domain, ...]
    reason: str
    orphans: tuple[Orphans, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "domains": list(self.domains),
            "reason": self.reason,
            "orphans": [item.to_json() for item in self.orphans],
        }


def needed_scope(requested: Sequence[Domain], orphans: Sequence[Orphans]) -> tuple[Domain, ...]:
    """`requested` plus every domain whose rows would be orphaned, repeated until nothing is added. Pure."""
    scope = set(requested)
    while True:
        more = {item.dependant for item in orphans if item.rows > 0 and item.restored in scope} - scope
        if not more:
            return in_domain_order(scope)
        scope |= more


def decide_scope(
    requested: Sequence[Domain], dependants_with_newer_rows: Sequence[Orphans], policy: ScopePolicy
) -> ScopeDecision:
    """Restore as asked, widen, or refuse; the reason names the rows and the scope that works. Pure."""
    asked = in_domain_order(requested)
    needed = needed_scope(asked, dependants_with_newer_rows)
    found = tuple(
        item for item in dependants_with_newer_rows if item.rows > 0 and item.dependant not in asked
    )
    if needed == asked:
        return ScopeDecision(
            "as-asked",
            asked,
            f"no row of another domain references rows newer than the backup of {', '.join(asked)}: "
            f"restoring {', '.join(asked)} as asked",
        )
    added = tuple(domain for domain in needed if domain not in asked)
    orphaned = "; ".join(item.phrase() for item in found)
    head = f"restoring {', '.join(asked)} without {', '.join(added)} would orphan {orphaned}"
    if policy == "widen":
        return ScopeDecision("widen", needed, f"{head}: widened the scope to {', '.join(needed)}", found)
    return ScopeDecision(
        "refuse",
        needed,
        f"{head}; restore --domains {','.join(needed)} instead, or pass --scope widen; nothing was changed",
        found,
    )


# --- the cut and newer rows -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """The moment a restored domain goes back to, and the rows per table its backup counted (daily)."""

    domain: Domain
    backup_id: str
    at: datetime
    rows: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TableNewness:
    """How to tell rows of `table` written after a cut: its creation column, its parent in the domain
    (a foreign key to a table with one), or its key order past `rows_at_cut`."""

    table: str
    column: str | None = None
    parent: ForeignKeyInfo | None = None
    parent_column: str | None = None
    key: tuple[str, ...] = ()
    rows_at_cut: int | None = None

    @property
    def known(self) -> bool:
        return bool(self.column or self.parent or (self.key and self.rows_at_cut is not None))


def creation_column(columns: Sequence[str]) -> str | None:
    """The column saying when a row was written, among a table's timestamptz columns. Pure."""
    return next((name for name in CREATION_COLUMNS if name in columns), None)


def newness(
    table: str,
    times: Mapping[str, Sequence[str]],
    keys: Sequence[ForeignKeyInfo],
    cut: Cut,
    primary_key: Sequence[str] = (),
) -> TableNewness:
    """How rows of `table` newer than `cut` are found, from the catalog's answers (the primary key is
    needed only for a table with neither a creation column nor a parent). Pure."""
    own = creation_column(times.get(table, ()))
    if own is not None:
        return TableNewness(table, column=own)
    domain = domain_of_table(table)
    for key in keys:
        parent = creation_column(times.get(key.referenced, ()))
        if key.table == table and domain_of_table(key.referenced) == domain and parent is not None:
            return TableNewness(table, parent=key, parent_column=parent)
    return TableNewness(table, key=tuple(primary_key), rows_at_cut=cut.rows.get(table))


def _newer_keys(item: TableNewness, columns: Sequence[str]) -> sql.Composable:
    """A query of the `columns` of `item.table`'s rows newer than %(cut)s (or past %(rows)s keys)."""
    wanted = sql.SQL(", ").join(sql.Identifier(name) for name in columns)
    table = sql.Identifier(SCHEMA, item.table)
    if item.column is not None:
        return sql.SQL("SELECT {} FROM {} WHERE {} > %(cut)s").format(
            wanted, table, sql.Identifier(item.column)
        )
    if item.parent is not None and item.parent_column is not None:
        parent = item.parent
        return sql.SQL("SELECT {} FROM {} WHERE ({}) IN (SELECT {} FROM {} WHERE {} > %(cut)s)").format(
            wanted,
            table,
            sql.SQL(", ").join(sql.Identifier(name) for name in parent.columns),
            sql.SQL(", ").join(sql.Identifier(name) for name in parent.referenced_columns),
            sql.Identifier(SCHEMA, parent.referenced),
            sql.Identifier(item.parent_column),
        )
    order = sql.SQL(", ").join(sql.Identifier(name) for name in item.key)
    return sql.SQL("SELECT {} FROM {} ORDER BY {} OFFSET %(rows)s").format(wanted, table, order)


class LiveRows:
    """Questions about live's rows relative to cuts, on one connection (read only)."""

    def __init__(self, conn: dbdriver.Connection) -> None:
        self.conn = conn
        self.keys = dbdriver.foreign_keys(conn, SCHEMA)
        self.graph = domain_graph(self.keys)
        tables = [table for tables in DOMAIN_TABLES.values() for table in tables]
        self.times = {table: dbdriver.timestamp_columns(conn, table, SCHEMA) for table in tables}

    def newness(self, table: str, cut: Cut) -> TableNewness:
        found = newness(table, self.times, self.keys, cut)
        if found.column or found.parent or table not in cut.rows:
            return found
        return newness(table, self.times, self.keys, cut, table_shape(self.conn, table).key)

    def _params(self, item: TableNewness, cut: Cut) -> dict[str, object]:
        return {"cut": cut.at, "rows": item.rows_at_cut or 0}

    def orphans(
        self, cuts: Mapping[Domain, Cut], scope: Collection[Domain]
    ) -> tuple[list[Orphans], list[str]]:
        """Rows outside `scope` referencing rows of a restored domain newer than its cut; and a note per
        reference whose newer rows cannot be told apart."""
        found: list[Orphans] = []
        unknown: list[str] = []
        for domain, cut in cuts.items():
            for key in self.graph.into(domain):
                dependant = domain_of_table(key.table)
                if dependant is None or dependant in scope:
                    continue
                item = self.newness(key.referenced, cut)
                if not item.known:
                    unknown.append(
                        f"{key.table} references {key.referenced} ({key.name}), whose rows newer than "
                        f"{cut.backup_id} cannot be told apart: the restore's foreign-key check decides"
                    )
                    continue
                query = sql.SQL("SELECT count(*) FROM {} WHERE ({}) IN ({})").format(
                    sql.Identifier(SCHEMA, key.table),
                    sql.SQL(", ").join(sql.Identifier(name) for name in key.columns),
                    _newer_keys(item, key.referenced_columns),
                )
                row = self.conn.execute(query, self._params(item, cut)).fetchone()
                rows = int(row[0]) if row else 0
                found.append(Orphans(domain, dependant, key.table, key.referenced, key.name, rows))
        return found, unknown

    def written_after(self, cut: Cut) -> dict[str, int | None]:
        """Rows of the restored domain's tables written after its cut (None: cannot be told)."""
        counts: dict[str, int | None] = {}
        for table in tables_for([cut.domain]):
            item = self.newness(table, cut)
            if not item.known:
                counts[table] = None
                continue
            query = sql.SQL("SELECT count(*) FROM ({}) AS newer").format(_newer_keys(item, ["ctid"]))
            row = self.conn.execute(query, self._params(item, cut)).fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts


@dataclass(frozen=True)
class AfterCut:
    """Rows written to live after a restored domain's cut: what the restore sets aside or carries."""

    domain: Domain
    backup_id: str
    cut: datetime
    tables: Mapping[str, int | None]

    @property
    def rows(self) -> int:
        return sum(count or 0 for count in self.tables.values())

    @property
    def carried_rows(self) -> int:
        """The rows a carry-over brings back: new rows of the tables it writes (not products, which it
        never writes: a restore of products puts stock and prices back to the backup's)."""
        return sum(count or 0 for table, count in self.tables.items() if table in RESTORE_CARRIES)

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "backup_id": self.backup_id,
            "cut": self.cut.isoformat(),
            "tables": dict(self.tables),
            "rows": self.rows,
        }


def after_cut_sentence(found: Sequence[AfterCut], *, carry: bool, to_person: int, replaced: str) -> str:
    """One sentence: how many rows written after the cut the restore carries over or sets aside. Pure."""
    parts = []
    for item in found:
        tables = ", ".join(
            f"{table} {'unknown' if count is None else count}" for table, count in item.tables.items()
        )
        parts.append(f"{item.domain} after {_when(item.cut)} ({item.backup_id}): {tables}")
    total = sum(item.rows for item in found)
    where = "; ".join(parts) if parts else "nothing restored"
    if total == 0:
        unknown = any(count is None for item in found for count in item.tables.values())
        told = "no row that can be told apart was" if unknown else "no rows were"
        return f"{told} written after the restore's moment ({where})"
    carried = sum(item.carried_rows for item in found) if carry else 0
    aside = total - carried
    said = []
    if carried:
        person = (
            f", except {_plural(to_person, 'order')} whose total does not match its lines "
            "(listed for a person)"
            if to_person
            else ""
        )
        said.append(f"{_plural(carried, 'row')} will be carried over from {replaced}{person}")
    if aside:
        said.append(f"{_plural(aside, 'row')} will be set aside in {replaced}, not carried over")
    return f"of the rows written after the restore's moment, {' and '.join(said)} ({where})"


@dataclass(frozen=True)
class ScopeFindings:
    """The decision, the cuts of the domains it restores, the rows written to live after each cut, how
    many orders after the cut a carry-over would leave for a person, and notes on what cannot be told."""

    decision: ScopeDecision
    cuts: tuple[Cut, ...]
    after: tuple[AfterCut, ...]
    to_person: int
    notes: tuple[str, ...]

    @property
    def after_rows(self) -> int:
        return sum(item.rows for item in self.after)


def find_scope(
    live: LiveRows,
    requested: Sequence[Domain],
    cuts_for: Callable[[tuple[Domain, ...]], Mapping[Domain, Cut]],
    policy: ScopePolicy,
) -> ScopeFindings:
    """Count the rows the requested domains' cuts would orphan, add the domains those rows belong to
    (and count again for them, until nothing is added), then decide. `cuts_for(domains)` chooses the
    backups of a scope and says each one's cut. Read only."""
    scope = tuple(requested)
    cuts: dict[Domain, Cut] = {}
    orphans: list[Orphans] = []
    notes: list[str] = []
    while True:
        found = cuts_for(scope)
        new = {domain: cut for domain, cut in found.items() if domain not in cuts}
        more, unknown = live.orphans(new, scope)
        cuts.update(found)
        orphans += more
        notes += unknown
        needed = needed_scope(requested, orphans)
        if set(needed) <= set(scope):
            break
        scope = in_domain_order({*scope, *needed})
    decision = decide_scope(requested, orphans, policy)
    restored = tuple(cuts[domain] for domain in decision.domains)
    after = tuple(AfterCut(c.domain, c.backup_id, c.at, live.written_after(c)) for c in restored)
    carried = [cut.at for cut in restored if cut.domain == "orders"]
    to_person = damaged_since(live.conn, min(carried)) if carried else 0
    return ScopeFindings(decision, restored, after, to_person, tuple(notes))
