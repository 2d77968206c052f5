"""DeliveryPipeline on mocks: the V2 pipeline's stages and actions (Source -> Build -> (Approve) -> Deploy, with the
image marked around the deployment), the artifact names of the Build -> Deploy contract, requests against the
CodePipeline API model, and the pipeline role scoped to the exact objects, projects, group and family it touches.

The source, the projects, the service's runtime and the topic are stand-ins (``support.bundles``); the deployment
group is a stand-in of CodeDeployBlueGreen's bundle (with an application and a group of different names); the
artifact store is a real ``ArtifactStore`` (the pipeline takes the component).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components import contracts
from components.artifact_store import ArtifactStore
from components.codedeploy_blue_green import (
    BlueGreenDeployment,
    codedeploy_to_ecs,
    deployment_failed_message,
    deployment_failed_pattern,
    pipeline_statements,
)
from components.delivery_pipeline import DeliveryPipeline, DeliveryPipelineArgs, console_url
from components.ecs_service import TaskRuntime
from components.pipeline_actions import Deployer
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.aws import assert_valid_request, by_sid, parliament_findings, policy_of
from support.stacks import REGION, run, stack_config

PREFIX = bundles.PREFIX
APPLICATION = f"{PREFIX}-app"
GROUP = f"{PREFIX}-group"
LINEAR = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes"
SNS_KMS = {"sns", "kms"}


def deployment() -> BlueGreenDeployment:
    """A stand-in of what CodeDeployBlueGreen hands the pipeline."""
    return BlueGreenDeployment(
        application_name=bundles.out(APPLICATION),
        application_arn=bundles.out(bundles.arn("codedeploy", f"application:{APPLICATION}")),
        deployment_group_name=bundles.out(GROUP),
        deployment_config_name=LINEAR,
    )


def codedeploy_deployer(runtime: TaskRuntime) -> Deployer:
    """What CodeDeployBlueGreen hands the pipeline, for the stand-in group."""
    group = deployment()
    return Deployer(
        engine="codedeploy",
        description=f"blue/green, {LINEAR}",
        action=codedeploy_to_ecs(group, 2),
        pipeline_statements=pipeline_statements(group, runtime, REGION, "aws", ACCOUNT_ID),
        failed_pattern=deployment_failed_pattern(group.application_name, group.deployment_group_name),
        failed_message=deployment_failed_message(REGION),
    )


def build_pipeline(*, approval: bool = False, notify: bool = True) -> ProgramRun:
    ctx = stack_config({"appName": "shop"}).context

    def build() -> None:
        source, projects, runtime = bundles.source(), bundles.projects(), bundles.runtime()
        topic = bundles.topic() if notify else None
        delivery = DeliveryPipeline(
            "deploy",
            DeliveryPipelineArgs(
                context=ctx,
                source=source,
                projects=projects,
                deployer=codedeploy_deployer(runtime),
                artifacts=ArtifactStore("deploy", ctx),
                manual_approval=approval,
                topic=topic,
            ),
        )
        pulumi.export("pipelineName", delivery.pipeline.name)
        pulumi.export("pipelineArn", delivery.pipeline.arn)
        pulumi.export("pipelineUrl", delivery.pipeline.url)
        # The stand-ins' values, to compare with.
        pulumi.export("sourceBucket", source.bucket_name)
        pulumi.export("sourceBucketArn", source.bucket_arn)
        pulumi.export("projectName", projects.project_name)
        pulumi.export("projectArn", projects.project_arn)
        pulumi.export("releaseProjectName", projects.release_project_name)
        pulumi.export("releaseProjectArn", projects.release_project_arn)
        pulumi.export("taskRole", runtime.task_role.arn)
        pulumi.export("executionRole", runtime.execution_role.arn)
        if topic is not None:
            pulumi.export("topicArn", topic.topic_arn)
            pulumi.export("keyArn", topic.key_arn)

    return run(build)


@pytest.fixture(scope="module")
def plain() -> ProgramRun:
    return build_pipeline()


@pytest.fixture(scope="module")
def approved() -> ProgramRun:
    """With the manual approval stage and a topic, as on prod."""
    return build_pipeline(approval=True)


@pytest.fixture(scope="module")
def console_only() -> ProgramRun:
    """With the manual approval stage and no topic."""
    return build_pipeline(approval=True, notify=False)


def pipeline_of(found: ProgramRun) -> dict[str, Any]:
    props: dict[str, Any] = found.one(rt.CODEPIPELINE_PIPELINE).props
    return props


def stage_names(found: ProgramRun) -> list[str]:
    return [s["name"] for s in pipeline_of(found)["stages"]]


def actions(found: ProgramRun) -> dict[str, dict[str, Any]]:
    """Every action of the pipeline by its name (unique across the pipeline)."""
    stages = pipeline_of(found)["stages"]
    found_actions = {action["name"]: action for stage in stages for action in stage["actions"]}
    assert len(found_actions) == sum(len(stage["actions"]) for stage in stages)
    return found_actions


def role_policy(found: ProgramRun) -> Registration:
    return found.one(rt.IAM_ROLE_POLICY, "deploy-pipeline-policy")


def statements(found: ProgramRun) -> dict[str, dict[str, Any]]:
    return by_sid(policy_of(role_policy(found)))


def services_of(doc: dict[str, dict[str, Any]]) -> set[str]:
    return {a.split(":")[0] for s in doc.values() for a in s["Action"]}


# --- Stages and actions ------------------------------------------------------------------------------------


def test_pipeline_is_v2_source_build_deploy_wired_to_the_given_resources(plain: ProgramRun) -> None:
    # Pipeline types and execution modes: https://docs.aws.amazon.com/codepipeline/latest/userguide/pipeline-types.html
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/concepts-how-it-works.html#concepts-how-it-works-executions
    pipeline = pipeline_of(plain)
    assert pipeline["pipelineType"] == "V2"
    assert pipeline["executionMode"] == "SUPERSEDED"
    assert stage_names(plain) == ["Source", "Build", "Deploy"]
    source, build, deploy = (actions(plain)[n] for n in ("Source", "Build", "Deploy"))

    # https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-S3.html (an EventBridge rule
    # starts the pipeline, so no polling).
    assert (source["category"], source["owner"], source["provider"]) == ("Source", "AWS", "S3")
    assert source["configuration"] == {
        "S3Bucket": plain.outputs["sourceBucket"],
        "S3ObjectKey": bundles.SOURCE_KEY,
        "PollForSourceChanges": "false",
    }
    assert source["outputArtifacts"] == [contracts.SOURCE_ARTIFACT]

    # https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-CodeBuild.html and variables:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/reference-variables.html
    assert (build["category"], build["provider"]) == ("Build", "CodeBuild")
    assert build["configuration"]["ProjectName"] == plain.outputs["projectName"]
    assert build["inputArtifacts"] == source["outputArtifacts"]
    variables = {v["name"]: v["value"] for v in json.loads(build["configuration"]["EnvironmentVariables"])}
    assert variables["PIPELINE_EXECUTION_ID"] == "#{codepipeline.PipelineExecutionId}"
    assert variables["SOURCE_VERSION_ID"] == f"#{{{source['namespace']}.VersionId}}"
    assert build["outputArtifacts"] == [contracts.BUILD_ARTIFACT]

    # https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-ECSbluegreen.html
    assert (deploy["category"], deploy["provider"], deploy["version"]) == ("Deploy", "CodeDeployToECS", "1")
    (artifact,) = build["outputArtifacts"]
    assert deploy["inputArtifacts"] == [artifact]
    assert deploy["configuration"] == {
        "ApplicationName": APPLICATION,
        "DeploymentGroupName": GROUP,
        "TaskDefinitionTemplateArtifact": artifact,
        "TaskDefinitionTemplatePath": contracts.TASKDEF_FILE,
        "AppSpecTemplateArtifact": artifact,
        "AppSpecTemplatePath": contracts.APPSPEC_FILE,
        "Image1ArtifactName": artifact,
        # The placeholder's name (written <IMAGE1_NAME> in taskdef.json), not the container's.
        "Image1ContainerName": contracts.IMAGE_PLACEHOLDER,
    }


def test_the_artifact_store_is_the_given_store(plain: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/welcome-introducing-artifacts.html
    (store,) = pipeline_of(plain)["artifactStores"]
    assert store == {"location": plain.one(rt.S3_BUCKET).state["bucket"], "type": "S3"}


def test_the_deployed_image_is_marked_before_and_promoted_after_a_successful_deployment(plain: ProgramRun) -> None:
    """ECR never expires what production runs: the Deploy stage tags the image `deploying` before the deployment
    (refusing an image that expired while waiting), and `live` only after the deployment action succeeded."""
    # Actions of one stage run by runOrder, each after the previous succeeded:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/reference-pipeline-structure.html#action-requirements
    [deploy_stage] = [s for s in pipeline_of(plain)["stages"] if s["name"] == "Deploy"]
    order = [(a["name"], a.get("runOrder")) for a in deploy_stage["actions"]]
    assert order == [("MarkDeploying", 1), ("Deploy", 2), ("MarkLive", 3)]
    build_output = actions(plain)["Build"]["outputArtifacts"]
    for name, step in (("MarkDeploying", "deploying"), ("MarkLive", "live")):
        action = actions(plain)[name]
        assert (action["category"], action["provider"]) == ("Build", "CodeBuild")
        assert action["configuration"]["ProjectName"] == plain.outputs["releaseProjectName"]
        assert action["inputArtifacts"] == build_output, f"{contracts.IMAGE_DETAIL_FILE} names the image"
        assert not action.get("outputArtifacts")
        variables = json.loads(action["configuration"]["EnvironmentVariables"])
        assert variables == [{"name": "RELEASE_STEP", "value": step, "type": "PLAINTEXT"}]


def create_pipeline_request(pipeline: dict[str, Any]) -> dict[str, Any]:
    """The CreatePipeline call the provider makes from the resource's inputs."""
    (store,) = pipeline["artifactStores"]
    return {
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


@pytest.mark.parametrize("variant", ["plain", "approved", "console_only"])
def test_pipeline_validates_against_the_codepipeline_api(variant: str, request: pytest.FixtureRequest) -> None:
    found: ProgramRun = request.getfixturevalue(variant)
    pipeline = pipeline_of(found)
    # https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_CreatePipeline.html
    assert_valid_request("codepipeline", "CreatePipeline", create_pipeline_request(pipeline))
    # Action configuration values are at most 1000 characters:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
    for s in pipeline["stages"]:
        for a in s["actions"]:
            assert all(isinstance(v, str) and 0 < len(v) <= 1000 for v in a["configuration"].values()), a["name"]


# --- The pipeline role ---------------------------------------------------------------------------------------


def test_pipeline_role_is_assumed_by_codepipeline_for_this_account_only(plain: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/security-iam.html#how-to-custom-role and
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html
    role = plain.one(rt.IAM_ROLE, "deploy-pipeline-role")
    assert role.props["name"] == f"{PREFIX}-pipeline"
    assert pipeline_of(plain)["roleArn"] == role.state["arn"]
    (trust,) = policy_of(role, "assumeRolePolicy")["Statement"]
    assert trust["Principal"] == {"Service": "codepipeline.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    assert role_policy(plain).props["role"] == role.id
    # The pipeline waits for its role's policy (IAM is eventually consistent):
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
    assert role_policy(plain).urn in plain.one(rt.CODEPIPELINE_PIPELINE).dependencies


def test_pipeline_role_is_scoped_to_what_the_pipeline_touches(plain: ProgramRun) -> None:
    # Resource types per action: https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodedeploy.html
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodebuild.html
    doc = statements(plain)
    out = plain.outputs
    artifacts = plain.one(rt.S3_BUCKET).state["arn"]
    assert doc["ReadTheSourceObject"]["Resource"] == [f"{out['sourceBucketArn']}/{bundles.SOURCE_KEY}"]
    assert doc["SourceAndArtifactBuckets"]["Resource"] == [out["sourceBucketArn"], artifacts]
    assert doc["ArtifactObjects"]["Resource"] == [f"{artifacts}/*"]
    assert doc["RunTheBuildAndRelease"]["Resource"] == [out["projectArn"], out["releaseProjectArn"]]
    assert doc["DeployWithTheGroup"]["Resource"] == [
        f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:deploymentgroup:{APPLICATION}/{GROUP}"
    ]
    assert doc["RegisterRevisions"]["Resource"] == [
        f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:application:{APPLICATION}"
    ]
    assert doc["ReadTheDeploymentConfig"]["Resource"] == [
        f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:deploymentconfig:{LINEAR}"
    ]
    # CodeDeployToECS registers taskdef.json as a revision of the service's family.
    assert doc["RegisterTaskDefinitionRevisions"]["Resource"] == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{PREFIX}:*"
    ]
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService
    assert doc["PassTheTaskRolesToEcs"]["Resource"] == [out["taskRole"], out["executionRole"]]
    assert doc["PassTheTaskRolesToEcs"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert all("*" not in s["Resource"] for s in doc.values())


@pytest.mark.parametrize("variant", ["plain", "approved", "console_only"])
def test_the_pipeline_policy_passes_parliament(variant: str, request: pytest.FixtureRequest) -> None:
    found: ProgramRun = request.getfixturevalue(variant)
    assert [p.name for p in found.of_type(rt.IAM_ROLE_POLICY)] == ["deploy-pipeline-policy"]
    assert parliament_findings(role_policy(found).props["policy"]) == []


# --- Manual approval ------------------------------------------------------------------------------------------


def test_manual_approval_waits_between_build_and_deploy_and_notifies_the_topic(approved: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/approvals-action-add.html
    assert stage_names(approved) == ["Source", "Build", "Approve", "Deploy"]
    approve = actions(approved)["Approve"]
    assert (approve["category"], approve["owner"], approve["provider"], approve["version"]) == (
        "Approval",
        "AWS",
        "Manual",
        "1",
    )
    config = approve["configuration"]
    assert config["NotificationArn"] == approved.outputs["topicArn"]
    assert config["ExternalEntityLink"] == approved.outputs["pipelineUrl"]
    # Says what is being approved: a deployment of this stack's service, and how to answer.
    assert PREFIX in config["CustomData"] and "deploy" in config["CustomData"].lower()
    assert "reject" in config["CustomData"].lower()
    # The deployment still takes the build's artifact, not anything from the approval.
    assert "inputArtifacts" not in approve and "outputArtifacts" not in approve
    assert actions(approved)["Deploy"]["inputArtifacts"] == actions(approved)["Build"]["outputArtifacts"]


def test_no_approval_stage_unless_asked(plain: ProgramRun) -> None:
    assert stage_names(plain) == ["Source", "Build", "Deploy"]
    assert all(a["category"] != "Approval" for s in pipeline_of(plain)["stages"] for a in s["actions"])


def test_pipeline_role_may_publish_approval_requests_to_the_topic_only(approved: ProgramRun, plain: ProgramRun) -> None:
    # The approval request is published with the pipeline role's permissions; the topic is encrypted:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/approvals-service-role-permissions.html
    # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
    doc = statements(approved)
    assert (doc["RequestApprovalOnTheTopic"]["Action"], doc["RequestApprovalOnTheTopic"]["Resource"]) == (
        ["sns:Publish"],
        [approved.outputs["topicArn"]],
    )
    assert doc["EncryptForTheTopic"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert doc["EncryptForTheTopic"]["Resource"] == [approved.outputs["keyArn"]]
    touching = {sid for sid, s in doc.items() if any(a.split(":")[0] in SNS_KMS for a in s["Action"])}
    assert touching == {"RequestApprovalOnTheTopic", "EncryptForTheTopic"}
    # Without an approval stage the pipeline publishes nothing, topic or not.
    assert not services_of(statements(plain)) & SNS_KMS


def test_approval_without_a_topic_is_answered_in_the_console_and_notifies_nothing(console_only: ProgramRun) -> None:
    approve = actions(console_only)["Approve"]
    assert "NotificationArn" not in approve["configuration"]
    assert approve["configuration"]["ExternalEntityLink"] == console_only.outputs["pipelineUrl"]
    assert not services_of(statements(console_only)) & SNS_KMS


# --- What the component hands on -----------------------------------------------------------------------------


def test_outputs_name_the_pipeline_and_its_console_page(plain: ProgramRun) -> None:
    pipeline = plain.one(rt.CODEPIPELINE_PIPELINE)
    assert plain.outputs["pipelineName"] == pipeline.props["name"] == PREFIX
    assert plain.outputs["pipelineArn"] == pipeline.state["arn"]
    assert plain.outputs["pipelineUrl"] == (
        f"https://{REGION}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{PREFIX}/view?region={REGION}"
    )


def test_console_url_is_the_pipelines_page_in_its_region() -> None:
    assert console_url("us-east-2", "web-prod") == (
        "https://us-east-2.console.aws.amazon.com/codesuite/codepipeline/pipelines/web-prod/view?region=us-east-2"
    )
