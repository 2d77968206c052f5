"""EcsDeployment on mocks, and ``files/ecs-deploy.sh`` run for real.

The component: the CodeBuild project that is the ``ecs`` engine's Deploy action (its timeout, its environment, the
buildspec carrying the script and the contract's file names, a valid CreateProject request), its role (trusted by
CodeBuild for this account, allowed what the script does on this service only), and the ``Deployer`` it hands the
pipeline and the failure rules (the CodeBuild action, the pipeline role's statements, the failed-deployment
pattern and message).

The script: run in bash with a stand-in ``aws`` (``support.fake_aws``) answering whole API responses, so that
its ``--query`` expressions are applied as the CLI applies them; every request it makes is mapped back to the API
request and validated against botocore's model.

The service's side comes from stand-ins (``support.bundles``), with a cluster and a service of different names
(so an ARN that swapped them would show).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import subprocess
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components import contracts
from components.build_stage import BuildEnvironment
from components.deployment_engine import TRAFFIC_SHIFTS, DeploymentConfigName, deploy_step_minutes
from components.ecs_deployment import EcsDeployment, EcsDeploymentArgs
from components.ecs_service import TaskRuntime
from components.pipeline_actions import DEPLOY_ACTION
from components.templates import FILES, render_taskdef
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.aws import (
    assert_valid_request,
    assert_valid_rule_and_target,
    delivered_message,
    event_matches,
    parliament_findings,
    policy_of,
)
from support.fake_aws import FakeAws, api_request, assert_valid_response
from support.stacks import REGION, run, stack_config
from support.tools import shellcheck

PREFIX = bundles.PREFIX
CLUSTER = f"{PREFIX}-cluster"
SERVICE = f"{PREFIX}-service"
FAMILY = PREFIX
CONFIG: DeploymentConfigName = "CodeDeployDefault.ECSLinear10PercentEvery3Minutes"
# "Shifts 10 percent of traffic every three minutes until all traffic is shifted": ten steps, nine waits of three
# minutes between them. https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html
SHIFTING_MINUTES = 27
BAKE_MINUTES = 20
BUILD_IMAGE = "aws/codebuild/standard:7.0"
PROJECT = f"{PREFIX}-deploy"
SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/{CLUSTER}/{SERVICE}"
# CodePipeline stops a CodeBuild action after 8 hours. https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
CODEBUILD_ACTION_LIMIT_MINUTES = 8 * 60


def runtime() -> TaskRuntime:
    return dataclasses.replace(bundles.runtime(), cluster_name=bundles.out(CLUSTER), service_name=bundles.out(SERVICE))


@pytest.fixture(scope="module")
def found() -> ProgramRun:
    def build() -> None:
        service = runtime()
        ecs = EcsDeployment(
            "deploy",
            EcsDeploymentArgs(
                context=stack_config({"appName": "shop"}).context,
                runtime=service,
                shift=TRAFFIC_SHIFTS[CONFIG],
                bake_minutes=BAKE_MINUTES,
                environment=BuildEnvironment(BUILD_IMAGE, "LINUX_CONTAINER"),
            ),
        )
        deployer = ecs.deployer
        action = deployer.action
        pulumi.export("engine", deployer.engine)
        pulumi.export("description", deployer.description)
        pulumi.export(
            "action",
            {
                "name": action.name,
                "category": action.category,
                "owner": action.owner,
                "provider": action.provider,
                "version": action.version,
                "configuration": action.configuration,
                "inputArtifacts": action.input_artifacts,
                "outputArtifacts": action.output_artifacts,
                "runOrder": action.run_order,
            },
        )
        pulumi.export("pipelineStatements", pulumi.Output.json_dumps(list(deployer.pipeline_statements)))
        pulumi.export("failedPattern", pulumi.Output.json_dumps(dict(deployer.failed_pattern)))
        paths, template = deployer.failed_message
        pulumi.export("failedPaths", dict(paths))
        pulumi.export("failedTemplate", template)
        pulumi.export("roleName", ecs.role.name)
        pulumi.export("roleArn", ecs.role.arn)
        pulumi.export("taskRole", service.task_role.arn)
        pulumi.export("executionRole", service.execution_role.arn)

    return run(build)


def project_of(found: ProgramRun) -> Registration:
    return found.one(rt.CODEBUILD_PROJECT)


def buildspec_of(found: ProgramRun) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(project_of(found).props["source"]["buildspec"])
    return spec


def role_policy(found: ProgramRun) -> dict[str, Any]:
    (policy,) = found.of_type(rt.IAM_ROLE_POLICY)
    return policy_of(policy)


def allows(doc: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` (IAM's wildcard matching of ARNs)."""
    return any(
        action in s["Action"] and any(fnmatchcase(resource, pattern) for pattern in s["Resource"])
        for s in doc["Statement"]
        if s["Effect"] == "Allow"
    )


# --- The deploy project --------------------------------------------------------------------------------------


def test_the_project_deploys_this_service_with_the_build_image_and_waits_for_the_whole_deployment(
    found: ProgramRun,
) -> None:
    project = project_of(found)
    props = project.props
    assert props["name"] == PROJECT
    assert props["serviceRole"] == found.one(rt.IAM_ROLE).state["arn"] == found.outputs["roleArn"]
    # The deployment the step waits for: the shift and the bake, within the 8 hours CodePipeline gives the action.
    timeout = props["buildTimeout"]
    assert timeout == deploy_step_minutes(TRAFFIC_SHIFTS[CONFIG], BAKE_MINUTES)
    assert SHIFTING_MINUTES + BAKE_MINUTES < timeout <= CODEBUILD_ACTION_LIMIT_MINUTES
    env = props["environment"]
    assert {v["name"]: v["value"] for v in env["environmentVariables"]} == {"CLUSTER": CLUSTER, "SERVICE": SERVICE}
    assert (env["type"], env["image"]) == ("LINUX_CONTAINER", BUILD_IMAGE)
    assert not env.get("privilegedMode"), "it only calls the ECS API"
    # It runs in the pipeline, on the pipeline's artifact.
    # https://docs.aws.amazon.com/codebuild/latest/userguide/how-to-create-pipeline.html
    assert props["source"]["type"] == "CODEPIPELINE" and props["artifacts"] == {"type": "CODEPIPELINE"}
    logs = found.one(rt.LOG_GROUP).props
    assert props["logsConfig"]["cloudwatchLogs"] == {"groupName": logs["name"], "status": "ENABLED"}
    assert logs["name"] == f"/aws/codebuild/{PROJECT}"
    # IAM is eventually consistent: the project waits for its role's policy.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
    assert found.one(rt.IAM_ROLE_POLICY).urn in project.dependencies


def test_the_buildspec_carries_the_deploy_script_byte_for_byte_and_the_contract_names(found: ProgramRun) -> None:
    spec = buildspec_of(found)
    assert spec["version"] == 0.2 and spec["env"]["shell"] == "bash"
    variables = spec["env"]["variables"]
    assert base64.b64decode(variables["DEPLOY_SCRIPT_BASE64"]) == (FILES / "ecs-deploy.sh").read_bytes()
    # The build's output artifact, as the build writes it (components.contracts).
    assert variables["IMAGE_DETAIL_FILE"] == contracts.IMAGE_DETAIL_FILE == "imageDetail.json"
    assert variables["TASKDEF_FILE"] == contracts.TASKDEF_FILE == "taskdef.json"
    assert variables["IMAGE_PLACEHOLDER"] == "<IMAGE1_NAME>" == contracts.placeholder(contracts.IMAGE_PLACEHOLDER)
    # A failed deployment fails the build at once (no later phase runs).
    # https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html#build-spec.phases.on-failure
    assert spec["phases"]["build"]["on-failure"] == "ABORT"


def create_project_request(props: dict[str, Any]) -> dict[str, Any]:
    """The CreateProject call the provider makes from the project's inputs."""
    env = props["environment"]
    logs = props["logsConfig"]["cloudwatchLogs"]
    return {
        "name": props["name"],
        "description": props["description"],
        "source": {"type": props["source"]["type"], "buildspec": props["source"]["buildspec"]},
        "artifacts": {"type": props["artifacts"]["type"]},
        "environment": {
            "type": env["type"],
            "image": env["image"],
            "computeType": env["computeType"],
            "imagePullCredentialsType": env["imagePullCredentialsType"],
            "environmentVariables": [{"name": v["name"], "value": v["value"]} for v in env["environmentVariables"]],
        },
        "serviceRole": props["serviceRole"],
        # The engine carries numbers as floats, as Pulumi's wire format does.
        "timeoutInMinutes": int(props["buildTimeout"]),
        "logsConfig": {"cloudWatchLogs": {"status": logs["status"], "groupName": logs["groupName"]}},
    }


def test_the_project_is_a_valid_create_project_request(found: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html (the model checks the compute
    # type, environment type, credentials type and the timeout's range, 5 to 2160 minutes).
    assert_valid_request("codebuild", "CreateProject", create_project_request(project_of(found).props))


# --- The deploy role -----------------------------------------------------------------------------------------


def test_the_role_is_assumed_by_codebuild_for_this_account_only(found: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-service-role.html and the confused-deputy
    # guard: https://docs.aws.amazon.com/codebuild/latest/userguide/cross-service-confused-deputy-prevention.html
    role = found.one(rt.IAM_ROLE)
    (trust,) = policy_of(role, "assumeRolePolicy")["Statement"]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    assert role.props["name"] == found.outputs["roleName"] == PROJECT
    assert [p.props["role"] for p in found.of_type(rt.IAM_ROLE_POLICY)] == [role.id]


def test_the_role_may_do_what_the_script_does_to_this_service_and_nothing_to_another(
    found: ProgramRun, tmp_path: Path
) -> None:
    # The resources each action acts on, from the Service Authorization Reference:
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html
    # (task-definition/<family>:<revision>, service/<cluster>/<service>; DescribeServiceDeployments requires both
    # the service-deployment/<cluster>/<service>/<id> and its service/<cluster>/<service>).
    doc = role_policy(found)
    done, fake = deploy(tmp_path, ["IN_PROGRESS", "SUCCESSFUL"])
    assert done.returncode == 0, done.stdout + done.stderr
    acted_on: list[tuple[str, str]] = []
    for call in fake.calls:
        _, operation, params = api_request(call)
        action = f"ecs:{operation}"
        if operation == "RegisterTaskDefinition":
            acted_on.append((action, REVISION_ARN))
        elif operation == "UpdateService":
            acted_on.append(
                (action, f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/{params['cluster']}/{params['service']}")
            )
        else:
            for arn in params["serviceDeploymentArns"]:
                cluster, service, _ = arn.split(":service-deployment/")[1].split("/")
                acted_on += [(action, arn), (action, f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/{cluster}/{service}")]
    assert {a for a, _ in acted_on} == {
        "ecs:RegisterTaskDefinition",
        "ecs:UpdateService",
        "ecs:DescribeServiceDeployments",
    }
    for action, resource in acted_on:
        assert allows(doc, action, resource), (action, resource)
    # Nothing of another family or another service (of this cluster, or of the same name in another cluster).
    other = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}"
    assert not allows(doc, "ecs:RegisterTaskDefinition", f"{other}:task-definition/other-dev:1")
    assert not allows(doc, "ecs:RegisterTaskDefinition", f"{other}:task-definition/{FAMILY}-other:1")
    assert not allows(doc, "ecs:UpdateService", f"{other}:service/{CLUSTER}/other")
    assert not allows(doc, "ecs:UpdateService", f"{other}:service/other/{SERVICE}")
    assert not allows(doc, "ecs:DescribeServiceDeployments", f"{other}:service-deployment/{CLUSTER}/other/abc")


def test_the_role_passes_the_task_roles_to_ecs_tasks_only(found: ProgramRun, tmp_path: Path) -> None:
    # Registering a task definition that names roles passes them: iam:PassRole, conditioned on the service they are
    # passed to. https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html and
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService
    doc = role_policy(found)
    passing = [s for s in doc["Statement"] if "iam:PassRole" in s["Action"]]
    assert len(passing) == 1
    (statement,) = passing
    assert statement["Action"] == ["iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert sorted(statement["Resource"]) == sorted([found.outputs["taskRole"], found.outputs["executionRole"]])
    # Exactly the roles the registered task definition names.
    done, fake = deploy(tmp_path, ["SUCCESSFUL"])
    assert done.returncode == 0, done.stdout + done.stderr
    _, _, registered = api_request(fake.calls[0])
    assert sorted(statement["Resource"]) == sorted([registered["taskRoleArn"], registered["executionRoleArn"]])


def test_the_role_names_no_wildcard_resource_and_grants_nothing_else(found: ProgramRun) -> None:
    doc = role_policy(found)
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    # The script's calls, the DescribeServices the same statement allows, the task roles and its own logs.
    assert actions <= {
        "ecs:RegisterTaskDefinition",
        "ecs:UpdateService",
        "ecs:DescribeServices",
        "ecs:DescribeServiceDeployments",
        "iam:PassRole",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert all("*" not in s["Resource"] for s in doc["Statement"])
    log_group = found.one(rt.LOG_GROUP).state["arn"]
    writes = [s for s in doc["Statement"] if "logs:PutLogEvents" in s["Action"]]
    assert [s["Resource"] for s in writes] == [[f"{log_group}:*"]]


def test_the_role_policy_passes_parliament(found: ProgramRun) -> None:
    (policy,) = found.of_type(rt.IAM_ROLE_POLICY)
    assert parliament_findings(policy.props["policy"]) == []
    # Parliament reads every document as an identity policy: the trust policy goes through it with the role as
    # its Resource (a trust policy has none of its own).
    role = found.one(rt.IAM_ROLE)
    trust = json.loads(role.props["assumeRolePolicy"])
    trust["Statement"] = [{**st, "Resource": role.state["arn"]} for st in trust["Statement"]]
    assert parliament_findings(json.dumps(trust)) == []


# --- What the component hands the pipeline and the failure rules ---------------------------------------------


def test_the_deploy_action_is_a_codebuild_action_running_this_project_on_the_build_artifact(found: ProgramRun) -> None:
    # A CodeBuild action (category Build, provider CodeBuild) in the Deploy stage, on the build's output artifact:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-CodeBuild.html
    action = found.outputs["action"]
    assert found.outputs["engine"] == "ecs"
    assert action["name"] == DEPLOY_ACTION == "Deploy"
    assert (action["category"], action["owner"], action["provider"], action["version"]) == (
        "Build",
        "AWS",
        "CodeBuild",
        "1",
    )
    assert action["configuration"] == {"ProjectName": project_of(found).props["name"]}
    assert action["inputArtifacts"] == [contracts.BUILD_ARTIFACT]
    assert not action["outputArtifacts"]
    # Between MarkDeploying (1) and MarkLive (3).
    assert action["runOrder"] == 2
    declaration = {
        "name": action["name"],
        "actionTypeId": {k: action[k] for k in ("category", "owner", "provider", "version")},
        "runOrder": action["runOrder"],
        "configuration": action["configuration"],
        "inputArtifacts": [{"name": n} for n in action["inputArtifacts"]],
    }
    source = {
        "name": "Source",
        "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
        "outputArtifacts": [{"name": contracts.BUILD_ARTIFACT}],
    }
    # https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_ActionDeclaration.html
    assert_valid_request(
        "codepipeline",
        "CreatePipeline",
        {
            "pipeline": {
                "name": PREFIX,
                "roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{PREFIX}-pipeline",
                "artifactStore": {"type": "S3", "location": f"{PREFIX}-artifacts"},
                "stages": [{"name": "Source", "actions": [source]}, {"name": "Deploy", "actions": [declaration]}],
            }
        },
    )


def test_the_pipeline_may_start_and_follow_builds_of_this_project_only(found: ProgramRun) -> None:
    # What a CodeBuild action needs of the pipeline's role:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/how-to-custom-role.html
    statements = json.loads(found.outputs["pipelineStatements"])
    assert {a for s in statements for a in s["Action"]} == {"codebuild:StartBuild", "codebuild:BatchGetBuilds"}
    assert {r for s in statements for r in s["Resource"]} == {project_of(found).state["arn"]}
    assert all("Condition" not in s and s["Effect"] == "Allow" for s in statements)
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    assert parliament_findings(document) == []


def ecs_deployment_event(
    service_arn: str = SERVICE_ARN,
    event_name: str = "SERVICE_DEPLOYMENT_FAILED",
    detail_type: str = "ECS Deployment State Change",
    source: str = "aws.ecs",
) -> dict[str, Any]:
    """A service deployment event as ECS sends it to EventBridge ("Amazon ECS service deployment state change
    events", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html)."""
    return {
        "version": "0",
        "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT_ID,
        "time": "2025-08-23T12:31:14Z",
        "region": REGION,
        "resources": [service_arn],
        "detail": {
            "eventType": "ERROR" if event_name == "SERVICE_DEPLOYMENT_FAILED" else "INFO",
            "eventName": event_name,
            "deploymentId": "ecs-svc/123",
            "updatedAt": "2025-08-23T11:11:11Z",
            "reason": "ECS deployment circuit breaker: task failed to start.",
        },
    }


def test_the_failed_pattern_matches_only_a_failed_deployment_of_this_service(found: ProgramRun) -> None:
    pattern = found.outputs["failedPattern"]
    assert event_matches(pattern, ecs_deployment_event())
    for name in ("SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_COMPLETED"):
        assert not event_matches(pattern, ecs_deployment_event(event_name=name)), name
    other = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service"
    assert not event_matches(pattern, ecs_deployment_event(f"{other}/{CLUSTER}/other"))
    assert not event_matches(pattern, ecs_deployment_event(f"{other}/other/{SERVICE}"))
    assert not event_matches(pattern, ecs_deployment_event(f"{other}/{SERVICE}/{CLUSTER}")), "cluster and service"
    assert not event_matches(pattern, ecs_deployment_event(SERVICE_ARN.replace(REGION, "us-east-1")))
    # Service action events ("ECS Service Action") and other sources are not deployment failures.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_events.html
    assert not event_matches(pattern, ecs_deployment_event(detail_type="ECS Service Action"))
    assert not event_matches(pattern, ecs_deployment_event(source="aws.codedeploy"))


def test_the_failed_message_is_one_line_naming_the_service_the_deployment_and_the_reason(found: ProgramRun) -> None:
    # Input transformers: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
    target = {
        "rule": f"{PREFIX}-deployment-failed",
        "targetId": "notify",
        "arn": bundles.arn("sns", f"{PREFIX}-notifications"),
        "inputTransformer": {
            "inputPaths": found.outputs["failedPaths"],
            "inputTemplate": found.outputs["failedTemplate"],
        },
    }
    rule = {"name": target["rule"], "eventPattern": found.outputs["failedPattern"], "description": "failed"}
    assert_valid_rule_and_target(rule, target)
    event = ecs_deployment_event()
    text = delivered_message(target, event)
    assert isinstance(text, str) and "\n" not in text and "<" not in text
    assert SERVICE_ARN in text
    assert event["detail"]["deploymentId"] in text
    assert event["detail"]["reason"] in text
    assert f"https://{REGION}.console.aws.amazon.com/ecs/" in text and f"region={REGION}" in text


def test_the_approval_describes_the_ecs_native_deployment(found: ProgramRun) -> None:
    description = found.outputs["description"]
    assert "ECS-native" in description
    assert TRAFFIC_SHIFTS[CONFIG].strategy in description and f"{BAKE_MINUTES} min" in description


# --- files/ecs-deploy.sh, run for real ------------------------------------------------------------------------

SCRIPT = FILES / "ecs-deploy.sh"
IMAGE = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{PREFIX}:9f1c2ab"
REVISION_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{FAMILY}:7"
DEPLOYMENT_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service-deployment/{CLUSTER}/{SERVICE}/NCWGC2ZR-taawPAYrIaU5"
# A sidecar whose image is not the placeholder: the script must leave it alone.
SIDECAR = {"name": "otel", "image": "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0", "essential": False}

# The three answers, shaped as the API returns them (RegisterTaskDefinition, UpdateService,
# DescribeServiceDeployments in botocore's model; checked by test_the_canned_answers_are_what_the_api_returns).
REGISTERED = {"taskDefinition": {"taskDefinitionArn": REVISION_ARN, "family": FAMILY, "revision": 7}}
UPDATED = {
    "service": {
        "serviceArn": SERVICE_ARN,
        "serviceName": SERVICE,
        "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{CLUSTER}",
        "taskDefinition": REVISION_ARN,
        "deploymentController": {"type": "ECS"},
        "currentServiceDeployment": DEPLOYMENT_ARN,
    }
}


def described(status: str, reason: str | None = None) -> dict[str, Any]:
    deployment: dict[str, Any] = {
        "serviceDeploymentArn": DEPLOYMENT_ARN,
        "serviceArn": SERVICE_ARN,
        "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{CLUSTER}",
        "status": status,
    }
    if reason is not None:
        deployment["statusReason"] = reason
    return {"serviceDeployments": [deployment], "failures": []}


def taskdef_document() -> dict[str, Any]:
    """taskdef.json as the build writes it (the service's values, image ``<IMAGE1_NAME>``), with a sidecar."""
    document: dict[str, Any] = json.loads(render_taskdef(bundles.taskdef_values()))
    document["containerDefinitions"].append(SIDECAR)
    return document


def deploy(
    tmp_path: Path,
    statuses: list[str],
    *,
    taskdef: dict[str, Any] | None = None,
    image_detail: dict[str, Any] | None = None,
    updated: dict[str, Any] = UPDATED,
    reason: str | None = None,
) -> tuple[subprocess.CompletedProcess[str], FakeAws]:
    """Runs the script as the deploy project does (bash, the build's two files, CLUSTER/SERVICE/IMAGE_PLACEHOLDER),
    with ECS answering ``statuses`` to the successive DescribeServiceDeployments calls."""
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    detail = artifact / contracts.IMAGE_DETAIL_FILE
    detail.write_text(json.dumps(image_detail if image_detail is not None else {"ImageURI": IMAGE}))
    definition = artifact / contracts.TASKDEF_FILE
    definition.write_text(json.dumps(taskdef if taskdef is not None else taskdef_document(), indent=2))
    fake = FakeAws(
        tmp_path,
        {
            "ecs register-task-definition": [REGISTERED],
            "ecs update-service": [updated],
            "ecs describe-service-deployments": [described(s, reason) for s in statuses],
        },
    )
    scratch = tmp_path / "codebuild-tmp"
    scratch.mkdir()
    env = fake.env(
        CLUSTER=CLUSTER,
        SERVICE=SERVICE,
        IMAGE_PLACEHOLDER=contracts.placeholder(contracts.IMAGE_PLACEHOLDER),
        POLL_SECONDS="0",
        CODEBUILD_TMPDIR=str(scratch),
    )
    done = subprocess.run(
        ["bash", str(SCRIPT), str(detail), str(definition)], env=env, capture_output=True, text=True, timeout=60
    )
    return done, fake


def test_the_canned_answers_are_what_the_api_returns() -> None:
    assert_valid_response("ecs", "RegisterTaskDefinition", REGISTERED)
    assert_valid_response("ecs", "UpdateService", UPDATED)
    for status in ("IN_PROGRESS", "SUCCESSFUL", "ROLLBACK_SUCCESSFUL"):
        assert_valid_response("ecs", "DescribeServiceDeployments", described(status, "a reason"))


def test_a_successful_deployment_exits_0_after_waiting_through_it(tmp_path: Path) -> None:
    # ServiceDeployment.status: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceDeployment.html
    statuses = ["PENDING", "IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "SUCCESSFUL"]
    done, fake = deploy(tmp_path, statuses)
    assert done.returncode == 0, done.stdout + done.stderr
    assert fake.commands() == [
        "ecs register-task-definition",
        "ecs update-service",
        *["ecs describe-service-deployments"] * len(statuses),
    ]
    assert REVISION_ARN in done.stdout and DEPLOYMENT_ARN in done.stdout
    assert "SUCCESSFUL" in done.stdout
    assert "ERROR" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("statuses", "reason"),
    [
        (["IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL"], "alarm 5xx-rate fired"),
        (["IN_PROGRESS", "STOP_REQUESTED", "STOPPED"], "stopped by a newer deployment"),
        (["IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_FAILED"], "rollback failed"),
    ],
)
def test_a_stopped_or_rolled_back_deployment_fails_the_step_with_a_clear_message(
    tmp_path: Path, statuses: list[str], reason: str
) -> None:
    done, fake = deploy(tmp_path, statuses, reason=reason)
    final = statuses[-1]
    assert done.returncode == 1, done.stdout + done.stderr
    # It waited for the final state, and not a call longer.
    assert fake.commands().count("ecs describe-service-deployments") == len(statuses)
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert final in error and REVISION_ARN in error
    assert "previous version" in error
    assert reason in done.stdout, "ECS's reason is shown"


def test_an_unknown_status_fails_the_step(tmp_path: Path) -> None:
    done, _ = deploy(tmp_path, ["IN_PROGRESS", "SOMETHING_NEW"])
    assert done.returncode == 1
    assert "SOMETHING_NEW" in done.stderr


def test_the_registered_task_definition_is_taskdef_json_with_the_built_image(tmp_path: Path) -> None:
    original = taskdef_document()
    done, fake = deploy(tmp_path, ["SUCCESSFUL"])
    assert done.returncode == 0, done.stdout + done.stderr
    service, operation, registered = api_request(fake.calls[0])
    assert (service, operation) == ("ecs", "RegisterTaskDefinition")
    expected = copy.deepcopy(original)
    placeholder = contracts.placeholder(contracts.IMAGE_PLACEHOLDER)
    replaced = 0
    for container in expected["containerDefinitions"]:
        if container["image"] == placeholder:
            container["image"] = IMAGE
            replaced += 1
    assert replaced == 1
    assert registered == expected
    assert SIDECAR in registered["containerDefinitions"]


def test_every_request_is_a_valid_api_request_on_what_the_previous_one_answered(tmp_path: Path) -> None:
    done, fake = deploy(tmp_path, ["IN_PROGRESS", "SUCCESSFUL"])
    assert done.returncode == 0, done.stdout + done.stderr
    requests = [api_request(call) for call in fake.calls]
    for service, operation, params in requests:
        assert_valid_request(service, operation, params)
    operations = [op for _, op, _ in requests]
    assert operations == [
        "RegisterTaskDefinition",
        "UpdateService",
        "DescribeServiceDeployments",
        "DescribeServiceDeployments",
    ]
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html: the revision just registered.
    assert requests[1][2] == {"cluster": CLUSTER, "service": SERVICE, "taskDefinition": REVISION_ARN}
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeServiceDeployments.html: the deployment
    # UpdateService started (Service.currentServiceDeployment).
    assert requests[2][2] == requests[3][2] == {"serviceDeploymentArns": [DEPLOYMENT_ARN]}


def test_a_taskdef_without_the_placeholder_is_refused_before_anything_is_registered(tmp_path: Path) -> None:
    document = taskdef_document()
    document["containerDefinitions"][0]["image"] = IMAGE
    done, fake = deploy(tmp_path, ["SUCCESSFUL"], taskdef=document)
    assert done.returncode != 0
    assert contracts.placeholder(contracts.IMAGE_PLACEHOLDER) in done.stderr
    assert contracts.TASKDEF_FILE in done.stderr
    assert fake.calls == []


def test_an_image_detail_without_an_image_is_refused_before_anything_is_registered(tmp_path: Path) -> None:
    done, fake = deploy(tmp_path, ["SUCCESSFUL"], image_detail={"ImageURI": ""})
    assert done.returncode != 0
    assert contracts.IMAGE_DETAIL_FILE in done.stderr
    assert fake.calls == []


def test_an_update_that_starts_no_service_deployment_fails_without_waiting(tmp_path: Path) -> None:
    # A service on another deployment controller has no currentServiceDeployment to follow.
    service = {k: v for k, v in UPDATED["service"].items() if k != "currentServiceDeployment"}
    done, fake = deploy(tmp_path, ["SUCCESSFUL"], updated={"service": service})
    assert done.returncode == 1
    assert "ERROR" in done.stderr and SERVICE in done.stderr
    assert "ecs describe-service-deployments" not in fake.commands()


def buildspec_script(spec: dict[str, Any]) -> str:
    """The buildspec as one bash script: its variables, then its build commands, in order."""
    lines = [f"export {k}={json.dumps(str(v))}" for k, v in spec["env"]["variables"].items()]
    lines += spec["phases"]["build"]["commands"]
    return "\n".join(lines) + "\n"


def test_the_buildspec_runs_the_script_on_the_build_artifact(found: ProgramRun, tmp_path: Path) -> None:
    """The project as CodeBuild runs it: its environment variables, the buildspec's commands in bash, the build's
    artifact unpacked in CODEBUILD_SRC_DIR. https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-env-vars.html
    """
    project = project_of(found).props
    source = tmp_path / "src"
    source.mkdir()
    (source / contracts.IMAGE_DETAIL_FILE).write_text(json.dumps({"ImageURI": IMAGE}))
    (source / contracts.TASKDEF_FILE).write_text(json.dumps(taskdef_document()))
    scratch = tmp_path / "codebuild-tmp"
    scratch.mkdir()
    fake = FakeAws(
        tmp_path,
        {
            "ecs register-task-definition": [REGISTERED],
            "ecs update-service": [UPDATED],
            "ecs describe-service-deployments": [described("SUCCESSFUL")],
        },
    )
    variables = {v["name"]: v["value"] for v in project["environment"]["environmentVariables"]}
    env = fake.env(**variables, CODEBUILD_SRC_DIR=str(source), CODEBUILD_TMPDIR=str(scratch))
    script = tmp_path / "buildspec.sh"
    script.write_text("set -eo pipefail\n" + buildspec_script(buildspec_of(found)))
    done = subprocess.run(["bash", str(script)], cwd=source, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    requests = [api_request(call) for call in fake.calls]
    assert [op for _, op, _ in requests] == ["RegisterTaskDefinition", "UpdateService", "DescribeServiceDeployments"]
    assert requests[0][2]["containerDefinitions"][0]["image"] == IMAGE
    assert (requests[1][2]["cluster"], requests[1][2]["service"]) == (CLUSTER, SERVICE)


def test_the_script_and_the_buildspec_pass_shellcheck(found: ProgramRun, tmp_path: Path) -> None:
    script = SCRIPT.read_text()
    assert script.startswith("#!/usr/bin/env bash\n")
    assert shellcheck(script.removeprefix("#!/usr/bin/env bash\n"), tmp_path, "ecs-deploy") == ""
    assert shellcheck(buildspec_script(buildspec_of(found)), tmp_path, "ecs-deploy-buildspec") == ""
