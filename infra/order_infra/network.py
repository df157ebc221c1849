"""The network of one site: a VPC with a public and a private subnet per availability zone.

Load balancers live in the public subnets; hosts and the database in the private ones. Each zone has its
own NAT gateway so losing one zone does not cut the hosts of the other off from AWS APIs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from order_infra.config import NetworkConfig
from order_infra.tags import with_name


@dataclass(frozen=True)
class NetworkArgs:
    network: NetworkConfig
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("order-recovery:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        net = args.network
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=net.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=with_name(args.tags, f"{name}-vpc"),
            opts=child,
        )
        vpc_child = pulumi.ResourceOptions(parent=vpc)
        gateway = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=with_name(args.tags, f"{name}-igw"), opts=vpc_child
        )
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            tags=with_name(args.tags, f"{name}-public-rt", tier="public"),
            opts=vpc_child,
        )
        self.public_subnet_ids = []
        self.private_subnet_ids = []
        for index, zone in enumerate(net.availability_zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=vpc.id,
                cidr_block=net.public_subnet_cidrs[index],
                availability_zone=zone,
                # Nothing launched here gets a public address by accident; the load balancer has its own.
                map_public_ip_on_launch=False,
                tags=with_name(args.tags, f"{name}-public-{zone}", tier="public"),
                opts=vpc_child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-rta",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=vpc_child,
            )
            nat_address = aws.ec2.Eip(
                f"{name}-nat-{index}-eip",
                domain="vpc",
                tags=with_name(args.tags, f"{name}-nat-{zone}"),
                opts=vpc_child,
            )
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{index}",
                subnet_id=public.id,
                allocation_id=nat_address.id,
                tags=with_name(args.tags, f"{name}-nat-{zone}"),
                opts=pulumi.ResourceOptions(parent=vpc, depends_on=[gateway]),
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=net.private_subnet_cidrs[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags=with_name(args.tags, f"{name}-private-{zone}", tier="private"),
                opts=vpc_child,
            )
            private_routes = aws.ec2.RouteTable(
                f"{name}-private-{index}-rt",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags=with_name(args.tags, f"{name}-private-{zone}-rt", tier="private"),
                opts=vpc_child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rta",
                subnet_id=private.id,
                route_table_id=private_routes.id,
                opts=vpc_child,
            )
            self.public_subnet_ids.append(public.id)
            self.private_subnet_ids.append(private.id)
        self.vpc_id = vpc.id
        self.register_outputs({"vpcId": self.vpc_id})
