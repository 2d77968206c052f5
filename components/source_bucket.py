"""SourceBucket: the versioned S3 bucket the GitLab job uploads to, and what turns an upload into an event.

The pipeline's S3 source action reads one object (``object_key``) of this bucket; CodePipeline requires the
bucket to be versioned, and each execution records the version it read. The bucket is private and
encrypted, accepts TLS requests only, and expires superseded versions after ``log_retention_days``. Unless
``force_destroy`` (dev only), the buckets are protected: no ``pulumi destroy`` or replacement deletes them.

An upload becomes an EventBridge event in one of two ways (``trigger_mode``, see ``docs/source.md``):

- ``eventbridge``: the bucket sends its own "Object Created" events to EventBridge (no trail, seconds).
- ``cloudtrail``: a trail logs S3 data events for exactly the source object, and CloudTrail forwards them to
  EventBridge as "AWS API Call via CloudTrail" events (minutes). The trail, its log bucket, key and log group
  are a part of their own, ``SourceTrail`` (``source_trail.py``).

The component does not create the EventBridge rule: the DeployStage does, from ``event_pattern``, next to the
pipeline the rule starts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import pulumi
import pulumi_aws as aws
from pydantic import AfterValidator, Field

from components import buckets
from components.base import Component, StackContext
from components.buckets import BucketRef
from components.config_types import ConfigModel, Text
from components.source_trail import WRITE_EVENT_NAMES, SourceTrail, SourceTrailArgs

SOURCE_ROLE = "source"
"""The source bucket's role in its physical name and in the stack's S3 access logs."""

TriggerMode = Literal["eventbridge", "cloudtrail"]
TRIGGER_MODES: tuple[TriggerMode, ...] = get_args(TriggerMode)

# S3 keys made of these characters read the same in every S3 event format (some formats URL-encode the key),
# so an event pattern naming the key literally matches it whatever the trigger mode.
SAFE_OBJECT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]*$")


def check_object_key(key: str) -> str:
    """Refuses a key a pattern could miss (S3 notifications URL-encode some characters of a key), or that is no
    zip archive."""
    if len(key) > 1024 or not SAFE_OBJECT_KEY.match(key) or "//" in key or not key.endswith(".zip"):
        raise ValueError(
            f"{key!r}: use letters, digits and / . _ - only (not first, no '//'), ending in .zip, at most 1024 "
            "characters, so that the key reads the same in every S3 event"
        )
    return key


class SourceConfig(ConfigModel):
    """Where the GitLab job uploads, and how an upload starts the pipeline."""

    source_object_key: Annotated[Text, AfterValidator(check_object_key)] = Field(
        "docker-image/docker_image.zip", description="S3 key the GitLab job uploads to"
    )
    trigger_mode: TriggerMode = Field(
        "eventbridge",
        description="how an upload starts the pipeline: `eventbridge` (S3 EventBridge notifications) or "
        "`cloudtrail` (a trail's data events)",
    )


@dataclass(frozen=True)
class SourceBucketArgs:
    context: StackContext
    """Names, and the retention of superseded source versions and trail log files; unless ``force_destroy``
    (dev only), the buckets are protected and never emptied by ``pulumi destroy``."""
    config: SourceConfig


@dataclass(frozen=True)
class SourceObject:
    """The one object the upload job writes and the pipeline reads."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    key: str
    event_pattern: pulumi.Output[str]
    """JSON EventBridge pattern matching only an upload of ``key`` to this bucket."""


def event_pattern(mode: TriggerMode, bucket: str, key: str) -> dict[str, Any]:
    """The EventBridge pattern that matches only a write of ``key`` in ``bucket``, as ``mode`` reports it.

    ``eventbridge``: S3's own "Object Created" event (any way the object was created: PUT, POST, copy,
    multipart). ``cloudtrail``: the CloudTrail record of a ``WRITE_EVENT_NAMES`` call on the object.
    """
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
    raise AssertionError(mode)


class SourceBucket(Component):
    source: SourceObject
    trail_arn: pulumi.Output[str] | None
    """The trail logging the uploads (``cloudtrail`` mode only)."""
    buckets: tuple[BucketRef, ...]
    """The source bucket and, in ``cloudtrail`` mode, the trail's log bucket (for the stack's S3 access logs)."""

    def __init__(self, name: str, args: SourceBucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        ctx, cfg = args.context, args.config
        # `protect` rather than `retain_on_delete`: retained, a bucket would silently leave the stack on
        # `pulumi destroy` (or on a replacement) and stay in AWS holding its global name, so the next `pulumi up`
        # of the same stack could not create it again; protected, any deletion stops with an error before it
        # happens, and releasing the bucket is a deliberate `pulumi state unprotect`.
        # force_destroy: a versioned bucket cannot be deleted before every version is; only dev lets
        # `pulumi destroy` empty it.
        bucket, bucket_block = buckets.private_bucket(
            self,
            f"{name}-bucket",
            buckets.stack_bucket_name(self, ctx.name_prefix, SOURCE_ROLE),
            force_destroy=ctx.force_destroy,
            protect=ctx.protect,
        )
        versioning = buckets.versioning(self, f"{name}-versioning", bucket)
        buckets.lifecycle(
            self,
            f"{name}-lifecycle",
            bucket,
            # Each upload makes the previous archive a noncurrent version; keep it as long as logs, so a recent
            # upload can still be rebuilt and redeployed (docs/pipeline.md), then let it go.
            buckets.expire_noncurrent_versions("expire-noncurrent-versions", ctx.log_retention_days),
            buckets.abort_incomplete_uploads(),
            # A rule on noncurrent versions is set once the bucket is versioned (S3 applies lifecycle changes
            # asynchronously and refuses concurrent changes of one bucket's configuration).
            depends_on=[versioning],
        )
        buckets.bucket_policy(self, f"{name}-policy", bucket, bucket_block, [buckets.tls_only_statement(bucket.arn)])

        self.trail_arn = None
        self.buckets = (BucketRef(name=bucket.bucket, arn=bucket.arn, role=SOURCE_ROLE),)
        if cfg.trigger_mode == "eventbridge":
            # S3 sends every event of this bucket to the default bus; the DeployStage's rule picks the upload.
            aws.s3.BucketNotification(f"{name}-notification", bucket=bucket.id, eventbridge=True, opts=self.child())
        else:
            trail = SourceTrail(
                name,
                SourceTrailArgs(ctx, pulumi.Output.concat(bucket.arn, "/", cfg.source_object_key)),
                pulumi.ResourceOptions(parent=self),
                children_formerly_of=self,
            )
            self.trail_arn = trail.trail_arn
            self.buckets = (*self.buckets, trail.log_bucket)

        mode, key = cfg.trigger_mode, cfg.source_object_key
        self.source = SourceObject(
            bucket_name=bucket.bucket,
            bucket_arn=bucket.arn,
            key=key,
            event_pattern=bucket.bucket.apply(lambda b: json.dumps(event_pattern(mode, b, key))),
        )
        self.register_outputs(
            {
                "bucket_name": bucket.bucket,
                "bucket_arn": bucket.arn,
                "object_key": key,
                "event_pattern": self.source.event_pattern,
                "trail_arn": self.trail_arn,
            }
        )
