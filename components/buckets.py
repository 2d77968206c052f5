"""S3 buckets the way every bucket of this program is built: private, encrypted, TLS-only, globally unique,
with lifecycle rules made one way.

Shared by SourceBucket (source), SourceTrail (CloudTrail log files), LoadBalancer (ALB access logs), ArtifactStore
and S3AccessLogs (S3 server access logs). Each hands its buckets on as ``BucketRef``s, for the S3 access logs.
Children are named from the ``name`` given and parented to the calling component.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam
from components.base import Component

BUCKET_NAME_MAX = 63
# Incomplete multipart uploads are invisible in listings yet billed; an upload that died is retried by whoever
# made it, so its parts are useless after a day.
ABORT_INCOMPLETE_UPLOADS_DAYS = 1
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BucketRef:
    """A bucket of the stack as another component needs it: the S3 access-log bucket, to log its requests."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    role: str
    """What it holds, as in its physical name (``source``, ``artifacts``...): unique in the stack, the prefix of
    its access logs."""


def physical_bucket_name(prefix: str, role: str, account_id: str, region: str) -> str:
    """A global S3 bucket name ``<prefix>-<role>-<account>-<region>``, unlikely to be taken by anyone else.

    Bucket names are global across all AWS accounts: the account id and region make the name unique to this
    stack in this account. When that would exceed 63 characters, the prefix is shortened and a hash of the
    full name keeps the result unique.
    """
    full = f"{prefix}-{role}-{account_id}-{region}"
    if len(full) <= BUCKET_NAME_MAX:
        name = full
    else:
        digest = hashlib.sha256(full.encode()).hexdigest()[:8]
        tail = f"-{digest}-{role}-{account_id}-{region}"
        name = f"{prefix[: BUCKET_NAME_MAX - len(tail)].rstrip('-')}{tail}"
    if not _BUCKET_NAME.match(name) or "--" in name:
        raise ValueError(f"{name!r} is not a valid S3 bucket name (from prefix {prefix!r}, region {region!r})")
    return name


def stack_bucket_name(owner: Component, prefix: str, role: str) -> pulumi.Output[str]:
    """``physical_bucket_name`` in the account and region the owner's provider deploys to."""
    account_id = aws.get_caller_identity_output(opts=owner.lookup()).account_id
    region = aws.get_region_output(opts=owner.lookup()).region
    return pulumi.Output.all(account_id, region).apply(lambda v: physical_bucket_name(prefix, role, v[0], v[1]))


def tls_only_statement(bucket_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Denies every request to the bucket and its objects that is not made over TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def private_bucket(
    owner: Component,
    name: str,
    physical_name: pulumi.Input[str],
    *,
    force_destroy: bool,
    protect: bool = False,
) -> tuple[aws.s3.Bucket, aws.s3.BucketPublicAccessBlock]:
    """A bucket only this account reaches: encrypted, owner-enforced, every kind of public access blocked.

    ``protect`` protects the bucket itself (the data); its settings stay unprotected, as they hold none.
    """
    child = owner.child()
    bucket = aws.s3.Bucket(
        name,
        bucket=physical_name,
        force_destroy=force_destroy,
        opts=owner.child(protect=protect),
    )
    # ACLs disabled: the bucket owner owns every object, whoever wrote it (CloudTrail, the GitLab job).
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=child,
    )
    # SSE-S3 rather than KMS: every reader (CodePipeline, the uploader, CloudTrail) works without key grants,
    # and there is no key to pay for. SSE-C is refused explicitly (no upload can use a key AWS does not hold)
    # rather than left to the default AWS applies to new buckets, which changed in 2026.
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                ),
                blocked_encryption_types=["SSE-C"],
            )
        ],
        opts=child,
    )
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    return bucket, block


def bucket_policy(
    owner: Component,
    name: str,
    bucket: aws.s3.Bucket,
    block: aws.s3.BucketPublicAccessBlock,
    statements: list[dict[str, Any]],
) -> aws.s3.BucketPolicy:
    return aws.s3.BucketPolicy(
        name,
        bucket=bucket.id,
        policy=iam.policy_document(*statements),
        # S3 refuses concurrent changes to one bucket's configuration (OperationAborted); the policy waits
        # for the public-access block, which also proves the policy is not public.
        opts=owner.child(depends_on=[block]),
    )


# --- Lifecycle rules ---------------------------------------------------------------------------------------


def _whole_bucket() -> aws.s3.BucketLifecycleConfigurationRuleFilterArgs:
    """An empty filter: the rule applies to every object of the bucket."""
    return aws.s3.BucketLifecycleConfigurationRuleFilterArgs()


def expire_objects(rule_id: str, days: int) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    """Every object is deleted ``days`` after it was written."""
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id=rule_id,
        status="Enabled",
        filter=_whole_bucket(),
        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days),
    )


def expire_noncurrent_versions(rule_id: str, days: int) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    """A version is deleted ``days`` after a newer one replaced it (the current version stays)."""
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id=rule_id,
        status="Enabled",
        filter=_whole_bucket(),
        noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
            noncurrent_days=days
        ),
    )


def abort_incomplete_uploads() -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id="abort-incomplete-multipart-uploads",
        status="Enabled",
        filter=_whole_bucket(),
        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
            days_after_initiation=ABORT_INCOMPLETE_UPLOADS_DAYS
        ),
    )


def versioning(owner: Component, name: str, bucket: aws.s3.Bucket) -> aws.s3.BucketVersioning:
    """Versioning on: every overwrite keeps the previous object as a noncurrent version."""
    return aws.s3.BucketVersioning(
        name,
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        opts=owner.child(),
    )


def lifecycle(
    owner: Component,
    name: str,
    bucket: aws.s3.Bucket,
    *rules: aws.s3.BucketLifecycleConfigurationRuleArgs,
    depends_on: list[pulumi.Resource] | None = None,
) -> aws.s3.BucketLifecycleConfiguration:
    """The bucket's lifecycle configuration (one per bucket: S3 keeps only the last one written)."""
    return aws.s3.BucketLifecycleConfiguration(
        name,
        bucket=bucket.id,
        rules=list(rules),
        opts=owner.child(depends_on=depends_on),
    )
