"""Reports a CodePipeline execution on the GitLab commit it deploys: the stack's commit status (``aws/<stack>``).

AWS Lambda handler of the stack's commit-status function (``components/commit_status.py``), invoked by an
EventBridge rule on this pipeline's "CodePipeline Pipeline Execution State Change" events:

- ``STARTED``/``RESUMED`` -> ``running``; ``SUCCEEDED`` -> ``success`` (target: the site);
- ``FAILED`` -> ``failed``, naming the stage that failed: ``build``, ``approval``, ``deploy``, or ``rollback`` when
  the deployment itself failed (both engines then roll production back);
- ``STOPPED``, ``SUPERSEDED`` (a newer upload took its place), ``CANCELED`` -> ``canceled``.

Pipeline events carry no commit: the function reads it from the execution (GetPipelineExecution: the source
revision's summary is the object's ``codepipeline-artifact-revision-summary`` metadata, which the upload job
sets to the full ``CI_COMMIT_SHA``). An execution without one (an upload made by hand) gets no status.

GitLab: ``POST /projects/:id/statuses/:sha`` (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit)
with the project access token read from Secrets Manager. A 5xx or a network error is retried here, then the
invocation fails: Lambda retries it and finally sends it to the stack's dead-letter queue, which alarms. So no
status is lost without a word. Standard library and boto3 only (both in the Lambda Python runtime).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

STATES: dict[str, str] = {
    "STARTED": "running",
    "RESUMED": "running",
    "SUCCEEDED": "success",
    "FAILED": "failed",
    "STOPPED": "canceled",
    "STOPPING": "canceled",
    "SUPERSEDED": "canceled",
    "CANCELED": "canceled",
}
# The stage (or, in the Deploy stage, the action) that failed -> the word a developer reads.
FAILED_STAGES = {"Source": "source", "Build": "build", "Approve": "approval", "Deploy": "deploy"}
DEPLOY_ACTION = "Deploy"
# A commit SHA: 40 hex digits (SHA-1), or 64 (SHA-256 repositories).
SHA = re.compile(r"\b([0-9a-f]{64}|[0-9a-f]{40})\b")
# GitLab refuses a transition to the state a status already has ("Cannot transition status via :run from
# :running"): the status is already what this event says.
ALREADY = re.compile(r"Cannot transition status", re.IGNORECASE)
DESCRIPTION_MAX = 255
# Temporary refusals, retried like a 5xx: another update of the same status in progress, and rate limiting.
# https://docs.gitlab.com/api/rest/troubleshooting/#status-codes
RETRIED_4XX = (409, 429)
MAX_RETRY_AFTER_SECONDS = 10.0
# An execution already in one of these states gets no "running" (a STARTED event delivered late or again).
FINAL_EXECUTION_STATES = ("Succeeded", "Failed", "Stopped", "Superseded", "Cancelled")


class GitLabError(RuntimeError):
    """GitLab did not take the status: the invocation fails, and is retried or dead-lettered."""


@dataclass(frozen=True)
class Settings:
    api_url: str
    """GitLab's API root, ``https://gitlab.example.com/api/v4``."""
    project: str
    """The application project: numeric id or path (``group/app``)."""
    name: str
    """The status's name, ``aws/<stack>``."""
    site_url: str
    region: str
    token_secret_arn: str
    attempts: int = 3
    backoff_seconds: float = 1.0

    @staticmethod
    def from_environment(env: Mapping[str, str]) -> Settings:
        return Settings(
            api_url=env["GITLAB_API_URL"].rstrip("/"),
            project=env["GITLAB_PROJECT"],
            name=env["STATUS_NAME"],
            site_url=env["SITE_URL"],
            region=env["AWS_REGION"],
            token_secret_arn=env["TOKEN_SECRET_ARN"],
            attempts=int(env.get("GITLAB_ATTEMPTS", "3")),
            backoff_seconds=float(env.get("GITLAB_BACKOFF_SECONDS", "1")),
        )


def commit_sha(execution: Mapping[str, Any]) -> str | None:
    """The commit of a GetPipelineExecution answer: the first SHA in a source revision's summary."""
    for revision in execution.get("pipelineExecution", {}).get("artifactRevisions", []):
        found = SHA.search(str(revision.get("revisionSummary") or ""))
        if found:
            return found.group(1)
    return None


def failed_stage(actions: list[Mapping[str, Any]]) -> str:
    """What failed, from ListActionExecutions: the first failed action's stage, ``rollback`` for the deployment."""
    failed = [a for a in actions if a.get("status") == "Failed"]
    if not failed:
        return "unknown stage"
    # The latest failure: after "Retry failed actions" (same execution) an earlier one is out of date.
    last = max(failed, key=lambda a: _when(a.get("startTime")))
    if last.get("stageName") == "Deploy" and last.get("actionName") == DEPLOY_ACTION:
        return "rollback"
    return FAILED_STAGES.get(str(last.get("stageName")), str(last.get("stageName")))


def _when(value: Any) -> float:
    """An action's start time (boto3 answers a datetime) as seconds, for ordering; unknown is earliest."""
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return float("-inf")


def execution_url(region: str, pipeline: str, execution: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline}/executions/"
        f"{execution}/timeline?region={region}"
    )


def status_body(settings: Settings, detail: Mapping[str, Any], stage: str | None) -> dict[str, str]:
    """The status GitLab gets for an execution event (``stage``: what failed, for a failed execution)."""
    state = STATES[str(detail["state"])]
    pipeline, execution = str(detail["pipeline"]), str(detail["execution-id"])
    if state == "success":
        target, description = settings.site_url, f"Deployed to {settings.site_url}"
    elif state == "running":
        target, description = execution_url(settings.region, pipeline, execution), "Building and deploying"
    elif state == "failed":
        what = {
            "rollback": "the deployment failed and was rolled back: production runs the previous version",
            "approval": "the deployment was not approved",
        }.get(str(stage), f"the {stage} failed; production is unchanged")
        target, description = execution_url(settings.region, pipeline, execution), f"Failed: {what}"
    else:
        reason = "a newer upload took its place" if detail["state"] == "SUPERSEDED" else "the execution was stopped"
        target, description = execution_url(settings.region, pipeline, execution), f"Canceled: {reason}"
    body = {"state": state, "name": settings.name, "description": description[:DESCRIPTION_MAX]}
    # GitLab refuses a target_url over 255 characters; a cut URL would be wrong, so none is sent then.
    if len(target) <= DESCRIPTION_MAX:
        body["target_url"] = target
    return body


def post_status(settings: Settings, token: str, sha: str, body: Mapping[str, str]) -> None:
    """``POST /projects/:id/statuses/:sha``, retried on 5xx and network errors; raises ``GitLabError``."""
    project = urllib.parse.quote(settings.project, safe="")
    url = f"{settings.api_url}/projects/{project}/statuses/{sha}"
    data = urllib.parse.urlencode(body).encode()
    last = ""
    for attempt in range(1, settings.attempts + 1):
        request = urllib.request.Request(url, data=data, method="POST", headers={"PRIVATE-TOKEN": token})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                LOG.info("GitLab took status %s of %s: HTTP %s", body["state"], sha, answer.status)
                return
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")[:500]
            if error.code == 400 and ALREADY.search(text):
                LOG.info("status %s of %s is already %s", body["name"], sha, body["state"])
                return
            if error.code < 500 and error.code not in RETRIED_4XX:
                raise GitLabError(f"GitLab refused the status (HTTP {error.code}): {text}") from None
            last = f"HTTP {error.code}: {text}"
            wait = _retry_after(error.headers.get("Retry-After"))
        except OSError as error:
            last, wait = f"{type(error).__name__}: {error}", None
        LOG.warning("GitLab attempt %d/%d failed: %s", attempt, settings.attempts, last)
        if attempt < settings.attempts:
            time.sleep(wait if wait is not None else settings.backoff_seconds * attempt)
    raise GitLabError(f"GitLab did not take the status after {settings.attempts} attempts: {last}")


def _retry_after(value: str | None) -> float | None:
    """GitLab's ``Retry-After`` (seconds) on a 429, capped so that the function still ends in time."""
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value else None
    except ValueError:
        return None


def report(
    event: Mapping[str, Any],
    settings: Settings,
    codepipeline: Any,
    read_token: Callable[[], str],
) -> dict[str, Any]:
    """The whole mapping: event -> execution's commit -> status -> GitLab. Returns what it did."""
    detail = event["detail"]
    if detail.get("state") not in STATES:
        return {"skipped": f"state {detail.get('state')!r} reports nothing"}
    pipeline, execution = str(detail["pipeline"]), str(detail["execution-id"])
    found = codepipeline.get_pipeline_execution(pipelineName=pipeline, pipelineExecutionId=execution)
    sha = commit_sha(found)
    current = found.get("pipelineExecution", {}).get("status")
    if STATES[str(detail["state"])] == "running" and current in FINAL_EXECUTION_STATES:
        return {"skipped": f"a late {detail['state']} event: the execution is already {current}"}
    if sha is None:
        LOG.warning("execution %s of %s names no commit: no status to set", execution, pipeline)
        return {"skipped": "no commit SHA in the execution's source revision"}
    stage = None
    if detail["state"] == "FAILED":
        actions = codepipeline.list_action_executions(pipelineName=pipeline, filter={"pipelineExecutionId": execution})[
            "actionExecutionDetails"
        ]
        stage = failed_stage(actions)
    body = status_body(settings, detail, stage)
    post_status(settings, read_token(), sha, body)
    return {"sha": sha, **body}


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point."""
    import boto3  # the Lambda runtime's; imported here so the mapping above can be tested without it

    settings = Settings.from_environment(os.environ)
    secrets = boto3.client("secretsmanager")

    def read_token() -> str:
        value: str = secrets.get_secret_value(SecretId=settings.token_secret_arn)["SecretString"]
        return value

    result = report(event, settings, boto3.client("codepipeline"), read_token)
    LOG.info(json.dumps(result))
    return result
