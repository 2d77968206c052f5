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
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gitlab as gitlab
import pulumi_tls as tls

from components.config import GitLabConfig
from components.templates import render_text
from components.upload_identity import UPLOAD_IDENTITIES

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
        token=pulumi.Output.secret(config.token),
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
        "resource_group": f"upload-{v.stack}",
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
    project: str
    """The application project: path (``group/app``) or numeric id."""
    stack: str
    """The stack: the environment the variables are scoped to, and part of the job's name."""
    default_branch: str
    gitlab_url: str
    region: str
    bucket_name: pulumi.Input[str]
    object_key: str
    upload_identity: str
    """``access-key`` or ``oidc``; decides which credential variables exist."""
    access_key_id: pulumi.Input[str] | None = None
    secret_access_key: pulumi.Input[str] | None = None
    role_arn: pulumi.Input[str] | None = None
    commit_ci_file: bool = False


class GitLabProject(pulumi.ComponentResource):
    ci_yml: pulumi.Output[str]
    """The stack's job file of the application repository (``ci_path``)."""
    ci_path: str
    """Where ``ci_yml`` goes in the application repository: ``.gitlab/ci/aws-<stack>.gitlab-ci.yml``."""
    variable_keys: list[str]
    """The CI/CD variables registered, sorted."""
    deploy_key_id: pulumi.Output[str]
    ssh_public_key: pulumi.Output[str]

    def __init__(self, name: str, args: GitLabProjectArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_credentials(args)
        super().__init__("gitlab-fargate:index:GitLabProject", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # The deploy key. Every input of a DeployKey forces a replacement, and the key pair is only replaced
        # on request: rotate with `pulumi up --replace <URN of this PrivateKey>` (docs/gitlab.md).
        ssh_key = tls.PrivateKey(f"{name}-ssh-key", algorithm="ED25519", opts=child)
        deploy_key = gitlab.DeployKey(
            f"{name}-deploy-key",
            project=args.project,
            title=f"gitlab-fargate {args.stack} (read-only, managed by Pulumi)",
            key=ssh_key.public_key_openssh,
            can_push=False,
            opts=child,
        )

        folder, file = split_key(args.object_key)
        specs: dict[str, VariableSpec] = {
            "UPLOAD_REGION": VariableSpec(args.region, "AWS region of the source bucket"),
            "UPLOAD_BUCKET": VariableSpec(args.bucket_name, "S3 bucket the pipeline watches"),
            "UPLOAD_FOLDER": VariableSpec(folder, "key prefix (folder) of the uploaded archive"),
            "UPLOAD_FILE_ALL": VariableSpec(file, "file name of the uploaded archive"),
            # GitLab cannot mask a multi-line value: a protected file-type variable (the job gets a path).
            "SSH_PRIVATE_KEY": VariableSpec(
                ssh_key.private_key_openssh.apply(with_trailing_newline),
                "private half of the project's read-only deploy key",
                secret=True,
                protected=True,
                variable_type="file",
            ),
        }
        if args.upload_identity == "access-key":
            assert args.access_key_id is not None and args.secret_access_key is not None
            specs["AWS_ACCESS_KEY"] = VariableSpec(
                args.access_key_id, "access key id of the upload user", secret=True, masked=True, protected=True
            )
            specs["AWS_SECRET_KEY"] = VariableSpec(
                args.secret_access_key,
                "secret access key of the upload user",
                secret=True,
                masked=True,
                protected=True,
            )
        else:
            assert args.role_arn is not None
            # Not a secret (the role trusts only this project's default branch), but only that branch needs it.
            specs["AWS_ROLE_ARN"] = VariableSpec(
                args.role_arn, "role the job assumes with its GitLab ID token", protected=True
            )

        self.variable_keys = sorted(specs)
        variables = self._variables(name, args, specs)

        self.ci_yml = pulumi.Output.from_input(args.bucket_name).apply(
            lambda bucket: render_app_ci(
                CiValues(
                    stack=args.stack,
                    default_branch=args.default_branch,
                    gitlab_url=args.gitlab_url,
                    region=args.region,
                    bucket=bucket,
                    object_key=args.object_key,
                )
            )
        )
        self.ci_path = ci_file_path(args.stack)
        if args.commit_ci_file:
            gitlab.RepositoryFile(
                f"{name}-ci-file",
                project=args.project,
                branch=args.default_branch,
                file_path=self.ci_path,
                content=self.ci_yml,
                encoding="text",
                commit_message=f"Update {self.ci_path} from Pulumi stack {args.stack}",
                # An existing file of that name is never overwritten silently: creation fails, and the operator
                # removes it or leaves commitGitlabCi off and commits by hand (docs/gitlab.md).
                overwrite_on_create=False,
                # The commit lands on the default branch and starts a pipeline at once: the job's variables
                # must exist by then, or that first upload fails.
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(variables)),
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
                    project=args.project,
                    key=key,
                    value=value,
                    description=f"{spec.description} (Pulumi stack {args.stack})",
                    environment_scope=args.stack,
                    protected=spec.protected,
                    masked=spec.masked,
                    # Values are literal: a `$` in a generated value must never be expanded by GitLab.
                    raw=True,
                    variable_type=spec.variable_type,
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        # The provider's schema does not mark `value` secret: without this the state would
                        # hold the credential in plain text as an output.
                        additional_secret_outputs=["value"] if spec.secret else None,
                    ),
                )
            )
        return registered


def with_trailing_newline(key: str) -> str:
    """An OpenSSH private key file must end with a newline (ssh-add rejects it otherwise), as GitLab's guidance
    for a key in a file-type variable also says. The TLS provider's keys already do: this makes it a rule.
    """
    # `not key`: an engine that does not know the value (a mock) gives None; leave it as it is.
    return key if not key or key.endswith("\n") else key + "\n"


def _check_credentials(args: GitLabProjectArgs) -> None:
    if args.upload_identity not in UPLOAD_IDENTITIES:
        raise ValueError(
            f"upload identity {args.upload_identity!r} is not allowed; allowed: {', '.join(UPLOAD_IDENTITIES)}"
        )
    keys = args.access_key_id is not None or args.secret_access_key is not None
    if args.upload_identity == "access-key" and (
        args.access_key_id is None or args.secret_access_key is None or args.role_arn is not None
    ):
        raise ValueError("upload identity 'access-key' takes access_key_id and secret_access_key, no role_arn")
    if args.upload_identity == "oidc" and (args.role_arn is None or keys):
        raise ValueError("upload identity 'oidc' takes role_arn, and no access key")
