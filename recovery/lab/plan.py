"""The lab's plan: addresses, ports and paths derived from the lab dir and the base port (pure).

docs/architecture.md, "The lab", fixes the layout: front door B, moto B+1, and per host sshd B+22,
order service B+80, PostgreSQL B+432, each host on its own loopback address.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recovery.errors import UsageError
from recovery.targets.model import SiteName

PRIMARY_REGION = "eu-central-1"
STANDBY_REGION = "eu-west-1"
FRONT_DOOR_ADDRESS = "127.0.0.1"
MOTO_ADDRESS = "127.0.0.1"
SITE_ADDRESSES: dict[SiteName, str] = {"primary": "127.0.0.11", "standby": "127.0.0.12"}
SSH_OFFSET, SERVICE_OFFSET, PG_OFFSET = 22, 80, 432
WATCH_METRICS_OFFSET = 9  # the watch's Prometheus endpoint, on the front door's address
HIGHEST_OFFSET = PG_OFFSET
RESERVED_DEFAULT = range(27000, 28000)
DEFAULT_BASE_PORT = 27000

HOSTED_ZONE = "lab.orders.internal"
SHOP_RECORD = f"shop.{HOSTED_ZONE}"
KMS_ALIAS = "alias/order-backups"
LOCAL_BUCKET = "order-backups-local"
REMOTE_BUCKET = "order-backups-remote"
TEAM_TOPIC = "order-team"
CUSTOMER_TOPIC = "order-customers"
INTAKE_QUEUE = "order-intake"
INTAKE_DLQ = "order-intake-dlq"
DB_NAME = "orders"
DB_OWNER = "orders"
DB_SUPERUSER = "postgres"
# The standby streams as this role (REPLICATION, not a superuser): the lab user's servers hold its
# password only, never the superuser's (that stays in the controller's passfile).
DB_REPLICATOR = "replicator"
SITES: tuple[SiteName, ...] = ("primary", "standby")


@dataclass(frozen=True)
class SitePlan:
    site: SiteName
    host_name: str
    address: str
    ssh_port: int
    service_port: int
    pg_port: int
    host_dir: Path
    pg_dir: Path

    @property
    def sshd_dir(self) -> Path:
        return self.host_dir / "sshd"

    @property
    def app_dir(self) -> Path:
        return self.host_dir / "app"

    @property
    def service_pgpass(self) -> Path:
        """The service's passfile on this host: its own role only (the superuser's stays with the
        controller, so a compromised service cannot lift its own fence)."""
        return self.host_dir / "service.pgpass"

    @property
    def replication_pgpass(self) -> Path:
        """This database host's passfile for streaming from the other site: the replication role only,
        owned by the lab user whose servers read it (the standby's walreceiver, pg_basebackup)."""
        return self.pg_dir / "replication.pgpass"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.pg_dir / "run"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgresql.log"


@dataclass(frozen=True)
class LabPlan:
    lab_dir: Path
    base_port: int
    primary: SitePlan
    standby: SitePlan

    @property
    def front_door_port(self) -> int:
        return self.base_port

    @property
    def moto_port(self) -> int:
        return self.base_port + 1

    @property
    def moto_url(self) -> str:
        return f"http://{MOTO_ADDRESS}:{self.moto_port}"

    @property
    def front_door_url(self) -> str:
        return f"http://{FRONT_DOOR_ADDRESS}:{self.front_door_port}"

    @property
    def sites(self) -> tuple[SitePlan, SitePlan]:
        return (self.primary, self.standby)

    def site(self, name: SiteName) -> SitePlan:
        return self.primary if name == "primary" else self.standby

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "lab.json"

    @property
    def target_file(self) -> Path:
        return self.lab_dir / "target.yaml"

    @property
    def inventory_dir(self) -> Path:
        return self.lab_dir / "inventory"

    @property
    def inventory_file(self) -> Path:
        return self.inventory_dir / "hosts.yml"

    @property
    def ssh_dir(self) -> Path:
        return self.lab_dir / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def pgpass(self) -> Path:
        return self.lab_dir / "pgpass"

    @property
    def moto_dir(self) -> Path:
        return self.lab_dir / "moto"

    @property
    def front_door_dir(self) -> Path:
        return self.lab_dir / "frontdoor"

    @property
    def state_dir(self) -> Path:
        return self.lab_dir / "state"

    @property
    def artifacts_dir(self) -> Path:
        return self.lab_dir / "artifacts"

    @property
    def watch_dir(self) -> Path:
        return self.lab_dir / "watch"

    @property
    def watch_metrics_port(self) -> int:
        return self.base_port + WATCH_METRICS_OFFSET

    def listeners(self) -> tuple[tuple[str, str, int], ...]:
        """Every (part, address, port) the lab listens on, for the free-port check before `up`."""
        parts: list[tuple[str, str, int]] = [
            ("front door", FRONT_DOOR_ADDRESS, self.front_door_port),
            ("moto server", MOTO_ADDRESS, self.moto_port),
            ("watch metrics", FRONT_DOOR_ADDRESS, self.watch_metrics_port),
        ]
        for s in self.sites:
            parts += [
                (f"{s.site} sshd", s.address, s.ssh_port),
                (f"{s.site} order service", s.address, s.service_port),
                (f"{s.site} PostgreSQL", s.address, s.pg_port),
            ]
        return tuple(parts)


def plan_lab(lab_dir: Path, base_port: int, *, allow_reserved: bool = False) -> LabPlan:
    """Check the base port and derive every address, port and path of the lab."""
    if not 1024 <= base_port <= 65535 - HIGHEST_OFFSET:
        raise UsageError(
            f"--base-port {base_port} is out of range; pick a port from 1024 to {65535 - HIGHEST_OFFSET}"
        )
    if not allow_reserved and base_port != DEFAULT_BASE_PORT and _overlaps(base_port, RESERVED_DEFAULT):
        raise UsageError(
            f"--base-port {base_port} overlaps the default lab's ports 27000-27999; pick another base port"
        )
    lab_dir = lab_dir.resolve()

    def site(name: SiteName) -> SitePlan:
        return SitePlan(
            site=name,
            host_name=f"{name}-app",
            address=SITE_ADDRESSES[name],
            ssh_port=base_port + SSH_OFFSET,
            service_port=base_port + SERVICE_OFFSET,
            pg_port=base_port + PG_OFFSET,
            host_dir=lab_dir / "hosts" / name,
            pg_dir=lab_dir / "pg" / name,
        )

    return LabPlan(lab_dir=lab_dir, base_port=base_port, primary=site("primary"), standby=site("standby"))


def _overlaps(base_port: int, reserved: range) -> bool:
    return base_port <= reserved.stop - 1 and base_port + HIGHEST_OFFSET >= reserved.start
