"""The order service of a site, as the failover runbooks see it: does it take writes, is it healthy.

The service is not stopped to fence it: its database refuses it (role locked out, read-only), and its
/health says so. A service that does not answer at all takes no writes either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from recovery.drivers import orderservice
from recovery.errors import ExternalFailure, first_line
from recovery.failover.platform import FenceMeans
from recovery.failover.state import ServiceState
from recovery.targets.model import Host, Site


@dataclass(frozen=True)
class HostHealth:
    answering: bool
    healthy: bool
    writable: bool  # healthy and on a database that takes writes
    problem: str | None = None


def base_url(host: Host) -> str:
    return f"http://{host.address}:{host.service_port}"


def host_health(host: Host, timeout: float = 2.0) -> HostHealth:
    try:
        status, doc = orderservice.call(base_url(host), "GET", "/health", timeout=timeout)
    except ExternalFailure as exc:
        return HostHealth(False, False, False, first_line(exc))
    doc = doc if isinstance(doc, dict) else {}
    healthy = status == 200 and doc.get("status") == "ok"
    read_only = bool((doc.get("db") or {}).get("read_only"))
    problems = doc.get("problems") or []
    problem = None if healthy else (str(problems[0]) if problems else f"/health answered {status}")
    return HostHealth(True, healthy, healthy and not read_only, problem)


def observe_service(site: Site) -> ServiceState:
    """The site's service: answering if any host answers, healthy if every host is."""
    seen = [host_health(h) for h in site.hosts]
    problem = next((h.problem for h in seen if h.problem), None)
    return ServiceState(
        answering=any(h.answering for h in seen), healthy=all(h.healthy for h in seen), problem=problem
    )


def confirm_no_writes(site: Site, *, timeout: float = 10) -> FenceMeans:
    """Wait until no host of the site can write: /health unhealthy or read-only, or no answer."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {h.name: host_health(h) for h in site.hosts}
        writing = sorted(name for name, h in seen.items() if h.writable)
        if not writing:
            how = "; ".join(
                f"{name}: {'no answer' if not h.answering else h.problem or 'read-only'}"
                for name, h in seen.items()
            )
            return FenceMeans("service", True, how)
        if time.monotonic() > deadline:
            return FenceMeans("service", False, f"still reports a writable database: {', '.join(writing)}")
        time.sleep(0.2)


def wait_writable(site: Site, *, timeout: float = 30) -> float:
    """Wait until every host of the site reports healthy on a writable database; the seconds waited."""
    started = time.monotonic()
    while True:
        seen = {h.name: host_health(h) for h in site.hosts}
        if all(h.writable for h in seen.values()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            late = ", ".join(f"{n} ({h.problem or 'read-only'})" for n, h in seen.items() if not h.writable)
            raise ExternalFailure(
                f"the {site.name} site's service did not report a writable database within {timeout:.0f} s: "
                f"{late}"
            )
        time.sleep(0.2)
