"""DeployStage: CodeDeploy ECS blue/green, the CodePipeline that runs Source -> Build -> Deploy, and its trigger.

- The CodeDeploy application and deployment group shift traffic between the FargateService's two target
  groups through its production and test listeners, and roll back by themselves on failure.
- The pipeline (type V2) reads the uploaded zip from the SourceBucket (never polling: an EventBridge rule
  starts it), runs the BuildStage's project, and hands the build's artifact (``imageDetail.json``,
  ``taskdef.json``, ``appspec.yaml``) to the CodeDeployToECS action.
- The artifact bucket belongs here; the build role is granted access to it here, by its owner.
- With ``manualApproval`` an ``Approve`` stage between Build and Deploy waits for a person; the request is
  published to the stack's notification topic.
- Two EventBridge rules tell the topic when a pipeline execution fails and when a deployment fails or is
  stopped (both roll back), in one readable line with a console link.

Every role is scoped to the resources it touches, by ARN.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import buckets, iam
from components.build_stage import RELEASE_STEP_DEPLOYING, RELEASE_STEP_LIVE
from components.config import PipelineConfig

# SUPERSEDED: every upload overwrites the same key, so only the newest one matters. A newer execution
# replaces an older one that is waiting between stages, but never interrupts a stage in progress, so a
# running blue/green deployment always completes (or rolls back) before the next one starts. QUEUED would
# deploy every intermediate upload in turn, each taking the whole deployment time.
EXECUTION_MODE = "SUPERSEDED"
# Build artifacts are only inputs of one execution; a re-run of an older execution rebuilds from its source
# version, so they are kept for a month only.
ARTIFACT_EXPIRY_DAYS = 30
# Artifact names passed between stages.
SOURCE_ARTIFACT = "SourceOutput"
BUILD_ARTIFACT = "BuildOutput"
SOURCE_NAMESPACE = "SourceVariables"
# The action names, used by `aws codepipeline start-pipeline-execution --source-revisions actionName=Source,...`.
SOURCE_ACTION = "Source"
BUILD_ACTION = "Build"
DEPLOY_ACTION = "Deploy"
# Around the deployment, in the Deploy stage: the image is tagged `deploying` before it (and refused if it
# expired while the execution waited for approval), and becomes `live` (the old one `rollback`) after it.
MARK_DEPLOYING_ACTION = "MarkDeploying"
MARK_LIVE_ACTION = "MarkLive"
APPROVE_STAGE = "Approve"
APPROVE_ACTION = "Approve"
# Deployment states that end a deployment badly, and both roll back here: FAILURE (rollback on
# DEPLOYMENT_FAILURE) and STOP, a deployment stopped by an alarm (DEPLOYMENT_STOP_ON_ALARM) or by hand
# (DEPLOYMENT_STOP_ON_REQUEST). The other states are START, READY and SUCCESS.
DEPLOYMENT_FAILED_STATES = ("FAILURE", "STOP")


@dataclass(frozen=True)
class DeployStageArgs:
    name_prefix: str
    region: str
    pipeline: PipelineConfig
    # SourceBucket
    source_bucket_name: pulumi.Input[str]
    source_bucket_arn: pulumi.Input[str]
    source_object_key: str
    source_event_pattern: pulumi.Input[str]
    """EventBridge pattern matching only an upload of the source object; the rule starts the pipeline on it."""
    # BuildStage
    project_name: pulumi.Input[str]
    project_arn: pulumi.Input[str]
    build_role_name: pulumi.Input[str]
    """The build role, granted read/write on the artifact bucket."""
    release_project_name: pulumi.Input[str]
    release_project_arn: pulumi.Input[str]
    """BuildStage's release project: run before the deployment (``deploying``) and after it (``live``)."""
    release_role_name: pulumi.Input[str]
    """The release project's role, granted read on the artifact bucket."""
    # FargateService
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    blue_target_group_name: pulumi.Input[str]
    green_target_group_name: pulumi.Input[str]
    prod_listener_arn: pulumi.Input[str]
    test_listener_arn: pulumi.Input[str]
    family: str
    """Task-definition family; the pipeline registers new revisions of it only."""
    task_role_arn: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    alarm_names: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    """ServiceAlarms.alarm_names: CloudWatch alarms that stop and roll back a deployment. ``None`` (or an empty
    literal list) for none: whether there are alarms must be known before the names are."""
    notification_topic_arn: pulumi.Input[str] | None = None
    """Notifications.topic_arn: told of failed pipeline executions, failed or stopped deployments and approval
    requests. ``None``: no failure rules, approval requests show in the console only."""
    notification_key_arn: pulumi.Input[str] | None = None
    """Notifications.key_arn: the topic's KMS key, which the pipeline role needs to publish approval requests."""
    force_destroy: bool = False
    """``StackConfig.force_destroy`` (dev only): ``pulumi destroy`` empties and deletes the artifact bucket."""


def console_url(region: str, pipeline_name: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline_name}/view?region={region}"
    )


def _given(names: pulumi.Input[Sequence[pulumi.Input[str]]] | None) -> bool:
    return names is not None and not (isinstance(names, (list, tuple)) and not names)


def pipeline_failed_pattern(pipeline_name: pulumi.Input[str]) -> dict[str, Any]:
    """EventBridge pattern of a failed execution of this pipeline (and of no other)."""
    return {
        "source": ["aws.codepipeline"],
        "detail-type": ["CodePipeline Pipeline Execution State Change"],
        "detail": {"pipeline": [pipeline_name], "state": ["FAILED"]},
    }


def deployment_failed_pattern(application: pulumi.Input[str], group: pulumi.Input[str]) -> dict[str, Any]:
    """EventBridge pattern of a deployment of this application's group that failed or was stopped."""
    return {
        "source": ["aws.codedeploy"],
        "detail-type": ["CodeDeploy Deployment State-change Notification"],
        "detail": {
            "application": [application],
            "deploymentGroup": [group],
            "state": list(DEPLOYMENT_FAILED_STATES),
        },
    }


def pipeline_failed_message(region: str) -> tuple[dict[str, str], str]:
    """Input transformer (paths, template) turning the event into one line with the execution's console page.

    The template is a JSON string (quoted), so SNS delivers plain text rather than the event's JSON.
    """
    console = f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines"
    return (
        {"pipeline": "$.detail.pipeline", "execution": "$.detail.execution-id", "at": "$.time"},
        json.dumps(
            "Pipeline <pipeline> failed at <at> (execution <execution>): "
            f"{console}/<pipeline>/executions/<execution>/timeline?region={region}"
        ),
    )


def deployment_failed_message(region: str) -> tuple[dict[str, str], str]:
    """Input transformer (paths, template) for a failed or stopped deployment, with its console page."""
    console = f"https://{region}.console.aws.amazon.com/codesuite/codedeploy/deployments"
    return (
        {
            "deployment": "$.detail.deploymentId",
            "application": "$.detail.application",
            "group": "$.detail.deploymentGroup",
            "state": "$.detail.state",
        },
        json.dumps(
            "Deployment <deployment> of <application>/<group> ended in <state> and is rolled back: "
            "production keeps, or returns to, the previous version. "
            f"{console}/<deployment>?region={region}"
        ),
    )


def _any_load_balancer_type(listener_arn: str) -> str:
    """``…:listener/app/<lb>/<lb-id>/<id>`` as ``…:listener/*/<lb>/<lb-id>/<id>``: still only this listener.

    The Service Authorization Reference lists both ``listener/app`` and ``listener/net`` as resource types of
    ``elasticloadbalancing:ModifyListener``, and the IAM linter (parliament) wants a statement to match both;
    the load balancer's and the listener's ids keep the ARN unique.
    """
    return listener_arn.replace(":listener/app/", ":listener/*/", 1)


class DeployStage(pulumi.ComponentResource):
    application_name: pulumi.Output[str]
    deployment_group_name: pulumi.Output[str]
    artifact_bucket_name: pulumi.Output[str]
    pipeline_name: pulumi.Output[str]
    pipeline_arn: pulumi.Output[str]
    pipeline_url: pulumi.Output[str]
    trigger_rule_name: pulumi.Output[str]
    failure_rule_names: list[pulumi.Output[str]]
    """The rules notifying the topic of failures (none without a topic)."""

    def __init__(self, name: str, args: DeployStageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitlab-fargate:index:DeployStage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        p = args.pipeline
        invoke = pulumi.InvokeOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition

        def arn(service: str, resource: pulumi.Input[str]) -> pulumi.Output[str]:
            return pulumi.Output.concat("arn:", partition, f":{service}:{args.region}:", account_id, ":", resource)

        cluster_arn = arn("ecs", pulumi.Output.concat("cluster/", args.cluster_name))
        service_arn = arn("ecs", pulumi.Output.concat("service/", args.cluster_name, "/", args.service_name))
        task_roles = [args.task_role_arn, args.execution_role_arn]
        pass_task_roles = iam.allow(
            ["iam:PassRole"],
            task_roles,
            sid="PassTheTaskRolesToEcs",
            condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        )

        # --- CodeDeploy -------------------------------------------------------------------------------
        application = aws.codedeploy.Application(f"{name}-application", name=prefix, compute_platform="ECS", opts=child)
        codedeploy_role = aws.iam.Role(
            f"{name}-codedeploy",
            name=f"{prefix}-codedeploy",
            assume_role_policy=iam.service_trust_policy("codedeploy.amazonaws.com", source_account=account_id),
            opts=child,
        )
        # What AWSCodeDeployRoleForECS grants on "*", narrowed to this service, its listeners and task roles.
        codedeploy_statements: list[dict[str, Any]] = [
            iam.allow(
                ["ecs:DescribeServices", "ecs:UpdateServicePrimaryTaskSet"], [service_arn], sid="ManageTheService"
            ),
            # ECS defines no resource type for CreateTaskSet, so "*" narrowed by its cluster and service keys.
            iam.allow(
                ["ecs:CreateTaskSet"],
                ["*"],
                sid="CreateTaskSetsOfTheService",
                condition={"ArnEquals": {"ecs:cluster": cluster_arn, "ecs:service": service_arn}},
            ),
            iam.allow(
                ["ecs:DeleteTaskSet"],
                [arn("ecs", pulumi.Output.concat("task-set/", args.cluster_name, "/", args.service_name, "/*"))],
                sid="DeleteTaskSetsOfTheService",
            ),
            # ELB Describe calls take no resource.
            iam.allow(
                [
                    "elasticloadbalancing:DescribeListeners",
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetGroups",
                ],
                ["*"],
                sid="DescribeLoadBalancing",
            ),
            # Traffic moves by rewriting the listeners' default actions (the program uses no listener rules,
            # so no ModifyRule).
            iam.allow(
                ["elasticloadbalancing:ModifyListener"],
                [
                    pulumi.Output.from_input(args.prod_listener_arn).apply(_any_load_balancer_type),
                    pulumi.Output.from_input(args.test_listener_arn).apply(_any_load_balancer_type),
                ],
                sid="ShiftTrafficOnTheListeners",
            ),
            pass_task_roles,
        ]
        has_alarms = _given(args.alarm_names)
        if has_alarms:
            # The names are an Output list (they come from the alarm resources): the statement's Resource is
            # that one list, mapped to the alarms' ARNs.
            alarm_arns = pulumi.Output.all(partition, account_id, pulumi.Output.from_input(args.alarm_names)).apply(
                lambda v: [f"arn:{v[0]}:cloudwatch:{args.region}:{v[1]}:alarm:{alarm}" for alarm in v[2]]
            )
            codedeploy_statements.append(
                {**iam.allow(["cloudwatch:DescribeAlarms"], [], sid="ReadTheDeploymentAlarms"), "Resource": alarm_arns}
            )
        codedeploy_policy = aws.iam.RolePolicy(
            f"{name}-codedeploy-policy",
            name="ecs-blue-green",
            role=codedeploy_role.id,
            policy=iam.policy_document(*codedeploy_statements),
            opts=child,
        )
        rollback_events = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"]
        if has_alarms:
            rollback_events.append("DEPLOYMENT_STOP_ON_ALARM")
        deployment_group = aws.codedeploy.DeploymentGroup(
            f"{name}-group",
            app_name=application.name,
            deployment_group_name=prefix,
            service_role_arn=codedeploy_role.arn,
            deployment_config_name=p.deployment_config,
            deployment_style=aws.codedeploy.DeploymentGroupDeploymentStyleArgs(
                deployment_type="BLUE_GREEN", deployment_option="WITH_TRAFFIC_CONTROL"
            ),
            blue_green_deployment_config=aws.codedeploy.DeploymentGroupBlueGreenDeploymentConfigArgs(
                # Shift traffic as soon as the new tasks are healthy, without waiting for a person.
                deployment_ready_option=aws.codedeploy.DeploymentGroupBlueGreenDeploymentConfigDeploymentReadyOptionArgs(
                    action_on_timeout="CONTINUE_DEPLOYMENT"
                ),
                # The old tasks stay this long after the switch: a rollback within it is instantaneous.
                terminate_blue_instances_on_deployment_success=aws.codedeploy.DeploymentGroupBlueGreenDeploymentConfigTerminateBlueInstancesOnDeploymentSuccessArgs(
                    action="TERMINATE", termination_wait_time_in_minutes=p.termination_wait_minutes
                ),
            ),
            ecs_service=aws.codedeploy.DeploymentGroupEcsServiceArgs(
                cluster_name=args.cluster_name, service_name=args.service_name
            ),
            load_balancer_info=aws.codedeploy.DeploymentGroupLoadBalancerInfoArgs(
                target_group_pair_info=aws.codedeploy.DeploymentGroupLoadBalancerInfoTargetGroupPairInfoArgs(
                    prod_traffic_route=aws.codedeploy.DeploymentGroupLoadBalancerInfoTargetGroupPairInfoProdTrafficRouteArgs(
                        listener_arns=[args.prod_listener_arn]
                    ),
                    test_traffic_route=aws.codedeploy.DeploymentGroupLoadBalancerInfoTargetGroupPairInfoTestTrafficRouteArgs(
                        listener_arns=[args.test_listener_arn]
                    ),
                    target_groups=[
                        aws.codedeploy.DeploymentGroupLoadBalancerInfoTargetGroupPairInfoTargetGroupArgs(name=tg)
                        for tg in (args.blue_target_group_name, args.green_target_group_name)
                    ],
                )
            ),
            auto_rollback_configuration=aws.codedeploy.DeploymentGroupAutoRollbackConfigurationArgs(
                enabled=True, events=rollback_events
            ),
            alarm_configuration=(
                aws.codedeploy.DeploymentGroupAlarmConfigurationArgs(enabled=True, alarms=args.alarm_names)
                if has_alarms
                else None
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[codedeploy_policy]),
        )

        # --- Artifact store -----------------------------------------------------------------------------
        # Artifacts are rebuilt from the source bucket's versions, so the bucket is never protected; but only
        # dev (force_destroy) lets `pulumi destroy` empty it: elsewhere a deletion stops at a non-empty bucket,
        # like every bucket of the stack, until someone empties it on purpose.
        artifacts, public_access = buckets.private_bucket(
            self,
            f"{name}-artifacts",
            account_id.apply(lambda account: buckets.physical_bucket_name(prefix, "artifacts", account, args.region)),
            force_destroy=args.force_destroy,
        )
        buckets.bucket_policy(
            self, f"{name}-artifacts-tls-only", artifacts, public_access, [buckets.tls_only_statement(artifacts.arn)]
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-artifacts-expiry",
            bucket=artifacts.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-artifacts",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=ARTIFACT_EXPIRY_DAYS),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=1
                    ),
                )
            ],
            opts=child,
        )
        artifact_objects = pulumi.Output.concat(artifacts.arn, "/*")
        bucket_metadata = ["s3:GetBucketAcl", "s3:GetBucketLocation"]
        aws.iam.RolePolicy(
            f"{name}-build-artifacts",
            name="pipeline-artifacts",
            role=args.build_role_name,
            policy=iam.policy_document(
                iam.allow(bucket_metadata, [artifacts.arn], sid="ArtifactBucket"),
                iam.allow(
                    ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], [artifact_objects], sid="ArtifactObjects"
                ),
            ),
            opts=child,
        )
        # The release project only reads the build's artifact (imageDetail.json).
        aws.iam.RolePolicy(
            f"{name}-release-artifacts",
            name="pipeline-artifacts",
            role=args.release_role_name,
            policy=iam.policy_document(
                iam.allow(bucket_metadata, [artifacts.arn], sid="ArtifactBucket"),
                iam.allow(["s3:GetObject", "s3:GetObjectVersion"], [artifact_objects], sid="ReadArtifacts"),
            ),
            opts=child,
        )

        # --- Pipeline -----------------------------------------------------------------------------------
        source_object = pulumi.Output.concat(args.source_bucket_arn, "/", args.source_object_key)
        pipeline_role = aws.iam.Role(
            f"{name}-pipeline-role",
            name=f"{prefix}-pipeline",
            assume_role_policy=iam.service_trust_policy("codepipeline.amazonaws.com", source_account=account_id),
            opts=child,
        )
        pipeline_statements: list[dict[str, Any]] = [
            iam.allow(
                [*bucket_metadata, "s3:GetBucketVersioning"],
                [args.source_bucket_arn, artifacts.arn],
                sid="SourceAndArtifactBuckets",
            ),
            iam.allow(["s3:GetObject", "s3:GetObjectVersion"], [source_object], sid="ReadTheSourceObject"),
            iam.allow(
                ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectAcl"],
                [artifact_objects],
                sid="ArtifactObjects",
            ),
            iam.allow(
                ["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                [args.project_arn, args.release_project_arn],
                sid="RunTheBuildAndRelease",
            ),
            iam.allow(
                ["codedeploy:CreateDeployment", "codedeploy:GetDeployment"],
                [
                    arn(
                        "codedeploy",
                        pulumi.Output.concat(
                            "deploymentgroup:", application.name, "/", deployment_group.deployment_group_name
                        ),
                    )
                ],
                sid="DeployWithTheGroup",
            ),
            iam.allow(
                [
                    "codedeploy:GetApplication",
                    "codedeploy:GetApplicationRevision",
                    "codedeploy:RegisterApplicationRevision",
                ],
                [application.arn],
                sid="RegisterRevisions",
            ),
            iam.allow(
                ["codedeploy:GetDeploymentConfig"],
                [arn("codedeploy", f"deploymentconfig:{p.deployment_config}")],
                sid="ReadTheDeploymentConfig",
            ),
            # CodeDeployToECS registers taskdef.json as a new revision of the family before deploying.
            iam.allow(
                ["ecs:RegisterTaskDefinition"],
                [arn("ecs", f"task-definition/{args.family}:*")],
                sid="RegisterTaskDefinitionRevisions",
            ),
            pass_task_roles,
        ]
        topic_arn, key_arn = args.notification_topic_arn, args.notification_key_arn
        if p.manual_approval and topic_arn is not None:
            # The approval request is published with the pipeline role's own permissions, to this topic only;
            # the topic is encrypted, so the role also needs data keys of that one KMS key.
            pipeline_statements.append(iam.allow(["sns:Publish"], [topic_arn], sid="RequestApprovalOnTheTopic"))
            if key_arn is not None:
                pipeline_statements.append(
                    iam.allow(["kms:Decrypt", "kms:GenerateDataKey*"], [key_arn], sid="EncryptForTheTopic")
                )
        pipeline_policy = aws.iam.RolePolicy(
            f"{name}-pipeline-policy",
            name="pipeline",
            role=pipeline_role.id,
            policy=iam.policy_document(*pipeline_statements),
            opts=child,
        )
        build_variables = [
            {"name": "PIPELINE_EXECUTION_ID", "value": "#{codepipeline.PipelineExecutionId}", "type": "PLAINTEXT"},
            {"name": "SOURCE_VERSION_ID", "value": f"#{{{SOURCE_NAMESPACE}.VersionId}}", "type": "PLAINTEXT"},
        ]
        source_stage = aws.codepipeline.PipelineStageArgs(
            name="Source",
            actions=[
                aws.codepipeline.PipelineStageActionArgs(
                    name=SOURCE_ACTION,
                    category="Source",
                    owner="AWS",
                    provider="S3",
                    version="1",
                    namespace=SOURCE_NAMESPACE,
                    output_artifacts=[SOURCE_ARTIFACT],
                    configuration={
                        "S3Bucket": args.source_bucket_name,
                        "S3ObjectKey": args.source_object_key,
                        # The EventBridge rule below starts the pipeline; polling too would run it twice.
                        "PollForSourceChanges": "false",
                    },
                )
            ],
        )
        build_stage = aws.codepipeline.PipelineStageArgs(
            name="Build",
            actions=[
                aws.codepipeline.PipelineStageActionArgs(
                    name=BUILD_ACTION,
                    category="Build",
                    owner="AWS",
                    provider="CodeBuild",
                    version="1",
                    input_artifacts=[SOURCE_ARTIFACT],
                    output_artifacts=[BUILD_ARTIFACT],
                    configuration={
                        "ProjectName": args.project_name,
                        "EnvironmentVariables": json.dumps(build_variables),
                    },
                )
            ],
        )
        approval_configuration: dict[str, pulumi.Input[str]] = {
            "CustomData": (
                f"Approve to deploy the image this execution built to the {prefix} ECS service (blue/green, "
                f"{p.deployment_config}); reject to stop the execution. Unanswered, the request fails after 7 days."
            ),
            "ExternalEntityLink": console_url(args.region, prefix),
        }
        if topic_arn is not None:
            approval_configuration["NotificationArn"] = topic_arn
        # A person confirms between the build and the deployment (manualApproval): the image is in ECR and the
        # rendered files are in the artifact, nothing has changed in production yet.
        approve_stages = (
            [
                aws.codepipeline.PipelineStageArgs(
                    name=APPROVE_STAGE,
                    actions=[
                        aws.codepipeline.PipelineStageActionArgs(
                            name=APPROVE_ACTION,
                            category="Approval",
                            owner="AWS",
                            provider="Manual",
                            version="1",
                            configuration=approval_configuration,
                        )
                    ],
                )
            ]
            if p.manual_approval
            else []
        )

        def release(action: str, step: str, run_order: int) -> aws.codepipeline.PipelineStageActionArgs:
            return aws.codepipeline.PipelineStageActionArgs(
                name=action,
                category="Build",
                owner="AWS",
                provider="CodeBuild",
                version="1",
                run_order=run_order,
                input_artifacts=[BUILD_ARTIFACT],
                configuration={
                    "ProjectName": args.release_project_name,
                    "EnvironmentVariables": json.dumps([{"name": "RELEASE_STEP", "value": step, "type": "PLAINTEXT"}]),
                },
            )

        deploy_stage = aws.codepipeline.PipelineStageArgs(
            name="Deploy",
            actions=[
                release(MARK_DEPLOYING_ACTION, RELEASE_STEP_DEPLOYING, 1),
                aws.codepipeline.PipelineStageActionArgs(
                    name=DEPLOY_ACTION,
                    category="Deploy",
                    owner="AWS",
                    provider="CodeDeployToECS",
                    version="1",
                    run_order=2,
                    input_artifacts=[BUILD_ARTIFACT],
                    configuration={
                        "ApplicationName": application.name,
                        "DeploymentGroupName": deployment_group.deployment_group_name,
                        "TaskDefinitionTemplateArtifact": BUILD_ARTIFACT,
                        "TaskDefinitionTemplatePath": "taskdef.json",
                        "AppSpecTemplateArtifact": BUILD_ARTIFACT,
                        "AppSpecTemplatePath": "appspec.yaml",
                        "Image1ArtifactName": BUILD_ARTIFACT,
                        # The placeholder's name in taskdef.json (<IMAGE1_NAME>), not the container's.
                        "Image1ContainerName": "IMAGE1_NAME",
                    },
                ),
                # Runs only when the deployment succeeded: a failed or rolled-back one leaves `live` alone.
                release(MARK_LIVE_ACTION, RELEASE_STEP_LIVE, 3),
            ],
        )
        pipeline = aws.codepipeline.Pipeline(
            f"{name}-pipeline",
            name=prefix,
            role_arn=pipeline_role.arn,
            pipeline_type="V2",
            execution_mode=EXECUTION_MODE,
            artifact_stores=[aws.codepipeline.PipelineArtifactStoreArgs(location=artifacts.bucket, type="S3")],
            stages=[source_stage, build_stage, *approve_stages, deploy_stage],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pipeline_policy]),
        )

        # --- Trigger ------------------------------------------------------------------------------------
        trigger_role = aws.iam.Role(
            f"{name}-trigger-role",
            name=f"{prefix}-pipeline-trigger",
            assume_role_policy=iam.service_trust_policy("events.amazonaws.com", source_account=account_id),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-trigger-policy",
            name="start-pipeline",
            role=trigger_role.id,
            policy=iam.policy_document(
                iam.allow(["codepipeline:StartPipelineExecution"], [pipeline.arn], sid="StartThePipeline")
            ),
            opts=child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-trigger",
            name=f"{prefix}-source-upload",
            description=f"Starts the {prefix} pipeline when the source archive is uploaded",
            event_pattern=args.source_event_pattern,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-trigger-target",
            rule=rule.name,
            target_id="pipeline",
            arn=pipeline.arn,
            role_arn=trigger_role.arn,
            opts=child,
        )

        # --- Failure notifications ----------------------------------------------------------------------
        # Named <prefix>-…: the topic's policy lets the stack's rules (rule/<prefix>-*) publish, with no role.
        failure_rules: list[aws.cloudwatch.EventRule] = []
        if topic_arn is not None:
            failures = {
                "pipeline-failed": (
                    f"Tells the {prefix} notification topic when an execution of the pipeline fails",
                    pipeline_failed_pattern(pipeline.name),
                    pipeline_failed_message(args.region),
                ),
                "deployment-failed": (
                    f"Tells the {prefix} notification topic when a deployment fails or is stopped (rolled back)",
                    deployment_failed_pattern(application.name, deployment_group.deployment_group_name),
                    deployment_failed_message(args.region),
                ),
            }
            for role, (description, pattern, (paths, template)) in failures.items():
                failure_rule = aws.cloudwatch.EventRule(
                    f"{name}-{role}",
                    name=f"{prefix}-{role}",
                    description=description,
                    event_pattern=pulumi.Output.json_dumps(pattern),
                    opts=child,
                )
                aws.cloudwatch.EventTarget(
                    f"{name}-{role}-target",
                    rule=failure_rule.name,
                    target_id="notify",
                    arn=topic_arn,
                    input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                        input_paths=paths, input_template=template
                    ),
                    opts=child,
                )
                failure_rules.append(failure_rule)

        self.application_name = application.name
        self.deployment_group_name = deployment_group.deployment_group_name
        self.artifact_bucket_name = artifacts.bucket
        self.pipeline_name = pipeline.name
        self.pipeline_arn = pipeline.arn
        self.pipeline_url = pipeline.name.apply(lambda n: console_url(args.region, n))
        self.trigger_rule_name = rule.name
        self.failure_rule_names = [r.name for r in failure_rules]
        self.register_outputs(
            {
                "application_name": self.application_name,
                "deployment_group_name": self.deployment_group_name,
                "artifact_bucket_name": self.artifact_bucket_name,
                "pipeline_name": self.pipeline_name,
                "pipeline_arn": self.pipeline_arn,
                "pipeline_url": self.pipeline_url,
                "trigger_rule_name": self.trigger_rule_name,
                "failure_rule_names": self.failure_rule_names,
            }
        )
