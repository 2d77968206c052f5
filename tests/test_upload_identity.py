"""UploadIdentity: both modes on mocks (what is registered, with which policy, and the credentials bundle handed to
the GitLab project), the policies through parliament and the project's policy pack, the access-key user's
permission replayed against moto with IAM enforcement (it can put the watched object and do nothing else), the
OIDC role's trust against the claims GitLab puts in its ID tokens, and UploadConfig's rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import pulumi
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from components.base import PROJECT, component_type
from components.config_types import ConfigError
from components.upload_identity import NAME_SUFFIX, UploadCredentials, UploadIdentity, UploadIdentityArgs
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from policy import rules
from support import bundles
from support.aws import parliament_findings, policy_of
from support.stacks import REGION, STACKS, run, stack_config

GITLAB = "https://gitlab.example.com"
PROJECT_PATH = "shop/web"
BRANCH = "main"
KEY = "docker-image/docker_image.zip"

# IAM allows one OIDC identity provider per issuer URL in an account (CreateOpenIDConnectProvider fails with
# EntityAlreadyExists otherwise): https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html
# A stack in an account that has one (another stack's, or the infrastructure CI's) reuses it by ARN.
EXISTING_PROVIDER = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/gitlab.example.com"


@pytest.fixture(autouse=True)
def _no_ambient_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto must see the test's keys only, never an operator's."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield


def build_identity(name: str, values: Mapping[str, str] | None = None, *, prefix: str = bundles.PREFIX) -> None:
    """One UploadIdentity from stack-file values, its source a stand-in; exports its credentials bundle field by
    field (``<name>.<field>``, so each field's secrecy shows) and the stand-in source's ARN."""
    cfg = stack_config({"gitlabUrl": GITLAB, "gitlabProject": PROJECT_PATH, **(values or {})})
    source = bundles.source(prefix, KEY)
    identity = UploadIdentity(
        name,
        UploadIdentityArgs(
            name_prefix=prefix,
            config=cfg.upload,
            source=source,
            gitlab_url=cfg.gitlab.gitlab_url,
            project=cfg.gitlab.gitlab_project,
            default_branch=cfg.gitlab.gitlab_default_branch,
        ),
    )
    export_credentials(name, identity.credentials)
    pulumi.export(f"{name}.sourceBucketArn", source.bucket_arn)


def export_credentials(name: str, credentials: UploadCredentials) -> None:
    pulumi.export(f"{name}.mode", credentials.mode)
    for field in ("principal_arn", "access_key_id", "secret_access_key", "role_arn", "oidc_provider_arn"):
        camel = "".join(w if i == 0 else w.title() for i, w in enumerate(field.split("_")))
        pulumi.export(f"{name}.{camel}", getattr(credentials, field))


@pytest.fixture(scope="module")
def access_key() -> ProgramRun:
    return run(lambda: build_identity("upload"))


@pytest.fixture(scope="module")
def oidc() -> ProgramRun:
    return run(lambda: build_identity("upload", {"uploadIdentity": "oidc"}))


def watched_object(found: ProgramRun, name: str = "upload") -> str:
    """The ARN of the object the stand-in source says the pipeline watches."""
    return f"{found.outputs[f'{name}.sourceBucketArn']}/{KEY}"


def assert_only_put_of_the_watched_object(doc: dict[str, Any], object_arn: str) -> None:
    [statement] = doc["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"] == [object_arn]
    assert "Condition" not in statement and "NotAction" not in statement and "NotResource" not in statement


# --- access-key ------------------------------------------------------------------------------------------


def test_access_key_mode_is_a_user_in_a_group_with_one_permission_and_a_key(access_key: ProgramRun) -> None:
    user = access_key.one(rt.IAM_USER)
    assert user.props["name"] == "shop-dev-gitlab-upload"
    # FSBP IAM.2: the user has no policy of its own; a group it is the only member of holds the permission.
    # https://docs.aws.amazon.com/securityhub/latest/userguide/iam-controls.html#iam-2
    group = access_key.one(rt.IAM_GROUP)
    assert group.props["name"] == "shop-dev-gitlab-upload"
    membership = access_key.one(rt.IAM_GROUP_MEMBERSHIP)
    assert (membership.props["group"], membership.props["users"]) == (group.props["name"], [user.props["name"]])
    policy = access_key.one(rt.IAM_GROUP_POLICY)
    assert policy.props["group"] == group.props["name"]
    assert_only_put_of_the_watched_object(policy_of(policy), watched_object(access_key))
    assert access_key.one(rt.IAM_ACCESS_KEY).props["user"] == user.props["name"]
    # Nothing else: no policy on the user, no managed policy, no console login, no OIDC; the key's schedule.
    assert sorted(r.type for r in access_key.resources if r.custom) == sorted(
        [rt.IAM_USER, rt.IAM_GROUP, rt.IAM_GROUP_POLICY, rt.IAM_GROUP_MEMBERSHIP, rt.IAM_ACCESS_KEY, rt.TIME_ROTATING]
    )
    out = access_key.outputs
    assert out["upload.mode"] == "access-key"
    assert out["upload.principalArn"] == user.state["arn"]
    assert out["upload.roleArn"] is None and out["upload.oidcProviderArn"] is None


def test_access_key_mode_keeps_both_halves_of_the_key_secret(access_key: ProgramRun) -> None:
    key = access_key.one(rt.IAM_ACCESS_KEY)
    assert access_key.outputs["upload.secretAccessKey"] == key.state["secret"]["value"]
    assert access_key.outputs["upload.accessKeyId"] == key.id
    # The key id is half of a credential: a secret too, so no plain-text state or output shows it.
    assert {"upload.secretAccessKey", "upload.accessKeyId"} <= access_key.secret_outputs
    assert "upload.principalArn" not in access_key.secret_outputs


def test_the_access_key_is_replaced_when_its_rotation_comes(access_key: ProgramRun) -> None:
    """FSBP IAM.3 (keys rotated within 90 days): a time Rotating every 80 days by default, whose timestamp is the
    key's replacement trigger: a refreshed update that finds it expired creates it anew, and replaces the key.
    https://docs.aws.amazon.com/securityhub/latest/userguide/iam-controls.html#iam-3
    https://www.pulumi.com/docs/iac/concepts/resources/options/replacementtrigger/"""
    rotation, key = access_key.one(rt.TIME_ROTATING), access_key.one(rt.IAM_ACCESS_KEY)
    assert rotation.name == "upload-key-rotation"
    assert rotation.props == {"rotationDays": 80}
    assert key.replacement_trigger == rotation.state["rfc3339"] == "2025-01-01T00:00:00Z"
    assert rotation.state["rotationRfc3339"] == "2025-03-22T00:00:00Z", "80 days later"
    # The new key is created before the old one is deleted (IAM allows two per user), so whatever reads the key
    # (the GitLab variables) switches to the new one within the same update.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/id-credentials-access-keys-update.html
    assert key.delete_before_replace is False
    # Declared as a dependency too, which the policy pack sees (it sees no resource option).
    assert rotation.urn in key.dependencies


def test_the_rotation_schedule_follows_the_config() -> None:
    found = run(lambda: build_identity("upload", {"accessKeyRotationDays": "30"}))
    assert found.one(rt.TIME_ROTATING).props == {"rotationDays": 30}
    assert found.one(rt.TIME_ROTATING).state["rotationRfc3339"] == "2025-01-31T00:00:00Z"


def test_access_key_user_may_put_the_watched_object_and_nothing_else(access_key: ProgramRun) -> None:
    """The program's policy, on a group in moto with IAM enforcement on, the user in the group, its key used."""
    document = access_key.one(rt.IAM_GROUP_POLICY).props["policy"]
    bucket = watched_object(access_key).removeprefix("arn:aws:s3:::").removesuffix(f"/{KEY}")

    # Three unauthenticated calls create an administrator; every later call is checked against IAM.
    @set_initial_no_auth_action_count(3)
    def check() -> None:
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin",
            PolicyName="all",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = boto3.Session(
            aws_access_key_id=admin_key["AccessKeyId"],
            aws_secret_access_key=admin_key["SecretAccessKey"],
            region_name=REGION,
        )
        admin.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        admin_iam = admin.client("iam")
        admin_iam.create_user(UserName="uploader")
        admin_iam.create_group(GroupName="uploaders")
        admin_iam.put_group_policy(GroupName="uploaders", PolicyName="put-object", PolicyDocument=document)
        admin_iam.add_user_to_group(GroupName="uploaders", UserName="uploader")
        key = admin_iam.create_access_key(UserName="uploader")["AccessKey"]
        s3 = boto3.client(
            "s3",
            region_name=REGION,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )

        s3.put_object(Bucket=bucket, Key=KEY, Body=b"archive")
        denied: dict[str, Callable[[], object]] = {
            "another key": lambda: s3.put_object(Bucket=bucket, Key="docker-image/other.zip", Body=b"x"),
            "read": lambda: s3.get_object(Bucket=bucket, Key=KEY),
            "list": lambda: s3.list_objects_v2(Bucket=bucket),
            "delete": lambda: s3.delete_object(Bucket=bucket, Key=KEY),
        }
        allowed = []
        for what, call in denied.items():
            try:
                call()
                allowed.append(what)
            except ClientError as error:
                assert error.response["Error"]["Code"] == "AccessDenied", what
        assert allowed == []

    with mock_aws():
        check()


# --- oidc ------------------------------------------------------------------------------------------------


def test_oidc_mode_is_a_provider_and_a_role_with_one_permission_and_no_key(oidc: ProgramRun) -> None:
    provider = oidc.one(rt.IAM_OIDC_PROVIDER).props
    assert provider["url"] == GITLAB
    # The audience GitLab puts in the ID token (the job's `id_tokens: ...: aud:`).
    # https://docs.gitlab.com/ci/secrets/id_token_authentication/
    assert provider["clientIdLists"] == [GITLAB]
    # No pinned thumbprint: IAM validates with its trusted CAs, or fetches the thumbprint itself.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc_verify-thumbprint.html
    assert not provider.get("thumbprintLists")
    role = oidc.one(rt.IAM_ROLE)
    assert role.props["name"] == "shop-dev-gitlab-upload"
    policy = oidc.one(rt.IAM_ROLE_POLICY)
    assert policy.props["role"] == role.id
    assert_only_put_of_the_watched_object(policy_of(policy), watched_object(oidc))
    assert oidc.of_type(rt.IAM_ACCESS_KEY) == [] and oidc.of_type(rt.IAM_USER) == []
    out = oidc.outputs
    assert out["upload.mode"] == "oidc"
    assert out["upload.principalArn"] == out["upload.roleArn"] == role.state["arn"]
    assert out["upload.oidcProviderArn"] == oidc.one(rt.IAM_OIDC_PROVIDER).state["arn"]
    assert out["upload.accessKeyId"] is None and out["upload.secretAccessKey"] is None


def test_oidc_role_trust_pins_audience_project_and_branch(oidc: ProgramRun) -> None:
    trust = policy_of(oidc.one(rt.IAM_ROLE), "assumeRolePolicy")
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Federated": oidc.one(rt.IAM_OIDC_PROVIDER).state["arn"]}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    # Exact matches only: StringLike (or a wildcard) would let other branches or projects in.
    assert statement["Condition"] == {
        "StringEquals": {
            "gitlab.example.com:aud": GITLAB,
            "gitlab.example.com:sub": f"project_path:{PROJECT_PATH}:ref_type:branch:ref:{BRANCH}",
        }
    }


def test_oidc_role_sessions_are_capped_at_an_hour(oidc: ProgramRun) -> None:
    # The job asks for 15 minutes, the least STS grants; the role caps any other caller at an hour.
    # https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
    assert oidc.one(rt.IAM_ROLE).props["maxSessionDuration"] == 3600


def test_oidc_reuses_an_existing_provider_and_creates_none() -> None:
    found = run(lambda: build_identity("upload", {"uploadIdentity": "oidc", "oidcProviderArn": EXISTING_PROVIDER}))
    assert found.of_type(rt.IAM_OIDC_PROVIDER) == [], "a second provider for the same URL is refused by IAM"
    trust = policy_of(found.one(rt.IAM_ROLE), "assumeRolePolicy")
    assert trust["Statement"][0]["Principal"] == {"Federated": EXISTING_PROVIDER}
    assert found.outputs["upload.oidcProviderArn"] == EXISTING_PROVIDER


def test_two_oidc_stacks_in_one_account_create_one_provider_between_them() -> None:
    """What IAM enforces (one provider per URL per account), replayed in moto: the second stack reuses the first's
    provider instead of creating another, and both roles trust it."""

    def build() -> None:
        build_identity("dev-upload", {"uploadIdentity": "oidc"})
        build_identity(
            "prod-upload", {"uploadIdentity": "oidc", "oidcProviderArn": EXISTING_PROVIDER}, prefix="shop-prod"
        )

    found = run(build)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        for provider in found.of_type(rt.IAM_OIDC_PROVIDER):
            iam.create_open_id_connect_provider(Url=provider.props["url"], ClientIDList=provider.props["clientIdLists"])
        with pytest.raises(ClientError, match="EntityAlreadyExists"):
            iam.create_open_id_connect_provider(Url=GITLAB, ClientIDList=[GITLAB])
        [listed] = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        assert listed["Arn"] == EXISTING_PROVIDER
        for role in found.of_type(rt.IAM_ROLE):
            [statement] = policy_of(role, "assumeRolePolicy")["Statement"]
            assert statement["Principal"]["Federated"] == EXISTING_PROVIDER
            iam.create_role(RoleName=role.props["name"], AssumeRolePolicyDocument=role.props["assumeRolePolicy"])


def allowed_by(trust: dict[str, Any], claims: dict[str, str]) -> bool:
    """IAM's evaluation of a StringEquals-only trust condition against an ID token's claims.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif"""
    [statement] = trust["Statement"]
    assert set(statement["Condition"]) == {"StringEquals"}
    return all(
        claims.get(key.split(":", 1)[1]) == value for key, value in statement["Condition"]["StringEquals"].items()
    )


@pytest.mark.parametrize(
    ("sub", "aud", "allowed"),
    [
        (f"project_path:{PROJECT_PATH}:ref_type:branch:ref:{BRANCH}", GITLAB, True),
        (f"project_path:{PROJECT_PATH}:ref_type:branch:ref:feature", GITLAB, False),
        (f"project_path:{PROJECT_PATH}:ref_type:tag:ref:{BRANCH}", GITLAB, False),
        (f"project_path:{PROJECT_PATH}-fork:ref_type:branch:ref:{BRANCH}", GITLAB, False),
        (f"project_path:other/{PROJECT_PATH}:ref_type:branch:ref:{BRANCH}", GITLAB, False),
        (f"project_path:{PROJECT_PATH}:ref_type:branch:ref:{BRANCH}", "https://gitlab.example.com.evil", False),
    ],
)
def test_only_this_projects_default_branch_may_assume_the_role(
    oidc: ProgramRun, sub: str, aud: str, allowed: bool
) -> None:
    # The claims GitLab issues to a job (https://docs.gitlab.com/ci/secrets/id_token_authentication/).
    claims = {"sub": sub, "aud": aud, "iss": GITLAB}
    assert allowed_by(policy_of(oidc.one(rt.IAM_ROLE), "assumeRolePolicy"), claims) is allowed


def test_the_trusted_branch_is_the_configured_default_branch() -> None:
    found = run(lambda: build_identity("upload", {"uploadIdentity": "oidc", "gitlabDefaultBranch": "release"}))
    trust = policy_of(found.one(rt.IAM_ROLE), "assumeRolePolicy")
    claims = {"sub": f"project_path:{PROJECT_PATH}:ref_type:branch:ref:release", "aud": GITLAB}
    assert allowed_by(trust, claims)
    assert not allowed_by(trust, {**claims, "sub": f"project_path:{PROJECT_PATH}:ref_type:branch:ref:{BRANCH}"})


# --- both ------------------------------------------------------------------------------------------------


@pytest.fixture(params=["access-key", "oidc"])
def either(request: pytest.FixtureRequest) -> ProgramRun:
    found: ProgramRun = request.getfixturevalue(request.param.replace("-", "_"))
    return found


def test_permission_policies_pass_parliament(either: ProgramRun) -> None:
    policies = either.of_type(rt.IAM_GROUP_POLICY) + either.of_type(rt.IAM_ROLE_POLICY)
    assert len(policies) == 1
    assert parliament_findings(policies[0].props["policy"]) == []


def test_the_projects_policy_pack_accepts_every_resource(either: ProgramRun) -> None:
    assert rules.check_stack([rules.from_registration(r) for r in either.resources]) == []


def test_children_are_parented_and_named_after_the_component(either: ProgramRun) -> None:
    component = either.one(component_type(UploadIdentity))
    children = [r for r in either.resources if r.custom]
    assert children and all(r.parent == component.urn and r.name.startswith("upload-") for r in children)


def test_two_identities_do_not_collide() -> None:
    def build() -> None:
        build_identity("dev-upload")
        build_identity(
            "prod-upload",
            {"uploadIdentity": "oidc", "gitlabUrl": "https://git.example.org", "gitlabDefaultBranch": "release"},
            prefix="shop-prod",
        )

    found = run(build)
    assert len({r.urn for r in found.resources}) == len(found.resources)
    assert {r.props["name"] for r in found.of_type(rt.IAM_USER) + found.of_type(rt.IAM_ROLE)} == {
        "shop-dev-gitlab-upload",
        "shop-prod-gitlab-upload",
    }
    trust = policy_of(found.one(rt.IAM_ROLE), "assumeRolePolicy")
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {
        "git.example.org:aud": "https://git.example.org",
        "git.example.org:sub": f"project_path:{PROJECT_PATH}:ref_type:branch:ref:release",
    }


# --- UploadConfig: what the stack file may say -------------------------------------------------------------


def problems(values: Mapping[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        stack_config(values)
    return raised.value.problems


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"uploadIdentity": "password"},
            f"{PROJECT}:uploadIdentity: 'password' is not allowed; allowed: access-key, oidc",
        ),
        # GitLab's ID token names the project by path (sub: project_path:<group/app>:...), never by id.
        ({"uploadIdentity": "oidc", "gitlabProject": "1234"}, f"{PROJECT}:gitlabProject: '1234': .*path"),
        # The issuer AWS fetches discovery documents from is an https URL.
        ({"uploadIdentity": "oidc", "gitlabUrl": "http://gitlab.example.com"}, f"{PROJECT}:gitlabUrl: .*https://"),
        (
            {"oidcProviderArn": EXISTING_PROVIDER},
            f"{PROJECT}:oidcProviderArn: applies only with uploadIdentity 'oidc'",
        ),
        (
            {"uploadIdentity": "oidc", "oidcProviderArn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/gitlab.com"},
            f"{PROJECT}:oidcProviderArn: the provider is for 'gitlab.com'.*gitlab.example.com",
        ),
        (
            {"uploadIdentity": "oidc", "oidcProviderArn": f"arn:aws:iam::{ACCOUNT_ID}:role/not-a-provider"},
            f"{PROJECT}:oidcProviderArn: .*is not an IAM OIDC provider ARN",
        ),
        # IAM.3 fails a key older than 90 days; under a week, nearly every update would replace the key.
        ({"accessKeyRotationDays": "91"}, f"{PROJECT}:accessKeyRotationDays: 91 is out of range; allowed: 7 to 90"),
        ({"accessKeyRotationDays": "6"}, f"{PROJECT}:accessKeyRotationDays: 6 is out of range; allowed: 7 to 90"),
        ({"accessKeyRotationDays": "quarterly"}, f"{PROJECT}:accessKeyRotationDays: .*expected an integer"),
        (
            {"uploadIdentity": "oidc", "accessKeyRotationDays": "30"},
            f"{PROJECT}:accessKeyRotationDays: applies only with uploadIdentity 'access-key'",
        ),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(values: dict[str, str], message: str) -> None:
    found = problems({"gitlabUrl": GITLAB, **values})
    assert len(found) == 1, found
    assert re.match(message, found[0]), found


def test_an_access_key_identity_takes_a_numeric_project_id() -> None:
    cfg = stack_config({"gitlabProject": "1234"})
    assert cfg.upload.upload_identity == "access-key"


# IAM user and role names are at most 64 characters.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html#reference_iam-quotas-names
IAM_NAME_MAX = 64


@pytest.mark.parametrize("stack", ["dev", "production-eu"])
def test_the_longest_allowed_app_name_still_gives_an_iam_name_within_the_limit(stack: str) -> None:
    """Formerly a check of the component; now the config bounds the prefix (appName, via the target-group names)
    and the identity's name must fit IAM's limit for every prefix the config allows."""
    longest = next(
        "a" * n
        for n in range(40, 0, -1)
        if not _refused({"appName": "a" * n}, stack=stack)  # the first length the config accepts
    )
    assert _refused({"appName": longest + "a"}, stack=stack)
    prefix = f"{longest}-{stack}"
    assert len(f"{prefix}{NAME_SUFFIX}") <= IAM_NAME_MAX


def _refused(values: Mapping[str, str], *, stack: str) -> bool:
    try:
        stack_config(values, stack=stack)
    except ConfigError:
        return True
    return False


def test_a_reused_provider_names_its_issuer() -> None:
    cfg = stack_config({"gitlabUrl": GITLAB, "uploadIdentity": "oidc", "oidcProviderArn": EXISTING_PROVIDER})
    assert cfg.upload.oidc_issuer == "gitlab.example.com"
    assert stack_config({"uploadIdentity": "oidc"}).upload.oidc_issuer is None


# --- The committed stacks -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_each_stacks_identity_may_put_exactly_its_watched_object(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    found = runs(stack)
    policy: Registration = found.named("upload-identity-put-object")
    [statement] = policy_of(policy)["Statement"]
    assert statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"] == [f"arn:aws:s3:::{found.outputs['sourceBucket']}/{found.outputs['sourceObjectKey']}"]
    assert parliament_findings(policy.props["policy"]) == []


def test_a_credentials_bundle_holds_exactly_its_modes_fields() -> None:
    # The GitLab project registers a variable per field that is set: a bundle with a field missing, or with the
    # other mode's fields, would register the wrong variables without a word.
    def build() -> None:
        key, oidc = bundles.access_key_credentials(), bundles.oidc_credentials()
        with pytest.raises(ValueError, match="mode 'access-key' takes exactly its own fields"):
            UploadCredentials(mode="access-key", principal_arn=key.principal_arn, access_key_id=key.access_key_id)
        with pytest.raises(ValueError, match="mode 'oidc' takes exactly its own fields"):
            UploadCredentials(
                mode="oidc",
                principal_arn=oidc.principal_arn,
                role_arn=oidc.role_arn,
                oidc_provider_arn=oidc.oidc_provider_arn,
                access_key_id=key.access_key_id,
            )

    run(build)
