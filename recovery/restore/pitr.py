"""Point-in-time recovery of a realtime backup into a scratch cluster on the database host.

`recover_to` decrypts the chosen copy's base backup into a fresh scratch directory on the primary's
database host (over SSH, as the host's SSH user: the lab user in the lab), decrypts the shipped WAL
segments it needs beside it, and starts a PostgreSQL there on a free port with `restore_command`
copying from that directory, a recovery target (a time or a named restore point) and
`recovery_target_action = promote`. When the server has promoted, recovery reached the target; the
caller gets a conninfo for it. On leaving the block the server is stopped by its pid and the scratch
directory removed, also when something failed.

The restored data directory is data, never configuration or state to trust: its `postgresql.conf`,
`postgresql.auto.conf`, `pg_hba.conf` and `pg_ident.conf` are replaced by files the toolkit writes (no
`shared_preload_libraries`, no includes, nothing from the backup), and the server's pid is the one of the
process the toolkit started, never read from a `postmaster.pid` that came with the data.

Nothing is started before every byte was authenticated: a tampered base backup or WAL segment raises
IntegrityError while it is decrypted, and the scratch directory is removed. A time outside what the
backup's WAL covers is refused before anything is fetched.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import secrets
import shlex
import shutil
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from psycopg.conninfo import make_conninfo

from recovery.backup.catalog import CatalogEntry
from recovery.backup.manifest import Manifest
from recovery.backup.naming import BackupName, Domain
from recovery.backup.realtime import (
    Coverage,
    RealtimeStores,
    coverage,
    database_host,
    fetch_wal,
    read_restore_point,
    realtime_stores,
)
from recovery.backup.repository import read_backup, read_manifest
from recovery.backup.stores import ObjectStore
from recovery.backup.wal import WalKey, check_restore_point_name
from recovery.drivers import db, remote
from recovery.errors import ExternalFailure, IntegrityError, UsageError
from recovery.restore.selection import DomainChoice, DomainRefusal, pick_copy
from recovery.targets.model import Database, Host, Target

SCRATCH_PREFIX = "pitr-"
PORT_SEARCH_OFFSET = 100  # scratch ports start this far above the live server's port
PORT_SEARCH_SPAN = 50


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RecoveryPlan:
    """What to fetch and which recovery target to set (pure: decided before anything is touched)."""

    backup_id: str
    segments: tuple[WalKey, ...]
    settings: tuple[tuple[str, str], ...]
    describe: str


def plan_recovery(
    cov: Coverage, *, at: datetime | None, restore_point_segment: str | None, name: str | None
) -> RecoveryPlan:
    """The segments and recovery settings for a time, a restore point, or (neither) all shipped WAL."""
    if at is not None:
        if at.tzinfo is None:
            raise UsageError("the recovery time needs a time zone, e.g. 2026-11-25T10:00:00Z")
        if not cov.starts_at <= at <= cov.ends_at:
            raise UsageError(
                f"{_when(at)} is outside what realtime backup {cov.backup_id} covers "
                f"({_when(cov.starts_at)} to {_when(cov.ends_at)}); "
                "pick a time in that range or another backup"
            )
        return RecoveryPlan(
            cov.backup_id,
            cov.segments_until(at),
            (("recovery_target_time", _when(at).replace("Z", "+00")), ("recovery_target_inclusive", "on")),
            f"{cov.backup_id} recovered to {_when(at)}",
        )
    if restore_point_segment is not None and name is not None:
        return RecoveryPlan(
            cov.backup_id,
            cov.segments_through(restore_point_segment),
            (("recovery_target_name", name),),
            f"{cov.backup_id} recovered to restore point {name!r}",
        )
    return RecoveryPlan(cov.backup_id, cov.segments, (), f"{cov.backup_id} recovered to {_when(cov.ends_at)}")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Appended when the shipped WAL holds no commit after the recovery time: the later lines reset the target,
# so the server replays to the end of what it was given and promotes.
UNTARGETED = (
    "# no commit after the recovery time in the shipped WAL: recover to its end\n"
    "recovery_target_time = ''\n"
    "recovery_target_name = ''\n"
)


def _fetch_segment(
    sftp: Any, scratch: _Scratch, store: ObjectStore, key: WalKey, stores: RealtimeStores
) -> None:
    with sftp.open(str(scratch.root / "wal" / key.file_name), "wb") as handle:
        handle.set_pipelined(True)
        fetch_wal(store, key, handle, stores.keys)


def _lay_down(
    scratch: _Scratch,
    store: ObjectStore,
    name: BackupName,
    manifest: Manifest,
    stores: RealtimeStores,
    *,
    zstd: bool,
) -> None:
    """The base backup's files into the scratch data directory, streamed into `tar` on the host (no
    copy of the tar is written there). Decrypted here; decompressed on the host when it has zstd
    (`host_has_zstd`), so the compressed stream crosses SSH: at 1,000,000 orders 218 MiB instead of the
    data directory's 1.8 GiB tar, which took 7.5 s through SFTP."""
    data = shlex.quote(str(scratch.data))
    scratch.pipe(
        f"zstd -dcq | tar -xf - -C {data}" if zstd else f"tar -xf - -C {data}",
        lambda sink: read_backup(store, name, sink, stores.keys, manifest, decompress=not zstd),
        what="unpacking the base backup",
    )


def host_has_zstd(host: Host) -> bool:
    """Whether `host` can decompress what the restore sends it (else it is sent decompressed)."""
    return remote.run(host, "command -v zstd", timeout=15).ok


# WAL segments read from the store and decrypted at once while one tar stream carries them to the host:
# each is a manifest and an object read, a KMS unwrap and a decode, mostly waiting on the store and KMS.
FETCH_WORKERS = 4


def _compressed_segment(store: ObjectStore, key: WalKey, stores: RealtimeStores) -> bytes:
    held = io.BytesIO()
    fetch_wal(store, key, held, stores.keys, decompress=False)
    return held.getvalue()


def _fetch_segments(
    scratch: _Scratch,
    store: ObjectStore,
    keys: Sequence[WalKey],
    stores: RealtimeStores,
    *,
    zstd: bool,
    sftp: Any,
) -> None:
    """Every segment of `keys` into the scratch WAL directory.

    With zstd on the host, one tar stream of the segments still compressed (a 16 MiB segment is a
    fraction of that) and one `zstd -d` there: SSH's throughput is the limit, and 127 raw segments took
    18.6 s through SFTP one after the other. The segments are read `FETCH_WORKERS` at once, at most twice
    that many held. Without zstd, each raw segment through SFTP.
    """
    if not keys:
        return
    if not zstd:
        for key in keys:
            _fetch_segment(sftp, scratch, store, key, stores)
        return

    def produce(sink: Any) -> None:
        with (
            tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="wal-fetch") as pool,
        ):
            waiting = iter(keys)
            pending = deque(
                (key, pool.submit(_compressed_segment, store, key, stores))
                for key in itertools.islice(waiting, 2 * FETCH_WORKERS)
            )
            while pending:
                key, fetched = pending.popleft()
                data = fetched.result()
                following = next(waiting, None)
                if following is not None:
                    pending.append((following, pool.submit(_compressed_segment, store, following, stores)))
                member = tarfile.TarInfo(f"{key.file_name}.zst")
                member.size, member.mode = len(data), 0o600
                tar.addfile(member, io.BytesIO(data))

    wal = shlex.quote(str(scratch.root / "wal"))
    unpack = f"cd {wal} && umask 077 && tar -xf - && zstd -dq --rm -- *.zst"
    scratch.pipe(unpack, produce, what="writing the WAL segments")


# Files of the restored data directory that configure or describe a running server: removed before the
# toolkit writes its own (removing first also defeats a symlink planted under one of these names).
UNTRUSTED_FILES = (
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
    "postmaster.pid",
    "postmaster.opts",
    "standby.signal",
)
# Recovery refuses to run below the primary's values of these (pg_controldata names them differently).
_LIMITS = {
    "max_connections setting": "max_connections",
    "max_worker_processes setting": "max_worker_processes",
    "max_wal_senders setting": "max_wal_senders",
    "max_prepared_xacts setting": "max_prepared_transactions",
    "max_locks_per_xact setting": "max_locks_per_transaction",
}
_LIMIT_CEILING = 100_000
# md5 also accepts SCRAM-stored passwords (it then uses SCRAM): what the live server stored works.
SCRATCH_HBA = "local all all peer\nhost all all all md5\n"


def recovery_limits(controldata: str) -> tuple[tuple[str, int], ...]:
    """The primary's sizing settings recorded in pg_control (`pg_controldata` output), as integers. Pure.

    These are the only values taken from the restored data, and only as bounded numbers.
    """
    found: dict[str, int] = {}
    for line in controldata.splitlines():
        label, _, value = line.partition(":")
        setting = _LIMITS.get(label.strip())
        text = value.strip()
        if setting is not None and text.isdigit():
            found[setting] = min(int(text), _LIMIT_CEILING)
    return tuple(sorted(found.items()))


def scratch_config(
    plan: RecoveryPlan,
    *,
    address: str,
    port: int,
    scratch: PurePosixPath,
    limits: Sequence[tuple[str, int]] = (),
) -> str:
    """The whole postgresql.conf of the scratch server: the toolkit's settings and nothing else. Pure."""
    sizing = [f"{name} = {value}" for name, value in limits]
    return recovery_settings(plan, address=address, port=port, scratch=scratch) + "".join(
        line + "\n" for line in sizing
    )


def recovery_settings(plan: RecoveryPlan, *, address: str, port: int, scratch: PurePosixPath) -> str:
    """The recovery settings of the scratch server (its configuration holds these and the limits only)."""
    lines = [
        "# point-in-time recovery into a scratch cluster",
        f"listen_addresses = {_quote(address)}",
        f"port = {port}",
        f"unix_socket_directories = {_quote(str(scratch / 'run'))}",
        "cluster_name = 'pitr'",
        # Never archive from the scratch cluster: its WAL must not reach the live spool.
        "archive_mode = off",
        "primary_conninfo = ''",
        "primary_slot_name = ''",
        "hot_standby = on",
        f"restore_command = {_quote(f'cp {scratch}/wal/%f %p')}",
        "recovery_target_action = 'promote'",
    ]
    lines += [f"{key} = {_quote(value)}" for key, value in plan.settings]
    return "\n".join(lines) + "\n"


def _pgpass_field_split(line: str) -> list[str]:
    """Split a pgpass line at unescaped colons, keeping escapes in place."""
    fields: list[str] = []
    current, escaped = "", False
    for char in line:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == ":" and len(fields) < 4:
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    return fields


def scratch_pgpass_line(text: str, database: Database, port: int) -> str:
    """The pgpass line for the scratch server: the live server's entry for the role, on the new port."""
    for line in text.splitlines():
        fields = _pgpass_field_split(line)
        if len(fields) != 5:
            continue
        host, live_port, _, user, password = fields
        if (
            host in (database.address, "*")
            and live_port in (str(database.port), "*")
            and user == database.user
        ):
            return f"{database.address}:{port}:*:{database.user}:{password}\n"
    raise UsageError(
        f"the passfile of the target's database has no entry for {database.user} at "
        f"{database.address}:{database.port}; add it"
    )


class _Scratch:
    """A scratch directory on the host, its server, and cleanup by pid."""

    def __init__(self, host: Host, database: Database) -> None:
        if database.data_dir is None or database.bin_dir is None:
            raise UsageError(
                "the target's primary database needs data_dir and bin_dir for point-in-time recovery"
            )
        self.host = host
        self.bin_dir = PurePosixPath(str(database.bin_dir))
        self.root = PurePosixPath(str(database.data_dir)).parent / f"{SCRATCH_PREFIX}{secrets.token_hex(6)}"
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.pid: int | None = None

    def run(self, command: str, *, timeout: float = 60, what: str) -> str:
        return self._checked(remote.run(self.host, command, timeout=timeout), what)

    def pipe(
        self, command: str, produce: Callable[[Any], object], *, what: str, timeout: float = 600
    ) -> None:
        """`command` on the host fed what `produce(stdin)` writes (remote.pipe_into); fails like `run`."""
        self._checked(remote.pipe_into(self.host, command, produce, timeout=timeout), what)

    def _checked(self, result: remote.CommandResult, what: str) -> str:
        if not result.ok:
            lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
            raise ExternalFailure(
                f"{what} failed on host {self.host.name}: "
                f"{lines[-1].strip() if lines else f'exit {result.rc}'}"
            )
        return result.stdout

    def create(self) -> None:
        dirs = " ".join(shlex.quote(str(self.root / part)) for part in ("data", "wal", "run"))
        self.run(
            f"umask 077 && mkdir {shlex.quote(str(self.root))} && mkdir {dirs}",
            what="creating the scratch directory",
        )

    def free_port(self, address: str, start: int) -> int:
        probe = (
            "import socket,sys\n"
            f"for port in range({start}, {start + PORT_SEARCH_SPAN}):\n"
            "    s = socket.socket()\n"
            "    try:\n"
            f"        s.bind(({address!r}, port))\n"
            "    except OSError:\n"
            "        continue\n"
            "    finally:\n"
            "        s.close()\n"
            "    print(port); sys.exit(0)\n"
            "sys.exit(1)\n"
        )
        result = remote.run(self.host, f"{shlex.quote(self.host.python)} -c {shlex.quote(probe)}", timeout=30)
        if not result.ok or not result.stdout.strip().isdigit():
            raise ExternalFailure(
                f"no free port for the scratch cluster on {address} from {start} to "
                f"{start + PORT_SEARCH_SPAN - 1}; stop a leftover scratch server or pass a port"
            )
        return int(result.stdout.strip())

    def limits(self) -> tuple[tuple[str, int], ...]:
        pg_controldata = shlex.quote(str(self.bin_dir / "pg_controldata"))
        text = self.run(
            f"LC_ALL=C {pg_controldata} -D {shlex.quote(str(self.data))}",
            what="reading the restored cluster's control file",
        )
        return recovery_limits(text)

    def start(self) -> None:
        """Start the server in the background and keep the pid of the very process started.

        `$!` is the pid of `postgres` itself (the shell execs it), known before the server writes any
        file; waiting for it to accept connections is `_wait_promoted`'s job.
        """
        postgres = shlex.quote(str(self.bin_dir / "postgres"))
        data, log = shlex.quote(str(self.data)), shlex.quote(str(self.log))
        started = self.run(
            f"nohup {postgres} -D {data} >> {log} 2>&1 < /dev/null & echo $!",
            what="starting the scratch cluster",
        ).strip()
        if not started.isdigit():
            raise ExternalFailure(f"the scratch cluster did not start on host {self.host.name}: no pid")
        self.pid = int(started)

    def log_reason(self) -> str:
        result = remote.run(self.host, f"tail -n 40 {shlex.quote(str(self.log))}", timeout=15)
        lines = [line for line in result.stdout.splitlines() if "FATAL" in line or "ERROR" in line]
        return lines[-1].strip()[:300] if lines else f"see {self.log} on host {self.host.name}"

    def alive(self) -> bool:
        """Our server still runs: the pid we started is alive and still a postgres of this scratch data."""
        if self.pid is None:
            return False
        marker = shlex.quote(f"-D {self.data}")
        check = f"tr '\\0' ' ' < /proc/{self.pid}/cmdline 2>/dev/null | grep -qF -- {marker}"
        return remote.run(self.host, check, timeout=15).ok

    def stop(self) -> None:
        """Stop the server we started by its pid (immediate shutdown, then kill); remove the scratch
        directory. Immediate, not fast: a fast shutdown writes a checkpoint first (2.4 s measured at
        1,000,000 orders), for data deleted the next moment."""
        if self.pid is not None and self.alive():
            # Sent again every 2 s: a stop right after the start can reach the process while it is still
            # the shell's background child, which ignores SIGQUIT, before postgres is exec'd and sets its
            # handlers; that signal is lost (the kill fallback below then cost 30 s).
            deadline = time.monotonic() + 30
            resend_at = 0.0
            while self.alive() and time.monotonic() < deadline:
                if time.monotonic() >= resend_at:
                    remote.run(self.host, f"kill -QUIT {self.pid}", timeout=15)
                    resend_at = time.monotonic() + 2
                time.sleep(0.2)
            if self.alive():
                remote.run(self.host, f"kill -KILL {self.pid}", timeout=15)
        self.pid = None
        remote.run(self.host, f"rm -rf {shlex.quote(str(self.root))}", timeout=120)


# What PostgreSQL (13+) logs when the WAL it was given ends before a commit past the recovery target.
TARGET_NOT_REACHED = "recovery ended before configured recovery target was reached"
# Segments added per retry when the target was not reached: forced switches (archive_timeout) leave many
# near-empty segments, so one at a time would restart the server too often.
MORE_SEGMENTS = 4


class _TargetNotReached(Exception):
    """The scratch server replayed every segment it was given without passing the recovery target."""


def next_segments(cov: Coverage, given: Sequence[WalKey], count: int = MORE_SEGMENTS) -> tuple[WalKey, ...]:
    """The shipped segments after those already given to the scratch server, at most `count`. Pure."""
    return cov.segments[len(given) : len(given) + count]


def _wait_promoted(conninfo: str, scratch: _Scratch, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if db.promoted(conninfo, connect_timeout=5):
            return
        # Not answering (still starting, or stopped) or still replaying: a stopped one is told apart here.
        if not scratch.alive():
            reason = scratch.log_reason()
            if TARGET_NOT_REACHED in reason:
                raise _TargetNotReached(reason)
            raise ExternalFailure(f"point-in-time recovery stopped: {reason}")
        if time.monotonic() > deadline:
            raise ExternalFailure(
                f"the scratch cluster did not reach its recovery target within {timeout:.0f} s; "
                f"see {scratch.log} on host {scratch.host.name}"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def recover_to(
    target: Target,
    choice: DomainChoice,
    *,
    at: datetime | None = None,
    restore_point: str | None = None,
    stores: RealtimeStores | None = None,
    port: int | None = None,
    timeout: float = 300,
) -> Iterator[str]:
    """Recover `choice` (a realtime backup and copy) into a scratch cluster; yield its conninfo."""
    if at is not None and restore_point is not None:
        raise UsageError("give either a time or a restore point, not both")
    if choice.kind != "realtime":
        raise UsageError(
            f"{choice.backup_id} is a {choice.kind} backup; point-in-time recovery needs a realtime one"
        )
    chosen = stores or realtime_stores(target)
    store = chosen.copy(choice.copy)
    name = BackupName.parse(choice.backup_id)
    cov = coverage(store, name)
    point_segment = None
    if restore_point is not None:
        point = read_restore_point(store, check_restore_point_name(restore_point))
        if point is None:
            raise UsageError(
                f"no restore point named {restore_point!r} was recorded; list them or use a time"
            )
        if point.created_at < cov.starts_at:
            raise UsageError(
                f"restore point {restore_point!r} ({_when(point.created_at)}) is older than realtime backup "
                f"{choice.backup_id}; use an older backup"
            )
        point_segment = point.segment
    plan = plan_recovery(cov, at=at, restore_point_segment=point_segment, name=restore_point)
    manifest = read_manifest(store, name)
    if manifest is None:
        raise IntegrityError(
            f"{choice.backup_id} has no manifest in the {choice.copy} copy; use the other copy"
        )
    database = target.writable.database
    host = database_host(target)
    scratch = _Scratch(host, database)
    pass_dir = Path(tempfile.mkdtemp(prefix="pitr-pass-"))
    try:
        scratch.create()
        # The session is this restore's own until the copy is handed over (paramiko's are not shared).
        with remote.sftp(host) as sftp:
            zstd = host_has_zstd(host)
            _lay_down(scratch, store, name, manifest, chosen, zstd=zstd)
            given = list(plan.segments)
            _fetch_segments(scratch, store, given, chosen, zstd=zstd, sftp=sftp)
            untrusted = " ".join(shlex.quote(str(scratch.data / name)) for name in UNTRUSTED_FILES)
            scratch.run(
                f"rm -f {untrusted} && touch {shlex.quote(str(scratch.data / 'recovery.signal'))}",
                what="preparing the restored data directory",
            )
            chosen_port = port or scratch.free_port(database.address, database.port + PORT_SEARCH_OFFSET)
            config = scratch_config(
                plan,
                address=database.address,
                port=chosen_port,
                scratch=scratch.root,
                limits=scratch.limits(),
            )
            written = {
                "postgresql.conf": config,
                "postgresql.auto.conf": "# written by the toolkit: nothing of the backup's configuration\n",
                "pg_hba.conf": SCRATCH_HBA,
                "pg_ident.conf": "",
            }
            for file_name, text in written.items():
                with sftp.open(str(scratch.data / file_name), "w") as handle:
                    handle.write(text.encode("utf-8"))
            passfile = pass_dir / "pgpass"
            passfile.touch(mode=0o600)
            live_pass = database.passfile.read_text() if database.passfile is not None else ""
            passfile.write_text(scratch_pgpass_line(live_pass, database, chosen_port))
            conninfo = make_conninfo(
                host=database.address,
                port=str(chosen_port),
                dbname=database.name,
                user=database.user,
                passfile=str(passfile),
                application_name="order-recovery-pitr",
            )
            untargeted = False
            while True:
                try:
                    scratch.start()
                    _wait_promoted(conninfo, scratch, timeout)
                    break
                except _TargetNotReached as exc:
                    if untargeted:
                        raise ExternalFailure(f"point-in-time recovery stopped: {exc}") from None
                    # A recovery to a time stops at the first commit after it. The segments chosen by their
                    # last write time may end before that commit (a forced switch fell between the time and
                    # the next commit): give the server the next shipped segments and let it go on.
                    more = next_segments(cov, given)
                    if not more:
                        untargeted = True
                        # No commit after the time in all the shipped WAL: every transaction it holds
                        # committed at or before the time, so its end is the state at that time.
                        with sftp.open(str(scratch.data / "postgresql.auto.conf"), "a") as handle:
                            handle.write(UNTARGETED.encode("utf-8"))
                    _fetch_segments(scratch, store, more, chosen, zstd=zstd, sftp=sftp)
                    given += more
            yield conninfo
    finally:
        try:
            scratch.stop()
        finally:
            shutil.rmtree(pass_dir, ignore_errors=True)


def choose_for_restore_point(
    entries: Sequence[CatalogEntry], domain: Domain, name: str, stores: RealtimeStores
) -> DomainChoice | DomainRefusal:
    """The newest realtime backup of `domain` whose shipped WAL holds restore point `name`, and its copy.

    Realtime restore points live beside the WAL (`orders/restore-points/<name>.json`), not in a backup
    manifest, so `select_backups` cannot see them: the restore side asks here first.
    """
    point = None
    for store in stores.both:
        with contextlib.suppress(IntegrityError):
            point = point or read_restore_point(store, check_restore_point_name(name))
    if point is None:
        return DomainRefusal(domain, f"no realtime restore point named {name!r} was recorded")
    candidates = [
        entry
        for entry in entries
        if entry.domain == domain
        and entry.kind == "realtime"
        and entry.position is not None
        and entry.position <= point.created_at
    ]
    failures: list[str] = []
    for entry in sorted(candidates, key=lambda item: (item.position, item.name), reverse=True):
        if pick_copy(entry) is None:
            failures.append(f"{entry.backup_id} does not verify in either copy")
            continue
        for label in ("local", "remote"):
            if not entry.copy(label).usable:
                continue
            try:
                coverage(stores.copy(label), entry.name).segments_through(point.segment)
            except (UsageError, IntegrityError) as exc:
                failures.append(f"{entry.backup_id} ({label} copy): {exc}")
                continue
            return DomainChoice(
                domain,
                entry.backup_id,
                "realtime",
                label,
                f"realtime backup {entry.backup_id} reaches restore point {name!r} through the WAL shipped "
                f"to its {label} copy",
            )
    detail = "; ".join(failures) or "none is older than the point"
    return DomainRefusal(domain, f"no realtime backup of {domain} reaches restore point {name!r}: {detail}")
