"""UploadIdentity: the AWS identity the application's GitLab job uses to upload its archive.

Whatever the mode, the identity may do exactly one thing: ``s3:PutObject`` on the one object the pipeline
watches (``arn:aws:s3:::<bucket>/<key>``). One statement, one action, one resource.

- ``access-key`` (the default; works with a GitLab that AWS cannot reach): an IAM user, in a group of its own
  that holds that permission (FSBP IAM.2: users take permissions from groups, never policies of their own), and
  an access key replaced every ``accessKeyRotationDays`` (FSBP IAM.3). The key's secret is a Pulumi secret;
  ``GitLabProject`` stores both halves in masked, protected CI/CD variables, and follows each new key.
- ``oidc`` (for a GitLab whose OIDC discovery documents AWS can fetch): an IAM OIDC provider for the GitLab
  URL (created, or an existing one reused: ``oidc_provider_arn``) and a role that only this project's default
  branch can assume, with the job's ID token. No long-lived key exists at all.

See ``docs/gitlab.md`` for when to use which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

import pulumi
import pulumi_aws as aws
import pulumiverse_time
from pydantic import Field, model_validator

from components import iam
from components.base import Component
from components.config_types import ConfigModel, Integer, Matches, Range, Text, problems_if
from components.source_bucket import SourceObject

UploadIdentityMode = Literal["access-key", "oidc"]
UPLOAD_IDENTITIES: tuple[UploadIdentityMode, ...] = get_args(UploadIdentityMode)
_OIDC_PROVIDER_ARN = r"arn:aws[a-z-]*:iam::\d{12}:oidc-provider/(?P<issuer>[A-Za-z0-9.:/_~-]+)"
OidcProviderArn = Annotated[
    Text,
    Matches(_OIDC_PROVIDER_ARN, "an IAM OIDC provider ARN", "arn:aws:iam::<account>:oidc-provider/<host>"),
]


# FSBP IAM.3 fails an active access key older than 90 days (AWS Config rule access-keys-rotated, maxAccessKeyAge
# 90): https://docs.aws.amazon.com/securityhub/latest/userguide/iam-controls.html#iam-3. The key is replaced at
# the first refreshed `pulumi up` after the schedule expires, not at the instant it does: the default leaves ten
# days for that update (CI deploys on every push to the default branch; docs/gitlab.md, Rotating credentials).
# At least a week: every replacement can fail an upload job that started with the old key.
MAX_ACCESS_KEY_AGE_DAYS = 90
AccessKeyRotationDays = Annotated[Integer, Range(7, MAX_ACCESS_KEY_AGE_DAYS)]


class UploadConfig(ConfigModel):
    """How the GitLab job authenticates to AWS."""

    upload_identity: UploadIdentityMode = Field(
        "access-key",
        description="how the GitLab job authenticates to AWS: `access-key` or `oidc` (`gitlabProject` must then be "
        "a path)",
    )
    oidc_provider_arn: OidcProviderArn | None = Field(
        None,
        description="with `oidc`: an existing IAM OIDC provider of `gitlabUrl` to reuse (IAM allows one per URL per "
        "account); unset creates one",
    )

    access_key_rotation_days: AccessKeyRotationDays = Field(
        80,
        description="with `access-key`: days after which a refreshed `pulumi up` replaces the access key (and the "
        "GitLab variables with it); at most 90, FSBP IAM.3's limit, less the longest gap between deployments",
    )

    @property
    def oidc_issuer(self) -> str | None:
        """The host (and path) the reused provider is for."""
        match = re.fullmatch(_OIDC_PROVIDER_ARN, self.oidc_provider_arn or "")
        return match["issuer"] if match else None

    @model_validator(mode="after")
    def _options_of_the_mode(self) -> UploadConfig:
        problems_if(
            (
                self.oidc_provider_arn is not None and self.upload_identity != "oidc",
                "oidcProviderArn",
                "applies only with uploadIdentity 'oidc'",
            ),
            (
                "access_key_rotation_days" in self.model_fields_set and self.upload_identity != "access-key",
                "accessKeyRotationDays",
                "applies only with uploadIdentity 'access-key' (oidc has no long-lived key to rotate)",
            ),
        )
        return self


NAME_SUFFIX = "-gitlab-upload"


@dataclass(frozen=True)
class UploadIdentityArgs:
    name_prefix: str
    """Physical name prefix ``<appName>-<stack>`` of the user or role."""
    config: UploadConfig
    source: SourceObject
    """The one object the job may write."""
    gitlab_url: str
    """Base URL of the GitLab instance, without a trailing slash (the ID token's issuer and audience)."""
    project: str
    """The application project: ``group/app`` (``oidc`` needs the path; ``access-key`` also takes an id)."""
    default_branch: str
    """The only branch whose jobs may assume the role (``oidc``)."""


@dataclass(frozen=True)
class UploadCredentials:
    """What the GitLab job authenticates with, for the CI/CD variables of the GitLab project."""

    mode: UploadIdentityMode
    principal_arn: pulumi.Output[str]
    """The IAM user's (``access-key``) or the role's (``oidc``) ARN."""
    access_key_id: pulumi.Output[str] | None = None
    """``access-key`` only; a Pulumi secret (half of a credential)."""
    secret_access_key: pulumi.Output[str] | None = None
    """``access-key`` only; a Pulumi secret."""
    role_arn: pulumi.Output[str] | None = None
    """``oidc`` only."""
    oidc_provider_arn: pulumi.Output[str] | None = None
    """``oidc`` only: the provider the role trusts (created, or reused)."""

    def __post_init__(self) -> None:
        # The GitLab project registers the variables of the fields that are set: a bundle missing one of its
        # mode's fields (or holding the other mode's) would silently register the wrong variables.
        key = (self.access_key_id, self.secret_access_key)
        oidc = (self.role_arn, self.oidc_provider_arn)
        fields_of_mode = key if self.mode == "access-key" else oidc
        fields_of_other = oidc if self.mode == "access-key" else key
        if any(f is None for f in fields_of_mode) or any(f is not None for f in fields_of_other):
            raise ValueError(f"UploadCredentials: mode {self.mode!r} takes exactly its own fields")


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
    return gitlab_url.removeprefix("https://").rstrip("/")


def web_identity_trust_policy(
    provider_arn: pulumi.Input[str], gitlab_url: str, project: str, branch: str
) -> pulumi.Output[str]:
    """Trust of the upload role: GitLab ID tokens for this audience, this project and this branch only.

    ``sub`` is GitLab's ``project_path:<group/app>:ref_type:branch:ref:<branch>``; ``StringEquals`` (not
    ``StringLike``) so that no other project, branch, tag or merge request matches.
    """
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


class UploadIdentity(Component):
    credentials: UploadCredentials

    def __init__(self, name: str, args: UploadIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        physical_name = f"{args.name_prefix}{NAME_SUFFIX}"
        policy = put_object_policy(args.source.bucket_arn, args.source.key)
        if args.config.upload_identity == "access-key":
            user = aws.iam.User(f"{name}-user", name=physical_name, opts=self.child())
            # FSBP IAM.2: the permission is the group's, and the user is its only member (GroupMembership is
            # exclusive: a user added to the group by hand is removed at the next update).
            group = aws.iam.Group(f"{name}-group", name=physical_name, opts=self.child())
            aws.iam.GroupPolicy(f"{name}-put-object", group=group.name, policy=policy, opts=self.child())
            aws.iam.GroupMembership(f"{name}-member", group=group.name, users=[user.name], opts=self.child())
            key = self._rotated_key(name, user, args.config.access_key_rotation_days)
            self.credentials = UploadCredentials(
                mode="access-key",
                principal_arn=user.arn,
                # The key id is not a secret by itself, but it is half of a credential: keep it out of plain text.
                access_key_id=pulumi.Output.secret(key.id),
                secret_access_key=pulumi.Output.secret(key.secret),
            )
        else:
            provider_arn = self._oidc_provider(name, args)
            role = aws.iam.Role(
                f"{name}-role",
                name=physical_name,
                assume_role_policy=web_identity_trust_policy(
                    provider_arn, args.gitlab_url, args.project, args.default_branch
                ),
                # The job asks for 15 minutes (the minimum); an hour caps any other caller.
                max_session_duration=3600,
                opts=self.child(),
            )
            aws.iam.RolePolicy(f"{name}-put-object", role=role.id, policy=policy, opts=self.child())
            self.credentials = UploadCredentials(
                mode="oidc",
                principal_arn=role.arn,
                role_arn=role.arn,
                oidc_provider_arn=pulumi.Output.from_input(provider_arn),
            )
        self.register_outputs({"mode": self.credentials.mode, "principal_arn": self.credentials.principal_arn})

    def _rotated_key(self, name: str, user: aws.iam.User, rotation_days: int) -> aws.iam.AccessKey:
        """The user's access key, replaced every ``rotation_days`` (FSBP IAM.3).

        The ``Rotating`` holds a timestamp and the instant ``rotation_days`` later. A refresh after that instant
        finds it expired (its provider drops it from the state), so the update creates it again with a new
        timestamp; the key's replacement trigger is that timestamp, so the key is replaced in the same update:
        the new key first (IAM allows two per user), then everything that reads it (the GitLab variables), the
        old key deleted last. A changed ``rotation_days`` only moves the rotation instant: the timestamp, and the
        key, stay. Without a refresh nothing is read, and nothing rotates: CI runs ``pulumi up --refresh``.
        https://www.pulumi.com/docs/iac/concepts/resources/options/replacementtrigger/
        """
        rotation = pulumiverse_time.Rotating(f"{name}-key-rotation", rotation_days=rotation_days, opts=self.child())
        # dependsOn too: the policy pack cannot see resource options, but sees what a key depends on
        # (policy/rules.py, fsbp-iam-3-access-key-rotated).
        return aws.iam.AccessKey(
            f"{name}-key",
            user=user.name,
            opts=self.child(depends_on=[rotation], replacement_trigger=rotation.rfc3339),
        )

    def _oidc_provider(self, name: str, args: UploadIdentityArgs) -> pulumi.Input[str]:
        if args.config.oidc_provider_arn is not None:
            # Reused, not managed: the stack never changes or deletes a provider others may trust too.
            return args.config.oidc_provider_arn
        # No thumbprint: for providers whose certificate chains to a CA AWS trusts (gitlab.com and most
        # self-managed instances) IAM validates with its own CA library and ignores thumbprints; for others, IAM
        # fetches the top intermediate CA's thumbprint itself when none is given. A pinned thumbprint would only
        # break at the next certificate renewal.
        return aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=args.gitlab_url,
            # The audience the job's ID token carries (`id_tokens: <name>: aud:` in the job file).
            client_id_lists=[args.gitlab_url],
            opts=self.child(),
        ).arn
