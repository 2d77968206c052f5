"""The policy pack over a whole run, and the failures a committed stack keeps on purpose.

``BY_DESIGN`` lists, per committed stack, the (rule, resource name) pairs its stack file chooses to fail, read
from ``policy/exemptions.yaml`` (where each is written once, with its reason and cost). The pack reports them as
advisory on that stack; the tests hold them tighter: a stack fails those pairs exactly, and nothing else.
``WIRED_IN_MAIN``: rules on how ``__main__.py`` wires the parts (the S3 access logs of every bucket); a part
built alone fails them by construction, the whole-stack tests judge them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.base import PROJECT
from offline.engine import ProgramRun
from policy import exemptions, rules
from policy import resource_types as rt
from support import fsbp

PRIVILEGED_MODE = "fsbp-codebuild-5-no-privileged-mode"
CUSTOMER_MANAGED_KEY = "cdk-nag-cb4-codebuild-kms-key"
BUILD_PROJECT = "build-project"
"""The BuildStage's project (``components/build_stage.py``), the one that runs Docker."""
ARTIFACT_KEY = "build-artifact-key"
"""The BuildStage's KMS key, registered when ``buildEncryptionKey`` is on."""

BY_DESIGN: dict[str, frozenset[tuple[str, str]]] = {
    stack: frozenset((e.rule, name) for e in exemptions.load() if stack in e.stacks for name in e.resources)
    for stack in {s for e in exemptions.load() for s in e.stacks}
}
WIRED_IN_MAIN: dict[str, str] = {
    "fsbp-s3-9-server-access-logging": "S3AccessLogs logs the buckets __main__.py hands it, after every part",
}


def violations(run: ProgramRun) -> list[rules.Violation]:
    """Every rule of the pack over the run's resources."""
    return rules.check_stack([rules.from_registration(r) for r in run.resources])


def resource_name(violation: rules.Violation) -> str:
    """The logical name of the resource a violation names (the last part of its URN)."""
    return violation.urn.rsplit("::", 1)[-1]


def build_by_design(found: ProgramRun) -> set[tuple[str, str]]:
    """(rule, resource name) the build fails by the shape the run gave it, whatever the stack: CodeBuild.5 on the
    project that runs Docker (only in privileged mode), and AwsSolutions-CB4 on every project when
    ``buildEncryptionKey`` is off."""
    expected = {(PRIVILEGED_MODE, BUILD_PROJECT)}
    if not any(key.name == ARTIFACT_KEY for key in found.of_type(rt.KMS_KEY)):
        expected |= {(CUSTOMER_MANAGED_KEY, project.name) for project in found.of_type(rt.CODEBUILD_PROJECT)}
    return expected


def _named(found: list[rules.Violation], run: ProgramRun) -> list[tuple[rules.Violation, tuple[str, str]]]:
    names = {r.urn: r.name for r in run.resources}
    return [(v, (v.rule, names.get(v.urn, v.urn))) for v in found]


def by_design(stack: str, found: list[rules.Violation], run: ProgramRun) -> set[tuple[str, str]]:
    """The (rule, resource name) of each violation in ``found`` that the stack keeps on purpose."""
    return {pair for _, pair in _named(found, run)} & BY_DESIGN.get(stack, frozenset())


def unexpected(stack: str, found: list[rules.Violation], run: ProgramRun) -> list[rules.Violation]:
    """The violations in ``found`` that the stack does not keep on purpose: neither exempt on it, nor what its
    load balancers fail by the shape the run gave them (plain HTTP, a port-80 redirect: ``support/fsbp.py``,
    which follows a variant that turns HTTPS on or off)."""
    shaped, built = set(fsbp.by_design(run)), build_by_design(run)
    return [
        v
        for v, pair in _named(found, run)
        if pair not in BY_DESIGN.get(stack, frozenset()) and (v.rule, v.urn) not in shaped and pair not in built
    ]


def stack_violations(run: ProgramRun, stack: str) -> list[rules.Violation]:
    """The violations of a run of the program on ``stack``'s file, less what it fails on purpose."""
    return unexpected(stack, violations(run), run)


def part_violations(run: ProgramRun) -> list[rules.Violation]:
    """The violations of parts built without ``__main__.py``, less the rules on its wiring and what their load
    balancers fail by their shape (``support/fsbp.py``)."""
    shaped, built = set(fsbp.by_design(run)), build_by_design(run)
    return [
        v
        for v, pair in _named(violations(run), run)
        if v.rule not in WIRED_IN_MAIN and (v.rule, v.urn) not in shaped and pair not in built
    ]


def res(
    type_: str,
    name: str,
    props: Mapping[str, Any],
    *,
    ids: tuple[str, ...] = (),
    deps: Mapping[str, set[str]] | None = None,
    depends_on: tuple[str, ...] = (),
) -> rules.Resource:
    """A resource as the stack rules see it, for a rule's unit tests."""
    return rules.Resource(
        type=type_,
        name=name,
        props=props,
        urn=f"urn:pulumi:test::{PROJECT}::{type_}::{name}",
        ids=frozenset(ids),
        property_dependencies={k: frozenset(v) for k, v in (deps or {}).items()},
        dependencies=frozenset(depends_on),
    )
