"""The controls a stack fails by design: written once (policy/exemptions.yaml), reported as advisory by the
pack on that stack only, still there to exempt, and listed in docs/security.md."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from pulumi_policy import EnforcementLevel

from components.base import ROOT
from offline.engine import ProgramRun
from policy import __main__ as policy_pack
from policy import exemptions, rules
from support import pack
from support.stacks import STACKS

RULE_NAMES = {r.name for r in rules.RESOURCE_RULES} | {r.name for r in rules.STACK_RULES}
SECURITY_MD = ROOT / "docs" / "security.md"


def stack_findings(run: ProgramRun) -> list[rules.Violation]:
    return rules.check_stack([rules.from_registration(r) for r in run.resources])


def test_every_exemption_names_a_rule_a_committed_stack_a_reason_and_a_cost() -> None:
    for exemption in exemptions.load():
        assert exemption.rule in RULE_NAMES, exemption.rule
        assert exemption.stacks and set(exemption.stacks) <= set(STACKS), exemption
        assert exemption.reason.strip() and exemption.cost.strip(), exemption
    rules_seen = [(e.rule, s) for e in exemptions.load() for s in e.stacks]
    assert len(rules_seen) == len(set(rules_seen)), "an exemption is written once"


@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_fails_only_what_it_is_exempt_from_and_every_exemption_still_applies(
    stack: str, runs: Callable[[str], ProgramRun]
) -> None:
    run = runs(stack)
    findings = stack_findings(run)
    # The pack's view: an exempt rule is advisory on the stack, so only the other rules' findings stop it.
    stopping = exemptions.unexempted(findings, stack)
    assert stopping == [], "\n".join(str(v) for v in stopping)
    # Tighter here: an exempt rule fires on exactly the resources its exemption names. One that now passes is
    # stale (remove the waiver); one that fires elsewhere too is a new failure.
    assert pack.by_design(stack, findings, run) == pack.BY_DESIGN.get(stack, frozenset())
    assert pack.unexpected(stack, findings, run) == []


def test_the_pack_makes_an_exempt_rule_advisory_on_its_stacks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = rules.STACK_RULES[0].name
    waiver = exemptions.Exemption(rule=rule, stacks=("dev",), resources=("r",), reason="by design", cost="$0")
    monkeypatch.setattr(exemptions, "load", lambda path=exemptions.EXEMPTIONS: (waiver,))
    levels = {
        stack: {p.name: p.enforcement_level for p in policy_pack.policies(stack)} for stack in ("dev", "prod", None)
    }
    assert levels["dev"][rule] == EnforcementLevel.ADVISORY
    assert {n for n, level in levels["dev"].items() if level != EnforcementLevel.MANDATORY} == {rule}
    assert set(levels["prod"].values()) == set(levels[None].values()) == {EnforcementLevel.MANDATORY}


def test_an_exempt_finding_is_still_reported_and_names_its_exemption() -> None:
    waiver = exemptions.Exemption(rule="r", stacks=("dev",), resources=("r",), reason="dev has no domain", cost="$0")
    assert policy_pack._worded("plain HTTP", waiver) == "plain HTTP [exempt on this stack: dev has no domain]"
    assert policy_pack._worded("plain HTTP", None) == "plain HTTP"


def documented_exemptions(text: str) -> set[tuple[str, str]]:
    """(rule, stack) pairs of docs/security.md's exemptions table."""
    section = text.split("## Exemptions", 1)[1].split("\n## ", 1)[0]
    found = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[a-z0-9-]+`", cells[1]):
            found |= {(cells[1].strip("`"), s.strip().strip("`")) for s in cells[2].split(",")}
    return found


def test_docs_security_lists_exactly_the_exemptions() -> None:
    listed = {(e.rule, s) for e in exemptions.load() for s in e.stacks}
    assert documented_exemptions(SECURITY_MD.read_text()) == listed


def test_docs_security_tables_every_fsbp_and_cdk_nag_rule_with_its_exemptions() -> None:
    text = SECURITY_MD.read_text()
    section = text.split("## Security Hub controls", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[2].startswith("`"):
            rows[cells[2].strip("`")] = (cells[0], cells[3], cells[4])
    controls = {n for n in RULE_NAMES if n.startswith(("fsbp-", "cdk-nag-"))}
    assert set(rows) == controls
    for rule, (control, *verdicts) in rows.items():
        # The rule's name carries the control id (ECS.12 -> fsbp-ecs-12-...; AwsSolutions-CB4 -> cdk-nag-cb4-...).
        assert control.lower().replace(".", "-").replace("awssolutions-", "cdk-nag-") in rule, rule
        exempt = {
            stack for stack, verdict in zip(("dev", "prod"), verdicts, strict=True) if verdict.startswith("exempt")
        }
        assert exempt == {e_stack for e in exemptions.load() if e.rule == rule for e_stack in e.stacks}, rule
