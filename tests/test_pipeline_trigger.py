"""PipelineTrigger on mocks: the EventBridge rule that starts the pipeline when the source object is uploaded,
through a role that may start that pipeline and nothing else.

The source object's pattern is the stand-in SourceBucket's (S3's own "Object Created" event); the pipeline is a
stand-in ARN.
"""

from __future__ import annotations

import json

import pulumi
import pytest

from components.pipeline_trigger import PipelineTrigger, PipelineTriggerArgs
from offline.engine import ACCOUNT_ID, ProgramRun
from policy import resource_types as rt
from support import bundles
from support.aws import (
    assert_valid_rule_and_target,
    event_matches,
    parliament_findings,
    policy_of,
)
from support.events import s3_event
from support.stacks import run

PREFIX = bundles.PREFIX
PIPELINE_ARN = bundles.arn("codepipeline", PREFIX)


@pytest.fixture(scope="module")
def trigger() -> ProgramRun:
    def build() -> None:
        source = bundles.source()
        started = PipelineTrigger(
            "deploy", PipelineTriggerArgs(PREFIX, source.event_pattern, bundles.out(PIPELINE_ARN))
        )
        pulumi.export("pattern", source.event_pattern)
        pulumi.export("bucket", source.bucket_name)
        pulumi.export("ruleName", started.rule_name)

    return run(build)


def test_upload_event_starts_the_pipeline_through_a_role_that_can_only_start_it(trigger: ProgramRun) -> None:
    # Starting a pipeline from an EventBridge rule needs a role events.amazonaws.com assumes, allowed
    # codepipeline:StartPipelineExecution on the pipeline:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/triggering.html
    rule = trigger.one(rt.EVENTS_RULE, "deploy-trigger").props
    assert json.loads(rule["eventPattern"]) == json.loads(trigger.outputs["pattern"])
    assert rule["name"] == trigger.outputs["ruleName"] == f"{PREFIX}-source-upload"
    target = trigger.one(rt.EVENTS_TARGET, "deploy-trigger-target").props
    role = trigger.one(rt.IAM_ROLE, "deploy-trigger-role")
    assert role.props["name"] == f"{PREFIX}-pipeline-trigger"
    assert (target["rule"], target["arn"], target["roleArn"]) == (rule["name"], PIPELINE_ARN, role.state["arn"])
    (trust,) = policy_of(role, "assumeRolePolicy")["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    # The confused-deputy guard: https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    (policy,) = trigger.of_type(rt.IAM_ROLE_POLICY)
    assert (policy.name, policy.props["role"]) == ("deploy-trigger-policy", role.id)
    (allowed,) = policy_of(policy)["Statement"]
    assert (allowed["Action"], allowed["Resource"]) == (["codepipeline:StartPipelineExecution"], [PIPELINE_ARN])


def test_the_rule_matches_an_upload_of_the_source_object_only(trigger: ProgramRun) -> None:
    pattern = trigger.one(rt.EVENTS_RULE, "deploy-trigger").props["eventPattern"]
    bucket = trigger.outputs["bucket"]
    assert event_matches(pattern, s3_event(bucket, bundles.SOURCE_KEY))
    assert not event_matches(pattern, s3_event(bucket, f"{bundles.SOURCE_KEY}.tmp"))
    assert not event_matches(pattern, s3_event(f"{bucket}-2", bundles.SOURCE_KEY))
    deleted = {**s3_event(bucket, bundles.SOURCE_KEY), "detail-type": "Object Deleted"}
    assert not event_matches(pattern, deleted)


def test_rule_and_target_validate_against_the_eventbridge_api(trigger: ProgramRun) -> None:
    rule = trigger.one(rt.EVENTS_RULE, "deploy-trigger").props
    assert_valid_rule_and_target(rule, trigger.one(rt.EVENTS_TARGET, "deploy-trigger-target").props)


def test_the_trigger_policy_passes_parliament(trigger: ProgramRun) -> None:
    (policy,) = trigger.of_type(rt.IAM_ROLE_POLICY)
    assert parliament_findings(policy.props["policy"]) == []
