"""The build's AWS Foundational Security Best Practices (FSBP) and cdk-nag controls: ECR.2 (tag immutability),
AwsSolutions-CB4 (a customer-managed key for the CodeBuild projects' artifacts) and CodeBuild.5 (privileged
mode, failing by design on the build project).

- ECR.2: the repository is ``IMMUTABLE_WITH_EXCLUSION`` and exempts exactly the tags the pipeline moves; the
  buildspec deploys the existing image when a commit's tag exists already (run with stand-ins for ``aws`` and
  ``docker``, and end to end with the AWS CLI against moto_server), and the release script moves only exempt
  tags.
- CB4: with ``buildEncryptionKey`` (the default) one rotating customer-managed key encrypts every CodeBuild
  project's output and the pipeline's artifact store, and every role touching artifacts may use it, and no more;
  dev turns it off, so the rule fires there, on every project.
- The three pack rules on violating and compliant resources, on the committed stacks, and on a stack that
  regresses.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml

from components import contracts
from components.artifact_store import KEY_READ, KEY_READ_WRITE
from components.build_stage import (
    DEPLOYING_TAG,
    LATEST_TAG,
    LIVE_TAG,
    MUTABLE_TAGS,
    RELEASE_STEP_DEPLOYING,
    RELEASE_STEP_LIVE,
    ROLLBACK_TAG,
    BuildStage,
    BuildStageArgs,
    tag_mutability_exclusion_filters,
)
from components.config_types import ConfigError
from components.templates import FILES
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from offline.pricing import estimate, load_prices
from policy import resource_types as rt
from policy import rules
from policy.rules import UNKNOWN, Resource
from support import bundles, pack
from support.aws import assert_valid_request, by_sid, client, moto_server, parliament_findings, policy_of
from support.buildspec import BuildRun, StandInRegistry, run_build
from support.stacks import REGION, STACKS, committed_run, run, stack_config, stack_run
from support.tools import clean_env

PREFIX = bundles.PREFIX
REPOSITORY_URL = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{PREFIX}"
ECR = botocore.session.get_session().get_service_model("ecr")


def stage_run(values: dict[str, str] | None = None) -> ProgramRun:
    cfg = stack_config({"appName": "shop", **(values or {})})

    def build() -> None:
        BuildStage("build", BuildStageArgs(cfg.context, cfg.build, bundles.taskdef_values()))

    return run(build)


@pytest.fixture(scope="module")
def stage() -> ProgramRun:
    return stage_run()


def spec_of(found: ProgramRun, name: str = "build-project") -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(found.one(rt.CODEBUILD_PROJECT, name).props["source"]["buildspec"])
    return doc


_RUNS: dict[tuple[str, str], ProgramRun] = {}


def engine_run(stack: str, engine: str) -> ProgramRun:
    """The committed stack with the given deployment engine, made once per module."""
    if (stack, engine) not in _RUNS:
        _RUNS[stack, engine] = stack_run(stack, overrides={"deploymentEngine": engine})
    return _RUNS[stack, engine]


def constraint_problems(shape: Any, value: Any, path: str) -> Iterator[str]:
    """What botocore's ParamValidator leaves out: list lengths, string lengths and patterns of the model."""
    meta = shape.metadata
    if shape.type_name == "structure":
        for key, member in value.items():
            yield from constraint_problems(shape.members[key], member, f"{path}.{key}")
    elif shape.type_name == "list":
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            yield f"{path}: {len(value)} items, allowed {meta.get('min', 0)} to {meta.get('max')}"
        for i, item in enumerate(value):
            yield from constraint_problems(shape.member, item, f"{path}[{i}]")
    elif shape.type_name == "string":
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            yield f"{path}: {value!r} has {len(value)} characters"
        if "pattern" in meta and not re.search(meta["pattern"], value):
            yield f"{path}: {value!r} does not match {meta['pattern']}"


# --- ECR.2: the repository's tags --------------------------------------------------------------------------


def test_the_repository_is_immutable_but_for_the_tags_the_pipeline_moves(stage: ProgramRun) -> None:
    # https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html
    repo = stage.one(rt.ECR_REPOSITORY).props
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    filters = repo["imageTagMutabilityExclusionFilters"]
    assert filters == tag_mutability_exclusion_filters()
    assert sorted(f["filter"] for f in filters) == sorted([LATEST_TAG, LIVE_TAG, ROLLBACK_TAG, DEPLOYING_TAG])
    assert rules.check_resource(rt.ECR_REPOSITORY, repo) == []


def test_the_repository_settings_are_requests_ecr_accepts(stage: ProgramRun) -> None:
    """CreateRepository (creation) and PutImageTagMutability (a later change) as the provider sends them, against
    ECR's model: WILDCARD is the only filter type, 1 to 5 filters, each 1 to 128 of [0-9a-zA-Z._*-].
    https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageTagMutabilityExclusionFilter.html
    https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_PutImageTagMutability.html"""
    repo = stage.one(rt.ECR_REPOSITORY).props
    settings = {
        "imageTagMutability": repo["imageTagMutability"],
        "imageTagMutabilityExclusionFilters": repo["imageTagMutabilityExclusionFilters"],
    }
    for operation in ("CreateRepository", "PutImageTagMutability"):
        request = {"repositoryName": repo["name"], **settings}
        assert_valid_request("ecr", operation, request)
        shape = ECR.operation_model(operation).input_shape
        assert list(constraint_problems(shape, request, operation)) == []
    # The provider's documentation adds: at most 2 wildcards per filter (pulumi-aws ecr.Repository).
    assert all(f["filter"].count("*") <= 2 for f in settings["imageTagMutabilityExclusionFilters"])
    # The checks can fail: a sixth filter, or a character ECR refuses.
    too_many = {
        **request,
        "imageTagMutabilityExclusionFilters": [{"filter": f"t{i}", "filterType": "WILDCARD"} for i in range(6)],
    }
    assert list(constraint_problems(shape, too_many, "x"))
    slash = {**request, "imageTagMutabilityExclusionFilters": [{"filter": "a/b", "filterType": "WILDCARD"}]}
    assert list(constraint_problems(shape, slash, "x"))


def wildcard_matches(pattern: str, tag: str) -> bool:
    """An ECR WILDCARD filter: ``*`` matches any characters, every other allowed character itself (the allowed
    characters, [0-9a-zA-Z._*-], include none of fnmatch's other specials)."""
    return fnmatchcase(tag, pattern)


@pytest.mark.parametrize(
    "tag",
    [
        "9f1c2ab",
        "0123456789abcdef0123456789abcdef01234567",
        "pipeline-0c8f2d4e-1111-2222-3333-444455556666",
        "pipeline-build-42",
        "latest-1",
        "lived",
    ],
)
def test_commit_and_execution_tags_are_immutable(tag: str) -> None:
    """The tags the build gives an image (files/buildspec.yml: the commit, else the pipeline execution) match no
    exclusion, so each names one image for good; each exclusion matches its own tag and no other."""
    filters = [f["filter"] for f in tag_mutability_exclusion_filters()]
    assert not [f for f in filters if wildcard_matches(f, tag)]
    for tag_ in MUTABLE_TAGS:
        assert [f for f in filters if wildcard_matches(f, tag_)] == [tag_]


def test_the_pipeline_moves_only_exempt_tags(stage: ProgramRun) -> None:
    """The build moves `latest`, the release project the three release tags; the ecs engine's deploy step tags
    nothing. Every tag that moves is an exclusion."""
    exempt = {f["filter"] for f in tag_mutability_exclusion_filters()}
    build = spec_of(stage)["env"]["variables"]
    release = spec_of(stage, "build-release-project")["env"]["variables"]
    assert {build["LATEST_TAG"], release["LIVE_TAG"], release["ROLLBACK_TAG"], release["DEPLOYING_TAG"]} == exempt
    deploy_script = (FILES / "ecs-deploy.sh").read_text()
    assert not re.search(r"put-image|docker (push|tag)|batch-delete-image", deploy_script)


# --- ECR.2: the buildspec with an immutable repository (stand-ins for aws and docker) -----------------------------


def registry_of(found: ProgramRun, path: Path) -> StandInRegistry:
    filters = found.one(rt.ECR_REPOSITORY).props["imageTagMutabilityExclusionFilters"]
    return StandInRegistry(path, tuple(f["filter"] for f in filters))


def build(found: ProgramRun, workdir: Path, ecr: StandInRegistry, commit: str, **env: str) -> BuildRun:
    return run_build(spec_of(found), workdir, ecr, files=[(contracts.COMMIT_FILE, f"{commit}\n")], env=env)


def image_uri(done: BuildRun) -> str:
    detail = done.source / contracts.BUILD_OUTPUT_DIR / contracts.IMAGE_DETAIL_FILE
    uri: str = json.loads(detail.read_text())["ImageURI"]
    return uri


def test_a_first_build_pushes_the_commit_and_latest_and_deploys_the_pushed_image(
    stage: ProgramRun, tmp_path: Path
) -> None:
    ecr = registry_of(stage, tmp_path / "ecr")
    done = build(stage, tmp_path / "run", ecr, "9f1c2ab")
    assert done.result.returncode == 0, done.output
    assert f"aws ecr describe-images --repository-name {PREFIX} --image-ids imageTag=9f1c2ab" in " ".join(done.calls)
    assert [c for c in done.calls if c.startswith("docker push")] == [
        f"docker push {REPOSITORY_URL}:9f1c2ab",
        f"docker push {REPOSITORY_URL}:{LATEST_TAG}",
    ]
    digest = ecr.tags()["9f1c2ab"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert ecr.tags()[LATEST_TAG] == digest
    # The image by digest: what ECR stores under the commit's tag.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#container_definition_image
    assert image_uri(done) == f"{REPOSITORY_URL}@{digest}"


def test_a_rerun_of_a_built_commit_builds_nothing_and_deploys_the_existing_image(
    stage: ProgramRun, tmp_path: Path
) -> None:
    ecr = registry_of(stage, tmp_path / "ecr")
    first = build(stage, tmp_path / "first", ecr, "9f1c2ab")
    assert first.result.returncode == 0, first.output
    before = ecr.tags()
    again = build(stage, tmp_path / "again", ecr, "9f1c2ab")
    assert again.result.returncode == 0, again.output
    assert not [c for c in again.calls if c.startswith(("docker build", "docker push"))]
    assert "exists already" in again.result.stdout
    assert ecr.tags() == before, "nothing pushed"
    assert image_uri(again) == image_uri(first) == f"{REPOSITORY_URL}@{before['9f1c2ab']}"


def test_latest_moves_with_every_new_commit_and_a_commit_tag_never_does(stage: ProgramRun, tmp_path: Path) -> None:
    ecr = registry_of(stage, tmp_path / "ecr")
    assert build(stage, tmp_path / "c1", ecr, "aaaaaaa").result.returncode == 0
    c1 = ecr.tags()["aaaaaaa"]
    assert build(stage, tmp_path / "c2", ecr, "bbbbbbb").result.returncode == 0
    tags = ecr.tags()
    assert tags[LATEST_TAG] == tags["bbbbbbb"] != c1
    # Re-running the older commit deploys its image; `latest` stays on the newest build (the layer cache).
    rerun = build(stage, tmp_path / "c1-again", ecr, "aaaaaaa")
    assert rerun.result.returncode == 0, rerun.output
    assert image_uri(rerun) == f"{REPOSITORY_URL}@{c1}"
    assert ecr.tags() == tags


def test_without_the_lookup_a_rerun_would_fail_on_the_immutable_tag(stage: ProgramRun, tmp_path: Path) -> None:
    """What the lookup guards against really happens: the same buildspec without it pushes the commit's tag
    again, which ECR refuses (ImageTagAlreadyExistsException,
    https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_PutImage.html), failing the build."""
    ecr = registry_of(stage, tmp_path / "ecr")
    assert build(stage, tmp_path / "first", ecr, "9f1c2ab").result.returncode == 0
    spec = spec_of(stage)
    commands = spec["phases"]["pre_build"]["commands"]
    spec["phases"]["pre_build"]["commands"] = [c for c in commands if "describe-images" not in c]
    assert len(spec["phases"]["pre_build"]["commands"]) == len(commands) - 1
    done = run_build(spec, tmp_path / "again", ecr, files=[(contracts.COMMIT_FILE, "9f1c2ab\n")])
    assert done.result.returncode != 0
    assert "already exists" in done.result.stderr


def test_an_ecr_error_other_than_not_found_stops_the_build_before_docker(stage: ProgramRun, tmp_path: Path) -> None:
    ecr = registry_of(stage, tmp_path / "ecr")
    denied = (
        "An error occurred (AccessDeniedException) when calling the DescribeImages operation: User is not "
        "authorized to perform: ecr:DescribeImages"
    )
    done = build(stage, tmp_path / "run", ecr, "9f1c2ab", ECR_ERROR=denied)
    assert done.result.returncode != 0
    assert "AccessDeniedException" in done.result.stderr
    assert not [c for c in done.calls if c.startswith("docker build")]
    assert not (done.source / contracts.BUILD_OUTPUT_DIR).exists(), "no deployable artifact"


def test_the_build_role_may_look_up_images_of_its_repository_only(stage: ProgramRun) -> None:
    # DescribeImages acts on a repository (Service Authorization Reference, Amazon ECR).
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html
    role_policy = stage.one(rt.IAM_ROLE_POLICY, "build-role-policy")
    lookup = by_sid(policy_of(role_policy))["FindTheCommitsImage"]
    assert (lookup["Action"], lookup["Resource"]) == (
        ["ecr:DescribeImages"],
        [stage.one(rt.ECR_REPOSITORY).state["arn"]],
    )
    assert parliament_findings(role_policy.props["policy"]) == []


# --- ECR.2 end to end: the buildspec and the release script with the AWS CLI against moto_server ---------------

FAKE_DOCKER_PUSHING_TO_ECR = r"""#!/usr/bin/env bash
# docker's part, pushing to ECR through its API: every build is a new image (a manifest with a random layer).
echo "docker $*" >> "$CALLS"
case "$1" in
  login)
    cat > /dev/null
    ;;
  build)
    layer="$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)"
    media=application/vnd.docker
    config="{\"mediaType\":\"$media.container.image.v1+json\",\"size\":1,\"digest\":\"sha256:$layer\"}"
    rootfs="{\"mediaType\":\"$media.image.rootfs.diff.tar.gzip\",\"size\":1,\"digest\":\"sha256:$layer\"}"
    manifest="\"mediaType\":\"$media.distribution.manifest.v2+json\",\"config\":$config,\"layers\":[$rootfs]"
    # No newline after it, as docker writes a manifest (its digest is that of its bytes).
    printf '%s' "{\"schemaVersion\":2,$manifest}" > "$REGISTRY/manifest.json"
    ;;
  push)
    path="${2#*/}"
    aws ecr put-image --repository-name "${path%:*}" --image-tag "${path##*:}" \
      --image-manifest "file://$REGISTRY/manifest.json" > /dev/null
    ;;
esac
"""


@pytest.mark.e2e
def test_builds_and_releases_keep_commit_tags_immutable_in_ecr(stage: ProgramRun, tmp_path: Path) -> None:
    """The repository as the program declares it, the buildspec and files/release.sh with the AWS CLI: two
    commits, a re-run, two deployments. Only `latest` and the release tags ever move. moto implements ECR's
    exclusions (lenient: a refusal there is a real bug, an acceptance proves less)."""
    repo = stage.one(rt.ECR_REPOSITORY).props
    with moto_server(tmp_path, enforce_iam_after=None) as endpoint:
        ecr = client("ecr", endpoint)
        ecr.create_repository(
            repositoryName=PREFIX,
            imageTagMutability=repo["imageTagMutability"],
            imageTagMutabilityExclusionFilters=repo["imageTagMutabilityExclusionFilters"],
        )
        credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        state = StandInRegistry(tmp_path / "state")

        def build_commit(commit: str, workdir: str) -> str:
            done = run_build(
                spec_of(stage),
                tmp_path / workdir,
                state,
                files=[(contracts.COMMIT_FILE, f"{commit}\n")],
                stand_ins={"docker": FAKE_DOCKER_PUSHING_TO_ECR},
                env={**credentials, "AWS_ENDPOINT_URL": endpoint},
            )
            assert done.result.returncode == 0, done.output
            return image_uri(done)

        def digest(tag: str) -> str:
            found: str = ecr.describe_images(repositoryName=PREFIX, imageIds=[{"imageTag": tag}])["imageDetails"][0][
                "imageDigest"
            ]
            return found

        first = build_commit("aaaaaaa", "c1")
        assert first == f"{REPOSITORY_URL}@{digest('aaaaaaa')}" and digest(LATEST_TAG) == digest("aaaaaaa")
        assert build_commit("aaaaaaa", "c1-again") == first, "the re-run deploys the image it built before"
        second = build_commit("bbbbbbb", "c2")
        assert digest(LATEST_TAG) == digest("bbbbbbb") != digest("aaaaaaa")

        # The repository refuses to move a commit's tag (what the re-run avoids).
        manifest = ecr.batch_get_image(repositoryName=PREFIX, imageIds=[{"imageTag": "bbbbbbb"}])["images"][0]
        with pytest.raises(ecr.exceptions.ClientError, match=r"(ImageAlreadyExists|ImageTagAlreadyExists)"):
            ecr.put_image(repositoryName=PREFIX, imageTag="aaaaaaa", imageManifest=manifest["imageManifest"])

        def release(uri: str, step: str) -> None:
            detail = tmp_path / f"detail-{step}.json"
            detail.write_text(json.dumps({"ImageURI": uri}))
            done = subprocess.run(
                ["bash", str(FILES / "release.sh"), str(detail)],
                env={
                    **clean_env(tmp_path),
                    **credentials,
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_DEFAULT_REGION": REGION,
                    "RELEASE_STEP": step,
                    "LIVE_TAG": LIVE_TAG,
                    "ROLLBACK_TAG": ROLLBACK_TAG,
                    "DEPLOYING_TAG": DEPLOYING_TAG,
                },
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr

        for uri in (first, second):
            release(uri, RELEASE_STEP_DEPLOYING)
            release(uri, RELEASE_STEP_LIVE)
        images = ecr.describe_images(repositoryName=PREFIX)["imageDetails"]
        tags = {i["imageDigest"]: set(i.get("imageTags", [])) for i in images}
        assert tags == {
            digest("aaaaaaa"): {"aaaaaaa", ROLLBACK_TAG},
            digest("bbbbbbb"): {"bbbbbbb", LATEST_TAG, LIVE_TAG, DEPLOYING_TAG},
        }


# --- AwsSolutions-CB4: the artifacts' customer-managed key --------------------------------------------------------


ENGINES = ("codedeploy", "ecs")


def projects_of(found: ProgramRun) -> list[Registration]:
    return found.of_type(rt.CODEBUILD_PROJECT)


@pytest.mark.parametrize("engine", ENGINES)
def test_one_rotating_customer_managed_key_encrypts_every_project_and_the_artifact_store(engine: str) -> None:
    found = engine_run("prod", engine)
    key = found.one(rt.KMS_KEY, pack.ARTIFACT_KEY)
    # https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html
    assert key.props["enableKeyRotation"] is True
    assert found.one(rt.KMS_ALIAS, f"{pack.ARTIFACT_KEY}-alias").props["name"] == "alias/sample-app-prod-artifacts"
    names = {p.name for p in projects_of(found)}
    assert names == {"build-project", "build-release-project"} | ({"deploy-project"} if engine == "ecs" else set())
    for project in projects_of(found):
        # https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-kms.html
        assert project.props["encryptionKey"] == key.state["arn"], project.name
    # CodeBuild encrypts its output with the project's key whatever the pipeline's store names, so the store
    # names the same key: https://docs.aws.amazon.com/codepipeline/latest/userguide/S3-artifact-encryption.html
    (store,) = found.one(rt.CODEPIPELINE_PIPELINE).props["artifactStores"]
    assert store["encryptionKey"] == {"id": key.state["arn"], "type": "KMS"}


def test_the_key_policy_lets_the_account_administer_the_key_through_iam_and_nothing_else(prod: ProgramRun) -> None:
    # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam
    key = prod.one(rt.KMS_KEY, pack.ARTIFACT_KEY)
    (statement,) = policy_of(key)["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    assert (statement["Effect"], statement["Resource"]) == ("Allow", "*")
    assert_valid_request(
        "kms",
        "CreateKey",
        {"Description": key.props["description"], "Policy": key.props["policy"], "KeyUsage": "ENCRYPT_DECRYPT"},
    )


def key_use(found: ProgramRun, policy_name: str) -> list[str]:
    """The KMS actions a role's policy grants on the artifact key (none: no statement naming it)."""
    key_arn = found.one(rt.KMS_KEY, pack.ARTIFACT_KEY).state["arn"]
    policy = found.one(rt.IAM_ROLE_POLICY, policy_name)
    assert parliament_findings(policy.props["policy"]) == [], policy_name
    statements = [s for s in policy_of(policy)["Statement"] if key_arn in s["Resource"]]
    assert all(s["Resource"] == [key_arn] for s in statements), policy_name
    return sorted(a for s in statements for a in s["Action"])


@pytest.mark.parametrize("engine", ENGINES)
def test_each_role_touching_artifacts_may_use_the_key_as_far_as_it_needs(engine: str) -> None:
    """S3 asks KMS for a data key when an SSE-KMS object is written, and to decrypt when it is read (or a
    multipart upload completes), as the caller: writers need both, readers Decrypt.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html ("Permissions"), and
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions for multipart uploads."""
    found = engine_run("prod", engine)
    writes, reads = sorted(KEY_READ_WRITE), sorted(KEY_READ)
    assert writes == ["kms:Decrypt", "kms:GenerateDataKey"] and reads == ["kms:Decrypt"]
    assert key_use(found, "deploy-build-artifacts") == writes, "the build reads the source, writes its output"
    assert key_use(found, "deploy-release-artifacts") == reads, "the release steps read imageDetail.json"
    assert key_use(found, "deploy-pipeline-policy") == writes, "the pipeline writes the source artifact"
    if engine == "ecs":
        assert key_use(found, "deploy-deploy-artifacts") == reads, "the deploy step reads the build's artifact"
    # Nothing else names the key.
    key_arn = found.one(rt.KMS_KEY, pack.ARTIFACT_KEY).state["arn"]
    granting = {p.name for p in found.of_type(rt.IAM_ROLE_POLICY) if key_arn in p.props["policy"]}
    assert granting == {"deploy-build-artifacts", "deploy-release-artifacts", "deploy-pipeline-policy"} | (
        {"deploy-deploy-artifacts"} if engine == "ecs" else set()
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_without_the_key_the_artifacts_use_aws_s3_and_cb4_fires_on_every_project(engine: str) -> None:
    found = engine_run("dev", engine)
    assert not [k for k in found.of_type(rt.KMS_KEY) if k.name == pack.ARTIFACT_KEY]
    assert all(not p.props.get("encryptionKey") for p in projects_of(found))
    (store,) = found.one(rt.CODEPIPELINE_PIPELINE).props["artifactStores"]
    assert "encryptionKey" not in store
    assert not [p.name for p in found.of_type(rt.IAM_ROLE_POLICY) if '"kms:' in p.props["policy"]]
    fired = {pack.resource_name(v) for v in pack.violations(found) if v.rule == pack.CUSTOMER_MANAGED_KEY}
    assert fired == {p.name for p in projects_of(found)}


def test_the_key_is_on_by_default_and_only_dev_turns_it_off() -> None:
    assert stack_config({}).build.build_encryption_key is True
    assert stack_config({"buildEncryptionKey": "false"}).build.build_encryption_key is False
    with pytest.raises(ConfigError) as raised:
        stack_config({"buildEncryptionKey": "maybe"})
    (problem,) = raised.value.problems
    assert problem.startswith("gitlab-fargate:buildEncryptionKey:") and "'maybe'" in problem
    dev = (Path(__file__).parent.parent / "Pulumi.dev.yaml").read_text()
    assert re.search(r"(?m)^  # .*\$1/month.*\n(  # .*\n)*  gitlab-fargate:buildEncryptionKey: false$", dev)
    assert "buildEncryptionKey" not in (Path(__file__).parent.parent / "Pulumi.prod.yaml").read_text()


def test_the_key_costs_one_key_month_in_the_estimate(prod: ProgramRun) -> None:
    price = load_prices().regions[REGION]["kms_key_month"]
    with_key = estimate(prod, REGION)
    without = estimate(stack_run("prod", overrides={"buildEncryptionKey": "false"}), REGION)
    assert with_key.total - without.total == pytest.approx(price)
    (line,) = [line for line in with_key.fixed if line.item == "KMS keys"]
    assert pack.ARTIFACT_KEY in line.basis


def test_the_project_and_pipeline_requests_with_the_key_are_valid(prod: ProgramRun) -> None:
    """CreateProject's encryptionKey and CreatePipeline's artifactStore.encryptionKey (type KMS), as the provider
    sends them. https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html
    https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_EncryptionKey.html"""
    project = prod.one(rt.CODEBUILD_PROJECT, "build-project").props
    environment = {k: project["environment"][k] for k in ("type", "image", "computeType", "privilegedMode")}
    assert_valid_request(
        "codebuild",
        "CreateProject",
        {
            "name": project["name"],
            "source": {"type": "CODEPIPELINE", "buildspec": project["source"]["buildspec"]},
            "artifacts": {"type": "CODEPIPELINE"},
            "environment": environment,
            "serviceRole": project["serviceRole"],
            "encryptionKey": project["encryptionKey"],
        },
    )
    (store,) = prod.one(rt.CODEPIPELINE_PIPELINE).props["artifactStores"]
    assert_valid_request(
        "codepipeline",
        "CreatePipeline",
        {
            "pipeline": {
                "name": "p",
                "roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/p",
                "artifactStore": {k: store[k] for k in ("type", "location", "encryptionKey")},
                "stages": [],
            }
        },
    )


# --- The pack rules -----------------------------------------------------------------------------------------


def fires(rule: str, resource_type: str, props: dict[str, Any]) -> bool:
    return rule in {v.rule for v in rules.check_resource(resource_type, props)}


ECR_2 = "fsbp-ecr-2-tag-immutability"


@pytest.mark.parametrize(
    ("props", "violates"),
    [
        ({}, True),  # the provider's default is MUTABLE
        ({"imageTagMutability": "MUTABLE"}, True),
        (
            {"imageTagMutability": "MUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": [{"filter": "v*"}]},
            True,
        ),
        (
            {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": [{"filter": "*"}]},
            True,
        ),
        (
            {
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filter": "latest"}, {"filter": "**"}],
            },
            True,
        ),
        ({"imageTagMutability": "IMMUTABLE"}, False),
        (
            {
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filter": "latest"}, {"filter": "dev-*"}],
            },
            False,
        ),
        ({"imageTagMutability": UNKNOWN}, False),
        ({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": UNKNOWN}, False),
    ],
)
def test_ecr_2_requires_immutable_tags_with_exclusions_that_do_not_cover_every_tag(
    props: dict[str, Any], violates: bool
) -> None:
    assert fires(ECR_2, rt.ECR_REPOSITORY, props) is violates


KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0123abcd-0123-abcd-0123-0123456789ab"


@pytest.mark.parametrize(
    ("key", "violates"),
    [
        (None, True),
        ("", True),
        ("alias/aws/s3", True),
        (f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:alias/aws/s3", True),
        (KEY_ARN, False),
        ("alias/shop-prod-artifacts", False),
        (f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:alias/shop-prod-artifacts", False),
        (UNKNOWN, False),
    ],
)
def test_cb4_requires_a_customer_managed_key(key: Any, violates: bool) -> None:
    props = {"environment": {"image": "aws/codebuild/standard:7.0"}} | ({} if key is None else {"encryptionKey": key})
    assert fires(pack.CUSTOMER_MANAGED_KEY, rt.CODEBUILD_PROJECT, props) is violates


@pytest.mark.parametrize(("privileged", "violates"), [(True, True), (False, False), (None, False), (UNKNOWN, False)])
def test_codebuild_5_refuses_privileged_mode(privileged: Any, violates: bool) -> None:
    environment = {"image": "aws/codebuild/standard:7.0"} | (
        {} if privileged is None else {"privilegedMode": privileged}
    )
    assert fires(pack.PRIVILEGED_MODE, rt.CODEBUILD_PROJECT, {"environment": environment}) is violates


def test_the_rules_name_their_controls_and_cite_them() -> None:
    by_name = {r.name: r for r in rules.RESOURCE_RULES}
    controls = {
        ECR_2: ("ECR.2: ", "https://docs.aws.amazon.com/securityhub/latest/userguide/ecr-controls.html#ecr-2"),
        pack.PRIVILEGED_MODE: (
            "CodeBuild.5: ",
            "https://docs.aws.amazon.com/securityhub/latest/userguide/codebuild-controls.html#codebuild-5",
        ),
        pack.CUSTOMER_MANAGED_KEY: ("AwsSolutions-CB4: ", "https://github.com/cdklabs/cdk-nag/blob/main/RULES.md"),
    }
    for name, (prefix, page) in controls.items():
        rule = by_name[name]
        assert rule.description.startswith(prefix), name
        assert page in (rule.check.__doc__ or ""), name


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("stack", STACKS)
def test_on_the_committed_stacks_only_the_by_design_controls_fail(stack: str, engine: str) -> None:
    """CodeBuild.5 on the build project of every stack (it runs Docker); CB4 on dev's projects only (no key)."""
    found = engine_run(stack, engine)
    fired = {(v.rule, pack.resource_name(v)) for v in pack.violations(found)}
    build_rules = (pack.PRIVILEGED_MODE, pack.CUSTOMER_MANAGED_KEY, ECR_2)
    assert {pair for pair in fired if pair[0] in build_rules} == pack.build_by_design(found)
    assert pack.stack_violations(found, stack) == []
    assert (pack.PRIVILEGED_MODE, "build-project") in fired
    assert bool({r for r, _ in fired} & {pack.CUSTOMER_MANAGED_KEY}) is (stack == "dev")
    assert ECR_2 not in {r for r, _ in fired}


def test_the_pack_fails_prod_when_the_build_regresses(prod: ProgramRun) -> None:
    def mutated(name: str, **props: Any) -> list[Resource]:
        resources = [rules.from_registration(r) for r in prod.resources]
        return [
            Resource(r.type, r.name, {**r.props, **props}, r.urn, r.ids, r.property_dependencies)
            if r.name == name
            else r
            for r in resources
        ]

    def new_findings(resources: list[Resource]) -> set[tuple[str, str]]:
        found = {(v.rule, pack.resource_name(v)) for v in rules.check_stack(resources)}
        return found - pack.build_by_design(prod) - {(v.rule, pack.resource_name(v)) for v in pack.violations(prod)}

    assert new_findings(mutated("build-repository", imageTagMutability="MUTABLE")) == {(ECR_2, "build-repository")}
    everything = [{"filter": "*", "filterType": "WILDCARD"}]
    assert new_findings(mutated("build-repository", imageTagMutabilityExclusionFilters=everything)) == {
        (ECR_2, "build-repository")
    }
    assert new_findings(mutated("build-release-project", encryptionKey="alias/aws/s3")) == {
        (pack.CUSTOMER_MANAGED_KEY, "build-release-project")
    }
    release = prod.one(rt.CODEBUILD_PROJECT, "build-release-project").props
    privileged = {**release["environment"], "privilegedMode": True}
    assert new_findings(mutated("build-release-project", environment=privileged)) == {
        (pack.PRIVILEGED_MODE, "build-release-project")
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_committed_stack_has_the_builds_resources(stack: str) -> None:
    """The committed runs the tests above read are the program's: one repository, the projects, and the key
    exactly where buildEncryptionKey is on."""
    found = committed_run(stack)
    assert found.one(rt.ECR_REPOSITORY).props["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert bool([k for k in found.of_type(rt.KMS_KEY) if k.name == pack.ARTIFACT_KEY]) is (stack != "dev")
