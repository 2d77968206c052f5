"""What AWS would do with what the program sends: its API models (botocore), its IAM policy grammar
(parliament), EventBridge's pattern matching and input transformers (moto), and moto_server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto.events.models import EventPattern
from moto.events.utils import EventMessageType, EventTemplateParser
from parliament import analyze_policy_string

from offline.engine import Registration
from support.stacks import REGION
from support.tools import clean_env, tool

SERVER_START_TIMEOUT = 20


# --- Policies ---------------------------------------------------------------------------------------------


def policy_of(reg: Registration, key: str = "policy") -> dict[str, Any]:
    """A registered policy document (``policy``, ``assumeRolePolicy``...), parsed."""
    doc: dict[str, Any] = json.loads(reg.props[key])
    return doc


def by_sid(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["Statement"] if "Sid" in s}


def statement(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    return by_sid(doc)[sid]


def parliament_findings(document: str) -> list[str]:
    """What parliament, AWS's IAM grammar as a linter, finds in a policy document: '' issues mean valid."""
    return [f"{f.issue}: {f.detail}" for f in analyze_policy_string(document).findings]


# --- Requests ---------------------------------------------------------------------------------------------


def assert_valid_request(service: str, operation: str, params: dict[str, Any]) -> None:
    """Validates a request against the AWS API model: unknown fields, types, and values of enum fields."""
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    bad = list(_bad_enum_values(shape, params, operation))
    assert bad == [], bad


def _bad_enum_values(shape: Any, value: Any, path: str) -> Iterator[str]:
    if shape.type_name == "structure":
        for key, member in value.items():
            yield from _bad_enum_values(shape.members[key], member, f"{path}.{key}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            yield from _bad_enum_values(shape.member, item, f"{path}[{i}]")
    elif getattr(shape, "enum", None) and value not in shape.enum:
        yield f"{path}: {value!r} not in {shape.enum}"


# --- EventBridge ------------------------------------------------------------------------------------------


def assert_valid_rule_and_target(rule: dict[str, Any], target: dict[str, Any]) -> None:
    """A registered rule and target (their props) as the PutRule and PutTargets requests the provider sends,
    validated against EventBridge's API model.
    https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html
    https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutTargets.html"""
    put_rule = {"Name": rule["name"], "EventPattern": rule["eventPattern"], "Description": rule["description"]}
    assert_valid_request("events", "PutRule", put_rule)
    request: dict[str, Any] = {"Id": target["targetId"], "Arn": target["arn"]}
    if "roleArn" in target:
        request["RoleArn"] = target["roleArn"]
    transformer = target.get("inputTransformer")
    if transformer is not None:
        request["InputTransformer"] = {
            "InputPathsMap": transformer["inputPaths"],
            "InputTemplate": transformer["inputTemplate"],
        }
    assert_valid_request("events", "PutTargets", {"Rule": target["rule"], "Targets": [request]})


def event_matches(pattern: str | dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether EventBridge would deliver ``event`` to a rule with ``pattern`` (moto's implementation)."""
    text = pattern if isinstance(pattern, str) else json.dumps(pattern)
    return bool(EventPattern.load(text).matches_event(cast(EventMessageType, event)))


def delivered_message(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What a rule's target delivers for ``event``, through moto's input transformer."""
    transformer = target["inputTransformer"]
    delivered = cast(EventMessageType, {**event, "ingestion-time": 0})
    return EventTemplateParser.parse(transformer["inputTemplate"], transformer["inputPaths"], delivered)


# --- moto_server --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def moto_server(tmp_path: Path, *, enforce_iam_after: int | None) -> Iterator[str]:
    """moto_server on 127.0.0.1 for one test, stopped when it ends; with ``enforce_iam_after`` = n, IAM is
    enforced after n calls."""
    port = free_port()
    env = clean_env(tmp_path)
    if enforce_iam_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(enforce_iam_after)
    log_path = tmp_path / f"moto-{port}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_for(server, port, log_path)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_for(server: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto_server did not start: {log_path.read_text()}")
            time.sleep(0.1)


def client(service: str, endpoint: str, key_id: str = "testing", secret: str = "testing") -> Any:
    """A boto3 client of moto_server at ``endpoint``, in the test region."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
