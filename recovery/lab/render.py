"""Pure renderers: the text and documents the lab writes (sshd config, PostgreSQL settings, pg_hba,
pgpass, known_hosts, the Ansible inventory and the target description)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

from recovery.lab.plan import (
    DB_NAME,
    DB_OWNER,
    DB_REPLICATOR,
    DB_SUPERUSER,
    LOCAL_BUCKET,
    PRIMARY_REGION,
    REMOTE_BUCKET,
    SHOP_RECORD,
    STANDBY_REGION,
    LabPlan,
    SitePlan,
)
from recovery.targets.model import (
    AwsEndpoint,
    BackupStore,
    BackupStores,
    Database,
    Host,
    KeySource,
    Site,
    Target,
    Traffic,
)


def sshd_config(site: SitePlan) -> str:
    d = site.sshd_dir
    # StrictModes no: lab dirs may sit under /tmp with permissions sshd's strict checks reject.
    # UsePAM no and no PTYs: a non-root sshd can do neither.
    return "\n".join(
        [
            f"ListenAddress {site.address}",
            f"Port {site.ssh_port}",
            f"HostKey {d / 'host_ed25519'}",
            f"PidFile {d / 'sshd.pid'}",
            f"AuthorizedKeysFile {d / 'authorized_keys'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            "StrictModes no",
            "PermitTTY no",
            "X11Forwarding no",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            "MaxStartups 50:30:100",
            "MaxSessions 50",
            "LogLevel INFO",
            "",
        ]
    )


def postgres_settings(site: SitePlan) -> str:
    """Settings of one site's server; the same file serves the primary and, rewritten, the standby."""
    return "\n".join(
        [
            f"listen_addresses = '{site.address}'",
            f"port = {site.pg_port}",
            f"unix_socket_directories = '{site.pg_socket_dir}'",
            # The standby's walreceiver reports cluster_name as its application_name on the primary.
            f"cluster_name = '{site.site}'",
            "wal_level = replica",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "hot_standby = on",
            "hot_standby_feedback = on",
            "wal_keep_size = '64MB'",
            # pg_rewind needs it (or data checksums) to bring an old primary back as a standby.
            "wal_log_hints = on",
            "shared_buffers = '64MB'",
            "max_connections = 60",
            "password_encryption = 'scram-sha-256'",
            "logging_collector = off",
            "log_statement = 'none'",
            "",
        ]
    )


def pg_hba() -> str:
    return "\n".join(
        [
            "# local socket: only the lab user (peer); TCP: loopback with scram passwords",
            "local   all             all                         peer",
            "local   replication     all                         peer",
            "host    all             all         127.0.0.0/8     scram-sha-256",
            "host    replication     all         127.0.0.0/8     scram-sha-256",
            "",
        ]
    )


def pgpass(
    plan: LabPlan, passwords: dict[str, str], roles: tuple[str, ...] = (DB_SUPERUSER, DB_OWNER)
) -> str:
    """One line per (site, role) for the orders database and for replication (`*`). The controller's
    file holds both roles; a service host's only `roles=(DB_OWNER,)`."""
    lines = []
    for s in plan.sites:
        for role in roles:
            lines.append(f"{s.address}:{s.pg_port}:*:{role}:{_escape(passwords[role])}")
    return "\n".join(lines) + "\n"


def standby_conninfo(plan: LabPlan) -> str:
    """The standby's primary_conninfo: the primary, as the replication role, with the standby host's own
    replication passfile (never the controller's: that one holds the superuser's password)."""
    primary, standby = plan.primary, plan.standby
    return (
        f"host={primary.address} port={primary.pg_port} user={DB_REPLICATOR} "
        f"passfile={standby.replication_pgpass}"
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def parse_pgpass(text: str) -> dict[str, str]:
    """Role -> password from a pgpass file the lab wrote (the inverse of `pgpass`)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields, current, escaped = [], "", False
        for ch in line:
            if escaped:
                current += ch
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == ":":
                fields.append(current)
                current = ""
            else:
                current += ch
        fields.append(current)
        if len(fields) == 5:
            found.setdefault(fields[3], fields[4])
    return found


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677), computed on our side."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def known_hosts_line(site: SitePlan, host_public_key: str) -> str:
    key_type, key_body = host_public_key.split()[:2]
    return f"[{site.address}]:{site.ssh_port} {key_type} {key_body}"


def inventory(
    plan: LabPlan,
    *,
    ssh_user: str,
    intake_queue_url: str = "",
    customer_topic_arn: str = "",
    pending: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """docs/architecture.md, "Ansible contract": groups app > primary/standby, one host each. With an
    intake queue, the services take orders into it while their database cannot (degraded mode); with a
    customer topic and the `pending` template's (subject, body), they tell each customer "received,
    pending" there."""

    def host_vars(s: SitePlan) -> dict[str, Any]:
        return {
            "ansible_host": s.address,
            "ansible_port": s.ssh_port,
            "ansible_user": ssh_user,
            "ansible_ssh_private_key_file": str(plan.ssh_key),
            # Host keys are checked against the lab's own known_hosts, never trusted blindly.
            "ansible_ssh_extra_args": (
                f"-o UserKnownHostsFile={plan.known_hosts} -o StrictHostKeyChecking=yes"
            ),
            "order_site": s.site,
            "order_service_base_dir": str(s.app_dir),
            "order_service_listen": s.address,
            "order_service_port": s.service_port,
            "order_db_host": s.address,
            "order_db_port": s.pg_port,
            "order_db_name": DB_NAME,
            "order_db_user": DB_OWNER,
            "order_db_passfile": str(s.service_pgpass),
        }

    app: dict[str, Any] = {"children": {s.site: {"hosts": {s.host_name: host_vars(s)}} for s in plan.sites}}
    if intake_queue_url:
        app["vars"] = {
            "order_service_intake_queue_url": intake_queue_url,
            "order_service_intake_region": PRIMARY_REGION,
            "order_service_intake_endpoint_url": plan.moto_url,
        }
        if customer_topic_arn and pending is not None:
            app["vars"].update(
                order_service_customer_topic_arn=customer_topic_arn,
                order_service_pending_subject=pending[0],
                order_service_pending_body=pending[1],
            )
    return {"all": {"children": {"app": app}}}


def target(
    plan: LabPlan,
    *,
    ssh_user: str,
    pg_bin: Path,
    hosted_zone_id: str,
    kms_key_id: str,
    intake_queue_url: str,
    team_topic_arn: str,
    customer_topic_arn: str,
) -> Target:
    def site(s: SitePlan, region: str) -> Site:
        host = Host(
            name=s.host_name,
            address=s.address,
            ssh_port=s.ssh_port,
            ssh_user=ssh_user,
            ssh_key=plan.ssh_key,
            known_hosts=plan.known_hosts,
            base_dir=s.app_dir,
            service_port=s.service_port,
        )
        database = Database(
            address=s.address,
            port=s.pg_port,
            name=DB_NAME,
            user=DB_SUPERUSER,
            passfile=plan.pgpass,
            bin_dir=pg_bin,
            data_dir=s.pg_data,
        )
        return Site(name=s.site, region=region, hosts=(host,), database=database)

    return Target(
        name="lab",
        kind="lab",
        state_dir=plan.state_dir,
        inventory=plan.inventory_file,
        aws=AwsEndpoint(endpoint_url=plan.moto_url),
        primary=site(plan.primary, PRIMARY_REGION),
        standby=site(plan.standby, STANDBY_REGION),
        backup=BackupStores(
            local=BackupStore(bucket=LOCAL_BUCKET, region=PRIMARY_REGION),
            remote=BackupStore(bucket=REMOTE_BUCKET, region=STANDBY_REGION),
        ),
        keys=KeySource(kind="kms", kms_key_id=kms_key_id, region=PRIMARY_REGION),
        traffic=Traffic(
            hosted_zone_id=hosted_zone_id, record_name=SHOP_RECORD, front_door_url=plan.front_door_url
        ),
        intake_queue_url=intake_queue_url,
        team_topic_arn=team_topic_arn,
        customer_topic_arn=customer_topic_arn,
    )
