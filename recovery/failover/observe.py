"""Observe both sites once: databases through the platform, services over HTTP, the traffic record,
and the site record (which site should take writes, at which generation)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from recovery.errors import RecoveryError
from recovery.failover.platform import DatabasePlatform
from recovery.failover.service import observe_service
from recovery.failover.state import ClusterState, SiteState
from recovery.failover.traffic import read_records, traffic_site
from recovery.targets.model import Target
from recovery.targets.sites import read_site_record


def observe(target: Target, platform: DatabasePlatform) -> ClusterState:
    record = read_site_record(target.state_dir)
    writer = target.site(record.writer)
    with ThreadPoolExecutor(max_workers=4) as pool:
        databases = {
            site.name: pool.submit(platform.observe, site, writer)
            for site in (target.primary, target.standby)
        }
        services = {
            site.name: pool.submit(observe_service, site) for site in (target.primary, target.standby)
        }
    try:
        traffic = traffic_site(target, read_records(target))
    except RecoveryError:
        traffic = None
    sites = tuple(
        SiteState(name, databases[name].result(), services[name].result()) for name in ("primary", "standby")
    )
    return ClusterState(
        writer=record.writer,
        epoch=record.epoch,
        sites=(sites[0], sites[1]),
        traffic_to=traffic,
    )
