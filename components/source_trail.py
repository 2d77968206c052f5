"""SourceTrail: the trail of the ``cloudtrail`` trigger mode, which logs every write of the source object.

CloudTrail forwards each logged write to EventBridge (what starts the pipeline) and delivers it to:

- a bucket of its own, with the bucket policy CloudTrail requires, scoped to this one trail; the log files are
  encrypted with a customer managed KMS key of the trail (FSBP CloudTrail.2), whose policy lets CloudTrail use
  it for this trail only;
- a CloudWatch Logs group kept the stack's log retention (FSBP CloudTrail.5), written through a role CloudTrail
  assumes, allowed to write to that group's CloudTrail streams only.

Carved out of SourceBucket: its children keep their names and, through an alias, their URNs (the log bucket is
protected).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import buckets, iam, logs
from components.base import Component, StackContext

CLOUDTRAIL = "cloudtrail.amazonaws.com"
# The S3 API calls that leave a new current version of the object: a single PUT (what `aws s3 cp` does for
# small files), the last call of a multipart upload (`aws s3 cp` of a file over 8 MiB), and a server-side copy.
# CloudTrail event names are case-sensitive.
WRITE_EVENT_NAMES = ("PutObject", "CompleteMultipartUpload", "CopyObject")
LOG_BUCKET_ROLE = "trail"
"""The log bucket's role in its physical name and in the stack's S3 access logs."""


@dataclass(frozen=True)
class SourceTrailArgs:
    context: StackContext
    source_object_arn: pulumi.Input[str]
    """``<bucket ARN>/<key>``: the one object whose writes the trail logs."""


def trail_arn(
    partition: pulumi.Input[str], region: pulumi.Input[str], account_id: pulumi.Input[str], name: str
) -> pulumi.Output[str]:
    """A trail's ARN, built from its name: the log bucket's and the key's policies must name the trail before
    CloudTrail accepts it, so reading the trail's own ``arn`` would be a cycle."""
    return pulumi.Output.concat("arn:", partition, ":cloudtrail:", region, ":", account_id, ":trail/", name)


class SourceTrail(Component):
    trail_arn: pulumi.Output[str]
    log_bucket: buckets.BucketRef
    """The bucket of the trail's log files (for the stack's S3 access logs)."""

    def __init__(
        self,
        name: str,
        args: SourceTrailArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        super().__init__(name, opts, children_formerly_of=children_formerly_of)
        ctx = args.context
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        region = aws.get_region_output(opts=self.lookup()).region
        partition = aws.get_partition_output(opts=self.lookup()).partition
        trail_name = f"{ctx.name_prefix}-source-uploads"
        arn = trail_arn(partition, region, account_id, trail_name)

        log_files, log_files_policy = self._log_bucket(name, ctx, account_id, arn)
        key = aws.kms.Key(
            f"{name}-trail-key",
            description=f"Encrypts the log files of the {trail_name} trail",
            enable_key_rotation=True,
            policy=pulumi.Output.json_dumps(
                pulumi.Output.all(account_id, partition, arn).apply(lambda v: trail_key_policy(v[0], v[1], v[2]))
            ),
            opts=self.child(),
        )
        aws.kms.Alias(f"{name}-trail-key-alias", name=f"alias/{trail_name}", target_key_id=key.arn, opts=self.child())
        events = logs.log_group(
            self, f"{name}-trail-events", physical_name=f"/aws/cloudtrail/{trail_name}", context=ctx
        )
        # The trust policy CloudTrail documents for this role has no condition
        # (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/send-cloudtrail-events-to-cloudwatch-logs.html).
        writer = iam.service_role(
            self,
            f"{name}-trail-events-role",
            physical_name=f"{trail_name}-to-logs",
            service=CLOUDTRAIL,
            account_id=None,
            statements=[cloudwatch_logs_statement(events.arn, account_id, region)],
            policy_name="deliver-trail-events",
        )
        trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=trail_name,
            s3_bucket_name=log_files.bucket,
            kms_key_id=key.arn,
            # CloudTrail takes the group's ARN with the log-stream wildcard.
            cloud_watch_logs_group_arn=pulumi.Output.concat(events.arn, ":*"),
            cloud_watch_logs_role_arn=writer.role.arn,
            # One region (the bucket's), no global or management events: the trail exists for one object.
            is_multi_region_trail=False,
            include_global_service_events=False,
            enable_log_file_validation=True,
            # Advanced selectors match the object's ARN exactly (classic selectors match a prefix) and only the
            # write calls, so CloudTrail bills nothing but the uploads.
            advanced_event_selectors=[
                aws.cloudtrail.TrailAdvancedEventSelectorArgs(
                    name="Writes of the source object",
                    field_selectors=[
                        _field("eventCategory", "Data"),
                        _field("resources.type", "AWS::S3::Object"),
                        _field("readOnly", "false"),
                        _field("eventName", *WRITE_EVENT_NAMES),
                        _field("resources.ARN", args.source_object_arn),
                    ],
                )
            ],
            # CloudTrail checks, when it creates or updates the trail, that it may write to the bucket, use the key
            # and assume the role: all three are in place first.
            opts=self.child(depends_on=[log_files_policy, key, *writer.ready]),
        )
        self.trail_arn = trail.arn
        self.log_bucket = buckets.BucketRef(name=log_files.bucket, arn=log_files.arn, role=LOG_BUCKET_ROLE)
        self.register_outputs(
            {"trail_arn": trail.arn, "log_bucket": log_files.bucket, "key_arn": key.arn, "log_group": events.name}
        )

    def _log_bucket(
        self, name: str, ctx: StackContext, account_id: pulumi.Output[str], trail: pulumi.Output[str]
    ) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
        """The bucket of the trail's log files, writable by this trail only, the files kept the log retention."""
        log_files, block = buckets.private_bucket(
            self,
            f"{name}-trail-logs",
            buckets.stack_bucket_name(self, ctx.name_prefix, LOG_BUCKET_ROLE),
            # The log files record who uploaded what: protected like the source bucket (a switch to eventbridge
            # mode, which removes the trail, then needs `pulumi state unprotect` on this bucket).
            force_destroy=ctx.force_destroy,
            protect=ctx.protect,
        )
        buckets.lifecycle(
            self,
            f"{name}-trail-logs-lifecycle",
            log_files,
            buckets.expire_objects("expire-logs", ctx.log_retention_days),
            buckets.abort_incomplete_uploads(),
        )
        policy = buckets.bucket_policy(
            self,
            f"{name}-trail-logs-policy",
            log_files,
            block,
            [buckets.tls_only_statement(log_files.arn), *cloudtrail_statements(log_files.arn, account_id, trail)],
        )
        return log_files, policy


def cloudtrail_statements(
    logs_arn: pulumi.Output[str], account_id: pulumi.Input[str], trail: pulumi.Output[str]
) -> list[dict[str, Any]]:
    """The statements CloudTrail documents for a trail's bucket, each limited to this trail by aws:SourceArn, so
    that no other trail (of any account) can write there.
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-s3-bucket-policy-for-cloudtrail.html"""
    from_this_trail = {"aws:SourceArn": trail}
    return [
        {
            "Sid": "CloudTrailAclCheck",
            "Effect": "Allow",
            "Principal": {"Service": CLOUDTRAIL},
            "Action": "s3:GetBucketAcl",
            "Resource": logs_arn,
            "Condition": {"StringEquals": from_this_trail},
        },
        {
            "Sid": "CloudTrailWrite",
            "Effect": "Allow",
            "Principal": {"Service": CLOUDTRAIL},
            "Action": "s3:PutObject",
            "Resource": pulumi.Output.concat(logs_arn, "/AWSLogs/", account_id, "/*"),
            "Condition": {"StringEquals": {**from_this_trail, "s3:x-amz-acl": "bucket-owner-full-control"}},
        },
    ]


def trail_key_policy(account_id: str, partition: str, trail: str) -> dict[str, Any]:
    """The trail key's policy: the account administers it (through IAM, which is also how the account's
    principals get ``kms:Decrypt`` to read the log files); CloudTrail may encrypt log files with it and describe
    it, for this trail only.

    The statements CloudTrail requires, with the ``aws:SourceArn`` condition it recommends and the encryption
    context it sets (``aws:cloudtrail:arn``, a trail of this account).
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-kms-key-policy-for-cloudtrail.html
    CloudTrail's own ``kms:Decrypt`` statement is only needed with an S3 Bucket Key, which this bucket has not.
    """
    for_this_trail = {"aws:SourceArn": trail}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # As in every default key policy: without it no IAM policy of the account could grant the key.
                "Sid": "AccountAdministersTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                # In a key policy "*" is this key.
                "Sid": "CloudTrailEncryptsLogFiles",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDTRAIL},
                "Action": "kms:GenerateDataKey*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": for_this_trail,
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:{partition}:cloudtrail:*:{account_id}:trail/*"
                    },
                },
            },
            {
                "Sid": "CloudTrailDescribesTheKey",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDTRAIL},
                "Action": "kms:DescribeKey",
                "Resource": "*",
                "Condition": {"StringEquals": for_this_trail},
            },
        ],
    }


def cloudwatch_logs_statement(
    group_arn: pulumi.Input[str], account_id: pulumi.Input[str], region: pulumi.Input[str]
) -> dict[str, Any]:
    """What CloudTrail needs to deliver a trail's events to a log group: create its streams and put events in
    them, in this group only, streams named ``<account>_CloudTrail_<region>...`` as CloudTrail names them.
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-required-policy-for-cloudwatch-logs.html
    """
    streams = pulumi.Output.concat(group_arn, ":log-stream:", account_id, "_CloudTrail_", region, "*")
    return iam.allow(["logs:CreateLogStream", "logs:PutLogEvents"], [streams], sid="DeliverTrailEvents")


def _field(field: str, *equals: pulumi.Input[str]) -> aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs:
    return aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs(field=field, equals=list(equals))
