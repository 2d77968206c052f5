"""CommitStatus: the stack reports every pipeline execution on the GitLab commit it deploys.

An EventBridge rule on this pipeline's execution state changes invokes a small Python function
(``files/commit_status.py``) that reads the execution's commit and posts the status ``aws/<stack>`` to GitLab:
``running``, ``success`` (linking the site), ``failed`` naming the stage, or ``canceled``
(https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit).

A Lambda function rather than a Step Functions state machine: the mapping (the commit from
GetPipelineExecution, the failed stage from ListActionExecutions, GitLab's "already in that state" answer)
is plain code with its own unit tests against a fake GitLab server, where the same logic in a state
machine's JSONata would be tested only on AWS.

- **Its own GitLab credential**: a project access token the program creates (role ``developer``, the least
  that may set a commit status; scope ``api``), expiring after ``TOKEN_EXPIRY_DAYS`` and rotated by
  ``pulumi up`` within ``TOKEN_ROTATE_BEFORE_DAYS`` of that. Its value lives only in Secrets Manager (a Pulumi
  secret end to end); the function reads it at run time, never from an environment variable.
- **Nothing lost silently**: the function retries GitLab, Lambda retries a failed invocation twice, and what
  still fails (and what EventBridge cannot deliver) lands in a dead-letter queue; function errors and dead
  letters alarm to the stack's topic.
- **Least privilege**: the function may read this pipeline's executions, this secret, write its logs and its
  dead letters; EventBridge may invoke it for this rule only.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_gitlab as gitlab

from components import iam, logs
from components.base import Component, StackContext
from components.delivery_pipeline import PipelineRef
from components.gitlab_project import GitLabConfig
from components.notifications import NotificationTopic
from components.templates import FILES

HANDLER_FILE = "commit_status.py"
HANDLER = "commit_status.handler"
RUNTIME = "python3.12"
# The token: the least role that may set a commit status, scope api (GitLab has no narrower scope for it).
# https://docs.gitlab.com/user/project/settings/project_access_tokens/
TOKEN_ROLE = "developer"
TOKEN_SCOPES = ("api",)
TOKEN_EXPIRY_DAYS = 90
TOKEN_ROTATE_BEFORE_DAYS = 30
# Lambda's own retries of a failed asynchronous invocation (0 to 2) and the age after which it gives up.
# https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
LAMBDA_RETRIES = 2
MAX_EVENT_AGE_SECONDS = 3600
# What the queue keeps (its maximum, 14 days): time to notice the alarm and replay.
DEAD_LETTER_RETENTION_SECONDS = 1_209_600
FUNCTION_TIMEOUT_SECONDS = 60


@cache
def handler_module() -> ModuleType:
    """``files/commit_status.py``, for the states its rule listens to (one list, in the handler)."""
    spec = importlib.util.spec_from_file_location("commit_status_handler", FILES / HANDLER_FILE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {FILES / HANDLER_FILE}")
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses look their module up while they are defined.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def execution_states() -> list[str]:
    states: dict[str, str] = handler_module().STATES
    return sorted(states)


def event_pattern(pipeline_name: pulumi.Input[str]) -> dict[str, Any]:
    """This pipeline's execution state changes that set a status (and no other pipeline's)."""
    return {
        "source": ["aws.codepipeline"],
        "detail-type": ["CodePipeline Pipeline Execution State Change"],
        "detail": {"pipeline": [pipeline_name], "state": execution_states()},
    }


def status_name(stack: str) -> str:
    """The status on the commit: one per stack, so several stacks' statuses stand side by side."""
    return f"aws/{stack}"


@dataclass(frozen=True)
class CommitStatusArgs:
    context: StackContext
    stack: str
    gitlab: GitLabConfig
    pipeline: PipelineRef
    site_url: pulumi.Input[str]
    """Where a successful deployment's status links."""
    topic: NotificationTopic | None = None
    """Told when the function fails or a status is dead-lettered."""


class CommitStatus(Component):
    function_name: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]

    def __init__(self, name: str, args: CommitStatusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        ctx = args.context
        prefix = f"{ctx.name_prefix}-commit-status"
        secret = self._token_secret(name, args, prefix)
        dead_letters = aws.sqs.Queue(
            f"{name}-dead-letters",
            name=f"{prefix}-dead-letters",
            sqs_managed_sse_enabled=True,
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            opts=self.child(),
        )
        function = self._function(name, args, prefix, secret, dead_letters)
        rule = aws.cloudwatch.EventRule(
            f"{name}-rule",
            name=prefix,
            description=f"Sets the GitLab commit status {status_name(args.stack)} from the pipeline's executions",
            event_pattern=pulumi.Output.json_dumps(event_pattern(args.pipeline.name)),
            opts=self.child(),
        )
        aws.lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=self.child(),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=rule.name,
            target_id="commit-status",
            arn=function.arn,
            # EventBridge retries a delivery that fails (a throttled Lambda) for up to an hour, then dead-letters it.
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_retry_attempts=24, maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS
            ),
            dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=dead_letters.arn),
            opts=self.child(),
        )
        aws.sqs.QueuePolicy(
            f"{name}-dead-letters-policy",
            # A queue's id is its URL.
            queue_url=dead_letters.id,
            policy=iam.policy_document(
                {
                    "Sid": "EventBridgeDeadLettersOfTheRule",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": dead_letters.arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule.arn}},
                }
            ),
            opts=self.child(),
        )
        if args.topic is not None:
            self._alarms(name, prefix, function, dead_letters, args.topic)
        self.function_name = function.name
        self.dead_letter_queue_url = dead_letters.url
        self.register_outputs({"function_name": function.name, "dead_letter_queue_url": dead_letters.url})

    def _token_secret(self, name: str, args: CommitStatusArgs, prefix: str) -> aws.secretsmanager.Secret:
        """The project access token, created on the application project, its value only in Secrets Manager."""
        token = gitlab.ProjectAccessToken(
            f"{name}-token",
            project=args.gitlab.gitlab_project,
            name=f"{prefix} (Pulumi)",
            description=f"Sets the commit status {status_name(args.stack)}; created and rotated by Pulumi",
            access_level=TOKEN_ROLE,
            scopes=list(TOKEN_SCOPES),
            rotation_configuration=gitlab.ProjectAccessTokenRotationConfigurationArgs(
                expiration_days=TOKEN_EXPIRY_DAYS, rotate_before_days=TOKEN_ROTATE_BEFORE_DAYS
            ),
            # The SDK registers `token` as a secret output: its value is encrypted in the state.
            opts=self.child(),
        )
        secret = aws.secretsmanager.Secret(
            f"{name}-token-secret",
            name=f"{prefix}/gitlab-token",
            description=f"GitLab project access token of {prefix} (rotated by pulumi up)",
            # dev deletes it at once (its name is free again for the next `pulumi up`); otherwise the usual window.
            recovery_window_in_days=0 if args.context.force_destroy else 7,
            opts=self.child(),
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-token-value",
            secret_id=secret.id,
            # A secret output of the token resource, and a secret input of this one (the provider's schema).
            secret_string=token.token,
            opts=self.child(),
        )
        return secret

    def _function(
        self,
        name: str,
        args: CommitStatusArgs,
        prefix: str,
        secret: aws.secretsmanager.Secret,
        dead_letters: aws.sqs.Queue,
    ) -> aws.lambda_.Function:
        ctx = args.context
        # Operational logs, not the application's: kept the stack's retention, not protected.
        log_group = logs.log_group(
            self, f"{name}-logs", physical_name=f"/aws/lambda/{prefix}", context=ctx, protect=False
        )
        role = iam.service_role(
            self,
            f"{name}-role",
            physical_name=prefix,
            service="lambda.amazonaws.com",
            account_id=aws.get_caller_identity_output(opts=self.lookup()).account_id,
            statements=[
                iam.write_logs(log_group.arn, sid="WriteItsLogs"),
                iam.allow(
                    ["codepipeline:GetPipelineExecution", "codepipeline:ListActionExecutions"],
                    [args.pipeline.arn],
                    sid="ReadThePipelinesExecutions",
                ),
                iam.allow(["secretsmanager:GetSecretValue"], [secret.arn], sid="ReadTheToken"),
                iam.allow(["sqs:SendMessage"], [dead_letters.arn], sid="DeadLetterWhatFails"),
            ],
            policy_name="commit-status",
        )
        function = aws.lambda_.Function(
            f"{name}-function",
            name=prefix,
            description=f"Sets the GitLab commit status {status_name(args.stack)} from the pipeline's executions",
            runtime=RUNTIME,
            handler=HANDLER,
            role=role.role.arn,
            code=pulumi.AssetArchive({HANDLER_FILE: pulumi.FileAsset(str(FILES / HANDLER_FILE))}),
            timeout=FUNCTION_TIMEOUT_SECONDS,
            memory_size=128,
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=log_group.name),
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    "GITLAB_API_URL": args.gitlab.api_url,
                    "GITLAB_PROJECT": args.gitlab.gitlab_project,
                    "STATUS_NAME": status_name(args.stack),
                    "SITE_URL": args.site_url,
                    "TOKEN_SECRET_ARN": secret.arn,
                }
            ),
            opts=self.child(depends_on=role.ready),
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=function.name,
            maximum_retry_attempts=LAMBDA_RETRIES,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=dead_letters.arn
                )
            ),
            opts=self.child(),
        )
        return function

    def _alarms(
        self,
        name: str,
        prefix: str,
        function: aws.lambda_.Function,
        dead_letters: aws.sqs.Queue,
        topic: NotificationTopic,
    ) -> None:
        """A failing function, and any dead letter, tell the stack's topic (named ``<prefix>-*``: the topic's
        policy admits this stack's alarms)."""
        common: dict[str, Any] = {
            "comparison_operator": "GreaterThanOrEqualToThreshold",
            "threshold": 1,
            "evaluation_periods": 1,
            "period": 300,
            "treat_missing_data": "notBreaching",
            "alarm_actions": [topic.topic_arn],
            "ok_actions": [topic.topic_arn],
        }
        aws.cloudwatch.MetricAlarm(
            f"{name}-errors",
            name=f"{prefix}-errors",
            alarm_description="The commit-status function failed: a GitLab status may be late (Lambda retries it)",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": function.name},
            statistic="Sum",
            **common,
            opts=self.child(),
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-dead-letters",
            name=f"{prefix}-dead-letters",
            alarm_description=(
                "A commit status could not be set after every retry: it is in the dead-letter queue "
                "(docs/gitlab.md, Commit statuses)"
            ),
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": dead_letters.name},
            statistic="Maximum",
            **common,
            opts=self.child(),
        )
