"""DeployStage: everything from a built image to a deployed one, as five parts.

- ``CodeDeployBlueGreen``: the application and deployment group shifting traffic between the service's target
  groups, rolling back by themselves (on failure, and on the stack's alarms);
- ``ArtifactStore``: the pipeline's artifact bucket (whose grants ``__main__.py`` makes);
- ``DeliveryPipeline``: Source -> Build -> (Approve) -> Deploy;
- ``PipelineTrigger``: the upload starts the pipeline;
- ``FailureRules``: failed executions and failed or stopped deployments reach the notification topic.

The parts keep this component's name: their children were this component's before it was split, and keep
their names (and, through an alias, their URNs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import pulumi
from pydantic import BeforeValidator, Field, model_validator

from components.artifact_store import ArtifactStore
from components.base import Component, StackContext
from components.build_stage import BuildProjects
from components.codedeploy_blue_green import CodeDeployBlueGreen, CodeDeployBlueGreenArgs
from components.config_types import ConfigModel, Flag, Integer, Range, problems_if
from components.delivery_pipeline import DeliveryPipeline, DeliveryPipelineArgs, PipelineRef
from components.deployment_engine import (
    CODEBUILD_ACTION_MAX_MINUTES,
    ECS_MAX_BAKE_MINUTES,
    TRAFFIC_SHIFTS,
    DeploymentConfigName,
    DeploymentEngine,
    NativeBlueGreen,
    TrafficShift,
    max_bake_minutes,
)
from components.ecs_deployment import EcsDeployment, EcsDeploymentArgs
from components.ecs_service import TaskRuntime
from components.failure_rules import FailureRules, FailureRulesArgs
from components.load_balancer import ServiceEndpoints
from components.notifications import NotificationTopic
from components.pipeline_actions import Deployer
from components.pipeline_trigger import PipelineTrigger, PipelineTriggerArgs
from components.source_bucket import SourceObject

_PREFIX = "CodeDeployDefault."


def _qualified_deployment_config(value: object) -> object:
    """``ECSAllAtOnce`` as ``CodeDeployDefault.ECSAllAtOnce`` (the short form is accepted)."""
    if isinstance(value, str) and re.fullmatch(r"ECS\w+", value):
        return f"{_PREFIX}{value}"
    return value


def _short_names_too(schema: dict[str, Any]) -> None:
    """The JSON Schema of stack files accepts the short form as well (what an editor checks)."""
    schema["enum"] = [*schema["enum"], *(name.removeprefix(_PREFIX) for name in schema["enum"])]


class DeployConfig(ConfigModel):
    """How a new version takes production traffic."""

    deployment_engine: DeploymentEngine = Field(
        "codedeploy",
        description="what shifts production traffic: `codedeploy` (CodeDeploy rewrites the listeners) or `ecs` "
        "(ECS-native blue/green on listener rules); the same `deploymentConfig` works with both",
    )
    deployment_config: Annotated[DeploymentConfigName, BeforeValidator(_qualified_deployment_config)] = Field(
        "CodeDeployDefault.ECSAllAtOnce",
        description="how traffic shifts: all at once, a 10 % canary, or 10 % linear steps (the "
        "`CodeDeployDefault.` prefix may be left out; with `ecs` the same shift as an ECS strategy)",
        json_schema_extra=_short_names_too,
    )
    termination_wait_minutes: Annotated[Integer, Range(0, 2880)] = Field(
        5,
        description="minutes the old (blue) tasks stay after the shift, for a fast rollback (ECS's bake time with "
        "`ecs`)",
    )
    manual_approval: Flag = Field(
        False, description="a manual approval stage between Build and Deploy (approvers are notified by email)"
    )
    engine_migration: Flag = Field(
        False,
        description="`ecs` only, for the one `pulumi up` that switches a deployed stack from `codedeploy` (README, "
        "Switching engines); remove it afterwards",
    )

    @property
    def traffic_shift(self) -> TrafficShift:
        return TRAFFIC_SHIFTS[self.deployment_config]

    def native_blue_green(self, alarm_names: tuple[str, ...]) -> NativeBlueGreen | None:
        """What the ECS service needs with the ``ecs`` engine (``None`` with ``codedeploy``)."""
        if self.deployment_engine != "ecs":
            return None
        return NativeBlueGreen(
            shift=self.traffic_shift,
            bake_minutes=self.termination_wait_minutes,
            alarm_names=alarm_names,
            send_load_balancers=self.engine_migration,
        )

    @model_validator(mode="after")
    def _fits_the_engine(self) -> DeployConfig:
        limit = max_bake_minutes(self.traffic_shift)
        problems_if(
            (
                self.deployment_engine == "ecs" and self.termination_wait_minutes > limit,
                "terminationWaitMinutes",
                f"{self.termination_wait_minutes} minutes is too long for deploymentEngine 'ecs' with "
                f"{self.deployment_config}; allowed: 0 to {limit} (ECS bakes at most {ECS_MAX_BAKE_MINUTES} minutes, "
                f"and the pipeline's deploy step must end within {CODEBUILD_ACTION_MAX_MINUTES} minutes)",
            ),
            (
                self.engine_migration and self.deployment_engine != "ecs",
                "engineMigration",
                "only for switching a stack to deploymentEngine 'ecs'; remove it",
            ),
        )
        return self


@dataclass(frozen=True)
class DeployStageArgs:
    context: StackContext
    config: DeployConfig
    source: SourceObject
    projects: BuildProjects
    endpoints: ServiceEndpoints
    runtime: TaskRuntime
    alarm_names: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    """The ServiceAlarms' names: they stop and roll back a deployment. ``None`` for none."""
    topic: NotificationTopic | None = None
    """Told of failed executions and deployments, and of approval requests. ``None``: no failure rules, and
    approval requests show in the console only."""


class DeployStage(Component):
    pipeline: PipelineRef
    artifacts: ArtifactStore
    """The artifact store, for the grants the projects that use it need (``grant_read_write``, ``grant_read``)."""

    def __init__(self, name: str, args: DeployStageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        ctx, cfg = args.context, args.config
        here = pulumi.ResourceOptions(parent=self)
        self.artifacts = ArtifactStore(
            name, ctx, here, key_arn=args.projects.artifact_key_arn, children_formerly_of=self
        )
        deployer = self._deployer(name, args)
        delivery = DeliveryPipeline(
            name,
            DeliveryPipelineArgs(
                context=ctx,
                source=args.source,
                projects=args.projects,
                deployer=deployer,
                artifacts=self.artifacts,
                manual_approval=cfg.manual_approval,
                topic=args.topic,
            ),
            here,
            children_formerly_of=self,
        )
        PipelineTrigger(
            name,
            PipelineTriggerArgs(ctx.name_prefix, args.source.event_pattern, delivery.pipeline.arn),
            here,
            children_formerly_of=self,
        )
        if args.topic is not None:
            FailureRules(
                name,
                FailureRulesArgs(
                    name_prefix=ctx.name_prefix,
                    region=ctx.region,
                    pipeline_name=delivery.pipeline.name,
                    deployer=deployer,
                    topic_arn=args.topic.topic_arn,
                ),
                here,
                children_formerly_of=self,
            )
        self.pipeline = delivery.pipeline
        self.register_outputs({"pipeline_name": self.pipeline.name, "pipeline_url": self.pipeline.url})

    def _deployer(self, name: str, args: DeployStageArgs) -> Deployer:
        """The deployment engine: CodeDeploy's application and group, or the ``ecs`` engine's deploy project
        (which reads the pipeline's artifacts: granted here, where the two meet)."""
        ctx, cfg = args.context, args.config
        here = pulumi.ResourceOptions(parent=self)
        if cfg.deployment_engine == "ecs":
            ecs = EcsDeployment(
                name,
                EcsDeploymentArgs(
                    context=ctx,
                    runtime=args.runtime,
                    shift=cfg.traffic_shift,
                    bake_minutes=cfg.termination_wait_minutes,
                    environment=args.projects.environment,
                    encryption_key_arn=args.projects.artifact_key_arn,
                ),
                here,
            )
            self.artifacts.grant_read(ecs.role, purpose="deploy")
            return ecs.deployer
        codedeploy = CodeDeployBlueGreen(
            name,
            CodeDeployBlueGreenArgs(
                context=ctx,
                deployment_config_name=cfg.deployment_config,
                termination_wait_minutes=cfg.termination_wait_minutes,
                runtime=args.runtime,
                endpoints=args.endpoints,
                alarm_names=args.alarm_names,
            ),
            here,
            children_formerly_of=self,
        )
        return codedeploy.deployer
