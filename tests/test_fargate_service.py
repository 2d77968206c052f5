"""FargateService on Pulumi mocks: the runtime the pipeline deploys onto, as its two parts (LoadBalancer,
EcsService) and the traffic between them, and what it must leave to CodeDeploy.

What each part builds is tested with the part (``test_load_balancer.py``, ``test_ecs_service.py``); here, what
only the whole shows: the parts' names and URNs, the one way from the ALB to the tasks, one container port
everywhere, what ``pulumi up`` leaves alone and what ``pulumi destroy`` may not delete.

The service is built as ``__main__.py`` wires it (``fargate`` below), in an existing VPC's subnets
(``support.bundles.subnets``).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pytest

from components import iam
from components.base import PROJECT, component_type
from components.certificate import site_certificate_arn
from components.config import StackConfig
from components.fargate_service import (
    CODEDEPLOY_OWNED,
    ECS_OWNED,
    OWNED_BY_ENGINE,
    FargateService,
    FargateServiceArgs,
)
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.service_alarms import alarm_names
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from support import bundles
from support.fsbp import assert_only_by_design
from support.stacks import REGION, component, descendants, run, stack_config

NAME = "service"
VALUES: dict[str, str] = {
    "appName": "shop",
    "containerName": "web",
    "containerPort": "8080",
    "cpu": "512",
    "memory": "2048",
    "desiredCount": "2",
    "healthCheckPath": "/health",
    "listenerPort": "80",
    "testListenerPort": "9000",
    "allowedCidrs": '["203.0.113.0/24", "2001:db8::/32"]',
    "testListenerCidrs": '["192.0.2.0/24"]',
    "environment": '{"GREETING": "hello world", "MODE": "demo"}',
    "logRetentionDays": "30",
}
PREFIX = "shop-dev"
"""``<appName>-<stack>`` of ``VALUES`` in the dev stack."""
EXISTING_CERTIFICATE = f"arn:aws:acm:{REGION}:{ACCOUNT_ID}:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def config(**changes: str) -> StackConfig:
    return stack_config({**VALUES, **changes})


def fargate(cfg: StackConfig, name: str = NAME, prefix: str | None = None) -> FargateService:
    """The FargateService as ``__main__.py`` wires it (``prefix`` replaces the stack's name prefix); its bundles
    exported under ``<name>-``."""
    lb = cfg.load_balancer
    certificate_arn = site_certificate_arn(f"{name}-certificate", lb)
    context = cfg.context if prefix is None else replace(cfg.context, name_prefix=prefix)
    service = FargateService(
        name,
        FargateServiceArgs(
            context=context,
            container=cfg.container,
            container_name=cfg.container_name,
            load_balancer=lb,
            subnets=bundles.subnets(),
            certificate_arn=certificate_arn,
        ),
    )
    e, r = service.endpoints, service.runtime
    pulumi.export(f"{name}-url", e.url)
    pulumi.export(f"{name}-blueArn", e.blue.arn)
    pulumi.export(f"{name}-prodListenerArn", e.prod_listener_arn)
    pulumi.export(f"{name}-clusterName", r.cluster_name)
    pulumi.export(f"{name}-serviceName", r.service_name)
    pulumi.export(f"{name}-executionRoleArn", r.execution_role.arn)
    return service


def service_run(**changes: str) -> ProgramRun:
    cfg = config(**changes)
    return run(lambda: fargate(cfg))


@pytest.fixture(scope="module")
def found() -> ProgramRun:
    return service_run()


def sg(found: ProgramRun, role: str) -> Registration:
    return found.one(rt.EC2_SECURITY_GROUP, f"{NAME}-{role}")


# --- Drift contract with CodeDeploy ---------------------------------------------------------------


def test_codedeploy_owned_fields_are_pinned() -> None:
    # Changing this list changes what `pulumi up` may overwrite after a blue/green deployment. CodeDeploy swaps
    # the service's task set (task definition, target group) and the listeners' forward actions
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-bluegreen.html).
    assert CODEDEPLOY_OWNED == {"service": ("taskDefinition", "loadBalancers"), "listener": ("defaultActions",)}


def test_exactly_the_codedeploy_owned_fields_are_ignored(found: ProgramRun) -> None:
    service = found.one(rt.ECS_SERVICE)
    assert service.props["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert service.ignore_changes == list(CODEDEPLOY_OWNED["service"])
    listeners = found.of_type(rt.LB_LISTENER)
    assert len(listeners) == 2
    assert all(r.ignore_changes == list(CODEDEPLOY_OWNED["listener"]) for r in listeners)


def test_nothing_else_ignores_changes(found: ProgramRun) -> None:
    others = [r.name for r in found.resources if r.ignore_changes and r.type not in (rt.LB_LISTENER, rt.ECS_SERVICE)]
    assert others == []


# --- Two parts, named like it -------------------------------------------------------------------------


def test_the_two_parts_are_named_like_it_and_are_its_children(found: ProgramRun) -> None:
    service = component(found, "FargateService", NAME)
    lb = component(found, "LoadBalancer", NAME)
    ecs = component(found, "EcsService", NAME)
    assert lb.parent == ecs.parent == service.urn
    kids = found.children_of(service)
    assert sorted(r.name for r in kids) == [NAME, NAME, f"{NAME}-alb-to-tasks", f"{NAME}-tasks-from-alb"]
    assert {r.type for r in kids if r.custom} == {rt.VPC_SECURITY_GROUP_EGRESS_RULE, rt.VPC_SECURITY_GROUP_INGRESS_RULE}


def former_urn(r: Registration) -> str:
    """The URN ``r`` had as a direct child of the FargateService (before the split): the parent's type, then its
    own (https://www.pulumi.com/docs/iac/concepts/resources/names/#urns)."""
    return f"urn:pulumi:dev::{PROJECT}::{component_type(FargateService)}${r.type}::{r.name}"


def test_the_parts_children_keep_the_urns_they_had_as_its_children(found: ProgramRun) -> None:
    # Without an alias, moving a resource under a new parent changes its URN: `pulumi up` would replace it (the
    # ALB, the service...) and stop at the protected ones (https://www.pulumi.com/docs/iac/concepts/options/aliases/).
    for part in ("LoadBalancer", "EcsService"):
        children = found.children_of(component(found, part, NAME))
        assert len(children) > 5
        missing = [r.name for r in children if former_urn(r) not in r.aliases]
        assert missing == [], f"{part}: children that would be replaced"
    # The rules between the parts stayed the FargateService's own children: same URN, nothing to alias.
    service = component(found, "FargateService", NAME)
    rules_between = [r for r in found.children_of(service) if r.custom]
    assert len(rules_between) == 2
    assert all(r.urn == former_urn(r) and r.aliases == [] for r in rules_between)


def test_every_resource_is_named_after_it_and_under_it(found: ProgramRun) -> None:
    service = component(found, "FargateService", NAME)
    below = descendants(found, service)
    assert {r.urn for r in below} == {r.urn for r in found.resources if r is not service}
    assert all(r.name == NAME or r.name.startswith(f"{NAME}-") for r in below), [r.name for r in below]


def test_two_instances_do_not_collide() -> None:
    cfg = config()

    def build() -> None:
        fargate(cfg, "one", "shop-one")
        fargate(cfg, "two", "shop-two")

    found = run(build)
    one, two = (component(found, "FargateService", name) for name in ("one", "two"))
    assert len(descendants(found, one)) == len(descendants(found, two)) > 10
    urns = [r.urn for r in found.resources]
    assert len(urns) == len(set(urns))
    physical = [(r.type, r.props["name"]) for r in found.resources if isinstance(r.props.get("name"), str)]
    assert len(physical) == len(set(physical)), "physical names derive from each instance's prefix"
    buckets = [r.props["bucket"] for r in found.of_type(rt.S3_BUCKET)]
    assert sorted(buckets) == [f"shop-one-alb-logs-{ACCOUNT_ID}-{REGION}", f"shop-two-alb-logs-{ACCOUNT_ID}-{REGION}"]


# --- The service behind the load balancer ---------------------------------------------------------------


def test_service_starts_on_blue_once_the_listeners_exist(found: ProgramRun) -> None:
    service = found.one(rt.ECS_SERVICE)
    blue = found.one(rt.LB_TARGET_GROUP, f"{NAME}-blue").state["arn"]
    assert service.props["loadBalancers"] == [{"targetGroupArn": blue, "containerName": "web", "containerPort": 8080}]
    assert found.outputs[f"{NAME}-blueArn"] == blue
    # ECS refuses a service behind a target group no listener forwards to yet ("The target group ... does not have
    # an associated load balancer", https://github.com/aws/aws-cdk/issues/1160).
    listeners = {r.urn for r in found.of_type(rt.LB_LISTENER)}
    assert listeners <= set(service.dependencies)


def test_one_container_port_and_health_check_path_everywhere(found: ProgramRun) -> None:
    [container] = json.loads(found.one(rt.ECS_TASK_DEFINITION).props["containerDefinitions"])
    assert container["portMappings"][0]["containerPort"] == 8080
    assert found.one(rt.ECS_SERVICE).props["loadBalancers"][0]["containerPort"] == 8080
    for group in found.of_type(rt.LB_TARGET_GROUP):
        assert group.props["port"] == 8080
        assert group.props["healthCheck"]["path"] == "/health"
    between = [found.one(rt.VPC_SECURITY_GROUP_EGRESS_RULE, f"{NAME}-alb-to-tasks")]
    between.append(found.one(rt.VPC_SECURITY_GROUP_INGRESS_RULE, f"{NAME}-tasks-from-alb"))
    assert all((r.props["fromPort"], r.props["toPort"]) == (8080, 8080) for r in between)


def test_bundles_name_what_consumers_address(found: ProgramRun) -> None:
    dns = found.one(rt.LB_LOAD_BALANCER).state["dnsName"]
    assert found.outputs[f"{NAME}-url"] == f"http://{dns}/"
    assert found.outputs[f"{NAME}-prodListenerArn"] == found.one(rt.LB_LISTENER, f"{NAME}-prod").state["arn"]
    assert found.outputs[f"{NAME}-clusterName"] == found.one(rt.ECS_CLUSTER).state["name"]
    assert found.outputs[f"{NAME}-serviceName"] == found.one(rt.ECS_SERVICE).state["name"]
    assert found.outputs[f"{NAME}-executionRoleArn"] == found.one(rt.IAM_ROLE, f"{NAME}-execution").state["arn"]


def test_the_certificate_reaches_the_production_listener() -> None:
    found = service_run(listenerPort="443", domainName="shop.example.com", certificateArn=EXISTING_CERTIFICATE)
    prod = found.one(rt.LB_LISTENER, f"{NAME}-prod").props
    assert (prod["protocol"], prod["certificateArn"]) == ("HTTPS", EXISTING_CERTIFICATE)
    assert found.outputs[f"{NAME}-url"] == "https://shop.example.com/"


# --- Security groups: who reaches what ----------------------------------------------------------------


def reachable_ports(
    found: ProgramRun, target: Registration, *, source_ip: str | None = None, source_sg: str | None = None
) -> set[int]:
    """Ports of ``target`` a source (an address, or members of a security group) can open, from the ingress
    rules as AWS evaluates them: rules only allow, and any rule that matches allows
    (https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html)."""
    ports: set[int] = set()
    for rule in found.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE):
        p = rule.props
        if p["securityGroupId"] != target.id:
            continue
        assert p["ipProtocol"] == "tcp"
        cidr = p.get("cidrIpv4") or p.get("cidrIpv6")
        if source_ip is not None and cidr and ipaddress.ip_address(source_ip) in ipaddress.ip_network(cidr):
            ports.update(range(int(p["fromPort"]), int(p["toPort"]) + 1))
        if source_sg is not None and p.get("referencedSecurityGroupId") == source_sg:
            ports.update(range(int(p["fromPort"]), int(p["toPort"]) + 1))
    return ports


def test_tasks_take_only_the_container_port_and_only_from_the_alb(found: ProgramRun) -> None:
    alb_sg, task_sg = sg(found, "alb"), sg(found, "tasks")
    assert reachable_ports(found, task_sg, source_sg=alb_sg.id) == {8080}
    for ip in ("203.0.113.9", "10.20.3.4", "198.51.100.7", "2001:db8::1"):
        assert reachable_ports(found, task_sg, source_ip=ip) == set(), ip
    ingress_to_tasks = [
        r for r in found.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE) if r.props["securityGroupId"] == task_sg.id
    ]
    assert len(ingress_to_tasks) == 1
    assert reachable_ports(found, alb_sg, source_sg=task_sg.id) == set(), "nothing flows back through the ALB"


def test_egress_is_limited(found: ProgramRun) -> None:
    # A new security group sends nothing but what its egress rules allow: the provider removes AWS's default
    # allow-all rule (https://www.pulumi.com/registry/packages/aws/api-docs/ec2/securitygroup/).
    alb_sg, task_sg = sg(found, "alb").id, sg(found, "tasks").id
    egress = found.of_type(rt.VPC_SECURITY_GROUP_EGRESS_RULE)
    rules_by_port = {(r.props["securityGroupId"], r.props["fromPort"], r.props["toPort"]): r.props for r in egress}
    assert set(rules_by_port) == {(alb_sg, 8080, 8080), (task_sg, 443, 443)}
    assert rules_by_port[(alb_sg, 8080, 8080)]["referencedSecurityGroupId"] == task_sg, (
        "the ALB talks to the tasks only"
    )
    assert rules_by_port[(task_sg, 443, 443)]["cidrIpv4"] == "0.0.0.0/0", "AWS APIs and registries, over HTTPS"
    assert all(r.props.get("description") for r in egress)


# --- What `pulumi destroy` may delete, and the policy pack ------------------------------------------------


def test_logs_are_protected_unless_force_destroy(found: ProgramRun) -> None:
    protected = sorted(r.name for r in found.resources if r.protect)
    assert protected == [f"{NAME}-access-logs", f"{NAME}-logs"], "the data, not the settings around it"
    assert found.one(rt.S3_BUCKET, f"{NAME}-access-logs").props["forceDestroy"] is False
    forced = service_run(forceDestroy="true")
    assert [r.name for r in forced.resources if r.protect] == []
    assert forced.one(rt.S3_BUCKET, f"{NAME}-access-logs").props["forceDestroy"] is True


def test_the_policy_pack_finds_nothing(found: ProgramRun) -> None:
    assert_only_by_design(found)


# --- ECS-native blue/green (the ecs engine) ------------------------------------------------------------
#
# The service deploys itself on the load balancer's rules, with an ECS infrastructure role the FargateService
# makes where the two parts meet.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html

NATIVE_VALUES = {"deploymentEngine": "ecs", "deploymentConfig": "CodeDeployDefault.ECSCanary10Percent5Minutes"}

# The trust policy the ECS guide gives the infrastructure role for load balancers (its Sid, a label, aside): ECS
# itself assumes it, with no condition.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/AmazonECSInfrastructureRolePolicyForLoadBalancers.html
GUIDE_TRUST_STATEMENT = {"Effect": "Allow", "Principal": {"Service": "ecs.amazonaws.com"}, "Action": "sts:AssumeRole"}

# The actions of the AWS managed policy AmazonECSInfrastructureRolePolicyForLoadBalancers (v6):
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonECSInfrastructureRolePolicyForLoadBalancers.html
MANAGED_POLICY_ACTIONS = {
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyRule",
}


def native_fargate(cfg: StackConfig) -> FargateService:
    """The FargateService as ``__main__.py`` wires it with the ecs engine: the deployment alarms named from the
    alarms config."""
    native = cfg.deploy.native_blue_green(alarm_names(cfg.context.name_prefix, cfg.alarms))
    assert native is not None
    return FargateService(
        NAME,
        FargateServiceArgs(
            context=cfg.context,
            container=cfg.container,
            container_name=cfg.container_name,
            load_balancer=cfg.load_balancer,
            subnets=bundles.subnets(),
            native=native,
        ),
    )


@pytest.fixture(scope="module")
def native() -> ProgramRun:
    cfg = config(**NATIVE_VALUES)
    return run(lambda: native_fargate(cfg))


def advanced_configuration(found: ProgramRun) -> dict[str, Any]:
    [lb] = found.one(rt.ECS_SERVICE).props["loadBalancers"]
    advanced: dict[str, Any] = lb["advancedConfiguration"]
    return advanced


def infrastructure_role(found: ProgramRun) -> Registration:
    """The role the service hands ECS for the load balancer, found through the service."""
    arn = advanced_configuration(found)["roleArn"]
    [role] = [r for r in found.of_type(rt.IAM_ROLE) if r.state["arn"] == arn]
    return role


def rule_of(found: ProgramRun, role: str) -> Registration:
    arn = found.one(rt.LB_LISTENER, f"{NAME}-{role}").state["arn"]
    [rule] = [r for r in found.of_type(rt.LB_LISTENER_RULE) if r.props["listenerArn"] == arn]
    return rule


def test_owned_by_engine_is_pinned_for_both_engines() -> None:
    # Changing this changes what a deployment survives. CodeDeploy swaps the service's task set and rewrites the
    # listeners (deployment-type-bluegreen.html); ECS-native blue/green registers a revision, swaps the service's
    # primary and alternate target groups and reweights the rules (deployment-type-blue-green.html).
    both = ("taskDefinition", "loadBalancers")
    owned = OWNED_BY_ENGINE
    assert owned == {
        "codedeploy": {"service": both, "listener": ("defaultActions",)},
        "ecs": {"service": both, "listener_rule": ("actions",)},
    }
    assert OWNED_BY_ENGINE["codedeploy"] == CODEDEPLOY_OWNED and OWNED_BY_ENGINE["ecs"] == ECS_OWNED


def test_native_ignores_exactly_the_ecs_owned_fields(native: ProgramRun) -> None:
    service = native.one(rt.ECS_SERVICE)
    assert service.props["deploymentController"] == {"type": "ECS"}
    assert service.ignore_changes == list(ECS_OWNED["service"])
    rules_made = native.of_type(rt.LB_LISTENER_RULE)
    assert len(rules_made) == 2 and all(r.ignore_changes == list(ECS_OWNED["listener_rule"]) for r in rules_made)
    assert all(r.ignore_changes == [] for r in native.of_type(rt.LB_LISTENER)), "ECS leaves the listeners alone"
    ignoring = {r.type for r in native.resources if r.ignore_changes}
    assert ignoring == {rt.ECS_SERVICE, rt.LB_LISTENER_RULE}


def test_native_service_is_routed_through_this_load_balancers_rules(native: ProgramRun) -> None:
    service = native.one(rt.ECS_SERVICE).props
    blue = native.one(rt.LB_TARGET_GROUP, f"{NAME}-blue").state["arn"]
    green = native.one(rt.LB_TARGET_GROUP, f"{NAME}-green").state["arn"]
    assert service["loadBalancers"][0]["targetGroupArn"] == blue
    advanced = advanced_configuration(native)
    assert advanced["alternateTargetGroupArn"] == green
    assert advanced["productionListenerRule"] == rule_of(native, "prod").state["arn"]
    assert advanced["testListenerRule"] == rule_of(native, "test").state["arn"]
    # The deployment alarms are the ones the alarms config makes (checked against ServiceAlarms in
    # test_service_alarms.py); both target groups are watched.
    assert service["alarms"]["enable"] is True and service["alarms"]["rollback"] is True
    names = service["alarms"]["alarmNames"]
    assert all(n.startswith(f"{PREFIX}-") for n in names)
    assert {color for color in ("blue", "green") if any(f"-{color}-" in n for n in names)} == {"blue", "green"}


def test_native_infrastructure_role_is_trusted_by_ecs_as_the_guide_documents(native: ProgramRun) -> None:
    role = infrastructure_role(native)
    assert role.parent == component(native, "FargateService", NAME).urn, "made where the two parts meet"
    assert role.props["name"].startswith(f"{PREFIX}-")
    [statement] = json.loads(role.props["assumeRolePolicy"])["Statement"]
    assert {k: v for k, v in statement.items() if k != "Sid"} == GUIDE_TRUST_STATEMENT
    assert "managedPolicyArns" not in role.props
    assert native.of_type(rt.IAM_ROLE_POLICY_ATTACHMENT) == [], "no managed policy: the scoped statements only"


def listed(value: str | list[str]) -> list[str]:
    """A policy element that may be one string or a list of them, as a list."""
    return [value] if isinstance(value, str) else value


def lb_statements_alone(cfg: StackConfig) -> ProgramRun:
    """A LoadBalancer on rules built alone with the FargateService's arguments, its traffic-shifting statements
    exported as a policy document."""

    def build() -> None:
        subnets = bundles.subnets()
        lb = LoadBalancer(
            NAME,
            LoadBalancerArgs(
                context=cfg.context,
                config=cfg.load_balancer,
                vpc_id=subnets.vpc_id,
                public_subnet_ids=subnets.public_subnet_ids,
                target_port=cfg.container.container_port,
                health_check_path=cfg.container.health_check_path,
                traffic_control="rules",
            ),
        )
        pulumi.export("statements", iam.policy_document(*lb.traffic_shifting_statements()))

    return run(build)


def test_the_roles_policy_is_the_load_balancers_traffic_shifting_statements(native: ProgramRun) -> None:
    role = infrastructure_role(native)
    [policy] = [p for p in native.of_type(rt.IAM_ROLE_POLICY) if p.props["role"] == role.id]
    document = json.loads(policy.props["policy"])
    alone = json.loads(lb_statements_alone(config(**NATIVE_VALUES)).outputs["statements"])
    assert document == alone
    # And what they grant, on this stack's resources: the managed policy's actions, on this ALB's target groups,
    # listeners and rules (test_load_balancer.py shows the same against a second load balancer).
    assert {a for s in document["Statement"] for a in listed(s["Action"])} == MANAGED_POLICY_ACTIONS

    def reached(action: str, typ: str) -> set[str]:
        return {
            r.state["arn"]
            for r in native.of_type(typ)
            for s in document["Statement"]
            if action in listed(s["Action"]) and any(fnmatchcase(r.state["arn"], res) for res in listed(s["Resource"]))
        }

    assert reached("elasticloadbalancing:ModifyRule", rt.LB_LISTENER_RULE) == {
        rule_of(native, "prod").state["arn"],
        rule_of(native, "test").state["arn"],
    }
    assert len(reached("elasticloadbalancing:ModifyListener", rt.LB_LISTENER)) == 2
    assert len(reached("elasticloadbalancing:RegisterTargets", rt.LB_TARGET_GROUP)) == 2


def test_the_native_service_waits_for_the_rules_and_the_roles_policy(native: ProgramRun) -> None:
    # ECS checks the rules and assumes the role when the service is created: both must exist, and the role
    # must hold its permissions, first.
    service = native.one(rt.ECS_SERVICE)
    role = infrastructure_role(native)
    [policy] = [p for p in native.of_type(rt.IAM_ROLE_POLICY) if p.props["role"] == role.id]
    needed = {r.urn for r in native.of_type(rt.LB_LISTENER_RULE)} | {r.urn for r in native.of_type(rt.LB_LISTENER)}
    needed.add(policy.urn)
    assert len(needed) == 5
    assert needed <= set(service.dependencies), needed - set(service.dependencies)


def test_the_policy_pack_finds_nothing_with_the_ecs_engine(native: ProgramRun) -> None:
    assert_only_by_design(native)
