"""What one ``deploymentConfig`` means to the ``ecs`` engine, and how long its deploy step may take.

- ``TRAFFIC_SHIFTS``: every predefined CodeDeploy ECS configuration, as the ECS strategy, percent and interval
  CodeDeploy's documentation describes;
- ``shifting_minutes``: how long the shift itself takes (no wait after the last linear step);
- the values are ones ECS accepts (botocore's ECS model: its enumerations and its documented ranges);
- ``max_bake_minutes`` / ``deploy_step_minutes``: the longest bake time keeps the deploy step within what
  CodePipeline gives a CodeBuild action (8 hours) and within CodeBuild's own timeout range.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, get_args

import botocore.session
import pytest

from components.deployment_engine import (
    TRAFFIC_SHIFTS,
    DeploymentConfigName,
    TrafficShift,
    deploy_step_minutes,
    max_bake_minutes,
)
from support.aws import assert_valid_request

# CodeDeploy's predefined configurations for ECS, as its documentation describes each one:
# https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html#deployment-configurations-predefined-ecs
# name -> (ECS strategy, percent shifted first or per step, minutes between shifts, minutes the whole shift takes)
DOCUMENTED: dict[DeploymentConfigName, tuple[str, float | None, int, int]] = {
    # "Shifts all traffic to the updated Amazon ECS container at once."
    "CodeDeployDefault.ECSAllAtOnce": ("BLUE_GREEN", None, 0, 0),
    # "Shifts 10 percent of traffic in the first increment. The remaining 90 percent is deployed five minutes later."
    "CodeDeployDefault.ECSCanary10Percent5Minutes": ("CANARY", 10.0, 5, 5),
    # "... The remaining 90 percent is deployed 15 minutes later."
    "CodeDeployDefault.ECSCanary10Percent15Minutes": ("CANARY", 10.0, 15, 15),
    # "Shifts 10 percent of traffic every minute until all traffic is shifted": ten steps, nine waits.
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes": ("LINEAR", 10.0, 1, 9),
    # "Shifts 10 percent of traffic every three minutes until all traffic is shifted": nine waits of three minutes.
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes": ("LINEAR", 10.0, 3, 27),
}
# CodePipeline: "CodeBuild build action and test action: 8 hours".
# https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html
CODEBUILD_ACTION_LIMIT_MINUTES = 8 * 60


def ecs_model() -> Any:
    return botocore.session.get_session().get_service_model("ecs")


def documented_range(shape: str, member: str) -> tuple[float, float]:
    """The valid range botocore's ECS model documents for a member ("Valid values are ... 0.1 to 100.0")."""
    text = ecs_model().shape_for(shape).members[member].documentation
    match = re.search(r"Valid values are (?:multiples of 0\.1 from )?(\d+(?:\.\d+)?) to (\d+(?:\.\d+)?)", text)
    assert match, f"{shape}.{member}: no documented range in {text!r}"
    return float(match.group(1)), float(match.group(2))


def provider_bake_range() -> tuple[int, int]:
    """The service-level bake time's range, as the installed provider documents
    ``deploymentConfiguration.bakeTimeInMinutes`` (botocore's model documents none; the provider's "Valid range:
    0-1440 minutes", https://www.pulumi.com/registry/packages/aws/api-docs/ecs/service/)."""
    source = (Path(importlib.import_module("pulumi_aws.ecs").__file__ or "").parent / "_inputs.py").read_text()
    section = source[source.index("class ServiceDeploymentConfigurationArgs") :]
    match = re.search(r"bake_time_in_minutes: .*?Valid range: (\d+)-(\d+) minutes", section)
    assert match, "the provider documents no range for bake_time_in_minutes"
    return int(match.group(1)), int(match.group(2))


def is_multiple_of_a_tenth(value: float) -> bool:
    return abs(value * 10 - round(value * 10)) < 1e-9


# --- The mapping ---------------------------------------------------------------------------------------------


def test_every_predefined_ecs_configuration_has_a_shift_and_there_is_no_other() -> None:
    assert set(TRAFFIC_SHIFTS) == set(DOCUMENTED)
    # The config's type names the same set: what config validation accepts is what the mapping knows.
    assert set(get_args(DeploymentConfigName)) == set(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_configuration_is_the_ecs_strategy_percent_and_interval_it_describes(name: DeploymentConfigName) -> None:
    strategy, percent, interval, _ = DOCUMENTED[name]
    shift = TRAFFIC_SHIFTS[name]
    assert shift.strategy == strategy
    assert shift.percent == percent
    assert shift.interval_minutes == interval


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_the_shift_takes_the_documented_time(name: DeploymentConfigName) -> None:
    assert TRAFFIC_SHIFTS[name].shifting_minutes == DOCUMENTED[name][3]


@pytest.mark.parametrize(
    ("shift", "minutes"),
    [
        # A canary waits once, between the canary and the rest.
        (TrafficShift("CANARY", 5.0, 10), 10),
        # Linear: no wait after the last step ("This bake time is not applied after reaching 100 percent traffic",
        # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LinearConfiguration.html). 30 % steps reach
        # 100 % in four (30, 60, 90, 100): three waits. 25 % steps in four (25, 50, 75, 100): three waits.
        (TrafficShift("LINEAR", 30.0, 2), 6),
        (TrafficShift("LINEAR", 25.0, 4), 12),
        # One step of 100 %: nothing to wait for.
        (TrafficShift("LINEAR", 100.0, 7), 0),
        (TrafficShift("BLUE_GREEN"), 0),
    ],
)
def test_shifting_minutes_counts_the_waits_between_steps_only(shift: TrafficShift, minutes: int) -> None:
    assert shift.shifting_minutes == minutes


# --- What ECS accepts ----------------------------------------------------------------------------------------


def ecs_deployment_configuration(shift: TrafficShift, bake: int) -> dict[str, Any]:
    """The service's ``deploymentConfiguration`` for ``shift``, as the API reference describes the strategies:
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html"""
    configuration: dict[str, Any] = {"strategy": shift.strategy, "bakeTimeInMinutes": bake}
    if shift.strategy == "CANARY":
        configuration["canaryConfiguration"] = {
            "canaryPercent": shift.percent,
            "canaryBakeTimeInMinutes": shift.interval_minutes,
        }
    if shift.strategy == "LINEAR":
        configuration["linearConfiguration"] = {
            "stepPercent": shift.percent,
            "stepBakeTimeInMinutes": shift.interval_minutes,
        }
    return configuration


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_the_ecs_values_are_within_what_the_ecs_api_documents(name: DeploymentConfigName) -> None:
    shift = TRAFFIC_SHIFTS[name]
    assert shift.strategy in ecs_model().shape_for("DeploymentStrategy").enum
    if shift.strategy == "CANARY":
        low, high = documented_range("CanaryConfiguration", "canaryPercent")
        assert shift.percent is not None and low <= shift.percent <= high and is_multiple_of_a_tenth(shift.percent)
        low, high = documented_range("CanaryConfiguration", "canaryBakeTimeInMinutes")
        assert low <= shift.interval_minutes <= high
    elif shift.strategy == "LINEAR":
        low, high = documented_range("LinearConfiguration", "stepPercent")
        assert shift.percent is not None and low <= shift.percent <= high and is_multiple_of_a_tenth(shift.percent)
        low, high = documented_range("LinearConfiguration", "stepBakeTimeInMinutes")
        assert low <= shift.interval_minutes <= high
    else:
        assert shift.percent is None and shift.interval_minutes == 0
    # With the longest bake time the config allows, an UpdateService request ECS's model accepts.
    bake_low, bake_high = provider_bake_range()
    bake = max_bake_minutes(shift)
    assert bake_low <= bake <= bake_high
    assert_valid_request(
        "ecs",
        "UpdateService",
        {
            "cluster": "shop-dev",
            "service": "shop-dev",
            "deploymentConfiguration": ecs_deployment_configuration(shift, bake),
        },
    )


def test_the_range_reader_reads_the_documented_ranges() -> None:
    # What the checks above compare with, as the ECS API reference states it.
    assert documented_range("CanaryConfiguration", "canaryPercent") == (0.1, 100.0)
    assert documented_range("LinearConfiguration", "stepPercent") == (3.0, 100.0)
    assert documented_range("LinearConfiguration", "stepBakeTimeInMinutes") == (0, 1440)
    assert provider_bake_range() == (0, 1440)
    assert not is_multiple_of_a_tenth(10.05) and is_multiple_of_a_tenth(0.3)


# --- How long the deploy step may take -------------------------------------------------------------------------


def codebuild_timeout_range() -> tuple[int, int]:
    """CreateProject's timeoutInMinutes range in botocore's CodeBuild model."""
    model = botocore.session.get_session().get_service_model("codebuild")
    shape = model.operation_model("CreateProject").input_shape.members["timeoutInMinutes"]
    return int(shape.metadata["min"]), int(shape.metadata["max"])


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_the_longest_bake_keeps_the_deploy_step_within_the_codebuild_action_limit(name: DeploymentConfigName) -> None:
    shift = TRAFFIC_SHIFTS[name]
    longest = max_bake_minutes(shift)
    assert longest >= 0
    assert deploy_step_minutes(shift, longest) <= CODEBUILD_ACTION_LIMIT_MINUTES
    # The limit is the tightest one: a minute more would not fit (or is more than ECS bakes).
    assert (
        deploy_step_minutes(shift, longest + 1) > CODEBUILD_ACTION_LIMIT_MINUTES or longest == provider_bake_range()[1]
    )
    # The step waits at least for the shift and the bake.
    for bake in (0, 5, longest):
        assert deploy_step_minutes(shift, bake) >= shift.shifting_minutes + bake


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_deploy_step_timeout_is_one_codebuild_accepts(name: DeploymentConfigName) -> None:
    # timeoutInMinutes: https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html
    low, high = codebuild_timeout_range()
    assert (low, high) == (5, 2160)
    shift = TRAFFIC_SHIFTS[name]
    for bake in (0, max_bake_minutes(shift)):
        assert low <= deploy_step_minutes(shift, bake) <= high


def test_a_long_shift_leaves_less_bake_time() -> None:
    # Not a predefined configuration: the limit follows the shift's own length.
    slow = TrafficShift("CANARY", 10.0, 300)
    assert max_bake_minutes(slow) < max_bake_minutes(TRAFFIC_SHIFTS["CodeDeployDefault.ECSCanary10Percent5Minutes"])
    assert deploy_step_minutes(slow, max_bake_minutes(slow)) <= CODEBUILD_ACTION_LIMIT_MINUTES
