"""S3 buckets the way every bucket of this program is built: private, encrypted, TLS-only, globally unique.

Shared by SourceBucket (source and CloudTrail log buckets) and DeployStage (artifact store). Children are named
from the ``name`` given and parented to the calling component.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam

BUCKET_NAME_MAX = 63
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


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
    parent: pulumi.Resource,
    name: str,
    physical_name: pulumi.Input[str],
    *,
    force_destroy: bool,
    protect: bool = False,
) -> tuple[aws.s3.Bucket, aws.s3.BucketPublicAccessBlock]:
    """A bucket only this account reaches: encrypted, owner-enforced, every kind of public access blocked.

    ``protect`` protects the bucket itself (the data); its settings stay unprotected, as they hold none.
    """
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(
        name,
        bucket=physical_name,
        force_destroy=force_destroy,
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
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
    parent: pulumi.Resource,
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
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[block]),
    )
