"""End to end: the application job the program renders for the dev stack, run by gitlab-ci-local (shell
executor) in a throwaway git repository holding the sample app, against moto_server on 127.0.0.1.

- access-key: moto enforces IAM, and the job runs with the key of a user that holds exactly the program's
  policy: the upload lands at the watched bucket and key with the app and the commit hash; a wrong key fails
  the job.
- oidc: the job trades an ID token for the role's credentials with `aws sts assume-role-with-web-identity`
  and uploads with them. (moto cannot enforce IAM here: its STS fails on the unsigned web-identity call when
  enforcement is on; the role's permission is tested in test_upload_identity.py.)

The variables passed are the ones the program registers on the project (the credentials replaced by moto's).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import contracts
from components.base import ROOT
from components.gitlab_project import CI_INCLUDE
from offline.engine import ProgramRun
from policy import resource_types as rt
from support.aws import client, moto_server
from support.stacks import REGION, stack_run
from support.tools import git, gitlab_ci_local

pytestmark = [pytest.mark.e2e, pytest.mark.node]

SAMPLE_APP = ROOT / "files" / "app"
# When the sample app is missing, the job still needs something to zip.
FALLBACK_APP = {
    "Dockerfile": "FROM nginx:stable-alpine\nCOPY index.html /usr/share/nginx/html/\n",
    "index.html": "ok\n",
}
JOB = "upload-dev"


# --- The application repository --------------------------------------------------------------------------------


def app_files() -> dict[str, bytes]:
    found = {p.relative_to(SAMPLE_APP).as_posix(): p.read_bytes() for p in sorted(SAMPLE_APP.rglob("*")) if p.is_file()}
    return found or {name: text.encode() for name, text in FALLBACK_APP.items()}


def app_repo(path: Path, ci_yml: str, branch: str, extra: dict[str, str] | None = None) -> tuple[Path, str]:
    """The sample app and the rendered .gitlab-ci.yml in a fresh repository, committed; returns its commit."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", branch)
    for name, data in {**app_files(), **{k: v.encode() for k, v in (extra or {}).items()}}.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    (path / ".gitlab-ci.yml").write_text(ci_yml)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "sample app")
    return path, git(path, "rev-parse", "HEAD")


def default_branch(ci_yml: str) -> str:
    [job] = yaml.safe_load(ci_yml).values()
    match = re.fullmatch(r'\$CI_COMMIT_BRANCH == "(.+)"', job["rules"][0]["if"])
    assert match, job["rules"]
    return match.group(1)


def registered(run: ProgramRun) -> dict[str, str]:
    """The project variables the program registers, as the job would receive them."""
    values = {r.props["key"]: r.props["value"] for r in run.of_type(rt.GITLAB_PROJECT_VARIABLE)}
    # A file-type variable reaches a job as a path; the mocks know no key, and the upload does not use it.
    values.pop("SSH_PRIVATE_KEY")
    return values


def run_job(repo: Path, variables: dict[str, str], endpoint: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--force-shell-executor", *extra]
    for key, value in {**variables, "AWS_ENDPOINT_URL": endpoint}.items():
        args += ["--variable", f"{key}={value}"]
    started = time.monotonic()
    done = gitlab_ci_local(repo, *args, timeout=180)
    print(f"gitlab-ci-local ran in {time.monotonic() - started:.1f} s")
    return done


def assert_job_ran(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # A pipeline in which no job matches its rules also exits 0: the job must have run and passed.
    assert re.search(rf"PASS\s+{JOB}\b", output), output


def assert_uploaded(s3: Any, bucket: str, key: str, commit: str, ci_files: tuple[str, ...] = ()) -> None:
    """The watched object holds the app, the committed CI files and the commit file (git-commit-hash.txt), nothing
    of .git."""
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["VersionId"] not in (None, "null"), "the bucket is versioned: each upload is a version"
    # The full SHA (CI_COMMIT_SHA): the commit-status function sets GitLab's status on it, and GitLab's
    # POST /projects/:id/statuses/:sha takes "the commit SHA" (its full hash).
    # https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit
    assert head["Metadata"]["codepipeline-artifact-revision-summary"] == commit
    assert re.fullmatch(r"[0-9a-f]{40}", commit), "git rev-parse HEAD: the full SHA"
    archive = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    names = {n for n in archive.namelist() if not n.endswith("/")}
    assert names == {*app_files(), ".gitlab-ci.yml", *ci_files, contracts.COMMIT_FILE}
    for name, data in app_files().items():
        assert archive.read(name) == data, name
    recorded = archive.read(contracts.COMMIT_FILE).decode()
    assert recorded == f"{commit[:8]}\n", "the short commit hash, on one line"
    # What the build stage accepts as an image tag (files/buildspec.yml).
    assert re.fullmatch(r"[0-9a-f]{7,64}", recorded.strip())


def versioned_bucket(s3: Any, bucket: str) -> None:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    for name in ("git", "rsync"):
        if shutil.which(name) is None:
            pytest.fail(f"{name} is needed by gitlab-ci-local: apt-get install {name}")


# --- The tests -----------------------------------------------------------------------------------------------


def test_access_key_job_uploads_the_app_to_the_watched_key(dev: ProgramRun, tmp_path: Path) -> None:
    ci_yml = dev.outputs["gitlabCiYml"]
    variables = registered(dev)
    bucket, key = dev.outputs["sourceBucket"], dev.outputs["sourceObjectKey"]
    assert variables["UPLOAD_BUCKET"] == bucket
    assert f"{variables['UPLOAD_FOLDER']}/{variables['UPLOAD_FILE_ALL']}" == key
    policy = dev.one(rt.IAM_GROUP_POLICY).props["policy"]
    user, group = dev.one(rt.IAM_USER).props["name"], dev.one(rt.IAM_GROUP).props["name"]
    repo, commit = app_repo(tmp_path / "app", ci_yml, default_branch(ci_yml))

    # IAM is enforced after three calls, which make an administrator; everything else is authorised.
    with moto_server(tmp_path, enforce_iam_after=3) as endpoint:
        iam = client("iam", endpoint)
        iam.create_user(UserName="admin")
        everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(everything))
        admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = {"key_id": admin_key["AccessKeyId"], "secret": admin_key["SecretAccessKey"]}
        s3 = client("s3", endpoint, **admin)
        versioned_bucket(s3, bucket)
        admin_iam = client("iam", endpoint, **admin)
        admin_iam.create_user(UserName=user)
        admin_iam.create_group(GroupName=group)
        admin_iam.put_group_policy(GroupName=group, PolicyName="put-object", PolicyDocument=policy)
        admin_iam.add_user_to_group(GroupName=group, UserName=user)
        upload_key = admin_iam.create_access_key(UserName=user)["AccessKey"]

        credentials = {"AWS_ACCESS_KEY": upload_key["AccessKeyId"], "AWS_SECRET_KEY": upload_key["SecretAccessKey"]}
        done = run_job(repo, {**variables, **credentials}, endpoint)
        assert_job_ran(done)
        assert_uploaded(s3, bucket, key, commit)
        assert f"Uploaded commit {commit[:8]} to s3://{bucket}/{key}" in done.stdout
        # The credentials never reach the log (GitLab masks them too; the job must not print them anyway).
        assert upload_key["SecretAccessKey"] not in done.stdout + done.stderr

        # Any failing step fails the job: here the upload, with a wrong secret.
        versions = len(s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"])
        failed = run_job(repo, {**variables, **credentials, "AWS_SECRET_KEY": "wrong" * 8}, endpoint)
        assert failed.returncode != 0
        assert re.search(rf"FAIL\s+{JOB}\b", failed.stdout + failed.stderr)
        assert "Uploaded commit" not in failed.stdout
        assert len(s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]) == versions


def test_oidc_job_assumes_the_role_with_its_id_token_and_uploads(tmp_path: Path) -> None:
    run = stack_run("dev", overrides={"uploadIdentity": "oidc"})
    ci_yml = run.outputs["gitlabCiYml"]
    variables = registered(run)
    assert "AWS_ACCESS_KEY" not in variables and "AWS_SECRET_KEY" not in variables
    bucket, key = run.outputs["sourceBucket"], run.outputs["sourceObjectKey"]
    role = run.one(rt.IAM_ROLE, "upload-identity-role").props
    role_policy = run.one(rt.IAM_ROLE_POLICY, "upload-identity-put-object").props["policy"]
    repo, commit = app_repo(tmp_path / "app", ci_yml, default_branch(ci_yml))

    with moto_server(tmp_path, enforce_iam_after=None) as endpoint:
        s3 = client("s3", endpoint)
        versioned_bucket(s3, bucket)
        iam = client("iam", endpoint)
        provider = iam.create_open_id_connect_provider(
            Url="https://gitlab.example.com", ClientIDList=["https://gitlab.example.com"]
        )["OpenIDConnectProviderArn"]
        trust = json.loads(role["assumeRolePolicy"])
        trust["Statement"][0]["Principal"]["Federated"] = provider
        role_arn = iam.create_role(RoleName=role["name"], AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName=role["name"], PolicyName="put-object", PolicyDocument=role_policy)

        # GitLab injects the ID token (gitlab-ci-local does not implement id_tokens): a JWT-shaped stand-in.
        token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6cGxhdGZvcm0vc2FtcGxlLWFwcCJ9.c2lnbmF0dXJl"
        # Only the role: were it not assumed, the CLI would have no credentials and the job would fail.
        done = run_job(repo, {**variables, "AWS_ROLE_ARN": role_arn, "GITLAB_OIDC_TOKEN": token}, endpoint)
        assert variables["AWS_ROLE_ARN"] == run.one(rt.IAM_ROLE, "upload-identity-role").state["arn"]
        assert_job_ran(done)
        assert_uploaded(s3, bucket, key, commit)


def test_without_credentials_the_job_fails_and_says_why(dev: ProgramRun, tmp_path: Path) -> None:
    """What a job on an unprotected branch sees: the protected credentials are not there."""
    ci_yml = dev.outputs["gitlabCiYml"]
    repo, _ = app_repo(tmp_path / "app", ci_yml, default_branch(ci_yml))
    variables = {k: v for k, v in registered(dev).items() if k.startswith("UPLOAD_")}
    done = run_job(repo, variables, "http://127.0.0.1:9")
    assert done.returncode != 0
    assert "neither AWS_ROLE_ARN nor AWS_ACCESS_KEY and AWS_SECRET_KEY is set" in done.stdout + done.stderr


# The README's set-up for several stacks on one application project: each stack's job file at its path
# (`pulumi stack output gitlabCiPath`), and the application's .gitlab-ci.yml including them all with one line.
# GitLab scopes each stack's variables to the environment its job declares; gitlab-ci-local does the same from a
# variables file (https://docs.gitlab.com/ci/environments/#limit-the-environment-scope-of-a-cicd-variable).
APP_CI = f"""# The application's own pipeline: its tests, and every stack's upload job.
include:
  - local: {CI_INCLUDE}

unit-tests:
  stage: test
  script:
    - test -f index.html
"""


def scoped_variables(runs: dict[str, ProgramRun], credentials: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Every stack's project variables, each value under its environment scope, as GitLab holds them."""
    variables: dict[str, Any] = {}
    for stack, run in runs.items():
        for key, value in {**registered(run), **credentials[stack]}.items():
            variables.setdefault(key, {"values": {}})["values"][stack] = value
    return variables


def test_every_stack_of_one_project_uploads_to_its_own_pipeline(
    dev: ProgramRun, prod: ProgramRun, tmp_path: Path
) -> None:
    runs = {"dev": dev, "prod": prod}
    assert len({run.outputs["sourceBucket"] for run in runs.values()}) == len(runs)
    assert {registered(run)["UPLOAD_BUCKET"] for run in runs.values()} == {
        r.outputs["sourceBucket"] for r in runs.values()
    }
    stack_files = {run.outputs["gitlabCiPath"]: run.outputs["gitlabCiYml"] for run in runs.values()}
    repo, commit = app_repo(tmp_path / "app", APP_CI, default_branch(dev.outputs["gitlabCiYml"]), stack_files)

    with moto_server(tmp_path, enforce_iam_after=3) as endpoint:
        iam = client("iam", endpoint)
        iam.create_user(UserName="admin")
        everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(everything))
        admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = {"key_id": admin_key["AccessKeyId"], "secret": admin_key["SecretAccessKey"]}
        s3, admin_iam = client("s3", endpoint, **admin), client("iam", endpoint, **admin)
        credentials = {}
        for stack, run in runs.items():
            versioned_bucket(s3, run.outputs["sourceBucket"])
            user, group = run.one(rt.IAM_USER).props["name"], run.one(rt.IAM_GROUP).props["name"]
            admin_iam.create_user(UserName=user)
            admin_iam.create_group(GroupName=group)
            policy = run.one(rt.IAM_GROUP_POLICY).props["policy"]
            admin_iam.put_group_policy(GroupName=group, PolicyName="put-object", PolicyDocument=policy)
            admin_iam.add_user_to_group(GroupName=group, UserName=user)
            key = admin_iam.create_access_key(UserName=user)["AccessKey"]
            credentials[stack] = {"AWS_ACCESS_KEY": key["AccessKeyId"], "AWS_SECRET_KEY": key["SecretAccessKey"]}

        variables_file = tmp_path / "variables.yml"
        variables_file.write_text(yaml.safe_dump(scoped_variables(runs, credentials)))
        done = run_job(repo, {}, endpoint, "--variables-file", str(variables_file))
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        for job in ("unit-tests", *(f"upload-{stack}" for stack in runs)):
            assert re.search(rf"PASS\s+{re.escape(job)}\b", output), (job, output)
        for run in runs.values():
            bucket, key = run.outputs["sourceBucket"], run.outputs["sourceObjectKey"]
            assert_uploaded(s3, bucket, key, commit, tuple(stack_files))
            # Exactly one upload per stack: each job used its own environment's variables.
            assert len(s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]) == 1
