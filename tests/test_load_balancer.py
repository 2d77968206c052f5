"""LoadBalancer on Pulumi mocks: the ALB side of the FargateService. Who reaches the site on which ports, the
blue and green target groups CodeDeploy swaps, the listeners it rewrites, HTTPS with its redirect and DNS name,
deletion protection and the access-log bucket.

The load balancer is built as ``__main__.py`` wires it (``load_balancer`` below): with a ``Certificate`` when the
config creates one, else with the configured certificate ARN, or none; in an existing VPC's subnets
(``support.bundles.subnets``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pytest

from components import iam
from components.base import component_type
from components.certificate import site_certificate_arn
from components.config import StackConfig
from components.load_balancer import (
    ACCESS_LOGS_PREFIX,
    CODEDEPLOY_OWNED_LISTENER_FIELDS,
    DEREGISTRATION_DELAY,
    ECS_OWNED_RULE_FIELDS,
    ELB_LOG_ACCOUNTS,
    HEALTH_CHECK_INTERVAL,
    HEALTHY_THRESHOLD,
    UNHEALTHY_THRESHOLD,
    LoadBalancer,
    LoadBalancerArgs,
    LoadBalancerConfig,
    ServiceEndpoints,
    TrafficControl,
    check_certificate,
    elb_log_writer,
)
from offline.engine import ACCOUNT_ID, ProgramRun, Registration
from policy import resource_types as rt
from policy import rules
from support import bundles, pack
from support.aws import assert_valid_request, parliament_findings, policy_of
from support.stacks import REGION, component, run, stack_config

NAME = "service"
VALUES: dict[str, str] = {
    "appName": "shop",
    "containerPort": "8080",
    "healthCheckPath": "/health",
    "listenerPort": "80",
    "testListenerPort": "9000",
    "allowedCidrs": '["203.0.113.0/24", "2001:db8::/32"]',
    "testListenerCidrs": '["192.0.2.0/24"]',
    "logRetentionDays": "30",
}
PREFIX = "shop-dev"
"""``<appName>-<stack>`` of ``VALUES`` in the dev stack."""
DOMAIN = "shop.example.com"
ZONE = "Z0123456789ABCDEFGHIJ"
EXISTING_CERTIFICATE = f"arn:aws:acm:{REGION}:{ACCOUNT_ID}:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def config(**changes: str | None) -> StackConfig:
    """``VALUES`` changed by ``changes`` (``None`` removes a key), validated as a stack file's."""
    merged = {**VALUES, **changes}
    return stack_config({k: v for k, v in merged.items() if v is not None})


def load_balancer(cfg: StackConfig, name: str = NAME) -> LoadBalancer:
    """The LoadBalancer as ``__main__.py`` wires it, its endpoints exported."""
    lb = cfg.load_balancer
    certificate_arn = site_certificate_arn("certificate", lb)
    subnets = bundles.subnets()
    made = LoadBalancer(
        name,
        LoadBalancerArgs(
            context=cfg.context,
            config=lb,
            vpc_id=subnets.vpc_id,
            public_subnet_ids=subnets.public_subnet_ids,
            target_port=cfg.container.container_port,
            health_check_path=cfg.container.health_check_path,
            certificate_arn=certificate_arn,
        ),
    )
    export(made.endpoints)
    pulumi.export("buckets", [{"name": b.name, "arn": b.arn, "role": b.role} for b in made.buckets])
    return made


def export(e: ServiceEndpoints) -> None:
    pulumi.export("url", e.url)
    pulumi.export("testUrl", e.test_url)
    pulumi.export("albDnsName", e.alb_dns_name)
    pulumi.export("loadBalancerArnSuffix", e.load_balancer_arn_suffix)
    pulumi.export("prodListenerArn", e.prod_listener_arn)
    pulumi.export("testListenerArn", e.test_listener_arn)
    for color, group in (("blue", e.blue), ("green", e.green)):
        pulumi.export(color, {"name": group.name, "arn": group.arn, "arnSuffix": group.arn_suffix})
    pulumi.export("accessLogsBucket", e.access_logs_bucket)


def lb_run(**changes: str | None) -> ProgramRun:
    cfg = config(**changes)
    return run(lambda: load_balancer(cfg))


@pytest.fixture(scope="module")
def http() -> ProgramRun:
    """HTTP only (no domain), listeners on 80 and 9000, access logs on (the default)."""
    return lb_run()


@pytest.fixture(scope="module")
def https() -> ProgramRun:
    """HTTPS with a certificate the stack creates in the site's zone; the production port is left to default."""
    return lb_run(listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE)


def module(token: str) -> str:
    """The provider module of a type token: ``aws:s3`` of ``aws:s3/bucket:Bucket``."""
    return token.split("/", 1)[0]


def listener(found: ProgramRun, role: str) -> Registration:
    return found.one(rt.LB_LISTENER, f"{NAME}-{role}")


def alb_sg(found: ProgramRun) -> Registration:
    return found.one(rt.EC2_SECURITY_GROUP, f"{NAME}-alb")


def reachable_ports(found: ProgramRun, sg: Registration, source_ip: str) -> set[int]:
    """Ports of ``sg`` a client at ``source_ip`` can open, from the ingress rules as AWS evaluates them: rules
    only allow, and any rule that matches allows
    (https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html)."""
    ports: set[int] = set()
    for rule in found.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE):
        p = rule.props
        if p["securityGroupId"] != sg.id:
            continue
        assert p["ipProtocol"] == "tcp"
        cidr = p.get("cidrIpv4") or p.get("cidrIpv6")
        if cidr and ipaddress.ip_address(source_ip) in ipaddress.ip_network(cidr):
            ports.update(range(int(p["fromPort"]), int(p["toPort"]) + 1))
    return ports


# --- Drift contract with CodeDeploy ---------------------------------------------------------------


def test_both_listeners_leave_their_actions_to_codedeploy(http: ProgramRun) -> None:
    # CodeDeploy's ECS blue/green deployment rewrites the production and test listeners' forward actions
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-bluegreen.html).
    assert CODEDEPLOY_OWNED_LISTENER_FIELDS == ("defaultActions",)
    listeners = http.of_type(rt.LB_LISTENER)
    assert len(listeners) == 2
    assert all(r.ignore_changes == ["defaultActions"] for r in listeners)
    others = [r.name for r in http.resources if r.ignore_changes and r.type != rt.LB_LISTENER]
    assert others == []


# --- Load balancing ---------------------------------------------------------------------------------


def test_two_ip_target_groups_with_fast_health_checks(http: ProgramRun) -> None:
    groups = {r.name: r.props for r in http.of_type(rt.LB_TARGET_GROUP)}
    assert set(groups) == {f"{NAME}-blue", f"{NAME}-green"}
    for props in groups.values():
        # awsvpc tasks (Fargate) register by IP: their target groups must have target type ip
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-ecs-service-loadbalancer.html).
        assert props["targetType"] == "ip", "awsvpc tasks register by IP"
        assert (props["port"], props["protocol"]) == (8080, "HTTP")
        assert props["vpcId"] == "vpc-0123456789abcdef0"
        assert props["deregistrationDelay"] == DEREGISTRATION_DELAY
        check = props["healthCheck"]
        assert check["path"] == "/health"
        assert check["interval"] == HEALTH_CHECK_INTERVAL
        assert (check["healthyThreshold"], check["unhealthyThreshold"]) == (HEALTHY_THRESHOLD, UNHEALTHY_THRESHOLD)
        # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
        assert check["timeout"] < check["interval"], "AWS requires the timeout to be shorter than the interval"
    assert {g["name"] for g in groups.values()} == {f"{PREFIX}-blue", f"{PREFIX}-green"}
    # A target turns healthy within half a minute, and a draining one is gone within 15 s.
    assert HEALTH_CHECK_INTERVAL * HEALTHY_THRESHOLD <= 30
    assert DEREGISTRATION_DELAY <= 30


def test_prod_listener_forwards_to_blue_and_test_listener_to_green(http: ProgramRun) -> None:
    blue = http.one(rt.LB_TARGET_GROUP, f"{NAME}-blue").state["arn"]
    green = http.one(rt.LB_TARGET_GROUP, f"{NAME}-green").state["arn"]
    alb = http.one(rt.LB_LOAD_BALANCER).state["arn"]
    prod = listener(http, "prod").props
    test = listener(http, "test").props
    assert (prod["port"], prod["loadBalancerArn"]) == (80, alb)
    assert (test["port"], test["loadBalancerArn"]) == (9000, alb)
    assert prod["defaultActions"] == [{"type": "forward", "targetGroupArn": blue}]
    assert test["defaultActions"] == [{"type": "forward", "targetGroupArn": green}]


def test_alb_is_internet_facing_in_the_public_subnets(http: ProgramRun) -> None:
    alb = http.one(rt.LB_LOAD_BALANCER)
    assert alb.props["internal"] is False and alb.props["loadBalancerType"] == "application"
    assert alb.props["subnets"] == ["subnet-0public00000000a", "subnet-0public00000000b"]
    assert alb.props["securityGroups"] == [alb_sg(http).id]
    assert alb.props["name"] == PREFIX
    dns = alb.state["dnsName"]
    assert http.outputs["url"] == f"http://{dns}/", "port 80 is the scheme's default: not in the URL"
    assert http.outputs["testUrl"] == f"http://{dns}:9000/"
    assert http.outputs["albDnsName"] == dns


def test_endpoints_name_the_listeners_target_groups_and_metric_dimensions(http: ProgramRun) -> None:
    # CloudWatch dimensions of ALB metrics: LoadBalancer is "app/<name>/<id>" and TargetGroup is
    # "targetgroup/<name>/<id>", the final portions of their ARNs
    # (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html).
    alb_arn = http.one(rt.LB_LOAD_BALANCER).state["arn"]
    assert http.outputs["loadBalancerArnSuffix"] == alb_arn.split(":loadbalancer/", 1)[1]
    assert http.outputs["loadBalancerArnSuffix"].startswith(f"app/{PREFIX}/")
    for color in ("blue", "green"):
        group = http.one(rt.LB_TARGET_GROUP, f"{NAME}-{color}").state
        ref = http.outputs[color]
        assert ref["name"] == f"{PREFIX}-{color}"
        assert ref["arn"] == group["arn"]
        assert ref["arnSuffix"] == group["arn"].rsplit(":", 1)[1]
        assert ref["arnSuffix"].startswith(f"targetgroup/{PREFIX}-{color}/")
    assert http.outputs["prodListenerArn"] == listener(http, "prod").state["arn"]
    assert http.outputs["testListenerArn"] == listener(http, "test").state["arn"]


# --- Security group: who reaches what ------------------------------------------------------------------


def test_alb_takes_the_listener_ports_only_from_the_configured_cidrs(http: ProgramRun) -> None:
    sg = alb_sg(http)
    assert reachable_ports(http, sg, "203.0.113.9") == {80}
    assert reachable_ports(http, sg, "2001:db8::1") == {80}
    assert reachable_ports(http, sg, "192.0.2.4") == {9000}, "the test port only from test CIDRs"
    assert reachable_ports(http, sg, "198.51.100.7") == set(), "anyone else reaches nothing"
    assert "ingress" not in sg.props and "egress" not in sg.props, "rules are separate resources only"
    assert all(r.props.get("description") for r in http.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE))


def test_each_rule_names_its_cidr_in_the_field_of_its_ip_version(http: ProgramRun) -> None:
    # An ingress rule takes an IPv4 range as CidrIpv4 and an IPv6 range as CidrIpv6, one per rule
    # (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AuthorizeSecurityGroupIngress.html).
    versions = []
    for rule in http.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE):
        p = rule.props
        assert ("cidrIpv4" in p) != ("cidrIpv6" in p), rule.name
        field, cidr = ("cidrIpv4", p["cidrIpv4"]) if "cidrIpv4" in p else ("cidrIpv6", p["cidrIpv6"])
        versions.append((field, ipaddress.ip_network(cidr).version))
    assert sorted(set(versions)) == [("cidrIpv4", 4), ("cidrIpv6", 6)]


def test_the_alb_has_no_way_out_of_its_own(http: ProgramRun) -> None:
    # The provider removes the allow-all egress rule AWS adds to a new security group, so the group sends
    # nothing until a rule says so (https://www.pulumi.com/registry/packages/aws/api-docs/ec2/securitygroup/).
    # The FargateService adds the one way out: the container port to the tasks.
    assert http.of_type(rt.VPC_SECURITY_GROUP_EGRESS_RULE) == []


def test_no_test_cidrs_means_no_way_to_the_test_listener() -> None:
    found = lb_run(testListenerCidrs="[]")
    sg = alb_sg(found)
    ports = [r.props["fromPort"] for r in found.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE)]
    assert ports == [80, 80]
    assert reachable_ports(found, sg, "192.0.2.4") == set()


# --- HTTP only (no certificate) ---------------------------------------------------------------------------


def test_without_a_certificate_the_site_is_plain_http_on_one_listener_and_no_dns(http: ProgramRun) -> None:
    assert [r.name for r in http.of_type(rt.LB_LISTENER)] == [f"{NAME}-prod", f"{NAME}-test"]
    prod = listener(http, "prod").props
    assert prod["protocol"] == "HTTP"
    assert "sslPolicy" not in prod and "certificateArn" not in prod
    assert http.of_type(rt.ROUTE53_RECORD) == [] and http.of_type(rt.ACM_CERTIFICATE) == []


def lb_args(cfg: LoadBalancerConfig, certificate_arn: str | None) -> LoadBalancerArgs:
    return LoadBalancerArgs(
        context=config().context,
        config=cfg,
        vpc_id="vpc-1",
        public_subnet_ids=[],
        target_port=80,
        health_check_path="/",
        certificate_arn=certificate_arn,
    )


def test_a_certificate_that_disagrees_with_the_config_is_refused() -> None:
    http_only = config().load_balancer
    https = config(listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE).load_balancer
    with pytest.raises(ValueError, match="needs a certificate_arn"):
        check_certificate(lb_args(https, None))  # would serve plain HTTP on port 443
    with pytest.raises(ValueError, match="needs no certificate_arn"):
        check_certificate(lb_args(http_only, EXISTING_CERTIFICATE))
    check_certificate(lb_args(https, EXISTING_CERTIFICATE))
    check_certificate(lb_args(http_only, None))


def test_the_refusal_comes_before_anything_exists() -> None:
    https = config(listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE).load_balancer

    def build() -> None:
        with pytest.raises(ValueError, match="needs a certificate_arn"):
            LoadBalancer(NAME, lb_args(https, None))

    assert run(build).resources == [], "not even the component"


# --- HTTPS ---------------------------------------------------------------------------------------------------


def test_https_listener_serves_the_validated_certificate_with_a_tls13_policy(https: ProgramRun) -> None:
    prod = listener(https, "prod")
    validation = https.one(rt.ACM_CERTIFICATE_VALIDATION)
    assert (prod.props["protocol"], prod.props["port"]) == ("HTTPS", 443)
    assert prod.props["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert prod.props["certificateArn"] == validation.props["certificateArn"]
    assert validation.urn in prod.dependencies, "the listener waits until ACM has issued the certificate"
    blue = https.one(rt.LB_TARGET_GROUP, f"{NAME}-blue").state["arn"]
    assert prod.props["defaultActions"] == [{"type": "forward", "targetGroupArn": blue}]
    assert prod.ignore_changes == ["defaultActions"], "still CodeDeploy's production route"
    assert https.outputs["prodListenerArn"] == prod.state["arn"]


def test_port_80_redirects_permanently_to_https_and_is_not_codedeploys(https: ProgramRun) -> None:
    redirect = listener(https, "http-redirect")
    alb = https.one(rt.LB_LOAD_BALANCER).state["arn"]
    assert (redirect.props["protocol"], redirect.props["port"], redirect.props["loadBalancerArn"]) == ("HTTP", 80, alb)
    [action] = redirect.props["defaultActions"]
    # Redirect actions: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/rule-action-types.html
    assert action["type"] == "redirect"
    assert action["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    assert redirect.ignore_changes == [], "Pulumi keeps this action: CodeDeploy never routes through it"
    assert https.outputs["prodListenerArn"] != redirect.state["arn"]
    assert listener(https, "prod").urn in redirect.dependencies, "port 80 is freed first"


def test_test_listener_is_https_like_production_and_closed_to_the_internet(https: ProgramRun) -> None:
    # ELB.18: an ALB listener uses HTTPS; ELB.1: no HTTP listener forwards instead of redirecting.
    # https://docs.aws.amazon.com/securityhub/latest/userguide/elb-controls.html#elb-18
    test, prod = listener(https, "test"), listener(https, "prod")
    assert (test.props["protocol"], test.props["port"]) == ("HTTPS", 9000)
    assert test.props["certificateArn"] == prod.props["certificateArn"], "the site's certificate, once issued"
    assert test.props["sslPolicy"] == prod.props["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https.one(rt.ACM_CERTIFICATE_VALIDATION).urn in test.dependencies
    green = https.one(rt.LB_TARGET_GROUP, f"{NAME}-green").state["arn"]
    assert test.props["defaultActions"] == [{"type": "forward", "targetGroupArn": green}]
    assert test.ignore_changes == ["defaultActions"], "still CodeDeploy's test route"
    assert rules.check_resource(rt.LB_LISTENER, test.props) == [], "https-listener-tls13 judges it like production"
    sg = alb_sg(https)
    assert reachable_ports(https, sg, "203.0.113.9") == {80, 443}
    assert reachable_ports(https, sg, "2001:db8::1") == {80, 443}
    assert reachable_ports(https, sg, "192.0.2.4") == {9000}
    assert reachable_ports(https, sg, "198.51.100.7") == set()


def test_with_the_default_world_cidrs_the_internet_reaches_80_and_443_only() -> None:
    found = lb_run(listenerPort=None, allowedCidrs=None, domainName=DOMAIN, certificateArn=EXISTING_CERTIFICATE)
    sg = alb_sg(found)
    assert reachable_ports(found, sg, "198.51.100.7") == {80, 443}
    assert reachable_ports(found, sg, "192.0.2.4") == {80, 443, 9000}
    assert pack.part_violations(found) == []


def test_the_sites_name_is_an_alias_of_the_alb(https: ProgramRun) -> None:
    alb = https.one(rt.LB_LOAD_BALANCER).state
    record = https.one(rt.ROUTE53_RECORD, f"{NAME}-dns").props
    assert (record["zoneId"], record["name"], record["type"]) == (ZONE, DOMAIN, "A")
    # An alias record names the target's DNS name and hosted zone and has neither records nor a TTL
    # (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/resource-record-sets-values-alias.html).
    assert record["aliases"] == [{"name": alb["dnsName"], "zoneId": alb["zoneId"], "evaluateTargetHealth": True}]
    assert "records" not in record and "ttl" not in record, "an alias has neither"


def test_https_urls(https: ProgramRun) -> None:
    dns = https.one(rt.LB_LOAD_BALANCER).state["dnsName"]
    assert https.outputs["url"] == f"https://{DOMAIN}/"
    # The certificate names the site, not the ALB: the test listener is tried on the site's name.
    assert https.outputs["testUrl"] == f"https://{DOMAIN}:9000/"
    assert https.outputs["albDnsName"] == dns


def test_a_non_default_https_port_is_in_the_url_and_the_redirect() -> None:
    found = lb_run(listenerPort="8443", domainName=DOMAIN, hostedZoneId=ZONE)
    assert found.outputs["url"] == f"https://{DOMAIN}:8443/"
    assert listener(found, "prod").props["port"] == 8443
    [action] = listener(found, "http-redirect").props["defaultActions"]
    assert action["redirect"]["port"] == "8443"
    assert reachable_ports(found, alb_sg(found), "203.0.113.9") == {80, 8443}


def test_the_configured_ssl_policy_is_used() -> None:
    policy = "ELBSecurityPolicy-TLS13-1-3-2021-06"
    found = lb_run(listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE, sslPolicy=policy)
    assert listener(found, "prod").props["sslPolicy"] == policy
    assert listener(found, "test").props["sslPolicy"] == policy


def test_an_existing_certificate_creates_no_acm_or_dns_resources() -> None:
    found = lb_run(listenerPort=None, domainName=DOMAIN, certificateArn=EXISTING_CERTIFICATE)
    acm_or_dns = {module(rt.ACM_CERTIFICATE), module(rt.ROUTE53_RECORD)}
    assert [r.type for r in found.resources if module(r.type) in acm_or_dns] == []
    assert listener(found, "prod").props["certificateArn"] == EXISTING_CERTIFICATE
    assert listener(found, "test").props["certificateArn"] == EXISTING_CERTIFICATE
    assert found.outputs["url"] == f"https://{DOMAIN}/", "the operator points the name at albDnsName"
    assert found.outputs["testUrl"] == f"https://{DOMAIN}:9000/"
    assert found.outputs["albDnsName"] == found.one(rt.LB_LOAD_BALANCER).state["dnsName"]


def test_an_existing_certificate_with_a_zone_gets_the_alias_but_no_new_certificate() -> None:
    found = lb_run(listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE, certificateArn=EXISTING_CERTIFICATE)
    assert found.of_type(rt.ACM_CERTIFICATE) == [] and found.of_type(rt.ACM_CERTIFICATE_VALIDATION) == []
    assert [r.name for r in found.of_type(rt.ROUTE53_RECORD)] == [f"{NAME}-dns"]
    assert listener(found, "prod").props["certificateArn"] == EXISTING_CERTIFICATE


# --- Deletion protection and access logs -----------------------------------------------------------------


def test_alb_deletion_protection_follows_the_config(http: ProgramRun) -> None:
    assert http.one(rt.LB_LOAD_BALANCER).props["enableDeletionProtection"] is True, "on by default"
    off = lb_run(albDeletionProtection="false")
    assert off.one(rt.LB_LOAD_BALANCER).props["enableDeletionProtection"] is False


def access_logs_bucket(found: ProgramRun) -> Registration:
    return found.one(rt.S3_BUCKET, f"{NAME}-access-logs")


def test_alb_writes_access_logs_to_a_bucket_of_its_own(http: ProgramRun) -> None:
    bucket = access_logs_bucket(http)
    expected = f"{PREFIX}-alb-logs-{ACCOUNT_ID}-{REGION}"
    assert bucket.props["bucket"] == expected
    assert http.outputs["accessLogsBucket"] == expected
    alb = http.one(rt.LB_LOAD_BALANCER)
    assert alb.props["accessLogs"] == {"bucket": expected, "prefix": ACCESS_LOGS_PREFIX, "enabled": True}
    policy = http.one(rt.S3_BUCKET_POLICY, f"{NAME}-access-logs-policy")
    # ELB writes a test object when logging is enabled, and refuses to enable it if it cannot (enable-access-
    # logging.html, below): the policy exists first.
    assert policy.urn in alb.dependencies, "ELB writes a test object when logging is enabled: policy first"


def test_access_log_bucket_is_sse_s3_and_expires_logs_after_the_retention(http: ProgramRun) -> None:
    encryption = http.one(rt.S3_BUCKET_ENCRYPTION, f"{NAME}-access-logs-encryption").props
    [rule] = encryption["rules"]
    # enable-access-logging.html: the only server-side encryption ALB log delivery supports is SSE-S3.
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256", "ALB logs support SSE-S3 only"
    lifecycle = http.one(rt.S3_BUCKET_LIFECYCLE, f"{NAME}-access-logs-lifecycle").props
    assert lifecycle["bucket"] == access_logs_bucket(http).id
    [expire] = lifecycle["rules"]
    assert expire["status"] == "Enabled"
    assert expire["expiration"]["days"] == 30
    assert not expire["filter"], "every object of the bucket"


def test_access_log_bucket_policy_grants_elb_only_putobject_under_this_accounts_prefix(http: ProgramRun) -> None:
    policy = http.one(rt.S3_BUCKET_POLICY, f"{NAME}-access-logs-policy")
    assert parliament_findings(policy.props["policy"]) == []
    arn = access_logs_bucket(http).state["arn"]
    statements = policy_of(policy)["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "ElbLogDelivery",
            "Effect": "Allow",
            # eu-west-1 (Ireland) predates August 2022: its regional ELB account writes the logs.
            "Principal": {"AWS": "arn:aws:iam::156460612806:root"},
            "Action": "s3:PutObject",
            "Resource": f"{arn}/{ACCESS_LOGS_PREFIX}/AWSLogs/{ACCOUNT_ID}/*",
        }
    ]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert pack.part_violations(http) == []


# ELB guide, "Enable access logs for your Application Load Balancer", step 2 (attach a policy to your S3 bucket):
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html
# Regions available before August 2022 grant the regional Elastic Load Balancing account (a policy naming the
# log-delivery service principal there is refused when logging is turned on); regions available as of August 2022
# or later grant the service principal logdelivery.elasticloadbalancing.amazonaws.com.
ELB_ACCOUNTS_FROM_THE_GUIDE = {
    "us-east-1": "127311923021",
    "eu-west-1": "156460612806",
    "eu-central-1": "054676820928",
    "ap-northeast-1": "582318560864",
    "ap-southeast-3": "589379963580",
    "sa-east-1": "507241528517",
    "us-gov-west-1": "048591011584",
}
REGIONS_ON_THE_SERVICE_PRINCIPAL = ("ap-south-2", "ap-southeast-4", "eu-south-2", "eu-central-2", "me-central-1")


@pytest.mark.parametrize("region", sorted(ELB_ACCOUNTS_FROM_THE_GUIDE))
def test_older_regions_grant_their_elb_account(region: str) -> None:
    expected = f"arn:aws:iam::{ELB_ACCOUNTS_FROM_THE_GUIDE[region]}:root"
    assert elb_log_writer(region, "aws") == {"AWS": expected}


@pytest.mark.parametrize("region", [*REGIONS_ON_THE_SERVICE_PRINCIPAL, "il-central-1", "mx-central-1"])
def test_regions_opened_since_august_2022_grant_the_log_delivery_service(region: str) -> None:
    assert elb_log_writer(region, "aws") == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}


def test_the_elb_account_of_every_older_region_is_a_twelve_digit_account_in_its_partition() -> None:
    assert all(re.fullmatch(r"\d{12}", account) for account in ELB_LOG_ACCOUNTS.values())
    assert elb_log_writer("cn-north-1", "aws-cn") == {"AWS": "arn:aws-cn:iam::638102146993:root"}
    assert not set(REGIONS_ON_THE_SERVICE_PRINCIPAL) & set(ELB_LOG_ACCOUNTS)


def test_a_newer_region_grants_the_service_principal_in_the_bucket_policy() -> None:
    cfg = stack_config(VALUES, region="eu-central-2")
    found = run(lambda: load_balancer(cfg), region="eu-central-2")
    [allow] = [s for s in policy_of(found.one(rt.S3_BUCKET_POLICY))["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    assert parliament_findings(found.one(rt.S3_BUCKET_POLICY).props["policy"]) == []


def test_no_access_logs_means_no_bucket() -> None:
    made: list[LoadBalancer] = []
    cfg = config(albAccessLogs="false")
    found = run(lambda: made.append(load_balancer(cfg)))
    assert [r.type for r in found.resources if module(r.type) == module(rt.S3_BUCKET)] == []
    assert "accessLogs" not in found.one(rt.LB_LOAD_BALANCER).props
    assert made[0].endpoints.access_logs_bucket is None
    assert found.outputs.get("accessLogsBucket") is None
    assert found.outputs["buckets"] == [], "no bucket to hand on for S3 access logs"


def test_the_access_log_bucket_is_handed_on_for_its_own_access_logs(http: ProgramRun) -> None:
    """``LoadBalancer.buckets``: the access-log bucket, under the role its name carries (the prefix of its S3
    access logs, which ``__main__.py`` has S3AccessLogs write)."""
    bucket = access_logs_bucket(http)
    assert http.outputs["buckets"] == [{"name": bucket.props["bucket"], "arn": bucket.state["arn"], "role": "alb-logs"}]
    assert bucket.props["bucket"].startswith(f"{bundles.PREFIX}-alb-logs-")


def test_only_the_access_logs_are_protected_unless_force_destroy(http: ProgramRun) -> None:
    assert [r.name for r in http.resources if r.protect] == [f"{NAME}-access-logs"], "the data, not its settings"
    assert access_logs_bucket(http).props["forceDestroy"] is False
    forced = lb_run(forceDestroy="true")
    assert [r.name for r in forced.resources if r.protect] == []
    assert access_logs_bucket(forced).props["forceDestroy"] is True


# --- The requests AWS receives ----------------------------------------------------------------------------


def test_the_enum_check_catches_what_it_should() -> None:
    with pytest.raises(AssertionError, match="HTTP301"):
        assert_valid_request(
            "elbv2",
            "CreateListener",
            {
                "LoadBalancerArn": "arn",
                "DefaultActions": [{"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP301"}}],
            },
        )


def create_listener(reg: Registration) -> dict[str, Any]:
    """The ELBv2 CreateListener request for a listener on mocks, as the provider sends it."""
    p = reg.props
    params: dict[str, Any] = {
        "LoadBalancerArn": p["loadBalancerArn"],
        "Protocol": p["protocol"],
        "Port": int(p["port"]),  # Pulumi carries every number as a float
        "DefaultActions": [],
    }
    if "sslPolicy" in p:
        params["SslPolicy"] = p["sslPolicy"]
    if "certificateArn" in p:
        params["Certificates"] = [{"CertificateArn": p["certificateArn"]}]
    for action in p["defaultActions"]:
        if action["type"] == "forward":
            params["DefaultActions"].append({"Type": "forward", "TargetGroupArn": action["targetGroupArn"]})
        else:
            r = action["redirect"]
            params["DefaultActions"].append(
                {
                    "Type": action["type"],
                    "RedirectConfig": {"Protocol": r["protocol"], "Port": r["port"], "StatusCode": r["statusCode"]},
                }
            )
    return params


def test_listeners_are_valid_elbv2_requests(https: ProgramRun) -> None:
    listeners = https.of_type(rt.LB_LISTENER)
    assert len(listeners) == 3
    for reg in listeners:
        assert_valid_request("elbv2", "CreateListener", create_listener(reg))
    for role in ("prod", "test"):
        request = create_listener(listener(https, role))
        assert request["Protocol"] == "HTTPS" and request["SslPolicy"] and request["Certificates"]


def test_target_groups_are_valid_elbv2_requests(http: ProgramRun) -> None:
    for group in http.of_type(rt.LB_TARGET_GROUP):
        p, check = group.props, group.props["healthCheck"]
        params = {
            "Name": p["name"],
            "Protocol": p["protocol"],
            "Port": int(p["port"]),
            "VpcId": p["vpcId"],
            "TargetType": p["targetType"],
            "HealthCheckPath": check["path"],
            "HealthCheckIntervalSeconds": int(check["interval"]),
            "HealthCheckTimeoutSeconds": int(check["timeout"]),
            "HealthyThresholdCount": int(check["healthyThreshold"]),
            "UnhealthyThresholdCount": int(check["unhealthyThreshold"]),
            "Matcher": {"HttpCode": check["matcher"]},
        }
        assert_valid_request("elbv2", "CreateTargetGroup", params)


def test_alb_attributes_are_valid_elbv2_requests(http: ProgramRun) -> None:
    alb = http.one(rt.LB_LOAD_BALANCER)
    logs = alb.props["accessLogs"]
    attributes = {
        "deletion_protection.enabled": alb.props["enableDeletionProtection"],
        "routing.http.drop_invalid_header_fields.enabled": alb.props["dropInvalidHeaderFields"],
        "access_logs.s3.enabled": logs["enabled"],
        "access_logs.s3.bucket": logs["bucket"],
        "access_logs.s3.prefix": logs["prefix"],
    }
    params = {
        "LoadBalancerArn": alb.state["arn"],
        "Attributes": [{"Key": k, "Value": str(v).lower()} for k, v in attributes.items()],
    }
    assert_valid_request("elbv2", "ModifyLoadBalancerAttributes", params)
    # ELB forbids "AWSLogs" in the prefix (it adds that part itself) and a leading or trailing slash
    # (enable-access-logging.html).
    assert "AWSLogs" not in logs["prefix"] and logs["prefix"].strip("/") == logs["prefix"]


def test_alias_record_is_a_valid_route53_request(https: ProgramRun) -> None:
    record = https.one(rt.ROUTE53_RECORD, f"{NAME}-dns").props
    [alias] = record["aliases"]
    change = {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": record["name"],
            "Type": record["type"],
            "AliasTarget": {
                "HostedZoneId": alias["zoneId"],
                "DNSName": alias["name"],
                "EvaluateTargetHealth": alias["evaluateTargetHealth"],
            },
        },
    }
    params = {"HostedZoneId": record["zoneId"], "ChangeBatch": {"Changes": [change]}}
    assert_valid_request("route53", "ChangeResourceRecordSets", params)


# --- Component shape -----------------------------------------------------------------------------------


def test_every_child_is_named_after_the_component_and_parented_to_it(https: ProgramRun) -> None:
    lb = component(https, "LoadBalancer", NAME)
    children = https.children_of(lb)
    certificate = component(https, "Certificate")
    others = [r for r in https.resources if r.urn not in (lb.urn, certificate.urn) and r.parent != certificate.urn]
    assert {r.urn for r in children} == {r.urn for r in others}, "every resource but the certificate's is a child"
    assert all(r.name.startswith(f"{NAME}-") for r in children), [r.name for r in children]


def test_on_its_own_it_claims_no_former_parent(http: ProgramRun) -> None:
    # An alias to a former parent is the FargateService's business (``children_formerly_of``): built alone, the
    # load balancer's children claim no URN under another parent (the provider's own type aliases aside).
    lb = component(http, "LoadBalancer", NAME)
    for r in http.children_of(lb):
        parent_types = {alias.split("::")[2].split("$")[-2] for alias in r.aliases}
        assert parent_types <= {component_type(LoadBalancer)}, (r.name, r.aliases)


def test_physical_names_derive_from_the_prefix(http: ProgramRun) -> None:
    physical = [r.props["name"] for r in http.resources if r.custom and "name" in r.props]
    physical += [r.props["bucket"] for r in http.of_type(rt.S3_BUCKET)]
    assert len(physical) >= 5 and all(n.startswith(PREFIX) for n in physical), physical


# --- ECS-native blue/green: one weighted rule per listener (traffic_control "rules") ------------------------
#
# With the ecs engine ECS shifts traffic by reweighting one listener rule per listener (the production rule and
# the test rule), each forwarding to both target groups.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/alb-resources-for-blue-green.html

# The AWS managed policy ECS's infrastructure role for load balancers is documented with (version 6, the
# default), from the AWS Managed Policy Reference:
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonECSInfrastructureRolePolicyForLoadBalancers.html
MANAGED_TRAFFIC_SHIFTING_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ELBReadOperations",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:DescribeListeners",
                "elasticloadbalancing:DescribeRules",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
            ],
            "Resource": "*",
        },
        {
            "Sid": "TargetGroupOperations",
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
            "Resource": "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
        },
        {
            "Sid": "ALBModifyListeners",
            "Effect": "Allow",
            "Action": "elasticloadbalancing:ModifyListener",
            "Resource": ["arn:aws:elasticloadbalancing:*:*:listener/app/*/*/*"],
        },
        {
            "Sid": "NLBModifyListeners",
            "Effect": "Allow",
            "Action": "elasticloadbalancing:ModifyListener",
            "Resource": ["arn:aws:elasticloadbalancing:*:*:listener/net/*/*/*"],
        },
        {
            "Sid": "ALBModifyRules",
            "Effect": "Allow",
            "Action": "elasticloadbalancing:ModifyRule",
            "Resource": ["arn:aws:elasticloadbalancing:*:*:listener-rule/app/*/*/*/*"],
        },
    ],
}
# The Service Authorization Reference lists no resource type for these: a statement must name "*".
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_elasticloadbalancingv2.html
ELB_DESCRIBE_ACTIONS = {
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
}


def rules_load_balancer(
    cfg: StackConfig, name: str = NAME, *, traffic_control: TrafficControl = "rules", prefix: str | None = None
) -> LoadBalancer:
    """The LoadBalancer as the FargateService wires it for ``traffic_control`` (``prefix`` replaces the stack's
    name prefix); its rule ARNs exported under ``<name>-``, and with rules the traffic-shifting statements as a
    policy document."""
    lb = cfg.load_balancer
    subnets = bundles.subnets()
    context = cfg.context if prefix is None else replace(cfg.context, name_prefix=prefix)
    made = LoadBalancer(
        name,
        LoadBalancerArgs(
            context=context,
            config=lb,
            vpc_id=subnets.vpc_id,
            public_subnet_ids=subnets.public_subnet_ids,
            target_port=cfg.container.container_port,
            health_check_path=cfg.container.health_check_path,
            certificate_arn=site_certificate_arn(f"{name}-certificate", lb),
            traffic_control=traffic_control,
        ),
    )
    pulumi.export(f"{name}-prodRuleArn", made.endpoints.prod_rule_arn)
    pulumi.export(f"{name}-testRuleArn", made.endpoints.test_rule_arn)
    if traffic_control == "rules":
        pulumi.export(f"{name}-trafficShifting", iam.policy_document(*made.traffic_shifting_statements()))
    return made


@pytest.fixture(scope="module")
def ruled() -> ProgramRun:
    """HTTP, listeners on 80 and 9000, traffic on rules."""
    cfg = config()
    return run(lambda: rules_load_balancer(cfg))


@pytest.fixture(scope="module")
def ruled_https() -> ProgramRun:
    """HTTPS (and the port-80 redirect) with a certificate the stack creates, traffic on rules."""
    cfg = config(listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE)
    return run(lambda: rules_load_balancer(cfg))


@pytest.fixture(scope="module")
def neighbours() -> ProgramRun:
    """Two load balancers on rules in one stack (``service`` and ``other``): whose is whose."""
    cfg = config()

    def build() -> None:
        rules_load_balancer(cfg)
        rules_load_balancer(cfg, "other", prefix="shop-other")

    return run(build)


def rule_on(found: ProgramRun, role: str, name: str = NAME) -> Registration:
    """The one rule of a listener (``prod``, ``test``)."""
    arn = found.one(rt.LB_LISTENER, f"{name}-{role}").state["arn"]
    [rule] = [r for r in found.of_type(rt.LB_LISTENER_RULE) if r.props["listenerArn"] == arn]
    return rule


def group_arn(found: ProgramRun, color: str, name: str = NAME) -> str:
    arn: str = found.one(rt.LB_TARGET_GROUP, f"{name}-{color}").state["arn"]
    return arn


def forward_weights(rule: Registration) -> dict[str, float]:
    """Target group ARN -> weight of a rule's one forward action."""
    [action] = rule.props["actions"]
    assert action["type"] == "forward"
    return {group["arn"]: group["weight"] for group in action["forward"]["targetGroups"]}


def path_pattern_matches(pattern: str, path: str) -> bool:
    """Whether an ALB path-pattern condition value matches a request's path: case sensitive, ``*`` matches 0 or
    more characters and ``?`` exactly one, compared with the path only (not the query string).
    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/rule-condition-types.html
    https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_PathPatternConditionConfig.html"""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, path, flags=re.DOTALL) is not None


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allows(document: dict[str, Any], action: str, arn: str) -> bool:
    """Whether an identity policy of Allow statements grants ``action`` on ``arn``: actions match case-insensitively,
    resources case-sensitively, ``*`` and ``?`` as wildcards, any segment.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html"""
    for s in document["Statement"]:
        assert s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s and "Condition" not in s
        if any(fnmatchcase(action.lower(), a.lower()) for a in as_list(s["Action"])) and any(
            fnmatchcase(arn, r) for r in as_list(s["Resource"])
        ):
            return True
    return False


def actions_of(document: dict[str, Any]) -> set[str]:
    return {a for s in document["Statement"] for a in as_list(s["Action"])}


def balancing_arns(found: ProgramRun) -> list[str]:
    """Every target group, listener and rule in the run: what a traffic-shifting statement might reach."""
    kinds = (rt.LB_TARGET_GROUP, rt.LB_LISTENER, rt.LB_LISTENER_RULE)
    return [r.state["arn"] for r in found.resources if r.type in kinds]


def reach(document: dict[str, Any], action: str, arns: Iterable[str]) -> set[str]:
    return {arn for arn in arns if allows(document, action, arn)}


def test_on_rules_each_listener_has_one_rule_taking_every_request_first(ruled: ProgramRun) -> None:
    rules_made = ruled.of_type(rt.LB_LISTENER_RULE)
    listener_arns = sorted(listener(ruled, role).state["arn"] for role in ("prod", "test"))
    assert sorted(r.props["listenerArn"] for r in rules_made) == listener_arns, "one rule on each listener"
    for rule in rules_made:
        # Rules are evaluated from the lowest priority value (1 is the lowest allowed) and the default action
        # last: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-rules.html
        assert rule.props["priority"] == 1
        [condition] = rule.props["conditions"]
        assert set(condition) == {"pathPattern"}, "a path condition only: no host, header or source IP"
        patterns = condition["pathPattern"]["values"]
        for path in ("/", "/index.html", "/api/v1/orders/42", "/Health", "/static/app.js"):
            assert any(path_pattern_matches(p, path) for p in patterns), (rule.name, path)
    assert not path_pattern_matches("/api/*", "/"), "the matcher can say no"
    assert not path_pattern_matches("/health", "/Health"), "and is case sensitive"


def test_the_production_rule_starts_on_blue_and_the_test_rule_on_green(ruled: ProgramRun) -> None:
    # ECS starts a deployment from the production rule forwarding to the primary target group and shifts the
    # weights to the alternate one (alb-resources-for-blue-green.html, above).
    blue, green = group_arn(ruled, "blue"), group_arn(ruled, "green")
    assert forward_weights(rule_on(ruled, "prod")) == {blue: 100, green: 0}
    assert forward_weights(rule_on(ruled, "test")) == {blue: 0, green: 100}


def test_on_rules_ecs_owns_the_rules_actions_and_the_listeners_stay_the_programs(
    ruled: ProgramRun, http: ProgramRun
) -> None:
    # ECS rewrites the rules' forward actions on every deployment; the listeners' default actions answer only
    # what no rule matches (nothing: the rules take /*), and ECS does not touch them.
    assert ECS_OWNED_RULE_FIELDS == ("actions",)
    rules_made = ruled.of_type(rt.LB_LISTENER_RULE)
    assert len(rules_made) == 2
    assert all(r.ignore_changes == ["actions"] for r in rules_made)
    listeners = ruled.of_type(rt.LB_LISTENER)
    assert len(listeners) == 2 and all(r.ignore_changes == [] for r in listeners)
    others = [r.name for r in ruled.resources if r.ignore_changes and r.type != rt.LB_LISTENER_RULE]
    assert others == []
    # In listener mode (CodeDeploy) it is the other way round.
    assert http.of_type(rt.LB_LISTENER_RULE) == []
    assert all(r.ignore_changes == ["defaultActions"] for r in http.of_type(rt.LB_LISTENER))
    # The default actions stay what they were.
    blue, green = group_arn(ruled, "blue"), group_arn(ruled, "green")
    assert listener(ruled, "prod").props["defaultActions"] == [{"type": "forward", "targetGroupArn": blue}]
    assert listener(ruled, "test").props["defaultActions"] == [{"type": "forward", "targetGroupArn": green}]


def create_rule(reg: Registration) -> dict[str, Any]:
    """The ELBv2 CreateRule request for a rule on mocks, as the provider sends it."""
    p = reg.props

    def integer(value: float) -> int:
        assert value == int(value), value  # Pulumi carries every number as a float
        return int(value)

    conditions = [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": c["pathPattern"]["values"]}} for c in p["conditions"]
    ]
    actions = [
        {
            "Type": a["type"],
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": g["arn"], "Weight": integer(g["weight"])} for g in a["forward"]["targetGroups"]
                ]
            },
        }
        for a in p["actions"]
    ]
    return {
        "ListenerArn": p["listenerArn"],
        "Priority": integer(p["priority"]),
        "Conditions": conditions,
        "Actions": actions,
    }


def test_the_validator_checks_a_rules_priority() -> None:
    # Guards the test below: priorities are 1 to 50000 (API_CreateRule.html), and the model says so.
    with pytest.raises(AssertionError, match="Priority"):
        assert_valid_request(
            "elbv2", "CreateRule", {"ListenerArn": "a", "Priority": 0, "Conditions": [], "Actions": []}
        )


def test_rules_are_valid_elbv2_create_rule_requests(ruled: ProgramRun, ruled_https: ProgramRun) -> None:
    for found in (ruled, ruled_https):
        for reg in found.of_type(rt.LB_LISTENER_RULE):
            request = create_rule(reg)
            assert_valid_request("elbv2", "CreateRule", request)
            # A target group's weight is 0 to 999:
            # https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetGroupTuple.html
            weights = [g["Weight"] for a in request["Actions"] for g in a["ForwardConfig"]["TargetGroups"]]
            assert len(weights) == 2 and all(0 <= w <= 999 for w in weights)


def test_endpoints_carry_the_rule_arns_on_rules_only(ruled: ProgramRun) -> None:
    assert ruled.outputs[f"{NAME}-prodRuleArn"] == rule_on(ruled, "prod").state["arn"]
    assert ruled.outputs[f"{NAME}-testRuleArn"] == rule_on(ruled, "test").state["arn"]
    made: list[LoadBalancer] = []
    cfg = config()
    on_listeners = run(lambda: made.append(rules_load_balancer(cfg, traffic_control="listeners")))
    assert on_listeners.of_type(rt.LB_LISTENER_RULE) == []
    assert made[0].endpoints.prod_rule_arn is None and made[0].endpoints.test_rule_arn is None
    assert on_listeners.outputs.get(f"{NAME}-prodRuleArn") is None


def test_on_https_the_rule_is_on_the_https_listener_and_the_redirect_is_left_alone(ruled_https: ProgramRun) -> None:
    prod = listener(ruled_https, "prod")
    assert prod.props["protocol"] == "HTTPS"
    assert forward_weights(rule_on(ruled_https, "prod")) == {
        group_arn(ruled_https, "blue"): 100,
        group_arn(ruled_https, "green"): 0,
    }
    redirect = listener(ruled_https, "http-redirect")
    assert [
        r for r in ruled_https.of_type(rt.LB_LISTENER_RULE) if r.props["listenerArn"] == redirect.state["arn"]
    ] == []
    assert redirect.ignore_changes == [] and prod.ignore_changes == []
    document = json.loads(ruled_https.outputs[f"{NAME}-trafficShifting"])
    arns = balancing_arns(ruled_https)
    assert reach(document, "elasticloadbalancing:ModifyListener", arns) == {
        prod.state["arn"],
        listener(ruled_https, "test").state["arn"],
    }, "not the redirect listener"


def test_traffic_shifting_statements_reach_only_this_albs_groups_listeners_and_rules(neighbours: ProgramRun) -> None:
    arns = balancing_arns(neighbours)
    for name in (NAME, "other"):
        document = json.loads(neighbours.outputs[f"{name}-trafficShifting"])
        assert parliament_findings(json.dumps(document)) == []
        groups = {group_arn(neighbours, color, name) for color in ("blue", "green")}
        listeners = {neighbours.one(rt.LB_LISTENER, f"{name}-{role}").state["arn"] for role in ("prod", "test")}
        rules_made = {rule_on(neighbours, role, name).state["arn"] for role in ("prod", "test")}
        assert reach(document, "elasticloadbalancing:RegisterTargets", arns) == groups
        assert reach(document, "elasticloadbalancing:DeregisterTargets", arns) == groups
        assert reach(document, "elasticloadbalancing:ModifyListener", arns) == listeners
        assert reach(document, "elasticloadbalancing:ModifyRule", arns) == rules_made
        assert reach(document, "elasticloadbalancing:DeleteRule", arns) == set(), "nothing beyond the shift"
        # Only what IAM cannot scope is on "*".
        for s in document["Statement"]:
            if "*" in as_list(s["Resource"]):
                assert set(as_list(s["Action"])) <= ELB_DESCRIBE_ACTIONS, s
        assert {a for a in actions_of(document) if allows(document, a, "*")} == ELB_DESCRIBE_ACTIONS


def test_traffic_shifting_grants_the_managed_policys_actions_and_no_more(neighbours: ProgramRun) -> None:
    document = json.loads(neighbours.outputs[f"{NAME}-trafficShifting"])
    assert actions_of(document) == actions_of(MANAGED_TRAFFIC_SHIFTING_POLICY)
    # Whatever it allows, the managed policy allows too: a subset of it, on this ALB's resources.
    arns = balancing_arns(neighbours)
    granted = [(a, arn) for a in sorted(actions_of(document)) for arn in arns if allows(document, a, arn)]
    scoped = [(a, arn) for a, arn in granted if a not in ELB_DESCRIBE_ACTIONS]
    assert len(scoped) == 8, scoped  # 2 groups x 2 actions, 2 listeners, 2 rules
    assert [(a, arn) for a, arn in granted if not allows(MANAGED_TRAFFIC_SHIFTING_POLICY, a, arn)] == []


def test_asking_a_load_balancer_on_listeners_for_traffic_shifting_statements_raises() -> None:
    raised: list[str] = []
    cfg = config()

    def build() -> None:
        made = rules_load_balancer(cfg, traffic_control="listeners")
        try:
            made.traffic_shifting_statements()
        except ValueError as error:
            raised.append(str(error))

    run(build)
    assert len(raised) == 1 and "listeners" in raised[0], raised
