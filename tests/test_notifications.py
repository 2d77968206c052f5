"""Notifications on mocks: the topic, its customer-managed key and both resource policies (who may publish and
use the key, TLS only), checked as data, through parliament and against the SNS/KMS API models; one email
subscription per address, stable when the list changes.
"""

from __future__ import annotations

import json
import textwrap
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from parliament import analyze_policy_string

from offline.engine import ACCOUNT_ID, ProgramRun, Registration, run_program
from offline.stack_files import StackFiles

REGION = "eu-west-1"
PREFIX = "shop-dev"
KEY = "aws:kms/key:Key"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
EMAILS = ["ops@example.com", "Dev.Lead@example.org"]

PROGRAM = """
import pulumi
from components.notifications import Notifications, NotificationsArgs

notifications = Notifications("notifications", NotificationsArgs(
    name_prefix="shop-dev", region="eu-west-1", emails=tuple(pulumi.Config().get_object("emails") or ()),
))
pulumi.export("topicArn", notifications.topic_arn)
pulumi.export("keyArn", notifications.key_arn)
"""


def run_notifications(tmp_path: Path, emails: list[str]) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {"aws:region": REGION, "gitlab-fargate:emails": json.dumps(emails)}
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_notifications(tmp_path_factory.mktemp("notifications"), EMAILS)


def policy_of(reg: Registration) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(reg.props["policy"])
    return doc


def by_sid(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["Statement"]}


def parliament_findings(document: str) -> list[str]:
    return [f"{f.issue}: {f.detail}" for f in analyze_policy_string(document).findings]


def may_publish(doc: dict[str, Any], service: str, source_arn: str) -> bool:
    """Whether the topic policy lets ``service`` publish on behalf of ``source_arn`` (ArnLike: * wildcards)."""
    return any(
        s["Effect"] == "Allow"
        and s["Principal"] == {"Service": service}
        and "sns:Publish" in s["Action"]
        and fnmatchcase(source_arn, s["Condition"]["ArnLike"]["aws:SourceArn"])
        for s in doc["Statement"]
    )


# --- Key ---------------------------------------------------------------------------------------------


def test_topic_is_encrypted_with_its_own_rotating_key_not_the_aws_managed_one(run: ProgramRun) -> None:
    key = run.one(KEY)
    topic = run.one(TOPIC).props
    assert key.props["enableKeyRotation"] is True
    assert topic["name"] == f"{PREFIX}-notifications"
    assert topic["kmsMasterKeyId"] == key.state["arn"]
    assert "alias/aws/sns" not in json.dumps(topic)
    alias = run.one("aws:kms/alias:Alias").props
    assert (alias["name"], alias["targetKeyId"]) == (f"alias/{PREFIX}-notifications", key.state["arn"])
    assert run.outputs == {"topicArn": run.one(TOPIC).state["arn"], "keyArn": key.state["arn"]}


def key_allows(doc: dict[str, Any], service: str, action: str, context: dict[str, str]) -> bool:
    """Whether the key policy lets ``service`` call ``action`` with these request context keys (only the
    condition operators the policy uses: StringEquals, ArnLike; a key absent from the request fails both)."""

    def matches(statement: dict[str, Any]) -> bool:
        for operator, pairs in statement.get("Condition", {}).items():
            for key, wanted in pairs.items():
                value = context.get(key)
                if value is None:
                    return False
                if operator == "StringEquals" and value != wanted:
                    return False
                if operator == "ArnLike" and not fnmatchcase(value, wanted):
                    return False
        return True

    def covers(pattern: str) -> bool:
        return fnmatchcase(action, pattern)

    return any(
        s["Effect"] == "Allow"
        and s.get("Principal") == {"Service": service}
        and any(covers(a) for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
        and matches(s)
        for s in doc["Statement"]
    )


def test_key_is_administered_by_the_account_and_usable_by_each_publishing_service(run: ProgramRun) -> None:
    statements = by_sid(policy_of(run.one(KEY)))
    admin = statements["AccountAdministersTheKey"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    assert admin["Action"] == "kms:*"
    # Encrypting a message and nothing more: no key management, no grants, no re-encryption.
    for sid in ("EventBridgeEncryptsForTheTopic", "AlarmsEncryptForTheTopic"):
        assert sorted(statements[sid]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert set(statements) == {"AccountAdministersTheKey", "EventBridgeEncryptsForTheTopic", "AlarmsEncryptForTheTopic"}


# SNS developer guide, "Enable compatibility between event sources from AWS services and encrypted topics":
# https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
# EventBridge's KMS requests to an encrypted topic carry no aws:SourceAccount, aws:SourceArn or aws:SourceOrgID,
# so a key statement conditioned on them drops every event silently. CloudWatch alarms' requests carry them.
EVENTBRIDGE_KMS_CONTEXT: dict[str, str] = {}


def test_eventbridge_can_encrypt_for_the_topic_although_its_kms_requests_carry_no_source_keys(
    run: ProgramRun,
) -> None:
    doc = policy_of(run.one(KEY))
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert key_allows(doc, "events.amazonaws.com", action, EVENTBRIDGE_KMS_CONTEXT), action
    # Its grant carries no condition on keys it never sends, so no later edit can silently break it.
    grant = by_sid(doc)["EventBridgeEncryptsForTheTopic"]
    assert "Condition" not in grant
    # Who may publish through it stays limited by the topic policy (aws:SourceArn of this stack's rules).
    rules = by_sid(policy_of(run.one(TOPIC_POLICY)))["StackRulesPublish"]
    assert rules["Condition"]["ArnLike"]["aws:SourceArn"].endswith(f":rule/{PREFIX}-*")


def test_cloudwatch_can_encrypt_for_this_accounts_stack_alarms_only(run: ProgramRun) -> None:
    doc = policy_of(run.one(KEY))
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{PREFIX}-green-5xx-rate"
    ours = {"aws:SourceAccount": ACCOUNT_ID, "aws:SourceArn": alarm}
    assert key_allows(doc, "cloudwatch.amazonaws.com", "kms:GenerateDataKey", ours)
    assert key_allows(doc, "cloudwatch.amazonaws.com", "kms:Decrypt", ours)
    other_account = {"aws:SourceAccount": "210987654321", "aws:SourceArn": alarm.replace(ACCOUNT_ID, "210987654321")}
    assert not key_allows(doc, "cloudwatch.amazonaws.com", "kms:GenerateDataKey", other_account)
    other_alarm = {**ours, "aws:SourceArn": alarm.replace(f"alarm:{PREFIX}-", "alarm:other-app-")}
    assert not key_allows(doc, "cloudwatch.amazonaws.com", "kms:GenerateDataKey", other_alarm)
    # Nothing else: not key management, not another service.
    assert not key_allows(doc, "cloudwatch.amazonaws.com", "kms:ScheduleKeyDeletion", ours)
    assert not key_allows(doc, "s3.amazonaws.com", "kms:GenerateDataKey", ours)


def test_key_policy_passes_parliament(run: ProgramRun) -> None:
    key = run.one(KEY)
    doc = policy_of(key)
    # In a key policy "Resource": "*" means this key (the key's ARN does not exist before the policy does);
    # parliament reads it as an identity policy's "*" (RESOURCE_STAR), the one finding that does not apply.
    assert all(s["Resource"] == "*" for s in doc["Statement"])
    findings = analyze_policy_string(key.props["policy"]).findings
    assert {f.issue for f in findings} == {"RESOURCE_STAR"}
    # The services' statements, linted as what they mean (the key's ARN in place of "*"): no finding at all.
    for sid in ("EventBridgeEncryptsForTheTopic", "AlarmsEncryptForTheTopic"):
        publishers = {**by_sid(doc)[sid], "Resource": key.state["arn"]}
        assert parliament_findings(json.dumps({"Version": doc["Version"], "Statement": [publishers]})) == [], sid


# --- Topic policy ------------------------------------------------------------------------------------


def test_only_this_stacks_rules_and_alarms_may_publish(run: ProgramRun) -> None:
    reg = run.one(TOPIC_POLICY)
    topic_arn = run.one(TOPIC).state["arn"]
    assert reg.props["arn"] == topic_arn
    doc = policy_of(reg)
    assert all(s["Resource"] == topic_arn for s in doc["Statement"])
    events, cloudwatch = "events.amazonaws.com", "cloudwatch.amazonaws.com"
    assert by_sid(doc)["StackRulesPublish"]["Condition"] == {
        "ArnLike": {"aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{PREFIX}-*"}
    }
    assert by_sid(doc)["StackAlarmsPublish"]["Condition"] == {
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{PREFIX}-*"}
    }
    rule = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{PREFIX}-pipeline-failed"
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{PREFIX}-green-5xx-rate"
    assert may_publish(doc, events, rule)
    assert may_publish(doc, cloudwatch, alarm)
    # Another app's rule, the same rule in another account or region, an alarm posing as a rule: refused.
    assert not may_publish(doc, events, f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/other-dev-pipeline-failed")
    assert not may_publish(doc, events, rule.replace(ACCOUNT_ID, "210987654321"))
    assert not may_publish(doc, events, rule.replace(REGION, "us-east-1"))
    assert not may_publish(doc, events, alarm)
    assert not may_publish(doc, cloudwatch, rule)
    # Nothing is allowed to everyone.
    assert all(s["Principal"] != "*" for s in doc["Statement"] if s["Effect"] == "Allow")


def test_publishing_without_tls_is_denied_to_everyone(run: ProgramRun) -> None:
    deny = by_sid(policy_of(run.one(TOPIC_POLICY)))["DenyPublishingWithoutTls"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sns:Publish")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_topic_policy_passes_parliament(run: ProgramRun) -> None:
    assert parliament_findings(run.one(TOPIC_POLICY).props["policy"]) == []


def test_topic_key_and_policies_validate_against_the_sns_and_kms_apis(run: ProgramRun) -> None:
    session = botocore.session.get_session()
    key, topic, policy = run.one(KEY), run.one(TOPIC), run.one(TOPIC_POLICY)
    calls = [
        ("kms", "CreateKey", {"Description": key.props["description"], "Policy": key.props["policy"]}),
        ("kms", "EnableKeyRotation", {"KeyId": key.state["arn"]}),
        ("kms", "CreateAlias", {"AliasName": f"alias/{PREFIX}-notifications", "TargetKeyId": key.state["arn"]}),
        (
            "sns",
            "CreateTopic",
            {"Name": topic.props["name"], "Attributes": {"KmsMasterKeyId": topic.props["kmsMasterKeyId"]}},
        ),
        (
            "sns",
            "SetTopicAttributes",
            {"TopicArn": topic.state["arn"], "AttributeName": "Policy", "AttributeValue": policy.props["policy"]},
        ),
    ]
    for service, operation, params in calls:
        shape = session.get_service_model(service).operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    # KMS key policies are at most 32 KiB, SNS topic policies 30 KiB.
    assert len(key.props["policy"]) < 32 * 1024 and len(policy.props["policy"]) < 30 * 1024


# --- Subscriptions -----------------------------------------------------------------------------------


def test_one_email_subscription_per_address(run: ProgramRun) -> None:
    topic_arn = run.one(TOPIC).state["arn"]
    subscriptions = [s.props for s in run.of_type(SUBSCRIPTION)]
    assert sorted(s["endpoint"] for s in subscriptions) == sorted(EMAILS)
    assert all(s["protocol"] == "email" and s["topic"] == topic_arn for s in subscriptions)
    model = botocore.session.get_session().get_service_model("sns").operation_model("Subscribe").input_shape
    for s in subscriptions:
        params = {"TopicArn": s["topic"], "Protocol": s["protocol"], "Endpoint": s["endpoint"]}
        assert not ParamValidator().validate(params, model).has_errors()


def test_no_subscription_without_addresses(tmp_path: Path) -> None:
    run = run_notifications(tmp_path, [])
    assert run.of_type(SUBSCRIPTION) == []
    assert len(run.of_type(TOPIC)) == 1


def test_removing_an_address_leaves_the_other_subscriptions_untouched(run: ProgramRun, tmp_path: Path) -> None:
    # A renamed subscription would be replaced, and its owner would have to confirm it again.
    fewer = run_notifications(tmp_path, EMAILS[1:])
    (kept,) = fewer.of_type(SUBSCRIPTION)
    before = {s.props["endpoint"]: s.name for s in run.of_type(SUBSCRIPTION)}
    assert kept.name == before[kept.props["endpoint"]]
    # And no address is written into the state's resource names.
    assert all("@" not in s.name for s in run.of_type(SUBSCRIPTION))


def test_every_child_is_named_after_and_parented_to_the_component(run: ProgramRun) -> None:
    component = run.one("gitlab-fargate:index:Notifications")
    children = run.children_of(component)
    assert len(children) == len(run.resources) - 1
    assert all(c.name.startswith(f"{component.name}-") for c in children)
