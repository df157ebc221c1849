"""The lab end to end, on real parts: PostgreSQL primary + streaming standby, two sshd hosts reached over
real SSH by Fabric and ansible-runner, moto's server, the order service deployed by the deploy playbook,
and the front door following the Route53 failover record.

One lab serves the module (base port RECOVERY_TEST_BASE_PORT, default 25000; failing `up`s use
RECOVERY_TEST_SPARE_BASE_PORT, default 25500; both shifted by N * 3000 on pytest-xdist worker gwN); its
teardown runs `lab down` and checks every recorded pid is gone, also when a test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from worker_ports import base_port

from recovery.cli.main import main
from recovery.drivers import db, remote
from recovery.drivers.ansible import require_success, run_playbook
from recovery.engine.events import PlannedStep, RunStarted, StepStarted
from recovery.engine.journal import JournalWriter, new_run_id
from recovery.errors import EnvironmentProblem, ExitCode, ExternalFailure
from recovery.lab import aws, postgres, render, service
from recovery.lab.plan import DB_OWNER, DB_REPLICATOR, DB_SUPERUSER, LabPlan, plan_lab
from recovery.lab.processes import give_to, is_alive, lab_user, port_free, run_as
from recovery.lab.state import LabState, ProcessRecord, read_state
from recovery.targets.load import load_target
from recovery.targets.model import Target

pytestmark = pytest.mark.lab

# Parallel runs on one machine keep apart by these (the same variable tests/lab/conftest.py reads), and
# the workers of one run by the per-worker shift (tests/worker_ports.py).
BASE_PORT = base_port("RECOVERY_TEST_BASE_PORT", 25000)
SPARE_BASE_PORT = base_port("RECOVERY_TEST_SPARE_BASE_PORT", 25500)


@dataclass(frozen=True)
class Lab:
    dir: Path
    plan: LabPlan
    target: Target


def _cli(capsys: pytest.CaptureFixture[str] | None, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    if capsys is None:
        return code, "", ""
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _recorded(lab_dir: Path) -> list[ProcessRecord]:
    state = read_state(lab_dir / "lab.json")
    records = list(state.processes) if state else []
    plan = plan_lab(lab_dir, BASE_PORT)
    for site in plan.sites:
        current = service.service_record(site)
        if current is not None:
            records.append(current)
    return records


def _kill_leftovers(records: list[ProcessRecord]) -> list[str]:
    alive = [r for r in records if is_alive(r.pid, r.start_ticks)]
    for r in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.pid, signal.SIGKILL)
    return [f"{r.name} (pid {r.pid})" for r in alive]


@pytest.fixture(scope="module")
def lab(lab_reachable_tmp: Callable[[str], Path]) -> Iterator[Lab]:
    lab_dir = lab_reachable_tmp("lab")
    try:
        code = main(["lab", "up", "--lab-dir", str(lab_dir), "--base-port", str(BASE_PORT)])
        assert code == ExitCode.OK, "lab up failed"
        yield Lab(lab_dir, plan_lab(lab_dir, BASE_PORT), load_target(lab_dir / "target.yaml"))
    finally:
        before = _recorded(lab_dir)
        remote.close_all()
        code = main(["lab", "down", "--lab-dir", str(lab_dir)])
        leftovers = _kill_leftovers(before)
        assert code == ExitCode.OK
        assert leftovers == [], f"lab down left processes running: {leftovers}"


def _http(url: str, body: dict[str, Any] | None = None, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_status_reports_every_part_healthy(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "lab", "status", "--lab-dir", str(lab.dir), "--output", "json")
    doc = json.loads(out)["result"]
    assert doc["problems"] == []
    assert code == ExitCode.OK and doc["healthy"] is True
    assert doc["moto"]["reachable"] is True
    roles = {d["site"]: d["role"] for d in doc["databases"]}
    assert roles == {"primary": "primary", "standby": "standby"}
    standby = next(d for d in doc["databases"] if d["site"] == "standby")
    assert standby["streaming"] is True and standby["lag_bytes"] is not None
    assert {h["name"]: (h["ssh_reachable"], h["service_version"]) for h in doc["hosts"]} == {
        "primary-app": (True, "v1"),
        "standby-app": (True, "v1"),
    }
    assert doc["active_site"] == "primary"
    assert doc["front_door"]["backend"] == f"127.0.0.11:{lab.plan.primary.service_port}"


def test_the_standby_streams_as_the_replication_role_and_the_lab_user_cannot_read_the_superuser(
    lab: Lab,
) -> None:
    # The controller's passfile (the superuser's password) is the controller's own.
    info = lab.plan.pgpass.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (os.geteuid(), 0o600)
    user = lab_user()
    if user.switch:  # as root, the lab's servers run as another account
        with pytest.raises(EnvironmentProblem, match="Permission denied"):
            run_as(user, ["cat", str(lab.plan.pgpass)], cwd=lab.dir)
    # The standby streams as the replication role, with its own passfile.
    with db.connect(lab.target.primary.database, dbname="postgres") as conn:
        role = conn.execute(
            "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = %s", (DB_REPLICATOR,)
        ).fetchone()
        streams = conn.execute(
            "SELECT usename, state FROM pg_stat_replication WHERE application_name = 'standby'"
        ).fetchall()
    assert role == (False, True)
    assert streams == [(DB_REPLICATOR, "streaming")]
    with db.connect(lab.target.standby.database, dbname="postgres") as conn:
        found = conn.execute("SHOW primary_conninfo").fetchone()
    assert found is not None
    assert (
        f"user={DB_REPLICATOR}" in found[0] and f"passfile={lab.plan.standby.replication_pgpass}" in found[0]
    )
    assert str(lab.plan.pgpass) not in found[0]


def test_the_lab_is_seeded_and_the_pgpass_is_private(lab: Lab) -> None:
    with db.connect(lab.target.primary.database) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None and row[0] >= 10_000
    assert (lab.plan.pgpass.stat().st_mode & 0o777) == 0o600
    passwords = lab.plan.pgpass.read_text()
    for path in [lab.dir / "lab.json", lab.dir / "target.yaml", lab.plan.inventory_file]:
        text = path.read_text()
        for line in passwords.splitlines():
            assert line.rsplit(":", 1)[1] not in text


def test_an_order_placed_through_the_front_door_reaches_primary_and_standby(lab: Lab) -> None:
    order_id = str(uuid.uuid4())
    status, body = _http(
        f"{lab.target.traffic.front_door_url}/orders",
        {"order_id": order_id, "user_id": 1, "items": [{"product_id": 2, "quantity": 1}]},
    )
    assert status == 201, body
    primary, standby = lab.target.primary.database, lab.target.standby.database
    with db.connect(primary) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE id = %s", (order_id,)).fetchone() == (1,)
    db.wait_caught_up(primary, standby, timeout=10)
    with db.connect(standby) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE id = %s", (order_id,)).fetchone() == (1,)


def test_a_route53_upsert_switches_the_front_door_to_the_standby(lab: Lab) -> None:
    zone = lab.target.traffic.hosted_zone_id
    url = lab.target.aws.endpoint_url
    assert url is not None
    front = lab.target.traffic.front_door_url

    def site_behind_front_door() -> str | None:
        try:
            return str(_http(f"{front}/health", timeout=2)[1].get("site"))
        except OSError:
            return None

    assert site_behind_front_door() == "primary"
    aws.point_primary_record(url, zone, lab.plan.standby.address)
    try:
        deadline = time.monotonic() + 5
        while site_behind_front_door() != "standby" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert site_behind_front_door() == "standby"
    finally:
        aws.point_primary_record(url, zone, lab.plan.primary.address)
    deadline = time.monotonic() + 5
    while site_behind_front_door() != "primary" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert site_behind_front_door() == "primary"


def test_fabric_reaches_both_hosts_over_ssh_with_checked_host_keys(lab: Lab, tmp_path: Path) -> None:
    for host in lab.target.hosts():
        result = remote.run(host, f"id -un; test -L {host.base_dir}/current && echo deployed")
        assert result.rc == 0 and result.stdout.split() == [host.ssh_user, "deployed"]
        assert remote.run(host, "exit 3").rc == 3
    # A host whose key is not the one the lab recorded is refused, not trusted.
    wrong = tmp_path / "known_hosts"
    other = lab.target.standby.hosts[0]
    standby_key = [line for line in lab.plan.known_hosts.read_text().splitlines() if other.address in line]
    wrong.write_text(standby_key[0].replace(other.address, lab.target.primary.hosts[0].address) + "\n")
    impostor = lab.target.primary.hosts[0].model_copy(update={"known_hosts": wrong, "name": "impostor"})
    with pytest.raises(ExternalFailure, match="impostor"):
        remote.run(impostor, "true")


def test_the_ansible_adapter_reaches_both_hosts(lab: Lab, tmp_path: Path) -> None:
    book = tmp_path / "whoami.yml"
    book.write_text(
        "- hosts: app\n  gather_facts: false\n  tasks:\n"
        "    - name: who runs here\n      ansible.builtin.command: id -un\n      changed_when: false\n"
        "      register: who\n"
        "    - name: the lab user\n      ansible.builtin.assert:\n"
        "        that: who.stdout == '{{ ansible_user }}' and order_site in ['primary', 'standby']\n"
    )
    result = require_success(run_playbook(lab.plan.inventory_file, str(book), extravars={}))
    assert set(result.hosts) == {"primary-app", "standby-app"}
    assert all(stats.ok == 2 and stats.failures == 0 for stats in result.hosts.values())
    limited = run_playbook(lab.plan.inventory_file, str(book), extravars={}, limit="standby")
    assert set(limited.hosts) == {"standby-app"}


def test_up_twice_is_harmless(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    before = {r.name: r.pid for r in read_state(lab.dir / "lab.json").processes}  # type: ignore[union-attr]
    code, out, _ = _cli(
        capsys, "lab", "up", "--lab-dir", str(lab.dir), "--base-port", str(BASE_PORT), "--output", "json"
    )
    assert code == ExitCode.OK
    doc = json.loads(out)["result"]
    assert doc["started"] == []
    after = {r.name: r.pid for r in read_state(lab.dir / "lab.json").processes}  # type: ignore[union-attr]
    assert after == before


def test_up_starts_only_what_is_missing(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    state = read_state(lab.dir / "lab.json")
    assert state is not None
    door = state.process("frontdoor")
    assert door is not None
    os.kill(door.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while is_alive(door.pid, door.start_ticks) and time.monotonic() < deadline:
        time.sleep(0.05)
    code, out, _ = _cli(
        capsys, "lab", "up", "--lab-dir", str(lab.dir), "--base-port", str(BASE_PORT), "--output", "json"
    )
    assert code == ExitCode.OK
    assert json.loads(out)["result"]["started"] == ["frontdoor"]
    code, out, _ = _cli(capsys, "lab", "status", "--lab-dir", str(lab.dir), "--output", "json")
    assert code == ExitCode.OK, json.loads(out)["result"]["problems"]


def test_up_recognises_its_own_restarted_postmaster(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    # As wal-archive.yml does to turn archiving on: the lab user restarts the primary with pg_ctl.
    site, user = lab.plan.primary, lab_user()
    before = read_state(lab.dir / "lab.json").process("postgres-primary")  # type: ignore[union-attr]
    assert before is not None
    pg_ctl = str(lab.target.primary.database.bin_dir / "pg_ctl")  # type: ignore[operator]
    run_as(
        user,
        [pg_ctl, "-D", str(site.pg_data), "-l", str(site.pg_log), "-m", "fast", "-w", "restart"],
        cwd=site.pg_dir,
    )
    assert not is_alive(before.pid, before.start_ticks)
    db.wait_caught_up(lab.target.primary.database, lab.target.standby.database, timeout=30)

    code, out, err = _cli(
        capsys, "lab", "up", "--lab-dir", str(lab.dir), "--base-port", str(BASE_PORT), "--output", "json"
    )

    assert code == ExitCode.OK, err
    assert "postgres-primary" not in json.loads(out)["result"]["started"]
    after = read_state(lab.dir / "lab.json").process("postgres-primary")  # type: ignore[union-attr]
    assert after is not None and after.pid == postgres.running_postmaster(site.pg_data) != before.pid
    assert is_alive(after.pid, after.start_ticks)
    # The standby reconnects on its own (its walreceiver retries every few seconds): healthy again.
    deadline = time.monotonic() + 60
    while (code := _cli(capsys, "lab", "status", "--lab-dir", str(lab.dir))[0]) != ExitCode.OK:
        assert time.monotonic() < deadline, "the lab did not become healthy after the restart"
        time.sleep(1)


def _wait_streaming_as(lab: Lab, role: str, timeout: float = 60) -> None:
    query = "SELECT usename, state FROM pg_stat_replication WHERE application_name = 'standby'"
    deadline = time.monotonic() + timeout
    while True:
        with db.connect(lab.target.primary.database, dbname="postgres") as conn:
            streams = conn.execute(query).fetchall()
        if streams == [(role, "streaming")]:
            return
        assert time.monotonic() < deadline, f"the standby does not stream as {role}: {streams}"
        time.sleep(0.5)


def test_up_moves_an_older_standby_off_the_superuser(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    # A lab built before the replication role: the standby streamed as the superuser, with the
    # controller's passfile handed to the lab user.
    user, standby, primary = lab_user(), lab.plan.standby, lab.plan.primary
    auto = standby.pg_data / "postgresql.auto.conf"
    kept = [line for line in auto.read_text().splitlines() if not line.startswith("primary_conninfo")]
    older = f"host={primary.address} port={primary.pg_port} user={DB_SUPERUSER} passfile={lab.plan.pgpass}"
    auto.write_text("\n".join([*kept, f"primary_conninfo = '{older}'"]) + "\n")
    give_to(user, auto, lab.plan.pgpass)
    assert lab.target.standby.database.bin_dir is not None
    postgres.reload(user, standby, lab.target.standby.database.bin_dir)
    _wait_streaming_as(lab, DB_SUPERUSER)

    code, _, err = _cli(capsys, "lab", "up", "--lab-dir", str(lab.dir), "--base-port", str(BASE_PORT))

    assert code == ExitCode.OK, err
    assert lab.plan.pgpass.stat().st_uid == os.geteuid()
    _wait_streaming_as(lab, DB_REPLICATOR)


def test_the_service_hosts_passfile_holds_only_the_services_role(lab: Lab) -> None:
    for site in lab.plan.sites:
        passfile = site.service_pgpass
        assert (passfile.stat().st_mode & 0o777) == 0o600
        roles = {line.split(":")[3] for line in passfile.read_text().splitlines() if line.strip()}
        assert roles == {DB_OWNER}, f"{passfile} holds {sorted(roles)}"
        config = json.loads((site.app_dir / "current" / "config.json").read_text())
        assert str(passfile) in json.dumps(config) and str(lab.plan.pgpass) not in json.dumps(config)
        health = service.health(site.address, site.service_port)
        assert health.healthy, health.detail
    # The controller's passfile keeps the superuser, for the toolkit.
    assert DB_SUPERUSER in render.parse_pgpass(lab.plan.pgpass.read_text())


def test_status_names_a_run_interrupted_inside_its_fence(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = new_run_id("restore")
    journal = JournalWriter.create(lab.target.state_dir, run_id)
    steps = ("fence-service", "catch-up-live", "swap-in", "start-service")
    planned = tuple(PlannedStep(name, name, True) for name in steps)
    now = "2026-12-06T20:00:00+00:00"
    journal(
        RunStarted(
            run_id, now, "restore", "recovery.runbooks.restore", "lab", {}, planned, True, "root", "host", 1
        )
    )
    journal(StepStarted(run_id, now, "fence-service", 1, 4, "fence-service", 1))
    journal.close()  # as a kill -9 leaves it: no run.finished, the lock dropped
    try:
        code, out, _ = _cli(capsys, "lab", "status", "--lab-dir", str(lab.dir), "--output", "json")
        problems = json.loads(out)["result"]["problems"]
        assert code == ExitCode.FAILED
        assert len(problems) == 1
        assert f"recovery runs resume {run_id} --target {lab.dir / 'target.yaml'}" in problems[0]
        assert "fenced" in problems[0]
    finally:
        shutil.rmtree(lab.target.state_dir / "runs" / run_id)
    code, _, _ = _cli(capsys, "lab", "status", "--lab-dir", str(lab.dir))
    assert code == ExitCode.OK


def test_deploy_v2_through_the_playbook(lab: Lab) -> None:
    result = service.deploy(lab.plan, "v2")
    assert result.ok and set(result.hosts) == {"primary-app", "standby-app"}
    for site in lab.plan.sites:
        health = service.health(site.address, site.service_port)
        assert (health.healthy, health.version) == (True, "v2")
        assert service.deployed_release(site) == "v2"


def test_unknown_target_is_one_usage_line(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "lab", "status", "--target", "no-such-target")
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1 and err.startswith("error[target.not_found]: ")


def test_malformed_target_file_is_one_usage_line(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "target.yaml"
    bad.write_text((lab.dir / "target.yaml").read_text().replace("kind: lab", "kind: castle"))
    code, _, err = _cli(capsys, "lab", "status", "--target", str(bad))
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1 and "field kind" in err


def test_a_port_in_use_fails_in_one_line_and_leaves_nothing_running(
    lab: Lab, lab_reachable_tmp: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = lab_reachable_tmp("busy-lab")
    busy = plan_lab(other, SPARE_BASE_PORT).standby
    with socket.socket() as blocker:
        blocker.bind((busy.address, busy.pg_port))
        blocker.listen()
        code, _, err = _cli(capsys, "lab", "up", "--lab-dir", str(other), "--base-port", str(SPARE_BASE_PORT))
    assert code == ExitCode.ENVIRONMENT
    assert err.count("\n") == 1
    assert f"{busy.address}:{busy.pg_port} (standby PostgreSQL) is in use" in err
    state = read_state(other / "lab.json")
    assert state is None or all(not is_alive(p.pid, p.start_ticks) for p in state.processes)
    assert all(port_free(address, port) for _, address, port in plan_lab(other, SPARE_BASE_PORT).listeners())


def test_a_missing_pg_binary_dir_is_refused(
    lab_reachable_tmp: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = lab_reachable_tmp("nopg-lab")
    code, _, err = _cli(
        capsys,
        "lab",
        "up",
        "--lab-dir",
        str(other),
        "--base-port",
        str(SPARE_BASE_PORT),
        "--pg-bin",
        str(other / "nothing"),
    )
    assert code == ExitCode.USAGE
    assert "missing initdb" in err and err.count("\n") == 1


def test_a_failing_part_stops_what_up_had_started(
    lab_reachable_tmp: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = lab_reachable_tmp("half-lab")
    broken_bin = other / "broken-pg-bin"
    broken_bin.mkdir()
    # Every tool answers --version (the lab checks that they run before using them); initdb then fails.
    scripts = {
        "postgres": "echo 'postgres (PostgreSQL) 99.0'",
        "initdb": "echo 'initdb: error: could not create directory (simulated)' >&2; exit 1",
        "pg_ctl": "exit 1",
        "pg_basebackup": "exit 1",
        "pg_dump": "exit 1",
        "pg_restore": "exit 1",
        "psql": "exit 1",
    }
    for name, body in scripts.items():
        tool = broken_bin / name
        answer = f'[ "$1" = --version ] && {{ echo "{name} (PostgreSQL) 99.0"; exit 0; }}'
        tool.write_text(f"#!/bin/sh\n{answer}\n{body}\n")
        tool.chmod(0o755)
    code, _, err = _cli(
        capsys,
        "lab",
        "up",
        "--lab-dir",
        str(other),
        "--base-port",
        str(SPARE_BASE_PORT),
        "--pg-bin",
        str(broken_bin),
    )
    assert code == ExitCode.ENVIRONMENT
    assert (
        err.strip()
        == "error[environment]: initdb failed: initdb: error: could not create directory (simulated)"
    )
    state = read_state(other / "lab.json")
    assert state is not None and state.processes == ()
    assert all(port_free(address, port) for _, address, port in plan_lab(other, SPARE_BASE_PORT).listeners())


def test_zz_down_stops_everything_and_keeps_the_files(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    records = _recorded(lab.dir)
    assert {r.kind for r in records} >= {"moto", "postgres", "sshd", "frontdoor", "service"}
    remote.close_all()
    code, _, _ = _cli(capsys, "lab", "down", "--lab-dir", str(lab.dir))
    assert code == ExitCode.OK
    assert [r.name for r in records if is_alive(r.pid, r.start_ticks)] == []
    assert all(port_free(address, port) for _, address, port in lab.plan.listeners())
    assert (lab.dir / "target.yaml").is_file() and (lab.plan.primary.pg_data / "PG_VERSION").is_file()
    state = read_state(lab.dir / "lab.json")
    assert isinstance(state, LabState) and state.processes == ()
