"""The pipeline's actions, made one way, and what the Deploy stage needs of a deployment engine.

Each builder makes one kind of action (an S3 source, a CodeBuild project, a manual approval); ``Deployer`` is
the bundle a deployment engine (``CodeDeployBlueGreen`` or ``EcsDeployment``) hands the pipeline and the failure
rules: its Deploy action, what the pipeline's role needs to run it, and the events that say a deployment failed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import contracts
from components.deployment_engine import DeploymentEngine
from components.source_bucket import SourceObject

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


@dataclass(frozen=True)
class Deployer:
    """What the Deploy stage needs of a deployment engine."""

    engine: DeploymentEngine
    description: str
    """The deployment in words, for the approval request (``blue/green through CodeDeploy, ...``)."""
    action: Action
    """The Deploy stage's deployment action (run order 2, between the two release steps)."""
    pipeline_statements: Sequence[Mapping[str, Any]]
    """What the pipeline's role needs to run ``action``."""
    failed_pattern: Mapping[str, Any]
    """EventBridge pattern of a deployment of this stack that failed (and of no other)."""
    failed_message: tuple[Mapping[str, str], pulumi.Input[str]]
    """Input transformer (paths, template) turning that event into one line with a console link."""
