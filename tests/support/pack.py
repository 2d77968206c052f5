"""The policy pack over a whole program run, and the controls the program fails on purpose.

Two controls fail by design (docs/security.md), and the pack reports them like any other violation: it has no
way yet to exempt a resource from a rule. Until it has, tests over whole stacks compare the pack's findings with
``by_design``: any other finding fails them, and ``tests/test_fsbp_build.py`` checks that each of these really
fires, on exactly these resources.

- ``fsbp-codebuild-5-no-privileged-mode`` on the build project (``build-project``): it builds the image with
  the Docker daemon of its environment, which runs only in privileged mode;
- ``cdk-nag-cb4-codebuild-kms-key`` on every CodeBuild project of a stack that turns ``buildEncryptionKey``
  off (dev): its artifacts are encrypted with the AWS-managed ``aws/s3`` key, saving the key's $1/month.
"""

from __future__ import annotations

from offline.engine import ProgramRun
from policy import resource_types as rt
from policy import rules
from policy.rules import Violation

PRIVILEGED_MODE = "fsbp-codebuild-5-no-privileged-mode"
CUSTOMER_MANAGED_KEY = "cdk-nag-cb4-codebuild-kms-key"
BUILD_PROJECT = "build-project"
"""The BuildStage's project (``components/build_stage.py``), the one that runs Docker."""
ARTIFACT_KEY = "build-artifact-key"
"""The BuildStage's KMS key, registered when ``buildEncryptionKey`` is on."""


def violations(found: ProgramRun) -> list[Violation]:
    """Everything the pack reports on the run, as ``pulumi up`` would run it over the stack."""
    return rules.check_stack([rules.from_registration(r) for r in found.resources])


def resource_name(violation: Violation) -> str:
    """The logical name of the resource a violation names (the last part of its URN)."""
    return violation.urn.rsplit("::", 1)[-1]


def by_design(found: ProgramRun) -> set[tuple[str, str]]:
    """(rule, resource name) of the violations the program commits on purpose in this run."""
    expected = {(PRIVILEGED_MODE, BUILD_PROJECT)}
    if not any(key.name == ARTIFACT_KEY for key in found.of_type(rt.KMS_KEY)):
        expected |= {(CUSTOMER_MANAGED_KEY, project.name) for project in found.of_type(rt.CODEBUILD_PROJECT)}
    return expected


def unexplained(found: ProgramRun) -> list[str]:
    """The pack's findings on the run that are not by design: what a test over a whole stack expects to be empty."""
    expected = by_design(found)
    return [str(v) for v in violations(found) if (v.rule, resource_name(v)) not in expected]
