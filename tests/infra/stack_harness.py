"""Run the real Pulumi entry point (infra/__main__.py) offline under Pulumi's mocks, once per stack.

The config comes from the shipped Pulumi.primary.yaml and Pulumi.standby.yaml. The primary runs first; its
resolved outputs answer the standby's StackReference, as the real backend would. A capturing monitor keeps
every registration with its inputs (camelCase, as the engine and the policy pack see them), parent,
provider, its dependencies (every resource it waits for: ordering) and property dependencies, so tests
and the policy validators read the same thing.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
PROJECT = "order-recovery"
ACCOUNT = "123456789012"

if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))


@dataclass
class Registered:
    """One resource as the engine saw it."""

    typ: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    parent: str
    provider: str
    protect: bool
    property_dependencies: dict[str, tuple[str, ...]]
    # Every URN the resource waits for, as the engine orders them: explicit depends_on and the resources
    # behind its inputs.
    dependencies: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()

    def waits_for(self, other: Registered) -> bool:
        return other.urn in self.dependencies


@dataclass
class StackRun:
    stack: str
    resources: list[Registered] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    # What each component registered with register_outputs, by URN (resolved values).
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name_part: str = "") -> Registered:
        found = [r for r in self.of_type(typ) if name_part in r.name]
        assert len(found) == 1, (
            f"expected one {typ} named like {name_part!r}, found {[r.name for r in found]}"
        )
        return found[0]

    def by_urn(self, urn: str) -> Registered:
        return next(r for r in self.resources if r.urn == urn)

    def region_of(self, resource: Registered) -> str:
        """The region of the explicit provider a resource (or its nearest ancestor) was given."""
        provider_urn = resource.provider.split("::")
        if len(provider_urn) < 2:
            raise AssertionError(f"{resource.name} has no explicit provider")
        urn = "::".join(provider_urn[:-1])
        return str(self.by_urn(urn).inputs["region"])


class _Cloud(pulumi_mocks.Mocks):
    """Answers like AWS would with the computed outputs the program reads (ids, ARNs, names)."""

    def __init__(self, run: StackRun, stack_outputs: dict[str, dict[str, Any]]) -> None:
        self.run = run
        self.stack_outputs = stack_outputs
        self.provider_regions: dict[str, str] = {}

    def _region(self, provider: str) -> str:
        return self.provider_regions.get(provider.split("::")[-1], "us-east-1")

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        typ, name = args.typ, args.name
        if typ == "pulumi:providers:aws":
            rid = f"{name}-provider-id"
            self.provider_regions[rid] = str(inputs.get("region", "unknown"))
            return rid, inputs
        if typ == "pulumi:pulumi:StackReference":
            stack_name = inputs["name"]
            if stack_name not in self.stack_outputs:
                raise AssertionError(f"no outputs recorded for referenced stack {stack_name}")
            return stack_name, {**inputs, "outputs": self.stack_outputs[stack_name], "secretOutputNames": []}
        region = self._region(args.provider)
        rid = f"{name}-id"
        service = typ.split(":")[1].split("/")[0]
        state: dict[str, Any] = {**inputs, "arn": f"arn:aws:{service}:{region}:{ACCOUNT}:{name}"}
        if typ == "aws:s3/bucket:Bucket":
            rid = f"{inputs.get('bucketPrefix', '')}{name}"
            state.update(bucket=rid, arn=f"arn:aws:s3:::{rid}")
        elif typ in ("aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey"):
            rid = "mrk-0123456789abcdef0123456789abcdef"
            state.update(keyId=rid, arn=f"arn:aws:kms:{region}:{ACCOUNT}:key/{rid}")
        elif typ == "aws:rds/instance:Instance":
            ident = inputs.get("identifier", name)
            rid = ident
            state.update(
                address=f"{ident}.cabc123.{region}.rds.amazonaws.com",
                port=5432,
                arn=f"arn:aws:rds:{region}:{ACCOUNT}:db:{ident}",
                resourceId=f"db-{ident.upper().replace('-', '')}",
            )
            if inputs.get("manageMasterUserPassword"):
                secret = f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:rds!db-{ident}-AbCdEf"
                state["masterUserSecrets"] = [{"secretArn": secret, "secretStatus": "active"}]
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
        elif typ == "aws:dynamodb/tableReplica:TableReplica":
            table = inputs["globalTableArn"].rsplit("/", 1)[1]
            state["arn"] = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}"
        elif typ == "aws:iam/serviceLinkedRole:ServiceLinkedRole":
            service = inputs["awsServiceName"]
            state["arn"] = (
                f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/{service}/AWSServiceRoleForAutoScaling"
            )
        elif typ == "aws:dynamodb/table:Table":
            state.update(name=name, arn=f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}")
        elif typ == "aws:sqs/queue:Queue":
            state.update(
                url=f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{name}",
                arn=f"arn:aws:sqs:{region}:{ACCOUNT}:{name}",
            )
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            state.update(
                dnsName=f"{name}-1234.{region}.elb.amazonaws.com",
                zoneId="Z35SXDOTRQ7X7K",
                arnSuffix=f"app/{name}/0123456789abcdef",
                # An ELB ARN names the service `elasticloadbalancing`, not the type's module `lb`.
                arn=f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:loadbalancer/app/{name}/0123456789abcdef",
            )
        elif typ == "aws:lb/targetGroup:TargetGroup":
            state.update(arnSuffix=f"targetgroup/{name}/0123456789abcdef")
        elif typ == "aws:acm/certificate:Certificate":
            state["domainValidationOptions"] = [
                {
                    "domainName": inputs["domainName"],
                    "resourceRecordName": f"_x1.{inputs['domainName']}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": "_x2.acm-validations.aws.",
                }
            ]
        elif typ == "aws:acm/certificateValidation:CertificateValidation":
            state["certificateArn"] = inputs["certificateArn"]
        elif typ == "aws:route53/record:Record":
            state["fqdn"] = inputs["name"]
        elif typ in ("aws:autoscaling/group:Group", "aws:iam/role:Role"):
            state["name"] = name
        return rid, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.run.calls.append(args.token)
        raise AssertionError(f"unexpected invoke {args.token}")


class _CapturingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: _Cloud) -> None:
        super().__init__(mocks)
        self.cloud = mocks

    def ReadResource(self, request: Any) -> Any:
        # A StackReference is read, not registered.
        response = super().ReadResource(request)
        registration = self.resources[response.urn]
        self.cloud.run.resources.append(
            Registered(
                typ=request.type,
                name=request.name,
                urn=response.urn,
                id=registration.id or "",
                inputs=rpc.deserialize_properties(request.properties),
                state=dict(registration.state),
                parent=request.parent,
                provider=request.provider,
                protect=False,
                property_dependencies={},
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.cloud.run.component_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        registration = self.resources[response.urn]
        self.cloud.run.resources.append(
            Registered(
                typ=request.type,
                name=request.name,
                urn=response.urn,
                id=registration.id or "",
                inputs=rpc.deserialize_properties(request.object),
                state=dict(registration.state),
                parent=request.parent,
                provider=request.provider,
                protect=bool(getattr(request, "protect", False)),
                property_dependencies={
                    key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
                },
                dependencies=tuple(request.dependencies),
                ignore_changes=tuple(request.ignoreChanges),
            )
        )
        return response


def stack_config(stack: str) -> dict[str, str]:
    """The stack file's config as the engine hands it to the program: objects as JSON strings."""
    doc = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in doc["config"].items()
    }


def changed_config(config: dict[str, str], section: str, **changes: Any) -> dict[str, str]:
    """A copy of a stack's config with keys of one object section (camelCase) changed."""
    key = f"{PROJECT}:{section}"
    values = json.loads(config[key])
    values.update(changes)
    return {**config, key: json.dumps(values)}


def run_stack(stack: str, config: dict[str, str], stack_outputs: dict[str, dict[str, Any]]) -> StackRun:
    """Run infra/__main__.py under mocks and return what it registered and exported."""
    return run_under_mocks(
        stack, config, stack_outputs, lambda: runpy.run_path(str(INFRA), run_name="__main__")
    )


def run_under_mocks(
    stack: str,
    config: dict[str, str],
    stack_outputs: dict[str, dict[str, Any]],
    body: Callable[[], object],
) -> StackRun:
    """Run a program body under mocks inside `@pulumi.runtime.test`, so every registration completes."""
    run = StackRun(stack=stack)
    # Pulumi's runtime needs a current event loop (set_mocks already registers the root stack); earlier
    # tests may have left this thread without one.
    policy = asyncio.get_event_loop_policy()
    try:
        previous: asyncio.AbstractEventLoop | None = policy.get_event_loop()
    except RuntimeError:
        previous = None
    loop = asyncio.new_event_loop()
    policy.set_event_loop(loop)
    cloud = _Cloud(run, stack_outputs)
    settings.ROOT.set(None)  # each stack gets its own root Stack resource
    pulumi.runtime.set_mocks(
        cloud, project=PROJECT, stack=stack, preview=False, monitor=_CapturingMonitor(cloud)
    )
    pulumi.runtime.set_all_config(config)

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        body()
        root = settings.get_root_resource()
        assert root is not None
        exported = dict(root.outputs)  # type: ignore[attr-defined]
        return pulumi.Output.all(**exported).apply(run.outputs.update)

    try:
        program()
    finally:
        policy.set_event_loop(previous)
        loop.close()
    return run
