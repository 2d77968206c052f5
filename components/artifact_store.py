"""ArtifactStore: the pipeline's artifact bucket, and the grants on it.

Artifacts are only inputs of one execution; a re-run of an older execution rebuilds from its source version, so
they are kept for a month only and the bucket is never protected. But only dev (``force_destroy``) lets
``pulumi destroy`` empty it: elsewhere a deletion stops at a non-empty bucket, like every bucket of the stack,
until someone empties it on purpose.

With a customer-managed key (the BuildStage's, ``buildEncryptionKey``) the pipeline writes its artifacts under
that key, and every grant on the artifacts includes the use of the key: S3 asks KMS for a data key on a write
and for a decryption on a read, on behalf of the caller, who needs ``kms:GenerateDataKey`` and ``kms:Decrypt``
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html, "Permissions").
Without one the artifacts are encrypted with the AWS-managed ``aws/s3`` key, which every role of the account may
use through S3.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components import buckets, iam
from components.base import Component, StackContext
from components.buckets import BucketRef

ARTIFACT_EXPIRY_DAYS = 30
ROLE = "artifacts"
"""The bucket's role in its physical name and in the stack's S3 access logs."""
BUCKET_METADATA = ["s3:GetBucketAcl", "s3:GetBucketLocation"]
READ_OBJECTS = ["s3:GetObject", "s3:GetObjectVersion"]
# What a reader and a writer of SSE-KMS objects need of the key (a multipart upload decrypts its parts too).
KEY_READ = ["kms:Decrypt"]
KEY_READ_WRITE = ["kms:Decrypt", "kms:GenerateDataKey"]


class ArtifactStore(Component):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    objects_arn: pulumi.Output[str]
    """``<bucket ARN>/*``: every artifact."""
    buckets: tuple[BucketRef, ...]
    """The artifact bucket (for the stack's S3 access logs)."""
    key_arn: pulumi.Output[str] | None
    """The customer-managed key the artifacts are encrypted with (``None``: the AWS-managed ``aws/s3``)."""

    def __init__(
        self,
        name: str,
        context: StackContext,
        opts: pulumi.ResourceOptions | None = None,
        *,
        key_arn: pulumi.Output[str] | None = None,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        super().__init__(name, opts, children_formerly_of=children_formerly_of)
        self.key_arn = key_arn
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        physical_name = account_id.apply(
            lambda account: buckets.physical_bucket_name(context.name_prefix, ROLE, account, context.region)
        )
        bucket, block = buckets.private_bucket(
            self, f"{name}-artifacts", physical_name, force_destroy=context.force_destroy
        )
        buckets.bucket_policy(
            self, f"{name}-artifacts-tls-only", bucket, block, [buckets.tls_only_statement(bucket.arn)]
        )
        buckets.lifecycle(
            self,
            f"{name}-artifacts-expiry",
            bucket,
            buckets.expire_objects("expire-artifacts", ARTIFACT_EXPIRY_DAYS),
            buckets.abort_incomplete_uploads(),
        )
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.objects_arn = pulumi.Output.concat(bucket.arn, "/*")
        self.buckets = (BucketRef(name=bucket.bucket, arn=bucket.arn, role=ROLE),)
        self.register_outputs({"bucket_name": self.bucket_name})

    @property
    def encryption_key(self) -> aws.codepipeline.PipelineArtifactStoreEncryptionKeyArgs | None:
        """The key a pipeline's artifact store names, so that CodePipeline writes with it too (``None``: aws/s3)."""
        if self.key_arn is None:
            return None
        return aws.codepipeline.PipelineArtifactStoreEncryptionKeyArgs(id=self.key_arn, type="KMS")

    def key_statements(self, actions: list[str], *, sid: str) -> list[dict[str, Any]]:
        """The use of the artifacts' key (none without one): for a role that reads or writes artifacts."""
        return [] if self.key_arn is None else [iam.allow(actions, [self.key_arn], sid=sid)]

    def grant_read_write(self, role: iam.RoleRef, purpose: str) -> aws.iam.RolePolicy:
        """Lets ``role`` read and write artifacts (a project that produces one): the inline policy
        ``pipeline-artifacts-<purpose>`` on the role, a child ``<name>-<purpose>-artifacts`` of this store."""
        return self._grant(role, purpose, [*READ_OBJECTS, "s3:PutObject"], KEY_READ_WRITE, sid="ArtifactObjects")

    def grant_read(self, role: iam.RoleRef, purpose: str) -> aws.iam.RolePolicy:
        """Lets ``role`` read artifacts (a project that only consumes one)."""
        return self._grant(role, purpose, READ_OBJECTS, KEY_READ, sid="ReadArtifacts")

    def _grant(
        self, role: iam.RoleRef, purpose: str, actions: list[str], key_actions: list[str], *, sid: str
    ) -> aws.iam.RolePolicy:
        return iam.grant(
            self,
            f"{self.component_name}-{purpose}-artifacts",
            role,
            [
                iam.allow(BUCKET_METADATA, [self.bucket_arn], sid="ArtifactBucket"),
                iam.allow(actions, [self.objects_arn], sid=sid),
                *self.key_statements(key_actions, sid="ArtifactKey"),
            ],
            # One IAM name per grant: two grants to one role under one name would overwrite each other.
            policy_name=f"pipeline-artifacts-{purpose}",
        )
