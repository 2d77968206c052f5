"""BuildStage: the ECR repository and the CodeBuild project that turns an uploaded zip into an image.

The project's buildspec is rendered from ``files/buildspec.yml`` and carries, base64-encoded, the
``taskdef.json`` and ``appspec.yaml`` rendered from the stack (``files/taskdef.json``, ``files/appspec.yaml``).
The build writes them, with ``imageDetail.json``, into its one output artifact, which the Deploy stage's
CodeDeployToECS action reads. So nothing the deployment consumes lives in the application repository, and a
change of cpu, memory or environment in the stack changes the buildspec, updates the project, and reaches
the next deployment.

The repository lives here, so this component also grants the FargateService's execution role the right to
pull from it. The pipeline's artifact bucket belongs to the DeployStage, which grants this build role access
to it (the owner of a resource grants access to it; the pipeline needs this project's name, so the build
stage cannot need the deploy stage's bucket without a cycle).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.config import PipelineConfig
from components.templates import FILES, TaskDefinitionValues, render_taskdef, render_text

# The directory the build writes its output artifact from (relative to the unpacked upload).
OUTPUT_DIR = "pipeline-output"
# Tags the release project (files/release.sh) moves around a deployment; each names one image at a time, and the
# lifecycle policy never expires an image that carries one.
LIVE_TAG = "live"
"""The image production runs: the last one a deployment succeeded with."""
ROLLBACK_TAG = "rollback"
"""The image production ran before ``live``: what a rollback returns to."""
DEPLOYING_TAG = "deploying"
"""The image of the deployment in progress (or of the last one that failed)."""
RELEASE_TAGS = (LIVE_TAG, ROLLBACK_TAG, DEPLOYING_TAG)
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
class BuildStageArgs:
    name_prefix: str
    """Physical name prefix ``<appName>-<stack>`` of the repository, project, log group and role."""
    pipeline: PipelineConfig
    log_retention_days: int
    taskdef_values: pulumi.Input[TaskDefinitionValues]
    """The FargateService's task definition values, image ``<IMAGE1_NAME>``."""
    execution_role_name: pulumi.Input[str]
    """The task execution role, granted pull on the repository."""
    force_destroy: bool = False
    """``StackConfig.force_destroy`` (dev only): ``pulumi destroy`` deletes the repository with its images.
    Otherwise the repository and the build log group are protected: destroying the stack, or a change that
    would replace them, stops with an error."""


def render_appspec(container_name: str, container_port: int) -> str:
    """``appspec.yaml`` for CodeDeploy ECS blue/green, task definition left as ``<TASK_DEFINITION>``."""
    return render_text(
        "appspec.yaml",
        {"container_name": json.dumps(container_name), "container_port": json.dumps(container_port)},
    )


def render_buildspec(*, repository_url: str, taskdef_json: str, appspec_yaml: str) -> str:
    """The buildspec, with the repository and the two deployment templates the build hands to Deploy."""
    architecture = json.loads(taskdef_json)["runtimePlatform"]["cpuArchitecture"]
    values = {
        "repository_url": repository_url,
        "platform": PLATFORMS[architecture],
        "taskdef_base64": base64.b64encode(taskdef_json.encode()).decode(),
        "appspec_base64": base64.b64encode(appspec_yaml.encode()).decode(),
        "output_dir": OUTPUT_DIR,
    }
    return render_text("buildspec.yml", {k: json.dumps(v) for k, v in values.items()})


def render_release_buildspec() -> str:
    """The release project's buildspec: ``files/release.sh`` and the tags it moves."""
    values = {
        "release_script_base64": base64.b64encode((FILES / "release.sh").read_bytes()).decode(),
        "live_tag": LIVE_TAG,
        "rollback_tag": ROLLBACK_TAG,
        "deploying_tag": DEPLOYING_TAG,
    }
    return render_text("release-buildspec.yml", {k: json.dumps(v) for k, v in values.items()})


def lifecycle_policy(keep_images: int) -> str:
    """Never expires an image a service runs or may roll back to; keeps the last ``keep_images`` others.

    ECR's evaluation rules (https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html): all
    rules are evaluated together and applied by priority; "an image that matches the tagging requirements of a
    rule cannot be expired by a rule with a lower priority", though lower rules still count it. So the first
    three rules select the images carrying ``live``, ``rollback`` or ``deploying`` and can never expire them
    (a tag names one image, and each rule keeps one), and the last rule's count of tagged images cannot touch
    them either: production's image survives any number of builds that were never deployed (prod builds on
    every push but deploys after approval). ``latest`` is always also the newest commit's tag.
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


class BuildStage(pulumi.ComponentResource):
    repository_name: pulumi.Output[str]
    repository_arn: pulumi.Output[str]
    repository_url: pulumi.Output[str]
    project_name: pulumi.Output[str]
    project_arn: pulumi.Output[str]
    build_role_name: pulumi.Output[str]
    build_role_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    taskdef_json: pulumi.Output[str]
    """``taskdef.json`` as the deploy action receives it (image ``<IMAGE1_NAME>``)."""
    appspec_yaml: pulumi.Output[str]
    buildspec: pulumi.Output[str]
    release_project_name: pulumi.Output[str]
    """The project the Deploy stage runs around a deployment (``RELEASE_STEP``) to tag the image it deploys."""
    release_project_arn: pulumi.Output[str]
    release_role_name: pulumi.Output[str]
    """The release project's role: reads the build's artifact (granted by the artifact store's owner)."""

    def __init__(self, name: str, args: BuildStageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gitlab-fargate:index:BuildStage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        p = args.pipeline
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        # `protect` rather than `retain_on_delete`: retained, the repository and log group would silently leave
        # the stack on `pulumi destroy` (or on a replacement) and stay in AWS under their names, so the next
        # `pulumi up` of the same stack could not create them again; protected, any deletion stops with an
        # error before it happens, and releasing them is a deliberate `pulumi state unprotect`.
        stateful = pulumi.ResourceOptions(parent=self, protect=not args.force_destroy)

        repository = aws.ecr.Repository(
            f"{name}-repository",
            name=prefix,
            # `latest` and the cache tag move with every build, so tags must be mutable.
            image_tag_mutability="MUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            # Outside dev, ECR refuses to delete a repository that still holds images (the ones a running
            # service pulls), even once it is unprotected.
            force_delete=args.force_destroy,
            opts=stateful,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=lifecycle_policy(p.ecr_keep_images),
            opts=child,
        )
        # Created here with a retention; otherwise CodeBuild creates /aws/codebuild/<project> keeping logs forever.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/codebuild/{prefix}",
            retention_in_days=args.log_retention_days,
            opts=stateful,
        )

        role = aws.iam.Role(
            f"{name}-role",
            name=f"{prefix}-build",
            assume_role_policy=iam.service_trust_policy("codebuild.amazonaws.com", source_account=account_id),
            opts=child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            name="build",
            role=role.id,
            policy=iam.policy_document(
                iam.allow(
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    [pulumi.Output.concat(log_group.arn, ":*")],
                    sid="WriteBuildLogs",
                ),
                iam.allow(ECR_PUSH, [repository.arn], sid="PushToTheRepository"),
                ECR_LOGIN,
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution-pull",
            name="pull-pipeline-images",
            role=args.execution_role_name,
            policy=iam.policy_document(iam.allow(ECR_PULL, [repository.arn], sid="PullFromTheRepository"), ECR_LOGIN),
            opts=child,
        )

        values = pulumi.Output.from_input(args.taskdef_values)
        self.taskdef_json = values.apply(render_taskdef)
        self.appspec_yaml = values.apply(lambda v: render_appspec(v.container_name, v.container_port))
        self.buildspec = pulumi.Output.all(repository.repository_url, self.taskdef_json, self.appspec_yaml).apply(
            lambda v: render_buildspec(repository_url=v[0], taskdef_json=v[1], appspec_yaml=v[2])
        )

        project = aws.codebuild.Project(
            f"{name}-project",
            name=prefix,
            description=f"Builds and pushes the {prefix} image; writes the deployment's input artifact",
            service_role=role.arn,
            build_timeout=p.build_timeout_minutes,
            source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=self.buildspec),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
            environment=aws.codebuild.ProjectEnvironmentArgs(
                type="LINUX_CONTAINER",
                image=p.build_image,
                compute_type=p.build_compute_type,
                image_pull_credentials_type="CODEBUILD",
                # Docker builds need the Docker daemon, which runs only in privileged mode.
                privileged_mode=True,
            ),
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                    group_name=log_group.name, status="ENABLED"
                ),
            ),
            # The role must be able to write logs and push before the first build can run.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )

        release_project, release_role = self._release_project(name, args, repository, account_id)

        self.repository_name = repository.name
        self.repository_arn = repository.arn
        self.repository_url = repository.repository_url
        self.project_name = project.name
        self.project_arn = project.arn
        self.build_role_name = role.name
        self.build_role_arn = role.arn
        self.log_group_name = log_group.name
        self.release_project_name = release_project.name
        self.release_project_arn = release_project.arn
        self.release_role_name = release_role.name
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
                "project_name": self.project_name,
                "project_arn": self.project_arn,
                "build_role_arn": self.build_role_arn,
                "log_group_name": self.log_group_name,
                "buildspec": self.buildspec,
                "taskdef_json": self.taskdef_json,
                "appspec_yaml": self.appspec_yaml,
                "release_project_name": self.release_project_name,
            }
        )

    def _release_project(
        self, name: str, args: BuildStageArgs, repository: aws.ecr.Repository, account_id: pulumi.Output[str]
    ) -> tuple[aws.codebuild.Project, aws.iam.Role]:
        """The project that moves the release tags (``files/release.sh``): no Docker, no privileged mode, and a
        role that may read and re-tag images of this one repository."""
        prefix = f"{args.name_prefix}-release"
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-release-logs",
            name=f"/aws/codebuild/{prefix}",
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-release-role",
            name=prefix,
            assume_role_policy=iam.service_trust_policy("codebuild.amazonaws.com", source_account=account_id),
            opts=child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-release-role-policy",
            name="release",
            role=role.id,
            policy=iam.policy_document(
                iam.allow(
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    [pulumi.Output.concat(log_group.arn, ":*")],
                    sid="WriteReleaseLogs",
                ),
                # Read an image's manifest and put it again under another tag: no layer is pulled or pushed.
                iam.allow(["ecr:BatchGetImage", "ecr:PutImage"], [repository.arn], sid="TagImagesOfTheRepository"),
            ),
            opts=child,
        )
        project = aws.codebuild.Project(
            f"{name}-release-project",
            name=prefix,
            description=f"Tags the image a {args.name_prefix} deployment takes into production (live, rollback)",
            service_role=role.arn,
            build_timeout=RELEASE_TIMEOUT_MINUTES,
            source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=render_release_buildspec()),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
            environment=aws.codebuild.ProjectEnvironmentArgs(
                type="LINUX_CONTAINER",
                image=args.pipeline.build_image,
                compute_type=RELEASE_COMPUTE_TYPE,
                image_pull_credentials_type="CODEBUILD",
            ),
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                    group_name=log_group.name, status="ENABLED"
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )
        return project, role
