"""FSBP controls of the created VPC (issue 14): its default security group closed (EC2.2), its network ACL letting
in only what the product needs and never SSH or RDP from the internet (EC2.21), its rejected traffic logged
(EC2.6); the policy pack's rules for them; what an existing VPC gets (nothing); the config that goes with them
and what the flow logs cost.

https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as policy_proxy

import policy.__main__ as pack
from components import network_acl
from components.base import PROJECT
from components.config_types import ConfigError
from components.network import FLOW_LOGS_SERVICE
from offline.engine import ACCOUNT_ID, ProgramRun
from offline.pricing import estimate, load_prices
from policy import resource_types as rt
from policy import rules
from policy.rules import UNKNOWN, Resource
from support.aws import assert_valid_request, parliament_findings, policy_of
from support.pack import BY_DESIGN, res, violations
from support.stacks import REGION, STACKS, stack_config, stack_run

EC2_2 = "fsbp-ec2-2-default-security-group-closed"
EC2_21 = "fsbp-ec2-21-nacl-no-admin-ports-from-world"
EC2_6 = "fsbp-ec2-6-vpc-flow-logs"
WORLD = "0.0.0.0/0"
CLIENT = "198.51.100.7"
"""A client on the internet (a documentation address)."""
AWS_API = "52.94.0.10"
"""An AWS endpoint on the internet (ECR, CloudWatch Logs) the tasks call on 443."""
VPC_ID = "vpc-0123456789abcdef0"
PUBLIC = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]


def fired(resources: list[Resource]) -> set[str]:
    return {v.rule for v in rules.check_stack(resources)}


# --- The network ACL as AWS evaluates it ----------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """One packet crossing a subnet's boundary: ``inbound`` into the subnet, or out of it."""

    inbound: bool
    protocol: str
    """``tcp``, ``udp`` or ``icmp``."""
    peer: str
    """The address on the other side of the boundary: an inbound packet's source, an outbound one's destination."""
    port: int = 0
    """Destination port (TCP, UDP): what an entry's port range matches, in both directions."""
    icmp: tuple[int, int] = (0, 0)


PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1"}


def _matches(entry: Mapping[str, Any], packet: Packet) -> bool:
    protocol = str(entry["protocol"])
    if protocol not in ("-1", PROTOCOL_NUMBERS[packet.protocol]):
        return False
    if ipaddress.ip_address(packet.peer) not in ipaddress.ip_network(entry["cidrBlock"]):
        return False
    if protocol == "-1":
        return True
    if packet.protocol == "icmp":
        return entry.get("icmpType") in (-1, packet.icmp[0]) and entry.get("icmpCode") in (-1, packet.icmp[1])
    return int(entry["fromPort"]) <= packet.port <= int(entry["toPort"])


def acl_allows(acl: Mapping[str, Any], packet: Packet) -> bool:
    """A network ACL's verdict on a packet, as AWS makes it: the entries of the packet's direction in rule-number
    order, the first that matches decides, and a packet no entry matches is denied (the ``*`` entry).
    https://docs.aws.amazon.com/vpc/latest/userguide/nacl-basics.html#nacl-rules"""
    for entry in sorted(acl["ingress" if packet.inbound else "egress"], key=lambda e: e["ruleNo"]):
        if _matches(entry, packet):
            return bool(entry["action"] == "allow")
    return False


def test_the_evaluator_takes_the_first_matching_entry_and_denies_what_nothing_matches() -> None:
    """The model the reachability tests rely on, on AWS's own pattern: a deny before a wider allow."""
    entry = {"cidrBlock": WORLD, "fromPort": 22.0, "toPort": 22.0}
    acl = {
        "ingress": [
            {**entry, "ruleNo": 200.0, "action": "allow", "protocol": "-1"},
            {**entry, "ruleNo": 100.0, "action": "deny", "protocol": "6"},
        ],
        "egress": [],
    }
    assert not acl_allows(acl, Packet(True, "tcp", CLIENT, 22))
    assert acl_allows(acl, Packet(True, "udp", CLIENT, 22))
    assert not acl_allows(acl, Packet(False, "tcp", CLIENT, 443)), "no outbound entry: the * entry denies"


# --- The committed stacks' network ACL: what the product needs gets through, SSH and RDP do not --------------


@dataclass(frozen=True)
class Layout:
    """What a run tells about where traffic flows: the ACL, the VPC's range, the listener and container ports."""

    acl: dict[str, Any]
    vpc_cidr: str
    listener_ports: list[int]
    container_port: int
    alb_subnet: str
    task_subnet: str


def layout(found: ProgramRun) -> Layout:
    subnets = {s.id: s.props["cidrBlock"] for s in found.of_type(rt.EC2_SUBNET)}
    service = found.one(rt.ECS_SERVICE).props
    task_subnet = subnets[service["networkConfiguration"]["subnets"][0]]
    alb_subnet = subnets[found.one(rt.LB_LOAD_BALANCER).props["subnets"][0]]
    return Layout(
        acl=found.one(rt.EC2_DEFAULT_NETWORK_ACL).props,
        vpc_cidr=found.one(rt.EC2_VPC).props["cidrBlock"],
        listener_ports=sorted(int(r.props["port"]) for r in found.of_type(rt.LB_LISTENER)),
        container_port=int(found.of_type(rt.LB_TARGET_GROUP)[0].props["port"]),
        alb_subnet=alb_subnet,
        task_subnet=task_subnet,
    )


def host(cidr: str, n: int = 10) -> str:
    return str(ipaddress.ip_network(cidr)[n])


# The packets the product sends and receives, per subnet boundary they cross (each ACL entry applies to every
# subnet: they all use the default ACL). Replies go to the initiator's ephemeral port: a client's (Windows
# 49152-65535, Linux 32768-60999, old Windows 1025-5000), an ALB's or a NAT gateway's (1024-65535), a Fargate
# task's (Linux). https://docs.aws.amazon.com/vpc/latest/userguide/nacl-ephemeral-ports.html
EPHEMERAL_SAMPLES = (1024, 1025, 5000, 32768, 49152, 60999, 65535)


def needed_packets(lay: Layout) -> list[tuple[str, Packet]]:
    alb, task = host(lay.alb_subnet), host(lay.task_subnet)
    packets = []
    for port in lay.listener_ports:
        packets.append((f"client -> ALB listener {port}", Packet(True, "tcp", CLIENT, port)))
    packets += [(f"ALB reply -> client port {p}", Packet(False, "tcp", CLIENT, p)) for p in EPHEMERAL_SAMPLES]
    packets += [
        (f"ALB -> task container port {lay.container_port} (leaves)", Packet(False, "tcp", task, lay.container_port)),
        (f"ALB -> task container port {lay.container_port} (enters)", Packet(True, "tcp", alb, lay.container_port)),
        *[(f"task reply -> ALB port {p} (enters)", Packet(True, "tcp", task, p)) for p in EPHEMERAL_SAMPLES],
        ("task -> AWS API 443", Packet(False, "tcp", AWS_API, 443)),
        *[(f"AWS API reply -> task or NAT port {p}", Packet(True, "tcp", AWS_API, p)) for p in EPHEMERAL_SAMPLES],
        ("private task -> NAT gateway 443 (enters the public subnet)", Packet(True, "tcp", task, 443)),
        ("NAT gateway -> private task, a reply (leaves)", Packet(False, "tcp", task, 40000)),
        # Path MTU Discovery: https://docs.aws.amazon.com/vpc/latest/userguide/path_mtu_discovery.html
        ("ICMP fragmentation needed from the internet", Packet(True, "icmp", AWS_API, icmp=(3, 4))),
    ]
    return packets


def refused_packets() -> list[tuple[str, Packet]]:
    return [
        ("SSH from the internet", Packet(True, "tcp", CLIENT, 22)),
        ("RDP from the internet", Packet(True, "tcp", CLIENT, 3389)),
        ("UDP 22 from the internet", Packet(True, "udp", CLIENT, 22)),
        ("UDP 3389 from the internet", Packet(True, "udp", CLIENT, 3389)),
        # Nothing else below the ephemeral range but the listeners: telnet, SMTP, SMB, a database.
        *[(f"TCP {p} from the internet", Packet(True, "tcp", CLIENT, p)) for p in (23, 25, 445, 1023)],
        ("UDP from the internet (no task speaks UDP outside the VPC)", Packet(True, "udp", CLIENT, 40000)),
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_packet_the_product_needs_crosses_the_network_acl(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    lay = layout(runs(stack))
    blocked = [why for why, packet in needed_packets(lay) if not acl_allows(lay.acl, packet)]
    assert blocked == []


@pytest.mark.parametrize("stack", STACKS)
def test_ssh_rdp_and_other_ports_stay_closed_to_the_internet(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    lay = layout(runs(stack))
    let_in = [why for why, packet in refused_packets() if acl_allows(lay.acl, packet)]
    assert let_in == []


def test_the_price_of_keeping_3389_closed_is_one_nat_port(prod: ProgramRun) -> None:
    """A NAT gateway's reply on its translated port 3389 is refused (EC2.21 refuses any allow entry from anywhere
    covering 3389); every other port of its range gets through."""
    acl = prod.one(rt.EC2_DEFAULT_NETWORK_ACL).props
    low, high = network_acl.EPHEMERAL_PORTS
    refused = [p for p in range(low, high + 1) if not acl_allows(acl, Packet(True, "tcp", AWS_API, p))]
    assert refused == [3389]


@pytest.mark.parametrize("stack", STACKS)
def test_the_acl_is_the_vpcs_default_one_on_every_subnet(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    """Subnets associated with no other ACL use the default one; the stack adopts it and names them all.
    https://docs.aws.amazon.com/vpc/latest/userguide/vpc-network-acls.html"""
    found = runs(stack)
    acl, vpc = found.one(rt.EC2_DEFAULT_NETWORK_ACL), found.one(rt.EC2_VPC)
    assert acl.props["defaultNetworkAclId"] == vpc.state["defaultNetworkAclId"]
    assert sorted(acl.props["subnetIds"]) == sorted(s.id for s in found.of_type(rt.EC2_SUBNET))
    assert found.of_type(rt.EC2_NETWORK_ACL) == [] and found.of_type(rt.EC2_NETWORK_ACL_RULE) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_acl_entry_is_a_valid_create_network_acl_entry_request(
    stack: str, runs: Callable[[str], ProgramRun]
) -> None:
    """Each entry as the CreateNetworkAclEntry request the provider sends: the API model's fields and enums, a rule
    number from 1 to 32766, numbers unique per direction, and no more entries than the default quota (20 per
    direction). https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateNetworkAclEntry.html
    https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-nacls"""
    acl = runs(stack).one(rt.EC2_DEFAULT_NETWORK_ACL).props
    for direction in ("ingress", "egress"):
        entries = acl[direction]
        assert 0 < len(entries) <= 20
        numbers = [int(e["ruleNo"]) for e in entries]
        assert len(set(numbers)) == len(numbers) and all(1 <= n <= 32766 for n in numbers)
        for entry in entries:
            request: dict[str, Any] = {
                "NetworkAclId": acl["defaultNetworkAclId"],
                "RuleNumber": int(entry["ruleNo"]),
                "Protocol": entry["protocol"],
                "RuleAction": entry["action"],
                "Egress": direction == "egress",
                "CidrBlock": entry["cidrBlock"],
            }
            if entry["protocol"] in ("6", "17"):
                request["PortRange"] = {"From": int(entry["fromPort"]), "To": int(entry["toPort"])}
                assert 0 <= request["PortRange"]["From"] <= request["PortRange"]["To"] <= 65535
            if entry["protocol"] == "1":
                request["IcmpTypeCode"] = {"Type": int(entry["icmpType"]), "Code": int(entry["icmpCode"])}
            assert_valid_request("ec2", "CreateNetworkAclEntry", request)
            ipaddress.ip_network(entry["cidrBlock"])  # a CIDR block EC2 takes


def test_the_acl_lets_in_the_listener_ports_the_config_names() -> None:
    """Another production port, a test port below the ephemeral range: the ACL follows the load balancer's
    config (through ``public_ports``), and keeps everything else below 1024 closed."""
    found = stack_run("dev", overrides={"listenerPort": "8443", "testListenerPort": "444"})
    acl = found.one(rt.EC2_DEFAULT_NETWORK_ACL).props
    assert sorted(int(r.props["port"]) for r in found.of_type(rt.LB_LISTENER)) == [444, 8443]
    for port in (444, 8443):
        assert acl_allows(acl, Packet(True, "tcp", CLIENT, port)), port
    assert not acl_allows(acl, Packet(True, "tcp", CLIENT, 80))


def test_the_entries_leave_out_the_admin_ports_and_refuse_a_listener_on_them() -> None:
    assert network_acl.ranges_without_admin_ports(1024, 65535) == [(1024, 3388), (3390, 65535)]
    assert network_acl.ranges_without_admin_ports(1, 30) == [(1, 21), (23, 30)]
    assert network_acl.ranges_without_admin_ports(22, 22) == []
    with pytest.raises(ValueError, match=r"\[22\]"):
        network_acl.inbound("10.0.0.0/16", [443, 22])


# --- The committed stacks' default security group ------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_default_security_group_is_adopted_without_rules(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    """The provider removes the rules of the default group it adopts and creates only those given: none.
    https://docs.aws.amazon.com/vpc/latest/userguide/default-security-group.html"""
    found = runs(stack)
    group = found.one(rt.EC2_DEFAULT_SECURITY_GROUP)
    assert group.props["vpcId"] == found.one(rt.EC2_VPC).id
    assert (group.props["ingress"], group.props["egress"]) == ([], [])
    # Nothing of the stack uses it: the ALB and the tasks have groups of their own.
    default_id = found.one(rt.EC2_VPC).state["defaultSecurityGroupId"]
    users = [r.name for r in found.resources if default_id in json.dumps(r.props)]
    assert users == []


# --- Flow logs ----------------------------------------------------------------------------------------------------


def test_prod_logs_the_vpcs_rejected_traffic_to_a_log_group_it_keeps(prod: ProgramRun) -> None:
    [flow_log] = prod.of_type(rt.EC2_FLOW_LOG)
    group = prod.one(rt.LOG_GROUP, "network-flow-logs")
    props = flow_log.props
    assert props["vpcId"] == prod.one(rt.EC2_VPC).id
    assert props["trafficType"] == "REJECT", "what EC2.6 asks for, a fraction of ALL's volume"
    assert (props["logDestinationType"], props["logDestination"]) == ("cloud-watch-logs", group.state["arn"])
    assert group.props["retentionInDays"] == 90 and group.protect
    assert props["iamRoleArn"] == prod.one(rt.IAM_ROLE, "network-flow-logs-role").state["arn"]
    # The flow log starts delivering only once its role may write.
    assert prod.one(rt.IAM_ROLE_POLICY, "network-flow-logs-policy").urn in flow_log.dependencies
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateFlowLogs.html
    assert_valid_request(
        "ec2",
        "CreateFlowLogs",
        {
            "ResourceIds": [props["vpcId"]],
            "ResourceType": "VPC",
            "TrafficType": props["trafficType"],
            "LogDestinationType": props["logDestinationType"],
            "LogDestination": props["logDestination"],
            "DeliverLogsPermissionArn": props["iamRoleArn"],
        },
    )


def test_the_flow_logs_role_is_vpc_flow_logs_for_this_account_writing_to_its_group_only(prod: ProgramRun) -> None:
    """https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html: trusted by the service, with the
    recommended aws:SourceAccount and aws:SourceArn conditions; allowed to create, describe and write the streams
    of the stack's group (which exists: no logs:CreateLogGroup, and no Resource "*")."""
    role = prod.one(rt.IAM_ROLE, "network-flow-logs-role")
    [trust] = policy_of(role, "assumeRolePolicy")["Statement"]
    assert trust["Principal"] == {"Service": FLOW_LOGS_SERVICE} and trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:vpc-flow-log/*"},
    }
    policy = prod.one(rt.IAM_ROLE_POLICY, "network-flow-logs-policy")
    [statement] = policy_of(policy)["Statement"]
    group_arn = prod.one(rt.LOG_GROUP, "network-flow-logs").state["arn"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert statement["Resource"] == [group_arn, f"{group_arn}:*"]
    assert parliament_findings(policy.props["policy"]) == []
    assert_valid_request(
        "iam",
        "CreateRole",
        {"RoleName": role.props["name"], "AssumeRolePolicyDocument": role.props["assumeRolePolicy"]},
    )


def test_dev_turns_flow_logs_off_and_the_pack_says_so(dev: ProgramRun) -> None:
    """dev's by-design failure: no flow log, no log group or role for one, and EC2.6 reported on its VPC only."""
    assert dev.of_type(rt.EC2_FLOW_LOG) == []
    assert [g.name for g in dev.of_type(rt.LOG_GROUP) if "flow" in g.name] == []
    assert [r.name for r in dev.of_type(rt.IAM_ROLE) if "flow" in r.name] == []
    assert [(v.rule, v.urn) for v in violations(dev) if v.rule.startswith("fsbp-ec2-")] == [
        (EC2_6, dev.one(rt.EC2_VPC).urn)
    ]
    assert (EC2_6, "network-vpc") in BY_DESIGN["dev"]


def test_flow_logs_are_on_unless_the_stack_turns_them_off() -> None:
    found = stack_run("dev", remove=("flowLogs",))
    assert len(found.of_type(rt.EC2_FLOW_LOG)) == 1
    assert EC2_6 not in {v.rule for v in violations(found)}
    assert stack_config().network.flow_logs is True


# --- An existing VPC --------------------------------------------------------------------------------------------


def test_an_existing_vpc_is_left_as_its_owner_configured_it() -> None:
    """The stack creates no default security group, ACL or flow log for a VPC it does not own (whose owner
    answers for EC2.2, EC2.6 and EC2.21), and the pack has no VPC of the stack to judge."""
    found = stack_run(
        "dev",
        overrides={"vpcId": VPC_ID, "publicSubnetIds": json.dumps(PUBLIC)},
        remove=("flowLogs",),
    )
    for typ in (rt.EC2_VPC, rt.EC2_DEFAULT_SECURITY_GROUP, rt.EC2_DEFAULT_NETWORK_ACL, rt.EC2_FLOW_LOG):
        assert found.of_type(typ) == [], typ
    assert {v.rule for v in violations(found)} & {EC2_2, EC2_21, EC2_6} == set()


# --- Config -------------------------------------------------------------------------------------------------------


def problems(values: Mapping[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        stack_config(values)
    return raised.value.problems


def test_flow_logs_apply_to_a_created_vpc_only() -> None:
    found = problems({"vpcId": VPC_ID, "publicSubnetIds": json.dumps(PUBLIC), "flowLogs": "false"})
    assert found == [f"{PROJECT}:flowLogs: applies only to a created VPC; remove it or unset vpcId"]
    assert stack_config({"flowLogs": "false"}).network.flow_logs is False


@pytest.mark.parametrize(("key", "port", "name"), [("listenerPort", "22", "SSH"), ("testListenerPort", "3389", "RDP")])
def test_a_listener_on_an_admin_port_is_refused_in_a_created_vpc(key: str, port: str, name: str) -> None:
    """The created VPC's ACL keeps 22 and 3389 closed to the internet: a listener there would be unreachable."""
    assert problems({key: port}) == [
        f"{PROJECT}:{key}: {port} is the {name} port, which the created VPC's network ACL keeps closed to the "
        "internet (FSBP EC2.21); use another port"
    ]
    # In an existing VPC the ACL is its owner's: the program does not judge it.
    assert stack_config({key: port, "vpcId": VPC_ID, "publicSubnetIds": json.dumps(PUBLIC)})


# --- Cost -------------------------------------------------------------------------------------------------------


def test_the_estimate_prices_the_flow_logs_delivery_and_storage(prod: ProgramRun, dev: ProgramRun) -> None:
    table = load_prices()
    gb, prices = table.assumptions["flow_log_gb_per_month"], table.regions[REGION]
    lines = {line.item: line for line in estimate(prod, REGION, table).fixed if "flow logs" in line.item}
    delivery, storage = lines["VPC flow logs delivery"], lines["VPC flow logs storage"]
    assert (delivery.quantity, delivery.unit_price) == (gb, prices["vended_logs_cwl_gb"])
    # Every record is kept the log group's retention (prod: 90 days).
    assert (storage.quantity, storage.unit_price) == (gb * 90 / 30, prices["logs_storage_gb_month"])
    assert "flow_log_gb_per_month" not in delivery.basis and "assumes" in delivery.basis
    assert [line for line in estimate(dev, REGION, table).fixed if "flow logs" in line.item] == []


# --- The pack's rules, on resources ------------------------------------------------------------------------------

VPC_URN = f"urn:pulumi:test::{PROJECT}::{rt.EC2_VPC}::vpc"
ACL_ID = "acl-0123456789abcdef0"


def vpc() -> Resource:
    return res(rt.EC2_VPC, "vpc", {"cidrBlock": "10.0.0.0/16"}, ids=(VPC_ID, ACL_ID, "sg-0123456789abcdef0"))


def default_sg(**props: Any) -> Resource:
    return res(rt.EC2_DEFAULT_SECURITY_GROUP, "default-sg", {"vpcId": VPC_ID, "ingress": [], "egress": [], **props})


def entry(**fields: Any) -> dict[str, Any]:
    return {"ruleNo": 100, "action": "allow", "protocol": "6", "cidrBlock": WORLD, **fields}


def default_acl(*ingress: dict[str, Any], acl_id: Any = ACL_ID, linked: bool = False) -> Resource:
    """The VPC's default ACL with these inbound entries; ``linked``: known to refer to the VPC by dependency."""
    props = {"defaultNetworkAclId": acl_id, "ingress": list(ingress), "egress": [entry(protocol="-1")]}
    deps = {"defaultNetworkAclId": {VPC_URN}} if linked else None
    return res(rt.EC2_DEFAULT_NETWORK_ACL, "default-acl", props, deps=deps)


def flow_log(traffic: Any = "REJECT", vpc_id: Any = VPC_ID, *, linked: bool = False) -> Resource:
    deps = {"vpcId": {VPC_URN}} if linked else None
    return res(rt.EC2_FLOW_LOG, "flow-log", {"vpcId": vpc_id, "trafficType": traffic}, deps=deps)


def closed_vpc() -> list[Resource]:
    return [vpc(), default_sg(), default_acl(entry(fromPort=443, toPort=443)), flow_log()]


def test_a_vpc_with_its_defaults_closed_and_a_flow_log_passes() -> None:
    assert fired(closed_vpc()) == set()


def test_a_vpc_left_as_aws_creates_it_fails_all_three() -> None:
    violations_ = rules.check_stack([vpc()])
    assert {(v.rule, v.urn) for v in violations_} == {(EC2_2, VPC_URN), (EC2_21, VPC_URN), (EC2_6, VPC_URN)}


@pytest.mark.parametrize(
    "group",
    [
        default_sg(ingress=[{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]),
        default_sg(egress=[{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": [WORLD]}]),
    ],
)
def test_ec2_2_refuses_a_default_security_group_with_any_rule(group: Resource) -> None:
    [violation] = rules.check_stack([vpc(), group, *closed_vpc()[2:]])
    assert (violation.rule, violation.urn) == (EC2_2, group.urn)
    assert "must have none" in violation.message


def test_ec2_2_matches_the_group_to_its_vpc_by_dependency_and_waits_for_unknown_rules() -> None:
    unknown_vpc = res(rt.EC2_VPC, "vpc", {"cidrBlock": "10.0.0.0/16"})
    group = default_sg(vpcId=UNKNOWN)
    assert EC2_2 in fired([unknown_vpc, group])
    linked = res(rt.EC2_DEFAULT_SECURITY_GROUP, "default-sg", group.props, deps={"vpcId": {unknown_vpc.urn}})
    assert EC2_2 not in fired([unknown_vpc, linked])
    assert EC2_2 not in fired([vpc(), default_sg(ingress=UNKNOWN)])


@pytest.mark.parametrize(
    "opened",
    [
        entry(fromPort=22, toPort=22),
        entry(fromPort=0, toPort=65535),
        entry(protocol="tcp", fromPort=3000, toPort=3400),
        entry(protocol="17", fromPort=3389, toPort=3389),
        entry(protocol="udp", fromPort=22, toPort=22),
        entry(protocol="-1", fromPort=0, toPort=0),
        entry(protocol="all", fromPort=0, toPort=0),
        entry(fromPort=22, toPort=22, cidrBlock=None, ipv6CidrBlock="::/0"),
    ],
)
def test_ec2_21_refuses_an_allow_from_anywhere_covering_22_or_3389(opened: dict[str, Any]) -> None:
    resources = [*closed_vpc()[:2], default_acl(opened), flow_log()]
    [violation] = rules.check_stack(resources)
    assert (violation.rule, violation.urn) == (EC2_21, resources[2].urn)
    assert re.search(r"SSH \(22\)|RDP \(3389\)", violation.message)


@pytest.mark.parametrize(
    "harmless",
    [
        entry(fromPort=1024, toPort=3388),
        entry(fromPort=3390, toPort=65535),
        entry(fromPort=22, toPort=22, cidrBlock="203.0.113.0/24"),
        entry(fromPort=22, toPort=22, action="deny"),
        entry(protocol="1", fromPort=0, toPort=0, icmpType=3, icmpCode=4),
        entry(protocol="-1", fromPort=0, toPort=0, cidrBlock="10.0.0.0/16"),
        entry(fromPort=UNKNOWN, toPort=UNKNOWN),
        entry(fromPort=22, toPort=22, cidrBlock=UNKNOWN),
    ],
)
def test_ec2_21_accepts_other_ports_narrower_sources_denies_and_unknowns(harmless: dict[str, Any]) -> None:
    assert fired([*closed_vpc()[:2], default_acl(harmless), flow_log()]) == set()


def test_ec2_21_judges_entry_by_entry_as_the_control_does() -> None:
    """A deny numbered first does not excuse a later allow of everything: the control flags the allow.
    https://docs.aws.amazon.com/config/latest/developerguide/nacl-no-unrestricted-ssh-rdp.html"""
    deny = entry(ruleNo=90, action="deny", fromPort=22, toPort=22)
    assert EC2_21 in fired([*closed_vpc()[:2], default_acl(deny, entry(protocol="-1")), flow_log()])


def test_ec2_21_reads_custom_acls_and_their_separate_rules() -> None:
    acl = res(rt.EC2_NETWORK_ACL, "acl", {"vpcId": VPC_ID, "ingress": [entry(fromPort=22, toPort=22)]})
    ssh = {"ruleNumber": 110, "ruleAction": "allow", "protocol": "6", "fromPort": 22, "toPort": 22, "cidrBlock": WORLD}
    inbound = res(rt.EC2_NETWORK_ACL_RULE, "ssh-in", {**ssh, "egress": False})
    outbound = res(rt.EC2_NETWORK_ACL_RULE, "ssh-out", {**ssh, "egress": True})
    urns = [v.urn for v in rules.check_stack([*closed_vpc(), acl, inbound, outbound])]
    assert urns == [acl.urn, inbound.urn]


def test_ec2_21_needs_the_created_vpcs_default_acl_adopted_by_id_or_dependency() -> None:
    others = [vpc(), default_sg(), flow_log()]
    assert EC2_21 in fired([*others, default_acl(acl_id="acl-0fedcba9876543210")])
    unknown = default_acl(acl_id=UNKNOWN, linked=True)
    assert EC2_21 not in fired([*others, unknown])


@pytest.mark.parametrize(
    ("log", "fires"),
    [
        (flow_log("REJECT"), False),
        (flow_log("ALL"), False),
        (flow_log(UNKNOWN), False),
        (flow_log("ACCEPT"), True),
        (flow_log(vpc_id="vpc-0fedcba9876543210"), True),
        (flow_log(vpc_id=UNKNOWN, linked=True), False),
    ],
)
def test_ec2_6_wants_a_flow_log_of_rejected_traffic_on_the_vpc(log: Resource, fires: bool) -> None:
    resources = [*closed_vpc()[:3], log]
    assert fired(resources) == ({EC2_6} if fires else set())


def test_no_created_vpc_nothing_to_judge() -> None:
    """A stack in an existing VPC declares none of these resources: the rules have nothing to say."""
    assert fired([]) == set()


def test_the_pack_links_the_acl_to_its_vpc_through_the_vpcs_outputs() -> None:
    """In ``pulumi up``, a stack policy sees outputs: the VPC's ``defaultNetworkAclId`` names the ACL the
    ``DefaultNetworkAcl`` adopts (``rules.REFERENCE_KEYS``)."""
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])

    def resource(type_: str, name: str, props: dict[str, Any]) -> PolicyResource:
        urn = f"urn:pulumi:dev::p::{type_}::{name}"
        return PolicyResource(type_, policy_proxy.unknown_checking_proxy(props), urn, name, opts, None, None, [], {})

    outputs = {"id": VPC_ID, "defaultNetworkAclId": ACL_ID, "defaultSecurityGroupId": "sg-0123456789abcdef0"}
    stack = [
        resource(rt.EC2_VPC, "vpc", outputs),
        resource(rt.EC2_DEFAULT_NETWORK_ACL, "acl", {"defaultNetworkAclId": ACL_ID, "ingress": []}),
    ]
    policy = next(p for p in pack.policies() if p.name == EC2_21)
    assert isinstance(policy, StackValidationPolicy)

    def reports(resources: list[PolicyResource]) -> list[str]:
        reported: list[str] = []

        def report(message: str, urn: str | None = None) -> None:
            reported.append(message)

        policy.validate(StackValidationArgs(resources), report)
        return reported

    assert reports(stack) == []
    [alone] = reports(stack[:1])
    assert "default network ACL" in alone


def test_the_rules_are_named_and_described_after_their_fsbp_controls() -> None:
    described = {r.name: r.description for r in rules.STACK_RULES}
    for name, control in ((EC2_2, "EC2.2"), (EC2_21, "EC2.21"), (EC2_6, "EC2.6")):
        assert described[name].startswith(f"{control}: ")
    for check in (
        rules.fsbp_ec2_2_default_security_group_closed,
        rules.fsbp_ec2_21_nacl_no_admin_ports_from_world,
        rules.fsbp_ec2_6_vpc_flow_logs,
    ):
        control = check.__name__.split("_")[2]
        assert f"ec2-controls.html#ec2-{control}" in (check.__doc__ or "")


def test_the_dev_stack_fails_ec2_6_without_registration_tricks() -> None:
    """The by-design failure is the rule reading dev's real resources: with the VPC's flow log back, it passes."""
    found = stack_run("dev", overrides={"flowLogs": "true"})
    assert EC2_6 not in {v.rule for v in violations(found)}
    without = [rules.from_registration(r) for r in found.resources if r.type != rt.EC2_FLOW_LOG]
    before = {v.rule for v in violations(found)}
    assert {v.rule for v in rules.check_stack(without)} - before == {EC2_6}
