"""What the policy pack reports on the program by design: the FSBP controls a load balancer fails on purpose.

The pack's rules fire as the FSBP controls define them, so a plain-HTTP site fails ELB.1 and ELB.18, and an
HTTPS site's port-80 redirect fails ELB.18 (which judges the protocol, redirect or not). These failures are
reported (README, docs/runtime.md), not waived: tests that expect a clean pack expect exactly these, listener by
listener, and nothing else, so a listener that regresses to HTTP still fails them.

- Plain HTTP (no certificate, like ``dev``): ELB.1 on the ALB, ELB.18 on its production and test listeners.
  Why: no domain or certificate; fixing it costs a domain, a Route 53 hosted zone (``hostedZoneId``) or an ACM
  certificate for the name (``certificateArn``).
- HTTPS (``prod``): ELB.18 on the port-80 listener, which only redirects to HTTPS (ELB.1's requirement). Why:
  addresses typed or linked with ``http://`` still reach the site; fixing it means closing port 80.
"""

from __future__ import annotations

from components.base import component_type
from components.load_balancer import LoadBalancer
from offline.engine import ProgramRun
from policy import resource_types as rt
from policy import rules

ELB_1 = "fsbp-elb-1-http-redirects-to-https"
ELB_18 = "fsbp-elb-18-listener-secure-protocol"

Finding = tuple[str, str]
"""(rule, URN of the offending resource)."""


def findings(found: ProgramRun) -> list[Finding]:
    """Everything the pack reports on a run, sorted."""
    return sorted((v.rule, v.urn) for v in rules.check_stack([rules.from_registration(r) for r in found.resources]))


def by_design(found: ProgramRun) -> list[Finding]:
    """The findings each LoadBalancer component of the run has by design (see the module's docstring), sorted."""
    expected: list[Finding] = []
    for lb in found.of_type(component_type(LoadBalancer)):
        listeners = {r.name: r for r in found.of_type(rt.LB_LISTENER) if r.parent == lb.urn}
        redirect = listeners.get(f"{lb.name}-http-redirect")
        if redirect is not None:
            expected.append((ELB_18, redirect.urn))
        else:
            expected.append((ELB_1, found.one(rt.LB_LOAD_BALANCER, f"{lb.name}-alb").urn))
            expected += [(ELB_18, listeners[f"{lb.name}-{role}"].urn) for role in ("prod", "test")]
    return sorted(expected)


def assert_only_by_design(found: ProgramRun) -> None:
    """The pack reports exactly the run's by-design load-balancer findings (the other rules' findings are for
    ``support/pack.py`` and the stack's exemptions to judge)."""
    reported = [f for f in findings(found) if f[0] in (ELB_1, ELB_18)]
    assert reported == by_design(found), "\n".join(f"[{rule}] {urn}" for rule, urn in reported)
