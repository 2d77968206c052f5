"""The local CI tools the tests run, in an environment of their own: git, gitlab-ci-local, check-jsonschema
(GitLab's CI schema), shellcheck."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.base import ROOT

BIN = Path(sys.executable).parent
NODE_BIN = ROOT / "node_modules" / ".bin"


def tool(name: str, where: Path = BIN) -> str:
    """The path of an installed tool; fails the test, naming how to install it, when it is missing."""
    path = where / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: run `make install` (pip install -r requirements-dev.txt, npm ci)")
        return found
    return str(path)


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a local CI run: the project's tools first, nothing of the operator's CI, GitLab or
    AWS settings (their ~/.aws, their ~/.gitlab-ci-local variables) leaking in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "GCL_", "CI_", "GITLAB_", "PULUMI_")) and k != "CI"
    }
    env["PATH"] = os.pathsep.join([str(NODE_BIN), str(BIN), env.get("PATH", "")])
    env["HOME"] = str(home)
    env["AWS_CONFIG_FILE"] = str(home / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-aws-credentials")
    return env


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.email=ci@example.com", "-c", "user.name=CI", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", *identity, *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, str], branch: str = "main") -> Path:
    """A git repository with one commit of ``files`` on ``branch`` (gitlab-ci-local needs a commit)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", branch)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


def gitlab_ci_local(repo: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs gitlab-ci-local in ``repo``; its state and home live beside the repository, not in it, so that a
    job's archive of the working tree holds only the repository's files."""
    home = repo.parent / f"{repo.name}-home"
    home.mkdir(exist_ok=True)
    command = [
        tool("gitlab-ci-local", NODE_BIN),
        # Relative: gitlab-ci-local joins it to the working directory even when it is absolute.
        "--state-dir",
        f"../{repo.name}-state",
        "--home",
        str(home),
        "--no-color",
        *args,
    ]
    return subprocess.run(command, cwd=repo, env=clean_env(home), capture_output=True, text=True, timeout=timeout)


def jobs_when(repo: Path, *variables: str, unset: tuple[str, ...] = ()) -> dict[str, str]:
    """job -> ``when`` (``never`` if its rules exclude it) for a pipeline with these variables."""
    args = ["--list-json", "--ignore-predefined-vars", "CI_PIPELINE_SOURCE,CI_COMMIT_BRANCH"]
    for variable in variables:
        args += ["--variable", variable]
    for name in unset:
        args += ["--unset-variable", name]
    done = gitlab_ci_local(repo, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    listing = json.loads(done.stdout[done.stdout.index("[") :])
    return {job["name"]: job["when"] for job in listing}


def expanded(repo: Path) -> dict[str, Any]:
    """The file as GitLab sees it: extends and defaults resolved (gitlab-ci-local --preview)."""
    done = gitlab_ci_local(repo, "--preview")
    assert done.returncode == 0, done.stdout + done.stderr
    document: dict[str, Any] = yaml.safe_load(done.stdout)
    return document


def schema_errors(*paths: Path, schema: str = "vendor.gitlab-ci") -> str:
    """check-jsonschema against a built-in schema (GitLab's CI schema by default): '' when every file is valid,
    else its report."""
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return "" if done.returncode == 0 else done.stdout + done.stderr


def shellcheck(script: str, tmp_path: Path, name: str) -> str:
    """shellcheck's report on a bash script: '' when it finds nothing."""
    path = tmp_path / f"{name.replace(':', '-')}.sh"
    path.write_text("#!/usr/bin/env bash\n" + script + "\n")
    done = subprocess.run([tool("shellcheck"), "-s", "bash", str(path)], capture_output=True, text=True)
    return "" if done.returncode == 0 else done.stdout + done.stderr


def job_script(job: dict[str, Any]) -> str:
    """What runs in one shell: before_script then script."""
    return "\n".join([*job.get("before_script", []), *job.get("script", [])])


def keys_anywhere(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys_anywhere(value)
    elif isinstance(node, list):
        for item in node:
            yield from keys_anywhere(item)
