"""CodeDeployBlueGreen: the CodeDeploy application and deployment group that shift traffic between the service's
two target groups through its production and test listeners, and roll back by themselves on failure (and on
the stack's alarms). Its role is what ``AWSCodeDeployRoleForECS`` grants on ``*``, narrowed to this service,
its listeners and task roles.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import contracts, iam
from components.base import Component, StackContext
from components.ecs_service import TaskRuntime
from components.load_balancer import ServiceEndpoints, any_load_balancer_type
from components.pipeline_actions import DEPLOY_ACTION, Action, Deployer, aws_action

# Deployment states that end a deployment badly, and both roll back here: FAILURE (rollback on
# DEPLOYMENT_FAILURE) and STOP, a deployment stopped by an alarm (DEPLOYMENT_STOP_ON_ALARM) or by hand
# (DEPLOYMENT_STOP_ON_REQUEST). The other states are START, READY and SUCCESS.
DEPLOYMENT_FAILED_STATES = ("FAILURE", "STOP")


@dataclass(frozen=True)
class BlueGreenDeployment:
    """The deployment group the pipeline's Deploy action names."""

    application_name: pulumi.Output[str]
    application_arn: pulumi.Output[str]
    deployment_group_name: pulumi.Output[str]
    deployment_config_name: str


@dataclass(frozen=True)
class CodeDeployBlueGreenArgs:
    context: StackContext
    deployment_config_name: str
    termination_wait_minutes: int
    runtime: TaskRuntime
    endpoints: ServiceEndpoints
    alarm_names: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    """CloudWatch alarms that stop and roll back a deployment; ``None`` for none."""


def arn(
    partition: pulumi.Input[str], service: str, region: str, account: pulumi.Input[str], resource: pulumi.Input[str]
) -> pulumi.Output[str]:
    """``arn:<partition>:<service>:<region>:<account>:<resource>``."""
    return pulumi.Output.concat("arn:", partition, f":{service}:{region}:", account, ":", resource)


def pass_task_roles(runtime: TaskRuntime) -> dict[str, Any]:
    """Handing the service's task and execution roles to ECS, and to nothing else."""
    return iam.allow(
        ["iam:PassRole"],
        [runtime.task_role.arn, runtime.execution_role.arn],
        sid="PassTheTaskRolesToEcs",
        condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
    )


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


def pipeline_statements(
    deployment: BlueGreenDeployment,
    runtime: TaskRuntime,
    region: str,
    partition: pulumi.Input[str],
    account_id: pulumi.Input[str],
) -> list[dict[str, Any]]:
    """What the pipeline's role needs to run the CodeDeployToECS action with this group."""
    group = pulumi.Output.concat("deploymentgroup:", deployment.application_name, "/", deployment.deployment_group_name)
    config = f"deploymentconfig:{deployment.deployment_config_name}"
    return [
        iam.allow(
            ["codedeploy:CreateDeployment", "codedeploy:GetDeployment"],
            [arn(partition, "codedeploy", region, account_id, group)],
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
            [arn(partition, "codedeploy", region, account_id, config)],
            sid="ReadTheDeploymentConfig",
        ),
        # CodeDeployToECS registers taskdef.json as a new revision of the family before deploying.
        iam.allow(
            ["ecs:RegisterTaskDefinition"],
            [arn(partition, "ecs", region, account_id, f"task-definition/{runtime.family}:*")],
            sid="RegisterTaskDefinitionRevisions",
        ),
        pass_task_roles(runtime),
    ]


class CodeDeployBlueGreen(Component):
    deployment: BlueGreenDeployment
    deployer: Deployer

    def __init__(
        self,
        name: str,
        args: CodeDeployBlueGreenArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        super().__init__(name, opts, children_formerly_of=children_formerly_of)
        ctx = args.context
        application = aws.codedeploy.Application(
            f"{name}-application", name=ctx.name_prefix, compute_platform="ECS", opts=self.child()
        )
        role = iam.service_role(
            self,
            f"{name}-codedeploy",
            physical_name=f"{ctx.name_prefix}-codedeploy",
            service="codedeploy.amazonaws.com",
            account_id=aws.get_caller_identity_output(opts=self.lookup()).account_id,
            statements=self._statements(args),
            policy_name="ecs-blue-green",
        )
        group = self._group(name, args, application, role)
        self.deployment = BlueGreenDeployment(
            application_name=application.name,
            application_arn=application.arn,
            deployment_group_name=group.deployment_group_name,
            deployment_config_name=args.deployment_config_name,
        )
        partition = aws.get_partition_output(opts=self.lookup()).partition
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        self.deployer = Deployer(
            engine="codedeploy",
            description=f"blue/green, {args.deployment_config_name}",
            action=codedeploy_to_ecs(self.deployment, 2),
            pipeline_statements=pipeline_statements(self.deployment, args.runtime, ctx.region, partition, account_id),
            failed_pattern=deployment_failed_pattern(application.name, group.deployment_group_name),
            failed_message=deployment_failed_message(ctx.region),
        )
        self.register_outputs(
            {"application_name": application.name, "deployment_group_name": group.deployment_group_name}
        )

    def _statements(self, args: CodeDeployBlueGreenArgs) -> list[dict[str, Any]]:
        region, runtime, endpoints = args.context.region, args.runtime, args.endpoints
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        partition = aws.get_partition_output(opts=self.lookup()).partition
        cluster_arn = arn(partition, "ecs", region, account_id, pulumi.Output.concat("cluster/", runtime.cluster_name))
        service_arn = arn(
            partition,
            "ecs",
            region,
            account_id,
            pulumi.Output.concat("service/", runtime.cluster_name, "/", runtime.service_name),
        )
        task_sets = pulumi.Output.concat("task-set/", runtime.cluster_name, "/", runtime.service_name, "/*")
        statements = [
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
                [arn(partition, "ecs", region, account_id, task_sets)],
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
            # Traffic moves by rewriting the listeners' default actions (the program uses no listener rules, so
            # no ModifyRule).
            iam.allow(
                ["elasticloadbalancing:ModifyListener"],
                [
                    endpoints.prod_listener_arn.apply(any_load_balancer_type),
                    endpoints.test_listener_arn.apply(any_load_balancer_type),
                ],
                sid="ShiftTrafficOnTheListeners",
            ),
            pass_task_roles(runtime),
        ]
        if args.alarm_names is not None:
            # The names are an Output list (they come from the alarm resources): the statement's Resource is that
            # one list, mapped to the alarms' ARNs.
            alarm_arns = pulumi.Output.all(partition, account_id, pulumi.Output.from_input(args.alarm_names)).apply(
                lambda v: [f"arn:{v[0]}:cloudwatch:{region}:{v[1]}:alarm:{alarm}" for alarm in v[2]]
            )
            statements.append(
                {**iam.allow(["cloudwatch:DescribeAlarms"], [], sid="ReadTheDeploymentAlarms"), "Resource": alarm_arns}
            )
        return statements

    def _group(
        self,
        name: str,
        args: CodeDeployBlueGreenArgs,
        application: aws.codedeploy.Application,
        role: iam.ServiceRole,
    ) -> aws.codedeploy.DeploymentGroup:
        cd = aws.codedeploy
        pair = cd.DeploymentGroupLoadBalancerInfoTargetGroupPairInfoArgs
        has_alarms = args.alarm_names is not None
        rollback_events = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"]
        if has_alarms:
            rollback_events.append("DEPLOYMENT_STOP_ON_ALARM")
        endpoints = args.endpoints
        return cd.DeploymentGroup(
            f"{name}-group",
            app_name=application.name,
            deployment_group_name=args.context.name_prefix,
            service_role_arn=role.role.arn,
            deployment_config_name=args.deployment_config_name,
            deployment_style=cd.DeploymentGroupDeploymentStyleArgs(
                deployment_type="BLUE_GREEN", deployment_option="WITH_TRAFFIC_CONTROL"
            ),
            blue_green_deployment_config=cd.DeploymentGroupBlueGreenDeploymentConfigArgs(
                # Shift traffic as soon as the new tasks are healthy, without waiting for a person.
                deployment_ready_option=cd.DeploymentGroupBlueGreenDeploymentConfigDeploymentReadyOptionArgs(
                    action_on_timeout="CONTINUE_DEPLOYMENT"
                ),
                # The old tasks stay this long after the switch: a rollback within it is instantaneous.
                terminate_blue_instances_on_deployment_success=cd.DeploymentGroupBlueGreenDeploymentConfigTerminateBlueInstancesOnDeploymentSuccessArgs(
                    action="TERMINATE", termination_wait_time_in_minutes=args.termination_wait_minutes
                ),
            ),
            ecs_service=cd.DeploymentGroupEcsServiceArgs(
                cluster_name=args.runtime.cluster_name, service_name=args.runtime.service_name
            ),
            load_balancer_info=cd.DeploymentGroupLoadBalancerInfoArgs(
                target_group_pair_info=pair(
                    prod_traffic_route=cd.DeploymentGroupLoadBalancerInfoTargetGroupPairInfoProdTrafficRouteArgs(
                        listener_arns=[endpoints.prod_listener_arn]
                    ),
                    test_traffic_route=cd.DeploymentGroupLoadBalancerInfoTargetGroupPairInfoTestTrafficRouteArgs(
                        listener_arns=[endpoints.test_listener_arn]
                    ),
                    target_groups=[
                        cd.DeploymentGroupLoadBalancerInfoTargetGroupPairInfoTargetGroupArgs(name=tg.name)
                        for tg in (endpoints.blue, endpoints.green)
                    ],
                )
            ),
            auto_rollback_configuration=cd.DeploymentGroupAutoRollbackConfigurationArgs(
                enabled=True, events=rollback_events
            ),
            alarm_configuration=(
                cd.DeploymentGroupAlarmConfigurationArgs(enabled=True, alarms=args.alarm_names) if has_alarms else None
            ),
            opts=self.child(depends_on=role.ready),
        )
