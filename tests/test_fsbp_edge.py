"""FSBP controls at the edge of the stack (issue 14): ELB.1 and ELB.18 (the listeners encrypt; HTTP only
redirects), IAM.2 and IAM.3 (the upload user's permissions through a group, its access key rotated).

Each rule on violating and compliant resources, the rules through the pulumi-policy adapter where the adapter
carries what they read, and the committed stacks: what they comply with, what they fail by design
(support/fsbp.py), and that the pack fails a stack that regresses.

Controls: https://docs.aws.amazon.com/securityhub/latest/userguide/elb-controls.html and
https://docs.aws.amazon.com/securityhub/latest/userguide/iam-controls.html
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pulumiverse_time
import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as policy_proxy

import policy.__main__ as pack
from offline.engine import ProgramRun, Registration
from policy import resource_types as rt
from policy import rules
from policy.rules import UNKNOWN, Resource
from support.fsbp import ELB_1, ELB_18, assert_only_by_design, by_design, findings
from support.pack import res
from support.sdk import module_source
from support.stacks import STACKS, run, stack_run

IAM_2 = "fsbp-iam-2-no-user-policies"
IAM_3 = "fsbp-iam-3-access-key-rotated"

LB = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/1"
NLB = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/web/2"
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
FORWARD = [{"type": "forward", "targetGroupArn": "arn:tg/green"}]
TO_HTTPS = [{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]


def alb(name: str = "alb", arn: str = LB, **props: Any) -> Resource:
    return res(rt.LB_LOAD_BALANCER, name, {"loadBalancerType": "application", **props}, ids=(arn,))


def listener(name: str, protocol: Any, actions: Any = FORWARD, lb: Any = LB, **props: Any) -> Resource:
    given: dict[str, Any] = {"loadBalancerArn": lb, "port": 8080.0, "defaultActions": actions}
    if protocol is not None:
        given["protocol"] = protocol
    if protocol == "HTTPS":
        given |= {"sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06", "certificateArn": CERTIFICATE}
    return res(rt.LB_LISTENER, name, given | props, ids=(f"{lb}/{name}",))


def reported(resources: list[Resource], rule: str) -> list[tuple[str, str]]:
    """(name of the offending resource, message) of every violation of ``rule``."""
    names = {r.urn: r.name for r in resources}
    return [(names.get(v.urn, v.urn), v.message) for v in rules.check_stack(resources) if v.rule == rule]


def offenders(resources: list[Resource], rule: str) -> list[str]:
    return [name for name, _ in reported(resources, rule)]


# --- ELB.1: HTTP listeners redirect to HTTPS --------------------------------------------------------------------


def test_elb_1_an_http_listener_that_forwards_fails_its_load_balancer() -> None:
    # The shape before this issue: HTTPS production, port 80 redirecting, the test listener plain HTTP.
    stack = [alb(), listener("prod", "HTTPS"), listener("redirect", "HTTP", TO_HTTPS), listener("test", "HTTP")]
    [(name, message)] = reported(stack, ELB_1)
    assert name == "alb", "judged per load balancer, as the control (resource type LoadBalancer)"
    assert "Listener 'test'" in message and "redirect" not in message.split(":")[0]


def test_elb_1_a_plain_http_load_balancer_fails_too() -> None:
    # The control fails an ALB with an HTTP listener that does not redirect, whether or not it has HTTPS at all.
    # https://docs.aws.amazon.com/config/latest/developerguide/alb-http-to-https-redirection-check.html
    assert offenders([alb(), listener("prod", "HTTP"), listener("test", None)], ELB_1) == ["alb"]


def test_elb_1_https_listeners_and_an_http_redirect_to_https_pass() -> None:
    stack = [alb(), listener("prod", "HTTPS"), listener("test", "HTTPS"), listener("redirect", "HTTP", TO_HTTPS)]
    assert offenders(stack, ELB_1) == []


@pytest.mark.parametrize(
    "actions",
    [
        [{"type": "redirect", "redirect": {"protocol": "#{protocol}", "port": "443", "statusCode": "HTTP_301"}}],
        [{"type": "redirect", "redirect": {"protocol": "HTTP", "port": "8080", "statusCode": "HTTP_302"}}],
        [{"type": "fixed-response", "fixedResponse": {"contentType": "text/plain", "statusCode": "404"}}],
        [],
    ],
    ids=["keeps-the-protocol", "to-http", "fixed-response", "no-action"],
)
def test_elb_1_anything_but_a_redirect_to_https_fails(actions: list[dict[str, Any]]) -> None:
    assert offenders([alb(), listener("redirect", "HTTP", actions)], ELB_1) == ["alb"]


def test_elb_1_judges_application_load_balancers_only_and_waits_for_unknown_values() -> None:
    nlb = alb("nlb", NLB, loadBalancerType="network")
    assert offenders([nlb, listener("tcp", "TCP", lb=NLB)], ELB_1) == []
    assert offenders([alb(), listener("later", UNKNOWN)], ELB_1) == []
    assert offenders([alb(), listener("later", "HTTP", UNKNOWN)], ELB_1) == []


def test_elb_1_finds_the_listener_of_a_load_balancer_not_created_yet_through_its_dependency() -> None:
    lb = alb(arn="")
    lb = dataclasses.replace(lb, ids=frozenset())
    http = listener("test", "HTTP", lb=UNKNOWN)
    http = dataclasses.replace(http, property_dependencies={"loadBalancerArn": frozenset({lb.urn})})
    assert offenders([lb, http], ELB_1) == ["alb"]


# --- ELB.18: listeners use HTTPS (ALB) or TLS (NLB) ------------------------------------------------------------


def test_elb_18_every_plain_alb_listener_fails_on_its_own() -> None:
    stack = [alb(), listener("prod", "HTTPS"), listener("test", "HTTP"), listener("default", None)]
    assert offenders(stack, ELB_18) == ["test", "default"], "a listener without a protocol is HTTP on an ALB"


def test_elb_18_judges_the_protocol_even_of_a_redirect() -> None:
    # The Config rule names no exception for redirects: "NON_COMPLIANT if listeners are not configured with HTTPS
    # or TLS termination". https://docs.aws.amazon.com/config/latest/developerguide/elbv2-listener-encryption-in-transit.html
    [(name, message)] = reported([alb(), listener("redirect", "HTTP", TO_HTTPS)], ELB_18)
    assert name == "redirect" and "only redirects to HTTPS" in message


def test_elb_18_wants_tls_on_a_network_load_balancer_and_ignores_gateway_ones() -> None:
    nlb = alb("nlb", NLB, loadBalancerType="network")
    gwlb = alb("gwlb", f"{NLB}-gw", loadBalancerType="gateway")
    stack = [nlb, listener("tcp", "TCP", lb=NLB), listener("tls", "TLS", lb=NLB), gwlb, listener("geneve", None)]
    stack[-1] = dataclasses.replace(stack[-1], props={**stack[-1].props, "loadBalancerArn": f"{NLB}-gw"})
    [(name, message)] = reported(stack, ELB_18)
    assert name == "tcp" and "use TLS" in message


def test_elb_18_judges_a_listener_of_an_outside_load_balancer_by_its_protocol() -> None:
    outside = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/shared/9"
    stack = [listener("http", "HTTP", lb=outside), listener("https", "HTTPS", lb=outside)]
    stack += [listener("unnamed", None, lb=outside), listener("later", UNKNOWN, lb=outside)]
    assert offenders(stack, ELB_18) == ["http"]


def test_the_https_tls13_rule_still_judges_an_https_listeners_policy() -> None:
    weak = listener("test", "HTTPS", sslPolicy="ELBSecurityPolicy-2016-08")
    assert offenders([alb(), weak], ELB_18) == []
    assert {v.rule for v in rules.check_resource(weak.type, weak.props)} == {"https-listener-tls13"}


# --- IAM.2: no policy on a user -------------------------------------------------------------------------------

DOCUMENT = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/k"}]}'
)


@pytest.mark.parametrize(
    ("type_", "props"),
    [
        (rt.IAM_USER_POLICY, {"user": "uploader", "policy": DOCUMENT}),
        (rt.IAM_USER_POLICY_ATTACHMENT, {"user": "uploader", "policyArn": "arn:aws:iam::123456789012:policy/p"}),
        (rt.IAM_USER_POLICY_ATTACHMENTS_EXCLUSIVE, {"userName": "uploader", "policyArns": ["arn:p"]}),
        (rt.IAM_USER_POLICIES_EXCLUSIVE, {"userName": "uploader", "policyNames": ["inline"]}),
        (rt.IAM_POLICY_ATTACHMENT, {"users": ["uploader"], "policyArn": "arn:p"}),
    ],
)
def test_iam_2_a_policy_given_to_a_user_is_refused(type_: str, props: dict[str, Any]) -> None:
    [violation] = [v for v in rules.check_resource(type_, props) if v.rule == IAM_2]
    assert "'uploader'" in violation.message and "group" in violation.message


@pytest.mark.parametrize(
    ("type_", "props"),
    [
        (rt.IAM_GROUP_POLICY, {"group": "uploaders", "policy": DOCUMENT}),
        (rt.IAM_GROUP_POLICY_ATTACHMENT, {"group": "uploaders", "policyArn": "arn:p"}),
        (rt.IAM_GROUP_MEMBERSHIP, {"group": "uploaders", "users": ["uploader"]}),
        # An exclusive list that is empty makes sure the user has no policy: what IAM.2 wants.
        (rt.IAM_USER_POLICY_ATTACHMENTS_EXCLUSIVE, {"userName": "uploader", "policyArns": []}),
        (rt.IAM_USER_POLICIES_EXCLUSIVE, {"userName": "uploader", "policyNames": []}),
        (rt.IAM_POLICY_ATTACHMENT, {"groups": ["uploaders"], "users": [], "policyArn": "arn:p"}),
        (rt.IAM_POLICY_ATTACHMENT, {"users": UNKNOWN, "policyArn": "arn:p"}),
    ],
)
def test_iam_2_policies_on_groups_pass(type_: str, props: dict[str, Any]) -> None:
    assert [v for v in rules.check_resource(type_, props) if v.rule == IAM_2] == []


# --- IAM.3: access keys rotated within 90 days ----------------------------------------------------------------


def rotation(name: str = "rotation", **props: Any) -> Resource:
    return res(rt.TIME_ROTATING, name, props)


def key(*depends_on: Resource, **props: Any) -> Resource:
    return res(rt.IAM_ACCESS_KEY, "key", {"user": "uploader", **props}, depends_on=tuple(r.urn for r in depends_on))


@pytest.mark.parametrize(
    "schedule",
    [
        {"rotationDays": 80},
        {"rotationDays": 90},
        {"rotationMonths": 2},
        {"rotationHours": 24},
        {"rotationDays": UNKNOWN},
    ],
)
def test_iam_3_a_key_replaced_by_a_schedule_of_at_most_90_days_passes(schedule: dict[str, Any]) -> None:
    schedule_ = rotation(**schedule)
    assert offenders([schedule_, key(schedule_)], IAM_3) == []


@pytest.mark.parametrize(
    "schedule",
    [
        {"rotationDays": 91},
        {"rotationMonths": 3},  # up to 92 days
        {"rotationYears": 1},
        {"rotationRfc3339": "2026-01-01T00:00:00Z"},  # one instant, not a schedule
        {"rotationDays": 30, "rotationYears": 1},  # the provider applies years last
    ],
)
def test_iam_3_a_longer_schedule_or_a_fixed_date_fails(schedule: dict[str, Any]) -> None:
    schedule_ = rotation(**schedule)
    [(name, message)] = reported([schedule_, key(schedule_)], IAM_3)
    assert name == "key" and "longer than 90 days" in message


def test_iam_3_a_key_nothing_replaces_fails() -> None:
    unrelated = rotation(rotationDays=30)
    [(name, message)] = reported([unrelated, key()], IAM_3)
    assert name == "key" and "depends on no time Rotating" in message


def test_iam_3_an_inactive_key_is_not_judged() -> None:
    # access-keys-rotated judges active keys. https://docs.aws.amazon.com/config/latest/developerguide/access-keys-rotated.html
    assert offenders([key(status="Inactive")], IAM_3) == []
    assert offenders([key(status="Active")], IAM_3) == ["key"]


def policy_resource(resource: Resource, dependencies: list[PolicyResource] | None = None) -> PolicyResource:
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return PolicyResource(
        resource.type,
        policy_proxy.unknown_checking_proxy(dict(resource.props)),
        resource.urn,
        resource.name,
        options,
        None,
        None,
        dependencies or [],
        {},
    )


def test_iam_3_through_the_pulumi_policy_adapter_reads_the_keys_dependencies() -> None:
    """What the pack sees under the Pulumi CLI: pulumi-policy's resources, their dependencies by resource."""
    policy = next(p for p in pack.policies() if p.name == IAM_3)
    assert isinstance(policy, StackValidationPolicy)
    schedule = policy_resource(rotation(rotationDays=80))

    def validate(*resources: PolicyResource) -> list[str | None]:
        urns: list[str | None] = []

        def report(message: str, urn: str | None = None) -> None:
            urns.append(urn)

        policy.validate(StackValidationArgs(list(resources)), report)
        return urns

    assert validate(schedule, policy_resource(key(), [schedule])) == []
    assert validate(schedule, policy_resource(key())) == [key().urn]


# --- The committed stacks -------------------------------------------------------------------------------------


def listeners(found: ProgramRun) -> dict[str, Registration]:
    """The service's listeners by role: ``prod``, ``test`` and, with HTTPS, ``http-redirect``."""
    return {r.name.removeprefix("service-"): r for r in found.of_type(rt.LB_LISTENER)}


@pytest.fixture(scope="module")
def prod_ecs() -> ProgramRun:
    return stack_run("prod", overrides={"deploymentEngine": "ecs"})


def test_prod_serves_the_test_listener_over_https_with_the_production_certificate(prod: ProgramRun) -> None:
    by_role = listeners(prod)
    test, production = by_role["test"], by_role["prod"]
    assert (test.props["protocol"], test.props["port"]) == ("HTTPS", 8080)
    assert test.props["certificateArn"] == production.props["certificateArn"]
    assert test.props["sslPolicy"] == production.props["sslPolicy"]
    assert prod.outputs["testUrl"] == "https://app.example.com:8080/"


def test_codedeploy_tests_on_the_https_listener(prod: ProgramRun) -> None:
    [group] = prod.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP)
    pair = group.props["loadBalancerInfo"]["targetGroupPairInfo"]
    by_role = listeners(prod)
    assert pair["testTrafficRoute"]["listenerArns"] == [by_role["test"].state["arn"]]
    assert pair["prodTrafficRoute"]["listenerArns"] == [by_role["prod"].state["arn"]]


def test_ecs_native_blue_green_tests_on_the_https_listener(prod_ecs: ProgramRun) -> None:
    [service] = prod_ecs.of_type(rt.ECS_SERVICE)
    [balancer] = service.props["loadBalancers"]
    test_rule = balancer["advancedConfiguration"]["testListenerRule"]
    [rule] = [r for r in prod_ecs.of_type(rt.LB_LISTENER_RULE) if r.state["arn"] == test_rule]
    test = listeners(prod_ecs)["test"]
    assert rule.props["listenerArn"] == test.state["arn"]
    assert test.props["protocol"] == "HTTPS"
    assert_only_by_design(prod_ecs)


def test_the_test_port_is_open_only_to_the_test_cidrs() -> None:
    found = stack_run("prod", overrides={"testListenerCidrs": '["198.51.100.0/24"]'})
    on_test_port = [r.props for r in found.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE) if r.props["fromPort"] == 8080]
    assert [(p["cidrIpv4"], p["toPort"]) for p in on_test_port] == [("198.51.100.0/24", 8080)]
    assert_only_by_design(found)


@pytest.mark.parametrize("stack", STACKS)
def test_the_by_design_findings_are_those_of_the_sites_scheme(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    found = runs(stack)
    https = bool(found.of_type(rt.ACM_CERTIFICATE))
    rules_fired = sorted(rule for rule, _ in by_design(found))
    assert rules_fired == ([ELB_18] if https else [ELB_1, ELB_18, ELB_18])
    assert [f for f in findings(found) if f[0] in (ELB_1, ELB_18)] == by_design(found)


def regressed(found: ProgramRun, change: Callable[[Resource], Resource | None]) -> list[Resource]:
    """The run's resources as the pack sees them, each passed through ``change`` (``None`` drops it)."""
    changed = [change(rules.from_registration(r)) for r in found.resources]
    return [r for r in changed if r is not None]


def test_the_pack_fails_prod_if_its_test_listener_goes_back_to_http(prod: ProgramRun) -> None:
    test = listeners(prod)["test"]

    def plain(r: Resource) -> Resource:
        return dataclasses.replace(r, props={**r.props, "protocol": "HTTP"}) if r.urn == test.urn else r

    before = {(v.rule, v.urn) for v in rules.check_stack(regressed(prod, lambda r: r))}
    added = {(v.rule, v.urn) for v in rules.check_stack(regressed(prod, plain))} - before
    lb = prod.one(rt.LB_LOAD_BALANCER)
    assert added == {(ELB_1, lb.urn), (ELB_18, test.urn)}


@pytest.mark.parametrize("stack", STACKS)
def test_each_stacks_upload_user_takes_its_permission_from_a_group(
    stack: str, runs: Callable[[str], ProgramRun]
) -> None:
    found = runs(stack)
    user, group = found.one(rt.IAM_USER), found.one(rt.IAM_GROUP)
    assert found.one(rt.IAM_GROUP_MEMBERSHIP).props["users"] == [user.props["name"]]
    assert found.one(rt.IAM_GROUP_POLICY).props["group"] == group.props["name"]
    assert found.of_type(rt.IAM_USER_POLICY) == []


@pytest.mark.parametrize("stack", STACKS)
def test_each_stacks_gitlab_variables_follow_the_rotated_key(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    """The variables read the key's outputs: when the rotation replaces the key, the same update sets them to the
    new key (created before the old one is deleted)."""
    found = runs(stack)
    key_, schedule = found.one(rt.IAM_ACCESS_KEY), found.one(rt.TIME_ROTATING)
    assert schedule.props == {"rotationDays": 80}
    assert key_.replacement_trigger == schedule.state["rfc3339"] and key_.delete_before_replace is False
    variables = {v.props["key"]: v for v in found.of_type(rt.GITLAB_PROJECT_VARIABLE)}
    for name, value in (("AWS_ACCESS_KEY", key_.id), ("AWS_SECRET_KEY", key_.state["secret"]["value"])):
        assert key_.urn in variables[name].dependencies, name
        assert variables[name].props["value"] == value, name


def test_the_pack_fails_a_stack_whose_user_gets_a_policy_again_or_whose_key_stops_rotating(dev: ProgramRun) -> None:
    user, key_ = dev.one(rt.IAM_USER), dev.one(rt.IAM_ACCESS_KEY)
    resources = regressed(dev, lambda r: r)
    inline = res(rt.IAM_USER_POLICY, "inline", {"user": user.props["name"], "policy": DOCUMENT})

    def unscheduled(r: Resource) -> Resource | None:
        if r.type == rt.TIME_ROTATING:
            return None
        return dataclasses.replace(r, dependencies=frozenset()) if r.urn == key_.urn else r

    before = {(v.rule, v.urn) for v in rules.check_stack(resources)}

    def added(stack: list[Resource]) -> set[tuple[str, str]]:
        return {(v.rule, v.urn) for v in rules.check_stack(stack)} - before

    assert added([*resources, inline]) == {(IAM_2, inline.urn)}
    assert added(regressed(dev, unscheduled)) == {(IAM_3, key_.urn)}


def test_the_offline_engine_answers_a_rotating_only_for_the_schedule_it_knows() -> None:
    found = run(lambda: pulumiverse_time.Rotating("r", rotation_days=7))
    schedule = found.one(rt.TIME_ROTATING)
    assert schedule.id == schedule.state["rfc3339"] == "2025-01-01T00:00:00Z"
    assert (schedule.state["rotationRfc3339"], schedule.state["day"]) == ("2025-01-08T00:00:00Z", 8)
    with pytest.raises(Exception, match="rotationDays only"):
        run(lambda: pulumiverse_time.Rotating("r", rotation_months=1))


@pytest.mark.parametrize("stack", STACKS)
def test_the_rotatings_inputs_are_what_pulumiverse_time_registers(
    stack: str, runs: Callable[[str], ProgramRun]
) -> None:
    """The schema-check tool knows the aws, gitlab and tls schemas only: the Rotating's inputs are checked here,
    against pulumiverse-time's own RotatingArgs (property names and types)."""
    schedule = runs(stack).one(rt.TIME_ROTATING)
    source = module_source(rt.TIME_ROTATING)
    assert set(schedule.props) == {"rotationDays"}
    assert '@pulumi.getter(name="rotationDays")\n    def rotation_days(self) -> Optional[pulumi.Input[int]]:' in source
    days = schedule.props["rotationDays"]
    assert days == int(days) and 7 <= days <= 90
