"""The stack configuration: one frozen, validated model built before any resource exists.

Every stack-specific value of the program comes from here (or from the resources themselves). The
defaults live in this module only; ``Pulumi.yaml`` declares none, so the CLI, the tests and the offline
plan all see the same values.

Values arrive as Pulumi passes them to a Python program: strings, with structured values (lists, maps)
as JSON. ``parse_config`` is pure so that every rule is unit-tested without Pulumi; ``load_stack_config``
reads the running program's config and calls it.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

PROJECT = "gitlab-fargate"
"""The Pulumi project name, which is also the namespace of every config key (``gitlab-fargate:cpu``)."""

T = TypeVar("T")


class ConfigError(ValueError):
    """Raised with every problem found in the stack configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


# --- Allowed values ---------------------------------------------------------------------------

# Fargate task sizes AWS accepts: cpu units -> allowed memory (MiB).
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

DEPLOYMENT_CONFIGS = (
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
)
TRIGGER_MODES = ("eventbridge", "cloudtrail")
UPLOAD_IDENTITIES = ("access-key", "oidc")
TASK_SUBNETS = ("public", "private")
NAT_GATEWAYS = ("single", "per-az")
# TLS policies of the HTTPS listener: TLS 1.3 with TLS 1.2 at most as the floor, forward-secret ciphers only.
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html
SSL_POLICIES = (
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
)
# The only stack that may delete non-empty buckets and repositories with the stack (``forceDestroy``).
FORCE_DESTROY_STACKS = ("dev",)
BUILD_COMPUTE_TYPES = (
    "BUILD_GENERAL1_SMALL",
    "BUILD_GENERAL1_MEDIUM",
    "BUILD_GENERAL1_LARGE",
)

# ALB and target-group names allow 32 characters; the longest name the program derives is
# "<appName>-<stack>-green".
AWS_LB_NAME_MAX = 32
LONGEST_NAME_SUFFIX = "-green"

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
_GITLAB_PROJECT = re.compile(r"^(\d+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+)$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[0-9a-f-]{36}$")
# S3 keys made of these characters read the same in every S3 event format (some formats URL-encode the key),
# so an event pattern naming the key literally matches it whatever the trigger mode.
SAFE_OBJECT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]*$")
_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/(?P<issuer>[A-Za-z0-9.:/_~-]+)$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_WORLD = ("0.0.0.0/0", "::/0")
# Addresses no client of an internet-facing load balancer comes from: the ALB's DNS name resolves to the public
# addresses of its nodes, so even a host of the stack's own VPC arrives from its public IP or its NAT gateway's
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#load-balancer-scheme).
# A rule for a private range (RFC 1918, shared address space, link-local, loopback, IPv6 unique local) admits
# nobody.
NOT_FROM_THE_INTERNET = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)


# --- The model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkConfig:
    """Where the ALB and the tasks live: an existing VPC (by id) or a small VPC the stack creates."""

    vpc_id: str | None
    """Existing VPC; ``None`` creates one."""
    public_subnet_ids: tuple[str, ...]
    """Existing public subnets (ALB), at least two in different AZs. Empty when the VPC is created."""
    private_subnet_ids: tuple[str, ...]
    """Existing private subnets for the tasks when ``task_subnets`` is ``private``."""
    vpc_cidr: str
    """CIDR of the created VPC."""
    az_count: int
    """How many AZs the created VPC spans (2 to 4)."""
    task_subnets: str
    """``public`` (tasks get a public IP, no NAT cost) or ``private`` (behind NAT)."""
    nat_gateways: str
    """With a created VPC and private tasks: ``single`` NAT gateway or one ``per-az``."""

    @property
    def creates_vpc(self) -> bool:
        return self.vpc_id is None


@dataclass(frozen=True)
class ContainerConfig:
    """The application container and its Fargate task size."""

    name: str
    port: int
    cpu: int
    memory: int
    desired_count: int
    health_check_path: str
    environment: Mapping[str, str]
    initial_image: str
    """Image of the task definition the stack creates; CodeDeploy replaces it on the first deployment."""


@dataclass(frozen=True)
class AlbConfig:
    listener_port: int
    """Production listener port: HTTPS when ``https``, else HTTP."""
    test_listener_port: int
    allowed_cidrs: tuple[str, ...]
    """Who reaches the production listener."""
    test_listener_cidrs: tuple[str, ...]
    """Who reaches the test listener (empty: nobody from outside the VPC; never the whole internet)."""
    domain_name: str | None = None
    """DNS name of the site; required for HTTPS."""
    hosted_zone_id: str | None = None
    """Route 53 zone of ``domain_name``: the alias record, and the certificate's DNS validation."""
    certificate_arn: str | None = None
    """Existing ACM certificate; ``None`` with a zone creates one."""
    ssl_policy: str = SSL_POLICIES[0]
    deletion_protection: bool = True
    access_logs: bool = True

    @property
    def https(self) -> bool:
        """HTTPS on ``listener_port`` with port 80 redirecting to it."""
        return self.certificate_arn is not None or self.hosted_zone_id is not None

    @property
    def creates_certificate(self) -> bool:
        return self.hosted_zone_id is not None and self.certificate_arn is None


@dataclass(frozen=True)
class PipelineConfig:
    source_object_key: str
    trigger_mode: str
    deployment_config: str
    termination_wait_minutes: int
    ecr_keep_images: int
    build_image: str
    build_compute_type: str
    build_timeout_minutes: int
    manual_approval: bool = False
    """A manual approval stage between Build and Deploy."""


@dataclass(frozen=True)
class AlarmsConfig:
    """CloudWatch alarms on the target groups that stop a deployment and roll it back."""

    enabled: bool
    server_error_percent: int
    """Target 5xx responses, as a percentage of requests, that raise the alarm."""
    unhealthy_hosts: int
    """Unhealthy targets in a target group that raise the alarm."""


@dataclass(frozen=True)
class GitLabConfig:
    url: str
    """Base URL of the GitLab instance, without a trailing slash."""
    project: str
    """Project path (``group/app``) or numeric id."""
    token: str = field(repr=False)
    """API token (a Pulumi secret). Required: without it nothing on the GitLab side can be registered, and a
    first ``pulumi up`` would stop after the AWS side, leaving half a stack."""
    default_branch: str
    upload_identity: str
    commit_ci_file: bool
    oidc_provider_arn: str | None = None
    """An existing IAM OIDC provider for ``url`` to reuse (``oidc`` only); ``None`` creates one. IAM allows one
    provider per issuer URL per account, so a second stack (or the infrastructure CI's own OIDC role) in the
    same account must reuse the first one's."""

    @property
    def api_url(self) -> str:
        # The provider wants the API root with a trailing slash.
        return f"{self.url}/api/v4/"


@dataclass(frozen=True)
class StackConfig:
    stack: str
    region: str
    app_name: str
    tags: Mapping[str, str]
    log_retention_days: int
    network: NetworkConfig
    container: ContainerConfig
    alb: AlbConfig
    pipeline: PipelineConfig
    gitlab: GitLabConfig
    alarms: AlarmsConfig
    notification_emails: tuple[str, ...]
    """Subscribed to the stack's SNS topic: pipeline failures, rollbacks, alarms, approvals."""
    force_destroy: bool
    """Dev only: delete non-empty buckets and repositories with the stack, and leave stateful resources
    unprotected. Otherwise they are protected (``protect``) and must be emptied or released by hand."""

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical name: ``<appName>-<stack>``."""
        return f"{self.app_name}-{self.stack}"


# --- Parsing ----------------------------------------------------------------------------------

KEYS: dict[str, str] = {
    # key: one-line description (the README's configuration reference mirrors this table)
    "appName": "application name, prefix of every resource name",
    "tags": "map of tags added to every AWS resource",
    "logRetentionDays": "CloudWatch log retention in days",
    "vpcId": "existing VPC id; unset creates a VPC",
    "publicSubnetIds": "existing public subnets (≥ 2) for the ALB",
    "privateSubnetIds": "existing private subnets for the tasks",
    "vpcCidr": "CIDR of the created VPC",
    "availabilityZones": "number of AZs of the created VPC",
    "taskSubnets": "where tasks run: public or private",
    "natGateways": "NAT gateways of a created VPC with private tasks: single or per-az",
    "containerName": "name of the container in the task definition",
    "containerPort": "port the container listens on",
    "cpu": "Fargate task CPU units",
    "memory": "Fargate task memory (MiB)",
    "desiredCount": "number of tasks",
    "healthCheckPath": "ALB health-check path",
    "environment": "map of environment variables of the container",
    "initialImage": "image of the first task definition, before the first deployment",
    "listenerPort": "production listener port",
    "testListenerPort": "test listener port (CodeDeploy test traffic)",
    "allowedCidrs": "CIDRs allowed to reach the production listener",
    "testListenerCidrs": "CIDRs allowed to reach the test listener (never 0.0.0.0/0)",
    "domainName": "DNS name of the site; needed for HTTPS",
    "hostedZoneId": "Route 53 zone of domainName: alias record, and a DNS-validated certificate",
    "certificateArn": "existing ACM certificate for domainName, in the stack's region",
    "sslPolicy": "TLS policy of the HTTPS listener",
    "albDeletionProtection": "ALB deletion protection",
    "albAccessLogs": "ALB access logs to an S3 bucket of the stack",
    "sourceObjectKey": "S3 key the GitLab job uploads to",
    "triggerMode": "how an upload starts the pipeline: eventbridge or cloudtrail",
    "deploymentConfig": "CodeDeploy deployment configuration",
    "terminationWaitMinutes": "minutes before the old (blue) tasks are terminated",
    "ecrKeepImages": "commit-tagged images kept in ECR (besides the live and rollback images)",
    "buildImage": "CodeBuild image",
    "buildComputeType": "CodeBuild compute type",
    "buildTimeoutMinutes": "CodeBuild timeout",
    "manualApproval": "manual approval stage before the deployment",
    "rollbackOnAlarm": "CloudWatch alarms (5xx rate, unhealthy hosts) that roll a deployment back",
    "alarm5xxPercent": "target 5xx responses (% of requests over a minute) that raise the alarm",
    "alarmUnhealthyHosts": "unhealthy targets that raise the alarm",
    "notificationEmails": "emails subscribed to pipeline failures, rollbacks, alarms and approvals",
    "forceDestroy": "delete non-empty buckets and repositories with the stack (dev only)",
    "gitlabUrl": "base URL of the GitLab instance",
    "gitlabProject": "application project: path (group/app) or numeric id",
    "gitlabToken": "GitLab API token (secret)",
    "gitlabDefaultBranch": "branch whose pushes deploy",
    "uploadIdentity": "how the GitLab job authenticates to AWS: access-key or oidc",
    "oidcProviderArn": "existing IAM OIDC provider of gitlabUrl to reuse (oidc); unset creates one",
    "commitGitlabCi": "commit the stack's job file (.gitlab/ci/aws-<stack>.gitlab-ci.yml) to the application project",
}

SECRET_KEYS = frozenset({"gitlabToken"})


class _Reader:
    """Reads raw string values, records every problem, and returns usable defaults meanwhile."""

    def __init__(self, values: Mapping[str, str], secret_keys: frozenset[str]) -> None:
        self.values = values
        self.secret_keys = secret_keys
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{_qualified(key)}: {message}")

    def failed(self, *keys: str) -> bool:
        """Whether a problem was recorded for any of ``keys``: a cross-key check on a value that was
        replaced by its default would report a second, misleading problem."""
        return any(p.startswith(f"{_qualified(k)}:") for p in self.problems for k in keys)

    def _typed(self, key: str, default: T, convert: Callable[[str], T], what: str) -> T:
        raw = self.values.get(key)
        if raw is None:
            return default
        try:
            return convert(raw)
        except (ValueError, TypeError):
            self.fail(key, f"expected {what}, got {raw!r}")
            return default

    def string(self, key: str, default: str) -> str:
        raw = self.values.get(key)
        if raw is None:
            return default
        if raw.strip() == "":
            self.fail(key, "must not be empty")
            return default
        if raw.lstrip()[:1] in ("{", "["):
            self.fail(key, f"expected a string, got a structured value {raw!r}")
            return default
        return raw

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self._typed(key, default, _to_int, f"an integer from {lo} to {hi}")
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range; allowed: {lo} to {hi}")
            return default
        return value

    def one_of(self, key: str, default: int, allowed: tuple[int, ...], what: str) -> int:
        value = self._typed(key, default, _to_int, f"{what} ({_listing(allowed)})")
        if value not in allowed:
            self.fail(key, f"{value} is not {what}; allowed: {_listing(allowed)}")
            return default
        return value

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.string(key, default)
        if value not in allowed:
            self.fail(key, f"{value!r} is not allowed; allowed: {_listing(allowed)}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        return self._typed(key, default, _to_bool, "true or false")

    def string_list(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        return self._typed(key, default, _to_str_list, "a list of strings")

    def string_map(self, key: str, default: Mapping[str, str]) -> Mapping[str, str]:
        return self._typed(key, default, _to_str_map, "a map of strings to strings")

    def secret(self, key: str, what: str) -> str:
        """A required secret; ``what`` says what it is, for the error when it is missing."""
        raw = self.values.get(key)
        if raw is None or not raw.strip():
            self.fail(
                key, f"required: {what}. Set it as a secret: `pulumi config set --secret {_qualified(key)} <value>`"
            )
            return ""
        if key not in self.secret_keys:
            self.fail(
                key,
                f"must be a secret: set it with `pulumi config set --secret {_qualified(key)} <value>` "
                "(never as plain text)",
            )
            return ""
        return raw


def parse_config(
    values: Mapping[str, str],
    *,
    stack: str,
    region: str | None,
    secret_keys: frozenset[str] = frozenset(),
    other_keys: Iterable[str] = (),
) -> StackConfig:
    """Validates raw config values (``key -> string``, without namespace) into a ``StackConfig``.

    ``other_keys`` are the stack's namespaced keys outside the project's namespace (``aws:region``...), checked
    too: a key nothing reads is a mistake the user would not otherwise see.

    Raises ``ConfigError`` listing every problem: unknown keys (with the nearest known key), wrong
    types, values out of range, and combinations AWS would reject.
    """
    r = _Reader(values, secret_keys)
    r.problems.extend(foreign_key_problems(other_keys))

    for key in sorted(values):
        if key not in KEYS:
            near = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.6)
            hint = f"; did you mean {_qualified(near[0])!r}?" if near else ""
            r.fail(key, f"unknown key{hint} (known keys are listed in README.md)")

    if region is None:
        r.problems.append("aws:region: required (e.g. `pulumi config set aws:region eu-west-1`)")
        region = "us-east-1"
    elif not _REGION.match(region):
        r.problems.append(f"aws:region: {region!r} is not an AWS region name (like eu-west-1)")

    if not re.match(r"^[a-z0-9][a-z0-9-]*$", stack.lower()):
        r.problems.append(
            f"stack name {stack!r}: use lower-case letters, digits and hyphens (it is part of resource names)"
        )

    app_name = r.string("appName", "sample-app")
    if not _APP_NAME.match(app_name):
        r.fail(
            "appName",
            f"{app_name!r} is not allowed; use lower-case letters, digits and hyphens, starting with a letter",
        )
    longest = f"{app_name}-{stack.lower()}{LONGEST_NAME_SUFFIX}"
    if len(longest) > AWS_LB_NAME_MAX:
        room = AWS_LB_NAME_MAX - len(f"-{stack.lower()}{LONGEST_NAME_SUFFIX}")
        r.fail(
            "appName",
            f"{app_name!r} makes the target-group name {longest!r} {len(longest)} characters long; "
            f"AWS allows {AWS_LB_NAME_MAX}, so appName may have at most {room} characters "
            f"in stack {stack!r}",
        )

    tags = r.string_map("tags", {})
    for tag_key, tag_value in tags.items():
        if tag_key.lower().startswith("aws:") or not _TAG_KEY.match(tag_key):
            r.fail("tags", f"tag key {tag_key!r} is not allowed (1-128 characters, not 'aws:')")
        if len(tag_value) > 256:
            r.fail("tags", f"the value of tag {tag_key!r} is longer than 256 characters")

    log_retention_days = r.one_of("logRetentionDays", 14, LOG_RETENTION_DAYS, "a CloudWatch retention period")

    network = _parse_network(r)
    container = _parse_container(r, app_name)
    alb = _parse_alb(r, region)
    pipeline = _parse_pipeline(r)
    gitlab = _parse_gitlab(r)
    alarms = AlarmsConfig(
        enabled=r.boolean("rollbackOnAlarm", True),
        server_error_percent=r.integer("alarm5xxPercent", 5, 1, 100),
        unhealthy_hosts=r.integer("alarmUnhealthyHosts", 1, 1, 100),
    )
    if not alarms.enabled:
        for key in ("alarm5xxPercent", "alarmUnhealthyHosts"):
            if key in r.values:
                r.fail(key, "applies only with rollbackOnAlarm true")
    emails = r.string_list("notificationEmails", ())
    for email in emails:
        if not _EMAIL.match(email):
            r.fail("notificationEmails", f"{email!r} is not an email address")
    if len(set(emails)) != len(emails):
        r.fail("notificationEmails", "lists an address twice")
    force_destroy = r.boolean("forceDestroy", False)
    if force_destroy and stack.lower() not in FORCE_DESTROY_STACKS:
        r.fail(
            "forceDestroy",
            f"only the {_listing(FORCE_DESTROY_STACKS)} stack may delete non-empty buckets and repositories; "
            f"stack {stack!r} keeps them protected",
        )

    if r.problems:
        raise ConfigError(r.problems)
    return StackConfig(
        stack=stack.lower(),
        region=region,
        app_name=app_name,
        tags=tags,
        log_retention_days=log_retention_days,
        network=network,
        container=container,
        alb=alb,
        pipeline=pipeline,
        gitlab=gitlab,
        alarms=alarms,
        notification_emails=emails,
        force_destroy=force_destroy,
    )


def _parse_network(r: _Reader) -> NetworkConfig:
    vpc_id = r.values.get("vpcId")
    if vpc_id is not None and not _VPC_ID.match(vpc_id):
        r.fail("vpcId", f"{vpc_id!r} is not a VPC id (vpc-0123456789abcdef0)")
    public = r.string_list("publicSubnetIds", ())
    private = r.string_list("privateSubnetIds", ())
    for key, ids in (("publicSubnetIds", public), ("privateSubnetIds", private)):
        for subnet in ids:
            if not _SUBNET_ID.match(subnet):
                r.fail(key, f"{subnet!r} is not a subnet id (subnet-0123456789abcdef0)")
        if len(set(ids)) != len(ids):
            r.fail(key, "lists a subnet twice")
    task_subnets = r.choice("taskSubnets", "public", TASK_SUBNETS)
    nat_gateways = r.choice("natGateways", "single", NAT_GATEWAYS)
    vpc_cidr = r.string("vpcCidr", "10.0.0.0/16")
    az_count = r.integer("availabilityZones", 2, 2, 4)

    if vpc_id is not None:
        if not r.failed("publicSubnetIds") and len(public) < 2:
            r.fail(
                "publicSubnetIds",
                "with vpcId set, list at least two public subnets in different AZs (an ALB needs two)",
            )
        if task_subnets == "private" and not r.failed("privateSubnetIds") and len(private) < 2:
            r.fail(
                "privateSubnetIds",
                "with vpcId set and taskSubnets 'private', list at least two private subnets",
            )
        for key in ("vpcCidr", "availabilityZones", "natGateways"):
            if key in r.values:
                r.fail(key, "applies only to a created VPC; remove it or unset vpcId")
    else:
        for key in ("publicSubnetIds", "privateSubnetIds"):
            if key in r.values:
                r.fail(key, "needs vpcId: subnets can only be given with an existing VPC")
        try:
            net = ipaddress.ip_network(vpc_cidr, strict=True)
            if net.version != 4 or not 16 <= net.prefixlen <= 24:
                r.fail("vpcCidr", f"{vpc_cidr!r}: use an IPv4 block from /16 to /24")
        except ValueError:
            r.fail("vpcCidr", f"{vpc_cidr!r} is not a CIDR block (like 10.0.0.0/16)")
        if "natGateways" in r.values and task_subnets != "private":
            r.fail("natGateways", "applies only with taskSubnets 'private'")

    return NetworkConfig(
        vpc_id=vpc_id,
        public_subnet_ids=public,
        private_subnet_ids=private,
        vpc_cidr=vpc_cidr,
        az_count=az_count,
        task_subnets=task_subnets,
        nat_gateways=nat_gateways,
    )


def _parse_container(r: _Reader, app_name: str) -> ContainerConfig:
    name = r.string("containerName", app_name)
    # The default name is the appName: when that is invalid it has been reported already.
    if ("containerName" in r.values or not r.failed("appName")) and not re.match(r"^[A-Za-z0-9_-]{1,255}$", name):
        r.fail("containerName", f"{name!r}: use letters, digits, hyphens and underscores")
    port = r.integer("containerPort", 80, 1, 65535)
    cpu = r.one_of("cpu", 256, tuple(FARGATE_SIZES), "a Fargate CPU size")
    memory = r.integer("memory", 512, 1, 1_000_000)
    if not r.failed("cpu", "memory") and memory not in FARGATE_SIZES[cpu]:
        r.fail(
            "memory",
            f"{memory} MiB is not a Fargate size for cpu {cpu}; allowed with cpu {cpu}: {_listing(FARGATE_SIZES[cpu])}",
        )
    desired_count = r.integer("desiredCount", 1, 1, 100)
    path = r.string("healthCheckPath", "/")
    if not path.startswith("/") or len(path) > 1024 or " " in path:
        r.fail("healthCheckPath", f"{path!r} must be a URL path starting with '/'")
    environment = r.string_map("environment", {})
    for env_name in environment:
        if not _ENV_NAME.match(env_name):
            r.fail("environment", f"{env_name!r} is not a valid environment variable name")
        if env_name.startswith("AWS_") or env_name.startswith("ECS_"):
            r.fail("environment", f"{env_name!r}: names starting with AWS_ or ECS_ are reserved")
    initial_image = r.string("initialImage", "public.ecr.aws/nginx/nginx:stable-alpine")
    return ContainerConfig(
        name=name,
        port=port,
        cpu=cpu,
        memory=memory,
        desired_count=desired_count,
        health_check_path=path,
        environment=environment,
        initial_image=initial_image,
    )


def _parse_alb(r: _Reader, region: str) -> AlbConfig:
    domain = r.values.get("domainName")
    if domain is not None and not _DOMAIN.match(domain):
        r.fail("domainName", f"{domain!r} is not a lower-case DNS name (like app.example.com)")
    zone = r.values.get("hostedZoneId")
    if zone is not None and not _HOSTED_ZONE_ID.match(zone):
        r.fail("hostedZoneId", f"{zone!r} is not a Route 53 hosted zone id (like Z0123456789ABCDEFGHIJ)")
    certificate = r.values.get("certificateArn")
    if certificate is not None:
        match = _CERTIFICATE_ARN.match(certificate)
        if not match:
            r.fail(
                "certificateArn",
                f"{certificate!r} is not an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)",
            )
        elif match["region"] != region:
            r.fail(
                "certificateArn",
                f"the certificate is in {match['region']}; an ALB uses a certificate of its own region {region}",
            )
    for key in ("hostedZoneId", "certificateArn"):
        if key in r.values and domain is None:
            r.fail(key, "needs domainName: the name the certificate and the site are for")
    if domain is not None and zone is None and certificate is None:
        r.fail(
            "domainName",
            "needs hostedZoneId (a certificate validated through Route 53, and the DNS record) or certificateArn",
        )
    https = zone is not None or certificate is not None
    ssl_policy = r.choice("sslPolicy", SSL_POLICIES[0], SSL_POLICIES)
    if "sslPolicy" in r.values and not https:
        r.fail("sslPolicy", "applies only with HTTPS (set domainName with hostedZoneId or certificateArn)")

    listener_port = r.integer("listenerPort", 443 if https else 80, 1, 65535)
    test_port = r.integer("testListenerPort", 8080, 1, 65535)
    if not r.failed("listenerPort", "testListenerPort") and listener_port == test_port:
        r.fail("testListenerPort", f"{test_port} is also listenerPort; the two listeners need two ports")
    if https:
        for key, port in (("listenerPort", listener_port), ("testListenerPort", test_port)):
            if port == 80 and not r.failed(key):
                r.fail(key, "port 80 redirects to HTTPS when the site has a certificate; use another port")
    allowed = r.string_list("allowedCidrs", ("0.0.0.0/0",))
    test_cidrs = r.string_list("testListenerCidrs", ())
    for key, cidrs in (("allowedCidrs", allowed), ("testListenerCidrs", test_cidrs)):
        for cidr in cidrs:
            try:
                network = ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                r.fail(key, f"{cidr!r} is not a CIDR block (like 203.0.113.0/24 or 0.0.0.0/0)")
                continue
            if any(network.version == p.version and network.subnet_of(p) for p in NOT_FROM_THE_INTERNET):  # type: ignore[arg-type]
                r.fail(
                    key,
                    f"{cidr!r} is a private range, and the ALB is internet-facing: clients, the VPC's own hosts "
                    "included, reach it from their public (or NAT gateway) addresses, so this rule admits nobody; "
                    "list public CIDRs, like your office's or VPN's egress range",
                )
    if not allowed:
        r.fail("allowedCidrs", "must list at least one CIDR, or nobody reaches the site")
    for cidr in test_cidrs:
        if cidr in _WORLD:
            r.fail(
                "testListenerCidrs",
                f"{cidr!r} opens the test listener, which serves a version before it is approved, to the internet; "
                "list your office or VPN CIDRs",
            )
    return AlbConfig(
        listener_port=listener_port,
        test_listener_port=test_port,
        allowed_cidrs=allowed,
        test_listener_cidrs=test_cidrs,
        domain_name=domain,
        hosted_zone_id=zone,
        certificate_arn=certificate,
        ssl_policy=ssl_policy,
        deletion_protection=r.boolean("albDeletionProtection", True),
        access_logs=r.boolean("albAccessLogs", True),
    )


def _parse_pipeline(r: _Reader) -> PipelineConfig:
    key = r.string("sourceObjectKey", "docker-image/docker_image.zip")
    if not SAFE_OBJECT_KEY.match(key) or "//" in key or not key.endswith(".zip") or len(key) > 1024:
        r.fail(
            "sourceObjectKey",
            f"{key!r}: use letters, digits and / . _ - only (not first, no '//'), ending in .zip, at most 1024 "
            "characters, so that the key reads the same in every S3 event",
        )
    deployment_config = r.string("deploymentConfig", "CodeDeployDefault.ECSAllAtOnce")
    if "." not in deployment_config:
        deployment_config = f"CodeDeployDefault.{deployment_config}"
    if deployment_config not in DEPLOYMENT_CONFIGS:
        r.fail(
            "deploymentConfig",
            f"{r.values.get('deploymentConfig')!r} is not allowed; allowed: {_listing(DEPLOYMENT_CONFIGS)}",
        )
        deployment_config = DEPLOYMENT_CONFIGS[0]
    build_image = r.string("buildImage", "aws/codebuild/standard:7.0")
    return PipelineConfig(
        source_object_key=key,
        trigger_mode=r.choice("triggerMode", "eventbridge", TRIGGER_MODES),
        deployment_config=deployment_config,
        termination_wait_minutes=r.integer("terminationWaitMinutes", 5, 0, 2880),
        ecr_keep_images=r.integer("ecrKeepImages", 10, 1, 1000),
        build_image=build_image,
        build_compute_type=r.choice("buildComputeType", "BUILD_GENERAL1_SMALL", BUILD_COMPUTE_TYPES),
        build_timeout_minutes=r.integer("buildTimeoutMinutes", 20, 5, 480),
        manual_approval=r.boolean("manualApproval", False),
    )


def _parse_gitlab(r: _Reader) -> GitLabConfig:
    url = r.string("gitlabUrl", "https://gitlab.com").rstrip("/")
    if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~-]+)*$", url):
        r.fail("gitlabUrl", f"{url!r} must be an https:// URL of the GitLab instance")
    project = r.string("gitlabProject", "")
    if not project:
        r.fail("gitlabProject", "required: the application project's path (group/app) or numeric id")
    elif not _GITLAB_PROJECT.match(project):
        r.fail("gitlabProject", f"{project!r} is not a project path (group/app) or numeric id")
    branch = r.string("gitlabDefaultBranch", "main")
    if not _BRANCH.match(branch):
        r.fail("gitlabDefaultBranch", f"{branch!r} is not a branch name")
    upload_identity = r.choice("uploadIdentity", "access-key", UPLOAD_IDENTITIES)
    if upload_identity == "oidc" and project.isdigit():
        r.fail(
            "gitlabProject",
            f"{project!r}: uploadIdentity 'oidc' needs the project's path (group/app), not its numeric id: "
            "GitLab's ID token names the project by path, and the role trusts exactly that path",
        )
    provider_arn = r.values.get("oidcProviderArn")
    if provider_arn is not None:
        match = _OIDC_PROVIDER_ARN.match(provider_arn)
        issuer = url.removeprefix("https://")
        if upload_identity != "oidc":
            r.fail("oidcProviderArn", "applies only with uploadIdentity 'oidc'")
        elif not match:
            r.fail(
                "oidcProviderArn",
                f"{provider_arn!r} is not an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/<host>)",
            )
        elif not r.failed("gitlabUrl") and match["issuer"] != issuer:
            r.fail(
                "oidcProviderArn",
                f"the provider is for {match['issuer']!r}, but GitLab's ID tokens come from {issuer!r} (gitlabUrl)",
            )
    return GitLabConfig(
        url=url,
        project=project,
        token=r.secret("gitlabToken", "a GitLab API token (api scope, Maintainer on the application project)"),
        default_branch=branch,
        upload_identity=upload_identity,
        commit_ci_file=r.boolean("commitGitlabCi", False),
        oidc_provider_arn=provider_arn,
    )


# --- Keys of other namespaces -----------------------------------------------------------------

# The program's providers are explicit (``aws.Provider(region=...)``, ``gitlab.Provider(...)``): a provider's own
# config keys in the stack file (``aws:profile``, ``gitlab:token``) configure only default providers, which the
# program never uses, so they would be ignored without a word. Of other namespaces the program reads
# ``aws:region``; ``pulumi:`` keys belong to the engine.
READ_FOREIGN_KEYS = frozenset({"aws:region"})
ENGINE_NAMESPACES = frozenset({"pulumi"})
_PROVIDER_INSTEAD = {
    "aws": (
        "the program's AWS provider is explicit and takes only aws:region from the stack; credentials and roles "
        "come from the environment (AWS_PROFILE, AWS_ROLE_ARN, ...)"
    ),
    "gitlab": (
        f"the program's GitLab provider is explicit and takes no gitlab: key; set {PROJECT}:gitlabUrl and "
        f"{PROJECT}:gitlabToken instead"
    ),
}


def _provider_keys(namespace: str) -> tuple[str, ...]:
    """The config keys a provider package declares (its ``ProviderArgs`` properties, as the engine names them)."""
    import importlib
    import inspect

    module = importlib.import_module({"aws": "pulumi_aws", "gitlab": "pulumi_gitlab"}[namespace])
    members = inspect.getmembers(module.ProviderArgs, lambda m: isinstance(m, property))
    return tuple(sorted(getattr(p.fget, "_pulumi_name", name) for name, p in members))


def foreign_key_problems(keys: Iterable[str]) -> list[str]:
    """Problems with namespaced keys outside ``PROJECT``: misspelt namespaces, unknown or unused provider keys."""
    problems = []
    for key in sorted(keys):
        namespace, _, name = key.partition(":")
        if key in READ_FOREIGN_KEYS or namespace in ENGINE_NAMESPACES:
            continue
        if namespace in _PROVIDER_INSTEAD:
            known = _provider_keys(namespace)
            if name in known:
                problems.append(f"{key}: not read: {_PROVIDER_INSTEAD[namespace]}")
                continue
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean '{namespace}:{near[0]}'?" if near else ""
            problems.append(f"{key}: unknown key{hint}")
            continue
        if difflib.get_close_matches(namespace, [PROJECT], n=1, cutoff=0.75):
            near = difflib.get_close_matches(name, list(KEYS), n=1, cutoff=0.6)
            problems.append(
                f"{key}: unknown namespace {namespace!r}; did you mean {_qualified(near[0] if near else name)!r}?"
            )
            continue
        problems.append(
            f"{key}: unknown namespace {namespace!r}: the program reads {PROJECT}:* keys and aws:region only"
        )
    return problems


# --- Helpers ----------------------------------------------------------------------------------


def _qualified(key: str) -> str:
    return f"{PROJECT}:{key}"


def _listing(values: tuple[Any, ...]) -> str:
    return ", ".join(str(v) for v in values)


def _to_int(raw: str) -> int:
    value = json.loads(raw) if raw.strip() else raw
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(raw)
    return value


def _to_bool(raw: str) -> bool:
    if raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise ValueError(raw)


def _to_str_list(raw: str) -> tuple[str, ...]:
    value = json.loads(raw)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(raw)
    return tuple(value)


def _to_str_map(raw: str) -> Mapping[str, str]:
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(raw)
    return dict(sorted(value.items()))


def load_stack_config() -> StackConfig:
    """Reads the running program's config (``pulumi up`` or mocks) and validates it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    everything: dict[str, Any] = {
        **runtime_config.get_config_env(),
        **runtime_config.CONFIG.get(),
    }
    prefix = f"{PROJECT}:"
    values = {
        k[len(prefix) :]: v if isinstance(v, str) else json.dumps(v)
        for k, v in everything.items()
        if k.startswith(prefix)
    }
    secret = frozenset(
        key
        for key in values
        if runtime_config.is_config_secret(prefix + key) or prefix + key in runtime_config.get_config_secret_keys_env()
    )
    region = pulumi.Config("aws").get("region")
    others = frozenset(k for k in everything if ":" in k and not k.startswith(prefix))
    return parse_config(values, stack=pulumi.get_stack(), region=region, secret_keys=secret, other_keys=others)
