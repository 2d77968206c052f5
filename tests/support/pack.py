"""The policy pack over what a test ran: every rule, less the findings that test cannot judge.

- Exemptions (``policy/exemptions.yaml``): the rules a committed stack fails on purpose, with the reason. A
  whole-stack test of that stack leaves them out (the pack reports them as advisory there); the tests of each
  control check that they fire there, and only where the control says.
- ``WIRED_IN_MAIN``: rules on how ``__main__.py`` wires the parts (the S3 access logs of every bucket). A part
  built alone fails them by construction; the whole-stack tests judge them.
"""

from __future__ import annotations

from offline.engine import ProgramRun
from policy import exemptions, rules

BY_DESIGN: dict[str, dict[str, str]] = {}
"""Stack -> rule -> why it fails there, from ``policy/exemptions.yaml``."""
for _exemption in exemptions.load():
    for _stack in _exemption.stacks:
        BY_DESIGN.setdefault(_stack, {})[_exemption.rule] = _exemption.reason

WIRED_IN_MAIN: dict[str, str] = {
    "fsbp-s3-9-server-access-logging": "S3AccessLogs logs the buckets __main__.py hands it, after every part",
}


def violations(found: ProgramRun) -> list[rules.Violation]:
    """Every violation of every rule."""
    return rules.check_stack([rules.from_registration(r) for r in found.resources])


def stack_violations(found: ProgramRun, stack: str) -> list[rules.Violation]:
    """The violations of a run of the program on ``stack``'s file, less the rules it fails by design."""
    return exemptions.unexempted(violations(found), stack)


def part_violations(found: ProgramRun) -> list[rules.Violation]:
    """The violations of parts built without ``__main__.py``, less the rules on its wiring."""
    return [v for v in violations(found) if v.rule not in WIRED_IN_MAIN]
