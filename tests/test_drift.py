"""The drift contract: after the first blue/green deployment, a second `pulumi up` changes nothing, with either
deployment engine.

A deployment changes three resources behind the program's back. It registers a new task-definition revision on
the ECS service and moves the service to the other target group, and:

- with CodeDeploy (``deploymentEngine: codedeploy``, the default), it rewrites the forward action of the
  production and the test listener;
- with ECS-native blue/green (``deploymentEngine: ecs``), it swaps the service's primary and alternate target
  groups and reweights the production and the test listener *rule* (the listeners stay as they are).

The program declares exactly those fields ``ignoreChanges`` (``components.fargate_service.OWNED_BY_ENGINE``), so
Pulumi keeps the deployed values instead of reverting them. These tests pin that list, simulate a deployment on
the recorded state, run the program again and compute what Pulumi would diff: inputs that differ from the state,
less the ignored fields. Every committed stack, with both engines.

The same lists are in README.md ("Drift contract").
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from offline.engine import ProgramRun
from policy import resource_types as rt
from support.stacks import STACKS, stack_run

ENGINES = ("codedeploy", "ecs")

# What each engine owns after the first deployment. Pinned here on purpose: changing it changes what a
# deployment survives, and README.md documents the same lists.
# CodeDeploy's ECS blue/green: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-bluegreen.html
# ECS-native blue/green: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html
CODEDEPLOY_OWNED = {
    "the ECS service": ["taskDefinition", "loadBalancers"],
    "the production listener": ["defaultActions"],
    "the test listener": ["defaultActions"],
}
ECS_OWNED = {
    "the ECS service": ["taskDefinition", "loadBalancers"],
    "the production rule": ["actions"],
    "the test rule": ["actions"],
}
OWNED = {"codedeploy": CODEDEPLOY_OWNED, "ecs": ECS_OWNED}

State = dict[str, dict[str, Any]]
Deployed = tuple[str, str, ProgramRun, State]


def engine_run(stack: str, engine: str, **overrides: str) -> ProgramRun:
    """The stack's run with ``engine``: its committed config (the default engine) or the one-key switch."""
    switch = {} if engine == "codedeploy" else {"deploymentEngine": engine}
    return stack_run(stack, overrides={**switch, **overrides})


def codedeploy_roles(run: ProgramRun) -> dict[str, str]:
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


def ecs_roles(run: ProgramRun) -> dict[str, str]:
    """URN of the resource playing each ECS-owned role, found through the service's advanced configuration."""
    service = run.one(rt.ECS_SERVICE)
    [lb] = service.props["loadBalancers"]
    advanced = lb["advancedConfiguration"]
    by_arn = {r.state.get("arn"): r.urn for r in run.of_type(rt.LB_LISTENER_RULE)}
    return {
        "the ECS service": service.urn,
        "the production rule": by_arn[advanced["productionListenerRule"]],
        "the test rule": by_arn[advanced["testListenerRule"]],
    }


def roles(run: ProgramRun, engine: str) -> dict[str, str]:
    return codedeploy_roles(run) if engine == "codedeploy" else ecs_roles(run)


def revision_2(run: ProgramRun) -> str:
    """RegisterTaskDefinition answers <family ARN>:<revision>; the deployment registered revision 2."""
    family_arn: str = run.one(rt.ECS_TASK_DEFINITION).state["arnWithoutRevision"]
    return f"{family_arn}:2"


def after_a_codedeploy_deployment(run: ProgramRun) -> State:
    """The stack's state after CodeDeploy has deployed revision 2 and shifted traffic from blue to green.

    Every field CodeDeploy changes gets the value AWS would report after the deployment; everything else keeps
    the value the program created it with.
    """
    state = {r.urn: copy.deepcopy(r.props) for r in run.resources if r.custom}
    urns = codedeploy_roles(run)
    pair = run.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props["loadBalancerInfo"]["targetGroupPairInfo"]
    arn_of = {tg.props["name"]: tg.state["arn"] for tg in run.of_type(rt.LB_TARGET_GROUP)}
    blue, green = (arn_of[g["name"]] for g in pair["targetGroups"])

    service = state[urns["the ECS service"]]
    service["taskDefinition"] = revision_2(run)
    service["loadBalancers"] = [{**lb, "targetGroupArn": green} for lb in service["loadBalancers"]]
    state[urns["the production listener"]]["defaultActions"] = [{"type": "forward", "targetGroupArn": green}]
    state[urns["the test listener"]]["defaultActions"] = [{"type": "forward", "targetGroupArn": blue}]
    return state


def weighted(blue: str, green: str, blue_weight: int) -> list[dict[str, Any]]:
    """A rule's forward action to both target groups, as ELB describes it."""
    groups = [{"arn": blue, "weight": blue_weight}, {"arn": green, "weight": 100 - blue_weight}]
    return [{"type": "forward", "forward": {"targetGroups": groups}}]


def after_an_ecs_deployment(run: ProgramRun) -> State:
    """The stack's state after ECS has deployed revision 2 and shifted traffic from blue to green.

    At the end of a blue/green deployment the green target group is the service's primary one and blue the
    alternate; the production rule forwards everything to green and the test rule to blue.
    """
    state = {r.urn: copy.deepcopy(r.props) for r in run.resources if r.custom}
    urns = ecs_roles(run)
    service = state[urns["the ECS service"]]
    [lb] = service["loadBalancers"]
    blue, green = lb["targetGroupArn"], lb["advancedConfiguration"]["alternateTargetGroupArn"]

    service["taskDefinition"] = revision_2(run)
    advanced = {**lb["advancedConfiguration"], "alternateTargetGroupArn": blue}
    service["loadBalancers"] = [{**lb, "targetGroupArn": green, "advancedConfiguration": advanced}]
    state[urns["the production rule"]]["actions"] = weighted(blue, green, blue_weight=0)
    state[urns["the test rule"]]["actions"] = weighted(blue, green, blue_weight=100)
    return state


def after_a_deployment(run: ProgramRun, engine: str) -> State:
    return after_a_codedeploy_deployment(run) if engine == "codedeploy" else after_an_ecs_deployment(run)


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


@pytest.fixture(scope="module", params=[(s, e) for s in STACKS for e in ENGINES], ids=lambda p: "-".join(p))
def deployed(request: pytest.FixtureRequest, runs: Callable[[str], ProgramRun]) -> Deployed:
    """A committed stack as created with an engine, and its state after one blue/green deployment."""
    stack, engine = request.param
    run = runs(stack) if engine == "codedeploy" else engine_run(stack, engine)
    return stack, engine, run, after_a_deployment(run, engine)


def test_the_engine_owns_exactly_the_pinned_fields_and_nothing_else_is_ignored(deployed: Deployed) -> None:
    _, engine, run, _ = deployed
    urns = roles(run, engine)
    ignored = {r.urn: r.ignore_changes for r in run.resources if r.ignore_changes}
    assert ignored == {urns[role]: fields for role, fields in OWNED[engine].items()}


def test_the_engines_are_what_the_stack_says(deployed: Deployed) -> None:
    """The runs above are the engines they claim: CodeDeploy's service has a deployment group and no rules,
    ECS's service is its own controller and has no CodeDeploy resources."""
    _, engine, run, _ = deployed
    controller = run.one(rt.ECS_SERVICE).props["deploymentController"]["type"]
    assert controller == {"codedeploy": "CODE_DEPLOY", "ecs": "ECS"}[engine]
    groups, rules = run.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP), run.of_type(rt.LB_LISTENER_RULE)
    assert (len(groups), len(rules)) == ((1, 0) if engine == "codedeploy" else (0, 2))


def test_a_second_up_after_a_deployment_changes_nothing(deployed: Deployed) -> None:
    stack, engine, _, state = deployed
    assert diff(state, engine_run(stack, engine)) == {}


def test_without_the_ignore_list_the_second_up_would_revert_the_deployment(deployed: Deployed) -> None:
    """The simulated deployment really changes the owned fields, and only those: the contract is not vacuous."""
    stack, engine, run, state = deployed
    urns = roles(run, engine)
    assert diff(state, engine_run(stack, engine), honour_ignore_changes=False) == {
        urns[role]: sorted(fields) for role, fields in OWNED[engine].items()
    }


def test_a_config_change_still_reaches_the_owned_resources(deployed: Deployed) -> None:
    """Ignoring the engine's fields does not freeze the service: a new desired count is applied in place."""
    stack, engine, run, state = deployed
    count = int(run.one(rt.ECS_SERVICE).props["desiredCount"]) + 1
    changes = diff(state, engine_run(stack, engine, desiredCount=str(count)))
    assert changes == {roles(run, engine)["the ECS service"]: ["desiredCount"]}


@pytest.mark.parametrize("stack", STACKS)
def test_engine_migration_sends_the_load_balancers_so_it_is_for_one_up_only(stack: str) -> None:
    """``engineMigration`` sends the service's load balancers (to switch a deployed stack to the ecs engine): left
    on after a deployment, it would move the service back to the first target group. Only that field."""
    run = engine_run(stack, "ecs")
    state = after_an_ecs_deployment(run)
    changes = diff(state, engine_run(stack, "ecs", engineMigration="true"))
    assert changes == {ecs_roles(run)["the ECS service"]: ["loadBalancers"]}
