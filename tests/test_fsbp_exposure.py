"""ECS.2 and ELB.6: what dev gives up by design (a public task address, a deletable ALB), enforced everywhere
else. https://docs.aws.amazon.com/securityhub/latest/userguide/ecs-controls.html#ecs-2
https://docs.aws.amazon.com/securityhub/latest/userguide/elb-controls.html#elb-6"""

from __future__ import annotations

from typing import Any

import pytest

from policy import resource_types as rt
from policy import rules
from support import pack
from support.stacks import committed_run, stack_run

ECS_2 = "fsbp-ecs-2-no-public-ip"
ELB_6 = "fsbp-elb-6-deletion-protection"


def fired(resource_type: str, props: dict[str, Any]) -> set[str]:
    return {v.rule for v in rules.check_resource(resource_type, props)} & {ECS_2, ELB_6}


@pytest.mark.parametrize(("assign", "fires"), [(True, True), (False, False), (None, False), (rules.UNKNOWN, False)])
def test_a_service_assigning_public_ips_fails_ecs_2(assign: Any, fires: bool) -> None:
    network = {"subnets": ["subnet-1"]} | ({} if assign is None else {"assignPublicIp": assign})
    assert fired(rt.ECS_SERVICE, {"networkConfiguration": network}) == ({ECS_2} if fires else set())


@pytest.mark.parametrize(("enabled", "fires"), [(True, False), (False, True), (None, True), (rules.UNKNOWN, False)])
def test_a_load_balancer_without_deletion_protection_fails_elb_6(enabled: Any, fires: bool) -> None:
    # The default is off: an ALB that does not say so is deletable.
    props = {"loadBalancerType": "application"} | ({} if enabled is None else {"enableDeletionProtection": enabled})
    assert fired(rt.LB_LOAD_BALANCER, props) == ({ELB_6} if fires else set())


def test_dev_fails_both_on_exactly_its_service_and_alb_and_prod_passes() -> None:
    dev, prod = committed_run("dev"), committed_run("prod")
    found = {(v.rule, pack.resource_name(v)) for v in pack.violations(dev) if v.rule in (ECS_2, ELB_6)}
    assert found == {(ECS_2, "service-service"), (ELB_6, "service-alb")}
    assert found <= pack.BY_DESIGN["dev"]
    assert not [v for v in pack.violations(prod) if v.rule in (ECS_2, ELB_6)]


def test_dev_with_private_tasks_and_a_protected_alb_passes_both() -> None:
    found = stack_run(
        "dev", overrides={"taskSubnets": "private", "natGateways": "single", "albDeletionProtection": "true"}
    )
    assert not [v for v in pack.violations(found) if v.rule in (ECS_2, ELB_6)]
