"""Notifications on mocks: the topic, its customer-managed key and both resource policies (who may publish and
use the key, TLS only), checked as data, through parliament and against the SNS/KMS API models; one email
subscription per address, stable when the list changes; NotificationsConfig's rules.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pytest

from components.base import PROJECT, component_type
from components.config_types import ConfigError
from components.notifications import Notifications, NotificationsArgs
from offline.engine import ACCOUNT_ID, ProgramRun
from policy import resource_types as rt
from policy import rules
from support.aws import assert_valid_request, by_sid, parliament_findings, policy_of
from support.stacks import REGION, run, stack_config

PREFIX = "shop-dev"
EMAILS = ["ops@example.com", "Dev.Lead@example.org"]
EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"


def run_notifications(emails: Sequence[str]) -> ProgramRun:
    """The component, its config from stack-file values (``notificationEmails`` as the CLI passes a list)."""
    config = stack_config({"notificationEmails": json.dumps(list(emails))}).notifications

    def build() -> None:
        notifications = Notifications("notifications", NotificationsArgs(PREFIX, REGION, config))
        pulumi.export("topicArn", notifications.topic.topic_arn)
        pulumi.export("keyArn", notifications.topic.key_arn)

    return run(build)


@pytest.fixture(scope="module")
def found() -> ProgramRun:
    return run_notifications(EMAILS)


def may_publish(doc: dict[str, Any], service: str, source_arn: str) -> bool:
    """Whether the topic policy lets ``service`` publish on behalf of ``source_arn`` (ArnLike: * wildcards).
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_ARN"""
    return any(
        s["Effect"] == "Allow"
        and s["Principal"] == {"Service": service}
        and "sns:Publish" in s["Action"]
        and fnmatchcase(source_arn, s["Condition"]["ArnLike"]["aws:SourceArn"])
        for s in doc["Statement"]
    )


# --- Key ---------------------------------------------------------------------------------------------


def test_topic_is_encrypted_with_its_own_rotating_key_not_the_aws_managed_one(found: ProgramRun) -> None:
    # The AWS-managed key's policy cannot be changed, so EventBridge and CloudWatch could never use it:
    # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
    key = found.one(rt.KMS_KEY)
    topic = found.one(rt.SNS_TOPIC).props
    assert key.props["enableKeyRotation"] is True
    assert topic["name"] == f"{PREFIX}-notifications"
    assert topic["kmsMasterKeyId"] == key.state["arn"]
    assert "alias/aws/sns" not in json.dumps(topic)
    alias = found.one(rt.KMS_ALIAS).props
    assert (alias["name"], alias["targetKeyId"]) == (f"alias/{PREFIX}-notifications", key.state["arn"])
    assert found.outputs == {"topicArn": found.one(rt.SNS_TOPIC).state["arn"], "keyArn": key.state["arn"]}


def key_allows(doc: dict[str, Any], service: str, action: str, context: dict[str, str]) -> bool:
    """Whether the key policy lets ``service`` call ``action`` with these request context keys (only the
    condition operators the policy uses: StringEquals, ArnLike; a key absent from the request fails both)."""

    def matches(statement: dict[str, Any]) -> bool:
        for operator, pairs in statement.get("Condition", {}).items():
            assert operator in ("StringEquals", "ArnLike"), operator
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


def test_key_is_administered_by_the_account_and_usable_by_each_publishing_service(found: ProgramRun) -> None:
    # Without the account's own statement no IAM policy could grant anything on the key:
    # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam
    statements = by_sid(policy_of(found.one(rt.KMS_KEY)))
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
    found: ProgramRun,
) -> None:
    doc = policy_of(found.one(rt.KMS_KEY))
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert key_allows(doc, EVENTS, action, EVENTBRIDGE_KMS_CONTEXT), action
    # Its grant carries no condition on keys it never sends, so no later edit can silently break it.
    grant = by_sid(doc)["EventBridgeEncryptsForTheTopic"]
    assert "Condition" not in grant
    # Who may publish through it stays limited by the topic policy (aws:SourceArn of this stack's rules).
    stack_rules = by_sid(policy_of(found.one(rt.SNS_TOPIC_POLICY)))["StackRulesPublish"]
    assert stack_rules["Condition"]["ArnLike"]["aws:SourceArn"].endswith(f":rule/{PREFIX}-*")


def test_cloudwatch_can_encrypt_for_this_accounts_stack_alarms_only(found: ProgramRun) -> None:
    # CloudWatch acts for many accounts: the confused-deputy guard.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html
    doc = policy_of(found.one(rt.KMS_KEY))
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{PREFIX}-green-5xx-rate"
    ours = {"aws:SourceAccount": ACCOUNT_ID, "aws:SourceArn": alarm}
    assert key_allows(doc, CLOUDWATCH, "kms:GenerateDataKey", ours)
    assert key_allows(doc, CLOUDWATCH, "kms:Decrypt", ours)
    other_account = {"aws:SourceAccount": "210987654321", "aws:SourceArn": alarm.replace(ACCOUNT_ID, "210987654321")}
    assert not key_allows(doc, CLOUDWATCH, "kms:GenerateDataKey", other_account)
    other_alarm = {**ours, "aws:SourceArn": alarm.replace(f"alarm:{PREFIX}-", "alarm:other-app-")}
    assert not key_allows(doc, CLOUDWATCH, "kms:GenerateDataKey", other_alarm)
    # Nothing else: not key management, not another service.
    assert not key_allows(doc, CLOUDWATCH, "kms:ScheduleKeyDeletion", ours)
    assert not key_allows(doc, "s3.amazonaws.com", "kms:GenerateDataKey", ours)


def test_key_policy_passes_parliament(found: ProgramRun) -> None:
    key = found.one(rt.KMS_KEY)
    doc = policy_of(key)
    # In a key policy "Resource": "*" means this key (the key's ARN does not exist before the policy does);
    # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html
    # parliament reads it as an identity policy's "*" (RESOURCE_STAR), the one finding that does not apply.
    assert all(s["Resource"] == "*" for s in doc["Statement"])
    findings = parliament_findings(key.props["policy"])
    assert {f.split(":")[0] for f in findings} == {"RESOURCE_STAR"}
    # The services' statements, linted as what they mean (the key's ARN in place of "*"): no finding at all.
    for sid in ("EventBridgeEncryptsForTheTopic", "AlarmsEncryptForTheTopic"):
        publishers = {**by_sid(doc)[sid], "Resource": key.state["arn"]}
        assert parliament_findings(json.dumps({"Version": doc["Version"], "Statement": [publishers]})) == [], sid


def test_the_policy_packs_rules_accept_every_resource(found: ProgramRun) -> None:
    # Among them: the topic is encrypted, the key rotates, the EventBridge grant is usable.
    assert rules.check_stack([rules.from_registration(r) for r in found.resources]) == []


# --- Topic policy ------------------------------------------------------------------------------------


def test_only_this_stacks_rules_and_alarms_may_publish(found: ProgramRun) -> None:
    # aws:SourceArn limits a service principal to this stack's rules and alarms:
    # https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html
    reg = found.one(rt.SNS_TOPIC_POLICY)
    topic_arn = found.one(rt.SNS_TOPIC).state["arn"]
    assert reg.props["arn"] == topic_arn
    doc = policy_of(reg)
    assert all(s["Resource"] == topic_arn for s in doc["Statement"])
    assert by_sid(doc)["StackRulesPublish"]["Condition"] == {
        "ArnLike": {"aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{PREFIX}-*"}
    }
    assert by_sid(doc)["StackAlarmsPublish"]["Condition"] == {
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{PREFIX}-*"}
    }
    rule = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{PREFIX}-pipeline-failed"
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{PREFIX}-green-5xx-rate"
    assert may_publish(doc, EVENTS, rule)
    assert may_publish(doc, CLOUDWATCH, alarm)
    # Another app's rule, the same rule in another account or region, an alarm posing as a rule: refused.
    assert not may_publish(doc, EVENTS, f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/other-dev-pipeline-failed")
    assert not may_publish(doc, EVENTS, rule.replace(ACCOUNT_ID, "210987654321"))
    assert not may_publish(doc, EVENTS, rule.replace(REGION, "us-east-1"))
    assert not may_publish(doc, EVENTS, alarm)
    assert not may_publish(doc, CLOUDWATCH, rule)
    # Nothing is allowed to everyone.
    assert all(s["Principal"] != "*" for s in doc["Statement"] if s["Effect"] == "Allow")


def test_publishing_without_tls_is_denied_to_everyone(found: ProgramRun) -> None:
    # https://docs.aws.amazon.com/sns/latest/dg/sns-security-best-practices.html#enforce-encryption-data-in-transit
    deny = by_sid(policy_of(found.one(rt.SNS_TOPIC_POLICY)))["DenyPublishingWithoutTls"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sns:Publish")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_topic_policy_passes_parliament(found: ProgramRun) -> None:
    assert parliament_findings(found.one(rt.SNS_TOPIC_POLICY).props["policy"]) == []


def test_topic_key_and_policies_validate_against_the_sns_and_kms_apis(found: ProgramRun) -> None:
    key, topic, policy = found.one(rt.KMS_KEY), found.one(rt.SNS_TOPIC), found.one(rt.SNS_TOPIC_POLICY)
    alias = found.one(rt.KMS_ALIAS)
    assert_valid_request("kms", "CreateKey", {"Description": key.props["description"], "Policy": key.props["policy"]})
    assert_valid_request("kms", "EnableKeyRotation", {"KeyId": key.state["arn"]})
    assert_valid_request(
        "kms", "CreateAlias", {"AliasName": alias.props["name"], "TargetKeyId": alias.props["targetKeyId"]}
    )
    assert_valid_request(
        "sns",
        "CreateTopic",
        {"Name": topic.props["name"], "Attributes": {"KmsMasterKeyId": topic.props["kmsMasterKeyId"]}},
    )
    assert_valid_request(
        "sns",
        "SetTopicAttributes",
        {"TopicArn": topic.state["arn"], "AttributeName": "Policy", "AttributeValue": policy.props["policy"]},
    )
    # KMS key policies are at most 32 KiB, SNS topic policies 30 KiB.
    # https://docs.aws.amazon.com/kms/latest/developerguide/resource-limits.html#key-policy-limit
    # https://docs.aws.amazon.com/general/latest/gr/sns.html#limits_sns
    assert len(key.props["policy"]) < 32 * 1024 and len(policy.props["policy"]) < 30 * 1024


# --- Subscriptions -----------------------------------------------------------------------------------


def test_one_email_subscription_per_address(found: ProgramRun) -> None:
    topic_arn = found.one(rt.SNS_TOPIC).state["arn"]
    subscriptions = [s.props for s in found.of_type(rt.SNS_TOPIC_SUBSCRIPTION)]
    assert sorted(s["endpoint"] for s in subscriptions) == sorted(EMAILS)
    assert all(s["protocol"] == "email" and s["topic"] == topic_arn for s in subscriptions)
    for s in subscriptions:
        assert_valid_request(
            "sns", "Subscribe", {"TopicArn": s["topic"], "Protocol": s["protocol"], "Endpoint": s["endpoint"]}
        )


def test_no_subscription_without_addresses() -> None:
    none = run_notifications([])
    assert none.of_type(rt.SNS_TOPIC_SUBSCRIPTION) == []
    assert len(none.of_type(rt.SNS_TOPIC)) == 1


def test_removing_an_address_leaves_the_other_subscriptions_untouched(found: ProgramRun) -> None:
    # A renamed subscription would be replaced, and its owner would have to confirm it again.
    # https://docs.aws.amazon.com/sns/latest/dg/sns-email-notifications.html
    fewer = run_notifications(EMAILS[1:])
    (kept,) = fewer.of_type(rt.SNS_TOPIC_SUBSCRIPTION)
    before = {s.props["endpoint"]: s.name for s in found.of_type(rt.SNS_TOPIC_SUBSCRIPTION)}
    assert kept.name == before[kept.props["endpoint"]]
    # And no address is written into the state's resource names.
    assert all("@" not in s.name for s in found.of_type(rt.SNS_TOPIC_SUBSCRIPTION))


def test_every_child_is_named_after_and_parented_to_the_component(found: ProgramRun) -> None:
    component = found.one(component_type(Notifications))
    children = found.children_of(component)
    assert len(children) == len(found.resources) - 1
    assert all(c.name.startswith(f"{component.name}-") for c in children)


def test_two_instances_do_not_collide() -> None:
    config = stack_config({"notificationEmails": json.dumps(EMAILS)}).notifications

    def build() -> None:
        Notifications("dev-notifications", NotificationsArgs("shop-dev", REGION, config))
        Notifications("prod-notifications", NotificationsArgs("shop-prod", REGION, config))

    both = run(build)
    assert len({r.urn for r in both.resources}) == len(both.resources)
    assert {t.props["name"] for t in both.of_type(rt.SNS_TOPIC)} == {
        "shop-dev-notifications",
        "shop-prod-notifications",
    }


# --- NotificationsConfig -------------------------------------------------------------------------------


def test_no_addresses_by_default() -> None:
    assert stack_config({}).notifications.notification_emails == ()


@pytest.mark.parametrize(
    ("emails", "message"),
    [
        (["ops@example.com", "ops@example.com"], "lists an address twice"),
        (["ops.example.com"], "'ops.example.com' is not an email address"),
    ],
)
def test_bad_addresses_are_refused_naming_the_key(emails: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        stack_config({"notificationEmails": json.dumps(emails)})
    [problem] = raised.value.problems
    assert problem.startswith(f"{PROJECT}:notificationEmails: ") and message in problem, problem
