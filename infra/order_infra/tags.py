"""The tags every taggable resource carries; the policy pack requires the same keys."""

from __future__ import annotations

from order_infra.config import PROJECT, StackConfig

REQUIRED_TAG_KEYS = ("project", "site", "owner", "cost-center", "managed-by")


def base_tags(config: StackConfig) -> dict[str, str]:
    return {
        "project": PROJECT,
        "site": config.site,
        "owner": config.owner,
        "cost-center": config.cost_center,
        "managed-by": "pulumi",
    }


def with_name(tags: dict[str, str], name: str, **extra: str) -> dict[str, str]:
    """Base tags plus a Name (shown in the AWS console) and any resource-specific tags."""
    return {**tags, "Name": name, **extra}
