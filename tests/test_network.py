"""Network on Pulumi mocks: the VPC it creates (or the one it is given) and where tasks end up."""

from __future__ import annotations

import ipaddress
import json
import textwrap
from itertools import combinations
from pathlib import Path

import pytest

from components.config import ConfigError
from offline.engine import ProgramRun, Registration, run_program
from offline.stack_files import StackFiles

REGION = "eu-west-1"
SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"

PROGRAM = """
import json
import pulumi
from components.config import parse_config
from components.network import Network, NetworkArgs

region = pulumi.Config("aws").require("region")
cfg = parse_config(
    {"gitlabToken": "glpat-offline-test-token", **json.loads(pulumi.Config("test").require("values"))},
    stack="dev", region=region, secret_keys=frozenset({"gitlabToken"}),
)
network = Network("net", NetworkArgs(config=cfg.network, name_prefix="shop-dev"))
pulumi.export("vpcId", network.vpc_id)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("taskSubnetIds", network.task_subnet_ids)
pulumi.export("assignPublicIp", network.assign_public_ip)
"""


def run_network(tmp_path: Path, region: str = REGION, **values: str) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {"aws:region": region, "test:values": json.dumps({"gitlabProject": "shop/web", **values})}
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


def subnets(run: ProgramRun, kind: str) -> list[Registration]:
    return [s for s in run.of_type(SUBNET) if s.name.startswith(f"net-{kind}-")]


def route_of(run: ProgramRun, subnet: Registration) -> dict[str, str]:
    """The default route (0.0.0.0/0) of a subnet, through its route-table association."""
    [association] = [a for a in run.of_type(ASSOCIATION) if a.props["subnetId"] == subnet.id]
    [table] = [t for t in run.of_type(ROUTE_TABLE) if t.id == association.props["routeTableId"]]
    [route] = [r for r in table.props["routes"] if r["cidrBlock"] == "0.0.0.0/0"]
    return route


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_network(tmp_path_factory.mktemp("net-public"))


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_network(tmp_path_factory.mktemp("net-private"), taskSubnets="private", availabilityZones="3")


# --- Created VPC ---------------------------------------------------------------------------------


def test_one_public_subnet_per_az_and_no_nat_for_public_tasks(public: ProgramRun) -> None:
    pub = subnets(public, "public")
    assert [s.props["availabilityZone"] for s in pub] == [f"{REGION}a", f"{REGION}b"]
    assert subnets(public, "private") == []
    assert public.of_type(NAT) == [] and public.of_type("aws:ec2/eip:Eip") == []
    assert all(
        route_of(public, s)["gatewayId"] == public.one("aws:ec2/internetGateway:InternetGateway").id for s in pub
    )


def test_public_tasks_run_in_the_public_subnets_with_a_public_ip(public: ProgramRun) -> None:
    ids = [s.id for s in subnets(public, "public")]
    assert public.outputs["publicSubnetIds"] == ids
    assert public.outputs["taskSubnetIds"] == ids
    assert public.outputs["assignPublicIp"] is True
    assert public.outputs["vpcId"] == public.one("aws:ec2/vpc:Vpc").id


def test_private_tasks_get_private_subnets_per_az_behind_nat(private: ProgramRun) -> None:
    priv = subnets(private, "private")
    assert [s.props["availabilityZone"] for s in priv] == [f"{REGION}{z}" for z in "abc"]
    assert private.outputs["taskSubnetIds"] == [s.id for s in priv]
    assert private.outputs["assignPublicIp"] is False
    [nat] = private.of_type(NAT)
    assert nat.props["subnetId"] == subnets(private, "public")[0].id, "the NAT gateway lives in a public subnet"
    assert all(route_of(private, s)["natGatewayId"] == nat.id for s in priv)
    assert all("gatewayId" not in route_of(private, s) for s in priv), "no direct internet route"


def test_per_az_nat_gateways_each_serve_their_az(tmp_path: Path) -> None:
    run = run_network(tmp_path, taskSubnets="private", natGateways="per-az", availabilityZones="3")
    nats = run.of_type(NAT)
    pub, priv = subnets(run, "public"), subnets(run, "private")
    assert len(nats) == 3 and len(run.of_type("aws:ec2/eip:Eip")) == 3
    nat_az = {n.id: next(s.props["availabilityZone"] for s in pub if s.id == n.props["subnetId"]) for n in nats}
    for subnet in priv:
        assert nat_az[route_of(run, subnet)["natGatewayId"]] == subnet.props["availabilityZone"]


@pytest.mark.parametrize(("cidr", "azs"), [("10.0.0.0/16", "2"), ("10.0.0.0/16", "4"), ("172.16.8.0/24", "4")])
def test_subnet_cidrs_inside_the_vpc_disjoint_and_big_enough_for_an_alb(tmp_path: Path, cidr: str, azs: str) -> None:
    # us-west-2 has four standard AZs.
    run = run_network(tmp_path, "us-west-2", vpcCidr=cidr, availabilityZones=azs, taskSubnets="private")
    vpc = ipaddress.ip_network(run.one("aws:ec2/vpc:Vpc").props["cidrBlock"])
    assert str(vpc) == cidr
    blocks = [ipaddress.ip_network(s.props["cidrBlock"]) for s in run.of_type(SUBNET)]
    assert len(blocks) == 2 * int(azs)
    assert all(b.subnet_of(vpc) for b in blocks)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for a, b in combinations(blocks, 2))
    # An ALB needs a /27 or larger subnet with 8 free addresses in each AZ.
    assert all(b.prefixlen <= 27 for b in blocks), blocks


# DescribeAvailabilityZones also lists the Local Zones an account opted in to (zone-type local-zone), and their
# names sort before the region's standard AZs; the zone-type filter keeps standard AZs only.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAvailabilityZones.html
# https://docs.aws.amazon.com/local-zones/latest/ug/getting-started.html
def test_subnets_go_to_standard_azs_never_to_opted_in_local_zones(tmp_path: Path) -> None:
    run = run_network(tmp_path, "us-west-2", availabilityZones="2", taskSubnets="private")
    zones = sorted({s.props["availabilityZone"] for s in run.of_type(SUBNET)})
    assert zones == ["us-west-2a", "us-west-2b"], "us-west-2-lax-1a/1b are opted in and sort first"
    [(_, lookup)] = [c for c in run.calls if "getAvailabilityZones" in c[0]]
    assert lookup["filters"] == [{"name": "zone-type", "values": ["availability-zone"]}]
    assert lookup["state"] == "available"


def test_more_azs_than_the_region_has_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        run_network(tmp_path, "eu-west-1", availabilityZones="4")
    [problem] = raised.value.problems
    assert problem.startswith("gitlab-fargate:availabilityZones: 4, but the region has 3 standard Availability Zones")
    assert "eu-west-1a, eu-west-1b, eu-west-1c" in problem and "use at most 3" in problem


def test_vpc_resolves_dns_for_service_endpoints(public: ProgramRun) -> None:
    vpc = public.one("aws:ec2/vpc:Vpc").props
    assert vpc["enableDnsHostnames"] is True and vpc["enableDnsSupport"] is True


def test_created_resources_are_children_named_after_the_component(private: ProgramRun) -> None:
    component = private.one("gitlab-fargate:index:Network")
    children = private.children_of(component)
    assert len(children) == len(private.resources) - 1
    assert all(r.name.startswith("net-") for r in children)


# --- Existing VPC -----------------------------------------------------------------------------------

VPC = "vpc-0123456789abcdef0"
PUBLIC = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
PRIVATE = ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"]


@pytest.mark.parametrize(
    ("task_subnets", "tasks_in", "public_ip"), [("public", PUBLIC, True), ("private", PRIVATE, False)]
)
def test_existing_vpc_creates_nothing_and_passes_the_ids_through(
    tmp_path: Path, task_subnets: str, tasks_in: list[str], public_ip: bool
) -> None:
    run = run_network(
        tmp_path,
        vpcId=VPC,
        publicSubnetIds=json.dumps(PUBLIC),
        privateSubnetIds=json.dumps(PRIVATE),
        taskSubnets=task_subnets,
    )
    assert [r.type for r in run.resources] == ["gitlab-fargate:index:Network"]
    assert run.outputs == {
        "vpcId": VPC,
        "publicSubnetIds": PUBLIC,
        "taskSubnetIds": tasks_in,
        "assignPublicIp": public_ip,
    }
    assert not [c for c in run.calls if "getAvailabilityZones" in c[0]], "no lookup either"
