"""SourceBucket: its config (SourceConfig, TriggerMode, the object key), the bucket's settings on mocks, the same
settings replayed against the S3 and CloudTrail APIs (botocore's models, then moto), and each mode's event
pattern against real events of that mode: an upload to a moto bucket sending EventBridge notifications, and
CloudTrail records as CloudTrail delivers them.

The shapes every bucket shares (private_bucket, bucket_policy, lifecycle rules, names) are tested on their own in
``tests/test_buckets.py``; here they are checked as the source bucket and the trail's log bucket use them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any, get_args

import boto3
import pulumi
import pytest
from moto import mock_aws
from pydantic import ValidationError

from components.base import PROJECT
from components.buckets import ABORT_INCOMPLETE_UPLOADS_DAYS
from components.config_types import ConfigError
from components.source_bucket import (
    TRIGGER_MODES,
    SourceBucket,
    SourceBucketArgs,
    SourceConfig,
    TriggerMode,
    check_object_key,
    event_pattern,
)
from components.source_trail import WRITE_EVENT_NAMES
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import pack
from support.aws import assert_valid_request, event_matches, parliament_findings, policy_of, statement
from support.events import cloudtrail_event, s3_event
from support.stacks import REGION, component, descendants, run, stack_config

APP = "shop"
PREFIX = f"{APP}-dev"
KEY = "docker-image/docker_image.zip"
RETENTION = 30


def config_values(mode: str, **more: str) -> dict[str, str]:
    return {"appName": APP, "logRetentionDays": str(RETENTION), "triggerMode": mode, **more}


def export_source(name: str, source: SourceBucket) -> None:
    out = source.source
    pulumi.export(
        name,
        {
            "bucketName": out.bucket_name,
            "bucketArn": out.bucket_arn,
            "objectKey": out.key,
            "eventPattern": out.event_pattern,
            "trailArn": source.trail_arn,
            "bucketRoles": sorted(b.role for b in source.buckets),
        },
    )


def source_run(mode: str, **more: str) -> ProgramRun:
    """One SourceBucket named ``source`` for a dev stack of app ``shop`` with these stack-file values."""
    cfg = stack_config(config_values(mode, **more))

    def build() -> None:
        export_source("source", SourceBucket("source", SourceBucketArgs(cfg.context, cfg.source)))

    return run(build)


@pytest.fixture(scope="module")
def eventbridge() -> ProgramRun:
    return source_run("eventbridge")


@pytest.fixture(scope="module")
def cloudtrail() -> ProgramRun:
    return source_run("cloudtrail")


@pytest.fixture(params=TRIGGER_MODES)
def either(request: pytest.FixtureRequest) -> ProgramRun:
    found: ProgramRun = request.getfixturevalue(request.param)
    return found


def setting_of(found: ProgramRun, typ: str, bucket: Registration) -> Registration:
    """The one setting resource of ``typ`` that configures ``bucket`` (by the id the bucket was given)."""
    matches = [r for r in found.of_type(typ) if r.props.get("bucket") == bucket.id]
    assert len(matches) == 1, f"{bucket.name}: expected one {typ}, found {[r.name for r in matches]}"
    return matches[0]


# --- Config: the trigger mode and the object key -------------------------------------------------------------


def test_the_trigger_modes_are_the_two_ways_s3_reaches_eventbridge() -> None:
    # S3 sends its own events to EventBridge (https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html),
    # or CloudTrail forwards a trail's S3 data events (https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-s3.html).
    assert set(TRIGGER_MODES) == {"eventbridge", "cloudtrail"}
    # One enumeration for config and component: the config field accepts exactly the modes the component knows.
    assert get_args(SourceConfig.model_fields["trigger_mode"].annotation) == TRIGGER_MODES
    assert SourceConfig().trigger_mode == "eventbridge", "the default needs no trail (seconds, not minutes)"
    for mode in TRIGGER_MODES:
        assert event_pattern(mode, "bucket", KEY)["source"] == ["aws.s3"]


def test_a_bad_mode_fails_before_anything_is_registered_naming_the_key_and_the_modes() -> None:
    with pytest.raises(ConfigError) as raised:
        stack_config(config_values("poll"))
    [problem] = raised.value.problems
    assert problem.startswith("gitlab-fargate:triggerMode: 'poll' is not allowed")
    assert all(mode in problem for mode in TRIGGER_MODES)


# S3 event notifications URL-encode the object key
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html): a key with a space,
# '+' or other reserved characters would read differently in an event than in a pattern naming it literally.
BAD_KEYS = [
    "docker image.zip",
    "app+1.zip",
    "/leading.zip",
    "double//slash.zip",
    "docker-image/app.tar.gz",
    "a" * 1021 + ".zip",
]
GOOD_KEYS = [KEY, "other/app.zip", "a.zip", "v1.2/app_build-3.zip"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_key_a_pattern_could_miss_is_refused_before_anything_is_registered(key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        check_object_key(key)
    with pytest.raises(ValidationError):
        SourceConfig(source_object_key=key)
    with pytest.raises(ConfigError) as raised:
        stack_config(config_values("eventbridge", sourceObjectKey=key))
    [problem] = raised.value.problems
    assert problem.startswith(f"gitlab-fargate:sourceObjectKey: {key!r}")


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_a_plain_zip_key_is_accepted(key: str) -> None:
    assert check_object_key(key) == key
    assert stack_config(config_values("cloudtrail", sourceObjectKey=key)).source.source_object_key == key


# --- The source bucket ----------------------------------------------------------------------------------


def test_source_bucket_is_versioned_encrypted_owner_enforced_and_never_public(either: ProgramRun) -> None:
    bucket = either.named("source-bucket")
    # CodePipeline's S3 source action needs a versioned bucket
    # (https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-S3.html).
    versioning = setting_of(either, rt.S3_BUCKET_VERSIONING, bucket).props
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    encryption = setting_of(either, rt.S3_BUCKET_ENCRYPTION, bucket).props
    assert [r["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for r in encryption["rules"]] == ["AES256"]
    assert encryption["rules"][0]["blockedEncryptionTypes"] == ["SSE-C"]
    ownership = setting_of(either, rt.S3_BUCKET_OWNERSHIP, bucket).props
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    block = setting_of(either, rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK, bucket).props
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert {f: block.get(f) for f in flags} == dict.fromkeys(flags, True)


def test_source_bucket_denies_every_request_not_made_over_tls(either: ProgramRun) -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html (aws:SecureTransport)
    bucket = either.named("source-bucket")
    arn = bucket.state["arn"]
    policy = setting_of(either, rt.S3_BUCKET_POLICY, bucket)
    deny = statement(policy_of(policy), "DenyInsecureTransport")
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert sorted(deny["Resource"]) == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Nothing else: the pipeline's and the uploader's roles get their access from their own policies.
    assert len(policy_of(policy)["Statement"]) == 1
    # S3 would refuse the policy while it also changes the public-access block.
    block = setting_of(either, rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK, bucket)
    assert block.urn in policy.dependencies


def test_superseded_versions_expire_and_abandoned_uploads_are_aborted(either: ProgramRun) -> None:
    bucket = either.named("source-bucket")
    lifecycle = setting_of(either, rt.S3_BUCKET_LIFECYCLE, bucket)
    rules_ = lifecycle.props["rules"]
    # An empty filter covers the whole bucket (https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-filters.html).
    assert all(r["status"] == "Enabled" and r["filter"] == {} for r in rules_), "every rule covers the whole bucket"
    assert [r["noncurrentVersionExpiration"] for r in rules_ if "noncurrentVersionExpiration" in r] == [
        {"noncurrentDays": RETENTION}
    ]
    assert [r["abortIncompleteMultipartUpload"] for r in rules_ if "abortIncompleteMultipartUpload" in r] == [
        {"daysAfterInitiation": ABORT_INCOMPLETE_UPLOADS_DAYS}
    ]
    # The current version (what the pipeline reads) never expires.
    assert not any("expiration" in r for r in rules_)
    # A rule on noncurrent versions is set once the bucket is versioned.
    assert either.named("source-versioning").urn in lifecycle.dependencies


def test_bucket_name_is_global_unique_per_account_and_region(either: ProgramRun) -> None:
    # Bucket names are global across all accounts (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
    name = either.named("source-bucket").props["bucket"]
    assert ACCOUNT_ID in name and REGION in name and name.startswith(f"{PREFIX}-")
    assert len(name) <= 63 and re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", name), name


# --- Deletion protection ---------------------------------------------------------------------------------


def test_by_default_the_buckets_are_protected_and_never_emptied(either: ProgramRun) -> None:
    buckets = either.of_type(rt.S3_BUCKET)
    assert buckets
    for bucket in buckets:
        assert bucket.protect is True, bucket.name
        assert bucket.props["forceDestroy"] is False, bucket.name
    # Exactly the buckets and, in cloudtrail mode, the trail's log group (the record of the uploads): their
    # settings hold no data (and a protected component would protect every child).
    groups = {g.name for g in either.of_type(rt.LOG_GROUP)}
    assert {r.name for r in either.resources if r.protect} == {b.name for b in buckets} | groups
    assert groups == ({"source-trail-events"} if either.of_type(rt.CLOUDTRAIL_TRAIL) else set())


@pytest.mark.parametrize("force_destroy", [False, True])
def test_force_destroy_lets_pulumi_destroy_empty_and_delete_every_bucket(force_destroy: bool) -> None:
    found = source_run("cloudtrail", forceDestroy=json.dumps(force_destroy))
    buckets = found.of_type(rt.S3_BUCKET)
    assert {b.name for b in buckets} == {"source-bucket", "source-trail-logs"}
    for bucket in buckets:
        assert bucket.props["forceDestroy"] is force_destroy, bucket.name
        assert bucket.protect is not force_destroy, bucket.name


# --- The two modes -------------------------------------------------------------------------------------


def test_eventbridge_mode_sends_the_bucket_events_to_eventbridge_and_has_no_trail(eventbridge: ProgramRun) -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-event-notifications-eventbridge.html
    bucket = eventbridge.named("source-bucket")
    notification = setting_of(eventbridge, rt.S3_BUCKET_NOTIFICATION, bucket).props
    assert notification["eventbridge"] is True
    # EventBridge delivery only: no queue, topic or function receives the bucket's events.
    assert not any(notification.get(k) for k in ("queues", "topics", "lambdaFunctions"))
    assert eventbridge.of_type(rt.CLOUDTRAIL_TRAIL) == []
    assert len(eventbridge.of_type(rt.S3_BUCKET)) == 1
    assert eventbridge.outputs["source"]["trailArn"] is None


def test_cloudtrail_mode_logs_only_writes_of_exactly_the_source_object(cloudtrail: ProgramRun) -> None:
    # Advanced event selectors (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-data-events-with-cloudtrail.html):
    # Equals is an exact match; a trail has either classic or advanced selectors, not both.
    assert cloudtrail.of_type(rt.S3_BUCKET_NOTIFICATION) == []
    trail = cloudtrail.one(rt.CLOUDTRAIL_TRAIL).props
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
    assert cloudtrail.outputs["source"]["trailArn"] == cloudtrail.one(rt.CLOUDTRAIL_TRAIL).state["arn"]


def test_the_write_calls_are_those_that_leave_a_new_current_version() -> None:
    # The S3 data events CloudTrail logs (https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-s3-info.html):
    # a single PUT, the completion of a multipart upload (`aws s3 cp` over 8 MiB), a server-side copy.
    assert set(WRITE_EVENT_NAMES) == {"PutObject", "CompleteMultipartUpload", "CopyObject"}


def test_trail_log_bucket_is_secured_and_its_logs_expire(cloudtrail: ProgramRun) -> None:
    logs = cloudtrail.named("source-trail-logs")
    assert cloudtrail.one(rt.CLOUDTRAIL_TRAIL).props["s3BucketName"] == logs.props["bucket"]
    name = logs.props["bucket"]
    assert ACCOUNT_ID in name and REGION in name and name.startswith(f"{PREFIX}-")
    encryption = setting_of(cloudtrail, rt.S3_BUCKET_ENCRYPTION, logs).props
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    block = setting_of(cloudtrail, rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK, logs).props
    assert all(
        block[f] is True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    ownership = setting_of(cloudtrail, rt.S3_BUCKET_OWNERSHIP, logs).props
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    lifecycle = setting_of(cloudtrail, rt.S3_BUCKET_LIFECYCLE, logs)
    assert [r["expiration"] for r in lifecycle.props["rules"] if "expiration" in r] == [{"days": RETENTION}]
    policy = policy_of(setting_of(cloudtrail, rt.S3_BUCKET_POLICY, logs))
    deny = statement(policy, "DenyInsecureTransport")
    arn = logs.state["arn"]
    assert sorted(deny["Resource"]) == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_trail_log_bucket_admits_only_this_trail(cloudtrail: ProgramRun) -> None:
    # The bucket policy CloudTrail documents, with aws:SourceArn against the confused deputy
    # (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-s3-bucket-policy-for-cloudtrail.html).
    trail = cloudtrail.one(rt.CLOUDTRAIL_TRAIL)
    logs = cloudtrail.named("source-trail-logs")
    policy_reg = setting_of(cloudtrail, rt.S3_BUCKET_POLICY, logs)
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
    policies = either.of_type(rt.S3_BUCKET_POLICY)
    assert policies
    for reg in policies:
        assert parliament_findings(reg.props["policy"]) == [], reg.name


def test_the_projects_policy_pack_accepts_every_resource(either: ProgramRun) -> None:
    assert pack.part_violations(either) == []


# --- The component's shape ---------------------------------------------------------------------------------


def test_children_are_named_from_the_component_and_parented_to_it(either: ProgramRun) -> None:
    source = component(either, "SourceBucket")
    children = descendants(either, source)
    assert children
    assert len(children) == len(either.resources) - 1, "everything registered belongs to the component"
    trails = [r for r in children if not r.custom]
    assert [t.type.split(":")[-1] for t in trails] == (["SourceTrail"] if either.of_type(rt.CLOUDTRAIL_TRAIL) else [])
    for child in children:
        assert child.name.startswith("source-") or child in trails, child.name
        assert child.parent in {source.urn, *(t.urn for t in trails)}, child.name


def test_the_trails_children_keep_the_urns_they_had_as_the_source_buckets(cloudtrail: ProgramRun) -> None:
    """The trail and its log bucket were the SourceBucket's own children before the SourceTrail part: each
    declares that URN as an alias, so a deployed stack updates in place (and the protected bucket is not
    replaced). https://www.pulumi.com/docs/iac/concepts/options/aliases/"""
    source = component(cloudtrail, "SourceBucket")
    trail_part = component(cloudtrail, "SourceTrail")
    children = cloudtrail.children_of(trail_part)
    assert {"source-trail", "source-trail-logs", "source-trail-logs-policy"} <= {c.name for c in children}
    for child in children:
        # The URN's type chain without the part: the SourceBucket's type, then the child's own.
        former = child.urn.replace(f"${trail_part.type}$", "$", 1)
        assert former.startswith(f"urn:pulumi:dev::{PROJECT}::{source.type}${child.type}::"), former
        assert former in child.aliases, child.name


def test_the_buckets_are_handed_on_for_their_access_logs(either: ProgramRun) -> None:
    """``SourceBucket.buckets``: every bucket it made, each under the role its name carries (the prefix of its
    S3 access logs)."""
    roles = {
        b.props["bucket"].split(f"-{ACCOUNT_ID}-")[0].removeprefix(f"{PREFIX}-") for b in either.of_type(rt.S3_BUCKET)
    }
    assert either.outputs["source"]["bucketRoles"] == sorted(roles)
    assert roles == ({"source", "trail"} if either.of_type(rt.CLOUDTRAIL_TRAIL) else {"source"})


def test_two_instances_do_not_collide() -> None:
    first = stack_config(config_values("cloudtrail"))
    second = stack_config(config_values("cloudtrail", sourceObjectKey="other/app.zip"), stack="prod")

    def build() -> None:
        export_source("source", SourceBucket("source", SourceBucketArgs(first.context, first.source)))
        export_source("mirror", SourceBucket("mirror", SourceBucketArgs(second.context, second.source)))

    found = run(build)
    urns = [r.urn for r in found.resources]
    assert len(urns) == len(set(urns))
    buckets = [r.props["bucket"] for r in found.of_type(rt.S3_BUCKET)]
    assert len(buckets) == 4 and len(set(buckets)) == 4
    trails = [r.props["name"] for r in found.of_type(rt.CLOUDTRAIL_TRAIL)]
    assert len(set(trails)) == 2
    patterns = {json.dumps(json.loads(found.outputs[n]["eventPattern"])) for n in ("source", "mirror")}
    assert len(patterns) == 2


@pytest.mark.parametrize("mode", TRIGGER_MODES)
def test_the_source_object_describes_the_bucket_and_the_pattern_of_its_mode(
    mode: TriggerMode, request: pytest.FixtureRequest
) -> None:
    found: ProgramRun = request.getfixturevalue(mode)
    out = found.outputs["source"]
    bucket = found.named("source-bucket")
    assert out["bucketName"] == bucket.props["bucket"]
    assert out["bucketArn"] == bucket.state["arn"]
    assert out["objectKey"] == KEY
    pattern = json.loads(out["eventPattern"])
    assert pattern == event_pattern(mode, out["bucketName"], KEY)
    # The pattern names this bucket and this key, whatever the mode's event shape.
    assert out["bucketName"] in out["eventPattern"] and KEY in out["eventPattern"]


# --- The patterns against real events ----------------------------------------------------------------------

BUCKET = f"{PREFIX}-source-{ACCOUNT_ID}-{REGION}"


OTHER_EVENTS: dict[str, Callable[[Callable[..., dict[str, Any]]], dict[str, Any]]] = {
    "another key": lambda make: make(BUCKET, "docker-image/other.zip"),
    "a key extending the source key": lambda make: make(BUCKET, KEY + ".bak"),
    "a key inside the source key's folder": lambda make: make(BUCKET, "docker-image/docker_image.zip/x.zip"),
    "the key in another bucket": lambda make: make("someone-elses-bucket", KEY),
}


# The "reason" of an Object Created event names the API that created the object (ev-events.html above).
@pytest.mark.parametrize("reason", ["PutObject", "CompleteMultipartUpload", "CopyObject", "POST Object"])
def test_eventbridge_pattern_matches_every_creation_of_the_object(reason: str) -> None:
    assert event_matches(event_pattern("eventbridge", BUCKET, KEY), s3_event(BUCKET, KEY, reason=reason))


@pytest.mark.parametrize("other", sorted(OTHER_EVENTS))
def test_eventbridge_pattern_ignores_other_objects(other: str) -> None:
    assert not event_matches(event_pattern("eventbridge", BUCKET, KEY), OTHER_EVENTS[other](s3_event))


# The other detail types S3 sends (https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-s3.html).
@pytest.mark.parametrize("detail_type", ["Object Deleted", "Object Tags Added", "Object ACL Updated"])
def test_eventbridge_pattern_ignores_other_changes_of_the_object(detail_type: str) -> None:
    event = s3_event(BUCKET, KEY, detail_type=detail_type)
    assert not event_matches(event_pattern("eventbridge", BUCKET, KEY), event)


@pytest.mark.parametrize("event_name", WRITE_EVENT_NAMES)
def test_cloudtrail_pattern_matches_every_write_of_the_object(event_name: str) -> None:
    assert event_matches(event_pattern("cloudtrail", BUCKET, KEY), cloudtrail_event(BUCKET, KEY, event_name))


@pytest.mark.parametrize("other", sorted(OTHER_EVENTS))
def test_cloudtrail_pattern_ignores_other_objects(other: str) -> None:
    assert not event_matches(event_pattern("cloudtrail", BUCKET, KEY), OTHER_EVENTS[other](cloudtrail_event))


@pytest.mark.parametrize(
    ("event_name", "read_only"),
    [("DeleteObject", False), ("PutObjectAcl", False), ("PutObjectTagging", False), ("GetObject", True)],
)
def test_cloudtrail_pattern_ignores_other_calls_on_the_object(event_name: str, read_only: bool) -> None:
    event = cloudtrail_event(BUCKET, KEY, event_name, read_only=read_only)
    assert not event_matches(event_pattern("cloudtrail", BUCKET, KEY), event)


def test_each_pattern_ignores_the_other_modes_event() -> None:
    assert not event_matches(event_pattern("eventbridge", BUCKET, KEY), cloudtrail_event(BUCKET, KEY))
    assert not event_matches(event_pattern("cloudtrail", BUCKET, KEY), s3_event(BUCKET, KEY))


# --- Replayed against the APIs: botocore's models, then moto ----------------------------------------------------


def s3_calls(found: ProgramRun, bucket: Registration) -> Iterator[tuple[str, dict[str, Any]]]:
    """The S3 API calls the provider makes for the bucket's settings (names and shapes of the S3 API)."""
    name = bucket.props["bucket"]

    def props(typ: str) -> dict[str, Any]:
        return setting_of(found, typ, bucket).props

    yield "CreateBucket", {"Bucket": name, "CreateBucketConfiguration": {"LocationConstraint": REGION}}
    ownership = props(rt.S3_BUCKET_OWNERSHIP)["rule"]
    yield (
        "PutBucketOwnershipControls",
        {"Bucket": name, "OwnershipControls": {"Rules": [{"ObjectOwnership": ownership["objectOwnership"]}]}},
    )
    yield "PutBucketEncryption", {"Bucket": name, "ServerSideEncryptionConfiguration": encryption(props)}
    block = props(rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK)
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    yield (
        "PutPublicAccessBlock",
        {"Bucket": name, "PublicAccessBlockConfiguration": {k[0].upper() + k[1:]: block[k] for k in flags}},
    )
    yield "PutBucketPolicy", {"Bucket": name, "Policy": props(rt.S3_BUCKET_POLICY)["policy"]}
    for v in found.of_type(rt.S3_BUCKET_VERSIONING):
        if v.props["bucket"] == bucket.id:
            status = v.props["versioningConfiguration"]["status"]
            yield "PutBucketVersioning", {"Bucket": name, "VersioningConfiguration": {"Status": status}}
    lifecycle = props(rt.S3_BUCKET_LIFECYCLE)
    yield (
        "PutBucketLifecycleConfiguration",
        {"Bucket": name, "LifecycleConfiguration": {"Rules": [lifecycle_rule(r) for r in lifecycle["rules"]]}},
    )
    if any(r.props["bucket"] == bucket.id for r in found.of_type(rt.S3_BUCKET_NOTIFICATION)):
        yield (
            "PutBucketNotificationConfiguration",
            {"Bucket": name, "NotificationConfiguration": {"EventBridgeConfiguration": {}}},
        )


def encryption(props: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    rules_ = props(rt.S3_BUCKET_ENCRYPTION)["rules"]
    return {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": r["applyServerSideEncryptionByDefault"]["sseAlgorithm"]
                },
                "BlockedEncryptionTypes": {"EncryptionType": r["blockedEncryptionTypes"]},
            }
            for r in rules_
        ]
    }


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


def cloudtrail_calls(found: ProgramRun) -> Iterator[tuple[str, dict[str, Any]]]:
    trail = found.one(rt.CLOUDTRAIL_TRAIL).props
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
    """Validates each call against the AWS API model (unknown fields, types, enum values) and makes it on moto."""
    client = boto3.client(service, region_name=REGION)
    for operation, params in calls:
        assert_valid_request(service, operation, params)
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
