"""SourceBucket: the bucket's settings on mocks, the same settings replayed against the S3 and CloudTrail APIs
(botocore's models, then moto), and each mode's event pattern against real events of that mode: an upload to a
moto bucket sending EventBridge notifications, and CloudTrail records as CloudTrail delivers them.
"""

from __future__ import annotations

import ipaddress
import json
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws
from moto.events.models import EventPattern
from parliament import analyze_policy_string

from components.buckets import physical_bucket_name
from components.source_bucket import (
    ABORT_INCOMPLETE_UPLOADS_DAYS,
    WRITE_EVENT_NAMES,
    event_pattern,
)
from offline.engine import ACCOUNT_ID, ProgramRun, Registration, run_program
from offline.stack_files import StackFiles
from policy import rules

REGION = "eu-west-1"
KEY = "docker-image/docker_image.zip"
RETENTION = 30

PROGRAM = """
import pulumi
from components.source_bucket import SourceBucket, SourceBucketArgs

for spec in pulumi.Config().require_object("sources"):
    source = SourceBucket(spec["name"], SourceBucketArgs(
        name_prefix=spec["prefix"], object_key=spec["key"], trigger_mode=spec["mode"],
        log_retention_days=spec["days"], force_destroy=spec.get("forceDestroy", False),
    ))
    pulumi.export(spec["name"], {
        "bucketName": source.bucket_name, "bucketArn": source.bucket_arn, "objectKey": source.object_key,
        "eventPattern": source.event_pattern, "trailArn": source.trail_arn,
    })
"""


def source(
    name: str, mode: str, prefix: str = "shop-dev", key: str = KEY, force_destroy: bool | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "prefix": prefix, "key": key, "mode": mode, "days": RETENTION}
    if force_destroy is not None:
        spec["forceDestroy"] = force_destroy
    return spec


def run_sources(tmp_path: Path, *sources: dict[str, Any]) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {"aws:region": REGION, "gitlab-fargate:sources": json.dumps(list(sources))}
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def eventbridge(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_sources(tmp_path_factory.mktemp("eventbridge"), source("source", "eventbridge"))


@pytest.fixture(scope="module")
def cloudtrail(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_sources(tmp_path_factory.mktemp("cloudtrail"), source("source", "cloudtrail"))


@pytest.fixture(params=["eventbridge", "cloudtrail"])
def either(request: pytest.FixtureRequest) -> ProgramRun:
    run: ProgramRun = request.getfixturevalue(request.param)
    return run


def policy_of(reg: Registration) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(reg.props["policy"])
    return doc


def statement(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in doc["Statement"] if s.get("Sid") == sid)
    return found


def setting_of(run: ProgramRun, typ: str, bucket: Registration) -> Registration:
    """The one setting resource of ``typ`` that configures ``bucket`` (by the id the bucket was given)."""
    found = [r for r in run.of_type(typ) if r.props.get("bucket") == bucket.id]
    assert len(found) == 1, f"{bucket.name}: expected one {typ}, found {[r.name for r in found]}"
    return found[0]


# --- The source bucket ----------------------------------------------------------------------------------


def test_source_bucket_is_versioned_encrypted_owner_enforced_and_never_public(either: ProgramRun) -> None:
    bucket = either.named("source-bucket")
    versioning = setting_of(either, "aws:s3/bucketVersioning:BucketVersioning", bucket).props
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    encryption = setting_of(
        either,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        bucket,
    ).props
    assert [r["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for r in encryption["rules"]] == ["AES256"]
    assert encryption["rules"][0]["blockedEncryptionTypes"] == ["SSE-C"]
    ownership = setting_of(either, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", bucket).props
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    block = setting_of(either, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket).props
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert {f: block.get(f) for f in flags} == dict.fromkeys(flags, True)


def test_source_bucket_denies_every_request_not_made_over_tls(either: ProgramRun) -> None:
    bucket = either.named("source-bucket")
    arn = bucket.state["arn"]
    policy = setting_of(either, "aws:s3/bucketPolicy:BucketPolicy", bucket)
    deny = statement(policy_of(policy), "DenyInsecureTransport")
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert sorted(deny["Resource"]) == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Nothing else: the pipeline's and the uploader's roles get their access from their own policies.
    assert len(policy_of(policy)["Statement"]) == 1
    # S3 would refuse the policy while it also changes the public-access block.
    block = setting_of(either, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
    assert block.urn in policy.dependencies


def test_superseded_versions_expire_and_abandoned_uploads_are_aborted(either: ProgramRun) -> None:
    bucket = either.named("source-bucket")
    lifecycle = setting_of(either, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket)
    rules_ = lifecycle.props["rules"]
    assert all(r["status"] == "Enabled" and r["filter"] == {} for r in rules_), "every rule covers the whole bucket"
    assert [r["noncurrentVersionExpiration"] for r in rules_ if "noncurrentVersionExpiration" in r] == [
        {"noncurrentDays": RETENTION}
    ]
    assert [r["abortIncompleteMultipartUpload"] for r in rules_ if "abortIncompleteMultipartUpload" in r] == [
        {"daysAfterInitiation": ABORT_INCOMPLETE_UPLOADS_DAYS}
    ]
    # The current version (what the pipeline reads) never expires.
    assert not any("expiration" in r for r in rules_)
    assert either.named("source-versioning").urn in lifecycle.dependencies


def test_bucket_name_is_global_unique_per_account_and_region(either: ProgramRun) -> None:
    name = either.named("source-bucket").props["bucket"]
    assert ACCOUNT_ID in name and REGION in name and name.startswith("shop-dev-")
    assert_valid_bucket_name(name)


# --- Deletion protection ---------------------------------------------------------------------------------


def test_by_default_the_buckets_are_protected_and_never_emptied(either: ProgramRun) -> None:
    buckets = either.of_type("aws:s3/bucket:Bucket")
    assert buckets
    for bucket in buckets:
        assert bucket.protect is True, bucket.name
        assert bucket.props["forceDestroy"] is False, bucket.name
    # Exactly the buckets: their settings hold no data (and a protected component would protect every child).
    assert {r.name for r in either.resources if r.protect} == {b.name for b in buckets}


@pytest.mark.parametrize("force_destroy", [False, True])
def test_force_destroy_lets_pulumi_destroy_empty_and_delete_every_bucket(tmp_path: Path, force_destroy: bool) -> None:
    run = run_sources(tmp_path, source("source", "cloudtrail", force_destroy=force_destroy))
    buckets = run.of_type("aws:s3/bucket:Bucket")
    assert {b.name for b in buckets} == {"source-bucket", "source-trail-logs"}
    for bucket in buckets:
        assert bucket.props["forceDestroy"] is force_destroy, bucket.name
        assert bucket.protect is not force_destroy, bucket.name


# --- The two modes -------------------------------------------------------------------------------------


def test_eventbridge_mode_sends_the_bucket_events_to_eventbridge_and_has_no_trail(eventbridge: ProgramRun) -> None:
    bucket = eventbridge.named("source-bucket")
    notification = setting_of(eventbridge, "aws:s3/bucketNotification:BucketNotification", bucket).props
    assert notification["eventbridge"] is True
    # EventBridge delivery only: no queue, topic or function receives the bucket's events.
    assert not any(notification.get(k) for k in ("queues", "topics", "lambdaFunctions"))
    assert eventbridge.of_type("aws:cloudtrail/trail:Trail") == []
    assert len(eventbridge.of_type("aws:s3/bucket:Bucket")) == 1
    assert eventbridge.outputs["source"]["trailArn"] is None


def test_cloudtrail_mode_logs_only_writes_of_exactly_the_source_object(cloudtrail: ProgramRun) -> None:
    assert cloudtrail.of_type("aws:s3/bucketNotification:BucketNotification") == []
    trail = cloudtrail.one("aws:cloudtrail/trail:Trail").props
    assert trail["isMultiRegionTrail"] is False
    assert trail["includeGlobalServiceEvents"] is False
    assert trail["enableLogFileValidation"] is True
    # Advanced selectors only: classic ones would match the ARN as a prefix (and log management events).
    assert not trail.get("eventSelectors")
    [selector] = trail["advancedEventSelectors"]
    fields = {f["field"]: f for f in selector["fieldSelectors"]}
    # Each field is an exact match, never a prefix or a negation.
    assert all(set(f) == {"field", "equals"} for f in fields.values())
    source_arn = cloudtrail.named("source-bucket").state["arn"]
    assert fields["resources.ARN"]["equals"] == [f"{source_arn}/{KEY}"]
    assert fields["resources.type"]["equals"] == ["AWS::S3::Object"]
    assert fields["eventCategory"]["equals"] == ["Data"]
    assert fields["readOnly"]["equals"] == ["false"]
    assert sorted(fields["eventName"]["equals"]) == sorted(WRITE_EVENT_NAMES)
    assert cloudtrail.outputs["source"]["trailArn"] == cloudtrail.one("aws:cloudtrail/trail:Trail").state["arn"]


def test_trail_log_bucket_is_secured_and_its_logs_expire(cloudtrail: ProgramRun) -> None:
    logs = cloudtrail.named("source-trail-logs")
    assert cloudtrail.one("aws:cloudtrail/trail:Trail").props["s3BucketName"] == logs.props["bucket"]
    assert_valid_bucket_name(logs.props["bucket"])
    encryption = setting_of(
        cloudtrail,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        logs,
    ).props
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    block = setting_of(cloudtrail, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", logs).props
    assert all(
        block[f] is True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    ownership = setting_of(cloudtrail, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", logs).props
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    lifecycle = setting_of(cloudtrail, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", logs)
    assert [r["expiration"] for r in lifecycle.props["rules"] if "expiration" in r] == [{"days": RETENTION}]
    policy = policy_of(setting_of(cloudtrail, "aws:s3/bucketPolicy:BucketPolicy", logs))
    deny = statement(policy, "DenyInsecureTransport")
    arn = logs.state["arn"]
    assert sorted(deny["Resource"]) == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_trail_log_bucket_admits_only_this_trail(cloudtrail: ProgramRun) -> None:
    trail = cloudtrail.one("aws:cloudtrail/trail:Trail")
    logs = cloudtrail.named("source-trail-logs")
    policy_reg = setting_of(cloudtrail, "aws:s3/bucketPolicy:BucketPolicy", logs)
    allows = [s for s in policy_of(policy_reg)["Statement"] if s["Effect"] == "Allow"]
    assert {s["Action"] for s in allows} == {"s3:GetBucketAcl", "s3:PutObject"}
    for s in allows:
        assert s["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        # The ARN the program builds (to avoid a cycle) is the ARN AWS gives the trail.
        assert s["Condition"]["StringEquals"]["aws:SourceArn"] == trail.state["arn"]
    write = next(s for s in allows if s["Action"] == "s3:PutObject")
    assert write["Resource"] == f"{logs.state['arn']}/AWSLogs/{ACCOUNT_ID}/*"
    assert write["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"
    acl_check = next(s for s in allows if s["Action"] == "s3:GetBucketAcl")
    assert acl_check["Resource"] == logs.state["arn"]
    # CloudTrail checks the bucket policy when the trail is created.
    assert policy_reg.urn in trail.dependencies


def test_bucket_policies_pass_parliament(either: ProgramRun) -> None:
    policies = either.of_type("aws:s3/bucketPolicy:BucketPolicy")
    assert policies
    for reg in policies:
        findings = [f"{f.issue}: {f.detail}" for f in analyze_policy_string(reg.props["policy"]).findings]
        assert findings == [], reg.name


def test_the_projects_policy_pack_accepts_every_resource(either: ProgramRun) -> None:
    assert rules.check_stack([rules.from_registration(r) for r in either.resources]) == []


# --- The component's shape ---------------------------------------------------------------------------------


def test_children_are_named_from_the_component_and_parented_to_it(either: ProgramRun) -> None:
    [component] = either.of_type("gitlab-fargate:index:SourceBucket")
    children = [r for r in either.resources if r is not component]
    assert children
    for child in children:
        assert child.name.startswith("source-"), child.name
        assert child.parent == component.urn, child.name


def test_two_instances_do_not_collide(tmp_path: Path) -> None:
    run = run_sources(
        tmp_path,
        source("source", "cloudtrail", prefix="shop-dev"),
        source("mirror", "cloudtrail", prefix="shop-prod", key="other/app.zip"),
    )
    urns = [r.urn for r in run.resources]
    assert len(urns) == len(set(urns))
    buckets = [r.props["bucket"] for r in run.of_type("aws:s3/bucket:Bucket")]
    assert len(buckets) == 4 and len(set(buckets)) == 4
    trails = [r.props["name"] for r in run.of_type("aws:cloudtrail/trail:Trail")]
    assert len(set(trails)) == 2
    patterns = {json.dumps(json.loads(run.outputs[n]["eventPattern"])) for n in ("source", "mirror")}
    assert len(patterns) == 2


@pytest.mark.parametrize("mode", ["eventbridge", "cloudtrail"])
def test_outputs_describe_the_bucket_and_the_pattern_of_its_mode(mode: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(mode)
    out = run.outputs["source"]
    bucket = run.named("source-bucket")
    assert out["bucketName"] == bucket.props["bucket"]
    assert out["bucketArn"] == bucket.state["arn"]
    assert out["objectKey"] == KEY
    assert json.loads(out["eventPattern"]) == event_pattern(mode, out["bucketName"], KEY)


@pytest.mark.parametrize(
    ("mode", "key", "message"),
    [
        ("poll", KEY, "trigger mode 'poll' is not allowed"),
        ("eventbridge", "docker image.zip", "source object key 'docker image.zip'"),
        ("cloudtrail", "app+1.zip", "source object key 'app\\+1.zip'"),
        ("eventbridge", "/leading.zip", "source object key"),
    ],
)
def test_a_bad_mode_or_key_fails_before_anything_is_registered(
    tmp_path: Path, mode: str, key: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        event_pattern(mode, "bucket", key)
    with pytest.raises(ValueError, match=message):
        run_sources(tmp_path, source("source", mode, key=key))


# --- Bucket names --------------------------------------------------------------------------------------


def assert_valid_bucket_name(name: str) -> None:
    """The general purpose bucket naming rules of the S3 User Guide."""
    assert 3 <= len(name) <= 63, name
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name), name
    assert ".." not in name, name
    assert not name.startswith(("xn--", "sthree-", "amzn-s3-demo-")), name
    assert not name.endswith(("-s3alias", "--ol-s3", "--x-s3", "--table-s3")), name
    with pytest.raises(ValueError):
        ipaddress.ip_address(name)


PREFIXES = ["a-b", "sample-app-dev", "abcdefghijklmnopqrst-dev", "x" * 20 + "-staging", "y" * 40 + "-prod"]
REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2", "us-gov-west-1"]


@pytest.mark.parametrize("region", REGIONS)
def test_bucket_names_are_valid_and_distinct_for_every_prefix_role_and_region(region: str) -> None:
    names = {
        (prefix, role): physical_bucket_name(prefix, role, ACCOUNT_ID, region)
        for prefix in PREFIXES
        for role in ("source", "trail")
    }
    for name in names.values():
        assert_valid_bucket_name(name)
    assert len(set(names.values())) == len(names)
    # Shortened names still differ when only the cut part of two prefixes differs.
    long_a = physical_bucket_name("z" * 50 + "-a", "source", ACCOUNT_ID, region)
    long_b = physical_bucket_name("z" * 50 + "-b", "source", ACCOUNT_ID, region)
    assert long_a != long_b
    assert_valid_bucket_name(long_a)


def test_bucket_names_are_readable_when_they_fit() -> None:
    assert physical_bucket_name("sample-app-dev", "source", ACCOUNT_ID, "eu-west-1") == (
        f"sample-app-dev-source-{ACCOUNT_ID}-eu-west-1"
    )


# --- The patterns against real events ----------------------------------------------------------------------

BUCKET = f"shop-dev-source-{ACCOUNT_ID}-{REGION}"


def s3_event(bucket: str, key: str, reason: str = "PutObject", detail_type: str = "Object Created") -> dict[str, Any]:
    """An event S3 sends to EventBridge, as the S3 User Guide shows it ("EventBridge event message structure")."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": ACCOUNT_ID,
        "time": "2021-11-12T00:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": 5,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                "sequencer": "617f08299329d189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT_ID,
            "source-ip-address": "203.0.113.10",
            "reason": reason,
        },
    }


def cloudtrail_event(bucket: str, key: str, event_name: str = "PutObject", read_only: bool = False) -> dict[str, Any]:
    """A CloudTrail S3 data event as EventBridge receives it ("AWS API Call via CloudTrail")."""
    request: dict[str, Any] = {"bucketName": bucket, "Host": f"{bucket}.s3.{REGION}.amazonaws.com", "key": key}
    if event_name == "CopyObject":
        request["x-amz-copy-source"] = f"{bucket}/staging/{key}"
    if event_name == "CompleteMultipartUpload":
        request["uploadId"] = "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
    return {
        "version": "0",
        "id": "3a3a3a3a-1b1b-2c2c-3d3d-4e4e4e4e4e4e",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.s3",
        "account": ACCOUNT_ID,
        "time": "2024-05-02T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.10",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLE",
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/gitlab-uploader",
                "accountId": ACCOUNT_ID,
                "accessKeyId": "AKIAEXAMPLE",
                "userName": "gitlab-uploader",
            },
            "eventTime": "2024-05-02T10:00:00Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": event_name,
            "awsRegion": REGION,
            "sourceIPAddress": "203.0.113.10",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": request,
            "responseElements": None,
            "additionalEventData": {"SignatureVersion": "SigV4", "bytesTransferredIn": 1024},
            "requestID": "N4N7GDK58NMKJ12R",
            "eventID": "0e0e0e0e-1f1f-2a2a-3b3b-4c4c4c4c4c4c",
            "readOnly": read_only,
            "resources": [
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                {"accountId": ACCOUNT_ID, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
            ],
            "eventType": "AwsApiCall",
            "managementEvent": False,
            "recipientAccountId": ACCOUNT_ID,
            "eventCategory": "Data",
        },
    }


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    result: bool = EventPattern.load(json.dumps(pattern)).matches_event(event)  # type: ignore[arg-type]
    return result


OTHER_EVENTS: dict[str, Callable[[Callable[..., dict[str, Any]]], dict[str, Any]]] = {
    "another key": lambda make: make(BUCKET, "docker-image/other.zip"),
    "a key extending the source key": lambda make: make(BUCKET, KEY + ".bak"),
    "a key inside the source key's folder": lambda make: make(BUCKET, "docker-image/docker_image.zip/x.zip"),
    "the key in another bucket": lambda make: make("someone-elses-bucket", KEY),
}


@pytest.mark.parametrize("reason", ["PutObject", "CompleteMultipartUpload", "CopyObject", "POST Object"])
def test_eventbridge_pattern_matches_every_creation_of_the_object(reason: str) -> None:
    assert matches(event_pattern("eventbridge", BUCKET, KEY), s3_event(BUCKET, KEY, reason=reason))


@pytest.mark.parametrize("other", sorted(OTHER_EVENTS))
def test_eventbridge_pattern_ignores_other_objects(other: str) -> None:
    assert not matches(event_pattern("eventbridge", BUCKET, KEY), OTHER_EVENTS[other](s3_event))


@pytest.mark.parametrize("detail_type", ["Object Deleted", "Object Tags Added", "Object ACL Updated"])
def test_eventbridge_pattern_ignores_other_changes_of_the_object(detail_type: str) -> None:
    assert not matches(event_pattern("eventbridge", BUCKET, KEY), s3_event(BUCKET, KEY, detail_type=detail_type))


@pytest.mark.parametrize("event_name", WRITE_EVENT_NAMES)
def test_cloudtrail_pattern_matches_every_write_of_the_object(event_name: str) -> None:
    assert matches(event_pattern("cloudtrail", BUCKET, KEY), cloudtrail_event(BUCKET, KEY, event_name))


@pytest.mark.parametrize("other", sorted(OTHER_EVENTS))
def test_cloudtrail_pattern_ignores_other_objects(other: str) -> None:
    assert not matches(event_pattern("cloudtrail", BUCKET, KEY), OTHER_EVENTS[other](cloudtrail_event))


@pytest.mark.parametrize(
    ("event_name", "read_only"),
    [("DeleteObject", False), ("PutObjectAcl", False), ("PutObjectTagging", False), ("GetObject", True)],
)
def test_cloudtrail_pattern_ignores_other_calls_on_the_object(event_name: str, read_only: bool) -> None:
    event = cloudtrail_event(BUCKET, KEY, event_name, read_only=read_only)
    assert not matches(event_pattern("cloudtrail", BUCKET, KEY), event)


def test_each_pattern_ignores_the_other_modes_event() -> None:
    assert not matches(event_pattern("eventbridge", BUCKET, KEY), cloudtrail_event(BUCKET, KEY))
    assert not matches(event_pattern("cloudtrail", BUCKET, KEY), s3_event(BUCKET, KEY))


# --- Replayed against the APIs: botocore's models, then moto ----------------------------------------------------


def s3_calls(run: ProgramRun, bucket: Registration) -> Iterator[tuple[str, dict[str, Any]]]:
    """The S3 API calls the provider makes for the bucket's settings (names and shapes of the S3 API)."""
    name = bucket.props["bucket"]

    def props(typ: str) -> dict[str, Any]:
        return setting_of(run, typ, bucket).props

    yield "CreateBucket", {"Bucket": name, "CreateBucketConfiguration": {"LocationConstraint": REGION}}
    ownership = props("aws:s3/bucketOwnershipControls:BucketOwnershipControls")["rule"]
    yield (
        "PutBucketOwnershipControls",
        {"Bucket": name, "OwnershipControls": {"Rules": [{"ObjectOwnership": ownership["objectOwnership"]}]}},
    )
    encryption = props("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    yield (
        "PutBucketEncryption",
        {
            "Bucket": name,
            "ServerSideEncryptionConfiguration": {
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": r["applyServerSideEncryptionByDefault"]["sseAlgorithm"]
                        },
                        "BlockedEncryptionTypes": {"EncryptionType": r["blockedEncryptionTypes"]},
                    }
                    for r in encryption["rules"]
                ]
            },
        },
    )
    block = props("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    yield (
        "PutPublicAccessBlock",
        {
            "Bucket": name,
            "PublicAccessBlockConfiguration": {
                k[0].upper() + k[1:]: block[k]
                for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
            },
        },
    )
    yield "PutBucketPolicy", {"Bucket": name, "Policy": props("aws:s3/bucketPolicy:BucketPolicy")["policy"]}
    versioning = [r for r in run.of_type("aws:s3/bucketVersioning:BucketVersioning") if r.props["bucket"] == bucket.id]
    for v in versioning:
        yield (
            "PutBucketVersioning",
            {"Bucket": name, "VersioningConfiguration": {"Status": v.props["versioningConfiguration"]["status"]}},
        )
    lifecycle = props("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    yield (
        "PutBucketLifecycleConfiguration",
        {"Bucket": name, "LifecycleConfiguration": {"Rules": [lifecycle_rule(r) for r in lifecycle["rules"]]}},
    )
    if any(r.props["bucket"] == bucket.id for r in run.of_type("aws:s3/bucketNotification:BucketNotification")):
        yield (
            "PutBucketNotificationConfiguration",
            {"Bucket": name, "NotificationConfiguration": {"EventBridgeConfiguration": {}}},
        )


def whole(number: float) -> int:
    """A number as the provider sends it: Pulumi carries every number as a float, the schema says integer."""
    assert number == int(number), number
    return int(number)


def lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    api: dict[str, Any] = {"ID": rule["id"], "Status": rule["status"], "Filter": rule["filter"]}
    if "noncurrentVersionExpiration" in rule:
        days = whole(rule["noncurrentVersionExpiration"]["noncurrentDays"])
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
    if "abortIncompleteMultipartUpload" in rule:
        days = whole(rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"])
        api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    if "expiration" in rule:
        api["Expiration"] = {"Days": whole(rule["expiration"]["days"])}
    return api


def cloudtrail_calls(run: ProgramRun) -> Iterator[tuple[str, dict[str, Any]]]:
    trail = run.one("aws:cloudtrail/trail:Trail").props
    yield (
        "CreateTrail",
        {
            "Name": trail["name"],
            "S3BucketName": trail["s3BucketName"],
            "IsMultiRegionTrail": trail["isMultiRegionTrail"],
            "IncludeGlobalServiceEvents": trail["includeGlobalServiceEvents"],
            "EnableLogFileValidation": trail["enableLogFileValidation"],
        },
    )
    yield (
        "PutEventSelectors",
        {
            "TrailName": trail["name"],
            "AdvancedEventSelectors": [
                {
                    "Name": s["name"],
                    "FieldSelectors": [{"Field": f["field"], "Equals": f["equals"]} for f in s["fieldSelectors"]],
                }
                for s in trail["advancedEventSelectors"]
            ],
        },
    )


def replay(service: str, calls: Iterator[tuple[str, dict[str, Any]]]) -> None:
    """Validates each call against the AWS API model (unknown fields, wrong types) and makes it on moto."""
    model = botocore.session.get_session().get_service_model(service)
    client = boto3.client(service, region_name=REGION)
    for operation, params in calls:
        report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
        assert not report.has_errors(), f"{operation}: {report.generate_report()}"
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
        getattr(client, method)(**params)


class Queue:
    """An SQS queue as the target of an EventBridge rule with a pattern, on moto."""

    def __init__(self, pattern: str) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.url = self.sqs.create_queue(QueueName="pipeline-trigger")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name="start-pipeline", EventPattern=pattern)
        events.put_targets(Rule="start-pipeline", Targets=[{"Id": "queue", "Arn": arn}])

    def drain(self) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            for m in messages:
                received.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return received


def test_eventbridge_mode_an_upload_of_the_key_and_nothing_else_reaches_the_rule(eventbridge: ProgramRun) -> None:
    out = eventbridge.outputs["source"]
    bucket = out["bucketName"]
    with mock_aws():
        replay("s3", s3_calls(eventbridge, eventbridge.named("source-bucket")))
        s3 = boto3.client("s3", region_name=REGION)
        # moto ignores `Bool` conditions, so it applies the TLS-only Deny to every request (S3 applies it to
        # plain HTTP only). The policy has been accepted above; drop it so the uploads below get through.
        s3.delete_bucket_policy(Bucket=bucket)
        # A second bucket sending its events too: the rule must tell them apart.
        s3.create_bucket(Bucket="another-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_notification_configuration(
            Bucket="another-bucket", NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        queue = Queue(out["eventPattern"])

        s3.put_object(Bucket=bucket, Key=KEY, Body=b"PK\x05\x06" + b"\0" * 18)
        [event] = queue.drain()
        assert event["detail"]["bucket"]["name"] == bucket
        assert event["detail"]["object"]["key"] == KEY

        s3.put_object(Bucket=bucket, Key="docker-image/other.zip", Body=b"zip")
        s3.put_object(Bucket="another-bucket", Key=KEY, Body=b"zip")
        assert queue.drain() == []

        s3.copy_object(Bucket=bucket, Key=KEY, CopySource={"Bucket": bucket, "Key": "docker-image/other.zip"})
        assert [e["detail"]["object"]["key"] for e in queue.drain()] == [KEY]

        # `aws s3 cp` uploads files over 8 MiB in parts. (moto sends an event for the internal PUT as well as
        # for the completion, where S3 sends one; so: at least one, and all for the key.)
        upload = s3.create_multipart_upload(Bucket=bucket, Key=KEY)
        part = s3.upload_part(Bucket=bucket, Key=KEY, UploadId=upload["UploadId"], PartNumber=1, Body=b"zip")
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=KEY,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )
        keys = [e["detail"]["object"]["key"] for e in queue.drain()]
        assert keys and set(keys) == {KEY}


def test_cloudtrail_mode_the_trail_is_accepted_and_its_events_reach_the_rule(cloudtrail: ProgramRun) -> None:
    out = cloudtrail.outputs["source"]
    bucket = out["bucketName"]
    with mock_aws():
        replay("s3", s3_calls(cloudtrail, cloudtrail.named("source-bucket")))
        replay("s3", s3_calls(cloudtrail, cloudtrail.named("source-trail-logs")))
        replay("cloudtrail", cloudtrail_calls(cloudtrail))
        queue = Queue(out["eventPattern"])
        # CloudTrail in moto emits nothing: put on the bus what CloudTrail delivers for each call (AWS itself
        # refuses PutEvents with an "aws." source; moto lets the test stand in for CloudTrail).
        events = boto3.client("events", region_name=REGION)

        def deliver(event: dict[str, Any]) -> None:
            entry = {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
            }
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

        for name in WRITE_EVENT_NAMES:
            deliver(cloudtrail_event(bucket, KEY, name))
        assert [e["detail"]["eventName"] for e in queue.drain()] == list(WRITE_EVENT_NAMES)

        deliver(cloudtrail_event(bucket, "docker-image/other.zip"))
        deliver(cloudtrail_event("another-bucket", KEY))
        deliver(cloudtrail_event(bucket, KEY, "DeleteObject"))
        assert queue.drain() == []
