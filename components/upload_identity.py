"""UploadIdentity: the AWS identity the application's GitLab job uses to upload its archive.

Whatever the mode, the identity may do exactly one thing: ``s3:PutObject`` on the one object the pipeline
watches (``arn:aws:s3:::<bucket>/<key>``). One statement, one action, one resource.

- ``access-key`` (the default; works with a GitLab that AWS cannot reach): an IAM user with that permission
  and an access key. The key's secret is a Pulumi secret; ``GitLabProject`` stores both halves in masked,
  protected CI/CD variables.
- ``oidc`` (for a GitLab whose OIDC discovery documents AWS can fetch): an IAM OIDC provider for the GitLab
  URL (created, or an existing one reused: ``oidc_provider_arn``) and a role that only this project's default
  branch can assume, with the job's ID token. No long-lived key exists at all.

See ``docs/gitlab.md`` for when to use which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam

UPLOAD_IDENTITIES = ("access-key", "oidc")

# IAM user and role names allow 64 characters.
IAM_NAME_MAX = 64
NAME_SUFFIX = "-gitlab-upload"
# A numeric project id cannot be pinned: GitLab's ID token names the project by path in its `sub` claim.
_PROJECT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")


@dataclass(frozen=True)
class UploadIdentityArgs:
    name_prefix: str
    """Physical name prefix ``<appName>-<stack>`` of the user or role."""
    mode: str
    """``access-key`` or ``oidc``."""
    bucket_arn: pulumi.Input[str]
    """The source bucket."""
    object_key: str
    """The one key the job may write (the pipeline's source object)."""
    gitlab_url: str
    """Base URL of the GitLab instance, without a trailing slash (the ID token's issuer and audience)."""
    project: str
    """The application project: ``group/app`` (``oidc`` needs the path; ``access-key`` also takes an id)."""
    default_branch: str
    """The only branch whose jobs may assume the role (``oidc``)."""
    oidc_provider_arn: str | None = None
    """``oidc``: an existing IAM OIDC provider for ``gitlab_url`` to trust (``oidcProviderArn``); ``None`` creates
    one. IAM holds one provider per issuer URL per account: a second stack in the account, or the
    infrastructure CI's own OIDC role, must reuse the first."""


def put_object_policy(bucket_arn: pulumi.Input[str], object_key: str) -> pulumi.Output[str]:
    """The identity's only permission: ``s3:PutObject`` on exactly the watched object.

    ``aws s3api put-object`` (what the job runs) makes one PutObject call. A multipart upload (``aws s3 cp``
    of a large file) needs nothing more either: its calls are all authorised by ``s3:PutObject``; an aborted
    one is cleaned up by the source bucket's lifecycle rule, so ``s3:AbortMultipartUpload`` is not granted.
    """
    return iam.policy_document(
        iam.allow(["s3:PutObject"], [pulumi.Output.concat(bucket_arn, "/", object_key)], sid="PutSourceObject")
    )


def issuer_host(gitlab_url: str) -> str:
    """The OIDC provider's name in IAM condition keys: the issuer URL without ``https://``."""
    if not gitlab_url.startswith("https://"):
        raise ValueError(f"GitLab URL {gitlab_url!r} must start with https:// (IAM OIDC providers require it)")
    return gitlab_url.removeprefix("https://").rstrip("/")


def web_identity_trust_policy(
    provider_arn: pulumi.Input[str], gitlab_url: str, project: str, branch: str
) -> pulumi.Output[str]:
    """Trust of the upload role: GitLab ID tokens for this audience, this project and this branch only.

    ``sub`` is GitLab's ``project_path:<group/app>:ref_type:branch:ref:<branch>``; ``StringEquals`` (not
    ``StringLike``) so that no other project, branch, tag or merge request matches.
    """
    if not _PROJECT_PATH.match(project):
        raise ValueError(
            f"gitlab-fargate:gitlabProject {project!r}: uploadIdentity 'oidc' needs the project's path "
            "(group/app), not its numeric id: GitLab's ID token names the project by path"
        )
    host = issuer_host(gitlab_url)
    return pulumi.Output.json_dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{host}:aud": gitlab_url,
                            f"{host}:sub": f"project_path:{project}:ref_type:branch:ref:{branch}",
                        }
                    },
                }
            ],
        }
    )


class UploadIdentity(pulumi.ComponentResource):
    mode: str
    principal_arn: pulumi.Output[str]
    """The IAM user's (``access-key``) or the role's (``oidc``) ARN."""
    access_key_id: pulumi.Output[str] | None
    """``access-key`` only."""
    secret_access_key: pulumi.Output[str] | None
    """``access-key`` only; a Pulumi secret."""
    role_arn: pulumi.Output[str] | None
    """``oidc`` only."""
    oidc_provider_arn: pulumi.Output[str] | None
    """``oidc`` only."""

    def __init__(self, name: str, args: UploadIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Refuse a bad combination before anything is registered.
        if args.mode not in UPLOAD_IDENTITIES:
            raise ValueError(f"upload identity {args.mode!r} is not allowed; allowed: {', '.join(UPLOAD_IDENTITIES)}")
        physical_name = f"{args.name_prefix}{NAME_SUFFIX}"
        if len(physical_name) > IAM_NAME_MAX:
            raise ValueError(f"IAM name {physical_name!r} is longer than {IAM_NAME_MAX} characters")
        if args.mode == "oidc":
            # Validates the URL and the project path (raises before registration).
            web_identity_trust_policy("arn", args.gitlab_url, args.project, args.default_branch)

        super().__init__("gitlab-fargate:index:UploadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.mode = args.mode
        policy = put_object_policy(args.bucket_arn, args.object_key)
        self.access_key_id = None
        self.secret_access_key = None
        self.role_arn = None
        self.oidc_provider_arn = None

        if args.mode == "access-key":
            user = aws.iam.User(f"{name}-user", name=physical_name, opts=child)
            aws.iam.UserPolicy(f"{name}-put-object", user=user.name, policy=policy, opts=child)
            # Rotation: `pulumi up --replace <this key's URN>` creates a new key, updates the GitLab variables,
            # then deletes the old key (docs/gitlab.md).
            key = aws.iam.AccessKey(f"{name}-key", user=user.name, opts=child)
            self.principal_arn = user.arn
            # The key id is not a secret by itself, but it is half of a credential: keep it out of plain text.
            self.access_key_id = pulumi.Output.secret(key.id)
            self.secret_access_key = pulumi.Output.secret(key.secret)
        else:
            provider_arn: pulumi.Input[str]
            if args.oidc_provider_arn is not None:
                # Reused, not managed: the stack never changes or deletes a provider others may trust too.
                provider_arn = args.oidc_provider_arn
            else:
                # No thumbprint: for providers whose certificate chains to a CA AWS trusts (gitlab.com and most
                # self-managed instances) IAM validates with its own CA library and ignores thumbprints; for
                # others, IAM fetches the top intermediate CA's thumbprint itself when none is given. A pinned
                # thumbprint would only break at the next certificate renewal.
                provider_arn = aws.iam.OpenIdConnectProvider(
                    f"{name}-oidc",
                    url=args.gitlab_url,
                    # The audience the job's ID token carries (`id_tokens: <name>: aud:` in .gitlab-ci.yml).
                    client_id_lists=[args.gitlab_url],
                    opts=child,
                ).arn
            role = aws.iam.Role(
                f"{name}-role",
                name=physical_name,
                assume_role_policy=web_identity_trust_policy(
                    provider_arn, args.gitlab_url, args.project, args.default_branch
                ),
                # The job asks for 15 minutes (the minimum); an hour caps any other caller.
                max_session_duration=3600,
                opts=child,
            )
            aws.iam.RolePolicy(f"{name}-put-object", role=role.id, policy=policy, opts=child)
            self.principal_arn = role.arn
            self.role_arn = role.arn
            self.oidc_provider_arn = pulumi.Output.from_input(provider_arn)

        self.register_outputs(
            {
                "mode": self.mode,
                "principal_arn": self.principal_arn,
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
                "role_arn": self.role_arn,
                "oidc_provider_arn": self.oidc_provider_arn,
            }
        )
