"""The policy pack: ``pulumi preview --policy-pack policy`` (and ``pulumi up --policy-pack policy``) runs this.

It only adapts pulumi-policy to the rules of ``rules.py``: every resource rule becomes a
``ResourceValidationPolicy``, every stack rule a ``StackValidationPolicy``, all mandatory. pulumi-policy hands
properties over in proxies that raise on values not known during a preview; ``plain`` turns them into plain data
with ``rules.UNKNOWN`` in their place, so a rule judges what is known instead of the whole policy being skipped.

The Pulumi CLI runs this file as a script from the pack's folder (``python -m pulumi.policy <engine> policy``),
where ``rules`` is a sibling module; the tests import it as ``policy.__main__``. ``PolicyPack(...)`` starts the
analyzer's gRPC server and never returns, so it only runs when this file is the program.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as _proxy

if __package__:
    from . import exemptions, rules
else:  # run by the Pulumi CLI from the pack's folder
    import exemptions  # type: ignore[no-redef]
    import rules  # type: ignore[no-redef]

PACK_NAME = "gitlab-fargate-security"

# The strings pulumi-policy puts where a value is not known yet (during a preview).
_UNKNOWN_SENTINELS = frozenset(
    {
        _proxy.UNKNOWN_BOOLEAN_VALUE,
        _proxy.UNKNOWN_NUMBER_VALUE,
        _proxy.UNKNOWN_STRING_VALUE,
        _proxy.UNKNOWN_ARRAY_VALUE,
        _proxy.UNKNOWN_ASSET_VALUE,
        _proxy.UNKNOWN_ARCHIVE_VALUE,
        _proxy.UNKNOWN_OBJECT_VALUE,
    }
)


def plain(value: Any) -> Any:
    """pulumi-policy's property value as plain dicts and lists, with ``rules.UNKNOWN`` for unknown values."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, str):
        return rules.UNKNOWN if value in _UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key in value:
            try:
                result[key] = plain(value[key])
            except _proxy.UnknownValueError:
                result[key] = rules.UNKNOWN
        return result
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        items: list[Any] = []
        for i in range(len(value)):
            try:
                items.append(plain(value[i]))
            except _proxy.UnknownValueError:
                items.append(rules.UNKNOWN)
        return items
    return value


def stack_resource(resource: PolicyResource) -> rules.Resource:
    """A stack rule's ``Resource`` from pulumi-policy's (whose properties are the resource's outputs)."""
    props = plain(resource.props)
    return rules.Resource(
        type=resource.resource_type,
        name=resource.name,
        props=props,
        urn=resource.urn,
        # Outputs carry what other resources use to refer to this one; unknown ones are left out.
        ids=frozenset(props[k] for k in rules.REFERENCE_KEYS if isinstance(props.get(k), str)),
        property_dependencies={
            prop: frozenset(d.urn for d in deps) for prop, deps in (resource.property_dependencies or {}).items()
        },
        dependencies=frozenset(d.urn for d in resource.dependencies or []),
    )


def _level(exemption: exemptions.Exemption | None) -> EnforcementLevel:
    """Mandatory, or advisory where the stack is exempt: still reported, never silently skipped."""
    return EnforcementLevel.MANDATORY if exemption is None else EnforcementLevel.ADVISORY


def _worded(message: str, exemption: exemptions.Exemption | None) -> str:
    return message if exemption is None else f"{message} [exempt on this stack: {exemption.reason}]"


def resource_policy(
    rule: rules.ResourceRule, exemption: exemptions.Exemption | None = None
) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in rule.types:
            return
        for message in rule(args.resource_type, plain(args.props)):
            report_violation(_worded(message, exemption), None)

    return ResourceValidationPolicy(
        name=rule.name, description=rule.description, validate=validate, enforcement_level=_level(exemption)
    )


def stack_policy(rule: rules.StackRule, exemption: exemptions.Exemption | None = None) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for violation in rule([stack_resource(r) for r in args.resources]):
            report_violation(_worded(violation.message, exemption), violation.urn or None)

    return StackValidationPolicy(
        name=rule.name, description=rule.description, validate=validate, enforcement_level=_level(exemption)
    )


def policies(stack: str | None = None) -> list[Policy]:
    """One policy per rule, in the order of ``rules.py``; advisory where ``stack`` is exempt from it."""
    exempt = exemptions.for_stack(stack)
    found: list[Policy] = [resource_policy(r, exempt.get(r.name)) for r in rules.RESOURCE_RULES]
    return found + [stack_policy(r, exempt.get(r.name)) for r in rules.STACK_RULES]


if __name__ == "__main__":
    PolicyPack(
        name=PACK_NAME,
        policies=policies(os.environ.get("PULUMI_STACK")),
        enforcement_level=EnforcementLevel.MANDATORY,
        description=(
            "gitlab-fargate: S3, ECR, IAM, network, TLS, secrets, encryption, logging, alarm rules (docs/security.md)"
        ),
    )
