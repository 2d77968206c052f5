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
from components.templates import TaskDefinitionValues, render_taskdef, render_text

# The directory the build writes its output artifact from (relative to the unpacked upload).
OUTPUT_DIR = "pipeline-output"
# The tag of the BuildKit layer cache in the repository.
CACHE_TAG = "buildcache"
# Untagged images (superseded cache manifests, images whose tags moved) are kept this long.
UNTAGGED_EXPIRY_DAYS = 1
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


def lifecycle_policy(keep_images: int) -> str:
    """Keeps the layer cache, the last ``keep_images`` commit-tagged images, and untagged ones for a day.

    ECR counts an image kept by a higher-priority rule when it evaluates a lower one, so the last rule keeps
    ``keep_images + 1`` tagged images: the ``buildcache`` image, pushed by every build, takes one place.
    ``latest`` is always also the newest commit's tag, so it takes none.
    """
    rules = [
        {
            "rulePriority": 1,
            "description": f"never expire the layer cache ({CACHE_TAG})",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": [CACHE_TAG],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"expire untagged images after {UNTAGGED_EXPIRY_DAYS} day(s)",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": UNTAGGED_EXPIRY_DAYS,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "description": f"keep the last {keep_images} commit-tagged images",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["*"],
                "countType": "imageCountMoreThan",
                "countNumber": keep_images + 1,
            },
            "action": {"type": "expire"},
        },
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

        self.repository_name = repository.name
        self.repository_arn = repository.arn
        self.repository_url = repository.repository_url
        self.project_name = project.name
        self.project_arn = project.arn
        self.build_role_name = role.name
        self.build_role_arn = role.arn
        self.log_group_name = log_group.name
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
            }
        )
