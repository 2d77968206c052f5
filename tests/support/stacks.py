"""The program and its config, as tests use them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from components.config import SECRET_KEYS, StackConfig, parse_config
from offline.engine import ProgramRun, Registration, run_components, run_program
from offline.plan import Plan, build_plan
from offline.stack_files import committed_stacks, load_stack_files

STACKS = committed_stacks()
"""Every committed ``Pulumi.<stack>.yaml``: tests over all stacks take it with ``parametrize``, so a new stack
file is tested by adding it."""
REGION = "eu-west-1"
TOKEN = "glpat-offline-test-token"
"""The GitLab token of component tests' configs (a secret, as the stack file must hold it)."""
REQUIRED = {"gitlabProject": "shop/web", "gitlabToken": TOKEN}
"""What every stack must set; component tests' configs start from it."""


def stack_run(stack: str, **kwargs: Any) -> ProgramRun:
    """Runs ``__main__.py`` for a committed stack, as ``pulumi up`` would (``overrides``/``remove`` change
    its config; see ``offline.engine.run_program``)."""
    files = load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS)))
    return run_program(files, **kwargs)


_COMMITTED_RUNS: dict[str, ProgramRun] = {}


def committed_run(stack: str) -> ProgramRun:
    """A committed stack's run, made once per session (tests must not mutate it)."""
    if stack not in _COMMITTED_RUNS:
        _COMMITTED_RUNS[stack] = stack_run(stack)
    return _COMMITTED_RUNS[stack]


_VARIANT_RUNS: dict[tuple[str, tuple[tuple[str, str], ...]], ProgramRun] = {}
_VARIANT_PLANS: dict[tuple[str, tuple[tuple[str, str], ...]], Plan] = {}


def variant_run(stack: str, overrides: Mapping[str, str] | None = None) -> ProgramRun:
    """The stack's run with ``overrides`` (none: the committed file's), made once per session (tests must not
    mutate it)."""
    if not overrides:
        return committed_run(stack)
    key = (stack, tuple(sorted(overrides.items())))
    if key not in _VARIANT_RUNS:
        _VARIANT_RUNS[key] = stack_run(stack, overrides=dict(overrides))
    return _VARIANT_RUNS[key]


def variant_plan(stack: str, overrides: Mapping[str, str] | None = None) -> Plan:
    """The offline plan of the stack with ``overrides``, made once per session."""
    key = (stack, tuple(sorted((overrides or {}).items())))
    if key not in _VARIANT_PLANS:
        _VARIANT_PLANS[key] = build_plan(stack, overrides=dict(overrides or {}))
    return _VARIANT_PLANS[key]


def stack_config(
    values: Mapping[str, str | None] | None = None, *, stack: str = "dev", region: str = REGION, **more: str
) -> StackConfig:
    """A validated config from stack-file values (bare keys, strings as the CLI passes them), with the keys
    every stack needs; ``None`` as a value removes a key."""
    merged: dict[str, str | None] = {**REQUIRED, **(values or {}), **more}
    return parse_config(
        {k: v for k, v in merged.items() if v is not None},
        stack=stack,
        region=region,
        secret_keys=frozenset({"gitlabToken"}),
    )


def run(
    build: Callable[[], object],
    *,
    region: str = REGION,
    stack: str = "dev",
    registered: list[Registration] | None = None,
) -> ProgramRun:
    """Runs ``build`` (a function constructing components) on the offline engine, as a program of this project:
    what a component test inspects. ``registered``, when given, receives every registration as it is made, so
    a test of a failure can tell whether anything was registered before it."""
    return run_components(build, region=region, stack=stack, registered=registered)


def component(found: ProgramRun, type_name: str, name: str | None = None) -> Registration:
    """The one component of class ``type_name`` (``FargateService``), by name when there are several."""
    matches = [
        r for r in found.resources if not r.custom and r.type.endswith(f":{type_name}") and name in (None, r.name)
    ]
    if len(matches) != 1:
        raise LookupError(f"expected one {type_name} named {name!r}, found {[r.name for r in matches]}")
    return matches[0]


def descendants(found: ProgramRun, parent: Registration) -> list[Registration]:
    """Every resource under ``parent``, at any depth, in registration order."""
    urns = {parent.urn}
    out = []
    for r in found.resources:
        if r.parent in urns:
            urns.add(r.urn)
            out.append(r)
    return out
