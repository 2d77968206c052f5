"""Network: the VPC and subnets the ALB and the tasks use.

Either passes through an existing VPC and its subnets (ids from config), or creates a small VPC: one public
subnet per AZ (ALB, and tasks when ``taskSubnets`` is ``public``) and, for private tasks, one private
subnet per AZ routed through NAT. Subnet CIDRs are computed here from the VPC CIDR, so the number of
subnets is known when the program runs and no resource is created inside ``apply``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import PROJECT, ConfigError, NetworkConfig


@dataclass(frozen=True)
class NetworkArgs:
    config: NetworkConfig
    name_prefix: str
    """Physical name prefix (``<appName>-<stack>``), used in Name tags."""


# DescribeAvailabilityZones lists the Local Zones and Wavelength Zones an account opted in to next to the
# standard AZs, and their names sort first (us-west-2-lax-1a < us-west-2a). A Local Zone supports neither NAT
# gateways nor every instance and ALB feature, so only standard AZs are used: the zone-type filter.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAvailabilityZones.html
STANDARD_ZONE_FILTER = aws.GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"])


def standard_zones(parent: pulumi.Resource, count: int) -> list[str]:
    """The first ``count`` standard AZs of the stack's region, or a config error naming how many it has.

    A synchronous lookup: the number of subnets must be known when the program runs (no resources inside
    ``apply``), and a region with too few AZs must stop the run before any subnet is registered.
    """
    found = aws.get_availability_zones(
        state="available", filters=[STANDARD_ZONE_FILTER], opts=pulumi.InvokeOptions(parent=parent)
    )
    names = sorted(found.names)
    if len(names) < count:
        raise ConfigError(
            [
                f"{PROJECT}:availabilityZones: {count}, but the region has {len(names)} standard Availability "
                f"Zones ({', '.join(names) or 'none'}); use at most {len(names)} (Local and Wavelength Zones "
                "are not used)"
            ]
        )
    return names[:count]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    task_subnet_ids: pulumi.Output[list[str]]
    assign_public_ip: bool
    """Whether tasks need a public IP (they run in public subnets, with no NAT)."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitlab-fargate:index:Network", name, None, opts)
        cfg = args.config
        self.assign_public_ip = cfg.task_subnets == "public"

        if cfg.vpc_id is not None:
            self.vpc_id = pulumi.Output.from_input(cfg.vpc_id)
            self.public_subnet_ids = pulumi.Output.from_input(list(cfg.public_subnet_ids))
            private = list(cfg.private_subnet_ids) if cfg.task_subnets == "private" else []
            self.task_subnet_ids = pulumi.Output.from_input(private or list(cfg.public_subnet_ids))
        else:
            self._create_vpc(name, args)

        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "task_subnet_ids": self.task_subnet_ids,
            }
        )

    def _create_vpc(self, name: str, args: NetworkArgs) -> None:
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        zones = standard_zones(self, cfg.az_count)
        block = ipaddress.ip_network(cfg.vpc_cidr)
        # Split the VPC into 8 equal blocks (up to 4 AZs x public/private): public subnets take the first
        # az_count, private ones the next. Eight, not more, so that the smallest allowed VPC (/24) still
        # gives /27 subnets, the smallest an ALB accepts (it needs 8 free addresses per subnet).
        blocks = [str(b) for b in block.subnets(prefixlen_diff=3)]

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cfg.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": args.name_prefix},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": args.name_prefix}, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{args.name_prefix}-public"},
            opts=child,
        )
        public_subnets: list[aws.ec2.Subnet] = []
        for i in range(cfg.az_count):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=blocks[i],
                availability_zone=zones[i],
                # Tasks in public subnets need a public IP to pull images; the ALB does not care.
                map_public_ip_on_launch=False,
                tags={"Name": f"{args.name_prefix}-public-{i}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child
            )
            public_subnets.append(subnet)

        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        if cfg.task_subnets == "public":
            self.task_subnet_ids = self.public_subnet_ids
            return

        nat_count = 1 if cfg.nat_gateways == "single" else cfg.az_count
        nats: list[aws.ec2.NatGateway] = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags={"Name": f"{args.name_prefix}-nat-{i}"}, opts=child)
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public_subnets[i].id,
                    tags={"Name": f"{args.name_prefix}-nat-{i}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )
        private_subnets: list[aws.ec2.Subnet] = []
        for i in range(cfg.az_count):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=blocks[cfg.az_count + i],
                availability_zone=zones[i],
                tags={"Name": f"{args.name_prefix}-private-{i}"},
                opts=child,
            )
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[i % nat_count].id)],
                tags={"Name": f"{args.name_prefix}-private-{i}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=subnet.id, route_table_id=route_table.id, opts=child
            )
            private_subnets.append(subnet)
        self.task_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
