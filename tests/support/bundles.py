"""Stand-ins for what one component hands another: the typed bundles, with values in the shape AWS gives them.

A consumer's test builds its component from these instead of from the real producers, so it tests the
consumer alone. Call them inside the function a test runs on the offline engine (they create Outputs). Every
ARN names the offline engine's account (``offline.engine.ACCOUNT_ID``) and the test region.
"""

from __future__ import annotations

import json

import pulumi

from components.buckets import BucketRef
from components.build_stage import BuildEnvironment, BuildProjects
from components.contracts import IMAGE_PLACEHOLDER, placeholder
from components.ecs_service import TaskRuntime
from components.iam import RoleRef
from components.load_balancer import ServiceEndpoints, TargetGroupRef
from components.network import Subnets
from components.notifications import NotificationTopic
from components.source_bucket import SourceObject, event_pattern
from components.templates import TaskDefinitionValues
from components.upload_identity import UploadCredentials
from offline.engine import ACCOUNT_ID
from support.stacks import REGION

PREFIX = "shop-dev"
"""The name prefix of every stand-in (``<appName>-<stack>``)."""
SOURCE_KEY = "docker-image/docker_image.zip"


def out(value: str) -> pulumi.Output[str]:
    return pulumi.Output.from_input(value)


def arn(service: str, resource: str, *, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


def role(name: str) -> RoleRef:
    return RoleRef(name=out(name), arn=out(f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"))


def subnets(*, public: bool = False) -> Subnets:
    """An existing VPC's subnets: tasks in the public ones (``public``) or in private ones."""
    public_ids = ["subnet-0public00000000a", "subnet-0public00000000b"]
    private_ids = ["subnet-0private0000000a", "subnet-0private0000000b"]
    return Subnets(
        vpc_id=out("vpc-0123456789abcdef0"),
        public_subnet_ids=pulumi.Output.from_input(public_ids),
        task_subnet_ids=pulumi.Output.from_input(public_ids if public else private_ids),
        assign_public_ip=public,
    )


def target_group(color: str, prefix: str = PREFIX) -> TargetGroupRef:
    suffix = f"targetgroup/{prefix}-{color}/0123456789abcdef"
    return TargetGroupRef(
        name=out(f"{prefix}-{color}"), arn=out(arn("elasticloadbalancing", suffix)), arn_suffix=out(suffix)
    )


def endpoints(prefix: str = PREFIX, *, access_logs: bool = False) -> ServiceEndpoints:
    dns = f"{prefix}-1234567890.{REGION}.elb.amazonaws.com"
    listener = f"listener/app/{prefix}/0123456789abcdef"
    return ServiceEndpoints(
        url=out(f"http://{dns}"),
        test_url=out(f"http://{dns}:8080"),
        alb_dns_name=out(dns),
        load_balancer_arn_suffix=out(f"app/{prefix}/0123456789abcdef"),
        prod_listener_arn=out(arn("elasticloadbalancing", f"{listener}/00000000000000a0")),
        test_listener_arn=out(arn("elasticloadbalancing", f"{listener}/00000000000000b0")),
        blue=target_group("blue", prefix),
        green=target_group("green", prefix),
        access_logs_bucket=out(f"{prefix}-alb-logs-{ACCOUNT_ID}-{REGION}") if access_logs else None,
    )


def taskdef_values(prefix: str = PREFIX, container: str = "web") -> TaskDefinitionValues:
    """The task definition's values as the service hands them to the build: image ``<IMAGE1_NAME>``."""
    return TaskDefinitionValues(
        family=prefix,
        cpu=256,
        memory=512,
        execution_role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{prefix}-execution",
        task_role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{prefix}-task",
        container_name=container,
        container_port=80,
        image=placeholder(IMAGE_PLACEHOLDER),
        environment={"GREETING": "hello"},
        log_group=f"/ecs/{prefix}",
        region=REGION,
    )


def runtime(prefix: str = PREFIX, container: str = "web") -> TaskRuntime:
    return TaskRuntime(
        cluster_name=out(prefix),
        service_name=out(prefix),
        family=prefix,
        container_name=container,
        container_port=80,
        execution_role=role(f"{prefix}-execution"),
        task_role=role(f"{prefix}-task"),
        log_group_name=out(f"/ecs/{prefix}"),
        taskdef_values=pulumi.Output.from_input(taskdef_values(prefix, container)),
        cpu_architecture="X86_64",
        capacity_provider_strategy=(),
    )


def bucket(role: str, prefix: str = PREFIX) -> BucketRef:
    """A bucket of the stack named as the program names them: ``<prefix>-<role>-<account>-<region>``."""
    name = f"{prefix}-{role}-{ACCOUNT_ID}-{REGION}"
    return BucketRef(name=out(name), arn=out(f"arn:aws:s3:::{name}"), role=role)


def source(prefix: str = PREFIX, key: str = SOURCE_KEY) -> SourceObject:
    bucket = f"{prefix}-source-{ACCOUNT_ID}-{REGION}"
    return SourceObject(
        bucket_name=out(bucket),
        bucket_arn=out(f"arn:aws:s3:::{bucket}"),
        key=key,
        event_pattern=out(json.dumps(event_pattern("eventbridge", bucket, key))),
    )


def projects(prefix: str = PREFIX) -> BuildProjects:
    return BuildProjects(
        project_name=out(prefix),
        project_arn=out(arn("codebuild", f"project/{prefix}")),
        build_role=role(f"{prefix}-build"),
        release_project_name=out(f"{prefix}-release"),
        release_project_arn=out(arn("codebuild", f"project/{prefix}-release")),
        release_role=role(f"{prefix}-release"),
        repository_url=out(f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{prefix}"),
        environment=BuildEnvironment("aws/codebuild/standard:7.0", "LINUX_CONTAINER"),
    )


def topic(prefix: str = PREFIX) -> NotificationTopic:
    return NotificationTopic(
        topic_arn=out(arn("sns", f"{prefix}-notifications")),
        key_arn=out(arn("kms", "key/0123abcd-0123-abcd-0123-0123456789ab")),
    )


def access_key_credentials(prefix: str = PREFIX) -> UploadCredentials:
    return UploadCredentials(
        mode="access-key",
        principal_arn=out(f"arn:aws:iam::{ACCOUNT_ID}:user/{prefix}-upload"),
        access_key_id=out("AKIAEXAMPLE000000000"),
        secret_access_key=pulumi.Output.secret("mock-secret-access-key"),
    )


def oidc_credentials(prefix: str = PREFIX, host: str = "gitlab.example.com") -> UploadCredentials:
    role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{prefix}-upload"
    return UploadCredentials(
        mode="oidc",
        principal_arn=out(role_arn),
        role_arn=out(role_arn),
        oidc_provider_arn=out(f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host}"),
    )
