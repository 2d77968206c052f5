"""A stand-in ``aws`` command for running the project's shell scripts for real: it records every call and answers
with canned API responses, through the CLI's own ``--query`` (JMESPath) and ``--output`` (json or text).

The answers are whole API responses (what botocore's model says the operation returns, checked with
``assert_valid_response``), so a script's ``--query`` expressions are exercised as the real CLI would apply them,
and ``--output text`` is the installed AWS CLI's own text formatter.
Each call's arguments map back to the API request the real CLI would send (``api_request``), to be checked
against botocore's model with ``support.aws.assert_valid_request``.

    fake = FakeAws(tmp_path, {"ecs register-task-definition": [response], ...})
    subprocess.run(["bash", script], env=fake.env(), ...)
    fake.calls  # every call, in order, with the files it read (``file://``)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name
from botocore.validate import ParamValidator

from support.stacks import REGION
from support.tools import clean_env

# The AWS CLI's global options that take a value (not part of the request).
# https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-options.html
GLOBAL_OPTIONS = {"--query", "--output", "--region", "--profile", "--endpoint-url"}

_SCRIPT = '''#!{python}
"""Stand-in aws CLI (tests/support/fake_aws.py): records the call, answers the next canned response."""
import json
import sys
from pathlib import Path

import jmespath
from awscli.text import format_text

state = Path({state!r})
argv = sys.argv[1:]
files = {{}}
for arg in argv:
    if arg.startswith("file://"):
        files[arg] = Path(arg[len("file://"):]).read_text()
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps({{"argv": argv, "files": files}}) + "\\n")

command = " ".join(argv[:2])
responses = json.loads((state / "responses.json").read_text())
if command not in responses:
    print(f"fake aws: no answer for {{command!r}}", file=sys.stderr)
    sys.exit(252)
counts_path = state / "counts.json"
counts = json.loads(counts_path.read_text()) if counts_path.exists() else {{}}
index = counts.get(command, 0)
counts[command] = index + 1
counts_path.write_text(json.dumps(counts))
answers = responses[command]
answer = answers[min(index, len(answers) - 1)]
if isinstance(answer, dict) and "__error__" in answer:
    print(answer["__error__"], file=sys.stderr)
    sys.exit(254)

options = {{}}
i = 2
while i < len(argv):
    if argv[i].startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
        options[argv[i]] = argv[i + 1]
        i += 2
    else:
        i += 1
# As the CLI's formatters do (awscli/formatter.py): the query is a JMESPath search of the response, and text
# output is the CLI's own text.format_text (None as "None", a list's items tab-separated).
if "--query" in options:
    answer = jmespath.search(options["--query"], answer)
if options.get("--output", "json") == "text":
    format_text(answer, sys.stdout)
else:
    print(json.dumps(answer, indent=4))
'''


@dataclass(frozen=True)
class Call:
    argv: list[str]
    """The arguments after ``aws``: ``["ecs", "update-service", "--cluster", ...]``."""
    files: dict[str, str]
    """What each ``file://`` argument held when the call was made."""

    @property
    def command(self) -> str:
        """``"ecs update-service"``."""
        return " ".join(self.argv[:2])


class FakeAws:
    """An ``aws`` on ``PATH`` in ``tmp_path/bin`` answering ``responses`` (``"<service> <command>"`` -> answers in
    call order; the last one repeats; ``{"__error__": text}`` fails the call as the CLI does, exit 254)."""

    def __init__(self, tmp_path: Path, responses: Mapping[str, Sequence[Any]]) -> None:
        self.state = tmp_path / "fake-aws"
        self.bin = tmp_path / "fake-aws-bin"
        self.state.mkdir()
        self.bin.mkdir()
        (self.state / "responses.json").write_text(json.dumps({k: list(v) for k, v in responses.items()}))
        aws = self.bin / "aws"
        aws.write_text(_SCRIPT.format(python=sys.executable, state=str(self.state)))
        aws.chmod(0o755)
        self.home = tmp_path

    def env(self, **variables: str) -> dict[str, str]:
        """A clean environment (no operator AWS settings) with this ``aws`` first on ``PATH``."""
        base = clean_env(self.home)
        return {**base, "PATH": f"{self.bin}:{base['PATH']}", "AWS_DEFAULT_REGION": REGION, **variables}

    @property
    def calls(self) -> list[Call]:
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [Call(**json.loads(line)) for line in log.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [c.command for c in self.calls]


def _operation(service: str, command: str) -> str:
    model = botocore.session.get_session().get_service_model(service)
    (name,) = [op for op in model.operation_names if xform_name(op, "-") == command]
    return str(name)


def api_request(call: Call) -> tuple[str, str, dict[str, Any]]:
    """The API request the real CLI sends for ``call``: (service, operation, params). Options are the input
    members' names in the CLI's spelling (``--task-definition`` is ``taskDefinition``); a list member given one
    value is a one-item list; ``--cli-input-json file://...`` is the request's JSON, read from the recorded file.
    https://docs.aws.amazon.com/cli/latest/userguide/cli-usage-skeleton.html"""
    service, command, *rest = call.argv
    operation = _operation(service, command)
    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    members = {xform_name(name, "-"): name for name in shape.members}
    params: dict[str, Any] = {}
    i = 0
    while i < len(rest):
        option, value = rest[i], rest[i + 1]
        i += 2
        if option in GLOBAL_OPTIONS:
            continue
        if option == "--cli-input-json":
            params.update(json.loads(call.files[value] if value.startswith("file://") else value))
            continue
        name = members[option.removeprefix("--")]
        params[name] = [value] if shape.members[name].type_name == "list" else value
    return service, operation, params


def assert_valid_response(service: str, operation: str, response: dict[str, Any]) -> None:
    """A canned answer is shaped as the operation's output in botocore's model (no unknown fields, right types)."""
    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).output_shape
    report = ParamValidator().validate(response, shape)
    assert not report.has_errors(), f"{operation} response: {report.generate_report()}"
