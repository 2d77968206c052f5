"""GitLabProject and the GitLab provider: every CI/CD variable with its flags, credentials secret end to end,
the deploy key read-only and made from the generated key pair; then the whole program per stack (the provider
from config, both upload identities, the committed CI file, two stacks on one project).
"""

from __future__ import annotations

import contextlib
import json
import re
import textwrap
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import stack_run
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.config import ConfigError
from components.gitlab_project import (
    CI_INCLUDE,
    CiValues,
    GitLabProject,
    GitLabProjectArgs,
    render_app_ci,
    split_key,
    with_trailing_newline,
)
from offline import engine
from offline.engine import ProgramRun, Registration, is_secret, run_program, unwrap
from offline.stack_files import StackFiles, committed_stacks, load_stack_files

VARIABLE = "gitlab:index/projectVariable:ProjectVariable"
DEPLOY_KEY = "gitlab:index/deployKey:DeployKey"
REPOSITORY_FILE = "gitlab:index/repositoryFile:RepositoryFile"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
PROVIDER = "pulumi:providers:gitlab"

PROJECT = "shop/web"
BUCKET = "shop-dev-source-123456789012-eu-west-1"
KEY = "docker-image/docker_image.zip"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE_ARN = "arn:aws:iam::123456789012:role/shop-dev-gitlab-upload"

PROGRAM = """
import pulumi
from components.gitlab_project import GitLabProject, GitLabProjectArgs

for spec in pulumi.Config().require_object("projects"):
    project = GitLabProject(spec.pop("name"), GitLabProjectArgs(**spec))
    pulumi.export(project._name, {"ciYml": project.ci_yml, "variableKeys": project.variable_keys})
"""

# key -> (secret, masked, protected, variable_type): what GitLab is told about each variable.
COMMON = {
    "UPLOAD_REGION": (False, False, False, "env_var"),
    "UPLOAD_BUCKET": (False, False, False, "env_var"),
    "UPLOAD_FOLDER": (False, False, False, "env_var"),
    "UPLOAD_FILE_ALL": (False, False, False, "env_var"),
    # Multi-line: GitLab cannot mask it; a protected file.
    "SSH_PRIVATE_KEY": (True, False, True, "file"),
}
ACCESS_KEY_VARIABLES = {
    **COMMON,
    "AWS_ACCESS_KEY": (True, True, True, "env_var"),
    "AWS_SECRET_KEY": (True, True, True, "env_var"),
}
OIDC_VARIABLES = {**COMMON, "AWS_ROLE_ARN": (False, False, True, "env_var")}


def project(name: str, mode: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "project": PROJECT,
        "stack": "dev",
        "default_branch": "main",
        "gitlab_url": "https://gitlab.example.com",
        "region": "eu-west-1",
        "bucket_name": BUCKET,
        "object_key": KEY,
        "upload_identity": mode,
        "commit_ci_file": False,
    }
    if mode == "access-key":
        spec |= {"access_key_id": KEY_ID, "secret_access_key": SECRET}
    else:
        spec |= {"role_arn": ROLE_ARN}
    return {**spec, **overrides}


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
    """The mock engine answering for ``tls.PrivateKey`` with a real key pair instead of its fixed stand-in,
    only for the component runs of this module (the shared stack fixtures must not see it)."""
    original = engine.RecordingMocks.new_resource

    def new_resource(self: engine.RecordingMocks, args: Any) -> tuple[str | None, dict[str, Any]]:
        resource_id, state = original(self, args)
        if args.typ == PRIVATE_KEY:
            private, public = openssh_key_pair()
            state |= {"privateKeyOpenssh": private, "publicKeyOpenssh": public}
        return resource_id, state

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.RecordingMocks, "new_resource", new_resource)
        yield


def run_projects(tmp_path: Path, *specs: dict[str, Any]) -> ProgramRun:
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    config = {"aws:region": "eu-west-1", "gitlab-fargate:projects": json.dumps(list(specs))}
    with real_keys():
        return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def access_key(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_projects(tmp_path_factory.mktemp("access-key"), project("app", "access-key"))


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_projects(tmp_path_factory.mktemp("oidc"), project("app", "oidc", commit_ci_file=True))


def variables(run: ProgramRun) -> dict[str, Registration]:
    found = {r.inputs["key"]: r for r in run.of_type(VARIABLE)}
    assert len(found) == len(run.of_type(VARIABLE)), "a variable is registered twice"
    return found


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
    mode: str, expected: dict[str, tuple[bool, bool, bool, str]], request: Any
) -> None:
    run: ProgramRun = request.getfixturevalue(mode.replace("-", "_"))
    found = variables(run)
    assert {key: flags(reg) for key, reg in found.items()} == expected
    for key, reg in found.items():
        # Scoped to the stack's environment (the rendered job declares it), literal, on the application project.
        assert reg.inputs["environmentScope"] == "dev", key
        assert reg.inputs["raw"] is True, key
        assert reg.inputs["project"] == PROJECT, key
        # GitLab >= 17.4 "hidden" can only be set at creation and older servers ignore it: never used.
        assert "hidden" not in reg.inputs, key
    assert run.outputs["app"]["variableKeys"] == sorted(expected)


@pytest.mark.parametrize("mode", ["access-key", "oidc"])
def test_secret_values_are_secret_inputs_and_secret_outputs(mode: str, request: Any) -> None:
    run: ProgramRun = request.getfixturevalue(mode.replace("-", "_"))
    for key, reg in variables(run).items():
        secret = is_secret(reg.inputs["value"])
        # The provider's schema does not mark `value` secret: the output is secret only through this option.
        assert reg.additional_secret_outputs == (["value"] if secret else []), key


def test_values_are_the_stacks(access_key: ProgramRun, oidc: ProgramRun) -> None:
    values = {key: reg.props["value"] for key, reg in variables(access_key).items()}
    assert values["UPLOAD_REGION"] == "eu-west-1"
    assert values["UPLOAD_BUCKET"] == BUCKET
    assert (values["UPLOAD_FOLDER"], values["UPLOAD_FILE_ALL"]) == ("docker-image", "docker_image.zip")
    assert (values["AWS_ACCESS_KEY"], values["AWS_SECRET_KEY"]) == (KEY_ID, SECRET)
    assert variables(oidc)["AWS_ROLE_ARN"].props["value"] == ROLE_ARN


def test_masked_values_meet_gitlabs_masking_rules(access_key: ProgramRun) -> None:
    """GitLab refuses to mask a value under 8 characters or outside Base64 and @:.~ (and the API call fails)."""
    for key, reg in variables(access_key).items():
        if reg.inputs["masked"]:
            assert re.fullmatch(r"[A-Za-z0-9+/=@:.~_-]{8,}", reg.props["value"]), key


# --- The deploy key --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["access-key", "oidc"])
def test_deploy_key_is_read_only_and_made_from_the_generated_pair(mode: str, request: Any) -> None:
    run: ProgramRun = request.getfixturevalue(mode.replace("-", "_"))
    pair = run.one(PRIVATE_KEY)
    assert pair.props["algorithm"] == "ED25519"
    private, public = pair.state["privateKeyOpenssh"], pair.state["publicKeyOpenssh"]
    deploy_key = run.one(DEPLOY_KEY).props
    assert deploy_key["canPush"] is False
    assert deploy_key["project"] == PROJECT
    assert deploy_key["key"] == public
    assert "dev" in deploy_key["title"]

    ssh = variables(run)["SSH_PRIVATE_KEY"]
    assert ssh.props["value"].endswith("-----END OPENSSH PRIVATE KEY-----\n"), "ssh-add needs the final newline"
    assert ssh.props["value"] == private + "\n"
    # The private half in the variable is the one whose public half GitLab knows.
    loaded = serialization.load_ssh_private_key(ssh.props["value"].encode(), password=None)
    derived = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert derived.decode() == public.strip()
    # ... and it appears nowhere else in the registrations.
    holders = [r.name for r in run.resources if json.dumps(private)[1:-1] in json.dumps(r.props)]
    assert holders == [ssh.name]


def test_with_trailing_newline() -> None:
    assert with_trailing_newline("a\nb") == "a\nb\n"
    assert with_trailing_newline("a\nb\n") == "a\nb\n"


# --- The CI file -----------------------------------------------------------------------------------------


def test_ci_file_is_committed_only_when_asked(access_key: ProgramRun, oidc: ProgramRun) -> None:
    assert access_key.of_type(REPOSITORY_FILE) == []
    committed = oidc.one(REPOSITORY_FILE)
    assert committed.props["content"] == oidc.outputs["app"]["ciYml"]
    # The stack's own file, which the application's .gitlab-ci.yml includes (never that file itself).
    assert committed.props["filePath"] == ".gitlab/ci/aws-dev.gitlab-ci.yml"
    assert fnmatchcase(committed.props["filePath"], CI_INCLUDE)
    assert committed.props["branch"] == "main"
    assert committed.props["encoding"] == "text"
    assert committed.props["project"] == PROJECT
    # An existing file is not overwritten silently.
    assert committed.props["overwriteOnCreate"] is False
    # Its commit starts the first upload: every variable exists before it.
    assert {r.urn for r in oidc.of_type(VARIABLE)} <= set(committed.dependencies)


def test_every_stack_has_its_own_job_file_under_the_one_include(runs: Callable[[str], ProgramRun]) -> None:
    paths = {stack: runs(stack).outputs["gitlabCiPath"] for stack in committed_stacks()}
    assert len(set(paths.values())) == len(paths), "stacks sharing a project never overwrite each other's job"
    for stack, path in paths.items():
        assert path == f".gitlab/ci/aws-{stack}.gitlab-ci.yml" and fnmatchcase(path, CI_INCLUDE)
        # The file says where it goes and how the application includes it.
        header = runs(stack).outputs["gitlabCiYml"].split("\n\n")[0]
        assert path in header and f"- local: {CI_INCLUDE}" in header


def test_rendered_ci_values_are_the_registered_ones(access_key: ProgramRun) -> None:
    [job] = yaml.safe_load(access_key.outputs["app"]["ciYml"]).values()
    registered = {key: reg.props["value"] for key, reg in variables(access_key).items()}
    for key, value in job["variables"].items():
        if key in registered:
            assert value == registered[key], key
    assert {"UPLOAD_REGION", "UPLOAD_BUCKET", "UPLOAD_FOLDER", "UPLOAD_FILE_ALL"} <= set(job["variables"])
    assert job["environment"]["name"] == "dev"


def test_split_key() -> None:
    assert split_key("docker-image/docker_image.zip") == ("docker-image", "docker_image.zip")
    assert split_key("a/b/app.zip") == ("a/b", "app.zip")
    assert split_key("app.zip") == ("", "app.zip")


def test_a_key_without_folder_renders_an_empty_folder() -> None:
    text = render_app_ci(
        CiValues(
            stack="dev",
            default_branch="main",
            gitlab_url="https://gitlab.example.com",
            region="eu-west-1",
            bucket=BUCKET,
            object_key="app.zip",
        )
    )
    [job] = yaml.safe_load(text).values()
    assert (job["variables"]["UPLOAD_FOLDER"], job["variables"]["UPLOAD_FILE_ALL"]) == ("", "app.zip")


# --- The component's shape -------------------------------------------------------------------------------


def test_two_stacks_share_one_project_without_collisions(tmp_path: Path) -> None:
    run = run_projects(
        tmp_path,
        project("dev-app", "access-key"),
        project("prod-app", "oidc", stack="prod", bucket_name="shop-prod-source-123456789012-eu-west-1"),
    )
    assert len({r.urn for r in run.resources}) == len(run.resources)
    scoped = [(r.props["project"], r.props["key"], r.props["environmentScope"]) for r in run.of_type(VARIABLE)]
    assert len(set(scoped)) == len(scoped)
    titles = [r.props["title"] for r in run.of_type(DEPLOY_KEY)]
    assert len(set(titles)) == 2
    # Two stacks' files concatenated are one valid file with both jobs.
    both = yaml.safe_load(run.outputs["dev-app"]["ciYml"] + run.outputs["prod-app"]["ciYml"])
    assert set(both) == {"upload-dev", "upload-prod"}


def test_children_are_parented_and_named_after_the_component(access_key: ProgramRun) -> None:
    [component] = access_key.of_type("gitlab-fargate:index:GitLabProject")
    children = [r for r in access_key.resources if r.custom]
    assert children and all(r.parent == component.urn and r.name.startswith("app-") for r in children)


@pytest.mark.parametrize(
    ("mode", "credentials", "message"),
    [
        ("access-key", {"access_key_id": KEY_ID}, "'access-key' takes access_key_id and secret_access_key"),
        ("access-key", {"access_key_id": KEY_ID, "secret_access_key": SECRET, "role_arn": ROLE_ARN}, "no role_arn"),
        ("oidc", {}, "'oidc' takes role_arn"),
        ("oidc", {"role_arn": ROLE_ARN, "secret_access_key": SECRET}, "and no access key"),
        ("password", {}, "'password' is not allowed"),
    ],
)
def test_credentials_must_match_the_upload_identity(mode: str, credentials: dict[str, str], message: str) -> None:
    spec = project("app", "oidc")
    del spec["name"], spec["role_arn"]
    with pytest.raises(ValueError, match=message):
        GitLabProject("app", GitLabProjectArgs(**{**spec, "upload_identity": mode, **credentials}))


# --- The provider ----------------------------------------------------------------------------------------


def test_a_stack_without_a_token_stops_before_anything_is_registered(tmp_path: Path) -> None:
    """Found with the rest of the config, not after the AWS side exists (a half stack on the first `pulumi up`)."""
    files = load_stack_files("dev")
    registered: list[Registration] = []
    with pytest.raises(ConfigError) as error:
        run_program(files, remove=("gitlabToken",), registered=registered)
    [problem] = error.value.problems
    assert problem.startswith("gitlab-fargate:gitlabToken: required")
    assert "pulumi config set --secret gitlab-fargate:gitlabToken" in problem
    assert registered == [], [r.name for r in registered]


def test_the_provider_comes_from_the_stacks_config(dev: ProgramRun) -> None:
    [provider] = dev.of_type(PROVIDER)
    assert provider.props["baseUrl"] == "https://gitlab.example.com/api/v4/"
    assert is_secret(provider.inputs["token"])
    assert "token" in provider.additional_secret_outputs
    # Nothing from the operator's environment.
    assert not {"configFile", "context", "enableAutoCiSupport", "insecure"} & set(provider.props)


# --- The whole program -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_oidc() -> ProgramRun:
    return stack_run("dev", overrides={"uploadIdentity": "oidc", "commitGitlabCi": "true"})


def test_access_key_stack_wires_the_users_key_into_the_variables(dev: ProgramRun) -> None:
    found = variables(dev)
    assert set(found) == set(ACCESS_KEY_VARIABLES)
    key = dev.one("aws:iam/accessKey:AccessKey")
    assert found["AWS_ACCESS_KEY"].props["value"] == key.id
    assert found["AWS_SECRET_KEY"].props["value"] == key.state["secret"]["value"]
    assert found["UPLOAD_BUCKET"].props["value"] == dev.outputs["sourceBucket"]
    assert dev.outputs["uploadIdentity"] == {
        "mode": "access-key",
        "principalArn": dev.one("aws:iam/user:User").state["arn"],
        "oidcProviderArn": None,
    }
    assert dev.outputs["gitlabVariables"] == sorted(ACCESS_KEY_VARIABLES)


def test_oidc_stack_registers_no_key_and_no_key_variables(dev_oidc: ProgramRun) -> None:
    assert dev_oidc.of_type("aws:iam/accessKey:AccessKey") == []
    assert dev_oidc.of_type("aws:iam/user:User") == []
    found = variables(dev_oidc)
    assert set(found) == set(OIDC_VARIABLES)
    assert (
        found["AWS_ROLE_ARN"].props["value"] == dev_oidc.one("aws:iam/role:Role", "upload-identity-role").state["arn"]
    )
    assert dev_oidc.outputs["uploadIdentity"]["mode"] == "oidc"
    provider = dev_oidc.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").state["arn"]
    assert dev_oidc.outputs["uploadIdentity"]["oidcProviderArn"] == provider
    assert dev_oidc.one(REPOSITORY_FILE).props["content"] == dev_oidc.outputs["gitlabCiYml"]


def test_a_stack_in_an_account_with_the_provider_reuses_it(run_stack: Callable[..., ProgramRun]) -> None:
    arn = "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com"
    run = run_stack("prod", overrides={"uploadIdentity": "oidc", "oidcProviderArn": arn})
    assert run.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider") == []
    trust = json.loads(run.one("aws:iam/role:Role", "upload-identity-role").props["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Federated": arn}
    assert run.outputs["uploadIdentity"]["oidcProviderArn"] == arn


def test_dev_and_prod_share_the_project_without_overwriting_each_other(dev: ProgramRun, prod: ProgramRun) -> None:
    def scoped(run: ProgramRun) -> set[tuple[str, str, str]]:
        return {(r.props["project"], r.props["key"], r.props["environmentScope"]) for r in run.of_type(VARIABLE)}

    assert scoped(dev) and scoped(prod)
    assert scoped(dev).isdisjoint(scoped(prod))


def test_no_output_shows_a_credential(dev: ProgramRun, dev_oidc: ProgramRun) -> None:
    for run in (dev, dev_oidc):
        secrets = {
            json.dumps(engine.unwrap(r.inputs["value"]))
            for r in run.of_type(VARIABLE)
            if is_secret(r.inputs["value"]) and r.props["value"]
        }
        shown = json.dumps({k: v for k, v in run.outputs.items() if k not in run.secret_outputs})
        assert not [s for s in secrets if s.strip('"') in shown]
        assert not {"gitlabCiYml", "gitlabVariables", "uploadIdentity"} & run.secret_outputs


def test_the_job_reads_the_variables_the_program_registers(dev: ProgramRun, dev_oidc: ProgramRun) -> None:
    """Every variable the rendered job reads is registered (in one of the modes), set by the file itself,
    set by the script, or predefined by GitLab (CI_*); and each mode's registered values are read."""
    text = dev.outputs["gitlabCiYml"]
    assert dev_oidc.outputs["gitlabCiYml"] == text, "the file does not depend on the upload identity"
    [job] = yaml.safe_load(text).values()
    script = "\n".join(job["script"])
    read = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", script))
    assigned = set(re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", script, re.MULTILINE))
    for names in re.findall(r"\bread -r ([A-Za-z_ ]+)", script):
        assigned |= set(names.split())
    assigned |= set(re.findall(r"\bfor ([A-Za-z_]\w*) in", script))
    registered = {mode: set(variables(run)) for mode, run in (("access-key", dev), ("oidc", dev_oidc))}
    provided = set(job["variables"]) | set(job["id_tokens"]) | assigned
    unknown = {name for name in read - provided if not name.startswith("CI_")}
    assert unknown <= registered["access-key"] | registered["oidc"], unknown - registered["access-key"]
    for mode, keys in registered.items():
        # SSH_PRIVATE_KEY is for the project's other jobs (cloning private dependencies); the upload needs none.
        assert keys - {"SSH_PRIVATE_KEY"} <= read, mode


def test_whole_stack_wires_one_key_pair_into_the_deploy_key_and_the_secret_variable() -> None:
    """In the real program (not a component test) the generated pair reaches GitLab: public half as the
    read-only deploy key, private half only in SSH_PRIVATE_KEY, as a secret. (Its own run, not the shared
    ``dev`` fixture: this module patches the engine's key pair.)"""
    dev = stack_run("dev")
    pair = dev.one("tls:index/privateKey:PrivateKey")
    deploy_key = dev.one("gitlab:index/deployKey:DeployKey")
    ssh = next(
        v for v in dev.of_type("gitlab:index/projectVariable:ProjectVariable") if v.props["key"] == "SSH_PRIVATE_KEY"
    )
    assert deploy_key.props["key"] == pair.state["publicKeyOpenssh"]
    assert deploy_key.props["canPush"] is False
    assert is_secret(ssh.inputs["value"])
    # GitLab wants a file-type key variable to end with a newline.
    assert ssh.props["value"] == unwrap(pair.state["privateKeyOpenssh"]).rstrip("\n") + "\n"
