"""GitLabProject: what the application's GitLab project needs to upload to the stack's pipeline.

On the application project, through an explicit GitLab provider (``gitlab_provider``):

- the CI/CD variables of the upload job, with the names of the original job (``AWS_ACCESS_KEY``,
  ``AWS_SECRET_KEY`` or ``AWS_ROLE_ARN``, ``UPLOAD_REGION``, ``UPLOAD_BUCKET``, ``UPLOAD_FOLDER``,
  ``UPLOAD_FILE_ALL``, ``SSH_PRIVATE_KEY``), each scoped to the environment named after the stack, so that
  several stacks can feed from one project without overwriting each other's variables;
- an SSH key pair generated here (ED25519): the public half a read-only deploy key, the private half only in
  ``SSH_PRIVATE_KEY``;
- the stack's job file of the application repository, ``.gitlab/ci/aws-<stack>.gitlab-ci.yml``, rendered from
  ``files/app.gitlab-ci.yml`` with the stack's values (``ci_yml``), and committed to the project when
  ``commit_ci_file`` is set; the application's ``.gitlab-ci.yml`` includes every stack's with one line
  (``CI_INCLUDE``).

The provider does not mark a variable's ``value`` secret, so every credential is passed as a secret Output
*and* registered with ``additional_secret_outputs=["value"]``: it is encrypted in the state both as an input
and as an output.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import pulumi
import pulumi_gitlab as gitlab
import pulumi_tls as tls
from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationInfo, field_validator

from components import contracts
from components.base import PROJECT, Component
from components.config_types import ConfigModel, Flag, Matches, Text, as_text
from components.source_bucket import SourceObject
from components.templates import render_text
from components.upload_identity import UploadCredentials


def _without_trailing_slash(url: str) -> str:
    return url.rstrip("/")


GitLabUrl = Annotated[
    Text,
    AfterValidator(_without_trailing_slash),
    Matches(
        # The trailing slash is dropped before the check; the pattern allows it for editors, which see the raw value.
        r"https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~-]+)*/?",
        "an https:// URL of the GitLab instance",
        "https://gitlab.example.com",
    ),
]
ProjectRef = Annotated[
    Text,
    Matches(r"\d+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+", "a project path (group/app) or numeric id", "group/app"),
]
Branch = Annotated[Text, Matches(r"[A-Za-z0-9._/-]+", "a branch name", "main")]
TOKEN_REQUIRED = (
    "a GitLab API token (api scope, Maintainer on the application project). Set it as a secret: "
    f"`pulumi config set --secret {PROJECT}:gitlabToken <value>`"
)


def _token(value: object) -> object:
    """An empty token is a missing one: the user needs the same instructions."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"required: {TOKEN_REQUIRED}")
    return as_text(value)


class GitLabConfig(ConfigModel):
    """The application's GitLab project, and what the program may do there."""

    gitlab_url: GitLabUrl = Field("https://gitlab.com", description="base URL of the GitLab instance")
    gitlab_project: ProjectRef = Field(
        description="application project: path (`group/app`) or numeric id",
        json_schema_extra={"x-required": "the application project's path (group/app) or numeric id"},
    )
    gitlab_token: Annotated[SecretStr, BeforeValidator(_token)] = Field(
        description="GitLab API token (api scope, Maintainer on the application project), a secret: "
        f"`pulumi config set --secret {PROJECT}:gitlabToken …`; checked with the rest of the config, so a stack "
        "without one stops before anything is created",
        json_schema_extra={"x-secret": True, "x-required": TOKEN_REQUIRED},
    )
    gitlab_default_branch: Branch = Field("main", description="branch whose pushes deploy")
    commit_gitlab_ci: Flag = Field(
        False,
        description="commit the stack's job file (`.gitlab/ci/aws-<stack>.gitlab-ci.yml`) to the application project",
    )
    commit_status: Flag = Field(
        True,
        description="report every pipeline execution on the GitLab commit it deploys (status `aws/<stack>`: "
        "running, success, failed naming the stage, canceled), with a project access token of its own",
    )

    @field_validator("gitlab_token")
    @classmethod
    def _secret(cls, token: SecretStr, info: ValidationInfo) -> SecretStr:
        secret_keys = (info.context or {}).get("secret_keys")
        if secret_keys is not None and "gitlabToken" not in secret_keys:
            raise ValueError(
                f"must be a secret: set it with `pulumi config set --secret {PROJECT}:gitlabToken <value>` "
                "(never as plain text)"
            )
        return token

    @property
    def api_url(self) -> str:
        # The provider wants the API root with a trailing slash.
        return f"{self.gitlab_url}/api/v4/"

    @property
    def project_is_path(self) -> bool:
        return not re.fullmatch(r"\d+", self.gitlab_project)


CI_TEMPLATE = "app.gitlab-ci.yml"
# Where a stack's job lives in the application repository: one file per stack, so that stacks sharing a project
# never overwrite each other's job, and the application's own .gitlab-ci.yml includes them all with one line
# (a wildcard local include: https://docs.gitlab.com/ci/yaml/includes/#use-includelocal-with-wildcard-file-paths).
CI_FILE_DIR = ".gitlab/ci"
CI_INCLUDE = f"{CI_FILE_DIR}/aws-*.gitlab-ci.yml"


def ci_file_path(stack: str) -> str:
    """The stack's job file in the application repository, matched by ``CI_INCLUDE``."""
    return CI_INCLUDE.replace("*", stack)


# Ships the AWS CLI v2 and Python 3 (see the template's header for why this image).
UPLOAD_IMAGE = "public.ecr.aws/sam/build-python3.12:latest"


def gitlab_provider(name: str, config: GitLabConfig, opts: pulumi.ResourceOptions | None = None) -> gitlab.Provider:
    """The GitLab provider of the stack: its instance's API URL and the token from the stack's secret config.

    Explicit, so that no ``GITLAB_TOKEN``/``GITLAB_BASE_URL`` of the operator's environment is ever used. The
    config refuses a stack without a token before anything is registered.
    """
    return gitlab.Provider(
        name,
        base_url=config.api_url,
        token=pulumi.Output.secret(config.gitlab_token.get_secret_value()),
        opts=opts,
    )


@dataclass(frozen=True)
class CiValues:
    """The stack's values in the application's ``.gitlab-ci.yml``."""

    stack: str
    default_branch: str
    gitlab_url: str
    region: str
    bucket: str
    object_key: str
    site_url: str
    """The stack's URL: the link of the job's GitLab environment."""


def split_key(object_key: str) -> tuple[str, str]:
    """``docker-image/docker_image.zip`` -> (``docker-image``, ``docker_image.zip``): UPLOAD_FOLDER, UPLOAD_FILE_ALL."""
    folder, file = posixpath.split(object_key)
    return folder, file


def render_app_ci(v: CiValues) -> str:
    """The application's ``.gitlab-ci.yml`` for one stack; every value JSON-encoded (a valid YAML scalar)."""
    folder, file = split_key(v.object_key)
    values = {
        "job": f"upload-{v.stack}",
        "image": UPLOAD_IMAGE,
        "on_default_branch": f"$CI_COMMIT_BRANCH == {json.dumps(v.default_branch)}",
        "stack": v.stack,
        "site_url": v.site_url,
        "resource_group": f"upload-{v.stack}",
        "commit_file": contracts.COMMIT_FILE,
        "audience": v.gitlab_url,
        "region": v.region,
        "bucket": v.bucket,
        "folder": folder,
        "file": file,
    }
    encoded = {k: json.dumps(val) for k, val in values.items()}
    # The stack's name and paths also appear in comments, where they are not YAML scalars (config allows
    # [a-z0-9-] in a stack name).
    comments = {"stack_comment": v.stack, "ci_path_comment": ci_file_path(v.stack), "ci_include_comment": CI_INCLUDE}
    return render_text(CI_TEMPLATE, {**encoded, **comments})


@dataclass(frozen=True)
class VariableSpec:
    """One CI/CD variable: its value and GitLab's flags for it."""

    value: pulumi.Input[str]
    description: str
    secret: bool = False
    """A credential: a Pulumi secret as input and as output (whether GitLab masks it is ``masked``)."""
    masked: bool = False
    protected: bool = False
    variable_type: str = "env_var"


@dataclass(frozen=True)
class GitLabProjectArgs:
    stack: str
    """The stack: the environment the variables are scoped to, and part of the job's name."""
    region: str
    config: GitLabConfig
    source: SourceObject
    """Where the job uploads."""
    credentials: UploadCredentials
    """The upload identity's credentials: which credential variables exist, and their values."""
    site_url: pulumi.Input[str]
    """The stack's URL, the link of the job's environment in GitLab (environments page, merge requests)."""


class GitLabProject(Component):
    ci_yml: pulumi.Output[str]
    """The stack's job file of the application repository (``ci_path``)."""
    ci_path: str
    """Where ``ci_yml`` goes in the application repository: ``.gitlab/ci/aws-<stack>.gitlab-ci.yml``."""
    variable_keys: list[str]
    """The CI/CD variables registered, sorted."""
    deploy_key_id: pulumi.Output[str]
    ssh_public_key: pulumi.Output[str]

    def __init__(self, name: str, args: GitLabProjectArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        cfg = args.config
        # The deploy key. Every input of a DeployKey forces a replacement, and the key pair is only replaced on
        # request: rotate with `pulumi up --replace <URN of this PrivateKey>` (docs/gitlab.md).
        ssh_key = tls.PrivateKey(f"{name}-ssh-key", algorithm="ED25519", opts=self.child())
        deploy_key = gitlab.DeployKey(
            f"{name}-deploy-key",
            project=cfg.gitlab_project,
            title=f"gitlab-fargate {args.stack} (read-only, managed by Pulumi)",
            key=ssh_key.public_key_openssh,
            can_push=False,
            opts=self.child(),
        )
        specs = variable_specs(args, ssh_key.private_key_openssh.apply(with_trailing_newline))
        self.variable_keys = sorted(specs)
        variables = self._variables(name, args, specs)
        self.ci_yml = pulumi.Output.all(args.source.bucket_name, args.site_url).apply(
            lambda v: render_app_ci(
                CiValues(
                    stack=args.stack,
                    default_branch=cfg.gitlab_default_branch,
                    gitlab_url=cfg.gitlab_url,
                    region=args.region,
                    bucket=v[0],
                    object_key=args.source.key,
                    site_url=v[1],
                )
            )
        )
        self.ci_path = ci_file_path(args.stack)
        if cfg.commit_gitlab_ci:
            gitlab.RepositoryFile(
                f"{name}-ci-file",
                project=cfg.gitlab_project,
                branch=cfg.gitlab_default_branch,
                file_path=self.ci_path,
                content=self.ci_yml,
                encoding="text",
                commit_message=f"Update {self.ci_path} from Pulumi stack {args.stack}",
                # An existing file of that name is never overwritten silently: creation fails, and the operator
                # removes it or leaves commitGitlabCi off and commits by hand (docs/gitlab.md).
                overwrite_on_create=False,
                # The commit lands on the default branch and starts a pipeline at once: the job's variables must
                # exist by then, or that first upload fails.
                opts=self.child(depends_on=list(variables)),
            )
        self.deploy_key_id = deploy_key.id
        self.ssh_public_key = ssh_key.public_key_openssh
        self.register_outputs(
            {
                "ci_yml": self.ci_yml,
                "ci_path": self.ci_path,
                "variable_keys": self.variable_keys,
                "deploy_key_id": self.deploy_key_id,
                "ssh_public_key": self.ssh_public_key,
            }
        )

    def _variables(
        self, name: str, args: GitLabProjectArgs, specs: Mapping[str, VariableSpec]
    ) -> list[gitlab.ProjectVariable]:
        registered = []
        for key, spec in sorted(specs.items()):
            value = pulumi.Output.secret(spec.value) if spec.secret else spec.value
            registered.append(
                gitlab.ProjectVariable(
                    f"{name}-{key.lower().replace('_', '-')}",
                    project=args.config.gitlab_project,
                    key=key,
                    value=value,
                    description=f"{spec.description} (Pulumi stack {args.stack})",
                    environment_scope=args.stack,
                    protected=spec.protected,
                    masked=spec.masked,
                    # Values are literal: a `$` in a generated value must never be expanded by GitLab.
                    raw=True,
                    variable_type=spec.variable_type,
                    # The provider's schema does not mark `value` secret: without this the state would hold the
                    # credential in plain text as an output.
                    opts=self.child(additional_secret_outputs=["value"] if spec.secret else None),
                )
            )
        return registered


def variable_specs(args: GitLabProjectArgs, ssh_private_key: pulumi.Input[str]) -> dict[str, VariableSpec]:
    """The job's variables, with the names of the original job (docs/gitlab.md, "The variables")."""
    folder, file = split_key(args.source.key)
    specs: dict[str, VariableSpec] = {
        "UPLOAD_REGION": VariableSpec(args.region, "AWS region of the source bucket"),
        "UPLOAD_BUCKET": VariableSpec(args.source.bucket_name, "S3 bucket the pipeline watches"),
        "UPLOAD_FOLDER": VariableSpec(folder, "key prefix (folder) of the uploaded archive"),
        "UPLOAD_FILE_ALL": VariableSpec(file, "file name of the uploaded archive"),
        # GitLab cannot mask a multi-line value: a protected file-type variable (the job gets a path).
        "SSH_PRIVATE_KEY": VariableSpec(
            ssh_private_key,
            "private half of the project's read-only deploy key",
            secret=True,
            protected=True,
            variable_type="file",
        ),
    }
    credentials = args.credentials
    if credentials.access_key_id is not None and credentials.secret_access_key is not None:
        specs["AWS_ACCESS_KEY"] = VariableSpec(
            credentials.access_key_id, "access key id of the upload user", secret=True, masked=True, protected=True
        )
        specs["AWS_SECRET_KEY"] = VariableSpec(
            credentials.secret_access_key,
            "secret access key of the upload user",
            secret=True,
            masked=True,
            protected=True,
        )
    if credentials.role_arn is not None:
        # Not a secret (the role trusts only this project's default branch), but only that branch needs it.
        specs["AWS_ROLE_ARN"] = VariableSpec(
            credentials.role_arn, "role the job assumes with its GitLab ID token", protected=True
        )
    return specs


def with_trailing_newline(key: str) -> str:
    """An OpenSSH private key file must end with a newline (ssh-add rejects it otherwise), as GitLab's guidance
    for a key in a file-type variable also says. The TLS provider's keys already do: this makes it a rule.
    """
    return key if key.endswith("\n") else key + "\n"
