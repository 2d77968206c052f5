"""Reads ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` into the config a Pulumi program sees.

This is the one loader the tests and the offline plan share, so they can never disagree about a stack.
It follows the CLI: project-level ``config:`` in ``Pulumi.yaml`` (bare keys belong to the project, a
``value:`` or ``default:`` gives the value), then the stack file's ``config:`` (namespaced keys) on top.
Structured values reach the program as JSON, scalars as strings.

``secure:`` values cannot be decrypted without the stack's secrets provider; they (and required secrets
that are not set) become clearly marked placeholders, registered as secrets.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def secret_placeholder(key: str) -> str:
    """The stand-in for a secret that cannot be read offline."""
    return f"PLACEHOLDER-SECRET-{key.split(':')[-1]}"


@dataclass(frozen=True)
class StackFiles:
    project: str
    stack: str
    config: dict[str, str]
    """Namespaced key (``gitlab-fargate:cpu``) -> value as the program receives it."""
    secret_keys: list[str]
    """Namespaced keys whose values are secrets."""


class StackFileError(ValueError):
    """A stack or project file the CLI would refuse (or misread): one message naming the file, line and fix."""


# What the Pulumi CLI reads from a stack file besides `config:` (https://www.pulumi.com/docs/iac/concepts/projects/stack-settings-file/).
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise StackFileError(f"{path.name}: not valid YAML{where}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name}: not valid YAML: {error}") from None


def _stack_config(path: Path, document: Any, project: str) -> dict[str, Any]:
    """The ``config:`` mapping of a stack file, refusing every shape the CLI would reject or silently ignore."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackFileError(
            f"{path.name}: must be a mapping with a `config:` section, not a {type(document).__name__}"
        )
    for key in document:
        if key in STACK_FILE_KEYS:
            continue
        if isinstance(key, str) and ":" in key:
            raise StackFileError(
                f"{path.name}: {key!r} is outside `config:`, where nothing reads it; indent it under `config:`"
            )
        near = difflib.get_close_matches(str(key), STACK_FILE_KEYS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise StackFileError(
            f"{path.name}: unknown top-level key {key!r}{hint} (a stack file holds {', '.join(STACK_FILE_KEYS)})"
        )
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise StackFileError(
            f"{path.name}: `config:` must map keys to values ({project}:cpu: 512), not be a {type(config).__name__}"
        )
    return config


def _as_program_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def committed_stacks(root: Path = ROOT) -> list[str]:
    """The stacks that have a committed ``Pulumi.<stack>.yaml``."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def load_stack_files(
    stack: str,
    root: Path = ROOT,
    *,
    required_secrets: tuple[str, ...] = (),
) -> StackFiles:
    """Loads a stack's config the way the CLI hands it to the program.

    ``required_secrets`` (bare keys) that the stack file does not set are filled with placeholders, as
    an offline run cannot ask the operator for them.
    """
    project_file = root / "Pulumi.yaml"
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        known = ", ".join(committed_stacks(root)) or "none"
        raise StackFileError(f"no stack file {stack_file.name}; committed stacks: {known}")

    project_doc = _read_yaml(project_file) or {}
    if not isinstance(project_doc, dict) or not isinstance(project_doc.get("name"), str):
        raise StackFileError(f"{project_file.name}: must be a mapping with the project's `name:`")
    project = project_doc["name"]
    config: dict[str, str] = {}
    secret_keys: list[str] = []

    for key, spec in (project_doc.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(spec, dict) and ("value" in spec or "default" in spec):
            config[full] = _as_program_value(spec.get("value", spec.get("default")))
        elif not isinstance(spec, dict):
            config[full] = _as_program_value(spec)

    for key, value in _stack_config(stack_file, _read_yaml(stack_file), project).items():
        if not isinstance(key, str) or ":" not in key:
            raise StackFileError(f"{stack_file.name}: config key {key!r} needs a namespace, like '{project}:{key}'")
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = secret_placeholder(key)
            secret_keys.append(key)
        else:
            config[key] = _as_program_value(value)

    for bare in required_secrets:
        full = f"{project}:{bare}"
        if full not in config:
            config[full] = secret_placeholder(full)
            secret_keys.append(full)

    return StackFiles(project=project, stack=stack, config=config, secret_keys=sorted(secret_keys))
