"""IAM as data: policy documents built from small helpers, roles made one way, and grants between components.

Policies are Python structures serialised with ``pulumi.Output.json_dumps``, so resource ARNs (Outputs) go
straight into ``Resource`` without string templating. Every role of the program is a ``service_role``: trusted by
one AWS service on behalf of this account only, with one inline policy scoped to the ARNs it touches. A grant
from one component to another's role is a ``grant`` made where the components are wired (``__main__.py``), by
the owner of the resource granted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.base import Component


@dataclass(frozen=True)
class RoleRef:
    """A role as other components need it: to grant it something (its name) or to hand it to AWS (its ARN)."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    @staticmethod
    def of(role: aws.iam.Role) -> RoleRef:
        return RoleRef(name=role.name, arn=role.arn)


def service_trust_policy(
    service: str,
    *,
    source_account: pulumi.Input[str] | None = None,
    source_arn: pulumi.Input[str] | None = None,
) -> pulumi.Output[str]:
    """Trust policy letting an AWS service principal (``ecs-tasks.amazonaws.com``...) assume a role.

    With ``source_account`` the service may act only on behalf of this account, and with ``source_arn`` (an ARN
    pattern, ``ArnLike``) only for the resources it matches (confused-deputy guards).
    """
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    condition: dict[str, Any] = {}
    if source_account is not None:
        condition["StringEquals"] = {"aws:SourceAccount": source_account}
    if source_arn is not None:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    if condition:
        statement["Condition"] = condition
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


def write_logs(log_group_arn: pulumi.Input[str], *, sid: str | None = None) -> dict[str, Any]:
    """Writing log events to the streams of one log group (what ECS, CodeBuild and Lambda need)."""
    return allow(["logs:CreateLogStream", "logs:PutLogEvents"], [pulumi.Output.concat(log_group_arn, ":*")], sid=sid)


@dataclass(frozen=True)
class ServiceRole:
    role: aws.iam.Role
    policy: aws.iam.RolePolicy | None
    """The role's inline policy; what uses the role waits for it (``depends_on``). ``None`` without one."""

    @property
    def ref(self) -> RoleRef:
        return RoleRef.of(self.role)

    @property
    def ready(self) -> list[pulumi.Resource]:
        """What a user of the role waits for: its policy (with it, the role can do its job)."""
        return [self.policy or self.role]


def service_role(
    owner: Component,
    name: str,
    *,
    physical_name: str,
    service: str,
    account_id: pulumi.Input[str] | None,
    statements: Sequence[Mapping[str, Any]] = (),
    policy_name: str | None = None,
    policy_resource: str | None = None,
) -> ServiceRole:
    """A role ``service`` assumes for this account only, with one inline policy of ``statements`` (if any).

    ``account_id`` ``None``: no ``aws:SourceAccount`` condition, for a service whose documented trust policy has
    none (its requests may not carry the key, and the role would be unusable).

    Children of ``owner``: ``name`` (the role) and ``policy_resource`` (default ``f"{name}-policy"``, the inline
    policy, named ``policy_name`` in IAM).
    """
    child = owner.child()
    role = aws.iam.Role(
        name,
        name=physical_name,
        assume_role_policy=service_trust_policy(service, source_account=account_id),
        opts=child,
    )
    policy = None
    if statements:
        policy = aws.iam.RolePolicy(
            policy_resource or f"{name}-policy",
            name=policy_name,
            role=role.id,
            policy=policy_document(*statements),
            opts=child,
        )
    return ServiceRole(role, policy)


def grant(
    owner: Component,
    name: str,
    role: RoleRef,
    statements: Sequence[Mapping[str, Any]],
    *,
    policy_name: str,
) -> aws.iam.RolePolicy:
    """An inline policy of ``statements`` on another component's ``role``, owned (parented) by ``owner``: the
    component whose resources the statements name, so that the grant goes when they go."""
    return aws.iam.RolePolicy(
        name,
        name=policy_name,
        role=role.name,
        policy=policy_document(*statements),
        opts=owner.child(),
    )
