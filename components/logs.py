"""CloudWatch log groups made one way: named by the program, kept as long as the stack says.

A service that logs to a group it creates itself (CodeBuild's ``/aws/codebuild/<project>``...) keeps the logs
forever; creating the group first, with the stack's retention, bounds what they cost.
"""

from __future__ import annotations

import pulumi_aws as aws

from components.base import Component, StackContext


def log_group(
    owner: Component, name: str, *, physical_name: str, context: StackContext, protect: bool | None = None
) -> aws.cloudwatch.LogGroup:
    """A log group of ``owner`` kept ``context.log_retention_days``; protected like the stack's other stateful
    resources unless ``protect`` says otherwise (logs nobody needs after the stack is gone)."""
    return aws.cloudwatch.LogGroup(
        name,
        name=physical_name,
        retention_in_days=context.log_retention_days,
        opts=owner.child(protect=context.protect if protect is None else protect),
    )
