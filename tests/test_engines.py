"""Both deployment engines on every committed stack: the whole program, the policy pack, IAM, events, the offline
plan, the stack-file schema and a switch from one engine to the other.

Each committed stack (``support.stacks.STACKS``) runs as its file says (``codedeploy``, the default) and with
``deploymentEngine: ecs`` (ECS-native blue/green). Expectations come from the stack files, the AWS documentation
and ``offline/prices.yaml``, never from what the program registers for the value under test.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto.events.models import EventPattern
from moto.iam.policy_validation import IAMTrustPolicyDocumentValidator

from components import contracts
from components.base import PROJECT, ROOT
from components.config import SECRET_KEYS
from components.config_docs import MODELINE, SCHEMA_PATH
from components.config_types import ConfigError
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from offline.plan import Plan
from offline.pricing import load_prices
from offline.stack_files import load_stack_files
from policy import resource_types as rt
from support import pack
from support.aws import (
    assert_valid_request,
    assert_valid_rule_and_target,
    delivered_message,
    event_matches,
    parliament_findings,
    policy_of,
)
from support.ecs import create_service_request
from support.stacks import STACKS, descendants, stack_run, variant_plan, variant_run
from support.stacks import component as component_of
from support.tools import tool

ECS = {"deploymentEngine": "ecs"}
MIGRATION = {**ECS, "engineMigration": "true"}
NO_ALARMS = {**ECS, "rollbackOnAlarm": "false"}
VARIANTS: dict[str, dict[str, str]] = {
    "codedeploy": {},
    "ecs": ECS,
    "ecs-without-alarms": NO_ALARMS,
    "ecs-engine-migration": MIGRATION,
}
"""Overrides of the committed stack file: none (the committed file, ``codedeploy``), or the ``ecs`` engine."""

# The documented defaults of the keys the committed files may leave out (README, "Configuration").
DEFAULT_DEPLOYMENT_CONFIG = "CodeDeployDefault.ECSAllAtOnce"
DEFAULT_TERMINATION_WAIT = 5

CODEDEPLOY_PRINCIPAL = "codedeploy.amazonaws.com"
# The ECS infrastructure role for load balancers is assumed by ECS itself.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/AmazonECSInfrastructureRolePolicyForLoadBalancers.html
ECS_PRINCIPAL = "ecs.amazonaws.com"


# --- Runs, made once per module ------------------------------------------------------------------------------


# --- What the stack file says --------------------------------------------------------------------------------


def stack_setting(stack: str, key: str) -> Any:
    files = load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS)))
    return files.config.get(f"{PROJECT}:{key}")


def stack_region(stack: str) -> str:
    files = load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS)))
    return str(files.config["aws:region"])


def termination_wait(stack: str) -> int:
    value = stack_setting(stack, "terminationWaitMinutes")
    return DEFAULT_TERMINATION_WAIT if value is None else int(value)


def expected_shift(stack: str) -> tuple[str, float | None, int | None]:
    """(ECS strategy, percent, minutes) of the stack's ``deploymentConfig``, read from the name of CodeDeploy's
    predefined configuration: all at once is ``BLUE_GREEN``, a canary ``CANARY``, linear steps ``LINEAR``.
    https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html#deployment-configurations-predefined-ecs
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html"""
    name = str(stack_setting(stack, "deploymentConfig") or DEFAULT_DEPLOYMENT_CONFIG).removeprefix("CodeDeployDefault.")
    if name == "ECSAllAtOnce":
        return "BLUE_GREEN", None, None
    canary = re.fullmatch(r"ECSCanary(\d+)Percent(\d+)Minutes", name)
    if canary:
        return "CANARY", float(canary[1]), int(canary[2])
    linear = re.fullmatch(r"ECSLinear(\d+)PercentEvery(\d+)Minutes?", name)
    if linear:
        return "LINEAR", float(linear[1]), int(linear[2])
    raise AssertionError(f"{stack}: no ECS strategy known for {name!r}")


# --- Reading a run -------------------------------------------------------------------------------------------


def service_of(found: ProgramRun) -> Registration:
    return found.one(rt.ECS_SERVICE)


def service_alarm_names(found: ProgramRun) -> list[str]:
    """The names of the alarms the ServiceAlarms component registers (other components have alarms of their own)."""
    owner = component_of(found, "ServiceAlarms")
    return sorted(a.props["name"] for a in descendants(found, owner) if a.type == rt.METRIC_ALARM)


def service_arn(stack: str, found: ProgramRun) -> str:
    """The service's ARN in the long format ECS events name it by (``service/<cluster>/<service>``).
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-account-settings.html#ecs-resource-ids"""
    cluster, service = found.outputs["clusterName"], found.outputs["serviceName"]
    return f"arn:aws:ecs:{stack_region(stack)}:{ACCOUNT_ID}:service/{cluster}/{service}"


def trusted_services(role: Registration) -> set[str]:
    found: set[str] = set()
    for statement in policy_of(role, "assumeRolePolicy")["Statement"]:
        service = (statement.get("Principal") or {}).get("Service", [])
        found.update([service] if isinstance(service, str) else service)
    return found


def roles_trusting(found: ProgramRun, principal: str) -> list[Registration]:
    return [r for r in found.of_type(rt.IAM_ROLE) if principal in trusted_services(r)]


def policies_of(found: ProgramRun, role: Registration) -> list[Registration]:
    """A role's inline policies: they name it by id or by name (the same string in AWS, not in the mocks)."""
    return [p for p in found.of_type(rt.IAM_ROLE_POLICY) if p.props.get("role") in (role.id, role.state.get("name"))]


def actions_of(policy: Registration) -> list[str]:
    actions: list[str] = []
    for statement in policy_of(policy)["Statement"]:
        action = statement.get("Action", [])
        actions += [action] if isinstance(action, str) else action
    return actions


def pipeline_of(found: ProgramRun) -> dict[str, Any]:
    props: dict[str, Any] = found.one(rt.CODEPIPELINE_PIPELINE).props
    return props


def deploy_stage_actions(found: ProgramRun) -> list[dict[str, Any]]:
    """The last stage's actions (the pipeline ends by deploying), in run order."""
    stage = pipeline_of(found)["stages"][-1]
    return sorted(stage["actions"], key=lambda a: a.get("runOrder", 1))


def project_named(found: ProgramRun, name: str) -> Registration:
    [project] = [p for p in found.of_type(rt.CODEBUILD_PROJECT) if p.props.get("name") == name]
    return project


def deploy_projects(found: ProgramRun) -> list[Registration]:
    """CodeBuild projects that are neither the build (the action with an output artifact) nor the release steps
    (the first and last actions of the Deploy stage)."""
    builds = {
        a["configuration"]["ProjectName"]
        for stage in pipeline_of(found)["stages"]
        for a in stage["actions"]
        if a.get("provider") == "CodeBuild" and a.get("outputArtifacts")
    }
    actions = deploy_stage_actions(found)
    release = {actions[0]["configuration"]["ProjectName"], actions[-1]["configuration"]["ProjectName"]}
    return [p for p in found.of_type(rt.CODEBUILD_PROJECT) if p.props.get("name") not in builds | release]


def rule_weights(rule: Registration) -> dict[str, float]:
    """Target group ARN -> weight of a listener rule's forward action."""
    [action] = rule.props["actions"]
    return {g["arn"]: g["weight"] for g in action["forward"]["targetGroups"]}


def listener_by_arn(found: ProgramRun, arn: str) -> Registration:
    [listener] = [r for r in found.of_type(rt.LB_LISTENER) if r.state.get("arn") == arn]
    return listener


def rule_by_arn(found: ProgramRun, arn: str) -> Registration:
    [rule] = [r for r in found.of_type(rt.LB_LISTENER_RULE) if r.state.get("arn") == arn]
    return rule


# --- 1. Every stack with every engine runs and passes the policy pack ---------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("stack", STACKS)
def test_the_program_runs_and_the_policy_pack_finds_nothing(stack: str, variant: str) -> None:
    found = variant_run(stack, VARIANTS[variant])
    controller = service_of(found).props["deploymentController"]["type"]
    assert controller == ("CODE_DEPLOY" if variant == "codedeploy" else "ECS")
    violations = pack.unexpected(stack, pack.violations(found), found)
    assert violations == [], "\n".join(str(v) for v in violations)


# --- 2. The ecs engine ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_registers_nothing_of_codedeploy(stack: str) -> None:
    found = variant_run(stack, ECS)
    assert found.of_type(rt.CODEDEPLOY_APPLICATION) == []
    assert found.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP) == []
    assert roles_trusting(found, CODEDEPLOY_PRINCIPAL) == []
    # The committed (codedeploy) run has them: the check above looks where they would be.
    committed = variant_run(stack, {})
    assert committed.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP) and roles_trusting(committed, CODEDEPLOY_PRINCIPAL)


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_deploy_stage_runs_one_deploy_project_between_the_release_steps(stack: str) -> None:
    found = variant_run(stack, ECS)
    [project] = deploy_projects(found)
    mark_deploying, deploy, mark_live = deploy_stage_actions(found)
    # The release steps tag the image before and after the deployment: one project, run orders 1 and 3.
    assert mark_deploying["configuration"]["ProjectName"] == mark_live["configuration"]["ProjectName"]
    assert [a.get("runOrder") for a in (mark_deploying, deploy, mark_live)] == [1, 2, 3]
    assert (deploy["provider"], deploy["configuration"]["ProjectName"]) == ("CodeBuild", project.props["name"])
    # It deploys what the build produced: the image detail and the task definition of the build's artifact.
    assert deploy["inputArtifacts"] == [contracts.BUILD_ARTIFACT]
    assert all(a.get("provider") != "CodeDeployToECS" for s in pipeline_of(found)["stages"] for a in s["actions"])
    # CodeBuild's API takes the project as registered.
    # https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html
    p = project.props
    environment = p["environment"]
    assert_valid_request(
        "codebuild",
        "CreateProject",
        {
            "name": p["name"],
            "description": p["description"],
            "source": {"type": p["source"]["type"], "buildspec": p["source"]["buildspec"]},
            "artifacts": {"type": p["artifacts"]["type"]},
            "environment": {
                "type": environment["type"],
                "image": environment["image"],
                "computeType": environment["computeType"],
                "imagePullCredentialsType": environment["imagePullCredentialsType"],
                "environmentVariables": environment["environmentVariables"],
            },
            "serviceRole": p["serviceRole"],
            "timeoutInMinutes": int(p["buildTimeout"]),
            "logsConfig": {"cloudWatchLogs": p["logsConfig"]["cloudwatchLogs"]},
        },
    )
    # It deploys this stack's service.
    variables = {v["name"]: v["value"] for v in environment["environmentVariables"]}
    assert variables.get("CLUSTER") == found.outputs["clusterName"]
    assert variables.get("SERVICE") == found.outputs["serviceName"]


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_pipeline_role_runs_the_deploy_project_and_nothing_of_codedeploy(stack: str) -> None:
    found = variant_run(stack, ECS)
    [role] = [r for r in found.of_type(rt.IAM_ROLE) if r.state["arn"] == pipeline_of(found)["roleArn"]]
    policies = policies_of(found, role)
    assert policies
    actions = [a for p in policies for a in actions_of(p)]
    assert [a for a in actions if a.lower().startswith("codedeploy:")] == []
    [project] = deploy_projects(found)
    # A CodeBuild action needs StartBuild and BatchGetBuilds on its project.
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/security-iam.html#how-to-custom-role
    runs_it = [
        s
        for p in policies
        for s in policy_of(p)["Statement"]
        if project.state["arn"] in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    ]
    assert {"codebuild:StartBuild", "codebuild:BatchGetBuilds"} <= {
        a for s in runs_it for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_service_deploys_itself_with_the_stack_files_shift_and_bake_time(stack: str) -> None:
    found = variant_run(stack, ECS)
    props = service_of(found).props
    assert props["deploymentController"] == {"type": "ECS"}
    configuration = props["deploymentConfiguration"]
    strategy, percent, minutes = expected_shift(stack)
    assert configuration["strategy"] == strategy
    # terminationWaitMinutes is ECS's bake time.
    assert int(configuration["bakeTimeInMinutes"]) == termination_wait(stack)
    canary, linear = configuration.get("canaryConfiguration"), configuration.get("linearConfiguration")
    if strategy == "CANARY":
        assert canary is not None and linear is None
        assert (canary["canaryPercent"], int(canary["canaryBakeTimeInMinutes"])) == (percent, minutes)
    elif strategy == "LINEAR":
        assert linear is not None and canary is None
        assert (linear["stepPercent"], int(linear["stepBakeTimeInMinutes"])) == (percent, minutes)
    else:
        assert canary is None and linear is None
    assert_valid_request("ecs", "CreateService", create_service_request(props))


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_service_routes_through_this_stacks_rules_with_a_role_ecs_assumes(stack: str) -> None:
    """``loadBalancers[].advancedConfiguration``: the alternate target group, the production and test rules, and
    the role ECS reweights them with.
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/alb-resources-for-blue-green.html"""
    found = variant_run(stack, ECS)
    [balancer] = service_of(found).props["loadBalancers"]
    advanced = balancer["advancedConfiguration"]
    groups = {g.state["arn"] for g in found.of_type(rt.LB_TARGET_GROUP)}
    primary, alternate = balancer["targetGroupArn"], advanced["alternateTargetGroupArn"]
    assert {primary, alternate} == groups and primary != alternate
    production = rule_by_arn(found, advanced["productionListenerRule"])
    test = rule_by_arn(found, advanced["testListenerRule"])
    assert production is not test and len(found.of_type(rt.LB_LISTENER_RULE)) == 2
    # The production rule sits on the listener whose port is the site's, the test rule on the test listener.
    ports = {r.name: int(listener_by_arn(found, r.props["listenerArn"]).props["port"]) for r in (production, test)}
    assert ports[test.name] == int(stack_setting(stack, "testListenerPort") or 8080)
    assert ports[production.name] != ports[test.name]
    # Production traffic starts where the service registers its tasks (the primary group), all of it.
    assert rule_weights(production) == {primary: 100, alternate: 0}
    # Both rules forward to both groups: ECS moves the weights, so the rules' actions are left to it.
    for rule in (production, test):
        assert set(rule_weights(rule)) == groups and sum(rule_weights(rule).values()) == 100
        assert "actions" in rule.ignore_changes
        # https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateRule.html
        [condition] = rule.props["conditions"]
        assert_valid_request(
            "elbv2",
            "CreateRule",
            {
                "ListenerArn": rule.props["listenerArn"],
                "Priority": int(rule.props["priority"]),
                "Conditions": [
                    {"Field": "path-pattern", "PathPatternConfig": {"Values": condition["pathPattern"]["values"]}}
                ],
                "Actions": [
                    {
                        "Type": "forward",
                        "ForwardConfig": {
                            "TargetGroups": [
                                {"TargetGroupArn": arn, "Weight": int(weight)}
                                for arn, weight in rule_weights(rule).items()
                            ]
                        },
                    }
                ],
            },
        )
    [role] = [r for r in found.of_type(rt.IAM_ROLE) if r.state["arn"] == advanced["roleArn"]]
    assert trusted_services(role) == {ECS_PRINCIPAL}


@pytest.mark.parametrize("rollback_on_alarm", [True, False], ids=["alarms", "no-alarms"])
@pytest.mark.parametrize("stack", STACKS)
def test_ecs_service_rolls_back_on_exactly_the_registered_alarms(stack: str, rollback_on_alarm: bool) -> None:
    """The service's deployment alarms are the ServiceAlarms' (both target groups), with rollback; none without
    alarms. https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
    (The commit-status alarms watch the feedback to GitLab, not the deployment: they are not among them.)"""
    found = variant_run(stack, ECS if rollback_on_alarm else NO_ALARMS)
    registered = service_alarm_names(found)
    alarms = service_of(found).props.get("alarms")
    if not rollback_on_alarm:
        assert registered == [] and alarms is None
        return
    assert registered, "rollbackOnAlarm true registers alarms"
    assert alarms is not None
    assert sorted(alarms["alarmNames"]) == registered
    assert (alarms["enable"], alarms["rollback"]) == (True, True)


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_service_detects_failed_deployments_with_the_circuit_breaker(stack: str) -> None:
    """ECS sends SERVICE_DEPLOYMENT_FAILED (what the deployment-failed rule listens for) "for services with
    deployment circuit breaker logic turned on", and the breaker works with blue/green deployments; without it,
    and without alarms, a deployment whose tasks never start cannot fail, and the deploy step waits out its
    timeout.
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-failure-detection.html"""
    for overrides in (ECS, NO_ALARMS):
        # The provider's ``deploymentCircuitBreaker``, sent as ``deploymentConfiguration.deploymentCircuitBreaker``.
        breaker = service_of(variant_run(stack, overrides)).props.get("deploymentCircuitBreaker") or {}
        assert (breaker.get("enable"), breaker.get("rollback")) == (True, True), overrides


def trust_with_its_role(role: Registration) -> str:
    """A role's trust policy as parliament reads a resource policy: its resource is the role itself (parliament
    reads every document as an identity policy and wants a Resource)."""
    doc = policy_of(role, "assumeRolePolicy")
    statements = [{**s, "Resource": role.state["arn"]} for s in doc["Statement"]]
    return json.dumps({**doc, "Statement": statements})


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_every_iam_policy_passes_parliament(stack: str) -> None:
    found = variant_run(stack, ECS)
    documents = {
        f"{r.name}.policy": str(r.props["policy"])
        for r in found.resources
        if r.type in (rt.IAM_ROLE_POLICY, rt.IAM_USER_POLICY, rt.IAM_POLICY)
    }
    roles = found.of_type(rt.IAM_ROLE)
    documents |= {f"{r.name}.assumeRolePolicy": trust_with_its_role(r) for r in roles}
    # The engine's own roles are among them.
    [project] = deploy_projects(found)
    assert roles_trusting(found, ECS_PRINCIPAL) and any(r.state["arn"] == project.props["serviceRole"] for r in roles)
    findings = {name: parliament_findings(text) for name, text in sorted(documents.items())}
    problems = {name: found_ for name, found_ in findings.items() if found_}
    assert problems == {}, json.dumps(problems, indent=2)
    for role in roles:
        # IAM's own grammar of trust policies (moto's copy of it).
        IAMTrustPolicyDocumentValidator(role.props["assumeRolePolicy"]).validate()


def targets_of(found: ProgramRun, rule: Registration) -> list[Registration]:
    return [t for t in found.of_type(rt.EVENTS_TARGET) if t.props.get("rule") == rule.props.get("name")]


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_every_event_rule_is_valid_for_eventbridge(stack: str) -> None:
    found = variant_run(stack, ECS)
    event_rules = found.of_type(rt.EVENTS_RULE)
    assert event_rules
    for rule in event_rules:
        # moto's EventBridge refuses a pattern it would not store (values that are neither object nor array,
        # empty arrays, invalid JSON).
        EventPattern.load(rule.props["eventPattern"])
        for target in targets_of(found, rule):
            assert_valid_rule_and_target(rule.props, target.props)


def deployment_event(service: str, event_name: str = "SERVICE_DEPLOYMENT_FAILED", region: str = "") -> dict[str, Any]:
    """An "ECS Deployment State Change" event as the ECS guide shows it ("Example service deployment failed
    event"), for the service with ARN ``service``.
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html"""
    return {
        "version": "0",
        "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE",
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": ACCOUNT_ID,
        "time": "2020-05-23T12:31:14Z",
        "region": region or service.split(":")[3],
        "resources": [service],
        "detail": {
            "eventType": "ERROR" if event_name == "SERVICE_DEPLOYMENT_FAILED" else "INFO",
            "eventName": event_name,
            "deploymentId": "ecs-svc/0123456789012345678",
            "updatedAt": "2020-05-23T11:11:11Z",
            "reason": "ECS deployment circuit breaker: task failed to start.",
        },
    }


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_deployment_failed_rule_hears_this_services_failed_deployments_only(stack: str) -> None:
    found = variant_run(stack, {**ECS, "notificationTopic": "true"})  # (dev has no topic of its own)
    topic = found.one(rt.SNS_TOPIC).state["arn"]
    notifying = [r for r in found.of_type(rt.EVENTS_RULE) if any(t.props["arn"] == topic for t in targets_of(found, r))]
    mine = service_arn(stack, found)
    failed = deployment_event(mine)
    [rule] = [r for r in notifying if event_matches(r.props["eventPattern"], failed)]
    cluster, service = found.outputs["clusterName"], found.outputs["serviceName"]
    others = [
        deployment_event(mine.replace(f"/{cluster}/{service}", f"/{cluster}/{service}-other")),
        deployment_event(mine.replace(f"/{cluster}/{service}", f"/{cluster}-other/{service}")),
        deployment_event(mine.replace(f":{ACCOUNT_ID}:", ":210987654321:")),
        deployment_event(mine, "SERVICE_DEPLOYMENT_COMPLETED"),
        deployment_event(mine, "SERVICE_DEPLOYMENT_IN_PROGRESS"),
    ]
    for event in others:
        assert not any(event_matches(r.props["eventPattern"], event) for r in found.of_type(rt.EVENTS_RULE)), event
    # The topic hears one line naming the deployment and why it failed.
    [target] = targets_of(found, rule)
    message = str(delivered_message(target.props, failed))
    assert failed["detail"]["deploymentId"] in message and failed["detail"]["reason"] in message


# --- 3. The codedeploy engine, as committed ------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_codedeploy_keeps_the_committed_behaviour(stack: str) -> None:
    found = variant_run(stack, {})
    assert found.of_type(rt.LB_LISTENER_RULE) == []
    assert deploy_projects(found) == []
    assert roles_trusting(found, ECS_PRINCIPAL) == []
    [group] = found.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP)
    configured = str(stack_setting(stack, "deploymentConfig") or DEFAULT_DEPLOYMENT_CONFIG)
    assert group.props["deploymentConfigName"] == (
        configured if configured.startswith("CodeDeployDefault.") else f"CodeDeployDefault.{configured}"
    )
    assert service_of(found).props["deploymentController"] == {"type": "CODE_DEPLOY"}
    [_, deploy, _] = deploy_stage_actions(found)
    assert deploy["provider"] == "CodeDeployToECS"


# --- 4. The offline plan with the ecs engine -----------------------------------------------------------------


def section(markdown: str, title: str) -> str:
    lines = markdown.split("\n")
    start = lines.index(f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start + 1 : end])


@pytest.mark.parametrize("migration", [False, True], ids=["switch-later", "engine-migration"])
@pytest.mark.parametrize("stack", STACKS)
def test_plan_names_the_engine_what_ecs_owns_and_what_a_switch_does(stack: str, migration: bool) -> None:
    plan = variant_plan(stack, MIGRATION if migration else ECS)
    text = section(plan.files["plan.md"].decode(), "Deployment engine")
    assert "`ecs`" in text and "`codedeploy`" in text
    strategy, _, _ = expected_shift(stack)
    assert f"`{strategy}`" in text
    assert re.search(rf"\b{termination_wait(stack)} min", text)
    # What ECS owns, as the resources' ignoreChanges say: every field of the service and of the rules.
    native = [service_of(plan.run), *plan.run.of_type(rt.LB_LISTENER_RULE)]
    for resource in native:
        assert resource.ignore_changes, resource.name
        assert f"`{resource.name}`" in text
        for field in resource.ignore_changes:
            assert f"`{field}`" in text, (resource.name, field)
    # A stack switched from codedeploy keeps its service: the plan says it is updated, not replaced.
    assert re.search(r"\bin place\b", text)
    sends_now = re.search(r"this run[^.]*load.balancer settings", text)
    if migration:
        assert "`loadBalancers`" not in text and sends_now
    else:
        assert "`loadBalancers`" in text and not sends_now and "engineMigration" in text


MERMAID_NODE = re.compile(r'^\s*(\w+)\["(.*)"\]\s*$')
MERMAID_EDGE = re.compile(r'^\s*(\w+)\s+(?:-->|-\.->)(?:\|"(.*?)"\|)?\s*(\w+)\s*$')


def mermaid(markdown: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Nodes (id -> label, lines joined by newlines) and edges (from, label, to) of the document's diagram."""
    body = markdown.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in body.split("\n"):
        if node := MERMAID_NODE.match(line):
            nodes[node[1]] = node[2].replace("<br/>", "\n")
        elif edge := MERMAID_EDGE.match(line):
            edges.append((edge[1], edge[2] or "", edge[3]))
    return nodes, edges


def node_with(nodes: Mapping[str, str], *parts: str) -> str:
    [found] = [i for i, label in nodes.items() if all(p in label for p in parts)]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_plan_diagram_shows_the_rules_weights_and_the_deploy_project(stack: str) -> None:
    plan = variant_plan(stack, ECS)
    nodes, edges = mermaid(plan.files["pipeline.md"].decode())
    rules_ = plan.run.of_type(rt.LB_LISTENER_RULE)
    assert rules_
    groups = {g.state["arn"]: g for g in plan.run.of_type(rt.LB_TARGET_GROUP)}
    for rule in rules_:
        listener = listener_by_arn(plan.run, rule.props["listenerArn"])
        port = int(listener.props["port"])
        listener_node = [i for i, label in nodes.items() if "listener" in label and label.endswith(f":{port}")]
        assert len(listener_node) == 1, (port, nodes)
        for arn, weight in rule_weights(rule).items():
            group = node_with(nodes, f"target group {groups[arn].props['name']}")
            labels = [label for a, label, b in edges if (a, b) == (listener_node[0], group)]
            assert any(re.search(rf"\bweight {weight:g}\b", label) for label in labels), (rule.name, labels)
    [project] = deploy_projects(plan.run)
    # Drawn in the Deploy stage, with the release steps it runs between.
    release = deploy_stage_actions(plan.run)[0]["configuration"]["ProjectName"]
    deploy = node_with(nodes, str(project.props["name"]))
    assert release in nodes[deploy]


def cost_rows(markdown: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")] for line in markdown.split("\n") if line.startswith("|")
    ]


def deploy_minutes_row(plan: Plan) -> tuple[float, float, str]:
    """(quantity, unit price, monthly cell) of cost.md's CodeBuild line of the deploy project."""
    [project] = deploy_projects(plan.run)
    [row] = [r for r in cost_rows(plan.files["cost.md"].decode()) if r[-1].startswith(f"{project.name} (")]
    item, quantity, price, monthly, _ = row
    assert "CodeBuild" in item
    return float(quantity.split()[0].replace(",", "")), float(price.removeprefix("$")), monthly


@pytest.mark.parametrize("stack", STACKS)
def test_plan_cost_counts_the_deploy_projects_minutes_growing_with_the_bake_time(stack: str) -> None:
    table = load_prices()
    uploads = table.assumptions["uploads_per_month"]
    per_run = table.assumptions["deploy_minutes_per_execution"]
    wait = termination_wait(stack)
    longer = wait + 10
    for minutes, plan in (
        (wait, variant_plan(stack, ECS)),
        (longer, variant_plan(stack, {**ECS, "terminationWaitMinutes": str(longer)})),
    ):
        [project] = deploy_projects(plan.run)
        environment = project.props["environment"]
        price = table.regions[stack_region(stack)]["codebuild_minute"][environment["type"]][environment["computeType"]]
        quantity, unit_price, monthly = deploy_minutes_row(plan)
        # Each execution runs the deploy step through the deployment and the whole bake time.
        assert quantity == uploads * (per_run + minutes)
        assert unit_price == price
        assert monthly == f"${quantity * price:,.2f}"
    growth = deploy_minutes_row(variant_plan(stack, {**ECS, "terminationWaitMinutes": str(longer)}))[0]
    assert growth - deploy_minutes_row(variant_plan(stack, ECS))[0] == uploads * (longer - wait)


# --- 5. Switching a deployed stack from codedeploy to ecs ----------------------------------------------------


def physical_names(resources: list[Registration]) -> set[tuple[str, str, str]]:
    """(type, owner, name) of resources that take a physical name: two with the same one cannot coexist, and a
    switch creates the new resources before it deletes the old ones."""
    return {(r.type, str(r.props.get("role", "")), str(r.props["name"])) for r in resources if r.props.get("name")}


@pytest.mark.parametrize("stack", STACKS)
def test_switching_engines_updates_the_service_in_place_and_swaps_the_engines_resources(stack: str) -> None:
    before, after = variant_run(stack, {}), variant_run(stack, MIGRATION)
    old, new = service_of(before), service_of(after)
    # Same URN and name: Pulumi updates the service (its deployment controller) rather than creating another.
    assert (new.urn, new.props["name"]) == (old.urn, old.props["name"])
    old_urns, new_urns = {r.urn: r for r in before.resources}, {r.urn: r for r in after.resources}
    removed = [r for u, r in old_urns.items() if u not in new_urns]
    added = [r for u, r in new_urns.items() if u not in old_urns]

    # Gone: CodeDeploy's application, group and role (with its policy), and nothing else.
    [codedeploy_role] = roles_trusting(before, CODEDEPLOY_PRINCIPAL)
    codedeploy = [
        *before.of_type(rt.CODEDEPLOY_APPLICATION),
        *before.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP),
        codedeploy_role,
        *policies_of(before, codedeploy_role),
    ]
    assert before.of_type(rt.CODEDEPLOY_APPLICATION) and before.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP)
    assert {r.urn for r in removed if r.custom} == {r.urn for r in codedeploy}
    for component in (r for r in removed if not r.custom):
        # A component that goes, goes whole.
        assert all(c.urn not in new_urns for c in before.resources if c.parent == component.urn), component.name

    # New: the two rules, the role ECS reweights them with, the deploy project with its role and logs.
    [infrastructure] = roles_trusting(after, ECS_PRINCIPAL)
    [project] = deploy_projects(after)
    [deploy_role] = [r for r in after.of_type(rt.IAM_ROLE) if r.state["arn"] == project.props["serviceRole"]]
    [logs] = [
        g
        for g in after.of_type(rt.LOG_GROUP)
        if g.props["name"] == project.props["logsConfig"]["cloudwatchLogs"]["groupName"]
    ]
    ecs = [
        *after.of_type(rt.LB_LISTENER_RULE),
        infrastructure,
        *policies_of(after, infrastructure),
        project,
        deploy_role,
        *policies_of(after, deploy_role),
        logs,
    ]
    assert len(after.of_type(rt.LB_LISTENER_RULE)) == 2
    assert {r.urn for r in added if r.custom} == {r.urn for r in ecs}
    # None of them takes a name one of the deleted resources still holds.
    assert physical_names([r for r in added if r.custom]) & physical_names([r for r in removed if r.custom]) == set()


@pytest.mark.parametrize("stack", STACKS)
def test_engine_migration_sends_the_services_load_balancers_that_one_run(stack: str) -> None:
    """ECS takes over the service's load balancers and task definition after the switch; the run that switches
    must send the load balancers once (alternate target group, rules, role), or the service stays without them.
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/migrate-codedeploy-to-ecs-bluegreen.html"""
    codedeploy, ecs, migration = (service_of(variant_run(stack, o)) for o in ({}, ECS, MIGRATION))
    assert {"taskDefinition", "loadBalancers"} <= set(codedeploy.ignore_changes)
    assert {"taskDefinition", "loadBalancers"} <= set(ecs.ignore_changes)
    assert "taskDefinition" in migration.ignore_changes
    assert "loadBalancers" not in migration.ignore_changes
    [balancer] = migration.props["loadBalancers"]
    assert balancer["advancedConfiguration"]["productionListenerRule"]
    # Only the ignore list differs: the service itself is the same as with ecs.
    assert migration.props == ecs.props


# --- 6. The stack-file schema ---------------------------------------------------------------------------------

SCHEMA_CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "ecs": ({"deploymentEngine": "ecs"}, True),
    "codedeploy": ({"deploymentEngine": "codedeploy"}, True),
    "ecs-migration": ({"deploymentEngine": "ecs", "engineMigration": True}, True),
    "ecs-migration-text": ({"deploymentEngine": "ecs", "engineMigration": "true"}, True),
    "lambda": ({"deploymentEngine": "lambda"}, False),
}


def schema_report(paths: list[Path]) -> dict[str, list[str]]:
    """check-jsonschema over stack files against the committed schema: file name -> its errors."""
    done = subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(SCHEMA_PATH), "--output-format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    assert not report.get("parse_errors"), report["parse_errors"]
    found: dict[str, list[str]] = {}
    for error in report.get("errors", []):
        best = error.get("best_deep_match") or error
        found.setdefault(Path(error["filename"]).name, []).append(f"{best['path']}: {best['message']}")
    return found


def committed_with(stack: str, extra: Mapping[str, Any], path: Path) -> Path:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    document["config"].update({f"{PROJECT}:{k}": v for k, v in extra.items()})
    path.write_text(f"{MODELINE}\n" + yaml.safe_dump(document, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def schema_verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("engine-schema")
    paths = [
        committed_with(stack, extra, folder / f"{stack}-{case}.yaml")
        for stack in STACKS
        for case, (extra, _) in SCHEMA_CASES.items()
    ]
    return schema_report(paths)


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
@pytest.mark.parametrize("stack", STACKS)
def test_the_schema_accepts_both_engines_and_refuses_another(
    stack: str, case: str, schema_verdicts: dict[str, list[str]]
) -> None:
    errors = schema_verdicts.get(f"{stack}-{case}.yaml", [])
    if SCHEMA_CASES[case][1]:
        assert errors == []
    else:
        assert errors and all(f"{PROJECT}:deploymentEngine" in e for e in errors), errors


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_refuses_another_engine_too(stack: str) -> None:
    with pytest.raises(ConfigError, match=rf"{PROJECT}:deploymentEngine"):
        stack_run(stack, overrides={"deploymentEngine": "lambda"})
