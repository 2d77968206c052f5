"""Writes the child pipeline of this project's CI: per committed ``Pulumi.<stack>.yaml``, a plan, preview, deploy job.

``python3 ci/stack_pipeline.py [ROOT] > stacks.gitlab-ci.yml`` (the ``stacks:generate`` job of .gitlab-ci.yml).
Adding a stack is adding its file: no job to write by hand. The jobs extend the hidden jobs of
``ci/stack-jobs.gitlab-ci.yml``, which hold every rule and script; this file only says which stacks exist, in
which order they deploy, and which deploy without a person.

Standard library only (the job runs it on a bare Python image), and the output is JSON, which is YAML.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

JOBS_FILE = "ci/stack-jobs.gitlab-ci.yml"
# Stacks whose update runs as soon as the default branch changes; every other stack waits for a person and for
# these to have gone through first.
AUTOMATIC_STACKS = ("dev",)
_STACK = re.compile(r"^Pulumi\.([a-z0-9][a-z0-9-]*)\.yaml$")


def committed_stacks(root: Path) -> list[str]:
    """The stacks with a ``Pulumi.<stack>.yaml`` in ``root``, automatic ones first, then by name."""
    found = sorted(m[1] for p in root.glob("Pulumi.*.yaml") if (m := _STACK.match(p.name)))
    return sorted(found, key=lambda s: (s not in AUTOMATIC_STACKS, s))


def stack_jobs(stack: str, automatic: list[str]) -> dict[str, Any]:
    variables = {"STACK": stack}
    deploy: dict[str, Any] = {
        "extends": ".deploy" if stack in AUTOMATIC_STACKS else ".deploy-manual",
        "variables": variables,
        # One `pulumi up` per stack at a time, in pipeline order.
        "resource_group": stack,
        "environment": {"name": stack},
    }
    if stack not in AUTOMATIC_STACKS and automatic:
        deploy["needs"] = [f"deploy:{s}" for s in automatic]
    return {
        f"plan:{stack}": {"extends": ".plan", "variables": variables},
        f"preview:{stack}": {"extends": ".preview", "variables": variables},
        f"deploy:{stack}": deploy,
    }


def child_pipeline(root: Path) -> dict[str, Any]:
    stacks = committed_stacks(root)
    if not stacks:
        raise SystemExit(f"no Pulumi.<stack>.yaml in {root}: nothing to plan or deploy")
    automatic = [s for s in stacks if s in AUTOMATIC_STACKS]
    document: dict[str, Any] = {"include": [{"local": JOBS_FILE}]}
    for stack in stacks:
        document.update(stack_jobs(stack, automatic))
    return document


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    json.dump(child_pipeline(root), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
