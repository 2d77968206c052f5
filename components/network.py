"""Network: the VPC and subnets the ALB and the tasks use.

Either passes through an existing VPC and its subnets (ids from config), or creates a small VPC: one public
subnet per AZ (ALB, and tasks when ``taskSubnets`` is ``public``) and, for private tasks, one private
subnet per AZ routed through NAT. Subnet CIDRs are computed here from the VPC CIDR, so the number of
subnets is known when the program runs and no resource is created inside ``apply``.

A created VPC also gets what the AWS Foundational Security Best Practices ask of a VPC: its default security
group adopted with no rules (EC2.2), its default network ACL adopted with only the entries the product needs
(EC2.21, ``components/network_acl.py``), and flow logs of rejected traffic (EC2.6, ``flowLogs``). An existing
VPC is left as its owner configured it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import pulumi
import pulumi_aws as aws
from pydantic import BeforeValidator, Field, model_validator

from components import iam, logs, network_acl
from components.base import PROJECT, Component, StackContext
from components.config_types import (
    ConfigError,
    ConfigModel,
    Flag,
    Integer,
    Matches,
    Range,
    Text,
    as_str_list,
    no_duplicates,
    problems_if,
)

TaskSubnets = Literal["public", "private"]
NatGateways = Literal["single", "per-az"]

VpcId = Annotated[Text, Matches(r"vpc-[0-9a-f]{8,17}", "a VPC id", "vpc-0123456789abcdef0")]
SubnetId = Annotated[Text, Matches(r"subnet-[0-9a-f]{8,17}", "a subnet id", "subnet-0123456789abcdef0")]
SubnetIds = Annotated[tuple[SubnetId, ...], BeforeValidator(as_str_list), no_duplicates("a subnet")]


class NetworkConfig(ConfigModel):
    """Where the ALB and the tasks live: an existing VPC (by id) or a small VPC the stack creates."""

    vpc_id: VpcId | None = Field(None, description="existing VPC id; unset creates a VPC")
    public_subnet_ids: SubnetIds = Field(
        (), description="with `vpcId`: at least two public subnets in different AZs, for the ALB"
    )
    private_subnet_ids: SubnetIds = Field((), description="with `vpcId` and `taskSubnets: private`: the tasks' subnets")
    vpc_cidr: str = Field("10.0.0.0/16", description="CIDR of the created VPC (/16 to /24)")
    availability_zones: Annotated[Integer, Range(2, 4)] = Field(
        2,
        description="number of AZs of the created VPC (at most the region's standard AZs; Local Zones are never used)",
    )
    task_subnets: TaskSubnets = Field(
        "public", description="where tasks run: `public` (public IP, no NAT cost) or `private` (behind NAT)"
    )
    nat_gateways: NatGateways = Field(
        "single",
        description="created VPC with private tasks: `single` NAT gateway or `per-az` (survives an AZ outage)",
    )
    flow_logs: Flag = Field(
        True,
        description="created VPC: flow logs of rejected traffic to a log group kept `logRetentionDays` (FSBP EC2.6)",
    )

    @property
    def creates_vpc(self) -> bool:
        return self.vpc_id is None

    @model_validator(mode="after")
    def _fits_together(self) -> NetworkConfig:
        given = self.model_fields_set
        if self.vpc_id is not None:
            problems_if(
                (
                    len(self.public_subnet_ids) < 2,
                    "publicSubnetIds",
                    "with vpcId set, list at least two public subnets in different AZs (an ALB needs two)",
                ),
                (
                    self.task_subnets == "private" and len(self.private_subnet_ids) < 2,
                    "privateSubnetIds",
                    "with vpcId set and taskSubnets 'private', list at least two private subnets",
                ),
                *[
                    (field in given, key, "applies only to a created VPC; remove it or unset vpcId")
                    for field, key in (
                        ("vpc_cidr", "vpcCidr"),
                        ("availability_zones", "availabilityZones"),
                        ("nat_gateways", "natGateways"),
                        ("flow_logs", "flowLogs"),
                    )
                ],
            )
            return self
        problems_if(
            *[
                (field in given, key, "needs vpcId: subnets can only be given with an existing VPC")
                for field, key in (("public_subnet_ids", "publicSubnetIds"), ("private_subnet_ids", "privateSubnetIds"))
            ],
            (_cidr_problem(self.vpc_cidr) is not None, "vpcCidr", _cidr_problem(self.vpc_cidr) or ""),
            (
                "nat_gateways" in given and self.task_subnets != "private",
                "natGateways",
                "applies only with taskSubnets 'private'",
            ),
        )
        return self


def _cidr_problem(cidr: str) -> str | None:
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        return f"{cidr!r} is not a CIDR block (like 10.0.0.0/16)"
    if net.version != 4 or not 16 <= net.prefixlen <= 24:
        return f"{cidr!r}: use an IPv4 block from /16 to /24"
    return None


@dataclass(frozen=True)
class NetworkArgs:
    config: NetworkConfig
    context: StackContext
    """Names (``Name`` tags, the flow logs' log group and role) and the flow logs' retention."""
    public_ports: tuple[int, ...]
    """TCP ports clients on the internet reach (the load balancer's listeners): a created VPC's network ACL lets
    them in."""


@dataclass(frozen=True)
class Subnets:
    """Where the load balancer and the tasks go, as FargateService takes them."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    """Subnets of the ALB (two or more AZs)."""
    task_subnet_ids: pulumi.Output[list[str]]
    assign_public_ip: bool
    """Whether tasks need a public IP (they run in public subnets, with no NAT)."""


# DescribeAvailabilityZones lists the Local Zones and Wavelength Zones an account opted in to next to the
# standard AZs, and their names sort first (us-west-2-lax-1a < us-west-2a). A Local Zone supports neither NAT
# gateways nor every instance and ALB feature, so only standard AZs are used: the zone-type filter.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAvailabilityZones.html
STANDARD_ZONE_FILTER = aws.GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"])


class NetworkZonesError(ConfigError):
    """The region has fewer standard AZs than ``availabilityZones`` asks for: found when the region answers."""

    def __init__(self, count: int, names: list[str]) -> None:
        super().__init__(
            [
                f"{PROJECT}:availabilityZones: {count}, but the region has {len(names)} standard Availability Zones "
                f"({', '.join(names) or 'none'}); use at most {len(names)} (Local and Wavelength Zones are not used)"
            ]
        )


def standard_zones(parent: pulumi.Resource, count: int) -> list[str]:
    """The first ``count`` standard AZs of the stack's region, or an error naming how many it has.

    A synchronous lookup: the number of subnets must be known when the program runs (no resources inside
    ``apply``), and a region with too few AZs must stop the run before any subnet is registered.
    """
    found = aws.get_availability_zones(
        state="available", filters=[STANDARD_ZONE_FILTER], opts=pulumi.InvokeOptions(parent=parent)
    )
    names = sorted(found.names)
    if len(names) < count:
        raise NetworkZonesError(count, names)
    return names[:count]


FLOW_LOGS_SERVICE = "vpc-flow-logs.amazonaws.com"
FLOW_LOG_TRAFFIC = "REJECT"


def publish_flow_logs(log_group_arn: pulumi.Input[str]) -> dict[str, Any]:
    """What VPC Flow Logs does with its role: create its streams in the stack's log group (the group exists, so no
    ``logs:CreateLogGroup``), describe them, and put the records. The log-group ARN as IAM sees it for
    ``DescribeLogStreams``, and with ``:*`` for the streams.
    https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html"""
    return iam.allow(
        ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
        [log_group_arn, pulumi.Output.concat(log_group_arn, ":*")],
        sid="WriteFlowLogs",
    )


_AclBlock = TypeVar("_AclBlock", aws.ec2.DefaultNetworkAclIngressArgs, aws.ec2.DefaultNetworkAclEgressArgs)


def _acl_blocks(block: type[_AclBlock], entries: Sequence[network_acl.AclEntry]) -> list[_AclBlock]:
    """ACL entries, numbered in order, as the provider's ingress or egress blocks."""
    return [
        block(
            action="allow",
            rule_no=number,
            protocol=entry.protocol,
            cidr_block=entry.cidr_block,
            from_port=entry.from_port,
            to_port=entry.to_port,
            icmp_type=entry.icmp_type,
            icmp_code=entry.icmp_code,
        )
        for number, entry in network_acl.numbered(entries)
    ]


class Network(Component):
    subnets: Subnets

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        cfg = args.config
        if cfg.vpc_id is not None:
            private = list(cfg.private_subnet_ids) if cfg.task_subnets == "private" else []
            self.subnets = Subnets(
                vpc_id=pulumi.Output.from_input(cfg.vpc_id),
                public_subnet_ids=pulumi.Output.from_input(list(cfg.public_subnet_ids)),
                task_subnet_ids=pulumi.Output.from_input(private or list(cfg.public_subnet_ids)),
                assign_public_ip=cfg.task_subnets == "public",
            )
        else:
            self.subnets = self._create_vpc(name, args)
        self.register_outputs(
            {
                "vpc_id": self.subnets.vpc_id,
                "public_subnet_ids": self.subnets.public_subnet_ids,
                "task_subnet_ids": self.subnets.task_subnet_ids,
            }
        )

    def _create_vpc(self, name: str, args: NetworkArgs) -> Subnets:
        cfg, prefix = args.config, args.context.name_prefix
        zones = standard_zones(self, cfg.availability_zones)
        # Split the VPC into 8 equal blocks (up to 4 AZs x public/private): public subnets take the first
        # az_count, private ones the next. Eight, not more, so that the smallest allowed VPC (/24) still
        # gives /27 subnets, the smallest an ALB accepts (it needs 8 free addresses per subnet).
        blocks = [str(b) for b in ipaddress.ip_network(cfg.vpc_cidr).subnets(prefixlen_diff=3)]
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cfg.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": prefix},
            opts=self.child(),
        )
        # FSBP EC2.2: the default security group keeps no rules (AWS gives it inbound from itself and everything
        # out); nothing of the stack uses it. Adopting it removes its rules; these empty lists keep it so.
        # https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-2
        # https://www.pulumi.com/registry/packages/aws/api-docs/ec2/defaultsecuritygroup/
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags={"Name": f"{prefix}-default"},
            opts=self.child(),
        )
        if cfg.flow_logs:
            self._flow_logs(name, args.context, vpc)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": prefix}, opts=self.child())
        public_route = aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)
        public_rt = self._route_table(f"{name}-public", vpc, public_route, f"{prefix}-public")
        public = [
            self._subnet(f"{name}-public-{i}", vpc, blocks[i], zones[i], public_rt, f"{prefix}-public-{i}", public=True)
            for i in range(cfg.availability_zones)
        ]
        public_ids = pulumi.Output.all(*[s.id for s in public])
        if cfg.task_subnets == "public":
            self._network_acl(name, args, vpc, public)
            return Subnets(vpc.id, public_ids, public_ids, assign_public_ip=True)
        nats = self._nat_gateways(name, prefix, public, igw, 1 if cfg.nat_gateways == "single" else len(public))
        private = []
        for i in range(cfg.availability_zones):
            route = aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[i % len(nats)].id)
            table = self._route_table(f"{name}-private-{i}", vpc, route, f"{prefix}-private-{i}")
            block = blocks[cfg.availability_zones + i]
            private.append(self._subnet(f"{name}-private-{i}", vpc, block, zones[i], table, f"{prefix}-private-{i}"))
        self._network_acl(name, args, vpc, public + private)
        return Subnets(vpc.id, public_ids, pulumi.Output.all(*[s.id for s in private]), assign_public_ip=False)

    def _network_acl(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, subnets: list[aws.ec2.Subnet]) -> None:
        """FSBP EC2.21: the default network ACL, which every subnet uses, with only what the product needs
        (``components/network_acl.py``) instead of AWS's allow-everything. Adopting it first removes AWS's entries:
        on a stack deployed before this change, traffic stops for the seconds the first ``pulumi up`` takes to
        write these.
        https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-21
        https://www.pulumi.com/registry/packages/aws/api-docs/ec2/defaultnetworkacl/"""
        aws.ec2.DefaultNetworkAcl(
            f"{name}-default-acl",
            default_network_acl_id=vpc.default_network_acl_id,
            # Subnets associated with no other ACL use this one; listing them all keeps previews free of diffs.
            subnet_ids=[s.id for s in subnets],
            ingress=_acl_blocks(
                aws.ec2.DefaultNetworkAclIngressArgs,
                network_acl.inbound(args.config.vpc_cidr, args.public_ports),
            ),
            egress=_acl_blocks(aws.ec2.DefaultNetworkAclEgressArgs, network_acl.outbound()),
            tags={"Name": f"{args.context.name_prefix}-default"},
            opts=self.child(),
        )

    def _flow_logs(self, name: str, ctx: StackContext, vpc: aws.ec2.Vpc) -> None:
        """FSBP EC2.6: the VPC's rejected traffic (what the control asks for, and a fraction of ALL's volume) to a
        log group of the stack, kept ``logRetentionDays``, through a role only VPC Flow Logs may assume, for this
        account's flow logs, and that may only write to that group.
        https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-6
        https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html"""
        log_group = logs.log_group(
            self, f"{name}-flow-logs", physical_name=f"/vpc/{ctx.name_prefix}/flow-logs", context=ctx
        )
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        partition = aws.get_partition_output(opts=self.lookup()).partition
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            name=f"{ctx.name_prefix}-flow-logs",
            assume_role_policy=iam.service_trust_policy(
                FLOW_LOGS_SERVICE,
                source_account=account_id,
                # The flow log's id is not known before it exists (and it needs the role): this account's flow logs
                # in the stack's region.
                source_arn=pulumi.Output.concat(
                    "arn:", partition, f":ec2:{ctx.region}:", account_id, ":vpc-flow-log/*"
                ),
            ),
            opts=self.child(),
        )
        policy = aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=role.id,
            policy=iam.policy_document(publish_flow_logs(log_group.arn)),
            opts=self.child(),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type=FLOW_LOG_TRAFFIC,
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            tags={"Name": ctx.name_prefix},
            opts=self.child(depends_on=[policy]),
        )

    def _route_table(
        self, name: str, vpc: aws.ec2.Vpc, route: aws.ec2.RouteTableRouteArgs, tag: str
    ) -> aws.ec2.RouteTable:
        return aws.ec2.RouteTable(name, vpc_id=vpc.id, routes=[route], tags={"Name": tag}, opts=self.child())

    def _subnet(
        self,
        name: str,
        vpc: aws.ec2.Vpc,
        cidr: str,
        zone: str,
        table: aws.ec2.RouteTable,
        tag: str,
        *,
        public: bool = False,
    ) -> aws.ec2.Subnet:
        subnet = aws.ec2.Subnet(
            name,
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone=zone,
            # Tasks in public subnets get a public IP from the service (assignPublicIp), not from the subnet; the
            # ALB does not care.
            map_public_ip_on_launch=False if public else None,
            tags={"Name": tag},
            opts=self.child(),
        )
        aws.ec2.RouteTableAssociation(name, subnet_id=subnet.id, route_table_id=table.id, opts=self.child())
        return subnet

    def _nat_gateways(
        self, name: str, prefix: str, public: list[aws.ec2.Subnet], igw: aws.ec2.InternetGateway, count: int
    ) -> list[aws.ec2.NatGateway]:
        nats = []
        for i in range(count):
            tags = {"Name": f"{prefix}-nat-{i}"}
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=self.child())
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public[i].id,
                    tags=tags,
                    opts=self.child(depends_on=[igw]),
                )
            )
        return nats
