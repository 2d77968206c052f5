"""The installed provider SDKs' own source: which type token a module registers, which former types it
aliases."""

from __future__ import annotations

import importlib
import keyword
import re
from pathlib import Path

PACKAGES = {"aws": "pulumi_aws", "gitlab": "pulumi_gitlab", "tls": "pulumi_tls", "time": "pulumiverse_time"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def module_source(token: str) -> str:
    """The source of the SDK module a token names: ``aws:ec2/securityGroup:SecurityGroup`` is
    ``pulumi_aws/ec2/security_group.py``; ``index`` modules live at the package root."""
    package, module, _ = token.split(":")
    folder, _, file = module.partition("/")
    # A module named after a Python keyword gets a trailing underscore (aws:lambda/... is pulumi_aws/lambda_/).
    folder = f"{folder}_" if keyword.iskeyword(folder) else folder
    root = Path(importlib.import_module(PACKAGES[package]).__file__ or "").parent
    path = root / snake(file) if folder == "index" else root / folder / snake(file)
    return path.with_suffix(".py").read_text()


def type_aliases(token: str) -> set[str]:
    """The former type tokens the SDK declares for a resource (``pulumi.Alias(type_=...)``): state under them
    is taken over by the provider itself."""
    return set(re.findall(r"""type_=["']([^"']+)["']""", module_source(token)))
