"""Security-group rules made one way: one rule per source, IPv4 or IPv6 as the CIDR says, always described.

Rules are separate resources (``aws.vpc.SecurityGroupIngressRule``/``EgressRule``), never inline blocks, so a
rule added or removed never rewrites the others.
"""

from __future__ import annotations

from typing import Literal

import pulumi
import pulumi_aws as aws

from components.base import Component

Direction = Literal["ingress", "egress"]
_RULES = {"ingress": aws.vpc.SecurityGroupIngressRule, "egress": aws.vpc.SecurityGroupEgressRule}


def tcp_rule(
    owner: Component,
    name: str,
    direction: Direction,
    security_group_id: pulumi.Input[str],
    port: int,
    description: str,
    *,
    cidr: str | None = None,
    peer_group_id: pulumi.Input[str] | None = None,
) -> None:
    """One TCP ``port`` rule of a group, with ``cidr`` (IPv4 or IPv6, as written) or ``peer_group_id`` on the
    other side."""
    ipv6 = cidr is not None and ":" in cidr
    _RULES[direction](
        name,
        security_group_id=security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description,
        cidr_ipv4=None if ipv6 else cidr,
        cidr_ipv6=cidr if ipv6 else None,
        referenced_security_group_id=peer_group_id,
        opts=owner.child(),
    )


def from_cidr(
    owner: Component, name: str, security_group_id: pulumi.Input[str], port: int, cidr: str, description: str
) -> None:
    """TCP ``port`` open to ``cidr`` (IPv4 or IPv6)."""
    tcp_rule(owner, name, "ingress", security_group_id, port, description, cidr=cidr)


def to_cidr(
    owner: Component, name: str, security_group_id: pulumi.Input[str], port: int, cidr: str, description: str
) -> None:
    """TCP ``port`` out to ``cidr`` (IPv4 or IPv6)."""
    tcp_rule(owner, name, "egress", security_group_id, port, description, cidr=cidr)


def between(
    owner: Component,
    *,
    egress_name: str,
    ingress_name: str,
    source: pulumi.Input[str],
    target: pulumi.Input[str],
    port: int,
    descriptions: tuple[str, str],
) -> None:
    """TCP ``port`` from one security group to another: the egress rule on ``source`` and the ingress rule on
    ``target``, each naming the other group (``descriptions``: egress's, ingress's). Both are needed: without the
    egress rule the traffic stops on its way out of the source group."""
    tcp_rule(owner, egress_name, "egress", source, port, descriptions[0], peer_group_id=target)
    tcp_rule(owner, ingress_name, "ingress", target, port, descriptions[1], peer_group_id=source)
