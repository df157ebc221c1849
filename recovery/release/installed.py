"""Which release each host of a target runs: its `current` link and the release.json behind it."""

from __future__ import annotations

import json
import shlex
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict

from recovery.drivers import remote
from recovery.errors import RecoveryError
from recovery.targets.model import Host, SiteName, Target


class HostRelease(BaseModel):
    """What one host runs; `release` is None when it cannot be known, and `reason` says why."""

    model_config = ConfigDict(frozen=True)

    host: str
    site: SiteName
    release: str | None
    schema_version: int | None = None
    path: str | None = None
    reason: str | None = None


def _probe_command(base_dir: PurePosixPath) -> str:
    current = shlex.quote(str(base_dir / "current"))
    return f"readlink {current} && cat {current}/release.json"


def read_host_release(host: Host, site: SiteName, *, timeout: float = 15) -> HostRelease:
    """Ask the host over SSH; every failure becomes a reason instead of an exception."""
    try:
        result = remote.run(host, _probe_command(PurePosixPath(str(host.base_dir))), timeout=timeout)
    except RecoveryError as exc:
        return HostRelease(host=host.name, site=site, release=None, reason=exc.message)
    if result.rc != 0:
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.rc}"
        return HostRelease(
            host=host.name,
            site=site,
            release=None,
            reason=f"no deployed release under {host.base_dir}/current ({detail})",
        )
    link, _, document = result.stdout.partition("\n")
    try:
        data = json.loads(document)
        version = str(data["version"])
        schema = int(data["schema_version"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return HostRelease(
            host=host.name,
            site=site,
            release=None,
            path=link.strip(),
            reason=f"{link.strip()}/release.json is missing or unreadable",
        )
    return HostRelease(host=host.name, site=site, release=version, schema_version=schema, path=link.strip())


def read_target_releases(target: Target) -> list[HostRelease]:
    return [
        read_host_release(host, site.name) for site in (target.primary, target.standby) for host in site.hosts
    ]
