"""components/pulumi_internals.py, the one module on Pulumi's private runtime API, against the pinned SDK.

Each name the adapter takes from ``pulumi.runtime`` is exercised here the way the program and the offline
engine use it. An SDK upgrade (requirements.txt) that moves or changes one of them fails here first, naming
the adapter function to fix, instead of wherever the program or the engine would break.
"""

from __future__ import annotations

import re
from importlib.metadata import version

import pulumi
from google.protobuf import struct_pb2

from components import pulumi_internals
from components.base import PROJECT, ROOT
from offline.engine import ProgramRun, run_components
from support.stacks import run

PINNED = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)


def test_the_adapter_is_checked_against_the_pinned_sdk() -> None:
    # When this fails, the SDK was upgraded without re-running this module's checks against it: update the pin
    # in requirements.txt, run these tests, fix the adapter if they fail.
    assert PINNED is not None, "requirements.txt pins pulumi"
    assert version("pulumi") == PINNED.group(1)


def test_only_the_adapter_uses_private_runtime_names() -> None:
    private = re.compile(
        r"pulumi\.runtime\.(config|mocks|rpc|settings)\b|from pulumi\.runtime import (config|mocks|rpc|settings)"
    )
    users = [
        path.relative_to(ROOT).as_posix()
        for folder in ("components", "offline", "policy", "ci")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if private.search(path.read_text())
    ]
    assert users == ["components/pulumi_internals.py"]
    assert not private.search((ROOT / "__main__.py").read_text())


def test_secret_marker_is_the_wire_format_of_secrets() -> None:
    struct = struct_pb2.Struct()
    struct.update({"token": {pulumi_internals.SECRET_SIG_KEY: pulumi_internals.SECRET_SIG_VALUE, "value": "s3cr3t"}})
    found = pulumi_internals.deserialize_properties(struct)
    assert isinstance(found["token"], dict)
    assert found["token"][pulumi_internals.SECRET_SIG_KEY] == pulumi_internals.SECRET_SIG_VALUE
    assert found["token"]["value"] == "s3cr3t"


def test_stack_config_keys_lists_every_key_with_its_secrecy() -> None:
    seen: dict[str, bool] = {}

    def build() -> None:
        seen.update(pulumi_internals.stack_config_keys())

    run_components(
        build,
        config={f"{PROJECT}:gitlabToken": "t", f"{PROJECT}:cpu": "512"},
        secret_keys=(f"{PROJECT}:gitlabToken",),
    )
    assert seen == {"aws:region": False, f"{PROJECT}:gitlabToken": True, f"{PROJECT}:cpu": False}


def test_root_resource_outputs_are_what_the_program_exported() -> None:
    found: ProgramRun = run(lambda: pulumi.export("answer", 42))
    assert found.outputs == {"answer": 42}


def test_each_run_registers_its_own_stack() -> None:
    first = run(lambda: pulumi.export("first", "a"))
    second = run(lambda: pulumi.export("second", "b"))
    assert (first.outputs, second.outputs) == ({"first": "a"}, {"second": "b"})
