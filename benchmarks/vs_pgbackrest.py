"""Our realtime base backup side by side with pgBackRest, on one lab cluster (PostgreSQL 15), one run.

Builds a lab on Debian's PostgreSQL 15 (`recovery lab up --pg-bin /usr/lib/postgresql/15/bin`) with N
orders, turns on WAL archiving (playbooks/wal-archive.yml), and then measures, one after the other on the
same cluster, each stage in its own child process (wall seconds; CPU seconds of the stage's processes,
children included; CPU seconds of the PostgreSQL server's processes during the stage; peak RSS of the
stage's process tree, summed over the processes alive at each 50 ms sample):
- pgBackRest 2.45: full backup (zst level 1, aes-256-cbc, process-max 2) into a local directory
  repository, once per repository (it writes one repository per run): repo1 and repo2, two copies;
- ours: `take_base_backup` into two local directories (the same medium, two copies, one pass), which
  includes the segment switch, the archive wait and the shipping of that segment;
- stored bytes per copy for both;
- restore: pgBackRest's restore (lays down the files) and ours (decrypt the base backup, untar it);
  PostgreSQL's recovery to consistency is then timed once on our laid-down files (both tools' backups
  hold the same cluster and need the same replay; pgBackRest's repository here has no WAL archive: the
  lab's archive command is ours) and added to both;
- verification pgBackRest does not do, on its own lines: our read-back of both copies (sha256 against
  the manifest: `pgbackrest verify` is its counterpart, measured too), and our point-in-time restore of
  orders+transactions beside live from the lab's S3 copies (`recovery restore --at`: recovery into a
  scratch cluster, restore beside live, fingerprints against the recovered cluster and the invariants).

Installs Debian's pgbackrest package with apt-get when `pgbackrest` is not on PATH (it says so).
Usage: python benchmarks/vs_pgbackrest.py [--orders 1000000] [--base-port 21000] [--keep]
Uses a lab dir under /var/tmp and ports B..B+432 and B+900 (the recovery check); removed at the end
unless --keep.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pwd
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RECOVERY = str(Path(sys.executable).parent / "recovery")
HERE = Path(__file__).resolve()
PLAYBOOK = HERE.parents[1] / "playbooks" / "wal-archive.yml"
MIB = 1024 * 1024
LAB_USER = "orderlab"
STANZA = "orders"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "lab")  # moto takes any credentials
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "lab")


# --- measuring a stage --------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the state on (index 0 = field 3)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def tree_rss(root: int) -> dict[str, int]:
    """Resident bytes of every process in the tree under `root`, summed by command name."""
    page = os.sysconf("SC_PAGE_SIZE")
    found: dict[str, int] = {}
    for pid in _tree(root, _children_map()):
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, IndexError):
            continue
        found[name] = found.get(name, 0) + resident
    return found


def server_cpu(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL server: every live process plus the exited ones it reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _tree(postmaster, _children_map()):
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == postmaster:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped backends
    return total / tick


@dataclass(frozen=True)
class Stage:
    name: str
    wall: float
    cpu: float
    server_cpu: float
    peak_rss: int
    at_peak: dict[str, int]
    output: str

    def line(self) -> str:
        biggest = sorted(self.at_peak.items(), key=lambda item: -item[1])[:3]
        parts = ", ".join(f"{name} {size / MIB:.0f}" for name, size in biggest)
        return (
            f"  {self.name:<58} {self.wall:7.2f} s wall {self.cpu:7.2f} CPU-s "
            f"(+{self.server_cpu:5.2f} server) {self.peak_rss / MIB:7.1f} MiB peak ({parts})"
        )


def measure(name: str, argv: list[str], postmaster: int, env: dict[str, str] | None = None) -> Stage:
    """Run one stage as a child process tree; sample its RSS every 50 ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server_cpu(postmaster)
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    peak = 0
    at_peak: dict[str, int] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, at_peak
        while not done.is_set():
            now = tree_rss(process.pid)
            if sum(now.values()) > peak:
                peak, at_peak = sum(now.values()), now
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stdout is not None
    output = process.stdout.read().decode("utf-8", "replace")
    code = process.wait()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"stage {name!r} failed with exit {code}: {output[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stage = Stage(name, wall, cpu, server_cpu(postmaster) - server_before, peak, at_peak, output)
    print(stage.line(), flush=True)
    for line in output.splitlines():
        if line.startswith("    of which"):
            print(line, flush=True)
    return stage


def dir_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


# --- our stages (run as child processes of this script: `--stage NAME`) --------------------------------


def _dir_stores(work: Path, target: Any) -> Any:
    from recovery.backup.keys import key_provider
    from recovery.backup.realtime import RealtimeStores
    from recovery.backup.stores import FilesystemStore
    from recovery.drivers.aws import AwsDriver

    return RealtimeStores(
        FilesystemStore(work / "ours-local", "local", "backups/"),
        FilesystemStore(work / "ours-remote", "remote", "backups/"),
        key_provider(target.keys, AwsDriver(target.aws)),
    )


def run_stage(stage: str, target_file: Path, work: Path) -> None:
    from recovery.backup.catalog import Catalog
    from recovery.backup.realtime import realtime_stores, take_base_backup
    from recovery.backup.repository import read_backup
    from recovery.memory import return_large_buffers_to_the_os
    from recovery.targets.load import load_target

    return_large_buffers_to_the_os()  # as the CLI does
    target = load_target(target_file)
    if stage.startswith("backup-"):
        timed_phases()
    if stage == "backup-dirs":
        base = take_base_backup(target, stores=_dir_stores(work, target), service_version="bench")
        print(json.dumps({m.domain: m.backup_id for m in base.manifests}))
    elif stage == "backup-s3":
        base = take_base_backup(target, stores=realtime_stores(target), service_version="bench")
        print(json.dumps({m.domain: m.backup_id for m in base.manifests}))
    elif stage == "lay-down":
        stores = _dir_stores(work, target)
        ids = json.loads((work / "ours-ids.json").read_text())
        from recovery.backup.naming import BackupName

        out = work / "ours-restored"
        out.mkdir()
        tar = subprocess.Popen(["tar", "-x", "-C", str(out)], stdin=subprocess.PIPE)
        assert tar.stdin is not None
        read_backup(stores.local, BackupName.parse(ids["orders"]), tar.stdin, stores.keys)
        tar.stdin.close()
        if tar.wait() != 0:
            raise SystemExit("tar failed")
    elif stage == "read-back":
        stores = _dir_stores(work, target)
        ids = json.loads((work / "ours-ids.json").read_text())
        catalog = Catalog(stores.local, stores.remote, stores.keys)
        for backup_id in ids.values():
            entry = catalog.verify(backup_id)
            if not entry.counts:
                raise SystemExit(f"{backup_id} does not verify: {entry}")
    else:
        raise SystemExit(f"unknown stage {stage}")


def timed_phases() -> None:
    """Print how long the base backup's segment switch (with the archive wait) and its shipping take:
    the rest of `take_base_backup` is pg_basebackup through the codec into the copies."""
    import recovery.backup.realtime as realtime

    def timing(name: str, call: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                print(f"    of which {name}: {time.perf_counter() - started:.2f} s", flush=True)

        return run

    realtime.switch_and_wait_archived = timing(
        "segment switch + archive wait", realtime.switch_and_wait_archived
    )
    realtime.ship_wal = timing("shipping the WAL spool", realtime.ship_wal)


def ours(stage: str, lab: Path, work: Path) -> list[str]:
    return [sys.executable, str(HERE), "--stage", stage, "--lab-dir", str(lab), "--work", str(work)]


# --- the run ------------------------------------------------------------------------------------------


def ensure_pgbackrest() -> str:
    found = shutil.which("pgbackrest")
    if found:
        return found
    print("pgbackrest is not installed: installing Debian's pgbackrest package with apt-get", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "pgbackrest"], check=True, stdout=subprocess.DEVNULL)
    found = shutil.which("pgbackrest")
    if not found:
        raise SystemExit("apt-get installed pgbackrest but it is not on PATH")
    return found


def as_lab_user(*argv: str) -> list[str]:
    return ["runuser", "-u", LAB_USER, "--", *argv]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--base-port", type=int, default=21000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--lab-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args.stage, args.lab_dir / "target.yaml", args.work)
        return
    if not PG_BIN.is_dir():
        raise SystemExit(f"{PG_BIN} does not exist: install Debian's postgresql-15 package")
    pgbackrest = ensure_pgbackrest()
    root = Path(tempfile.mkdtemp(prefix="bench-vs-pgbackrest-", dir="/var/tmp"))
    root.chmod(0o755)
    lab, work = root / "lab", root / "work"
    work.mkdir()
    os.chown(work, pwd.getpwnam(LAB_USER).pw_uid, pwd.getpwnam(LAB_USER).pw_gid)
    try:
        print(f"lab up on PostgreSQL 15 with {args.orders:,} orders ...", flush=True)
        up = [RECOVERY, "lab", "up", "--lab-dir", str(lab), "--base-port", str(args.base_port)]
        # Without the watch: its shipper raced this script's own `ship_wal` for the same segments (one
        # of two shippers writing a name first makes the other's write-once put fail), and its
        # scheduled backups would run beside the measured stages. Archiving is set up below.
        up += ["--orders", str(args.orders), "--pg-bin", str(PG_BIN), "--no-watch"]
        subprocess.run(up, check=True, stdout=subprocess.DEVNULL)
        run(pgbackrest, lab, work, args)
    finally:
        if not args.keep:
            down = [RECOVERY, "lab", "down", "--lab-dir", str(lab), "--purge"]
            subprocess.run(down, check=False, stdout=subprocess.DEVNULL)
            shutil.rmtree(root, ignore_errors=True)


def run(pgbackrest: str, lab: Path, work: Path, args: argparse.Namespace) -> None:
    from recovery.backup.realtime import ship_wal, switch_and_wait_archived, wal_archive_extravars
    from recovery.drivers import db
    from recovery.drivers.ansible import require_success, run_playbook
    from recovery.lab.plan import plan_lab
    from recovery.lab.postgres import postmaster_pid
    from recovery.targets.load import load_target

    plan = plan_lab(lab, args.base_port)
    target = load_target(lab / "target.yaml")
    require_success(run_playbook(plan.inventory_file, str(PLAYBOOK), extravars=wal_archive_extravars(target)))
    database = target.primary.database
    with db.connect(database, dbname="postgres", autocommit=True) as conn:
        size = conn.execute("SELECT pg_database_size(%s)", (database.name,)).fetchone()
        conn.execute(f"CREATE ROLE {LAB_USER} LOGIN SUPERUSER")  # pgBackRest: peer auth on the socket
    postmaster = postmaster_pid(plan.primary.pg_data)
    assert postmaster is not None
    print(f"cluster: data directory {dir_bytes(plan.primary.pg_data) / MIB:,.0f} MiB", end="")
    print(f", orders database {int(size[0] if size else 0) / MIB:,.0f} MiB", flush=True)
    passphrase = os.urandom(24).hex()
    config = work / "pgbackrest.conf"
    repos = {1: work / "pgbr-repo1", 2: work / "pgbr-repo2"}
    lines = [
        "[global]",
        *(
            f"repo{n}-path={path}\nrepo{n}-cipher-type=aes-256-cbc\nrepo{n}-cipher-pass={passphrase}"
            for n, path in repos.items()
        ),
        "compress-type=zst",
        "compress-level=1",
        "process-max=2",
        "start-fast=y",
        "archive-check=n",
        "repo1-retention-full=9",
        "repo2-retention-full=9",
        f"spool-path={work}/pgbr-spool",
        f"lock-path={work}/pgbr-lock",
        "log-level-file=off",
        "log-level-console=warn",
        f"[{STANZA}]",
        f"pg1-path={plan.primary.pg_data}",
        f"pg1-port={plan.primary.pg_port}",
        f"pg1-socket-path={plan.primary.pg_socket_dir}",
        f"pg1-user={LAB_USER}",
        "pg1-database=postgres",
    ]
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    os.chown(config, pwd.getpwnam(LAB_USER).pw_uid, pwd.getpwnam(LAB_USER).pw_gid)
    base = [pgbackrest, f"--config={config}", f"--stanza={STANZA}"]
    subprocess.run(as_lab_user(*base, "stanza-create"), check=True)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)

    print("base backup", flush=True)
    pgbr = [
        measure(
            f"pgBackRest full backup, repo{n}",
            as_lab_user(*base, f"--repo={n}", "--type=full", "backup"),
            postmaster,
        )
        for n in repos
    ]
    ours_backup = measure(
        "ours take_base_backup, 2 local dirs (incl. switch+ship)", ours("backup-dirs", lab, work), postmaster
    )
    (work / "ours-ids.json").write_text(ours_backup.output.strip().splitlines()[-1])
    pgbr_wall = sum(stage.wall for stage in pgbr)
    print(
        f"  ratio ours / pgBackRest (2 copies each): wall {ours_backup.wall / pgbr_wall:.2f}x, "
        f"CPU {ours_backup.cpu / sum(s.cpu for s in pgbr):.2f}x",
        flush=True,
    )

    print("stored per copy", flush=True)
    for n, path in repos.items():
        print(f"  pgBackRest repo{n}: {dir_bytes(path / 'backup') / MIB:8.1f} MiB")
    for label in ("local", "remote"):
        folder = work / f"ours-{label}" / "backups"
        # Base backup objects (and markers) sit at the top of each domain; WAL series are folders.
        tops = [item for domain in ("orders", "transactions") for item in (folder / domain).iterdir()]
        base_bytes = sum(item.stat().st_size for item in tops if item.is_file())
        wal_bytes = dir_bytes(folder) - base_bytes
        print(
            f"  ours {label}: {base_bytes / MIB:8.1f} MiB base backup (both domains)"
            f" + {wal_bytes / MIB:.1f} MiB WAL"
        )

    print("restore (files laid down)", flush=True)
    target_dir = work / "pgbr-restored"
    pgbr_restore = measure(
        "pgBackRest restore, repo1",
        as_lab_user(*base, "--repo=1", f"--pg1-path={target_dir}", "restore"),
        postmaster,
    )
    ours_restore = measure("ours: decrypt base backup, untar", ours("lay-down", lab, work), postmaster)
    recovery_seconds = postgres_recovery(work / "ours-restored", args.base_port + 900)
    print(
        f"  PostgreSQL recovery to consistency on the laid-down files: {recovery_seconds:.2f} s"
        " (added to both)"
    )
    print(
        f"  ratio ours / pgBackRest, files + recovery: "
        f"{(ours_restore.wall + recovery_seconds) / (pgbr_restore.wall + recovery_seconds):.2f}x",
        flush=True,
    )

    print("verification pgBackRest does not do the same way (own lines)", flush=True)
    measure("pgBackRest verify (repo1)", as_lab_user(*base, "--repo=1", "verify"), postmaster)
    measure("ours: read back both copies of both domains (sha256)", ours("read-back", lab, work), postmaster)
    measure(
        "ours take_base_backup, lab's S3 copies (the restore's source)",
        ours("backup-s3", lab, work),
        postmaster,
    )
    at = datetime.now(UTC).isoformat()
    time.sleep(1)
    # The shipped WAL must reach past the time: close the current segment and ship it (untimed).
    switch_and_wait_archived(database)
    ship_wal(target)
    restore = [RECOVERY, "restore", "--target", str(lab / "target.yaml"), "--domains", "orders,transactions"]
    restore += ["--at", at, "--yes", "-o", "json"]
    whole = measure("ours point-in-time restore beside live + verify", restore, postmaster)
    # The goal compares the restore up to a verified copy beside live (the steps before the fence) with
    # pgBackRest's restore plus PostgreSQL's recovery; the fence, the swap into live and what follows
    # are a domain restore's own and pgBackRest has no counterpart.
    steps = json.loads(whole.output)["result"]["steps"]
    print("    steps: " + ", ".join(f"{step['name']} {step['duration_s']:.2f}" for step in steps))
    before_fence = list(itertools.takewhile(lambda step: not step["name"].startswith("fence"), steps))
    to_copy = sum(step["duration_s"] for step in before_fence)
    pgbr_point = pgbr_restore.wall + recovery_seconds
    print(
        f"  to a verified copy beside live ({', '.join(step['name'] for step in before_fence)}): "
        f"{to_copy:.2f} s; pgBackRest restore + recovery {pgbr_point:.2f} s: {to_copy / pgbr_point:.2f}x",
        flush=True,
    )
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)


def postgres_recovery(data: Path, port: int) -> float:
    """Start PostgreSQL on a laid-down base backup until it accepts connections; return the seconds."""
    for name in ("postgresql.auto.conf", "standby.signal", "recovery.signal", "postmaster.pid"):
        (data / name).unlink(missing_ok=True)
    subprocess.run(["chown", "-R", LAB_USER, str(data)], check=True)
    data.chmod(0o700)
    options = f"-p {port} -c listen_addresses='' -c unix_socket_directories={data} -c archive_mode=off"
    started = time.perf_counter()
    start = [
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-w",
        "-t",
        "600",
        "-l",
        str(data / "log"),
    ]
    subprocess.run(as_lab_user(*start, "start"), check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    subprocess.run(
        as_lab_user(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return seconds


if __name__ == "__main__":
    main()
