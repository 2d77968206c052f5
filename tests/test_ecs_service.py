"""EcsService on Pulumi mocks: the ECS side of the FargateService. Cluster, log group, roles, the first task
definition, the tasks' security group, and the service whose task definition and load balancers CodeDeploy owns
once it has deployed.

The service is built in an existing VPC's subnets (``support.bundles.subnets``) behind a stand-in blue target
group (``support.bundles.target_group``): what the LoadBalancer gives it in the FargateService.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pulumi
import pytest

from components.config import StackConfig
from components.contracts import IMAGE_PLACEHOLDER, placeholder
from components.ecs_service import (
    CODEDEPLOY_OWNED_SERVICE_FIELDS,
    FARGATE_SIZES,
    EcsService,
    EcsServiceArgs,
    NativeRouting,
)
from components.templates import TaskDefinitionValues, render_taskdef
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.aws import assert_valid_request, parliament_findings, policy_of
from support.stacks import REGION, component, run, stack_config

NAME = "service"
VALUES: dict[str, str] = {
    "appName": "shop",
    "containerName": "web",
    "containerPort": "8080",
    "cpu": "512",
    "memory": "2048",
    "desiredCount": "2",
    "environment": '{"GREETING": "hello world", "MODE": "demo"}',
    "logRetentionDays": "30",
}
PREFIX = "shop-dev"
"""``<appName>-<stack>`` of ``VALUES`` in the dev stack."""
INITIAL_IMAGE = "public.ecr.aws/nginx/nginx:stable-alpine"
"""The image of the first task definition when the stack file names none."""


def config(**changes: str) -> StackConfig:
    return stack_config({**VALUES, **changes})


def ecs_service(cfg: StackConfig, *, public: bool = False) -> EcsService:
    """The EcsService as the FargateService builds it, behind the stand-in blue target group; its runtime
    exported."""
    subnets = bundles.subnets(public=public)
    made = EcsService(
        NAME,
        EcsServiceArgs(
            context=cfg.context,
            container=cfg.container,
            container_name=cfg.container_name,
            vpc_id=subnets.vpc_id,
            task_subnet_ids=subnets.task_subnet_ids,
            assign_public_ip=subnets.assign_public_ip,
            target_group_arn=bundles.target_group("blue").arn,
        ),
    )
    r = made.runtime
    pulumi.export("clusterName", r.cluster_name)
    pulumi.export("serviceName", r.service_name)
    pulumi.export("logGroupName", r.log_group_name)
    pulumi.export("executionRole", {"name": r.execution_role.name, "arn": r.execution_role.arn})
    pulumi.export("taskRole", {"name": r.task_role.name, "arn": r.task_role.arn})
    pulumi.export("taskdefValues", r.taskdef_values.apply(dataclasses.asdict))
    pulumi.export("static", {"family": r.family, "containerName": r.container_name, "port": r.container_port})
    return made


def ecs_run(*, public: bool = False, **changes: str) -> ProgramRun:
    cfg = config(**changes)
    return run(lambda: ecs_service(cfg, public=public))


@pytest.fixture(scope="module")
def found() -> ProgramRun:
    return ecs_run()


def role(found: ProgramRun, name: str) -> Registration:
    return found.one(rt.IAM_ROLE, f"{NAME}-{name}")


# --- Drift contract with CodeDeploy ---------------------------------------------------------------


def test_service_is_deployed_by_codedeploy_and_leaves_it_its_fields(found: ProgramRun) -> None:
    # A CODE_DEPLOY service's task definition and load balancers change only through a CodeDeploy deployment;
    # UpdateService refuses them (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html).
    assert CODEDEPLOY_OWNED_SERVICE_FIELDS == ("taskDefinition", "loadBalancers")
    service = found.one(rt.ECS_SERVICE)
    assert service.props["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert service.ignore_changes == ["taskDefinition", "loadBalancers"]
    assert [r.name for r in found.resources if r.ignore_changes] == [service.name], "nothing else ignores changes"


# --- The service ------------------------------------------------------------------------------------


def test_service_starts_behind_the_given_target_group_in_the_task_subnets(found: ProgramRun) -> None:
    service = found.one(rt.ECS_SERVICE).props
    blue = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:targetgroup/{PREFIX}-blue/0123456789abcdef"
    assert service["loadBalancers"] == [{"targetGroupArn": blue, "containerName": "web", "containerPort": 8080}]
    assert service["desiredCount"] == 2
    assert service["launchType"] == "FARGATE"
    assert service["cluster"] == found.one(rt.ECS_CLUSTER).state["arn"]
    assert service["taskDefinition"] == found.one(rt.ECS_TASK_DEFINITION).state["arn"]
    network = service["networkConfiguration"]
    assert network["subnets"] == ["subnet-0private0000000a", "subnet-0private0000000b"]
    assert network["assignPublicIp"] is False
    assert network["securityGroups"] == [found.one(rt.EC2_SECURITY_GROUP, f"{NAME}-tasks").id]


def test_public_tasks_get_a_public_ip() -> None:
    service = ecs_run(public=True).one(rt.ECS_SERVICE).props
    assert service["networkConfiguration"]["assignPublicIp"] is True
    assert service["networkConfiguration"]["subnets"] == ["subnet-0public00000000a", "subnet-0public00000000b"]


def test_service_is_a_valid_ecs_request(found: ProgramRun) -> None:
    p = found.one(rt.ECS_SERVICE).props
    network = p["networkConfiguration"]
    params = {
        "cluster": p["cluster"],
        "serviceName": p["name"],
        "taskDefinition": p["taskDefinition"],
        "desiredCount": int(p["desiredCount"]),  # Pulumi carries every number as a float
        "launchType": p["launchType"],
        "platformVersion": p["platformVersion"],
        "deploymentController": {"type": p["deploymentController"]["type"]},
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": network["subnets"],
                "securityGroups": network["securityGroups"],
                "assignPublicIp": "ENABLED" if network["assignPublicIp"] else "DISABLED",
            }
        },
        "loadBalancers": [{**lb, "containerPort": int(lb["containerPort"])} for lb in p["loadBalancers"]],
        "healthCheckGracePeriodSeconds": int(p["healthCheckGracePeriodSeconds"]),
        "propagateTags": p["propagateTags"],
        "enableECSManagedTags": p["enableEcsManagedTags"],
    }
    assert_valid_request("ecs", "CreateService", params)


def test_tasks_go_out_over_https_only_and_take_nothing_on_their_own(found: ProgramRun) -> None:
    task_sg = found.one(rt.EC2_SECURITY_GROUP, f"{NAME}-tasks")
    assert "ingress" not in task_sg.props and "egress" not in task_sg.props, "rules are separate resources only"
    # The provider removes the allow-all egress rule AWS adds to a new group: only declared rules let anything
    # out (https://www.pulumi.com/registry/packages/aws/api-docs/ec2/securitygroup/).
    [egress] = found.of_type(rt.VPC_SECURITY_GROUP_EGRESS_RULE)
    p = egress.props
    assert p["securityGroupId"] == task_sg.id
    assert (p["ipProtocol"], p["fromPort"], p["toPort"], p["cidrIpv4"]) == ("tcp", 443, 443, "0.0.0.0/0")
    assert found.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE) == [], "the FargateService opens the port to the ALB"


# --- Logs and IAM ------------------------------------------------------------------------------------


def test_log_group_and_its_retention(found: ProgramRun) -> None:
    logs = found.one(rt.LOG_GROUP).props
    assert logs == {**logs, "name": f"/ecs/{PREFIX}", "retentionInDays": 30}


def test_the_log_group_is_protected_unless_force_destroy(found: ProgramRun) -> None:
    assert [r.name for r in found.resources if r.protect] == [f"{NAME}-logs"], "the data, not the settings"
    assert [r.name for r in ecs_run(forceDestroy="true").resources if r.protect] == []


def test_execution_role_policy_passes_parliament_and_is_scoped_to_the_log_group(found: ProgramRun) -> None:
    # The execution role lets ECS write the tasks' logs
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html); log streams are
    # "<log group ARN>:log-stream:<name>", hence "<ARN>:*".
    log_group_arn = found.one(rt.LOG_GROUP).state["arn"]
    policy = found.one(rt.IAM_ROLE_POLICY, f"{NAME}-execution-logs")
    assert policy.props["role"] == role(found, "execution").id
    assert parliament_findings(policy.props["policy"]) == []
    [statement] = policy_of(policy)["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == [f"{log_group_arn}:*"]


def test_roles_are_for_ecs_tasks_of_this_account_and_the_task_role_has_no_permissions(found: ProgramRun) -> None:
    # aws:SourceAccount keeps ECS from assuming the role for another account (confused deputy)
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html).
    roles = {r.name: r for r in found.of_type(rt.IAM_ROLE)}
    assert set(roles) == {f"{NAME}-execution", f"{NAME}-task"}
    assert {r.props["name"] for r in roles.values()} == {f"{PREFIX}-execution", f"{PREFIX}-task"}
    for reg in roles.values():
        [statement] = policy_of(reg, "assumeRolePolicy")["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Action"] == "sts:AssumeRole"
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
        assert "managedPolicyArns" not in reg.props
    policies = found.of_type(rt.IAM_ROLE_POLICY)
    assert [p.props["role"] for p in policies] == [roles[f"{NAME}-execution"].id]
    assert found.of_type(rt.IAM_ROLE_POLICY_ATTACHMENT) == []


def test_runtime_names_what_the_pipeline_deploys_onto(found: ProgramRun) -> None:
    out = found.outputs
    assert out["clusterName"] == found.one(rt.ECS_CLUSTER).state["name"] == PREFIX
    assert out["serviceName"] == found.one(rt.ECS_SERVICE).state["name"] == PREFIX
    assert out["logGroupName"] == f"/ecs/{PREFIX}"
    for key, name in (("executionRole", "execution"), ("taskRole", "task")):
        assert out[key] == {"name": f"{PREFIX}-{name}", "arn": role(found, name).state["arn"]}
    assert out["static"] == {"family": PREFIX, "containerName": "web", "port": 8080}
    assert found.one(rt.ECS_TASK_DEFINITION).props["family"] == PREFIX, "deployments register revisions of it"


# --- Task definition -----------------------------------------------------------------------------------


def first_task_definition(found: ProgramRun) -> dict[str, Any]:
    """The registered task definition as ECS RegisterTaskDefinition takes it."""
    props = found.one(rt.ECS_TASK_DEFINITION).props
    params = {key: props[key] for key in ("family", "cpu", "memory", "networkMode", "requiresCompatibilities")}
    params.update(
        executionRoleArn=props["executionRoleArn"],
        taskRoleArn=props["taskRoleArn"],
        runtimePlatform=props["runtimePlatform"],
        containerDefinitions=json.loads(props["containerDefinitions"]),
    )
    return params


def test_the_validator_catches_what_it_should() -> None:
    # Guards the tests below: a wrong type and an unknown field are reported.
    bad = {"family": "x", "cpu": 256, "containerDefinitions": [{"name": "x", "imagee": "y"}]}
    with pytest.raises(AssertionError) as caught:
        assert_valid_request("ecs", "RegisterTaskDefinition", bad)
    assert "cpu" in str(caught.value) and "imagee" in str(caught.value)


def test_first_task_definition_is_valid_for_ecs_and_runs_the_initial_image(found: ProgramRun) -> None:
    params = first_task_definition(found)
    assert_valid_request("ecs", "RegisterTaskDefinition", params)
    assert (params["family"], params["cpu"], params["memory"]) == (PREFIX, "512", "2048")
    # Fargate tasks use the awsvpc network mode
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html).
    assert (params["networkMode"], params["requiresCompatibilities"]) == ("awsvpc", ["FARGATE"])
    assert params["executionRoleArn"] == role(found, "execution").state["arn"]
    assert params["taskRoleArn"] == role(found, "task").state["arn"]
    [container] = params["containerDefinitions"]
    assert container["name"] == "web"
    assert container["image"] == INITIAL_IMAGE
    # awsvpc: the host port is the container port (or left out).
    assert container["portMappings"] == [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]
    assert container["environment"] == [
        {"name": "GREETING", "value": "hello world"},
        {"name": "MODE", "value": "demo"},
    ]
    # awslogs options: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html
    assert container["logConfiguration"]["options"] == {
        "awslogs-group": f"/ecs/{PREFIX}",
        "awslogs-region": REGION,
        "awslogs-stream-prefix": "web",
    }


def test_the_configured_initial_image_is_the_first_revisions() -> None:
    image = "registry.example.com/shop/web:1.0"
    [container] = first_task_definition(ecs_run(initialImage=image))["containerDefinitions"]
    assert container["image"] == image


def test_pipeline_taskdef_json_is_valid_for_ecs_and_matches_the_first_revision(found: ProgramRun) -> None:
    values = TaskDefinitionValues(**found.outputs["taskdefValues"])
    assert values.image == placeholder(IMAGE_PLACEHOLDER), "CodeDeploy fills the image in"
    assert values.image == "<IMAGE1_NAME>"
    rendered = json.loads(render_taskdef(values))
    assert_valid_request("ecs", "RegisterTaskDefinition", rendered)
    first = first_task_definition(found)
    [pipeline_container], [first_container] = rendered["containerDefinitions"], first["containerDefinitions"]
    assert {**pipeline_container, "image": None} == {**first_container, "image": None}
    assert {k: v for k, v in rendered.items() if k != "containerDefinitions"} == {
        k: v for k, v in first.items() if k != "containerDefinitions"
    }


def test_taskdef_template_renders_any_environment_value_safely() -> None:
    tricky = {"QUOTE": 'say "hi"', "BRACES": "${not_a_placeholder}", "NEWLINE": "a\nb"}
    values = TaskDefinitionValues(
        family="f", cpu=256, memory=512, execution_role_arn="arn:aws:iam::1:role/e",
        task_role_arn="arn:aws:iam::1:role/t", container_name="c", container_port=80, image="i",
        environment=tricky, log_group="/ecs/f", region=REGION,
    )  # fmt: skip
    rendered = json.loads(render_taskdef(values))
    assert_valid_request("ecs", "RegisterTaskDefinition", rendered)
    assert {e["name"]: e["value"] for e in rendered["containerDefinitions"][0]["environment"]} == tricky


# Fargate task sizes, from the table in the ECS guide
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size),
# memory in GB as the table gives it.
GB = 1024
SIZES_FROM_THE_GUIDE = {
    256: [512, 1 * GB, 2 * GB],
    512: [g * GB for g in range(1, 4 + 1)],
    1024: [g * GB for g in range(2, 8 + 1)],
    2048: [g * GB for g in range(4, 16 + 1)],
    4096: [g * GB for g in range(8, 30 + 1)],
    8192: [g * GB for g in range(16, 60 + 1, 4)],
    16384: [g * GB for g in range(32, 120 + 1, 8)],
}


def test_fargate_sizes_are_the_ones_aws_lists() -> None:
    assert {cpu: list(memories) for cpu, memories in FARGATE_SIZES.items()} == SIZES_FROM_THE_GUIDE


@pytest.mark.parametrize("cpu", sorted(SIZES_FROM_THE_GUIDE))
def test_the_largest_memory_of_every_cpu_makes_a_valid_task_definition(cpu: int) -> None:
    memory = SIZES_FROM_THE_GUIDE[cpu][-1]
    params = first_task_definition(ecs_run(cpu=str(cpu), memory=str(memory)))
    assert_valid_request("ecs", "RegisterTaskDefinition", params)
    assert (params["cpu"], params["memory"]) == (str(cpu), str(memory)), "ECS takes task-level sizes as strings"


# --- Component shape -----------------------------------------------------------------------------------


def test_every_child_is_named_after_the_component_and_parented_to_it(found: ProgramRun) -> None:
    ecs = component(found, "EcsService", NAME)
    children = found.children_of(ecs)
    others = [r for r in found.resources if r is not ecs]
    assert {r.urn for r in children} == {r.urn for r in others}, "every resource is a direct child"
    assert all(r.name.startswith(f"{NAME}-") for r in children), [r.name for r in children]
    physical = [r.props["name"] for r in children if "name" in r.props]
    assert len(physical) >= 5 and all(PREFIX in n for n in physical), physical


# --- ECS-native blue/green (the ecs engine) ------------------------------------------------------------
#
# With ``deploymentEngine: ecs`` the service deploys itself: the ECS deployment controller with a blue/green,
# canary or linear strategy and a bake time, on the load balancer's production and test rules, with the role
# ECS shifts traffic with, and the alarms that roll a deployment back.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html

LISTENER_RULE = f"listener-rule/app/{PREFIX}/0123456789abcdef"
PRODUCTION_RULE = bundles.arn("elasticloadbalancing", f"{LISTENER_RULE}/00000000000000a0/1111111111111111")
TEST_RULE = bundles.arn("elasticloadbalancing", f"{LISTENER_RULE}/00000000000000b0/2222222222222222")
INFRASTRUCTURE_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/{PREFIX}-ecs-infrastructure"
ALARMS = (f"{PREFIX}-blue-5xx-rate", f"{PREFIX}-green-5xx-rate")
"""Stand-in names of the alarms that stop a deployment."""

# CodeDeploy's predefined ECS configurations, as ECS-native strategies: all at once is a blue/green shift;
# "Canary10Percent5Minutes" shifts 10 % of the traffic, then the other 90 % five minutes later;
# "Linear10PercentEvery1Minutes" shifts 10 % every minute until all traffic is shifted.
# https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html#deployment-configurations-predefined-ecs
# ECS's names for them (strategy, canaryConfiguration, linearConfiguration):
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html
SHIFTS_AS_ECS_STRATEGIES: dict[str, dict[str, Any]] = {
    "CodeDeployDefault.ECSAllAtOnce": {"strategy": "BLUE_GREEN"},
    "CodeDeployDefault.ECSCanary10Percent5Minutes": {
        "strategy": "CANARY",
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5},
    },
    "CodeDeployDefault.ECSCanary10Percent15Minutes": {
        "strategy": "CANARY",
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 15},
    },
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes": {
        "strategy": "LINEAR",
        "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 1},
    },
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes": {
        "strategy": "LINEAR",
        "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 3},
    },
}


def native_service(cfg: StackConfig, alarm_names: tuple[str, ...] = ALARMS, *, routed: bool = True) -> EcsService:
    """The EcsService as the FargateService builds it with the ecs engine, on stand-in rules and role (without
    them when not ``routed``)."""
    native = cfg.deploy.native_blue_green(alarm_names)
    assert native is not None, "deploymentEngine ecs"
    subnets = bundles.subnets()
    routing = NativeRouting(
        alternate_target_group_arn=bundles.target_group("green").arn,
        production_rule_arn=PRODUCTION_RULE,
        test_rule_arn=TEST_RULE,
        role_arn=INFRASTRUCTURE_ROLE,
    )
    return EcsService(
        NAME,
        EcsServiceArgs(
            context=cfg.context,
            container=cfg.container,
            container_name=cfg.container_name,
            vpc_id=subnets.vpc_id,
            task_subnet_ids=subnets.task_subnet_ids,
            assign_public_ip=subnets.assign_public_ip,
            target_group_arn=bundles.target_group("blue").arn,
            native=native,
            routing=routing if routed else None,
        ),
    )


def native_run(alarm_names: tuple[str, ...] = ALARMS, **changes: str) -> ProgramRun:
    cfg = config(deploymentEngine="ecs", **changes)
    return run(lambda: native_service(cfg, alarm_names))


@pytest.fixture(scope="module")
def native() -> ProgramRun:
    return native_run(deploymentConfig="CodeDeployDefault.ECSCanary10Percent5Minutes", terminationWaitMinutes="30")


def bake_minutes(value: str) -> int:
    """The provider takes ECS's bake times as strings (its "nullable int") and sends them as integers."""
    assert value == str(int(value)), value
    return int(value)


def create_service(p: dict[str, Any]) -> dict[str, Any]:
    """The ECS CreateService request for a service on mocks, as the provider sends it: the service's ``alarms``
    go in ``deploymentConfiguration.alarms`` (API_DeploymentConfiguration.html)."""
    network = p["networkConfiguration"]
    params: dict[str, Any] = {
        "cluster": p["cluster"],
        "serviceName": p["name"],
        "taskDefinition": p["taskDefinition"],
        "desiredCount": int(p["desiredCount"]),  # Pulumi carries every number as a float
        "launchType": p["launchType"],
        "platformVersion": p["platformVersion"],
        "deploymentController": {"type": p["deploymentController"]["type"]},
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": network["subnets"],
                "securityGroups": network["securityGroups"],
                "assignPublicIp": "ENABLED" if network["assignPublicIp"] else "DISABLED",
            }
        },
        "loadBalancers": [{**lb, "containerPort": int(lb["containerPort"])} for lb in p["loadBalancers"]],
        "healthCheckGracePeriodSeconds": int(p["healthCheckGracePeriodSeconds"]),
        "propagateTags": p["propagateTags"],
        "enableECSManagedTags": p["enableEcsManagedTags"],
    }
    deployment: dict[str, Any] = {}
    if "deploymentConfiguration" in p:
        given = p["deploymentConfiguration"]
        known = {"strategy", "bakeTimeInMinutes", "canaryConfiguration", "linearConfiguration"}
        assert set(given) <= known, set(given) - known
        deployment["strategy"] = given["strategy"]
        if "bakeTimeInMinutes" in given:
            deployment["bakeTimeInMinutes"] = bake_minutes(given["bakeTimeInMinutes"])
        if "canaryConfiguration" in given:
            canary = given["canaryConfiguration"]
            deployment["canaryConfiguration"] = {
                "canaryPercent": float(canary["canaryPercent"]),
                "canaryBakeTimeInMinutes": bake_minutes(canary["canaryBakeTimeInMinutes"]),
            }
        if "linearConfiguration" in given:
            linear = given["linearConfiguration"]
            deployment["linearConfiguration"] = {
                "stepPercent": float(linear["stepPercent"]),
                "stepBakeTimeInMinutes": bake_minutes(linear["stepBakeTimeInMinutes"]),
            }
    if "alarms" in p:
        deployment["alarms"] = {key: p["alarms"][key] for key in ("alarmNames", "enable", "rollback")}
    if deployment:
        params["deploymentConfiguration"] = deployment
    return params


def test_the_validator_catches_a_wrong_strategy_and_an_unknown_advanced_field() -> None:
    # Guards the tests below.
    with pytest.raises(AssertionError, match="CANARIES"):
        assert_valid_request(
            "ecs", "CreateService", {"serviceName": "s", "deploymentConfiguration": {"strategy": "CANARIES"}}
        )
    advanced = {"alternateTargetGroup": "x", "productionListenerRule": "r", "roleArn": "a"}
    with pytest.raises(AssertionError, match="alternateTargetGroup"):
        assert_valid_request(
            "ecs", "CreateService", {"serviceName": "s", "loadBalancers": [{"advancedConfiguration": advanced}]}
        )


def within_the_api_ranges(deployment: dict[str, Any]) -> list[str]:
    """What ECS would refuse that the model does not say: bake times 0 to 1440 minutes, the canary's share a
    multiple of 0.1 from 0.1 to 100, a linear step's from 3 to 100 (botocore's documentation of the shapes)."""
    wrong = []
    minutes = [deployment.get("bakeTimeInMinutes", 0)]
    minutes.append(deployment.get("canaryConfiguration", {}).get("canaryBakeTimeInMinutes", 0))
    minutes.append(deployment.get("linearConfiguration", {}).get("stepBakeTimeInMinutes", 0))
    wrong += [f"bake time {m}" for m in minutes if not 0 <= m <= 1440]
    if "canaryConfiguration" in deployment:
        share = deployment["canaryConfiguration"]["canaryPercent"]
        if not (0.1 <= share <= 100 and round(share * 10) == share * 10):
            wrong.append(f"canary {share}")
    if "linearConfiguration" in deployment:
        step = deployment["linearConfiguration"]["stepPercent"]
        if not (3 <= step <= 100 and round(step * 10) == step * 10):
            wrong.append(f"step {step}")
    return wrong


@pytest.mark.parametrize("deployment_config", sorted(SHIFTS_AS_ECS_STRATEGIES))
def test_native_service_deploys_with_the_configs_strategy_and_bake_time(deployment_config: str) -> None:
    found = native_run(deploymentConfig=deployment_config, terminationWaitMinutes="12")
    service = found.one(rt.ECS_SERVICE).props
    # ECS-native blue/green runs under the ECS deployment controller
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-implementation.html).
    assert service["deploymentController"] == {"type": "ECS"}
    request = create_service(service)
    assert_valid_request("ecs", "CreateService", request)
    deployment = request["deploymentConfiguration"]
    # terminationWaitMinutes (how long the old tasks stay after the shift) is ECS's bake time.
    expected = {**SHIFTS_AS_ECS_STRATEGIES[deployment_config], "bakeTimeInMinutes": 12}
    assert {k: v for k, v in deployment.items() if k != "alarms"} == expected
    assert within_the_api_ranges(deployment) == []


def test_native_service_starts_on_blue_with_green_as_the_alternate_behind_the_rules(native: ProgramRun) -> None:
    # advancedConfiguration: the alternate target group, the production and test rules, and the role ECS calls
    # Elastic Load Balancing with (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_AdvancedConfiguration.html).
    blue = bundles.arn("elasticloadbalancing", f"targetgroup/{PREFIX}-blue/0123456789abcdef")
    green = bundles.arn("elasticloadbalancing", f"targetgroup/{PREFIX}-green/0123456789abcdef")
    assert native.one(rt.ECS_SERVICE).props["loadBalancers"] == [
        {
            "targetGroupArn": blue,
            "containerName": "web",
            "containerPort": 8080,
            "advancedConfiguration": {
                "alternateTargetGroupArn": green,
                "productionListenerRule": PRODUCTION_RULE,
                "testListenerRule": TEST_RULE,
                "roleArn": INFRASTRUCTURE_ROLE,
            },
        }
    ]


def test_native_alarms_stop_a_deployment_and_roll_it_back(native: ProgramRun) -> None:
    # An alarm in ALARM sets the deployment to failed; with rollback ECS returns to the last completed one
    # (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentAlarms.html).
    deployment = create_service(native.one(rt.ECS_SERVICE).props)["deploymentConfiguration"]
    assert deployment["alarms"] == {"alarmNames": list(ALARMS), "enable": True, "rollback": True}
    without = native_run(alarm_names=()).one(rt.ECS_SERVICE).props
    assert "alarms" not in without, "no alarms configured: none named (a failed deployment still rolls back)"
    assert "alarms" not in create_service(without)["deploymentConfiguration"]


def test_native_service_leaves_its_task_definition_and_load_balancers_to_ecs(native: ProgramRun) -> None:
    # A deployment registers a new revision and swaps the primary and alternate target groups; a `pulumi up`
    # that sent the created values would revert it
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html).
    service = native.one(rt.ECS_SERVICE)
    assert service.ignore_changes == ["taskDefinition", "loadBalancers"]
    assert [r.name for r in native.resources if r.ignore_changes] == [service.name], "nothing else ignores changes"


def test_engine_migration_sends_the_load_balancers_once() -> None:
    # Switching a deployed CODE_DEPLOY service: the one `pulumi up` with engineMigration sends the load balancers
    # (with advancedConfiguration) to the service; the task definition stays the deployments'.
    service = native_run(engineMigration="true").one(rt.ECS_SERVICE)
    assert service.ignore_changes == ["taskDefinition"]
    assert "advancedConfiguration" in service.props["loadBalancers"][0]


def test_native_blue_green_takes_both_the_engine_and_the_routing() -> None:
    refused: list[str] = []
    native_cfg = config(deploymentEngine="ecs")
    codedeploy_cfg = config()

    def without_routing() -> None:
        try:
            native_service(native_cfg, routed=False)
        except ValueError as error:
            refused.append(str(error))

    def without_engine() -> None:
        subnets = bundles.subnets()
        args = EcsServiceArgs(
            context=codedeploy_cfg.context,
            container=codedeploy_cfg.container,
            container_name=codedeploy_cfg.container_name,
            vpc_id=subnets.vpc_id,
            task_subnet_ids=subnets.task_subnet_ids,
            assign_public_ip=subnets.assign_public_ip,
            target_group_arn=bundles.target_group("blue").arn,
            routing=NativeRouting(
                alternate_target_group_arn=bundles.target_group("green").arn,
                production_rule_arn=PRODUCTION_RULE,
                test_rule_arn=TEST_RULE,
                role_arn=INFRASTRUCTURE_ROLE,
            ),
        )
        try:
            EcsService(NAME, args)
        except ValueError as error:
            refused.append(str(error))

    for build in (without_routing, without_engine):
        assert run(build).of_type(rt.ECS_SERVICE) == [], "no service half native"
    assert len(refused) == 2, refused


def test_a_codedeploy_service_has_none_of_the_native_settings(found: ProgramRun) -> None:
    service = found.one(rt.ECS_SERVICE).props
    assert "deploymentConfiguration" not in service and "alarms" not in service
    assert all("advancedConfiguration" not in lb for lb in service["loadBalancers"])
