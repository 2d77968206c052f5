"""CommitStatus on mocks and in every committed stack: the feedback from the AWS pipeline to the GitLab commit.

On stand-ins (``support.bundles``, a stand-in pipeline, the stack's GitLab provider): the project access token
(least role, api scope, rotated) and where its value goes (the secret, nowhere else); the Lambda function running
``files/commit_status.py`` from its code archive, its asynchronous retries and dead letters, the EventBridge rule
on this pipeline's execution state changes and its target, the permissions between them (IAM through
parliament, the queue's policy), the alarms to the stack's topic; every request replayed against botocore's
models. In every committed stack: the same wiring to the real pipeline, site and topic; ``commitStatus: false``
removing exactly the feedback; the policy pack with it on and off on both engines; the GitLab job's environment
link and the full commit SHA it uploads; the offline plan's diagram, cost, and the token never in it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import botocore.session
import pulumi
import pytest
import yaml

from components.base import PROJECT, ROOT
from components.commit_status import CommitStatus, CommitStatusArgs
from components.delivery_pipeline import PipelineRef
from components.gitlab_project import gitlab_provider
from components.notifications import NotificationTopic
from offline.engine import ACCOUNT_ID, OFFLINE_PROJECT_TOKEN, ProgramRun, Registration, is_secret, unwrap
from offline.plan import Plan, Sanitizer
from offline.stack_files import load_stack_files
from policy import resource_types as rt
from support import bundles, pack
from support.aws import (
    assert_valid_request,
    assert_valid_rule_and_target,
    event_matches,
    parliament_findings,
    policy_of,
)
from support.fake_aws import FakeAws, assert_valid_response
from support.stacks import (
    REGION,
    REQUIRED,
    STACKS,
    committed_run,
    component,
    descendants,
    run,
    stack_config,
    variant_plan,
    variant_run,
)
from support.tools import schema_errors

PREFIX = bundles.PREFIX
GITLAB = "https://gitlab.example.com"
PIPELINE = PREFIX
OFF = {"commitStatus": "false"}
HANDLER_PATH = ROOT / "files" / "commit_status.py"

# What GitLab needs to set a commit status: POST /projects/:id/statuses/:sha, with at least the Developer role on
# the project (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit; roles and what they may
# do: https://docs.gitlab.com/user/permissions/); a project access token's scope `api` is the one that grants
# write access to the API (`read_api` is read-only): https://docs.gitlab.com/user/project/settings/project_access_tokens/
GITLAB_ROLE = "developer"
GITLAB_SCOPES = ["api"]
# A project access token lives at most 365 days (the same page, "Create a project access token").
TOKEN_MAX_DAYS = 365

# The execution states CodePipeline sends in "CodePipeline Pipeline Execution State Change" events.
# https://docs.aws.amazon.com/codepipeline/latest/userguide/detect-state-changes-cloudwatch-events.html
EXECUTION_STATES = ("CANCELED", "FAILED", "RESUMED", "STARTED", "STOPPED", "STOPPING", "SUCCEEDED", "SUPERSEDED")
REPORTED_STATES = ("STARTED", "SUCCEEDED", "FAILED", "SUPERSEDED")

# Lambda sets AWS_REGION in every function's environment (reserved variables).
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
LAMBDA_SET = {"AWS_REGION": REGION}
# A function's timeout is at most 900 seconds. https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html
LAMBDA_MAX_TIMEOUT = 900
# SQS keeps a message 60 s to 14 days (1,209,600 s).
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
SQS_RETENTION_RANGE = (60, 1_209_600)

EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"

# Every resource type of the feedback path: what `commitStatus: false` must leave out.
FEEDBACK_TYPES = {
    rt.GITLAB_PROJECT_ACCESS_TOKEN,
    rt.SECRETS_MANAGER_SECRET,
    rt.SECRETS_MANAGER_SECRET_VERSION,
    rt.LAMBDA_FUNCTION,
    rt.LAMBDA_PERMISSION,
    rt.LAMBDA_EVENT_INVOKE_CONFIG,
    rt.SQS_QUEUE,
    rt.SQS_QUEUE_POLICY,
}


# --- Building it on stand-ins ----------------------------------------------------------------------------------


def pipeline_ref(name: str = PIPELINE) -> PipelineRef:
    """The delivery pipeline as DeployStage hands it over (a V2 pipeline's ARN has no resource-type part).
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodepipeline.html#awscodepipeline-resources-for-iam-policies"""
    return PipelineRef(
        name=bundles.out(name),
        arn=bundles.out(bundles.arn("codepipeline", name)),
        url=bundles.out(f"https://{REGION}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{name}/view"),
    )


def build_feedback(*, topic: bool = True, values: Mapping[str, str] | None = None) -> ProgramRun:
    """The component from stack-file values, as ``__main__.py`` wires it: the stack's explicit GitLab provider,
    the pipeline, the site URL and the topic from stand-ins (``topic`` False: none). Exports the stand-ins."""
    cfg = stack_config({"appName": "shop", "gitlabUrl": GITLAB, **(values or {})})

    def build() -> None:
        provider = gitlab_provider("gitlab", cfg.gitlab)
        endpoints = bundles.endpoints()
        notification_topic: NotificationTopic | None = bundles.topic() if topic else None
        pipeline = pipeline_ref()
        feedback = CommitStatus(
            "commit-status",
            CommitStatusArgs(cfg.context, "dev", cfg.gitlab, pipeline, endpoints.url, notification_topic),
            pulumi.ResourceOptions(providers={"gitlab": provider}),
        )
        pulumi.export("functionName", feedback.function_name)
        pulumi.export("deadLetterQueueUrl", feedback.dead_letter_queue_url)
        pulumi.export("pipelineArn", pipeline.arn)
        pulumi.export("siteUrl", endpoints.url)
        if notification_topic is not None:
            pulumi.export("topicArn", notification_topic.topic_arn)

    return run(build)


@pytest.fixture(scope="module")
def found() -> ProgramRun:
    return build_feedback()


def feedback_of(found: ProgramRun) -> list[Registration]:
    """Every resource of the run's CommitStatus component."""
    return descendants(found, component(found, "CommitStatus"))


def part(found: ProgramRun, typ: str) -> Registration:
    """The one resource of ``typ`` in the CommitStatus component."""
    [match] = [r for r in feedback_of(found) if r.type == typ]
    return match


def parts(found: ProgramRun, typ: str) -> list[Registration]:
    return sorted((r for r in feedback_of(found) if r.type == typ), key=lambda r: r.name)


def function_role(found: ProgramRun) -> Registration:
    function = part(found, rt.LAMBDA_FUNCTION)
    [role] = [r for r in found.of_type(rt.IAM_ROLE) if r.state["arn"] == function.props["role"]]
    return role


def role_policies(found: ProgramRun, role: Registration) -> list[Registration]:
    return [p for p in found.of_type(rt.IAM_ROLE_POLICY) if p.props["role"] in (role.id, role.props["name"])]


def grants(found: ProgramRun, role: Registration) -> set[tuple[str, str]]:
    """(action, resource) of every Allow in the role's policies."""
    out: set[tuple[str, str]] = set()
    for policy in role_policies(found, role):
        for statement in policy_of(policy)["Statement"]:
            assert statement["Effect"] == "Allow"
            actions, resources = statement["Action"], statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                for resource in [resources] if isinstance(resources, str) else resources:
                    out.add((action, resource))
    return out


def trust_with_its_role(role: Registration) -> str:
    """The trust policy as parliament can read it: it reads every document as an identity policy, so the role's
    own ARN stands in as the Resource."""
    doc = policy_of(role, "assumeRolePolicy")
    return json.dumps({**doc, "Statement": [{**s, "Resource": role.state["arn"]} for s in doc["Statement"]]})


@cache
def handler_file() -> ModuleType:
    """``files/commit_status.py``, loaded as Lambda loads it (its own module, outside the program)."""
    spec = importlib.util.spec_from_file_location("commit_status_under_test", HANDLER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def max_errors(shape: Any, value: Any, path: str) -> Iterator[str]:
    """Numbers above their ``max`` in botocore's model (its ParamValidator checks only ``min``)."""
    if shape.type_name == "structure":
        for key, member in value.items():
            yield from max_errors(shape.members[key], member, f"{path}.{key}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            yield from max_errors(shape.member, item, f"{path}[{i}]")
    elif shape.type_name in ("integer", "long", "float", "double") and value > shape.metadata.get("max", value):
        yield f"{path}: {value} > {shape.metadata['max']}"


def assert_valid(service: str, operation: str, params: dict[str, Any]) -> None:
    """A request valid for botocore's model, maxima included."""
    assert_valid_request(service, operation, params)
    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    assert list(max_errors(shape, params, operation)) == []


def integer(value: float) -> int:
    """Pulumi carries numbers as floats; the provider's schema types these as integers."""
    assert value == int(value), value
    return int(value)


# --- Events as CodePipeline sends them -------------------------------------------------------------------------
# The shapes of the examples in "Monitoring CodePipeline events" (pipeline, stage and action level):
# https://docs.aws.amazon.com/codepipeline/latest/userguide/detect-state-changes-cloudwatch-events.html


def _event(detail_type: str, pipeline: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "01234567-EXAMPLE",
        "detail-type": detail_type,
        "source": "aws.codepipeline",
        "account": ACCOUNT_ID,
        "time": "2020-01-24T22:03:07Z",
        "region": REGION,
        "resources": [bundles.arn("codepipeline", pipeline)],
        "detail": {
            "pipeline": pipeline,
            "execution-id": "12345678-1234-5678-abcd-12345678abcd",
            "start-time": "2023-10-26T13:49:39.208Z",
            **detail,
            "version": 1.0,
            "pipeline-execution-attempt": 1.0,
        },
    }


def execution_event(pipeline: str, state: str) -> dict[str, Any]:
    trigger = {"trigger-type": "StartPipelineExecution", "trigger-detail": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/x"}
    return _event(
        "CodePipeline Pipeline Execution State Change", pipeline, {"execution-trigger": trigger, "state": state}
    )


def stage_event(pipeline: str, state: str, stage: str = "Deploy") -> dict[str, Any]:
    return _event("CodePipeline Stage Execution State Change", pipeline, {"stage": stage, "state": state})


def action_event(pipeline: str, state: str, stage: str = "Deploy", action: str = "Deploy") -> dict[str, Any]:
    kind = {"owner": "AWS", "provider": "CodeDeployToECS", "category": "Deploy", "version": "1"}
    return _event(
        "CodePipeline Action Execution State Change",
        pipeline,
        {"stage": stage, "action": action, "state": state, "region": REGION, "type": kind},
    )


# --- The token -------------------------------------------------------------------------------------------------


def test_the_token_is_a_rotating_developer_token_with_api_scope_on_the_configured_project(found: ProgramRun) -> None:
    token = part(found, rt.GITLAB_PROJECT_ACCESS_TOKEN)
    props = token.props
    assert props["project"] == REQUIRED["gitlabProject"]
    # The least that may set a commit status.
    assert props["accessLevel"] == GITLAB_ROLE
    assert props["scopes"] == GITLAB_SCOPES
    # It expires, and `pulumi up` replaces it before it does (the provider's rotation_configuration).
    # https://www.pulumi.com/registry/packages/gitlab/api-docs/projectaccesstoken/
    rotation = props["rotationConfiguration"]
    expiry, before = integer(rotation["expirationDays"]), integer(rotation["rotateBeforeDays"])
    assert 0 < before < expiry <= TOKEN_MAX_DAYS
    assert "expiresAt" not in props, "rotation sets the expiry date itself"


def test_the_token_is_created_through_the_stacks_explicit_gitlab_provider(found: ProgramRun) -> None:
    [provider] = found.of_type(rt.GITLAB_PROVIDER)
    assert provider.props["baseUrl"].rstrip("/") == f"{GITLAB}/api/v4"
    token = part(found, rt.GITLAB_PROJECT_ACCESS_TOKEN)
    assert token.provider.startswith(f"{provider.urn}::")


def assert_token_only_in_the_secret(found: ProgramRun) -> None:
    """The token's value: a secret output of the token, a secret input of the SecretVersion (its secretString),
    and nowhere else: no other input, no output."""
    token = part(found, rt.GITLAB_PROJECT_ACCESS_TOKEN)
    assert "token" in token.additional_secret_outputs
    value = unwrap(token.state["token"])
    assert value == OFFLINE_PROJECT_TOKEN
    version = part(found, rt.SECRETS_MANAGER_SECRET_VERSION)
    assert is_secret(version.inputs["secretString"]), "a Pulumi secret in the state"
    assert version.props["secretString"] == value
    secret = part(found, rt.SECRETS_MANAGER_SECRET)
    assert version.props["secretId"] in (secret.id, secret.state["arn"])
    holders = [r.name for r in found.resources if value in json.dumps(r.props)]
    assert holders == [version.name]
    assert value not in json.dumps(found.outputs)


def test_the_tokens_value_is_only_in_the_secret_version_as_a_secret(found: ProgramRun) -> None:
    assert_token_only_in_the_secret(found)
    function = part(found, rt.LAMBDA_FUNCTION)
    assert OFFLINE_PROJECT_TOKEN not in json.dumps(function.props["environment"])


# --- The function ----------------------------------------------------------------------------------------------


def archive_bytes(archive: Mapping[str, Any]) -> bytes:
    """The zip Pulumi uploads for the code archive (what CreateFunction's ZipFile carries)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, member in archive.items():
            zipped.writestr(name, (ROOT / member["file"]).read_bytes())
    return buffer.getvalue()


def test_the_function_runs_the_handler_of_files_commit_status_py_from_its_archive(found: ProgramRun) -> None:
    """A Python handler is ``<module>.<function>``: the module's file at the archive's root, the function taking
    (event, context). https://docs.aws.amazon.com/lambda/latest/dg/python-handler.html"""
    props = part(found, rt.LAMBDA_FUNCTION).props
    assert props["runtime"].startswith("python3.")
    module_name, function_name = props["handler"].rsplit(".", 1)
    archive = props["code"]["archive"]
    assert set(archive) == {f"{module_name}.py"}
    member = archive[f"{module_name}.py"]
    assert ROOT / member["file"] == HANDLER_PATH
    assert member["sha256"] == hashlib.sha256(HANDLER_PATH.read_bytes()).hexdigest()
    assert hasattr(handler_file(), function_name), props["handler"]
    handler = getattr(handler_file(), function_name)
    assert callable(handler) and list(inspect.signature(handler).parameters) == ["event", "context"]


def test_the_handler_needs_nothing_but_the_python_runtime() -> None:
    """The archive holds one file: every import must be the standard library's or boto3, which Lambda's Python
    runtimes include. https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html"""
    tree = ast.parse(HANDLER_PATH.read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported, "the handler imports something"
    assert imported - set(sys.stdlib_module_names) == {"boto3"}


def test_the_functions_environment_is_what_the_handler_reads_and_holds_no_token(found: ProgramRun) -> None:
    props = part(found, rt.LAMBDA_FUNCTION).props
    variables = props["environment"]["variables"]
    secret = part(found, rt.SECRETS_MANAGER_SECRET)
    # GitLab's REST API root: https://docs.gitlab.com/api/rest/
    assert variables["GITLAB_API_URL"].rstrip("/") == f"{GITLAB}/api/v4"
    assert variables["GITLAB_PROJECT"] == REQUIRED["gitlabProject"]
    assert variables["STATUS_NAME"] == "aws/dev"
    assert variables["SITE_URL"] == found.outputs["siteUrl"]
    assert variables["TOKEN_SECRET_ARN"] == secret.state["arn"]
    assert set(variables) == {"GITLAB_API_URL", "GITLAB_PROJECT", "STATUS_NAME", "SITE_URL", "TOKEN_SECRET_ARN"}
    # The handler's own reading of its environment, with what Lambda adds.
    settings = handler_file().Settings.from_environment({**variables, **LAMBDA_SET})
    assert (settings.project, settings.name, settings.token_secret_arn) == (
        REQUIRED["gitlabProject"],
        "aws/dev",
        secret.state["arn"],
    )


def test_create_function_is_valid_and_logs_to_the_functions_log_group(found: ProgramRun) -> None:
    """https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html"""
    props = part(found, rt.LAMBDA_FUNCTION).props
    role = function_role(found)
    assert_valid(
        "lambda",
        "CreateFunction",
        {
            "FunctionName": props["name"],
            "Description": props["description"],
            "Runtime": props["runtime"],
            "Role": role.state["arn"],
            "Handler": props["handler"],
            "Code": {"ZipFile": archive_bytes(props["code"]["archive"])},
            "Timeout": integer(props["timeout"]),
            "MemorySize": integer(props["memorySize"]),
            "Environment": {"Variables": props["environment"]["variables"]},
            "LoggingConfig": {
                "LogFormat": props["loggingConfig"]["logFormat"],
                "LogGroup": props["loggingConfig"]["logGroup"],
            },
        },
    )
    assert integer(props["timeout"]) <= LAMBDA_MAX_TIMEOUT
    [log_group] = [g for g in parts(found, rt.LOG_GROUP) if g.props["name"] == props["loggingConfig"]["logGroup"]]
    assert log_group.props.get("retentionInDays"), "its logs expire"


def test_failed_invocations_are_retried_twice_then_sent_to_the_dead_letter_queue(found: ProgramRun) -> None:
    """Lambda retries an asynchronous invocation 0 to 2 times, then sends it to the on-failure destination.
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
    https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionEventInvokeConfig.html"""
    config = part(found, rt.LAMBDA_EVENT_INVOKE_CONFIG).props
    function = part(found, rt.LAMBDA_FUNCTION)
    queue = part(found, rt.SQS_QUEUE)
    assert config["functionName"] == function.props["name"]
    assert integer(config["maximumRetryAttempts"]) == 2
    assert config["destinationConfig"] == {"onFailure": {"destination": queue.state["arn"]}}
    assert_valid(
        "lambda",
        "PutFunctionEventInvokeConfig",
        {
            "FunctionName": config["functionName"],
            "MaximumRetryAttempts": integer(config["maximumRetryAttempts"]),
            "MaximumEventAgeInSeconds": integer(config["maximumEventAgeInSeconds"]),
            "DestinationConfig": {
                "OnFailure": {"Destination": config["destinationConfig"]["onFailure"]["destination"]}
            },
        },
    )


def test_the_dead_letter_queue_is_encrypted_and_keeps_messages_within_sqs_limits(found: ProgramRun) -> None:
    """https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html"""
    props = part(found, rt.SQS_QUEUE).props
    attributes = {
        "SqsManagedSseEnabled": str(props["sqsManagedSseEnabled"]).lower(),
        "MessageRetentionPeriod": str(integer(props["messageRetentionSeconds"])),
    }
    request = {"QueueName": props["name"], "Attributes": attributes}
    assert_valid("sqs", "CreateQueue", request)
    model = botocore.session.get_session().get_service_model("sqs")
    names = model.operation_model("CreateQueue").input_shape.members["Attributes"].key.enum
    assert set(attributes) <= set(names)
    assert attributes["SqsManagedSseEnabled"] == "true"
    low, high = SQS_RETENTION_RANGE
    assert low <= int(attributes["MessageRetentionPeriod"]) <= high
    assert fnmatchcase(props["name"], f"{PREFIX}-*")


# --- The rule, its target and the permissions between them ------------------------------------------------------


def test_the_rule_hears_this_pipelines_executions_and_nothing_else(found: ProgramRun) -> None:
    pattern = part(found, rt.EVENTS_RULE).props["eventPattern"]
    for state in REPORTED_STATES:
        assert event_matches(pattern, execution_event(PIPELINE, state)), state
        # Not another pipeline's executions, nor this pipeline's stages and actions.
        assert not event_matches(pattern, execution_event(f"{PIPELINE}-other", state)), state
        assert not event_matches(pattern, execution_event("shop", state)), state
        assert not event_matches(pattern, stage_event(PIPELINE, state)), state
        assert not event_matches(pattern, action_event(PIPELINE, state)), state
    # Every documented execution state the handler reports is delivered; the handler hears no state it ignores.
    states: dict[str, str] = handler_file().STATES
    for state in EXECUTION_STATES:
        assert event_matches(pattern, execution_event(PIPELINE, state)) == (state in states), state


def test_put_rule_and_put_targets_are_valid_with_retries_and_dead_letters(found: ProgramRun) -> None:
    """EventBridge retries a failed delivery per the target's RetryPolicy, then sends it to its DeadLetterConfig.
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
    https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutTargets.html"""
    rule = part(found, rt.EVENTS_RULE).props
    [target] = [t.props for t in parts(found, rt.EVENTS_TARGET) if t.props["rule"] == rule["name"]]
    function = part(found, rt.LAMBDA_FUNCTION)
    queue = part(found, rt.SQS_QUEUE)
    assert target["arn"] == function.state["arn"]
    assert target["deadLetterConfig"] == {"arn": queue.state["arn"]}
    assert "roleArn" not in target, "Lambda targets are invoked through the function's resource policy"
    assert_valid_rule_and_target(rule, target)
    retry = target["retryPolicy"]
    assert_valid(
        "events",
        "PutTargets",
        {
            "Rule": target["rule"],
            "Targets": [
                {
                    "Id": target["targetId"],
                    "Arn": target["arn"],
                    "RetryPolicy": {
                        "MaximumRetryAttempts": integer(retry["maximumRetryAttempts"]),
                        "MaximumEventAgeInSeconds": integer(retry["maximumEventAgeInSeconds"]),
                    },
                    "DeadLetterConfig": {"Arn": target["deadLetterConfig"]["arn"]},
                }
            ],
        },
    )
    assert integer(retry["maximumRetryAttempts"]) > 0


def test_eventbridge_may_invoke_the_function_for_this_rule_only(found: ProgramRun) -> None:
    """https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-lambda-permissions
    https://docs.aws.amazon.com/lambda/latest/api/API_AddPermission.html"""
    permission = part(found, rt.LAMBDA_PERMISSION).props
    function = part(found, rt.LAMBDA_FUNCTION)
    rule = part(found, rt.EVENTS_RULE)
    assert permission["function"] in (function.props["name"], function.state["arn"])
    assert (permission["action"], permission["principal"]) == ("lambda:InvokeFunction", EVENTS)
    assert permission["sourceArn"] == rule.state["arn"]
    assert_valid(
        "lambda",
        "AddPermission",
        {
            "FunctionName": permission["function"],
            # The provider generates a statement id when the program gives none.
            "StatementId": permission.get("statementId", "generated-by-the-provider"),
            "Action": permission["action"],
            "Principal": permission["principal"],
            "SourceArn": permission["sourceArn"],
        },
    )


def admits(doc: dict[str, Any], service: str, action: str, resource: str, source_arn: str) -> bool:
    """Whether an Allow of the resource policy lets ``service`` call ``action`` on ``resource`` on behalf of
    ``source_arn`` (the condition operators ArnEquals and ArnLike on aws:SourceArn; a statement with another
    condition does not count).
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_ARN"""
    for s in doc["Statement"]:
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        resources = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
        if s["Effect"] != "Allow" or s.get("Principal") != {"Service": service} or action not in actions:
            continue
        if not any(fnmatchcase(resource, r) for r in resources):
            continue
        condition = s.get("Condition", {})
        if set(condition) - {"ArnEquals", "ArnLike"}:
            continue
        equals = condition.get("ArnEquals", {}).get("aws:SourceArn")
        like = condition.get("ArnLike", {}).get("aws:SourceArn")
        if equals is None and like is None:
            return True
        if (equals is None or equals == source_arn) and (like is None or fnmatchcase(source_arn, like)):
            return True
    return False


def test_the_queue_admits_eventbridge_for_this_rule_only(found: ProgramRun) -> None:
    """An EventBridge dead-letter queue needs a queue policy letting events.amazonaws.com send, conditioned on the
    rule's ARN. https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html#eb-dlq-perms"""
    queue = part(found, rt.SQS_QUEUE)
    rule = part(found, rt.EVENTS_RULE)
    policy = part(found, rt.SQS_QUEUE_POLICY)
    # A queue's id is its URL (https://www.pulumi.com/registry/packages/aws/api-docs/sqs/queue/#outputs).
    assert policy.props["queueUrl"] in (queue.id, queue.state["url"])
    doc = policy_of(policy)
    arn = queue.state["arn"]
    assert admits(doc, EVENTS, "sqs:SendMessage", arn, rule.state["arn"])
    assert not admits(doc, EVENTS, "sqs:SendMessage", arn, bundles.arn("events", f"rule/{PREFIX}-other"))
    assert not admits(doc, CLOUDWATCH, "sqs:SendMessage", arn, rule.state["arn"])
    assert not admits(doc, EVENTS, "sqs:ReceiveMessage", arn, rule.state["arn"])
    assert parliament_findings(policy.props["policy"]) == []
    assert_valid(
        "sqs",
        "SetQueueAttributes",
        {"QueueUrl": queue.state["url"], "Attributes": {"Policy": policy.props["policy"]}},
    )


# --- IAM -------------------------------------------------------------------------------------------------------


def expected_grants(found: ProgramRun, pipeline_arn: str) -> set[tuple[str, str]]:
    """What the function needs, on exactly its resources:
    - the execution's commit and failed actions: GetPipelineExecution, ListActionExecutions on the pipeline
      (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodepipeline.html);
    - the token: GetSecretValue on the secret
      (https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access_examples.html);
    - its logs: CreateLogStream and PutLogEvents on its log group's streams, which exists already
      (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html);
    - its dead letters: SendMessage on the queue, for the on-failure destination
      (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)."""
    function = part(found, rt.LAMBDA_FUNCTION).props
    [log_group] = [g for g in parts(found, rt.LOG_GROUP) if g.props["name"] == function["loggingConfig"]["logGroup"]]
    secret = part(found, rt.SECRETS_MANAGER_SECRET).state["arn"]
    queue = part(found, rt.SQS_QUEUE).state["arn"]
    streams = f"{log_group.state['arn']}:*"
    return {
        ("codepipeline:GetPipelineExecution", pipeline_arn),
        ("codepipeline:ListActionExecutions", pipeline_arn),
        ("secretsmanager:GetSecretValue", secret),
        ("logs:CreateLogStream", streams),
        ("logs:PutLogEvents", streams),
        ("sqs:SendMessage", queue),
    }


def assert_least_privilege(found: ProgramRun, pipeline_arn: str) -> None:
    role = function_role(found)
    trust = policy_of(role, "assumeRolePolicy")["Statement"]
    assert [(s["Effect"], s["Principal"], s["Action"]) for s in trust] == [
        ("Allow", {"Service": LAMBDA}, "sts:AssumeRole")
    ]
    assert grants(found, role) == expected_grants(found, pipeline_arn)
    attached = [
        a for a in found.of_type(rt.IAM_ROLE_POLICY_ATTACHMENT) if a.props["role"] in (role.id, role.props["name"])
    ]
    assert attached == [], "no managed policy on top"
    documents = {p.name: str(p.props["policy"]) for p in role_policies(found, role)}
    documents[f"{role.name}.assumeRolePolicy"] = trust_with_its_role(role)
    problems = {name: parliament_findings(text) for name, text in documents.items()}
    assert {name: p for name, p in problems.items() if p} == {}


def test_the_function_reads_this_pipeline_and_this_secret_and_writes_its_logs_and_dead_letters(
    found: ProgramRun,
) -> None:
    assert_least_privilege(found, found.outputs["pipelineArn"])


# --- Alarms ----------------------------------------------------------------------------------------------------


def breaches(alarm: Mapping[str, Any], value: float) -> bool:
    """Whether one datapoint of ``value`` breaches the alarm's threshold.
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html"""
    threshold = float(alarm["threshold"])
    return {
        "GreaterThanOrEqualToThreshold": value >= threshold,
        "GreaterThanThreshold": value > threshold,
        "LessThanThreshold": value < threshold,
        "LessThanOrEqualToThreshold": value <= threshold,
    }[alarm["comparisonOperator"]]


def put_metric_alarm(props: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "AlarmName": props["name"],
        "AlarmDescription": props["alarmDescription"],
        "AlarmActions": props["alarmActions"],
        "OKActions": props.get("okActions", []),
        "Namespace": props["namespace"],
        "MetricName": props["metricName"],
        "Dimensions": [{"Name": k, "Value": v} for k, v in props["dimensions"].items()],
        "Statistic": props["statistic"],
        "Period": integer(props["period"]),
        "EvaluationPeriods": integer(props["evaluationPeriods"]),
        "Threshold": float(props["threshold"]),
        "ComparisonOperator": props["comparisonOperator"],
        "TreatMissingData": props["treatMissingData"],
    }


def assert_alarms_notify(found: ProgramRun, topic_arn: str, prefix: str) -> list[Registration]:
    """One alarm on the function's errors, one on the queue's visible messages, each firing on the first one and
    telling the topic; named ``<prefix>-*``. Metrics and dimensions:
    https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html"""
    function = part(found, rt.LAMBDA_FUNCTION).props
    queue = part(found, rt.SQS_QUEUE).props
    alarms = parts(found, rt.METRIC_ALARM)
    watched = {(a.props["namespace"], a.props["metricName"], json.dumps(a.props["dimensions"])) for a in alarms}
    assert watched == {
        ("AWS/Lambda", "Errors", json.dumps({"FunctionName": function["name"]})),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", json.dumps({"QueueName": queue["name"]})),
    }
    for alarm in alarms:
        props = alarm.props
        assert props["alarmActions"] == [topic_arn], alarm.name
        assert fnmatchcase(props["name"], f"{prefix}-*"), alarm.name
        assert breaches(props, 1) and not breaches(props, 0), alarm.name
        # No invocation, no datapoint: quiet is not a failure.
        assert props["treatMissingData"] == "notBreaching"
        assert_valid("cloudwatch", "PutMetricAlarm", put_metric_alarm(props))
    return alarms


def test_function_errors_and_dead_letters_alarm_to_the_topic(found: ProgramRun) -> None:
    assert_alarms_notify(found, found.outputs["topicArn"], PREFIX)


def test_without_a_topic_there_are_no_alarms_and_the_rest_stays() -> None:
    quiet = build_feedback(topic=False)
    assert quiet.of_type(rt.METRIC_ALARM) == []
    for typ in FEEDBACK_TYPES | {rt.EVENTS_RULE, rt.EVENTS_TARGET}:
        assert parts(quiet, typ), typ


# --- Every committed stack -------------------------------------------------------------------------------------


def stack_setting(stack: str, key: str) -> Any:
    return load_stack_files(stack).config.get(f"{PROJECT}:{key}")


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_reports_its_pipeline_on_the_commit(stack: str) -> None:
    found = committed_run(stack)
    pipeline = found.one(rt.CODEPIPELINE_PIPELINE)
    assert pipeline.props["name"] == found.outputs["pipelineName"]
    # The token through the stack's one GitLab provider; every AWS resource through its AWS provider.
    [gitlab] = found.of_type(rt.GITLAB_PROVIDER)
    [aws] = found.of_type(rt.AWS_PROVIDER)
    for r in feedback_of(found):
        expected = gitlab if r.type.startswith("gitlab:") else aws
        assert r.provider.startswith(f"{expected.urn}::"), r.name
    token = part(found, rt.GITLAB_PROJECT_ACCESS_TOKEN).props
    assert token["project"] == stack_setting(stack, "gitlabProject")
    assert (token["accessLevel"], token["scopes"]) == (GITLAB_ROLE, GITLAB_SCOPES)
    variables = part(found, rt.LAMBDA_FUNCTION).props["environment"]["variables"]
    assert variables["SITE_URL"] == found.outputs["url"]
    assert variables["STATUS_NAME"] == f"aws/{stack}"
    assert variables["GITLAB_PROJECT"] == stack_setting(stack, "gitlabProject")
    # gitlabUrl defaults to GitLab.com (schemas/stack-file.schema.json); the API root: https://docs.gitlab.com/api/rest/
    instance = str(stack_setting(stack, "gitlabUrl") or "https://gitlab.com").rstrip("/")
    assert variables["GITLAB_API_URL"].rstrip("/") == f"{instance}/api/v4"
    pattern = part(found, rt.EVENTS_RULE).props["eventPattern"]
    name = pipeline.props["name"]
    for state in REPORTED_STATES:
        assert event_matches(pattern, execution_event(name, state))
        assert not event_matches(pattern, execution_event(f"{name}x", state))
        assert not event_matches(pattern, stage_event(name, state))
    assert_least_privilege(found, pipeline.state["arn"])


@pytest.mark.parametrize("stack", STACKS)
def test_every_stacks_feedback_alarms_reach_its_topic_whose_policies_admit_them(stack: str) -> None:
    # (dev has no topic of its own: with one, for someone to read it)
    found = variant_run(stack, {"notificationTopic": "true"})
    topic = found.one(rt.SNS_TOPIC)
    prefix = topic.props["name"].removesuffix("-notifications")
    alarms = assert_alarms_notify(found, found.outputs["notificationTopicArn"], prefix)
    # The topic's policy and its key's policy let CloudWatch publish for these alarms (by ARN).
    topic_policy = policy_of(found.one(rt.SNS_TOPIC_POLICY))
    key_policy = policy_of(found.one(rt.KMS_KEY, "notifications-key"))
    for alarm in alarms:
        source = alarm.state["arn"]
        assert admits(topic_policy, CLOUDWATCH, "sns:Publish", topic.state["arn"], source), alarm.name
        assert any(
            s["Effect"] == "Allow"
            and s.get("Principal") == {"Service": CLOUDWATCH}
            and fnmatchcase(source, s.get("Condition", {}).get("ArnLike", {}).get("aws:SourceArn", ""))
            for s in key_policy["Statement"]
        ), alarm.name


@pytest.mark.parametrize("stack", STACKS)
def test_without_a_topic_the_feedback_has_no_alarms_and_its_dead_letters_stay_queued(stack: str) -> None:
    # An alarm that tells no one costs money and changes nothing: a stack without a topic has none for the
    # feedback; an undelivered status still waits in the dead-letter queue (visible in the console) for 14 days.
    found = variant_run(stack, {"notificationTopic": "false", "notificationEmails": "[]"})
    assert found.of_type(rt.SNS_TOPIC) == [] and found.outputs["notificationTopicArn"] is None
    assert parts(found, rt.METRIC_ALARM) == []
    [queue] = parts(found, rt.SQS_QUEUE)
    config = part(found, rt.LAMBDA_EVENT_INVOKE_CONFIG).props
    assert config["destinationConfig"] == {"onFailure": {"destination": queue.state["arn"]}}


@pytest.mark.parametrize("stack", STACKS)
def test_the_token_never_appears_in_plaintext_in_inputs_outputs_or_the_plan(stack: str) -> None:
    found = committed_run(stack)
    assert_token_only_in_the_secret(found)
    plan = variant_plan(stack)
    assert plan.files, "the plan writes files"
    leaking = [name for name, data in plan.files.items() if OFFLINE_PROJECT_TOKEN.encode() in data]
    assert leaking == []
    assert "## Secret leaks" not in plan.files["plan.md"].decode()
    # The plan shows the secret version, its value masked.
    assert part(found, rt.SECRETS_MANAGER_SECRET_VERSION).name in plan.files["plan.md"].decode()


@pytest.mark.parametrize("stack", STACKS)
def test_commit_status_false_removes_exactly_the_feedback(stack: str) -> None:
    on, off = committed_run(stack), variant_run(stack, OFF)
    owner = component(on, "CommitStatus")
    feedback = {owner.urn} | {r.urn for r in descendants(on, owner)}
    alarmed = {rt.METRIC_ALARM} if on.of_type(rt.SNS_TOPIC) else set()
    assert FEEDBACK_TYPES | {rt.EVENTS_RULE, rt.EVENTS_TARGET, rt.IAM_ROLE} | alarmed <= {
        r.type for r in descendants(on, owner)
    }
    assert {r.urn for r in off.resources} == {r.urn for r in on.resources} - feedback
    assert not [r for r in off.resources if r.type in FEEDBACK_TYPES]
    # No rule invokes a function any more (the pipeline-failed rule, which notifies the topic, stays).
    assert not [t for t in off.of_type(rt.EVENTS_TARGET) if t.props["arn"].startswith("arn:aws:lambda:")]
    # The rest of the stack is the same, input for input, and so are the outputs.
    by_urn = {r.urn: r for r in on.resources}
    changed = [r.name for r in off.resources if r.props != by_urn[r.urn].props]
    assert changed == []
    assert off.outputs == on.outputs


@pytest.mark.parametrize("commit_status", ["true", "false"])
@pytest.mark.parametrize("engine", ["codedeploy", "ecs"])
@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_pack_passes_with_and_without_the_feedback_on_both_engines(
    stack: str, engine: str, commit_status: str
) -> None:
    found = variant_run(stack, {"deploymentEngine": engine, "commitStatus": commit_status})
    assert bool(found.of_type(rt.LAMBDA_FUNCTION)) == (commit_status == "true")
    violations = pack.unexpected(stack, pack.violations(found), found)
    assert violations == [], "\n".join(str(v) for v in violations)


# --- GitLab: the job's environment link and the commit it uploads -----------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_jobs_environment_links_the_stacks_url_and_passes_gitlabs_schema(stack: str, tmp_path: Path) -> None:
    """https://docs.gitlab.com/ci/yaml/#environmenturl"""
    found = committed_run(stack)
    text = found.outputs["gitlabCiYml"]
    [job] = yaml.safe_load(text).values()
    assert job["environment"] == {"name": stack, "url": found.outputs["url"]}
    path = tmp_path / f"{stack}.gitlab-ci.yml"
    path.write_text(text)
    assert schema_errors(path) == ""


def test_the_upload_records_the_full_commit_sha_the_handler_reads_back(tmp_path: Path) -> None:
    """The job's put-object sets the object's ``codepipeline-artifact-revision-summary`` metadata, which
    CodePipeline shows as the source revision's ``revisionSummary``
    (https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_ArtifactRevision.html); GitLab's status API
    takes the commit's SHA (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit)."""
    found = committed_run("dev")
    [job] = yaml.safe_load(found.outputs["gitlabCiYml"]).values()
    sha = hashlib.sha1(b"a commit of the application").hexdigest()
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "Dockerfile").write_text("FROM nginx:alpine\n")
    version = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    fake = FakeAws(
        tmp_path, {"s3api put-object": [{"VersionId": version, "ETag": '"6805f2cfc46c0f04559748bb039d69ae"'}]}
    )
    assert_valid_response("s3", "PutObject", {"VersionId": version, "ETag": '"6805f2cfc46c0f04559748bb039d69ae"'})
    env = fake.env(
        **{k: str(v) for k, v in job["variables"].items()},
        CI_COMMIT_SHA=sha,
        CI_COMMIT_SHORT_SHA=sha[:8],
        AWS_ACCESS_KEY="AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    script = tmp_path / "job.sh"
    script.write_text("\n".join(job["script"]))
    done = subprocess.run(["bash", str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    [call] = fake.calls
    assert call.command == "s3api put-object"
    options = dict(zip(call.argv[2::2], call.argv[3::2], strict=False))
    # The CLI's shorthand for a map: key=value.
    key, _, summary = options["--metadata"].partition("=")
    assert (key, summary) == ("codepipeline-artifact-revision-summary", sha)
    request = {"Bucket": options["--bucket"], "Key": options["--key"], "Body": b"zip", "Metadata": {key: summary}}
    assert_valid_request("s3", "PutObject", request)
    # What GetPipelineExecution then answers, and the commit the handler takes from it.
    execution = {
        "pipelineExecution": {
            "pipelineName": found.outputs["pipelineName"],
            "pipelineVersion": 1,
            "pipelineExecutionId": "12345678-1234-5678-abcd-12345678abcd",
            "status": "InProgress",
            "artifactRevisions": [
                {"name": "SourceArtifact", "revisionId": version, "revisionSummary": summary, "created": 0}
            ],
        }
    }
    assert_valid_response("codepipeline", "GetPipelineExecution", execution)
    assert handler_file().commit_sha(execution) == sha


# --- The offline plan ------------------------------------------------------------------------------------------


def mermaid(plan: Plan) -> str:
    [diagram] = re.findall(r"```mermaid\n(.*?)\n```", plan.files["pipeline.md"].decode(), flags=re.DOTALL)
    return str(diagram)


def nodes_and_edges(diagram: str) -> tuple[dict[str, str], set[tuple[str, str, str]], list[str]]:
    """Node id -> label; (from, arrow, to) edges; the node ids inside the ``pipeline`` subgraph, in order."""
    nodes = dict(re.findall(r'^\s*(\w+)\["([^"]*)"\]$', diagram, flags=re.MULTILINE))
    edges = {
        (a, arrow, b)
        for a, arrow, b in re.findall(r'^\s*(\w+) (-->|-\.->)(?:\|"[^"]*"\|)? (\w+)$', diagram, flags=re.MULTILINE)
    }
    inside = re.search(r"^\s*subgraph pipeline\[.*?\n(.*?)^\s*end$", diagram, flags=re.MULTILINE | re.DOTALL)
    assert inside, diagram
    stages = re.findall(r'^\s*(\w+)\["', inside.group(1), flags=re.MULTILINE)
    return nodes, edges, stages


@pytest.mark.parametrize("stack", STACKS)
def test_the_diagram_draws_the_feedback_from_the_pipeline_to_the_commit(stack: str) -> None:
    found = committed_run(stack)
    show = Sanitizer(found).text
    function = part(found, rt.LAMBDA_FUNCTION).props
    nodes, edges, stages = nodes_and_edges(mermaid(variant_plan(stack)))
    [feedback] = [n for n, label in nodes.items() if f"Lambda {show(function['name'])}" in label]
    assert f"GitLab commit status {function['environment']['variables']['STATUS_NAME']}" in nodes[feedback]
    [job] = [n for n, label in nodes.items() if label.startswith("GitLab job ")]
    assert stages and "Stage Deploy" in nodes[stages[-1]]
    assert (stages[-1], "-.->", feedback) in edges
    assert (feedback, "-.->", job) in edges
    without, _, _ = nodes_and_edges(mermaid(variant_plan(stack, OFF)))
    assert not [label for label in without.values() if "commit status" in label]


@pytest.mark.parametrize("stack", STACKS)
def test_the_cost_counts_the_tokens_secret_and_the_two_alarms(stack: str) -> None:
    found = committed_run(stack)
    cost = variant_plan(stack).cost
    lines = {line.item: line for line in cost.fixed}
    secret = part(found, rt.SECRETS_MANAGER_SECRET)
    assert secret.name in lines["Secrets Manager secrets"].basis
    alarms = parts(found, rt.METRIC_ALARM)
    assert len(alarms) == (2 if found.of_type(rt.SNS_TOPIC) else 0)  # they tell the topic, if there is one
    for alarm in alarms:
        assert f"{alarm.name} (1 metric)" in lines["CloudWatch alarm metrics"].basis
    cost_md = variant_plan(stack).files["cost.md"].decode()
    assert "Secrets Manager secrets" in cost_md
    off = {line.item: line for line in variant_plan(stack, OFF).cost.fixed}
    assert "Secrets Manager secrets" not in off or secret.name not in off["Secrets Manager secrets"].basis
    metrics = off.get("CloudWatch alarm metrics")
    assert (metrics.quantity if metrics else 0) == lines["CloudWatch alarm metrics"].quantity - len(alarms)
    assert cost.total > variant_plan(stack, OFF).cost.total
