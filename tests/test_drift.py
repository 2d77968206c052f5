"""The drift contract: after CodeDeploy's first blue/green deployment, a second `pulumi up` changes nothing.

A deployment changes three resources behind the program's back: it registers a new task-definition revision on
the ECS service and moves the service to the other target group, and it rewrites the forward action of the
production and the test listener. The program declares exactly those fields ``ignoreChanges``
(``components.fargate_service.CODEDEPLOY_OWNED``), so Pulumi keeps the deployed values instead of reverting
them. These tests pin that list, simulate a deployment on the recorded state, run the program again and compute
what Pulumi would diff: inputs that differ from the state, less the ignored fields.

The same list is in README.md ("Drift contract").
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from offline.engine import ProgramRun
from policy import resource_types as rt
from support.stacks import STACKS, stack_run

# What CodeDeploy owns after the first deployment. Pinned here on purpose: changing it changes what a
# deployment survives, and README.md documents the same list.
# ECS blue/green: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-bluegreen.html
CODEDEPLOY_OWNED = {
    "the ECS service": ["taskDefinition", "loadBalancers"],
    "the production listener": ["defaultActions"],
    "the test listener": ["defaultActions"],
}

State = dict[str, dict[str, Any]]
Deployed = tuple[str, ProgramRun, State]


def roles(run: ProgramRun) -> dict[str, str]:
    """URN of the resource playing each CodeDeploy-owned role, found through the deployment group's wiring."""
    pair = run.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props["loadBalancerInfo"]["targetGroupPairInfo"]
    by_arn = {r.state.get("arn"): r.urn for r in run.of_type(rt.LB_LISTENER)}
    [prod] = pair["prodTrafficRoute"]["listenerArns"]
    [test] = pair["testTrafficRoute"]["listenerArns"]
    return {
        "the ECS service": run.one(rt.ECS_SERVICE).urn,
        "the production listener": by_arn[prod],
        "the test listener": by_arn[test],
    }


def after_a_deployment(run: ProgramRun) -> State:
    """The stack's state after CodeDeploy has deployed revision 2 and shifted traffic from blue to green.

    Every field CodeDeploy changes gets the value AWS would report after the deployment; everything else keeps
    the value the program created it with.
    """
    state = {r.urn: copy.deepcopy(r.props) for r in run.resources if r.custom}
    urns = roles(run)
    pair = run.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props["loadBalancerInfo"]["targetGroupPairInfo"]
    arn_of = {tg.props["name"]: tg.state["arn"] for tg in run.of_type(rt.LB_TARGET_GROUP)}
    blue, green = (arn_of[g["name"]] for g in pair["targetGroups"])
    # RegisterTaskDefinition answers <family ARN>:<revision>; the deployment registered revision 2.
    family_arn = run.one(rt.ECS_TASK_DEFINITION).state["arnWithoutRevision"]

    service = state[urns["the ECS service"]]
    service["taskDefinition"] = f"{family_arn}:2"
    service["loadBalancers"] = [{**lb, "targetGroupArn": green} for lb in service["loadBalancers"]]
    state[urns["the production listener"]]["defaultActions"] = [{"type": "forward", "targetGroupArn": green}]
    state[urns["the test listener"]]["defaultActions"] = [{"type": "forward", "targetGroupArn": blue}]
    return state


def diff(state: State, run: ProgramRun, *, honour_ignore_changes: bool = True) -> dict[str, list[str]]:
    """What `pulumi up` would change: per resource, the inputs that differ from the state, less ignored ones."""
    changes: dict[str, list[str]] = {}
    for r in run.resources:
        if not r.custom:
            continue
        if r.urn not in state:
            changes[r.urn] = ["(create)"]
            continue
        old, new = state[r.urn], r.props
        ignored = set(r.ignore_changes) if honour_ignore_changes else set()
        changed = sorted(k for k in set(old) | set(new) if k not in ignored and old.get(k) != new.get(k))
        if changed:
            changes[r.urn] = changed
    changes.update({urn: ["(delete)"] for urn in set(state) - {r.urn for r in run.resources}})
    return changes


@pytest.fixture(scope="module", params=STACKS)
def deployed(request: pytest.FixtureRequest, runs: Callable[[str], ProgramRun]) -> Deployed:
    """A committed stack as created, and its state after one blue/green deployment."""
    stack: str = request.param
    run = runs(stack)
    return stack, run, after_a_deployment(run)


def test_codedeploy_owns_exactly_the_pinned_fields_and_nothing_else_is_ignored(deployed: Deployed) -> None:
    _, run, _ = deployed
    urns = roles(run)
    ignored = {r.urn: r.ignore_changes for r in run.resources if r.ignore_changes}
    assert ignored == {urns[role]: fields for role, fields in CODEDEPLOY_OWNED.items()}


def test_a_second_up_after_a_deployment_changes_nothing(deployed: Deployed) -> None:
    stack, _, state = deployed
    assert diff(state, stack_run(stack)) == {}


def test_without_the_ignore_list_the_second_up_would_revert_the_deployment(deployed: Deployed) -> None:
    """The simulated deployment really changes the owned fields, and only those: the contract is not vacuous."""
    stack, run, state = deployed
    urns = roles(run)
    assert diff(state, stack_run(stack), honour_ignore_changes=False) == {
        urns[role]: sorted(fields) for role, fields in CODEDEPLOY_OWNED.items()
    }


def test_a_config_change_still_reaches_the_owned_resources(deployed: Deployed) -> None:
    """Ignoring CodeDeploy's fields does not freeze the service: a new desired count is applied in place."""
    stack, run, state = deployed
    count = int(run.one(rt.ECS_SERVICE).props["desiredCount"]) + 1
    changes = diff(state, stack_run(stack, overrides={"desiredCount": str(count)}))
    assert changes == {roles(run)["the ECS service"]: ["desiredCount"]}
