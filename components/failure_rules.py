"""FailureRules: what tells the stack's notification topic that something went wrong, in one readable line.

Two EventBridge rules: a failed pipeline execution, and a deployment that failed or was stopped (both roll
back). Each target turns the event into one line with a console link (an input transformer). The rules are
named ``<prefix>-...``: the topic's policy lets the stack's rules (``rule/<prefix>-*``) publish, with no role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.base import Component
from components.pipeline_actions import Deployer


def pipeline_failed_pattern(pipeline_name: pulumi.Input[str]) -> dict[str, Any]:
    """EventBridge pattern of a failed execution of this pipeline (and of no other)."""
    return {
        "source": ["aws.codepipeline"],
        "detail-type": ["CodePipeline Pipeline Execution State Change"],
        "detail": {"pipeline": [pipeline_name], "state": ["FAILED"]},
    }


def pipeline_failed_message(region: str) -> tuple[dict[str, str], str]:
    """Input transformer (paths, template) turning the event into one line with the execution's console page.

    The template is a JSON string (quoted), so SNS delivers plain text rather than the event's JSON.
    """
    console = f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines"
    return (
        {"pipeline": "$.detail.pipeline", "execution": "$.detail.execution-id", "at": "$.time"},
        json.dumps(
            "Pipeline <pipeline> failed at <at> (execution <execution>): "
            f"{console}/<pipeline>/executions/<execution>/timeline?region={region}"
        ),
    )


@dataclass(frozen=True)
class FailureRulesArgs:
    name_prefix: str
    region: str
    pipeline_name: pulumi.Input[str]
    deployer: Deployer
    """The deployment engine: what a failed deployment looks like, and how it is told."""
    topic_arn: pulumi.Input[str]


class FailureRules(Component):
    rule_names: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        args: FailureRulesArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        super().__init__(name, opts, children_formerly_of=children_formerly_of)
        prefix, deployer = args.name_prefix, args.deployer
        failures = {
            "pipeline-failed": (
                f"Tells the {prefix} notification topic when an execution of the pipeline fails",
                pipeline_failed_pattern(args.pipeline_name),
                pipeline_failed_message(args.region),
            ),
            "deployment-failed": (
                f"Tells the {prefix} notification topic when a deployment fails or is stopped (rolled back)",
                deployer.failed_pattern,
                deployer.failed_message,
            ),
        }
        self.rule_names = []
        for role, (description, pattern, (paths, template)) in failures.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{role}",
                name=f"{prefix}-{role}",
                description=description,
                event_pattern=pulumi.Output.json_dumps(pattern),
                opts=self.child(),
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{role}-target",
                rule=rule.name,
                target_id="notify",
                arn=args.topic_arn,
                input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                    input_paths=paths, input_template=template
                ),
                opts=self.child(),
            )
            self.rule_names.append(rule.name)
        self.register_outputs({"rule_names": self.rule_names})
