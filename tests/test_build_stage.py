"""BuildStage on mocks: the repository and its lifecycle policy (simulated as ECR evaluates it, and accepted by
moto), the CodeBuild project and its role, the pull grant ``__main__.py`` makes on the service's execution role,
the files the build hands the Deploy stage, and the buildspec the program renders, which is parsed,
shellchecked and executed with stand-in ``aws`` and ``docker`` commands; then the release project, and
``files/release.sh`` run with the AWS CLI against moto_server.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import subprocess
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pulumi
import pytest
import yaml
from moto import mock_aws

from components import contracts
from components.build_stage import (
    DEPLOYING_TAG,
    LIVE_TAG,
    RELEASE_STEP_DEPLOYING,
    RELEASE_STEP_LIVE,
    RELEASE_TAGS,
    ROLLBACK_TAG,
    BuildConfig,
    BuildStage,
    BuildStageArgs,
    embedded_files,
    lifecycle_policy,
    render_buildspec,
)
from components.config import StackConfig
from components.config_types import ConfigError
from components.templates import FILES, TaskDefinitionValues, render_taskdef
from offline.engine import ACCOUNT_ID, ProgramRun
from policy import resource_types as rt
from support import bundles
from support.aws import assert_valid_request, client, moto_server, parliament_findings, policy_of, statement
from support.buildspec import StandInRegistry, build_script, run_build
from support.stacks import REGION, component, descendants, run, stack_config
from support.tools import clean_env, shellcheck

PREFIX = bundles.PREFIX
# ECR's repository URI: <account>.dkr.ecr.<region>.amazonaws.com/<name>
# (https://docs.aws.amazon.com/AmazonECR/latest/userguide/Repositories.html).
REPOSITORY_URL = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{PREFIX}"
EXECUTION_ROLE = f"{PREFIX}-execution"
IMAGE_PLACEHOLDER = contracts.placeholder(contracts.IMAGE_PLACEHOLDER)
# The service's task-definition values as the FargateService hands them over: image left as the placeholder.
VALUES = dataclasses.replace(bundles.taskdef_values(), image=IMAGE_PLACEHOLDER, container_port=8080)
STACK_VALUES = {
    "appName": "shop",
    "ecrKeepImages": "7",
    "buildTimeoutMinutes": "15",
    "buildComputeType": "BUILD_GENERAL1_MEDIUM",
    "buildImage": "aws/codebuild/standard:8.0",
    "logRetentionDays": "30",
}


def stage_run(cfg: StackConfig, values: TaskDefinitionValues = VALUES) -> ProgramRun:
    """A BuildStage named ``build``, with the pull grant ``__main__.py`` makes on the execution role."""

    def build() -> None:
        stage = BuildStage("build", BuildStageArgs(cfg.context, cfg.build, values))
        stage.grant_pull(bundles.role(EXECUTION_ROLE))
        projects = stage.projects
        pulumi.export("buildspec", stage.buildspec)
        pulumi.export("taskdef", stage.taskdef_json)
        pulumi.export("appspec", stage.appspec_yaml)
        pulumi.export("repositoryArn", stage.repository_arn)
        pulumi.export(
            "projects",
            {
                "projectName": projects.project_name,
                "projectArn": projects.project_arn,
                "buildRoleName": projects.build_role.name,
                "buildRoleArn": projects.build_role.arn,
                "releaseProjectName": projects.release_project_name,
                "releaseProjectArn": projects.release_project_arn,
                "releaseRoleName": projects.release_role.name,
                "releaseRoleArn": projects.release_role.arn,
                "repositoryUrl": projects.repository_url,
            },
        )

    return run(build)


@pytest.fixture(scope="module")
def stage() -> ProgramRun:
    return stage_run(stack_config(STACK_VALUES))


def buildspec_of(found: ProgramRun) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(found.outputs["buildspec"])
    return doc


# --- BuildConfig ------------------------------------------------------------------------------------------


def test_the_stack_values_reach_the_build_config() -> None:
    cfg = stack_config(STACK_VALUES).build
    assert cfg == BuildConfig(
        ecr_keep_images=7,
        build_timeout_minutes=15,
        build_compute_type="BUILD_GENERAL1_MEDIUM",
        build_image="aws/codebuild/standard:8.0",
    )


def test_bad_build_values_are_refused_all_at_once_naming_the_key_and_what_is_allowed() -> None:
    # ECR lifecycle counts start at 1, CodeBuild timeouts run from 5 to 480 minutes and compute types are an
    # enumeration (https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html).
    bad = {"ecrKeepImages": "0", "buildTimeoutMinutes": "481", "buildComputeType": "HUGE"}
    with pytest.raises(ConfigError) as raised:
        stack_config({**STACK_VALUES, **bad})
    problems = raised.value.problems
    assert len(problems) == 3, problems
    for key, value in bad.items():
        [problem] = [p for p in problems if p.startswith(f"gitlab-fargate:{key}:")]
        assert re.match(rf"gitlab-fargate:{key}: '?{value}'? ", problem), problem
    [compute] = [p for p in problems if "buildComputeType" in p]
    assert "BUILD_GENERAL1_SMALL" in compute


# --- Repository ------------------------------------------------------------------------------------


def test_repository_scans_and_encrypts(stage: ProgramRun) -> None:
    # Basic scanning on push (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-scanning-basic.html);
    # AES256 is ECR's S3-managed encryption (https://docs.aws.amazon.com/AmazonECR/latest/userguide/encryption-at-rest.html).
    repo = stage.one(rt.ECR_REPOSITORY).props
    assert repo["name"] == PREFIX
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    # Every tag names one image for good but `latest` (moved by every build) and the release tags (moved by
    # every deployment): https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    filters = repo["imageTagMutabilityExclusionFilters"]
    assert {f["filter"] for f in filters} == {"latest", *RELEASE_TAGS}


def test_by_default_the_repository_and_build_logs_are_protected_and_images_kept(stage: ProgramRun) -> None:
    repo = stage.one(rt.ECR_REPOSITORY)
    logs = stage.one(rt.LOG_GROUP, "build-logs")
    assert repo.props["forceDelete"] is False
    # Exactly these two: the rest (projects, roles, grants, lifecycle policy) is rebuilt from the program, and a
    # protected component would protect every child.
    assert {r.name for r in stage.resources if r.protect} == {repo.name, logs.name}


@pytest.mark.parametrize("force_destroy", [False, True])
def test_force_destroy_lets_pulumi_destroy_delete_the_repository_with_its_images(force_destroy: bool) -> None:
    found = stage_run(stack_config({**STACK_VALUES, "forceDestroy": json.dumps(force_destroy)}))
    repo = found.one(rt.ECR_REPOSITORY)
    logs = found.one(rt.LOG_GROUP, "build-logs")
    # forceDelete: ECR deletes a repository that still holds images
    # (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DeleteRepository.html, `force`).
    assert repo.props["forceDelete"] is force_destroy
    assert repo.protect is not force_destroy
    assert logs.protect is not force_destroy


def test_lifecycle_policy_is_accepted_by_ecr_and_keeps_the_configured_number(stage: ProgramRun) -> None:
    lifecycle = stage.one(rt.ECR_LIFECYCLE_POLICY).props
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
    request = {"repositoryName": PREFIX, "lifecyclePolicyText": lifecycle["policy"]}
    assert_valid_request("ecr", "PutLifecyclePolicy", request)
    with mock_aws():
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName=PREFIX)
        ecr.put_lifecycle_policy(**request)
        assert json.loads(ecr.get_lifecycle_policy(repositoryName=PREFIX)["lifecyclePolicyText"]) == {"rules": rules}


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
    project = stage.one(rt.CODEBUILD_PROJECT, "build-project").props
    role = stage.one(rt.IAM_ROLE, "build-role")
    logs = stage.one(rt.LOG_GROUP, "build-logs").props
    assert project["name"] == PREFIX
    assert project["source"]["type"] == "CODEPIPELINE"
    assert project["artifacts"] == {"type": "CODEPIPELINE"}
    assert project["source"]["buildspec"] == stage.outputs["buildspec"]
    env = project["environment"]
    # Docker builds need the Docker daemon, which runs only in privileged mode
    # (https://docs.aws.amazon.com/codebuild/latest/userguide/sample-docker.html).
    assert env["privilegedMode"] is True
    assert (env["image"], env["computeType"], env["type"]) == (
        "aws/codebuild/standard:8.0",
        "BUILD_GENERAL1_MEDIUM",
        "LINUX_CONTAINER",
    )
    assert project["buildTimeout"] == 15
    assert project["serviceRole"] == role.state["arn"]
    # CodeBuild logs to /aws/codebuild/<project> (https://docs.aws.amazon.com/codebuild/latest/userguide/build-logs.html):
    # created here, with a retention, instead of by CodeBuild, keeping logs forever.
    assert logs["name"] == f"/aws/codebuild/{PREFIX}"
    assert logs["retentionInDays"] == 30
    assert project["logsConfig"]["cloudwatchLogs"] == {"groupName": logs["name"], "status": "ENABLED"}
    # The role can write logs and push before the first build runs.
    assert stage.one(rt.IAM_ROLE_POLICY, "build-role-policy").urn in stage.named("build-project").dependencies


def test_build_role_pushes_to_its_repository_only(stage: ProgramRun) -> None:
    role = stage.one(rt.IAM_ROLE, "build-role")
    trust = policy_of(role, "assumeRolePolicy")["Statement"][0]
    # Trusted by CodeBuild for this account only
    # (https://docs.aws.amazon.com/codebuild/latest/userguide/cross-service-confused-deputy-prevention.html).
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}

    build = stage.one(rt.IAM_ROLE_POLICY, "build-role-policy")
    assert build.props["role"] == role.id
    doc = policy_of(build)
    repo_arn = stage.one(rt.ECR_REPOSITORY).state["arn"]
    log_arn = stage.one(rt.LOG_GROUP, "build-logs").state["arn"]
    # The actions of a `docker push` (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-push-iam.html).
    push = statement(doc, "PushToTheRepository")
    assert push["Resource"] == [repo_arn]
    assert {"ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"} <= set(
        push["Action"]
    )
    assert statement(doc, "WriteBuildLogs")["Resource"] == [f"{log_arn}:*"]
    # "*" only where ECR offers nothing narrower: GetAuthorizationToken has no resource type
    # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html).
    starred = [s for s in doc["Statement"] if "*" in s["Resource"]]
    assert [s["Action"] for s in starred] == [["ecr:GetAuthorizationToken"]]


def test_grant_pull_lets_the_execution_role_pull_but_not_push(stage: ProgramRun) -> None:
    # What the task execution role needs to pull a private image
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html).
    pull = stage.one(rt.IAM_ROLE_POLICY, "build-execution-pull")
    assert pull.props["role"] == EXECUTION_ROLE
    # Owned by the stage whose repository it names: the grant goes when the repository goes.
    assert pull.parent == component(stage, "BuildStage").urn
    doc = policy_of(pull)
    repo_arn = stage.one(rt.ECR_REPOSITORY).state["arn"]
    grant = statement(doc, "PullFromTheRepository")
    assert grant["Resource"] == [repo_arn]
    assert set(grant["Action"]) == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    }
    assert statement(doc, "RegistryLogin")["Action"] == ["ecr:GetAuthorizationToken"]
    assert not any("ecr:PutImage" in s["Action"] for s in doc["Statement"])


def test_two_grants_to_two_roles_do_not_collide() -> None:
    cfg = stack_config(STACK_VALUES)

    def build() -> None:
        stage = BuildStage("build", BuildStageArgs(cfg.context, cfg.build, VALUES))
        stage.grant_pull(bundles.role(EXECUTION_ROLE))
        stage.grant_pull(bundles.role(f"{PREFIX}-worker"), purpose="worker")

    found = run(build)
    grants = {r.name: r.props["role"] for r in found.of_type(rt.IAM_ROLE_POLICY) if "pull" in r.name}
    assert grants == {"build-execution-pull": EXECUTION_ROLE, "build-worker-pull": f"{PREFIX}-worker"}


def test_every_policy_passes_parliament(stage: ProgramRun) -> None:
    policies = stage.of_type(rt.IAM_ROLE_POLICY)
    assert {p.name for p in policies} == {"build-role-policy", "build-release-role-policy", "build-execution-pull"}
    for reg in policies:
        assert parliament_findings(reg.props["policy"]) == [], reg.name


def test_the_projects_bundle_names_what_was_registered(stage: ProgramRun) -> None:
    out = stage.outputs["projects"]
    project = stage.one(rt.CODEBUILD_PROJECT, "build-project")
    release = stage.one(rt.CODEBUILD_PROJECT, "build-release-project")
    build_role = stage.one(rt.IAM_ROLE, "build-role")
    release_role = stage.one(rt.IAM_ROLE, "build-release-role")
    assert (out["projectName"], out["projectArn"]) == (project.props["name"], project.state["arn"])
    assert (out["releaseProjectName"], out["releaseProjectArn"]) == (release.props["name"], release.state["arn"])
    assert (out["buildRoleName"], out["buildRoleArn"]) == (build_role.props["name"], build_role.state["arn"])
    assert (out["releaseRoleName"], out["releaseRoleArn"]) == (release_role.props["name"], release_role.state["arn"])
    assert out["repositoryUrl"] == REPOSITORY_URL
    assert stage.outputs["repositoryArn"] == stage.one(rt.ECR_REPOSITORY).state["arn"]


def test_children_are_named_from_the_component_and_parented_to_it(stage: ProgramRun) -> None:
    build = component(stage, "BuildStage")
    children = descendants(stage, build)
    assert len(children) == len(stage.resources) - 1, "everything registered belongs to the component"
    for child in children:
        assert child.name.startswith("build-"), child.name
        assert child.parent == build.urn, child.name


# --- Generated files -------------------------------------------------------------------------------


def test_taskdef_is_a_valid_register_task_definition_request_and_registers(stage: ProgramRun) -> None:
    taskdef = json.loads(stage.outputs["taskdef"])
    assert taskdef["containerDefinitions"][0]["image"] == IMAGE_PLACEHOLDER == "<IMAGE1_NAME>"
    assert (taskdef["executionRoleArn"], taskdef["taskRoleArn"]) == (VALUES.execution_role_arn, VALUES.task_role_arn)
    # CodeDeployToECS puts the image URI in place of the placeholder before registering
    # (https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-ECSbluegreen.html).
    taskdef["containerDefinitions"][0]["image"] = f"{REPOSITORY_URL}:0123abc"
    assert_valid_request("ecs", "RegisterTaskDefinition", taskdef)
    with mock_aws():
        registered = boto3.client("ecs", region_name=REGION).register_task_definition(**taskdef)
    assert registered["taskDefinition"]["family"] == VALUES.family


def test_appspec_has_the_shape_codedeploy_documents_for_ecs(stage: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-structure-resources.html
    appspec = yaml.safe_load(stage.outputs["appspec"])
    assert appspec["version"] == 0.0
    (resource,) = appspec["Resources"]
    target = resource["TargetService"]
    assert target["Type"] == "AWS::ECS::Service"
    assert target["Properties"]["TaskDefinition"] == "<TASK_DEFINITION>"
    assert target["Properties"]["TaskDefinition"] == contracts.placeholder(contracts.TASK_DEFINITION_PLACEHOLDER)
    assert target["Properties"]["LoadBalancerInfo"] == {"ContainerName": "web", "ContainerPort": 8080}


def test_buildspec_shape(stage: ProgramRun) -> None:
    # https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html
    spec = buildspec_of(stage)
    assert spec["version"] == 0.2
    assert spec["env"]["shell"] == "bash"
    assert set(spec["phases"]) == {"pre_build", "build", "post_build"}
    # A failed login or build stops the run instead of writing a deployable artifact.
    assert spec["phases"]["pre_build"]["on-failure"] == spec["phases"]["build"]["on-failure"] == "ABORT"
    variables = spec["env"]["variables"]
    assert spec["artifacts"]["base-directory"] == variables["OUTPUT_DIR"] == contracts.BUILD_OUTPUT_DIR
    # The one output artifact the Deploy stage reads, by the names of the contract.
    assert sorted(spec["artifacts"]["files"]) == sorted(contracts.BUILD_OUTPUT_FILES)
    assert set(contracts.BUILD_OUTPUT_FILES) == {"imageDetail.json", "taskdef.json", "appspec.yaml"}
    assert (variables["COMMIT_FILE"], variables["IMAGE_DETAIL_FILE"]) == (
        contracts.COMMIT_FILE,
        contracts.IMAGE_DETAIL_FILE,
    )
    assert (variables["TASKDEF_FILE"], variables["APPSPEC_FILE"]) == (contracts.TASKDEF_FILE, contracts.APPSPEC_FILE)
    assert variables["REPOSITORY_URI"] == stage.outputs["projects"]["repositoryUrl"] == REPOSITORY_URL
    # The image is built for the architecture the task definition runs on.
    assert variables["IMAGE_PLATFORM"] == "linux/amd64"
    assert json.loads(stage.outputs["taskdef"])["runtimePlatform"]["cpuArchitecture"] == "X86_64"


def test_an_arm64_task_definition_builds_an_arm64_image() -> None:
    # ECS's cpuArchitecture (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#runtime-platform)
    # and Docker's platform names (https://docs.docker.com/build/building/multi-platform/).
    taskdef = json.loads(render_taskdef(VALUES))
    taskdef["runtimePlatform"]["cpuArchitecture"] = "ARM64"
    spec = yaml.safe_load(
        render_buildspec(repository_url=REPOSITORY_URL, taskdef_json=json.dumps(taskdef), appspec_yaml="")
    )
    assert spec["env"]["variables"]["IMAGE_PLATFORM"] == "linux/arm64"


def test_embedded_files_are_the_rendered_templates(stage: ProgramRun) -> None:
    assert embedded_files(stage.outputs["buildspec"]) == {
        contracts.TASKDEF_FILE: stage.outputs["taskdef"],
        contracts.APPSPEC_FILE: stage.outputs["appspec"],
    }
    assert embedded_files("version: 0.2\n") == {}


def test_buildspec_commands_pass_shellcheck(stage: ProgramRun, tmp_path: Path) -> None:
    assert shellcheck(build_script(buildspec_of(stage)), tmp_path, "buildspec") == ""


def stand_in_registry(found: ProgramRun, path: Path) -> StandInRegistry:
    """The stand-ins' repository, with the exclusions from tag immutability the program gives the repository."""
    filters = found.one(rt.ECR_REPOSITORY).props["imageTagMutabilityExclusionFilters"]
    return StandInRegistry(path, tuple(f["filter"] for f in filters))


def test_build_tags_the_commit_pushes_with_an_inline_cache_and_writes_the_deploy_artifact(
    stage: ProgramRun, tmp_path: Path
) -> None:
    spec = buildspec_of(stage)
    ecr = stand_in_registry(stage, tmp_path / "registry")
    done = run_build(
        spec,
        tmp_path,
        ecr,
        files=[(contracts.COMMIT_FILE, "9f1c2ab\n")],
        env={"PIPELINE_EXECUTION_ID": "0c8f2d4e-1111-2222-3333-444455556666"},
    )
    result, calls = done.result, done.calls
    assert result.returncode == 0, done.output

    # Logging in to ECR (https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html).
    registry = REPOSITORY_URL.split("/")[0]
    assert f"aws ecr get-login-password --region {REGION}" in calls
    assert f"docker login --username AWS --password-stdin {registry}" in calls
    assert "stdin fake-password" in calls
    (build,) = [c for c in calls if c.startswith("docker build ")]
    args = build.split()
    assert "--no-cache" not in build
    assert f"{REPOSITORY_URL}:latest" in args and f"{REPOSITORY_URL}:9f1c2ab" in args
    # The layer cache travels inside the image (inline cache) and is read back from this repository's latest
    # (https://docs.docker.com/build/cache/backends/inline/).
    assert args[args.index("--cache-from") + 1] == f"{REPOSITORY_URL}:latest"
    assert args[args.index("--build-arg") + 1] == "BUILDKIT_INLINE_CACHE=1"
    assert args[args.index("--platform") + 1] == "linux/amd64"
    assert spec["env"]["variables"]["DOCKER_BUILDKIT"] == "1"
    pushes = [c for c in calls if c.startswith("docker push ")]
    assert pushes == [f"docker push {REPOSITORY_URL}:9f1c2ab", f"docker push {REPOSITORY_URL}:latest"]

    out = tmp_path / "src" / spec["artifacts"]["base-directory"]
    assert sorted(p.name for p in out.iterdir()) == sorted(contracts.BUILD_OUTPUT_FILES)
    # imageDetail.json as CodePipeline reads it
    # (https://docs.aws.amazon.com/codepipeline/latest/userguide/file-reference.html#file-reference-ecs-bluegreen).
    # The image by its digest, as ECR has it (a digest-pinned URI is as valid as a tagged one:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#container_definition_image).
    image_detail = json.loads((out / contracts.IMAGE_DETAIL_FILE).read_text())
    assert image_detail == {"ImageURI": f"{REPOSITORY_URL}@{ecr.tags()['9f1c2ab']}"}
    # Byte for byte what the stack rendered, and what the buildspec says it carries.
    written = {name: (out / name).read_text() for name in (contracts.TASKDEF_FILE, contracts.APPSPEC_FILE)}
    assert written == {
        contracts.TASKDEF_FILE: stage.outputs["taskdef"],
        contracts.APPSPEC_FILE: stage.outputs["appspec"],
    }
    assert written == embedded_files(stage.outputs["buildspec"])


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
    done = run_build(spec, tmp_path)
    assert done.result.returncode == 0, done.output
    calls = done.calls
    assert not [c for c in calls if c.startswith(("docker buildx create", "docker pull", "docker run"))], calls
    # The sample app's Dockerfile (what the pipeline builds by default) names its registry and pulls no frontend.
    dockerfile = (FILES / "app" / "Dockerfile").read_text()
    assert re.search(r"(?m)^FROM\s+public\.ecr\.aws/", dockerfile)
    assert docker_hub_references(dockerfile) == []
    # The check itself catches both ways in.
    assert docker_hub_references("# syntax=docker/dockerfile:1\nFROM nginx:stable\n") == [
        "# syntax=docker/dockerfile:1",
        "FROM nginx:stable",
    ]


def test_build_without_commit_hash_tags_the_pipeline_execution_and_says_so(stage: ProgramRun, tmp_path: Path) -> None:
    registry = stand_in_registry(stage, tmp_path / "registry")
    done = run_build(buildspec_of(stage), tmp_path, registry, env={"PIPELINE_EXECUTION_ID": "0c8f2d4e-aaaa"})
    assert done.result.returncode == 0, done.output
    assert f"WARNING: {contracts.COMMIT_FILE} is missing" in done.result.stdout
    (build,) = [c for c in done.calls if c.startswith("docker build ")]
    assert f"{REPOSITORY_URL}:pipeline-0c8f2d4e-aaaa" in build.split()
    detail = done.source / contracts.BUILD_OUTPUT_DIR / contracts.IMAGE_DETAIL_FILE
    digest = registry.tags()["pipeline-0c8f2d4e-aaaa"]
    assert json.loads(detail.read_text()) == {"ImageURI": f"{REPOSITORY_URL}@{digest}"}


def test_task_size_and_environment_reach_the_buildspec() -> None:
    bigger = dataclasses.replace(VALUES, cpu=512, memory=1024, environment={"GREETING": "bonjour"})
    spec = buildspec_of(stage_run(stack_config(STACK_VALUES), bigger))
    # Decoded here as the build's `base64 -d` does, not through the program's own reader.
    taskdef = json.loads(base64.b64decode(spec["env"]["variables"]["TASKDEF_JSON_BASE64"]))
    assert (taskdef["cpu"], taskdef["memory"]) == ("512", "1024")
    assert taskdef["containerDefinitions"][0]["environment"] == [{"name": "GREETING", "value": "bonjour"}]


# --- The release project: tags the image a deployment takes into production -----------------------------------


def release_spec(found: ProgramRun) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(
        found.one(rt.CODEBUILD_PROJECT, "build-release-project").props["source"]["buildspec"]
    )
    return doc


def test_release_project_runs_the_release_script_without_docker(stage: ProgramRun) -> None:
    project = stage.one(rt.CODEBUILD_PROJECT, "build-release-project").props
    role = stage.one(rt.IAM_ROLE, "build-release-role")
    logs = stage.one(rt.LOG_GROUP, "build-release-logs").props
    assert project["name"] == f"{PREFIX}-release"
    assert project["serviceRole"] == role.state["arn"]
    assert project["source"]["type"] == "CODEPIPELINE" and project["artifacts"] == {"type": "CODEPIPELINE"}
    env = project["environment"]
    assert not env.get("privilegedMode"), "it only calls ECR's API"
    assert (env["image"], env["computeType"]) == ("aws/codebuild/standard:8.0", "BUILD_GENERAL1_SMALL")
    assert project["logsConfig"]["cloudwatchLogs"]["groupName"] == logs["name"] == f"/aws/codebuild/{PREFIX}-release"
    assert logs["retentionInDays"] == 30
    spec = release_spec(stage)
    variables = spec["env"]["variables"]
    script = base64.b64decode(variables["RELEASE_SCRIPT_BASE64"]).decode()
    assert script == (FILES / "release.sh").read_text(), "the script byte for byte"
    assert (variables["LIVE_TAG"], variables["ROLLBACK_TAG"], variables["DEPLOYING_TAG"]) == RELEASE_TAGS
    # It reads the build's output artifact, its input.
    assert variables["IMAGE_DETAIL_FILE"] == contracts.IMAGE_DETAIL_FILE


def test_release_role_may_only_read_and_retag_images_of_its_repository(stage: ProgramRun) -> None:
    doc = policy_of(stage.one(rt.IAM_ROLE_POLICY, "build-release-role-policy"))
    repo_arn = stage.one(rt.ECR_REPOSITORY).state["arn"]
    # Re-tagging an image is putting its manifest again under the new tag
    # (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-retag.html).
    tag = statement(doc, "TagImagesOfTheRepository")
    assert (tag["Action"], tag["Resource"]) == (["ecr:BatchGetImage", "ecr:PutImage"], [repo_arn])
    log_arn = stage.one(rt.LOG_GROUP, "build-release-logs").state["arn"]
    assert statement(doc, "WriteReleaseLogs")["Resource"] == [f"{log_arn}:*"]
    assert not [s for s in doc["Statement"] if "*" in s["Resource"]]


def test_release_script_and_buildspec_pass_shellcheck(stage: ProgramRun, tmp_path: Path) -> None:
    script = (FILES / "release.sh").read_text()
    assert shellcheck(script.removeprefix("#!/usr/bin/env bash\n"), tmp_path, "release") == ""
    assert shellcheck(build_script(release_spec(stage)), tmp_path, "release-buildspec") == ""


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


class Release:
    """files/release.sh as CodeBuild runs it (bash, the AWS CLI, the build's imageDetail.json) against an ECR
    endpoint."""

    def __init__(self, tmp_path: Path, endpoint: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **clean_env(tmp_path),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "LIVE_TAG": LIVE_TAG,
            "ROLLBACK_TAG": ROLLBACK_TAG,
            "DEPLOYING_TAG": DEPLOYING_TAG,
        }

    def __call__(self, commit: str, step: str) -> subprocess.CompletedProcess[str]:
        detail = self.tmp_path / contracts.IMAGE_DETAIL_FILE
        detail.write_text(json.dumps({"ImageURI": f"{REPOSITORY_URL}:{commit}"}))
        return subprocess.run(
            ["bash", str(FILES / "release.sh"), str(detail)],
            env={**self.env, "RELEASE_STEP": step},
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.mark.e2e
def test_release_script_moves_the_tags_in_ecr_with_the_aws_cli(tmp_path: Path) -> None:
    with moto_server(tmp_path, enforce_iam_after=None) as endpoint:
        ecr = client("ecr", endpoint)
        ecr.create_repository(repositoryName=PREFIX)
        for commit, layer in (("c01", "1"), ("c02", "2"), ("c03", "3")):
            ecr.put_image(repositoryName=PREFIX, imageManifest=manifest(layer), imageTag=commit)
        release = Release(tmp_path, endpoint)

        def tags() -> dict[str, set[str]]:
            images = ecr.describe_images(repositoryName=PREFIX)["imageDetails"]
            return {next(t for t in i["imageTags"] if t.startswith("c0")): set(i["imageTags"]) for i in images}

        for commit in ("c01", "c02"):
            for step in (RELEASE_STEP_DEPLOYING, RELEASE_STEP_LIVE):
                done = release(commit, step)
                assert done.returncode == 0, done.stdout + done.stderr
        assert tags() == {"c01": {"c01", ROLLBACK_TAG}, "c02": {"c02", LIVE_TAG, DEPLOYING_TAG}, "c03": {"c03"}}

        # A re-run (retrying the stage) changes nothing: the same image keeps live, the rollback stays.
        assert release("c02", RELEASE_STEP_LIVE).returncode == 0
        assert tags()["c01"] == {"c01", ROLLBACK_TAG} and LIVE_TAG in tags()["c02"]

        # An image that expired while the execution waited for approval: refused before the deployment starts.
        ecr.batch_delete_image(repositoryName=PREFIX, imageIds=[{"imageTag": "c03"}])
        done = release("c03", RELEASE_STEP_DEPLOYING)
        assert done.returncode == 1
        assert f"{PREFIX}:c03 no longer exists in ECR" in done.stderr
        assert tags()["c02"] == {"c02", LIVE_TAG, DEPLOYING_TAG}, "nothing moved"
