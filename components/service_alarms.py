"""ServiceAlarms: the CloudWatch alarms that stop a blue/green deployment and roll it back.

Two alarms per target group, on both the blue and the green one: which of the two receives the new version
alternates with every deployment (CodeDeploy swaps them), so both are always watched.

- ``<prefix>-<color>-5xx-rate``: the share of requests the targets answered with a 5xx, in percent, from the
  load balancer's per-target-group metrics;
- ``<prefix>-<color>-unhealthy-hosts``: targets failing the load balancer's health check.

The DeployStage gives ``alarm_names`` to the deployment group: while a deployment runs, an alarm in ALARM
stops it and CodeDeploy moves the traffic back to the original task set (``DEPLOYMENT_STOP_ON_ALARM``). Each
alarm also notifies the stack's topic when it fires and when it recovers, deployment or not.

With ``rollbackOnAlarm`` false the component creates nothing and ``alarm_names`` is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import pulumi
import pulumi_aws as aws
from pydantic import Field, model_validator

from components.base import Component
from components.config_types import ConfigModel, Flag, Integer, Range, problems_if
from components.load_balancer import ServiceEndpoints

NAMESPACE = "AWS/ApplicationELB"
COLORS = ("blue", "green")
# One-minute datapoints (the finest the load balancer publishes), alarm on 2 bad minutes out of the last 3:
# an alarm fires 2-3 minutes after a bad version takes traffic, inside the first step of a canary
# (ECSCanary10Percent5Minutes shifts the rest after 5 minutes) and of a linear deployment's first minutes;
# one bad minute alone (a cold start, a burst of retries) does not stop a deployment, and a short gap between
# two bad minutes does not hide them.
PERIOD_SECONDS = 60
EVALUATION_PERIODS = 3
DATAPOINTS_TO_ALARM = 2
# The load balancer publishes nothing for a minute without requests (and the idle target group has no
# targets): missing data is not a failure. "notBreaching" rather than "ignore", so an alarm that fired
# returns to OK once the traffic stops instead of staying in ALARM and stopping the next deployment.
TREAT_MISSING_DATA = "notBreaching"
# The rate in percent. RequestCount missing or 0 (no traffic) gives 0 rather than a division by zero;
# HTTPCode_Target_5XX_Count is absent in a minute without any 5xx, hence FILL(errors, 0).
RATE_EXPRESSION = "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)"


class AlarmsConfig(ConfigModel):
    """CloudWatch alarms on the target groups that stop a deployment and roll it back."""

    rollback_on_alarm: Flag = Field(
        True,
        description="CloudWatch alarms on both target groups (5xx rate, unhealthy hosts) that stop a deployment "
        "and roll it back",
    )
    alarm_5xx_percent: Annotated[Integer, Range(1, 100)] = Field(
        5,
        alias="alarm5xxPercent",
        description="target 5xx responses, in % of requests over a minute, that raise the alarm",
    )
    alarm_unhealthy_hosts: Annotated[Integer, Range(1, 100)] = Field(
        1, description="unhealthy targets in a target group that raise the alarm"
    )

    @model_validator(mode="after")
    def _only_with_alarms(self) -> AlarmsConfig:
        problems_if(
            *[
                (
                    not self.rollback_on_alarm and field in self.model_fields_set,
                    key,
                    "applies only with rollbackOnAlarm true",
                )
                for field, key in (
                    ("alarm_5xx_percent", "alarm5xxPercent"),
                    ("alarm_unhealthy_hosts", "alarmUnhealthyHosts"),
                )
            ]
        )
        return self


@dataclass(frozen=True)
class ServiceAlarmsArgs:
    name_prefix: str
    """Physical name prefix ``<appName>-<stack>``: alarms are ``<prefix>-<color>-…``, which the topic's policy
    lets publish (``alarm:<prefix>-*``)."""
    config: AlarmsConfig
    endpoints: ServiceEndpoints
    """The load balancer and both target groups (their metrics' dimensions)."""
    topic_arn: pulumi.Input[str] | None = None
    """The notification topic, told when an alarm fires and when it recovers; ``None`` (no topic): the alarms
    still roll deployments back, and show in the console."""


def _metric(
    query_id: str, metric_name: str, stat: str, dimensions: dict[str, pulumi.Input[str]]
) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=query_id,
        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace=NAMESPACE, metric_name=metric_name, period=PERIOD_SECONDS, stat=stat, dimensions=dimensions
        ),
        return_data=False,
    )


ALARM_KINDS = ("5xx-rate", "unhealthy-hosts")


def alarm_name(prefix: str, color: str, kind: str) -> str:
    """``<prefix>-<color>-<kind>``: the topic's policy admits alarms named ``<prefix>-*``."""
    return f"{prefix}-{color}-{kind}"


def alarm_names(prefix: str, config: AlarmsConfig) -> tuple[str, ...]:
    """The names of the alarms ``ServiceAlarms`` creates for ``config``, known before they exist (what an ECS
    service names in its deployment alarms)."""
    if not config.rollback_on_alarm:
        return ()
    return tuple(alarm_name(prefix, color, kind) for color in COLORS for kind in ALARM_KINDS)


class ServiceAlarms(Component):
    alarm_names: pulumi.Output[list[str]] | None
    """Names of the alarms, read from the alarm resources (so whatever uses them waits for them); ``None``
    when alarms are disabled."""

    def __init__(self, name: str, args: ServiceAlarmsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        prefix = args.name_prefix
        config = args.config
        endpoints = args.endpoints
        suffixes = {"blue": endpoints.blue.arn_suffix, "green": endpoints.green.arn_suffix}
        # Notify on both transitions: ALARM (a deployment is being rolled back, or the live version fails)
        # and OK (it recovered).
        told = [args.topic_arn] if args.topic_arn is not None else []
        actions: dict[str, Any] = {"alarm_actions": told, "ok_actions": told}
        evaluation: dict[str, Any] = {
            "evaluation_periods": EVALUATION_PERIODS,
            "datapoints_to_alarm": DATAPOINTS_TO_ALARM,
            "treat_missing_data": TREAT_MISSING_DATA,
            "comparison_operator": "GreaterThanOrEqualToThreshold",
        }

        alarms: list[aws.cloudwatch.MetricAlarm] = []
        if config.rollback_on_alarm:
            for color in COLORS:
                dimensions: dict[str, pulumi.Input[str]] = {
                    "LoadBalancer": endpoints.load_balancer_arn_suffix,
                    "TargetGroup": suffixes[color],
                }
                alarms.append(
                    aws.cloudwatch.MetricAlarm(
                        f"{name}-{color}-5xx-rate",
                        name=alarm_name(prefix, color, "5xx-rate"),
                        alarm_description=(
                            f"{config.alarm_5xx_percent}% or more of the requests to the {color} target group "
                            f"answered 5xx in {DATAPOINTS_TO_ALARM} of the last {EVALUATION_PERIODS} minutes: "
                            "a deployment in progress stops and rolls back"
                        ),
                        metric_queries=[
                            _metric("errors", "HTTPCode_Target_5XX_Count", "Sum", dimensions),
                            _metric("requests", "RequestCount", "Sum", dimensions),
                            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                                id="rate",
                                expression=RATE_EXPRESSION,
                                label="Target 5xx (% of requests)",
                                return_data=True,
                            ),
                        ],
                        threshold=config.alarm_5xx_percent,
                        **evaluation,
                        **actions,
                        opts=self.child(),
                    )
                )
                alarms.append(
                    aws.cloudwatch.MetricAlarm(
                        f"{name}-{color}-unhealthy-hosts",
                        name=alarm_name(prefix, color, "unhealthy-hosts"),
                        alarm_description=(
                            f"{config.alarm_unhealthy_hosts} or more targets of the {color} target group failed their "
                            f"health checks in {DATAPOINTS_TO_ALARM} of the last {EVALUATION_PERIODS} minutes: "
                            "a deployment in progress stops and rolls back"
                        ),
                        namespace=NAMESPACE,
                        metric_name="UnHealthyHostCount",
                        dimensions=dimensions,
                        # The worst moment of the minute: a task failing its checks shows even if it is replaced
                        # within the minute.
                        statistic="Maximum",
                        period=PERIOD_SECONDS,
                        threshold=config.alarm_unhealthy_hosts,
                        **evaluation,
                        **actions,
                        opts=self.child(),
                    )
                )

        self.alarm_names = pulumi.Output.all(*[a.name for a in alarms]) if alarms else None
        self.register_outputs({"alarm_names": self.alarm_names})
