"""ServiceAlarms on mocks, wired to a Notifications topic as the stack wires them: both target groups watched,
the 5xx-rate metric math and the unhealthy-host alarm replayed against CloudWatch's PutMetricAlarm model,
thresholds from the config, every alarm allowed to publish to the topic; nothing when alarms are off.
"""

from __future__ import annotations

import json
import re
import textwrap
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from components.service_alarms import DATAPOINTS_TO_ALARM, EVALUATION_PERIODS, PERIOD_SECONDS
from offline.engine import ProgramRun, Registration, run_program
from offline.stack_files import StackFiles

REGION = "eu-west-1"
PREFIX = "shop-dev"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LB_SUFFIX = "app/shop-dev/50dc6c495c0c9188"
SUFFIXES = {
    "blue": "targetgroup/shop-dev-blue/0123456789abcdef",
    "green": "targetgroup/shop-dev-green/fedcba9876543210",
}

PROGRAM = """
import json
import pulumi
from components.config import parse_config
from components.notifications import Notifications, NotificationsArgs
from components.service_alarms import ServiceAlarms, ServiceAlarmsArgs

config = pulumi.Config()
cfg = parse_config(
    {"gitlabToken": "glpat-offline-test-token", **json.loads(config.require("values"))},
    stack="dev", region="eu-west-1", secret_keys=frozenset({"gitlabToken"}),
)
notifications = Notifications("notifications", NotificationsArgs(name_prefix="shop-dev", region="eu-west-1"))
alarms = ServiceAlarms("alarms", ServiceAlarmsArgs(
    name_prefix="shop-dev", alarms=cfg.alarms,
    load_balancer_arn_suffix=config.require("lb"),
    blue_target_group_arn_suffix=config.require("blue"), green_target_group_arn_suffix=config.require("green"),
    topic_arn=notifications.topic_arn,
))
pulumi.export("alarmNames", alarms.alarm_names)
"""


def run_alarms(tmp_path: Path, **values: str) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {
        "aws:region": REGION,
        "gitlab-fargate:values": json.dumps({"gitlabProject": "shop/web", **values}),
        "gitlab-fargate:lb": LB_SUFFIX,
        "gitlab-fargate:blue": SUFFIXES["blue"],
        "gitlab-fargate:green": SUFFIXES["green"],
    }
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_alarms(tmp_path_factory.mktemp("alarms"), alarm5xxPercent="7", alarmUnhealthyHosts="2")


def alarm(run: ProgramRun, color: str, kind: str) -> dict[str, Any]:
    props: dict[str, Any] = run.one(ALARM, f"alarms-{color}-{kind}").props
    return props


def dimensions_of(color: str) -> dict[str, str]:
    return {"LoadBalancer": LB_SUFFIX, "TargetGroup": SUFFIXES[color]}


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


def test_both_target_groups_have_a_5xx_rate_and_an_unhealthy_hosts_alarm(run: ProgramRun) -> None:
    names = [f"{PREFIX}-{c}-{k}" for c in ("blue", "green") for k in ("5xx-rate", "unhealthy-hosts")]
    assert sorted(a.props["name"] for a in run.of_type(ALARM)) == sorted(names)
    # The output lists exactly the alarms, by the names CodeDeploy will look up.
    assert sorted(run.outputs["alarmNames"]) == sorted(names)


def test_5xx_rate_is_metric_math_over_the_target_groups_sums(run: ProgramRun) -> None:
    for color in ("blue", "green"):
        props = alarm(run, color, "5xx-rate")
        queries = {q["id"]: q for q in props["metricQueries"]}
        metrics = {q["metric"]["metricName"]: q for q in queries.values() if "metric" in q}
        assert set(metrics) == {"HTTPCode_Target_5XX_Count", "RequestCount"}
        for q in metrics.values():
            assert q["metric"]["namespace"] == "AWS/ApplicationELB"
            assert (q["metric"]["stat"], q["metric"]["period"]) == ("Sum", 60)
            assert q["metric"]["dimensions"] == dimensions_of(color)
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


def test_unhealthy_hosts_watch_each_target_group(run: ProgramRun) -> None:
    for color in ("blue", "green"):
        props = alarm(run, color, "unhealthy-hosts")
        assert (props["namespace"], props["metricName"]) == ("AWS/ApplicationELB", "UnHealthyHostCount")
        assert props["dimensions"] == dimensions_of(color)
        assert props["period"] == 60


def test_thresholds_come_from_the_config(run: ProgramRun, tmp_path: Path) -> None:
    for color in ("blue", "green"):
        assert alarm(run, color, "5xx-rate")["threshold"] == 7
        assert alarm(run, color, "unhealthy-hosts")["threshold"] == 2
    defaults = run_alarms(tmp_path)
    assert {a.props["threshold"] for a in defaults.of_type(ALARM) if a.props["name"].endswith("5xx-rate")} == {5}
    assert {a.props["threshold"] for a in defaults.of_type(ALARM) if a.props["name"].endswith("hosts")} == {1}


def test_alarms_fire_on_two_bad_minutes_of_three_and_no_traffic_is_not_a_failure(run: ProgramRun) -> None:
    for reg in run.of_type(ALARM):
        props = reg.props
        assert props["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert (props["evaluationPeriods"], props["datapointsToAlarm"]) == (EVALUATION_PERIODS, DATAPOINTS_TO_ALARM)
        assert props["treatMissingData"] == "notBreaching"
        # Fast enough for a canary: raised within the 5 minutes before ECSCanary10Percent5Minutes shifts the
        # rest of the traffic; never on a single datapoint.
        assert EVALUATION_PERIODS * PERIOD_SECONDS < 5 * 60
        assert 1 < DATAPOINTS_TO_ALARM <= EVALUATION_PERIODS


def test_alarms_validate_against_cloudwatch_put_metric_alarm(run: ProgramRun) -> None:
    model = botocore.session.get_session().get_service_model("cloudwatch")
    shape = model.operation_model("PutMetricAlarm").input_shape
    for reg in run.of_type(ALARM):
        request = put_metric_alarm_request(reg.props)
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), f"{reg.name}: {report.generate_report()}"
        # Limits the model states but the validator does not enforce.
        assert len(request["AlarmName"]) <= 255 and len(request["AlarmDescription"]) <= 1024


# --- Where they report ---------------------------------------------------------------------------------


def test_every_alarm_reports_to_the_topic_and_may_publish_there(run: ProgramRun) -> None:
    topic_arn = run.one("aws:sns/topic:Topic").state["arn"]
    policy = json.loads(run.one("aws:sns/topicPolicy:TopicPolicy").props["policy"])
    [allowed] = [
        s["Condition"]["ArnLike"]["aws:SourceArn"]
        for s in policy["Statement"]
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    for reg in run.of_type(ALARM):
        assert reg.props["alarmActions"] == [topic_arn]
        assert reg.props["okActions"] == [topic_arn]
        assert fnmatchcase(reg.state["arn"], allowed), reg.state["arn"]


def test_every_child_is_an_alarm_named_after_the_component(run: ProgramRun) -> None:
    component: Registration = run.one("gitlab-fargate:index:ServiceAlarms")
    children = run.children_of(component)
    assert {c.type for c in children} == {ALARM}
    assert all(c.name.startswith(f"{component.name}-") for c in children)


def test_nothing_is_created_when_alarms_are_off(tmp_path: Path) -> None:
    off = run_alarms(tmp_path, rollbackOnAlarm="false")
    assert off.of_type(ALARM) == []
    assert off.outputs.get("alarmNames") is None
