"""DeliveryPipeline: the CodePipeline (type V2) that runs Source -> Build -> (Approve) -> Deploy, and its role.

- Source reads the uploaded zip from the source bucket (never polling: an EventBridge rule starts it);
- Build runs the BuildStage's project, which writes ``imageDetail.json``, ``taskdef.json`` and ``appspec.yaml``;
- with ``manualApproval``, Approve waits for a person; the request is published to the stack's topic;
- Deploy marks the image ``deploying`` (the release project), runs the CodeDeployToECS action, and marks it
  ``live`` once the deployment succeeded.

The stages are made by the small builders below (one per kind of action), so that the pipeline reads as its
list of stages. The role is scoped to the exact objects, projects, group and family it touches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import contracts, iam
from components.artifact_store import BUCKET_METADATA, READ_OBJECTS, ArtifactStore
from components.base import Component, StackContext
from components.build_stage import RELEASE_STEP_DEPLOYING, RELEASE_STEP_LIVE, BuildProjects
from components.codedeploy_blue_green import BlueGreenDeployment, arn, pass_task_roles
from components.ecs_service import TaskRuntime
from components.notifications import NotificationTopic
from components.source_bucket import SourceObject

# SUPERSEDED: every upload overwrites the same key, so only the newest one matters. A newer execution replaces
# an older one that is waiting between stages, but never interrupts a stage in progress, so a running blue/green
# deployment always completes (or rolls back) before the next one starts. QUEUED would deploy every intermediate
# upload in turn, each taking the whole deployment time.
EXECUTION_MODE = "SUPERSEDED"
SOURCE_NAMESPACE = "SourceVariables"
# The action names, used by `aws codepipeline start-pipeline-execution --source-revisions actionName=Source,...`.
SOURCE_ACTION = "Source"
BUILD_ACTION = "Build"
DEPLOY_ACTION = "Deploy"
APPROVE_STAGE = "Approve"
APPROVE_ACTION = "Approve"
# Around the deployment, in the Deploy stage: the image is tagged `deploying` before it (and refused if it
# expired while the execution waited for approval), and becomes `live` (the old one `rollback`) after it.
MARK_DEPLOYING_ACTION = "MarkDeploying"
MARK_LIVE_ACTION = "MarkLive"

Action = aws.codepipeline.PipelineStageActionArgs
Stage = aws.codepipeline.PipelineStageArgs


def console_url(region: str, pipeline_name: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline_name}/view?region={region}"
    )


def environment(**variables: str) -> str:
    """A CodeBuild action's ``EnvironmentVariables``: plain text values, as JSON."""
    return json.dumps([{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables.items()])


def aws_action(name: str, category: str, provider: str, configuration: dict[str, Any], **options: Any) -> Action:
    """An action of an AWS provider (``owner`` AWS, ``version`` 1), with its other fields as ``options``."""
    return Action(
        name=name,
        category=category,
        owner="AWS",
        provider=provider,
        version="1",
        configuration=configuration,
        **options,
    )


def s3_source(source: SourceObject) -> Action:
    # The EventBridge rule starts the pipeline; polling too would run it twice.
    configuration = {"S3Bucket": source.bucket_name, "S3ObjectKey": source.key, "PollForSourceChanges": "false"}
    return aws_action(
        SOURCE_ACTION,
        "Source",
        "S3",
        configuration,
        namespace=SOURCE_NAMESPACE,
        output_artifacts=[contracts.SOURCE_ARTIFACT],
    )


def codebuild(
    name: str,
    project: pulumi.Input[str],
    *,
    inputs: Sequence[str],
    outputs: Sequence[str] = (),
    variables: str | None = None,
    run_order: int | None = None,
) -> Action:
    configuration: dict[str, pulumi.Input[str]] = {"ProjectName": project}
    if variables is not None:
        configuration["EnvironmentVariables"] = variables
    return aws_action(
        name,
        "Build",
        "CodeBuild",
        configuration,
        run_order=run_order,
        input_artifacts=list(inputs),
        output_artifacts=list(outputs) or None,
    )


def manual_approval(description: str, link: str, topic_arn: pulumi.Input[str] | None) -> Action:
    configuration: dict[str, pulumi.Input[str]] = {"CustomData": description, "ExternalEntityLink": link}
    if topic_arn is not None:
        configuration["NotificationArn"] = topic_arn
    return aws_action(APPROVE_ACTION, "Approval", "Manual", configuration)


def codedeploy_to_ecs(deployment: BlueGreenDeployment, run_order: int) -> Action:
    """CodeDeploy's ECS blue/green action, reading the build's files by their contract names."""
    configuration = {
        "ApplicationName": deployment.application_name,
        "DeploymentGroupName": deployment.deployment_group_name,
        "TaskDefinitionTemplateArtifact": contracts.BUILD_ARTIFACT,
        "TaskDefinitionTemplatePath": contracts.TASKDEF_FILE,
        "AppSpecTemplateArtifact": contracts.BUILD_ARTIFACT,
        "AppSpecTemplatePath": contracts.APPSPEC_FILE,
        "Image1ArtifactName": contracts.BUILD_ARTIFACT,
        "Image1ContainerName": contracts.IMAGE_PLACEHOLDER,
    }
    return aws_action(
        DEPLOY_ACTION,
        "Deploy",
        "CodeDeployToECS",
        configuration,
        run_order=run_order,
        input_artifacts=[contracts.BUILD_ARTIFACT],
    )


@dataclass(frozen=True)
class PipelineRef:
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    url: pulumi.Output[str]
    """The pipeline's page in the CodePipeline console."""


@dataclass(frozen=True)
class DeliveryPipelineArgs:
    context: StackContext
    source: SourceObject
    projects: BuildProjects
    deployment: BlueGreenDeployment
    runtime: TaskRuntime
    artifacts: ArtifactStore
    manual_approval: bool = False
    topic: NotificationTopic | None = None
    """Approval requests are published here (the pipeline role needs the topic's key too)."""


class DeliveryPipeline(Component):
    pipeline: PipelineRef

    def __init__(
        self,
        name: str,
        args: DeliveryPipelineArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        super().__init__(name, opts, children_formerly_of=children_formerly_of)
        ctx = args.context
        role = iam.service_role(
            self,
            f"{name}-pipeline-role",
            physical_name=f"{ctx.name_prefix}-pipeline",
            service="codepipeline.amazonaws.com",
            account_id=aws.get_caller_identity_output(opts=self.lookup()).account_id,
            statements=self._statements(args),
            policy_name="pipeline",
            policy_resource=f"{name}-pipeline-policy",
        )
        pipeline = aws.codepipeline.Pipeline(
            f"{name}-pipeline",
            name=ctx.name_prefix,
            role_arn=role.role.arn,
            pipeline_type="V2",
            execution_mode=EXECUTION_MODE,
            artifact_stores=[
                aws.codepipeline.PipelineArtifactStoreArgs(location=args.artifacts.bucket_name, type="S3")
            ],
            stages=self._stages(args),
            opts=self.child(depends_on=role.ready),
        )
        self.pipeline = PipelineRef(
            name=pipeline.name, arn=pipeline.arn, url=pipeline.name.apply(lambda n: console_url(ctx.region, n))
        )
        self.register_outputs({"pipeline_name": pipeline.name, "pipeline_url": self.pipeline.url})

    def _stages(self, args: DeliveryPipelineArgs) -> list[Stage]:
        ctx, projects = args.context, args.projects
        build_variables = environment(
            PIPELINE_EXECUTION_ID="#{codepipeline.PipelineExecutionId}",
            SOURCE_VERSION_ID=f"#{{{SOURCE_NAMESPACE}.VersionId}}",
        )
        stages = [
            Stage(name="Source", actions=[s3_source(args.source)]),
            Stage(
                name="Build",
                actions=[
                    codebuild(
                        BUILD_ACTION,
                        projects.project_name,
                        inputs=[contracts.SOURCE_ARTIFACT],
                        outputs=[contracts.BUILD_ARTIFACT],
                        variables=build_variables,
                    )
                ],
            ),
        ]
        if args.manual_approval:
            # A person confirms between the build and the deployment: the image is in ECR and the rendered files
            # are in the artifact, nothing has changed in production yet.
            description = (
                f"Approve to deploy the image this execution built to the {ctx.name_prefix} ECS service (blue/green, "
                f"{args.deployment.deployment_config_name}); reject to stop the execution. Unanswered, the request "
                "fails after 7 days."
            )
            topic_arn = args.topic.topic_arn if args.topic else None
            link = console_url(ctx.region, ctx.name_prefix)
            stages.append(Stage(name=APPROVE_STAGE, actions=[manual_approval(description, link, topic_arn)]))

        def release(action: str, step: str, run_order: int) -> Action:
            return codebuild(
                action,
                projects.release_project_name,
                inputs=[contracts.BUILD_ARTIFACT],
                variables=environment(RELEASE_STEP=step),
                run_order=run_order,
            )

        deploy_actions = [
            release(MARK_DEPLOYING_ACTION, RELEASE_STEP_DEPLOYING, 1),
            codedeploy_to_ecs(args.deployment, 2),
            # Runs only when the deployment succeeded: a failed or rolled-back one leaves `live` alone.
            release(MARK_LIVE_ACTION, RELEASE_STEP_LIVE, 3),
        ]
        stages.append(Stage(name="Deploy", actions=deploy_actions))
        return stages

    def _statements(self, args: DeliveryPipelineArgs) -> list[dict[str, Any]]:
        ctx, source, projects, deployment = args.context, args.source, args.projects, args.deployment
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        partition = aws.get_partition_output(opts=self.lookup()).partition
        group = pulumi.Output.concat(
            "deploymentgroup:", deployment.application_name, "/", deployment.deployment_group_name
        )
        statements = [
            iam.allow(
                [*BUCKET_METADATA, "s3:GetBucketVersioning"],
                [source.bucket_arn, args.artifacts.bucket_arn],
                sid="SourceAndArtifactBuckets",
            ),
            iam.allow(
                READ_OBJECTS, [pulumi.Output.concat(source.bucket_arn, "/", source.key)], sid="ReadTheSourceObject"
            ),
            iam.allow(
                [*READ_OBJECTS, "s3:PutObject", "s3:PutObjectAcl"], [args.artifacts.objects_arn], sid="ArtifactObjects"
            ),
            iam.allow(
                ["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                [projects.project_arn, projects.release_project_arn],
                sid="RunTheBuildAndRelease",
            ),
            iam.allow(
                ["codedeploy:CreateDeployment", "codedeploy:GetDeployment"],
                [arn(partition, "codedeploy", ctx.region, account_id, group)],
                sid="DeployWithTheGroup",
            ),
            iam.allow(
                [
                    "codedeploy:GetApplication",
                    "codedeploy:GetApplicationRevision",
                    "codedeploy:RegisterApplicationRevision",
                ],
                [deployment.application_arn],
                sid="RegisterRevisions",
            ),
            iam.allow(
                ["codedeploy:GetDeploymentConfig"],
                [
                    arn(
                        partition,
                        "codedeploy",
                        ctx.region,
                        account_id,
                        f"deploymentconfig:{deployment.deployment_config_name}",
                    )
                ],
                sid="ReadTheDeploymentConfig",
            ),
            # CodeDeployToECS registers taskdef.json as a new revision of the family before deploying.
            iam.allow(
                ["ecs:RegisterTaskDefinition"],
                [arn(partition, "ecs", ctx.region, account_id, f"task-definition/{args.runtime.family}:*")],
                sid="RegisterTaskDefinitionRevisions",
            ),
            pass_task_roles(args.runtime),
        ]
        if args.manual_approval and args.topic is not None:
            # The approval request is published with the pipeline role's own permissions, to this topic only; the
            # topic is encrypted, so the role also needs data keys of that one KMS key.
            statements.append(iam.allow(["sns:Publish"], [args.topic.topic_arn], sid="RequestApprovalOnTheTopic"))
            statements.append(
                iam.allow(["kms:Decrypt", "kms:GenerateDataKey*"], [args.topic.key_arn], sid="EncryptForTheTopic")
            )
        return statements
