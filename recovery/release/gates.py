"""Health gates after a deploy: observe the running service, decide (pure) whether it may stay.

Gates, in the order they are judged:
  health      every host's /health answers 200 with status ok
  error_rate  real order requests through the front door fail no more than objectives.error_rate_max
  latency     their p95 stays under objectives.latency_p95_ms
  smoke       the business smoke test (recovery.verify.smoke) passes through the front door
  invariants  the business invariants (recovery.verify.invariants) hold on the primary database: over
              the rows written since the deploy started when the caller says when (`since`), older rows
              having been judged before it; over every row otherwise
`watch_gates` samples them for a window and returns at the first failing gate, with the reason, the
time it took to detect and every sample taken. Health and traffic are sampled every interval; the smoke
test and the invariants (heavier: they place an order, they scan the order tables) at the start, every
`deep_every_s` and at the end of the window.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg

from recovery.drivers import db
from recovery.errors import RecoveryError, UsageError
from recovery.load.stats import percentile
from recovery.release.probe_orders import GATE_PROBE_EMAIL, ProbeSweep, sweep_probe_orders
from recovery.targets.model import Host, Objectives, Target
from recovery.verify.invariants import InvariantReport, run_invariants
from recovery.verify.reports import failure_line
from recovery.verify.smoke import SmokeReport, smoke_test

GateName = Literal["health", "error_rate", "latency", "smoke", "invariants"]
GATE_NAMES: tuple[GateName, ...] = ("health", "error_rate", "latency", "smoke", "invariants")
MIN_REQUESTS = 10  # below this many requests an error rate or a p95 says too little to fail a release
PROBE_TIMEOUT_S = 10.0
# What a request that got no usable answer raises: OSError covers refused connections, timeouts and
# urllib's URLError; HTTPException a service restarting mid-answer, which cuts its body short
# (IncompleteRead) and once failed a rollback's wait for the hosts' release.
NO_ANSWER: tuple[type[Exception], ...] = (OSError, http.client.HTTPException)
# The invariants judge rows written from this long before the deploy started: the deploy's clock and the
# database's may differ, and an order's created_at is its transaction's start, which may precede the
# moment the deploy was recorded while it commits after. A minute of rows costs nothing to judge again.
SCOPE_MARGIN = timedelta(seconds=60)
DEFAULT_MAX_SLOWDOWN = 3.0
SLOWDOWN_SLACK_MS = 100.0
# Probe orders: sixteen lines, the first of quantity 2 (a total that ignores quantities is caught), and
# many lines so per-line costs of a release show in the latency (v2-slow scans order_items per line).
PROBE_QUANTITIES: tuple[int, ...] = (2, *([1] * 15))


# -- observations (frozen snapshots) -------------------------------------------------------------


@dataclass(frozen=True)
class HostHealth:
    host: str
    healthy: bool
    detail: str  # "release v2, schema 4" or why it is not healthy
    release: str | None = None  # the release /health reports, when it answered


@dataclass(frozen=True)
class Request:
    ok: bool
    latency_ms: float
    detail: str  # "201" or the failure


@dataclass(frozen=True)
class GateResult:
    gate: GateName
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateSample:
    """One round of observations and what each gate decided on it."""

    at_s: float  # seconds since the watch started
    results: tuple[GateResult, ...]

    @property
    def failed(self) -> GateResult | None:
        return next((r for r in self.results if not r.passed), None)


@dataclass(frozen=True)
class GateReport:
    passed: bool
    failed_gate: GateName | None
    reason: str
    detect_s: float | None  # from the start of the watch to the failing observation
    window_s: float
    watched_s: float
    samples: tuple[GateSample, ...]
    requests: int
    errors: int
    p95_ms: float | None


# -- pure decisions ------------------------------------------------------------------------------


def decide_health(hosts: Sequence[HostHealth], release: str | None = None) -> GateResult:
    """Every host answers /health ok and, when `release` is given, runs that release (a host the deploy
    left on the old release is as bad as a sick one). Pure."""
    if not hosts:
        return GateResult("health", False, "no host was probed; the target lists no hosts")
    sick = [h for h in hosts if not h.healthy]
    if sick:
        first = sick[0]
        more = f" (and {len(sick) - 1} more host(s))" if len(sick) > 1 else ""
        return GateResult("health", False, f"host {first.host} is not healthy: {first.detail}{more}")
    if release is not None:
        other = [h for h in hosts if h.release != release]
        if other:
            return GateResult("health", False, f"host {other[0].host} runs {other[0].release}, not {release}")
        return GateResult("health", True, f"all {len(hosts)} hosts answer /health ok on {release}")
    return GateResult("health", True, f"all {len(hosts)} hosts answer /health ok")


def decide_error_rate(requests: Sequence[Request], objectives: Objectives) -> GateResult:
    total = len(requests)
    errors = [r for r in requests if not r.ok]
    if total < MIN_REQUESTS:
        if len(errors) > objectives.error_rate_max * MIN_REQUESTS:
            # Too few requests for a rate, but more failures than the objective allows in a full sample.
            return GateResult(
                "error_rate",
                False,
                f"{len(errors)} of the first {total} requests failed ({errors[0].detail})",
            )
        return GateResult("error_rate", True, f"{len(errors)} errors in {total} requests so far")
    rate = len(errors) / total
    if rate > objectives.error_rate_max:
        return GateResult(
            "error_rate",
            False,
            f"{len(errors)} of {total} requests failed ({rate:.1%}, objective at most "
            f"{objectives.error_rate_max:.1%}); first: {errors[0].detail}",
        )
    return GateResult(
        "error_rate",
        True,
        f"{len(errors)} of {total} requests failed ({rate:.1%}, objective {objectives.error_rate_max:.1%})",
    )


@dataclass(frozen=True)
class LatencyBaseline:
    """Latency of the same probe orders measured before the deploy, on the release being replaced."""

    p50_ms: float
    p95_ms: float
    requests: int


def slowdown_limit(baseline: LatencyBaseline, max_slowdown: float = DEFAULT_MAX_SLOWDOWN) -> float:
    """The median latency a new release may reach against the baseline. Pure.

    The median, not the p95: on a busy machine the tail of a few dozen requests is noise, the median is
    not. SLOWDOWN_SLACK_MS keeps a fast release from failing on a few milliseconds of jitter.
    """
    return max(baseline.p50_ms * max_slowdown, baseline.p50_ms + SLOWDOWN_SLACK_MS)


def decide_latency(
    requests: Sequence[Request],
    objectives: Objectives,
    baseline: LatencyBaseline | None = None,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
) -> GateResult:
    """p95 against the objective (the hard limit); with a baseline, also the median against
    `slowdown_limit`: a release several times slower than the one it replaced is a regression even
    while it is still under the objective. Pure."""
    latencies = [r.latency_ms for r in requests if r.ok]
    limit = objectives.latency_p95_ms
    if len(latencies) < MIN_REQUESTS:
        return GateResult(
            "latency", True, f"{len(latencies)} answered requests so far; p95 needs {MIN_REQUESTS}"
        )
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    assert p50 is not None and p95 is not None
    n = len(latencies)
    if p95 > limit:
        return GateResult(
            "latency",
            False,
            f"p95 latency {p95:.0f} ms over {n} requests exceeds the objective {limit:.0f} ms",
        )
    if baseline is not None and p50 > slowdown_limit(baseline, max_slowdown):
        return GateResult(
            "latency",
            False,
            f"median latency {p50:.0f} ms over {n} requests is {p50 / baseline.p50_ms:.1f}x the "
            f"{baseline.p50_ms:.0f} ms measured before the deploy (at most {max_slowdown:g}x allowed)",
        )
    against = f", median {p50:.0f} ms against {baseline.p50_ms:.0f} ms before" if baseline else ""
    return GateResult(
        "latency", True, f"p95 latency {p95:.0f} ms over {n} requests (objective {limit:.0f} ms){against}"
    )


def decide_smoke(report: SmokeReport) -> GateResult:
    if report.passed:
        return GateResult(
            "smoke", True, f"smoke test passed in {report.seconds:.2f} s (order {report.order_id})"
        )
    return GateResult("smoke", False, failure_line(report) or "the smoke test failed")


def decide_invariants(report: InvariantReport) -> GateResult:
    if report.passed:
        return GateResult("invariants", True, f"all {len(report.checks)} business invariants hold")
    return GateResult("invariants", False, failure_line(report) or "the business invariants do not hold")


def invariants_since(deploy_started: datetime | None) -> datetime | None:
    """From when the gates' invariants judge rows: SCOPE_MARGIN before the deploy started; None (every
    row) when the start is not known. Pure."""
    if deploy_started is None:
        return None
    if deploy_started.tzinfo is None:
        raise UsageError("the deploy's start must carry its time zone (an ISO 8601 time with an offset)")
    return deploy_started - SCOPE_MARGIN


def first_failure(results: Sequence[GateResult]) -> GateResult | None:
    """The failing gate that decides, in GATE_NAMES order. Pure."""
    order = {name: i for i, name in enumerate(GATE_NAMES)}
    failed = sorted((r for r in results if not r.passed), key=lambda r: order[r.gate])
    return failed[0] if failed else None


# -- observers (I/O) -----------------------------------------------------------------------------


def _get_json(url: str, timeout: float) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            try:
                return int(error.code), json.loads(error.read() or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError):
                return int(error.code), None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return 200, None


def observe_host_health(host: Host, timeout: float = PROBE_TIMEOUT_S) -> HostHealth:
    url = f"http://{host.address}:{host.service_port}/health"
    try:
        status, document = _get_json(url, timeout)
    except NO_ANSWER as error:
        reason = getattr(error, "reason", error)
        return HostHealth(host.name, False, f"GET {url} got no answer ({reason})")
    doc = document if isinstance(document, dict) else {}
    version = doc.get("version")
    release = None if version is None else str(version)
    if status == 200 and doc.get("status") == "ok":
        return HostHealth(host.name, True, f"release {release}", release)
    problems = doc.get("problems") or []
    detail = f": {problems[0]}" if problems else ""
    return HostHealth(
        host.name, False, f"GET {url} answered {status} status {doc.get('status')!r}{detail}", release
    )


class OrderProbe:
    """Real orders through the front door (PROBE_QUANTITIES); the user and products are found through the
    API. A total that ignores quantities is caught by the invariants too."""

    def __init__(self, front_door_url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
        self.base = front_door_url.rstrip("/")
        self.timeout = timeout
        self.user_id: int | None = None
        self.product_ids: list[int] = []
        self._next = 0

    def _post(self, path: str, body: Any, method: str = "POST") -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 - the target's front door URL
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), None

    def _prepare(self) -> None:
        if self.user_id is None:
            status, doc = self._post(
                "/users", {"email": GATE_PROBE_EMAIL, "name": "order-recovery gate probe"}
            )
            if status not in (200, 201) or not isinstance(doc, dict):
                raise OSError(f"POST /users answered {status}")
            self.user_id = int(doc["id"])
        if not self.product_ids:
            status, doc = _get_json(f"{self.base}/products?in_stock=1&limit=40", self.timeout)
            products = doc.get("products") if isinstance(doc, dict) else None
            if status != 200 or not products:
                raise OSError(f"GET /products answered {status} without products")
            self.product_ids = [int(p["id"]) for p in products if int(p.get("stock", 0)) >= 2]

    def one(self) -> Request:
        started = time.monotonic()
        try:
            self._prepare()
            started = time.monotonic()  # the user and product look-ups of the first call do not count
            count = min(len(PROBE_QUANTITIES), len(self.product_ids))
            products = [self.product_ids[(self._next + i) % len(self.product_ids)] for i in range(count)]
            self._next += 1
            items = [
                {"product_id": p, "quantity": q} for p, q in zip(products, PROBE_QUANTITIES, strict=False)
            ]
            order_id = str(uuid.uuid4())
            body = {"order_id": order_id, "user_id": self.user_id, "items": items}
            status, _ = self._post("/orders", body)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
            reason = getattr(error, "reason", error)
            return Request(False, (time.monotonic() - started) * 1000, f"POST /orders failed: {reason}")
        latency = (time.monotonic() - started) * 1000
        if status == 201:
            self._remove(order_id)  # not timed: the latency is the customer's request alone
        return Request(status == 201, latency, f"POST /orders answered {status}")

    def _remove(self, order_id: str) -> None:
        """Take the probe order out of the books at once; the watch's sweep removes any left behind."""
        with contextlib.suppress(*NO_ANSWER, ValueError):
            self._post(f"/orders/{order_id}", None, method="DELETE")


def measure_baseline(target: Target, requests: int = 2 * MIN_REQUESTS) -> LatencyBaseline | None:
    """The p95 of probe orders on the running release, before a deploy; None when too few answered."""
    probe = OrderProbe(target.traffic.front_door_url)
    try:
        answered = [r.latency_ms for r in (probe.one() for _ in range(requests)) if r.ok]
    finally:
        sweep_probes(target)
    p50, p95 = percentile(answered, 50), percentile(answered, 95)
    if p50 is None or p95 is None or len(answered) < MIN_REQUESTS:
        return None
    return LatencyBaseline(p50_ms=p50, p95_ms=p95, requests=len(answered))


def sweep_probes(target: Target) -> ProbeSweep | None:
    """Remove every probe order left on the primary (docs/preflight-and-gates.md); None when the database
    cannot be reached (the next sweep takes them: a probe order never counts as a customer's)."""
    try:
        with db.connect(target.writable.database) as conn:
            return sweep_probe_orders(conn)
    except (RecoveryError, psycopg.Error):
        return None


def observe_invariants(target: Target, since: datetime | None = None) -> InvariantReport | GateResult:
    try:
        with db.connect(target.writable.database) as conn:
            return run_invariants(conn, "public", since)
    except RecoveryError as exc:
        return GateResult("invariants", False, f"the invariants could not run: {exc.message}")


# -- the watch -----------------------------------------------------------------------------------


def check_window(window_s: float, interval_s: float) -> None:
    if not 0 < interval_s <= window_s:
        raise UsageError(f"give 0 < interval ({interval_s:g} s) <= window ({window_s:g} s)")
    if window_s > 3600:
        raise UsageError(f"a gate window of {window_s:g} s is over an hour; give at most 3600 s")


def watch_gates(
    target: Target,
    window_s: float,
    interval_s: float,
    *,
    probes_per_interval: int = 5,
    deep_every_s: float = 15.0,
    baseline: LatencyBaseline | None = None,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    release: str | None = None,
    deploy_started: datetime | None = None,
) -> GateReport:
    """Watch every gate for `window_s` seconds; return at the first failing gate (or after the window).

    `baseline` (from `measure_baseline` before the deploy) lets the latency gate fail a release that is
    `max_slowdown` times slower than the one it replaced, even under the objective. `release`: every
    host must report it on /health (the upgrade passes the release it deployed). `deploy_started`
    (timezone-aware): after the first round, which judges every row, the invariants judge only rows
    written since then (`invariants_since`); without it, every round judges every row (5-15 s a round
    on a million orders).
    """
    check_window(window_s, interval_s)
    try:
        return _watch(
            target,
            window_s,
            interval_s,
            probes_per_interval,
            deep_every_s,
            baseline,
            max_slowdown,
            release,
            invariants_since(deploy_started),
        )
    finally:
        # Before the caller acts on the verdict: a rollback's carry-over must find no probe order in live.
        sweep_probes(target)


def _watch(
    target: Target,
    window_s: float,
    interval_s: float,
    probes_per_interval: int,
    deep_every_s: float,
    baseline: LatencyBaseline | None,
    max_slowdown: float,
    release: str | None,
    since: datetime | None,
) -> GateReport:
    probe = OrderProbe(target.traffic.front_door_url)
    requests: list[Request] = []
    samples: list[GateSample] = []
    started = time.monotonic()
    last_deep: float | None = None
    while True:
        now = time.monotonic() - started
        # The last round is the one taken when the window is over, so the whole window is watched.
        last_round = now >= window_s - 0.05
        results = [decide_health([observe_host_health(h) for h in target.hosts()], release)]
        requests.extend(probe.one() for _ in range(probes_per_interval))
        results += [
            decide_error_rate(requests, target.objectives),
            decide_latency(requests, target.objectives, baseline, max_slowdown),
        ]
        if last_deep is None or now - last_deep >= deep_every_s or last_round:
            # The first round judges every row: a migration may have rewritten old rows without
            # touching their updated_at. Later rounds judge only the rows written since the deploy.
            first_deep = last_deep is None
            last_deep = now
            results.append(decide_smoke(smoke_test(target.traffic.front_door_url, timeout=PROBE_TIMEOUT_S)))
            invariants = observe_invariants(target, None if first_deep else since)
            results.append(
                invariants if isinstance(invariants, GateResult) else decide_invariants(invariants)
            )
        at = round(time.monotonic() - started, 3)
        samples.append(GateSample(at, tuple(results)))
        failed = first_failure(results)
        if failed is not None or last_round:
            return _report(failed, at, window_s, samples, requests)
        next_round = min(now + interval_s, window_s)
        time.sleep(max(0.0, next_round - (time.monotonic() - started)))


def _report(
    failed: GateResult | None, at: float, window_s: float, samples: list[GateSample], requests: list[Request]
) -> GateReport:
    answered = [r.latency_ms for r in requests if r.ok]
    return GateReport(
        passed=failed is None,
        failed_gate=failed.gate if failed else None,
        reason=failed.reason if failed else f"every gate held for {at:.1f} s ({len(samples)} samples)",
        detect_s=at if failed else None,
        window_s=window_s,
        watched_s=at,
        samples=tuple(samples),
        requests=len(requests),
        errors=sum(1 for r in requests if not r.ok),
        p95_ms=percentile(answered, 95),
    )
