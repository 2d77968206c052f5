"""The security policy pack: each rule on a violating and a compliant resource, the program's own stacks, the
property names of the real SDKs, and the pulumi-policy adapter (in process and as the CLI runs it).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import pulumi
import pulumi_aws as aws
import pulumi_gitlab as gitlab
import pulumiverse_time
import pytest
from google.protobuf import empty_pb2, struct_pb2
from parliament import iam_definition
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as policy_proxy

import policy.__main__ as pack
from components.base import ROOT
from components.load_balancer import SslPolicy
from offline.engine import ProgramRun
from policy import resource_types as rt
from policy import rules
from policy.rules import UNKNOWN, Resource
from support.pack import BY_DESIGN, by_design, res, unexpected
from support.stacks import STACKS, run

ALL_RULES = {r.name for r in rules.RESOURCE_RULES} | {r.name for r in rules.STACK_RULES}


# --- Helpers -------------------------------------------------------------------------------------------


def fired(resources: list[Resource]) -> set[str]:
    """Names of the rules that report something on these resources."""
    return {v.rule for v in rules.check_stack(resources)}


def messages(resource_type: str, props: Mapping[str, Any]) -> dict[str, list[str]]:
    """rule name -> messages, for every resource rule that reports on this one resource."""
    found: dict[str, list[str]] = {}
    for violation in rules.check_resource(resource_type, props):
        found.setdefault(violation.rule, []).append(violation.message)
    return found


def doc(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: list[str] | str, resources: list[str] | str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


# --- IAM ------------------------------------------------------------------------------------------------

SCOPED = allow(["s3:GetObject", "s3:GetObjectVersion"], ["arn:aws:s3:::src/*"])


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        (rt.IAM_ROLE_POLICY, {"policy": doc(allow("*", "arn:aws:s3:::src"))}),
        (rt.IAM_POLICY, {"policy": doc(allow(["s3:*"], ["arn:aws:s3:::src"]))}),
        (rt.IAM_USER_POLICY, {"policy": doc(allow(["s3:GetObject", "ecr:*"], ["arn:aws:s3:::src"]))}),
        (
            rt.IAM_ROLE,
            {"assumeRolePolicy": "{}", "inlinePolicies": [{"name": "x", "policy": doc(allow("*", "x"))}]},
        ),
        (rt.S3_BUCKET_POLICY, {"policy": doc({**allow("s3:*", "x"), "Principal": {"AWS": "arn"}})}),
        (rt.IAM_ROLE_POLICY, {"policy": doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "x"})}),
        (rt.IAM_ROLE_POLICY, {"policy": "{not json"}),
    ],
)
def test_wildcard_actions_are_refused(resource_type: str, props: dict[str, Any]) -> None:
    assert "iam-no-wildcard-actions" in messages(resource_type, props)


def test_scoped_actions_and_a_deny_of_everything_are_accepted() -> None:
    props = {"policy": doc(SCOPED, deny_insecure_transport("arn:aws:s3:::src"))}
    assert messages(rt.IAM_ROLE_POLICY, props) == {}


def test_resource_star_is_refused_for_actions_aws_can_scope() -> None:
    found = messages(rt.IAM_ROLE_POLICY, {"policy": doc(allow(["ecr:GetAuthorizationToken", "s3:GetObject"], "*"))})
    assert list(found) == ["iam-resource-star-only-unscopable"]
    assert "s3:GetObject" in found["iam-resource-star-only-unscopable"][0]
    assert "ecr:GetAuthorizationToken" not in found["iam-resource-star-only-unscopable"][0]
    not_resource = {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"}
    assert "iam-resource-star-only-unscopable" in messages(rt.IAM_ROLE_POLICY, {"policy": doc(not_resource)})


def test_resource_star_is_accepted_for_actions_aws_cannot_scope() -> None:
    statement = allow(["ecr:GetAuthorizationToken", "ECS:DescribeTaskDefinition"], ["*"])
    assert messages(rt.IAM_ROLE_POLICY, {"policy": doc(statement)}) == {}


def test_every_resource_star_action_really_has_no_resource_type() -> None:
    """Each allow-listed action exists and AWS lists no resource type for it (parliament's copy of the
    Service Authorization Reference), so "*" is the only Resource it can have."""
    resource_types = {
        f"{service['prefix']}:{p['privilege']}".lower(): {r["resource_type"] for r in p["resource_types"]}
        for service in iam_definition
        for p in service["privileges"]
    }
    for action, reason in rules.RESOURCE_STAR_ACTIONS.items():
        assert reason
        assert action.lower() in resource_types, f"{action} is not an IAM action"
        assert resource_types[action.lower()] == {""}, f"{action} can be scoped to {resource_types[action.lower()]}"


@pytest.mark.parametrize(
    "principal",
    ["*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::123456789012:root", "*"]}, {"Service": "*"}],
)
def test_anyone_as_principal_is_refused(principal: Any) -> None:
    trust = doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})
    assert list(messages(rt.IAM_ROLE, {"assumeRolePolicy": trust})) == ["iam-no-wildcard-principal"]
    bucket_policy = doc({**SCOPED, "Principal": principal})
    assert "iam-no-wildcard-principal" in messages(rt.S3_BUCKET_POLICY, {"policy": bucket_policy})


def test_a_service_principal_is_accepted() -> None:
    trust = doc(
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
        }
    )
    assert messages(rt.IAM_ROLE, {"assumeRolePolicy": trust}) == {}


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        (
            rt.IAM_ROLE_POLICY_ATTACHMENT,
            {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        ),
        (
            rt.IAM_USER_POLICY_ATTACHMENT,
            {"policyArn": "arn:aws:iam::aws:policy/AmazonS3FullAccess"},
        ),
        (rt.IAM_ROLE, {"managedPolicyArns": ["arn:aws:iam::aws:policy/PowerUserAccess"]}),
        (
            rt.IAM_ROLE_POLICY_ATTACHMENTS_EXCLUSIVE,
            {"policyArns": ["arn:aws:iam::aws:policy/AWSCodeBuildAdminAccess"]},
        ),
    ],
)
def test_broad_managed_policies_are_refused(resource_type: str, props: dict[str, Any]) -> None:
    assert "iam-no-broad-managed-policies" in messages(resource_type, props)


def test_narrow_managed_policies_are_accepted() -> None:
    arn = "arn:aws:iam::aws:policy/AWSCodeDeployRoleForECS"
    assert messages(rt.IAM_ROLE_POLICY_ATTACHMENT, {"policyArn": arn}) == {}


# --- S3 -------------------------------------------------------------------------------------------------

ALL_BLOCKED = {
    "blockPublicAcls": True,
    "blockPublicPolicy": True,
    "ignorePublicAcls": True,
    "restrictPublicBuckets": True,
}


def bucket_stack(name: str = "src", **replace: Resource | None) -> list[Resource]:
    """A bucket with every setting the rules ask for, read by a pipeline's S3 source action; ``replace``
    swaps a part (by role) for another resource, or drops it with ``None``."""
    arn = f"arn:aws:s3:::{name}"
    parts: dict[str, Resource | None] = {
        "bucket": res(rt.S3_BUCKET, name, {"bucket": name}, ids=(name, arn)),
        "pab": res(rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK, f"{name}-pab", {"bucket": name, **ALL_BLOCKED}),
        "sse": res(
            rt.S3_BUCKET_ENCRYPTION,
            f"{name}-sse",
            {"bucket": name, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
        ),
        "policy": res(
            rt.S3_BUCKET_POLICY, f"{name}-policy", {"bucket": name, "policy": doc(deny_insecure_transport(arn))}
        ),
        "versioning": res(
            rt.S3_BUCKET_VERSIONING,
            f"{name}-versioning",
            {"bucket": name, "versioningConfiguration": {"status": "Enabled"}},
        ),
        "pipeline": res(rt.CODEPIPELINE_PIPELINE, "pipeline", {"stages": [source_stage(name)]}),
        # Its requests logged into an access-log bucket (outside these resources: not judged).
        "logging": res(
            rt.S3_BUCKET_LOGGING,
            f"{name}-logging",
            {"bucket": name, "targetBucket": "access-logs", "targetPrefix": f"{name}/"},
        ),
    }
    parts.update(replace)
    return [p for p in parts.values() if p is not None]


def source_stage(bucket: Any) -> dict[str, Any]:
    action = {
        "name": "Source",
        "category": "Source",
        "owner": "AWS",
        "provider": "S3",
        "version": "1",
        "outputArtifacts": ["source"],
        "configuration": {"S3Bucket": bucket, "S3ObjectKey": "docker-image/docker_image.zip"},
    }
    return {"name": "Source", "actions": [action]}


def test_a_bucket_with_every_setting_passes() -> None:
    assert rules.check_stack(bucket_stack()) == []


def test_a_bucket_without_public_access_block_is_refused() -> None:
    assert fired(bucket_stack(pab=None)) == {"s3-public-access-blocked"}
    partial = res(
        rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK, "src-pab", {"bucket": "src", **ALL_BLOCKED, "restrictPublicBuckets": False}
    )
    assert fired(bucket_stack(pab=partial)) == {"s3-public-access-blocked"}
    other_bucket = res(rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK, "src-pab", {"bucket": "another-bucket", **ALL_BLOCKED})
    assert fired(bucket_stack(pab=other_bucket)) == {"s3-public-access-blocked"}


def test_an_account_wide_public_access_block_covers_every_bucket() -> None:
    account = res(rt.S3_ACCOUNT_PUBLIC_ACCESS_BLOCK, "account", ALL_BLOCKED)
    assert fired([*bucket_stack(pab=None), account]) == set()


def test_a_bucket_without_encryption_is_refused() -> None:
    assert fired(bucket_stack(sse=None)) == {"s3-bucket-encrypted"}
    inline = res(
        rt.S3_BUCKET,
        "src",
        {
            "bucket": "src",
            "serverSideEncryptionConfiguration": {
                "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}
            },
        },
        ids=("src", "arn:aws:s3:::src"),
    )
    assert fired(bucket_stack(sse=None, bucket=inline)) == set()


def test_a_bucket_accepting_plain_http_is_refused() -> None:
    assert fired(bucket_stack(policy=None)) == {"s3-bucket-tls-only"}
    secure_true = deny_insecure_transport("arn:aws:s3:::src")
    secure_true["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}
    objects_only = {**deny_insecure_transport("arn:aws:s3:::src"), "Resource": "arn:aws:s3:::src/*"}
    other_bucket = deny_insecure_transport("arn:aws:s3:::elsewhere")
    allow_instead = {**deny_insecure_transport("arn:aws:s3:::src"), "Effect": "Allow"}
    for statement in (secure_true, objects_only, other_bucket):
        policy = res(rt.S3_BUCKET_POLICY, "src-policy", {"bucket": "src", "policy": doc(statement)})
        assert fired(bucket_stack(policy=policy)) == {"s3-bucket-tls-only"}, statement
    policy = res(rt.S3_BUCKET_POLICY, "src-policy", {"bucket": "src", "policy": doc(allow_instead)})
    assert "s3-bucket-tls-only" in fired(bucket_stack(policy=policy))


def test_a_tls_only_policy_inline_on_the_bucket_is_accepted() -> None:
    inline = res(
        rt.S3_BUCKET,
        "src",
        {"bucket": "src", "policy": doc(deny_insecure_transport("arn:aws:s3:::src"))},
        ids=("src", "arn:aws:s3:::src"),
    )
    assert fired(bucket_stack(policy=None, bucket=inline)) == set()


def test_the_source_bucket_must_be_versioned_and_other_buckets_need_not() -> None:
    assert fired(bucket_stack(versioning=None)) == {"s3-source-bucket-versioned"}
    suspended = res(
        rt.S3_BUCKET_VERSIONING, "src-versioning", {"bucket": "src", "versioningConfiguration": {"status": "Suspended"}}
    )
    assert fired(bucket_stack(versioning=suspended)) == {"s3-source-bucket-versioned"}
    assert fired(bucket_stack(versioning=None, pipeline=None)) == set()
    inline = res(
        rt.S3_BUCKET, "src", {"bucket": "src", "versioning": {"enabled": True}}, ids=("src", "arn:aws:s3:::src")
    )
    assert fired(bucket_stack(versioning=None, bucket=inline)) == set()


def test_during_a_preview_references_not_known_yet_are_matched_by_dependency() -> None:
    """In a preview the new bucket's name is unknown, so its settings refer to it only by dependency."""
    bucket = res(rt.S3_BUCKET, "src", {"bucket": UNKNOWN})
    urn = {bucket.urn}
    settings_ = [
        res(rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK, "pab", {"bucket": UNKNOWN, **ALL_BLOCKED}, deps={"bucket": urn}),
        res(
            rt.S3_BUCKET_ENCRYPTION,
            "sse",
            {"bucket": UNKNOWN, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
            deps={"bucket": urn},
        ),
        res(rt.S3_BUCKET_POLICY, "policy", {"bucket": UNKNOWN, "policy": UNKNOWN}, deps={"bucket": urn}),
        res(
            rt.S3_BUCKET_VERSIONING,
            "versioning",
            {"bucket": UNKNOWN, "versioningConfiguration": {"status": "Enabled"}},
            deps={"bucket": urn},
        ),
        res(rt.CODEPIPELINE_PIPELINE, "pipeline", {"stages": [source_stage(UNKNOWN)]}, deps={"stages": urn}),
        res(rt.S3_BUCKET_LOGGING, "logging", {"bucket": UNKNOWN, "targetBucket": UNKNOWN}, deps={"bucket": urn}),
    ]
    assert rules.check_stack([bucket, *settings_]) == []
    # A known policy is still judged when the bucket's own ARN is not known: it must cover some bucket and its
    # objects.
    known_policy = res(
        rt.S3_BUCKET_POLICY,
        "policy",
        {"bucket": UNKNOWN, "policy": doc(deny_insecure_transport("arn:aws:s3:::src"))},
        deps={"bucket": urn},
    )
    assert rules.check_stack([bucket, *settings_[:2], known_policy, *settings_[3:]]) == []
    objects_only = {**deny_insecure_transport("arn:aws:s3:::src"), "Resource": "arn:aws:s3:::src/*"}
    weak_policy = res(
        rt.S3_BUCKET_POLICY, "policy", {"bucket": UNKNOWN, "policy": doc(objects_only)}, deps={"bucket": urn}
    )
    assert fired([bucket, *settings_[:2], weak_policy, *settings_[3:]]) == {"s3-bucket-tls-only"}
    # What is missing is still missing: nothing refers to the bucket, even by dependency.
    assert fired([bucket, *settings_[1:]]) == {"s3-public-access-blocked"}
    assert fired([bucket, *settings_[:3], *settings_[4:]]) == {"s3-source-bucket-versioned"}


# --- ECR ------------------------------------------------------------------------------------------------

EXPIRE_OLD = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
                "action": {"type": "expire"},
            }
        ]
    }
)


def test_a_repository_without_scan_on_push_is_refused() -> None:
    assert "ecr-scan-on-push" in messages(rt.ECR_REPOSITORY, {"name": "app"})
    assert "ecr-scan-on-push" in messages(rt.ECR_REPOSITORY, {"imageScanningConfiguration": {"scanOnPush": False}})
    scanning = {"imageScanningConfiguration": {"scanOnPush": True}, "imageTagMutability": "IMMUTABLE"}
    assert messages(rt.ECR_REPOSITORY, scanning) == {}


def test_a_repository_without_lifecycle_policy_is_refused() -> None:
    repo = res(
        rt.ECR_REPOSITORY,
        "repo",
        {"name": "app", "imageScanningConfiguration": {"scanOnPush": True}, "imageTagMutability": "IMMUTABLE"},
        ids=("app",),
    )
    assert fired([repo]) == {"ecr-lifecycle-policy"}
    assert fired(
        [repo, res(rt.ECR_LIFECYCLE_POLICY, "lp", {"repository": "app", "policy": json.dumps({"rules": []})})]
    ) == {"ecr-lifecycle-policy"}
    assert fired([repo, res(rt.ECR_LIFECYCLE_POLICY, "lp", {"repository": "other", "policy": EXPIRE_OLD})]) == {
        "ecr-lifecycle-policy"
    }
    assert fired([repo, res(rt.ECR_LIFECYCLE_POLICY, "lp", {"repository": "app", "policy": EXPIRE_OLD})]) == set()


# --- Security groups ----------------------------------------------------------------------------------

LB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/1"
# An ALB every load-balancer rule accepts (each test changes the one setting it is about).
PROTECTED_ALB = {"securityGroups": ["sg-alb"], "dropInvalidHeaderFields": True, "enableDeletionProtection": True}
PROD_LISTENER_ARN = f"{LB_ARN}/prod"
TEST_LISTENER_ARN = f"{LB_ARN}/test"


TLS = {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}
"""What an HTTPS listener of the ALB stacks below has (the certificate ARN set by ``https_listener``)."""


def https_listener(name: str, port: float, arn: str) -> Resource:
    props = {"loadBalancerArn": LB_ARN, "port": port, **TLS, "certificateArn": f"{arn}/certificate"}
    return res(rt.LB_LISTENER, name, props, ids=(arn,))


def alb_stack(*rules_: Resource) -> list[Resource]:
    """An ALB with its security group ``sg-alb``, an HTTPS production listener on 443 and a CodeDeploy HTTPS test
    listener on 8443, a task security group ``sg-tasks``, and the given ingress rules."""
    return [
        res(rt.EC2_SECURITY_GROUP, "alb-sg", {"name": "alb"}, ids=("sg-alb",)),
        res(rt.EC2_SECURITY_GROUP, "tasks-sg", {"name": "tasks"}, ids=("sg-tasks",)),
        res(rt.LB_LOAD_BALANCER, "alb", PROTECTED_ALB, ids=(LB_ARN,)),
        https_listener("prod", 443.0, PROD_LISTENER_ARN),
        https_listener("test", 8443.0, TEST_LISTENER_ARN),
        res(
            rt.CODEDEPLOY_DEPLOYMENT_GROUP,
            "dg",
            {
                "autoRollbackConfiguration": {"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
                "loadBalancerInfo": {
                    "targetGroupPairInfo": {
                        "prodTrafficRoute": {"listenerArns": [PROD_LISTENER_ARN]},
                        "testTrafficRoute": {"listenerArns": [TEST_LISTENER_ARN]},
                    }
                },
            },
        ),
        *rules_,
    ]


def ingress(sg: str, port: float, cidr: str = "0.0.0.0/0", protocol: str = "tcp", to: float | None = None) -> Resource:
    family = "cidrIpv6" if ":" in cidr else "cidrIpv4"
    props = {
        "securityGroupId": sg,
        "ipProtocol": protocol,
        "fromPort": port,
        "toPort": port if to is None else to,
        family: cidr,
    }
    return res(rt.VPC_SECURITY_GROUP_INGRESS_RULE, f"{sg}-{port}-{cidr}-{protocol}", props)


def test_the_albs_production_listener_port_may_be_open_to_the_world() -> None:
    assert fired(alb_stack(ingress("sg-alb", 443.0), ingress("sg-alb", 443.0, "::/0"))) == set()


@pytest.mark.parametrize(
    "rule",
    [
        ingress("sg-alb", 22.0),
        ingress("sg-alb", 22.0, "::/0"),
        ingress("sg-alb", 8443.0),  # the test listener serves the release not yet approved
        ingress("sg-alb", 443.0, protocol="-1"),
        ingress("sg-alb", 443.0, protocol="udp"),
        ingress("sg-alb", 443.0, to=444.0),
        ingress("sg-tasks", 443.0),  # the listener port, but on a security group no ALB uses
        ingress("sg-unknown-to-the-stack", 443.0),
    ],
    ids=["ssh", "ssh-ipv6", "test-listener", "all-protocols", "udp", "range", "tasks-sg", "external-sg"],
)
def test_anything_else_open_to_the_world_is_refused(rule: Resource) -> None:
    found = rules.check_stack(alb_stack(rule))
    assert [(v.rule, v.urn) for v in found] == [("security-group-world-ingress", rule.urn)]


def test_any_port_may_be_open_to_a_narrower_network() -> None:
    assert (
        fired(alb_stack(ingress("sg-tasks", 22.0, "10.0.0.0/16"), ingress("sg-alb", 8443.0, "203.0.113.0/24"))) == set()
    )


def test_inline_and_classic_security_group_rules_are_checked_too() -> None:
    inline = res(
        rt.EC2_SECURITY_GROUP,
        "legacy",
        {"ingress": [{"protocol": "tcp", "fromPort": 3306.0, "toPort": 3306.0, "cidrBlocks": ["0.0.0.0/0"]}]},
    )
    classic = res(
        rt.EC2_SECURITY_GROUP_RULE,
        "classic",
        {
            "type": "ingress",
            "securityGroupId": "sg-alb",
            "protocol": "tcp",
            "fromPort": 22.0,
            "toPort": 22.0,
            "ipv6CidrBlocks": ["::/0"],
        },
    )
    egress = res(
        rt.EC2_SECURITY_GROUP_RULE,
        "egress",
        {
            "type": "egress",
            "securityGroupId": "sg-tasks",
            "protocol": "-1",
            "fromPort": 0.0,
            "toPort": 0.0,
            "cidrBlocks": ["0.0.0.0/0"],
        },
    )
    found = rules.check_stack(alb_stack(inline, classic, egress))
    assert sorted(v.urn for v in found) == sorted([inline.urn, classic.urn])


# --- Secrets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("GITLAB_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("DB_PASSWORD", True),
        ("apiKey", True),
        ("SSH_PRIVATE_KEY", True),
        ("SOURCE_OBJECT_KEY", False),
        ("AWS_DEFAULT_REGION", False),
        ("IMAGE_REPO_NAME", False),
        ("SSH_PUBLIC_KEY", False),
        # Where a secret is kept names no secret: reading it takes secretsmanager:GetSecretValue.
        ("TOKEN_SECRET_ARN", False),
        ("DB_PASSWORD_PARAMETER_NAME", False),
        ("SECRET_ARN_PASSWORD", True),
    ],
)
def test_credential_names(name: str, credential: bool) -> None:
    assert rules.looks_like_credential(name) is credential


ARTIFACT_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-0123-abcd-0123-0123456789ab"


def codebuild(*variables: dict[str, str]) -> dict[str, Any]:
    return {
        "environment": {"image": "aws/codebuild/standard:7.0", "environmentVariables": list(variables)},
        "encryptionKey": ARTIFACT_KEY_ARN,
    }


def test_a_plaintext_credential_in_a_build_environment_is_refused() -> None:
    assert "codebuild-no-plaintext-secrets" in messages(
        rt.CODEBUILD_PROJECT, codebuild({"name": "GITLAB_TOKEN", "value": "glpat-x"})
    )
    plaintext = {"name": "DOCKERHUB_PASSWORD", "value": "x", "type": "PLAINTEXT"}
    assert "codebuild-no-plaintext-secrets" in messages(rt.CODEBUILD_PROJECT, codebuild(plaintext))


def test_references_to_secrets_and_plain_settings_in_a_build_environment_are_accepted() -> None:
    props = codebuild(
        {
            "name": "DOCKERHUB_PASSWORD",
            "value": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hub",
            "type": "SECRETS_MANAGER",
        },
        {"name": "API_TOKEN", "value": "/app/token", "type": "PARAMETER_STORE"},
        {"name": "SOURCE_OBJECT_KEY", "value": "docker-image/docker_image.zip", "type": "PLAINTEXT"},
    )
    assert messages(rt.CODEBUILD_PROJECT, props) == {}


def test_a_plaintext_credential_in_a_pipeline_build_action_is_refused() -> None:
    def pipeline(variables: list[dict[str, str]]) -> dict[str, Any]:
        action = {
            "name": "Build",
            "category": "Build",
            "provider": "CodeBuild",
            "configuration": {"ProjectName": "b", "EnvironmentVariables": json.dumps(variables)},
        }
        return {"stages": [{"name": "Build", "actions": [action]}]}

    assert "codebuild-no-plaintext-secrets" in messages(
        rt.CODEPIPELINE_PIPELINE, pipeline([{"name": "NPM_TOKEN", "value": "x", "type": "PLAINTEXT"}])
    )
    assert (
        messages(rt.CODEPIPELINE_PIPELINE, pipeline([{"name": "IMAGE_TAG", "value": "latest", "type": "PLAINTEXT"}]))
        == {}
    )


HARDENED = {"user": "101:101", "readonlyRootFilesystem": True}
"""What ECS.5 and ECS.20 ask of every container: a non-root user, a read-only root filesystem."""


def containers(*more: dict[str, Any], **container: Any) -> dict[str, Any]:
    """A task definition's props: one container (``container`` over a hardened default), and ``more``."""
    first = {"name": "app", "image": "nginx", **HARDENED, **container}
    return {"containerDefinitions": json.dumps([first, *more])}


def test_a_credential_in_a_container_environment_is_refused() -> None:
    props = containers(environment=[{"name": "PORT", "value": "80"}, {"name": "DB_PASSWORD", "value": "hunter2"}])
    found = messages(rt.ECS_TASK_DEFINITION, props)
    assert list(found) == ["ecs-no-secrets-in-environment"]
    assert "DB_PASSWORD" in found["ecs-no-secrets-in-environment"][0]


def test_a_credential_passed_as_a_container_secret_is_accepted() -> None:
    props = containers(
        environment=[{"name": "PORT", "value": "80"}],
        secrets=[{"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db"}],
    )
    assert messages(rt.ECS_TASK_DEFINITION, props) == {}


def test_a_credential_in_a_function_environment_is_refused() -> None:
    # AWS recommends Secrets Manager over environment variables for API keys and authorization tokens
    # (GetFunction returns a function's configuration, its variables included, to whoever may call it).
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html
    props = {"environment": {"variables": {"GITLAB_API_URL": "https://gitlab.example.com", "GITLAB_TOKEN": "x"}}}
    found = messages(rt.LAMBDA_FUNCTION, props)
    assert list(found) == ["lambda-no-secrets-in-environment"]
    assert "GITLAB_TOKEN" in found["lambda-no-secrets-in-environment"][0]


def test_a_function_reading_its_token_from_secrets_manager_is_accepted() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab-token-AbCdEf"
    assert messages(rt.LAMBDA_FUNCTION, {"environment": {"variables": {"TOKEN_SECRET_ARN": arn}}}) == {}
    assert messages(rt.LAMBDA_FUNCTION, {"environment": None}) == {}


@pytest.mark.parametrize("key", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GITLAB_TOKEN", "REGISTRY_PASSWORD"])
def test_gitlab_credentials_must_be_masked_and_protected(key: str) -> None:
    rule = "gitlab-credentials-masked-protected"
    assert messages(rt.GITLAB_PROJECT_VARIABLE, {"key": key, "masked": True, "protected": True}) == {}
    assert rule in messages(rt.GITLAB_PROJECT_VARIABLE, {"key": key, "masked": False, "protected": True})
    assert rule in messages(rt.GITLAB_PROJECT_VARIABLE, {"key": key, "masked": True})
    assert rule in messages(rt.GITLAB_GROUP_VARIABLE, {"key": key, "protected": True})


def test_a_gitlab_private_key_must_be_protected_and_need_not_be_masked() -> None:
    rule = "gitlab-credentials-masked-protected"
    assert (
        messages(rt.GITLAB_PROJECT_VARIABLE, {"key": "SSH_PRIVATE_KEY", "protected": True, "variableType": "file"})
        == {}
    )
    assert rule in messages(
        rt.GITLAB_PROJECT_VARIABLE, {"key": "SSH_PRIVATE_KEY", "protected": False, "variableType": "file"}
    )


def test_other_gitlab_variables_are_not_concerned() -> None:
    assert messages(rt.GITLAB_PROJECT_VARIABLE, {"key": "AWS_DEFAULT_REGION", "value": "eu-west-1"}) == {}


# --- Logs and load balancers -----------------------------------------------------------------------------


def test_a_log_group_without_retention_is_refused() -> None:
    assert "log-group-retention" in messages(rt.LOG_GROUP, {"name": "/ecs/app"})
    assert "log-group-retention" in messages(rt.LOG_GROUP, {"retentionInDays": 0.0})
    assert messages(rt.LOG_GROUP, {"retentionInDays": 7.0}) == {}


def test_a_build_project_must_log_to_a_log_group_of_the_stack() -> None:
    group = res(
        rt.LOG_GROUP, "build-logs", {"name": "/aws/codebuild/app", "retentionInDays": 7.0}, ids=("/aws/codebuild/app",)
    )
    no_config = res(rt.CODEBUILD_PROJECT, "build", codebuild())
    assert fired([group, no_config]) == {"codebuild-logs-retained"}
    elsewhere = res(
        rt.CODEBUILD_PROJECT,
        "build",
        {**codebuild(), "logsConfig": {"cloudwatchLogs": {"groupName": "/somewhere/else"}}},
    )
    assert fired([group, elsewhere]) == {"codebuild-logs-retained"}
    own = res(
        rt.CODEBUILD_PROJECT,
        "build",
        {**codebuild(), "logsConfig": {"cloudwatchLogs": {"groupName": "/aws/codebuild/app"}}},
    )
    disabled = res(
        rt.CODEBUILD_PROJECT, "build2", {**codebuild(), "logsConfig": {"cloudwatchLogs": {"status": "DISABLED"}}}
    )
    assert fired([group, own, disabled]) == set()


def test_an_alb_forwarding_invalid_headers_is_refused() -> None:
    assert "alb-drop-invalid-headers" in messages(rt.LB_LOAD_BALANCER, {"name": "web"})
    assert "alb-drop-invalid-headers" in messages(rt.ALB_LOAD_BALANCER, {"dropInvalidHeaderFields": False})
    assert messages(rt.LB_LOAD_BALANCER, {"dropInvalidHeaderFields": True, "enableDeletionProtection": True}) == {}
    assert messages(rt.LB_LOAD_BALANCER, {"loadBalancerType": "network", "enableDeletionProtection": True}) == {}


def test_values_unknown_during_a_preview_are_left_to_pulumi_up() -> None:
    assert (
        messages(rt.LB_LOAD_BALANCER, {"dropInvalidHeaderFields": UNKNOWN, "enableDeletionProtection": UNKNOWN}) == {}
    )
    assert messages(rt.LOG_GROUP, {"retentionInDays": UNKNOWN}) == {}
    assert messages(rt.IAM_ROLE_POLICY, {"policy": UNKNOWN}) == {}
    assert messages(rt.ECS_TASK_DEFINITION, {"containerDefinitions": UNKNOWN}) == {}


# --- TLS, encryption at rest, alarms ------------------------------------------------------------------

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
HTTPS = {"protocol": "HTTPS", "port": 443.0, "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}


# The values `sslPolicy` accepts are the Literal the config and the listener share (components/load_balancer.py).
@pytest.mark.parametrize("policy", typing.get_args(SslPolicy))
def test_an_https_listener_with_a_certificate_and_each_configurable_tls13_policy_is_accepted(policy: str) -> None:
    assert messages(rt.LB_LISTENER, {**HTTPS, "sslPolicy": policy, "certificateArn": CERTIFICATE}) == {}


@pytest.mark.parametrize(
    ("props", "complaint"),
    [
        ({"sslPolicy": None}, "sets no sslPolicy"),
        ({"sslPolicy": "ELBSecurityPolicy-2016-08"}, "ELBSecurityPolicy-2016-08"),
        ({"sslPolicy": "ELBSecurityPolicy-TLS-1-2-2017-01"}, "ELBSecurityPolicy-TLS-1-2-2017-01"),
        # TLS 1.3, but TLS 1.0 and 1.1 are still accepted.
        ({"sslPolicy": "ELBSecurityPolicy-TLS13-1-0-2021-06"}, "ELBSecurityPolicy-TLS13-1-0-2021-06"),
        ({"sslPolicy": "ELBSecurityPolicy-TLS13-1-1-2021-06"}, "ELBSecurityPolicy-TLS13-1-1-2021-06"),
        ({"certificateArn": None}, "has no certificateArn"),
        ({"certificateArn": ""}, "has no certificateArn"),
        ({"protocol": "https", "certificateArn": None}, "has no certificateArn"),
    ],
    ids=["no-policy", "2016", "tls12-only", "tls13-from-1.0", "tls13-from-1.1", "no-cert", "empty-cert", "lowercase"],
)
def test_an_https_listener_without_a_tls13_policy_or_a_certificate_is_refused(
    props: dict[str, Any], complaint: str
) -> None:
    listener = {k: v for k, v in {**HTTPS, "certificateArn": CERTIFICATE, **props}.items() if v is not None}
    for listener_type in rules.LISTENERS:
        found = messages(listener_type, listener)
        assert list(found) == ["https-listener-tls13"], listener_type
        assert any(complaint in m for m in found["https-listener-tls13"])


def test_other_listeners_are_not_concerned() -> None:
    assert messages(rt.LB_LISTENER, {"protocol": "HTTP", "port": 80.0}) == {}
    assert messages(rt.LB_LISTENER, {"protocol": "TCP", "port": 5432.0}) == {}


def test_an_unencrypted_topic_is_refused() -> None:
    assert list(messages(rt.SNS_TOPIC, {"name": "alerts"})) == ["sns-topic-encrypted"]
    assert list(messages(rt.SNS_TOPIC, {"name": "alerts", "kmsMasterKeyId": ""})) == ["sns-topic-encrypted"]
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert messages(rt.SNS_TOPIC, {"name": "alerts", "kmsMasterKeyId": key}) == {}
    assert messages(rt.SNS_TOPIC, {"name": "alerts", "kmsMasterKeyId": "alias/aws/sns"}) == {}


def test_a_symmetric_key_that_does_not_rotate_is_refused() -> None:
    assert list(messages(rt.KMS_KEY, {"description": "alerts"})) == ["kms-key-rotation"]
    assert list(messages(rt.KMS_KEY, {"enableKeyRotation": False, "keyUsage": "ENCRYPT_DECRYPT"})) == [
        "kms-key-rotation"
    ]
    assert list(messages(rt.KMS_KEY, {"customerMasterKeySpec": "SYMMETRIC_DEFAULT"})) == ["kms-key-rotation"]
    assert messages(rt.KMS_KEY, {"enableKeyRotation": True}) == {}


# CodeBuild's curated images and the environment types that run them: aarch64 images on ARM_CONTAINER only.
# https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-available.html
@pytest.mark.parametrize(
    ("image", "kind", "fires"),
    [
        ("aws/codebuild/amazonlinux-aarch64-standard:3.0", "ARM_CONTAINER", False),
        ("aws/codebuild/amazonlinux-aarch64-standard:3.0", "LINUX_CONTAINER", True),
        ("aws/codebuild/standard:7.0", "ARM_CONTAINER", True),
        ("aws/codebuild/standard:7.0", "LINUX_CONTAINER", False),
        ("aws/codebuild/amazonlinux-x86_64-standard:5.0", "LINUX_CONTAINER", False),
        # Images outside the curated set are the user's to match: not judged.
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/builder:1", "ARM_CONTAINER", False),
    ],
)
def test_a_curated_build_image_must_run_on_the_environment_type_of_its_cpu(image: str, kind: str, fires: bool) -> None:
    props = {"environment": {"image": image, "type": kind, "computeType": "BUILD_GENERAL1_SMALL"}}
    found = messages(rt.CODEBUILD_PROJECT, props)
    assert ("codebuild-image-matches-environment-type" in found) == fires, found
    if fires:
        assert kind in found["codebuild-image-matches-environment-type"][0]


CLUSTER_ARN = "arn:aws:ecs:eu-west-1:123456789012:cluster/app"
INSIGHTS_ON = [{"name": "containerInsights", "value": "enabled"}]


def spot_service(*providers: str) -> Resource:
    strategy = [{"capacityProvider": p, "weight": 1} for p in providers]
    return res(rt.ECS_SERVICE, "service", {"cluster": CLUSTER_ARN, "capacityProviderStrategies": strategy})


def capacity(*providers: Any, cluster_name: Any = "app") -> Resource:
    props = {"clusterName": cluster_name, "capacityProviders": list(providers)}
    return res(rt.ECS_CLUSTER_CAPACITY_PROVIDERS, "capacity", props)


# A strategy may name only providers associated with the service's cluster (PutClusterCapacityProviders).
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html
def test_a_service_strategy_naming_a_provider_its_cluster_lacks_is_refused() -> None:
    cluster = res(rt.ECS_CLUSTER, "cluster", {"name": "app", "settings": INSIGHTS_ON}, ids=("app", CLUSTER_ARN))
    service = spot_service("FARGATE_SPOT")
    lacking = rules.check_stack([cluster, service, capacity("FARGATE")])
    assert [(v.rule, v.urn) for v in lacking] == [("ecs-capacity-providers-associated", service.urn)]
    assert "FARGATE_SPOT" in lacking[0].message
    assert fired([cluster, service]) == {"ecs-capacity-providers-associated"}  # nothing associated at all
    # Another cluster's association does not count.
    assert fired([cluster, service, capacity("FARGATE", "FARGATE_SPOT", cluster_name="other")]) == {
        "ecs-capacity-providers-associated"
    }


def test_a_strategy_within_the_clusters_providers_a_launch_type_or_an_outside_cluster_is_accepted() -> None:
    cluster = res(rt.ECS_CLUSTER, "cluster", {"name": "app", "settings": INSIGHTS_ON}, ids=("app", CLUSTER_ARN))
    assert fired([cluster, spot_service("FARGATE_SPOT", "FARGATE"), capacity("FARGATE", "FARGATE_SPOT")]) == set()
    launch_type = res(rt.ECS_SERVICE, "service", {"cluster": CLUSTER_ARN, "launchType": "FARGATE"})
    assert fired([cluster, launch_type]) == set()
    assert fired([spot_service("FARGATE_SPOT")]) == set()  # its cluster is not in the stack: not judged
    # During a preview the association's providers may not be known yet: left to pulumi up.
    assert fired([cluster, spot_service("FARGATE_SPOT"), capacity(rules.UNKNOWN)]) == set()


def key_policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"enableKeyRotation": True, "policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)})}


EVENTS_KEY_USE = {
    "Effect": "Allow",
    "Principal": {"Service": "events.amazonaws.com"},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
    "Resource": "*",
}


# SNS developer guide: EventBridge's KMS requests to an encrypted topic carry none of these keys, so a grant that
# requires one never matches and the events are dropped silently.
# https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
@pytest.mark.parametrize(
    "condition",
    [
        {"StringEquals": {"aws:SourceAccount": "123456789012"}},
        {"ArnLike": {"aws:SourceArn": "arn:aws:events:eu-west-1:123456789012:rule/app-*"}},
        {"StringEquals": {"aws:SourceOrgID": "o-a1b2c3d4e5"}},
    ],
    ids=["source-account", "source-arn", "source-org"],
)
def test_a_key_grant_to_eventbridge_that_requires_source_keys_is_refused(condition: dict[str, Any]) -> None:
    props = key_policy({**EVENTS_KEY_USE, "Sid": "Events", "Condition": condition})
    assert list(messages(rt.KMS_KEY, props)) == ["kms-eventbridge-grant-usable"]


def test_an_unconditioned_eventbridge_grant_and_a_conditioned_cloudwatch_grant_are_accepted() -> None:
    cloudwatch = {
        **EVENTS_KEY_USE,
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
    }
    assert messages(rt.KMS_KEY, key_policy(EVENTS_KEY_USE, cloudwatch)) == {}


@pytest.mark.parametrize(
    "props",
    [
        {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"},
        {"customerMasterKeySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC"},
        {"customKeyStoreId": "cks-1234567890abcdef0"},
    ],
    ids=["asymmetric", "hmac", "custom-key-store"],
)
def test_keys_kms_cannot_rotate_are_not_concerned(props: dict[str, Any]) -> None:
    assert messages(rt.KMS_KEY, props) == {}


TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:alerts"


def alarm(name: str = "web-5xx", **props: Any) -> Resource:
    arn = f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}"
    return res(rt.METRIC_ALARM, name, {"name": name, "metricName": "HTTPCode_Target_5XX_Count", **props}, ids=(arn,))


ROLLS_BACK = {"enabled": True, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]}


def deployment_group(**alarm_configuration: Any) -> Resource:
    props = {"alarmConfiguration": alarm_configuration, "autoRollbackConfiguration": ROLLS_BACK}
    return res(rt.CODEDEPLOY_DEPLOYMENT_GROUP, "dg", props)


def test_an_alarm_nobody_hears_is_refused() -> None:
    silent = alarm()
    assert [(v.rule, v.urn) for v in rules.check_stack([silent])] == [("cloudwatch-alarm-actions", silent.urn)]
    assert fired([alarm(alarmActions=[])]) == {"cloudwatch-alarm-actions"}
    # Actions that never run.
    assert fired([alarm(alarmActions=[TOPIC_ARN], actionsEnabled=False)]) == {"cloudwatch-alarm-actions"}
    # A deployment group that lists it but does not use its alarms (the provider sends no `enabled` as false).
    assert fired([alarm(), deployment_group(alarms=["web-5xx"])]) == {"cloudwatch-alarm-actions"}
    assert fired([alarm(), deployment_group(alarms=["web-5xx"], enabled=False)]) == {"cloudwatch-alarm-actions"}
    assert fired([alarm(), deployment_group(alarms=["another-alarm"], enabled=True)]) == {"cloudwatch-alarm-actions"}


def test_an_alarm_with_an_action_or_rolling_deployments_back_is_accepted() -> None:
    assert fired([alarm(alarmActions=[TOPIC_ARN])]) == set()
    assert fired([alarm(alarmActions=[TOPIC_ARN], actionsEnabled=True)]) == set()
    assert fired([alarm(), deployment_group(alarms=["web-5xx"], enabled=True)]) == set()


def test_an_alarm_a_composite_alarm_is_built_on_is_accepted_and_the_composite_is_judged() -> None:
    cpu, memory = alarm("cpu-high"), alarm("memory-high")
    rule = 'ALARM("cpu-high") AND ALARM(arn:aws:cloudwatch:eu-west-1:123456789012:alarm:memory-high)'
    heard = res(rt.COMPOSITE_ALARM, "busy", {"alarmName": "busy", "alarmRule": rule, "alarmActions": [TOPIC_ARN]})
    assert fired([cpu, memory, heard]) == set()
    silent = res(rt.COMPOSITE_ALARM, "busy", {"alarmName": "busy", "alarmRule": rule})
    assert [v.urn for v in rules.check_stack([cpu, memory, silent])] == [silent.urn]
    # A name inside another alarm's name is not a reference to it.
    other = res(rt.COMPOSITE_ALARM, "other", {"alarmRule": 'ALARM("cpu-high-2")', "alarmActions": [TOPIC_ARN]})
    assert [v.urn for v in rules.check_stack([cpu, other])] == [cpu.urn]


def test_new_rules_leave_unknown_values_to_pulumi_up() -> None:
    assert messages(rt.LB_LISTENER, {**HTTPS, "sslPolicy": UNKNOWN, "certificateArn": UNKNOWN}) == {}
    assert messages(rt.LB_LISTENER, {"protocol": UNKNOWN, "port": 443.0}) == {}
    assert messages(rt.SNS_TOPIC, {"kmsMasterKeyId": UNKNOWN}) == {}
    assert messages(rt.KMS_KEY, {"enableKeyRotation": UNKNOWN}) == {}
    assert fired([alarm(alarmActions=UNKNOWN)]) == set()
    assert fired([alarm(alarmActions=[TOPIC_ARN], actionsEnabled=UNKNOWN)]) == set()
    # The alarm's name and the group's configuration not known yet: the dependency says which alarm it names.
    unnamed = res(rt.METRIC_ALARM, "web-5xx", {"name": UNKNOWN})
    group = res(
        rt.CODEDEPLOY_DEPLOYMENT_GROUP,
        "dg",
        {"alarmConfiguration": UNKNOWN, "autoRollbackConfiguration": ROLLS_BACK},
        deps={"alarmConfiguration": {unnamed.urn}},
    )
    assert fired([unnamed, group]) == set()
    composite = res(
        rt.COMPOSITE_ALARM, "c", {"alarmRule": UNKNOWN, "alarmActions": [TOPIC_ARN]}, deps={"alarmRule": {unnamed.urn}}
    )
    assert fired([unnamed, composite]) == set()
    # Known to name nothing, and no dependency: still silent.
    blind = res(
        rt.CODEDEPLOY_DEPLOYMENT_GROUP, "dg", {"alarmConfiguration": UNKNOWN, "autoRollbackConfiguration": ROLLS_BACK}
    )
    assert fired([unnamed, blind]) == {"cloudwatch-alarm-actions"}
    # Whether a group or an ECS service rolls back is judged when it is known.
    assert fired([res(rt.CODEDEPLOY_DEPLOYMENT_GROUP, "dg", {"autoRollbackConfiguration": UNKNOWN})]) == set()
    assert messages(rt.ECS_SERVICE, {"deploymentController": {"type": "ECS"}, "alarms": UNKNOWN}) == {}


# --- The real SDKs' property names ------------------------------------------------------------------------


def registered(build: Callable[[], None]) -> list[Resource]:
    """The resources ``build`` declares with the real pulumi-aws / pulumi-gitlab classes, as the engine sees them."""
    return [rules.from_registration(r) for r in run(build).resources]


def secured_bucket(name: str, ok: bool) -> aws.s3.Bucket:
    """A bucket, with (``ok``) or without its public-access block, default encryption and TLS-only policy."""
    bucket = aws.s3.Bucket(name, bucket=f"{name}-bucket")
    if not ok:
        return bucket
    aws.s3.BucketPublicAccessBlock(
        f"{name}-pab",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-sse",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                )
            )
        ],
    )
    aws.s3.BucketPolicy(
        f"{name}-policy",
        bucket=bucket.id,
        policy=pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
    )
    return bucket


def build_stack(compliant: bool) -> None:
    """One resource of each kind the rules look at: every setting right, or each one wrong."""
    ok = compliant
    bucket = secured_bucket("source", ok)
    if ok:
        access_logs = secured_bucket("access-logs", ok)
        aws.s3.BucketLogging("source-logging", bucket=bucket.id, target_bucket=access_logs.id, target_prefix="source/")
        aws.s3.BucketVersioning(
            "source-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        )
    aws.codepipeline.Pipeline(
        "pipeline",
        role_arn="arn:aws:iam::123456789012:role/pipeline",
        artifact_stores=[aws.codepipeline.PipelineArtifactStoreArgs(location="artifacts", type="S3")],
        stages=[
            aws.codepipeline.PipelineStageArgs(
                name="Source",
                actions=[
                    aws.codepipeline.PipelineStageActionArgs(
                        name="Source",
                        category="Source",
                        owner="AWS",
                        provider="S3",
                        version="1",
                        output_artifacts=["source"],
                        configuration={"S3Bucket": bucket.bucket, "S3ObjectKey": "docker-image/docker_image.zip"},
                    )
                ],
            )
        ],
    )
    repo = aws.ecr.Repository(
        "repo",
        name="app",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=ok),
        image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
        image_tag_mutability_exclusion_filters=[
            aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(
                filter="latest" if ok else "*", filter_type="WILDCARD"
            )
        ],
    )
    if ok:
        aws.ecr.LifecyclePolicy("repo-lifecycle", repository=repo.name, policy=EXPIRE_OLD)
    role = aws.iam.Role(
        "build-role",
        assume_role_policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "codebuild.amazonaws.com"} if ok else {"AWS": "*"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    aws.iam.RolePolicy(
        "build-role-policy",
        role=role.id,
        policy=pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    allow(["ecr:GetAuthorizationToken"], ["*"]),
                    {"Effect": "Allow", "Action": ["ecr:PutImage"], "Resource": [repo.arn]}
                    if ok
                    else allow("s3:*", "*"),
                ],
            }
        ),
    )
    aws.iam.RolePolicyAttachment(
        "build-role-managed",
        role=role.name,
        policy_arn="arn:aws:iam::aws:policy/AWSCodeDeployRoleForECS"
        if ok
        else "arn:aws:iam::aws:policy/AdministratorAccess",
    )
    logs = aws.cloudwatch.LogGroup("build-logs", name="/aws/codebuild/app", retention_in_days=7 if ok else None)
    artifact_key = aws.kms.Key("artifact-key", enable_key_rotation=True)
    aws.codebuild.Project(
        "build",
        service_role=role.arn,
        artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
        source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE"),
        encryption_key=artifact_key.arn if ok else "alias/aws/s3",
        environment=aws.codebuild.ProjectEnvironmentArgs(
            compute_type="BUILD_GENERAL1_SMALL",
            image="aws/codebuild/amazonlinux-aarch64-standard:3.0",
            privileged_mode=not ok,
            type="ARM_CONTAINER" if ok else "LINUX_CONTAINER",
            environment_variables=[
                aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(
                    name="GITLAB_TOKEN", value="/app/gitlab-token", type="PARAMETER_STORE" if ok else "PLAINTEXT"
                )
            ],
        ),
        logs_config=aws.codebuild.ProjectLogsConfigArgs(
            cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(group_name=logs.name)
        )
        if ok
        else None,
    )
    aws.ecs.TaskDefinition(
        "task",
        family="app",
        container_definitions=json.dumps(
            [
                {
                    "name": "app",
                    "image": "nginx",
                    "environment": [{"name": "DB_PASSWORD" if not ok else "PORT", "value": "80"}],
                    **(HARDENED if ok else {"user": "root"}),
                }
            ]
        ),
        runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(operating_system_family="LINUX"),
    )
    aws.lambda_.Function(
        "status",
        role="arn:aws:iam::123456789012:role/status",
        runtime="python3.12",
        handler="index.handler",
        code=pulumi.AssetArchive({}),
        environment=aws.lambda_.FunctionEnvironmentArgs(
            variables={"TOKEN_SECRET_ARN" if ok else "GITLAB_TOKEN": "arn:aws:secretsmanager:eu-west-1:1:secret:t"}
        ),
    )
    alb_sg = aws.ec2.SecurityGroup("alb-sg", name="alb")
    alb = aws.lb.LoadBalancer(
        "alb", security_groups=[alb_sg.id], drop_invalid_header_fields=ok, enable_deletion_protection=ok
    )
    aws.lb.Listener(
        "alb-prod",
        load_balancer_arn=alb.arn,
        port=443,
        protocol="HTTPS",
        ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06" if ok else "ELBSecurityPolicy-2016-08",
        certificate_arn=CERTIFICATE if ok else None,
        default_actions=[aws.lb.ListenerDefaultActionArgs(type="fixed-response")],
    )
    if not ok:  # an HTTP listener that serves (ELB.1) is plain HTTP (ELB.18)
        aws.lb.Listener(
            "alb-test",
            load_balancer_arn=alb.arn,
            port=8080,
            protocol="HTTP",
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn="arn:tg")],
        )
    uploader = aws.iam.User("uploader", name="uploader")
    upload_policy = json.dumps({"Version": "2012-10-17", "Statement": [allow(["s3:PutObject"], ["arn:aws:s3:::b/k"])]})
    if ok:
        uploaders = aws.iam.Group("uploaders", name="uploaders")
        aws.iam.GroupPolicy("uploaders-policy", group=uploaders.name, policy=upload_policy)
        aws.iam.GroupMembership("uploaders-member", group=uploaders.name, users=[uploader.name])
        rotation = pulumiverse_time.Rotating("uploader-key-rotation", rotation_days=80)
        aws.iam.AccessKey(
            "uploader-key",
            user=uploader.name,
            opts=pulumi.ResourceOptions(depends_on=[rotation], replacement_trigger=rotation.rfc3339),
        )
    else:
        aws.iam.UserPolicy("uploader-policy", user=uploader.name, policy=upload_policy)
        aws.iam.AccessKey("uploader-key", user=uploader.name)
    events_grant: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
    }
    if not ok:
        events_grant["Condition"] = {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    key = aws.kms.Key(
        "alerts-key",
        description="alerts",
        enable_key_rotation=ok,
        policy=json.dumps({"Version": "2012-10-17", "Statement": [events_grant]}),
    )
    topic = aws.sns.Topic("alerts", kms_master_key_id=key.arn if ok else None)
    aws.cloudtrail.Trail(
        "trail",
        s3_bucket_name="trail-logs-bucket",
        kms_key_id=key.arn if ok else None,
        cloud_watch_logs_group_arn=pulumi.Output.concat(logs.arn, ":*") if ok else None,
        cloud_watch_logs_role_arn=role.arn if ok else None,
    )
    aws.cloudwatch.MetricAlarm(
        "alb-5xx",
        name="alb-5xx",
        comparison_operator="GreaterThanThreshold",
        evaluation_periods=1,
        namespace="AWS/ApplicationELB",
        metric_name="HTTPCode_Target_5XX_Count",
        statistic="Sum",
        period=60,
        threshold=0,
        alarm_actions=[topic.arn] if ok else [],
    )
    aws.vpc.SecurityGroupIngressRule(
        "alb-in",
        security_group_id=alb_sg.id,
        ip_protocol="tcp",
        from_port=443 if ok else 22,
        to_port=443 if ok else 22,
        cidr_ipv4="0.0.0.0/0",
    )
    gitlab.ProjectVariable(
        "aws-secret", project="platform/app", key="AWS_SECRET_ACCESS_KEY", value="x", masked=ok, protected=True
    )
    aws.codedeploy.DeploymentGroup(
        "dg",
        app_name="app",
        deployment_group_name="app",
        service_role_arn="arn:aws:iam::123456789012:role/codedeploy",
        auto_rollback_configuration=aws.codedeploy.DeploymentGroupAutoRollbackConfigurationArgs(
            enabled=ok, events=["DEPLOYMENT_FAILURE"]
        ),
    )
    aws.ecs.Service(
        "native",
        name="native",
        deployment_controller=aws.ecs.ServiceDeploymentControllerArgs(type="ECS"),
        deployment_configuration=aws.ecs.ServiceDeploymentConfigurationArgs(strategy="BLUE_GREEN"),
        alarms=aws.ecs.ServiceAlarmsArgs(alarm_names=["service-unhealthy"], enable=True, rollback=ok),
    )
    _build_network(ok)
    cluster = aws.ecs.Cluster(
        "cluster",
        name="cluster",
        settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled" if ok else "disabled")],
    )
    aws.ecs.ClusterCapacityProviders(
        "cluster-capacity",
        cluster_name=cluster.name,
        capacity_providers=["FARGATE", "FARGATE_SPOT"] if ok else ["FARGATE"],
    )
    aws.ecs.Service(
        "spot",
        name="spot",
        cluster=cluster.arn,
        capacity_provider_strategies=[
            aws.ecs.ServiceCapacityProviderStrategyArgs(capacity_provider="FARGATE_SPOT", weight=1)
        ],
        network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(subnets=["subnet-1"], assign_public_ip=not ok),
    )


def _build_network(ok: bool) -> None:
    """A created VPC with its default security group, network ACLs and flow log: closed, or as AWS leaves them."""
    vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16")
    self_ingress = aws.ec2.DefaultSecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, self=True)
    aws.ec2.DefaultSecurityGroup("vpc-default-sg", vpc_id=vpc.id, ingress=[] if ok else [self_ingress], egress=[])
    # AWS's default entry allows everything from anywhere; the compliant ACL lets HTTPS in.
    aws.ec2.DefaultNetworkAcl(
        "vpc-default-acl",
        default_network_acl_id=vpc.default_network_acl_id,
        ingress=[
            aws.ec2.DefaultNetworkAclIngressArgs(
                action="allow",
                rule_no=100,
                cidr_block="0.0.0.0/0",
                protocol="6" if ok else "-1",
                from_port=443 if ok else 0,
                to_port=443 if ok else 0,
            )
        ],
    )
    acl = aws.ec2.NetworkAcl(
        "vpc-acl",
        vpc_id=vpc.id,
        ingress=[
            aws.ec2.NetworkAclIngressArgs(
                action="allow",
                rule_no=100,
                protocol="tcp",
                from_port=3000,
                to_port=3300 if ok else 3400,
                ipv6_cidr_block="::/0",
            )
        ],
    )
    aws.ec2.NetworkAclRule(
        "vpc-acl-ssh",
        network_acl_id=acl.id,
        rule_number=110,
        rule_action="allow",
        protocol="6",
        from_port=22,
        to_port=22,
        cidr_block="203.0.113.0/24" if ok else "0.0.0.0/0",
    )
    aws.ec2.FlowLog(
        "vpc-flow-log",
        vpc_id=vpc.id,
        traffic_type="REJECT" if ok else "ACCEPT",
        log_destination="arn:aws:logs:eu-west-1:123456789012:log-group:/vpc/flow-logs",
        iam_role_arn="arn:aws:iam::123456789012:role/flow-logs",
    )


def test_the_rules_read_the_property_names_the_sdks_register() -> None:
    assert rules.check_stack(registered(lambda: build_stack(compliant=True))) == []
    assert fired(registered(lambda: build_stack(compliant=False))) == ALL_RULES


@pytest.mark.parametrize("enabled", [True, None])
def test_the_alarm_rule_reads_the_deployment_groups_alarm_configuration_as_the_sdk_registers_it(
    enabled: bool | None,
) -> None:
    def build() -> None:
        silent = aws.cloudwatch.MetricAlarm(
            "unhealthy",
            name="unhealthy",
            comparison_operator="GreaterThanOrEqualToThreshold",
            evaluation_periods=1,
            namespace="AWS/ApplicationELB",
            metric_name="UnHealthyHostCount",
            statistic="Maximum",
            period=60,
            threshold=1,
        )
        aws.codedeploy.DeploymentGroup(
            "dg",
            app_name="app",
            deployment_group_name="app",
            service_role_arn="arn:aws:iam::123456789012:role/codedeploy",
            alarm_configuration=aws.codedeploy.DeploymentGroupAlarmConfigurationArgs(
                alarms=[silent.name], enabled=enabled
            ),
            auto_rollback_configuration=aws.codedeploy.DeploymentGroupAutoRollbackConfigurationArgs(
                enabled=True, events=["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]
            ),
        )

    assert fired(registered(build)) == (set() if enabled else {"cloudwatch-alarm-actions"})


# --- The program's own stacks ---------------------------------------------------------------------------


def stack_resources(run: ProgramRun) -> list[Resource]:
    return [rules.from_registration(r) for r in run.resources]


@pytest.mark.parametrize("stack", STACKS)
def test_the_programs_stacks_pass_every_rule(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    """Every rule passes but the controls the program fails by design (``support.pack``), which fire exactly
    where they are documented to."""
    run = runs(stack)
    violations = rules.check_stack(stack_resources(run))
    assert unexpected(stack, violations, run) == [], "\n".join(str(v) for v in violations)
    # ...and what the stack fails on purpose is reported, where its stack file says (support/pack.py).
    assert by_design(stack, violations, run) == BY_DESIGN.get(stack, set())


def test_the_stack_check_sees_the_programs_load_balancer_and_security_groups(dev: ProgramRun) -> None:
    """The dev stack passes because its resources comply, not because the rules miss them."""
    resources = stack_resources(dev)
    lbs = [r for r in resources if r.type == rt.LB_LOAD_BALANCER]
    world = [
        r for r in resources if r.type == rt.VPC_SECURITY_GROUP_INGRESS_RULE and r.props.get("cidrIpv4") == "0.0.0.0/0"
    ]
    assert lbs and world
    careless_lb = dataclasses.replace(lbs[0], props={**lbs[0].props, "dropInvalidHeaderFields": False})
    ssh = dataclasses.replace(world[0], props={**world[0].props, "fromPort": 22.0, "toPort": 22.0})
    mutated = [careless_lb if r is lbs[0] else ssh if r is world[0] else r for r in resources]
    assert {(v.rule, v.urn) for v in unexpected("dev", rules.check_stack(mutated), dev)} == {
        ("alb-drop-invalid-headers", lbs[0].urn),
        ("security-group-world-ingress", world[0].urn),
    }


# --- The pulumi-policy adapter --------------------------------------------------------------------------


def test_every_rule_becomes_one_mandatory_policy() -> None:
    policies = pack.policies()
    assert [p.name for p in policies] == [r.name for r in rules.RESOURCE_RULES] + [r.name for r in rules.STACK_RULES]
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in policies)
    assert sum(isinstance(p, StackValidationPolicy) for p in policies) == len(rules.STACK_RULES)


def test_plain_turns_pulumi_policy_proxies_into_data_with_unknowns() -> None:
    proxied = policy_proxy.unknown_checking_proxy(
        {
            "name": "web",
            "port": policy_proxy.UNKNOWN_NUMBER_VALUE,
            "subnets": ["subnet-1", policy_proxy.UNKNOWN_STRING_VALUE],
            "nested": {"flag": policy_proxy.UNKNOWN_BOOLEAN_VALUE, "n": 1.0},
        }
    )
    assert pack.plain(proxied) == {
        "name": "web",
        "port": UNKNOWN,
        "subnets": ["subnet-1", UNKNOWN],
        "nested": {"flag": UNKNOWN, "n": 1.0},
    }
    # Unproxied values (a secret's content, a resource handed over as is) carry the bare sentinels.
    assert pack.plain({"arn": policy_proxy.UNKNOWN_STRING_VALUE, "tags": [policy_proxy.UNKNOWN_STRING_VALUE]}) == {
        "arn": UNKNOWN,
        "tags": [UNKNOWN],
    }


def validation_args(resource_type: str, props: dict[str, Any]) -> ResourceValidationArgs:
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    proxied = policy_proxy.unknown_checking_proxy(props)
    return ResourceValidationArgs(resource_type, proxied, f"urn:pulumi:dev::p::{resource_type}::r", "r", opts, None)


class Reports(list[tuple[str, str | None]]):
    """A ``report_violation`` callback keeping (message, urn) of every report."""

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.append((message, urn))


def run_resource_policy(name: str, resource_type: str, props: dict[str, Any]) -> list[tuple[str, str | None]]:
    policy = next(p for p in pack.policies() if p.name == name)
    assert isinstance(policy, ResourceValidationPolicy)
    reported = Reports()
    policy.validate(validation_args(resource_type, props), reported)
    return reported


def test_a_resource_policy_reports_what_its_rule_finds() -> None:
    reported = run_resource_policy("alb-drop-invalid-headers", rt.LB_LOAD_BALANCER, {"dropInvalidHeaderFields": False})
    assert len(reported) == 1 and "dropInvalidHeaderFields" in reported[0][0]
    assert run_resource_policy("alb-drop-invalid-headers", rt.LB_LOAD_BALANCER, {"dropInvalidHeaderFields": True}) == []
    assert (
        run_resource_policy(
            "alb-drop-invalid-headers",
            rt.LB_LOAD_BALANCER,
            {"dropInvalidHeaderFields": policy_proxy.UNKNOWN_BOOLEAN_VALUE},
        )
        == []
    )
    assert run_resource_policy("alb-drop-invalid-headers", rt.LOG_GROUP, {}) == []


def test_a_stack_policy_matches_references_through_property_dependencies() -> None:
    def policy_resource(type_: str, name: str, props: dict[str, Any]) -> PolicyResource:
        opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
        urn = f"urn:pulumi:dev::p::{type_}::{name}"
        return PolicyResource(type_, policy_proxy.unknown_checking_proxy(props), urn, name, opts, None, None, [], {})

    bucket = policy_resource(rt.S3_BUCKET, "src", {"bucket": policy_proxy.UNKNOWN_STRING_VALUE})
    block = policy_resource(
        rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK, "src-pab", {"bucket": policy_proxy.UNKNOWN_STRING_VALUE, **ALL_BLOCKED}
    )
    policy = next(p for p in pack.policies() if p.name == "s3-public-access-blocked")
    assert isinstance(policy, StackValidationPolicy)

    def validate(resources: list[PolicyResource]) -> list[tuple[str, str | None]]:
        reported = Reports()
        policy.validate(StackValidationArgs(resources), reported)
        return reported

    unrelated = validate([bucket, block])
    assert [urn for _, urn in unrelated] == [bucket.urn]
    block.property_dependencies["bucket"] = [bucket]
    assert validate([bucket, block]) == []


@pytest.mark.e2e
def test_the_pack_runs_as_the_pulumi_cli_starts_it() -> None:
    """``python -m pulumi.policy <engine> <pack>`` from the pack's folder, as the CLI's analyzer plugin does:
    the pack serves gRPC on 127.0.0.1, lists every rule, and reports a violation as mandatory."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=ROOT / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), process.stderr.read() if process.stderr else ""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
            assert info.name == pack.PACK_NAME
            assert {p.name for p in info.policies} == ALL_RULES
            props = struct_pb2.Struct()
            props.update({"name": "web", "dropInvalidHeaderFields": False, "enableDeletionProtection": True})
            request = analyzer_pb2.AnalyzeRequest(
                type=rt.LB_LOAD_BALANCER, properties=props, urn="urn:pulumi:dev::p::lb::web", name="web"
            )
            response = stub.Analyze(request, timeout=10)
            assert [(d.policyName, d.enforcementLevel) for d in response.diagnostics] == [
                ("alb-drop-invalid-headers", analyzer_pb2.MANDATORY)
            ]
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- Blue/green deployments roll back (both engines) ------------------------------------------------------


def native_service(**alarms: Any) -> Resource:
    props = {
        "deploymentController": {"type": "ECS"},
        "deploymentConfiguration": {"strategy": "CANARY"},
        "alarms": alarms,
    }
    return res(rt.ECS_SERVICE, "svc", props)


def test_a_deployment_group_that_does_not_roll_back_is_refused() -> None:
    # https://docs.aws.amazon.com/codedeploy/latest/userguide/deployments-rollback-and-redeploy.html
    assert messages(rt.CODEDEPLOY_DEPLOYMENT_GROUP, {"autoRollbackConfiguration": ROLLS_BACK}) == {}
    assert "blue-green-rolls-back" in messages(rt.CODEDEPLOY_DEPLOYMENT_GROUP, {})
    off = {"enabled": False, "events": ["DEPLOYMENT_FAILURE"]}
    assert "blue-green-rolls-back" in messages(rt.CODEDEPLOY_DEPLOYMENT_GROUP, {"autoRollbackConfiguration": off})
    # Alarms that stop a deployment without rolling it back leave it half shifted.
    stops = {"autoRollbackConfiguration": {"enabled": True, "events": ["DEPLOYMENT_FAILURE"]}}
    found = messages(rt.CODEDEPLOY_DEPLOYMENT_GROUP, {**stops, "alarmConfiguration": {"enabled": True}})
    assert "DEPLOYMENT_STOP_ON_ALARM" in found["blue-green-rolls-back"][0]


def test_an_ecs_native_service_whose_alarms_do_not_roll_back_is_refused() -> None:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
    assert messages(rt.ECS_SERVICE, native_service(alarmNames=["a"], enable=True, rollback=True).props) == {}
    refused = messages(rt.ECS_SERVICE, native_service(alarmNames=["a"], enable=True, rollback=False).props)
    assert list(refused) == ["blue-green-rolls-back"]
    # A rolling (non blue/green) service, or one without alarms, is not this rule's business.
    assert messages(rt.ECS_SERVICE, {"deploymentController": {"type": "CODE_DEPLOY"}}) == {}
    assert messages(rt.ECS_SERVICE, {**native_service().props, "alarms": None}) == {}


def test_an_alarm_an_ecs_service_rolls_back_on_is_heard() -> None:
    assert fired([alarm(), native_service(alarmNames=["web-5xx"], enable=True, rollback=True)]) == set()
    assert fired([alarm(), native_service(alarmNames=["web-5xx"], enable=False, rollback=True)]) == {
        "cloudwatch-alarm-actions"
    }
    assert fired([alarm(), native_service(alarmNames=["other"], enable=True, rollback=True)]) == {
        "cloudwatch-alarm-actions"
    }


def test_the_test_listener_of_an_ecs_native_service_is_not_a_production_port() -> None:
    """World ingress on the test listener's port is refused with either engine: ECS-native blue/green names its
    test listener through the test rule (no deployment group here)."""
    rule_arn = f"{TEST_LISTENER_ARN}/rule"
    stack = [
        res(rt.EC2_SECURITY_GROUP, "alb-sg", {"name": "alb"}, ids=("sg-alb",)),
        res(rt.LB_LOAD_BALANCER, "alb", PROTECTED_ALB, ids=(LB_ARN,)),
        https_listener("prod", 443.0, PROD_LISTENER_ARN),
        https_listener("test", 8443.0, TEST_LISTENER_ARN),
        res(rt.LB_LISTENER_RULE, "test-rule", {"listenerArn": TEST_LISTENER_ARN}, ids=(rule_arn,)),
        res(rt.ECS_SERVICE, "svc", {"loadBalancers": [{"advancedConfiguration": {"testListenerRule": rule_arn}}]}),
    ]
    assert fired([*stack, ingress("sg-alb", 443.0)]) == set()
    assert fired([*stack, ingress("sg-alb", 8443.0)]) == {"security-group-world-ingress"}
