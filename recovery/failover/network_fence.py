"""The cloud-level fence of a self-managed database on AWS: the security group rule that admits the order
service to the database, revoked when the old writer answers neither SQL nor SSH, and given back once
failback has rebuilt the site as a standby.

Before anything is revoked, the rule is written as a tag on the database's group and read back (the safe
copy): a failback, which is another run, gives back exactly the rule that was there (ports, description),
and a rerun after a kill finds the fence done. Revoking stops new connections from the service's hosts;
connections already open may live on until they close (security groups track them): a database that
answers nothing keeps none worth having, and the SQL and on-disk fences still apply if it comes back.
The controller reaches the database through its own rule (`adminCidrs`), which is left alone, so a
failback can still read what the old writer acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from recovery.drivers.aws import AwsDriver, aws_call
from recovery.errors import ExternalFailure, RecoveryError, first_line
from recovery.failover.platform import FenceMeans
from recovery.targets.model import NetworkFence, Site, Target

# The tag on the database's security group that keeps the revoked rule until failback gives it back.
FENCE_TAG = "order-recovery:fenced-ingress"
TAG_VALUE_LIMIT = 256  # EC2's limit on a tag value
MEANS = "security-group"


def admitting_rules(
    permissions: Iterable[Mapping[str, Any]], service_group: str, port: int
) -> list[dict[str, Any]]:
    """The ingress rules among `permissions` that admit `service_group` to `port`, each cut down to that
    one source (a rule that also admits other sources keeps admitting them). Pure."""
    found: list[dict[str, Any]] = []
    for permission in permissions:
        protocol = str(permission.get("IpProtocol"))
        if protocol not in ("tcp", "-1", "6"):
            continue
        ranged = protocol != "-1"
        if ranged and not int(permission.get("FromPort", 0)) <= port <= int(permission.get("ToPort", 65535)):
            continue
        for pair in permission.get("UserIdGroupPairs") or ():
            if pair.get("GroupId") != service_group:
                continue
            # The source as described (account, description): a revoke names the rule as it stands.
            source = {key: str(pair[key]) for key in ("GroupId", "UserId", "Description") if pair.get(key)}
            rule: dict[str, Any] = {"IpProtocol": protocol, "UserIdGroupPairs": [source]}
            if ranged:
                rule.update(FromPort=int(permission["FromPort"]), ToPort=int(permission["ToPort"]))
            found.append(rule)
    return found


def _group(aws: AwsDriver, site: Site, fence: NetworkFence) -> dict[str, Any]:
    ec2 = aws.client("ec2", site.region)
    described = aws_call(
        lambda: ec2.describe_security_groups(GroupIds=[fence.database_group_id]),
        "describe the database's security group",
        fence.database_group_id,
    )
    return dict((described or {"SecurityGroups": [{}]})["SecurityGroups"][0])


def _kept(group: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The rules the fence tag keeps, None when the group carries no such tag."""
    for tag in group.get("Tags") or ():
        if tag.get("Key") == FENCE_TAG:
            return list(json.loads(str(tag["Value"])))
    return None


def _admitted(group: Mapping[str, Any], site: Site, fence: NetworkFence) -> list[dict[str, Any]]:
    return admitting_rules(group.get("IpPermissions") or (), fence.service_group_id, site.database.port)


def revoke_service_ingress(target: Target, site: Site) -> FenceMeans:
    """Revoke the rule admitting the service to the site's database, its safe copy kept first; confirmed
    when a fresh describe of the group admits the service no more. Never raises: a fence that cannot be
    confirmed is reported (the failover goes on; a person reads why)."""
    fence = site.network_fence
    if fence is None:
        return FenceMeans(MEANS, False, f"the {site.name} site names no network_fence in the target")
    try:
        return _revoke(AwsDriver(target.aws), site, fence)
    except RecoveryError as exc:
        return FenceMeans(MEANS, False, first_line(exc))


def _revoke(aws: AwsDriver, site: Site, fence: NetworkFence) -> FenceMeans:
    ec2 = aws.client("ec2", site.region)
    group_id, port = fence.database_group_id, site.database.port
    rules = _admitted(_group(aws, site, fence), site, fence)
    if rules:
        kept = json.dumps(rules, separators=(",", ":"), sort_keys=True)
        if len(kept) > TAG_VALUE_LIMIT:
            return FenceMeans(
                MEANS,
                False,
                f"{group_id}'s rules admitting {fence.service_group_id} are too long to keep as a tag; "
                "nothing was revoked: revoke them by hand after noting them",
            )
        aws_call(
            lambda: ec2.create_tags(Resources=[group_id], Tags=[{"Key": FENCE_TAG, "Value": kept}]),
            "keep the rule to revoke as a tag",
            group_id,
        )
        if _kept(_group(aws, site, fence)) != rules:
            return FenceMeans(
                MEANS, False, f"the copy of {group_id}'s rule did not read back; nothing revoked"
            )
        aws_call(
            lambda: ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=rules),
            "revoke the service's ingress",
            group_id,
        )
    if _admitted(_group(aws, site, fence), site, fence):
        return FenceMeans(MEANS, False, f"{group_id} still admits {fence.service_group_id} to port {port}")
    return FenceMeans(
        MEANS,
        True,
        f"{group_id} no longer admits {fence.service_group_id} to port {port} (the rule is kept in its "
        f"tag {FENCE_TAG} until failback)",
    )


def restore_service_ingress(target: Target, site: Site) -> str | None:
    """Give back the rule the fence revoked (from the group's tag), confirmed from a fresh describe, then
    drop the tag. None when there is nothing to give back (no network fence, or never revoked)."""
    fence = site.network_fence
    if fence is None:
        return None
    aws = AwsDriver(target.aws)
    kept = _kept(_group(aws, site, fence))
    if kept is None:
        return None
    ec2, group_id = aws.client("ec2", site.region), fence.database_group_id
    aws_call(
        lambda: ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=kept),
        "give the service its ingress back",
        group_id,
        absent=frozenset({"InvalidPermission.Duplicate"}),  # given back by an interrupted attempt
    )
    if not _admitted(_group(aws, site, fence), site, fence):
        raise ExternalFailure(
            f"{group_id} does not admit {fence.service_group_id} after the rule was given back; add it by "
            f"hand from the tag {FENCE_TAG}, then resume this run"
        )
    aws_call(
        lambda: ec2.delete_tags(Resources=[group_id], Tags=[{"Key": FENCE_TAG}]),
        "drop the fence's tag",
        group_id,
    )
    return f"{group_id} admits {fence.service_group_id} to port {site.database.port} again"
