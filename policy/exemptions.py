"""Controls a stack fails on purpose: each written once, in ``exemptions.yaml``, with its reason and cost.

An exemption never hides a finding. On an exempted stack the pack still runs the rule and reports what it
finds, as an *advisory* violation that names the exemption, instead of a mandatory one that stops
``pulumi up``. Every other stack keeps the rule mandatory. The tests check each exemption still has something
to exempt (a control fixed since is a stale exemption and fails) and that docs/security.md lists the same.

The pack knows its stack from ``PULUMI_STACK``, which the Pulumi CLI sets for the analyzer; without it (an
unknown caller) nothing is exempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import yaml

EXEMPTIONS = Path(__file__).resolve().parent / "exemptions.yaml"


@dataclass(frozen=True)
class Exemption:
    rule: str
    """The pack rule that reports the control (its name carries the control id)."""
    stacks: tuple[str, ...]
    """The stacks where the control fails by design."""
    resources: tuple[str, ...]
    """The resources (Pulumi names) it fails on there: a finding on any other is not exempt."""
    reason: str
    cost: str
    """What complying would cost, or what the exemption saves."""


def load(path: Path = EXEMPTIONS) -> tuple[Exemption, ...]:
    entries = yaml.safe_load(path.read_text()) or []
    return tuple(
        Exemption(
            rule=e["rule"],
            stacks=tuple(e["stacks"]),
            resources=tuple(e["resources"]),
            reason=e["reason"],
            cost=e["cost"],
        )
        for e in entries
    )


def for_stack(stack: str | None, exemptions: Sequence[Exemption] | None = None) -> dict[str, Exemption]:
    """Rule name -> its exemption on ``stack`` (none for an unknown stack)."""
    if not stack:
        return {}
    return {e.rule: e for e in (load() if exemptions is None else exemptions) if stack in e.stacks}


class _Finding(Protocol):
    @property
    def rule(self) -> str: ...


F = TypeVar("F", bound=_Finding)


def unexempted(findings: Iterable[F], stack: str) -> list[F]:
    """The findings ``stack``'s exemptions do not cover: what makes its ``pulumi up`` stop."""
    exempt = for_stack(stack)
    return [f for f in findings if f.rule not in exempt]
