"""policy/resource_types.py: every type token names a resource the installed provider SDK registers.

A misspelt token would make a policy rule, a plan section or a test silently match nothing, so each token is
looked up in the SDK's own source: the module the token names must register exactly that token.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from components.base import PROJECT, component_type
from components.fargate_service import FargateService
from policy import resource_types as rt
from support.sdk import PACKAGES, module_source

TOKENS = {name: value for name, value in vars(rt).items() if name.isupper() and isinstance(value, str)}
RESOURCE_TOKENS = {name: token for name, token in TOKENS.items() if not token.startswith("pulumi:providers:")}


@pytest.mark.parametrize("name", sorted(RESOURCE_TOKENS))
def test_every_token_is_registered_by_the_sdk_module_it_names(name: str) -> None:
    token = RESOURCE_TOKENS[name]
    assert f"'{token}'" in module_source(token), f"rt.{name} = {token!r} is not a type the SDK registers"


def test_the_lookup_would_catch_a_misspelt_token() -> None:
    with pytest.raises(FileNotFoundError):
        module_source("aws:ec2/securityGroops:SecurityGroops")
    assert "'aws:ec2/securityGroup:SecurityGroups'" not in module_source("aws:ec2/securityGroup:SecurityGroup")


@pytest.mark.parametrize("name", sorted(set(TOKENS) - set(RESOURCE_TOKENS)))
def test_provider_tokens_name_installed_provider_packages(name: str) -> None:
    package = TOKENS[name].removeprefix("pulumi:providers:")
    provider = importlib.import_module(PACKAGES[package]).Provider
    assert provider.__module__.startswith(PACKAGES[package])


def test_tokens_are_unique() -> None:
    assert len(set(TOKENS.values())) == len(TOKENS)


def test_the_module_imports_nothing() -> None:
    # The policy pack runs with only pulumi-policy installed: this module must stay dependency-free.
    source = Path(rt.__file__ or "").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations"]


def test_component_tokens_are_derived_from_the_project_name() -> None:
    assert component_type(FargateService) == f"{PROJECT}:index:FargateService"
