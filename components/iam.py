"""IAM policies as data: small helpers so every role and policy in the program reads the same way.

Policies are built as Python structures and serialised with ``pulumi.Output.json_dumps`` so that resource
ARNs (Outputs) go straight into ``Resource`` without string templating.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi


def service_trust_policy(service: str, *, source_account: pulumi.Input[str] | None = None) -> pulumi.Output[str]:
    """Trust policy letting an AWS service principal (``ecs-tasks.amazonaws.com``...) assume a role.

    With ``source_account`` the service may act only on behalf of this account (confused-deputy guard).
    """
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if source_account is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [statement]})


def allow(
    actions: Sequence[str],
    resources: Sequence[pulumi.Input[str]],
    *,
    sid: str | None = None,
    condition: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``Allow`` statement."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": list(resources),
    }
    if sid:
        statement["Sid"] = sid
    if condition:
        statement["Condition"] = dict(condition)
    return statement


def policy_document(*statements: Mapping[str, Any]) -> pulumi.Output[str]:
    """A policy document from statements, as a JSON Output."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})
