"""Verification of a copy restored beside live: fingerprints against what the chosen backups recorded,
and every business invariant, side by side, before anything is swapped in."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from recovery.backup.catalog import Catalog
from recovery.backup.manifest import Manifest
from recovery.backup.naming import BackupName
from recovery.backup.sections import FILE_PREFIX
from recovery.drivers.db import connect as db_connect
from recovery.restore.selection import DomainChoice
from recovery.verify import fingerprint, invariants
from recovery.verify.columns import INVARIANT_TABLES, resolve_columns
from recovery.verify.domains import tables_for
from recovery.verify.fingerprint import DEFAULT_ALGORITHM, FingerprintReport, TableFingerprint
from recovery.verify.session import Connection, require_tables

# Checks of a restored copy run side by side; the totals check is the longest (a hash aggregate over
# every order item: 6.6 of 12.5 s at 1,000,000 orders), so it starts first.
VERIFY_WORKERS = 2
_SLOW_INVARIANTS = ("order_total_matches_items",)


def expected_fingerprints(manifest: Manifest) -> dict[str, TableFingerprint]:
    """The manifest's database tables as fingerprints (host file sections are not tables). Pure."""
    return {
        table.name: TableFingerprint(
            table=table.name, rows=table.rows, content_hash=table.content_hash, algorithm=table.algorithm
        )
        for table in manifest.tables
        if not table.name.startswith(FILE_PREFIX) and table.algorithm != "sha256"
    }


def recovered_expectations(recorded: Mapping[str, Any]) -> dict[str, TableFingerprint]:
    """The recovered cluster's fingerprints, as recorded in the restore step's output. Pure."""
    return {
        str(name): TableFingerprint(
            table=str(name),
            rows=int(fp["rows"]),
            content_hash=str(fp["content_hash"]),
            algorithm=fp.get("algorithm", DEFAULT_ALGORITHM),
        )
        for name, fp in recorded.items()
    }


def recovered_fingerprints(conninfo: str, domains: Sequence[str]) -> dict[str, dict[str, object]]:
    """Fingerprints of a recovered cluster's tables of these domains (nothing else writes to it)."""
    with db_connect(conninfo, autocommit=True, what="the recovered scratch cluster") as conn:
        algorithm = fingerprint.fastest_algorithm(conn)
        found = fingerprint.fingerprint_tables(conn, "public", tables_for(list(domains)), algorithm=algorithm)
    return {
        name: {"rows": fp.rows, "content_hash": fp.content_hash, "algorithm": fp.algorithm}
        for name, fp in found.items()
    }


@dataclass(frozen=True)
class Expectations:
    """What the restored tables must hold, where it was learnt, and what could not be learnt."""

    fingerprints: dict[str, TableFingerprint]
    problems: tuple[str, ...]
    notes: tuple[str, ...]


def expectations_for(
    choices: Sequence[DomainChoice], catalog: Catalog, recorded: Mapping[str, Any]
) -> Expectations:
    """The fingerprints each chosen domain's tables must match: a daily backup's manifest, or for a
    realtime choice the recovered cluster's own fingerprints (`recorded`, taken before it was dumped:
    the manifest describes the base backup, not the moment recovered to)."""
    recovered = recovered_expectations(recorded)
    expected: dict[str, TableFingerprint] = {}
    problems: list[str] = []
    notes: list[str] = []
    for choice in choices:
        if choice.kind == "realtime":
            tables = tables_for([choice.domain])
            if not all(name in recovered for name in tables):
                problems.append(f"no fingerprints of the recovered cluster were recorded for {choice.domain}")
                continue
            expected.update({name: recovered[name] for name in tables})
            notes.append(f"{choice.domain}: compared with the fingerprints of the recovered cluster")
            continue
        manifest = catalog.entry(BackupName.parse(choice.backup_id)).manifest_of(choice.copy)
        if manifest is None:
            problems.append(f"the manifest of {choice.backup_id} can no longer be read")
            continue
        expected.update(expected_fingerprints(manifest))
    return Expectations(expected, tuple(problems), tuple(notes))


def check_restored_copy(
    connect: Callable[[], AbstractContextManager[Connection]],
    expected: Mapping[str, TableFingerprint],
    *,
    workers: int = VERIFY_WORKERS,
    schema: str = "public",
) -> tuple[list[FingerprintReport], invariants.InvariantReport]:
    """Fingerprints of the restored tables and every business invariant, side by side.

    Each check runs on its own connection (`connect()` opens one to the restored copy): nothing writes
    to the copy before the swap, so separate snapshots see the same rows as one would, and on 2 cores
    the longest invariant (totals against items) no longer waits behind the others. Longest first.
    `schema` is where the restored tables are (a staging schema of live shows live's other tables
    through views, so the invariants read across domains).
    """
    with connect() as conn:
        require_tables(conn, schema, INVARIANT_TABLES)
        version, names = resolve_columns(conn, schema)
        subject = f"schema {schema} of database {conn.info.dbname}"
    by_algorithm: dict[str, dict[str, TableFingerprint]] = {}
    for name, expected_print in expected.items():
        by_algorithm.setdefault(expected_print.algorithm, {})[name] = expected_print

    def fingerprints(group: Mapping[str, TableFingerprint]) -> FingerprintReport:
        with connect() as conn:
            return fingerprint.verify_fingerprints(conn, schema, group)

    def observe(invariant: invariants.Invariant) -> invariants.CheckObservation:
        with connect() as conn:
            return invariants.observe_invariant(conn, schema, names, invariant)

    ordered = sorted(invariants.INVARIANTS, key=lambda item: item.name not in _SLOW_INVARIANTS)
    with ThreadPoolExecutor(max(workers, 1), thread_name_prefix="verify-restored") as pool:
        observed = [pool.submit(observe, invariant) for invariant in ordered[:1]]
        printed = [pool.submit(fingerprints, group) for group in by_algorithm.values()]
        observed += [pool.submit(observe, invariant) for invariant in ordered[1:]]
        reports = [future.result() for future in printed]
        report = invariants.decide_invariants(subject, version, [future.result() for future in observed])
    return reports, report
