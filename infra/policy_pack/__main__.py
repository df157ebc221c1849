"""Entry point of the policy pack: `pulumi preview --policy-pack infra/policy_pack`.

PolicyPack(...) starts the analyzer's gRPC server and blocks, so it is only built when the engine runs this
file; the guardrails themselves live in guardrails.py as plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from guardrails import RESOURCE_GUARDRAILS, StackResource, buckets_protected
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

DESCRIPTIONS = {
    "encryption-at-rest": "Databases, queues, topics, tables, volumes, buckets, keys: encrypted at rest.",
    "no-public-buckets": "No bucket ACL, bucket policy or public access block opens a bucket to everyone.",
    "database-deletion-protection": "Databases and the lock table have deletion protection.",
    "required-tags": "Every taggable resource carries the project's required tags.",
}


def _resource_policy(
    name: str, check: Callable[[str, Mapping[str, Any]], list[str]]
) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=DESCRIPTIONS[name], validate=validate)


def _validate_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = [
        StackResource(
            resource_type=r.resource_type,
            urn=r.urn,
            props=r.props,
            property_dependencies={
                k: tuple(d.urn for d in deps) for k, deps in r.property_dependencies.items()
            },
        )
        for r in args.resources
    ]
    for violation in buckets_protected(resources):
        report_violation(violation.message, violation.urn)


if __name__ == "__main__":
    PolicyPack(
        name="order-recovery-guardrails",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=[
            *(_resource_policy(name, check) for name, check in RESOURCE_GUARDRAILS.items()),
            StackValidationPolicy(
                name="buckets-protected",
                description="Buckets are SSE-KMS encrypted and blocked from public access; backup buckets "
                "are versioned with a default object lock retention.",
                validate=_validate_stack,
            ),
        ],
    )
