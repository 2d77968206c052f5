"""Both .gitlab-ci.yml files: the application's (rendered by the program, per stack) and this project's own.

Each is checked with GitLab's own CI schema (check-jsonschema's vendored copy), has its job scripts run
through shellcheck, and has its rules evaluated by gitlab-ci-local for the pipelines that matter (a push to
the default branch, a push to another branch, a merge request), so that "runs on X" is tested, not read.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci.stack_pipeline import AUTOMATIC_STACKS
from components.base import ROOT
from components.gitlab_project import CiValues, render_app_ci
from offline.engine import ProgramRun
from support.stacks import STACKS
from support.tools import expanded, git, job_script, jobs_when, keys_anywhere, make_repo, schema_errors, shellcheck

PROJECT_CI = ROOT / ".gitlab-ci.yml"


# --- The application's file ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_files(runs: Callable[[str], ProgramRun], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The rendered file of every committed stack, plus one for a key at the bucket's root."""
    out = tmp_path_factory.mktemp("app-ci")
    texts = {stack: runs(stack).outputs["gitlabCiYml"] for stack in STACKS}
    texts["root-key"] = render_app_ci(
        CiValues(
            stack="qa",
            default_branch="release/1.x",
            gitlab_url="https://git.example.org/gitlab",
            region="us-east-1",
            bucket="b-123",
            object_key="app.zip",
            site_url="https://qa.example.org",
        )
    )
    paths = {}
    for name, text in texts.items():
        paths[name] = out / f"{name}.gitlab-ci.yml"
        paths[name].write_text(text)
    return paths


def test_rendered_files_pass_gitlabs_schema(app_files: dict[str, Path]) -> None:
    assert schema_errors(*app_files.values()) == ""


def test_the_schema_check_rejects_the_original_jobs_mistake(tmp_path: Path) -> None:
    """The original job's `only: master` (a bare string) is what this check exists to catch: `only` takes a list
    or a map (https://docs.gitlab.com/ci/yaml/#only--except)."""
    bad = tmp_path / "original.gitlab-ci.yml"
    bad.write_text("upload:\n  script: [echo]\n  only: master\n")
    assert "only" in schema_errors(bad)


def test_rendered_job_scripts_pass_shellcheck(app_files: dict[str, Path], tmp_path: Path) -> None:
    for name, path in app_files.items():
        for job_name, job in yaml.safe_load(path.read_text()).items():
            assert shellcheck(job_script(job), tmp_path, f"{name}-{job_name}") == ""


def test_rendered_file_uses_rules_installs_nothing_and_holds_one_job_per_stack(app_files: dict[str, Path]) -> None:
    for stack in STACKS:
        document = yaml.safe_load(app_files[stack].read_text())
        assert list(document) == [f"upload-{stack}"], "one job named after the stack, nothing global"
        assert not {"only", "except"} & set(keys_anywhere(document))
        [job] = document.values()
        assert job["environment"]["name"] == stack
        assert job["resource_group"] == f"upload-{stack}"
        script = job_script(job)
        assert not re.search(r"\b(apt-get|apt|apk|yum|dnf|microdnf)\s+(install|add)|pip3? install", script)
        assert "set -euo pipefail" in script.splitlines()[0]


# GitLab evaluates `rules:` per pipeline (https://docs.gitlab.com/ci/yaml/#rules); CI_COMMIT_BRANCH is unset in
# merge request pipelines (https://docs.gitlab.com/ci/variables/predefined_variables/).
@pytest.mark.node
def test_rendered_job_runs_on_the_default_branch_only(dev: ProgramRun, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app", {".gitlab-ci.yml": dev.outputs["gitlabCiYml"]})
    assert jobs_when(repo) == {"upload-dev": "on_success"}
    git(repo, "checkout", "-q", "-b", "feature")
    assert jobs_when(repo) == {"upload-dev": "never"}
    git(repo, "checkout", "-q", "main")
    assert jobs_when(repo, "CI_PIPELINE_SOURCE=merge_request_event", unset=("CI_COMMIT_BRANCH",)) == {
        "upload-dev": "never"
    }


# --- This project's file ------------------------------------------------------------------------------------
#
# .gitlab-ci.yml runs the tests and a child pipeline that ci/stack_pipeline.py generates from the committed stack
# files, with the per-stack jobs of ci/stack-jobs.gitlab-ci.yml. A child pipeline's CI_PIPELINE_SOURCE is
# `parent_pipeline` and it sees no merge request variables, so the parent passes both
# (https://docs.gitlab.com/ci/pipelines/downstream_pipelines/#pass-cicd-variables-to-a-downstream-pipeline).

STACK_JOBS = ROOT / "ci" / "stack-jobs.gitlab-ci.yml"
MERGE_REQUEST = ("CI_PIPELINE_SOURCE=merge_request_event", "CI_OPEN_MERGE_REQUESTS=1")


def child_pipeline(root: Path = ROOT) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "stack_pipeline.py"), str(root)], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def project_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("infra") / "repo", {".gitlab-ci.yml": PROJECT_CI.read_text()})


@pytest.fixture(scope="module")
def child_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The child pipeline as the trigger job runs it: the generated file, with the jobs file it includes."""
    files = {".gitlab-ci.yml": child_pipeline(), "ci/stack-jobs.gitlab-ci.yml": STACK_JOBS.read_text()}
    return make_repo(tmp_path_factory.mktemp("infra-child") / "repo", files)


@pytest.fixture(scope="module")
def project_jobs(project_repo: Path, child_repo: Path) -> dict[str, Any]:
    jobs = {}
    for repo in (project_repo, child_repo):
        document = expanded(repo)
        jobs.update({k: v for k, v in document.items() if isinstance(v, dict) and "script" in v})
    return jobs


def child_jobs(child_repo: Path, source: str, protected: str | None = None, branch: str = "main") -> dict[str, str]:
    variables = [f"PARENT_PIPELINE_SOURCE={source}"]
    if protected is not None:
        variables.append(f"SOURCE_BRANCH_PROTECTED={protected}")
    git(child_repo, "checkout", "-q", "-B", branch)
    try:
        return jobs_when(child_repo, *variables)
    finally:
        git(child_repo, "checkout", "-q", "main")


def test_project_files_pass_gitlabs_schema(tmp_path: Path) -> None:
    generated = tmp_path / "stacks.gitlab-ci.yml"
    generated.write_text(child_pipeline())
    assert schema_errors(PROJECT_CI, STACK_JOBS, generated) == ""


def test_project_files_use_rules_only() -> None:
    for path in (PROJECT_CI, STACK_JOBS):
        assert not {"only", "except"} & set(keys_anywhere(yaml.safe_load(path.read_text()))), path.name


@pytest.mark.node
def test_project_job_scripts_pass_shellcheck(project_jobs: dict[str, Any], tmp_path: Path) -> None:
    assert {"test", "stacks:generate", "plan:dev", "preview:dev", "deploy:dev"} <= set(project_jobs)
    for name, job in project_jobs.items():
        assert shellcheck(job_script(job), tmp_path, name) == "", name


@pytest.mark.node
def test_tests_run_in_every_pipeline(project_repo: Path, project_jobs: dict[str, Any]) -> None:
    assert "make test" in project_jobs["test"]["script"]
    merge_request = jobs_when(project_repo, *MERGE_REQUEST, unset=("CI_COMMIT_BRANCH",))
    assert merge_request["test"] == "on_success"
    assert jobs_when(project_repo)["test"] == "on_success"


@pytest.mark.node
def test_the_stack_pipeline_is_generated_from_the_stack_files_and_triggered_after_the_tests(project_repo: Path) -> None:
    document = yaml.safe_load(PROJECT_CI.read_text())
    assert document["stacks:generate"]["script"] == ["python3 ci/stack_pipeline.py > stacks.gitlab-ci.yml"]
    trigger = document["stacks"]
    assert trigger["trigger"]["include"] == [{"artifact": "stacks.gitlab-ci.yml", "job": "stacks:generate"}]
    assert trigger["trigger"]["strategy"] == "depend", "a failed deploy fails the pipeline"
    assert set(trigger["needs"]) == {"test", "stacks:generate"}
    assert trigger["variables"] == {
        "PARENT_PIPELINE_SOURCE": "$CI_PIPELINE_SOURCE",
        "SOURCE_BRANCH_PROTECTED": "$CI_MERGE_REQUEST_SOURCE_BRANCH_PROTECTED",
    }
    merge_request = jobs_when(project_repo, *MERGE_REQUEST, unset=("CI_COMMIT_BRANCH",))
    default_branch = jobs_when(project_repo)
    for job in ("stacks:generate", "stacks"):
        assert merge_request[job] == default_branch[job] == "on_success"
    git(project_repo, "checkout", "-q", "-b", "feature")
    try:
        other_branch = jobs_when(project_repo)
    finally:
        git(project_repo, "checkout", "-q", "main")
    assert (other_branch["stacks:generate"], other_branch["stacks"]) == ("never", "never")


@pytest.mark.node
def test_every_merge_request_gets_the_offline_plan_of_every_stack(
    child_repo: Path, project_jobs: dict[str, Any]
) -> None:
    for protected in ("false", None):
        jobs = child_jobs(child_repo, "merge_request_event", protected, branch="feature")
        for stack in STACKS:
            assert jobs[f"plan:{stack}"] == "on_success"
            assert jobs[f"deploy:{stack}"] == "never", "a merge request deploys nothing"
    for stack in STACKS:
        job = project_jobs[f"plan:{stack}"]
        assert job["variables"]["STACK"] == stack
        assert job_script(job).strip() == 'make plan STACK="${STACK}"'
        assert job["artifacts"]["paths"] == ["build/$STACK/"] and job["artifacts"]["when"] == "always"
        assert "pulumi" not in job_script(job) and "id_tokens" not in job, "the plan needs no secret"


# GitLab: protected variables reach only pipelines of protected branches, and a merge request pipeline runs the
# source branch's code (https://docs.gitlab.com/ci/variables/#protect-a-cicd-variable,
# https://docs.gitlab.com/ci/variables/predefined_variables/: CI_MERGE_REQUEST_SOURCE_BRANCH_PROTECTED). A preview
# runs that code with the stack's decrypted config, so it runs only for a protected source branch.
@pytest.mark.node
def test_previews_run_only_for_protected_source_branches(child_repo: Path, project_jobs: dict[str, Any]) -> None:
    protected = child_jobs(child_repo, "merge_request_event", "true", branch="release")
    unprotected = child_jobs(child_repo, "merge_request_event", "false", branch="feature")
    unknown = child_jobs(child_repo, "merge_request_event", None, branch="feature")
    for stack in STACKS:
        assert protected[f"preview:{stack}"] == "on_success"
        assert unprotected[f"preview:{stack}"] == unknown[f"preview:{stack}"] == "never"
        job = project_jobs[f"preview:{stack}"]
        script = job_script(job)
        assert 'pulumi preview --stack "${STACK}" --diff --refresh' in script
        assert 'tee "preview-${STACK}.txt"' in script
        assert "set -euo pipefail" in script, "a failed preview must fail the job, tee or not"
        assert job["artifacts"]["paths"] == ["preview-$STACK.txt"] and job["artifacts"]["when"] == "always"


@pytest.mark.node
def test_preview_and_up_always_run_the_policy_pack(project_jobs: dict[str, Any]) -> None:
    pulumi_commands = [
        (name, line)
        for name, job in project_jobs.items()
        for line in job_script(job).splitlines()
        if re.search(r"\bpulumi (preview|up)\b", line)
    ]
    assert {name.split(":")[0] for name, _ in pulumi_commands} == {"preview", "deploy"}
    assert len(pulumi_commands) == 2 * len(STACKS)
    for name, line in pulumi_commands:
        assert "--policy-pack policy" in line, (name, line)
        # The pack's own environment, where policy/PulumiPolicy.yaml says the CLI finds it.
        setup = job_script(project_jobs[name])
        assert "python3 -m venv policy/.venv" in setup
        assert "policy/.venv/bin/pip install --quiet -r policy/requirements.txt" in setup
        assert setup.index("policy/.venv/bin/pip") < setup.index(line)
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["options"]["virtualenv"] == ".venv"


@pytest.mark.node
def test_the_default_branch_deploys_every_stack_one_run_at_a_time(
    child_repo: Path, project_jobs: dict[str, Any]
) -> None:
    default_branch = child_jobs(child_repo, "push")
    for stack in STACKS:
        job = project_jobs[f"deploy:{stack}"]
        assert job["variables"]["STACK"] == stack
        assert job["resource_group"] == stack
        assert job["environment"]["name"] == stack
        assert 'pulumi up --stack "${STACK}" --yes --refresh' in job_script(job)
        automatic = stack in AUTOMATIC_STACKS
        assert default_branch[f"deploy:{stack}"] == ("on_success" if automatic else "manual")
        assert default_branch[f"preview:{stack}"] == default_branch[f"plan:{stack}"] == "never"
        if not automatic:
            assert [n["job"] for n in job["needs"]] == [f"deploy:{s}" for s in STACKS if s in AUTOMATIC_STACKS]
    other_branch = child_jobs(child_repo, "push", branch="feature")
    assert {name: when for name, when in other_branch.items() if name.startswith("deploy:")} == {
        f"deploy:{stack}": "never" for stack in STACKS
    }


def test_adding_a_stack_is_adding_its_file(tmp_path: Path) -> None:
    for name in ("Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "Pulumi.staging.yaml").write_text((ROOT / "Pulumi.prod.yaml").read_text())
    document = json.loads(child_pipeline(tmp_path))
    assert {"plan:staging", "preview:staging", "deploy:staging"} <= set(document)
    assert document["deploy:staging"] == {
        "extends": ".deploy-manual",
        "variables": {"STACK": "staging"},
        "resource_group": "staging",
        "environment": {"name": "staging"},
        "needs": ["deploy:dev"],
    }
    # Files that are not stack files make no jobs.
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    (tmp_path / "Pulumi.Bad Name.yaml").write_text("config: {}\n")
    assert sorted(k.split(":")[1] for k in json.loads(child_pipeline(tmp_path)) if k.startswith("deploy:")) == [
        "dev",
        "prod",
        "staging",
    ]
