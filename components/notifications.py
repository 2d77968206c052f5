"""Notifications: the stack's one SNS topic, what may publish to it, and who receives it by email.

Four kinds of message reach the topic: a failed pipeline execution and a failed or stopped (rolled back)
deployment (EventBridge rules of the DeployStage), a CloudWatch alarm of the ServiceAlarms changing state, and
a manual approval waiting (the pipeline's role publishes it). Each address of ``notificationEmails`` gets an
``email`` subscription, which stays *pending* until its owner follows the link in the confirmation email.

The topic is encrypted with a customer-managed KMS key rather than the AWS-managed ``alias/aws/sns``: the
services that publish here on their own behalf (EventBridge, CloudWatch) must be granted the use of the key
in its key policy, and the policy of an AWS-managed key cannot be changed, so they cannot publish to a topic
encrypted with it (the publish fails, visible only in the alarm's history or the rule's failed invocations).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Any

import pulumi
import pulumi_aws as aws
from pydantic import BeforeValidator, Field, model_validator

from components import iam
from components.base import Component
from components.config_types import ConfigModel, Flag, Matches, as_str_list, no_duplicates, problems_if

# The services that publish to the topic themselves: EventBridge (the DeployStage's failure rules) and
# CloudWatch (alarm actions). The pipeline's role publishes approval requests with its own IAM permissions.
EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"
# What a publisher needs of the key: a data key to encrypt the message, and Decrypt to use that data key.
KEY_USE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey*")


Email = Annotated[
    str, Matches(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "an email address", "ops@example.com")
]


class NotificationsConfig(ConfigModel):
    notification_emails: Annotated[tuple[Email, ...], BeforeValidator(as_str_list), no_duplicates("an address")] = (
        Field(
            (),
            description="emails subscribed to the stack's SNS topic: pipeline failures, rollbacks, alarms, approvals "
            "(each confirms once)",
        )
    )
    notification_topic: Flag | None = Field(
        None,
        description="keep the stack's SNS topic (and its KMS key) even without `notificationEmails`, for "
        "subscribers added outside the program (chat, paging); `false` with addresses is refused",
        json_schema_extra={"x-default": "`true` when `notificationEmails` lists an address, else `false`"},
    )

    @model_validator(mode="after")
    def _topic_for_addresses(self) -> NotificationsConfig:
        problems_if(
            (
                self.notification_topic is False and bool(self.notification_emails),
                "notificationTopic",
                "false, but notificationEmails lists addresses, which the topic would deliver to: remove them, or "
                "this key",
            )
        )
        return self

    @property
    def wants_topic(self) -> bool:
        """Whether the stack has a topic: someone reads it (an address, or a subscriber outside the program).
        Without one nothing pays for a topic and a key no one reads; failures still show on the GitLab commit,
        in the consoles, and alarms still roll deployments back."""
        return bool(self.notification_emails) if self.notification_topic is None else self.notification_topic


@dataclass(frozen=True)
class NotificationTopic:
    """Where the stack's failures, rollbacks, alarms and approval requests go."""

    topic_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    """The topic's KMS key: whoever publishes with IAM permissions (the pipeline role) needs
    ``kms:GenerateDataKey*`` and ``kms:Decrypt`` on it."""


@dataclass(frozen=True)
class NotificationsArgs:
    name_prefix: str
    """Physical name prefix ``<appName>-<stack>``: the topic, the key alias, and the names of the rules and
    alarms allowed to publish (``<prefix>-*``)."""
    region: str
    config: NotificationsConfig = field(default_factory=NotificationsConfig)


def key_policy(account_id: str, partition: str, region: str, prefix: str) -> dict[str, Any]:
    """The key's policy: the account administers it (through IAM); EventBridge and CloudWatch may use it to
    encrypt what they publish to the topic.

    The two services are granted differently because they call KMS differently. The SNS developer guide
    ("Enable compatibility between event sources from AWS services and encrypted topics",
    https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services) says
    that EventBridge's KMS requests carry no ``aws:SourceAccount``, ``aws:SourceArn`` or ``aws:SourceOrgID``:
    a statement conditioned on them never matches, and every event is dropped without an error anywhere but
    the rule's FailedInvocations metric. So EventBridge's grant has no condition; who may *publish* is limited
    by the topic policy (``aws:SourceArn`` of this stack's rules works there). CloudWatch's requests do carry
    them, so its grant stays limited to this account's alarms named ``<prefix>-*``.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # The account's own statement, as in every default key policy: without it no IAM policy in the
                # account could grant anything on the key, and the key could become unmanageable.
                "Sid": "AccountAdministersTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                # In a key policy "*" is this key. No condition: EventBridge sends none that could match.
                "Sid": "EventBridgeEncryptsForTheTopic",
                "Effect": "Allow",
                "Principal": {"Service": EVENTS},
                "Action": list(KEY_USE_ACTIONS),
                "Resource": "*",
            },
            {
                # CloudWatch acts for many accounts: only for this account's alarms (confused-deputy guard).
                "Sid": "AlarmsEncryptForTheTopic",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDWATCH},
                "Action": list(KEY_USE_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:{prefix}-*"},
                },
            },
        ],
    }


def topic_policy(
    topic_arn: pulumi.Input[str], prefix: str, region: str, account_id: pulumi.Input[str], partition: pulumi.Input[str]
) -> pulumi.Output[str]:
    """Only this stack's EventBridge rules and CloudWatch alarms (named ``<prefix>-*``) may publish, over TLS.

    IAM principals of the account (the pipeline role) publish through their own IAM policies, which suffice
    within one account; the TLS Deny applies to them too.
    """

    def source(service: str, resource: str) -> pulumi.Output[str]:
        return pulumi.Output.concat("arn:", partition, f":{service}:{region}:", account_id, ":", resource)

    return iam.policy_document(
        {
            "Sid": "StackRulesPublish",
            "Effect": "Allow",
            "Principal": {"Service": EVENTS},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": source("events", f"rule/{prefix}-*")}},
        },
        {
            "Sid": "StackAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": CLOUDWATCH},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": source("cloudwatch", f"alarm:{prefix}-*")}},
        },
        {
            "Sid": "DenyPublishingWithoutTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )


def subscription_name(name: str, email: str) -> str:
    """A subscription's logical name, from a hash of its address: stable when other addresses are added or
    removed (a position would replace, hence unconfirm, every later subscription), and no address in URNs."""
    return f"{name}-email-{hashlib.sha256(email.encode()).hexdigest()[:12]}"


class Notifications(Component):
    topic: NotificationTopic

    def __init__(self, name: str, args: NotificationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        child = self.child()
        invoke = self.lookup()
        prefix = args.name_prefix
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition

        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the {prefix} notifications topic",
            enable_key_rotation=True,
            policy=pulumi.Output.json_dumps(
                pulumi.Output.all(account_id, partition).apply(lambda v: key_policy(v[0], v[1], args.region, prefix))
            ),
            opts=child,
        )
        aws.kms.Alias(f"{name}-key-alias", name=f"alias/{prefix}-notifications", target_key_id=key.arn, opts=child)
        topic = aws.sns.Topic(f"{name}-topic", name=f"{prefix}-notifications", kms_master_key_id=key.arn, opts=child)
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=topic_policy(topic.arn, prefix, args.region, account_id, partition),
            opts=child,
        )
        for email in args.config.notification_emails:
            # Pending until its owner confirms it. Pulumi cannot delete a pending subscription (it only forgets
            # it), but deleting the topic removes every subscription.
            aws.sns.TopicSubscription(
                subscription_name(name, email), topic=topic.arn, protocol="email", endpoint=email, opts=child
            )

        self.topic = NotificationTopic(topic_arn=topic.arn, key_arn=key.arn)
        self.register_outputs({"topic_arn": topic.arn, "key_arn": key.arn})
