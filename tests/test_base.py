"""components/base.py: what every component shares (type token, children's options, the stack context)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.base import PROJECT, Component, StackContext, component_type
from offline.engine import ProgramRun
from policy import resource_types as rt
from support.stacks import run


class Carved(Component):
    """A component carved out of another: its child keeps the name it had under ``former``."""

    def __init__(self, name: str, former: pulumi.Resource | None, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts, children_formerly_of=former)
        self.log_group = aws.cloudwatch.LogGroup(f"{name}-logs", opts=self.child(protect=True))
        self.register_outputs({})


class Whole(Component):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.part = Carved(name, self, pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


def test_the_type_token_is_the_project_and_the_class() -> None:
    assert component_type(Carved) == f"{PROJECT}:index:Carved"


def test_children_are_parented_to_their_component_with_the_options_given() -> None:
    found: ProgramRun = run(lambda: Carved("alone", None))
    group = found.one(rt.LOG_GROUP)
    assert group.parent == found.named("alone").urn
    assert group.protect is True
    assert group.aliases == []


def test_a_carved_out_childs_alias_is_its_urn_under_the_former_parent() -> None:
    found = run(lambda: Whole("web"))
    whole = next(r for r in found.resources if r.type == component_type(Whole))
    group = found.one(rt.LOG_GROUP)
    assert group.parent != whole.urn
    former = f"urn:pulumi:dev::{PROJECT}::{component_type(Whole)}${rt.LOG_GROUP}::web-logs"
    assert group.aliases == [former]


def test_only_dev_like_stacks_leave_stateful_resources_unprotected() -> None:
    assert StackContext("shop-prod", "eu-west-1", 90).protect is True
    assert StackContext("shop-dev", "eu-west-1", 7, force_destroy=True).protect is False
