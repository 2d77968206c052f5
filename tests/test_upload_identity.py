"""UploadIdentity: both modes on mocks (what is registered, with which policy), the policies through parliament
and the project's policy pack, the access-key user's permission replayed against moto with IAM enforcement (it
can put the watched object and do nothing else), and the OIDC role's trust against the claims GitLab puts in
its ID tokens.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from parliament import analyze_policy_string

from components.upload_identity import UploadIdentity, UploadIdentityArgs
from offline.engine import ProgramRun, Registration, run_program
from offline.stack_files import StackFiles, committed_stacks
from policy import rules

REGION = "eu-west-1"
BUCKET = "shop-dev-source-123456789012-eu-west-1"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
KEY = "docker-image/docker_image.zip"
GITLAB = "https://gitlab.example.com"
PROJECT = "shop/web"
BRANCH = "main"

USER = "aws:iam/user:User"
ACCESS_KEY = "aws:iam/accessKey:AccessKey"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
OIDC_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

PROGRAM = """
import pulumi
from components.upload_identity import UploadIdentity, UploadIdentityArgs

for spec in pulumi.Config().require_object("identities"):
    identity = UploadIdentity(spec["name"], UploadIdentityArgs(
        name_prefix=spec["prefix"], mode=spec["mode"], bucket_arn=spec["bucketArn"], object_key=spec["key"],
        gitlab_url=spec["url"], project=spec["project"], default_branch=spec["branch"],
        oidc_provider_arn=spec.get("providerArn"),
    ))
    pulumi.export(spec["name"], {
        "mode": identity.mode, "principalArn": identity.principal_arn, "accessKeyId": identity.access_key_id,
        "secretAccessKey": identity.secret_access_key, "roleArn": identity.role_arn,
        "oidcProviderArn": identity.oidc_provider_arn,
    })
"""


@pytest.fixture(autouse=True)
def _no_ambient_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto must see the test's keys only, never an operator's."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield


def identity(name: str, mode: str, **overrides: str) -> dict[str, str]:
    spec = {
        "name": name,
        "prefix": "shop-dev",
        "mode": mode,
        "bucketArn": BUCKET_ARN,
        "key": KEY,
        "url": GITLAB,
        "project": PROJECT,
        "branch": BRANCH,
    }
    return {**spec, **overrides}


def run_identities(tmp_path: Path, *specs: dict[str, str]) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {"aws:region": REGION, "gitlab-fargate:identities": json.dumps(list(specs))}
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def access_key(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_identities(tmp_path_factory.mktemp("access-key"), identity("upload", "access-key"))


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_identities(tmp_path_factory.mktemp("oidc"), identity("upload", "oidc"))


def policy_of(reg: Registration, prop: str = "policy") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(reg.props[prop])
    return doc


def assert_only_put_of_the_watched_object(doc: dict[str, Any]) -> None:
    [statement] = doc["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"] == [f"{BUCKET_ARN}/{KEY}"]
    assert "Condition" not in statement and "NotAction" not in statement and "NotResource" not in statement


def parliament_findings(policy: str) -> list[str]:
    return [f"{f.issue}: {f.detail}" for f in analyze_policy_string(policy).findings]


# --- access-key ------------------------------------------------------------------------------------------


def test_access_key_mode_is_a_user_with_one_permission_and_a_key(access_key: ProgramRun) -> None:
    user = access_key.one(USER)
    assert user.props["name"] == "shop-dev-gitlab-upload"
    policy = access_key.one(USER_POLICY)
    assert policy.props["user"] == user.props["name"]
    assert_only_put_of_the_watched_object(policy_of(policy))
    assert access_key.one(ACCESS_KEY).props["user"] == user.props["name"]
    # Nothing else: no group, no managed policy, no console login, no OIDC.
    assert sorted(r.type for r in access_key.resources if r.custom) == sorted([USER, USER_POLICY, ACCESS_KEY])
    out = access_key.outputs["upload"]
    assert out["mode"] == "access-key"
    assert out["principalArn"] == user.state["arn"]
    assert out["roleArn"] is None and out["oidcProviderArn"] is None


def test_access_key_mode_keeps_both_halves_of_the_key_secret(access_key: ProgramRun) -> None:
    assert "upload" in access_key.secret_outputs
    out = access_key.outputs["upload"]
    assert out["secretAccessKey"] == access_key.one(ACCESS_KEY).state["secret"]["value"]
    assert out["accessKeyId"] == access_key.one(ACCESS_KEY).id


def test_access_key_user_may_put_the_watched_object_and_nothing_else(access_key: ProgramRun) -> None:
    """The program's policy, attached to a user in moto with IAM enforcement on, and that user's key used."""
    document = access_key.one(USER_POLICY).props["policy"]

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
        admin.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        admin_iam = admin.client("iam")
        admin_iam.create_user(UserName="uploader")
        admin_iam.put_user_policy(UserName="uploader", PolicyName="put-object", PolicyDocument=document)
        key = admin_iam.create_access_key(UserName="uploader")["AccessKey"]
        s3 = boto3.client(
            "s3",
            region_name=REGION,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )

        s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"archive")
        denied = {
            "another key": lambda: s3.put_object(Bucket=BUCKET, Key="docker-image/other.zip", Body=b"x"),
            "read": lambda: s3.get_object(Bucket=BUCKET, Key=KEY),
            "list": lambda: s3.list_objects_v2(Bucket=BUCKET),
            "delete": lambda: s3.delete_object(Bucket=BUCKET, Key=KEY),
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
    provider = oidc.one(OIDC_PROVIDER).props
    assert provider["url"] == GITLAB
    # The audience GitLab puts in the ID token (the job's `id_tokens: ...: aud:`).
    assert provider["clientIdLists"] == [GITLAB]
    # No pinned thumbprint (IAM validates with its trusted CAs, or fetches the thumbprint itself).
    assert not provider.get("thumbprintLists")
    role = oidc.one(ROLE)
    assert role.props["name"] == "shop-dev-gitlab-upload"
    policy = oidc.one(ROLE_POLICY)
    assert policy.props["role"] == role.id
    assert_only_put_of_the_watched_object(policy_of(policy))
    assert oidc.of_type(ACCESS_KEY) == [] and oidc.of_type(USER) == []
    out = oidc.outputs["upload"]
    assert out["mode"] == "oidc"
    assert out["principalArn"] == out["roleArn"] == role.state["arn"]
    assert out["oidcProviderArn"] == oidc.one(OIDC_PROVIDER).state["arn"]
    assert out["accessKeyId"] is None and out["secretAccessKey"] is None


def test_oidc_role_trust_pins_audience_project_and_branch(oidc: ProgramRun) -> None:
    trust = policy_of(oidc.one(ROLE), "assumeRolePolicy")
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Federated": oidc.one(OIDC_PROVIDER).state["arn"]}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    # Exact matches only: StringLike (or a wildcard) would let other branches or projects in.
    assert statement["Condition"] == {
        "StringEquals": {
            "gitlab.example.com:aud": GITLAB,
            "gitlab.example.com:sub": f"project_path:{PROJECT}:ref_type:branch:ref:{BRANCH}",
        }
    }


# IAM allows one OIDC identity provider per issuer URL in an account (CreateOpenIDConnectProvider fails with
# EntityAlreadyExists otherwise): https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html
# A stack in an account that has one (another stack's, or the infrastructure CI's) reuses it by ARN.
EXISTING_PROVIDER = "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com"


def test_oidc_reuses_an_existing_provider_and_creates_none(tmp_path: Path) -> None:
    run = run_identities(tmp_path, identity("upload", "oidc", providerArn=EXISTING_PROVIDER))
    assert run.of_type(OIDC_PROVIDER) == [], "a second provider for the same URL is refused by IAM"
    trust = policy_of(run.one(ROLE), "assumeRolePolicy")
    assert trust["Statement"][0]["Principal"] == {"Federated": EXISTING_PROVIDER}
    assert run.outputs["upload"]["oidcProviderArn"] == EXISTING_PROVIDER


def test_two_oidc_stacks_in_one_account_create_one_provider_between_them(tmp_path: Path) -> None:
    """What IAM enforces (one provider per URL per account), replayed in moto: the second stack reuses the first's
    provider instead of creating another, and both roles trust it."""
    run = run_identities(
        tmp_path,
        identity("dev-upload", "oidc"),
        identity("prod-upload", "oidc", prefix="shop-prod", providerArn=EXISTING_PROVIDER),
    )
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        for provider in run.of_type(OIDC_PROVIDER):
            iam.create_open_id_connect_provider(Url=provider.props["url"], ClientIDList=provider.props["clientIdLists"])
        with pytest.raises(ClientError, match="EntityAlreadyExists"):
            iam.create_open_id_connect_provider(Url=GITLAB, ClientIDList=[GITLAB])
        [listed] = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        assert listed["Arn"] == EXISTING_PROVIDER
        for role in run.of_type(ROLE):
            [statement] = policy_of(role, "assumeRolePolicy")["Statement"]
            assert statement["Principal"]["Federated"] == EXISTING_PROVIDER
            iam.create_role(RoleName=role.props["name"], AssumeRolePolicyDocument=role.props["assumeRolePolicy"])


def allowed_by(trust: dict[str, Any], claims: dict[str, str]) -> bool:
    """IAM's evaluation of a StringEquals-only trust condition against an ID token's claims."""
    [statement] = trust["Statement"]
    assert set(statement["Condition"]) == {"StringEquals"}
    return all(
        claims.get(key.split(":", 1)[1]) == value for key, value in statement["Condition"]["StringEquals"].items()
    )


@pytest.mark.parametrize(
    ("sub", "aud", "allowed"),
    [
        (f"project_path:{PROJECT}:ref_type:branch:ref:{BRANCH}", GITLAB, True),
        (f"project_path:{PROJECT}:ref_type:branch:ref:feature", GITLAB, False),
        (f"project_path:{PROJECT}:ref_type:tag:ref:{BRANCH}", GITLAB, False),
        (f"project_path:{PROJECT}-fork:ref_type:branch:ref:{BRANCH}", GITLAB, False),
        (f"project_path:other/{PROJECT}:ref_type:branch:ref:{BRANCH}", GITLAB, False),
        (f"project_path:{PROJECT}:ref_type:branch:ref:{BRANCH}", "https://gitlab.example.com.evil", False),
    ],
)
def test_only_this_projects_default_branch_may_assume_the_role(
    oidc: ProgramRun, sub: str, aud: str, allowed: bool
) -> None:
    # The claims GitLab issues to a job (https://docs.gitlab.com/ci/secrets/id_token_authentication/).
    claims = {"sub": sub, "aud": aud, "iss": GITLAB}
    assert allowed_by(policy_of(oidc.one(ROLE), "assumeRolePolicy"), claims) is allowed


# --- both ------------------------------------------------------------------------------------------------


@pytest.fixture(params=["access-key", "oidc"])
def either(request: pytest.FixtureRequest) -> ProgramRun:
    run: ProgramRun = request.getfixturevalue(request.param.replace("-", "_"))
    return run


def test_permission_policies_pass_parliament(either: ProgramRun) -> None:
    policies = either.of_type(USER_POLICY) + either.of_type(ROLE_POLICY)
    assert len(policies) == 1
    assert parliament_findings(policies[0].props["policy"]) == []


def test_the_projects_policy_pack_accepts_every_resource(either: ProgramRun) -> None:
    assert rules.check_stack([rules.from_registration(r) for r in either.resources]) == []


def test_children_are_parented_and_named_after_the_component(either: ProgramRun) -> None:
    [component] = either.of_type("gitlab-fargate:index:UploadIdentity")
    children = [r for r in either.resources if r.custom]
    assert children and all(r.parent == component.urn and r.name.startswith("upload-") for r in children)


def test_two_identities_do_not_collide(tmp_path: Path) -> None:
    run = run_identities(
        tmp_path,
        identity("dev-upload", "access-key"),
        identity("prod-upload", "oidc", prefix="shop-prod", url="https://git.example.org", branch="release"),
    )
    assert len({r.urn for r in run.resources}) == len(run.resources)
    assert {r.props["name"] for r in run.of_type(USER) + run.of_type(ROLE)} == {
        "shop-dev-gitlab-upload",
        "shop-prod-gitlab-upload",
    }
    trust = policy_of(run.one(ROLE), "assumeRolePolicy")
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {
        "git.example.org:aud": "https://git.example.org",
        "git.example.org:sub": f"project_path:{PROJECT}:ref_type:branch:ref:release",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mode": "password"}, "upload identity 'password' is not allowed"),
        ({"mode": "oidc", "project": "1234"}, "gitlab-fargate:gitlabProject '1234'.*path"),
        ({"mode": "oidc", "url": "http://gitlab.example.com"}, "must start with https://"),
        ({"prefix": "a" * 60}, "longer than 64 characters"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(overrides: dict[str, str], message: str) -> None:
    spec = {**identity("upload", "access-key"), **overrides}
    with pytest.raises(ValueError, match=message):
        UploadIdentity(
            "upload",
            UploadIdentityArgs(
                name_prefix=spec["prefix"],
                mode=spec["mode"],
                bucket_arn=BUCKET_ARN,
                object_key=KEY,
                gitlab_url=spec["url"],
                project=spec["project"],
                default_branch=BRANCH,
            ),
        )


@pytest.mark.parametrize("stack", committed_stacks())
def test_each_stacks_identity_may_put_exactly_its_watched_object(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    run = runs(stack)
    policy = run.named("upload-identity-put-object")
    [statement] = policy_of(policy)["Statement"]
    assert statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"] == [f"arn:aws:s3:::{run.outputs['sourceBucket']}/{run.outputs['sourceObjectKey']}"]
    assert parliament_findings(policy.props["policy"]) == []
