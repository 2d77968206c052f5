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


# --- What the container may do -----------------------------------------------------------------------------
# The application runs as a non-root user on a read-only root filesystem (Security Hub controls ECS.20 and ECS.5,
# https://docs.aws.amazon.com/securityhub/latest/userguide/ecs-controls.html), in both task definitions: the first
# one (``initialImage``) and every one the pipeline registers. Both images are nginx images (the sample app is
# built FROM the stock one), so they share nginx's user and the paths nginx writes to.

CONTAINER_USER = "101:101"
"""``uid:gid`` of the container: the ``nginx`` user and group of the nginx images (101 in the alpine and debian
variants). Numeric, so it needs no passwd lookup; ``user`` takes ``uid:gid``
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html)."""


@dataclass(frozen=True)
class Scratch:
    """A writable tmpfs in the read-only container: the only places the application can write to."""

    path: str
    size_mib: int
    why: str


SCRATCH: tuple[Scratch, ...] = (
    Scratch("/var/cache/nginx", 16, "nginx's temp paths (client_temp, proxy_temp...), compiled into the image"),
    Scratch("/run", 1, "nginx.pid (/run/nginx.pid; /var/run links to /run)"),
)
"""Where nginx writes, as tmpfs mounts (in memory, counted in the task's memory, gone with the task).

Not bind mounts of the task's ephemeral storage: Fargate creates those owned by root with mode 0755, writable by
a non-root user only where the image declares a ``VOLUME`` owned by that user
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/bind-mounts.html), which the stock ``initialImage``
does not. A tmpfs is world-writable with the sticky bit (mode 1777, the kernel's default for tmpfs), so any
image's non-root user can write there. Fargate supports tmpfs mounts since January 2026
(https://aws.amazon.com/about-aws/whats-new/2026/01/amazon-ecs-tmpfs-mounts-aws-fargate-managed-instances/)."""

SCRATCH_MOUNT_OPTIONS = ("noexec", "nosuid", "nodev")
"""Nothing written at run time can be executed: with a read-only root, no writable path runs code."""

UNPRIVILEGED_PORT_START = "net.ipv4.ip_unprivileged_port_start"
"""The first port a process without ``CAP_NET_BIND_SERVICE`` may bind (1024 by default). It belongs to the
network namespace, which on Fargate (awsvpc) is the task's own: ECS accepts every ``net.*`` sysctl in
``systemControls``, and Fargate supports them all on platform version 1.4.0 or later
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_SystemControl.html). Setting it to the container
port lets the non-root nginx serve a port below 1024 (80 by default) without any capability."""


def system_controls(container_port: int) -> list[dict[str, str]]:
    """The sysctls a non-root process needs to listen on ``container_port``: none from 1024 up."""
    if container_port >= 1024:
        return []
    return [{"namespace": UNPRIVILEGED_PORT_START, "value": str(container_port)}]


def tmpfs_mounts() -> list[dict[str, object]]:
    """``linuxParameters.tmpfs`` of the container (``size`` in MiB)."""
    return [{"containerPath": s.path, "size": s.size_mib, "mountOptions": list(SCRATCH_MOUNT_OPTIONS)} for s in SCRATCH]


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
            "user": CONTAINER_USER,
            "tmpfs": tmpfs_mounts(),
            "system_controls": system_controls(v.container_port),
        },
    )
