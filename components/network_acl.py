"""The created VPC's network ACL, as data: what may enter its subnets and what may leave them.

A network ACL is stateless: the reply to a connection is judged on its own, by the rules of the other direction,
so every connection the product makes needs two entries, one per direction. What the product needs:

- clients on the internet -> the ALB's listener ports (the security groups then admit only ``allowedCidrs`` /
  ``testListenerCidrs``); the replies go out to the clients' ephemeral ports;
- the ALB -> the tasks' container port, the tasks -> the NAT gateway: traffic inside the VPC;
- the tasks (directly with a public IP, or through a NAT gateway) -> AWS APIs and registries on TCP 443; the
  replies come back from the internet to an ephemeral port: the task's (Linux: 32768-60999) or the NAT
  gateway's (1024-65535).

So: everything out; in, everything from the VPC's own range, the listener ports and the ephemeral ports from
anywhere, and the ICMP "fragmentation needed" message Path MTU Discovery depends on. Nothing else: in particular
no UDP from the internet (the tasks' security group lets only TCP 443 out; DNS to the VPC resolver is not
filtered by network ACLs).

FSBP EC2.21 fails a network ACL with an *allow* entry from ``0.0.0.0/0`` or ``::/0`` covering port 22 or 3389,
entry by entry: a deny placed before it does not help. So the ephemeral range from anywhere is split around
3389 (22 is below it), and no listener may use either port. The price: a NAT gateway connection whose
translated source port is 3389 gets no reply (one port in 64,512; the client retries on another).
https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-21
https://docs.aws.amazon.com/vpc/latest/userguide/nacl-ephemeral-ports.html
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
"""Remote administration ports no entry may open to the internet (FSBP EC2.21)."""
EPHEMERAL_PORTS = (1024, 65535)
"""Ports replies from the internet arrive on: a NAT gateway's, and ELB's, range (the widest of the clients')."""
ANYWHERE = "0.0.0.0/0"
ALL_PROTOCOLS, ICMP, TCP = "-1", "1", "6"
FRAGMENTATION_NEEDED = (3, 4)
"""ICMP type 3 (destination unreachable), code 4: how a router tells a sender to use smaller packets.
https://docs.aws.amazon.com/vpc/latest/userguide/path_mtu_discovery.html"""
FIRST_RULE, RULE_STEP = 100, 10
"""Rule numbers: 100, 110, 120... (gaps leave room for an operator's deny inserted before an allow)."""


@dataclass(frozen=True)
class AclEntry:
    """One allow entry of a network ACL (protocols as the EC2 API takes them: numbers, ``-1`` for all)."""

    protocol: str
    cidr_block: str
    why: str
    from_port: int = 0
    to_port: int = 0
    icmp_type: int | None = None
    icmp_code: int | None = None


def ranges_without_admin_ports(low: int, high: int) -> list[tuple[int, int]]:
    """``low``-``high`` as ranges that leave out the remote administration ports."""
    ranges, start = [], low
    for port in sorted(p for p in ADMIN_PORTS if low <= p <= high):
        if start < port:
            ranges.append((start, port - 1))
        start = port + 1
    if start <= high:
        ranges.append((start, high))
    return ranges


def inbound(vpc_cidr: str, public_ports: Sequence[int]) -> list[AclEntry]:
    """What may enter the subnets: the VPC itself, ``public_ports`` (the listeners) and replies from anywhere."""
    refused = sorted(p for p in public_ports if p in ADMIN_PORTS)
    if refused:
        raise ValueError(f"ports {refused} may not be open to the internet (FSBP EC2.21)")
    entries = [AclEntry(ALL_PROTOCOLS, vpc_cidr, "everything from inside the VPC (the ALB to the tasks, the NAT)")]
    entries += [
        AclEntry(TCP, ANYWHERE, f"TCP {port} from anywhere: a listener of the load balancer", port, port)
        for port in sorted(set(public_ports))
    ]
    entries += [
        AclEntry(TCP, ANYWHERE, f"TCP {low}-{high} from anywhere: replies to the tasks and the NAT gateways", low, high)
        for low, high in ranges_without_admin_ports(*EPHEMERAL_PORTS)
    ]
    icmp_type, icmp_code = FRAGMENTATION_NEEDED
    entries.append(
        AclEntry(
            ICMP, ANYWHERE, "ICMP fragmentation needed (Path MTU Discovery)", icmp_type=icmp_type, icmp_code=icmp_code
        )
    )
    return entries


def outbound() -> list[AclEntry]:
    """What may leave the subnets: everything (the security groups limit what goes out, per resource)."""
    return [AclEntry(ALL_PROTOCOLS, ANYWHERE, "everything out: replies to clients and requests of the tasks")]


def numbered(entries: Sequence[AclEntry]) -> list[tuple[int, AclEntry]]:
    """Each entry with its rule number, in order."""
    return [(FIRST_RULE + RULE_STEP * i, entry) for i, entry in enumerate(entries)]
