"""ArtifactStore on mocks: the pipeline's artifact bucket (private, encrypted, TLS-only, expiring, emptied by a
stack deletion only on dev), and the grants on it that ``__main__.py`` makes: read and write for the build
project, read only for the release project.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pytest

from components.artifact_store import ArtifactStore
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.aws import by_sid, parliament_findings, policy_of
from support.stacks import REGION, component, run, stack_config

PREFIX = bundles.PREFIX
BUILD_ROLE = f"{PREFIX}-build"
RELEASE_ROLE = f"{PREFIX}-release"


def build_store(*, force_destroy: bool = False, grants: Callable[[ArtifactStore], object] | None = None) -> ProgramRun:
    """The store of a stack (``forceDestroy`` as given), with the grants ``__main__.py`` makes unless ``grants``
    says otherwise."""
    ctx = stack_config({"appName": "shop", "forceDestroy": str(force_destroy).lower()}).context

    def main_grants(store: ArtifactStore) -> None:
        store.grant_read_write(bundles.role(BUILD_ROLE), purpose="build")
        store.grant_read(bundles.role(RELEASE_ROLE), purpose="release")

    def build() -> None:
        store = ArtifactStore("deploy", ctx)
        (grants or main_grants)(store)
        pulumi.export("bucketName", store.bucket_name)
        pulumi.export("bucketArn", store.bucket_arn)
        pulumi.export("objectsArn", store.objects_arn)
        pulumi.export("buckets", [{"name": b.name, "arn": b.arn, "role": b.role} for b in store.buckets])

    return run(build)


@pytest.fixture(scope="module")
def store() -> ProgramRun:
    return build_store()


def bucket_of(found: ProgramRun) -> Registration:
    return found.one(rt.S3_BUCKET)


def grant_of(found: ProgramRun, purpose: str) -> Registration:
    return found.one(rt.IAM_ROLE_POLICY, f"deploy-{purpose}-artifacts")


def test_artifact_bucket_is_private_encrypted_tls_only_and_expires(store: ProgramRun) -> None:
    bucket = bucket_of(store)
    arn = bucket.state["arn"]
    # Bucket names are global: the account and region make it this stack's.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    assert bucket.props["bucket"] == f"{PREFIX}-artifacts-{ACCOUNT_ID}-{REGION}"
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html
    block = store.one(rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK).props
    assert block["bucket"] == bucket.id
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html
    ownership = store.one(rt.S3_BUCKET_OWNERSHIP).props
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingServerSideEncryption.html
    encryption = store.one(rt.S3_BUCKET_ENCRYPTION).props
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    # TLS only: https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html#transit
    (deny,) = policy_of(store.one(rt.S3_BUCKET_POLICY))["Statement"]
    assert (deny["Effect"], deny["Action"], deny["Principal"]) == ("Deny", "s3:*", "*")
    assert deny["Resource"] == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lifecycle-mgmt.html
    rules = store.one(rt.S3_BUCKET_LIFECYCLE).props["rules"]
    assert all(rule["status"] == "Enabled" for rule in rules)
    expiring = [rule for rule in rules if "expiration" in rule]
    assert len(expiring) == 1 and expiring[0]["expiration"]["days"] > 0
    assert expiring[0]["filter"] == {}, "every artifact expires"


def test_the_bucket_policy_waits_for_the_public_access_block(store: ProgramRun) -> None:
    # S3 refuses concurrent changes to one bucket's configuration (OperationAborted):
    # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
    block = store.one(rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK)
    assert block.urn in store.one(rt.S3_BUCKET_POLICY).dependencies


def test_only_force_destroy_lets_a_stack_deletion_empty_the_artifact_bucket(store: ProgramRun) -> None:
    # forceDestroy: https://www.pulumi.com/registry/packages/aws/api-docs/s3/bucket/#forcedestroy_python
    assert bucket_of(store).props["forceDestroy"] is False
    dev = build_store(force_destroy=True)
    assert bucket_of(dev).props["forceDestroy"] is True
    # Artifacts are only one execution's inputs: the bucket is never protected, on any stack.
    assert not bucket_of(store).protect and not bucket_of(dev).protect


def test_the_store_names_its_bucket_and_objects(store: ProgramRun) -> None:
    bucket = bucket_of(store)
    assert store.outputs["bucketName"] == bucket.state["bucket"]
    assert store.outputs["bucketArn"] == bucket.state["arn"]
    assert store.outputs["objectsArn"] == f"{bucket.state['arn']}/*"


def test_the_store_hands_on_its_bucket_for_its_access_logs(store: ProgramRun) -> None:
    """``ArtifactStore.buckets``: the artifact bucket, under the role its name carries (the prefix of its S3
    access logs, which ``__main__.py`` has S3AccessLogs write)."""
    bucket = bucket_of(store)
    assert store.outputs["buckets"] == [
        {"name": bucket.state["bucket"], "arn": bucket.state["arn"], "role": "artifacts"}
    ]
    assert bucket.state["bucket"] == f"{PREFIX}-artifacts-{ACCOUNT_ID}-{REGION}"


# --- Grants ---------------------------------------------------------------------------------------------------


def test_build_role_may_use_the_artifact_bucket_only(store: ProgramRun) -> None:
    # The build reads its input artifact and writes its output one:
    # https://docs.aws.amazon.com/codepipeline/latest/userguide/security-iam.html#how-to-custom-role
    grant = grant_of(store, "build")
    assert grant.props["role"] == BUILD_ROLE
    artifacts = bucket_of(store).state["arn"]
    doc = policy_of(grant)
    resources = sorted(r for s in doc["Statement"] for r in s["Resource"])
    assert resources == [artifacts, f"{artifacts}/*"]
    objects = by_sid(doc)["ArtifactObjects"]
    assert objects["Resource"] == [f"{artifacts}/*"]
    assert {"s3:GetObject", "s3:PutObject"} <= set(objects["Action"])


def test_release_role_reads_the_artifacts_and_writes_nothing(store: ProgramRun) -> None:
    """The release project reads the build's artifact (imageDetail.json names the image) and nothing else."""
    grant = grant_of(store, "release")
    assert grant.props["role"] == RELEASE_ROLE
    artifacts = bucket_of(store).state["arn"]
    doc = by_sid(policy_of(grant))
    assert doc["ReadArtifacts"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert doc["ReadArtifacts"]["Resource"] == [f"{artifacts}/*"]
    actions = [a for s in doc.values() for a in s["Action"]]
    assert not [a for a in actions if a.startswith("s3:Put") or a.startswith("s3:Delete")]
    assert all(r in (artifacts, f"{artifacts}/*") for s in doc.values() for r in s["Resource"])


def test_grants_belong_to_the_store_and_are_named_by_purpose(store: ProgramRun) -> None:
    """The grant goes when the bucket goes: it is the store's child, whoever's the role is."""
    owner = component(store, "ArtifactStore")
    assert [grant_of(store, p).parent for p in ("build", "release")] == [owner.urn, owner.urn]


def test_each_role_gets_only_the_grant_asked_for() -> None:
    def only_release(store: ArtifactStore) -> None:
        store.grant_read(bundles.role(RELEASE_ROLE), purpose="release")

    found = build_store(grants=only_release)
    assert [(p.name, p.props["role"]) for p in found.of_type(rt.IAM_ROLE_POLICY)] == [
        ("deploy-release-artifacts", RELEASE_ROLE)
    ]


def test_two_grants_to_one_role_keep_both_policies() -> None:
    # An inline policy is identified by its role and its name: a second PutRolePolicy with the same name replaces
    # the first. https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html
    def twice(store: ArtifactStore) -> None:
        role = bundles.role(BUILD_ROLE)
        store.grant_read_write(role, purpose="build")
        store.grant_read(role, purpose="audit")

    found = build_store(grants=twice)
    grants = found.of_type(rt.IAM_ROLE_POLICY)
    assert sorted(p.name for p in grants) == ["deploy-audit-artifacts", "deploy-build-artifacts"]
    assert len({(p.props["role"], p.props["name"]) for p in grants}) == 2, "one would overwrite the other in IAM"


def test_every_grant_passes_parliament(store: ProgramRun) -> None:
    grants = store.of_type(rt.IAM_ROLE_POLICY)
    assert len(grants) == 2
    for reg in grants:
        assert parliament_findings(reg.props["policy"]) == [], reg.name
