"""FailureRules on mocks: the EventBridge rules that tell the notification topic of a failed pipeline execution
and of a failed or stopped deployment: their patterns against sample events (EventBridge's matching, as moto
implements it), their messages through the input transformer, and their requests against the EventBridge API
model.

The pipeline name, the deployment group and the topic are stand-ins; the application and the group have
different names, so a pattern that swapped them would show.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pytest

from components.codedeploy_blue_green import (
    BlueGreenDeployment,
    codedeploy_to_ecs,
    deployment_failed_message,
    deployment_failed_pattern,
)
from components.failure_rules import FailureRules, FailureRulesArgs
from components.pipeline_actions import Deployer
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.aws import assert_valid_rule_and_target, delivered_message, event_matches
from support.stacks import REGION, run

PREFIX = bundles.PREFIX
PIPELINE = PREFIX
APPLICATION = f"{PREFIX}-app"
GROUP = f"{PREFIX}-group"
CONSOLE = f"https://{REGION}.console.aws.amazon.com/codesuite"
RULES = ("deploy-pipeline-failed", "deploy-deployment-failed")


def codedeploy_deployer() -> Deployer:
    """What CodeDeployBlueGreen hands the failure rules, for a stand-in group (its failure pattern and message)."""
    deployment = BlueGreenDeployment(
        application_name=bundles.out(APPLICATION),
        application_arn=bundles.out(bundles.arn("codedeploy", f"application:{APPLICATION}")),
        deployment_group_name=bundles.out(GROUP),
        deployment_config_name="CodeDeployDefault.ECSAllAtOnce",
    )
    return Deployer(
        engine="codedeploy",
        description="blue/green, CodeDeployDefault.ECSAllAtOnce",
        action=codedeploy_to_ecs(deployment, 2),
        pipeline_statements=[],
        failed_pattern=deployment_failed_pattern(deployment.application_name, deployment.deployment_group_name),
        failed_message=deployment_failed_message(REGION),
    )


@pytest.fixture(scope="module")
def rules() -> ProgramRun:
    def build() -> None:
        topic = bundles.topic()
        failures = FailureRules(
            "deploy",
            FailureRulesArgs(
                name_prefix=PREFIX,
                region=REGION,
                pipeline_name=bundles.out(PIPELINE),
                deployer=codedeploy_deployer(),
                topic_arn=topic.topic_arn,
            ),
        )
        pulumi.export("topicArn", topic.topic_arn)
        pulumi.export("ruleNames", failures.rule_names)

    return run(build)


def rule_of(found: ProgramRun, name: str) -> Registration:
    return found.one(rt.EVENTS_RULE, name)


def target_of(found: ProgramRun, name: str) -> dict[str, Any]:
    props: dict[str, Any] = found.one(rt.EVENTS_TARGET, f"{name}-target").props
    return props


def pipeline_event(
    pipeline: str, state: str, detail_type: str = "CodePipeline Pipeline Execution State Change"
) -> dict[str, Any]:
    """A pipeline execution event as CodePipeline sends it to EventBridge.
    https://docs.aws.amazon.com/codepipeline/latest/userguide/detect-state-changes-cloudwatch-events.html"""
    return {
        "version": "0",
        "id": "01234567-0123-0123-0123-012345678901",
        "detail-type": detail_type,
        "source": "aws.codepipeline",
        "account": ACCOUNT_ID,
        "time": "2025-01-24T22:03:07Z",
        "region": REGION,
        "resources": [f"arn:aws:codepipeline:{REGION}:{ACCOUNT_ID}:{pipeline}"],
        "detail": {
            "pipeline": pipeline,
            "execution-id": "12345678-1234-5678-abcd-12345678abcd",
            "execution-trigger": {"trigger-type": "CloudWatchEvent", "trigger-detail": f"{PREFIX}-source-upload"},
            "state": state,
            "version": 3.0,
            "pipeline-execution-attempt": 1.0,
        },
    }


def deployment_event(
    application: str, group: str, state: str, detail_type: str = "CodeDeploy Deployment State-change Notification"
) -> dict[str, Any]:
    """A deployment event as CodeDeploy sends it to EventBridge.
    https://docs.aws.amazon.com/codedeploy/latest/userguide/monitoring-cloudwatch-events.html"""
    return {
        "version": "0",
        "id": "c071bfbf-83c4-49ca-a6ff-3df053957145",
        "detail-type": detail_type,
        "source": "aws.codedeploy",
        "account": ACCOUNT_ID,
        "time": "2025-01-24T22:10:31Z",
        "region": REGION,
        "resources": [
            f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:application:{application}",
            f"arn:aws:codedeploy:{REGION}:{ACCOUNT_ID}:deploymentgroup:{application}/{group}",
        ],
        "detail": {
            "instanceGroupId": "9fd2fbef-2157-40d8-91e7-6845af69e2d2",
            "region": REGION,
            "application": application,
            "deploymentId": "d-7UEXAMPLE",
            "state": state,
            "deploymentGroup": group,
        },
    }


def test_failure_rules_notify_the_topic_directly(rules: ProgramRun) -> None:
    assert [r.name for r in rules.of_type(rt.EVENTS_RULE)] == sorted(RULES)
    assert {rule_of(rules, n).props["name"] for n in RULES} == {
        f"{PREFIX}-pipeline-failed",
        f"{PREFIX}-deployment-failed",
    }
    assert rules.outputs["ruleNames"] == [rule_of(rules, n).props["name"] for n in RULES]
    for name in RULES:
        rule = rule_of(rules, name)
        target = target_of(rules, name)
        assert (target["rule"], target["arn"]) == (rule.props["name"], rules.outputs["topicArn"])
        # The topic's policy admits the stack's rules by ARN (rule/<prefix>-*); no role is involved.
        # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions
        assert "roleArn" not in target
        assert fnmatchcase(rule.state["arn"], f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{PREFIX}-*")


def test_pipeline_failed_rule_matches_only_a_failed_execution_of_this_pipeline(rules: ProgramRun) -> None:
    pattern = rule_of(rules, "deploy-pipeline-failed").props["eventPattern"]
    assert event_matches(pattern, pipeline_event(PIPELINE, "FAILED"))
    for state in ("STARTED", "SUCCEEDED", "SUPERSEDED", "CANCELED", "RESUMED", "STOPPED", "STOPPING"):
        assert not event_matches(pattern, pipeline_event(PIPELINE, state)), state
    assert not event_matches(pattern, pipeline_event("other-dev", "FAILED"))
    assert not event_matches(pattern, pipeline_event(f"{PIPELINE}-2", "FAILED"))
    # A failed stage or action also fails the execution: one message, not three.
    assert not event_matches(pattern, pipeline_event(PIPELINE, "FAILED", "CodePipeline Stage Execution State Change"))
    assert not event_matches(pattern, pipeline_event(PIPELINE, "FAILED", "CodePipeline Action Execution State Change"))


def test_deployment_failed_rule_matches_only_a_failed_or_stopped_deployment_of_this_group(rules: ProgramRun) -> None:
    pattern = rule_of(rules, "deploy-deployment-failed").props["eventPattern"]
    assert event_matches(pattern, deployment_event(APPLICATION, GROUP, "FAILURE"))
    assert event_matches(pattern, deployment_event(APPLICATION, GROUP, "STOP"))
    for state in ("START", "READY", "SUCCESS"):
        assert not event_matches(pattern, deployment_event(APPLICATION, GROUP, state)), state
    assert not event_matches(pattern, deployment_event(APPLICATION, "other-group", "FAILURE"))
    assert not event_matches(pattern, deployment_event("other-app", GROUP, "FAILURE"))
    assert not event_matches(pattern, deployment_event(GROUP, APPLICATION, "FAILURE")), "application and group swapped"
    assert not event_matches(
        pattern, deployment_event(APPLICATION, GROUP, "FAILURE", "CodeDeploy Instance State-change Notification")
    )


def test_failure_messages_are_one_readable_line_with_a_console_link(rules: ProgramRun) -> None:
    # Input transformers: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
    # (a quoted template delivers a plain string, which SNS sends as the message).
    execution = pipeline_event(PIPELINE, "FAILED")
    text = delivered_message(target_of(rules, "deploy-pipeline-failed"), execution)
    assert isinstance(text, str) and "\n" not in text and "<" not in text
    assert PIPELINE in text and execution["detail"]["execution-id"] in text
    assert (
        f"{CONSOLE}/codepipeline/pipelines/{PIPELINE}/executions/{execution['detail']['execution-id']}/timeline"
        f"?region={REGION}"
    ) in text

    deployment = deployment_event(APPLICATION, GROUP, "STOP")
    text = delivered_message(target_of(rules, "deploy-deployment-failed"), deployment)
    assert isinstance(text, str) and "\n" not in text and "<" not in text
    assert "STOP" in text and "rolled back" in text
    assert f"{APPLICATION}/{GROUP}" in text
    assert f"{CONSOLE}/codedeploy/deployments/d-7UEXAMPLE?region={REGION}" in text


@pytest.mark.parametrize("name", RULES)
def test_failure_rules_and_targets_validate_against_the_eventbridge_api(rules: ProgramRun, name: str) -> None:
    target = target_of(rules, name)
    assert_valid_rule_and_target(rule_of(rules, name).props, target)
    transformer = target["inputTransformer"]
    # Documented limits the model does not check: 100 input paths, an 8192-character template.
    # https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_InputTransformer.html
    assert len(transformer["inputPaths"]) <= 100
    assert len(transformer["inputTemplate"]) <= 8192
