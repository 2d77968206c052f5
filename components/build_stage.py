"""BuildStage: the ECR repository, the CodeBuild project that turns an uploaded zip into an image, and the
release project that tags the image a deployment takes into production.

The project's buildspec is rendered from ``files/buildspec.yml`` and carries, base64-encoded, the
``taskdef.json`` and ``appspec.yaml`` rendered from the stack (``files/taskdef.json``, ``files/appspec.yaml``).
The build writes them, with ``imageDetail.json``, into its one output artifact (``components/contracts.py``),
which the Deploy stage reads. So nothing the deployment consumes lives in the application repository, and a
change of cpu, memory or environment in the stack changes the buildspec, updates the project, and reaches the
next deployment.

The repository lives here, so this component grants pulls from it (``grant_pull``) to whoever runs its images;
the artifact bucket belongs to the DeployStage, which grants the build and release roles access to it. Both
grants are made where the components are wired (``__main__.py``).

Tags: a commit's tag names one image for good (the repository's tags are immutable), except the tags the
pipeline moves on purpose (``MUTABLE_TAGS``: ``latest`` and the release tags), which are the repository's
exclusions. A re-run for a commit whose image exists deploys that image instead of building another.

With ``buildEncryptionKey`` the projects encrypt what they write into the pipeline's artifact store with a
customer-managed KMS key of this stage (``BuildProjects.artifact_key_arn``), which the artifact store uses too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws
import yaml
from pydantic import Field

from components import contracts, iam, logs
from components.base import Component, StackContext
from components.config_types import ConfigModel, Flag, Integer, Range, Text
from components.ecs_service import CapacityShare
from components.templates import FILES, TaskDefinitionValues, render_taskdef, render_text

BuildComputeType = Literal["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"]

# Tags the release project (files/release.sh) moves around a deployment; each names one image at a time, and the
# lifecycle policy never expires an image that carries one.
LIVE_TAG = "live"
"""The image production runs: the last one a deployment succeeded with."""
ROLLBACK_TAG = "rollback"
"""The image production ran before ``live``: what a rollback returns to."""
DEPLOYING_TAG = "deploying"
"""The image of the deployment in progress (or of the last one that failed)."""
RELEASE_TAGS = (LIVE_TAG, ROLLBACK_TAG, DEPLOYING_TAG)
LATEST_TAG = "latest"
"""The newest image the build pushed: the layer cache of the next build."""
MUTABLE_TAGS = (LATEST_TAG, *RELEASE_TAGS)
"""The only tags that move from image to image: the repository's exclusions from tag immutability. Every other
tag (a commit's, or a pipeline execution's) names one image for good."""
# What the Deploy stage passes the release project as RELEASE_STEP: before the deployment, and after it succeeded.
RELEASE_STEP_DEPLOYING = "deploying"
RELEASE_STEP_LIVE = "live"
# Untagged images (images whose tags all moved to newer ones) are kept this long.
UNTAGGED_EXPIRY_DAYS = 1
# The release project only calls ECR: the smallest compute, and a short timeout.
RELEASE_COMPUTE_TYPE = "BUILD_GENERAL1_SMALL"
RELEASE_TIMEOUT_MINUTES = 5
# The task definition's cpuArchitecture -> the platform docker builds for, so image and task always match.
PLATFORMS = {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}


@dataclass(frozen=True)
class BuildEnvironment:
    """A CodeBuild environment: its curated image and the environment type that runs it."""

    image: str
    type: str


# The task's cpuArchitecture -> where its image is built natively: an x86_64 or an aarch64 curated image, each
# on its environment type (an aarch64 image runs only on ARM_CONTAINER). Both ship Docker.
# https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-available.html
# https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-compute-types.html
BUILD_ENVIRONMENTS: dict[str, BuildEnvironment] = {
    "X86_64": BuildEnvironment("aws/codebuild/standard:7.0", "LINUX_CONTAINER"),
    "ARM64": BuildEnvironment("aws/codebuild/amazonlinux-aarch64-standard:3.0", "ARM_CONTAINER"),
}


def curated_image_architecture(image: str) -> str | None:
    """The architecture of a CodeBuild curated image (``aws/codebuild/...``); ``None`` for any other image."""
    if not image.startswith("aws/codebuild/"):
        return None
    return "ARM64" if "aarch64" in image else "X86_64"


class BuildConfig(ConfigModel):
    """What builds the image, and how many images ECR keeps."""

    ecr_keep_images: Annotated[Integer, Range(1, 1000)] = Field(
        10,
        description="commit-tagged images kept in ECR, besides the images production runs (`live`) and may roll "
        "back to (`rollback`), which never expire",
    )
    build_image: Text | None = Field(
        None,
        description="CodeBuild image of the pipeline's projects; it must match `cpuArchitecture` (an aarch64 "
        "image for `ARM64`)",
        examples=[BUILD_ENVIRONMENTS["X86_64"].image],
        json_schema_extra={
            "x-default": f"`{BUILD_ENVIRONMENTS['X86_64'].image}`, `{BUILD_ENVIRONMENTS['ARM64'].image}` for `ARM64`"
        },
    )
    build_compute_type: BuildComputeType = Field("BUILD_GENERAL1_SMALL", description="CodeBuild compute type")
    build_timeout_minutes: Annotated[Integer, Range(5, 480)] = Field(20, description="CodeBuild timeout in minutes")
    build_encryption_key: Flag = Field(
        True,
        description="a customer-managed KMS key (rotated yearly, $1/month) encrypts the pipeline's artifacts, "
        "which the CodeBuild projects write and read; `false`: the AWS-managed `aws/s3` key",
    )

    def environment(self, architecture: str) -> BuildEnvironment:
        """The projects' environment for tasks of ``architecture``: ``buildImage`` or the curated default."""
        default = BUILD_ENVIRONMENTS[architecture]
        return BuildEnvironment(self.build_image or default.image, default.type)


@dataclass(frozen=True)
class BuildProjects:
    """The projects the pipeline runs, and what the Deploy stage grants them."""

    project_name: pulumi.Output[str]
    project_arn: pulumi.Output[str]
    build_role: iam.RoleRef
    """Writes the build's output artifact (read/write on the artifact store)."""
    release_project_name: pulumi.Output[str]
    """Run around a deployment (``RELEASE_STEP``) to tag the image it takes into production."""
    release_project_arn: pulumi.Output[str]
    release_role: iam.RoleRef
    """Reads the build's output artifact (read on the artifact store)."""
    repository_url: pulumi.Output[str]
    environment: BuildEnvironment
    """The CodeBuild environment of the projects (a deploy step that only calls the AWS CLI can use it too)."""
    artifact_key_arn: pulumi.Output[str] | None = None
    """The customer-managed KMS key the projects encrypt their output artifacts with (``None``: AWS-managed
    ``aws/s3``). The pipeline's artifact store must use the same key, and every project or role that reads or
    writes artifacts needs its use (``ArtifactStore`` grants both)."""


@dataclass(frozen=True)
class BuildStageArgs:
    context: StackContext
    """Unless ``force_destroy`` (dev only), the repository and the build log group are protected: destroying the
    stack, or a change that would replace them, stops with an error."""
    config: BuildConfig
    taskdef_values: pulumi.Input[TaskDefinitionValues]
    """The service's task-definition values, image ``<IMAGE1_NAME>``."""
    cpu_architecture: str = "X86_64"
    """The tasks' CPU (``taskdef_values`` says it too): the image is built natively for it."""
    capacity_provider_strategy: Sequence[CapacityShare] = ()
    """Where the service runs its tasks (empty: the ``FARGATE`` launch type): CodeDeploy's replacement tasks too."""


def render_appspec(container_name: str, container_port: int, strategy: Sequence[CapacityShare] = ()) -> str:
    """``appspec.yaml`` for CodeDeploy ECS blue/green, task definition left as ``<TASK_DEFINITION>``; with a
    capacity provider strategy when the service has one."""
    values = {
        "container_name": container_name,
        "container_port": container_port,
        "task_definition": contracts.placeholder(contracts.TASK_DEFINITION_PLACEHOLDER),
    }
    items = [{"Base": s.base, "CapacityProvider": s.capacity_provider, "Weight": s.weight} for s in strategy]
    rendered = render_text(
        contracts.APPSPEC_FILE,
        {
            **{k: json.dumps(v) for k, v in values.items()},
            "capacity_provider_strategy": f"        CapacityProviderStrategy: {json.dumps(items)}" if items else "",
        },
    )
    return rendered.rstrip("\n") + "\n"


def render_buildspec(*, repository_url: str, taskdef_json: str, appspec_yaml: str) -> str:
    """The buildspec, with the repository and the two deployment templates the build hands to Deploy."""
    architecture = json.loads(taskdef_json)["runtimePlatform"]["cpuArchitecture"]
    values = {
        "repository_url": repository_url,
        # <account>.dkr.ecr.<region>.amazonaws.com/<name>: what `aws ecr` calls the repository.
        "repository_name": repository_url.split("/", 1)[1],
        "latest_tag": LATEST_TAG,
        "platform": PLATFORMS[architecture],
        "taskdef_base64": base64.b64encode(taskdef_json.encode()).decode(),
        "appspec_base64": base64.b64encode(appspec_yaml.encode()).decode(),
        "output_dir": contracts.BUILD_OUTPUT_DIR,
        "commit_file": contracts.COMMIT_FILE,
        "image_detail_file": contracts.IMAGE_DETAIL_FILE,
        "taskdef_file": contracts.TASKDEF_FILE,
        "appspec_file": contracts.APPSPEC_FILE,
    }
    return render_text("buildspec.yml", {k: json.dumps(v) for k, v in values.items()})


# The buildspec's variables that carry the deployment's templates (files/buildspec.yml).
EMBEDDED_FILES = {"TASKDEF_JSON_BASE64": contracts.TASKDEF_FILE, "APPSPEC_YAML_BASE64": contracts.APPSPEC_FILE}


def embedded_files(buildspec: str) -> dict[str, str]:
    """The deployment's templates a rendered buildspec carries: file name -> content (what the build writes)."""
    variables = (yaml.safe_load(buildspec).get("env") or {}).get("variables") or {}
    return {name: base64.b64decode(variables[var]).decode() for var, name in EMBEDDED_FILES.items() if var in variables}


def render_release_buildspec() -> str:
    """The release project's buildspec: ``files/release.sh`` and the tags it moves."""
    values = {
        "release_script_base64": base64.b64encode((FILES / "release.sh").read_bytes()).decode(),
        "live_tag": LIVE_TAG,
        "rollback_tag": ROLLBACK_TAG,
        "deploying_tag": DEPLOYING_TAG,
        "image_detail_file": contracts.IMAGE_DETAIL_FILE,
    }
    return render_text("release-buildspec.yml", {k: json.dumps(v) for k, v in values.items()})


def tag_mutability_exclusion_filters() -> list[dict[str, str]]:
    """The repository's exclusions from tag immutability: exactly the tags the pipeline moves (``MUTABLE_TAGS``),
    each as a WILDCARD filter without a wildcard, so that it matches that one tag only.
    https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageTagMutabilityExclusionFilter.html"""
    return [{"filter": tag, "filterType": "WILDCARD"} for tag in MUTABLE_TAGS]


def artifact_key_policy(account_id: str, partition: str) -> dict[str, object]:
    """The artifact key's policy: the account administers and uses it through IAM, nothing else.

    The roles that read or write artifacts get the use of the key from IAM policies scoped to this key (the
    artifact store's grants, ``components/artifact_store.py``); without this statement no IAM policy could
    grant anything on the key (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                # In a key policy "*" is this key.
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def lifecycle_policy(keep_images: int) -> str:
    """Never expires an image a service runs or may roll back to; keeps the last ``keep_images`` others.

    ECR's evaluation rules (https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html): all
    rules are evaluated together and applied by priority; "an image that matches the tagging requirements of a
    rule cannot be expired by a rule with a lower priority", though lower rules still count it. So the first
    three rules select the images carrying ``live``, ``rollback`` or ``deploying`` and can never expire them
    (a tag names one image, and each rule keeps one), and the last rule's count of tagged images cannot touch
    them either: production's image survives any number of builds that were never deployed (prod builds on
    every push but deploys after approval). ``latest`` is always also the tag of the newest image built.
    """
    protect = [
        {
            "description": f"never expire the image tagged {tag} ({why})",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": [tag],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        }
        for tag, why in (
            (LIVE_TAG, "what production runs"),
            (ROLLBACK_TAG, "what a rollback returns to"),
            (DEPLOYING_TAG, "the deployment in progress"),
        )
    ]
    others = [
        {
            "description": f"expire untagged images after {UNTAGGED_EXPIRY_DAYS} day(s)",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": UNTAGGED_EXPIRY_DAYS,
            },
        },
        {
            "description": f"keep the last {keep_images} commit-tagged images",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["*"],
                "countType": "imageCountMoreThan",
                "countNumber": keep_images,
            },
        },
    ]
    rules = [
        {"rulePriority": priority, **rule, "action": {"type": "expire"}}
        for priority, rule in enumerate([*protect, *others], start=1)
    ]
    return json.dumps({"rules": rules})


# ECR actions of a `docker push` (and of reading the layer cache back), and of a pull.
ECR_PUSH = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]
ECR_PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
# The registry login token is account-wide: ECR defines no resource for GetAuthorizationToken, so "*".
ECR_LOGIN = iam.allow(["ecr:GetAuthorizationToken"], ["*"], sid="RegistryLogin")


class BuildStage(Component):
    projects: BuildProjects
    repository_arn: pulumi.Output[str]
    buildspec: pulumi.Output[str]
    """The build's buildspec (the project's), with the two templates below embedded."""
    taskdef_json: pulumi.Output[str]
    """``taskdef.json`` as the deploy action receives it (image ``<IMAGE1_NAME>``)."""
    appspec_yaml: pulumi.Output[str]

    def __init__(self, name: str, args: BuildStageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        ctx, cfg = args.context, args.config
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        repository = self._repository(name, ctx, cfg)
        # Created here with a retention; otherwise CodeBuild creates /aws/codebuild/<project> keeping logs forever.
        # `protect` rather than `retain_on_delete`: a retained log group (or repository) would leave the stack
        # and stay in AWS under its name, so the next `pulumi up` could not create it again.
        log_group = logs.log_group(self, f"{name}-logs", physical_name=f"/aws/codebuild/{ctx.name_prefix}", context=ctx)
        role = iam.service_role(
            self,
            f"{name}-role",
            physical_name=f"{ctx.name_prefix}-build",
            service="codebuild.amazonaws.com",
            account_id=account_id,
            statements=[
                iam.write_logs(log_group.arn, sid="WriteBuildLogs"),
                iam.allow(ECR_PUSH, [repository.arn], sid="PushToTheRepository"),
                # Whether the commit's image exists already (a re-run): its tag cannot be pushed again.
                iam.allow(["ecr:DescribeImages"], [repository.arn], sid="FindTheCommitsImage"),
                ECR_LOGIN,
            ],
            policy_name="build",
        )
        key_arn = self._artifact_key(name, ctx, account_id) if cfg.build_encryption_key else None
        environment = cfg.environment(args.cpu_architecture)
        values = pulumi.Output.from_input(args.taskdef_values)
        self.taskdef_json = values.apply(render_taskdef)
        self.appspec_yaml = values.apply(
            lambda v: render_appspec(v.container_name, v.container_port, args.capacity_provider_strategy)
        )
        self.buildspec = pulumi.Output.all(repository.repository_url, self.taskdef_json, self.appspec_yaml).apply(
            lambda v: render_buildspec(repository_url=v[0], taskdef_json=v[1], appspec_yaml=v[2])
        )
        project = aws.codebuild.Project(
            f"{name}-project",
            name=ctx.name_prefix,
            description=f"Builds and pushes the {ctx.name_prefix} image; writes the deployment's input artifact",
            service_role=role.role.arn,
            build_timeout=cfg.build_timeout_minutes,
            source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=self.buildspec),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
            # CodeBuild encrypts its output artifacts with the project's key, whatever key the pipeline's artifact
            # store names (unset: the AWS-managed aws/s3 key).
            encryption_key=key_arn,
            environment=aws.codebuild.ProjectEnvironmentArgs(
                type=environment.type,
                image=environment.image,
                compute_type=cfg.build_compute_type,
                image_pull_credentials_type="CODEBUILD",
                # Docker builds need the Docker daemon, which runs only in privileged mode: FSBP CodeBuild.5 fails
                # on this one project by design (the release and deploy projects only call AWS APIs).
                privileged_mode=True,
            ),
            logs_config=_logs_to(log_group),
            # The role must be able to write logs and push before the first build can run.
            opts=self.child(depends_on=role.ready),
        )
        release_project, release_role = self._release_project(name, ctx, environment, repository, account_id, key_arn)

        self.repository_arn = repository.arn
        self.projects = BuildProjects(
            project_name=project.name,
            project_arn=project.arn,
            build_role=role.ref,
            release_project_name=release_project.name,
            release_project_arn=release_project.arn,
            release_role=release_role,
            repository_url=repository.repository_url,
            environment=environment,
            artifact_key_arn=key_arn,
        )
        self.register_outputs(
            {
                "repository_url": repository.repository_url,
                "repository_arn": repository.arn,
                "project_name": project.name,
                "release_project_name": release_project.name,
                "log_group_name": log_group.name,
            }
        )

    def grant_pull(self, role: iam.RoleRef, purpose: str = "execution") -> aws.iam.RolePolicy:
        """Lets ``role`` pull this repository's images (a task execution role): ``<name>-<purpose>-pull``."""
        return iam.grant(
            self,
            f"{self.component_name}-{purpose}-pull",
            role,
            [iam.allow(ECR_PULL, [self.repository_arn], sid="PullFromTheRepository"), ECR_LOGIN],
            policy_name="pull-pipeline-images",
        )

    def _repository(self, name: str, ctx: StackContext, cfg: BuildConfig) -> aws.ecr.Repository:
        repository = aws.ecr.Repository(
            f"{name}-repository",
            name=ctx.name_prefix,
            # A tag names one image for good (FSBP ECR.2), except the tags the pipeline moves: `latest` with every
            # build, the release tags with every deployment.
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            image_tag_mutability_exclusion_filters=[
                aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(filter=f["filter"], filter_type=f["filterType"])
                for f in tag_mutability_exclusion_filters()
            ],
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            # Outside dev, ECR refuses to delete a repository that still holds images (the ones a running service
            # pulls), even once it is unprotected.
            force_delete=ctx.force_destroy,
            opts=self.child(protect=ctx.protect),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=lifecycle_policy(cfg.ecr_keep_images),
            opts=self.child(),
        )
        return repository

    def _artifact_key(self, name: str, ctx: StackContext, account_id: pulumi.Output[str]) -> pulumi.Output[str]:
        """The customer-managed key the projects encrypt the pipeline's artifacts with (AwsSolutions-CB4): rotated
        yearly, administered by the account through IAM. Not protected: artifacts live a month and every
        execution writes new ones, so losing the key loses nothing a re-run cannot make again."""
        partition = aws.get_partition_output(opts=self.lookup()).partition
        key = aws.kms.Key(
            f"{name}-artifact-key",
            description=f"Encrypts the {ctx.name_prefix} pipeline's artifacts (CodeBuild output, CodePipeline store)",
            enable_key_rotation=True,
            policy=pulumi.Output.json_dumps(
                pulumi.Output.all(account_id, partition).apply(lambda v: artifact_key_policy(v[0], v[1]))
            ),
            opts=self.child(),
        )
        aws.kms.Alias(
            f"{name}-artifact-key-alias",
            name=f"alias/{ctx.name_prefix}-artifacts",
            target_key_id=key.arn,
            opts=self.child(),
        )
        return key.arn

    def _release_project(
        self,
        name: str,
        ctx: StackContext,
        environment: BuildEnvironment,
        repository: aws.ecr.Repository,
        account_id: pulumi.Output[str],
        key_arn: pulumi.Output[str] | None,
    ) -> tuple[aws.codebuild.Project, iam.RoleRef]:
        """The project that moves the release tags (``files/release.sh``): no Docker, no privileged mode, and a
        role that may read and re-tag images of this one repository."""
        prefix = f"{ctx.name_prefix}-release"
        log_group = logs.log_group(
            self, f"{name}-release-logs", physical_name=f"/aws/codebuild/{prefix}", context=ctx, protect=False
        )
        role = iam.service_role(
            self,
            f"{name}-release-role",
            physical_name=prefix,
            service="codebuild.amazonaws.com",
            account_id=account_id,
            statements=[
                iam.write_logs(log_group.arn, sid="WriteReleaseLogs"),
                # Read an image's manifest and put it again under another tag: no layer is pulled or pushed.
                iam.allow(["ecr:BatchGetImage", "ecr:PutImage"], [repository.arn], sid="TagImagesOfTheRepository"),
            ],
            policy_name="release",
        )
        project = aws.codebuild.Project(
            f"{name}-release-project",
            name=prefix,
            description=f"Tags the image a {ctx.name_prefix} deployment takes into production (live, rollback)",
            service_role=role.role.arn,
            build_timeout=RELEASE_TIMEOUT_MINUTES,
            source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=render_release_buildspec()),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
            encryption_key=key_arn,
            environment=aws.codebuild.ProjectEnvironmentArgs(
                type=environment.type,
                image=environment.image,
                compute_type=RELEASE_COMPUTE_TYPE,
                image_pull_credentials_type="CODEBUILD",
            ),
            logs_config=_logs_to(log_group),
            opts=self.child(depends_on=role.ready),
        )
        return project, role.ref


def _logs_to(log_group: aws.cloudwatch.LogGroup) -> aws.codebuild.ProjectLogsConfigArgs:
    return aws.codebuild.ProjectLogsConfigArgs(
        cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(group_name=log_group.name, status="ENABLED")
    )
