"""The whole program on mocks, per committed stack: the delivery pipeline is wired end to end, from the upload
event to the deployment group on the FargateService's target groups, with the generated files exported.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, cast

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator
from conftest import stack_run
from moto.events.models import EventPattern
from moto.events.utils import EventMessageType
from parliament import analyze_policy_string

from components.config import PROJECT
from offline.engine import ProgramRun, Registration
from offline.stack_files import committed_stacks, load_stack_files

PIPELINE = "aws:codepipeline/pipeline:Pipeline"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
COMPONENTS = ("SourceBucket", "BuildStage", "DeployStage")


def config(stack: str) -> dict[str, str]:
    files = load_stack_files(stack)
    return {k.split(":", 1)[1]: v for k, v in files.config.items() if k.startswith(f"{PROJECT}:")}


def component(run: ProgramRun, cls: str) -> Registration:
    return run.one(f"{PROJECT}:index:{cls}")


def children(run: ProgramRun, cls: str, typ: str) -> list[Registration]:
    return [r for r in run.children_of(component(run, cls)) if r.type == typ]


def child(run: ProgramRun, cls: str, typ: str, name: str | None = None) -> Registration:
    found = [r for r in children(run, cls, typ) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {typ} {name or ''} in {cls}, found {[r.name for r in found]}"
    return found[0]


def actions(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Every action of the pipeline by its name."""
    stages = run.one(PIPELINE).props["stages"]
    return {a["name"]: a for s in stages for a in s["actions"]}


def statements(reg: Registration) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(reg.props["policy"])["Statement"]}


def matches(pattern: str, event: dict[str, Any]) -> bool:
    """Whether EventBridge would deliver ``event`` to a rule with ``pattern`` (moto's implementation)."""
    return bool(EventPattern.load(pattern).matches_event(cast(EventMessageType, event)))


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """An S3 "Object Created" event as EventBridge delivers it (S3 EventBridge notifications)."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2025-01-01T00:00:00Z",
        "region": "eu-west-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 1024, "etag": "b1946ac92492d2347c6235b4d2611184", "version-id": "v1"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


def cloudtrail_event(bucket: str, key: str, event_name: str = "PutObject") -> dict[str, Any]:
    """An S3 data event recorded by CloudTrail, as EventBridge delivers it."""
    return {
        "version": "0",
        "id": "36eb8523-97d0-4518-b33d-ee3579ff19f0",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2025-01-01T00:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "eventSource": "s3.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "eu-west-1",
            "requestParameters": {"bucketName": bucket, "key": key, "Host": f"{bucket}.s3.eu-west-1.amazonaws.com"},
            "readOnly": False,
            "eventType": "AwsApiCall",
        },
    }


@pytest.fixture(scope="module")
def cloudtrail() -> ProgramRun:
    """The dev stack in cloudtrail trigger mode, run once for this module."""
    return stack_run("dev", overrides={"triggerMode": "cloudtrail"})


# --- Wiring ------------------------------------------------------------------------------------------


def test_stages_run_source_build_deploy_against_the_stacks_own_resources(dev: ProgramRun) -> None:
    pipeline = dev.one(PIPELINE).props
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
    # The source is the SourceBucket's bucket, and it is versioned (the S3 source action requires it).
    (bucket,) = [
        b
        for b in children(dev, "SourceBucket", "aws:s3/bucket:Bucket")
        if b.state["bucket"] == source["configuration"]["S3Bucket"]
    ]
    versioning = [
        v.props
        for v in children(dev, "SourceBucket", "aws:s3/bucketVersioning:BucketVersioning")
        if v.props["bucket"] in (bucket.id, bucket.state["bucket"])
    ]
    assert [v["versioningConfiguration"]["status"] for v in versioning] == ["Enabled"]

    project = child(dev, "BuildStage", "aws:codebuild/project:Project", "build-project")
    assert build["configuration"]["ProjectName"] == project.state["name"]

    application = child(dev, "DeployStage", "aws:codedeploy/application:Application")
    group = child(dev, "DeployStage", "aws:codedeploy/deploymentGroup:DeploymentGroup")
    assert deploy["configuration"]["ApplicationName"] == application.state["name"]
    assert deploy["configuration"]["DeploymentGroupName"] == group.state["deploymentGroupName"]
    assert group.props["appName"] == application.state["name"]

    (store,) = pipeline["artifactStores"]
    assert store["location"] == child(dev, "DeployStage", "aws:s3/bucket:Bucket").state["bucket"]

    # Around the deployment, the BuildStage's release project tags the image (ECR never expires it then), with a
    # role that reads the artifact store and re-tags images of the stack's repository only.
    release = child(dev, "BuildStage", "aws:codebuild/project:Project", "build-release-project")
    for name in ("MarkDeploying", "MarkLive"):
        assert actions(dev)[name]["configuration"]["ProjectName"] == release.state["name"]
    role = child(dev, "BuildStage", "aws:iam/role:Role", "build-release-role")
    assert dev.one(ROLE_POLICY, "deploy-release-artifacts").props["role"] == role.state["name"]
    tag = statements(dev.one(ROLE_POLICY, "build-release-role-policy"))["TagImagesOfTheRepository"]
    assert tag["Resource"] == [child(dev, "BuildStage", "aws:ecr/repository:Repository").state["arn"]]


def test_deployment_group_uses_exactly_the_fargate_services_target_groups_and_listeners(dev: ProgramRun) -> None:
    group = child(dev, "DeployStage", "aws:codedeploy/deploymentGroup:DeploymentGroup").props
    service = dev.one("aws:ecs/service:Service")
    cluster = dev.one("aws:ecs/cluster:Cluster")
    assert group["ecsService"] == {"clusterName": cluster.state["name"], "serviceName": service.state["name"]}

    target_groups = children(dev, "FargateService", "aws:lb/targetGroup:TargetGroup")
    pair = group["loadBalancerInfo"]["targetGroupPairInfo"]
    assert sorted(tg["name"] for tg in pair["targetGroups"]) == sorted(tg.state["name"] for tg in target_groups)
    listeners = {r.props["port"]: r.state["arn"] for r in children(dev, "FargateService", "aws:lb/listener:Listener")}
    cfg = config("dev")
    assert pair["prodTrafficRoute"]["listenerArns"] == [listeners[int(cfg.get("listenerPort", "80"))]]
    assert pair["testTrafficRoute"]["listenerArns"] == [listeners[int(cfg.get("testListenerPort", "8080"))]]
    # The production listener starts on the target group the service starts on (blue).
    (prod_action,) = dev.one("aws:lb/listener:Listener", "service-prod").props["defaultActions"]
    assert service.props["loadBalancers"][0]["targetGroupArn"] == prod_action["targetGroupArn"]


def test_deployment_settings_follow_each_stack_file(dev: ProgramRun, prod: ProgramRun) -> None:
    for run, stack in ((dev, "dev"), (prod, "prod")):
        cfg = config(stack)
        group = child(run, "DeployStage", "aws:codedeploy/deploymentGroup:DeploymentGroup").props
        expected = cfg.get("deploymentConfig", "CodeDeployDefault.ECSAllAtOnce")
        assert group["deploymentConfigName"] == expected
        wait = group["blueGreenDeploymentConfig"]["terminateBlueInstancesOnDeploymentSuccess"]
        assert wait["terminationWaitTimeInMinutes"] == int(cfg.get("terminationWaitMinutes", "5"))
        assert "DEPLOYMENT_FAILURE" in group["autoRollbackConfiguration"]["events"]
    assert (
        prod.one("aws:codedeploy/deploymentGroup:DeploymentGroup")
        .props["deploymentConfigName"]
        .startswith("CodeDeployDefault.ECSCanary")
    )


# --- Trigger -----------------------------------------------------------------------------------------


def test_an_upload_of_the_source_object_starts_the_pipeline_and_nothing_else_does(dev: ProgramRun) -> None:
    rule = child(dev, "DeployStage", "aws:cloudwatch/eventRule:EventRule", "deploy-trigger").props
    pattern = rule["eventPattern"]
    bucket, key = dev.outputs["sourceBucket"], dev.outputs["sourceObjectKey"]
    assert matches(pattern, s3_event(bucket, key))
    assert not matches(pattern, s3_event(bucket, "docker-image/other.zip"))
    assert not matches(pattern, s3_event("someone-elses-bucket", key))

    target = child(dev, "DeployStage", "aws:cloudwatch/eventTarget:EventTarget", "deploy-trigger-target").props
    pipeline = dev.one(PIPELINE)
    assert target["arn"] == pipeline.state["arn"]
    role = dev.one("aws:iam/role:Role", "deploy-trigger-role")
    assert target["roleArn"] == role.state["arn"]
    (start,) = [p for p in dev.of_type(ROLE_POLICY) if p.props["role"] == role.id]
    (statement,) = json.loads(start.props["policy"])["Statement"]
    assert (statement["Action"], statement["Resource"]) == (
        ["codepipeline:StartPipelineExecution"],
        [pipeline.state["arn"]],
    )


def test_cloudtrail_trigger_mode_starts_the_same_pipeline(cloudtrail: ProgramRun) -> None:
    rule = child(cloudtrail, "DeployStage", "aws:cloudwatch/eventRule:EventRule", "deploy-trigger").props
    pattern = rule["eventPattern"]
    bucket, key = cloudtrail.outputs["sourceBucket"], cloudtrail.outputs["sourceObjectKey"]
    assert matches(pattern, cloudtrail_event(bucket, key))
    assert matches(pattern, cloudtrail_event(bucket, key, "CompleteMultipartUpload"))
    assert not matches(pattern, cloudtrail_event(bucket, "docker-image/other.zip"))
    assert not matches(pattern, cloudtrail_event(bucket, key, "GetObject"))
    target = child(cloudtrail, "DeployStage", "aws:cloudwatch/eventTarget:EventTarget", "deploy-trigger-target").props
    assert target["arn"] == cloudtrail.one(PIPELINE).state["arn"]
    assert actions(cloudtrail)["Source"]["configuration"]["PollForSourceChanges"] == "false"


# --- Roles ---------------------------------------------------------------------------------------------


def test_every_pipeline_policy_passes_parliament(dev: ProgramRun, cloudtrail: ProgramRun) -> None:
    checked = 0
    for run in (dev, cloudtrail):
        for cls in COMPONENTS:
            for reg in children(run, cls, ROLE_POLICY) + children(run, cls, "aws:iam/policy:Policy"):
                findings = [f"{f.issue}: {f.detail}" for f in analyze_policy_string(reg.props["policy"]).findings]
                assert findings == [], f"{reg.name}: {findings}"
                checked += 1
    assert checked >= 10


def test_roles_reach_exactly_the_services_task_roles_and_family(dev: ProgramRun) -> None:
    execution = dev.one("aws:iam/role:Role", "service-execution")
    task = dev.one("aws:iam/role:Role", "service-task")
    family = dev.one("aws:ecs/taskDefinition:TaskDefinition").props["family"]
    pipeline = statements(dev.one(ROLE_POLICY, "deploy-pipeline-policy"))
    codedeploy = statements(dev.one(ROLE_POLICY, "deploy-codedeploy-policy"))
    for doc in (pipeline, codedeploy):
        assert doc["PassTheTaskRolesToEcs"]["Resource"] == [task.state["arn"], execution.state["arn"]]
    (registration,) = pipeline["RegisterTaskDefinitionRevisions"]["Resource"]
    assert registration.endswith(f":task-definition/{family}:*")
    assert pipeline["RunTheBuildAndRelease"]["Resource"] == [
        child(dev, "BuildStage", "aws:codebuild/project:Project", name).state["arn"]
        for name in ("build-project", "build-release-project")
    ]
    source_arn = next(
        b.state["arn"]
        for b in children(dev, "SourceBucket", "aws:s3/bucket:Bucket")
        if b.state["bucket"] == dev.outputs["sourceBucket"]
    )
    assert pipeline["ReadTheSourceObject"]["Resource"] == [f"{source_arn}/{dev.outputs['sourceObjectKey']}"]
    # The BuildStage grants pull on its repository to the service's execution role.
    pull = dev.one(ROLE_POLICY, "build-execution-pull")
    assert pull.props["role"] == execution.state["name"]
    assert statements(pull)["PullFromTheRepository"]["Resource"] == [
        child(dev, "BuildStage", "aws:ecr/repository:Repository").state["arn"]
    ]


# --- Generated files ----------------------------------------------------------------------------------


def embedded(run: ProgramRun) -> tuple[dict[str, Any], str, str]:
    """The CodeBuild project's buildspec, and the taskdef.json and appspec.yaml it writes."""
    project = child(run, "BuildStage", "aws:codebuild/project:Project", "build-project").props
    spec: dict[str, Any] = yaml.safe_load(project["source"]["buildspec"])
    variables = spec["env"]["variables"]
    return (
        spec,
        base64.b64decode(variables["TASKDEF_JSON_BASE64"]).decode(),
        base64.b64decode(variables["APPSPEC_YAML_BASE64"]).decode(),
    )


def test_exported_files_are_what_the_build_writes(dev: ProgramRun) -> None:
    project = child(dev, "BuildStage", "aws:codebuild/project:Project", "build-project").props
    assert dev.outputs["buildspecYml"] == project["source"]["buildspec"]
    _, taskdef, appspec = embedded(dev)
    assert dev.outputs["taskdefJson"] == taskdef
    assert dev.outputs["appspecYaml"] == appspec
    assert (
        dev.outputs["ecrRepositoryUrl"]
        == child(dev, "BuildStage", "aws:ecr/repository:Repository").state["repositoryUrl"]
    )
    assert dev.outputs["pipelineName"] == dev.one(PIPELINE).state["name"]
    assert dev.outputs["pipelineUrl"] == (
        f"https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/{dev.outputs['pipelineName']}"
        "/view?region=eu-west-1"
    )


@pytest.mark.parametrize("stack", committed_stacks())
def test_taskdef_matches_the_running_service_and_validates(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    run = runs(stack)
    taskdef = json.loads(run.outputs["taskdefJson"])
    first = run.one("aws:ecs/taskDefinition:TaskDefinition").props
    # The pipeline deploys what the stack runs, except the image: same family, size, roles and container.
    assert (taskdef["family"], taskdef["cpu"], taskdef["memory"]) == (first["family"], first["cpu"], first["memory"])
    assert (taskdef["executionRoleArn"], taskdef["taskRoleArn"]) == (first["executionRoleArn"], first["taskRoleArn"])
    (container,) = taskdef["containerDefinitions"]
    (running,) = json.loads(first["containerDefinitions"])
    assert container["image"] == "<IMAGE1_NAME>"
    assert {**container, "image": running["image"]} == running

    container["image"] = f"{run.outputs['ecrRepositoryUrl']}:9f1c2ab"
    model = botocore.session.get_session().get_service_model("ecs")
    report = ParamValidator().validate(taskdef, model.operation_model("RegisterTaskDefinition").input_shape)
    assert not report.has_errors(), report.generate_report()

    appspec = yaml.safe_load(run.outputs["appspecYaml"])
    target = appspec["Resources"][0]["TargetService"]["Properties"]
    balancer = run.one("aws:ecs/service:Service").props["loadBalancers"][0]
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
    before = child(dev, "BuildStage", "aws:codebuild/project:Project", "build-project").props["source"]["buildspec"]
    after = child(changed, "BuildStage", "aws:codebuild/project:Project", "build-project").props["source"]["buildspec"]
    assert before != after
    _, taskdef_json, _ = embedded(changed)
    taskdef = json.loads(taskdef_json)
    assert (taskdef["cpu"], taskdef["memory"]) == ("512", "2048")
    assert taskdef["containerDefinitions"][0]["environment"] == [{"name": "FEATURE_FLAG", "value": "on"}]
