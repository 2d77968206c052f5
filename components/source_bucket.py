"""SourceBucket: the versioned S3 bucket the GitLab job uploads to, and what turns an upload into an event.

The pipeline's S3 source action reads one object (``object_key``) of this bucket; CodePipeline requires the
bucket to be versioned, and each execution records the version it read. The bucket is private and
encrypted, accepts TLS requests only, and expires superseded versions after ``log_retention_days``. Unless
``force_destroy`` (dev only), the buckets are protected: no ``pulumi destroy`` or replacement deletes them.

An upload becomes an EventBridge event in one of two ways (``trigger_mode``, see ``docs/source.md``):

- ``eventbridge``: the bucket sends its own "Object Created" events to EventBridge (no trail, seconds).
- ``cloudtrail``: a trail logs S3 data events for exactly the source object, and CloudTrail forwards them to
  EventBridge as "AWS API Call via CloudTrail" events (minutes). A trail needs a bucket for its log files:
  this component creates one, with the bucket policy CloudTrail requires, scoped to this one trail.

The component does not create the EventBridge rule: the DeployStage does, from ``event_pattern``, next to the
pipeline the rule starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import buckets
from components.config import SAFE_OBJECT_KEY

TRIGGER_MODES = ("eventbridge", "cloudtrail")

# The S3 API calls that leave a new current version of the object: a single PUT (what `aws s3 cp` does for
# small files), the last call of a multipart upload (`aws s3 cp` of a file over 8 MiB), and a server-side copy.
# CloudTrail event names are case-sensitive.
WRITE_EVENT_NAMES = ("PutObject", "CompleteMultipartUpload", "CopyObject")


# S3 bucket names: 3 to 63 characters, lower-case letters, digits, hyphens (and dots, which we never use).

# Incomplete multipart uploads are invisible in listings yet billed; a CI upload that died is retried by the
# next pipeline run, so its parts are useless after a day.
ABORT_INCOMPLETE_UPLOADS_DAYS = 1


@dataclass(frozen=True)
class SourceBucketArgs:
    name_prefix: str
    """Physical name prefix ``<appName>-<stack>`` of the bucket(s) and the trail."""
    object_key: str
    """The key the GitLab job uploads to and the pipeline reads (``docker-image/docker_image.zip``)."""
    trigger_mode: str
    """``eventbridge`` or ``cloudtrail``: how an upload becomes the event that starts the pipeline."""
    log_retention_days: int
    """Days superseded source versions and trail log files are kept."""
    force_destroy: bool = False
    """``StackConfig.force_destroy`` (dev only): ``pulumi destroy`` empties and deletes the buckets. Otherwise
    they are protected: destroying the stack, or a change that would replace a bucket, stops with an error."""


def event_pattern(mode: str, bucket: str, key: str) -> dict[str, Any]:
    """The EventBridge pattern that matches only a write of ``key`` in ``bucket``, as ``mode`` reports it.

    ``eventbridge``: S3's own "Object Created" event (any way the object was created: PUT, POST, copy,
    multipart). ``cloudtrail``: the CloudTrail record of a ``WRITE_EVENT_NAMES`` call on the object.
    """
    check_object_key(key)
    if mode == "eventbridge":
        return {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [bucket]}, "object": {"key": [key]}},
        }
    if mode == "cloudtrail":
        return {
            "source": ["aws.s3"],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "eventSource": ["s3.amazonaws.com"],
                "eventName": list(WRITE_EVENT_NAMES),
                "requestParameters": {"bucketName": [bucket], "key": [key]},
            },
        }
    raise ValueError(f"trigger mode {mode!r} is not allowed; allowed: {', '.join(TRIGGER_MODES)}")


def check_object_key(key: str) -> None:
    """Refuses a key a pattern could miss: S3 notifications URL-encode some characters of a key."""
    if len(key) > 1024 or not SAFE_OBJECT_KEY.match(key) or "//" in key:
        raise ValueError(
            f"source object key {key!r}: use letters, digits and / . _ - only (at most 1024 characters), "
            "so that the key reads the same in every S3 event"
        )


class SourceBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    object_key: str
    event_pattern: pulumi.Output[str]
    """JSON EventBridge pattern matching only an upload of ``object_key`` to this bucket."""
    trail_arn: pulumi.Output[str] | None
    """The trail logging the uploads (``cloudtrail`` mode only)."""

    def __init__(self, name: str, args: SourceBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Refuse a bad mode or key before anything is registered.
        event_pattern(args.trigger_mode, "bucket", args.object_key)
        super().__init__("gitlab-fargate:index:SourceBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        prefix = args.name_prefix
        self.object_key = args.object_key

        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition

        def bucket_name(role: str) -> pulumi.Output[str]:
            return pulumi.Output.all(account_id, region).apply(
                lambda v: buckets.physical_bucket_name(prefix, role, v[0], v[1])
            )

        # `protect` rather than `retain_on_delete`: retained, a bucket would silently leave the stack on
        # `pulumi destroy` (or on a replacement) and stay in AWS holding its global name, so the next `pulumi up`
        # of the same stack could not create it again; protected, any deletion stops with an error before it
        # happens, and releasing the bucket is a deliberate `pulumi state unprotect`.
        # force_destroy: a versioned bucket cannot be deleted before every version is; only dev lets
        # `pulumi destroy` empty it.
        protected = not args.force_destroy
        bucket, bucket_block = buckets.private_bucket(
            self,
            f"{name}-bucket",
            bucket_name("source"),
            force_destroy=args.force_destroy,
            protect=protected,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                # Each upload makes the previous archive a noncurrent version; keep it as long as logs, so a
                # recent upload can still be rebuilt and redeployed (docs/pipeline.md), then let it go.
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=_whole_bucket(),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.log_retention_days
                    ),
                ),
                _abort_incomplete_uploads_rule(),
            ],
            # A rule on noncurrent versions is set once the bucket is versioned (S3 applies lifecycle changes
            # asynchronously and refuses concurrent changes of one bucket's configuration).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        buckets.bucket_policy(self, f"{name}-policy", bucket, bucket_block, [buckets.tls_only_statement(bucket.arn)])

        self.trail_arn = None
        if args.trigger_mode == "eventbridge":
            # S3 sends every event of this bucket to the default bus; the DeployStage's rule picks the upload.
            aws.s3.BucketNotification(f"{name}-notification", bucket=bucket.id, eventbridge=True, opts=child)
        else:
            trail_name = f"{prefix}-source-uploads"
            # The trail's ARN, built rather than read from the trail: the log bucket's policy must exist (and
            # name the trail) before CloudTrail accepts the trail, so reading trail.arn would be a cycle.
            trail_arn = pulumi.Output.concat(
                "arn:", partition, ":cloudtrail:", region, ":", account_id, ":trail/", trail_name
            )
            logs, logs_block = buckets.private_bucket(
                self,
                f"{name}-trail-logs",
                bucket_name("trail"),
                # The log files record who uploaded what: protected like the source bucket (a switch to
                # eventbridge mode, which removes the trail, then needs `pulumi state unprotect` on this bucket).
                force_destroy=args.force_destroy,
                protect=protected,
            )
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-trail-logs-lifecycle",
                bucket=logs.id,
                rules=[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="expire-logs",
                        status="Enabled",
                        filter=_whole_bucket(),
                        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=args.log_retention_days),
                    ),
                    _abort_incomplete_uploads_rule(),
                ],
                opts=child,
            )
            # The statements CloudTrail documents for a trail's bucket, each limited to this trail by
            # aws:SourceArn so that no other trail (of any account) can write here.
            from_this_trail = {"aws:SourceArn": trail_arn}
            logs_policy = buckets.bucket_policy(
                self,
                f"{name}-trail-logs-policy",
                logs,
                logs_block,
                [
                    buckets.tls_only_statement(logs.arn),
                    {
                        "Sid": "CloudTrailAclCheck",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudtrail.amazonaws.com"},
                        "Action": "s3:GetBucketAcl",
                        "Resource": logs.arn,
                        "Condition": {"StringEquals": from_this_trail},
                    },
                    {
                        "Sid": "CloudTrailWrite",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudtrail.amazonaws.com"},
                        "Action": "s3:PutObject",
                        "Resource": pulumi.Output.concat(logs.arn, "/AWSLogs/", account_id, "/*"),
                        "Condition": {"StringEquals": {**from_this_trail, "s3:x-amz-acl": "bucket-owner-full-control"}},
                    },
                ],
            )
            source_object_arn = pulumi.Output.concat(bucket.arn, "/", args.object_key)
            trail = aws.cloudtrail.Trail(
                f"{name}-trail",
                name=trail_name,
                s3_bucket_name=logs.bucket,
                # One region (the bucket's), no global or management events: the trail exists for one object.
                is_multi_region_trail=False,
                include_global_service_events=False,
                enable_log_file_validation=True,
                # Advanced selectors match the object's ARN exactly (classic selectors match a prefix) and
                # only the write calls, so CloudTrail bills nothing but the uploads.
                advanced_event_selectors=[
                    aws.cloudtrail.TrailAdvancedEventSelectorArgs(
                        name="Writes of the source object",
                        field_selectors=[
                            _field("eventCategory", "Data"),
                            _field("resources.type", "AWS::S3::Object"),
                            _field("readOnly", "false"),
                            _field("eventName", *WRITE_EVENT_NAMES),
                            _field("resources.ARN", source_object_arn),
                        ],
                    )
                ],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[logs_policy]),
            )
            self.trail_arn = trail.arn

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        mode, key = args.trigger_mode, args.object_key
        self.event_pattern = bucket.bucket.apply(lambda b: json.dumps(event_pattern(mode, b, key)))
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "object_key": self.object_key,
                "event_pattern": self.event_pattern,
                "trail_arn": self.trail_arn,
            }
        )


def _whole_bucket() -> aws.s3.BucketLifecycleConfigurationRuleFilterArgs:
    """An empty lifecycle filter: the rule applies to every object of the bucket."""
    return aws.s3.BucketLifecycleConfigurationRuleFilterArgs()


def _abort_incomplete_uploads_rule() -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id="abort-incomplete-multipart-uploads",
        status="Enabled",
        filter=_whole_bucket(),
        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
            days_after_initiation=ABORT_INCOMPLETE_UPLOADS_DAYS
        ),
    )


def _field(field: str, *equals: pulumi.Input[str]) -> aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs:
    return aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs(field=field, equals=list(equals))
