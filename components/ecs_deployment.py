"""EcsDeployment: the ``ecs`` engine's Deploy action, a CodeBuild project that deploys with ECS-native blue/green.

CodePipeline's standard ECS deploy action documents neither ECS-native blue/green (bake time, lifecycle
stages, rollback) nor a wait beyond its one-hour timeout, and it registers its own task-definition revision from
the service's current one (so the rendered ``taskdef.json`` would not be deployed). So the Deploy stage runs
this project instead (``files/ecs-deploy.sh``): it registers ``taskdef.json`` with the built image, updates the
service, and waits for the service deployment's final state, failing the pipeline when the deployment is
stopped or rolled back. docs/pipeline.md, "The ecs engine's deploy step".
https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-ECS.html

Its role may register revisions of the service's family, update and describe this service and its deployments,
and hand the task roles to ECS. Reading the pipeline's artifacts is granted by the artifact store, where the
two meet (``DeployStage``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import contracts, iam, logs
from components.base import Component, StackContext
from components.build_stage import BuildEnvironment
from components.codedeploy_blue_green import arn, pass_task_roles
from components.deployment_engine import TrafficShift, deploy_step_minutes
from components.ecs_service import TaskRuntime
from components.pipeline_actions import DEPLOY_ACTION, Deployer, codebuild
from components.templates import FILES, render_text

# The project only calls the AWS CLI: the smallest compute type.
DEPLOY_COMPUTE_TYPE = "BUILD_GENERAL1_SMALL"
# ECS sends "ECS Deployment State Change" events; SERVICE_DEPLOYMENT_FAILED is a deployment that failed (and, with
# rollback, was rolled back). A deployment stopped or rolled back for another reason fails the deploy step, so
# the pipeline's failure rule reports it too.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
DEPLOYMENT_FAILED_EVENTS = ("SERVICE_DEPLOYMENT_FAILED",)


@dataclass(frozen=True)
class EcsDeploymentArgs:
    context: StackContext
    runtime: TaskRuntime
    shift: TrafficShift
    bake_minutes: int
    environment: BuildEnvironment
    """The CodeBuild environment (the build's: its image has the AWS CLI and Python)."""
    encryption_key_arn: pulumi.Output[str] | None = None
    """The pipeline artifacts' customer-managed key, the project's ``encryptionKey`` (``None``: aws/s3)."""


def render_deploy_buildspec() -> str:
    """The deploy project's buildspec: ``files/ecs-deploy.sh`` and the contract's file names."""
    values = {
        "deploy_script_base64": base64.b64encode((FILES / "ecs-deploy.sh").read_bytes()).decode(),
        "image_detail_file": contracts.IMAGE_DETAIL_FILE,
        "taskdef_file": contracts.TASKDEF_FILE,
        "image_placeholder": contracts.placeholder(contracts.IMAGE_PLACEHOLDER),
    }
    return render_text("ecs-deploy-buildspec.yml", {k: json.dumps(v) for k, v in values.items()})


def deployment_failed_pattern(service_arn: pulumi.Input[str]) -> dict[str, Any]:
    """EventBridge pattern of a failed deployment of this service (and of no other)."""
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Deployment State Change"],
        "resources": [service_arn],
        "detail": {"eventName": list(DEPLOYMENT_FAILED_EVENTS)},
    }


def deployment_failed_message(region: str) -> tuple[dict[str, str], str]:
    """Input transformer (paths, template) for a failed deployment of the service, with its console page."""
    return (
        {"service": "$.resources[0]", "deployment": "$.detail.deploymentId", "reason": "$.detail.reason"},
        json.dumps(
            "ECS deployment <deployment> of <service> failed: <reason>. Production keeps, or returns to, the "
            f"previous version. https://{region}.console.aws.amazon.com/ecs/v2/home?region={region}"
        ),
    )


def _service_path(runtime: TaskRuntime, prefix: str = "service/", suffix: str = "") -> pulumi.Output[str]:
    return pulumi.Output.concat(prefix, runtime.cluster_name, "/", runtime.service_name, suffix)


def deploy_statements(
    region: str,
    runtime: TaskRuntime,
    partition: pulumi.Input[str],
    account_id: pulumi.Input[str],
    log_group_arn: pulumi.Input[str],
) -> list[dict[str, Any]]:
    """The deploy project's role: its logs, revisions of the family, this service and its deployments, and the
    task roles handed to ECS."""
    family = f"task-definition/{runtime.family}:*"
    deployments = _service_path(runtime, "service-deployment/", "/*")
    service = arn(partition, "ecs", region, account_id, _service_path(runtime))
    return [
        iam.write_logs(log_group_arn, sid="WriteDeployLogs"),
        iam.allow(
            ["ecs:RegisterTaskDefinition"],
            [arn(partition, "ecs", region, account_id, family)],
            sid="RegisterRevisionsOfTheFamily",
        ),
        iam.allow(["ecs:DescribeServices", "ecs:UpdateService"], [service], sid="DeployTheService"),
        # The Service Authorization Reference lists both the service deployment and its service as resources
        # of DescribeServiceDeployments: the request is authorized against both.
        iam.allow(
            ["ecs:DescribeServiceDeployments"],
            [arn(partition, "ecs", region, account_id, deployments), service],
            sid="FollowItsDeployments",
        ),
        pass_task_roles(runtime),
    ]


class EcsDeployment(Component):
    deployer: Deployer
    role: iam.RoleRef
    """The project's role, for the artifact store's grant."""

    def __init__(self, name: str, args: EcsDeploymentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        ctx, runtime = args.context, args.runtime
        prefix = f"{ctx.name_prefix}-deploy"
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        partition = aws.get_partition_output(opts=self.lookup()).partition
        service_arn = arn(partition, "ecs", ctx.region, account_id, _service_path(runtime))
        log_group = logs.log_group(
            self, f"{name}-logs", physical_name=f"/aws/codebuild/{prefix}", context=ctx, protect=False
        )
        role = iam.service_role(
            self,
            f"{name}-role",
            physical_name=prefix,
            service="codebuild.amazonaws.com",
            account_id=account_id,
            statements=deploy_statements(ctx.region, runtime, partition, account_id, log_group.arn),
            policy_name="deploy",
        )
        project = aws.codebuild.Project(
            f"{name}-project",
            name=prefix,
            description=f"Deploys the built image to {ctx.name_prefix} (ECS-native blue/green), waits for the end",
            service_role=role.role.arn,
            build_timeout=deploy_step_minutes(args.shift, args.bake_minutes),
            source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=render_deploy_buildspec()),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
            encryption_key=args.encryption_key_arn,
            environment=aws.codebuild.ProjectEnvironmentArgs(
                type=args.environment.type,
                image=args.environment.image,
                compute_type=DEPLOY_COMPUTE_TYPE,
                image_pull_credentials_type="CODEBUILD",
                environment_variables=[
                    aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name="CLUSTER", value=runtime.cluster_name),
                    aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name="SERVICE", value=runtime.service_name),
                ],
            ),
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                    group_name=log_group.name, status="ENABLED"
                )
            ),
            opts=self.child(depends_on=role.ready),
        )
        shift = args.shift
        self.role = role.ref
        self.deployer = Deployer(
            engine="ecs",
            description=f"ECS-native {shift.strategy}, bake time {args.bake_minutes} min",
            action=codebuild(DEPLOY_ACTION, project.name, inputs=[contracts.BUILD_ARTIFACT], run_order=2),
            pipeline_statements=[
                iam.allow(["codebuild:BatchGetBuilds", "codebuild:StartBuild"], [project.arn], sid="RunTheDeployment")
            ],
            failed_pattern=deployment_failed_pattern(service_arn),
            failed_message=deployment_failed_message(ctx.region),
        )
        self.register_outputs({"project_name": project.name})
