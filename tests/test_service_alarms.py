"""ServiceAlarms on mocks, on a stand-in load balancer and wired to a Notifications topic as the stack wires them:
both target groups watched, the 5xx-rate metric math and the unhealthy-host alarm replayed against CloudWatch's
PutMetricAlarm model, thresholds from the config, every alarm allowed to publish to the topic; nothing when
alarms are off; AlarmsConfig's rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pytest

from components.base import PROJECT, component_type
from components.config_types import ConfigError
from components.notifications import Notifications, NotificationsArgs
from components.service_alarms import (
    DATAPOINTS_TO_ALARM,
    EVALUATION_PERIODS,
    PERIOD_SECONDS,
    ServiceAlarms,
    ServiceAlarmsArgs,
    alarm_names,
)
from offline.engine import ProgramRun
from policy import resource_types as rt
from support import bundles
from support.aws import assert_valid_request, policy_of
from support.stacks import REGION, STACKS, component, descendants, run, stack_config, stack_run

PREFIX = bundles.PREFIX
COLORS = ("blue", "green")


def run_alarms(values: Mapping[str, str] | None = None) -> ProgramRun:
    """The component from stack-file values, on the stand-in load balancer, reporting to a real topic; exports the
    alarm names and the stand-in's metric dimensions."""
    config = stack_config(values).alarms

    def build() -> None:
        endpoints = bundles.endpoints(PREFIX)
        topic = Notifications("notifications", NotificationsArgs(PREFIX, REGION)).topic
        alarms = ServiceAlarms("alarms", ServiceAlarmsArgs(PREFIX, config, endpoints, topic.topic_arn))
        pulumi.export("alarmNames", alarms.alarm_names)
        pulumi.export("loadBalancer", endpoints.load_balancer_arn_suffix)
        pulumi.export("blue", endpoints.blue.arn_suffix)
        pulumi.export("green", endpoints.green.arn_suffix)

    return run(build)


@pytest.fixture(scope="module")
def found() -> ProgramRun:
    return run_alarms({"alarm5xxPercent": "7", "alarmUnhealthyHosts": "2"})


def alarm(found: ProgramRun, color: str, kind: str) -> dict[str, Any]:
    props: dict[str, Any] = found.one(rt.METRIC_ALARM, f"alarms-{color}-{kind}").props
    return props


def dimensions_of(found: ProgramRun, color: str) -> dict[str, str]:
    """The dimensions of a target group's metrics, from the stand-in load balancer.
    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html#load-balancer-metric-dimensions-alb"""
    return {"LoadBalancer": found.outputs["loadBalancer"], "TargetGroup": found.outputs[color]}


def put_metric_alarm_request(props: dict[str, Any]) -> dict[str, Any]:
    """The PutMetricAlarm request the provider makes from the registered inputs.

    Pulumi carries every number as a float; the provider's schema types these as integers, and converts.
    """

    def integer(value: float) -> int:
        assert value == int(value), value
        return int(value)

    def dims(d: dict[str, str]) -> list[dict[str, str]]:
        return [{"Name": k, "Value": v} for k, v in d.items()]

    request: dict[str, Any] = {
        "AlarmName": props["name"],
        "AlarmDescription": props["alarmDescription"],
        "AlarmActions": props["alarmActions"],
        "OKActions": props["okActions"],
        "EvaluationPeriods": integer(props["evaluationPeriods"]),
        "DatapointsToAlarm": integer(props["datapointsToAlarm"]),
        "Threshold": float(props["threshold"]),
        "ComparisonOperator": props["comparisonOperator"],
        "TreatMissingData": props["treatMissingData"],
    }
    if "metricQueries" in props:
        request["Metrics"] = [
            {
                "Id": q["id"],
                "ReturnData": q["returnData"],
                **({"Expression": q["expression"], "Label": q["label"]} if "expression" in q else {}),
                **(
                    {
                        "MetricStat": {
                            "Metric": {
                                "Namespace": q["metric"]["namespace"],
                                "MetricName": q["metric"]["metricName"],
                                "Dimensions": dims(q["metric"]["dimensions"]),
                            },
                            "Period": integer(q["metric"]["period"]),
                            "Stat": q["metric"]["stat"],
                        }
                    }
                    if "metric" in q
                    else {}
                ),
            }
            for q in props["metricQueries"]
        ]
    else:
        request.update(
            Namespace=props["namespace"],
            MetricName=props["metricName"],
            Dimensions=dims(props["dimensions"]),
            Statistic=props["statistic"],
            Period=integer(props["period"]),
        )
    return request


# --- What is watched -----------------------------------------------------------------------------------


def test_both_target_groups_have_a_5xx_rate_and_an_unhealthy_hosts_alarm(found: ProgramRun) -> None:
    # CodeDeploy swaps blue and green with every deployment: either may receive the new version.
    # https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-steps-ecs.html
    names = [f"{PREFIX}-{c}-{k}" for c in COLORS for k in ("5xx-rate", "unhealthy-hosts")]
    assert sorted(a.props["name"] for a in found.of_type(rt.METRIC_ALARM)) == sorted(names)
    # The output lists exactly the alarms, by the names CodeDeploy will look up.
    assert sorted(found.outputs["alarmNames"]) == sorted(names)


def test_5xx_rate_is_metric_math_over_the_target_groups_sums(found: ProgramRun) -> None:
    # Metric math in an alarm: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Create-alarm-on-metric-math-expression.html
    for color in COLORS:
        props = alarm(found, color, "5xx-rate")
        queries = {q["id"]: q for q in props["metricQueries"]}
        metrics = {q["metric"]["metricName"]: q for q in queries.values() if "metric" in q}
        assert set(metrics) == {"HTTPCode_Target_5XX_Count", "RequestCount"}
        for q in metrics.values():
            assert q["metric"]["namespace"] == "AWS/ApplicationELB"
            assert (q["metric"]["stat"], q["metric"]["period"]) == ("Sum", 60)
            assert q["metric"]["dimensions"] == dimensions_of(found, color)
            assert q["returnData"] is False
        # Exactly one query is the alarm's value: the expression.
        (result,) = [q for q in queries.values() if q["returnData"]]
        expression = result["expression"]
        errors, requests = metrics["HTTPCode_Target_5XX_Count"]["id"], metrics["RequestCount"]["id"]
        # A rate in percent of the requests, guarded against a minute without requests.
        assert re.search(rf"100\s*\*.*{errors}.*/\s*{requests}", expression), expression
        assert re.search(rf"IF\(\s*{requests}\s*>\s*0", expression), expression
        # The expression only names queries of this alarm (functions aside).
        identifiers = set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", expression))
        assert identifiers <= set(queries) - {result["id"]}, identifiers


def test_unhealthy_hosts_watch_each_target_group(found: ProgramRun) -> None:
    for color in COLORS:
        props = alarm(found, color, "unhealthy-hosts")
        assert (props["namespace"], props["metricName"]) == ("AWS/ApplicationELB", "UnHealthyHostCount")
        assert props["dimensions"] == dimensions_of(found, color)
        assert props["period"] == 60


def test_blue_and_green_alarms_watch_different_target_groups(found: ProgramRun) -> None:
    """The checks above compare with each color's own target group: the stand-in's two must differ."""
    assert found.outputs["blue"] != found.outputs["green"]

    def watched(color: str) -> set[str]:
        queries = alarm(found, color, "5xx-rate")["metricQueries"]
        return {q["metric"]["dimensions"]["TargetGroup"] for q in queries if "metric" in q} | {
            alarm(found, color, "unhealthy-hosts")["dimensions"]["TargetGroup"]
        }

    assert watched("blue") == {found.outputs["blue"]} and watched("green") == {found.outputs["green"]}


def test_thresholds_come_from_the_config(found: ProgramRun) -> None:
    for color in COLORS:
        assert alarm(found, color, "5xx-rate")["threshold"] == 7
        assert alarm(found, color, "unhealthy-hosts")["threshold"] == 2
    defaults = run_alarms()
    five = {a.props["threshold"] for a in defaults.of_type(rt.METRIC_ALARM) if a.props["name"].endswith("5xx-rate")}
    hosts = {a.props["threshold"] for a in defaults.of_type(rt.METRIC_ALARM) if a.props["name"].endswith("hosts")}
    assert (five, hosts) == ({5}, {1})


def test_alarms_fire_on_two_bad_minutes_of_three_and_no_traffic_is_not_a_failure(found: ProgramRun) -> None:
    # M out of N datapoints, and missing data: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data
    for reg in found.of_type(rt.METRIC_ALARM):
        props = reg.props
        assert props["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert (props["evaluationPeriods"], props["datapointsToAlarm"]) == (EVALUATION_PERIODS, DATAPOINTS_TO_ALARM)
        assert props["treatMissingData"] == "notBreaching"
    # Fast enough for a canary: raised within the 5 minutes before ECSCanary10Percent5Minutes shifts the rest of
    # the traffic; never on a single datapoint.
    # https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html#deployment-configurations-predefined-ecs
    assert EVALUATION_PERIODS * PERIOD_SECONDS < 5 * 60
    assert 1 < DATAPOINTS_TO_ALARM <= EVALUATION_PERIODS


def test_alarms_validate_against_cloudwatch_put_metric_alarm(found: ProgramRun) -> None:
    for reg in found.of_type(rt.METRIC_ALARM):
        request = put_metric_alarm_request(reg.props)
        assert_valid_request("cloudwatch", "PutMetricAlarm", request)
        # Limits the model states but the validator does not enforce.
        assert len(request["AlarmName"]) <= 255 and len(request["AlarmDescription"]) <= 1024


# --- Where they report ---------------------------------------------------------------------------------


def test_every_alarm_reports_to_the_topic_and_may_publish_there(found: ProgramRun) -> None:
    topic_arn = found.one(rt.SNS_TOPIC).state["arn"]
    policy = policy_of(found.one(rt.SNS_TOPIC_POLICY))
    [allowed] = [
        s["Condition"]["ArnLike"]["aws:SourceArn"]
        for s in policy["Statement"]
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    for reg in found.of_type(rt.METRIC_ALARM):
        assert reg.props["alarmActions"] == [topic_arn]
        assert reg.props["okActions"] == [topic_arn]
        assert fnmatchcase(reg.state["arn"], allowed), reg.state["arn"]


def test_every_child_is_an_alarm_named_after_the_component(found: ProgramRun) -> None:
    component = found.one(component_type(ServiceAlarms))
    children = found.children_of(component)
    assert {c.type for c in children} == {rt.METRIC_ALARM}
    assert all(c.name.startswith(f"{component.name}-") for c in children)


def test_nothing_is_created_when_alarms_are_off() -> None:
    off = run_alarms({"rollbackOnAlarm": "false"})
    assert off.of_type(rt.METRIC_ALARM) == []
    assert off.outputs.get("alarmNames") is None


# --- AlarmsConfig --------------------------------------------------------------------------------------


def problems(values: Mapping[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        stack_config(values)
    return raised.value.problems


@pytest.mark.parametrize("key", ["alarm5xxPercent", "alarmUnhealthyHosts"])
def test_thresholds_without_alarms_are_refused(key: str) -> None:
    [problem] = problems({"rollbackOnAlarm": "false", key: "3"})
    assert problem == f"{PROJECT}:{key}: applies only with rollbackOnAlarm true"


@pytest.mark.parametrize(
    ("key", "value"), [("alarm5xxPercent", "0"), ("alarm5xxPercent", "101"), ("alarmUnhealthyHosts", "0")]
)
def test_thresholds_out_of_range_are_refused(key: str, value: str) -> None:
    [problem] = problems({key: value})
    assert problem.startswith(f"{PROJECT}:{key}: ") and "allowed: 1 to 100" in problem, problem


def test_the_config_key_of_the_5xx_threshold_is_spelt_as_documented() -> None:
    # "alarm5xxPercent", not the generated "alarm5XxPercent".
    assert stack_config({"alarm5xxPercent": "9"}).alarms.alarm_5xx_percent == 9
    assert json.dumps(problems({"alarm5XxPercent": "9"})).count("unknown key") == 1


# --- The names, known before the alarms exist (the ecs engine's deployment alarms) -------------------------
#
# An ECS service names the alarms that stop its deployments (deploymentConfiguration.alarms.alarmNames); they
# are created after it, so it takes the names ``alarm_names`` predicts. A name that matches no alarm would never
# fire: the prediction must be exactly what ServiceAlarms registers.
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentAlarms.html


@pytest.mark.parametrize("rollback", ["true", "false"])
def test_alarm_names_are_the_names_service_alarms_registers(rollback: str) -> None:
    values = {"rollbackOnAlarm": rollback}
    found = run_alarms(values)
    registered = sorted(a.props["name"] for a in found.of_type(rt.METRIC_ALARM))
    predicted = alarm_names(PREFIX, stack_config(values).alarms)
    assert sorted(predicted) == registered
    assert len(set(predicted)) == len(predicted), "no name twice"
    assert len(registered) == (4 if rollback == "true" else 0)
    assert sorted(found.outputs.get("alarmNames") or []) == registered


@pytest.mark.parametrize("rollback", ["true", "false"])
@pytest.mark.parametrize("stack", STACKS)
def test_the_ecs_services_deployment_alarms_are_the_stacks_alarms(stack: str, rollback: str) -> None:
    found = stack_run(stack, overrides={"deploymentEngine": "ecs", "rollbackOnAlarm": rollback})
    service = found.one(rt.ECS_SERVICE).props
    # The stack's ServiceAlarms: the commit-status alarms (the feedback to GitLab) stop no deployment.
    owner = component(found, "ServiceAlarms")
    alarms = sorted(a.props["name"] for a in descendants(found, owner) if a.type == rt.METRIC_ALARM)
    if rollback == "false":
        assert alarms == [] and "alarms" not in service, "nothing to name"
        return
    assert len(alarms) == 4
    assert sorted(service["alarms"]["alarmNames"]) == alarms
    assert (service["alarms"]["enable"], service["alarms"]["rollback"]) == (True, True)
