"""The stack-file loader hands the program its config the way the Pulumi CLI does.

Tests and the offline plan trust it to see a stack exactly as `pulumi up` would, so a divergence here would
let a broken stack file pass every test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.config import SECRET_KEYS
from offline.stack_files import (
    ROOT,
    StackFileError,
    committed_stacks,
    load_stack_files,
    secret_placeholder,
)


def write(root: Path, stack: str, config: dict[str, object], project_config: dict[str, object] | None = None) -> None:
    project: dict[str, object] = {"name": "proj", "runtime": "python"}
    if project_config is not None:
        project["config"] = project_config
    (root / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


def test_namespaced_keys_are_kept_as_written(tmp_path: Path) -> None:
    write(tmp_path, "dev", {"proj:appName": "shop", "aws:region": "eu-west-1"})
    files = load_stack_files("dev", tmp_path)
    assert files.project == "proj" and files.stack == "dev"
    assert files.config == {"proj:appName": "shop", "aws:region": "eu-west-1"}
    assert files.secret_keys == []


def test_a_bare_key_in_a_stack_file_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    write(tmp_path, "dev", {"appName": "shop"})
    with pytest.raises(
        StackFileError, match=r"Pulumi\.dev\.yaml: config key 'appName' needs a namespace, like 'proj:appName'"
    ):
        load_stack_files("dev", tmp_path)


# Structured values reach the program as JSON strings, which it parses itself:
# https://www.pulumi.com/docs/iac/concepts/config/#structured-configuration
def test_structured_values_become_json(tmp_path: Path) -> None:
    tags = {"team": "web", "env": "dev"}
    write(tmp_path, "dev", {"proj:tags": tags, "proj:cidrs": ["10.0.0.0/8", "192.168.0.0/16"]})
    config = load_stack_files("dev", tmp_path).config
    assert json.loads(config["proj:tags"]) == tags
    assert json.loads(config["proj:cidrs"]) == ["10.0.0.0/8", "192.168.0.0/16"]


def test_scalars_become_strings_as_the_cli_passes_them(tmp_path: Path) -> None:
    write(tmp_path, "dev", {"proj:flag": True, "proj:off": False, "proj:count": 3, "proj:ratio": 0.5, "proj:s": "x"})
    config = load_stack_files("dev", tmp_path).config
    assert config == {"proj:flag": "true", "proj:off": "false", "proj:count": "3", "proj:ratio": "0.5", "proj:s": "x"}
    assert all(isinstance(v, str) for v in config.values())


def test_secure_values_become_marked_placeholders_registered_as_secret(tmp_path: Path) -> None:
    write(tmp_path, "dev", {"proj:token": {"secure": "AAABAKc0ZGVmYXVsdA=="}, "proj:plain": "x"})
    files = load_stack_files("dev", tmp_path)
    assert files.config["proj:token"] == secret_placeholder("proj:token")
    assert "PLACEHOLDER" in files.config["proj:token"] and "token" in files.config["proj:token"]
    assert "AAAB" not in files.config["proj:token"], "the ciphertext is not handed to the program"
    assert files.secret_keys == ["proj:token"]


def test_a_map_that_merely_contains_secure_is_not_a_secret(tmp_path: Path) -> None:
    write(tmp_path, "dev", {"proj:tags": {"secure": "yes", "team": "web"}})
    files = load_stack_files("dev", tmp_path)
    assert json.loads(files.config["proj:tags"]) == {"secure": "yes", "team": "web"}
    assert files.secret_keys == []


def test_required_secrets_are_filled_only_when_missing(tmp_path: Path) -> None:
    write(tmp_path, "dev", {"proj:token": {"secure": "AAAB"}})
    files = load_stack_files("dev", tmp_path, required_secrets=("token", "apiKey"))
    assert files.config["proj:apiKey"] == secret_placeholder("proj:apiKey")
    assert files.secret_keys == ["proj:apiKey", "proj:token"]
    write(tmp_path, "dev", {"proj:token": "given"})
    files = load_stack_files("dev", tmp_path, required_secrets=("token",))
    assert files.config["proj:token"] == "given"
    assert files.secret_keys == [], "a value that is set is not replaced by a placeholder"


def test_project_level_values_apply_and_the_stack_file_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        "dev",
        {"proj:size": 2},
        project_config={
            "aws:region": {"value": "eu-west-1"},
            "size": {"type": "integer", "default": 1},
            "color": {"type": "string", "default": "blue"},
            "undocumented": {"type": "string"},
        },
    )
    config = load_stack_files("dev", tmp_path).config
    assert config == {"aws:region": "eu-west-1", "proj:size": "2", "proj:color": "blue"}


def test_an_unknown_stack_lists_the_committed_ones(tmp_path: Path) -> None:
    write(tmp_path, "dev", {})
    (tmp_path / "Pulumi.prod.yaml").write_text("config: {}\n")
    with pytest.raises(StackFileError, match=r"no stack file Pulumi\.staging\.yaml; committed stacks: dev, prod"):
        load_stack_files("staging", tmp_path)
    assert committed_stacks(tmp_path) == ["dev", "prod"]


def test_an_empty_stack_file_is_an_empty_config(tmp_path: Path) -> None:
    write(tmp_path, "dev", {})
    (tmp_path / "Pulumi.dev.yaml").write_text("")
    assert load_stack_files("dev", tmp_path).config == {}


def test_the_committed_stacks_are_the_repository_files() -> None:
    expected = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert committed_stacks() == expected
    assert "dev" in expected and "prod" in expected


# What the CLI reads from a stack file: https://www.pulumi.com/docs/iac/concepts/projects/stack-settings-file/
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("config:\n  proj:cpu: [\n", r"Pulumi\.dev\.yaml: not valid YAML at line 3, column 1"),
        ("config:\n  - proj:cpu: 512\n", r"`config:` must map keys to values \(proj:cpu: 512\), not be a list"),
        ("config: {}\nproj:cpu: 512\n", r"'proj:cpu' is outside `config:`, where nothing reads it"),
        ("configs:\n  proj:cpu: 512\n", r"unknown top-level key 'configs'; did you mean 'config'\?"),
        ("just text\n", r"must be a mapping with a `config:` section, not a str"),
    ],
    ids=["yaml-syntax", "config-as-list", "outside-config", "misspelt-section", "scalar"],
)
def test_a_broken_stack_file_is_one_error_naming_the_file(tmp_path: Path, text: str, says: str) -> None:
    write(tmp_path, "dev", {})
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    with pytest.raises(StackFileError, match=says):
        load_stack_files("dev", tmp_path)


def test_the_stack_files_other_settings_are_accepted(tmp_path: Path) -> None:
    write(tmp_path, "dev", {})
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "secretsprovider: awskms://alias/x\nencryptedkey: abc\nconfig:\n  proj:cpu: 512\n"
    )
    assert load_stack_files("dev", tmp_path).config == {"proj:cpu": "512"}


def test_a_broken_project_file_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: [\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    with pytest.raises(StackFileError, match=r"^Pulumi\.yaml: not valid YAML"):
        load_stack_files("dev", tmp_path)


@pytest.mark.parametrize("stack", committed_stacks())
def test_a_committed_stack_gets_its_secrets_as_registered_placeholders(stack: str) -> None:
    # The committed stack files hold no secret in plain text: an offline run gets placeholders, marked secret, for
    # every secret key of the program.
    files = load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS)))
    for key in SECRET_KEYS:
        full = f"{files.project}:{key}"
        assert full in files.secret_keys
        assert files.config[full] == secret_placeholder(full)
