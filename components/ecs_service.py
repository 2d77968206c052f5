"""EcsService: the ECS side of the FargateService: cluster, log group, roles, first task definition, service.

The service's deployments are controlled by CodeDeploy. After the first blue/green deployment CodeDeploy owns
the service's task definition and load balancers (``CODEDEPLOY_OWNED``): the program creates them once and then
leaves them alone, so that a later ``pulumi up`` neither fails (ECS rejects task-definition updates on a
CODE_DEPLOY service) nor reverts a deployment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from components import iam, logs, security_groups
from components.base import Component, StackContext
from components.config_types import (
    ConfigModel,
    Flag,
    Integer,
    Matches,
    Port,
    Range,
    StrMap,
    Text,
    as_int,
    problems_if,
)
from components.contracts import IMAGE_PLACEHOLDER, placeholder
from components.deployment_engine import NativeBlueGreen
from components.templates import TaskDefinitionValues, render_taskdef

# Fields CodeDeploy changes on the service during a blue/green deployment, as Pulumi property names.
CODEDEPLOY_OWNED_SERVICE_FIELDS = ("taskDefinition", "loadBalancers")

# Fargate task sizes AWS accepts: cpu units -> allowed memory (MiB).
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
FargateCpu = Annotated[Literal[256, 512, 1024, 2048, 4096, 8192, 16384], BeforeValidator(as_int)]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Seconds ECS ignores failing load-balancer health checks of a new task: it starts before it can answer.
HEALTH_CHECK_GRACE_SECONDS = 30

CpuArchitecture = Literal["X86_64", "ARM64"]
# The Fargate capacity providers, associated with every cluster (free; nothing runs on them unless asked).
# FARGATE_SPOT runs Linux X86_64 tasks on platform version 1.3.0 or later and Linux ARM64 tasks on 1.4.0 or
# later (the service runs on LATEST, 1.4.0): ECS API reference, CapacityProviderStrategyItem,
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html
FARGATE = "FARGATE"
FARGATE_SPOT = "FARGATE_SPOT"
FARGATE_CAPACITY_PROVIDERS = (FARGATE, FARGATE_SPOT)
PLATFORM_VERSION = "LATEST"


@dataclass(frozen=True)
class CapacityShare:
    """One item of a capacity provider strategy: ``base`` tasks first, the rest split by ``weight``."""

    capacity_provider: str
    weight: int
    base: int = 0


def _environment(variables: dict[str, str]) -> dict[str, str]:
    problems = []
    for name in variables:
        if not _ENV_NAME.match(name):
            problems.append(f"{name!r} is not a valid environment variable name")
        if name.startswith(("AWS_", "ECS_")):
            problems.append(f"{name!r}: names starting with AWS_ or ECS_ are reserved")
    if problems:
        raise ValueError("; ".join(problems))
    return variables


def _health_check_path(path: str) -> str:
    if not path.startswith("/") or len(path) > 1024 or " " in path:
        raise ValueError(f"{path!r} must be a URL path starting with '/'")
    return path


ContainerName = Annotated[
    Text, Matches(r"[A-Za-z0-9_-]{1,255}", "a container name of up to 255 letters, digits, _ and -", "web")
]


class ContainerConfig(ConfigModel):
    """The application container and its Fargate task size."""

    container_name: (
        Annotated[
            Text, Matches(r"[A-Za-z0-9_-]{1,255}", "a container name of up to 255 letters, digits, _ and -", "web")
        ]
        | None
    ) = Field(
        None, description="name of the container in the task definition", json_schema_extra={"x-default": "`appName`"}
    )
    container_port: Port = Field(80, description="port the container listens on")
    cpu: FargateCpu = Field(256, description="Fargate task CPU units")
    memory: Annotated[Integer, Range(512, 122_880)] = Field(
        512, description="Fargate task memory in MiB, a size Fargate allows for `cpu`"
    )
    desired_count: Annotated[Integer, Range(1, 100)] = Field(1, description="number of tasks")
    health_check_path: Annotated[Text, AfterValidator(_health_check_path)] = Field(
        "/", description="ALB health-check path"
    )
    environment: Annotated[StrMap, AfterValidator(_environment)] = Field(
        default_factory=dict,
        description="map of environment variables of the container (reaches the next deployment)",
    )
    initial_image: Text = Field(
        "public.ecr.aws/nginx/nginx:stable-alpine",
        description="image of the first task definition, before the first deployment: it runs as uid 101 on a "
        "read-only root filesystem, writing only to `/var/cache/nginx` and `/run` (for `ARM64`, an image with a "
        "linux/arm64 variant)",
    )
    cpu_architecture: CpuArchitecture = Field(
        "X86_64",
        description="CPU of the tasks, and of the CodeBuild environment that builds their image natively: `ARM64` "
        "is Graviton, about 20% cheaper per vCPU and GB",
    )
    container_insights: Flag = Field(
        True,
        description="CloudWatch Container Insights on the cluster (Security Hub ECS.12): CPU, memory, network and "
        "storage metrics per cluster, service and task family, billed as custom metrics (37 for one service, about "
        "$11 a month)",
    )
    fargate_spot: Flag = Field(
        False,
        description="run the tasks on Fargate Spot, about 70% cheaper: ECS stops a task with two minutes' notice "
        "when AWS needs the capacity back and starts another (for dev and interruption-tolerant stacks); "
        "switching it replaces the ECS service",
    )

    @model_validator(mode="after")
    def _fargate_size(self) -> ContainerConfig:
        allowed = FARGATE_SIZES[self.cpu]
        problems_if(
            (
                self.memory not in allowed,
                "memory",
                f"{self.memory} MiB is not a Fargate size for cpu {self.cpu}; allowed with cpu {self.cpu}: "
                + ", ".join(map(str, allowed)),
            )
        )
        return self

    def named(self, default: str) -> str:
        """The container's name: ``containerName``, or ``default`` (the app's name)."""
        return self.container_name or default

    @property
    def capacity_provider_strategy(self) -> tuple[CapacityShare, ...]:
        """Where the service's tasks run: every task on Fargate Spot, or (empty) the ``FARGATE`` launch type."""
        return (CapacityShare(FARGATE_SPOT, weight=1),) if self.fargate_spot else ()


@dataclass(frozen=True)
class TaskRuntime:
    """The service as the pipeline deploys onto it."""

    cluster_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    family: str
    """Task-definition family; deployments register new revisions of it only."""
    container_name: str
    container_port: int
    execution_role: iam.RoleRef
    """Starts the tasks: writes their logs; pulls images once granted (``BuildStage.grant_pull``)."""
    task_role: iam.RoleRef
    log_group_name: pulumi.Output[str]
    taskdef_values: pulumi.Output[TaskDefinitionValues]
    """The task definition's values with the image placeholder, for the pipeline's ``taskdef.json``."""
    cpu_architecture: str
    """``X86_64`` or ``ARM64``: what the image must be built for."""
    capacity_provider_strategy: tuple[CapacityShare, ...]
    """Where replacement tasks run (empty: the ``FARGATE`` launch type), for CodeDeploy's ``appspec.yaml``."""


@dataclass(frozen=True)
class EcsServiceArgs:
    context: StackContext
    container: ContainerConfig
    container_name: str
    vpc_id: pulumi.Input[str]
    task_subnet_ids: pulumi.Input[Sequence[str]]
    assign_public_ip: bool
    target_group_arn: pulumi.Input[str]
    """The target group the service starts behind (blue); CodeDeploy moves it afterwards."""
    ready: Sequence[pulumi.Resource] = ()
    """What must exist before the service (the listeners: a target group needs one before a service uses it)."""
    native: NativeBlueGreen | None = None
    """ECS-native blue/green (the ``ecs`` engine) with ``routing``; ``None``: CodeDeploy deploys the service."""
    routing: NativeRouting | None = None


@dataclass(frozen=True)
class NativeRouting:
    """The load balancer side of ECS-native blue/green: the target group new versions start in, the rules ECS
    reweights, and the role it does that with."""

    alternate_target_group_arn: pulumi.Input[str]
    production_rule_arn: pulumi.Input[str]
    test_rule_arn: pulumi.Input[str]
    role_arn: pulumi.Input[str]


class EcsService(Component):
    runtime: TaskRuntime
    security_group_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: EcsServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        super().__init__(name, opts, children_formerly_of=children_formerly_of)
        ctx, c = args.context, args.container
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id

        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=ctx.name_prefix,
            settings=[container_insights(c.container_insights)],
            opts=self.child(),
        )
        # A strategy may name only providers associated with the cluster (CapacityProviderStrategyItem).
        capacity = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity-providers",
            cluster_name=cluster.name,
            capacity_providers=list(FARGATE_CAPACITY_PROVIDERS),
            opts=self.child(),
        )
        # The application's logs outlive the stack unless it is a dev stack that says otherwise.
        log_group = logs.log_group(self, f"{name}-logs", physical_name=f"/ecs/{ctx.name_prefix}", context=ctx)
        # Execution role: what ECS itself needs to start a task (write its logs). Pulling from the pipeline's
        # repository is granted by the BuildStage, which owns it. Task role: what the application may do; the
        # sample needs nothing, so it has no policy at all.
        execution = iam.service_role(
            self,
            f"{name}-execution",
            physical_name=f"{ctx.name_prefix}-execution",
            service="ecs-tasks.amazonaws.com",
            account_id=account_id,
            statements=[iam.write_logs(log_group.arn)],
            policy_resource=f"{name}-execution-logs",
        )
        task = iam.service_role(
            self,
            f"{name}-task",
            physical_name=f"{ctx.name_prefix}-task",
            service="ecs-tasks.amazonaws.com",
            account_id=account_id,
        )
        task_sg = aws.ec2.SecurityGroup(
            f"{name}-tasks",
            name=f"{ctx.name_prefix}-tasks",
            description=f"Fargate tasks of {ctx.name_prefix}",
            vpc_id=args.vpc_id,
            opts=self.child(),
        )
        # Tasks pull images from ECR and write logs over HTTPS; nothing else goes out.
        security_groups.to_cidr(
            self, f"{name}-tasks-https", task_sg.id, 443, "0.0.0.0/0", "HTTPS to AWS APIs and registries"
        )
        values = pulumi.Output.all(execution.role.arn, task.role.arn, log_group.name).apply(
            lambda v: TaskDefinitionValues(
                family=ctx.name_prefix,
                cpu=c.cpu,
                memory=c.memory,
                execution_role_arn=v[0],
                task_role_arn=v[1],
                container_name=args.container_name,
                container_port=c.container_port,
                image=placeholder(IMAGE_PLACEHOLDER),
                environment=c.environment,
                log_group=v[2],
                region=ctx.region,
                cpu_architecture=c.cpu_architecture,
            )
        )
        task_definition = self._first_task_definition(name, args, values, execution.role, task.role)
        service = self._service(name, replace(args, ready=[*args.ready, capacity]), cluster, task_definition, task_sg)

        self.security_group_id = task_sg.id
        self.runtime = TaskRuntime(
            cluster_name=cluster.name,
            service_name=service.name,
            family=ctx.name_prefix,
            container_name=args.container_name,
            container_port=c.container_port,
            execution_role=execution.ref,
            task_role=task.ref,
            log_group_name=log_group.name,
            taskdef_values=values,
            cpu_architecture=c.cpu_architecture,
            capacity_provider_strategy=c.capacity_provider_strategy,
        )
        self.register_outputs(
            {
                "cluster_name": cluster.name,
                "service_name": service.name,
                "log_group_name": log_group.name,
                "execution_role_arn": execution.role.arn,
                "task_role_arn": task.role.arn,
            }
        )

    def _first_task_definition(
        self,
        name: str,
        args: EcsServiceArgs,
        values: pulumi.Output[TaskDefinitionValues],
        execution: aws.iam.Role,
        task: aws.iam.Role,
    ) -> aws.ecs.TaskDefinition:
        """The first revision, from the same template the pipeline renders, with the initial image."""
        c = args.container
        first = values.apply(lambda v: json.loads(render_taskdef(replace(v, image=c.initial_image))))
        return aws.ecs.TaskDefinition(
            f"{name}-taskdef",
            family=args.context.name_prefix,
            cpu=str(c.cpu),
            memory=str(c.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=execution.arn,
            task_role_arn=task.arn,
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture=c.cpu_architecture
            ),
            container_definitions=first.apply(lambda d: json.dumps(d["containerDefinitions"])),
            opts=self.child(),
        )

    def _service(
        self,
        name: str,
        args: EcsServiceArgs,
        cluster: aws.ecs.Cluster,
        task_definition: aws.ecs.TaskDefinition,
        task_sg: aws.ec2.SecurityGroup,
    ) -> aws.ecs.Service:
        native, routing = args.native, args.routing
        if (native is None) != (routing is None):
            raise ValueError("EcsServiceArgs: native blue/green takes both `native` and `routing`")
        advanced = None
        if routing is not None:
            advanced = aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs(
                alternate_target_group_arn=routing.alternate_target_group_arn,
                production_listener_rule=routing.production_rule_arn,
                test_listener_rule=routing.test_rule_arn,
                role_arn=routing.role_arn,
            )
        strategy = args.container.capacity_provider_strategy
        return aws.ecs.Service(
            f"{name}-service",
            name=args.context.name_prefix,
            cluster=cluster.arn,
            task_definition=task_definition.arn,
            desired_count=args.container.desired_count,
            # A capacity provider strategy, or the launch type: ECS takes one or the other.
            launch_type=None if strategy else FARGATE,
            capacity_provider_strategies=[
                aws.ecs.ServiceCapacityProviderStrategyArgs(
                    capacity_provider=s.capacity_provider, weight=s.weight, base=s.base
                )
                for s in strategy
            ]
            or None,
            platform_version=PLATFORM_VERSION,
            deployment_controller=aws.ecs.ServiceDeploymentControllerArgs(type="ECS" if native else "CODE_DEPLOY"),
            deployment_configuration=native_deployment(native) if native else None,
            # A deployment whose tasks never become healthy fails (and rolls back) instead of waiting forever;
            # ECS sends SERVICE_DEPLOYMENT_FAILED only with the circuit breaker on, and the failure rule listens
            # for it. https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html
            deployment_circuit_breaker=(
                aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True) if native else None
            ),
            alarms=deployment_alarms(native) if native else None,
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.task_subnet_ids,
                security_groups=[task_sg.id],
                assign_public_ip=args.assign_public_ip,
            ),
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=args.target_group_arn,
                    container_name=args.container_name,
                    container_port=args.container.container_port,
                    advanced_configuration=advanced,
                )
            ],
            health_check_grace_period_seconds=HEALTH_CHECK_GRACE_SECONDS,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # Switching between the launch type and a strategy replaces the service (the provider cannot update
            # it in place), and its name is fixed: the old one must go first.
            opts=self.child(
                depends_on=list(args.ready),
                ignore_changes=list(owned_service_fields(native)),
                delete_before_replace=True,
            ),
        )


CONTAINER_INSIGHTS = "containerInsights"
CONTAINER_INSIGHTS_ON = "enabled"
"""Container Insights, not ``enhanced``: Security Hub's ECS.12 asks for Container Insights on the cluster, which
``enabled`` gives (cluster- and service-level metrics for a few dollars a month); ``enhanced`` adds task- and
container-level metrics billed per observation, more than this one-service cluster needs.
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ClusterSetting.html"""


def container_insights(on: bool) -> aws.ecs.ClusterSettingArgs:
    """The cluster's Container Insights setting. Off is said explicitly (``disabled``): left out, the cluster
    would take the account's default setting when it is created, and the stack file would not say what runs."""
    return aws.ecs.ClusterSettingArgs(name=CONTAINER_INSIGHTS, value=CONTAINER_INSIGHTS_ON if on else "disabled")


def owned_service_fields(native: NativeBlueGreen | None) -> tuple[str, ...]:
    """The service's fields its deployments change, which Pulumi leaves alone (``ignoreChanges``).

    Both engines register task-definition revisions and swap the service's target groups. ``engineMigration``
    sends the load-balancer settings once, for the switch to ECS-native blue/green (README, Switching engines).
    """
    if native is not None and native.send_load_balancers:
        return ("taskDefinition",)
    return CODEDEPLOY_OWNED_SERVICE_FIELDS


def native_deployment(native: NativeBlueGreen) -> aws.ecs.ServiceDeploymentConfigurationArgs:
    """The service's ECS-native blue/green settings: the strategy of ``deploymentConfig`` and the bake time.
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html"""
    shift = native.shift
    canary = linear = None
    if shift.strategy == "CANARY":
        canary = aws.ecs.ServiceDeploymentConfigurationCanaryConfigurationArgs(
            canary_percent=shift.percent, canary_bake_time_in_minutes=str(shift.interval_minutes)
        )
    elif shift.strategy == "LINEAR":
        linear = aws.ecs.ServiceDeploymentConfigurationLinearConfigurationArgs(
            step_percent=shift.percent, step_bake_time_in_minutes=str(shift.interval_minutes)
        )
    return aws.ecs.ServiceDeploymentConfigurationArgs(
        strategy=shift.strategy,
        # The provider takes bake times as strings (its "nullable int").
        bake_time_in_minutes=str(native.bake_minutes),
        canary_configuration=canary,
        linear_configuration=linear,
    )


def deployment_alarms(native: NativeBlueGreen) -> aws.ecs.ServiceAlarmsArgs | None:
    """The alarms that stop a deployment and roll it back (none configured: none)."""
    if not native.alarm_names:
        return None
    return aws.ecs.ServiceAlarmsArgs(alarm_names=list(native.alarm_names), enable=True, rollback=True)


def environment_list(variables: Mapping[str, str]) -> list[dict[str, str]]:
    """A container's ``environment`` as ECS takes it, sorted by name."""
    return [{"name": k, "value": v} for k, v in sorted(variables.items())]
