"""A stack deployed by the previous release updates in place: every resource it has keeps its URN, or the new
program declares that URN as an alias of the resource that took its place.

Pulumi identifies a resource by its URN (stack, parent types, type, name). When a component is split, the
children that move under a new sub-component get new URNs; without an alias, ``pulumi up`` would create the
new ones and delete the old (a replacement of the ALB, the service, the buckets...), and stop at protected
resources. https://www.pulumi.com/docs/iac/concepts/options/aliases/
"""

from __future__ import annotations

from pathlib import Path

import pytest

from offline.engine import ProgramRun
from support.sdk import type_aliases
from support.stacks import stack_run

PREVIOUS = Path(__file__).resolve().parent / "data" / "previous_release"
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "dev-cloudtrail-oidc": ("dev", {"triggerMode": "cloudtrail", "uploadIdentity": "oidc", "commitGitlabCi": "true"}),
    "prod-no-alarms-no-approval": ("prod", {"rollbackOnAlarm": "false", "manualApproval": "false"}),
}


# Resources a release removes on purpose, by (type, name), with the reason; the check below still fails on any
# other missing URN, and on a retired one the stack still has.
NO_TOPIC = frozenset(
    {
        ("gitlab-fargate:index:Notifications", "notifications"),
        ("aws:sns/topic:Topic", "notifications-topic"),
        ("aws:sns/topicPolicy:TopicPolicy", "notifications-topic-policy"),
        ("aws:kms/key:Key", "notifications-key"),
        ("aws:kms/alias:Alias", "notifications-key-alias"),
        ("aws:cloudwatch/eventRule:EventRule", "deploy-pipeline-failed"),
        ("aws:cloudwatch/eventTarget:EventTarget", "deploy-pipeline-failed-target"),
        ("aws:cloudwatch/eventRule:EventRule", "deploy-deployment-failed"),
        ("aws:cloudwatch/eventTarget:EventTarget", "deploy-deployment-failed-target"),
    }
)
"""A stack without notificationEmails no longer pays for a topic and key nobody reads, nor for the rules that
fed it (issue 13): the previous release made them on every stack."""
USER_POLICY = frozenset({("aws:iam/userPolicy:UserPolicy", "upload-identity-put-object")})
"""FSBP IAM.2 (issue 14): the upload user's inline policy became its group's (a GroupPolicy of the same name,
with the user in the group). The update creates the group, its policy and the membership before it deletes the
user's policy, so the job never loses its permission."""
RETIRED: dict[str, frozenset[tuple[str, str]]] = {
    "dev": NO_TOPIC | USER_POLICY,
    "dev-cloudtrail-oidc": NO_TOPIC,
    "prod": USER_POLICY,
    "prod-no-alarms-no-approval": USER_POLICY,
}


def previous_urns(variant: str) -> list[str]:
    return [line for line in (PREVIOUS / f"{variant}.txt").read_text().splitlines() if line.strip()]


def type_and_name(urn: str) -> tuple[str, str]:
    """The resource's own type (the last of the type chain) and its name."""
    _, _, types, name = urn.split("::", 3)
    return types.split("$")[-1], name


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    stack, overrides = VARIANTS[request.param]
    return request.param, stack_run(stack, overrides=overrides)


def test_every_previous_urn_is_kept_or_aliased(variant: tuple[str, ProgramRun]) -> None:
    name, found = variant
    taken_over = {urn for r in found.resources for urn in [r.urn, *r.aliases]}
    missing = [urn for urn in previous_urns(name) if urn not in taken_over]
    unexplained = [urn for urn in missing if type_and_name(urn) not in RETIRED.get(name, frozenset())]
    assert unexplained == [], f"{name}: resources the previous release created that this one would replace"


def test_a_retired_resource_is_gone_for_its_reason(variant: tuple[str, ProgramRun]) -> None:
    name, found = variant
    retired = RETIRED.get(name, frozenset())
    assert retired <= {type_and_name(urn) for urn in previous_urns(name)}, "retire only what the release had"
    assert not retired & {(r.type, r.name) for r in found.resources}, "a retired resource is still registered"
    if retired >= NO_TOPIC:
        assert found.of_type("aws:sns/topic:Topic") == []
    if retired >= USER_POLICY:
        assert found.one("aws:iam/groupPolicy:GroupPolicy", "upload-identity-put-object")


def test_an_alias_stands_for_the_same_resource(variant: tuple[str, ProgramRun]) -> None:
    # An alias only moves a resource in the tree: it keeps its name, and its type is the same or one the provider
    # SDK itself declares as the resource's former type (pulumi-aws v7's BucketV2 -> Bucket...), so the provider
    # sees the same resource, not a different one under an old identity.
    _, found = variant
    for r in found.resources:
        former_types = {r.type} | (type_aliases(r.type) if r.custom and not r.type.startswith("pulumi:") else set())
        for alias in r.aliases:
            alias_type, alias_name = type_and_name(alias)
            assert alias_name == r.name, alias
            assert alias_type in former_types, alias


def test_aliases_point_only_at_urns_no_resource_has_now(variant: tuple[str, ProgramRun]) -> None:
    _, found = variant
    urns = {r.urn for r in found.resources}
    assert [a for r in found.resources for a in r.aliases if a in urns] == []


def test_the_check_would_catch_a_renamed_resource(variant: tuple[str, ProgramRun]) -> None:
    name, found = variant
    renamed = previous_urns(name)[0] + "-renamed"
    assert renamed not in {urn for r in found.resources for urn in [r.urn, *r.aliases]}
