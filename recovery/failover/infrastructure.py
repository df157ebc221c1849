"""The fence below the database and its host: what a target's infrastructure can do to a site that
answers neither SQL nor SSH, so that it refuses writes if it ever starts again by itself.

On a real AWS target that is a network-level action through the cloud API: when the site names its
`network_fence`, the security group rule admitting the order service to the database is revoked
(network_fence.py); otherwise the fence is reported as not confirmed with what a person must do. In the lab
the sites' hosts are directories of the controller's own machine, as an instance's volume is reachable
through the cloud API: the same on-disk fence the SSH path writes is written there directly, as the
owner of the data directory.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess

from recovery.failover.network_fence import revoke_service_ingress
from recovery.failover.platform import FenceMeans
from recovery.failover.selfmanaged import HOSTOPS, db_host
from recovery.targets.model import Site, Target


def fence_infrastructure(target: Target, site: Site, role: str) -> FenceMeans:
    if site.network_fence is not None:
        return revoke_service_ingress(target, site)
    if target.kind != "lab":
        return FenceMeans(
            "cloud",
            False,
            f"no cloud-level fence is configured for the {site.name} site (name its network_fence in the "
            "target): stop its instances or revoke its database port in its security groups before it "
            "can return",
        )
    database = site.database
    if database.data_dir is None or database.bin_dir is None or not database.data_dir.is_dir():
        return FenceMeans("lab-disk", False, f"the {site.name} site's data directory is not on this machine")
    owner = database.data_dir.stat()
    args = {"role": role, "data_dir": str(database.data_dir), "bin_dir": str(database.bin_dir)}
    encoded = base64.b64encode(json.dumps(args).encode()).decode()
    # As root, act as the data directory's owner (PostgreSQL's files must stay its own).
    switch = os.geteuid() == 0 and owner.st_uid != 0
    # The script's text travels in the command, as over SSH: the data directory's owner may not be able to
    # read the controller's checkout (a clone in a private home directory).
    done = subprocess.run(
        [db_host(site).python, "-c", HOSTOPS.read_text(), "fence", encoded],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=str(database.data_dir.parent),
        user=owner.st_uid if switch else None,
        group=owner.st_gid if switch else None,
    )
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return FenceMeans("lab-disk", False, f"writing the fence failed: {why}")
    detail = json.loads(done.stdout.strip().splitlines()[-1]).get("detail", "fenced on disk")
    return FenceMeans("lab-disk", True, str(detail))
