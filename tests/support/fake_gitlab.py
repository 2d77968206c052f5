"""A fake GitLab for the commit-status function's tests: a real HTTP server process on 127.0.0.1.

It serves GitLab's "Set the pipeline status of a commit", ``POST /api/v4/projects/:id/statuses/:sha``
(https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit):

- every request is recorded (method, raw path, headers, body) in ``STATE/requests.jsonl`` before it is answered;
- each is answered with the next reply of the test's script (``STATE/script.json``; the last reply repeats):
  ``created()``, ``unavailable()``, ``unauthorized()``, ``not_found()``, ``cannot_transition()``, ``dropped()``...;
- a scripted success is given only to a request GitLab would take, checked as GitLab checks it: a token
  (``PRIVATE-TOKEN``, https://docs.gitlab.com/api/rest/authentication/), a form or JSON body, ``state`` one of
  GitLab's, ``target_url`` and ``description`` at most 255 characters (the API's parameters, ``lib/api/
  commit_statuses.rb``); otherwise it gets GitLab's own 401 or 400 answer instead;
- any other route gets GitLab's 404. ``:id`` is a numeric id or a URL-encoded path (``group%2Fapp``): a path
  sent with a bare ``/`` matches no route, as on GitLab.

A test starts one with ``fake_gitlab(tmp_path, *replies)``, which runs ``python -m support.fake_gitlab --port 0
--state DIR``, waits (bounded) until it listens and always stops it. The server uses the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 10
STOP_TIMEOUT_SECONDS = 10
API = "/api/v4"
# GitLab's route: `:id` has no bare slash (API::NAMESPACE_OR_PROJECT_REQUIREMENTS), `:sha` is the commit.
STATUS_ROUTE = re.compile(r"^/api/v4/projects/(?P<project>[^/?#]+)/statuses/(?P<sha>[^/?#]+)$")
# The states the API takes, and the longest target_url and description it keeps.
# https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit
STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
FIELD_MAX = 255
FORM = "application/x-www-form-urlencoded"
DROP = 0
"""A reply's status that closes the connection without an answer (a network failure)."""


# --- Replies ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    """The HTTP status; ``DROP`` closes the connection without answering."""
    body: Any = None
    """JSON (a dict or list), or text; ``None`` for a 2xx: the commit status GitLab returns, made from the request."""

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body}


def created() -> Reply:
    """GitLab took the status: 201 and the status it now has."""
    return Reply(201)


def unavailable(status: int = 503) -> Reply:
    """A GitLab that is down or being upgraded behind its proxy."""
    return Reply(status, "<html><body><h1>502 Bad Gateway</h1></body></html>" if status == 502 else "")


def unauthorized() -> Reply:
    """A token that is wrong, expired or revoked."""
    return Reply(401, {"message": "401 Unauthorized"})


def not_found(what: str = "Project") -> Reply:
    """A project the token cannot see, or a commit the project does not have."""
    return Reply(404, {"message": f"404 {what} Not Found"})


def cannot_transition(event: str = "run", current: str = "running") -> Reply:
    """The status already is what the request asks (GitLab's state machine refuses the transition)."""
    message = (
        f'Cannot transition status via :{event} from :{current} (Reason(s): Status cannot transition via "{event}")'
    )
    return Reply(400, {"message": message})


def dropped() -> Reply:
    """The connection closes before any answer."""
    return Reply(DROP)


# --- What the server recorded -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    """The request target exactly as sent (still URL-encoded)."""
    headers: list[tuple[str, str]]
    body: str
    answered: int
    """The status the fake answered (``DROP`` when it closed the connection)."""

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[-1] if found else None

    @property
    def route(self) -> re.Match[str] | None:
        return STATUS_ROUTE.match(self.path)

    @property
    def project(self) -> str:
        """``:id`` as sent (URL-encoded)."""
        found = self.route
        assert found, f"not the status route: {self.path}"
        return found["project"]

    @property
    def sha(self) -> str:
        found = self.route
        assert found, f"not the status route: {self.path}"
        return found["sha"]

    @property
    def form(self) -> dict[str, list[str]]:
        """The form-encoded body, parsed strictly (a body that is not a well-formed form fails here)."""
        content_type = (self.header("Content-Type") or "").split(";")[0].strip()
        assert content_type == FORM, f"body is {content_type!r}, not a form"
        return urllib.parse.parse_qs(self.body, keep_blank_values=True, strict_parsing=True)


@dataclass
class FakeGitLab:
    state: Path
    url: str = ""
    """``http://127.0.0.1:<port>``."""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.state / "server.log"

    @property
    def api_url(self) -> str:
        return f"{self.url}{API}"

    def script(self, *replies: Reply) -> None:
        """The answers to the next requests, in order; the last one repeats."""
        assert replies, "a script needs at least one reply"
        _write_json(self.state / "script.json", [r.as_json() for r in replies])

    @property
    def requests(self) -> list[Recorded]:
        path = self.state / "requests.jsonl"
        if not path.exists():
            return []
        return [_recorded(json.loads(line)) for line in path.read_text().splitlines()]


def _recorded(raw: dict[str, Any]) -> Recorded:
    return Recorded(
        method=raw["method"],
        path=raw["path"],
        headers=[(k, v) for k, v in raw["headers"]],
        body=raw["body"],
        answered=raw["answered"],
    )


# --- The test's side: start, wait, stop -------------------------------------------------------------------


@contextmanager
def fake_gitlab(tmp_path: Path, *replies: Reply) -> Iterator[FakeGitLab]:
    """A fake GitLab on 127.0.0.1 for one test (answering ``replies``, by default ``created()``), stopped when it
    ends, whatever happens."""
    state = tmp_path / f"fake-gitlab-{uuid.uuid4().hex[:8]}"
    state.mkdir()
    fake = FakeGitLab(state)
    fake.script(*(replies or (created(),)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "support.fake_gitlab", "--port", "0", "--state", str(state)]
    with fake.log.open("w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            fake.url = f"http://{HOST}:{_wait_until_listening(server, fake)}"
            yield fake
        finally:
            server.terminate()
            try:
                server.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_until_listening(server: subprocess.Popen[bytes], fake: FakeGitLab) -> int:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    port_file = fake.state / "port"
    while True:
        if port_file.exists():
            port = int(port_file.read_text())
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                return port
            except OSError:
                pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the fake GitLab did not start listening: {fake.log.read_text()}")
        time.sleep(0.05)


def _write_json(path: Path, value: Any) -> None:
    """Replaced at once: the other process never reads half a file."""
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(json.dumps(value))
    os.replace(partial, path)


# --- The server's side ------------------------------------------------------------------------------------


def _next_reply(state: Path) -> dict[str, Any]:
    script_path = state / "script.json"
    script: list[dict[str, Any]] = json.loads(script_path.read_text())
    reply = script[0]
    if len(script) > 1:
        _write_json(script_path, script[1:])
    return reply


def _params(body: str, content_type: str) -> dict[str, Any] | None:
    """The request's parameters, from a JSON or a form body (as GitLab's API reads either), or None."""
    try:
        if content_type == "application/json":
            params = json.loads(body)
        else:
            params = {k: v[-1] for k, v in urllib.parse.parse_qs(body, strict_parsing=bool(body)).items()}
    except ValueError:
        return None
    return params if isinstance(params, dict) else None


def _refusal(headers: Mapping[str, str], body: str) -> tuple[int, Any] | None:
    """GitLab's answer to a request it would not take (its authentication, then its parameter checks), or None."""
    if not headers.get("private-token"):
        return 401, {"message": "401 Unauthorized"}
    content_type = headers.get("content-type", "").split(";")[0].strip()
    params = _params(body, content_type)
    if params is None:
        return 400, {"error": "400 Bad request"}
    if "state" not in params:
        return 400, {"error": "state is missing"}
    if params["state"] not in STATES:
        return 400, {"error": "state does not have a valid value"}
    too_long = {
        key: ["is too long (maximum is 255 characters)"]
        for key in ("target_url", "description")
        if len(str(params.get(key, ""))) > FIELD_MAX
    }
    if too_long:
        return 400, {"message": too_long}
    return None


def _commit_status(sha: str, body: str, content_type: str) -> dict[str, Any]:
    """The commit status GitLab returns (Entities::CommitStatus), from what the request set."""
    params = _params(body, content_type.split(";")[0].strip()) or {}
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "id": 93,
        "sha": sha,
        "ref": "main",
        "status": params["state"],
        "name": params.get("name") or params.get("context") or "default",
        "target_url": params.get("target_url"),
        "description": params.get("description"),
        "created_at": now,
        "started_at": now,
        "finished_at": None if params["state"] in ("pending", "running") else now,
        "allow_failure": False,
        "coverage": None,
        "author": {"id": 42, "username": "project_1_bot", "name": "commit status bot", "state": "active"},
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-gitlab"
    state: Path

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        route = STATUS_ROUTE.match(self.path)
        if self.command != "POST" or route is None:
            status, answer = 404, {"error": "404 Not Found"}
        else:
            reply = _next_reply(self.state)
            status, answer = reply["status"], reply["body"]
            if 200 <= status < 300:
                refused = _refusal(headers, body)
                if refused is not None:
                    status, answer = refused
                elif answer is None:
                    answer = _commit_status(route["sha"], body, headers.get("content-type", ""))
        record = {
            "method": self.command,
            "path": self.path,
            "headers": list(self.headers.items()),
            "body": body,
            "answered": status,
        }
        with (self.state / "requests.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")
        if status == DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._answer(status, answer)

    def _answer(self, status: int, answer: Any) -> None:
        if isinstance(answer, str):
            data, content_type = answer.encode(), "text/html"
        else:
            data, content_type = json.dumps(answer).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(port: int, state: Path) -> None:
    handler = type("Handler", (_Handler,), {"state": state})
    server = HTTPServer((HOST, port), handler)
    # Written once the socket listens (HTTPServer binds and listens as it is made): the test reads the port.
    _write_json(state / "port", server.server_address[1])
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake GitLab commit-status API on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port, written to STATE/port")
    parser.add_argument("--state", type=Path, required=True, help="directory of script.json and requests.jsonl")
    args = parser.parse_args(argv)
    serve(args.port, args.state)


if __name__ == "__main__":
    main()
