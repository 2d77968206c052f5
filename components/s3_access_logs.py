"""S3AccessLogs: S3 server access logging of the stack's buckets, into a bucket of its own (FSBP S3.9).

Every bucket handed in (``sources``) logs its requests under ``<role>/`` of this component's bucket. S3 delivers
the logs as the logging service principal ``logging.s3.amazonaws.com``, which the log bucket's policy admits
once per source: ``s3:PutObject`` under that source's prefix only, for requests on behalf of that source bucket
(``aws:SourceArn``) of this account (``aws:SourceAccount``), the grant the S3 guide documents for a target bucket
whose ACLs are disabled (object ownership ``BucketOwnerEnforced``, as every bucket here).
https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html

What the guide asks of a target bucket, and this one is: in the source buckets' account and region (the stack's
provider creates all of them), encrypted by default with SSE-S3 (the guide: "only if you use server-side
encryption with Amazon S3 managed keys (SSE-S3) ... SSE-KMS is not supported"; others report SSE-KMS working
with a key-policy grant, but SSE-S3 works under every reading, costs no key, and is every bucket's here),
without Object Lock, a default retention period or Requester Pays, and not logging itself (its own requests
would log forever). Its logs expire after ``logRetentionDays``.

The component comes last in ``__main__.py``, handed the buckets of the parts built before it: the one bucket
policy names every source, so it is written once every source exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pydantic import Field

from components import buckets
from components.base import Component, StackContext
from components.config_types import ConfigModel, Flag

LOGGING_SERVICE = "logging.s3.amazonaws.com"
LOG_BUCKET_ROLE = "s3-logs"
# Log object keys as <role>/<account>/<region>/<bucket>/<yyyy>/<mm>/<dd>/..., dated by when the requests were
# made: a day's logs are one prefix (what Athena's partition projection reads), whatever the delivery delay.
PARTITION_DATE_SOURCE = "EventTime"


class S3AccessLogsConfig(ConfigModel):
    """Who keeps a record of the requests made to the stack's buckets."""

    s3_access_logs: Flag = Field(
        True,
        description="S3 server access logs of every bucket of the stack (FSBP S3.9), in a bucket of their own, "
        "kept `logRetentionDays`",
    )


@dataclass(frozen=True)
class S3AccessLogsArgs:
    context: StackContext
    sources: Sequence[buckets.BucketRef]
    """The buckets whose requests are logged, each under its ``role`` (unique)."""


def log_delivery_statement(
    logs_arn: pulumi.Input[str], source: buckets.BucketRef, account_id: pulumi.Input[str]
) -> dict[str, Any]:
    """Lets S3 deliver the access logs of ``source`` (and of no other bucket) under its prefix, and nowhere else."""
    return {
        "Sid": "LogsOf" + "".join(part.capitalize() for part in source.role.split("-")),
        "Effect": "Allow",
        "Principal": {"Service": LOGGING_SERVICE},
        "Action": "s3:PutObject",
        "Resource": pulumi.Output.concat(logs_arn, f"/{source.role}/*"),
        "Condition": {"ArnLike": {"aws:SourceArn": source.arn}, "StringEquals": {"aws:SourceAccount": account_id}},
    }


class S3AccessLogs(Component):
    bucket: buckets.BucketRef
    """The access-log bucket (not itself logged)."""

    def __init__(self, name: str, args: S3AccessLogsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        roles = [source.role for source in args.sources]
        if len(set(roles)) != len(roles) or LOG_BUCKET_ROLE in roles:
            raise ValueError(f"each logged bucket needs a role of its own (not {LOG_BUCKET_ROLE!r}): {roles}")
        super().__init__(name, opts)
        ctx = args.context
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        logs, block = buckets.private_bucket(
            self,
            f"{name}-bucket",
            buckets.stack_bucket_name(self, ctx.name_prefix, LOG_BUCKET_ROLE),
            # Who read and wrote the stack's buckets: protected like the other log buckets of the stack.
            force_destroy=ctx.force_destroy,
            protect=ctx.protect,
        )
        buckets.lifecycle(
            self,
            f"{name}-lifecycle",
            logs,
            buckets.expire_objects("expire-logs", ctx.log_retention_days),
            buckets.abort_incomplete_uploads(),
        )
        policy = buckets.bucket_policy(
            self,
            f"{name}-policy",
            logs,
            block,
            [
                buckets.tls_only_statement(logs.arn),
                *(log_delivery_statement(logs.arn, source, account_id) for source in args.sources),
            ],
        )
        for source in args.sources:
            aws.s3.BucketLogging(
                f"{name}-{source.role}",
                bucket=source.name,
                target_bucket=logs.bucket,
                target_prefix=f"{source.role}/",
                target_object_key_format=aws.s3.BucketLoggingTargetObjectKeyFormatArgs(
                    partitioned_prefix=aws.s3.BucketLoggingTargetObjectKeyFormatPartitionedPrefixArgs(
                        partition_date_source=PARTITION_DATE_SOURCE
                    )
                ),
                # Logging starts once the bucket policy admits the delivery.
                opts=self.child(depends_on=[policy]),
            )
        self.bucket = buckets.BucketRef(name=logs.bucket, arn=logs.arn, role=LOG_BUCKET_ROLE)
        self.register_outputs({"bucket_name": logs.bucket, "sources": roles})
