"""FSBP logging controls: S3.9 (S3 server access logging of every bucket, ``S3AccessLogs``), CloudTrail.2 (the
trail's log files encrypted with a KMS key) and CloudTrail.5 (the trail's events in CloudWatch Logs), on the
components, on the committed stacks, in the policy pack and in the cost estimate.

https://docs.aws.amazon.com/securityhub/latest/userguide/s3-controls.html#s3-9
https://docs.aws.amazon.com/securityhub/latest/userguide/cloudtrail-controls.html#cloudtrail-2
https://docs.aws.amazon.com/securityhub/latest/userguide/cloudtrail-controls.html#cloudtrail-5
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import boto3
import botocore.exceptions
import pytest
from moto import mock_aws

from components.config_types import ConfigError
from components.s3_access_logs import (
    LOGGING_SERVICE,
    S3AccessLogs,
    S3AccessLogsArgs,
    S3AccessLogsConfig,
)
from components.source_bucket import SourceBucket, SourceBucketArgs
from components.source_trail import CLOUDTRAIL
from offline import pricing
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from offline.stack_files import load_stack_files
from policy import resource_types as rt
from policy import rules
from policy.rules import UNKNOWN, Resource
from support import bundles, pack
from support.aws import assert_valid_request, by_sid, parliament_findings, policy_of
from support.stacks import REGION, run, stack_config, stack_run

S3_9 = "fsbp-s3-9-server-access-logging"
CLOUDTRAIL_2 = "fsbp-cloudtrail-2-encrypted-at-rest"
CLOUDTRAIL_5 = "fsbp-cloudtrail-5-cloudwatch-logs"
PREFIX = bundles.PREFIX
RETENTION = 30
SOURCES = ("source", "artifacts", "alb-logs")


def violations(found: ProgramRun) -> list[rules.Violation]:
    return rules.check_stack([rules.from_registration(r) for r in found.resources])


def fired_on(found: ProgramRun, rule: str) -> set[str]:
    """Names of the resources ``rule`` reports in ``found``."""
    by_urn = {r.urn: r.name for r in found.resources}
    return {by_urn[v.urn] for v in violations(found) if v.rule == rule}


# --- S3.9: the config key --------------------------------------------------------------------------------------


def test_access_logs_are_on_unless_a_stack_turns_them_off_and_dev_does() -> None:
    assert S3AccessLogsConfig().s3_access_logs is True
    assert stack_config().access_logs.s3_access_logs is True
    assert load_stack_files("dev").config["gitlab-fargate:s3AccessLogs"] in (False, "false")
    assert "gitlab-fargate:s3AccessLogs" not in load_stack_files("prod").config


def test_a_value_that_is_no_flag_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        stack_config({"s3AccessLogs": "sometimes"})
    [problem] = raised.value.problems
    assert problem.startswith("gitlab-fargate:s3AccessLogs: ")


# --- S3.9: the S3AccessLogs component ---------------------------------------------------------------------------


def logs_run(*roles: str, force_destroy: bool = False) -> ProgramRun:
    """An S3AccessLogs ``s3-access-logs`` of stack dev of app ``shop``, logging a stand-in bucket per role."""
    ctx = stack_config({"appName": "shop", "logRetentionDays": str(RETENTION), "forceDestroy": str(force_destroy)})

    def build() -> None:
        S3AccessLogs("s3-access-logs", S3AccessLogsArgs(ctx.context, [bundles.bucket(role) for role in roles]))

    return run(build)


@pytest.fixture(scope="module")
def logged() -> ProgramRun:
    return logs_run(*SOURCES)


def log_bucket(found: ProgramRun) -> Registration:
    return found.named("s3-access-logs-bucket")


def setting(found: ProgramRun, typ: str, bucket: Registration) -> Registration:
    [match] = [r for r in found.of_type(typ) if r.props.get("bucket") == bucket.id]
    return match


def test_the_log_bucket_is_one_s3_can_deliver_access_logs_to(logged: ProgramRun) -> None:
    # The target bucket: same account and region (the stack's provider), SSE-S3 default encryption (the only kind
    # the S3 guide supports for a target), no Object Lock or default retention, owner-enforced with the delivery
    # granted by bucket policy. https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html
    bucket = log_bucket(logged)
    assert bucket.props["bucket"] == f"{PREFIX}-s3-logs-{ACCOUNT_ID}-{REGION}"
    assert not bucket.props.get("objectLockEnabled")
    assert logged.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration") == []
    encryption = setting(logged, rt.S3_BUCKET_ENCRYPTION, bucket).props
    assert [r["applyServerSideEncryptionByDefault"] for r in encryption["rules"]] == [{"sseAlgorithm": "AES256"}]
    ownership = setting(logged, rt.S3_BUCKET_OWNERSHIP, bucket).props
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    lifecycle = setting(logged, rt.S3_BUCKET_LIFECYCLE, bucket).props["rules"]
    assert [r["expiration"] for r in lifecycle if "expiration" in r] == [{"days": RETENTION}]
    # Not logged into itself (every request it gets would be logged into it, forever), nor anywhere.
    assert sorted(r.props["bucket"] for r in logged.of_type(rt.S3_BUCKET_LOGGING)) == sorted(
        f"{PREFIX}-{role}-{ACCOUNT_ID}-{REGION}" for role in SOURCES
    )
    assert bucket.protect is True and bucket.props["forceDestroy"] is False
    forced = log_bucket(logs_run("source", force_destroy=True))
    assert forced.protect is False and forced.props["forceDestroy"] is True


def test_each_bucket_logs_under_a_prefix_of_its_own_once_the_policy_admits_it(logged: ProgramRun) -> None:
    target = log_bucket(logged)
    policy = setting(logged, rt.S3_BUCKET_POLICY, target)
    loggings = {r.name: r for r in logged.of_type(rt.S3_BUCKET_LOGGING)}
    assert sorted(loggings) == sorted(f"s3-access-logs-{role}" for role in SOURCES)
    for role in SOURCES:
        logging = loggings[f"s3-access-logs-{role}"]
        props = logging.props
        assert props["bucket"] == f"{PREFIX}-{role}-{ACCOUNT_ID}-{REGION}"
        assert props["targetBucket"] == target.props["bucket"]
        assert props["targetPrefix"] == f"{role}/"
        # Dated by the requests' time: <prefix><account>/<region>/<bucket>/<yyyy>/<mm>/<dd>/...
        assert props["targetObjectKeyFormat"] == {"partitionedPrefix": {"partitionDateSource": "EventTime"}}
        # With ACLs disabled (BucketOwnerEnforced) a logging configuration may not carry target grants.
        assert not props.get("targetGrants")
        assert policy.urn in logging.dependencies


def test_the_log_bucket_admits_each_buckets_logs_under_its_prefix_only(logged: ProgramRun) -> None:
    # The grant the S3 guide documents for the logging service principal, with aws:SourceArn and
    # aws:SourceAccount (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html).
    target = log_bucket(logged)
    arn = target.state["arn"]
    document = policy_of(setting(logged, rt.S3_BUCKET_POLICY, target))
    statements = by_sid(document)
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    deliveries = [s for s in document["Statement"] if s["Effect"] == "Allow"]
    assert [s["Sid"] for s in deliveries] == ["LogsOfSource", "LogsOfArtifacts", "LogsOfAlbLogs"]
    for delivery, role in zip(deliveries, SOURCES, strict=True):
        assert delivery["Principal"] == {"Service": LOGGING_SERVICE}
        assert delivery["Action"] == "s3:PutObject"
        assert delivery["Resource"] == f"{arn}/{role}/*"
        assert delivery["Condition"] == {
            "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{PREFIX}-{role}-{ACCOUNT_ID}-{REGION}"},
            "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        }
    assert parliament_findings(json.dumps(document)) == []


def s3_requests(found: ProgramRun) -> list[tuple[str, dict[str, Any]]]:
    """The log bucket's and the loggings' S3 API calls, as the provider makes them."""
    target = log_bucket(found)
    name = target.props["bucket"]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("CreateBucket", {"Bucket": name, "CreateBucketConfiguration": {"LocationConstraint": REGION}}),
        (
            "PutBucketOwnershipControls",
            {"Bucket": name, "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}},
        ),
        (
            "PutBucketEncryption",
            {
                "Bucket": name,
                "ServerSideEncryptionConfiguration": {
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            },
        ),
        ("PutBucketPolicy", {"Bucket": name, "Policy": setting(found, rt.S3_BUCKET_POLICY, target).props["policy"]}),
    ]
    for logging in found.of_type(rt.S3_BUCKET_LOGGING):
        props = logging.props
        key_format = props["targetObjectKeyFormat"]["partitionedPrefix"]
        enabled = {
            "TargetBucket": props["targetBucket"],
            "TargetPrefix": props["targetPrefix"],
            "TargetObjectKeyFormat": {"PartitionedPrefix": {"PartitionDateSource": key_format["partitionDateSource"]}},
        }
        calls.append(
            ("PutBucketLogging", {"Bucket": props["bucket"], "BucketLoggingStatus": {"LoggingEnabled": enabled}})
        )
    return calls


def test_the_requests_are_valid_and_s3_accepts_the_logging_because_the_policy_admits_it(logged: ProgramRun) -> None:
    calls = s3_requests(logged)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for role in SOURCES:
            s3.create_bucket(
                Bucket=f"{PREFIX}-{role}-{ACCOUNT_ID}-{REGION}",
                CreateBucketConfiguration={"LocationConstraint": REGION},
            )
        target = log_bucket(logged).props["bucket"]
        first_logging = next(params for operation, params in calls if operation == "PutBucketLogging")
        for operation, params in calls:
            assert_valid_request("s3", operation, params)
            if operation == "PutBucketPolicy":
                # moto, like S3, refuses a logging configuration the target bucket does not admit: the check is real.
                with pytest.raises(botocore.exceptions.ClientError, match="InvalidTargetBucketForLogging"):
                    s3.put_bucket_logging(**first_logging)
                # moto's check reads every statement's Principal as a map: the TLS Deny's "*" (valid, checked by
                # botocore and parliament) is left out of the policy moto reads.
                allows = [s for s in json.loads(params["Policy"])["Statement"] if s["Effect"] == "Allow"]
                params = {**params, "Policy": json.dumps({"Version": "2012-10-17", "Statement": allows})}
            getattr(s3, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())(**params)
        for role in SOURCES:
            enabled = s3.get_bucket_logging(Bucket=f"{PREFIX}-{role}-{ACCOUNT_ID}-{REGION}")["LoggingEnabled"]
            assert (enabled["TargetBucket"], enabled["TargetPrefix"]) == (target, f"{role}/")


def test_two_buckets_with_one_prefix_are_refused_before_anything_is_registered() -> None:
    registered: list[Registration] = []
    ctx = stack_config().context

    def build() -> None:
        S3AccessLogs("s3-access-logs", S3AccessLogsArgs(ctx, [bundles.bucket("source"), bundles.bucket("source")]))

    with pytest.raises(ValueError, match="role of its own"):
        run(build, registered=registered)
    assert registered == []


def test_the_component_passes_the_pack_with_the_buckets_it_logs() -> None:
    """S3AccessLogs with real buckets (a SourceBucket in cloudtrail mode): each is logged, the log bucket is not
    judged, and nothing else fires."""
    cfg = stack_config({"triggerMode": "cloudtrail"})

    def build() -> None:
        source = SourceBucket("source", SourceBucketArgs(cfg.context, cfg.source))
        S3AccessLogs("s3-access-logs", S3AccessLogsArgs(cfg.context, source.buckets))

    found = run(build)
    assert [r.props["targetPrefix"] for r in found.of_type(rt.S3_BUCKET_LOGGING)] == ["source/", "trail/"]
    assert violations(found) == []


# --- S3.9 on the committed stacks ------------------------------------------------------------------------------


def buckets_and_loggings(found: ProgramRun) -> tuple[set[str], dict[str, str]]:
    """(every bucket's name, logged bucket -> its target)."""
    names = {b.props["bucket"] for b in found.of_type(rt.S3_BUCKET)}
    return names, {r.props["bucket"]: r.props["targetBucket"] for r in found.of_type(rt.S3_BUCKET_LOGGING)}


@pytest.mark.parametrize("mode", ["eventbridge", "cloudtrail"])
def test_every_bucket_of_prod_but_the_log_bucket_logs_into_it(mode: str) -> None:
    found = stack_run("prod", overrides={"triggerMode": mode})
    names, loggings = buckets_and_loggings(found)
    [target] = set(loggings.values())
    assert target.startswith("sample-app-prod-s3-logs-")
    assert set(loggings) == names - {target}
    roles = {"source", "artifacts", "alb-logs"} | ({"trail"} if mode == "cloudtrail" else set())
    assert {name.split(f"-{ACCOUNT_ID}-")[0].removeprefix("sample-app-prod-") for name in loggings} == roles
    assert pack.stack_violations(found, "prod") == []


def test_dev_fails_s3_9_by_design_on_exactly_its_unlogged_buckets(dev: ProgramRun) -> None:
    """Pulumi.dev.yaml turns the logs off: S3.9 fires on the source and artifact buckets, and on nothing else (the
    integrator exempts it on dev). On, dev passes."""
    assert dev.of_type(rt.S3_BUCKET_LOGGING) == []
    assert S3_9 in {v.rule for v in violations(dev)}
    assert fired_on(dev, S3_9) == {"source-bucket", "deploy-artifacts"}
    on = stack_run("dev", overrides={"s3AccessLogs": "true", "triggerMode": "cloudtrail"})
    assert S3_9 not in {v.rule for v in violations(on)}
    assert buckets_and_loggings(on)[1].keys() == buckets_and_loggings(on)[0] - set(buckets_and_loggings(on)[1].values())


@pytest.mark.parametrize("alb_logs", ["true", "false"])
@pytest.mark.parametrize("s3_logs", ["true", "false"])
def test_alb_and_s3_access_logs_are_independent_keys(alb_logs: str, s3_logs: str) -> None:
    """Each key makes a bucket of its own; with both, the ALB's log bucket is logged like any other."""
    found = stack_run("prod", overrides={"albAccessLogs": alb_logs, "s3AccessLogs": s3_logs})
    names, loggings = buckets_and_loggings(found)
    alb = {n for n in names if "-alb-logs-" in n}
    s3_logs_bucket = {n for n in names if "-s3-logs-" in n}
    assert bool(alb) == (alb_logs == "true")
    assert bool(s3_logs_bucket) == (s3_logs == "true")
    assert (alb <= set(loggings)) if s3_logs == "true" else not loggings
    unexplained = {v.rule for v in pack.stack_violations(found, "prod")}
    assert unexplained == (set() if s3_logs == "true" else {S3_9})


# --- S3.9: the rule --------------------------------------------------------------------------------------------


def bucket(name: str, **props: Any) -> Resource:
    return Resource(
        type=rt.S3_BUCKET,
        name=name,
        props={"bucket": name, **props},
        urn=f"urn:{name}",
        ids=frozenset({name, f"arn:aws:s3:::{name}"}),
    )


def logging(source: str, target: Any, *, typ: str = rt.S3_BUCKET_LOGGING, deps: Sequence[str] = ()) -> Resource:
    return Resource(
        type=typ,
        name=f"{source}-logging",
        props={"bucket": UNKNOWN if deps else source, "targetBucket": target, "targetPrefix": f"{source}/"},
        urn=f"urn:{source}-logging",
        property_dependencies={"bucket": frozenset(deps)},
    )


def s3_9(resources: list[Resource]) -> set[str]:
    """Names of the buckets S3.9 reports."""
    return {v.urn.removeprefix("urn:") for v in rules.check_stack(resources) if v.rule == S3_9}


def test_s3_9_refuses_a_bucket_that_logs_nothing_and_exempts_the_bucket_receiving_logs() -> None:
    src, artifacts, logs = bucket("src"), bucket("artifacts"), bucket("logs")
    assert s3_9([src, artifacts, logs]) == {"src", "artifacts", "logs"}
    # A bucket's logging counts for it alone; the target is not judged (the control: "The target logging bucket
    # does not need to have server access logging enabled, and you should suppress findings for this bucket").
    assert s3_9([src, artifacts, logs, logging("src", "logs")]) == {"artifacts"}
    assert s3_9([src, artifacts, logs, logging("src", "logs"), logging("artifacts", "logs")]) == set()
    # The deprecated V2 resource and the bucket's inline `logging` count too.
    assert s3_9([src, logs, logging("src", "logs", typ=rt.S3_BUCKET_LOGGING_V2)]) == set()
    assert s3_9([bucket("src", logging={"targetBucket": "logs", "targetPrefix": "src/"}), logs]) == set()
    # A logging configuration without a target logs nothing.
    assert s3_9([src, logs, logging("src", "")]) == {"src", "logs"}


def test_s3_9_during_a_preview_matches_by_dependency_and_leaves_unknown_targets_to_pulumi_up() -> None:
    src, logs = bucket("src"), bucket("logs")
    # Neither the source's nor the target's name is known yet: the logging refers to them by dependency.
    unknown = Resource(
        type=rt.S3_BUCKET_LOGGING,
        name="src-logging",
        props={"bucket": UNKNOWN, "targetBucket": UNKNOWN},
        urn="urn:src-logging",
        property_dependencies={"bucket": frozenset({"urn:src"}), "targetBucket": frozenset({"urn:logs"})},
    )
    assert s3_9([src, logs, unknown]) == set()
    assert s3_9([src, logs, logging("other", "logs", deps=("urn:other",))]) == {"src"}


def test_s3_9_is_named_and_documented_for_its_control() -> None:
    [rule] = [r for r in rules.STACK_RULES if r.name == S3_9]
    assert rule.description.startswith("S3.9: ")
    doc = rules.fsbp_s3_9_server_access_logging.__doc__ or ""
    assert "securityhub/latest/userguide/s3-controls.html#s3-9" in doc
    assert "AmazonS3/latest/userguide/enable-server-access-logging.html" in doc


# --- CloudTrail.2 and CloudTrail.5: the trail of the cloudtrail trigger mode ------------------------------------


@pytest.fixture(scope="module")
def trail_run() -> ProgramRun:
    cfg = stack_config({"appName": "shop", "logRetentionDays": str(RETENTION), "triggerMode": "cloudtrail"})

    def build() -> None:
        SourceBucket("source", SourceBucketArgs(cfg.context, cfg.source))

    return run(build)


TRAIL_NAME = f"{PREFIX}-source-uploads"
TRAIL_ARN = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/{TRAIL_NAME}"


def test_the_trail_encrypts_its_log_files_with_a_rotating_key_of_its_own(trail_run: ProgramRun) -> None:
    # CloudTrail.2 passes when the trail's KmsKeyId is set.
    trail = trail_run.one(rt.CLOUDTRAIL_TRAIL)
    key = trail_run.one(rt.KMS_KEY)
    assert trail.state["arn"] == TRAIL_ARN, "the ARN the policies name is the trail's"
    assert trail.props["kmsKeyId"] == key.state["arn"]
    assert key.props["enableKeyRotation"] is True
    assert not key.props.get("customerMasterKeySpec") and not key.props.get("keyUsage"), "symmetric: rotatable"
    assert trail_run.one(rt.KMS_ALIAS).props == {"name": f"alias/{TRAIL_NAME}", "targetKeyId": key.state["arn"]}
    assert CLOUDTRAIL_2 not in {v.rule for v in violations(trail_run)}


def test_the_key_policy_lets_cloudtrail_use_the_key_for_this_trail_only(trail_run: ProgramRun) -> None:
    # https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-kms-key-policy-for-cloudtrail.html:
    # encrypt (kms:GenerateDataKey*, encryption context aws:cloudtrail:arn of this account's trails) and describe,
    # each with aws:SourceArn = the trail; readers decrypt through IAM, which the account statement enables.
    document = policy_of(trail_run.one(rt.KMS_KEY))
    statements = by_sid(document)
    assert set(statements) == {"AccountAdministersTheKey", "CloudTrailEncryptsLogFiles", "CloudTrailDescribesTheKey"}
    assert statements["AccountAdministersTheKey"]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    encrypt = statements["CloudTrailEncryptsLogFiles"]
    assert (encrypt["Principal"], encrypt["Action"]) == ({"Service": CLOUDTRAIL}, "kms:GenerateDataKey*")
    assert encrypt["Condition"] == {
        "StringEquals": {"aws:SourceArn": TRAIL_ARN},
        "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{ACCOUNT_ID}:trail/*"},
    }
    describe = statements["CloudTrailDescribesTheKey"]
    assert (describe["Action"], describe["Condition"]) == (
        "kms:DescribeKey",
        {"StringEquals": {"aws:SourceArn": TRAIL_ARN}},
    )
    # CloudTrail never decrypts (that needs an S3 Bucket Key, which the log bucket has not).
    assert not any(
        "kms:Decrypt" in json.dumps(s) for s in document["Statement"] if s["Principal"] == {"Service": CLOUDTRAIL}
    )
    assert_valid_request("kms", "CreateKey", {"Description": "d", "Policy": json.dumps(document)})


def test_the_trail_delivers_its_events_to_a_log_group_kept_the_stacks_retention(trail_run: ProgramRun) -> None:
    # CloudTrail.5 fails when CloudWatchLogsLogGroupArn is empty; CloudTrail takes the group's ARN with ":*".
    trail = trail_run.one(rt.CLOUDTRAIL_TRAIL)
    group = trail_run.one(rt.LOG_GROUP)
    assert group.props["name"] == f"/aws/cloudtrail/{TRAIL_NAME}"
    assert group.props["retentionInDays"] == RETENTION
    assert group.protect is True, "an audit record, protected like the trail's log bucket"
    assert trail.props["cloudWatchLogsGroupArn"] == f"{group.state['arn']}:*"
    assert CLOUDTRAIL_5 not in {v.rule for v in violations(trail_run)}


def test_cloudtrail_writes_through_a_role_allowed_only_into_its_streams_of_that_group(trail_run: ProgramRun) -> None:
    # https://docs.aws.amazon.com/awscloudtrail/latest/userguide/send-cloudtrail-events-to-cloudwatch-logs.html:
    # the documented trust has no condition; the policy allows CreateLogStream and PutLogEvents on the group's
    # streams CloudTrail names <account>_CloudTrail_<region>...
    trail = trail_run.one(rt.CLOUDTRAIL_TRAIL)
    role = trail_run.one(rt.IAM_ROLE)
    assert trail.props["cloudWatchLogsRoleArn"] == role.state["arn"]
    trust = policy_of(role, "assumeRolePolicy")
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": CLOUDTRAIL}, "Action": "sts:AssumeRole"}]
    policy = trail_run.one(rt.IAM_ROLE_POLICY)
    [statement] = policy_of(policy)["Statement"]
    group_arn = trail_run.one(rt.LOG_GROUP).state["arn"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == [f"{group_arn}:log-stream:{ACCOUNT_ID}_CloudTrail_{REGION}*"]
    assert parliament_findings(policy.props["policy"]) == []
    # CloudTrail checks the bucket, the key and the role when it creates the trail: all of them come first.
    bucket_policy = next(p for p in trail_run.of_type(rt.S3_BUCKET_POLICY) if p.name == "source-trail-logs-policy")
    assert {bucket_policy.urn, policy.urn, trail_run.one(rt.KMS_KEY).urn} <= set(trail.dependencies)


def test_the_trail_is_a_valid_create_trail_request(trail_run: ProgramRun) -> None:
    trail = trail_run.one(rt.CLOUDTRAIL_TRAIL).props
    params = {
        "Name": trail["name"],
        "S3BucketName": trail["s3BucketName"],
        "IsMultiRegionTrail": trail["isMultiRegionTrail"],
        "IncludeGlobalServiceEvents": trail["includeGlobalServiceEvents"],
        "EnableLogFileValidation": trail["enableLogFileValidation"],
        "KmsKeyId": trail["kmsKeyId"],
        "CloudWatchLogsLogGroupArn": trail["cloudWatchLogsGroupArn"],
        "CloudWatchLogsRoleArn": trail["cloudWatchLogsRoleArn"],
    }
    assert_valid_request("cloudtrail", "CreateTrail", params)
    group = trail_run.one(rt.LOG_GROUP).props
    assert_valid_request("logs", "CreateLogGroup", {"logGroupName": group["name"]})
    assert_valid_request("logs", "PutRetentionPolicy", {"logGroupName": group["name"], "retentionInDays": RETENTION})


def test_eventbridge_mode_has_no_trail_key_or_log_group() -> None:
    cfg = stack_config()
    found = run(lambda: SourceBucket("source", SourceBucketArgs(cfg.context, cfg.source)))
    assert not found.of_type(rt.CLOUDTRAIL_TRAIL) and not found.of_type(rt.KMS_KEY) and not found.of_type(rt.LOG_GROUP)


@pytest.mark.parametrize(
    ("props", "fires"),
    [
        ({}, {CLOUDTRAIL_2, CLOUDTRAIL_5}),
        ({"kmsKeyId": ""}, {CLOUDTRAIL_2, CLOUDTRAIL_5}),
        ({"kmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/k"}, {CLOUDTRAIL_5}),
        ({"cloudWatchLogsGroupArn": "arn:aws:logs:eu-west-1:123456789012:log-group:g:*"}, {CLOUDTRAIL_2}),
        ({"kmsKeyId": "alias/trail", "cloudWatchLogsGroupArn": "arn:aws:logs:eu-west-1:1:log-group:g:*"}, set()),
        # Not known during a preview: left to `pulumi up`.
        ({"kmsKeyId": UNKNOWN, "cloudWatchLogsGroupArn": UNKNOWN}, set()),
    ],
)
def test_the_cloudtrail_rules_read_the_trails_key_and_log_group(props: dict[str, Any], fires: set[str]) -> None:
    found = {v.rule for v in rules.check_resource(rt.CLOUDTRAIL_TRAIL, {"name": "t", "s3BucketName": "b", **props})}
    assert found == fires
    assert rules.check_resource(rt.S3_BUCKET, {}) == [], "other resources are not their concern"


@pytest.mark.parametrize(
    ("name", "control", "function"),
    [
        (CLOUDTRAIL_2, "CloudTrail.2", rules.fsbp_cloudtrail_2_encrypted),
        (CLOUDTRAIL_5, "CloudTrail.5", rules.fsbp_cloudtrail_5_cloudwatch_logs),
    ],
)
def test_the_cloudtrail_rules_are_named_and_documented_for_their_controls(
    name: str, control: str, function: Callable[..., Any]
) -> None:
    [rule] = [r for r in rules.RESOURCE_RULES if r.name == name]
    assert rule.description.startswith(f"{control}: ")
    anchor = control.lower().replace(".", "-")
    assert f"securityhub/latest/userguide/cloudtrail-controls.html#{anchor}" in (function.__doc__ or "")


# --- Cost ---------------------------------------------------------------------------------------------------


def test_the_trails_key_and_log_ingestion_are_priced_in_cloudtrail_mode(prod: ProgramRun) -> None:
    table = pricing.load_prices()
    prices = table.regions[REGION]
    before = pricing.estimate(prod, REGION)
    after = pricing.estimate(stack_run("prod", overrides={"triggerMode": "cloudtrail"}), REGION)

    def keys(est: pricing.CostEstimate) -> float:
        return next((line.quantity for line in est.fixed if line.item == "KMS keys"), 0.0)

    assert keys(after) == keys(before) + 1
    [ingestion] = [line for line in after.fixed if line.item == "CloudWatch Logs ingestion (trail events)"]
    uploads, kb = table.assumptions["uploads_per_month"], table.assumptions["trail_event_kb"]
    assert ingestion.quantity == pytest.approx(uploads * kb / (1024 * 1024))
    assert ingestion.unit_price == prices["logs_ingest_gb"]
    assert f"{uploads:g} uploads/month" in ingestion.basis and f"~{kb:g} KB" in ingestion.basis
    data_events = next(line for line in after.fixed if line.item == "CloudTrail data events")
    assert after.total == pytest.approx(
        before.total + prices["kms_key_month"] + ingestion.monthly + data_events.monthly
    )
    assert any("GenerateDataKey" in note for note in after.notes)


def test_the_estimate_says_what_the_access_logs_cost_where_there_are_some(prod: ProgramRun, dev: ProgramRun) -> None:
    """S3 bills only the logs' storage (the S3 guide: no charge for enabling logging or delivering the logs)."""
    logged = [item for item in pricing.estimate(prod, REGION).excluded if item.startswith("S3 server access logs")]
    assert logged == [next(i for i in logged if "of 3 buckets" in i)]
    assert not any(i.startswith("S3 server access logs") for i in pricing.estimate(dev, REGION).excluded)
    assert pricing.estimate(prod, REGION).total == pytest.approx(
        pricing.estimate(stack_run("prod", overrides={"s3AccessLogs": "false"}), REGION).total
    )
