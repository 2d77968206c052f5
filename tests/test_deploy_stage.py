"""DeployStage on mocks: its config (DeployConfig), the five parts it composes and how it wires them (the group the
pipeline deploys with, the pipeline the trigger starts and the failure rules watch), with and without the topic
and the manual approval, the grants ``__main__.py`` makes on its artifact store, and the aliases that keep the
URNs its children had before the split.

Each part is tested on its own in its module (test_codedeploy_blue_green, test_artifact_store,
test_delivery_pipeline, test_pipeline_trigger, test_failure_rules); here, what only the whole shows.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pulumi
import pytest

from components import contracts
from components.config_types import ConfigError
from components.deploy_stage import DeployConfig, DeployStage, DeployStageArgs
from components.deployment_engine import (
    TRAFFIC_SHIFTS,
    DeploymentConfigName,
    NativeBlueGreen,
    deploy_step_minutes,
    max_bake_minutes,
)
from components.service_alarms import ServiceAlarms, ServiceAlarmsArgs
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.aws import (
    assert_valid_rule_and_target,
    delivered_message,
    event_matches,
    parliament_findings,
    policy_of,
)
from support.stacks import REGION, component, descendants, run, stack_config

PREFIX = bundles.PREFIX
PARTS = ["CodeDeployBlueGreen", "ArtifactStore", "DeliveryPipeline", "PipelineTrigger", "FailureRules"]
# The predefined ECS deployment configurations:
# https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html
ECS_CONFIGS = [
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
]


# --- DeployConfig ------------------------------------------------------------------------------------------


def deploy_config(**values: str) -> DeployConfig:
    return stack_config({"appName": "shop", **values}).deploy


@pytest.mark.parametrize("name", ECS_CONFIGS)
def test_every_predefined_ecs_deployment_configuration_is_accepted_with_or_without_its_prefix(name: str) -> None:
    assert deploy_config(deploymentConfig=name).deployment_config == name
    assert deploy_config(deploymentConfig=name.removeprefix("CodeDeployDefault.")).deployment_config == name


def test_an_unknown_deployment_configuration_is_refused_naming_the_key_and_what_is_allowed() -> None:
    with pytest.raises(ConfigError) as refused:
        deploy_config(deploymentConfig="ECSLinear50PercentEvery1Minutes")
    message = str(refused.value)
    assert "gitlab-fargate:deploymentConfig" in message
    assert "ECSLinear50PercentEvery1Minutes" in message
    assert all(name in message for name in ECS_CONFIGS)


@pytest.mark.parametrize(("value", "accepted"), [("0", True), ("2880", True), ("-1", False), ("2881", False)])
def test_the_termination_wait_is_what_codedeploy_accepts(value: str, accepted: bool) -> None:
    # terminationWaitTimeInMinutes: at most 2 days (2880 minutes).
    # https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_BlueInstanceTerminationOption.html
    if accepted:
        assert deploy_config(terminationWaitMinutes=value).termination_wait_minutes == int(value)
    else:
        with pytest.raises(ConfigError, match=r"gitlab-fargate:terminationWaitMinutes: .* 0 to 2880"):
            deploy_config(terminationWaitMinutes=value)


def test_manual_approval_is_a_flag() -> None:
    assert deploy_config(manualApproval="true").manual_approval is True
    assert deploy_config(manualApproval="false").manual_approval is False
    with pytest.raises(ConfigError, match="gitlab-fargate:manualApproval: expected true or false, got 'yes please'"):
        deploy_config(manualApproval="yes please")


def test_by_default_a_deployment_shifts_all_traffic_at_once_without_approval() -> None:
    # README's configuration table: deploymentConfig ECSAllAtOnce, terminationWaitMinutes 5, manualApproval false.
    assert deploy_config() == DeployConfig(
        deployment_config="CodeDeployDefault.ECSAllAtOnce", termination_wait_minutes=5, manual_approval=False
    )


# --- The composite -------------------------------------------------------------------------------------------


def build_stage(*, alarms: bool = False, approval: bool = False, notify: bool = True) -> ProgramRun:
    """The stage as ``__main__.py`` wires it: alarms from a ServiceAlarms, the topic of a Notifications, the grants
    on its artifact store."""
    cfg = stack_config(
        {
            "appName": "shop",
            "deploymentConfig": "ECSLinear10PercentEvery1Minutes",
            "terminationWaitMinutes": "12",
            "rollbackOnAlarm": str(alarms).lower(),
            "manualApproval": str(approval).lower(),
        }
    )

    def build() -> None:
        endpoints, projects, topic = bundles.endpoints(), bundles.projects(), bundles.topic()
        service_alarms = ServiceAlarms(
            "alarms", ServiceAlarmsArgs(cfg.context.name_prefix, cfg.alarms, endpoints, topic.topic_arn)
        )
        deploy = DeployStage(
            "deploy",
            DeployStageArgs(
                context=cfg.context,
                config=cfg.deploy,
                source=bundles.source(),
                projects=projects,
                endpoints=endpoints,
                runtime=bundles.runtime(),
                alarm_names=service_alarms.alarm_names,
                topic=topic if notify else None,
            ),
        )
        deploy.artifacts.grant_read_write(projects.build_role, purpose="build")
        deploy.artifacts.grant_read(projects.release_role, purpose="release")
        pulumi.export("pipelineName", deploy.pipeline.name)
        pulumi.export("pipelineArn", deploy.pipeline.arn)
        pulumi.export("pipelineUrl", deploy.pipeline.url)
        pulumi.export("artifactBucket", deploy.artifacts.bucket_name)
        pulumi.export("topicArn", topic.topic_arn)

    return run(build)


@pytest.fixture(scope="module")
def stage() -> ProgramRun:
    """No alarms, no approval, a topic."""
    return build_stage()


@pytest.fixture(scope="module")
def approved() -> ProgramRun:
    """With alarms and the manual approval stage, as on prod."""
    return build_stage(alarms=True, approval=True)


@pytest.fixture(scope="module")
def console_only() -> ProgramRun:
    """The manual approval without a topic."""
    return build_stage(approval=True, notify=False)


def parts(found: ProgramRun) -> list[Registration]:
    return [r for r in found.children_of(component(found, "DeployStage")) if not r.custom]


def part_types(found: ProgramRun) -> list[str]:
    """The classes of the parts, sorted (registration order under mocks depends on scheduling)."""
    return sorted(r.type.rsplit(":", 1)[-1] for r in parts(found))


def pipeline_of(found: ProgramRun) -> dict[str, Any]:
    props: dict[str, Any] = found.one(rt.CODEPIPELINE_PIPELINE).props
    return props


def actions(found: ProgramRun) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for s in pipeline_of(found)["stages"] for a in s["actions"]}


def test_the_stage_is_made_of_its_five_parts_under_its_name(stage: ProgramRun) -> None:
    assert part_types(stage) == sorted(PARTS)
    assert {r.name for r in parts(stage)} == {"deploy"}
    # Everything else is a child of a part, none of the stage itself.
    assert [r.name for r in stage.children_of(component(stage, "DeployStage")) if r.custom] == []


def test_without_a_topic_there_are_no_failure_rules(console_only: ProgramRun) -> None:
    assert part_types(console_only) == sorted(p for p in PARTS if p != "FailureRules")
    assert [r.name for r in console_only.of_type(rt.EVENTS_RULE)] == ["deploy-trigger"]


def test_the_config_reaches_the_group_and_the_pipeline(approved: ProgramRun, stage: ProgramRun) -> None:
    for found in (approved, stage):
        group = found.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props
        assert group["deploymentConfigName"] == "CodeDeployDefault.ECSLinear10PercentEvery1Minutes"
        assert (
            group["blueGreenDeploymentConfig"]["terminateBlueInstancesOnDeploymentSuccess"][
                "terminationWaitTimeInMinutes"
            ]
            == 12
        )
    assert [s["name"] for s in pipeline_of(approved)["stages"]] == ["Source", "Build", "Approve", "Deploy"]
    assert [s["name"] for s in pipeline_of(stage)["stages"]] == ["Source", "Build", "Deploy"]


def test_the_alarms_reach_the_group_only_when_asked(approved: ProgramRun, stage: ProgramRun) -> None:
    alarms = sorted(a.props["name"] for a in approved.of_type(rt.METRIC_ALARM))
    assert len(alarms) == 4
    group = approved.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props
    assert sorted(group["alarmConfiguration"]["alarms"]) == alarms
    assert "alarmConfiguration" not in stage.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props


def test_the_pipeline_deploys_with_the_group_the_stage_made(stage: ProgramRun) -> None:
    app = stage.one(rt.CODEDEPLOY_APPLICATION).props["name"]
    group = stage.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props["deploymentGroupName"]
    deploy = actions(stage)["Deploy"]["configuration"]
    assert (deploy["ApplicationName"], deploy["DeploymentGroupName"]) == (app, group)
    (store,) = pipeline_of(stage)["artifactStores"]
    assert store["location"] == stage.one(rt.S3_BUCKET).state["bucket"] == stage.outputs["artifactBucket"]


def test_the_upload_starts_this_pipeline_and_its_failures_reach_the_topic(stage: ProgramRun) -> None:
    pipeline = stage.one(rt.CODEPIPELINE_PIPELINE)
    trigger = stage.one(rt.EVENTS_TARGET, "deploy-trigger-target").props
    assert trigger["arn"] == pipeline.state["arn"]
    failed = stage.one(rt.EVENTS_RULE, "deploy-pipeline-failed").props["eventPattern"]
    assert json.loads(failed)["detail"]["pipeline"] == [pipeline.props["name"]]
    group = stage.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props
    deployment = json.loads(stage.one(rt.EVENTS_RULE, "deploy-deployment-failed").props["eventPattern"])
    assert deployment["detail"]["application"] == [group["appName"]]
    assert deployment["detail"]["deploymentGroup"] == [group["deploymentGroupName"]]
    for name in ("deploy-pipeline-failed", "deploy-deployment-failed"):
        assert stage.one(rt.EVENTS_TARGET, f"{name}-target").props["arn"] == stage.outputs["topicArn"]
    # A failed execution of this pipeline is one the rule delivers.
    event = {
        "source": "aws.codepipeline",
        "detail-type": "CodePipeline Pipeline Execution State Change",
        "detail": {"pipeline": pipeline.props["name"], "state": "FAILED"},
    }
    assert event_matches(failed, event)


def test_approval_requests_go_to_the_topic_or_to_the_console_only(
    approved: ProgramRun, console_only: ProgramRun
) -> None:
    assert actions(approved)["Approve"]["configuration"]["NotificationArn"] == approved.outputs["topicArn"]
    assert "NotificationArn" not in actions(console_only)["Approve"]["configuration"]
    pipeline_policy = policy_of(console_only.one(rt.IAM_ROLE_POLICY, "deploy-pipeline-policy"))
    assert not any(a.split(":")[0] in {"sns", "kms"} for s in pipeline_policy["Statement"] for a in s["Action"])


def test_outputs_name_the_pipeline_and_its_console_page(stage: ProgramRun) -> None:
    assert stage.outputs["pipelineName"] == PREFIX
    assert stage.outputs["pipelineArn"] == stage.one(rt.CODEPIPELINE_PIPELINE).state["arn"]
    assert stage.outputs["pipelineUrl"] == (
        "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/shop-dev/view?region=eu-west-1"
    )


def test_every_policy_passes_parliament(stage: ProgramRun, approved: ProgramRun) -> None:
    # Per run: the CodeDeploy, pipeline and trigger roles' policies, and the two artifact grants.
    policies = stage.of_type(rt.IAM_ROLE_POLICY) + approved.of_type(rt.IAM_ROLE_POLICY)
    assert len(policies) == 10
    for reg in policies:
        assert parliament_findings(reg.props["policy"]) == [], reg.name


# --- Aliases: the URNs of the children the stage had before the split --------------------------------------------


def test_every_child_keeps_its_name_and_its_former_urn_as_an_alias(approved: ProgramRun) -> None:
    """Before the split every resource here was the DeployStage's own child: each keeps its name and declares that
    URN as an alias, so a deployed stack updates in place. https://www.pulumi.com/docs/iac/concepts/options/aliases/
    """
    stage = component(approved, "DeployStage").type
    checked = 0
    for part in parts(approved):
        for child in descendants(approved, part):
            # The URN with the stage, not the part, as the parent: the part's type leaves the type chain (the mock
            # engine writes only the parent's own type in it, Pulumi's engine every ancestor's).
            former = child.urn.replace(f"{part.type}$", f"{stage}$", 1).replace(f"{stage}${stage}$", f"{stage}$")
            assert former != child.urn
            assert former in child.aliases, child.name
            assert child.name.startswith("deploy-"), child.name
            checked += 1
    # Every resource of the stage, the grants made in __main__.py included.
    assert checked == len(descendants(approved, component(approved, "DeployStage"))) - len(PARTS)
    grants = {g.name for g in approved.of_type(rt.IAM_ROLE_POLICY)}
    assert {"deploy-build-artifacts", "deploy-release-artifacts"} <= grants


def test_two_stages_do_not_collide() -> None:
    """Every child is named from its component's name: a second stage in one program is another set of URNs."""

    def build() -> None:
        for name, app in (("deploy", "shop"), ("deploy-b", "shopb")):
            cfg = stack_config({"appName": app})
            prefix = cfg.context.name_prefix
            DeployStage(
                name,
                DeployStageArgs(
                    context=cfg.context,
                    config=cfg.deploy,
                    source=bundles.source(prefix),
                    projects=bundles.projects(prefix),
                    endpoints=bundles.endpoints(prefix),
                    runtime=bundles.runtime(prefix),
                    topic=bundles.topic(prefix),
                ),
            )

    found = run(build)
    urns = [r.urn for r in found.resources]
    assert len(urns) == len(set(urns))
    assert len(found.of_type(rt.CODEPIPELINE_PIPELINE)) == 2


# --- ECS-native engine -------------------------------------------------------------------------------------------
# deploymentEngine "ecs": the same deploymentConfig as an ECS strategy, terminationWaitMinutes as the bake time
# (bounded by what the deploy step can wait for), engineMigration for the one run of a switch; the stage deploys
# through the EcsDeployment's CodeBuild project instead of CodeDeploy.

ECS_CLUSTER = f"{PREFIX}-cluster"
ECS_SERVICE = f"{PREFIX}-service"
ECS_SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/{ECS_CLUSTER}/{ECS_SERVICE}"
ECS_PARTS = ["EcsDeployment", "ArtifactStore", "DeliveryPipeline", "PipelineTrigger", "FailureRules"]
# CodePipeline stops a CodeBuild action after 8 hours ("CodeBuild build action and test action: 8 hours").
# https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
CODEBUILD_ACTION_LIMIT_MINUTES = 8 * 60


def test_the_engine_is_codedeploy_unless_ecs_is_asked_for() -> None:
    assert deploy_config().deployment_engine == "codedeploy"
    assert deploy_config(deploymentEngine="codedeploy").deployment_engine == "codedeploy"
    assert deploy_config(deploymentEngine="ecs").deployment_engine == "ecs"
    with pytest.raises(ConfigError) as refused:
        deploy_config(deploymentEngine="argo")
    (problem,) = refused.value.problems
    assert problem.startswith("gitlab-fargate:deploymentEngine:")
    assert "argo" in problem and "codedeploy" in problem and "ecs" in problem


@pytest.mark.parametrize("name", ECS_CONFIGS)
def test_with_ecs_a_bake_time_the_deploy_step_cannot_wait_for_is_refused_naming_the_key_and_the_range(
    name: DeploymentConfigName,
) -> None:
    shift = TRAFFIC_SHIFTS[name]
    limit = max_bake_minutes(shift)
    # The longest bake allowed still ends within what CodePipeline gives the deploy step.
    assert deploy_step_minutes(shift, limit) <= CODEBUILD_ACTION_LIMIT_MINUTES
    ecs = {"deploymentEngine": "ecs", "deploymentConfig": name}
    assert deploy_config(**ecs, terminationWaitMinutes=str(limit)).termination_wait_minutes == limit
    with pytest.raises(ConfigError) as refused:
        deploy_config(**ecs, terminationWaitMinutes=str(limit + 1))
    (problem,) = refused.value.problems
    assert problem.startswith("gitlab-fargate:terminationWaitMinutes:")
    assert str(limit + 1) in problem and f"0 to {limit}" in problem
    # Only with ecs: CodeDeploy waits up to 2880 minutes for the same key (the existing range test).
    assert deploy_config(deploymentConfig=name, terminationWaitMinutes=str(limit + 1)).termination_wait_minutes == (
        limit + 1
    )
    # The default (5 minutes) fits every configuration.
    assert deploy_config(**ecs).termination_wait_minutes == 5


def test_engine_migration_is_only_for_a_switch_to_ecs() -> None:
    assert deploy_config(deploymentEngine="ecs", engineMigration="true").engine_migration is True
    assert deploy_config().engine_migration is False
    assert deploy_config(engineMigration="false").engine_migration is False
    for codedeploy in ({}, {"deploymentEngine": "codedeploy"}):
        with pytest.raises(ConfigError) as refused:
            deploy_config(**codedeploy, engineMigration="true")
        (problem,) = refused.value.problems
        assert problem.startswith("gitlab-fargate:engineMigration:")
        assert "ecs" in problem


def test_native_blue_green_is_what_the_service_needs_with_ecs_only() -> None:
    alarms = (f"{PREFIX}-blue-5xx-rate", f"{PREFIX}-green-5xx-rate")
    assert deploy_config().native_blue_green(alarms) is None
    assert deploy_config(deploymentConfig="ECSCanary10Percent15Minutes").native_blue_green(alarms) is None
    cfg = deploy_config(
        deploymentEngine="ecs",
        deploymentConfig="ECSCanary10Percent15Minutes",
        terminationWaitMinutes="42",
        engineMigration="true",
    )
    assert cfg.native_blue_green(alarms) == NativeBlueGreen(
        shift=TRAFFIC_SHIFTS["CodeDeployDefault.ECSCanary10Percent15Minutes"],
        bake_minutes=42,
        alarm_names=alarms,
        send_load_balancers=True,
    )
    plain = deploy_config(deploymentEngine="ecs").native_blue_green(())
    assert plain is not None
    assert (plain.shift, plain.bake_minutes) == (TRAFFIC_SHIFTS["CodeDeployDefault.ECSAllAtOnce"], 5)
    assert plain.alarm_names == () and plain.send_load_balancers is False


def build_ecs_stage() -> ProgramRun:
    """The stage with deploymentEngine ecs, as ``__main__.py`` wires it (alarms, topic, approval, grants), for a
    service whose cluster and service names differ."""
    cfg = stack_config(
        {
            "appName": "shop",
            "deploymentEngine": "ecs",
            "deploymentConfig": "ECSCanary10Percent5Minutes",
            "terminationWaitMinutes": "20",
            "rollbackOnAlarm": "true",
            "manualApproval": "true",
        }
    )

    def build() -> None:
        endpoints, projects, topic = bundles.endpoints(), bundles.projects(), bundles.topic()
        runtime = dataclasses.replace(
            bundles.runtime(), cluster_name=bundles.out(ECS_CLUSTER), service_name=bundles.out(ECS_SERVICE)
        )
        service_alarms = ServiceAlarms(
            "alarms", ServiceAlarmsArgs(cfg.context.name_prefix, cfg.alarms, endpoints, topic.topic_arn)
        )
        deploy = DeployStage(
            "deploy",
            DeployStageArgs(
                context=cfg.context,
                config=cfg.deploy,
                source=bundles.source(),
                projects=projects,
                endpoints=endpoints,
                runtime=runtime,
                alarm_names=service_alarms.alarm_names,
                topic=topic,
            ),
        )
        deploy.artifacts.grant_read_write(projects.build_role, purpose="build")
        deploy.artifacts.grant_read(projects.release_role, purpose="release")
        pulumi.export("artifactBucket", deploy.artifacts.bucket_name)
        pulumi.export("topicArn", topic.topic_arn)
        pulumi.export("releaseProject", projects.release_project_name)

    return run(build)


@pytest.fixture(scope="module")
def ecs_stage() -> ProgramRun:
    return build_ecs_stage()


def deploy_project(found: ProgramRun) -> Registration:
    (project,) = found.of_type(rt.CODEBUILD_PROJECT)
    return project


def test_with_ecs_the_stage_deploys_through_an_ecs_deployment_and_nothing_of_codedeploy(ecs_stage: ProgramRun) -> None:
    assert part_types(ecs_stage) == sorted(ECS_PARTS)
    assert [r.type for r in ecs_stage.resources if r.type.startswith("aws:codedeploy/")] == []
    trusted = [policy_of(r, "assumeRolePolicy")["Statement"][0]["Principal"] for r in ecs_stage.of_type(rt.IAM_ROLE)]
    assert {"Service": "codedeploy.amazonaws.com"} not in trusted
    # The deploy project: the stack's only CodeBuild project besides the build stage's (stand-ins here).
    assert deploy_project(ecs_stage).props["name"] == f"{PREFIX}-deploy"
    env = deploy_project(ecs_stage).props["environment"]["environmentVariables"]
    assert {v["name"]: v["value"] for v in env} == {"CLUSTER": ECS_CLUSTER, "SERVICE": ECS_SERVICE}
    # The pipeline's role needs nothing of CodeDeploy either.
    pipeline_policy = policy_of(ecs_stage.one(rt.IAM_ROLE_POLICY, "deploy-pipeline-policy"))
    assert not [a for s in pipeline_policy["Statement"] for a in s["Action"] if a.startswith(("codedeploy:", "ecs:"))]


def test_the_artifact_store_lets_the_deploy_role_read_artifacts_only(ecs_stage: ProgramRun) -> None:
    deploy_role = ecs_stage.one(rt.IAM_ROLE, "deploy-role")
    (grant,) = [g for g in ecs_stage.of_type(rt.IAM_ROLE_POLICY) if g.props["name"] == "pipeline-artifacts-deploy"]
    assert grant.props["role"] == deploy_role.props["name"]
    # Granted by the store (its child), where the two meet.
    assert grant.parent == component(ecs_stage, "ArtifactStore").urn
    doc = policy_of(grant)
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert "s3:GetObject" in actions
    assert all(a.startswith("s3:Get") for a in actions), actions
    bucket = ecs_stage.one(rt.S3_BUCKET).state["arn"]
    assert {r for s in doc["Statement"] for r in s["Resource"]} == {bucket, f"{bucket}/*"}
    assert ecs_stage.outputs["artifactBucket"] == ecs_stage.one(rt.S3_BUCKET).state["bucket"]


def test_the_deploy_stage_marks_deploys_with_the_project_and_marks_live_in_that_order(ecs_stage: ProgramRun) -> None:
    (stage,) = [s for s in pipeline_of(ecs_stage)["stages"] if s["name"] == "Deploy"]
    steps = [(a["name"], a.get("runOrder")) for a in stage["actions"]]
    assert steps == [("MarkDeploying", 1), ("Deploy", 2), ("MarkLive", 3)]
    by_name = {a["name"]: a for a in stage["actions"]}
    deploy = by_name["Deploy"]
    # A CodeBuild action on the build's artifact: https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-CodeBuild.html
    assert (deploy["category"], deploy["owner"], deploy["provider"]) == ("Build", "AWS", "CodeBuild")
    assert deploy["configuration"] == {"ProjectName": deploy_project(ecs_stage).props["name"]}
    assert deploy["inputArtifacts"] == [contracts.BUILD_ARTIFACT]
    for mark in ("MarkDeploying", "MarkLive"):
        assert by_name[mark]["configuration"]["ProjectName"] == ecs_stage.outputs["releaseProject"]
    # The pipeline's role may start this project's builds and follow them.
    doc = policy_of(ecs_stage.one(rt.IAM_ROLE_POLICY, "deploy-pipeline-policy"))
    project_arn = deploy_project(ecs_stage).state["arn"]
    assert any(
        {"codebuild:StartBuild", "codebuild:BatchGetBuilds"} <= set(s["Action"]) and project_arn in s["Resource"]
        for s in doc["Statement"]
    )


def ecs_event(service_arn: str, event_name: str = "SERVICE_DEPLOYMENT_FAILED") -> dict[str, Any]:
    """A service deployment event as ECS sends it to EventBridge ("ECS Deployment State Change",
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html)."""
    return {
        "version": "0",
        "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE",
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": ACCOUNT_ID,
        "time": "2025-08-23T12:31:14Z",
        "region": REGION,
        "resources": [service_arn],
        "detail": {
            "eventType": "ERROR",
            "eventName": event_name,
            "deploymentId": "ecs-svc/123",
            "updatedAt": "2025-08-23T11:11:11Z",
            "reason": "ECS deployment circuit breaker: task failed to start.",
        },
    }


def test_the_deployment_failed_rule_hears_failed_ecs_deployments_of_this_service(ecs_stage: ProgramRun) -> None:
    rule = ecs_stage.one(rt.EVENTS_RULE, "deploy-deployment-failed").props
    target = ecs_stage.one(rt.EVENTS_TARGET, "deploy-deployment-failed-target").props
    assert_valid_rule_and_target(rule, target)
    assert target["arn"] == ecs_stage.outputs["topicArn"]
    pattern = rule["eventPattern"]
    assert event_matches(pattern, ecs_event(ECS_SERVICE_ARN))
    assert not event_matches(pattern, ecs_event(ECS_SERVICE_ARN, "SERVICE_DEPLOYMENT_COMPLETED"))
    assert not event_matches(pattern, ecs_event(ECS_SERVICE_ARN.replace(ECS_SERVICE, "other")))
    # CodeDeploy's events are not this engine's.
    codedeploy = {
        "source": "aws.codedeploy",
        "detail-type": "CodeDeploy Deployment State-change Notification",
        "detail": {"application": PREFIX, "deploymentGroup": PREFIX, "state": "FAILURE"},
    }
    assert not event_matches(pattern, codedeploy)
    text = delivered_message(target, ecs_event(ECS_SERVICE_ARN))
    assert isinstance(text, str) and ECS_SERVICE_ARN in text and "\n" not in text


def test_the_approval_request_names_the_ecs_native_deployment(ecs_stage: ProgramRun) -> None:
    request = actions(ecs_stage)["Approve"]["configuration"]["CustomData"]
    assert "ECS-native" in request
    assert "CodeDeploy" not in request


def test_every_policy_of_the_ecs_stage_passes_parliament(ecs_stage: ProgramRun) -> None:
    # The deploy role's, the pipeline's, the trigger's and the three artifact grants.
    policies = ecs_stage.of_type(rt.IAM_ROLE_POLICY)
    assert len(policies) == 6
    findings = {reg.name: parliament_findings(reg.props["policy"]) for reg in policies}
    assert findings == {reg.name: [] for reg in policies}
