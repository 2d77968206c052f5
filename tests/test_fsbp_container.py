"""AWS Foundational Security Best Practices on the container and its cluster (issue 14).

- ECS.5: containers have read-only root filesystems.
- ECS.20: Linux containers run as a non-root user.
- ECS.12: the cluster has Container Insights on (``containerInsights``, default on; dev turns it off).

Controls: https://docs.aws.amazon.com/securityhub/latest/userguide/ecs-controls.html. Expected values come from
the AWS documentation cited at each test and from ``offline/prices.yaml``, never from what the program registers.
The real nginx running as ECS runs it (non-root, read-only, port 80) is tests/test_stacks.py's
``test_the_app_serves_as_a_non_root_user_with_only_its_scratch_paths_writable``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from components.base import PROJECT, ROOT
from components.build_stage import embedded_files
from components.config_docs import SCHEMA_PATH
from components.contracts import TASKDEF_FILE
from components.templates import TaskDefinitionValues, render_taskdef
from offline.engine import ProgramRun, Registration
from offline.pricing import estimate, insights_metrics, load_prices
from policy import resource_types as rt
from policy import rules
from policy.rules import UNKNOWN
from support import pack
from support.aws import assert_valid_request
from support.stacks import STACKS, committed_run, stack_config, stack_run

ECS_5 = "fsbp-ecs-5-read-only-root-filesystem"
ECS_20 = "fsbp-ecs-20-non-root-user"
ECS_12 = "fsbp-ecs-12-container-insights"

# What the two controls on a container definition look at: `readonlyRootFilesystem` and `user`
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html).
HARDENING_FIELDS = ("user", "readonlyRootFilesystem", "linuxParameters", "systemControls")
UNPRIVILEGED_PORT_START = "net.ipv4.ip_unprivileged_port_start"


def task_definition(*containers: Mapping[str, Any], family: str | None = "LINUX") -> dict[str, Any]:
    props: dict[str, Any] = {"containerDefinitions": json.dumps([{"name": "web", **c} for c in containers])}
    if family:
        props["runtimePlatform"] = {"operatingSystemFamily": family}
    return props


def fired(resource_type: str, props: Mapping[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for violation in rules.check_resource(resource_type, props):
        found.setdefault(violation.rule, []).append(violation.message)
    return found


SAFE = {"user": "101:101", "readonlyRootFilesystem": True}


# --- ECS.5: read-only root filesystems ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "containers",
    [
        [{**SAFE, "readonlyRootFilesystem": False}],
        # Left out, ECS's default applies: false (API_ContainerDefinition), which the control fails.
        [{"user": "101:101"}],
        [SAFE, {**SAFE, "name": "sidecar", "readonlyRootFilesystem": False}],
    ],
)
def test_ecs_5_a_container_that_can_write_its_root_filesystem_is_refused(containers: list[dict[str, Any]]) -> None:
    # ECS.5 fails when readonlyRootFilesystem is false
    # (https://docs.aws.amazon.com/config/latest/developerguide/ecs-containers-readonly-access.html).
    found = fired(rt.ECS_TASK_DEFINITION, task_definition(*containers))
    assert list(found) == [ECS_5]
    assert len(found[ECS_5]) == 1 and "readonlyRootFilesystem" in found[ECS_5][0]


def test_ecs_5_read_only_containers_pass_and_unknown_values_are_left_to_pulumi_up() -> None:
    assert fired(rt.ECS_TASK_DEFINITION, task_definition(SAFE, {**SAFE, "name": "sidecar"})) == {}
    # During a preview the container definitions (one JSON string) may not be known yet.
    assert fired(rt.ECS_TASK_DEFINITION, {"containerDefinitions": UNKNOWN}) == {}


# --- ECS.20: non-root users ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", [None, "", "root", "0", "0:0", "root:root", "ROOT", "0:101"])
def test_ecs_20_a_container_without_a_user_or_as_root_is_refused(user: str | None) -> None:
    # ECS.20 fails a Linux container whose user is root or absent
    # (https://docs.aws.amazon.com/config/latest/developerguide/ecs-task-definition-linux-user-non-root.html);
    # `user` is user, uid, user:group, uid:gid... and uid 0 is root.
    container: dict[str, Any] = {"readonlyRootFilesystem": True}
    if user is not None:
        container["user"] = user
    found = fired(rt.ECS_TASK_DEFINITION, task_definition(container))
    assert list(found) == [ECS_20]


@pytest.mark.parametrize("user", ["101:101", "nginx", "1000", "nginx:nginx", "101:0"])
def test_ecs_20_a_non_root_user_passes(user: str) -> None:
    assert fired(rt.ECS_TASK_DEFINITION, task_definition({**SAFE, "user": user})) == {}


def test_ecs_20_judges_linux_task_definitions_only() -> None:
    """A Windows task definition is ECS.21's (non-administrator users); a task definition without a runtime
    platform is Linux, ECS's default."""
    rootless = {"readonlyRootFilesystem": True}
    assert ECS_20 not in fired(rt.ECS_TASK_DEFINITION, task_definition(rootless, family="WINDOWS_SERVER_2022_CORE"))
    assert ECS_20 in fired(rt.ECS_TASK_DEFINITION, task_definition(rootless, family=None))
    unknown_family = {**task_definition(rootless), "runtimePlatform": {"operatingSystemFamily": UNKNOWN}}
    assert fired(rt.ECS_TASK_DEFINITION, unknown_family) == {}


# --- ECS.12: Container Insights ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [None, [], [{"name": "containerInsights", "value": "disabled"}], [{"name": "other", "value": "enabled"}]],
)
def test_ecs_12_a_cluster_without_container_insights_is_refused(settings: list[dict[str, str]] | None) -> None:
    # https://docs.aws.amazon.com/config/latest/developerguide/ecs-container-insights-enabled.html
    props: dict[str, Any] = {"name": "app"} if settings is None else {"name": "app", "settings": settings}
    assert list(fired(rt.ECS_CLUSTER, props)) == [ECS_12]


@pytest.mark.parametrize("value", ["enabled", "enhanced", UNKNOWN])
def test_ecs_12_container_insights_or_its_enhanced_observability_passes(value: Any) -> None:
    # The cluster setting containerInsights takes enhanced, enabled or disabled
    # (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ClusterSetting.html).
    assert fired(rt.ECS_CLUSTER, {"name": "app", "settings": [{"name": "containerInsights", "value": value}]}) == {}
    assert fired(rt.ECS_CLUSTER, {"name": "app", "settings": UNKNOWN}) == {}


def test_each_rule_names_its_control_and_cites_its_page() -> None:
    by_name = {r.name: r for r in rules.RESOURCE_RULES}
    for name, control in ((ECS_5, "ECS.5"), (ECS_20, "ECS.20"), (ECS_12, "ECS.12")):
        rule = by_name[name]
        assert rule.description.startswith(f"{control}: ")
        anchor = control.lower().replace(".", "-")
        assert f"securityhub/latest/userguide/ecs-controls.html#{anchor}" in (rule.check.__doc__ or "")


# --- The program's task definitions -----------------------------------------------------------------------------

ENGINES = ("codedeploy", "ecs")


def engine_run(stack: str, engine: str) -> ProgramRun:
    return committed_run(stack) if engine == "codedeploy" else stack_run(stack, overrides={"deploymentEngine": engine})


def first_container(run: ProgramRun) -> dict[str, Any]:
    [container] = json.loads(run.one(rt.ECS_TASK_DEFINITION).props["containerDefinitions"])
    return dict(container)


def pipeline_taskdef(run: ProgramRun) -> dict[str, Any]:
    """``taskdef.json`` as the build writes it for the deploy step (embedded in the build project's buildspec)."""
    found = [
        json.loads(files[TASKDEF_FILE])
        for project in run.of_type(rt.CODEBUILD_PROJECT)
        if TASKDEF_FILE in (files := embedded_files(project.props["source"]["buildspec"]))
    ]
    [taskdef] = found
    return dict(taskdef)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("stack", STACKS)
def test_both_task_definitions_run_the_container_non_root_and_read_only(stack: str, engine: str) -> None:
    """The first task definition (``initialImage``) and every one the pipeline registers: the same hardening."""
    found = engine_run(stack, engine)
    taskdef = pipeline_taskdef(found)
    assert_valid_request("ecs", "RegisterTaskDefinition", taskdef)
    [pipeline] = taskdef["containerDefinitions"]
    first = first_container(found)
    assert {k: first.get(k) for k in HARDENING_FIELDS} == {k: pipeline.get(k) for k in HARDENING_FIELDS}
    assert first["readonlyRootFilesystem"] is True
    uid, gid = first["user"].split(":")
    assert int(uid) > 0 and int(gid) > 0, "a non-root uid:gid (the image's nginx user, 101)"
    # The only writable paths: tmpfs mounts, noexec, where nginx writes (its temp paths and pid file).
    tmpfs = first["linuxParameters"]["tmpfs"]
    assert sorted(m["containerPath"] for m in tmpfs) == ["/run", "/var/cache/nginx"]
    assert all({"noexec", "nosuid", "nodev"} <= set(m["mountOptions"]) and m["size"] > 0 for m in tmpfs)
    # The pack sees both as compliant, and neither control is waived on either stack.
    for props in (found.one(rt.ECS_TASK_DEFINITION).props, {"containerDefinitions": json.dumps([pipeline])}):
        assert not {ECS_5, ECS_20} & set(fired(rt.ECS_TASK_DEFINITION, props))
    assert not {(ECS_5, "service-taskdef"), (ECS_20, "service-taskdef")} & pack.BY_DESIGN.get(stack, frozenset())


def render(port: int) -> dict[str, Any]:
    values = TaskDefinitionValues(
        family="f", cpu=256, memory=512, execution_role_arn="arn:aws:iam::1:role/e",
        task_role_arn="arn:aws:iam::1:role/t", container_name="web", container_port=port, image="i",
        environment={}, log_group="/ecs/f", region="eu-west-1",
    )  # fmt: skip
    taskdef: dict[str, Any] = json.loads(render_taskdef(values))
    assert_valid_request("ecs", "RegisterTaskDefinition", taskdef)
    return dict(taskdef["containerDefinitions"][0])


@pytest.mark.parametrize(("port", "sysctls"), [(80, ["80"]), (443, ["443"]), (1023, ["1023"]), (1024, []), (8080, [])])
def test_a_port_below_1024_is_opened_to_the_non_root_user_by_the_tasks_sysctl(port: int, sysctls: list[str]) -> None:
    """A process without CAP_NET_BIND_SERVICE may bind from net.ipv4.ip_unprivileged_port_start up (1024 by
    default; https://www.kernel.org/doc/html/latest/networking/ip-sysctl.html). The sysctl is namespaced: ECS
    accepts every net.* one in systemControls, and Fargate supports them on platform version 1.4.0 or later
    (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_SystemControl.html)."""
    container = render(port)
    assert container["systemControls"] == [{"namespace": UNPRIVILEGED_PORT_START, "value": v} for v in sysctls]


def test_the_service_runs_on_a_platform_version_with_sysctls() -> None:
    # systemControls need Fargate platform version 1.4.0 or later; LATEST is 1.4.0 for Linux
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/platform-linux-fargate.html).
    for stack in STACKS:
        assert committed_run(stack).one(rt.ECS_SERVICE).props["platformVersion"] in ("LATEST", "1.4.0")


def test_the_tmpfs_fits_in_the_smallest_task() -> None:
    """tmpfs lives in the task's memory: the scratch space is a small part of the smallest Fargate task (512
    MiB, https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html)."""
    assert sum(m["size"] for m in render(80)["linuxParameters"]["tmpfs"]) <= 512 // 16


def test_the_sample_image_keeps_nginx_paths_and_user() -> None:
    """The sample app is built FROM the stock nginx image (the initial image), so the task definition's user and
    scratch paths hold for both; it does not switch to another user or write elsewhere."""
    dockerfile = (ROOT / "files" / "app" / "Dockerfile").read_text()
    instructions = [line.split()[0].upper() for line in dockerfile.splitlines() if line.strip() and line[0] != "#"]
    assert "USER" not in instructions and "VOLUME" not in instructions
    assert "FROM public.ecr.aws/nginx/nginx:stable-alpine" in dockerfile
    assert stack_config({}).container.initial_image == "public.ecr.aws/nginx/nginx:stable-alpine"


# --- Container Insights: the setting, the stacks, the cost --------------------------------------------------------


def cluster_setting(run: ProgramRun) -> list[dict[str, str]]:
    settings: list[dict[str, str]] = run.one(rt.ECS_CLUSTER).props["settings"]
    return settings


def test_container_insights_is_on_by_default_and_off_says_so() -> None:
    assert stack_config({}).container.container_insights is True
    assert stack_config({"containerInsights": "false"}).container.container_insights is False
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["properties"]["config"]["properties"][f"{PROJECT}:containerInsights"]["default"] is True


def test_prod_has_container_insights_and_dev_turns_it_off_in_its_stack_file() -> None:
    dev_file = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert dev_file[f"{PROJECT}:containerInsights"] is False
    assert f"{PROJECT}:containerInsights" not in yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert cluster_setting(committed_run("prod")) == [{"name": "containerInsights", "value": "enabled"}]
    # Off is explicit: left out, the account's default would decide.
    assert cluster_setting(committed_run("dev")) == [{"name": "containerInsights", "value": "disabled"}]
    assert (ECS_12, "service-cluster") in pack.BY_DESIGN["dev"]
    assert not {pair for pair in pack.BY_DESIGN.get("prod", frozenset()) if pair[0] == ECS_12}


def test_the_pack_fails_a_stack_that_regresses() -> None:
    """prod passes (but for what it fails by design); the same stack with a writable root, a root user or
    without Container Insights does not."""
    found = committed_run("prod")
    assert pack.stack_violations(found, "prod") == []
    kept = {(v.rule, v.urn) for v in pack.violations(found)}

    def mutated(registration: Registration, **props: Any) -> list[rules.Resource]:
        resources = [rules.from_registration(r) for r in found.resources]
        return [
            dataclasses.replace(r, props={**r.props, **props}) if r.urn == registration.urn else r for r in resources
        ]

    taskdef = found.one(rt.ECS_TASK_DEFINITION)
    [container] = json.loads(taskdef.props["containerDefinitions"])
    for change, rule in (({"readonlyRootFilesystem": False}, ECS_5), ({"user": "root"}, ECS_20)):
        definitions = json.dumps([{**container, **change}])
        violations = rules.check_stack(mutated(taskdef, containerDefinitions=definitions))
        assert {(v.rule, v.urn) for v in violations} - kept == {(rule, taskdef.urn)}
    cluster = found.one(rt.ECS_CLUSTER)
    violations = rules.check_stack(mutated(cluster, settings=[{"name": "containerInsights", "value": "disabled"}]))
    assert {(v.rule, v.urn) for v in violations} - kept == {(ECS_12, cluster.urn)}


def test_container_insights_is_priced_as_custom_metrics_when_on() -> None:
    """CloudWatch bills Container Insights' metrics as custom metrics, $0.30 per metric-month for the first
    10,000 (https://aws.amazon.com/cloudwatch/pricing/). One Fargate cluster, service and task family publish 37:
    10 usage metrics (CPU, memory, network, storage, ephemeral storage: used and reserved) per cluster, service
    and task family, ServiceCount and TaskCount per cluster, and 5 task counts per service
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html)."""
    assert insights_metrics(services=1, families=1) == 37
    table = load_prices()
    for stack in STACKS:
        found = committed_run(stack)
        region = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["aws:region"]
        lines = [line for line in estimate(found, region, table).fixed if line.item == "Container Insights metrics"]
        on = cluster_setting(found)[0]["value"] == "enabled"
        assert [(line.quantity, line.unit_price) for line in lines] == ([(37, 0.30)] if on else [])
    prod, region = committed_run("prod"), yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    with_insights = estimate(prod, region["aws:region"], table).total
    without = estimate(stack_run("prod", overrides={"containerInsights": "false"}), region["aws:region"], table)
    assert with_insights - without.total == pytest.approx(37 * 0.30)
