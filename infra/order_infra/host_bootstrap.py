"""The user data that boots a new order host into the service, by running the same Ansible role.

The roles in playbooks/ are the one description of what a host needs; a host launched by the auto scaling
group therefore installs Python and ansible-core, fetches the playbooks and the release named in
`releases/current` from its site's bucket, writes the service database's passfile from Secrets Manager, and
runs the deploy playbook against itself with the systemd supervisor. Publishing a release (its tarball and
the playbooks under `releases/<version>/`, then `releases/current`) is a deploy step (docs/deploy.md); a
new template version rolls out through the group's instance refresh.

`host_user_data` is a pure function of plain values, so tests read the script and check it with `bash -n`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

BASE_DIR = "/srv/orderservice"
PASSFILE = "/etc/orderservice/pgpass"
SERVICE_ACCOUNT = "orderservice"


@dataclass(frozen=True)
class HostBootstrap:
    site: str
    region: str
    bucket_name: str
    releases_prefix: str
    default_release: str
    service_port: int
    db_address: str
    db_port: int
    db_name: str
    db_user: str
    service_secret_arn: str
    intake_queue_url: str


def host_user_data(spec: HostBootstrap) -> str:
    """A bash script for cloud-init: idempotent, fails loudly (the host then fails its health check)."""
    q = shlex.quote
    bucket = f"s3://{spec.bucket_name}/{spec.releases_prefix}"
    extra_vars = " ".join(
        f"-e {q(f'{key}={value}')}"
        for key, value in (
            ("order_site", spec.site),
            ("order_service_supervisor", "systemd"),
            ("order_service_base_dir", BASE_DIR),
            # The load balancer reaches the service over the VPC, not loopback.
            ("order_service_listen", "0.0.0.0"),  # noqa: S104 - the security group admits only the lb
            ("order_service_port", spec.service_port),
            ("order_db_host", spec.db_address),
            ("order_db_port", spec.db_port),
            ("order_db_name", spec.db_name),
            ("order_db_user", spec.db_user),
            ("order_db_passfile", PASSFILE),
            # Migrations run from the controller's deploy, never from a host that boots on its own.
            ("order_service_run_migrations", "false"),
            # Degraded mode: orders the database cannot take go to the site's intake queue.
            ("order_service_intake_queue_url", spec.intake_queue_url),
            ("order_service_intake_region", spec.region),
            ("order_service_install_packages", "true"),
        )
    )
    return f"""#!/bin/bash
# Boot this host into the order service ({spec.site} site) with the order_service Ansible role.
set -euo pipefail
exec > >(tee -a /var/log/orderservice-bootstrap.log) 2>&1
export AWS_DEFAULT_REGION={q(spec.region)}
dnf install -y -q python3 python3-psycopg2 python3-boto3 ansible-core tar gzip
id {SERVICE_ACCOUNT} >/dev/null 2>&1 ||
  useradd --system --home-dir {BASE_DIR} --shell /sbin/nologin {SERVICE_ACCOUNT}
work=$(mktemp -d)
# releases/current names the release deployed last; before the first deploy, the stack's default.
release=$(aws s3 cp {q(bucket + "current")} - 2>/dev/null | tr -d '[:space:]' || true)
[ -n "$release" ] || release={q(spec.default_release)}
aws s3 cp {q(bucket)}"$release/order-service.tar.gz" "$work/release.tar.gz"
aws s3 cp {q(bucket)}"$release/playbooks.tar.gz" "$work/playbooks.tar.gz"
tar -xzf "$work/playbooks.tar.gz" -C "$work"
install -d -m 0750 -o root -g {SERVICE_ACCOUNT} /etc/orderservice
password=$(aws secretsmanager get-secret-value --secret-id {q(spec.service_secret_arn)} \\
  --query SecretString --output text)
umask 077
printf '%s:%s:%s:%s:%s\\n' {q(spec.db_address)} {spec.db_port} {q(spec.db_name)} {q(spec.db_user)} \\
  "$password" > {PASSFILE}
unset password
chown {SERVICE_ACCOUNT}:{SERVICE_ACCOUNT} {PASSFILE}
ansible-playbook -c local -i 'app,' -e ansible_host=127.0.0.1 \\
  -e ansible_python_interpreter=/usr/bin/python3 "$work/playbooks/deploy.yml" \\
  -e "order_service_release=$release" -e "order_service_artifact=$work/release.tar.gz" {extra_vars}
rm -rf "$work"
"""
