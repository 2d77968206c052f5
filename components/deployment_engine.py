"""The two deployment engines, and what one ``deploymentConfig`` means to each.

- ``codedeploy`` (the default): CodeDeploy shifts traffic between the two target groups by rewriting the
  listeners' default actions, with a predefined deployment configuration.
- ``ecs``: ECS-native blue/green (the ECS deployment controller, AWS's recommendation for new services since
  July 2025) shifts the weights of one listener *rule* per listener, with a strategy (``BLUE_GREEN``, ``CANARY``,
  ``LINEAR``) and a bake time.
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html

A stack switches engines with one key: the same ``deploymentConfig`` names work with both (``TRAFFIC_SHIFTS``),
and ``terminationWaitMinutes`` (how long the old tasks stay after the shift, for a fast rollback) is ECS's bake
time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

DeploymentEngine = Literal["codedeploy", "ecs"]
DeploymentConfigName = Literal[
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
]
Strategy = Literal["BLUE_GREEN", "CANARY", "LINEAR"]


@dataclass(frozen=True)
class TrafficShift:
    """How production traffic moves to the new version: all at once, a canary then the rest, or equal steps."""

    strategy: Strategy
    percent: float | None = None
    """The canary's share, or each linear step's share (percent of production traffic)."""
    interval_minutes: int = 0
    """Minutes between the canary and the rest, or between two linear steps."""

    @property
    def shifting_minutes(self) -> int:
        """How long the shift itself takes: no wait after the last step (ECS: "not applied after reaching
        100%")."""
        if self.strategy == "CANARY":
            return self.interval_minutes
        if self.strategy == "LINEAR" and self.percent:
            return (math.ceil(100 / self.percent) - 1) * self.interval_minutes
        return 0


# CodeDeploy's predefined ECS configurations, and the same shift as an ECS strategy.
# https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html#deployment-configurations-predefined-ecs
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html
TRAFFIC_SHIFTS: dict[DeploymentConfigName, TrafficShift] = {
    "CodeDeployDefault.ECSAllAtOnce": TrafficShift("BLUE_GREEN"),
    "CodeDeployDefault.ECSCanary10Percent5Minutes": TrafficShift("CANARY", 10.0, 5),
    "CodeDeployDefault.ECSCanary10Percent15Minutes": TrafficShift("CANARY", 10.0, 15),
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes": TrafficShift("LINEAR", 10.0, 1),
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes": TrafficShift("LINEAR", 10.0, 3),
}

# ECS bakes 0 to 1440 minutes (DeploymentConfiguration.bakeTimeInMinutes; the SDK's documented range).
ECS_MAX_BAKE_MINUTES = 1440
# The ecs engine's Deploy step is a CodeBuild action that waits for the service deployment to end; CodePipeline
# stops a CodeBuild action after 8 hours ("CodeBuild build action and test action: 8 hours").
# https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
CODEBUILD_ACTION_MAX_MINUTES = 480
# What the deploy step needs besides the shift and the bake: register, start and health-check the new tasks,
# drain the old ones, and some room.
DEPLOY_STEP_OVERHEAD_MINUTES = 30


def deploy_step_minutes(shift: TrafficShift, bake_minutes: int) -> int:
    """The time the ecs engine's deploy step allows for one deployment (its CodeBuild timeout)."""
    return DEPLOY_STEP_OVERHEAD_MINUTES + shift.shifting_minutes + bake_minutes


def max_bake_minutes(shift: TrafficShift) -> int:
    """The longest ECS bake time a deployment with ``shift`` can have and still end within the deploy step."""
    room = CODEBUILD_ACTION_MAX_MINUTES - DEPLOY_STEP_OVERHEAD_MINUTES - shift.shifting_minutes
    return min(ECS_MAX_BAKE_MINUTES, room)


@dataclass(frozen=True)
class NativeBlueGreen:
    """What the ECS service needs to deploy itself (the ``ecs`` engine)."""

    shift: TrafficShift
    bake_minutes: int
    alarm_names: tuple[str, ...] = ()
    """CloudWatch alarms that stop and roll back a deployment (none: only a failed deployment rolls back)."""
    send_load_balancers: bool = False
    """Send the service's load-balancer settings although ECS owns them (``engineMigration``, one run)."""
