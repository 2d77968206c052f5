"""CodeDeployBlueGreen on mocks: the ECS application and its blue/green deployment group on exactly the service's
target groups and listeners, the automatic rollbacks (on failure, on request, on the stack's alarms), and the
CodeDeploy role scoped to this service, its listeners, its task roles and its alarms.

The service's side comes from stand-ins (``support.bundles``); the alarms from a real ``ServiceAlarms`` where the
test is about the group waiting for them, from a plain list of names elsewhere.
"""

from __future__ import annotations

import dataclasses
from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pytest

from components.base import StackContext
from components.codedeploy_blue_green import CodeDeployBlueGreen, CodeDeployBlueGreenArgs
from components.ecs_service import TaskRuntime
from components.load_balancer import any_load_balancer_type
from components.service_alarms import ServiceAlarms, ServiceAlarmsArgs
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.aws import assert_valid_request, by_sid, parliament_findings, policy_of
from support.stacks import REGION, run, stack_config

PREFIX = bundles.PREFIX
CLUSTER = f"{PREFIX}-cluster"
SERVICE = f"{PREFIX}-service"
LINEAR = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes"
TERMINATION_WAIT = 12
ALARM_NAMES = [f"{PREFIX}-blue-5xx-rate", f"{PREFIX}-green-5xx-rate"]


def context() -> StackContext:
    return stack_config({"appName": "shop"}).context


def runtime() -> TaskRuntime:
    """The service's runtime, with a cluster and a service of different names (so an ARN that swapped them
    would show)."""
    return dataclasses.replace(bundles.runtime(), cluster_name=bundles.out(CLUSTER), service_name=bundles.out(SERVICE))


def build_group(alarms: str) -> ProgramRun:
    """The component as DeployStage builds it; ``alarms``: ``none``, ``service-alarms`` (a ServiceAlarms of the
    stack's config, as ``__main__.py`` wires it) or ``names`` (a plain list)."""

    def build() -> None:
        endpoints = bundles.endpoints()
        service = runtime()
        alarm_names: pulumi.Input[list[str]] | None = None
        if alarms == "service-alarms":
            config = stack_config({"appName": "shop", "rollbackOnAlarm": "true"}).alarms
            args = ServiceAlarmsArgs(PREFIX, config, endpoints, bundles.topic().topic_arn)
            alarm_names = ServiceAlarms("alarms", args).alarm_names
        elif alarms == "names":
            alarm_names = ALARM_NAMES
        codedeploy = CodeDeployBlueGreen(
            "deploy",
            CodeDeployBlueGreenArgs(
                context=context(),
                deployment_config_name=LINEAR,
                termination_wait_minutes=TERMINATION_WAIT,
                runtime=service,
                endpoints=endpoints,
                alarm_names=alarm_names,
            ),
        )
        # What the test compares with: the stand-ins' values, and what the component hands the pipeline.
        pulumi.export("prodListener", endpoints.prod_listener_arn)
        pulumi.export("testListener", endpoints.test_listener_arn)
        pulumi.export("blue", endpoints.blue.name)
        pulumi.export("green", endpoints.green.name)
        pulumi.export("taskRole", service.task_role.arn)
        pulumi.export("executionRole", service.execution_role.arn)
        deployment = codedeploy.deployment
        pulumi.export("applicationName", deployment.application_name)
        pulumi.export("applicationArn", deployment.application_arn)
        pulumi.export("groupName", deployment.deployment_group_name)
        pulumi.export("configName", deployment.deployment_config_name)

    return run(build)


@pytest.fixture(scope="module")
def plain() -> ProgramRun:
    """Without alarms (``rollbackOnAlarm: false``)."""
    return build_group("none")


@pytest.fixture(scope="module")
def alarmed() -> ProgramRun:
    """With the stack's ServiceAlarms, as on prod."""
    return build_group("service-alarms")


@pytest.fixture(scope="module")
def named() -> ProgramRun:
    return build_group("names")


def group_of(found: ProgramRun) -> Registration:
    return found.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP)


def statements(found: ProgramRun) -> dict[str, dict[str, Any]]:
    return by_sid(policy_of(found.one(rt.IAM_ROLE_POLICY, "deploy-codedeploy-policy")))


# --- The deployment group ----------------------------------------------------------------------------------


def test_deployment_group_is_blue_green_on_exactly_the_services_target_groups_and_listeners(plain: ProgramRun) -> None:
    # ECS blue/green: https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-groups-create-ecs.html
    # (one target-group pair, a production listener and an optional test listener, the ECS service).
    app = plain.one(rt.CODEDEPLOY_APPLICATION).props
    group = group_of(plain).props
    assert app["computePlatform"] == "ECS"
    assert group["appName"] == app["name"]
    assert group["deploymentStyle"] == {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
    assert group["ecsService"] == {"clusterName": CLUSTER, "serviceName": SERVICE}
    pair = group["loadBalancerInfo"]["targetGroupPairInfo"]
    assert [tg["name"] for tg in pair["targetGroups"]] == [plain.outputs["blue"], plain.outputs["green"]]
    assert pair["prodTrafficRoute"] == {"listenerArns": [plain.outputs["prodListener"]]}
    assert pair["testTrafficRoute"] == {"listenerArns": [plain.outputs["testListener"]]}
    assert group["deploymentConfigName"] == LINEAR
    # https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_BlueGreenDeploymentConfiguration.html
    blue_green = group["blueGreenDeploymentConfig"]
    assert blue_green["deploymentReadyOption"] == {"actionOnTimeout": "CONTINUE_DEPLOYMENT"}
    assert blue_green["terminateBlueInstancesOnDeploymentSuccess"] == {
        "action": "TERMINATE",
        "terminationWaitTimeInMinutes": TERMINATION_WAIT,
    }
    # https://docs.aws.amazon.com/codedeploy/latest/userguide/deployments-rollback-and-redeploy.html
    assert group["autoRollbackConfiguration"]["enabled"] is True
    assert "DEPLOYMENT_FAILURE" in group["autoRollbackConfiguration"]["events"]
    assert group["serviceRoleArn"] == plain.one(rt.IAM_ROLE, "deploy-codedeploy").state["arn"]


def test_the_group_waits_for_its_roles_policy(plain: ProgramRun) -> None:
    # IAM is eventually consistent: a group created before the role may act fails its first deployment.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
    assert plain.one(rt.IAM_ROLE_POLICY, "deploy-codedeploy-policy").urn in group_of(plain).dependencies


def test_the_component_hands_the_pipeline_the_group_it_made(plain: ProgramRun) -> None:
    app = plain.one(rt.CODEDEPLOY_APPLICATION)
    group = group_of(plain).props
    assert plain.outputs["applicationName"] == app.props["name"] == PREFIX
    assert plain.outputs["applicationArn"] == app.state["arn"]
    assert plain.outputs["groupName"] == group["deploymentGroupName"] == PREFIX
    assert plain.outputs["configName"] == group["deploymentConfigName"]


def test_alarms_stop_and_roll_back_a_deployment(alarmed: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-groups-configure-advanced-options.html
    # (alarms stop a deployment; DEPLOYMENT_STOP_ON_ALARM rolls it back).
    reg = group_of(alarmed)
    group = reg.props
    alarms = alarmed.of_type(rt.METRIC_ALARM)
    names = [a.props["name"] for a in alarms]
    assert len(names) == 4
    assert group["alarmConfiguration"]["enabled"] is True
    assert sorted(group["alarmConfiguration"]["alarms"]) == sorted(names)
    assert set(group["autoRollbackConfiguration"]["events"]) == {
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_REQUEST",
        "DEPLOYMENT_STOP_ON_ALARM",
    }
    # The names come from the alarm resources: the group is created (or updated) after every alarm exists.
    assert {a.urn for a in alarms} <= set(reg.dependencies)
    # CodeDeploy reads the state of exactly those alarms.
    read = statements(alarmed)["ReadTheDeploymentAlarms"]
    assert read["Action"] == ["cloudwatch:DescribeAlarms"]
    assert sorted(read["Resource"]) == sorted(a.state["arn"] for a in alarms)


def test_alarm_names_given_as_a_list_are_read_by_their_arns(named: ProgramRun) -> None:
    # CloudWatch alarm ARNs: arn:aws:cloudwatch:<region>:<account>:alarm:<name>
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html#amazoncloudwatch-resources-for-iam-policies
    group = group_of(named).props
    assert group["alarmConfiguration"] == {"enabled": True, "alarms": ALARM_NAMES}
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["autoRollbackConfiguration"]["events"]
    assert statements(named)["ReadTheDeploymentAlarms"]["Resource"] == [
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}" for name in ALARM_NAMES
    ]


def test_no_alarm_configuration_when_alarms_are_off(plain: ProgramRun) -> None:
    assert plain.of_type(rt.METRIC_ALARM) == []
    group = group_of(plain).props
    assert "alarmConfiguration" not in group
    # Without alarms there is nothing to stop on; a stop by hand still rolls back.
    assert set(group["autoRollbackConfiguration"]["events"]) == {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"}
    doc = statements(plain)
    assert "ReadTheDeploymentAlarms" not in doc
    assert not any(a.startswith("cloudwatch:") for s in doc.values() for a in s["Action"])


def create_deployment_group_request(group: dict[str, Any]) -> dict[str, Any]:
    """The CreateDeploymentGroup call the provider makes from the resource's inputs."""
    blue_green = group["blueGreenDeploymentConfig"]
    terminate = blue_green["terminateBlueInstancesOnDeploymentSuccess"]
    request: dict[str, Any] = {
        "applicationName": group["appName"],
        "deploymentGroupName": group["deploymentGroupName"],
        "deploymentConfigName": group["deploymentConfigName"],
        "serviceRoleArn": group["serviceRoleArn"],
        "deploymentStyle": group["deploymentStyle"],
        "blueGreenDeploymentConfiguration": {
            "deploymentReadyOption": blue_green["deploymentReadyOption"],
            "terminateBlueInstancesOnDeploymentSuccess": {
                "action": terminate["action"],
                # The engine carries numbers as floats, as Pulumi's wire format does.
                "terminationWaitTimeInMinutes": int(terminate["terminationWaitTimeInMinutes"]),
            },
        },
        "ecsServices": [group["ecsService"]],
        "loadBalancerInfo": {"targetGroupPairInfoList": [group["loadBalancerInfo"]["targetGroupPairInfo"]]},
        "autoRollbackConfiguration": group["autoRollbackConfiguration"],
    }
    if "alarmConfiguration" in group:
        alarms = group["alarmConfiguration"]
        request["alarmConfiguration"] = {
            "enabled": alarms["enabled"],
            "alarms": [{"name": n} for n in alarms["alarms"]],
        }
    return request


@pytest.mark.parametrize("variant", ["plain", "alarmed"])
def test_deployment_group_validates_against_the_codedeploy_api(variant: str, request: pytest.FixtureRequest) -> None:
    # https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_CreateDeploymentGroup.html (the model checks
    # every field and enum value: deployment type and option, rollback events, actionOnTimeout...).
    found: ProgramRun = request.getfixturevalue(variant)
    assert_valid_request("codedeploy", "CreateDeploymentGroup", create_deployment_group_request(group_of(found).props))


# --- The CodeDeploy role -----------------------------------------------------------------------------------


def test_codedeploy_role_is_assumed_by_codedeploy_for_this_account_only(plain: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codedeploy/latest/userguide/getting-started-create-service-role.html and the
    # confused-deputy guard: https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html
    role = plain.one(rt.IAM_ROLE, "deploy-codedeploy")
    (trust,) = policy_of(role, "assumeRolePolicy")["Statement"]
    assert trust["Principal"] == {"Service": "codedeploy.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    assert role.props["name"] == f"{PREFIX}-codedeploy"
    # The role's one policy is the one that names this service.
    assert [p.props["role"] for p in plain.of_type(rt.IAM_ROLE_POLICY)] == [role.id]


def test_codedeploy_role_acts_on_this_service_and_its_listeners_only(plain: ProgramRun) -> None:
    # What AWSCodeDeployRoleForECS grants on "*", narrowed to the resource types the Service Authorization
    # Reference lists: https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSCodeDeployRoleForECS.html
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html
    doc = statements(plain)
    service = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/{CLUSTER}/{SERVICE}"
    assert doc["ManageTheService"]["Resource"] == [service]
    assert doc["CreateTaskSetsOfTheService"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{CLUSTER}", "ecs:service": service}
    }
    assert doc["DeleteTaskSetsOfTheService"]["Resource"] == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-set/{CLUSTER}/{SERVICE}/*"
    ]
    listeners = doc["ShiftTrafficOnTheListeners"]["Resource"]
    assert [a.replace(":listener/*/", ":listener/app/") for a in listeners] == [
        plain.outputs["prodListener"],
        plain.outputs["testListener"],
    ]
    # "*" only for Describe calls, and for CreateTaskSet under the cluster and service conditions.
    for sid, statement in doc.items():
        if "*" in statement["Resource"]:
            assert sid in {"DescribeLoadBalancing", "CreateTaskSetsOfTheService"}, sid
            assert all(":Describe" in a for a in statement["Action"]) or "Condition" in statement


def test_codedeploy_role_passes_the_task_roles_to_ecs_only(plain: ProgramRun) -> None:
    # iam:PassedToService: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService
    passing = statements(plain)["PassTheTaskRolesToEcs"]
    assert passing["Action"] == ["iam:PassRole"]
    assert passing["Resource"] == [plain.outputs["taskRole"], plain.outputs["executionRole"]]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    others = [sid for sid, s in statements(plain).items() if "iam:PassRole" in s["Action"]]
    assert others == ["PassTheTaskRolesToEcs"]


@pytest.mark.parametrize("variant", ["plain", "alarmed", "named"])
def test_the_codedeploy_policy_passes_parliament(variant: str, request: pytest.FixtureRequest) -> None:
    found: ProgramRun = request.getfixturevalue(variant)
    policies = found.of_type(rt.IAM_ROLE_POLICY)
    assert [p.name for p in policies] == ["deploy-codedeploy-policy"]
    assert parliament_findings(policies[0].props["policy"]) == []


# --- any_load_balancer_type --------------------------------------------------------------------------------

LISTENER = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:listener/app/shop-dev/50dc6c495c0c9188/f2f7dc8efc522ab2"


def test_a_listener_arn_matches_both_load_balancer_types_and_still_only_that_listener() -> None:
    # ModifyListener's resource types are listener/app/... and listener/net/...:
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancingv2.html
    pattern = any_load_balancer_type(LISTENER)
    assert fnmatchcase(LISTENER, pattern)
    assert fnmatchcase(LISTENER.replace(":listener/app/", ":listener/net/"), pattern)
    assert not fnmatchcase(LISTENER.replace("f2f7dc8efc522ab2", "0467ef3c8400ae65"), pattern)
    assert not fnmatchcase(LISTENER.replace("50dc6c495c0c9188", "0000000000000000"), pattern)
    assert pattern.count("*") == 1


def test_only_the_listener_segment_is_widened() -> None:
    # A load balancer named "app" must not have its own name replaced.
    arn = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:listener/app/app/50dc6c495c0c9188/f2f7dc8efc522ab2"
    assert any_load_balancer_type(arn) == arn.replace(":listener/app/app/", ":listener/*/app/")
