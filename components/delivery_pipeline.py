"""DeliveryPipeline: the CodePipeline (type V2) that runs Source -> Build -> (Approve) -> Deploy, and its role.

- Source reads the uploaded zip from the source bucket (never polling: an EventBridge rule starts it);
- Build runs the BuildStage's project, which writes ``imageDetail.json``, ``taskdef.json`` and ``appspec.yaml``;
- with ``manualApproval``, Approve waits for a person; the request is published to the stack's topic;
- Deploy marks the image ``deploying`` (the release project), runs the deployment engine's action (CodeDeploy's
  CodeDeployToECS, or the ``ecs`` engine's deploy project), and marks the image ``live`` once the deployment
  succeeded.

The stages are made by the builders of ``pipeline_actions.py`` (one per kind of action), so that the pipeline
reads as its list of stages. The role is scoped to the exact objects and projects it touches, plus what the
engine's action needs (``Deployer.pipeline_statements``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import contracts, iam
from components.artifact_store import BUCKET_METADATA, KEY_READ_WRITE, READ_OBJECTS, ArtifactStore
from components.base import Component, StackContext
from components.build_stage import RELEASE_STEP_DEPLOYING, RELEASE_STEP_LIVE, BuildProjects
from components.notifications import NotificationTopic
from components.pipeline_actions import (
    APPROVE_STAGE,
    BUILD_ACTION,
    MARK_DEPLOYING_ACTION,
    MARK_LIVE_ACTION,
    SOURCE_NAMESPACE,
    Action,
    Deployer,
    Stage,
    codebuild,
    environment,
    manual_approval,
    s3_source,
)
from components.source_bucket import SourceObject

# SUPERSEDED: every upload overwrites the same key, so only the newest one matters. A newer execution replaces
# an older one that is waiting between stages, but never interrupts a stage in progress, so a running blue/green
# deployment always completes (or rolls back) before the next one starts. QUEUED would deploy every intermediate
# upload in turn, each taking the whole deployment time.
EXECUTION_MODE = "SUPERSEDED"


def console_url(region: str, pipeline_name: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline_name}/view?region={region}"
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
    deployer: Deployer
    """The deployment engine's Deploy action, and what the pipeline's role needs to run it."""
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
            # With the BuildStage's key, CodePipeline writes the source artifact under the key the projects use.
            artifact_stores=[
                aws.codepipeline.PipelineArtifactStoreArgs(
                    location=args.artifacts.bucket_name, type="S3", encryption_key=args.artifacts.encryption_key
                )
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
                f"Approve to deploy the image this execution built to the {ctx.name_prefix} ECS service "
                f"({args.deployer.description}); reject to stop the execution. Unanswered, the request fails after "
                "7 days."
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
            args.deployer.action,
            # Runs only when the deployment succeeded: a failed or rolled-back one leaves `live` alone.
            release(MARK_LIVE_ACTION, RELEASE_STEP_LIVE, 3),
        ]
        stages.append(Stage(name="Deploy", actions=deploy_actions))
        return stages

    def _statements(self, args: DeliveryPipelineArgs) -> list[Mapping[str, Any]]:
        source, projects = args.source, args.projects
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
            # It writes the source artifact and reads the build's (the CodeDeploy action's templates).
            *args.artifacts.key_statements(KEY_READ_WRITE, sid="ArtifactKey"),
            iam.allow(
                ["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                [projects.project_arn, projects.release_project_arn],
                sid="RunTheBuildAndRelease",
            ),
            *args.deployer.pipeline_statements,
        ]
        if args.manual_approval and args.topic is not None:
            # The approval request is published with the pipeline role's own permissions, to this topic only; the
            # topic is encrypted, so the role also needs data keys of that one KMS key.
            statements.append(iam.allow(["sns:Publish"], [args.topic.topic_arn], sid="RequestApprovalOnTheTopic"))
            statements.append(
                iam.allow(["kms:Decrypt", "kms:GenerateDataKey*"], [args.topic.key_arn], sid="EncryptForTheTopic")
            )
        return statements
