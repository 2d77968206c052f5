"""DeployStage on mocks: the CodeDeploy blue/green group (with the ServiceAlarms that roll it back), the
pipeline's stages and actions (with and without the manual approval), the artifact bucket, the trigger, the
failure notifications (patterns against sample events, messages through moto's input transformer, requests
against the EventBridge API model), and every role scoped to the ARNs it touches.
"""

from __future__ import annotations

import json
import textwrap
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, cast

import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto.events.models import EventPattern
from moto.events.utils import EventMessageType, EventTemplateParser
from parliament import analyze_policy_string

from offline.engine import ACCOUNT_ID, ProgramRun, Registration, run_program
from offline.stack_files import StackFiles

REGION = "eu-west-1"
BUCKET = "shop-dev-source-0a1b2c"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
KEY = "uploads/web.zip"
PATTERN = json.dumps({"source": ["aws.s3"], "detail": {"bucket": {"name": [BUCKET]}, "object": {"key": [KEY]}}})
PROJECT = "shop-dev-build"
PROJECT_ARN = f"arn:aws:codebuild:{REGION}:{ACCOUNT_ID}:project/{PROJECT}"
RELEASE_PROJECT = "shop-dev-release"
RELEASE_PROJECT_ARN = f"arn:aws:codebuild:{REGION}:{ACCOUNT_ID}:project/{RELEASE_PROJECT}"
LB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:listener/app/shop-dev/50dc6c495c0c9188"
PROD_LISTENER = f"{LB}/f2f7dc8efc522ab2"
TEST_LISTENER = f"{LB}/0467ef3c8400ae65"
TASK_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/shop-dev-task"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/shop-dev-execution"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:shop-dev-notifications"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
CONSOLE = f"https://{REGION}.console.aws.amazon.com/codesuite"

# The program reads every input from its config (INPUTS), as the stack would pass them from other components.
INPUTS = {
    "sourceBucketName": BUCKET,
    "sourceBucketArn": BUCKET_ARN,
    "sourceObjectKey": KEY,
    "sourceEventPattern": PATTERN,
    "projectName": PROJECT,
    "projectArn": PROJECT_ARN,
    "releaseProjectName": RELEASE_PROJECT,
    "releaseProjectArn": RELEASE_PROJECT_ARN,
    "prodListenerArn": PROD_LISTENER,
    "testListenerArn": TEST_LISTENER,
    "taskRoleArn": TASK_ROLE,
    "executionRoleArn": EXECUTION_ROLE,
}
PROGRAM = """
import json
import pulumi
from components.config import parse_config
from components.deploy_stage import DeployStage, DeployStageArgs
from components.service_alarms import ServiceAlarms, ServiceAlarmsArgs

config = pulumi.Config()
cfg = parse_config(
    {"gitlabProject": "shop/web", "deploymentConfig": "ECSLinear10PercentEvery1Minutes",
     "terminationWaitMinutes": "12", "gitlabToken": "glpat-offline-test-token", **json.loads(config.require("values"))},
    stack="dev", region="eu-west-1", secret_keys=frozenset({"gitlabToken"}),
)
alarms = ServiceAlarms("alarms", ServiceAlarmsArgs(
    name_prefix="shop-dev", alarms=cfg.alarms, load_balancer_arn_suffix="app/shop-dev/50dc6c495c0c9188",
    blue_target_group_arn_suffix="targetgroup/shop-dev-blue/0123456789abcdef",
    green_target_group_arn_suffix="targetgroup/shop-dev-green/fedcba9876543210",
    topic_arn=config.get("topicArn") or "",
))
stage = DeployStage("deploy", DeployStageArgs(
    name_prefix="shop-dev", region="eu-west-1", pipeline=cfg.pipeline,
    source_bucket_name=config.require("sourceBucketName"), source_bucket_arn=config.require("sourceBucketArn"),
    source_object_key=config.require("sourceObjectKey"), source_event_pattern=config.require("sourceEventPattern"),
    project_name=config.require("projectName"), project_arn=config.require("projectArn"),
    build_role_name="shop-dev-build",
    release_project_name=config.require("releaseProjectName"), release_project_arn=config.require("releaseProjectArn"),
    release_role_name="shop-dev-release",
    cluster_name="shop-dev-cluster", service_name="shop-dev-service",
    blue_target_group_name="shop-dev-blue", green_target_group_name="shop-dev-green",
    prod_listener_arn=config.require("prodListenerArn"), test_listener_arn=config.require("testListenerArn"),
    family="shop-dev", task_role_arn=config.require("taskRoleArn"),
    execution_role_arn=config.require("executionRoleArn"),
    alarm_names=alarms.alarm_names,
    notification_topic_arn=config.get("topicArn"), notification_key_arn=config.get("keyArn"),
    force_destroy=cfg.force_destroy,
))
pulumi.export("pipelineName", stage.pipeline_name)
pulumi.export("pipelineUrl", stage.pipeline_url)
"""


def run_deploy_stage(
    tmp_path: Path, *, alarms: bool = False, approval: bool = False, notify: bool = True, force_destroy: bool = False
) -> ProgramRun:
    """The stage as the stack wires it: alarms from a ServiceAlarms, the topic and key of a Notifications."""
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    inputs = {**INPUTS, **({"topicArn": TOPIC, "keyArn": KMS_KEY} if notify else {})}
    config = {f"gitlab-fargate:{k}": v for k, v in inputs.items()}
    values = {
        "rollbackOnAlarm": str(alarms).lower(),
        "manualApproval": str(approval).lower(),
        "forceDestroy": str(force_destroy).lower(),
    }
    config.update({"aws:region": REGION, "gitlab-fargate:values": json.dumps(values)})
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_deploy_stage(tmp_path_factory.mktemp("deploy-stage"))


@pytest.fixture(scope="module")
def approved(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    """With alarms and the manual approval stage, as on prod."""
    return run_deploy_stage(tmp_path_factory.mktemp("deploy-approved"), alarms=True, approval=True)


@pytest.fixture(params=["stage", "approved"])
def either(request: pytest.FixtureRequest) -> ProgramRun:
    run: ProgramRun = request.getfixturevalue(request.param)
    return run


def arn_of(run: ProgramRun, typ: str, name: str | None = None) -> str:
    value: str = run.one(typ, name).state["arn"]
    return value


def policy(reg: Registration) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(reg.props["policy"])
    return doc


def by_sid(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["Statement"]}


def actions(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Every action of the pipeline by its name (unique across the pipeline)."""
    pipeline = run.one("aws:codepipeline/pipeline:Pipeline").props
    found = {action["name"]: action for stage in pipeline["stages"] for action in stage["actions"]}
    assert len(found) == sum(len(stage["actions"]) for stage in pipeline["stages"])
    return found


# --- CodeDeploy --------------------------------------------------------------------------------------


def test_deployment_group_is_blue_green_on_exactly_the_services_target_groups_and_listeners(stage: ProgramRun) -> None:
    app = stage.one("aws:codedeploy/application:Application").props
    group = stage.one("aws:codedeploy/deploymentGroup:DeploymentGroup").props
    assert app["computePlatform"] == "ECS"
    assert group["appName"] == app["name"]
    assert group["deploymentStyle"] == {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
    assert group["ecsService"] == {"clusterName": "shop-dev-cluster", "serviceName": "shop-dev-service"}
    pair = group["loadBalancerInfo"]["targetGroupPairInfo"]
    assert [tg["name"] for tg in pair["targetGroups"]] == ["shop-dev-blue", "shop-dev-green"]
    assert pair["prodTrafficRoute"] == {"listenerArns": [PROD_LISTENER]}
    assert pair["testTrafficRoute"] == {"listenerArns": [TEST_LISTENER]}
    assert group["deploymentConfigName"] == "CodeDeployDefault.ECSLinear10PercentEvery1Minutes"
    blue_green = group["blueGreenDeploymentConfig"]
    assert blue_green["deploymentReadyOption"] == {"actionOnTimeout": "CONTINUE_DEPLOYMENT"}
    assert blue_green["terminateBlueInstancesOnDeploymentSuccess"] == {
        "action": "TERMINATE",
        "terminationWaitTimeInMinutes": 12,
    }
    assert group["autoRollbackConfiguration"]["enabled"] is True
    assert "DEPLOYMENT_FAILURE" in group["autoRollbackConfiguration"]["events"]
    # Without alarms there is nothing to stop on.
    assert "DEPLOYMENT_STOP_ON_ALARM" not in group["autoRollbackConfiguration"]["events"]
    assert "alarmConfiguration" not in group
    assert group["serviceRoleArn"] == arn_of(stage, "aws:iam/role:Role", "deploy-codedeploy")


def test_alarms_stop_and_roll_back_a_deployment(approved: ProgramRun) -> None:
    reg = approved.one("aws:codedeploy/deploymentGroup:DeploymentGroup")
    group = reg.props
    alarms = approved.of_type(ALARM)
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
    doc = by_sid(policy(approved.one(ROLE_POLICY, "deploy-codedeploy-policy")))
    assert doc["ReadTheDeploymentAlarms"]["Action"] == ["cloudwatch:DescribeAlarms"]
    assert sorted(doc["ReadTheDeploymentAlarms"]["Resource"]) == sorted(a.state["arn"] for a in alarms)


def test_no_alarm_configuration_when_alarms_are_off(stage: ProgramRun) -> None:
    assert stage.of_type(ALARM) == []
    group = stage.one("aws:codedeploy/deploymentGroup:DeploymentGroup").props
    assert "alarmConfiguration" not in group
    assert "DEPLOYMENT_STOP_ON_ALARM" not in group["autoRollbackConfiguration"]["events"]
    doc = by_sid(policy(stage.one(ROLE_POLICY, "deploy-codedeploy-policy")))
    assert "ReadTheDeploymentAlarms" not in doc
    assert not any(a.startswith("cloudwatch:") for s in doc.values() for a in s["Action"])


def test_codedeploy_role_acts_on_this_service_and_its_listeners_only(stage: ProgramRun) -> None:
    role = stage.one("aws:iam/role:Role", "deploy-codedeploy")
    assert json.loads(role.props["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "codedeploy.amazonaws.com"
    }
    doc = by_sid(policy(stage.one("aws:iam/rolePolicy:RolePolicy", "deploy-codedeploy-policy")))
    service = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/shop-dev-cluster/shop-dev-service"
    assert doc["ManageTheService"]["Resource"] == [service]
    assert doc["CreateTaskSetsOfTheService"]["Condition"] == {
        "ArnEquals": {
            "ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/shop-dev-cluster",
            "ecs:service": service,
        }
    }
    assert doc["DeleteTaskSetsOfTheService"]["Resource"] == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-set/shop-dev-cluster/shop-dev-service/*"
    ]
    listeners = doc["ShiftTrafficOnTheListeners"]["Resource"]
    assert [a.replace(":listener/*/", ":listener/app/") for a in listeners] == [PROD_LISTENER, TEST_LISTENER]
    assert doc["PassTheTaskRolesToEcs"]["Resource"] == [TASK_ROLE, EXECUTION_ROLE]
    assert doc["PassTheTaskRolesToEcs"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    # "*" only for Describe calls, and for CreateTaskSet under the cluster and service conditions.
    for sid, statement in doc.items():
        if "*" in statement["Resource"]:
            assert sid in {"DescribeLoadBalancing", "CreateTaskSetsOfTheService"}, sid
            assert all(":Describe" in a for a in statement["Action"]) or "Condition" in statement


# --- Pipeline ----------------------------------------------------------------------------------------


def test_pipeline_is_v2_source_build_deploy_wired_to_the_given_resources(stage: ProgramRun) -> None:
    pipeline = stage.one("aws:codepipeline/pipeline:Pipeline").props
    assert pipeline["pipelineType"] == "V2"
    assert pipeline["executionMode"] == "SUPERSEDED"
    assert [s["name"] for s in pipeline["stages"]] == ["Source", "Build", "Deploy"]
    source, build, deploy = (actions(stage)[n] for n in ("Source", "Build", "Deploy"))

    assert (source["category"], source["owner"], source["provider"]) == ("Source", "AWS", "S3")
    assert source["configuration"] == {"S3Bucket": BUCKET, "S3ObjectKey": KEY, "PollForSourceChanges": "false"}

    assert (build["category"], build["provider"]) == ("Build", "CodeBuild")
    assert build["configuration"]["ProjectName"] == PROJECT
    assert build["inputArtifacts"] == source["outputArtifacts"]
    variables = {v["name"]: v["value"] for v in json.loads(build["configuration"]["EnvironmentVariables"])}
    assert variables["PIPELINE_EXECUTION_ID"] == "#{codepipeline.PipelineExecutionId}"
    assert variables["SOURCE_VERSION_ID"] == f"#{{{source['namespace']}.VersionId}}"

    app = stage.one("aws:codedeploy/application:Application").props["name"]
    group = stage.one("aws:codedeploy/deploymentGroup:DeploymentGroup").props["deploymentGroupName"]
    assert (deploy["category"], deploy["provider"], deploy["version"]) == ("Deploy", "CodeDeployToECS", "1")
    (artifact,) = build["outputArtifacts"]
    assert deploy["inputArtifacts"] == [artifact]
    assert deploy["configuration"] == {
        "ApplicationName": app,
        "DeploymentGroupName": group,
        "TaskDefinitionTemplateArtifact": artifact,
        "TaskDefinitionTemplatePath": "taskdef.json",
        "AppSpecTemplateArtifact": artifact,
        "AppSpecTemplatePath": "appspec.yaml",
        "Image1ArtifactName": artifact,
        "Image1ContainerName": "IMAGE1_NAME",
    }


def test_the_deployed_image_is_marked_before_and_promoted_after_a_successful_deployment(stage: ProgramRun) -> None:
    """ECR never expires what production runs: the Deploy stage tags the image `deploying` before the deployment
    (refusing an image that expired while waiting), and `live` only after the deployment action succeeded."""
    pipeline = stage.one("aws:codepipeline/pipeline:Pipeline").props
    [deploy_stage] = [s for s in pipeline["stages"] if s["name"] == "Deploy"]
    order = [(a["name"], a.get("runOrder")) for a in deploy_stage["actions"]]
    assert order == [("MarkDeploying", 1), ("Deploy", 2), ("MarkLive", 3)]
    build_output = actions(stage)["Build"]["outputArtifacts"]
    for name, step in (("MarkDeploying", "deploying"), ("MarkLive", "live")):
        action = actions(stage)[name]
        assert (action["category"], action["provider"]) == ("Build", "CodeBuild")
        assert action["configuration"]["ProjectName"] == RELEASE_PROJECT
        assert action["inputArtifacts"] == build_output, "imageDetail.json names the image"
        assert not action.get("outputArtifacts")
        variables = json.loads(action["configuration"]["EnvironmentVariables"])
        assert variables == [{"name": "RELEASE_STEP", "value": step, "type": "PLAINTEXT"}]
    # The release project reads the build's artifact and nothing else of the store.
    doc = by_sid(policy(stage.one(ROLE_POLICY, "deploy-release-artifacts")))
    artifacts = arn_of(stage, "aws:s3/bucket:Bucket")
    assert doc["ReadArtifacts"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert doc["ReadArtifacts"]["Resource"] == [f"{artifacts}/*"]
    assert stage.one(ROLE_POLICY, "deploy-release-artifacts").props["role"] == "shop-dev-release"


def test_pipeline_validates_against_the_codepipeline_api(either: ProgramRun) -> None:
    reg = either.one("aws:codepipeline/pipeline:Pipeline")
    pipeline = reg.props
    (store,) = pipeline["artifactStores"]
    request = {
        "pipeline": {
            "name": pipeline["name"],
            "roleArn": pipeline["roleArn"],
            "artifactStore": {"type": store["type"], "location": store["location"]},
            "pipelineType": pipeline["pipelineType"],
            "executionMode": pipeline["executionMode"],
            "stages": [
                {
                    "name": s["name"],
                    "actions": [
                        {
                            "name": a["name"],
                            "actionTypeId": {k: a[k] for k in ("category", "owner", "provider", "version")},
                            **({"runOrder": int(a["runOrder"])} if "runOrder" in a else {}),
                            "configuration": a["configuration"],
                            **({"namespace": a["namespace"]} if "namespace" in a else {}),
                            "inputArtifacts": [{"name": n} for n in a.get("inputArtifacts", [])],
                            "outputArtifacts": [{"name": n} for n in a.get("outputArtifacts", [])],
                        }
                        for a in s["actions"]
                    ],
                }
                for s in pipeline["stages"]
            ],
        }
    }
    model = botocore.session.get_session().get_service_model("codepipeline")
    report = ParamValidator().validate(request, model.operation_model("CreatePipeline").input_shape)
    assert not report.has_errors(), report.generate_report()
    # Action configuration values are at most 1000 characters.
    for s in pipeline["stages"]:
        for a in s["actions"]:
            assert all(isinstance(v, str) and 0 < len(v) <= 1000 for v in a["configuration"].values())


def test_pipeline_role_is_scoped_to_what_the_pipeline_touches(stage: ProgramRun) -> None:
    role = stage.one("aws:iam/role:Role", "deploy-pipeline-role")
    assert stage.one("aws:codepipeline/pipeline:Pipeline").props["roleArn"] == role.state["arn"]
    artifacts = arn_of(stage, "aws:s3/bucket:Bucket")
    doc = by_sid(policy(stage.one("aws:iam/rolePolicy:RolePolicy", "deploy-pipeline-policy")))
    assert doc["ReadTheSourceObject"]["Resource"] == [f"{BUCKET_ARN}/{KEY}"]
    assert doc["SourceAndArtifactBuckets"]["Resource"] == [BUCKET_ARN, artifacts]
    assert doc["ArtifactObjects"]["Resource"] == [f"{artifacts}/*"]
    assert doc["RunTheBuildAndRelease"]["Resource"] == [PROJECT_ARN, RELEASE_PROJECT_ARN]
    assert doc["DeployWithTheGroup"]["Resource"] == [
        f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:deploymentgroup:shop-dev/shop-dev"
    ]
    assert doc["RegisterRevisions"]["Resource"] == [arn_of(stage, "aws:codedeploy/application:Application")]
    assert doc["ReadTheDeploymentConfig"]["Resource"] == [
        f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:deploymentconfig:CodeDeployDefault.ECSLinear10PercentEvery1Minutes"
    ]
    assert doc["RegisterTaskDefinitionRevisions"]["Resource"] == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/shop-dev:*"
    ]
    assert doc["PassTheTaskRolesToEcs"]["Resource"] == [TASK_ROLE, EXECUTION_ROLE]
    assert doc["PassTheTaskRolesToEcs"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert all("*" not in s["Resource"] for s in doc.values())


def test_artifact_bucket_is_private_encrypted_tls_only_and_expires(stage: ProgramRun) -> None:
    bucket = stage.one("aws:s3/bucket:Bucket")
    name, arn = bucket.state["bucket"], bucket.state["arn"]
    (store,) = stage.one("aws:codepipeline/pipeline:Pipeline").props["artifactStores"]
    assert store == {"location": name, "type": "S3"}
    block = stage.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").props
    assert block["bucket"] == bucket.id
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    encryption = stage.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption.props["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    (deny,) = policy(stage.one("aws:s3/bucketPolicy:BucketPolicy"))["Statement"]
    assert (deny["Effect"], deny["Action"], deny["Principal"]) == ("Deny", "s3:*", "*")
    assert deny["Resource"] == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (rule,) = stage.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").props["rules"]
    assert rule["status"] == "Enabled" and rule["expiration"]["days"] > 0


def test_only_force_destroy_lets_a_stack_deletion_empty_the_artifact_bucket(stage: ProgramRun, tmp_path: Path) -> None:
    assert stage.one("aws:s3/bucket:Bucket").props["forceDestroy"] is False
    dev = run_deploy_stage(tmp_path, force_destroy=True)
    assert dev.one("aws:s3/bucket:Bucket").props["forceDestroy"] is True


# --- Manual approval ---------------------------------------------------------------------------------


def test_manual_approval_waits_between_build_and_deploy_and_notifies_the_topic(approved: ProgramRun) -> None:
    pipeline = approved.one("aws:codepipeline/pipeline:Pipeline").props
    assert [s["name"] for s in pipeline["stages"]] == ["Source", "Build", "Approve", "Deploy"]
    approve = actions(approved)["Approve"]
    assert (approve["category"], approve["owner"], approve["provider"], approve["version"]) == (
        "Approval",
        "AWS",
        "Manual",
        "1",
    )
    config = approve["configuration"]
    assert config["NotificationArn"] == TOPIC
    assert config["ExternalEntityLink"] == approved.outputs["pipelineUrl"]
    # Says what is being approved: a deployment of this stack's service, and how to answer.
    assert "shop-dev" in config["CustomData"] and "deploy" in config["CustomData"].lower()
    assert "reject" in config["CustomData"].lower()
    # The deployment still takes the build's artifact, not anything from the approval.
    assert "inputArtifacts" not in approve and "outputArtifacts" not in approve
    assert actions(approved)["Deploy"]["inputArtifacts"] == actions(approved)["Build"]["outputArtifacts"]


def test_no_approval_stage_unless_asked(stage: ProgramRun) -> None:
    pipeline = stage.one("aws:codepipeline/pipeline:Pipeline").props
    assert [s["name"] for s in pipeline["stages"]] == ["Source", "Build", "Deploy"]
    assert all(a["category"] != "Approval" for s in pipeline["stages"] for a in s["actions"])


def test_pipeline_role_may_publish_approval_requests_to_the_topic_only(approved: ProgramRun, stage: ProgramRun) -> None:
    doc = by_sid(policy(approved.one(ROLE_POLICY, "deploy-pipeline-policy")))
    assert (doc["RequestApprovalOnTheTopic"]["Action"], doc["RequestApprovalOnTheTopic"]["Resource"]) == (
        ["sns:Publish"],
        [TOPIC],
    )
    assert doc["EncryptForTheTopic"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert doc["EncryptForTheTopic"]["Resource"] == [KMS_KEY]
    touching = {sid for sid, s in doc.items() if any(a.split(":")[0] in {"sns", "kms"} for a in s["Action"])}
    assert touching == {"RequestApprovalOnTheTopic", "EncryptForTheTopic"}
    # Without an approval stage the pipeline publishes nothing.
    without = by_sid(policy(stage.one(ROLE_POLICY, "deploy-pipeline-policy")))
    assert not any(a.split(":")[0] in {"sns", "kms"} for s in without.values() for a in s["Action"])


def test_approval_without_a_topic_is_answered_in_the_console_and_notifies_nothing(tmp_path: Path) -> None:
    run = run_deploy_stage(tmp_path, approval=True, notify=False)
    approve = actions(run)["Approve"]
    assert "NotificationArn" not in approve["configuration"]
    doc = by_sid(policy(run.one(ROLE_POLICY, "deploy-pipeline-policy")))
    assert not any(a.split(":")[0] in {"sns", "kms"} for s in doc.values() for a in s["Action"])
    assert [r.name for r in run.of_type(RULE)] == ["deploy-trigger"]


# --- Failure notifications -----------------------------------------------------------------------------


def pipeline_event(
    pipeline: str, state: str, detail_type: str = "CodePipeline Pipeline Execution State Change"
) -> dict[str, Any]:
    """A pipeline execution event as CodePipeline sends it to EventBridge."""
    return {
        "version": "0",
        "id": "01234567-0123-0123-0123-012345678901",
        "detail-type": detail_type,
        "source": "aws.codepipeline",
        "account": ACCOUNT_ID,
        "time": "2025-01-24T22:03:07Z",
        "region": REGION,
        "resources": [f"arn:aws:codepipeline:{REGION}:{ACCOUNT_ID}:{pipeline}"],
        "detail": {
            "pipeline": pipeline,
            "execution-id": "12345678-1234-5678-abcd-12345678abcd",
            "execution-trigger": {"trigger-type": "CloudWatchEvent", "trigger-detail": "shop-dev-source-upload"},
            "state": state,
            "version": 3.0,
            "pipeline-execution-attempt": 1.0,
        },
    }


def deployment_event(
    application: str, group: str, state: str, detail_type: str = "CodeDeploy Deployment State-change Notification"
) -> dict[str, Any]:
    """A deployment event as CodeDeploy sends it to EventBridge."""
    return {
        "version": "0",
        "id": "c071bfbf-83c4-49ca-a6ff-3df053957145",
        "detail-type": detail_type,
        "source": "aws.codedeploy",
        "account": ACCOUNT_ID,
        "time": "2025-01-24T22:10:31Z",
        "region": REGION,
        "resources": [
            f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:application:{application}",
            f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:deploymentgroup:{application}/{group}",
        ],
        "detail": {
            "instanceGroupId": "9fd2fbef-2157-40d8-91e7-6845af69e2d2",
            "region": REGION,
            "application": application,
            "deploymentId": "d-7UEXAMPLE",
            "state": state,
            "deploymentGroup": group,
        },
    }


def matches(pattern: str, event: dict[str, Any]) -> bool:
    """Whether EventBridge would deliver ``event`` to a rule with ``pattern`` (moto's implementation)."""
    return bool(EventPattern.load(pattern).matches_event(cast(EventMessageType, event)))


def message(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What the target delivers for ``event``, through moto's input transformer."""
    transformer = target["inputTransformer"]
    delivered = cast(EventMessageType, {**event, "ingestion-time": 0})
    return EventTemplateParser.parse(transformer["inputTemplate"], transformer["inputPaths"], delivered)


def test_failure_rules_notify_the_topic_directly(stage: ProgramRun) -> None:
    rules = {r.name: r for r in stage.of_type(RULE)}
    assert {rules[n].props["name"] for n in ("deploy-pipeline-failed", "deploy-deployment-failed")} == {
        "shop-dev-pipeline-failed",
        "shop-dev-deployment-failed",
    }
    for name in ("deploy-pipeline-failed", "deploy-deployment-failed"):
        target = stage.one(TARGET, f"{name}-target").props
        assert (target["rule"], target["arn"]) == (rules[name].props["name"], TOPIC)
        # The topic's policy admits the stack's rules by ARN (rule/<prefix>-*); no role is involved.
        assert "roleArn" not in target
        assert fnmatchcase(rules[name].state["arn"], f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/shop-dev-*")


def test_pipeline_failed_rule_matches_only_a_failed_execution_of_this_pipeline(stage: ProgramRun) -> None:
    pattern = stage.one(RULE, "deploy-pipeline-failed").props["eventPattern"]
    assert matches(pattern, pipeline_event("shop-dev", "FAILED"))
    for state in ("STARTED", "SUCCEEDED", "SUPERSEDED", "CANCELED", "RESUMED", "STOPPED"):
        assert not matches(pattern, pipeline_event("shop-dev", state)), state
    assert not matches(pattern, pipeline_event("other-dev", "FAILED"))
    assert not matches(pattern, pipeline_event("shop-dev-2", "FAILED"))
    # A failed stage or action also fails the execution: one message, not three.
    assert not matches(pattern, pipeline_event("shop-dev", "FAILED", "CodePipeline Stage Execution State Change"))
    assert not matches(pattern, pipeline_event("shop-dev", "FAILED", "CodePipeline Action Execution State Change"))


def test_deployment_failed_rule_matches_only_a_failed_or_stopped_deployment_of_this_group(stage: ProgramRun) -> None:
    pattern = stage.one(RULE, "deploy-deployment-failed").props["eventPattern"]
    assert matches(pattern, deployment_event("shop-dev", "shop-dev", "FAILURE"))
    assert matches(pattern, deployment_event("shop-dev", "shop-dev", "STOP"))
    for state in ("START", "READY", "SUCCESS"):
        assert not matches(pattern, deployment_event("shop-dev", "shop-dev", state)), state
    assert not matches(pattern, deployment_event("shop-dev", "other-group", "FAILURE"))
    assert not matches(pattern, deployment_event("other-app", "shop-dev", "FAILURE"))
    assert not matches(
        pattern, deployment_event("shop-dev", "shop-dev", "FAILURE", "CodeDeploy Instance State-change Notification")
    )


def test_failure_messages_are_one_readable_line_with_a_console_link(stage: ProgramRun) -> None:
    execution = pipeline_event("shop-dev", "FAILED")
    text = message(stage.one(TARGET, "deploy-pipeline-failed-target").props, execution)
    assert isinstance(text, str) and "\n" not in text and "<" not in text
    assert "shop-dev" in text and execution["detail"]["execution-id"] in text
    assert (
        f"{CONSOLE}/codepipeline/pipelines/shop-dev/executions/{execution['detail']['execution-id']}/timeline"
        f"?region={REGION}"
    ) in text

    deployment = deployment_event("shop-dev", "shop-dev", "STOP")
    text = message(stage.one(TARGET, "deploy-deployment-failed-target").props, deployment)
    assert isinstance(text, str) and "\n" not in text and "<" not in text
    assert "STOP" in text and "rolled back" in text
    assert f"{CONSOLE}/codedeploy/deployments/d-7UEXAMPLE?region={REGION}" in text


def test_failure_rules_and_targets_validate_against_the_eventbridge_api(stage: ProgramRun) -> None:
    model = botocore.session.get_session().get_service_model("events")
    for name in ("deploy-pipeline-failed", "deploy-deployment-failed"):
        rule = stage.one(RULE, name).props
        target = stage.one(TARGET, f"{name}-target").props
        calls = {
            "PutRule": {"Name": rule["name"], "EventPattern": rule["eventPattern"], "Description": rule["description"]},
            "PutTargets": {
                "Rule": target["rule"],
                "Targets": [
                    {
                        "Id": target["targetId"],
                        "Arn": target["arn"],
                        "InputTransformer": {
                            "InputPathsMap": target["inputTransformer"]["inputPaths"],
                            "InputTemplate": target["inputTransformer"]["inputTemplate"],
                        },
                    }
                ],
            },
        }
        for operation, params in calls.items():
            report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
            assert not report.has_errors(), f"{name} {operation}: {report.generate_report()}"
        # Documented limits the validator does not check: 100 input paths, an 8192-character template.
        assert len(target["inputTransformer"]["inputPaths"]) <= 100
        assert len(target["inputTransformer"]["inputTemplate"]) <= 8192


def test_build_role_may_use_the_artifact_bucket_only(stage: ProgramRun) -> None:
    grant = stage.one("aws:iam/rolePolicy:RolePolicy", "deploy-build-artifacts")
    assert grant.props["role"] == "shop-dev-build"
    artifacts = arn_of(stage, "aws:s3/bucket:Bucket")
    resources = sorted(r for s in policy(grant)["Statement"] for r in s["Resource"])
    assert resources == [artifacts, f"{artifacts}/*"]


def test_upload_event_starts_the_pipeline_through_a_role_that_can_only_start_it(stage: ProgramRun) -> None:
    rule = stage.one(RULE, "deploy-trigger").props
    assert json.loads(rule["eventPattern"]) == json.loads(PATTERN)
    target = stage.one(TARGET, "deploy-trigger-target").props
    pipeline_arn = arn_of(stage, "aws:codepipeline/pipeline:Pipeline")
    role = stage.one("aws:iam/role:Role", "deploy-trigger-role")
    assert (target["rule"], target["arn"], target["roleArn"]) == (rule["name"], pipeline_arn, role.state["arn"])
    assert json.loads(role.props["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "events.amazonaws.com"
    }
    (allowed,) = policy(stage.one("aws:iam/rolePolicy:RolePolicy", "deploy-trigger-policy"))["Statement"]
    assert (allowed["Action"], allowed["Resource"]) == (["codepipeline:StartPipelineExecution"], [pipeline_arn])
    assert [p.props["role"] for p in stage.of_type("aws:iam/rolePolicy:RolePolicy") if p.props["role"] == role.id] == [
        role.id
    ]


def test_every_policy_passes_parliament(stage: ProgramRun, approved: ProgramRun) -> None:
    policies = stage.of_type(ROLE_POLICY) + approved.of_type(ROLE_POLICY)
    assert len(policies) == 10
    for reg in policies:
        findings = [f"{f.issue}: {f.detail}" for f in analyze_policy_string(reg.props["policy"]).findings]
        assert findings == [], reg.name


def test_outputs_name_the_pipeline_and_its_console_page(stage: ProgramRun) -> None:
    assert stage.outputs["pipelineName"] == "shop-dev"
    assert stage.outputs["pipelineUrl"] == (
        "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/shop-dev/view?region=eu-west-1"
    )
