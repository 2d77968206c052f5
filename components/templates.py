"""Renders the files in ``files/`` with a stack's values.

Templates use ``string.Template`` placeholders (``${name}``). In JSON templates every value is inserted
JSON-encoded, so a value can never break the document's syntax, and the result is parsed and re-dumped in
one canonical layout: the same values always give the same bytes.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import contracts

FILES = Path(__file__).resolve().parent.parent / "files"


def read_template(name: str) -> string.Template:
    return string.Template((FILES / name).read_text())


def render_text(name: str, values: Mapping[str, str]) -> str:
    """Renders a text template; every placeholder must have a value (KeyError otherwise)."""
    return read_template(name).substitute(values)


def render_json(name: str, values: Mapping[str, Any]) -> str:
    """Renders a JSON template, each value JSON-encoded, in canonical layout (2-space indent, newline)."""
    encoded = {k: json.dumps(v) for k, v in values.items()}
    document = json.loads(read_template(name).substitute(encoded))
    return json.dumps(document, indent=2) + "\n"


@dataclass(frozen=True)
class TaskDefinitionValues:
    """Everything the task definition needs; all known once the FargateService's resources exist."""

    family: str
    cpu: int
    memory: int
    execution_role_arn: str
    task_role_arn: str
    container_name: str
    container_port: int
    image: str
    environment: Mapping[str, str]
    log_group: str
    region: str
    cpu_architecture: str = "X86_64"
    """``runtimePlatform.cpuArchitecture``: ``X86_64`` or ``ARM64`` (the image must be built for it)."""


def render_taskdef(v: TaskDefinitionValues) -> str:
    """``taskdef.json`` as ECS ``RegisterTaskDefinition`` takes it (and CodeDeployToECS consumes it)."""
    return render_json(
        contracts.TASKDEF_FILE,
        {
            "family": v.family,
            # ECS wants task-level cpu and memory as strings.
            "cpu": str(v.cpu),
            "memory": str(v.memory),
            "execution_role_arn": v.execution_role_arn,
            "task_role_arn": v.task_role_arn,
            "container_name": v.container_name,
            "container_port": v.container_port,
            "image": v.image,
            "environment": [{"name": k, "value": val} for k, val in sorted(v.environment.items())],
            "log_group": v.log_group,
            "region": v.region,
            "cpu_architecture": v.cpu_architecture,
        },
    )
