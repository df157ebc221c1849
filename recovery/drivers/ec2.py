"""EC2: the running instances that carry a set of tags (the order hosts of an auto scaling group)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from recovery.drivers.aws import AwsDriver, aws_call


@dataclass(frozen=True)
class Instance:
    instance_id: str
    private_ip: str


def running_instances(aws: AwsDriver, region: str, tags: Mapping[str, str]) -> list[Instance]:
    """Running instances in `region` carrying every tag in `tags`, by instance id."""
    ec2 = aws.client("ec2", region)
    filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
    filters.append({"Name": "instance-state-name", "Values": ["running"]})
    found: list[Instance] = []
    pages = aws_call(
        lambda: list(ec2.get_paginator("describe_instances").paginate(Filters=filters)),
        "list the running instances",
        f"EC2 in {region}",
    )
    for page in pages or ():
        for reservation in page.get("Reservations", ()):
            for raw in reservation.get("Instances", ()):
                if raw.get("PrivateIpAddress"):
                    found.append(Instance(str(raw["InstanceId"]), str(raw["PrivateIpAddress"])))
    return sorted(found, key=lambda instance: instance.instance_id)
