"""The config model on good and bad input, without Pulumi: every rule, and what its error message says.

A user meets these messages in `pulumi preview`; each must name the key as they typed it in the stack file
(`gitlab-fargate:<key>`), the bad value, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from components.config import (
    DEPLOYMENT_CONFIGS,
    FARGATE_SIZES,
    KEYS,
    SECRET_KEYS,
    ConfigError,
    StackConfig,
    parse_config,
)
from offline.stack_files import ROOT, committed_stacks, load_stack_files

BASE = {"gitlabProject": "group/app", "gitlabToken": "glpat-offline-test-token"}


def parse(values: dict[str, str] | None = None, *, stack: str = "dev", region: str | None = "eu-west-1") -> StackConfig:
    return parse_config({**BASE, **(values or {})}, stack=stack, region=region, secret_keys=SECRET_KEYS)


def problems(values: dict[str, str], **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(values, **kwargs)  # type: ignore[arg-type]
    return err.value.problems


def only_problem(values: dict[str, str], key: str, **kwargs: object) -> str:
    """The single problem reported, which must be about ``key``; returns the message after the key."""
    found = problems(values, **kwargs)
    assert len(found) == 1, found
    prefix = f"gitlab-fargate:{key}: " if ":" not in key else f"{key}: "
    assert found[0].startswith(prefix), found
    return found[0][len(prefix) :]


# --- Defaults ---------------------------------------------------------------------------------


def test_defaults_give_one_small_public_task_in_a_created_vpc() -> None:
    cfg = parse()
    assert cfg.name_prefix == "sample-app-dev"
    assert cfg.network.creates_vpc
    assert (cfg.network.vpc_cidr, cfg.network.az_count, cfg.network.task_subnets) == ("10.0.0.0/16", 2, "public")
    c = cfg.container
    assert (c.cpu, c.memory, c.port, c.desired_count, c.health_check_path) == (256, 512, 80, 1, "/")
    assert c.name == "sample-app", "the container is named after the app unless containerName says otherwise"
    assert c.initial_image.startswith("public.ecr.aws/"), "the first image must not come from rate-limited Docker Hub"
    assert (cfg.alb.listener_port, cfg.alb.test_listener_port) == (80, 8080)
    assert cfg.alb.allowed_cidrs == ("0.0.0.0/0",)
    assert cfg.alb.test_listener_cidrs == (), "the test listener is closed to the outside unless opened"
    assert cfg.log_retention_days == 14
    assert cfg.pipeline.deployment_config == "CodeDeployDefault.ECSAllAtOnce"
    assert cfg.gitlab.oidc_provider_arn is None
    assert cfg.gitlab.api_url == "https://gitlab.com/api/v4/"


def test_the_model_is_frozen() -> None:
    cfg = parse()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.app_name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.container.cpu = 4096  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.network.vpc_id = "vpc-0123456789abcdef0"  # type: ignore[misc]
    assert isinstance(cfg.alb.allowed_cidrs, tuple), "lists are tuples so they cannot be changed in place"


def test_every_valid_fargate_size_is_accepted() -> None:
    for cpu, memories in FARGATE_SIZES.items():
        for memory in (memories[0], memories[-1]):
            c = parse({"cpu": str(cpu), "memory": str(memory)}).container
            assert (c.cpu, c.memory) == (cpu, memory)


def test_values_arrive_as_strings_and_json_like_pulumi_passes_them() -> None:
    cfg = parse(
        {
            "desiredCount": "3",
            "commitGitlabCi": "true",
            "allowedCidrs": '["203.0.113.0/24", "2001:db8::/32"]',
            "environment": '{"B": "2", "A": "1"}',
            "tags": '{"team": "web"}',
            "deploymentConfig": "ECSCanary10Percent5Minutes",
            "gitlabUrl": "https://gitlab.example.com/",
        }
    )
    assert cfg.container.desired_count == 3
    assert cfg.gitlab.commit_ci_file is True
    assert cfg.alb.allowed_cidrs == ("203.0.113.0/24", "2001:db8::/32")
    assert dict(cfg.container.environment) == {"A": "1", "B": "2"}
    assert dict(cfg.tags) == {"team": "web"}
    assert cfg.pipeline.deployment_config == "CodeDeployDefault.ECSCanary10Percent5Minutes", "short names are completed"
    assert cfg.gitlab.url == "https://gitlab.example.com", "a trailing slash is dropped"


def test_a_secret_token_is_kept_and_never_shown_in_repr() -> None:
    cfg = parse({"gitlabToken": "glpat-abcdefghijklmnop"})
    assert cfg.gitlab.token == "glpat-abcdefghijklmnop"
    assert "glpat" not in repr(cfg)


# --- Fargate size -----------------------------------------------------------------------------


def test_memory_not_allowed_with_the_cpu_lists_the_allowed_memory() -> None:
    message = only_problem({"cpu": "256", "memory": "4096"}, "memory")
    assert "4096" in message and "cpu 256" in message
    assert "512, 1024, 2048" in message


def test_cpu_that_is_no_fargate_size_lists_the_sizes() -> None:
    message = only_problem({"cpu": "300"}, "cpu")
    assert "300" in message
    assert ", ".join(str(c) for c in FARGATE_SIZES) in message


def test_a_wrong_cpu_does_not_also_blame_the_memory() -> None:
    found = problems({"cpu": "300", "memory": "4096"})
    assert [p.split(":")[1] for p in found] == ["cpu"], found


def test_cpu_that_is_not_a_number_says_what_is_allowed() -> None:
    message = only_problem({"cpu": "abc"}, "cpu")
    assert "'abc'" in message and "256" in message and "16384" in message


def test_memory_that_is_not_a_number_is_the_only_problem() -> None:
    message = only_problem({"cpu": "1024", "memory": "2GB"}, "memory")
    assert "'2GB'" in message and "integer" in message


# --- Ports ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["containerPort", "listenerPort", "testListenerPort"])
@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_ports_out_of_range(key: str, port: str) -> None:
    message = only_problem({key: port}, key)
    assert port in message and "1 to 65535" in message


def test_equal_listener_ports() -> None:
    message = only_problem({"listenerPort": "8080", "testListenerPort": "8080"}, "testListenerPort")
    assert "8080" in message and "listenerPort" in message


def test_a_bad_listener_port_does_not_also_report_a_clash() -> None:
    found = problems({"listenerPort": "70000", "testListenerPort": "80"})
    assert [p.split(":")[1] for p in found] == ["listenerPort"], found


# --- CIDRs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["allowedCidrs", "testListenerCidrs"])
@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0.1/8", "not-a-cidr", "300.0.0.0/8"])
def test_malformed_listener_cidrs(key: str, cidr: str) -> None:
    message = only_problem({key: f'["{cidr}"]'}, key)
    assert repr(cidr) in message and "CIDR" in message and "0.0.0.0/0" in message


# An internet-facing ALB's DNS name resolves to its nodes' public addresses, so every client, a host of the
# stack's own VPC included, arrives from a public address (its own, or its NAT gateway's):
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#load-balancer-scheme
@pytest.mark.parametrize("key", ["allowedCidrs", "testListenerCidrs"])
@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "172.20.0.0/16", "192.168.1.0/24", "100.64.0.0/12", "fd00::/64"])
def test_a_private_range_admits_nobody_to_an_internet_facing_alb(key: str, cidr: str) -> None:
    message = only_problem({key: f'["{cidr}"]'}, key)
    assert message.startswith(f"{cidr!r} is a private range, and the ALB is internet-facing")
    assert "public CIDRs" in message


@pytest.mark.parametrize("cidr", ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32", "8.8.8.0/24"])
def test_public_ranges_are_accepted_for_both_listeners(cidr: str) -> None:
    cfg = parse({"allowedCidrs": f'["{cidr}"]', "testListenerCidrs": f'["{cidr}"]'})
    assert cfg.alb.allowed_cidrs == cfg.alb.test_listener_cidrs == (cidr,)


def test_allowed_cidrs_cannot_be_empty() -> None:
    assert "at least one CIDR" in only_problem({"allowedCidrs": "[]"}, "allowedCidrs")


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0.1/16", "10.0.0.0/8", "10.0.0.0/25", "fd00::/56", "x"])
def test_malformed_or_unusable_vpc_cidr(cidr: str) -> None:
    message = only_problem({"vpcCidr": cidr}, "vpcCidr")
    assert repr(cidr) in message
    assert "/16" in message, "the message says which block sizes are allowed (or what a CIDR looks like)"


# --- Names ------------------------------------------------------------------------------------


def test_app_name_making_the_target_group_name_too_long() -> None:
    app = "a" * 20  # "<app>-dev-green" is 30 characters: fits; "<app>-staging-green" (34) does not
    assert parse({"appName": app}, stack="dev").name_prefix == f"{app}-dev"
    message = only_problem({"appName": app}, "appName", stack="staging")
    assert repr(app) in message and "32" in message
    assert f"{app}-staging-green" in message, "the message shows the name AWS would reject"
    assert "at most 18 characters" in message, "and how long appName may be in this stack"


def test_longest_name_that_fits_is_exactly_32() -> None:
    app = "b" * (32 - len("-dev-green"))
    cfg = parse({"appName": app})
    assert len(f"{cfg.name_prefix}-green") == 32


@pytest.mark.parametrize("app", ["Sample", "1app", "app-", "my_app", "app name"])
def test_app_name_characters(app: str) -> None:
    message = only_problem({"appName": app}, "appName")
    assert repr(app) in message and "lower-case" in message


def test_unknown_key_suggests_the_nearest() -> None:
    message = only_problem({"contianerPort": "80"}, "contianerPort")
    assert "unknown key" in message and "'gitlab-fargate:containerPort'" in message


def test_unknown_key_without_anything_near() -> None:
    message = only_problem({"zzzzzzzz": "1"}, "zzzzzzzz")
    assert "unknown key" in message and "did you mean" not in message


# --- Types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("desiredCount", "two", "integer"),
        ("desiredCount", "1.5", "integer"),
        ("desiredCount", "true", "integer"),
        ("commitGitlabCi", "yes", "true or false"),
        ("allowedCidrs", "0.0.0.0/0", "list of strings"),
        ("testListenerCidrs", '"10.0.0.0/8"', "list of strings"),
        ("allowedCidrs", "[1, 2]", "list of strings"),
        ("publicSubnetIds", "subnet-0123456789abcdef0", "list of strings"),
        ("tags", '["a", "b"]', "map of strings"),
        ("tags", "team=web", "map of strings"),
        ("environment", '{"PORT": 80}', "map of strings"),
        ("appName", '["sample"]', "string"),
        ("healthCheckPath", '{"path": "/"}', "string"),
    ],
)
def test_wrong_types(key: str, raw: str, expected: str) -> None:
    extra = {"vpcId": "vpc-0123456789abcdef0", "publicSubnetIds": '["subnet-0a", "subnet-0b"]'}
    values = {key: raw} if key != "publicSubnetIds" else {**extra, key: raw}
    message = only_problem(values, key)
    assert expected in message and repr(raw) in message


def test_empty_string_is_rejected() -> None:
    assert "must not be empty" in only_problem({"containerName": " "}, "containerName")


# --- Network combinations ---------------------------------------------------------------------

VPC = "vpc-0123456789abcdef0"
SUBNETS = '["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]'
PRIVATE = '["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"]'


def test_existing_vpc_with_its_subnets() -> None:
    net = parse(
        {"vpcId": VPC, "publicSubnetIds": SUBNETS, "privateSubnetIds": PRIVATE, "taskSubnets": "private"}
    ).network
    assert not net.creates_vpc
    assert net.public_subnet_ids == ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
    assert net.private_subnet_ids == ("subnet-0123456789abcdef2", "subnet-0123456789abcdef3")


def test_vpc_id_without_subnets() -> None:
    message = only_problem({"vpcId": VPC}, "publicSubnetIds")
    assert "vpcId" in message and "two" in message


def test_vpc_id_with_one_subnet() -> None:
    assert "two" in only_problem({"vpcId": VPC, "publicSubnetIds": '["subnet-0123456789abcdef0"]'}, "publicSubnetIds")


@pytest.mark.parametrize("key", ["publicSubnetIds", "privateSubnetIds"])
def test_subnets_without_vpc_id(key: str) -> None:
    assert "needs vpcId" in only_problem({key: SUBNETS}, key)


def test_private_tasks_in_an_existing_vpc_need_private_subnets() -> None:
    message = only_problem({"vpcId": VPC, "publicSubnetIds": SUBNETS, "taskSubnets": "private"}, "privateSubnetIds")
    assert "taskSubnets 'private'" in message and "two private subnets" in message


def test_malformed_ids() -> None:
    assert "'vpc-12'" in only_problem({"vpcId": "vpc-12", "publicSubnetIds": SUBNETS}, "vpcId")
    message = only_problem({"vpcId": VPC, "publicSubnetIds": '["subnet-0123456789abcdef0", "sn-1"]'}, "publicSubnetIds")
    assert "'sn-1'" in message and "subnet id" in message


def test_a_subnet_listed_twice() -> None:
    twice = '["subnet-0123456789abcdef0", "subnet-0123456789abcdef0"]'
    assert "twice" in only_problem({"vpcId": VPC, "publicSubnetIds": twice}, "publicSubnetIds")


@pytest.mark.parametrize(("key", "value"), [("vpcCidr", "10.1.0.0/16"), ("availabilityZones", "3")])
def test_created_vpc_settings_with_an_existing_vpc(key: str, value: str) -> None:
    message = only_problem({"vpcId": VPC, "publicSubnetIds": SUBNETS, key: value}, key)
    assert "created VPC" in message


def test_nat_gateways_only_with_private_tasks() -> None:
    assert "taskSubnets 'private'" in only_problem({"natGateways": "per-az"}, "natGateways")
    assert parse({"natGateways": "per-az", "taskSubnets": "private"}).network.nat_gateways == "per-az"


@pytest.mark.parametrize(("key", "bad"), [("taskSubnets", "isolated"), ("natGateways", "two")])
def test_choices_list_what_is_allowed(key: str, bad: str) -> None:
    values = {key: bad, "taskSubnets": "private"} if key == "natGateways" else {key: bad}
    message = only_problem(values, key)
    assert repr(bad) in message and "allowed:" in message


@pytest.mark.parametrize("count", ["1", "5"])
def test_availability_zones_range(count: str) -> None:
    assert "2 to 4" in only_problem({"availabilityZones": count}, "availabilityZones")


# --- Other single-key rules -------------------------------------------------------------------


@pytest.mark.parametrize("days", ["0", "10", "9999"])
def test_log_retention_not_allowed(days: str) -> None:
    message = only_problem({"logRetentionDays": days}, "logRetentionDays")
    assert days in message and "1, 3, 5, 7, 14" in message


def test_log_retention_allowed() -> None:
    assert parse({"logRetentionDays": "90"}).log_retention_days == 90


def test_deployment_config_not_allowed_lists_the_choices() -> None:
    message = only_problem({"deploymentConfig": "ECSBlueGreenFast"}, "deploymentConfig")
    assert "'ECSBlueGreenFast'" in message
    assert all(name in message for name in DEPLOYMENT_CONFIGS)


@pytest.mark.parametrize("path", ["health", "/a b"])
def test_health_check_path(path: str) -> None:
    assert "starting with '/'" in only_problem({"healthCheckPath": path}, "healthCheckPath")


@pytest.mark.parametrize(("name", "why"), [("1X", "not a valid"), ("AWS_REGION", "reserved"), ("ECS_X", "reserved")])
def test_environment_names(name: str, why: str) -> None:
    message = only_problem({"environment": f'{{"{name}": "v"}}'}, "environment")
    assert repr(name) in message and why in message


def test_tag_keys() -> None:
    assert "'aws:owner'" in only_problem({"tags": '{"aws:owner": "me"}'}, "tags")


@pytest.mark.parametrize(
    "key",
    ["/app.zip", "app.tar", "my app.zip", "app+1.zip", "docs//app.zip", "ünï.zip", "a%20b.zip", "a" * 1021 + ".zip"],
)
def test_source_object_key_that_an_s3_event_could_spell_differently(key: str) -> None:
    assert "reads the same in every S3 event" in only_problem({"sourceObjectKey": key}, "sourceObjectKey")


def test_every_source_object_key_the_config_accepts_the_source_bucket_accepts_too() -> None:
    from components.source_bucket import check_object_key

    for key in ("docker-image/docker_image.zip", "a.zip", "builds/v1.2/app_2.zip"):
        check_object_key(parse({"sourceObjectKey": key}).pipeline.source_object_key)


# --- Production hardening: HTTPS, alarms, approval, notifications, protection ---------------------

ZONE = "Z0123456789ABCDEFGHIJ"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0b3e1c2d-4f5a-6b7c-8d9e-0f1a2b3c4d5e"


def test_http_by_default_with_protection_alarms_and_access_logs_on() -> None:
    cfg = parse()
    assert not cfg.alb.https and cfg.alb.listener_port == 80
    assert cfg.alb.deletion_protection and cfg.alb.access_logs
    assert cfg.alarms.enabled and (cfg.alarms.server_error_percent, cfg.alarms.unhealthy_hosts) == (5, 1)
    assert not cfg.force_destroy, "stateful resources are protected unless a dev stack opts out"
    assert not cfg.pipeline.manual_approval and cfg.notification_emails == ()


def test_a_hosted_zone_creates_a_certificate_and_moves_the_site_to_443() -> None:
    cfg = parse({"domainName": "app.example.com", "hostedZoneId": ZONE})
    assert cfg.alb.https and cfg.alb.creates_certificate
    assert cfg.alb.listener_port == 443
    assert cfg.alb.ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"


def test_an_existing_certificate_needs_no_zone() -> None:
    cfg = parse({"domainName": "app.example.com", "certificateArn": CERT})
    assert cfg.alb.https and not cfg.alb.creates_certificate and cfg.alb.certificate_arn == CERT


def test_a_certificate_of_another_region_is_refused() -> None:
    message = only_problem(
        {"domainName": "app.example.com", "certificateArn": CERT.replace("eu-west-1", "us-east-1")}, "certificateArn"
    )
    assert "us-east-1" in message and "eu-west-1" in message


@pytest.mark.parametrize(
    ("values", "key", "says"),
    [
        ({"domainName": "app.example.com"}, "domainName", "hostedZoneId"),
        ({"hostedZoneId": ZONE}, "hostedZoneId", "needs domainName"),
        ({"certificateArn": CERT}, "certificateArn", "needs domainName"),
        ({"domainName": "App.Example.com", "hostedZoneId": ZONE}, "domainName", "DNS name"),
        ({"domainName": "app.example.com", "hostedZoneId": "zone-1"}, "hostedZoneId", "hosted zone id"),
        ({"domainName": "app.example.com", "certificateArn": "arn:aws:iam::1:x"}, "certificateArn", "ACM"),
        ({"sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}, "sslPolicy", "only with HTTPS"),
        (
            {"domainName": "app.example.com", "hostedZoneId": ZONE, "sslPolicy": "ELBSecurityPolicy-2016-08"},
            "sslPolicy",
            "ELBSecurityPolicy-TLS13-1-3-2021-06",
        ),
        ({"domainName": "app.example.com", "hostedZoneId": ZONE, "listenerPort": "80"}, "listenerPort", "redirect"),
        ({"domainName": "a.example.com", "hostedZoneId": ZONE, "testListenerPort": "80"}, "testListenerPort", "80"),
        ({"testListenerCidrs": '["0.0.0.0/0"]'}, "testListenerCidrs", "internet"),
        ({"testListenerCidrs": '["::/0"]'}, "testListenerCidrs", "internet"),
        ({"notificationEmails": '["ops"]'}, "notificationEmails", "not an email"),
        ({"notificationEmails": '["a@example.com", "a@example.com"]'}, "notificationEmails", "twice"),
        ({"alarm5xxPercent": "0"}, "alarm5xxPercent", "1 to 100"),
        ({"rollbackOnAlarm": "false", "alarmUnhealthyHosts": "2"}, "alarmUnhealthyHosts", "rollbackOnAlarm"),
        ({"manualApproval": "yes"}, "manualApproval", "true or false"),
    ],
)
def test_hardening_mistakes_name_the_key(values: dict[str, str], key: str, says: str) -> None:
    assert says in only_problem(values, key)


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_only_dev_may_force_destroy(stack: str) -> None:
    message = only_problem({"forceDestroy": "true"}, "forceDestroy", stack=stack)
    assert "dev" in message and stack in message
    assert parse({"forceDestroy": "true"}, stack="dev").force_destroy


# --- Secrets, region, several problems ---------------------------------------------------------


def test_gitlab_token_as_plain_text_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, "gitlabToken": "glpat-abcdefghijklmnop"}, stack="dev", region="eu-west-1")
    [message] = err.value.problems
    assert message.startswith("gitlab-fargate:gitlabToken: must be a secret")
    assert "pulumi config set --secret gitlab-fargate:gitlabToken" in message
    assert "glpat" not in str(err.value), "the error must not print the token it refuses"


@pytest.mark.parametrize("token", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_gitlab_token_is_required_with_the_rest_of_the_config(token: str | None) -> None:
    values = {k: v for k, v in BASE.items() if k != "gitlabToken"}
    if token is not None:
        values["gitlabToken"] = token
    with pytest.raises(ConfigError) as err:
        parse_config({**values, "cpu": "300"}, stack="dev", region="eu-west-1", secret_keys=SECRET_KEYS)
    keys = sorted(p.split(":")[1] for p in err.value.problems)
    assert keys == ["cpu", "gitlabToken"], "reported together with every other problem, before any resource"
    [message] = [p for p in err.value.problems if ":gitlabToken:" in p]
    assert message.startswith("gitlab-fargate:gitlabToken: required: a GitLab API token")
    assert "`pulumi config set --secret gitlab-fargate:gitlabToken <value>`" in message


PROVIDER_ARN = "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com"


def test_oidc_may_reuse_the_accounts_provider_of_the_gitlab_url() -> None:
    cfg = parse({"uploadIdentity": "oidc", "gitlabUrl": "https://gitlab.example.com", "oidcProviderArn": PROVIDER_ARN})
    assert cfg.gitlab.oidc_provider_arn == PROVIDER_ARN
    assert parse({"uploadIdentity": "oidc"}).gitlab.oidc_provider_arn is None, "unset: the stack creates one"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"oidcProviderArn": PROVIDER_ARN}, "applies only with uploadIdentity 'oidc'"),
        ({"uploadIdentity": "oidc", "oidcProviderArn": "gitlab.example.com"}, "is not an IAM OIDC provider ARN"),
        (
            {"uploadIdentity": "oidc", "gitlabUrl": "https://git.example.org", "oidcProviderArn": PROVIDER_ARN},
            "the provider is for 'gitlab.example.com', but GitLab's ID tokens come from 'git.example.org'",
        ),
    ],
    ids=["without-oidc", "not-an-arn", "other-issuer"],
)
def test_a_reused_oidc_provider_must_be_the_gitlab_urls(values: dict[str, str], says: str) -> None:
    assert says in only_problem(values, "oidcProviderArn")


def test_oidc_with_a_numeric_project_fails_in_config_validation() -> None:
    """GitLab's ID token names the project by path; the role's trust cannot pin a numeric id."""
    message = only_problem({"uploadIdentity": "oidc", "gitlabProject": "4242"}, "gitlabProject")
    assert message.startswith("'4242': uploadIdentity 'oidc' needs the project's path (group/app)")
    assert parse({"gitlabProject": "4242"}).gitlab.project == "4242", "access-key takes an id"


# Keys of other namespaces: the program's providers are explicit, so a provider's own keys (aws:profile,
# gitlab:token) configure nothing, and a misspelt namespace hides a key from the program entirely.
@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("gitlab-farget:cpu", "unknown namespace 'gitlab-farget'; did you mean 'gitlab-fargate:cpu'?"),
        ("gitlab-fargate-dev:memroy", "did you mean 'gitlab-fargate:memory'?"),
        ("aws:regon", "unknown key; did you mean 'aws:region'?"),
        ("aws:profile", "not read: the program's AWS provider is explicit and takes only aws:region"),
        ("gitlab:token", "set gitlab-fargate:gitlabUrl and gitlab-fargate:gitlabToken instead"),
        ("random:length", "unknown namespace 'random'"),
    ],
)
def test_keys_of_other_namespaces_that_nothing_reads_are_refused(key: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE, stack="dev", region="eu-west-1", secret_keys=SECRET_KEYS, other_keys=[key, "aws:region"])
    [problem] = err.value.problems
    assert problem.startswith(f"{key}: ") and says in problem, problem


def test_aws_region_and_engine_keys_are_fine() -> None:
    keys = ["aws:region", "pulumi:tags"]
    assert parse_config(BASE, stack="dev", region="eu-west-1", secret_keys=SECRET_KEYS, other_keys=keys)


def test_missing_region() -> None:
    message = only_problem({}, "aws:region", region=None)
    assert "required" in message and "pulumi config set aws:region" in message


def test_region_that_is_not_one() -> None:
    assert "'Ireland'" in only_problem({}, "aws:region", region="Ireland")


def test_gitlab_project_and_token_are_required() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({}, stack="dev", region="eu-west-1")
    assert [p.split(":")[1] for p in err.value.problems] == ["gitlabProject", "gitlabToken"]


def test_several_problems_are_reported_together() -> None:
    found = problems({"cpu": "300", "contianerPort": "80", "logRetentionDays": "10", "vpcId": VPC}, region=None)
    keys = sorted(p.split(":")[0] if p.startswith("aws:") else p.split(":")[1] for p in found)
    assert keys == ["aws", "contianerPort", "cpu", "logRetentionDays", "publicSubnetIds"], found
    rendered = str(ConfigError(found))
    assert rendered.count("\n  - ") == len(found), "one problem per line"


def test_every_key_has_a_description() -> None:
    assert all(desc.strip() for desc in KEYS.values())
    assert set(SECRET_KEYS) <= set(KEYS)


# --- Committed stack files -------------------------------------------------------------------


@pytest.mark.parametrize("stack", committed_stacks())
def test_committed_stack_parses(stack: str) -> None:
    files = load_stack_files(stack, required_secrets=tuple(SECRET_KEYS))
    prefix = f"{files.project}:"
    values = {k[len(prefix) :]: v for k, v in files.config.items() if k.startswith(prefix)}
    secret = frozenset(k[len(prefix) :] for k in files.secret_keys if k.startswith(prefix))
    cfg = parse_config(values, stack=stack, region=files.config.get("aws:region"), secret_keys=secret)
    assert cfg.stack == stack


def test_committed_stacks_exist() -> None:
    assert {"dev", "prod"} <= set(committed_stacks())


def _stack_with(tmp_path: Path, extra: dict[str, object]) -> tuple[str, dict[str, str], frozenset[str], str | None]:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"].update(extra)
    # Still the dev stack (its file may use dev-only keys such as forceDestroy), in another directory.
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))
    files = load_stack_files("dev", tmp_path, required_secrets=tuple(SECRET_KEYS))
    prefix = f"{files.project}:"
    values = {k[len(prefix) :]: v for k, v in files.config.items() if k.startswith(prefix)}
    secret = frozenset(k[len(prefix) :] for k in files.secret_keys)
    return "dev", values, secret, files.config.get("aws:region")


@pytest.mark.parametrize(
    ("extra", "key", "fragment"),
    [
        ({"gitlab-fargate:contianerPort": 8080}, "contianerPort", "'gitlab-fargate:containerPort'"),
        ({"gitlab-fargate:cpu": 256, "gitlab-fargate:memory": 4096}, "memory", "allowed with cpu 256"),
        ({"gitlab-fargate:cpu": 300}, "cpu", "allowed: 256"),
        ({"gitlab-fargate:allowedCidrs": "0.0.0.0/0"}, "allowedCidrs", "list of strings"),
        ({"gitlab-fargate:gitlabToken": "glpat-in-plain-text"}, "gitlabToken", "must be a secret"),
    ],
)
def test_a_mistake_in_a_stack_file_names_the_key(
    tmp_path: Path, extra: dict[str, object], key: str, fragment: str
) -> None:
    stack, values, secret, region = _stack_with(tmp_path, extra)
    with pytest.raises(ConfigError) as err:
        parse_config(values, stack=stack, region=region, secret_keys=secret)
    [message] = err.value.problems
    assert message.startswith(f"gitlab-fargate:{key}: ") and fragment in message, message


def test_a_secure_token_in_a_stack_file_is_accepted(tmp_path: Path) -> None:
    stack, values, secret, region = _stack_with(tmp_path, {"gitlab-fargate:gitlabToken": {"secure": "AAABAx=="}})
    cfg = parse_config(values, stack=stack, region=region, secret_keys=secret)
    assert cfg.gitlab.token is not None
