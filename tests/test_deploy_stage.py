"""DeployStage on mocks: the CodeDeploy blue/green group, the pipeline's stages and actions, the artifact
bucket, the trigger, and every role scoped to the ARNs it touches.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
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
LB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:listener/app/shop-dev/50dc6c495c0c9188"
PROD_LISTENER = f"{LB}/f2f7dc8efc522ab2"
TEST_LISTENER = f"{LB}/0467ef3c8400ae65"
TASK_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/shop-dev-task"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/shop-dev-execution"

# The program reads every input from its config (INPUTS), as the stack would pass them from other components.
INPUTS = {
    "sourceBucketName": BUCKET,
    "sourceBucketArn": BUCKET_ARN,
    "sourceObjectKey": KEY,
    "sourceEventPattern": PATTERN,
    "projectName": PROJECT,
    "projectArn": PROJECT_ARN,
    "prodListenerArn": PROD_LISTENER,
    "testListenerArn": TEST_LISTENER,
    "taskRoleArn": TASK_ROLE,
    "executionRoleArn": EXECUTION_ROLE,
}
PROGRAM = """
import pulumi
from components.config import parse_config
from components.deploy_stage import DeployStage, DeployStageArgs

config = pulumi.Config()
cfg = parse_config(
    {"gitlabProject": "shop/web", "deploymentConfig": "ECSLinear10PercentEvery1Minutes",
     "terminationWaitMinutes": "12"},
    stack="dev", region="eu-west-1",
)
stage = DeployStage("deploy", DeployStageArgs(
    name_prefix="shop-dev", region="eu-west-1", pipeline=cfg.pipeline,
    source_bucket_name=config.require("sourceBucketName"), source_bucket_arn=config.require("sourceBucketArn"),
    source_object_key=config.require("sourceObjectKey"), source_event_pattern=config.require("sourceEventPattern"),
    project_name=config.require("projectName"), project_arn=config.require("projectArn"),
    build_role_name="shop-dev-build",
    cluster_name="shop-dev-cluster", service_name="shop-dev-service",
    blue_target_group_name="shop-dev-blue", green_target_group_name="shop-dev-green",
    prod_listener_arn=config.require("prodListenerArn"), test_listener_arn=config.require("testListenerArn"),
    family="shop-dev", task_role_arn=config.require("taskRoleArn"),
    execution_role_arn=config.require("executionRoleArn"),
    alarm_names=tuple(config.get_object("alarms") or ()),
))
pulumi.export("pipelineName", stage.pipeline_name)
pulumi.export("pipelineUrl", stage.pipeline_url)
"""


def run_deploy_stage(tmp_path: Path, alarms: tuple[str, ...] = ()) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {f"gitlab-fargate:{k}": v for k, v in INPUTS.items()}
    config.update({"aws:region": REGION, "gitlab-fargate:alarms": json.dumps(list(alarms))})
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_deploy_stage(tmp_path_factory.mktemp("deploy-stage"))


def arn_of(run: ProgramRun, typ: str, name: str | None = None) -> str:
    value: str = run.one(typ, name).state["arn"]
    return value


def policy(reg: Registration) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(reg.props["policy"])
    return doc


def by_sid(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["Statement"]}


def actions(run: ProgramRun) -> dict[str, dict[str, Any]]:
    pipeline = run.one("aws:codepipeline/pipeline:Pipeline").props
    return {stage["name"]: stage["actions"][0] for stage in pipeline["stages"]}


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


def test_alarms_stop_and_roll_back_a_deployment(tmp_path: Path) -> None:
    run = run_deploy_stage(tmp_path, alarms=("shop-dev-5xx",))
    group = run.one("aws:codedeploy/deploymentGroup:DeploymentGroup").props
    assert group["alarmConfiguration"] == {"enabled": True, "alarms": ["shop-dev-5xx"]}
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["autoRollbackConfiguration"]["events"]
    doc = by_sid(policy(run.one("aws:iam/rolePolicy:RolePolicy", "deploy-codedeploy-policy")))
    assert doc["ReadTheDeploymentAlarms"]["Resource"] == [
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:shop-dev-5xx"
    ]


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


def test_pipeline_validates_against_the_codepipeline_api(stage: ProgramRun) -> None:
    reg = stage.one("aws:codepipeline/pipeline:Pipeline")
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
    assert doc["RunTheBuild"]["Resource"] == [PROJECT_ARN]
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


def test_build_role_may_use_the_artifact_bucket_only(stage: ProgramRun) -> None:
    grant = stage.one("aws:iam/rolePolicy:RolePolicy", "deploy-build-artifacts")
    assert grant.props["role"] == "shop-dev-build"
    artifacts = arn_of(stage, "aws:s3/bucket:Bucket")
    resources = sorted(r for s in policy(grant)["Statement"] for r in s["Resource"])
    assert resources == [artifacts, f"{artifacts}/*"]


def test_upload_event_starts_the_pipeline_through_a_role_that_can_only_start_it(stage: ProgramRun) -> None:
    rule = stage.one("aws:cloudwatch/eventRule:EventRule").props
    assert json.loads(rule["eventPattern"]) == json.loads(PATTERN)
    target = stage.one("aws:cloudwatch/eventTarget:EventTarget").props
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


def test_every_policy_passes_parliament(stage: ProgramRun, tmp_path: Path) -> None:
    with_alarms = run_deploy_stage(tmp_path, alarms=("shop-dev-5xx",))
    policies = stage.of_type("aws:iam/rolePolicy:RolePolicy") + with_alarms.of_type("aws:iam/rolePolicy:RolePolicy")
    assert len(policies) == 8
    for reg in policies:
        findings = [f"{f.issue}: {f.detail}" for f in analyze_policy_string(reg.props["policy"]).findings]
        assert findings == [], reg.name


def test_outputs_name_the_pipeline_and_its_console_page(stage: ProgramRun) -> None:
    assert stage.outputs["pipelineName"] == "shop-dev"
    assert stage.outputs["pipelineUrl"] == (
        "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/shop-dev/view?region=eu-west-1"
    )
