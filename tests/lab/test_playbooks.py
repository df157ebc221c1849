"""The restore, backup and WAL archive playbooks on a real lab (sshd hosts, PostgreSQL, ansible-runner).

Check mode first: every playbook runs under --check and leaves the hosts exactly as they were (the
service keeps running on the same pid, no file appears or changes). Then restore.yml for real: its stop
and start run the order_service role's own tasks, and a second run of either changes nothing.

Run with RECOVERY_TEST_BASE_PORT set to your own base port. The tests run in file order and share one
lab: the real stop and start come last.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

import pytest

from recovery.backup.realtime import spool_dir, wal_archive_extravars
from recovery.drivers import db
from recovery.drivers.ansible import PlaybookResult, require_success, run_playbook
from recovery.lab.plan import LabPlan, SitePlan
from recovery.lab.processes import is_alive
from recovery.targets.model import Target

pytestmark = pytest.mark.lab

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
RUN_ID = "check-mode-run"


class Lab(Protocol):
    """The shape of the `lab` fixture (tests/lab/conftest.py)."""

    dir: Path
    plan: LabPlan
    target: Target


def _run(lab: Lab, playbook: str, *, check: bool = False, **extravars: str) -> PlaybookResult:
    return run_playbook(lab.plan.inventory_file, str(PLAYBOOKS / playbook), extravars=extravars, check=check)


def _tree(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under `root` with (is a directory, size, mtime): any write shows up as a difference.

    The service's own log files are left out: the service writes them on its own (a health probe is a
    request), which says nothing about what a playbook did."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[:2] == ("shared", "log") and path.is_file():
            continue
        info = path.lstat()
        found[str(relative)] = (path.is_dir(), info.st_size, info.st_mtime_ns)
    return found


def _pid(site: SitePlan) -> int | None:
    pidfile = site.app_dir / "shared" / "run" / "orderservice.pid"
    if not pidfile.is_file():
        return None
    return int(pidfile.read_text().split()[0])


def _health(site: SitePlan) -> int | None:
    """The HTTP status of the site's /health, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{site.address}:{site.service_port}/health", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def _changed(result: PlaybookResult) -> dict[str, int]:
    return {host: stats.changed for host, stats in result.hosts.items()}


# Check mode: nothing changes on any host ------------------------------------------------------------


@pytest.mark.parametrize("phase", ["stop", "start"])
def test_restore_playbook_in_check_mode_leaves_the_running_service_alone(lab: Lab, phase: str) -> None:
    before = {site.site: (_pid(site), _tree(site.app_dir)) for site in lab.plan.sites}
    assert all(pid is not None and is_alive(pid) for pid, _ in before.values()), "the lab's services run"

    result = _run(lab, "restore.yml", check=True, order_restore_service_phase=phase)

    assert result.ok, result.failed_task
    assert set(result.hosts) == {"primary-app", "standby-app"}
    for site in lab.plan.sites:
        pid, tree = before[site.site]
        assert _pid(site) == pid and pid is not None and is_alive(pid), f"{phase} --check touched the service"
        assert _tree(site.app_dir) == tree, f"{phase} --check changed files on {site.host_name}"
        assert _health(site) == 200


def test_backup_playbook_in_check_mode_packs_nothing(lab: Lab) -> None:
    before = {site.site: _tree(site.app_dir) for site in lab.plan.sites}

    result = _run(
        lab, "backup.yml", check=True, order_backup_logs_phase="gather", order_backup_logs_run=RUN_ID
    )

    assert result.ok, result.failed_task
    # It reports what it would do (create the directory, pack the tar) ...
    assert all(changed > 0 for changed in _changed(result).values()), result.hosts
    # ... and does none of it.
    for site in lab.plan.sites:
        assert not (site.app_dir / "shared" / "backup").exists()
        assert _tree(site.app_dir) == before[site.site]


def test_backup_playbook_refuses_a_run_without_an_id(lab: Lab) -> None:
    result = _run(lab, "backup.yml", check=True, order_backup_logs_phase="gather")

    assert not result.ok
    assert result.failed_task is not None and "order_backup_logs_run" in result.failed_task.message


def test_wal_archive_playbook_in_check_mode_changes_no_setting(lab: Lab) -> None:
    primary = lab.plan.primary
    conf = (primary.pg_data / "postgresql.conf").read_bytes()
    # What a real first run writes: the spool, the archive script and the two settings files.
    written = [
        spool_dir(lab.target.primary.database),
        primary.pg_dir / "archive-wal.sh",
        primary.pg_data / "wal_archive.conf",
        primary.pg_data / "wal_archive_mode.conf",
    ]

    result = _run(lab, "wal-archive.yml", check=True, **wal_archive_extravars(lab.target))

    assert result.ok, result.failed_task
    assert _changed(result)["primary-app"] > 0, "a first run would change the settings"
    assert (primary.pg_data / "postgresql.conf").read_bytes() == conf
    assert [path for path in written if path.exists()] == []
    with db.connect(lab.target.primary.database) as conn:
        row = conn.execute("SELECT current_setting('archive_mode')").fetchone()
    assert row is not None and row[0] == "off"


# restore.yml for real: the order_service role's stop and start ---------------------------------------


def test_restore_stop_stops_the_service_on_every_host_and_again_changes_nothing(lab: Lab) -> None:
    pids = {site.site: _pid(site) for site in lab.plan.sites}

    stopped = require_success(_run(lab, "restore.yml", order_restore_service_phase="stop"))

    assert _changed(stopped) == {"primary-app": 1, "standby-app": 1}
    for site in lab.plan.sites:
        pid = pids[site.site]
        assert pid is not None and not is_alive(pid), f"the service on {site.host_name} still runs"
        assert _pid(site) is None, "the pidfile is removed with the process"
        assert _health(site) is None
    again = require_success(_run(lab, "restore.yml", order_restore_service_phase="stop"))
    assert _changed(again) == {"primary-app": 0, "standby-app": 0}


def test_restore_start_in_check_mode_starts_nothing(lab: Lab) -> None:
    result = _run(lab, "restore.yml", check=True, order_restore_service_phase="start")

    assert result.ok, result.failed_task
    for site in lab.plan.sites:
        assert _pid(site) is None and _health(site) is None


def test_restore_start_starts_the_service_healthy_and_again_changes_nothing(lab: Lab) -> None:
    started = require_success(_run(lab, "restore.yml", order_restore_service_phase="start"))

    assert _changed(started) == {"primary-app": 1, "standby-app": 1}
    pids = {site.site: _pid(site) for site in lab.plan.sites}
    for site in lab.plan.sites:
        pid = pids[site.site]
        assert pid is not None and is_alive(pid)
        assert _health(site) == 200
    again = require_success(_run(lab, "restore.yml", order_restore_service_phase="start"))
    assert _changed(again) == {"primary-app": 0, "standby-app": 0}
    assert {site.site: _pid(site) for site in lab.plan.sites} == pids, "a second start restarted the service"


def test_restore_refuses_an_unknown_phase_before_touching_a_host(lab: Lab) -> None:
    pids = {site.site: _pid(site) for site in lab.plan.sites}

    result = _run(lab, "restore.yml", order_restore_service_phase="restart")

    assert not result.ok
    assert result.failed_task is not None and "Validating arguments" in result.failed_task.task
    reason = "order_restore_service_phase must be one of: stop, start, got: restart"
    assert reason in result.failed_task.message
    assert {site.site: _pid(site) for site in lab.plan.sites} == pids
