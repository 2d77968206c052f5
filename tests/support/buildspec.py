"""A CodeBuild buildspec run as CodeBuild runs it (bash, in the unpacked source), with stand-ins for ``aws`` and
``docker`` that record their calls and keep a small ECR repository on disk.

The stand-in repository behaves as ECR does with tag immutability and exclusions
(https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html): a push of a tag that
already names an image is refused unless the tag is one of ``mutable_tags``, and ``describe-images`` of a tag
that names no image fails with ``ImageNotFoundException``
(https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImages.html). Every ``docker build``
makes a new image (a new digest): Docker builds are not byte-reproducible.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.stacks import REGION
from support.tools import clean_env

FAKE_AWS = r"""#!/usr/bin/env bash
echo "aws $*" >> "$CALLS"
case "$1 $2" in
  "ecr get-login-password")
    echo fake-password
    ;;
  "ecr describe-images")
    if [ -n "${ECR_ERROR:-}" ]; then
      echo "$ECR_ERROR" >&2
      exit 254
    fi
    tag=""
    for arg in "$@"; do
      case "$arg" in imageTag=*) tag="${arg#imageTag=}" ;; esac
    done
    if [ -f "$REGISTRY/tags/$tag" ]; then
      cat "$REGISTRY/tags/$tag"
    else
      echo "An error occurred (ImageNotFoundException) when calling the DescribeImages operation:" \
        "The image with imageId {imageDigest:'null', imageTag:'$tag'} does not exist within the repository" >&2
      exit 254
    fi
    ;;
  *)
    echo "unexpected call: aws $*" >&2
    exit 2
    ;;
esac
"""

FAKE_DOCKER = r"""#!/usr/bin/env bash
echo "docker $*" >> "$CALLS"
case "$1" in
  login)
    read -r password
    echo "stdin $password" >> "$CALLS"
    ;;
  build)
    echo "sha256:$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)" > "$REGISTRY/built"
    ;;
  push)
    tag="${2##*:}"
    if [ -f "$REGISTRY/tags/$tag" ] && [[ " $MUTABLE_TAGS " != *" $tag "* ]]; then
      echo "tag invalid: The image tag '$tag' already exists in the repository and cannot be overwritten" \
        "because the tag is immutable." >&2
      exit 1
    fi
    cp "$REGISTRY/built" "$REGISTRY/tags/$tag"
    ;;
esac
"""


def build_script(spec: dict[str, Any]) -> str:
    """The buildspec as one bash script: its variables, then every command of every phase, in order, each
    stopping the run when it ends non-zero, as CodeBuild stops a phase
    (https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html, ``commands``). Within one
    command (a multi-line block) only its exit status counts, as in CodeBuild: ``set -e`` would stop at any
    failing line, and miss a failure inside an ``if`` or an ``&&`` list."""
    lines = ["set -o pipefail"]
    lines += [f"export {k}={json.dumps(str(v))}" for k, v in spec["env"]["variables"].items()]
    for phase in ("install", "pre_build", "build", "post_build"):
        for command in spec["phases"].get(phase, {}).get("commands", []):
            lines.append("{\n" + command.rstrip("\n") + "\n} || exit")
    return "\n".join(lines) + "\n"


@dataclass
class StandInRegistry:
    """The stand-ins' ECR repository: tag -> digest, kept in ``path``."""

    path: Path
    mutable_tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        (self.path / "tags").mkdir(parents=True, exist_ok=True)

    def tags(self) -> dict[str, str]:
        return {p.name: p.read_text().strip() for p in (self.path / "tags").iterdir()}

    def put(self, tag: str, digest: str) -> None:
        (self.path / "tags" / tag).write_text(digest + "\n")


@dataclass(frozen=True)
class BuildRun:
    result: subprocess.CompletedProcess[str]
    calls: list[str]
    source: Path
    """The unpacked source the build ran in (its output directory is inside)."""

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def run_build(
    spec: dict[str, Any],
    workdir: Path,
    registry: StandInRegistry | None = None,
    *,
    files: Iterable[tuple[str, str]] = (),
    stand_ins: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> BuildRun:
    """Runs the buildspec's commands in ``workdir/src`` (holding ``files``), with ``stand_ins`` (command name ->
    script; by default ``aws`` and ``docker`` above) first on PATH and ``registry`` (a new empty one by default)
    as their repository; ``env`` adds to the build's environment (CodeBuild's and the pipeline's variables)."""
    workdir.mkdir(parents=True, exist_ok=True)
    registry = registry or StandInRegistry(workdir / "registry")
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (stand_ins or {"aws": FAKE_AWS, "docker": FAKE_DOCKER}).items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    calls = workdir / "calls.log"
    source = workdir / "src"
    source.mkdir(exist_ok=True)
    for name, text in files:
        (source / name).write_text(text)
    base = clean_env(workdir)
    environment = {
        **base,
        "PATH": f"{bin_dir}:{base['PATH']}",
        "CALLS": str(calls),
        "REGISTRY": str(registry.path),
        "MUTABLE_TAGS": " ".join(registry.mutable_tags),
        "AWS_DEFAULT_REGION": REGION,
        "CODEBUILD_BUILD_NUMBER": "42",
        **(env or {}),
    }
    script = workdir / "buildspec.sh"
    script.write_text(build_script(spec))
    result = subprocess.run(
        ["bash", str(script)], cwd=source, env=environment, capture_output=True, text=True, timeout=60
    )
    return BuildRun(result, calls.read_text().splitlines() if calls.exists() else [], source)
