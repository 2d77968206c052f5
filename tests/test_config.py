"""components/config.py: the stack configuration on good and bad input, and what each error message says.

A user meets these messages in `pulumi preview`; each must name the key as they typed it in the stack file
(`gitlab-fargate:<key>`), the bad value, and what is allowed, every problem of a run at once, and in words:
no pydantic jargon.
"""

from __future__ import annotations

import dataclasses
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from components.base import PROJECT, StackContext
from components.config import (
    KEYS,
    SECRET_KEYS,
    SECTIONS,
    StackConfig,
    load_stack_config,
    parse_config,
)
from components.config_types import ConfigError
from components.deployment_engine import DeploymentConfigName
from components.ecs_service import FARGATE_SIZES
from components.source_bucket import check_object_key
from offline.engine import run_program
from offline.stack_files import ROOT, StackFiles, committed_stacks, load_stack_files
from support.stacks import REGION, REQUIRED, STACKS, TOKEN

SECRET = frozenset({"gitlabToken"})


def parse(values: dict[str, str] | None = None, *, stack: str = "dev", region: str | None = REGION) -> StackConfig:
    return parse_config({**REQUIRED, **(values or {})}, stack=stack, region=region, secret_keys=SECRET)


def problems(values: dict[str, str], *, stack: str = "dev", region: str | None = REGION) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(values, stack=stack, region=region)
    return err.value.problems


def only_problem(values: dict[str, str], key: str, *, stack: str = "dev", region: str | None = REGION) -> str:
    """The single problem reported, which must be about ``key``; returns the message after the key."""
    found = problems(values, stack=stack, region=region)
    assert len(found) == 1, found
    prefix = f"{PROJECT}:{key}: " if ":" not in key else f"{key}: "
    assert found[0].startswith(prefix), found
    return found[0][len(prefix) :]


def keys_of(found: list[str]) -> list[str]:
    """The bare keys problems are about (``aws`` for ``aws:region``)."""
    return [p.split(":")[1] if p.startswith(f"{PROJECT}:") else p.split(":")[0] for p in found]


# --- Defaults and values ----------------------------------------------------------------------------------------


def test_defaults_give_one_small_public_task_in_a_created_vpc() -> None:
    cfg = parse()
    assert cfg.name_prefix == "sample-app-dev"
    net = cfg.network
    assert net.creates_vpc
    assert (net.vpc_cidr, net.availability_zones, net.task_subnets) == ("10.0.0.0/16", 2, "public")
    c = cfg.container
    assert (c.cpu, c.memory, c.container_port, c.desired_count, c.health_check_path) == (256, 512, 80, 1, "/")
    assert cfg.container_name == "sample-app", "the container is named after the app unless containerName says so"
    assert c.initial_image.startswith("public.ecr.aws/"), "the first image must not come from rate-limited Docker Hub"
    lb = cfg.load_balancer
    assert (lb.production_port, lb.test_listener_port) == (80, 8080)
    assert lb.allowed_cidrs == ("0.0.0.0/0",)
    assert lb.test_listener_cidrs == (), "the test listener is closed to the outside unless opened"
    assert cfg.settings.log_retention_days == 14
    assert cfg.deploy.deployment_config == "CodeDeployDefault.ECSAllAtOnce"
    assert cfg.upload.upload_identity == "access-key" and cfg.upload.oidc_provider_arn is None
    assert cfg.gitlab.api_url == "https://gitlab.com/api/v4/"


def test_the_config_is_frozen() -> None:
    cfg = parse()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.stack = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        cfg.container.cpu = 4096  # type: ignore[misc]
    with pytest.raises(ValidationError):
        cfg.network.vpc_id = "vpc-0123456789abcdef0"  # type: ignore[misc]
    assert isinstance(cfg.load_balancer.allowed_cidrs, tuple), "lists are tuples so they cannot change in place"


@pytest.mark.parametrize("attribute", sorted(SECTIONS))
def test_every_section_model_is_frozen_and_forbids_extra_fields(attribute: str) -> None:
    model = SECTIONS[attribute]
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"
    with pytest.raises(ValidationError) as err:
        model.model_validate({"notAKeyOfAnySection": "1"})
    assert "extra_forbidden" in [e["type"] for e in err.value.errors()]
    section = getattr(parse(), attribute)
    assert isinstance(section, model)
    name = next(iter(model.model_fields))
    with pytest.raises(ValidationError):
        setattr(section, name, getattr(section, name))


def test_every_valid_fargate_size_is_accepted() -> None:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
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
    assert cfg.gitlab.commit_gitlab_ci is True
    assert cfg.load_balancer.allowed_cidrs == ("203.0.113.0/24", "2001:db8::/32")
    assert list(cfg.container.environment.items()) == [("A", "1"), ("B", "2")]
    assert dict(cfg.settings.tags) == {"team": "web"}
    assert cfg.deploy.deployment_config == "CodeDeployDefault.ECSCanary10Percent5Minutes", "short names completed"
    assert cfg.gitlab.gitlab_url == "https://gitlab.example.com", "a trailing slash is dropped"


def test_a_secret_token_is_kept_and_never_shown_in_repr() -> None:
    cfg = parse({"gitlabToken": "glpat-abcdefghijklmnop"})
    assert cfg.gitlab.gitlab_token.get_secret_value() == "glpat-abcdefghijklmnop"
    assert "glpat" not in repr(cfg) and "glpat" not in str(cfg.gitlab)


# --- StackConfig's properties ---------------------------------------------------------------------------------


def test_the_name_prefix_is_app_name_and_stack() -> None:
    assert parse({"appName": "shop"}, stack="prod").name_prefix == "shop-prod"


def test_the_stack_name_is_lower_case_in_names() -> None:
    cfg = parse({"appName": "shop"}, stack="Dev")
    assert cfg.stack == "dev" and cfg.name_prefix == "shop-dev"


def test_the_context_is_what_every_component_shares() -> None:
    cfg = parse({"appName": "shop", "logRetentionDays": "30", "forceDestroy": "true"})
    assert cfg.context == StackContext(name_prefix="shop-dev", region=REGION, log_retention_days=30, force_destroy=True)
    assert not cfg.context.protect
    assert parse(stack="prod").context.protect, "outside dev, stateful resources are protected"


def test_the_container_is_named_after_the_app_unless_container_name_is_set() -> None:
    assert parse({"appName": "shop"}).container_name == "shop"
    assert parse({"appName": "shop", "containerName": "web"}).container_name == "web"


# --- Keys -----------------------------------------------------------------------------------------------------


def test_every_key_belongs_to_exactly_one_section() -> None:
    declared = [(section, name) for section, model in SECTIONS.items() for name in model.model_fields]
    assert sorted(KEYS.values()) == sorted(declared), "two sections declare the same stack-file key"


def test_every_key_has_a_description() -> None:
    for key, (section, name) in KEYS.items():
        description = SECTIONS[section].model_fields[name].description
        assert description and description.strip(), key


def test_every_section_is_a_field_of_the_stack_config() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(StackConfig)}
    hints = typing.get_type_hints(StackConfig)
    for attribute, model in SECTIONS.items():
        assert attribute in fields and hints[attribute] is model


def _is_secret_type(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret_type(a) for a in typing.get_args(annotation))


def test_secret_keys_are_exactly_the_keys_held_as_secrets() -> None:
    secret_typed = {
        k for k, (section, name) in KEYS.items() if _is_secret_type(SECTIONS[section].model_fields[name].annotation)
    }
    assert secret_typed == SECRET_KEYS
    assert "gitlabToken" in SECRET_KEYS


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_every_secret_key_is_refused_as_plain_text_without_showing_it(key: str) -> None:
    values = {**REQUIRED, key: "s3cr3t-value"}
    with pytest.raises(ConfigError) as err:
        parse_config(values, stack="dev", region=REGION, secret_keys=SECRET_KEYS - {key})
    [message] = err.value.problems
    assert message.startswith(f"{PROJECT}:{key}: must be a secret")
    assert f"pulumi config set --secret {PROJECT}:{key}" in message
    assert "s3cr3t" not in str(err.value), "the error must not print the secret it refuses"


def test_unknown_key_suggests_the_nearest() -> None:
    message = only_problem({"contianerPort": "80"}, "contianerPort")
    assert "unknown key" in message and f"'{PROJECT}:containerPort'" in message


def test_unknown_key_without_anything_near() -> None:
    message = only_problem({"zzzzzzzz": "1"}, "zzzzzzzz")
    assert "unknown key" in message and "did you mean" not in message


# --- What each key allows, derived from the models ------------------------------------------------------------


def _prop(key: str) -> dict[str, Any]:
    """A key's JSON Schema as its model declares it, with ``| None`` unwrapped."""
    section, _ = KEYS[key]
    prop: dict[str, Any] = SECTIONS[section].model_json_schema(by_alias=True)["properties"][key]
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    return {**variants[0], **prop} if len(variants) == 1 else prop


ENUM_KEYS = sorted(k for k in KEYS if "enum" in _prop(k))
RANGE_KEYS = sorted(k for k in KEYS if "minimum" in _prop(k) and "maximum" in _prop(k))
PATTERN_KEYS = sorted(k for k in KEYS if "pattern" in _prop(k) and "examples" in _prop(k))


def test_the_derived_key_groups_are_not_empty() -> None:
    assert {"cpu", "taskSubnets", "logRetentionDays"} <= set(ENUM_KEYS)
    assert {"containerPort", "availabilityZones", "alarm5xxPercent"} <= set(RANGE_KEYS)
    assert {"appName", "vpcId", "gitlabUrl"} <= set(PATTERN_KEYS)


@pytest.mark.parametrize("key", ENUM_KEYS)
def test_a_value_outside_a_choice_names_the_value_and_every_choice(key: str) -> None:
    allowed = _prop(key)["enum"]
    bad = str(max(allowed) + 1) if isinstance(allowed[0], int) else "NoSuchChoice"
    message = only_problem({key: bad}, key)
    assert bad in message and "allowed:" in message
    assert all(str(choice) in message for choice in allowed), message


@pytest.mark.parametrize("key", RANGE_KEYS)
def test_a_number_out_of_range_names_the_value_and_the_range(key: str) -> None:
    low, high = _prop(key)["minimum"], _prop(key)["maximum"]
    for bad in (low - 1, high + 1):
        message = only_problem({key: str(bad)}, key)
        assert str(bad) in message and f"{low} to {high}" in message, message


@pytest.mark.parametrize("key", PATTERN_KEYS)
def test_a_malformed_value_names_the_value_and_an_example(key: str) -> None:
    prop = _prop(key)
    example = prop["examples"][0]
    message = only_problem({key: "not valid!"}, key)
    assert "'not valid!'" in message and example in message, message


# --- No pydantic jargon, whatever the value -------------------------------------------------------------------

JARGON = (
    "validation error",
    "input should",
    "value error",
    "type=",
    "for further information",
    "errors.pydantic.dev",
    "input_value",
    "should match pattern",
    "string should",
    "should be a valid",
    "assertion failed",
)
BAD_VALUES = (
    "",
    " ",
    "[1]",
    '["a", "a"]',
    '{"a": 1}',
    '{"aws:x": "y"}',
    "not valid!",
    "-1",
    "99999999999",
    "1.5",
    "yes",
    "null",
    "🙂",
    "a" * 300,
)


@pytest.mark.parametrize("key", sorted(KEYS))
def test_no_message_speaks_pydantic_whatever_the_value(key: str) -> None:
    for value in BAD_VALUES:
        try:
            parse_config({**REQUIRED, key: value}, stack="dev", region=REGION, secret_keys=SECRET)
        except ConfigError as err:
            for problem in err.problems:
                assert problem.startswith(f"{PROJECT}:"), problem
                lowered = problem.lower()
                assert not [j for j in JARGON if j in lowered], f"{key}={value!r}: {problem}"


# --- Fargate size ---------------------------------------------------------------------------------------------


def test_memory_not_allowed_with_the_cpu_lists_the_allowed_memory() -> None:
    message = only_problem({"cpu": "256", "memory": "4096"}, "memory")
    assert "4096" in message and "cpu 256" in message
    assert "512, 1024, 2048" in message


def test_cpu_that_is_no_fargate_size_lists_the_sizes() -> None:
    message = only_problem({"cpu": "300"}, "cpu")
    assert "300" in message
    assert ", ".join(str(c) for c in FARGATE_SIZES) in message


def test_a_wrong_cpu_does_not_also_blame_the_memory() -> None:
    assert keys_of(problems({"cpu": "300", "memory": "4096"})) == ["cpu"]


def test_cpu_that_is_not_a_number_says_what_is_allowed() -> None:
    message = only_problem({"cpu": "abc"}, "cpu")
    assert "'abc'" in message and "256" in message and "16384" in message, message


def test_memory_that_is_not_a_number_is_the_only_problem() -> None:
    message = only_problem({"cpu": "1024", "memory": "2GB"}, "memory")
    assert "'2GB'" in message and "integer" in message


# --- Ports ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["containerPort", "listenerPort", "testListenerPort"])
@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_ports_out_of_range(key: str, port: str) -> None:
    message = only_problem({key: port}, key)
    assert port in message and "1 to 65535" in message


def test_equal_listener_ports() -> None:
    message = only_problem({"listenerPort": "8080", "testListenerPort": "8080"}, "testListenerPort")
    assert "8080" in message and "listenerPort" in message


def test_a_bad_listener_port_does_not_also_report_a_clash() -> None:
    assert keys_of(problems({"listenerPort": "70000", "testListenerPort": "80"})) == ["listenerPort"]


# --- CIDRs ----------------------------------------------------------------------------------------------------


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
    lb = parse({"allowedCidrs": f'["{cidr}"]', "testListenerCidrs": f'["{cidr}"]'}).load_balancer
    assert lb.allowed_cidrs == lb.test_listener_cidrs == (cidr,)


def test_allowed_cidrs_cannot_be_empty() -> None:
    assert "at least one CIDR" in only_problem({"allowedCidrs": "[]"}, "allowedCidrs")


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0.1/16", "10.0.0.0/8", "10.0.0.0/25", "fd00::/56", "x"])
def test_malformed_or_unusable_vpc_cidr(cidr: str) -> None:
    message = only_problem({"vpcCidr": cidr}, "vpcCidr")
    assert repr(cidr) in message
    assert "/16" in message, "the message says which block sizes are allowed (or what a CIDR looks like)"


# --- Names ----------------------------------------------------------------------------------------------------


def test_app_name_making_the_target_group_name_too_long() -> None:
    # Target-group names: at most 32 characters.
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html
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
    assert "32" in only_problem({"appName": app + "b"}, "appName")


@pytest.mark.parametrize("app", ["Sample", "1app", "app-", "my_app", "app name"])
def test_app_name_characters(app: str) -> None:
    message = only_problem({"appName": app}, "appName")
    assert repr(app) in message and "lower-case" in message


@pytest.mark.parametrize("name", ["my app", "web!", "a" * 256])
def test_container_name_characters(name: str) -> None:
    # Container names: up to 255 letters, numbers, underscores and hyphens.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#container_definition_name
    message = only_problem({"containerName": name}, "containerName")
    assert repr(name) in message and "255" in message and "should match pattern" not in message, message


# --- Types ----------------------------------------------------------------------------------------------------


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


# --- Network combinations -------------------------------------------------------------------------------------

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


@pytest.mark.parametrize(
    ("key", "value"), [("vpcCidr", "10.1.0.0/16"), ("availabilityZones", "3"), ("natGateways", "per-az")]
)
def test_created_vpc_settings_with_an_existing_vpc(key: str, value: str) -> None:
    message = only_problem({"vpcId": VPC, "publicSubnetIds": SUBNETS, key: value}, key)
    assert "created VPC" in message


def test_nat_gateways_only_with_private_tasks() -> None:
    assert "taskSubnets 'private'" in only_problem({"natGateways": "per-az"}, "natGateways")
    assert parse({"natGateways": "per-az", "taskSubnets": "private"}).network.nat_gateways == "per-az"


@pytest.mark.parametrize(
    ("key", "bad", "allowed"),
    [("taskSubnets", "isolated", "public, private"), ("natGateways", "two", "single, per-az")],
)
def test_choices_list_what_is_allowed(key: str, bad: str, allowed: str) -> None:
    values = {key: bad, "taskSubnets": "private"} if key == "natGateways" else {key: bad}
    message = only_problem(values, key)
    assert repr(bad) in message and f"allowed: {allowed}" in message


@pytest.mark.parametrize("count", ["1", "5"])
def test_availability_zones_range(count: str) -> None:
    assert "2 to 4" in only_problem({"availabilityZones": count}, "availabilityZones")


# --- Other single-key rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("days", ["0", "10", "9999"])
def test_log_retention_not_allowed(days: str) -> None:
    # https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
    message = only_problem({"logRetentionDays": days}, "logRetentionDays")
    assert days in message and "1, 3, 5, 7, 14" in message


def test_log_retention_allowed() -> None:
    assert parse({"logRetentionDays": "90"}).settings.log_retention_days == 90


def test_deployment_config_not_allowed_lists_the_choices() -> None:
    # The predefined ECS deployment configurations:
    # https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html#deployment-configurations-predefined-ecs
    message = only_problem({"deploymentConfig": "ECSBlueGreenFast"}, "deploymentConfig")
    assert "ECSBlueGreenFast" in message
    assert all(name in message for name in typing.get_args(DeploymentConfigName))


@pytest.mark.parametrize("path", ["health", "/a b"])
def test_health_check_path(path: str) -> None:
    assert "starting with '/'" in only_problem({"healthCheckPath": path}, "healthCheckPath")


@pytest.mark.parametrize(("name", "why"), [("1X", "not a valid"), ("AWS_REGION", "reserved"), ("ECS_X", "reserved")])
def test_environment_names(name: str, why: str) -> None:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/taskdef-envfiles.html (AWS_ and ECS_ reserved)
    message = only_problem({"environment": f'{{"{name}": "v"}}'}, "environment")
    assert repr(name) in message and why in message


def test_tag_keys() -> None:
    # https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html (the aws: prefix is reserved)
    assert "'aws:owner'" in only_problem({"tags": '{"aws:owner": "me"}'}, "tags")
    assert "256" in only_problem({"tags": '{"team": "' + "x" * 257 + '"}'}, "tags")


@pytest.mark.parametrize(
    "key",
    ["/app.zip", "app.tar", "my app.zip", "app+1.zip", "docs//app.zip", "ünï.zip", "a%20b.zip", "a" * 1021 + ".zip"],
)
def test_source_object_key_that_an_s3_event_could_spell_differently(key: str) -> None:
    # S3 event notifications URL-encode the object key:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
    assert "reads the same in every S3 event" in only_problem({"sourceObjectKey": key}, "sourceObjectKey")


def test_every_source_object_key_the_config_accepts_the_source_bucket_accepts_too() -> None:
    for key in ("docker-image/docker_image.zip", "a.zip", "builds/v1.2/app_2.zip"):
        source = parse({"sourceObjectKey": key}).source
        assert check_object_key(source.source_object_key) == key


# --- Production hardening: HTTPS, alarms, approval, notifications, protection -----------------------------------

ZONE = "Z0123456789ABCDEFGHIJ"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0b3e1c2d-4f5a-6b7c-8d9e-0f1a2b3c4d5e"


def test_http_by_default_with_protection_alarms_and_access_logs_on() -> None:
    cfg = parse()
    lb = cfg.load_balancer
    assert not lb.https and lb.production_port == 80
    assert lb.alb_deletion_protection and lb.alb_access_logs
    assert cfg.alarms.rollback_on_alarm
    assert (cfg.alarms.alarm_5xx_percent, cfg.alarms.alarm_unhealthy_hosts) == (5, 1)
    assert not cfg.settings.force_destroy, "stateful resources are protected unless a dev stack opts out"
    assert not cfg.deploy.manual_approval and cfg.notifications.notification_emails == ()


def test_a_hosted_zone_creates_a_certificate_and_moves_the_site_to_443() -> None:
    lb = parse({"domainName": "app.example.com", "hostedZoneId": ZONE}).load_balancer
    assert lb.https and lb.creates_certificate
    assert lb.production_port == 443
    # TLS 1.3 policies: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html
    assert lb.ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"


def test_an_existing_certificate_needs_no_zone() -> None:
    lb = parse({"domainName": "app.example.com", "certificateArn": CERT}).load_balancer
    assert lb.https and not lb.creates_certificate and lb.certificate_arn == CERT


def test_a_certificate_of_another_region_is_refused() -> None:
    # An ALB uses an ACM certificate of its own region:
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/https-listener-certificates.html
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
        ({"rollbackOnAlarm": "false", "alarm5xxPercent": "2"}, "alarm5xxPercent", "rollbackOnAlarm"),
        ({"manualApproval": "yes"}, "manualApproval", "true or false"),
    ],
)
def test_hardening_mistakes_name_the_key(values: dict[str, str], key: str, says: str) -> None:
    assert says in only_problem(values, key)


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_only_dev_may_force_destroy(stack: str) -> None:
    message = only_problem({"forceDestroy": "true"}, "forceDestroy", stack=stack)
    assert "dev" in message and stack in message
    assert parse({"forceDestroy": "true"}, stack="dev").settings.force_destroy


# --- Secrets, region, several problems ------------------------------------------------------------------------


def test_gitlab_token_as_plain_text_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**REQUIRED, "gitlabToken": "glpat-abcdefghijklmnop"}, stack="dev", region=REGION)
    [message] = err.value.problems
    assert message.startswith(f"{PROJECT}:gitlabToken: must be a secret")
    assert f"pulumi config set --secret {PROJECT}:gitlabToken" in message
    assert "glpat" not in str(err.value), "the error must not print the token it refuses"


@pytest.mark.parametrize("token", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_gitlab_token_is_required_with_the_rest_of_the_config(token: str | None) -> None:
    values = {k: v for k, v in REQUIRED.items() if k != "gitlabToken"}
    if token is not None:
        values["gitlabToken"] = token
    with pytest.raises(ConfigError) as err:
        parse_config({**values, "cpu": "300"}, stack="dev", region=REGION, secret_keys=SECRET)
    assert sorted(keys_of(err.value.problems)) == ["cpu", "gitlabToken"], "reported with every other problem"
    [message] = [p for p in err.value.problems if p.startswith(f"{PROJECT}:gitlabToken:")]
    assert "GitLab API token" in message, message
    assert f"`pulumi config set --secret {PROJECT}:gitlabToken <value>`" in message, message


PROVIDER_ARN = "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com"


def test_oidc_may_reuse_the_accounts_provider_of_the_gitlab_url() -> None:
    cfg = parse({"uploadIdentity": "oidc", "gitlabUrl": "https://gitlab.example.com", "oidcProviderArn": PROVIDER_ARN})
    assert cfg.upload.oidc_provider_arn == PROVIDER_ARN and cfg.upload.oidc_issuer == "gitlab.example.com"
    assert parse({"uploadIdentity": "oidc"}).upload.oidc_provider_arn is None, "unset: the stack creates one"


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
    """GitLab's ID token names the project by path; the role's trust cannot pin a numeric id.
    https://docs.gitlab.com/ci/secrets/id_token_authentication/#token-payload"""
    message = only_problem({"uploadIdentity": "oidc", "gitlabProject": "4242"}, "gitlabProject")
    assert message.startswith("'4242': uploadIdentity 'oidc' needs the project's path (group/app)")
    assert parse({"gitlabProject": "4242"}).gitlab.gitlab_project == "4242", "access-key takes an id"


def test_rules_between_sections_wait_until_both_sections_are_valid() -> None:
    # The GitLab section is invalid (plain-text token): the oidc rule on gitlabProject is not checked, so the one
    # problem is the one to fix first.
    with pytest.raises(ConfigError) as err:
        parse_config({**REQUIRED, "uploadIdentity": "oidc", "gitlabProject": "4242"}, stack="dev", region=REGION)
    assert keys_of(err.value.problems) == ["gitlabToken"]
    # The upload section is invalid: the same.
    found = problems({"uploadIdentity": "oidc", "gitlabProject": "4242", "oidcProviderArn": "nope"})
    assert keys_of(found) == ["oidcProviderArn"]


# Keys of other namespaces: the program's providers are explicit, so a provider's own keys (aws:profile,
# gitlab:token) configure nothing, and a misspelt namespace hides a key from the program entirely.
# https://www.pulumi.com/docs/iac/concepts/resources/providers/#explicit-provider-configuration
@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("gitlab-farget:cpu", f"unknown namespace 'gitlab-farget'; did you mean '{PROJECT}:cpu'?"),
        ("gitlab-fargate-dev:memroy", f"did you mean '{PROJECT}:memory'?"),
        ("aws:regon", "unknown key; did you mean 'aws:region'?"),
        ("aws:profile", "not read: the program's AWS provider is explicit and takes only aws:region"),
        ("gitlab:token", f"set {PROJECT}:gitlabUrl and {PROJECT}:gitlabToken instead"),
        ("random:length", "unknown namespace 'random'"),
    ],
)
def test_keys_of_other_namespaces_that_nothing_reads_are_refused(key: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(REQUIRED, stack="dev", region=REGION, secret_keys=SECRET, other_keys=[key, "aws:region"])
    [problem] = err.value.problems
    assert problem.startswith(f"{key}: ") and says in problem, problem


def test_aws_region_and_engine_keys_are_fine() -> None:
    keys = ["aws:region", "pulumi:tags", "pulumi:disable-default-providers"]
    assert parse_config(REQUIRED, stack="dev", region=REGION, secret_keys=SECRET, other_keys=keys)


def test_missing_region() -> None:
    message = only_problem({}, "aws:region", region=None)
    assert "required" in message and "pulumi config set aws:region" in message


def test_region_that_is_not_one() -> None:
    assert "'Ireland'" in only_problem({}, "aws:region", region="Ireland")


def test_stack_name_that_cannot_be_part_of_a_name() -> None:
    [problem] = problems({}, stack="my_stack")
    assert problem.startswith("stack name 'my_stack': ") and "lower-case letters, digits and hyphens" in problem


def test_gitlab_project_and_token_are_required() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({}, stack="dev", region=REGION)
    assert keys_of(err.value.problems) == ["gitlabProject", "gitlabToken"]
    assert "required: the application project's path (group/app) or numeric id" in err.value.problems[0]


def test_several_problems_are_reported_together() -> None:
    found = problems({"cpu": "300", "contianerPort": "80", "logRetentionDays": "10", "vpcId": VPC}, region=None)
    assert sorted(keys_of(found)) == ["aws", "contianerPort", "cpu", "logRetentionDays", "publicSubnetIds"], found
    rendered = str(ConfigError(found))
    assert rendered.count("\n  - ") == len(found), "one problem per line"


def test_every_section_is_checked_even_when_another_fails() -> None:
    bad = {
        "appName": "Bad",
        "vpcCidr": "x",
        "cpu": "300",
        "testListenerPort": "0",
        "sourceObjectKey": "a b",
        "buildTimeoutMinutes": "1",
        "deploymentConfig": "x",
        "alarm5xxPercent": "0",
        "notificationEmails": '["ops"]',
        "gitlabUrl": "http://x",
        "uploadIdentity": "x",
        "s3AccessLogs": "x",
    }
    found = problems(bad)
    assert sorted(keys_of(found)) == sorted(bad)
    assert {KEYS[k][0] for k in bad} == set(SECTIONS), "one bad key in every section"


# --- The running program's config: load_stack_config through pulumi.Config --------------------------------------


def load(files: StackFiles) -> StackConfig:
    """Runs a program that only calls ``load_stack_config`` on ``files``; returns what it loaded."""
    found: list[StackConfig] = []
    run_program(files, program=lambda: found.append(load_stack_config()))
    [cfg] = found
    return cfg


def loaded(
    config: dict[str, str],
    *,
    secret: tuple[str, ...] = ("gitlabToken",),
    stack: str = "dev",
    region: str | None = REGION,
) -> StackConfig:
    """What ``load_stack_config`` makes of a stack's config (bare keys are the project's), as in ``pulumi up``."""
    full = {k if ":" in k else f"{PROJECT}:{k}": v for k, v in config.items()}
    if region is not None:
        full["aws:region"] = region
    return load(StackFiles(PROJECT, stack, full, sorted(f"{PROJECT}:{k}" for k in secret)))


def test_the_program_reads_its_config_through_pulumi_config() -> None:
    cfg = loaded({**REQUIRED, "cpu": "512", "memory": "1024", "tags": '{"team": "web"}'}, stack="prod")
    assert (cfg.stack, cfg.region) == ("prod", REGION), "the stack's name and aws:region"
    assert (cfg.container.cpu, cfg.container.memory) == (512, 1024)
    assert dict(cfg.settings.tags) == {"team": "web"}
    assert cfg.gitlab.gitlab_token.get_secret_value() == TOKEN


def test_the_program_refuses_a_token_the_stack_holds_in_plain_text() -> None:
    with pytest.raises(ConfigError) as err:
        loaded(REQUIRED, secret=())
    [problem] = err.value.problems
    assert problem.startswith(f"{PROJECT}:gitlabToken: must be a secret")


def test_the_program_refuses_every_key_nothing_reads() -> None:
    with pytest.raises(ConfigError) as err:
        loaded({**REQUIRED, "cpuu": "512", "aws:profile": "dev", "gitlab:token": "t"})
    assert [p.split(": ")[0] for p in err.value.problems] == ["aws:profile", "gitlab:token", f"{PROJECT}:cpuu"]
    assert f"did you mean '{PROJECT}:cpu'?" in err.value.problems[2]


def test_the_program_needs_a_region() -> None:
    with pytest.raises(ConfigError) as err:
        loaded(REQUIRED, region=None)
    assert keys_of(err.value.problems) == ["aws"]


# --- Committed stack files ------------------------------------------------------------------------------------


def test_committed_stacks_exist() -> None:
    assert {"dev", "prod"} <= set(committed_stacks())
    assert committed_stacks() == STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_parses(stack: str) -> None:
    cfg = load(load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS))))
    assert cfg.stack == stack


def _dev_stack_with(tmp_path: Path, extra: dict[str, object]) -> StackFiles:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"].update(extra)
    # Still the dev stack (its file may use dev-only keys such as forceDestroy), in another directory.
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))
    return load_stack_files("dev", tmp_path, required_secrets=tuple(sorted(SECRET_KEYS)))


@pytest.mark.parametrize(
    ("extra", "key", "fragment"),
    [
        ({f"{PROJECT}:contianerPort": 8080}, "contianerPort", f"'{PROJECT}:containerPort'"),
        ({f"{PROJECT}:cpu": 256, f"{PROJECT}:memory": 4096}, "memory", "allowed with cpu 256"),
        ({f"{PROJECT}:cpu": 300}, "cpu", "allowed: 256"),
        ({f"{PROJECT}:allowedCidrs": "0.0.0.0/0"}, "allowedCidrs", "list of strings"),
        ({f"{PROJECT}:gitlabToken": "glpat-in-plain-text"}, "gitlabToken", "must be a secret"),
    ],
)
def test_a_mistake_in_a_stack_file_names_the_key(
    tmp_path: Path, extra: dict[str, object], key: str, fragment: str
) -> None:
    files = _dev_stack_with(tmp_path, extra)
    with pytest.raises(ConfigError) as err:
        load(files)
    [message] = err.value.problems
    assert message.startswith(f"{PROJECT}:{key}: ") and fragment in message, message


def test_a_secure_token_in_a_stack_file_is_accepted(tmp_path: Path) -> None:
    cfg = load(_dev_stack_with(tmp_path, {f"{PROJECT}:gitlabToken": {"secure": "AAABAx=="}}))
    assert cfg.gitlab.gitlab_token.get_secret_value()


def test_yaml_values_of_a_stack_file_reach_the_model(tmp_path: Path) -> None:
    files = _dev_stack_with(
        tmp_path,
        {f"{PROJECT}:desiredCount": 3, f"{PROJECT}:manualApproval": True, f"{PROJECT}:environment": {"B": "2"}},
    )
    cfg = load(files)
    assert cfg.container.desired_count == 3 and cfg.deploy.manual_approval
    assert dict(cfg.container.environment) == {"B": "2"}
