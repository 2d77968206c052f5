"""PipelineTrigger: the EventBridge rule that starts the pipeline when the source object is uploaded.

The SourceBucket says which events are an upload (its ``event_pattern``); this rule, next to the pipeline it
starts, matches them and starts the pipeline through a role that may start this pipeline and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.base import Component


@dataclass(frozen=True)
class PipelineTriggerArgs:
    name_prefix: str
    event_pattern: pulumi.Input[str]
    """EventBridge pattern matching only an upload of the source object."""
    pipeline_arn: pulumi.Input[str]


class PipelineTrigger(Component):
    rule_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: PipelineTriggerArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        super().__init__(name, opts, children_formerly_of=children_formerly_of)
        prefix = args.name_prefix
        role = iam.service_role(
            self,
            f"{name}-trigger-role",
            physical_name=f"{prefix}-pipeline-trigger",
            service="events.amazonaws.com",
            account_id=aws.get_caller_identity_output(opts=self.lookup()).account_id,
            statements=[
                iam.allow(["codepipeline:StartPipelineExecution"], [args.pipeline_arn], sid="StartThePipeline")
            ],
            policy_name="start-pipeline",
            policy_resource=f"{name}-trigger-policy",
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-trigger",
            name=f"{prefix}-source-upload",
            description=f"Starts the {prefix} pipeline when the source archive is uploaded",
            event_pattern=args.event_pattern,
            opts=self.child(),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-trigger-target",
            rule=rule.name,
            target_id="pipeline",
            arn=args.pipeline_arn,
            role_arn=role.role.arn,
            opts=self.child(),
        )
        self.rule_name = rule.name
        self.register_outputs({"rule_name": rule.name})
