"""The policy pack over a whole run, and the failures a committed stack keeps on purpose.

``BY_DESIGN`` lists, per committed stack, the (rule, resource name) pairs its stack file chooses to fail, each
with the setting that causes it and why: the pack reports them as Security Hub would, and exempting them is the
pack's business, not the tests'. Tests assert that a stack fails those exactly, and nothing else.
"""

from __future__ import annotations

from offline.engine import ProgramRun
from policy import rules

BY_DESIGN: dict[str, frozenset[tuple[str, str]]] = {
    # dev: `containerInsights: false` (Pulumi.dev.yaml): Container Insights' custom metrics cost about $11 a
    # month, more than dev's one Spot task; Security Hub ECS.12 fails on the cluster.
    "dev": frozenset({("fsbp-ecs-12-container-insights", "service-cluster")}),
}


def violations(run: ProgramRun) -> list[rules.Violation]:
    """Every rule of the pack over the run's resources."""
    return rules.check_stack([rules.from_registration(r) for r in run.resources])


def by_design(stack: str, found: list[rules.Violation], run: ProgramRun) -> set[tuple[str, str]]:
    """The (rule, resource name) of each violation in ``found`` that the stack keeps on purpose."""
    names = {r.urn: r.name for r in run.resources}
    return {(v.rule, names.get(v.urn, v.urn)) for v in found} & BY_DESIGN.get(stack, frozenset())


def unexpected(stack: str, found: list[rules.Violation], run: ProgramRun) -> list[rules.Violation]:
    """The violations in ``found`` that the stack does not keep on purpose."""
    names = {r.urn: r.name for r in run.resources}
    return [v for v in found if (v.rule, names.get(v.urn, v.urn)) not in BY_DESIGN.get(stack, frozenset())]
