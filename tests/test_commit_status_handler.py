"""The commit-status function (``files/commit_status.py``) against a fake GitLab: a real HTTP server process on
127.0.0.1 (``support.fake_gitlab``) that records every request and answers as the test scripts it.

The events are CodePipeline's "Pipeline Execution State Change" events as AWS documents them ("Pipeline-level
events", https://docs.aws.amazon.com/codepipeline/latest/userguide/detect-state-changes-cloudwatch-events.html).
CodePipeline is a real boto3 client under botocore's Stubber, so every request and canned answer is checked
against the API model (GetPipelineExecution, ListActionExecutions:
https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_GetPipelineExecution.html,
https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_ListActionExecutions.html).
GitLab's side: "Set the pipeline status of a commit"
(https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit).

The handler is a file of the Lambda function, not a package: it is loaded from its path, as Lambda loads it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from components.pipeline_actions import (
    APPROVE_ACTION,
    APPROVE_STAGE,
    BUILD_ACTION,
    DEPLOY_ACTION,
    MARK_DEPLOYING_ACTION,
    MARK_LIVE_ACTION,
    SOURCE_ACTION,
)
from components.templates import FILES
from offline.engine import ACCOUNT_ID
from support.aws import assert_valid_request
from support.fake_gitlab import (
    FIELD_MAX,
    FORM,
    FakeGitLab,
    Recorded,
    Reply,
    cannot_transition,
    created,
    dropped,
    fake_gitlab,
    not_found,
    unauthorized,
    unavailable,
)
from support.stacks import REGION

HANDLER_FILE = FILES / "commit_status.py"


def load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("commit_status_under_test", HANDLER_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up while they are defined.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


HANDLER = load_handler()

PIPELINE = "shop-dev"
"""The pipeline's name is the stack's name prefix (``components/delivery_pipeline.py``)."""
EXECUTION_ID = "12345678-1234-5678-abcd-12345678abcd"
PROJECT = "group/app"
# :id is "the ID or URL-encoded path of the project": https://docs.gitlab.com/api/rest/#namespaced-paths
ENCODED_PROJECT = "group%2Fapp"
STATUS_NAME = "aws/dev"
SITE_URL = "https://shop-dev.example.com"
SHA1 = "9f2c4e1a7b3d5f60718293a4b5c6d7e8f9012345"
SHA256 = "3b7e1f0c9a8d2e4f6a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f"
TOKEN = "glpat-Zq81fXt2uVw93kRy6bNm"
SECRET_NAME = "shop-dev-commit-status/gitlab-token"
SOURCE_VERSION = "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
T0 = datetime(2024, 5, 2, 10, 0, tzinfo=UTC)
# The page of one execution in the CodePipeline console (the one the stack's failure e-mail links,
# components/failure_rules.py).
EXECUTION_PAGE = (
    f"https://{REGION}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{PIPELINE}/executions/"
    f"{EXECUTION_ID}/timeline?region={REGION}"
)
# Every state of "CodePipeline Pipeline Execution State Change" in AWS's table ("Detail types"), and the GitLab
# state each one is reported as.
DOCUMENTED_STATES = {
    "STARTED": "running",
    "RESUMED": "running",
    "SUCCEEDED": "success",
    "FAILED": "failed",
    "STOPPING": "canceled",
    "STOPPED": "canceled",
    "SUPERSEDED": "canceled",
    "CANCELED": "canceled",
}


# --- CodePipeline, as AWS documents it --------------------------------------------------------------------


def pipeline_event(state: str) -> dict[str, Any]:
    """A pipeline-level event as EventBridge delivers it (the guide's "Emitted event" examples)."""
    detail: dict[str, Any] = {
        "pipeline": PIPELINE,
        "execution-id": EXECUTION_ID,
        "start-time": "2024-05-02T10:00:00.208Z",
        "state": state,
        "version": 3.0,
        "pipeline-execution-attempt": 1.0,
    }
    if state == "STARTED":
        detail["execution-trigger"] = {
            "trigger-type": "CloudWatchEvent",
            "trigger-detail": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{PIPELINE}-source-upload",
        }
    if state == "STOPPING":
        detail["stop-execution-comments"] = "Stopping the pipeline for an update"
    return {
        "version": "0",
        "id": "01234567-0123-0123-0123-0123456789ab",
        "detail-type": "CodePipeline Pipeline Execution State Change",
        "source": "aws.codepipeline",
        "account": ACCOUNT_ID,
        "time": "2024-05-02T10:03:07Z",
        "region": REGION,
        "resources": [f"arn:aws:codepipeline:{REGION}:{ACCOUNT_ID}:{PIPELINE}"],
        "detail": detail,
    }


def execution(summary: str | None, status: str = "InProgress") -> dict[str, Any]:
    """GetPipelineExecution's ``pipelineExecution``: the S3 source's revision is the object's version, its summary
    the object's ``codepipeline-artifact-revision-summary`` metadata (the upload job's CI_COMMIT_SHA)."""
    revision: dict[str, Any] = {"name": "SourceArtifact", "revisionId": SOURCE_VERSION, "created": T0}
    if summary is not None:
        revision["revisionSummary"] = summary
    return {
        "pipelineName": PIPELINE,
        "pipelineVersion": 3,
        "pipelineExecutionId": EXECUTION_ID,
        "status": status,
        "artifactRevisions": [revision],
        "trigger": {
            "triggerType": "CloudWatchEvent",
            "triggerDetail": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{PIPELINE}-source-upload",
        },
        "executionMode": "SUPERSEDED",
        "executionType": "STANDARD",
    }


# The pipeline's actions (components/delivery_pipeline.py): stage, category, provider.
ACTIONS = {
    SOURCE_ACTION: ("Source", "Source", "S3"),
    BUILD_ACTION: ("Build", "Build", "CodeBuild"),
    APPROVE_ACTION: (APPROVE_STAGE, "Approval", "Manual"),
    MARK_DEPLOYING_ACTION: ("Deploy", "Build", "CodeBuild"),
    DEPLOY_ACTION: ("Deploy", "Deploy", "CodeDeployToECS"),
    MARK_LIVE_ACTION: ("Deploy", "Build", "CodeBuild"),
}


def action_executions(*steps: tuple[str, str]) -> list[dict[str, Any]]:
    """ListActionExecutions' ``actionExecutionDetails`` for ``(action, status)`` steps run one after the other,
    answered newest first (the API promises no order)."""
    details = []
    for i, (action, status) in enumerate(steps):
        stage, category, provider = ACTIONS[action]
        started = T0 + timedelta(minutes=i)
        result: dict[str, Any] = {"externalExecutionId": f"run-{i}", "externalExecutionSummary": status}
        if status == "Failed":
            result["errorDetails"] = {"code": "JobFailed", "message": f"{action} failed"}
        details.append(
            {
                "pipelineExecutionId": EXECUTION_ID,
                "actionExecutionId": f"{i:08d}-aaaa-4bbb-8ccc-dddddddddddd",
                "pipelineVersion": 3,
                "stageName": stage,
                "actionName": action,
                "startTime": started,
                "lastUpdateTime": started + timedelta(seconds=50),
                "status": status,
                "input": {
                    "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"},
                    "configuration": {},
                    "resolvedConfiguration": {},
                    "region": REGION,
                    "inputArtifacts": [],
                },
                "output": {"outputArtifacts": [], "executionResult": result},
            }
        )
    return details[::-1]


@contextmanager
def codepipeline(found: dict[str, Any] | None, actions: list[dict[str, Any]] | None = None) -> Iterator[Any]:
    """A real boto3 CodePipeline client answering GetPipelineExecution with ``found`` (and ListActionExecutions
    with ``actions``), nothing else; every answer queued must have been asked for when the block ends."""
    client = boto3.client(
        "codepipeline", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stub:
        if found is not None:
            asked = {"pipelineName": PIPELINE, "pipelineExecutionId": EXECUTION_ID}
            assert_valid_request("codepipeline", "GetPipelineExecution", asked)
            stub.add_response("get_pipeline_execution", {"pipelineExecution": found}, asked)
        if actions is not None:
            listed = {"pipelineName": PIPELINE, "filter": {"pipelineExecutionId": EXECUTION_ID}}
            assert_valid_request("codepipeline", "ListActionExecutions", listed)
            stub.add_response("list_action_executions", {"actionExecutionDetails": actions}, listed)
        yield client
        stub.assert_no_pending_responses()


# --- The function's settings and the fake GitLab ----------------------------------------------------------


def environment(api_url: str, **more: str) -> dict[str, str]:
    """The function's environment (components/commit_status.py), retries without waiting."""
    return {
        "GITLAB_API_URL": api_url,
        "GITLAB_PROJECT": PROJECT,
        "STATUS_NAME": STATUS_NAME,
        "SITE_URL": SITE_URL,
        "AWS_REGION": REGION,
        "TOKEN_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{SECRET_NAME}-AbCdEf",
        "GITLAB_ATTEMPTS": "3",
        "GITLAB_BACKOFF_SECONDS": "0",
        **more,
    }


def settings(api_url: str, **more: str) -> Any:
    return HANDLER.Settings.from_environment(environment(api_url, **more))


def report(
    gitlab: FakeGitLab | str,
    state: str,
    found: dict[str, Any] | None,
    actions: list[dict[str, Any]] | None = None,
    **more: str,
) -> dict[str, Any]:
    """The handler's whole mapping for one event, CodePipeline stubbed, GitLab at ``gitlab``."""
    api_url = gitlab.api_url if isinstance(gitlab, FakeGitLab) else gitlab
    with codepipeline(found, actions) as client:
        result: dict[str, Any] = HANDLER.report(pipeline_event(state), settings(api_url, **more), client, lambda: TOKEN)
    return result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitLab]:
    with fake_gitlab(tmp_path_factory.mktemp("gitlab")) as fake:
        yield fake


@pytest.fixture
def gitlab(server: FakeGitLab) -> FakeGitLab:
    """The module's fake GitLab, fresh for each test: it takes every status, and has seen no request."""
    server.script(created())
    (server.state / "requests.jsonl").unlink(missing_ok=True)
    return server


def the_request(gitlab: FakeGitLab) -> Recorded:
    (request,) = gitlab.requests
    return request


def assert_status_request(request: Recorded, sha: str, state: str, target_url: str) -> str:
    """One POST of the status to the commit, with the token, as a form GitLab took; returns its description."""
    assert request.method == "POST"
    assert request.path == f"/api/v4/projects/{ENCODED_PROJECT}/statuses/{sha}"
    assert request.header("PRIVATE-TOKEN") == TOKEN
    form = request.form
    assert sorted(form) == ["description", "name", "state", "target_url"]
    assert all(len(values) == 1 for values in form.values()), form
    assert (form["state"], form["name"], form["target_url"]) == ([state], [STATUS_NAME], [target_url])
    assert request.answered == 201, "the fake GitLab took it as GitLab would"
    (description,) = form["description"]
    assert 0 < len(description) <= FIELD_MAX
    return description


# --- Each state -------------------------------------------------------------------------------------------


def test_the_handler_reports_every_pipeline_state_aws_documents() -> None:
    # The rule's pattern lists the handler's states (components/commit_status.py): each documented state
    # reaches the function, and maps to a GitLab state the API takes.
    assert HANDLER.STATES == DOCUMENTED_STATES


@pytest.mark.e2e
@pytest.mark.parametrize(("state", "gitlab_state"), sorted(DOCUMENTED_STATES.items()))
def test_each_state_sets_the_stack_status_on_the_full_commit(gitlab: FakeGitLab, state: str, gitlab_state: str) -> None:
    actions = action_executions((SOURCE_ACTION, "Succeeded"), (BUILD_ACTION, "Failed")) if state == "FAILED" else None
    result = report(gitlab, state, execution(SHA1), actions)
    # The site for a deployment that completed; the execution's page for anything else.
    target = SITE_URL if gitlab_state == "success" else EXECUTION_PAGE
    assert_status_request(the_request(gitlab), SHA1, gitlab_state, target)
    assert (result["sha"], result["state"], result["target_url"]) == (SHA1, gitlab_state, target)


@pytest.mark.e2e
def test_a_sha256_repositorys_commit_is_used_whole(gitlab: FakeGitLab) -> None:
    # SHA-256 repositories name commits by 64 hex digits: https://docs.gitlab.com/user/project/repository/sha256/
    report(gitlab, "SUCCEEDED", execution(SHA256, status="Succeeded"))
    assert_status_request(the_request(gitlab), SHA256, "success", SITE_URL)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("steps", "named", "not_named"),
    [
        pytest.param([(SOURCE_ACTION, "Succeeded"), (BUILD_ACTION, "Failed")], "build", "deploy", id="build"),
        pytest.param(
            [(SOURCE_ACTION, "Succeeded"), (BUILD_ACTION, "Succeeded"), (APPROVE_ACTION, "Failed")],
            "approv",
            "roll",
            id="approval-rejected",
        ),
        # The image expired while the execution waited: refused before the deployment began.
        pytest.param(
            [(SOURCE_ACTION, "Succeeded"), (BUILD_ACTION, "Succeeded"), (MARK_DEPLOYING_ACTION, "Failed")],
            "deploy",
            "roll",
            id="deploy",
        ),
        pytest.param(
            [
                (SOURCE_ACTION, "Succeeded"),
                (BUILD_ACTION, "Succeeded"),
                (MARK_DEPLOYING_ACTION, "Succeeded"),
                (DEPLOY_ACTION, "Failed"),
            ],
            "roll",
            "build",
            id="rollback",
        ),
        # A failed build retried (RetryStageExecution: the same execution RESUMES), then the deployment failed:
        # what failed the execution is the deployment, not the build that was retried.
        pytest.param(
            [
                (SOURCE_ACTION, "Succeeded"),
                (BUILD_ACTION, "Failed"),
                (BUILD_ACTION, "Succeeded"),
                (MARK_DEPLOYING_ACTION, "Succeeded"),
                (DEPLOY_ACTION, "Failed"),
            ],
            "roll",
            "build",
            id="rollback-after-a-retried-build",
        ),
    ],
)
def test_a_failed_execution_names_the_stage_that_failed(
    gitlab: FakeGitLab, steps: list[tuple[str, str]], named: str, not_named: str
) -> None:
    report(gitlab, "FAILED", execution(SHA1, status="Failed"), action_executions(*steps))
    description = assert_status_request(the_request(gitlab), SHA1, "failed", EXECUTION_PAGE).lower()
    assert named in description and not_named not in description, description


# --- No commit, nothing to report -------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    "summary",
    [
        pytest.param(None, id="no-summary"),
        pytest.param("Uploaded by hand", id="no-sha"),
        pytest.param(SHA1[:8], id="short-sha"),
        pytest.param(SHA1 + "0", id="41-hex-digits"),
    ],
)
def test_an_execution_without_a_full_commit_sha_gets_no_status(gitlab: FakeGitLab, summary: str | None) -> None:
    # FAILED: the failed stage is not even looked up (the stub answers no ListActionExecutions).
    result = report(gitlab, "FAILED", execution(summary, status="Failed"))
    assert "skipped" in result and "sha" not in result
    assert gitlab.requests == []


@pytest.mark.e2e
def test_a_state_the_handler_does_not_report_calls_nobody(gitlab: FakeGitLab) -> None:
    # ABANDONED is an action's state, never a pipeline's: no CodePipeline call (the stub answers none), no status.
    result = report(gitlab, "ABANDONED", None)
    assert "skipped" in result
    assert gitlab.requests == []


# --- GitLab's answers -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_gitlab_unavailable_then_back_is_retried_until_it_takes_the_status(gitlab: FakeGitLab) -> None:
    gitlab.script(unavailable(503), unavailable(502), created())
    result = report(gitlab, "STARTED", execution(SHA1))
    requests = gitlab.requests
    assert [r.answered for r in requests] == [503, 502, 201]
    assert len({(r.path, r.body, r.header("PRIVATE-TOKEN")) for r in requests}) == 1, "the same request each time"
    assert result["state"] == "running"


@pytest.mark.e2e
@pytest.mark.parametrize("attempts", [1, 4])
def test_gitlab_down_every_time_fails_after_the_configured_attempts(gitlab: FakeGitLab, attempts: int) -> None:
    gitlab.script(unavailable(503))
    with pytest.raises(HANDLER.GitLabError):
        report(gitlab, "SUCCEEDED", execution(SHA1, status="Succeeded"), GITLAB_ATTEMPTS=str(attempts))
    assert [r.answered for r in gitlab.requests] == [503] * attempts


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("reply", "code"),
    [
        pytest.param(unauthorized(), "401", id="token-refused"),
        pytest.param(not_found("Project"), "404", id="project-not-found"),
        pytest.param(not_found("Commit"), "404", id="commit-not-found"),
    ],
)
def test_gitlab_refusing_the_request_fails_at_once(gitlab: FakeGitLab, reply: Reply, code: str) -> None:
    # Asking again cannot help: the invocation fails, and its retries and dead letter keep the event.
    gitlab.script(reply)
    with pytest.raises(HANDLER.GitLabError) as failed:
        report(gitlab, "SUCCEEDED", execution(SHA1, status="Succeeded"))
    assert len(gitlab.requests) == 1
    assert code in str(failed.value)


@pytest.mark.e2e
def test_a_status_that_is_already_set_is_done(gitlab: FakeGitLab) -> None:
    # A retried invocation posts `running` again: GitLab's state machine refuses running -> running.
    gitlab.script(cannot_transition("run", "running"))
    result = report(gitlab, "STARTED", execution(SHA1))
    assert [r.answered for r in gitlab.requests] == [400]
    assert result["state"] == "running"


@pytest.mark.e2e
def test_another_bad_request_is_an_error_not_a_status_already_set(gitlab: FakeGitLab) -> None:
    gitlab.script(Reply(400, {"message": {"target_url": ["is blocked: Requests to localhost are not allowed"]}}))
    with pytest.raises(HANDLER.GitLabError):
        report(gitlab, "STARTED", execution(SHA1))
    assert len(gitlab.requests) == 1


@pytest.mark.e2e
def test_a_connection_closed_without_an_answer_is_retried(gitlab: FakeGitLab) -> None:
    gitlab.script(dropped(), created())
    report(gitlab, "STARTED", execution(SHA1))
    assert [r.answered for r in gitlab.requests] == [0, 201]

    gitlab.script(dropped())
    with pytest.raises(HANDLER.GitLabError):
        report(gitlab, "STARTED", execution(SHA1))
    assert [r.answered for r in gitlab.requests] == [0, 201, 0, 0, 0]


@pytest.mark.e2e
def test_gitlab_unreachable_is_retried_then_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A port bound and never listening: every connection is refused, and nobody else can take the port.
    tried: list[str] = []
    urlopen = urllib.request.urlopen

    def counting(request: urllib.request.Request, *args: Any, **kwargs: Any) -> Any:
        tried.append(request.full_url)
        return urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        api_url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/v4"
        started = time.monotonic()
        with pytest.raises(HANDLER.GitLabError):
            report(api_url, "STARTED", execution(SHA1))
    assert time.monotonic() - started < 10
    assert tried == [f"{api_url}/projects/{ENCODED_PROJECT}/statuses/{SHA1}"] * 3


@pytest.mark.e2e
def test_attempts_are_spaced_and_none_is_waited_for_after_the_last(
    gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(HANDLER.time, "sleep", waits.append)
    gitlab.script(unavailable(503))
    with pytest.raises(HANDLER.GitLabError):
        report(gitlab, "STARTED", execution(SHA1), GITLAB_BACKOFF_SECONDS="2")
    assert len(gitlab.requests) == 3
    assert len(waits) == 2 and 0 < waits[0] <= waits[1], waits


# --- The request's form -----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_body_is_a_form_gitlab_takes_and_the_description_fits(gitlab: FakeGitLab) -> None:
    # A site URL of 250 characters (a long custom domain): the target fits GitLab's 255, a description that
    # quotes it must be cut to fit too, and reserved characters of a URL survive the form encoding.
    long_site = "https://" + "deep." * 44 + "example.com/?a=1&b=%20"
    assert len(long_site) == 250
    report(gitlab, "SUCCEEDED", execution(SHA1, status="Succeeded"), SITE_URL=long_site)
    request = the_request(gitlab)
    assert (request.header("Content-Type") or "").split(";")[0] == FORM
    assert request.form["target_url"] == [long_site]
    assert len(request.form["description"][0]) <= FIELD_MAX
    assert request.answered == 201


def post(url: str, data: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            status: int = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status


@pytest.mark.e2e
def test_the_fake_gitlab_takes_only_what_gitlab_takes(gitlab: FakeGitLab) -> None:
    # Its 201 means something: what GitLab refuses, the fake refuses even when the script says 201.
    status_url = f"{gitlab.api_url}/projects/{ENCODED_PROJECT}/statuses/{SHA1}"
    token = {"PRIVATE-TOKEN": TOKEN}
    good = {"state": "running", "name": STATUS_NAME, "target_url": EXECUTION_PAGE, "description": "Deploying"}

    def form(**fields: str) -> bytes:
        return urllib.parse.urlencode({**good, **fields}).encode()

    assert post(status_url, form(), token) == 201
    assert post(status_url, json.dumps(good).encode(), {**token, "Content-Type": "application/json"}) == 201
    assert post(status_url, form(), {}) == 401
    assert post(status_url, form(state="done"), token) == 400
    assert post(status_url, form(description="x" * (FIELD_MAX + 1)), token) == 400
    assert post(status_url, form(target_url="https://example.com/" + "x" * FIELD_MAX), token) == 400
    unencoded = f"{gitlab.api_url}/projects/{PROJECT}/statuses/{SHA1}"
    assert post(unencoded, form(), token) == 404
    assert [r.answered for r in gitlab.requests] == [201, 201, 401, 400, 400, 400, 404]


# --- The Lambda entry point -------------------------------------------------------------------------------


@contextmanager
def lambda_environment(monkeypatch: pytest.MonkeyPatch, api_url: str, client: Any) -> Iterator[None]:
    """What Lambda gives the function: its environment, Secrets Manager (moto) holding the token, and CodePipeline
    (``client``, stubbed; boto3.client answers it for codepipeline only)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(Name=SECRET_NAME, SecretString=TOKEN)
        for name, value in environment(api_url, TOKEN_SECRET_ARN=secret["ARN"]).items():
            monkeypatch.setenv(name, value)
        real_client: Callable[..., Any] = boto3.client

        def client_of(service: str, *args: Any, **kwargs: Any) -> Any:
            return client if service == "codepipeline" else real_client(service, *args, **kwargs)

        monkeypatch.setattr(boto3, "client", client_of)
        yield


@pytest.mark.e2e
def test_the_handler_reads_the_token_from_secrets_manager_and_never_logs_it(
    gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the level the function logs at in Lambda
    steps = [(SOURCE_ACTION, "Succeeded"), (BUILD_ACTION, "Succeeded"), (MARK_DEPLOYING_ACTION, "Succeeded")]
    actions = action_executions(*steps, (DEPLOY_ACTION, "Failed"))
    with (
        codepipeline(execution(SHA1, status="Failed"), actions) as client,
        lambda_environment(monkeypatch, gitlab.api_url, client),
    ):
        result = HANDLER.handler(pipeline_event("FAILED"), None)
    request = the_request(gitlab)
    assert_status_request(request, SHA1, "failed", EXECUTION_PAGE)
    assert TOKEN not in request.path and TOKEN not in request.body
    assert result["sha"] == SHA1
    assert TOKEN not in json.dumps(result)
    assert caplog.records, "the function logs what it did"
    assert TOKEN not in caplog.text


@pytest.mark.e2e
def test_a_refused_token_fails_the_invocation_without_showing_it(
    gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gitlab.script(unauthorized())
    with (
        codepipeline(execution(SHA1)) as client,
        lambda_environment(monkeypatch, gitlab.api_url, client),
        pytest.raises(HANDLER.GitLabError) as failed,
    ):
        HANDLER.handler(pipeline_event("STARTED"), None)
    assert the_request(gitlab).header("PRIVATE-TOKEN") == TOKEN
    # Lambda logs the error of a failed invocation: it must not carry the token either.
    assert TOKEN not in str(failed.value)
    assert TOKEN not in caplog.text


# --- What the Lambda runtime has ----------------------------------------------------------------------------


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module a source file imports, anywhere in it (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, "a relative import: the function is a single file"
            names.add(node.module.split(".")[0])
    return names


def test_the_handler_imports_only_the_standard_library_and_boto3() -> None:
    # The Lambda Python runtime has the standard library and the AWS SDK (boto3), nothing else; the function is
    # deployed as this one file: https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html
    imported = imported_modules(HANDLER_FILE.read_text())
    assert "boto3" in imported and "urllib" in imported
    assert imported - set(sys.stdlib_module_names) == {"boto3"}
    assert imported_modules("import yaml\nfrom requests import get") - set(sys.stdlib_module_names) == {
        "yaml",
        "requests",
    }
