"""Network on Pulumi mocks: the VPC it creates (or the one it is given), where tasks end up, which Availability
Zones it picks; NetworkConfig's rules."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from itertools import combinations

import pulumi
import pytest

from components.base import PROJECT, StackContext, component_type
from components.config import StackConfig
from components.config_types import ConfigError
from components.network import Network, NetworkArgs, NetworkZonesError
from offline.engine import ProgramRun, Registration, run_program
from offline.stack_files import StackFiles
from policy import resource_types as rt
from support.aws import assert_valid_request
from support.stacks import REGION, run, stack_config

GET_AZS = "aws:index/getAvailabilityZones:getAvailabilityZones"


def run_network(region: str = REGION, **values: str) -> ProgramRun:
    """The component from stack-file values, in ``region``; exports its Subnets bundle."""
    config = stack_config(values, region=region)

    def build() -> None:
        subnets = Network("net", network_args(config)).subnets
        pulumi.export("vpcId", subnets.vpc_id)
        pulumi.export("publicSubnetIds", subnets.public_subnet_ids)
        pulumi.export("taskSubnetIds", subnets.task_subnet_ids)
        pulumi.export("assignPublicIp", subnets.assign_public_ip)

    return run(build, region=region)


def network_args(config: StackConfig) -> NetworkArgs:
    """The component's args from a stack's config, named ``shop-dev``, as ``__main__.py`` builds them."""
    context = StackContext(name_prefix="shop-dev", region=config.region, log_retention_days=7)
    return NetworkArgs(config.network, context, public_ports=config.load_balancer.listener_ports)


def subnets(found: ProgramRun, kind: str) -> list[Registration]:
    return [s for s in found.of_type(rt.EC2_SUBNET) if s.name.startswith(f"net-{kind}-")]


def route_of(found: ProgramRun, subnet: Registration) -> dict[str, str]:
    """The default route (0.0.0.0/0) of a subnet, through its route-table association."""
    [association] = [a for a in found.of_type(rt.EC2_ROUTE_TABLE_ASSOCIATION) if a.props["subnetId"] == subnet.id]
    [table] = [t for t in found.of_type(rt.EC2_ROUTE_TABLE) if t.id == association.props["routeTableId"]]
    routes: list[dict[str, str]] = [r for r in table.props["routes"] if r["cidrBlock"] == "0.0.0.0/0"]
    [route] = routes
    return route


@pytest.fixture(scope="module")
def public() -> ProgramRun:
    return run_network()


@pytest.fixture(scope="module")
def private() -> ProgramRun:
    return run_network(taskSubnets="private", availabilityZones="3")


# --- Created VPC ---------------------------------------------------------------------------------


def test_one_public_subnet_per_az_and_no_nat_for_public_tasks(public: ProgramRun) -> None:
    pub = subnets(public, "public")
    assert [s.props["availabilityZone"] for s in pub] == [f"{REGION}a", f"{REGION}b"]
    assert subnets(public, "private") == []
    assert public.of_type(rt.EC2_NAT_GATEWAY) == [] and public.of_type(rt.EC2_EIP) == []
    # A public subnet is one whose route table routes to an internet gateway:
    # https://docs.aws.amazon.com/vpc/latest/userguide/configure-subnets.html#subnet-types
    igw = public.one(rt.EC2_INTERNET_GATEWAY)
    assert all(route_of(public, s)["gatewayId"] == igw.id for s in pub)


def test_public_tasks_run_in_the_public_subnets_with_a_public_ip(public: ProgramRun) -> None:
    # Without NAT, a task in a public subnet reaches ECR only with a public IP:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-task-networking.html
    ids = [s.id for s in subnets(public, "public")]
    assert public.outputs["publicSubnetIds"] == ids
    assert public.outputs["taskSubnetIds"] == ids
    assert public.outputs["assignPublicIp"] is True
    assert public.outputs["vpcId"] == public.one(rt.EC2_VPC).id


def test_private_tasks_get_private_subnets_per_az_behind_nat(private: ProgramRun) -> None:
    # https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-scenarios.html
    priv = subnets(private, "private")
    assert [s.props["availabilityZone"] for s in priv] == [f"{REGION}{z}" for z in "abc"]
    assert private.outputs["taskSubnetIds"] == [s.id for s in priv]
    assert private.outputs["assignPublicIp"] is False
    [nat] = private.of_type(rt.EC2_NAT_GATEWAY)
    assert nat.props["subnetId"] == subnets(private, "public")[0].id, "the NAT gateway lives in a public subnet"
    assert all(route_of(private, s)["natGatewayId"] == nat.id for s in priv)
    assert all("gatewayId" not in route_of(private, s) for s in priv), "no direct internet route"


def test_a_nat_gateway_waits_for_the_internet_gateway(private: ProgramRun) -> None:
    # "A public NAT gateway ... requires an internet gateway": creating it first fails.
    # https://docs.aws.amazon.com/vpc/latest/userguide/vpc-nat-gateway.html
    igw = private.one(rt.EC2_INTERNET_GATEWAY)
    assert all(igw.urn in n.dependencies for n in private.of_type(rt.EC2_NAT_GATEWAY))
    [eip] = private.of_type(rt.EC2_EIP)
    assert eip.props["domain"] == "vpc"


def test_per_az_nat_gateways_each_serve_their_az() -> None:
    found = run_network(taskSubnets="private", natGateways="per-az", availabilityZones="3")
    nats = found.of_type(rt.EC2_NAT_GATEWAY)
    pub, priv = subnets(found, "public"), subnets(found, "private")
    assert len(nats) == 3 and len(found.of_type(rt.EC2_EIP)) == 3
    nat_az = {n.id: next(s.props["availabilityZone"] for s in pub if s.id == n.props["subnetId"]) for n in nats}
    for subnet in priv:
        assert nat_az[route_of(found, subnet)["natGatewayId"]] == subnet.props["availabilityZone"]


@pytest.mark.parametrize(("cidr", "azs"), [("10.0.0.0/16", "2"), ("10.0.0.0/16", "4"), ("172.16.8.0/24", "4")])
def test_subnet_cidrs_inside_the_vpc_disjoint_and_big_enough_for_an_alb(cidr: str, azs: str) -> None:
    # us-west-2 has four standard AZs.
    found = run_network("us-west-2", vpcCidr=cidr, availabilityZones=azs, taskSubnets="private")
    vpc = ipaddress.ip_network(found.one(rt.EC2_VPC).props["cidrBlock"])
    assert str(vpc) == cidr
    blocks = [ipaddress.ip_network(s.props["cidrBlock"]) for s in found.of_type(rt.EC2_SUBNET)]
    assert len(blocks) == 2 * int(azs)
    assert all(b.subnet_of(vpc) for b in blocks)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for a, b in combinations(blocks, 2))
    # An ALB needs a /27 or larger subnet with 8 free addresses in each AZ.
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#subnets-load-balancer
    assert all(b.prefixlen <= 27 for b in blocks), blocks


def test_subnets_and_vpc_validate_against_the_ec2_api(private: ProgramRun) -> None:
    vpc = private.one(rt.EC2_VPC).props
    assert_valid_request("ec2", "CreateVpc", {"CidrBlock": vpc["cidrBlock"]})
    for subnet in private.of_type(rt.EC2_SUBNET):
        props = subnet.props
        assert_valid_request(
            "ec2",
            "CreateSubnet",
            {"VpcId": props["vpcId"], "CidrBlock": props["cidrBlock"], "AvailabilityZone": props["availabilityZone"]},
        )


# DescribeAvailabilityZones also lists the Local Zones an account opted in to (zone-type local-zone), and their
# names sort before the region's standard AZs; the zone-type filter keeps standard AZs only.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAvailabilityZones.html
# https://docs.aws.amazon.com/local-zones/latest/ug/getting-started.html
def test_subnets_go_to_standard_azs_never_to_opted_in_local_zones() -> None:
    found = run_network("us-west-2", availabilityZones="2", taskSubnets="private")
    zones = sorted({s.props["availabilityZone"] for s in found.of_type(rt.EC2_SUBNET)})
    assert zones == ["us-west-2a", "us-west-2b"], "us-west-2-lax-1a/1b are opted in and sort first"
    [lookup] = [args for token, args in found.calls if token == GET_AZS]
    assert lookup["filters"] == [{"name": "zone-type", "values": ["availability-zone"]}]
    assert lookup["state"] == "available"
    # The filter is one DescribeAvailabilityZones accepts.
    assert_valid_request(
        "ec2",
        "DescribeAvailabilityZones",
        {"Filters": [{"Name": f["name"], "Values": f["values"]} for f in lookup["filters"]]},
    )


def test_more_azs_than_the_region_has_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(NetworkZonesError) as raised:
        run_network("eu-west-1", availabilityZones="4")
    assert isinstance(raised.value, ConfigError), "reported as the config's problems are"
    [problem] = raised.value.problems
    assert problem.startswith(f"{PROJECT}:availabilityZones: 4, but the region has 3 standard Availability Zones")
    assert "eu-west-1a, eu-west-1b, eu-west-1c" in problem and "use at most 3" in problem


def test_a_region_with_too_few_azs_stops_before_anything_is_created() -> None:
    """The lookup is synchronous and comes first: no VPC or subnet is left half made in a region that cannot hold
    the network."""
    registered: list[Registration] = []
    args = network_args(stack_config({"availabilityZones": "4"}))
    files = StackFiles(PROJECT, "dev", {"aws:region": REGION}, [])
    with pytest.raises(NetworkZonesError):
        run_program(
            files,
            program=lambda: Network("net", args),
            registered=registered,
        )
    assert [r.type for r in registered] == [component_type(Network)]


def test_vpc_resolves_dns_for_service_endpoints(public: ProgramRun) -> None:
    # Interface endpoints and private DNS need both: https://docs.aws.amazon.com/vpc/latest/userguide/vpc-dns.html
    vpc = public.one(rt.EC2_VPC).props
    assert vpc["enableDnsHostnames"] is True and vpc["enableDnsSupport"] is True


def test_the_created_vpc_adopts_its_defaults_on_every_subnet_and_logs_rejected_traffic(private: ProgramRun) -> None:
    """FSBP EC2.2, EC2.21, EC2.6 (tests/test_fsbp_network.py has the details): the VPC's default security group
    and network ACL are adopted, the ACL on every subnet, public and private; the flow log's group is kept the
    context's retention."""
    vpc = private.one(rt.EC2_VPC)
    assert private.one(rt.EC2_DEFAULT_SECURITY_GROUP).props["vpcId"] == vpc.id
    acl = private.one(rt.EC2_DEFAULT_NETWORK_ACL).props
    assert acl["defaultNetworkAclId"] == vpc.state["defaultNetworkAclId"]
    assert sorted(acl["subnetIds"]) == sorted(s.id for s in private.of_type(rt.EC2_SUBNET))
    assert len(acl["subnetIds"]) == 6
    assert private.one(rt.EC2_FLOW_LOG).props["vpcId"] == vpc.id
    assert private.one(rt.LOG_GROUP).props == {"name": "/vpc/shop-dev/flow-logs", "retentionInDays": 7}


def test_created_resources_are_children_named_after_the_component(private: ProgramRun) -> None:
    component = private.one(component_type(Network))
    children = private.children_of(component)
    assert len(children) == len(private.resources) - 1
    assert all(r.name.startswith("net-") for r in children)
    # Name tags carry the stack's prefix.
    assert all(r.props["tags"]["Name"].startswith("shop-dev") for r in children if "tags" in r.props)


# --- Existing VPC -----------------------------------------------------------------------------------

VPC = "vpc-0123456789abcdef0"
PUBLIC = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
PRIVATE = ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"]


@pytest.mark.parametrize(
    ("task_subnets", "tasks_in", "public_ip"), [("public", PUBLIC, True), ("private", PRIVATE, False)]
)
def test_existing_vpc_creates_nothing_and_passes_the_ids_through(
    task_subnets: str, tasks_in: list[str], public_ip: bool
) -> None:
    found = run_network(
        vpcId=VPC,
        publicSubnetIds=json.dumps(PUBLIC),
        privateSubnetIds=json.dumps(PRIVATE),
        taskSubnets=task_subnets,
    )
    assert [r.type for r in found.resources] == [component_type(Network)]
    assert found.outputs == {
        "vpcId": VPC,
        "publicSubnetIds": PUBLIC,
        "taskSubnetIds": tasks_in,
        "assignPublicIp": public_ip,
    }
    assert not [c for c in found.calls if c[0] == GET_AZS], "no lookup either"


# --- NetworkConfig ------------------------------------------------------------------------------------


def problems(values: Mapping[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        stack_config(values)
    return raised.value.problems


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # An ALB needs subnets in at least two AZs.
        # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#subnets-load-balancer
        ({"vpcId": VPC, "publicSubnetIds": json.dumps(PUBLIC[:1])}, ["publicSubnetIds: with vpcId set"]),
        (
            {"vpcId": VPC, "publicSubnetIds": json.dumps(PUBLIC), "taskSubnets": "private"},
            ["privateSubnetIds: with vpcId set and taskSubnets 'private'"],
        ),
        (
            {"vpcId": VPC, "publicSubnetIds": json.dumps(PUBLIC), "vpcCidr": "10.1.0.0/16", "natGateways": "per-az"},
            ["natGateways: applies only to a created VPC", "vpcCidr: applies only to a created VPC"],
        ),
        ({"publicSubnetIds": json.dumps(PUBLIC)}, ["publicSubnetIds: needs vpcId"]),
        ({"natGateways": "per-az"}, ["natGateways: applies only with taskSubnets 'private'"]),
        # A VPC's CIDR block is a /16 to a /28; /24 is the smallest whose eight subnets an ALB still accepts.
        # https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html
        ({"vpcCidr": "10.0.0.0/25"}, ["vpcCidr: '10.0.0.0/25': use an IPv4 block from /16 to /24"]),
        ({"vpcCidr": "10.0.0.1/16"}, ["vpcCidr: '10.0.0.1/16' is not a CIDR block"]),
        ({"availabilityZones": "5"}, ["availabilityZones: 5 is out of range; allowed: 2 to 4"]),
        ({"vpcId": "vpc-xyz"}, ["vpcId: 'vpc-xyz' is not a VPC id"]),
        (
            {"vpcId": VPC, "publicSubnetIds": json.dumps([PUBLIC[0], PUBLIC[0]])},
            ["publicSubnetIds: lists a subnet twice"],
        ),
        ({"taskSubnets": "isolated"}, ["taskSubnets: 'isolated' is not allowed; allowed: public, private"]),
    ],
)
def test_bad_network_values_name_the_key_and_what_is_allowed(values: dict[str, str], expected: list[str]) -> None:
    found = sorted(problems(values))
    assert len(found) == len(expected), found
    for problem, start in zip(found, sorted(expected), strict=True):
        assert problem.startswith(f"{PROJECT}:{start}"), problem
