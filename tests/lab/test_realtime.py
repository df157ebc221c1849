"""Realtime backups on the real lab: WAL archiving set up by the role over SSH, segments shipped
(encrypted) to both S3 copies on moto's server, a base backup, and point-in-time recovery into a
scratch cluster on the primary's host, to a time and to a named restore point; tampered objects and
times outside the covered range are refused.

Run with RECOVERY_TEST_BASE_PORT set to your own base port. The tests run in file order and share one
lab: the later ones rely on archiving set up by the first.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from recovery.backup.catalog import catalog_for
from recovery.backup.naming import BackupName
from recovery.backup.realtime import (
    BaseBackup,
    RealtimeStores,
    coverage,
    create_restore_point,
    database_host,
    realtime_stores,
    ship_wal,
    spool_dir,
    switch_and_wait_archived,
    take_base_backup,
    wal_archive_extravars,
)
from recovery.backup.repository import object_key
from recovery.backup.wal import parse_wal_keys
from recovery.cli.wal_ship import ship as ship_command
from recovery.drivers import db, remote
from recovery.drivers.ansible import require_success, run_playbook
from recovery.drivers.aws import AwsDriver
from recovery.errors import IntegrityError, UsageError
from recovery.lab.plan import LabPlan
from recovery.restore import pitr
from recovery.restore.pitr import choose_for_restore_point, recover_to
from recovery.restore.selection import DomainChoice
from recovery.targets.model import Target

pytestmark = pytest.mark.lab

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "wal-archive.yml"
LAB_AWS_ENV = {"AWS_ACCESS_KEY_ID": "lab", "AWS_SECRET_ACCESS_KEY": "lab"}  # moto takes any credentials


@pytest.fixture(autouse=True)
def _lab_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LAB_AWS_ENV.items():
        monkeypatch.setenv(name, value)


@dataclass(frozen=True)
class Lab:
    """The shape of the `lab` fixture (tests/lab/conftest.py)."""

    dir: Path
    plan: LabPlan
    target: Target


def _stores(lab: Lab) -> RealtimeStores:
    return realtime_stores(lab.target)


def _insert_orders(lab: Lab, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with db.connect(lab.target.primary.database) as conn:
        user = conn.execute("SELECT min(id) FROM users").fetchone()
        assert user is not None
        for order_id in ids:
            conn.execute(
                "INSERT INTO orders (id, user_id, status, total_cents, created_at, updated_at)"
                " VALUES (%s, %s, 'placed', 0, now(), now())",
                (order_id, user[0]),
            )
    return ids


def _present(conninfo: str, ids: list[str]) -> set[str]:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute("SELECT id::text FROM orders WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
    return {str(row[0]) for row in rows}


def _db_now(lab: Lab) -> datetime:
    with db.connect(lab.target.primary.database) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0].astimezone(UTC)


def _scratch_dirs(lab: Lab) -> list[Path]:
    return sorted(lab.plan.primary.pg_dir.glob("pitr-*"))


@pytest.fixture(scope="module")
def base(lab: Lab) -> BaseBackup:
    """The base backup the recovery tests recover from: taken once, by the first test that asks (the
    one checking its catalog entries), after the tests above set up archiving and shipped segments."""
    with pytest.MonkeyPatch.context() as env:  # set up before the autouse fixture above: set them here too
        for name, value in LAB_AWS_ENV.items():
            env.setenv(name, value)
        return take_base_backup(lab.target, stores=_stores(lab), service_version="v1")


def _realtime_choice(base: BaseBackup, copy: str = "local", domain: str = "orders") -> DomainChoice:
    backup_id = base.manifest(domain).backup_id  # type: ignore[arg-type]
    return DomainChoice(domain, backup_id, "realtime", copy, "chosen by the test")  # type: ignore[arg-type]


def test_the_role_sets_up_archiving_in_check_mode_first_then_for_real(lab: Lab, tmp_path: Path) -> None:
    extravars = wal_archive_extravars(lab.target)
    settings = lab.plan.primary.pg_data / "wal_archive.conf"
    checked = run_playbook(lab.plan.inventory_file, str(PLAYBOOK), extravars=extravars, check=True)
    assert checked.ok, checked.failed_task
    assert not settings.exists(), "check mode must not write the settings"
    done = require_success(run_playbook(lab.plan.inventory_file, str(PLAYBOOK), extravars=extravars))
    assert done.hosts["primary-app"].changed > 0
    again = require_success(run_playbook(lab.plan.inventory_file, str(PLAYBOOK), extravars=extravars))
    assert again.hosts["primary-app"].changed == 0, "a second run changes nothing"
    with db.connect(lab.target.primary.database) as conn:
        found = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_timeout')"
        ).fetchall()
    rows = {str(name): str(setting) for name, setting in found}
    assert rows == {"archive_mode": "on", "archive_timeout": "5"}
    assert "standby-app" not in done.hosts, "only the primary's database host archives"


def test_archived_segments_are_shipped_to_both_copies_and_leave_the_spool(lab: Lab) -> None:
    stores = _stores(lab)
    spool = spool_dir(lab.target.primary.database)
    rpos: list[float] = []
    for _ in range(3):
        _insert_orders(lab, 1)  # committed: the order is acknowledged
        acknowledged = time.monotonic()
        with db.connect(lab.target.primary.database) as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()
        assert row is not None
        segment = str(row[0])
        deadline = time.monotonic() + 60
        shipped: set[str] = set()
        while segment not in shipped:
            assert time.monotonic() < deadline, f"segment {segment} was not shipped within 60 s"
            shipped.update(ship_wal(lab.target, stores=stores).names)
            time.sleep(0.2)
        rpos.append(time.monotonic() - acknowledged)
        for store in stores.both:
            keys = {key.file_name for key in parse_wal_keys(store.list_keys("orders/"))}
            assert segment in keys
        assert not (spool / segment).exists(), "a shipped segment leaves the spool"
    print(
        f"\nRPO (acknowledged order -> its segment in both copies): {', '.join(f'{r:.1f}' for r in rpos)} s"
    )
    again = ship_wal(lab.target, stores=stores)
    assert all(not item.uploaded_to for item in again.files)


def test_a_base_backup_is_cataloged_for_orders_and_transactions(lab: Lab, base: BaseBackup) -> None:
    stores = _stores(lab)
    orders = base.manifest("orders")
    assert orders.backup_id.endswith("-orders-realtime") or "-orders-realtime-" in orders.backup_id
    transactions = base.manifest("transactions")
    assert transactions.source == orders.source
    # One base backup serves both domains: the transactions backup reads the orders object, stored once.
    assert transactions.shares == orders.backup_id and transactions.sha256 == orders.sha256
    for store in stores.both:
        assert (store.head(object_key(transactions.name)) or 0) < 1024
        assert store.head(object_key(orders.name)) == orders.sizes.stored
    assert orders.source.lsn == base.wal_range.end_lsn
    entries = {entry.backup_id: entry for entry in catalog_for(lab.target).verify_all()}
    for manifest in base.manifests:
        entry = catalog_for(lab.target).verify(manifest.backup_id)
        assert entry.counts, entry
        assert manifest.backup_id in entries
    covered = coverage(stores.local, BackupName.parse(orders.backup_id))
    assert covered.starts_at == orders.source.at
    assert covered.segments and covered.segments[0].file_name == base.wal_range.first_segment.name()


def test_recovery_to_a_noted_time_holds_exactly_what_was_committed_before(lab: Lab, base: BaseBackup) -> None:
    first = _insert_orders(lab, 5)
    time.sleep(0.5)
    noted = _db_now(lab)
    time.sleep(0.5)
    second = _insert_orders(lab, 5)
    switch_and_wait_archived(lab.target.primary.database)
    ship_wal(lab.target)
    with recover_to(lab.target, _realtime_choice(base), at=noted) as conninfo:
        assert _present(conninfo, first + second) == set(first)
        scratch = _scratch_dirs(lab)
        assert len(scratch) == 1
    assert _scratch_dirs(lab) == [], "the scratch cluster's directory is removed on exit"


def test_recovery_to_a_time_whose_next_commit_is_in_a_later_segment(lab: Lab, base: BaseBackup) -> None:
    # The segment holding the noted time is closed before the next commit: the segments chosen by
    # their last write time end before any commit after the time, so the server is given more.
    first = _insert_orders(lab, 3)
    time.sleep(0.5)
    noted = _db_now(lab)
    switch_and_wait_archived(lab.target.primary.database)
    second = _insert_orders(lab, 3)
    switch_and_wait_archived(lab.target.primary.database)
    ship_wal(lab.target)
    # Recovered through the transactions backup: it shares the orders one's object and recovers alone.
    with recover_to(lab.target, _realtime_choice(base, domain="transactions"), at=noted) as conninfo:
        assert _present(conninfo, first + second) == set(first)


def test_recovery_to_a_time_after_the_last_commit_recovers_to_the_end(lab: Lab, base: BaseBackup) -> None:
    # No commit after the noted time anywhere in the shipped WAL: the state at that time is its end.
    last = _insert_orders(lab, 3)
    time.sleep(0.5)
    noted = _db_now(lab)
    time.sleep(0.5)
    switch_and_wait_archived(lab.target.primary.database)
    ship_wal(lab.target)
    with recover_to(lab.target, _realtime_choice(base), at=noted) as conninfo:
        assert _present(conninfo, last) == set(last)


def test_recovery_to_a_named_restore_point_from_the_remote_copy(
    lab: Lab, base: BaseBackup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a host without zstd: the base backup and the WAL are sent decompressed (the other tests
    # here send them compressed, the lab's host has zstd).
    monkeypatch.setattr(pitr, "host_has_zstd", lambda host: False)
    before = _insert_orders(lab, 4)
    point = create_restore_point(lab.target, "before-batch-d")
    after = _insert_orders(lab, 4)
    switch_and_wait_archived(lab.target.primary.database)
    ship_wal(lab.target)
    assert point.name == "before-batch-d"
    entries = [catalog_for(lab.target).verify(entry.backup_id) for entry in catalog_for(lab.target).entries()]
    chosen = choose_for_restore_point(entries, "orders", "before-batch-d", _stores(lab))
    assert isinstance(chosen, DomainChoice) and chosen.backup_id == base.manifest("orders").backup_id, chosen
    with recover_to(lab.target, _realtime_choice(base, "remote"), restore_point="before-batch-d") as conninfo:
        assert _present(conninfo, before + after) == set(before)
    with pytest.raises(UsageError, match="already exists"):
        create_restore_point(lab.target, "before-batch-d")
    with (
        pytest.raises(UsageError, match="no restore point named"),
        recover_to(lab.target, _realtime_choice(base), restore_point="never-made"),
    ):
        pass


def test_a_switch_with_nothing_written_since_the_last_still_ships_up_to_now(
    lab: Lab, base: BaseBackup
) -> None:
    # Two switches in a row (as after archive_timeout closed a segment a moment ago): the second must
    # still close and archive a segment of its own, or the shipped WAL would end before "now".
    first = switch_and_wait_archived(lab.target.primary.database)
    second = switch_and_wait_archived(lab.target.primary.database)
    assert second > first


def test_a_base_backup_ships_its_own_segments_and_leaves_the_backlog_to_the_shipper(lab: Lab) -> None:
    # A spooled file outside the backup's segments (a backlog; here on a timeline the cluster never
    # had, so no copy holds that name): shipping it inside the base backup cost most of its time.
    spool = spool_dir(lab.target.primary.database)
    backlog = spool / "0000007F0000000000000001"
    backlog.write_bytes(b"a backlog the shipper takes later")
    try:
        base = take_base_backup(lab.target, stores=_stores(lab), service_version="v1")
        assert backlog.exists(), "the base backup shipped a file it does not need"
        for store in _stores(lab).both:
            covered = coverage(store, BackupName.parse(base.manifest("orders").backup_id))
            assert covered.segments[0].file_name == base.wal_range.first_segment.name()
    finally:
        backlog.unlink(missing_ok=True)


def test_the_ship_command_ships_and_reports_in_json(lab: Lab) -> None:
    _insert_orders(lab, 1)
    segment = switch_and_wait_archived(lab.target.primary.database)
    app = typer.Typer()
    app.command("ship")(ship_command)
    app.command("help")(lambda: None)  # a second command keeps `ship` a subcommand
    result = CliRunner().invoke(app, ["ship", "--target", str(lab.plan.target_file), "--output", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["command"] == "backup ship"
    files = {item["file"]: item for item in document["result"]["files"]}
    assert set(files[segment]["uploaded_to"]) == {"local", "remote"}
    assert not (spool_dir(lab.target.primary.database) / segment).exists()


def test_a_time_outside_the_covered_range_is_refused(lab: Lab, base: BaseBackup) -> None:
    stores = _stores(lab)
    covered = coverage(stores.local, BackupName.parse(base.manifest("orders").backup_id))
    for moment in (covered.starts_at - timedelta(minutes=5), covered.ends_at + timedelta(hours=1)):
        with (
            pytest.raises(UsageError, match="is outside what realtime backup") as caught,
            recover_to(lab.target, _realtime_choice(base), at=moment),
        ):
            pass
        assert "\n" not in str(caught.value)
    assert _scratch_dirs(lab) == []


def _tamper(lab: Lab, copy: str, key: str) -> None:
    address = lab.target.backup.local if copy == "local" else lab.target.backup.remote
    s3 = AwsDriver(lab.target.aws).s3(address.region)
    body = bytearray(s3.get_object(Bucket=address.bucket, Key=address.prefix + key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.delete_object(Bucket=address.bucket, Key=address.prefix + key)
    s3.put_object(Bucket=address.bucket, Key=address.prefix + key, Body=bytes(body))


def test_a_tampered_wal_segment_is_refused(lab: Lab, base: BaseBackup) -> None:
    stores = _stores(lab)
    covered = coverage(stores.local, BackupName.parse(base.manifest("orders").backup_id))
    segment = covered.segments[0]
    _tamper(lab, "local", segment.object_key)
    with pytest.raises(IntegrityError), recover_to(lab.target, _realtime_choice(base, "local")):
        pass
    assert _scratch_dirs(lab) == []


def test_a_tampered_base_backup_is_refused(lab: Lab, base: BaseBackup) -> None:
    name = BackupName.parse(base.manifest("orders").backup_id)
    _tamper(lab, "remote", f"orders/{name.file_name}")
    with pytest.raises(IntegrityError), recover_to(lab.target, _realtime_choice(base, "remote")):
        pass
    assert _scratch_dirs(lab) == []


def test_a_backups_own_configuration_is_never_loaded_by_a_recovery(lab: Lab) -> None:
    # The database host's configuration travels in its base backups; a library it names (planted, or
    # simply present there) must not be loaded by the scratch server, which runs on the toolkit's config.
    config = lab.plan.primary.pg_data / "postgresql.conf"
    kept = config.read_bytes()
    try:
        with config.open("a") as handle:
            handle.write("shared_preload_libraries = 'order_recovery_planted'\n")
        base = take_base_backup(lab.target, stores=_stores(lab), service_version="v1")
    finally:
        config.write_bytes(kept)
    choice = DomainChoice("orders", base.manifest("orders").backup_id, "realtime", "local", "test")
    with recover_to(lab.target, choice) as conninfo, psycopg.connect(conninfo, autocommit=True) as conn:
        loaded = conn.execute("SHOW shared_preload_libraries").fetchone()
        config_file = conn.execute("SHOW config_file").fetchone()
    assert loaded == ("",)
    assert config_file is not None and "/pitr-" in str(config_file[0])


def test_a_stream_piped_into_a_host_command_arrives_whole_and_a_failing_command_says_why(
    lab: Lab, tmp_path: Path
) -> None:
    host = database_host(lab.target)
    sent = os.urandom(3 * 1024 * 1024 + 7)
    landed = lab.plan.primary.pg_dir / f"piped-{uuid.uuid4().hex[:8]}"

    def three_mib(sink: Any) -> None:
        for start in range(0, len(sent), 1024 * 1024):
            sink.write(sent[start : start + 1024 * 1024])

    try:
        result = remote.pipe_into(host, f"cat > {landed}", three_mib)
        assert result.ok and landed.read_bytes() == sent
    finally:
        landed.unlink(missing_ok=True)

    def endless(sink: Any) -> None:
        for _ in range(512):  # 512 MiB: far more than the command takes before it exits
            sink.write(bytes(1024 * 1024))

    failed = remote.pipe_into(host, "head -c 10 > /dev/null; echo broken input >&2; exit 3", endless)
    assert failed.rc == 3 and "broken input" in failed.stderr

    def refuses(sink: Any) -> None:
        sink.write(b"half")
        raise IntegrityError("the source failed authentication")

    # The command has exited when the error is raised: nothing of it still writes where the caller
    # cleans up (a tampered base backup's tar went on writing into the scratch directory being removed).
    marker = lab.plan.primary.pg_dir / f"piped-{uuid.uuid4().hex[:8]}"
    with pytest.raises(IntegrityError, match="failed authentication"):
        remote.pipe_into(host, f"cat > /dev/null; sleep 1; touch {marker}", refuses)
    try:
        assert marker.exists()
    finally:
        marker.unlink(missing_ok=True)


def test_threads_get_sftp_sessions_of_their_own_and_a_failed_one_is_not_handed_out_again(lab: Lab) -> None:
    """paramiko's SFTP sessions answer whichever thread reads first: shared by the watch's shipper and a
    daily backup reading the hosts' logs, one hung the watch. Here a listing and a prefetched read run
    side by side; through one shared session this failed within the first round ("Garbage packet")."""
    host = database_host(lab.target)
    data = os.urandom(2 * 1024 * 1024)
    big = lab.plan.primary.pg_dir / f"sftp-{uuid.uuid4().hex[:8]}"
    big.write_bytes(data)
    failures: list[BaseException] = []
    done = {"listings": 0, "reads": 0}

    def listing() -> None:
        for _ in range(60):
            with remote.sftp(host) as sftp:
                assert big.name in sftp.listdir(str(big.parent))
            done["listings"] += 1

    def reading() -> None:
        for _ in range(6):
            with remote.sftp(host) as sftp, sftp.open(str(big), "rb") as handle:
                handle.prefetch(len(data))
                assert handle.read() == data
            done["reads"] += 1

    def guarded(work: Any) -> Any:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)

        return run

    threads = [threading.Thread(target=guarded(work), daemon=True) for work in (listing, reading)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), f"a thread still waits: {done}"
        assert failures == [] and done == {"listings": 60, "reads": 6}

        # One caller after the other: the session is kept and handed out again.
        with remote.sftp(host) as first:
            pass
        with remote.sftp(host) as again:
            assert again is first
        # A block that failed closes its session: answers to it may still be on their way.
        with pytest.raises(FileNotFoundError), remote.sftp(host) as broken:
            broken.stat(str(big) + ".absent")
        assert broken.get_channel() is None or broken.get_channel().closed
        with remote.sftp(host) as fresh:
            assert fresh is not broken
    finally:
        big.unlink(missing_ok=True)
