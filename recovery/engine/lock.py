"""One lock per target, held for the whole run: a local flock, plus a DynamoDB lease every controller sees.

`TargetLock` is `<state_dir>/locks/<target>.lock`, an fcntl.flock. The kernel releases a flock when its
process dies, so a killed run never leaves a stale lock. The file also holds a JSON record of the holder
(run id, pid, runbook, start) so a refused run can say who holds it. The file itself is never deleted:
unlinking a lock file races with the next acquirer.

A flock is seen only on its own machine: two CI runners, or a laptop and a pipeline, would both get one.
`DynamoLock` is the target-wide lock: one item per target in the target's lock table, taken with a
conditional write that succeeds only when the item is free or its lease has expired, renewed by a
background thread while the run lives, and released by its owner only. Every acquisition increments the
item's fencing token, so a holder whose lease lapsed can tell that someone else took over since. A
crashed holder stops renewing; the lock is taken over once its lease has run out, never before.
`target_lock` gives a target both (the flock first: two runs on one controller never race to
DynamoDB), or the flock alone for a target with no lock table (an air-gapped site).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import ClientError

from recovery.drivers.aws import AwsDriver, error_code, is_local_endpoint
from recovery.errors import EnvironmentProblem, LockHeld

if TYPE_CHECKING:
    from recovery.targets.model import Target

# The lock table the lab creates in its moto server (recovery/lab/aws.py); AWS targets name theirs.
LAB_LOCK_TABLE = "order-recovery-locks"
DEFAULT_LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    runbook: str
    pid: int
    user: str
    host: str
    started_at: str
    # The DynamoDB acquisition this run made (DynamoLock.owner), when the target has a lock table.
    lease_owner: str = ""


def lock_path(state_dir: Path, target: str) -> Path:
    return state_dir / "locks" / f"{target}.lock"


def read_holder(path: Path) -> LockHolder | None:
    """The holder record in a lock file (it may be from a finished run: only the flock says who holds)."""
    try:
        data = json.loads(path.read_text())
        return LockHolder(**data)
    except (OSError, ValueError, TypeError):
        return None


class _HeldInBlock(ABC):
    """`with lock:` acquires on entry and releases on exit, also after an error."""

    @abstractmethod
    def acquire(self) -> None: ...

    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class TargetLock(_HeldInBlock):
    """The exclusive lock of one target. Use as a context manager around a mutating run."""

    def __init__(self, state_dir: Path, target: str, holder: LockHolder) -> None:
        self.target = target
        self.path = lock_path(state_dir, target)
        self.holder = holder
        self._fd: int | None = None
        # The record a run that died holding this flock left behind (a clean release empties it).
        self.abandoned: LockHolder | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            # No O_TRUNC: the current holder's record must survive our failed attempt.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot open the lock {self.path} ({exc.strerror}); make the target's state_dir writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(self._refusal()) from None
        self.abandoned = read_holder(self.path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(self.holder)).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def _refusal(self) -> str:
        holder = read_holder(self.path)
        if holder is None:
            return (
                f"target {self.target} is locked by another run that is just starting; "
                "wait for it to finish (`recovery runs list`)"
            )
        return (
            f"target {self.target} is locked by run {holder.run_id} ({holder.runbook}, pid {holder.pid} "
            f"on {holder.host}, since {holder.started_at}); wait for it to finish"
        )

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no holder any more; an empty record reads as "free"
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class DynamoLock(_HeldInBlock):
    """The lease of one target in a DynamoDB table (partition key `lock_id`, a string).

    Item: `lock_id` (the target), `owner` (this acquisition's id), `token` (fencing token: +1 at every
    acquisition), `expires_at` (epoch seconds), `holder` (the LockHolder record, JSON). A released item
    keeps its token and gets `expires_at = 0`, so tokens only ever grow.
    """

    def __init__(
        self,
        aws: AwsDriver,
        table: str,
        region: str,
        lock_id: str,
        holder: LockHolder,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        renew_every: float | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("the lease must be positive")
        self._aws = aws
        self.table = table
        self.region = region
        self.lock_id = lock_id
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.renew_every = renew_every if renew_every is not None else lease_seconds / 3
        self._clock = clock
        self.owner = owner or new_lease_owner(holder.run_id)
        self.token: int | None = None
        self.lost = False  # the lease ran out or was taken over while we held it
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _client(self) -> Any:
        return self._aws.client("dynamodb", self.region)

    def _resource(self) -> str:
        return f"lock table {self.table} ({self.region})"

    def _update(self, action: str, **request: Any) -> dict[str, Any]:
        """One conditional update of our item; a failed condition raises `_ConditionFailed`."""
        with self._aws.translate(action, self._resource()):
            try:
                answer: dict[str, Any] = self._client().update_item(
                    TableName=self.table, Key={"lock_id": {"S": self.lock_id}}, **request
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise _ConditionFailed from None
                raise
        return answer

    def acquire(self, *, abandoned_owner: str = "") -> None:
        """Take the lease when it is free or expired, or when `abandoned_owner` still holds it.

        `abandoned_owner` is the acquisition a run on this controller made before it died: its flock
        (which the caller now holds) proves it no longer runs, so its lease need not be waited out.
        """
        now = self._clock()
        try:
            answer = self._update(
                "take the target lock",
                UpdateExpression=(
                    "SET #owner = :owner, expires_at = :expires, holder = :holder ADD #token :one"
                ),
                ConditionExpression=(
                    "attribute_not_exists(lock_id) OR expires_at < :now OR #owner = :abandoned"
                ),
                ExpressionAttributeNames={"#owner": "owner", "#token": "token"},
                ExpressionAttributeValues={
                    ":owner": {"S": self.owner},
                    ":expires": {"N": _number(now + self.lease_seconds)},
                    ":holder": {"S": json.dumps(asdict(self.holder))},
                    ":one": {"N": "1"},
                    ":now": {"N": _number(now)},
                    # Never empty: an empty string would match no owner anyway, but says so plainly.
                    ":abandoned": {"S": abandoned_owner or "-"},
                },
                ReturnValues="ALL_NEW",
            )
        except _ConditionFailed:
            raise LockHeld(self._refusal()) from None
        self.token = int(answer["Attributes"]["token"]["N"])
        self.lost = False
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lock-{self.lock_id}", daemon=True)
        self._renewer.start()

    def _set_own_expiry(self, action: str, expires_at: float, *, unexpired_at: float | None = None) -> None:
        """Move our lease's end, only while the item is still our acquisition (owner and token)."""
        condition = "#owner = :owner AND #token = :token"
        values = {
            ":owner": {"S": self.owner},
            ":token": {"N": str(self.token)},
            ":expires": {"N": _number(expires_at)},
        }
        if unexpired_at is not None:
            condition += " AND expires_at >= :now"
            values[":now"] = {"N": _number(unexpired_at)}
        self._update(
            action,
            UpdateExpression="SET expires_at = :expires",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#owner": "owner", "#token": "token"},
            ExpressionAttributeValues=values,
        )

    def renew(self) -> bool:
        """Push the lease forward; False (and `lost`) when it is no longer ours."""
        now = self._clock()
        try:
            self._set_own_expiry("renew the target lock", now + self.lease_seconds, unexpired_at=now)
        except _ConditionFailed:
            self.lost = True
            return False
        return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every):
            # A failed call (the table unreachable for a moment) is retried at the next tick: the lease
            # is three ticks long. A lost lease stops the renewals: it cannot come back.
            with contextlib.suppress(Exception):
                if not self.renew():
                    return

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if self.token is None:
            return
        # Only our own acquisition may free the item: after a takeover the new owner's lease stands.
        with contextlib.suppress(_ConditionFailed):
            self._set_own_expiry("release the target lock", 0)
        self.token = None

    def _refusal(self) -> str:
        try:
            with self._aws.translate("read the target lock", self._resource()):
                item = (
                    self._client()
                    .get_item(TableName=self.table, Key={"lock_id": {"S": self.lock_id}}, ConsistentRead=True)
                    .get("Item", {})
                )
            holder = LockHolder(**json.loads(item["holder"]["S"]))
            expires = float(item["expires_at"]["N"])
        except (KeyError, ValueError, TypeError):
            return f"target {self.lock_id} is locked by another controller; wait for it to finish"
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        return (
            f"target {self.lock_id} is locked by run {holder.run_id} ({holder.runbook}, pid {holder.pid} on "
            f"{holder.host}, since {holder.started_at}, lease until {until}); wait for it to finish"
        )


class _ConditionFailed(Exception):
    """A conditional write found the item held by someone else (not an error of AWS)."""


def new_lease_owner(run_id: str) -> str:
    """A unique id for one acquisition of the lease."""
    return f"{run_id}/{uuid.uuid4().hex}"


def _number(value: float) -> str:
    return f"{value:.3f}"


class TargetLocks:
    """The flock, then the DynamoDB lease when the target has a lock table; released in reverse."""

    def __init__(self, local: TargetLock, shared: DynamoLock | None) -> None:
        self.local = local
        self.shared = shared

    def __enter__(self) -> TargetLocks:
        self.local.acquire()
        if self.shared is not None:
            abandoned = self.local.abandoned.lease_owner if self.local.abandoned else ""
            try:
                self.shared.acquire(abandoned_owner=abandoned)
            except BaseException:
                self.local.release()
                raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.shared is not None:
                self.shared.release()
        finally:
            self.local.release()


def lock_table_of(target: Target) -> tuple[str, str] | None:
    """(table, region) of the target's shared lock, or None for the flock alone.

    A target names its table (`lock_table`, from the stack outputs); a lab target whose AWS endpoint is
    the lab's own moto server uses the table the lab creates there.
    """
    if target.lock_table is not None:
        return target.lock_table.name, target.lock_table.region
    if target.kind == "lab" and is_local_endpoint(target.aws.endpoint_url):
        return LAB_LOCK_TABLE, target.primary.region
    return None


def target_lock(target: Target, holder: LockHolder, aws: AwsDriver | None = None) -> TargetLocks:
    """The lock a mutating run of `target` holds."""
    table = lock_table_of(target)
    if table is None:
        return TargetLocks(TargetLock(target.state_dir, target.name, holder), None)
    # The flock's record names the lease acquisition too, so a later run on this controller can tell
    # that a lease it finds is the one a dead run of this controller left.
    owner = new_lease_owner(holder.run_id)
    local = TargetLock(target.state_dir, target.name, replace(holder, lease_owner=owner))
    shared = DynamoLock(aws or AwsDriver(target.aws), table[0], table[1], target.name, holder, owner=owner)
    return TargetLocks(local, shared)
