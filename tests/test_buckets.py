"""components/buckets.py, the builders every bucket of the program is made with: a private bucket and its
settings, its policy, its lifecycle rules, and its globally unique name.

A small component of this module's own (``BucketOwner``) uses the builders the way SourceBucket, LoadBalancer and
ArtifactStore do, and runs on the offline engine. The settings replayed against the S3 API (botocore's model,
then moto) are in ``tests/test_source_bucket.py``, whose buckets use every builder here.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pulumi
import pytest

from components import buckets
from components.base import Component
from offline.engine import ACCOUNT_ID, ProgramRun
from policy import resource_types as rt
from support.aws import parliament_findings, policy_of, statement
from support.stacks import REGION, component, descendants, run

PHYSICAL_NAME = f"shop-dev-test-{ACCOUNT_ID}-{REGION}"
EXPIRE_DAYS = 7
NONCURRENT_DAYS = 30
# A statement besides the TLS-only one: the policy must carry every statement it is given, in order.
READ_STATEMENT_SID = "ReadByTheAccount"


class BucketOwner(Component):
    """A component owning one bucket made with every builder of ``components.buckets``."""

    def __init__(self, name: str, *, protect: bool, force_destroy: bool) -> None:
        super().__init__(name)
        bucket, block = buckets.private_bucket(
            self, f"{name}-bucket", PHYSICAL_NAME, force_destroy=force_destroy, protect=protect
        )
        reader = {
            "Sid": READ_STATEMENT_SID,
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "s3:GetObject",
            "Resource": pulumi.Output.concat(bucket.arn, "/*"),
        }
        buckets.bucket_policy(self, f"{name}-policy", bucket, block, [buckets.tls_only_statement(bucket.arn), reader])
        versioning = buckets.versioning(self, f"{name}-versioning", bucket)
        buckets.lifecycle(
            self,
            f"{name}-lifecycle",
            bucket,
            buckets.expire_objects("expire-objects", EXPIRE_DAYS),
            buckets.expire_noncurrent_versions("expire-noncurrent", NONCURRENT_DAYS),
            buckets.abort_incomplete_uploads(),
            depends_on=[versioning],
        )
        self.register_outputs({"bucket_name": bucket.bucket, "bucket_arn": bucket.arn})


def owner_run(*, protect: bool = True, force_destroy: bool = False) -> ProgramRun:
    return run(lambda: BucketOwner("owner", protect=protect, force_destroy=force_destroy))


@pytest.fixture(scope="module")
def owned() -> ProgramRun:
    return owner_run()


def setting(found: ProgramRun, typ: str) -> dict[str, Any]:
    """The props of the one setting of ``typ`` on the bucket (by the id the bucket was given)."""
    bucket = found.named("owner-bucket")
    matches = [r for r in found.of_type(typ) if r.props.get("bucket") == bucket.id]
    assert len(matches) == 1, f"expected one {typ} on the bucket, found {[r.name for r in matches]}"
    return matches[0].props


# --- private_bucket -----------------------------------------------------------------------------------------


def test_private_bucket_is_encrypted_owner_enforced_and_never_public(owned: ProgramRun) -> None:
    # SSE-S3 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingServerSideEncryption.html), and SSE-C
    # refused explicitly (https://docs.aws.amazon.com/AmazonS3/latest/userguide/blocking-unblocking-s3-c-encryption-gpb.html).
    encryption = setting(owned, rt.S3_BUCKET_ENCRYPTION)
    assert [r["applyServerSideEncryptionByDefault"] for r in encryption["rules"]] == [{"sseAlgorithm": "AES256"}]
    assert encryption["rules"][0]["blockedEncryptionTypes"] == ["SSE-C"]
    # ACLs disabled: the bucket owner owns every object, whoever wrote it
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html).
    assert setting(owned, rt.S3_BUCKET_OWNERSHIP)["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    # All four settings of S3 Block Public Access
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html).
    block = setting(owned, rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK)
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert {f: block.get(f) for f in flags} == dict.fromkeys(flags, True)
    assert owned.named("owner-bucket").props["bucket"] == PHYSICAL_NAME


@pytest.mark.parametrize("protect", [True, False])
def test_protect_protects_the_bucket_and_none_of_its_settings(protect: bool) -> None:
    found = owner_run(protect=protect)
    bucket = found.named("owner-bucket")
    assert bucket.protect is protect
    # The settings hold no data: they stay unprotected, so a change of them never needs `pulumi state unprotect`.
    assert {r.name for r in found.resources if r.protect} == ({bucket.name} if protect else set())


@pytest.mark.parametrize("force_destroy", [False, True])
def test_force_destroy_reaches_the_bucket(force_destroy: bool) -> None:
    found = owner_run(protect=not force_destroy, force_destroy=force_destroy)
    assert found.named("owner-bucket").props["forceDestroy"] is force_destroy


def test_children_are_named_from_the_name_given_and_parented_to_the_owner(owned: ProgramRun) -> None:
    owner = component(owned, "BucketOwner")
    children = descendants(owned, owner)
    # Bucket, ownership, encryption, public-access block, policy, versioning, lifecycle.
    assert len(children) == 7
    for child in children:
        assert child.name.startswith("owner-"), child.name
        assert child.parent == owner.urn, child.name


# --- bucket_policy and tls_only_statement -------------------------------------------------------------------


def test_tls_only_statement_denies_every_request_without_tls_to_the_bucket_and_its_objects() -> None:
    # aws:SecureTransport is "false" on a plain-HTTP request; a Deny on it, for everyone and every S3 action,
    # is AWS's documented way to require TLS
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html).
    arn = "arn:aws:s3:::a-bucket"
    deny = buckets.tls_only_statement(arn)
    assert deny["Sid"] == "DenyInsecureTransport"
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # The bucket (bucket-level calls) and every object in it (object-level calls): the second resolves to
    # f"{arn}/*" (test_bucket_policy_holds_the_statements_given_scoped_to_the_bucket).
    assert len(deny["Resource"]) == 2 and deny["Resource"][0] == arn


def test_bucket_policy_holds_the_statements_given_scoped_to_the_bucket(owned: ProgramRun) -> None:
    policy = owned.one(rt.S3_BUCKET_POLICY)
    bucket = owned.named("owner-bucket")
    assert policy.props["bucket"] == bucket.id
    doc = policy_of(policy)
    assert doc["Version"] == "2012-10-17"
    assert [s["Sid"] for s in doc["Statement"]] == ["DenyInsecureTransport", READ_STATEMENT_SID]
    arn = bucket.state["arn"]
    assert statement(doc, "DenyInsecureTransport")["Resource"] == [arn, f"{arn}/*"]
    assert statement(doc, READ_STATEMENT_SID)["Resource"] == f"{arn}/*"
    assert parliament_findings(policy.props["policy"]) == []


def test_bucket_policy_waits_for_the_public_access_block(owned: ProgramRun) -> None:
    # S3 refuses concurrent changes of one bucket's configuration (OperationAborted, "A conflicting conditional
    # operation is currently in progress", https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html),
    # and with BlockPublicPolicy a policy is checked against the block.
    policy = owned.one(rt.S3_BUCKET_POLICY)
    block = owned.one(rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK)
    assert block.urn in policy.dependencies


# --- Lifecycle rules ----------------------------------------------------------------------------------------


def rules_by_id(found: ProgramRun) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in setting(found, rt.S3_BUCKET_LIFECYCLE)["rules"]}


def test_every_lifecycle_rule_is_enabled_and_covers_the_whole_bucket(owned: ProgramRun) -> None:
    # An empty filter applies a rule to every object of the bucket
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-filters.html).
    rules = rules_by_id(owned)
    assert len(rules) == 3
    assert all(r["status"] == "Enabled" and r["filter"] == {} for r in rules.values()), rules


def test_each_rule_builder_does_one_thing(owned: ProgramRun) -> None:
    rules = rules_by_id(owned)
    actions = ("expiration", "noncurrentVersionExpiration", "abortIncompleteMultipartUpload")
    assert {rule_id: [a for a in actions if a in r] for rule_id, r in rules.items()} == {
        "expire-objects": ["expiration"],
        "expire-noncurrent": ["noncurrentVersionExpiration"],
        "abort-incomplete-multipart-uploads": ["abortIncompleteMultipartUpload"],
    }
    # Current objects expire so many days after they were written; noncurrent versions so many days after a newer
    # version replaced them (https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html).
    assert rules["expire-objects"]["expiration"] == {"days": EXPIRE_DAYS}
    assert rules["expire-noncurrent"]["noncurrentVersionExpiration"] == {"noncurrentDays": NONCURRENT_DAYS}


def test_incomplete_multipart_uploads_are_aborted_after_a_day(owned: ProgramRun) -> None:
    # Parts of an upload never completed are billed and invisible in listings until aborted
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html).
    rule = rules_by_id(owned)["abort-incomplete-multipart-uploads"]
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}
    assert buckets.ABORT_INCOMPLETE_UPLOADS_DAYS == 1


def test_the_lifecycle_is_one_configuration_per_bucket_and_waits_for_what_it_is_told(owned: ProgramRun) -> None:
    # S3 keeps one lifecycle configuration per bucket: PutBucketLifecycleConfiguration replaces the whole of it
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketLifecycleConfiguration.html).
    [lifecycle] = owned.of_type(rt.S3_BUCKET_LIFECYCLE)
    assert owned.named("owner-versioning").urn in lifecycle.dependencies


# --- Bucket names -------------------------------------------------------------------------------------------


def assert_valid_bucket_name(name: str) -> None:
    """The general purpose bucket naming rules of the S3 User Guide
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html)."""
    assert 3 <= len(name) <= 63, name
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name), name
    assert ".." not in name, name
    assert not name.startswith(("xn--", "sthree-", "amzn-s3-demo-")), name
    assert not name.endswith(("-s3alias", "--ol-s3", "--x-s3", "--table-s3")), name
    with pytest.raises(ValueError):
        ipaddress.ip_address(name)


PREFIXES = ["a-b", "sample-app-dev", "abcdefghijklmnopqrst-dev", "x" * 20 + "-staging", "y" * 40 + "-prod"]
REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2", "us-gov-west-1"]
ROLES = ["source", "trail", "artifacts", "alb-logs"]


@pytest.mark.parametrize("region", REGIONS)
def test_bucket_names_are_valid_and_distinct_for_every_prefix_role_and_region(region: str) -> None:
    names = {
        (prefix, role): buckets.physical_bucket_name(prefix, role, ACCOUNT_ID, region)
        for prefix in PREFIXES
        for role in ROLES
    }
    for name in names.values():
        assert_valid_bucket_name(name)
    assert len(set(names.values())) == len(names)
    # Shortened names still differ when only the cut part of two prefixes differs.
    long_a = buckets.physical_bucket_name("z" * 50 + "-a", "source", ACCOUNT_ID, region)
    long_b = buckets.physical_bucket_name("z" * 50 + "-b", "source", ACCOUNT_ID, region)
    assert long_a != long_b
    assert_valid_bucket_name(long_a)
    # A shortened name still names its role, account and region: unique to this stack in this account.
    assert long_a.endswith(f"-source-{ACCOUNT_ID}-{region}")


def test_bucket_names_are_readable_when_they_fit() -> None:
    assert buckets.physical_bucket_name("sample-app-dev", "source", ACCOUNT_ID, "eu-west-1") == (
        f"sample-app-dev-source-{ACCOUNT_ID}-eu-west-1"
    )


@pytest.mark.parametrize("prefix", ["Shop-dev", "shop_dev", "shop-"])
def test_a_prefix_that_cannot_make_a_bucket_name_is_refused_by_name(prefix: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(prefix))):
        buckets.physical_bucket_name(prefix, "source", ACCOUNT_ID, REGION)
