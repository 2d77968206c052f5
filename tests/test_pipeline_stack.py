"""The whole program on mocks, per committed stack: the delivery pipeline is wired end to end, from the upload
event to the deployment group on the FargateService's target groups, and the files the build hands the Deploy
stage (carried by the CodeBuild project's buildspec) match what the service runs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from components import contracts
from components.base import PROJECT
from components.build_stage import embedded_files
from offline.engine import ProgramRun, Registration
from offline.stack_files import load_stack_files
from policy import resource_types as rt
from support.aws import assert_valid_request, by_sid, event_matches, parliament_findings, policy_of
from support.events import cloudtrail_event, s3_event
from support.stacks import REGION, STACKS, component, descendants, stack_run

COMPONENTS = ("SourceBucket", "BuildStage", "DeployStage")


def config(stack: str) -> dict[str, str]:
    files = load_stack_files(stack)
    return {k.split(":", 1)[1]: v for k, v in files.config.items() if k.startswith(f"{PROJECT}:")}


def under(run: ProgramRun, cls: str, typ: str) -> list[Registration]:
    """Resources of type ``typ`` anywhere under the public component ``cls`` (its parts included)."""
    return [r for r in descendants(run, component(run, cls)) if r.type == typ]


def one_under(run: ProgramRun, cls: str, typ: str, name: str | None = None) -> Registration:
    found = [r for r in under(run, cls, typ) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {typ} {name or ''} in {cls}, found {[r.name for r in found]}"
    return found[0]


def actions(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Every action of the pipeline by its name."""
    stages = run.one(rt.CODEPIPELINE_PIPELINE).props["stages"]
    return {a["name"]: a for s in stages for a in s["actions"]}


def statements(reg: Registration) -> dict[str, dict[str, Any]]:
    return by_sid(policy_of(reg))


# Event shapes: S3 EventBridge notifications
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html) and CloudTrail data events delivered to
# EventBridge (https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-s3.html).
@pytest.fixture(scope="module")
def cloudtrail() -> ProgramRun:
    """The dev stack in cloudtrail trigger mode, run once for this module."""
    return stack_run("dev", overrides={"triggerMode": "cloudtrail"})


# --- Wiring ------------------------------------------------------------------------------------------


def test_stages_run_source_build_deploy_against_the_stacks_own_resources(dev: ProgramRun) -> None:
    pipeline = dev.one(rt.CODEPIPELINE_PIPELINE).props
    assert [s["name"] for s in pipeline["stages"]] == ["Source", "Build", "Deploy"]
    assert pipeline["pipelineType"] == "V2"
    source, build, deploy = (actions(dev)[s] for s in ("Source", "Build", "Deploy"))

    cfg = config("dev")
    key = cfg.get("sourceObjectKey", "docker-image/docker_image.zip")
    assert source["configuration"] == {
        "S3Bucket": dev.outputs["sourceBucket"],
        "S3ObjectKey": key,
        "PollForSourceChanges": "false",
    }
    assert dev.outputs["sourceObjectKey"] == key
    # The source is the SourceBucket's bucket, and it is versioned: the S3 source action requires it
    # (https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-S3.html).
    (bucket,) = [
        b for b in under(dev, "SourceBucket", rt.S3_BUCKET) if b.state["bucket"] == source["configuration"]["S3Bucket"]
    ]
    versioning = [
        v.props
        for v in under(dev, "SourceBucket", rt.S3_BUCKET_VERSIONING)
        if v.props["bucket"] in (bucket.id, bucket.state["bucket"])
    ]
    assert [v["versioningConfiguration"]["status"] for v in versioning] == ["Enabled"]

    project = one_under(dev, "BuildStage", rt.CODEBUILD_PROJECT, "build-project")
    assert build["configuration"]["ProjectName"] == project.state["name"]

    application = one_under(dev, "DeployStage", rt.CODEDEPLOY_APPLICATION)
    group = one_under(dev, "DeployStage", rt.CODEDEPLOY_DEPLOYMENT_GROUP)
    assert deploy["configuration"]["ApplicationName"] == application.state["name"]
    assert deploy["configuration"]["DeploymentGroupName"] == group.state["deploymentGroupName"]
    assert group.props["appName"] == application.state["name"]

    (store,) = pipeline["artifactStores"]
    assert store["location"] == one_under(dev, "DeployStage", rt.S3_BUCKET).state["bucket"]

    # Around the deployment, the BuildStage's release project tags the image (ECR never expires it then), with a
    # role that reads the artifact store and re-tags images of the stack's repository only.
    release = one_under(dev, "BuildStage", rt.CODEBUILD_PROJECT, "build-release-project")
    for name in ("MarkDeploying", "MarkLive"):
        assert actions(dev)[name]["configuration"]["ProjectName"] == release.state["name"]
    role = one_under(dev, "BuildStage", rt.IAM_ROLE, "build-release-role")
    assert dev.one(rt.IAM_ROLE_POLICY, "deploy-release-artifacts").props["role"] == role.state["name"]
    tag = statements(dev.one(rt.IAM_ROLE_POLICY, "build-release-role-policy"))["TagImagesOfTheRepository"]
    assert tag["Resource"] == [one_under(dev, "BuildStage", rt.ECR_REPOSITORY).state["arn"]]


def test_deployment_group_uses_exactly_the_fargate_services_target_groups_and_listeners(dev: ProgramRun) -> None:
    group = one_under(dev, "DeployStage", rt.CODEDEPLOY_DEPLOYMENT_GROUP).props
    service = dev.one(rt.ECS_SERVICE)
    cluster = dev.one(rt.ECS_CLUSTER)
    assert group["ecsService"] == {"clusterName": cluster.state["name"], "serviceName": service.state["name"]}

    target_groups = under(dev, "FargateService", rt.LB_TARGET_GROUP)
    pair = group["loadBalancerInfo"]["targetGroupPairInfo"]
    assert sorted(tg["name"] for tg in pair["targetGroups"]) == sorted(tg.state["name"] for tg in target_groups)
    listeners = {r.props["port"]: r.state["arn"] for r in under(dev, "FargateService", rt.LB_LISTENER)}
    cfg = config("dev")
    assert pair["prodTrafficRoute"]["listenerArns"] == [listeners[int(cfg.get("listenerPort", "80"))]]
    assert pair["testTrafficRoute"]["listenerArns"] == [listeners[int(cfg.get("testListenerPort", "8080"))]]
    # The production listener starts on the target group the service starts on (blue).
    (prod_action,) = dev.one(rt.LB_LISTENER, "service-prod").props["defaultActions"]
    assert service.props["loadBalancers"][0]["targetGroupArn"] == prod_action["targetGroupArn"]


def test_deployment_settings_follow_each_stack_file(dev: ProgramRun, prod: ProgramRun) -> None:
    for run, stack in ((dev, "dev"), (prod, "prod")):
        cfg = config(stack)
        group = one_under(run, "DeployStage", rt.CODEDEPLOY_DEPLOYMENT_GROUP).props
        expected = cfg.get("deploymentConfig", "CodeDeployDefault.ECSAllAtOnce")
        assert group["deploymentConfigName"] == expected
        wait = group["blueGreenDeploymentConfig"]["terminateBlueInstancesOnDeploymentSuccess"]
        assert wait["terminationWaitTimeInMinutes"] == int(cfg.get("terminationWaitMinutes", "5"))
        assert "DEPLOYMENT_FAILURE" in group["autoRollbackConfiguration"]["events"]
    assert (
        prod.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props["deploymentConfigName"].startswith("CodeDeployDefault.ECSCanary")
    )


# --- Trigger -----------------------------------------------------------------------------------------


def test_an_upload_of_the_source_object_starts_the_pipeline_and_nothing_else_does(dev: ProgramRun) -> None:
    rule = one_under(dev, "DeployStage", rt.EVENTS_RULE, "deploy-trigger").props
    pattern = rule["eventPattern"]
    bucket, key = dev.outputs["sourceBucket"], dev.outputs["sourceObjectKey"]
    assert event_matches(pattern, s3_event(bucket, key))
    assert not event_matches(pattern, s3_event(bucket, "docker-image/other.zip"))
    assert not event_matches(pattern, s3_event("someone-elses-bucket", key))

    target = one_under(dev, "DeployStage", rt.EVENTS_TARGET, "deploy-trigger-target").props
    pipeline = dev.one(rt.CODEPIPELINE_PIPELINE)
    assert target["arn"] == pipeline.state["arn"]
    role = dev.one(rt.IAM_ROLE, "deploy-trigger-role")
    assert target["roleArn"] == role.state["arn"]
    (start,) = [p for p in dev.of_type(rt.IAM_ROLE_POLICY) if p.props["role"] == role.id]
    (statement,) = policy_of(start)["Statement"]
    assert (statement["Action"], statement["Resource"]) == (
        ["codepipeline:StartPipelineExecution"],
        [pipeline.state["arn"]],
    )


def test_cloudtrail_trigger_mode_starts_the_same_pipeline(cloudtrail: ProgramRun) -> None:
    rule = one_under(cloudtrail, "DeployStage", rt.EVENTS_RULE, "deploy-trigger").props
    pattern = rule["eventPattern"]
    bucket, key = cloudtrail.outputs["sourceBucket"], cloudtrail.outputs["sourceObjectKey"]
    assert event_matches(pattern, cloudtrail_event(bucket, key))
    assert event_matches(pattern, cloudtrail_event(bucket, key, "CompleteMultipartUpload"))
    assert not event_matches(pattern, cloudtrail_event(bucket, "docker-image/other.zip"))
    assert not event_matches(pattern, cloudtrail_event(bucket, key, "GetObject"))
    target = one_under(cloudtrail, "DeployStage", rt.EVENTS_TARGET, "deploy-trigger-target").props
    assert target["arn"] == cloudtrail.one(rt.CODEPIPELINE_PIPELINE).state["arn"]
    assert actions(cloudtrail)["Source"]["configuration"]["PollForSourceChanges"] == "false"


# --- Roles ---------------------------------------------------------------------------------------------


def test_every_pipeline_policy_passes_parliament(dev: ProgramRun, cloudtrail: ProgramRun) -> None:
    checked = 0
    for run in (dev, cloudtrail):
        for cls in COMPONENTS:
            for reg in under(run, cls, rt.IAM_ROLE_POLICY) + under(run, cls, rt.IAM_POLICY):
                findings = parliament_findings(reg.props["policy"])
                assert findings == [], f"{reg.name}: {findings}"
                checked += 1
    assert checked >= 10


def test_roles_reach_exactly_the_services_task_roles_and_family(dev: ProgramRun) -> None:
    execution = dev.one(rt.IAM_ROLE, "service-execution")
    task = dev.one(rt.IAM_ROLE, "service-task")
    family = dev.one(rt.ECS_TASK_DEFINITION).props["family"]
    pipeline = statements(dev.one(rt.IAM_ROLE_POLICY, "deploy-pipeline-policy"))
    codedeploy = statements(dev.one(rt.IAM_ROLE_POLICY, "deploy-codedeploy-policy"))
    for doc in (pipeline, codedeploy):
        assert doc["PassTheTaskRolesToEcs"]["Resource"] == [task.state["arn"], execution.state["arn"]]
    (registration,) = pipeline["RegisterTaskDefinitionRevisions"]["Resource"]
    assert registration.endswith(f":task-definition/{family}:*")
    assert pipeline["RunTheBuildAndRelease"]["Resource"] == [
        one_under(dev, "BuildStage", rt.CODEBUILD_PROJECT, name).state["arn"]
        for name in ("build-project", "build-release-project")
    ]
    source_arn = next(
        b.state["arn"]
        for b in under(dev, "SourceBucket", rt.S3_BUCKET)
        if b.state["bucket"] == dev.outputs["sourceBucket"]
    )
    assert pipeline["ReadTheSourceObject"]["Resource"] == [f"{source_arn}/{dev.outputs['sourceObjectKey']}"]
    # The BuildStage grants pull on its repository to the service's execution role (__main__.py wires it).
    pull = dev.one(rt.IAM_ROLE_POLICY, "build-execution-pull")
    assert pull.props["role"] == execution.state["name"]
    assert statements(pull)["PullFromTheRepository"]["Resource"] == [
        one_under(dev, "BuildStage", rt.ECR_REPOSITORY).state["arn"]
    ]


# --- The files the build hands the Deploy stage -------------------------------------------------------


def buildspec(run: ProgramRun) -> str:
    """The build project's buildspec, as the CodeBuild project holds it."""
    project = one_under(run, "BuildStage", rt.CODEBUILD_PROJECT, "build-project").props
    text: str = project["source"]["buildspec"]
    return text


def embedded(run: ProgramRun) -> tuple[dict[str, Any], str, str]:
    """The buildspec, and the taskdef.json and appspec.yaml its variables carry (base64, files/buildspec.yml)."""
    spec: dict[str, Any] = yaml.safe_load(buildspec(run))
    variables = spec["env"]["variables"]
    return (
        spec,
        base64.b64decode(variables["TASKDEF_JSON_BASE64"]).decode(),
        base64.b64decode(variables["APPSPEC_YAML_BASE64"]).decode(),
    )


def test_the_build_writes_the_files_the_deploy_action_reads(dev: ProgramRun) -> None:
    spec, taskdef, appspec = embedded(dev)
    variables = spec["env"]["variables"]
    # CodeBuild's buildspec reference: `artifacts.base-directory` and `files` make the output artifact
    # (https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html#build-spec.artifacts).
    assert spec["artifacts"]["base-directory"] == variables["OUTPUT_DIR"] == contracts.BUILD_OUTPUT_DIR
    assert spec["artifacts"]["files"] == list(contracts.BUILD_OUTPUT_FILES)
    written = {variables[v] for v in ("IMAGE_DETAIL_FILE", "TASKDEF_FILE", "APPSPEC_FILE")}
    assert written == set(contracts.BUILD_OUTPUT_FILES)
    # The decoded templates are what the offline plan writes next to plan.md (components.build_stage).
    assert embedded_files(buildspec(dev)) == {contracts.TASKDEF_FILE: taskdef, contracts.APPSPEC_FILE: appspec}
    # CodeDeployToECS reads both templates and the image from the build's one output artifact
    # (https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-ECSbluegreen.html).
    deploy = actions(dev)["Deploy"]
    assert deploy["inputArtifacts"] == [contracts.BUILD_ARTIFACT]
    assert actions(dev)["Build"]["outputArtifacts"] == [contracts.BUILD_ARTIFACT]
    assert deploy["configuration"]["TaskDefinitionTemplatePath"] == contracts.TASKDEF_FILE
    assert deploy["configuration"]["AppSpecTemplatePath"] == contracts.APPSPEC_FILE
    assert deploy["configuration"]["Image1ContainerName"] == contracts.IMAGE_PLACEHOLDER
    # Whole-file outputs were removed on purpose (issue 10): nobody runs them by hand, the plan reads the project.
    assert {"buildspecYml", "taskdefJson", "appspecYaml"} & set(dev.outputs) == set()


def test_the_operators_outputs_name_the_stacks_own_resources(dev: ProgramRun) -> None:
    assert dev.outputs["ecrRepositoryUrl"] == one_under(dev, "BuildStage", rt.ECR_REPOSITORY).state["repositoryUrl"]
    assert dev.outputs["pipelineName"] == dev.one(rt.CODEPIPELINE_PIPELINE).state["name"]
    # The console's pipeline page: https://<region>.console.aws.amazon.com/codesuite/codepipeline/pipelines/<name>/view
    assert dev.outputs["pipelineUrl"] == (
        f"https://{REGION}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{dev.outputs['pipelineName']}"
        f"/view?region={REGION}"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_taskdef_matches_the_running_service_and_validates(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    run = runs(stack)
    _, taskdef_json, appspec_yaml = embedded(run)
    taskdef = json.loads(taskdef_json)
    first = run.one(rt.ECS_TASK_DEFINITION).props
    # The pipeline deploys what the stack runs, except the image: same family, size, roles and container.
    assert (taskdef["family"], taskdef["cpu"], taskdef["memory"]) == (first["family"], first["cpu"], first["memory"])
    assert (taskdef["executionRoleArn"], taskdef["taskRoleArn"]) == (first["executionRoleArn"], first["taskRoleArn"])
    (container,) = taskdef["containerDefinitions"]
    (running,) = json.loads(first["containerDefinitions"])
    # CodeDeployToECS puts the image where taskdef.json says <Image1ContainerName> (the action reference above).
    assert container["image"] == contracts.placeholder(contracts.IMAGE_PLACEHOLDER)
    assert {**container, "image": running["image"]} == running

    # What CodeDeployToECS registers once it has put the image in: a valid RegisterTaskDefinition request.
    container["image"] = f"{run.outputs['ecrRepositoryUrl']}:9f1c2ab"
    assert_valid_request("ecs", "RegisterTaskDefinition", taskdef)

    # AppSpec for ECS: https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-structure-resources.html
    appspec = yaml.safe_load(appspec_yaml)
    target = appspec["Resources"][0]["TargetService"]["Properties"]
    assert target["TaskDefinition"] == contracts.placeholder(contracts.TASK_DEFINITION_PLACEHOLDER)
    balancer = run.one(rt.ECS_SERVICE).props["loadBalancers"][0]
    assert target["LoadBalancerInfo"] == {
        "ContainerName": balancer["containerName"],
        "ContainerPort": balancer["containerPort"],
    }


def test_task_size_and_environment_changes_reach_the_build_project(
    dev: ProgramRun, run_stack: Callable[..., ProgramRun]
) -> None:
    changed = run_stack(
        "dev", overrides={"cpu": "512", "memory": "2048", "environment": json.dumps({"FEATURE_FLAG": "on"})}
    )
    assert buildspec(dev) != buildspec(changed)
    _, taskdef_json, _ = embedded(changed)
    taskdef = json.loads(taskdef_json)
    assert (taskdef["cpu"], taskdef["memory"]) == ("512", "2048")
    assert taskdef["containerDefinitions"][0]["environment"] == [{"name": "FEATURE_FLAG", "value": "on"}]
