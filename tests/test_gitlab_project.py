"""GitLabProject and the GitLab provider: every CI/CD variable with its flags, credentials secret end to end,
the deploy key read-only and made from the generated key pair, the stack's job file; GitLabConfig's rules; then
the whole program per stack (the provider from config, both upload identities, the committed CI file, two stacks
on one project).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.base import PROJECT, component_type
from components.config import StackConfig, parse_config
from components.config_types import ConfigError
from components.gitlab_project import (
    CI_INCLUDE,
    CiValues,
    GitLabProject,
    GitLabProjectArgs,
    gitlab_provider,
    render_app_ci,
    split_key,
    with_trailing_newline,
)
from components.upload_identity import UploadCredentials
from offline import engine
from offline.engine import ProgramRun, Registration, is_secret, unwrap
from policy import resource_types as rt
from policy import rules
from support import bundles
from support.stacks import REGION, REQUIRED, STACKS, TOKEN, run, stack_config, stack_run

GITLAB = "https://gitlab.example.com"
PROJECT_PATH = REQUIRED["gitlabProject"]
KEY = "docker-image/docker_image.zip"
SITE = "http://app-dev-123.eu-west-1.elb.amazonaws.com"
# AWS's documented example access key (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html):
# the shape a real key has, which GitLab must accept as a masked value.
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

# key -> (secret, masked, protected, variable_type): what GitLab is told about each variable.
COMMON = {
    "UPLOAD_REGION": (False, False, False, "env_var"),
    "UPLOAD_BUCKET": (False, False, False, "env_var"),
    "UPLOAD_FOLDER": (False, False, False, "env_var"),
    "UPLOAD_FILE_ALL": (False, False, False, "env_var"),
    # Multi-line: GitLab cannot mask it; a protected file.
    # https://docs.gitlab.com/ci/variables/#use-file-type-cicd-variables
    "SSH_PRIVATE_KEY": (True, False, True, "file"),
}
ACCESS_KEY_VARIABLES = {
    **COMMON,
    "AWS_ACCESS_KEY": (True, True, True, "env_var"),
    "AWS_SECRET_KEY": (True, True, True, "env_var"),
}
OIDC_VARIABLES = {**COMMON, "AWS_ROLE_ARN": (False, False, True, "env_var")}


def access_key_credentials(prefix: str = bundles.PREFIX) -> UploadCredentials:
    """The upload user's credentials, with a key shaped like a real one."""
    return dataclasses.replace(
        bundles.access_key_credentials(prefix),
        access_key_id=pulumi.Output.secret(KEY_ID),
        secret_access_key=pulumi.Output.secret(SECRET),
    )


CREDENTIALS: dict[str, Callable[[str], UploadCredentials]] = {
    "access-key": access_key_credentials,
    "oidc": bundles.oidc_credentials,
}


def build_project(
    name: str, mode: str, values: Mapping[str, str] | None = None, *, stack: str = "dev", prefix: str = bundles.PREFIX
) -> None:
    """One GitLabProject from stack-file values, its source and credentials stand-ins; exports what it hands the
    operator and the stand-ins' values (``<name>.<what>``)."""
    cfg = stack_config_for(stack, values)
    source = bundles.source(prefix, KEY)
    credentials = CREDENTIALS[mode](prefix)
    project = GitLabProject(name, GitLabProjectArgs(stack, REGION, cfg.gitlab, source, credentials, SITE))
    pulumi.export(f"{name}.ciYml", project.ci_yml)
    pulumi.export(f"{name}.ciPath", project.ci_path)
    pulumi.export(f"{name}.variableKeys", project.variable_keys)
    pulumi.export(f"{name}.sourceBucket", source.bucket_name)
    pulumi.export(f"{name}.roleArn", credentials.role_arn)


def stack_config_for(stack: str, values: Mapping[str, str] | None) -> StackConfig:
    return stack_config({"gitlabUrl": GITLAB, **(values or {})}, stack=stack)


def openssh_key_pair() -> tuple[str, str]:
    """A real ED25519 pair in the formats the TLS provider returns (the private key without its final newline,
    so that the component's guarantee of one is tested)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private.rstrip("\n"), public.decode() + "\n"


@contextlib.contextmanager
def real_keys() -> Iterator[None]:
    """The offline engine answering for ``tls.PrivateKey`` with a real key pair instead of its fixed stand-in, only
    for this module's component runs (the shared stack fixtures must not see it)."""
    original = engine.RecordingMocks.new_resource

    def new_resource(self: engine.RecordingMocks, args: Any) -> tuple[str | None, dict[str, Any]]:
        resource_id, state = original(self, args)
        if args.typ == rt.TLS_PRIVATE_KEY:
            private, public = openssh_key_pair()
            state |= {"privateKeyOpenssh": private, "publicKeyOpenssh": public}
        return resource_id, state

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.RecordingMocks, "new_resource", new_resource)
        yield


def run_projects(build: Callable[[], None]) -> ProgramRun:
    with real_keys():
        return run(build)


@pytest.fixture(scope="module")
def access_key() -> ProgramRun:
    return run_projects(lambda: build_project("app", "access-key"))


@pytest.fixture(scope="module")
def oidc() -> ProgramRun:
    return run_projects(lambda: build_project("app", "oidc", {"commitGitlabCi": "true"}))


def variables(found: ProgramRun) -> dict[str, Registration]:
    registered = found.of_type(rt.GITLAB_PROJECT_VARIABLE)
    by_key = {r.inputs["key"]: r for r in registered}
    assert len(by_key) == len(registered), "a variable is registered twice"
    return by_key


def flags(reg: Registration) -> tuple[bool, bool, bool, str]:
    return (
        is_secret(reg.inputs["value"]),
        reg.inputs["masked"],
        reg.inputs["protected"],
        reg.inputs["variableType"],
    )


# --- The variables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "expected"), [("access-key", ACCESS_KEY_VARIABLES), ("oidc", OIDC_VARIABLES)])
def test_every_variable_and_its_flags(
    mode: str, expected: dict[str, tuple[bool, bool, bool, str]], request: pytest.FixtureRequest
) -> None:
    found: ProgramRun = request.getfixturevalue(mode.replace("-", "_"))
    registered = variables(found)
    assert {key: flags(reg) for key, reg in registered.items()} == expected
    for key, reg in registered.items():
        # Scoped to the stack's environment (the rendered job declares it), literal, on the application project.
        # https://docs.gitlab.com/ci/environments/#limit-the-environment-scope-of-a-cicd-variable
        assert reg.inputs["environmentScope"] == "dev", key
        # Raw: a `$` in a generated value is never expanded. https://docs.gitlab.com/ci/variables/#prevent-cicd-variable-expansion
        assert reg.inputs["raw"] is True, key
        assert reg.inputs["project"] == PROJECT_PATH, key
        # GitLab >= 17.4 "hidden" can only be set at creation and older servers ignore it: never used.
        # https://docs.gitlab.com/ci/variables/#hide-a-cicd-variable
        assert "hidden" not in reg.inputs, key
    assert found.outputs["app.variableKeys"] == sorted(expected)


@pytest.mark.parametrize("mode", ["access-key", "oidc"])
def test_secret_values_are_secret_inputs_and_secret_outputs(mode: str, request: pytest.FixtureRequest) -> None:
    found: ProgramRun = request.getfixturevalue(mode.replace("-", "_"))
    for key, reg in variables(found).items():
        secret = is_secret(reg.inputs["value"])
        # The provider's schema does not mark `value` secret: the output is secret only through this option.
        assert reg.additional_secret_outputs == (["value"] if secret else []), key


def test_values_are_the_stacks(access_key: ProgramRun, oidc: ProgramRun) -> None:
    values = {key: reg.props["value"] for key, reg in variables(access_key).items()}
    assert values["UPLOAD_REGION"] == REGION
    assert values["UPLOAD_BUCKET"] == access_key.outputs["app.sourceBucket"]
    assert (values["UPLOAD_FOLDER"], values["UPLOAD_FILE_ALL"]) == ("docker-image", "docker_image.zip")
    assert (values["AWS_ACCESS_KEY"], values["AWS_SECRET_KEY"]) == (KEY_ID, SECRET)
    role_arn = oidc.outputs["app.roleArn"]
    assert role_arn and variables(oidc)["AWS_ROLE_ARN"].props["value"] == role_arn


def test_masked_values_meet_gitlabs_masking_rules(access_key: ProgramRun) -> None:
    """GitLab refuses to mask a value under 8 characters or outside Base64 and @:.~ (and the API call fails).
    https://docs.gitlab.com/ci/variables/#mask-a-cicd-variable"""
    masked = {key: reg for key, reg in variables(access_key).items() if reg.inputs["masked"]}
    assert set(masked) == {"AWS_ACCESS_KEY", "AWS_SECRET_KEY"}
    for key, reg in masked.items():
        assert re.fullmatch(r"[A-Za-z0-9+/=@:.~_-]{8,}", reg.props["value"]), key


def test_the_policy_packs_gitlab_rule_accepts_the_variables(access_key: ProgramRun, oidc: ProgramRun) -> None:
    for found in (access_key, oidc):
        assert rules.check_stack([rules.from_registration(r) for r in found.resources]) == []


# --- The deploy key --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["access-key", "oidc"])
def test_deploy_key_is_read_only_and_made_from_the_generated_pair(mode: str, request: pytest.FixtureRequest) -> None:
    found: ProgramRun = request.getfixturevalue(mode.replace("-", "_"))
    pair = found.one(rt.TLS_PRIVATE_KEY)
    assert pair.props["algorithm"] == "ED25519"
    private, public = pair.state["privateKeyOpenssh"], pair.state["publicKeyOpenssh"]
    deploy_key = found.one(rt.GITLAB_DEPLOY_KEY).props
    # A deploy key without write access: https://docs.gitlab.com/user/project/deploy_keys/
    assert deploy_key["canPush"] is False
    assert deploy_key["project"] == PROJECT_PATH
    assert deploy_key["key"] == public
    assert "dev" in deploy_key["title"]

    ssh = variables(found)["SSH_PRIVATE_KEY"]
    assert ssh.props["value"].endswith("-----END OPENSSH PRIVATE KEY-----\n"), "ssh-add needs the final newline"
    assert ssh.props["value"] == private + "\n"
    # The private half in the variable is the one whose public half GitLab knows.
    loaded = serialization.load_ssh_private_key(ssh.props["value"].encode(), password=None)
    derived = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert derived.decode() == public.strip()
    # ... and it appears nowhere else in the registrations.
    holders = [r.name for r in found.resources if json.dumps(private)[1:-1] in json.dumps(r.props)]
    assert holders == [ssh.name]


def test_with_trailing_newline() -> None:
    assert with_trailing_newline("a\nb") == "a\nb\n"
    assert with_trailing_newline("a\nb\n") == "a\nb\n"


# --- The CI file -----------------------------------------------------------------------------------------


def test_ci_file_is_committed_only_when_asked(access_key: ProgramRun, oidc: ProgramRun) -> None:
    assert access_key.of_type(rt.GITLAB_REPOSITORY_FILE) == []
    committed = oidc.one(rt.GITLAB_REPOSITORY_FILE)
    assert committed.props["content"] == oidc.outputs["app.ciYml"]
    # The stack's own file, which the application's .gitlab-ci.yml includes (never that file itself).
    # https://docs.gitlab.com/ci/yaml/includes/#use-includelocal-with-wildcard-file-paths
    assert committed.props["filePath"] == ".gitlab/ci/aws-dev.gitlab-ci.yml" == oidc.outputs["app.ciPath"]
    assert fnmatchcase(committed.props["filePath"], CI_INCLUDE)
    assert committed.props["branch"] == "main"
    assert committed.props["encoding"] == "text"
    assert committed.props["project"] == PROJECT_PATH
    # An existing file is not overwritten silently.
    assert committed.props["overwriteOnCreate"] is False
    # Its commit starts the first upload: every variable exists before it.
    assert {r.urn for r in oidc.of_type(rt.GITLAB_PROJECT_VARIABLE)} <= set(committed.dependencies)


def test_the_ci_file_goes_to_the_configured_default_branch() -> None:
    found = run_projects(
        lambda: build_project("app", "oidc", {"commitGitlabCi": "true", "gitlabDefaultBranch": "trunk"})
    )
    assert found.one(rt.GITLAB_REPOSITORY_FILE).props["branch"] == "trunk"
    [job] = yaml.safe_load(found.outputs["app.ciYml"]).values()
    assert job["rules"] == [{"if": '$CI_COMMIT_BRANCH == "trunk"'}]


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_has_its_own_job_file_under_the_one_include(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    paths = {name: runs(name).outputs["gitlabCiPath"] for name in STACKS}
    assert len(set(paths.values())) == len(paths), "stacks sharing a project never overwrite each other's job"
    path = paths[stack]
    assert path == f".gitlab/ci/aws-{stack}.gitlab-ci.yml" and fnmatchcase(path, CI_INCLUDE)
    # The file says where it goes and how the application includes it.
    header = runs(stack).outputs["gitlabCiYml"].split("\n\n")[0]
    assert path in header and f"- local: {CI_INCLUDE}" in header


def test_rendered_ci_values_are_the_registered_ones(access_key: ProgramRun) -> None:
    [job] = yaml.safe_load(access_key.outputs["app.ciYml"]).values()
    registered = {key: reg.props["value"] for key, reg in variables(access_key).items()}
    for key, value in job["variables"].items():
        if key in registered:
            assert value == registered[key], key
    assert {"UPLOAD_REGION", "UPLOAD_BUCKET", "UPLOAD_FOLDER", "UPLOAD_FILE_ALL"} <= set(job["variables"])
    assert job["environment"]["name"] == "dev"
    # The environment links to the stack's site: GitLab shows it on the environments page and in merge requests.
    # https://docs.gitlab.com/ci/yaml/#environmenturl
    assert job["environment"]["url"] == SITE
    # The ID token's audience is the one the upload role's OIDC provider accepts (its client id: the GitLab URL).
    assert job["id_tokens"]["GITLAB_OIDC_TOKEN"]["aud"] == GITLAB


def test_split_key() -> None:
    assert split_key("docker-image/docker_image.zip") == ("docker-image", "docker_image.zip")
    assert split_key("a/b/app.zip") == ("a/b", "app.zip")
    assert split_key("app.zip") == ("", "app.zip")


def test_a_key_without_folder_renders_an_empty_folder() -> None:
    text = render_app_ci(
        CiValues(
            stack="dev",
            default_branch="main",
            gitlab_url=GITLAB,
            region=REGION,
            bucket="shop-dev-source-123456789012-eu-west-1",
            object_key="app.zip",
            site_url="http://shop-dev-1234567890.eu-west-1.elb.amazonaws.com",
        )
    )
    [job] = yaml.safe_load(text).values()
    assert (job["variables"]["UPLOAD_FOLDER"], job["variables"]["UPLOAD_FILE_ALL"]) == ("", "app.zip")


# --- The component's shape -------------------------------------------------------------------------------


def test_two_stacks_share_one_project_without_collisions() -> None:
    def build() -> None:
        build_project("dev-app", "access-key")
        build_project("prod-app", "oidc", stack="prod", prefix="shop-prod")

    found = run_projects(build)
    assert len({r.urn for r in found.resources}) == len(found.resources)
    scoped = [
        (r.props["project"], r.props["key"], r.props["environmentScope"])
        for r in found.of_type(rt.GITLAB_PROJECT_VARIABLE)
    ]
    assert len(set(scoped)) == len(scoped)
    titles = [r.props["title"] for r in found.of_type(rt.GITLAB_DEPLOY_KEY)]
    assert len(set(titles)) == 2
    # Two stacks' files concatenated are one valid file with both jobs.
    both = yaml.safe_load(found.outputs["dev-app.ciYml"] + found.outputs["prod-app.ciYml"])
    assert set(both) == {"upload-dev", "upload-prod"}


def test_children_are_parented_and_named_after_the_component(access_key: ProgramRun) -> None:
    component = access_key.one(component_type(GitLabProject))
    children = [r for r in access_key.resources if r.custom]
    assert children and all(r.parent == component.urn and r.name.startswith("app-") for r in children)


def test_the_variables_follow_the_credentials_bundle(access_key: ProgramRun, oidc: ProgramRun) -> None:
    """Formerly the component refused credentials that did not match its mode; now the upload identity hands it one
    typed bundle, and each mode's bundle yields that mode's credential variables and no other's."""
    key_variables, role_variables = {"AWS_ACCESS_KEY", "AWS_SECRET_KEY"}, {"AWS_ROLE_ARN"}
    assert set(variables(access_key)) & (key_variables | role_variables) == key_variables
    assert set(variables(oidc)) & (key_variables | role_variables) == role_variables


# --- GitLabConfig ----------------------------------------------------------------------------------------


def gitlab_problems(values: Mapping[str, str], secret_keys: frozenset[str] = frozenset({"gitlabToken"})) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config({**REQUIRED, **values}, stack="dev", region=REGION, secret_keys=secret_keys)
    return raised.value.problems


def test_the_token_must_be_a_secret() -> None:
    [problem] = gitlab_problems({}, secret_keys=frozenset())
    assert problem.startswith(f"{PROJECT}:gitlabToken: must be a secret")
    assert f"pulumi config set --secret {PROJECT}:gitlabToken" in problem


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"gitlabUrl": "http://gitlab.example.com"},
            f"{PROJECT}:gitlabUrl: 'http://gitlab.example.com' is not an https",
        ),
        ({"gitlabProject": "web"}, f"{PROJECT}:gitlabProject: 'web' is not a project path"),
        ({"gitlabDefaultBranch": "main branch"}, f"{PROJECT}:gitlabDefaultBranch: 'main branch' is not a branch name"),
        ({"commitGitlabCi": "yes"}, f"{PROJECT}:commitGitlabCi: expected true or false"),
    ],
)
def test_bad_gitlab_values_name_the_key_and_what_is_allowed(values: dict[str, str], message: str) -> None:
    [problem] = gitlab_problems(values)
    assert problem.startswith(message), problem


def test_the_api_url_is_the_instances_v4_root() -> None:
    cfg = stack_config({"gitlabUrl": "https://git.example.org/gitlab/"}).gitlab
    # A trailing slash in the config is not doubled; the provider wants the API root with one.
    assert cfg.gitlab_url == "https://git.example.org/gitlab"
    assert cfg.api_url == "https://git.example.org/gitlab/api/v4/"
    assert stack_config({}).gitlab.gitlab_url == "https://gitlab.com"
    assert stack_config({"gitlabProject": "1234"}).gitlab.project_is_path is False
    assert stack_config({"gitlabProject": "group/sub/app"}).gitlab.project_is_path is True


# --- The provider ----------------------------------------------------------------------------------------


def test_a_stack_without_a_token_stops_before_anything_is_registered(run_stack: Callable[..., ProgramRun]) -> None:
    """Found with the rest of the config, not after the AWS side exists (a half stack on the first `pulumi up`)."""
    registered: list[Registration] = []
    with pytest.raises(ConfigError) as error:
        run_stack("dev", remove=("gitlabToken",), registered=registered)
    [problem] = error.value.problems
    assert problem.startswith(f"{PROJECT}:gitlabToken: required")
    assert f"pulumi config set --secret {PROJECT}:gitlabToken" in problem
    assert registered == [], [r.name for r in registered]


def _provider_only() -> None:
    gitlab_provider("gitlab", stack_config_for("dev", None).gitlab)


def test_the_provider_comes_from_the_config() -> None:
    found = run(_provider_only)
    provider = found.one(rt.GITLAB_PROVIDER)
    assert provider.props["baseUrl"] == f"{GITLAB}/api/v4/"
    assert is_secret(provider.inputs["token"]) and provider.props["token"] == TOKEN
    # Nothing from the operator's environment.
    assert not {"configFile", "context", "enableAutoCiSupport", "insecure"} & set(provider.props)


def test_the_stacks_provider_comes_from_its_config_and_manages_every_gitlab_resource(dev: ProgramRun) -> None:
    [provider] = dev.of_type(rt.GITLAB_PROVIDER)
    assert provider.props["baseUrl"] == "https://gitlab.example.com/api/v4/"
    assert is_secret(provider.inputs["token"])
    assert "token" in provider.additional_secret_outputs
    assert not {"configFile", "context", "enableAutoCiSupport", "insecure"} & set(provider.props)
    # No default provider (which would read GITLAB_TOKEN from the operator's environment) manages anything.
    gitlab_resources = [r for r in dev.resources if r.type.startswith("gitlab:")]
    assert gitlab_resources
    assert all(r.provider.startswith(f"{provider.urn}::") for r in gitlab_resources), [
        r.name for r in gitlab_resources if not r.provider.startswith(f"{provider.urn}::")
    ]


# --- The whole program -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_oidc() -> ProgramRun:
    return stack_run("dev", overrides={"uploadIdentity": "oidc", "commitGitlabCi": "true"})


def test_access_key_stack_wires_the_users_key_into_the_variables(dev: ProgramRun) -> None:
    found = variables(dev)
    assert set(found) == set(ACCESS_KEY_VARIABLES)
    key = dev.one(rt.IAM_ACCESS_KEY)
    assert found["AWS_ACCESS_KEY"].props["value"] == key.id
    assert found["AWS_SECRET_KEY"].props["value"] == key.state["secret"]["value"]
    assert found["UPLOAD_BUCKET"].props["value"] == dev.outputs["sourceBucket"]
    assert dev.outputs["uploadIdentity"] == {
        "mode": "access-key",
        "principalArn": dev.one(rt.IAM_USER).state["arn"],
        "oidcProviderArn": None,
    }
    assert dev.outputs["gitlabVariables"] == sorted(ACCESS_KEY_VARIABLES)


def test_oidc_stack_registers_no_key_and_no_key_variables(dev_oidc: ProgramRun) -> None:
    assert dev_oidc.of_type(rt.IAM_ACCESS_KEY) == []
    assert dev_oidc.of_type(rt.IAM_USER) == []
    found = variables(dev_oidc)
    assert set(found) == set(OIDC_VARIABLES)
    assert found["AWS_ROLE_ARN"].props["value"] == dev_oidc.one(rt.IAM_ROLE, "upload-identity-role").state["arn"]
    assert dev_oidc.outputs["uploadIdentity"]["mode"] == "oidc"
    provider = dev_oidc.one(rt.IAM_OIDC_PROVIDER).state["arn"]
    assert dev_oidc.outputs["uploadIdentity"]["oidcProviderArn"] == provider
    assert dev_oidc.one(rt.GITLAB_REPOSITORY_FILE).props["content"] == dev_oidc.outputs["gitlabCiYml"]


def test_a_stack_in_an_account_with_the_provider_reuses_it(run_stack: Callable[..., ProgramRun]) -> None:
    arn = f"arn:aws:iam::{engine.ACCOUNT_ID}:oidc-provider/gitlab.example.com"
    found = run_stack("prod", overrides={"uploadIdentity": "oidc", "oidcProviderArn": arn})
    assert found.of_type(rt.IAM_OIDC_PROVIDER) == []
    trust = json.loads(found.one(rt.IAM_ROLE, "upload-identity-role").props["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Federated": arn}
    assert found.outputs["uploadIdentity"]["oidcProviderArn"] == arn


def test_dev_and_prod_share_the_project_without_overwriting_each_other(dev: ProgramRun, prod: ProgramRun) -> None:
    def scoped(found: ProgramRun) -> set[tuple[str, str, str]]:
        return {
            (r.props["project"], r.props["key"], r.props["environmentScope"])
            for r in found.of_type(rt.GITLAB_PROJECT_VARIABLE)
        }

    assert scoped(dev) and scoped(prod)
    assert scoped(dev).isdisjoint(scoped(prod))


def test_no_output_shows_a_credential(dev: ProgramRun, dev_oidc: ProgramRun) -> None:
    for found in (dev, dev_oidc):
        secrets = {
            json.dumps(unwrap(r.inputs["value"]))
            for r in found.of_type(rt.GITLAB_PROJECT_VARIABLE)
            if is_secret(r.inputs["value"]) and r.props["value"]
        }
        assert secrets
        shown = json.dumps({k: v for k, v in found.outputs.items() if k not in found.secret_outputs})
        assert not [s for s in secrets if s.strip('"') in shown]
        assert not {"gitlabCiYml", "gitlabVariables", "uploadIdentity"} & found.secret_outputs


def test_the_job_reads_the_variables_the_program_registers(dev: ProgramRun, dev_oidc: ProgramRun) -> None:
    """Every variable the rendered job reads is registered (in one of the modes), set by the file itself,
    set by the script, or predefined by GitLab (CI_*); and each mode's registered values are read.
    https://docs.gitlab.com/ci/variables/predefined_variables/"""
    text = dev.outputs["gitlabCiYml"]
    assert dev_oidc.outputs["gitlabCiYml"] == text, "the file does not depend on the upload identity"
    [job] = yaml.safe_load(text).values()
    script = "\n".join(job["script"])
    read = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", script))
    assigned = set(re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", script, re.MULTILINE))
    for names in re.findall(r"\bread -r ([A-Za-z_ ]+)", script):
        assigned |= set(names.split())
    assigned |= set(re.findall(r"\bfor ([A-Za-z_]\w*) in", script))
    registered = {mode: set(variables(found)) for mode, found in (("access-key", dev), ("oidc", dev_oidc))}
    provided = set(job["variables"]) | set(job["id_tokens"]) | assigned
    unknown = {name for name in read - provided if not name.startswith("CI_")}
    assert unknown <= registered["access-key"] | registered["oidc"], unknown - registered["access-key"]
    for mode, keys in registered.items():
        # SSH_PRIVATE_KEY is for the project's other jobs (cloning private dependencies); the upload needs none.
        assert keys - {"SSH_PRIVATE_KEY"} <= read, mode


def test_whole_stack_wires_one_key_pair_into_the_deploy_key_and_the_secret_variable(dev: ProgramRun) -> None:
    """In the real program (not a component test) the generated pair reaches GitLab: public half as the
    read-only deploy key, private half only in SSH_PRIVATE_KEY, as a secret."""
    pair = dev.one(rt.TLS_PRIVATE_KEY)
    deploy_key = dev.one(rt.GITLAB_DEPLOY_KEY)
    ssh = variables(dev)["SSH_PRIVATE_KEY"]
    assert deploy_key.props["key"] == pair.state["publicKeyOpenssh"]
    assert deploy_key.props["canPush"] is False
    assert is_secret(ssh.inputs["value"])
    # GitLab wants a file-type key variable to end with a newline.
    # https://docs.gitlab.com/ci/jobs/ssh_keys/#ssh-keys-when-using-the-docker-executor
    assert ssh.props["value"] == unwrap(pair.state["privateKeyOpenssh"]).rstrip("\n") + "\n"
