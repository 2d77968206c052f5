"""The runtime options of issue 13, on every committed stack: ``fargateSpot``, ``cpuArchitecture``, ``buildImage``
and ``notificationTopic``.

Each committed stack (``support.stacks.STACKS``) runs with every combination of Fargate Spot on or off, X86_64 or
ARM64 tasks, and either deployment engine: where the service runs its tasks (and whether ECS will take that), the
task definition and every CodeBuild environment, the ``taskdef.json``, ``appspec.yaml`` and buildspec the pipeline
deploys with, and the policy pack. Then the config's refusals, the notification topic that exists only when
someone reads it, the estimate's Spot and Graviton prices, and the AWS sentence that makes Spot with ARM64 legal.

Expectations come from the overrides under test, the stack files, the AWS documentation (each rule cites its
page), botocore's API models and ``offline/prices.yaml``, never from what the program registers for the value
under test.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import typing
from collections.abc import Mapping
from typing import Any, NamedTuple

import botocore.session
import pytest
import yaml

from components import contracts
from components.base import PROJECT
from components.build_stage import BuildComputeType, embedded_files
from components.config import SECRET_KEYS
from components.config_types import ConfigError
from components.ecs_service import PLATFORM_VERSION
from offline.engine import ProgramRun, Registration
from offline.pricing import CostEstimate, CostLine, estimate, load_prices, task_split
from offline.stack_files import load_stack_files
from policy import resource_types as rt
from policy import rules
from support import pack
from support.aws import assert_valid_request
from support.ecs import create_service_request, strategy_of_props
from support.stacks import (
    STACKS,
    committed_run,
    component,
    descendants,
    stack_config,
    stack_run,
    variant_plan,
    variant_run,
)

# --- What the documentation says ---------------------------------------------------------------------------------

ARCHITECTURES = ("X86_64", "ARM64")
ENGINES = ("codedeploy", "ecs")
# The documented defaults of the keys (README, "Configuration"; "Runtime options").
DEFAULT_ARCHITECTURE = "X86_64"
# The Fargate capacity providers: every account has them; a cluster uses them once associated.
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html
FARGATE, FARGATE_SPOT = "FARGATE", "FARGATE_SPOT"
# CodeBuild's on-demand environment types: x86_64 builds on LINUX_CONTAINER, aarch64 builds on ARM_CONTAINER.
# https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-compute-types.html
ENVIRONMENT_TYPE = {"X86_64": "LINUX_CONTAINER", "ARM64": "ARM_CONTAINER"}
# The curated image of each CPU the README names as the default: Ubuntu standard:7.0 (x86_64) and Amazon Linux 2023
# aarch64 standard:3.0. https://docs.aws.amazon.com/codebuild/latest/userguide/ec2-compute-images.html
CURATED_IMAGE = {"X86_64": "aws/codebuild/standard:7.0", "ARM64": "aws/codebuild/amazonlinux-aarch64-standard:3.0"}
# Curated images of the same CPU that are not the default (a buildImage that matches is accepted).
OTHER_CURATED_IMAGE = {
    "X86_64": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
    "ARM64": "aws/codebuild/amazonlinux2-aarch64-standard:3.0",
}
# An image outside CodeBuild's curated ones: its CPU is the operator's business.
PRIVATE_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/builder:1"
# Docker's --platform names of the two CPUs (OCI image index, platform.architecture, GOARCH values).
# https://github.com/opencontainers/image-spec/blob/main/image-index.md
DOCKER_PLATFORM = {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}
# The platform version LATEST stands for on Linux Fargate.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/platform-linux-fargate.html
LATEST_LINUX_PLATFORM = "1.4.0"
# CodeDeploy's AppSpec for ECS names a capacity provider strategy item by these keys.
# https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-structure-resources.html
APPSPEC_STRATEGY_KEYS = {"Base", "CapacityProvider", "Weight"}


class Combo(NamedTuple):
    stack: str
    spot: bool
    arch: str
    engine: str

    @property
    def overrides(self) -> dict[str, str]:
        return {"fargateSpot": str(self.spot).lower(), "cpuArchitecture": self.arch, "deploymentEngine": self.engine}


COMBOS = [
    pytest.param(Combo(stack, spot, arch, engine), id=f"{stack}-{'spot' if spot else 'on-demand'}-{arch}-{engine}")
    for stack in STACKS
    for spot in (True, False)
    for arch in ARCHITECTURES
    for engine in ENGINES
]


# --- Runs, made once per module ------------------------------------------------------------------------------------


def combo_run(combo: Combo) -> ProgramRun:
    return variant_run(combo.stack, combo.overrides)


# --- What the stack file says --------------------------------------------------------------------------------------


def stack_setting(stack: str, key: str) -> Any:
    files = load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS)))
    return files.config.get(f"{PROJECT}:{key}")


def stack_region(stack: str) -> str:
    files = load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS)))
    return str(files.config["aws:region"])


def stack_architecture(stack: str) -> str:
    return str(stack_setting(stack, "cpuArchitecture") or DEFAULT_ARCHITECTURE)


def stack_on_spot(stack: str) -> bool:
    value = stack_setting(stack, "fargateSpot")
    return value is True or str(value).lower() == "true"


def stack_emails(stack: str) -> list[str]:
    value = stack_setting(stack, "notificationEmails") or []
    return list(json.loads(value) if isinstance(value, str) else value)


def other_arch(arch: str) -> str:
    return next(a for a in ARCHITECTURES if a != arch)


# --- Reading a run -------------------------------------------------------------------------------------------------


def service_of(found: ProgramRun) -> Registration:
    return found.one(rt.ECS_SERVICE)


def cluster_of(found: ProgramRun, service: Registration) -> Registration:
    [cluster] = [c for c in found.of_type(rt.ECS_CLUSTER) if c.state["arn"] == service.props["cluster"]]
    return cluster


def associations_of(found: ProgramRun, cluster: Registration) -> list[Registration]:
    """The ClusterCapacityProviders that name ``cluster`` (the provider takes the cluster's name)."""
    names = {cluster.state["name"], cluster.props["name"]}
    return [a for a in found.of_type(rt.ECS_CLUSTER_CAPACITY_PROVIDERS) if a.props["clusterName"] in names]


def strategy_of(service: Registration) -> list[tuple[str, int, int]]:
    """The service's capacity provider strategy as (provider, base, weight) items."""
    return strategy_of_props(service.props)


def pipeline_actions(found: ProgramRun) -> list[dict[str, Any]]:
    return [a for s in found.one(rt.CODEPIPELINE_PIPELINE).props["stages"] for a in s["actions"]]


def build_project(found: ProgramRun) -> Registration:
    """The project the pipeline's Build action runs: the CodeBuild action whose output is the build artifact."""
    [name] = [
        a["configuration"]["ProjectName"]
        for a in pipeline_actions(found)
        if a.get("provider") == "CodeBuild" and contracts.BUILD_ARTIFACT in (a.get("outputArtifacts") or [])
    ]
    [project] = [p for p in found.of_type(rt.CODEBUILD_PROJECT) if p.props.get("name") == name]
    return project


def buildspec_of(found: ProgramRun) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(build_project(found).props["source"]["buildspec"])
    return spec


def templates_of(found: ProgramRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """(taskdef.json, appspec.yaml) as the build writes them into the artifact the Deploy stage reads: carried by
    the build project's buildspec (components/build_stage.py)."""
    files = embedded_files(build_project(found).props["source"]["buildspec"])
    taskdef: dict[str, Any] = json.loads(files[contracts.TASKDEF_FILE])
    appspec: dict[str, Any] = yaml.safe_load(files[contracts.APPSPEC_FILE])
    return taskdef, appspec


def appspec_service(appspec: Mapping[str, Any]) -> dict[str, Any]:
    """``Resources[0].TargetService.Properties`` of an ECS AppSpec."""
    properties: dict[str, Any] = appspec["Resources"][0]["TargetService"]["Properties"]
    return properties


def service_alarm_names(found: ProgramRun) -> list[str]:
    """The names of the alarms the ServiceAlarms component registers."""
    owner = component(found, "ServiceAlarms")
    return sorted(a.props["name"] for a in descendants(found, owner) if a.type == rt.METRIC_ALARM)


def pack_violations(found: ProgramRun, stack: str) -> list[str]:
    """What the pack reports on the run, less what the stack fails on purpose (``support.pack.BY_DESIGN``)."""
    return [str(v) for v in pack.unexpected(stack, pack.violations(found), found)]


# --- 1-2. Every stack x fargateSpot x cpuArchitecture x engine -----------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS)
def test_the_service_runs_on_spot_exactly_when_asked_through_providers_its_cluster_has(combo: Combo) -> None:
    """A strategy naming FARGATE_SPOT (and no launch type) with ``fargateSpot: true``, the FARGATE launch type
    otherwise; every provider a strategy names must be associated with the service's cluster before the service
    is created ("Only capacity providers that are already associated with a cluster ... can be used").
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html"""
    found = combo_run(combo)
    service = service_of(found)
    strategy = strategy_of(service)
    if combo.spot:
        assert "launchType" not in service.props, "ECS takes a launch type or a strategy, never both"
        assert strategy and {provider for provider, _, _ in strategy} == {FARGATE_SPOT}
        assert all(weight > 0 for _, _, weight in strategy)
    else:
        assert service.props["launchType"] == FARGATE
        assert strategy == []
    cluster = cluster_of(found, service)
    associations = associations_of(found, cluster)
    associated = {p for a in associations for p in a.props["capacityProviders"]}
    assert {provider for provider, _, _ in strategy} <= associated
    if strategy:
        # Associated before the service exists: the service depends on the association.
        assert associations and {a.urn for a in associations} <= set(service.dependencies)
    for association in associations:
        # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_PutClusterCapacityProviders.html
        assert_valid_request(
            "ecs",
            "PutClusterCapacityProviders",
            {
                "cluster": association.props["clusterName"],
                "capacityProviders": association.props["capacityProviders"],
                "defaultCapacityProviderStrategy": association.props.get("defaultCapacityProviderStrategies", []),
            },
        )
    assert_valid_request("ecs", "CreateService", create_service_request(service.props))


@pytest.mark.parametrize("combo", COMBOS)
def test_the_task_definition_and_every_codebuild_project_are_for_the_configured_cpu(combo: Combo) -> None:
    """The task definition's runtime platform is ``cpuArchitecture``; every CodeBuild project (the build, the
    release steps and, with ``ecs``, the deploy step) runs the curated image of that CPU on its environment type,
    so the image is built natively for the tasks. An aarch64 image runs only on ARM_CONTAINER.
    https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-compute-types.html"""
    found = combo_run(combo)
    definition = found.one(rt.ECS_TASK_DEFINITION)
    assert definition.props["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": combo.arch}
    projects = found.of_type(rt.CODEBUILD_PROJECT)
    runs = {a["configuration"]["ProjectName"] for a in pipeline_actions(found) if a.get("provider") == "CodeBuild"}
    # Every project the pipeline runs, the deploy step's with ecs included.
    assert runs == {p.props["name"] for p in projects}
    assert len(projects) == (3 if combo.engine == "ecs" else 2)
    for project in projects:
        environment = project.props["environment"]
        assert (environment["image"], environment["type"]) == (CURATED_IMAGE[combo.arch], ENVIRONMENT_TYPE[combo.arch])
        assert ("aarch64" in environment["image"]) == environment["type"].startswith("ARM_")
        # https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html
        assert_valid_request(
            "codebuild",
            "CreateProject",
            {
                "name": project.props["name"],
                "source": {"type": project.props["source"]["type"]},
                "artifacts": {"type": project.props["artifacts"]["type"]},
                "environment": {
                    "type": environment["type"],
                    "image": environment["image"],
                    "computeType": environment["computeType"],
                },
                "serviceRole": project.props["serviceRole"],
            },
        )


@pytest.mark.parametrize("combo", COMBOS)
def test_the_pipelines_taskdef_and_appspec_agree_with_the_service(combo: Combo) -> None:
    """What each deployment registers and starts: ``taskdef.json`` on the configured CPU, as the service's first
    task definition; with CodeDeploy, the replacement task set on the service's strategy, written in the AppSpec
    (``CapacityProviderStrategy``), none with the launch type. The ecs engine never reads the AppSpec (the
    service deploys itself, with its own strategy): a strategy there must still not contradict the service's.
    https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-structure-resources.html"""
    found = combo_run(combo)
    service = service_of(found)
    taskdef, appspec = templates_of(found)
    assert taskdef["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": combo.arch}
    assert taskdef["runtimePlatform"] == found.one(rt.ECS_TASK_DEFINITION).props["runtimePlatform"]
    # What the deploy step registers once it has put the image in: a valid RegisterTaskDefinition request.
    for container in taskdef["containerDefinitions"]:
        container["image"] = f"{found.outputs['ecrRepositoryUrl']}:9f1c2ab"
    assert_valid_request("ecs", "RegisterTaskDefinition", taskdef)

    items = appspec_service(appspec).get("CapacityProviderStrategy")
    if combo.engine == "codedeploy":
        assert (items is not None) == combo.spot
    if items is None:
        return
    assert all(set(item) == APPSPEC_STRATEGY_KEYS for item in items), items
    assert [(i["CapacityProvider"], int(i["Base"]), int(i["Weight"])) for i in items] == strategy_of(service)
    # CodeDeploy starts the replacement task set with it: valid as ECS's CreateTaskSet takes a strategy.
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateTaskSet.html
    assert_valid_request(
        "ecs",
        "CreateTaskSet",
        {
            "service": service.props["name"],
            "cluster": service.props["cluster"],
            "taskDefinition": service.props["taskDefinition"],
            "capacityProviderStrategy": [
                {"capacityProvider": i["CapacityProvider"], "base": i["Base"], "weight": i["Weight"]} for i in items
            ],
        },
    )


@pytest.mark.parametrize("combo", COMBOS)
def test_the_buildspec_builds_the_image_for_the_tasks_platform(combo: Combo) -> None:
    """``docker build --platform`` is the task's CPU in Docker's naming (linux/arm64 for ARM64)."""
    spec = buildspec_of(combo_run(combo))
    assert spec["env"]["variables"]["IMAGE_PLATFORM"] == DOCKER_PLATFORM[combo.arch]
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    builds = [c for c in commands if re.search(r"(?m)^\s*docker build", c)]
    assert builds, commands
    assert all(re.search(r'--platform\s+"?\$\{?IMAGE_PLATFORM\}?"?(\s|$)', c) for c in builds), builds


@pytest.mark.parametrize("combo", COMBOS)
def test_the_policy_pack_passes_every_combination(combo: Combo) -> None:
    assert pack_violations(combo_run(combo), combo.stack) == []


def test_the_pack_refuses_a_spot_service_whose_cluster_lacks_the_association() -> None:
    """The pack's rule on the program's own shape: without the ClusterCapacityProviders, ECS would refuse the
    service; the pack says so before AWS does."""
    found = combo_run(Combo(STACKS[0], True, DEFAULT_ARCHITECTURE, "codedeploy"))
    without = [rules.from_registration(r) for r in found.resources if r.type != rt.ECS_CLUSTER_CAPACITY_PROVIDERS]
    violations = pack.unexpected(STACKS[0], rules.check_stack(without), found)
    assert {v.rule for v in violations} == {"ecs-capacity-providers-associated"}
    assert [v.urn for v in violations] == [service_of(found).urn]
    assert FARGATE_SPOT in violations[0].message


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_pack_refuses_a_curated_image_on_the_other_cpus_environment_type(arch: str) -> None:
    found = combo_run(Combo(STACKS[0], False, arch, "codedeploy"))
    project = rules.from_registration(build_project(found))
    by_design = {rule for rule, name in pack.build_by_design(found) if name == project.name}
    assert [v for v in rules.check_resource(project.type, project.props, project.urn) if v.rule not in by_design] == []
    other = ENVIRONMENT_TYPE[other_arch(arch)]
    wrong = dataclasses.replace(
        project, props={**project.props, "environment": {**project.props["environment"], "type": other}}
    )
    [violation] = [v for v in rules.check_resource(wrong.type, wrong.props, wrong.urn) if v.rule not in by_design]
    assert violation.rule == "codebuild-image-matches-environment-type" and other in violation.message


# --- 3. The config -------------------------------------------------------------------------------------------------


def refused_cases(stack: str) -> dict[str, tuple[dict[str, str], list[str], list[str]]]:
    """id -> (overrides of the stack file, keys the problem must name, words it must say)."""
    arch = stack_architecture(stack)
    emails = stack_emails(stack) or ["platform-alerts@example.com"]
    return {
        # A curated image of the other CPU than the stack's (the default X86_64, or the file's).
        "curated-image-of-the-other-cpu": (
            {"buildImage": CURATED_IMAGE[other_arch(arch)]},
            ["buildImage", "cpuArchitecture"],
            [CURATED_IMAGE[other_arch(arch)]],
        ),
        "curated-image-against-an-explicit-cpu": (
            {"buildImage": CURATED_IMAGE[arch], "cpuArchitecture": other_arch(arch)},
            ["buildImage", "cpuArchitecture"],
            [CURATED_IMAGE[arch]],
        ),
        "unknown-cpu": ({"cpuArchitecture": "MIPS"}, ["cpuArchitecture"], ["MIPS", *ARCHITECTURES]),
        "spot-not-a-flag": ({"fargateSpot": "maybe"}, ["fargateSpot"], ["maybe"]),
        "no-topic-but-addresses": (
            {"notificationTopic": "false", "notificationEmails": json.dumps(emails)},
            ["notificationTopic"],
            ["notificationEmails"],
        ),
    }


REFUSED = [
    pytest.param(stack, case, id=f"{stack}-{case}")
    for stack in STACKS
    for case in (
        "curated-image-of-the-other-cpu",
        "curated-image-against-an-explicit-cpu",
        "unknown-cpu",
        "spot-not-a-flag",
        "no-topic-but-addresses",
    )
]


@pytest.mark.parametrize(("stack", "case"), REFUSED)
def test_a_refused_runtime_option_names_its_keys_before_anything_is_registered(stack: str, case: str) -> None:
    overrides, keys, words = refused_cases(stack)[case]
    registered: list[Registration] = []
    with pytest.raises(ConfigError) as error:
        stack_run(stack, overrides=overrides, registered=registered)
    assert registered == [], [r.name for r in registered]
    problems = error.value.problems
    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.startswith(f"{PROJECT}:{keys[0]}: "), problem
    for key in keys:
        assert f"{PROJECT}:{key}" in problem, (key, problem)
    for word in words:
        assert word in problem, (word, problem)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_build_image_of_the_tasks_cpu_or_outside_codebuilds_curated_ones_is_accepted(arch: str) -> None:
    for image in (CURATED_IMAGE[arch], OTHER_CURATED_IMAGE[arch], PRIVATE_IMAGE):
        config = stack_config({"buildImage": image, "cpuArchitecture": arch})
        assert (config.build.build_image, config.container.cpu_architecture) == (image, arch)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_private_build_image_runs_on_the_environment_type_of_the_tasks_cpu(arch: str) -> None:
    """Every project takes the operator's image, on the environment type of ``cpuArchitecture``."""
    found = variant_run(STACKS[0], {"buildImage": PRIVATE_IMAGE, "cpuArchitecture": arch})
    for project in found.of_type(rt.CODEBUILD_PROJECT):
        environment = project.props["environment"]
        assert (environment["image"], environment["type"]) == (PRIVATE_IMAGE, ENVIRONMENT_TYPE[arch]), project.name
    assert pack_violations(found, STACKS[0]) == []


# --- 4. The notification topic -------------------------------------------------------------------------------------


TOPIC_SETTINGS = [None, "true"]


def topic_keys(found: ProgramRun) -> list[Registration]:
    """The topic's KMS keys (the Notifications component's; the build's artifact key is another matter)."""
    return [k for k in found.of_type(rt.KMS_KEY) if k.name.startswith("notifications-")]


@pytest.mark.parametrize("topic", TOPIC_SETTINGS, ids=["notificationTopic-unset", "notificationTopic-true"])
@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_has_a_topic_and_its_key_exactly_when_someone_reads_it(stack: str, topic: str | None) -> None:
    """A topic (with its KMS key) when the stack file lists addresses or asks for one; none otherwise."""
    found = variant_run(stack, {"notificationTopic": topic} if topic else None)
    wanted = bool(stack_emails(stack)) or topic == "true"
    topics, keys = found.of_type(rt.SNS_TOPIC), topic_keys(found)
    if not wanted:
        assert topics == [] and keys == []
        assert found.outputs["notificationTopicArn"] is None
        return
    [sns] = topics
    [key] = keys
    assert found.outputs["notificationTopicArn"] == sns.state["arn"]
    assert sns.props["kmsMasterKeyId"] == key.state["arn"]
    # The service's alarms tell it when they fire and when they recover.
    for name in service_alarm_names(found):
        [alarm] = [a for a in found.of_type(rt.METRIC_ALARM) if a.props["name"] == name]
        assert alarm.props["alarmActions"] == [sns.state["arn"]] == alarm.props["okActions"]


def test_dev_as_committed_has_no_topic_no_key_and_nothing_that_would_only_feed_them() -> None:
    assert stack_emails("dev") == [] and stack_setting("dev", "notificationTopic") is None
    found = committed_run("dev")
    assert found.of_type(rt.SNS_TOPIC) == [] and topic_keys(found) == []
    assert found.outputs["notificationTopicArn"] is None
    assert [r.name for r in found.resources if not r.custom and r.type.endswith(":FailureRules")] == []
    feedback = descendants(found, component(found, "CommitStatus"))
    assert [r.name for r in feedback if r.type == rt.METRIC_ALARM] == []


def test_prod_as_committed_has_its_topic_for_its_addresses() -> None:
    assert stack_emails("prod")
    found = committed_run("prod")
    [sns] = found.of_type(rt.SNS_TOPIC)
    assert found.outputs["notificationTopicArn"] == sns.state["arn"]
    assert len(topic_keys(found)) == 1


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("stack", STACKS)
def test_without_a_topic_the_service_alarms_still_roll_deployments_back(stack: str, engine: str) -> None:
    """Alarms with no action, but watched by what deploys: the deployment group stops and rolls back on them
    (https://docs.aws.amazon.com/codedeploy/latest/userguide/deployments-rollback-and-redeploy.html), or the ECS
    service does (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html)."""
    overrides = {"deploymentEngine": engine, "notificationTopic": "false", "notificationEmails": "[]"}
    found = variant_run(stack, overrides)
    assert found.of_type(rt.SNS_TOPIC) == [] and found.outputs["notificationTopicArn"] is None
    names = service_alarm_names(found)
    assert names
    for alarm in found.of_type(rt.METRIC_ALARM):
        if alarm.props["name"] in names:
            assert alarm.props.get("alarmActions") in (None, []) and alarm.props.get("okActions") in (None, [])
    if engine == "codedeploy":
        group = found.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props
        assert group["alarmConfiguration"]["enabled"] is True
        assert sorted(group["alarmConfiguration"]["alarms"]) == names
        rollback = group["autoRollbackConfiguration"]
        assert rollback["enabled"] is True and "DEPLOYMENT_STOP_ON_ALARM" in rollback["events"]
    else:
        alarms = service_of(found).props["alarms"]
        assert sorted(alarms["alarmNames"]) == names
        assert (alarms["enable"], alarms["rollback"]) == (True, True)
    # The pack's "every alarm does something" holds: what deploys watches them.
    assert pack_violations(found, stack) == []


# --- 5. The estimate -----------------------------------------------------------------------------------------------


def fixed_lines(cost: CostEstimate, item: str) -> list[CostLine]:
    return [line for line in cost.fixed if line.item == item]


def task_size(found: ProgramRun) -> tuple[float, float, float]:
    """(desired tasks, vCPU, GB) of the service: the quantities the Fargate lines multiply."""
    definition = found.one(rt.ECS_TASK_DEFINITION).props
    desired = float(service_of(found).props["desiredCount"])
    return desired, float(definition["cpu"]) / 1024, float(definition["memory"]) / 1024


def test_dev_on_spot_costs_at_most_41_dollars_a_month_less_than_on_demand() -> None:
    """Issue 13's done-when: dev's estimated fixed monthly cost at most $41 (from $47.52)."""
    assert stack_on_spot("dev")
    spot, on_demand = variant_plan("dev"), variant_plan("dev", {"fargateSpot": "false"})
    assert spot.cost.total <= 41.00
    assert spot.cost.total < on_demand.cost.total
    # The whole difference is the tasks' price: Spot's per vCPU-hour and GB-hour instead of Fargate's.
    prices = load_prices()
    region = prices.regions[stack_region("dev")]
    desired, vcpu, gb = task_size(spot.run)
    hours = prices.hours_per_month
    saving = (
        desired
        * hours
        * (
            vcpu * (region["fargate_vcpu_hour"]["X86_64"] - region["fargate_spot_vcpu_hour"]["X86_64"])
            + gb * (region["fargate_gb_hour"]["X86_64"] - region["fargate_spot_gb_hour"]["X86_64"])
        )
    )
    assert on_demand.cost.total - spot.cost.total == pytest.approx(saving)


def test_dev_spot_lines_are_priced_from_the_tables_spot_prices() -> None:
    found = committed_run("dev")
    region_name = stack_region("dev")
    region = load_prices().regions[region_name]
    arch = stack_architecture("dev")
    cost = estimate(found, region_name)
    assert fixed_lines(cost, "Fargate vCPU") == [] and fixed_lines(cost, "Fargate memory") == []
    [vcpu_line] = fixed_lines(cost, "Fargate Spot vCPU")
    [gb_line] = fixed_lines(cost, "Fargate Spot memory")
    desired, vcpu, gb = task_size(found)
    hours = load_prices().hours_per_month
    assert vcpu_line.unit_price == region["fargate_spot_vcpu_hour"][arch]
    assert gb_line.unit_price == region["fargate_spot_gb_hour"][arch]
    assert vcpu_line.quantity == pytest.approx(desired * vcpu * hours)
    assert gb_line.quantity == pytest.approx(desired * gb * hours)
    assert FARGATE_SPOT in vcpu_line.basis
    cost_md = variant_plan("dev").files["cost.md"].decode()
    assert "| Fargate Spot vCPU |" in cost_md and "| Fargate Spot memory |" in cost_md


def test_prod_on_graviton_is_priced_with_arm64_fargate_and_arm_codebuild_prices() -> None:
    assert stack_architecture("prod") == "ARM64" and not stack_on_spot("prod")
    found = committed_run("prod")
    region_name = stack_region("prod")
    region = load_prices().regions[region_name]
    cost = estimate(found, region_name)
    [vcpu_line] = fixed_lines(cost, "Fargate vCPU")
    [gb_line] = fixed_lines(cost, "Fargate memory")
    assert (vcpu_line.unit_price, gb_line.unit_price) == (
        region["fargate_vcpu_hour"]["ARM64"],
        region["fargate_gb_hour"]["ARM64"],
    )
    assert fixed_lines(cost, "Fargate Spot vCPU") == []
    minutes = [line for line in cost.usage if line.item == "CodeBuild minutes"]
    projects = found.of_type(rt.CODEBUILD_PROJECT)
    assert len(minutes) == len(projects)
    for project in projects:
        compute = project.props["environment"]["computeType"]
        [line] = [m for m in minutes if m.basis.startswith(f"{project.name} (")]
        assert line.unit_price == region["codebuild_minute"]["ARM_CONTAINER"][compute]
        assert "ARM_CONTAINER" in line.basis
    assert cost.notes == []


def test_an_unpriced_codebuild_compute_type_on_arm_is_a_plan_note_not_a_silent_omission() -> None:
    table = load_prices()
    region = table.regions[stack_region("prod")]
    unpriced = [c for c in typing.get_args(BuildComputeType) if c not in region["codebuild_minute"]["ARM_CONTAINER"]]
    if not unpriced:
        pytest.skip("the price table has every ARM compute type the config allows")
    compute = unpriced[-1]
    plan = variant_plan("prod", {"buildComputeType": compute})
    project = build_project(plan.run)
    assert project.props["environment"] == {**project.props["environment"], "computeType": compute}
    [note] = [n for n in plan.cost.notes if project.name in n]
    assert compute in note and "ARM_CONTAINER" in note
    # Not priced at another type's price: the build project has no line, and the note is in cost.md.
    assert [line for line in plan.cost.usage if line.basis.startswith(f"{project.name} (")] == []
    notes = plan.files["cost.md"].decode().split("## Notes", 1)[1]
    assert note in notes


# ECS starts each provider's ``base`` tasks first, then spreads the rest by ``weight`` ("The weight value is taken
# into consideration after the base value, if defined, is satisfied").
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html
TASK_SPLITS = [
    # 4 tasks, FARGATE base 1: 1 on FARGATE first; the other 3 split 1:3 -> 0.75 FARGATE, 2.25 Spot.
    pytest.param(4, {FARGATE: (1, 1), FARGATE_SPOT: (0, 3)}, {FARGATE: 1.75, FARGATE_SPOT: 2.25}, id="base-then-1:3"),
    # Spot only (what fargateSpot makes): every task on Spot.
    pytest.param(1, {FARGATE_SPOT: (0, 1)}, {FARGATE_SPOT: 1.0}, id="spot-only"),
    # 10 tasks, no base, 1:4 -> 2 and 8.
    pytest.param(10, {FARGATE: (0, 1), FARGATE_SPOT: (0, 4)}, {FARGATE: 2.0, FARGATE_SPOT: 8.0}, id="weights-1:4"),
    # A base that covers every task leaves nothing to weigh: 2 on FARGATE, none on Spot.
    pytest.param(2, {FARGATE: (2, 1), FARGATE_SPOT: (0, 1)}, {FARGATE: 2.0, FARGATE_SPOT: 0.0}, id="base-covers-all"),
    # A base above desiredCount runs no more than the desired tasks: 1 on FARGATE.
    pytest.param(1, {FARGATE: (3, 1), FARGATE_SPOT: (0, 1)}, {FARGATE: 1.0, FARGATE_SPOT: 0.0}, id="base-over-count"),
]


@pytest.mark.parametrize(("desired", "shares", "expected"), TASK_SPLITS)
def test_task_split_takes_the_bases_first_then_the_weights(
    desired: int, shares: dict[str, tuple[float, float]], expected: dict[str, float]
) -> None:
    split = task_split(desired, shares)
    assert split == pytest.approx(expected)
    assert sum(split.values()) == pytest.approx(desired)


# --- 6. Fargate Spot with ARM64: what AWS's model says ---------------------------------------------------------


def test_fargate_spot_with_arm64_is_allowed_on_the_services_platform_version() -> None:
    """The program accepts ARM64 tasks on Fargate Spot because the ECS API reference says FARGATE_SPOT runs Linux
    ARM64 tasks on platform version 1.4.0 or later, and the service runs on LATEST (1.4.0 on Linux). If AWS's
    model ever drops or raises that sentence, this fails: the pair must then be refused by the config.
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/platform-linux-fargate.html"""
    model = botocore.session.get_session().get_service_model("ecs")
    text = html.unescape(re.sub(r"<[^>]+>", "", model.shape_for("CapacityProviderStrategyItem").documentation))
    found = re.search(
        r"FARGATE_SPOT supports Linux tasks with the ARM64 architecture on platform version (\d+\.\d+\.\d+) or later",
        text,
    )
    assert found, text
    required = tuple(int(n) for n in found[1].split("."))
    assert PLATFORM_VERSION in ("LATEST", LATEST_LINUX_PLATFORM)
    runs_on = LATEST_LINUX_PLATFORM if PLATFORM_VERSION == "LATEST" else PLATFORM_VERSION
    assert tuple(int(n) for n in runs_on.split(".")) >= required
    # And the program does combine them, on that platform version.
    for engine in ENGINES:
        service = service_of(combo_run(Combo(STACKS[0], True, "ARM64", engine)))
        assert service.props["platformVersion"] == PLATFORM_VERSION
        assert {p for p, _, _ in strategy_of(service)} == {FARGATE_SPOT}
