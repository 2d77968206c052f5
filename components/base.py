"""What every component of the program shares: the project's name and the ComponentResource base.

``PROJECT`` is read from ``Pulumi.yaml``, its one home: it is the namespace of every config key
(``gitlab-fargate:cpu``) and the package of every component's type token (``gitlab-fargate:index:SourceBucket``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

ROOT = Path(__file__).resolve().parent.parent

PROJECT: str = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
"""The Pulumi project name (``Pulumi.yaml``): the config namespace and the components' package."""


def component_type(cls: type[Any]) -> str:
    """A component's type token: ``<project>:index:<ClassName>``."""
    return f"{PROJECT}:index:{cls.__name__}"


class Component(pulumi.ComponentResource):
    """A component of this program: its type token from its class, and options for its children.

    Children are named ``f"{name}-<role>"`` and parented to the component (``self.child()``), never given the
    caller's options: those apply to the component, and reach the children through the parent.
    """

    def __init__(
        self,
        name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        """``children_formerly_of``: the component this one was carved out of, whose children its children were.
        They keep their names, and an alias to that old parent keeps their URNs: a stack deployed before the
        carve-out updates in place instead of replacing them (or stopping at a protected one)."""
        super().__init__(component_type(type(self)), name, None, opts)
        self.component_name = name
        self._former_parent = children_formerly_of

    def child(self, **options: Any) -> pulumi.ResourceOptions:
        """Options of a child resource: this component as parent, plus ``options`` (protect, depends_on...)."""
        if self._former_parent is not None:
            options["aliases"] = [*options.get("aliases", []), pulumi.Alias(parent=self._former_parent)]
        return pulumi.ResourceOptions(parent=self, **options)

    def lookup(self) -> pulumi.InvokeOptions:
        """Options of a lookup (invoke): through this component's provider."""
        return pulumi.InvokeOptions(parent=self)


@dataclass(frozen=True)
class StackContext:
    """What every component of a stack shares: how it names things, where, and how long it keeps data."""

    name_prefix: str
    """Prefix of every physical name: ``<appName>-<stack>``."""
    region: str
    log_retention_days: int
    """Days logs (and superseded source versions) are kept."""
    force_destroy: bool = False
    """Dev only: ``pulumi destroy`` deletes non-empty buckets, repositories and log groups, and nothing is
    protected. Otherwise stateful resources are protected (``protect``) and never emptied by the program."""

    @property
    def protect(self) -> bool:
        return not self.force_destroy
