"""The target-wide DynamoDB lock, against moto in process: two holders, renewal, lease expiry, a crash."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from recovery.drivers.aws import AwsDriver
from recovery.engine.lock import DynamoLock, LockHolder, TargetLock, TargetLocks, new_lease_owner
from recovery.errors import LockHeld

TABLE = "locks"
REGION = "eu-west-1"


class Clock:
    """A clock the test moves by hand: leases expire without sleeping through them."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(aws: AwsDriver) -> Iterator[AwsDriver]:
    aws.client("dynamodb", REGION).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield aws


def _holder(run_id: str, host: str = "ci-1") -> LockHolder:
    return LockHolder(run_id, "restore", 4242, "ci", host, "2026-12-06T10:00:00Z")


def _lock(aws: AwsDriver, run_id: str, clock: Clock, **kwargs: float) -> DynamoLock:
    return DynamoLock(aws, TABLE, REGION, "shop", _holder(run_id), lease_seconds=30, clock=clock, **kwargs)


def _item(aws: AwsDriver) -> dict[str, dict[str, str]]:
    item: dict[str, dict[str, str]] = aws.client("dynamodb", REGION).get_item(
        TableName=TABLE, Key={"lock_id": {"S": "shop"}}, ConsistentRead=True
    )["Item"]
    return item


def test_a_second_holder_is_refused_with_the_first_ones_run(table: AwsDriver) -> None:
    clock = Clock()
    first, second = _lock(table, "run-a", clock), _lock(table, "run-b", clock)
    with first:
        with pytest.raises(LockHeld, match=r"locked by run run-a \(restore, pid 4242 on ci-1"):
            second.acquire()
        assert _item(table)["owner"]["S"] == first.owner
    with second:  # released: the next run takes it at once, with a larger fencing token
        assert second.token is not None and first.token is None
        assert int(_item(table)["token"]["N"]) == 2


def test_the_lease_is_renewed_while_the_run_lives(table: AwsDriver) -> None:
    clock = Clock()
    first = _lock(table, "run-a", clock, renew_every=0.02)
    with first:
        clock.now += 20  # two thirds of the lease: only renewals keep it ours
        deadline = time.monotonic() + 5
        while float(_item(table)["expires_at"]["N"]) < clock.now + 29 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert float(_item(table)["expires_at"]["N"]) >= clock.now + 29
        clock.now += 20  # past the first lease's end, inside the renewed one
        with pytest.raises(LockHeld):
            _lock(table, "run-b", clock).acquire()
        assert not first.lost


def test_a_crashed_holder_is_taken_over_only_after_its_lease(table: AwsDriver) -> None:
    clock = Clock()
    crashed = _lock(table, "run-a", clock, renew_every=3600)  # never renews: as if the process died
    crashed.acquire()
    clock.now += 29.9
    with pytest.raises(LockHeld, match="lease until"):
        _lock(table, "run-b", clock).acquire()
    clock.now += 0.2
    taker = _lock(table, "run-b", clock)
    with taker:
        assert taker.token == (crashed.token or 0) + 1
        # The old holder cannot renew nor release what is no longer its lease.
        assert crashed.renew() is False and crashed.lost
        crashed.release()
        assert _item(table)["owner"]["S"] == taker.owner
        assert float(_item(table)["expires_at"]["N"]) > clock.now


def test_the_local_flock_is_kept_and_dropped_when_the_table_refuses(table: AwsDriver, tmp_path: Path) -> None:
    clock = Clock()
    _lock(table, "elsewhere", clock).acquire()  # another controller holds the target
    local = TargetLock(tmp_path, "shop", _holder("run-b"))
    with pytest.raises(LockHeld):
        TargetLocks(local, _lock(table, "run-b", clock)).__enter__()
    # The flock was released again: a run on this controller is not blocked by the refused attempt.
    with TargetLock(tmp_path, "shop", _holder("run-c")):
        pass


def _locks(aws: AwsDriver, state_dir: Path, run_id: str, clock: Clock) -> TargetLocks:
    owner = new_lease_owner(run_id)
    local = TargetLock(state_dir, "shop", replace(_holder(run_id), lease_owner=owner))
    shared = DynamoLock(
        aws,
        TABLE,
        REGION,
        "shop",
        _holder(run_id),
        lease_seconds=30,
        renew_every=3600,
        clock=clock,
        owner=owner,
    )
    return TargetLocks(local, shared)


def test_a_run_killed_on_this_controller_is_taken_over_at_once_by_the_next_one(
    table: AwsDriver, tmp_path: Path
) -> None:
    clock = Clock()
    killed = _locks(table, tmp_path / "ci-1", "run-a", clock).__enter__()
    # Killed: the kernel drops its flock (the descriptor closes), its record and its lease stay.
    assert killed.local._fd is not None
    os.close(killed.local._fd)
    # Another controller still waits for the lease ...
    with pytest.raises(LockHeld, match="locked by run run-a"):
        _locks(table, tmp_path / "ci-2", "run-c", clock).__enter__()
    # ... but the next run on the same controller knows, by the flock, that run-a is gone.
    with _locks(table, tmp_path / "ci-1", "run-b", clock) as resumed:
        assert resumed.shared is not None and resumed.shared.token == 2
    assert killed.shared is not None and killed.shared.renew() is False
