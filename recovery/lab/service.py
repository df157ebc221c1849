"""The order service on the lab's hosts: deployed by the real deploy playbook, seeded, and found again
by its pidfile (the lab's supervisor is a pidfile-managed daemon)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery.drivers.ansible import PlaybookResult, require_success, run_playbook
from recovery.errors import EnvironmentProblem
from recovery.lab.plan import LabPlan, SitePlan
from recovery.lab.processes import start_ticks
from recovery.lab.state import ProcessRecord

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO_ROOT / "playbooks"
DEPLOY_PLAYBOOK = PLAYBOOKS / "deploy.yml"
GROUP_VARS = REPO_ROOT / "inventories" / "lab" / "group_vars"
FIRST_RELEASE = "v1"
PIDFILE_NAMES = ("orderservice.pid", "order-service.pid", "service.pid")


@dataclass(frozen=True)
class Health:
    reachable: bool
    healthy: bool
    version: str | None
    detail: dict[str, Any]


def health(address: str, port: int, *, timeout: float = 2.0) -> Health:
    """GET /health of the service at address:port."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/health", timeout=timeout) as response:
            body = json.loads(response.read() or b"{}")
            status = response.status
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        status = exc.code
    except (OSError, ValueError):
        return Health(reachable=False, healthy=False, version=None, detail={})
    if not isinstance(body, dict):
        body = {}
    version = body.get("version")
    return Health(
        reachable=True,
        healthy=status == 200 and body.get("status", "ok") == "ok",
        version=str(version) if version is not None else None,
        detail=body,
    )


def build_artifact(plan: LabPlan, version: str) -> Path:
    try:
        from recovery.release.artifacts import build_release_artifact
    except ImportError:
        raise EnvironmentProblem(
            "recovery.release.artifacts is missing from this checkout; update it, then `lab up` again"
        ) from None
    plan.artifacts_dir.mkdir(parents=True, exist_ok=True)
    return build_release_artifact(version, plan.artifacts_dir)


def deploy(plan: LabPlan, version: str, *, limit: str | None = None) -> PlaybookResult:
    """Deploy release `version` to the lab's hosts through the real deploy playbook; raise on failure."""
    if not DEPLOY_PLAYBOOK.is_file():
        raise EnvironmentProblem(f"{DEPLOY_PLAYBOOK} is missing from this checkout; update it and retry")
    artifact = build_artifact(plan, version)
    result = run_playbook(
        plan.inventory_file,
        str(DEPLOY_PLAYBOOK),
        extravars={"order_service_release": version, "order_service_artifact": str(artifact)},
        limit=limit,
        private_data_dir=plan.state_dir / "ansible" / f"deploy-{version}-{_stamp()}",
    )
    return require_success(result)


def _stamp() -> str:
    import time

    return time.strftime("%Y%m%dT%H%M%S") + f"-{time.monotonic_ns() % 1000000:06d}"


def deployed_release(site: SitePlan) -> str | None:
    """The release the host's `current` link points at (releases/<version>), or None before a deploy."""
    current = site.app_dir / "current"
    if not current.is_symlink():
        return None
    target = current.resolve()
    return target.name if target.parent.name == "releases" else None


def find_pidfile(site: SitePlan) -> Path | None:
    """The service's pidfile under the host's base dir (the deploy role's pidfile supervisor writes it)."""
    for folder in (
        site.app_dir / "shared",
        site.app_dir / "shared" / "run",
        site.app_dir / "run",
        site.app_dir,
    ):
        for name in PIDFILE_NAMES:
            if (folder / name).is_file():
                return folder / name
    found = sorted(site.app_dir.glob("shared/**/*.pid"))
    return found[0] if found else None


def service_record(site: SitePlan) -> ProcessRecord | None:
    pidfile = find_pidfile(site)
    if pidfile is None:
        return None
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    return ProcessRecord(
        name=f"service-{site.site}", kind="service", pid=pid, start_ticks=ticks, pidfile=pidfile
    )


def seed(conninfo: str, orders: int) -> dict[str, int]:
    try:
        from recovery.lab.seed import seed_lab_data
    except ImportError:
        raise EnvironmentProblem(
            "recovery.lab.seed is missing from this checkout; update it, then `lab up` again"
        ) from None
    return seed_lab_data(conninfo, orders=orders)
