"""The policy pack over a program run, as the tests judge a stack: every violation except those its committed
stack file accepts by design.

``BY_DESIGN`` names, per committed stack, the rules its stack file makes fail on purpose, with the setting that
does it and why: what an exemption must cover. ``tests/test_policy.py`` asserts that exactly these rules fire on
each committed stack (so the list cannot go stale); tests of a stack's variants leave them out.
"""

from __future__ import annotations

from offline.engine import ProgramRun
from policy import rules

BY_DESIGN: dict[str, dict[str, str]] = {
    "dev": {
        "fsbp-ec2-6-vpc-flow-logs": "Pulumi.dev.yaml sets flowLogs: false: no flow log on dev's VPC, about $0.58 a "
        "month of flow-log delivery and storage saved (1 GB of records assumed)",
    },
}


def violations(found: ProgramRun) -> list[rules.Violation]:
    """Every violation the pack finds in a run."""
    return rules.check_stack([rules.from_registration(r) for r in found.resources])


def unexpected_violations(found: ProgramRun, stack: str) -> list[rules.Violation]:
    """The pack's violations on a run of ``stack``'s config (possibly with overrides), less the rules that stack
    fails by design."""
    accepted = BY_DESIGN.get(stack, {})
    return [v for v in violations(found) if v.rule not in accepted]
