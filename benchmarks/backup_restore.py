"""Backup and restore of the orders domain against the bare tools and a hand-made pipeline, same data.

Builds a lab with N orders (default 1,000,000; `--orders 5000000` for the larger run), then measures, one
after the other on the same database:
- ours: `backup_domains(target, ["orders"])` (dump in an exported snapshot + fingerprints, zstd-1 +
  AES-256-GCM, both S3 copies in one pass), and the restore of that backup into a staging schema of
  live (`restore_into_schema`: the domain's tables only) plus its verification (`check_restored_copy`:
  fingerprints against the manifest and the business invariants across domains, side by side, as the
  restore runbook runs them), `--runs` times each beside a bare restore (medians); the last run's
  staged tables are swapped in (`swap_tables_in`, timed) and the set-aside ones dropped;
- bare `pg_dump -Fc -Z0` of the domain's tables to /dev/null, and to a file; bare `pg_restore` of that
  file (data, then indexes and constraints) into an empty copy of the schema;
- the hand-made pipeline `pg_dump -Fc | openssl enc -aes-256-cbc -pbkdf2 | aws s3 cp -` to the lab's moto,
  and back `aws s3 cp - | openssl enc -d | pg_restore`;
- zstd -1 of the raw dump file, to compare the stored object's size with.
Prints each time, the ratios against the goals, MiB/s per stage (raw dump bytes / seconds) and the peak
memory of our backup and our restore. Each of ours runs in a fresh interpreter, as a `recovery` command
does, so its peak is the kernel's high-water mark of resident memory (VmHWM) for that process alone:
its imports, clients and connections, and what the stage holds. The restore's process also verifies
the backup's copies first (`catalog.verify`, as the restore runbook's select step does); the time
printed is the restore and verification only.

Usage: python benchmarks/backup_restore.py [--orders 1000000] [--base-port 24300] [--runs 3] [--keep]
                                           [--lab-dir DIR]
Uses a lab dir under /var/tmp and ports B..B+432; the lab is stopped and its dir removed at the end
unless --keep is given. `--lab-dir` runs on a lab already up there (left up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from recovery.memory import return_large_buffers_to_the_os
from recovery.targets.load import load_target

# Each stage of ours imports what its command would (below, in its function): the backup's process
# does not hold the restore's modules, nor the parent's.

RECOVERY = str(Path(sys.executable).parent / "recovery")
MIB = 1024 * 1024
TABLES = ("orders", "order_items")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "lab")  # moto takes any credentials
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "lab")


def memory_status() -> dict[str, float]:
    """This process's resident memory now and at its peak, and what is private (anonymous) and what is
    mapped files (the libraries' code), in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def run_stage(stage: str, target_file: Path, argv: list[str]) -> None:
    """One of ours in this fresh process; prints one JSON line: seconds, phases and memory."""
    if stage == "backup":
        from recovery.backup.daily import backup_domains
    else:
        from recovery.backup.catalog import catalog_for
        from recovery.drivers import db as dbdriver
        from recovery.restore.selection import select_backups
        from recovery.restore.sources import open_copy, sources_for
        from recovery.restore.staged import restore_into_schema
        from recovery.verify.restored import check_restored_copy, expected_fingerprints
    target = load_target(target_file)
    db = target.primary.database
    started_with = memory_status()["VmRSS"]  # imports and the target, before any client or connection
    phases: dict[str, float] = {}
    if stage == "backup":
        started = time.perf_counter()
        manifest = backup_domains(target, ["orders"])[0]
        seconds = time.perf_counter() - started
        print(json.dumps({"backup_id": manifest.backup_id}))
    elif stage == "restore":
        backup_id, restore_id = argv
        catalog = catalog_for(target)
        entry = catalog.verify(backup_id)
        choice = select_backups([entry], ["orders"]).choices[0]
        assert entry.manifest is not None
        sources = sources_for([open_copy(catalog, choice)])
        started = time.perf_counter()
        staged = restore_into_schema(
            dbdriver.conninfo(db, dbname="postgres"),
            dbdriver.pg_tool(db, "pg_dump").parent,
            live_db=db.name,
            restore_id=restore_id,
            schema_stream=sources.schema,
            domain_streams=sources.domains,
        )
        phases.update({step.step: step.seconds for step in staged.steps})
        phases["restore_into_schema total"] = time.perf_counter() - started
        verify_started = time.perf_counter()
        # The restore runbook's own check: fingerprints and invariants side by side.
        reports, report = check_restored_copy(
            lambda: dbdriver.connect(db, dbname=db.name),
            expected_fingerprints(entry.manifest),
            schema=staged.schema,
        )
        assert all(found.passed for found in reports), [found.mismatches for found in reports]
        assert report.passed, report
        phases["verify (fingerprints + invariants)"] = time.perf_counter() - verify_started
        seconds = time.perf_counter() - started
    else:
        raise SystemExit(f"unknown stage {stage}")
    memory = memory_status()
    print(json.dumps({"seconds": seconds, "phases": phases, "start": started_with, **memory}))


def ours(stage: str, target_file: Path, *argv: str) -> dict[str, Any]:
    """Run one of ours in a fresh interpreter; its figures, with `backup_id` for a backup."""
    done = subprocess.run(
        [sys.executable, __file__, "--stage", stage, "--target", str(target_file), *argv],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            figures.update(json.loads(line))
    return figures


def timed(what: str, run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    print(f"  {what:<44} {seconds:8.2f} s", flush=True)
    return seconds, result


def shell(command: str, env: dict[str, str]) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--base-port", type=int, default=24300)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="restore comparisons (median reported)")
    parser.add_argument("--lab-dir", type=Path, help="a lab already up there (left up)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    return_large_buffers_to_the_os()  # as the CLI does (recovery.memory)
    if args.stage:
        run_stage(args.stage, args.target, rest)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-work-", dir="/var/tmp"))
    if args.lab_dir:
        try:
            run(args.lab_dir / "target.yaml", work, max(args.runs, 1))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    lab_dir = Path(tempfile.mkdtemp(prefix="bench-backup-restore-", dir="/var/tmp"))
    lab_dir.chmod(0o755)
    try:
        print(f"lab up with {args.orders:,} orders ...", flush=True)
        subprocess.run(
            [
                RECOVERY,
                "lab",
                "up",
                "--lab-dir",
                str(lab_dir / "lab"),
                "--base-port",
                str(args.base_port),
                "--orders",
                str(args.orders),
                # The watch's first round (archiving, base backup, daily backups) is not measured here
                # and took over 300 s at 1,000,000 orders on a loaded machine.
                "--no-watch",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        run(lab_dir / "lab" / "target.yaml", work, max(args.runs, 1))
    finally:
        if not args.keep:
            subprocess.run(
                [RECOVERY, "lab", "down", "--lab-dir", str(lab_dir / "lab"), "--purge"],
                check=False,
                stdout=subprocess.DEVNULL,
            )
            shutil.rmtree(lab_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def split_post_data(conninfo: str, bin_dir: Path, work: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """Two pg_restore lists of the schema dump's post-data: the domain's own (indexes and constraints of
    its tables, and the foreign keys into them) and everything else."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = ANY(%(t)s::regclass[])"
            " OR confrelid = ANY(%(t)s::regclass[])"
            " UNION SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = ANY(%(t)s::regclass[])",
            {"t": list(TABLES)},
        ).fetchall()
    names = {str(row[0]) for row in rows}
    toc = subprocess.run(
        [f"{bin_dir}/pg_restore", "-l", str(work / "schema.dump")],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.splitlines()
    entries = [line for line in toc if line and not line.startswith(";")]
    ours = [line for line in entries if len(line.split()) > 2 and line.split()[-2] in names]
    domain_list, others_list = work / "domain.list", work / "others.list"
    domain_list.write_text("\n".join(ours) + "\n")
    others_list.write_text("\n".join(line for line in entries if line not in ours) + "\n")
    return domain_list, others_list


def run(target_file: Path, work: Path, runs: int) -> None:
    import psycopg

    from recovery.backup.catalog import catalog_for
    from recovery.drivers import db as dbdriver
    from recovery.drivers.db import tool_env
    from recovery.restore.staged import discard_staged
    from recovery.restore.table_swap import drop_replaced_tables, swap_tables_in

    target = load_target(target_file)
    db = target.primary.database
    bin_dir = dbdriver.pg_tool(db, "pg_dump").parent
    conninfo = dbdriver.conninfo(db)
    env = {**tool_env(), "PGPASSFILE": str(db.passfile)}
    tables = " ".join(f"-t {table}" for table in TABLES)
    dump = f"{bin_dir}/pg_dump -d '{conninfo}' -Fc --data-only {tables}"
    endpoint = target.aws.endpoint_url
    bucket = target.backup.local.bucket
    (work / "pass").write_text(os.urandom(32).hex())
    (work / "pass").chmod(0o600)
    s3 = f"aws s3 --endpoint-url {endpoint} --region {target.backup.local.region}"
    enc = f"openssl enc -aes-256-cbc -pbkdf2 -pass file:{work}/pass"

    print("backup of the orders domain", flush=True)
    backup = ours("backup", target_file)
    ours_backup = backup["seconds"]
    print(f"  {'ours (dump+fingerprints+zstd+AES, 2 copies)':<44} {ours_backup:8.2f} s", flush=True)
    bare_dump, _ = timed("bare pg_dump -Fc -Z0 > /dev/null", lambda: shell(f"{dump} -Z0 > /dev/null", env))
    timed("bare pg_dump -Fc -Z0 > file", lambda: shell(f"{dump} -Z0 -f {work}/orders.dump", env))
    pipe_backup, _ = timed(
        "pg_dump -Fc | openssl | aws s3 cp -",
        lambda: shell(f"{dump} | {enc} | {s3} cp - s3://{bucket}/bench/orders.enc", env),
    )
    raw = (work / "orders.dump").stat().st_size
    subprocess.run(
        ["zstd", "-1", "-q", "-f", str(work / "orders.dump"), "-o", str(work / "orders.zst")], check=True
    )
    zstd1 = (work / "orders.zst").stat().st_size

    print("restore of the orders domain", flush=True)
    entry = catalog_for(target).verify(backup["backup_id"])
    manifest = entry.manifest
    assert manifest is not None
    admin = dbdriver.conninfo(db, dbname="postgres")

    scratch = "orders_bench_bare"
    shell(
        f"{bin_dir}/pg_dump -d '{conninfo}' -Fc -Z0 -f {work}/schema.dump "
        + " ".join(f"--exclude-table-data={t}" for t in TABLES),
        env,
    )

    domain_list, others_list = split_post_data(conninfo, bin_dir, work, env)

    def domain_post_data(target_db: str) -> str:
        return (
            f"{bin_dir}/pg_restore -d '{target_db}' --section=post-data -L {domain_list} {work}/schema.dump"
        )

    def empty_copy() -> str:
        """Live without the domain's rows: the other domains whole, with their indexes (untimed), as a
        domain restore finds them; the timed part loads the domain and builds its indexes, constraints
        and the foreign keys into it."""
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {scratch} TEMPLATE template0")
        target_db = dbdriver.conninfo(db, dbname=scratch)
        shell(f"{bin_dir}/pg_restore -d '{target_db}' --section=pre-data {work}/schema.dump", env)
        shell(f"{bin_dir}/pg_restore -d '{target_db}' --section=data {work}/schema.dump", env)
        shell(
            f"{bin_dir}/pg_restore -d '{target_db}' --section=post-data -L {others_list} {work}/schema.dump",
            env,
        )
        return target_db

    # Ours and the bare restore one after the other, `runs` times: the ratio of each pair, and medians.
    ours_runs: list[float] = []
    bare_runs: list[float] = []
    for attempt in range(1, runs + 1):
        print(f"  run {attempt} of {runs}", flush=True)
        restore = ours("restore", target_file, backup["backup_id"], "bench")
        seconds = restore["seconds"]
        print(f"  {'ours (restore into a staging schema + verify)':<44} {seconds:8.2f} s", flush=True)
        ours_runs.append(seconds)
        for phase, phase_seconds in restore["phases"].items():
            print(f"    {phase:<42} {phase_seconds:8.2f} s")
        if attempt == runs:
            # The swap (inside the fence in a real restore): the staged rows are the backup just taken,
            # so live's data does not change; the set-aside tables are dropped after.
            timed(
                "swap the staged tables in (one transaction)",
                lambda: swap_tables_in(admin, live_db=db.name, restore_id="bench", tables=TABLES),
            )
            drop_replaced_tables(admin, live_db=db.name, restore_id="bench", confirmed=True)
        else:
            discard_staged(admin, live_db=db.name, restore_id="bench")
        target_db = empty_copy()
        bare = (
            f"{bin_dir}/pg_restore -d '{target_db}' --data-only {work}/orders.dump && "
            f"{domain_post_data(target_db)}"
        )
        seconds, _ = timed("bare pg_restore from a local file", partial(shell, bare, env))
        bare_runs.append(seconds)
    ours_restore_s, bare_restore = statistics.median(ours_runs), statistics.median(bare_runs)
    ratios = [ours / bare for ours, bare in zip(ours_runs, bare_runs, strict=True)]
    target_db = empty_copy()
    pipe_restore, _ = timed(
        "aws s3 cp - | openssl -d | pg_restore",
        lambda: shell(
            f"{s3} cp s3://{bucket}/bench/orders.enc - | {enc} -d | "
            f"{bin_dir}/pg_restore -d '{target_db}' --data-only"
            f" && {domain_post_data(target_db)}",
            env,
        ),
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")

    rows = {table.name: table.rows for table in manifest.tables}
    print()
    print(f"data: {rows['orders']:,} orders, {rows['order_items']:,} items; raw dump {raw / MIB:.1f} MiB")
    print(f"{'stage':<40} {'seconds':>8} {'MiB/s':>8}")
    for label, seconds in (
        ("ours backup", ours_backup),
        ("bare pg_dump -Z0 > /dev/null", bare_dump),
        ("hand-made backup pipeline", pipe_backup),
        ("ours restore + verify (median)", ours_restore_s),
        ("bare pg_restore (median)", bare_restore),
        ("hand-made restore pipeline", pipe_restore),
    ):
        print(f"{label:<40} {seconds:8.2f} {raw / MIB / seconds:8.1f}")
    print()
    print(f"backup / bare pg_dump          {ours_backup / bare_dump:5.2f}x   (goal <= 1.6x)")
    print(f"pipeline / our backup          {pipe_backup / ours_backup:5.2f}x   (goal >= 3x)")
    print(f"restore+verify / bare restore  {ours_restore_s / bare_restore:5.2f}x   (goal <= 1.3x; medians)")
    print(f"  per run                      {' / '.join(f'{ratio:.2f}x' for ratio in ratios)}")
    print(f"restore+verify / hand restore  {ours_restore_s / pipe_restore:5.2f}x   (goal <= 1.0x)")
    for what, figures in (("backup", backup), ("restore", restore)):
        print(
            f"peak RSS {what:<8}               {figures['VmHWM']:.0f} MiB (goal < 100), in its own process: "
            f"{figures['start']:.0f} MiB after its imports; at the end {figures['VmRSS']:.0f} MiB, "
            f"{figures['RssAnon']:.0f} private + {figures['RssFile']:.0f} mapped files (libraries)"
        )
    print(
        f"stored / zstd-1 of raw dump    {manifest.sizes.stored / zstd1:5.3f}x   "
        f"({manifest.sizes.stored / MIB:.1f} vs {zstd1 / MIB:.1f} MiB; goal <= 1.05x)"
    )


if __name__ == "__main__":
    main()
