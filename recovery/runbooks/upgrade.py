"""The upgrade runbook: preflight, a restore point, deploy, health gates over a watch window.

Steps (each journaled, so `recovery rollback` can find the restore point and the release that ran
before, also after this process was killed):

1. preflight       the release is known and the database new enough; every host runs the same release
2. restore-point   one consistent snapshot of the database dumped to files (schema + every domain)
3. deploy          playbooks/deploy.yml: unpack, migrate once, switch `current`, restart, wait for health
4. gates           watch the release for a window: health of every host, business totals, latency

A failed step raises an error whose code names the gate (`gate.migrate`, `gate.health`, ...); the
rollback runbook (recovery/runbooks/rollback.py) undoes the attempt. docs/upgrade-rollback.md.
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from recovery.backup.codec import decode, encode
from recovery.backup.keys import DataKey, KeyProvider, key_provider
from recovery.backup.pgdump import first_error_line, tool_env
from recovery.drivers import db as db_driver
from recovery.drivers.ansible import PlaybookResult, run_playbook
from recovery.drivers.aws import AwsDriver
from recovery.engine import Runbook, RunContext, Step, register_runbook
from recovery.errors import ExternalFailure, PreconditionFailed, RecoveryError, UsageError
from recovery.release.artifacts import build_release_artifact
from recovery.release.catalog import REPO_ROOT, get_release
from recovery.release.installed import read_target_releases
from recovery.targets.model import Database, Host, Objectives, Target
from recovery.verify.domains import ALL_TABLES, DOMAINS, tables_for
from recovery.verify.smoke import smoke_test

RUNBOOK = "upgrade"
PLAYBOOKS_DIR = REPO_ROOT / "playbooks"
DEFAULT_WATCH_SECONDS = 10.0
DEFAULT_HEALTH_TIMEOUT = 20  # seconds the deploy waits for /health: a release that never answers fails fast
GATE_INTERVAL_SECONDS = 1.0
# A release is slow when its orders take this many times the previous release's, plus a slack that
# keeps a busy machine's jitter on small figures from failing a good release.
LATENCY_FACTOR = 2.5
LATENCY_SLACK_MS = 5.0
BASELINE_SAMPLES = 3


class GateFailed(RecoveryError):
    """A step or gate of the upgrade found the release bad; `code` is `gate.<name>`."""

    def __init__(self, gate: str, reason: str) -> None:
        super().__init__(f"gate {gate} failed: {reason}", code=f"gate.{gate}")
        self.gate = gate
        self.reason = reason


# Restore point -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePoint:
    """Files of one consistent snapshot of the database: `schema.dump` and `<domain>.dump` each.

    Every file is encrypted with the backup codec (zstd + AES-256-GCM chunks) under one fresh data key
    from the target's key source; only the wrapped key is kept here. Each file's backup id names the
    point and the file, so files swapped between points or names are refused when read back.
    """

    directory: Path
    taken_at: str  # the server's clock at the snapshot (ISO 8601)
    position: str  # WAL LSN at the snapshot
    schema_version: int | None
    release: str  # the release that ran when the point was taken
    size_bytes: int
    key_id: str
    wrapped_key: str  # base64 of the data key as wrapped by KMS or the keyring; never the key itself

    def schema_file(self) -> Path:
        return self.directory / "schema.dump"

    def domain_file(self, domain: str) -> Path:
        return self.directory / f"{domain}.dump"

    def file_id(self, path: Path) -> str:
        return restore_point_file_id(self.directory, path.stem)

    def data_key(self, keys: KeyProvider) -> DataKey:
        return keys.unwrap(self.key_id, base64.b64decode(self.wrapped_key))

    def write_plain(self, path: Path, keys: KeyProvider) -> Callable[[Any], object]:
        """A writer for restore_beside's FromWriter: decrypts `path` into the given sink."""
        data_key = self.data_key(keys)

        def write_to(sink: Any) -> object:
            with path.open("rb") as stored:
                return decode(stored, sink, data_key, self.file_id(path))

        return write_to

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "taken_at": self.taken_at,
            "position": self.position,
            "schema_version": self.schema_version,
            "release": self.release,
            "size_bytes": self.size_bytes,
            "key_id": self.key_id,
            "wrapped_key": self.wrapped_key,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RestorePoint:
        return cls(
            Path(str(data["directory"])),
            str(data["taken_at"]),
            str(data["position"]),
            None if data.get("schema_version") is None else int(data["schema_version"]),
            str(data["release"]),
            int(data["size_bytes"]),
            str(data["key_id"]),
            str(data["wrapped_key"]),
        )


_SNAPSHOT = (
    "SELECT pg_export_snapshot(), pg_current_wal_lsn()::text, clock_timestamp(),"
    " (SELECT max(version) FROM schema_migrations)"
)


def restore_point_file_id(directory: Path, name: str) -> str:
    return f"restore-point/{directory.name}/{name}"


def take_restore_point(db: Database, directory: Path, release: str, keys: KeyProvider) -> RestorePoint:
    """Dump the schema and every domain from one exported snapshot, side by side, into `directory`.

    One snapshot for all files: a payment in the transactions dump always has its order in the orders
    dump. Each dump streams through the backup codec, so no byte reaches the disk unencrypted. Files
    are written under a temporary name and renamed, so a directory with point.json is whole.
    """
    done = directory / "point.json"
    if done.is_file():  # a rerun after an interruption: the point already exists
        return RestorePoint.from_json(json.loads(done.read_text()))
    directory.mkdir(parents=True, exist_ok=True)
    data_key = keys.new_data_key()
    pg_dump = db_driver.pg_tool(db, "pg_dump")
    conninfo = db_driver.conninfo(db)
    with db_driver.connect(db, autocommit=False) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute(_SNAPSHOT).fetchone()
        assert row is not None
        snapshot, position, taken_at, schema_version = row
        jobs: dict[str, list[str]] = {"schema": [f"--exclude-table-data={t}" for t in ALL_TABLES]}
        for domain in DOMAINS:
            jobs[domain] = ["--data-only", "--strict-names", *(f"--table={t}" for t in tables_for([domain]))]

        def dump(name: str) -> None:
            out = directory / f"{name}.dump"
            tmp = out.with_suffix(".part")
            argv = [
                str(pg_dump),
                f"--dbname={conninfo}",
                "--format=custom",
                "--compress=0",
                "--no-password",
                f"--snapshot={snapshot}",
                *jobs[name],
            ]
            with tempfile.TemporaryFile() as stderr, tmp.open("wb") as sink:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=tool_env()
                )
                assert proc.stdout is not None
                try:
                    encode(proc.stdout, sink, data_key, restore_point_file_id(directory, name))
                finally:
                    proc.stdout.close()
                    code = proc.wait()
                if code != 0:
                    line = first_error_line(stderr, fallback=f"pg_dump exited {code}")
                    raise ExternalFailure(
                        f"restore point: the dump of {name} failed: {line}", code="upgrade.restore_point"
                    )
            tmp.replace(out)

        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(dump, jobs))
        conn.rollback()
    size = sum((directory / f"{name}.dump").stat().st_size for name in jobs)
    assert isinstance(taken_at, datetime)
    version = None if schema_version is None else int(str(schema_version))
    point = RestorePoint(
        directory,
        taken_at.isoformat(),
        str(position),
        version,
        release,
        size,
        data_key.key_id,
        base64.b64encode(data_key.wrapped).decode("ascii"),
    )
    tmp_done = done.with_suffix(".tmp")
    tmp_done.write_text(json.dumps(point.to_json()))
    tmp_done.replace(done)
    return point


def restore_points_dir(target: Target) -> Path:
    return target.state_dir / "restore-points"


# Gates (decisions are pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostHealth:
    host: str
    status: int | None  # HTTP status, None when the host did not answer
    version: str | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateRound:
    """What one round of the watch window observed."""

    hosts: tuple[HostHealth, ...]
    bad_totals: int  # orders placed since the deploy whose total does not match their items
    bad_total_examples: tuple[str, ...]
    smoke_passed: bool
    smoke_reason: str
    order_ms: float | None  # how long placing the smoke test's order took


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    gate: str | None = None
    reason: str = ""


def judge_round(release: str, observed: GateRound) -> GateVerdict:
    """Health, business and smoke gates of one round: the first failure wins, in that order."""
    for host in observed.hosts:
        if host.status is None:
            return GateVerdict(False, "health", f"{host.host} does not answer /health")
        if host.status != 200:
            why = "; ".join(host.problems) or f"HTTP {host.status}"
            return GateVerdict(False, "health", f"{host.host} is unhealthy ({why})")
        if host.version != release:
            return GateVerdict(False, "health", f"{host.host} runs {host.version}, not {release}")
    if observed.bad_totals:
        return GateVerdict(
            False,
            "business",
            f"{observed.bad_totals} orders placed since the deploy have a total that does not match their "
            f"items (e.g. {', '.join(observed.bad_total_examples[:3])})",
        )
    if not observed.smoke_passed:
        return GateVerdict(False, "smoke", observed.smoke_reason)
    return GateVerdict(True)


def judge_latency(
    samples_ms: Sequence[float], objectives: Objectives, baseline_ms: float | None
) -> GateVerdict:
    """The latency gate over the whole window: the median order time against the p95 objective and
    against the previous release's median measured just before the deploy (a regression gate).

    The median of a few samples, not their maximum, so one slow moment of a busy machine does not fail
    a good release; a release that is slow on every order still fails."""
    if not samples_ms:
        return GateVerdict(False, "latency", "no order was timed during the watch window")
    median = statistics.median(samples_ms)
    if median > objectives.latency_p95_ms:
        return GateVerdict(
            False, "latency",
            f"placing an order took {median:.0f} ms (median of {len(samples_ms)}), above the objective "
            f"of {objectives.latency_p95_ms:.0f} ms",
        )
    if baseline_ms is not None:
        limit = baseline_ms * LATENCY_FACTOR + LATENCY_SLACK_MS
        if median > limit:
            return GateVerdict(
                False, "latency",
                f"placing an order took {median:.1f} ms (median of {len(samples_ms)}), more than "
                f"{LATENCY_FACTOR} times the previous release's {baseline_ms:.1f} ms "
                f"plus {LATENCY_SLACK_MS:.0f} ms",
            )
    return GateVerdict(True)


def classify_deploy_failure(task: str | None) -> str:
    """Which gate a failed deploy task stands for (its task names are the role's, see tasks/*.yml)."""
    name = (task or "").lower()
    if "migration" in name or "schema" in name:
        return "migrate"
    if "health" in name or "start" in name or "restart" in name:
        return "health"
    return "deploy"


def _host_health(host: Host, timeout: float = 3.0) -> HostHealth:
    url = f"http://{host.address}:{host.service_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError:
        return HostHealth(host.name, None, None)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    problems = tuple(str(p) for p in body.get("problems", []) if isinstance(p, str | int | float))
    version = body.get("version")
    return HostHealth(host.name, status, str(version) if version is not None else None, problems)


_BAD_TOTALS = """
SELECT o.id::text FROM orders o JOIN order_items i ON i.order_id = o.id
WHERE o.created_at >= %s
GROUP BY o.id, o.total_cents
HAVING o.total_cents <> sum(i.quantity::bigint * i.unit_price_cents)
LIMIT 20
"""


def _bad_totals(db: Database, since: str) -> tuple[str, ...]:
    with db_driver.connect(db) as conn:
        return tuple(str(row[0]) for row in conn.execute(_BAD_TOTALS, (datetime.fromisoformat(since),)))


def observe_round(target: Target, since: str) -> GateRound:
    hosts = tuple(_host_health(host) for host in target.hosts())
    if any(h.status != 200 for h in hosts):  # judge_round fails on health first: skip the rest
        return GateRound(hosts, 0, (), True, "", None)
    bad = _bad_totals(target.primary.database, since)
    primary = target.primary.hosts[0]
    smoke = smoke_test(f"http://{primary.address}:{primary.service_port}", timeout=15)
    order_ms = next((s.seconds * 1000 for s in smoke.steps if s.name == "create_order" and s.passed), None)
    failed = next((s for s in smoke.steps if not s.passed), None)
    reason = f"smoke test step {failed.name}: {failed.reason}" if failed else ""
    return GateRound(hosts, len(bad), bad, smoke.passed, reason, order_ms)


# Steps -------------------------------------------------------------------------------------------


def _preflight(ctx: RunContext) -> dict[str, Any]:
    release = get_release(str(ctx.params["release"]))
    db = ctx.target.primary.database
    major = db_driver.server_major(db)
    if major < release.requires.postgres_min_major:
        raise PreconditionFailed(
            f"release {release.name} needs PostgreSQL {release.requires.postgres_min_major} or newer, the "
            f"primary database runs {major}; upgrade PostgreSQL first or choose another release",
            code="preflight.postgres",
        )
    hosts = read_target_releases(ctx.target)
    unknown = [h for h in hosts if h.release is None]
    if unknown:
        raise PreconditionFailed(
            f"cannot tell which release {unknown[0].host} runs ({unknown[0].reason}); fix the host first",
            code="preflight.hosts",
        )
    running = sorted({str(h.release) for h in hosts})
    if len(running) > 1:
        raise PreconditionFailed(
            f"the hosts run different releases ({', '.join(running)}); run `recovery rollback` first",
            code="preflight.hosts",
        )
    if running[0] == release.name:
        raise PreconditionFailed(
            f"every host already runs {release.name}; nothing to upgrade", code="preflight.same_release"
        )
    baseline = _baseline_order_ms(ctx.target)
    ctx.note(f"upgrade {running[0]} -> {release.name}; PostgreSQL {major}; an order takes {baseline} ms")
    return {
        "previous_release": running[0],
        "release": release.name,
        "postgres_major": major,
        "hosts": {h.host: h.release for h in hosts},
        "baseline_order_ms": baseline,
    }


def _order_ms(target: Target) -> float | None:
    primary = target.primary.hosts[0]
    smoke = smoke_test(f"http://{primary.address}:{primary.service_port}", timeout=15)
    return next((s.seconds * 1000 for s in smoke.steps if s.name == "create_order" and s.passed), None)


def _baseline_order_ms(target: Target) -> float | None:
    """How long the running release takes to place an order, now (None when it cannot place one)."""
    samples = [ms for ms in (_order_ms(target) for _ in range(BASELINE_SAMPLES)) if ms is not None]
    return round(statistics.median(samples), 2) if samples else None


def _restore_point(ctx: RunContext) -> dict[str, Any]:
    previous = str(ctx.outputs["preflight"]["previous_release"])
    directory = restore_points_dir(ctx.target) / ctx.run_id
    keys = key_provider(ctx.target.keys, AwsDriver(ctx.target.aws))
    point = take_restore_point(ctx.target.primary.database, directory, previous, keys)
    ctx.note(f"restore point at {point.taken_at} (schema {point.schema_version}, {point.size_bytes} bytes)")
    return point.to_json()


def deploy_release(target: Target, release: str, health_timeout: int, run_id: str) -> PlaybookResult:
    artifact = build_release_artifact(release, target.state_dir / "artifacts")
    return run_playbook(
        target.inventory,
        str(PLAYBOOKS_DIR / "deploy.yml"),
        extravars={
            "order_service_release": release,
            "order_service_artifact": str(artifact),
            "order_service_health_timeout": health_timeout,
        },
        private_data_dir=target.state_dir / "ansible" / f"{run_id}-deploy",
    )


def _deploy(ctx: RunContext) -> dict[str, Any]:
    release = str(ctx.params["release"])
    started = datetime.now().astimezone().isoformat()
    result = deploy_release(ctx.target, release, int(ctx.params["health_timeout"]), ctx.run_id)
    if not result.ok:
        task = result.failed_task.task if result.failed_task else None
        message = result.failed_task.message if result.failed_task else f"ended {result.status}"
        where = f" on {result.failed_task.host}" if result.failed_task else ""
        raise GateFailed(classify_deploy_failure(task), f"deploy task {task!r}{where}: {message}")
    return {"release": release, "started_at": started, "playbook_seconds": round(result.duration, 3)}


def _gates(ctx: RunContext) -> dict[str, Any]:
    release = str(ctx.params["release"])
    since = str(ctx.outputs["deploy"]["started_at"])
    window = float(ctx.params["watch_seconds"])
    ends = time.monotonic() + window
    samples: list[float] = []
    rounds = 0
    while True:
        observed = observe_round(ctx.target, since)
        rounds += 1
        verdict = judge_round(release, observed)
        if not verdict.passed:
            raise GateFailed(str(verdict.gate), verdict.reason)
        if observed.order_ms is not None:
            samples.append(observed.order_ms)
        ctx.progress(f"round {rounds}: healthy", time.monotonic() - (ends - window), window)
        # A few timed orders at least, so the latency gate judges a median, not one sample.
        if time.monotonic() >= ends and (len(samples) >= BASELINE_SAMPLES or time.monotonic() > ends + 30):
            break
        time.sleep(GATE_INTERVAL_SECONDS)
    baseline = ctx.outputs["preflight"].get("baseline_order_ms")
    latency = judge_latency(samples, ctx.target.objectives, None if baseline is None else float(baseline))
    if not latency.passed:
        raise GateFailed(str(latency.gate), latency.reason)
    return {
        "rounds": rounds,
        "order_ms_median": round(statistics.median(samples), 1),
        "watch_seconds": window,
    }


def upgrade_params(
    release: str,
    *,
    watch_seconds: float = DEFAULT_WATCH_SECONDS,
    health_timeout: int = DEFAULT_HEALTH_TIMEOUT,
) -> dict[str, Any]:
    """Validated parameters of an upgrade run (bad input is refused before anything runs)."""
    get_release(release)  # UsageError for an unknown release
    if watch_seconds < 0:
        raise UsageError(f"--watch must be 0 seconds or more, not {watch_seconds}")
    if health_timeout < 1:
        raise UsageError(f"--health-timeout must be at least 1 second, not {health_timeout}")
    return {"release": release, "watch_seconds": watch_seconds, "health_timeout": health_timeout}


def upgrade_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    release = str(params["release"])
    hosts = tuple(h.name for h in target.hosts())
    db = target.primary.database
    database = f"{db.address}:{db.port}/{db.name}"
    return Runbook(
        name=RUNBOOK,
        params=dict(params),
        steps=(
            Step(
                "preflight",
                f"check that {release} may be deployed on every host",
                _preflight,
                mutating=False,
                acts_on=(database, *hosts),
            ),
            Step(
                "restore-point",
                "dump one consistent snapshot of the database to files",
                _restore_point,
                acts_on=(database,),
            ),
            Step(
                "deploy",
                f"deploy {release}: unpack, migrate, switch current, restart, wait for health",
                _deploy,
                acts_on=hosts,
            ),
            Step(
                "gates",
                "watch health, order totals and latency over the watch window",
                _gates,
                mutating=False,
                acts_on=hosts,
            ),
        ),
    )


register_runbook(RUNBOOK, upgrade_runbook)
