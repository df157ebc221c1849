"""The restore runbook: chosen domains back from their backups, beside live, verified, then swapped in.

Steps: 1 scope (the live database answers; which domains); 2 select (catalog, both copies checked
against their manifests, `select_backups` chooses per domain with a reason; keys are unwrapped here so a
wrong or missing key refuses before anything changes); 3 restore beside live (`restore_beside`; a copy
that turns out damaged while it is read is marked so and the selection falls back to the next
candidate); 4 verify the restored copy (fingerprints against the manifests, business invariants); 5 fence
the service (playbooks/restore.yml), 6 catch up: rows written to the domains copied from live since the
copy was cut are carried over (recovery.restore.catchup), 7 swap in, 8 start the service and run the smoke
test, 9 record.

The seam to other kinds of backup: a choice becomes a `Source` per domain (`sources_for`): a daily
backup's `dump` section streamed out of the codec, or, for a realtime choice, whatever point-in-time
recovery provides (a `FromDatabase` over a recovered scratch cluster) once it exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from recovery.backup.catalog import Catalog, CatalogEntry, CopyState, CopyStatus, catalog_for
from recovery.backup.keys import KeyProvider
from recovery.backup.manifest import Manifest
from recovery.backup.naming import BackupName, Domain, parse_domain
from recovery.backup.pgdump import ByteSink
from recovery.backup.realtime import realtime_stores, with_coverage
from recovery.backup.repository import read_backup
from recovery.backup.stores import ObjectStore
from recovery.drivers import db as dbdriver
from recovery.drivers.ansible import require_success, run_playbook
from recovery.engine import Runbook, RunContext, Step, register_runbook
from recovery.errors import (
    ExternalFailure,
    IntegrityError,
    KeyUnavailable,
    PreconditionFailed,
    RecoveryError,
    UsageError,
    VerificationFailed,
)
from recovery.restore.catchup import catch_up, report_lines
from recovery.restore.database import (
    FromDatabase,
    FromWriter,
    RestoredDatabase,
    Source,
    discard_restored,
    restore_beside,
    restore_names,
    swap_in,
)
from recovery.restore.pitr import choose_for_restore_point, recover_to
from recovery.restore.selection import DomainChoice, Selection, select_backups
from recovery.runbooks.backup import DUMP, FILE_PREFIX, SCHEMA, SectionSplitter
from recovery.targets.model import Database, Target
from recovery.verify import fingerprint, invariants
from recovery.verify.columns import INVARIANT_TABLES, resolve_columns
from recovery.verify.domains import tables_for
from recovery.verify.fingerprint import DEFAULT_ALGORITHM, FingerprintReport, TableFingerprint
from recovery.verify.reports import failure_line
from recovery.verify.session import Connection, require_tables
from recovery.verify.smoke import smoke_test

RESTORE_PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "restore.yml"
MAX_FALLBACKS = 4
# Checks of a restored copy run side by side; the totals check is the longest (a hash aggregate over
# every order item: 6.6 of 12.5 s at 1,000,000 orders), so it starts first.
VERIFY_WORKERS = 2
_SLOW_INVARIANTS = ("order_total_matches_items",)


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
        store = catalog.local if choice.copy == "local" else catalog.remote
        name = BackupName.parse(choice.backup_id)
        domains[choice.domain] = section_source(store, name, keys, manifests[choice.backup_id], DUMP)
    daily = [choice for choice in choices if choice.kind == "daily"]
    if not daily:
        return Sources(found[choices[0].domain], domains)
    first = daily[0]
    store = catalog.local if first.copy == "local" else catalog.remote
    schema = section_source(
        store, BackupName.parse(first.backup_id), keys, manifests[first.backup_id], SCHEMA
    )
    return Sources(schema, domains)


# Pure parts ------------------------------------------------------------------------------------------


def refusal_error(selection: Selection) -> PreconditionFailed | IntegrityError:
    """The one line for a selection that refused a domain (the first refusal; all are journaled).

    Damaged backups (every candidate fails verification) are an integrity error, anything else (no
    backup, no restore point, a time outside every backup) a refusal."""
    first = selection.refusals[0]
    if "fails verification" in first.reason:
        return IntegrityError(
            f"cannot restore {first.domain}: {first.reason}; nothing was changed",
            code="restore.backups_damaged",
        )
    more = f" (and {len(selection.refusals) - 1} more domains refused)" if len(selection.refusals) > 1 else ""
    return PreconditionFailed(
        f"cannot restore {first.domain}: {first.reason}{more}; nothing was changed", code="restore.no_backup"
    )


def mark_damaged(
    entries: Sequence[CatalogEntry], backup_id: str, copy: str, detail: str
) -> list[CatalogEntry]:
    """The entries with one copy of one backup marked damaged (it failed while being read). Pure."""
    damaged = CopyStatus(CopyState.DAMAGED, detail)
    return [
        (replace(entry, local=damaged) if copy == "local" else replace(entry, remote=damaged))
        if entry.backup_id == backup_id
        else entry
        for entry in entries
    ]


def with_choice(selection: Selection, choice: DomainChoice) -> Selection:
    """The selection with `choice` replacing whatever was decided for its domain. Pure."""
    return Selection(
        (*(c for c in selection.choices if c.domain != choice.domain), choice),
        tuple(r for r in selection.refusals if r.domain != choice.domain),
    )


def schema_versions_agree(manifests: Sequence[Manifest]) -> str | None:
    """A sentence when the chosen backups were taken at different schema versions, else None. Pure."""
    versions = sorted({manifest.schema_version for manifest in manifests})
    if len(versions) > 1:
        return (
            f"the chosen backups were taken at different schema versions ({', '.join(versions)}); "
            "restore them separately or choose a restore point"
        )
    return None


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


def parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not a time; use ISO 8601 with a zone, e.g. 2026-11-25T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise UsageError("the --at time needs a time zone, e.g. 2026-11-25T10:00:00Z")
    return moment.astimezone(UTC)


def new_restore_id(now: datetime) -> str:
    return f"{now:%Y%m%d%H%M%S}_{os.urandom(2).hex()}"


# Steps -----------------------------------------------------------------------------------------------


def _db(target: Target) -> Database:
    return target.primary.database


def _admin(target: Target) -> str:
    return dbdriver.conninfo(_db(target), dbname="postgres")


def _domains(ctx: RunContext) -> list[Domain]:
    return [parse_domain(str(domain)) for domain in ctx.params["domains"]]


def _scope(ctx: RunContext) -> dict[str, object]:
    db = _db(ctx.target)
    try:
        with dbdriver.connect(db, dbname="postgres") as conn:
            row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (db.name,)).fetchone()
    except ExternalFailure as exc:
        raise PreconditionFailed(
            f"{exc.message}; nothing was changed", code="restore.database_unreachable"
        ) from None
    if row is None or row[0] != 1:
        raise PreconditionFailed(f"the live database {db.name} does not exist on {db.address}:{db.port}")
    names = restore_names(db.name, str(ctx.params["restore_id"]))
    return {
        "live": names.live,
        "scratch": names.scratch,
        "replaced": names.replaced,
        "domains": _domains(ctx),
    }


def _select(
    ctx: RunContext, entries: Sequence[CatalogEntry] | None = None
) -> tuple[Selection, list[CatalogEntry]]:
    catalog = catalog_for(ctx.target)
    if entries is None:
        ctx.progress("checking both copies of the candidate backups")
        entries = [
            catalog.verify(entry.backup_id) for domain in _domains(ctx) for entry in catalog.entries(domain)
        ]
    at = parse_at(ctx.params.get("at"))
    point = ctx.params.get("point")
    realtime = any(entry.kind == "realtime" for entry in entries)
    if realtime:
        # A realtime backup reaches to the end of its shipped WAL, not just its objective.
        entries = with_coverage(entries, realtime_stores(ctx.target))
    selection = select_backups(
        entries, _domains(ctx), at=at, restore_point=point, objectives=ctx.target.objectives
    )
    if realtime and point:
        selection = _realtime_points(ctx, entries, selection, str(point))
    return selection, list(entries)


def _realtime_points(
    ctx: RunContext, entries: Sequence[CatalogEntry], selection: Selection, point: str
) -> Selection:
    """Realtime restore points live beside the WAL, not in manifests: ask for them first per domain."""
    stores = realtime_stores(ctx.target)
    for domain in _domains(ctx):
        if not any(entry.domain == domain and entry.kind == "realtime" for entry in entries):
            continue
        found = choose_for_restore_point(entries, domain, point, stores)
        if isinstance(found, DomainChoice):
            selection = with_choice(selection, found)
        elif (daily := selection.choice(domain)) is not None:
            why = f"{found.reason}; so {daily.reason}"
            selection = with_choice(
                selection, DomainChoice(daily.domain, daily.backup_id, daily.kind, daily.copy, why)
            )
    return selection


def _choice_json(choice: DomainChoice) -> dict[str, str]:
    return {
        "domain": choice.domain,
        "backup_id": choice.backup_id,
        "kind": choice.kind,
        "copy": choice.copy,
        "reason": choice.reason,
    }


def _select_step(ctx: RunContext) -> dict[str, object]:
    selection, entries = _select(ctx)
    for refusal in selection.refusals:
        ctx.note(f"{refusal.domain}: refused: {refusal.reason}")
    if selection.refused:
        raise refusal_error(selection)
    manifests = _manifests(entries, selection)
    problem = schema_versions_agree(list(manifests.values()))
    if problem:
        raise PreconditionFailed(problem, code="restore.schema_mismatch")
    catalog = catalog_for(ctx.target)
    assert catalog.keys is not None
    for manifest in manifests.values():
        # A wrong or missing key refuses here, before anything is created.
        manifest.unwrap_key(catalog.keys)
    for choice in selection.choices:
        ctx.note(f"{choice.domain}: {choice.backup_id} ({choice.kind}, {choice.copy} copy): {choice.reason}")
    return {"choices": [_choice_json(choice) for choice in selection.choices]}


def _manifests(entries: Sequence[CatalogEntry], selection: Selection) -> dict[str, Manifest]:
    chosen = {choice.backup_id for choice in selection.choices}
    found = {entry.backup_id: entry.manifest for entry in entries if entry.backup_id in chosen}
    return {backup_id: manifest for backup_id, manifest in found.items() if manifest is not None}


def _restore_step(ctx: RunContext) -> dict[str, object]:
    target = ctx.target
    catalog = catalog_for(target)
    selection, entries = _select(ctx)
    if selection.refused:
        raise refusal_error(selection)
    for _attempt in range(MAX_FALLBACKS):
        try:
            done = _restore_once(ctx, catalog, selection, entries)
        except IntegrityError as exc:
            # A copy failed while being read or recovered (it changed after it was checked): mark the
            # chosen copy the message names (else the first realtime, else the first choice) and choose
            # again, which falls back to the other copy, an older backup or the daily kind.
            culprit = next(
                (c for c in selection.choices if c.backup_id in exc.message),
                next((c for c in selection.choices if c.kind == "realtime"), selection.choices[0]),
            )
            ctx.note(
                f"{culprit.backup_id} ({culprit.copy} copy) failed while being read: {exc.message}; "
                "choosing again"
            )
            entries = mark_damaged(entries, culprit.backup_id, culprit.copy, exc.message)
            selection, entries = _select(ctx, entries)
            if selection.refused:
                raise refusal_error(selection) from None
            for choice in selection.choices:
                ctx.note(f"{choice.domain}: now {choice.backup_id} ({choice.copy} copy): {choice.reason}")
            continue
        restored = done.restored
        return {
            "recovered_fingerprints": plain(done.recovered_fingerprints),
            "scratch": restored.name,
            "from_backup": list(restored.from_backup),
            "from_live": list(restored.from_live),
            # Where the domains copied from live were cut: `catch-up-live` carries over what came after.
            "live_tables": list(restored.live_copy.tables) if restored.live_copy else [],
            "live_snapshot": restored.live_copy.snapshot if restored.live_copy else None,
            "schema_version": restored.schema_version,
            "choices": [_choice_json(choice) for choice in selection.choices],
            "steps": {step.step: step.seconds for step in restored.steps},
        }
    raise IntegrityError(
        f"every candidate copy failed while being read ({MAX_FALLBACKS} tries); nothing was changed"
    )


def recovery_groups(
    choices: Sequence[DomainChoice], manifests: Mapping[str, Manifest]
) -> list[tuple[DomainChoice, tuple[str, ...]]]:
    """The realtime choices grouped by the base backup they recover, with the domains each serves. Pure.

    The orders and transactions realtime backups of one base backup hold the same cluster (same source
    position): recovering it once serves both domains, instead of two scratch clusters replaying the same
    WAL side by side. Choices from different copies still share one recovery (same bytes, both verified).
    """
    groups: dict[tuple[str, str], tuple[DomainChoice, list[str]]] = {}
    for choice in choices:
        if choice.kind != "realtime":
            continue
        manifest = manifests.get(choice.backup_id)
        source = (str(manifest.source.at), manifest.source.lsn or "") if manifest else (choice.backup_id, "")
        groups.setdefault(source, (choice, []))[1].append(choice.domain)
    return [(first, tuple(domains)) for first, domains in groups.values()]


def _recovered_fingerprints(conninfo: str, domains: Sequence[str]) -> dict[str, dict[str, object]]:
    """Fingerprints of the recovered cluster's tables of these domains (nothing else writes to it)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        algorithm = fingerprint.fastest_algorithm(conn)
        found = fingerprint.fingerprint_tables(conn, "public", tables_for(list(domains)), algorithm=algorithm)
    return {
        name: {"rows": fp.rows, "content_hash": fp.content_hash, "algorithm": fp.algorithm}
        for name, fp in found.items()
    }


@dataclass(frozen=True)
class _Restored:
    restored: RestoredDatabase
    recovered_fingerprints: Mapping[str, Mapping[str, object]]


def _restore_once(
    ctx: RunContext, catalog: Catalog, selection: Selection, entries: Sequence[CatalogEntry]
) -> _Restored:
    """Recover the realtime choices into scratch clusters (kept until the load ends), then restore beside."""
    target = ctx.target
    db = _db(target)
    at = parse_at(ctx.params.get("at"))
    point = ctx.params.get("point")
    bin_dir = dbdriver.pg_tool(db, "pg_restore").parent
    manifests = _manifests(entries, selection)
    with ExitStack() as clusters:
        recovered: dict[str, FromDatabase] = {}
        prints: dict[str, dict[str, object]] = {}
        for choice, domains in recovery_groups(selection.choices, manifests):
            ctx.progress(f"recovering {choice.backup_id} into a scratch cluster (for {', '.join(domains)})")
            conninfo = clusters.enter_context(
                recover_to(target, choice, at=at, restore_point=str(point) if point else None)
            )
            # The moment recovered to has no fingerprints in any manifest: take them from the recovered
            # cluster itself, so the copy beside live can be checked table by table against it.
            prints.update(_recovered_fingerprints(conninfo, domains))
            recovered.update({domain: FromDatabase(conninfo, bin_dir) for domain in domains})
        sources = sources_for(catalog, selection.choices, manifests, recovered)
        ctx.progress(f"restoring {', '.join(choice.domain for choice in selection.choices)} beside {db.name}")
        restored = restore_beside(
            _admin(target),
            bin_dir,
            live_db=db.name,
            restore_id=str(ctx.params["restore_id"]),
            schema_stream=sources.schema,
            domain_streams=sources.domains,
        )
        return _Restored(restored, prints)


def check_restored_copy(
    connect: Callable[[], AbstractContextManager[Connection]],
    expected: Mapping[str, TableFingerprint],
    *,
    workers: int = VERIFY_WORKERS,
) -> tuple[list[FingerprintReport], invariants.InvariantReport]:
    """Fingerprints of the restored tables and every business invariant, side by side.

    Each check runs on its own connection (`connect()` opens one to the restored copy): nothing writes
    to the copy before the swap, so separate snapshots see the same rows as one would, and on 2 cores
    the longest invariant (totals against items) no longer waits behind the others. Longest first.
    """
    with connect() as conn:
        require_tables(conn, "public", INVARIANT_TABLES)
        version, names = resolve_columns(conn, "public")
        subject = f"schema public of database {conn.info.dbname}"
    by_algorithm: dict[str, dict[str, TableFingerprint]] = {}
    for name, expected_print in expected.items():
        by_algorithm.setdefault(expected_print.algorithm, {})[name] = expected_print

    def fingerprints(group: Mapping[str, TableFingerprint]) -> FingerprintReport:
        with connect() as conn:
            return fingerprint.verify_fingerprints(conn, "public", group)

    def observe(invariant: invariants.Invariant) -> invariants.CheckObservation:
        with connect() as conn:
            return invariants.observe_invariant(conn, "public", names, invariant)

    ordered = sorted(invariants.INVARIANTS, key=lambda item: item.name not in _SLOW_INVARIANTS)
    with ThreadPoolExecutor(max(workers, 1), thread_name_prefix="verify-restored") as pool:
        observed = [pool.submit(observe, invariant) for invariant in ordered[:1]]
        printed = [pool.submit(fingerprints, group) for group in by_algorithm.values()]
        observed += [pool.submit(observe, invariant) for invariant in ordered[1:]]
        reports = [future.result() for future in printed]
        report = invariants.decide_invariants(subject, version, [future.result() for future in observed])
    return reports, report


def _verify_step(ctx: RunContext) -> dict[str, object]:
    target = ctx.target
    db = _db(target)
    scratch = str(ctx.outputs["restore-beside"]["scratch"])
    catalog = catalog_for(target, with_keys=False)
    problems: list[str] = []
    expected: dict[str, TableFingerprint] = {}
    recovered = recovered_expectations(ctx.outputs["restore-beside"].get("recovered_fingerprints", {}))
    for choice in ctx.outputs["restore-beside"]["choices"]:
        if choice["kind"] == "realtime":
            # The manifest's fingerprints describe the base backup, not the moment recovered to:
            # compare with the recovered cluster's own fingerprints, taken before it was dumped.
            tables = tables_for([str(choice["domain"])])
            if not all(name in recovered for name in tables):
                problems.append(
                    f"no fingerprints of the recovered cluster were recorded for {choice['domain']}"
                )
                continue
            expected.update({name: recovered[name] for name in tables})
            ctx.note(f"{choice['domain']}: compared with the fingerprints of the recovered cluster")
        else:
            manifest = catalog.entry(BackupName.parse(str(choice["backup_id"]))).manifest
            if manifest is None:
                problems.append(f"the manifest of {choice['backup_id']} can no longer be read")
                continue
            expected.update(expected_fingerprints(manifest))
    reports, invariant_report = check_restored_copy(
        lambda: dbdriver.connect(db, dbname=scratch, autocommit=True), expected
    )
    lines = [failure_line(report) for report in reports] + [failure_line(invariant_report)]
    problems += [line for line in lines if line]
    if problems:
        discard_restored(_admin(target), live_db=db.name, restore_id=str(ctx.params["restore_id"]))
        raise VerificationFailed(f"{problems[0]}; the restored copy was dropped, live is unchanged")
    return {"fingerprints": {name: fp.rows for name, fp in expected.items()}, "invariants": "passed"}


def _service(ctx: RunContext, phase: str) -> None:
    result = run_playbook(
        ctx.target.inventory, str(RESTORE_PLAYBOOK), extravars={"order_restore_service_phase": phase}
    )
    require_success(result)


def _fence_step(ctx: RunContext) -> dict[str, object]:
    ctx.progress("stopping the order service on every app host")
    _service(ctx, "stop")
    return {"stopped": [host.name for host in ctx.target.hosts()]}


def _catch_up_step(ctx: RunContext) -> dict[str, object]:
    """With the service fenced: rows written to the domains copied from live since the copy was cut.

    Idempotent: a rerun takes the same rows again and finds them equal. On failure the service is started
    again on live (unchanged; the run is over: start a new restore) instead of being left stopped with
    no way forward."""
    db = _db(ctx.target)
    out = ctx.outputs["restore-beside"]
    tables = [str(table) for table in out.get("live_tables", [])]
    snapshot = out.get("live_snapshot")
    if not tables:
        return {"skipped": "nothing was copied from live: every domain came from its backup"}
    if snapshot is None:
        reason = (
            "the live copy recorded no snapshot (PostgreSQL before 13, or a run journaled before the "
            "catch-up existed): rows written to live's other domains during the restore are not carried over"
        )
        ctx.note(reason)
        return {"skipped": reason}
    names = restore_names(db.name, str(ctx.params["restore_id"]))
    with dbdriver.connect(db, dbname="postgres") as conn:
        found = conn.execute(
            "SELECT count(*) FILTER (WHERE datname = %s), count(*) FILTER (WHERE datname = %s)"
            " FROM pg_database",
            (names.scratch, names.replaced),
        ).fetchone()
    if found is not None and found[0] == 0 and found[1] == 1:
        ctx.note(f"{names.replaced} exists: the copy was swapped in after an earlier catch-up")
        return {"skipped": "the restored copy was already swapped in"}
    ctx.progress(f"carrying rows written to {', '.join(tables)} since the copy over into {names.scratch}")
    try:
        report = catch_up(
            dbdriver.conninfo(db), dbdriver.conninfo(db, dbname=names.scratch), tables, str(snapshot)
        )
    except RecoveryError as exc:
        said = exc.message.removesuffix("; the restored copy was not changed")
        raise type(exc)(f"{said}; {_restart_after_catch_up(ctx)}", code=exc.code) from None
    except Exception:
        _restart_after_catch_up(ctx)
        raise
    for line in report_lines(report).values():
        ctx.note(line)
    return {"snapshot": str(snapshot), **report.to_json()}


def _restart_after_catch_up(ctx: RunContext) -> str:
    """After a failed catch-up (the run ends there: a failed run is not resumed): drop the copy, which
    cannot be swapped in, and start the service again on live. The sentence saying what state remains."""
    db = _db(ctx.target)
    dropped = "the restored copy was dropped"
    try:
        discard_restored(_admin(ctx.target), live_db=db.name, restore_id=str(ctx.params["restore_id"]))
    except RecoveryError as exc:
        dropped = f"dropping the restored copy failed ({exc.message})"
    ctx.progress("the catch-up failed: starting the order service again on live")
    try:
        _service(ctx, "start")
    except RecoveryError as exc:
        return (
            f"{dropped}; starting the order service again failed too ({exc.message}): start it by hand; "
            "live is unchanged"
        )
    return f"{dropped}; the order service was started again on live, which is unchanged"


def _swap_step(ctx: RunContext) -> dict[str, object]:
    db = _db(ctx.target)
    names = restore_names(db.name, str(ctx.params["restore_id"]))
    with dbdriver.connect(db, dbname="postgres") as conn:
        done = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (names.replaced,)
        ).fetchone()
    if done is not None and done[0] == 1:
        ctx.note(f"{names.replaced} exists: the swap was done before this attempt")
        return {"live": names.live, "replaced": names.replaced}
    out = ctx.outputs["restore-beside"]
    restored = RestoredDatabase(
        name=names.scratch,
        live_db=names.live,
        restore_id=names.restore_id,
        from_backup=tuple(out["from_backup"]),
        from_live=tuple(out["from_live"]),
        schema_version=out["schema_version"],
        live_copy=None,
        steps=(),
    )
    result = swap_in(_admin(ctx.target), live_db=names.live, restored=restored)
    return {"live": names.live, "replaced": result.set_aside_as, "swapped_at": result.swapped_at.isoformat()}


def _start_step(ctx: RunContext) -> dict[str, object]:
    ctx.progress("starting the order service and waiting for health")
    _service(ctx, "start")
    host = ctx.target.primary.hosts[0]
    report = smoke_test(f"http://{host.address}:{host.service_port}")
    line = failure_line(report)
    if line:
        raise VerificationFailed(
            f"{line}; the restored data is live, `recovery restore` notes how to swap back"
        )
    return {"smoke_test": "passed", "service": f"{host.address}:{host.service_port}"}


def plain(value: Any) -> Any:
    """A recorded output (read-only mappings and tuples) as plain JSON values."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def record_path(target: Target, restore_id: str) -> Path:
    return target.state_dir / "restores" / f"{restore_id}.json"


def _record_step(ctx: RunContext) -> dict[str, object]:
    restore_id = str(ctx.params["restore_id"])
    record = {
        "restore_id": restore_id,
        "run_id": ctx.run_id,
        "live": ctx.outputs["swap-in"]["live"],
        "replaced": ctx.outputs["swap-in"]["replaced"],
        "choices": plain(ctx.outputs["restore-beside"]["choices"]),
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    path = record_path(ctx.target, restore_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)
    return {"record": str(path)}


def restore_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    """params: domains (list), at (ISO time or None), point (name or None), restore_id."""
    domains = [parse_domain(str(domain)) for domain in params["domains"]]
    db = target.primary.database
    names = restore_names(db.name, str(params["restore_id"]))
    hosts = tuple(host.name for host in target.hosts())
    what = ", ".join(domains)
    return Runbook(
        name="restore",
        params=dict(params),
        confirm=f"restoring {what} replaces them in database {db.name} (kept as {names.replaced})",
        steps=(
            Step(
                "scope", f"check that database {db.name} answers and name the restore", _scope, mutating=False
            ),
            Step(
                "select",
                f"choose a backup and a copy for {what}, with the reason",
                _select_step,
                mutating=False,
            ),
            Step(
                "restore-beside",
                f"restore {what} into {names.scratch} beside live",
                _restore_step,
                acts_on=(f"database {names.scratch}",),
            ),
            Step(
                "verify-restored",
                "check fingerprints against the manifests and the business invariants",
                _verify_step,
                mutating=False,
            ),
            Step("fence-service", "stop the order service on every app host", _fence_step, acts_on=hosts),
            Step(
                "catch-up-live",
                f"carry rows written to live's other domains since the copy over into {names.scratch}",
                _catch_up_step,
                acts_on=(f"database {names.scratch}",),
            ),
            Step(
                "swap-in",
                f"swap {names.scratch} in as {db.name}, keeping {names.replaced}",
                _swap_step,
                acts_on=(f"database {db.name}",),
            ),
            Step(
                "start-service",
                "start the order service, wait for health, run the smoke test",
                _start_step,
                acts_on=hosts,
            ),
            Step("record", "record the restore and the database kept for rollback", _record_step),
        ),
    )


def restore_params(
    domains: Sequence[Domain], *, at: str | None, point: str | None, restore_id: str
) -> dict[str, object]:
    if at is not None and point is not None:
        raise UsageError("give either --at or --point, not both")
    parse_at(at)
    if not domains:
        raise UsageError(
            "no domains to restore; name them with --domains, e.g. --domains orders,transactions"
        )
    return {"domains": list(dict.fromkeys(domains)), "at": at, "point": point, "restore_id": restore_id}


def replaced_databases(target: Target) -> list[str]:
    """Restore ids whose replaced database is still kept (`<live>_replaced_<id>`)."""
    db = _db(target)
    prefix = f"{db.name}_replaced_"
    with dbdriver.connect(db, dbname="postgres") as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,)
        ).fetchall()
    return [str(row[0])[len(prefix) :] for row in rows]


register_runbook("restore", restore_runbook)
