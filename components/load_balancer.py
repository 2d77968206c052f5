"""LoadBalancer: the ALB side of the FargateService: its security group, two ``ip`` target groups (blue and
green), the production and test listeners, and with a certificate both of them HTTPS, an HTTP -> HTTPS redirect
and the site's DNS name. The ALB can be protected against deletion and write access logs to a bucket of its own.

CodeDeploy rewrites both listeners' actions during a blue/green deployment (``CODEDEPLOY_OWNED_LISTENER_FIELDS``):
the program creates them once and then leaves those fields alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pulumi
import pulumi_aws as aws
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, model_validator

from components import buckets, iam, security_groups
from components.base import Component, StackContext
from components.buckets import BucketRef
from components.config_types import ConfigModel, Flag, Matches, Port, Text, as_str_list, problems_if

CODEDEPLOY_OWNED_LISTENER_FIELDS = ("defaultActions",)

# TLS policies of the HTTPS listener: TLS 1.3 with TLS 1.2 at most as the floor, forward-secret ciphers only.
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html
SslPolicy = Literal[
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
]

# Health checks: a target is healthy after 2 checks 10 s apart (20 s) instead of the default 5 x 30 s
# (150 s), and unhealthy after 2 failures. Deregistration waits 15 s for in-flight requests instead of
# 300 s: the sample serves short requests, and every deployment waits this long twice (test and prod).
HEALTH_CHECK_INTERVAL = 10
HEALTH_CHECK_TIMEOUT = 5
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 2
DEREGISTRATION_DELAY = 15

# Port 80 only redirects to HTTPS when the site has a certificate: browsers and links that start with
# http:// still arrive, and nothing is ever served in clear text. 301 (permanent) so that clients and search
# engines remember the HTTPS address.
HTTP_PORT = 80
HTTPS_PORT = 443
REDIRECT_STATUS = "HTTP_301"

# Access logs go under <bucket>/access/AWSLogs/<account>/...: the ALB's connection and health-check logs, if
# ever enabled, get prefixes of their own in the same bucket.
ACCESS_LOGS_PREFIX = "access"
ACCESS_LOGS_ROLE = "alb-logs"
"""The access-log bucket's role in its physical name and in the stack's S3 access logs."""

# Who writes ALB access logs depends on the region (ELB guide, "Enable access logs for your Application Load
# Balancer", step 2, https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html):
# in regions available before August 2022 a regional Elastic Load Balancing account writes them, and a bucket
# policy naming the log-delivery service principal there is refused when logging is enabled ("Access Denied for
# bucket"); regions opened since then (Hyderabad, Melbourne, Spain, Zurich, UAE and every newer one) use the
# service principal. The guide documents no confused-deputy condition for either; the grant is limited to
# s3:PutObject under AWSLogs/<this account>/, the only place ELB writes this account's logs (another account's
# load balancer pointed at the bucket would write under its own account id, and is refused).
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"
ELB_LOG_ACCOUNTS: dict[str, str] = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580",
    "ap-south-1": "718504428378",
    "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-south-1": "635631232127",
    "eu-west-3": "009996457667",
    "eu-north-1": "897822967062",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-gov-west-1": "048591011584",
    "us-gov-east-1": "190560391635",
    "cn-north-1": "638102146993",
    "cn-northwest-1": "037604701340",
}

_WORLD = ("0.0.0.0/0", "::/0")
# Addresses no client of an internet-facing load balancer comes from: the ALB's DNS name resolves to the public
# addresses of its nodes, so even a host of the stack's own VPC arrives from its public IP or its NAT gateway's
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#load-balancer-scheme).
# A rule for a private range (RFC 1918, shared address space, link-local, loopback, IPv6 unique local) admits
# nobody.
NOT_FROM_THE_INTERNET = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)


def _reachable_cidr(cidr: str) -> str:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        raise ValueError(f"{cidr!r} is not a CIDR block (like 203.0.113.0/24 or 0.0.0.0/0)") from None
    if any(network.version == p.version and network.subnet_of(p) for p in NOT_FROM_THE_INTERNET):  # type: ignore[arg-type]
        raise ValueError(
            f"{cidr!r} is a private range, and the ALB is internet-facing: clients, the VPC's own hosts included, "
            "reach it from their public (or NAT gateway) addresses, so this rule admits nobody; list public "
            "CIDRs, like your office's or VPN's egress range"
        )
    return cidr


Cidrs = Annotated[tuple[Annotated[str, AfterValidator(_reachable_cidr)], ...], BeforeValidator(as_str_list)]
_DOMAIN = r"(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
Domain = Annotated[Text, Matches(_DOMAIN, "a lower-case DNS name", "app.example.com")]
HostedZoneId = Annotated[Text, Matches(r"Z[A-Z0-9]{1,31}", "a Route 53 hosted zone id", "Z0123456789ABCDEFGHIJ")]
_CERTIFICATE_ARN = r"arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[0-9a-f-]{36}"
CertificateArn = Annotated[
    Text, Matches(_CERTIFICATE_ARN, "an ACM certificate ARN", "arn:aws:acm:<region>:<account>:certificate/<id>")
]


class LoadBalancerConfig(ConfigModel):
    """Who reaches the site, on which ports, under which name, and what the ALB keeps."""

    listener_port: Port | None = Field(
        None,
        description="production listener port (HTTPS when the site has a certificate; port 80 then redirects to it)",
        json_schema_extra={"x-default": "`80`, or `443` with HTTPS"},
    )
    test_listener_port: Port = Field(
        8080,
        description="test listener port (test traffic; HTTPS with the production certificate and TLS policy when "
        "the site has a certificate)",
    )
    allowed_cidrs: Cidrs = Field(
        ("0.0.0.0/0",), description="CIDRs allowed to reach the production listener (public ranges)"
    )
    test_listener_cidrs: Cidrs = Field(
        (),
        description="CIDRs allowed to reach the test listener (public ranges; empty: nobody; `0.0.0.0/0` is refused)",
    )
    domain_name: Domain | None = Field(
        None,
        description="DNS name of the site (`app.example.com`); HTTPS needs it with `hostedZoneId` or `certificateArn`",
    )
    hosted_zone_id: HostedZoneId | None = Field(
        None,
        description="Route 53 zone of `domainName`: the stack creates the alias record and, unless `certificateArn` "
        "is set, a DNS-validated ACM certificate",
    )
    certificate_arn: CertificateArn | None = Field(
        None, description="existing ACM certificate for `domainName`, in the stack's region"
    )
    ssl_policy: SslPolicy = Field(
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        description="TLS policy of the HTTPS listeners, production and test (TLS 1.3 policies only)",
    )
    alb_deletion_protection: Flag = Field(
        True, description="ALB deletion protection (`pulumi destroy` fails until it is turned off)"
    )
    alb_access_logs: Flag = Field(
        True, description="ALB access logs to an S3 bucket of the stack, kept `logRetentionDays`"
    )

    @property
    def https(self) -> bool:
        """HTTPS on the production port, with port 80 redirecting to it."""
        return self.certificate_arn is not None or self.hosted_zone_id is not None

    @property
    def creates_certificate(self) -> bool:
        return self.hosted_zone_id is not None and self.certificate_arn is None

    @property
    def production_port(self) -> int:
        return self.listener_port or (HTTPS_PORT if self.https else HTTP_PORT)

    @property
    def listener_ports(self) -> tuple[int, ...]:
        """Every port the ALB listens on for clients: production, test, and with HTTPS port 80 (redirects)."""
        ports = {self.production_port, self.test_listener_port} | ({HTTP_PORT} if self.https else set())
        return tuple(sorted(ports))

    @model_validator(mode="after")
    def _fits_together(self, info: ValidationInfo) -> LoadBalancerConfig:
        region = (info.context or {}).get("region")
        certificate_region = re.fullmatch(_CERTIFICATE_ARN, self.certificate_arn or "")
        port, test = self.production_port, self.test_listener_port
        given = self.model_fields_set
        problems_if(
            *[
                (
                    key_set and self.domain_name is None,
                    key,
                    "needs domainName: the name the certificate and the site are for",
                )
                for key_set, key in (
                    (self.hosted_zone_id is not None, "hostedZoneId"),
                    (self.certificate_arn is not None, "certificateArn"),
                )
            ],
            (
                self.domain_name is not None and not self.https,
                "domainName",
                "needs hostedZoneId (a certificate validated through Route 53, and the DNS record) or certificateArn",
            ),
            (
                region is not None and certificate_region is not None and certificate_region["region"] != region,
                "certificateArn",
                f"the certificate is in {certificate_region['region'] if certificate_region else ''}; an ALB uses a "
                f"certificate of its own region {region}",
            ),
            (
                "ssl_policy" in given and not self.https,
                "sslPolicy",
                "applies only with HTTPS (set domainName with hostedZoneId or certificateArn)",
            ),
            (port == test, "testListenerPort", f"{test} is also listenerPort; the two listeners need two ports"),
            *[
                (
                    self.https and p == HTTP_PORT,
                    key,
                    "port 80 redirects to HTTPS when the site has a certificate; use another port",
                )
                for key, p in (("listenerPort", port), ("testListenerPort", test))
            ],
            (not self.allowed_cidrs, "allowedCidrs", "must list at least one CIDR, or nobody reaches the site"),
            *[
                (
                    cidr in _WORLD,
                    "testListenerCidrs",
                    f"{cidr!r} opens the test listener, which serves a version before it is approved, to the "
                    "internet; list your office or VPN CIDRs",
                )
                for cidr in self.test_listener_cidrs
            ],
        )
        return self


def elb_log_writer(region: str, partition: str) -> dict[str, str]:
    """The principal that writes a region's ALB access logs: the regional ELB account, or the service principal."""
    account = ELB_LOG_ACCOUNTS.get(region)
    if account is None:
        return {"Service": ELB_LOG_DELIVERY}
    return {"AWS": f"arn:{partition}:iam::{account}:root"}


TrafficControl = Literal["listeners", "rules"]
# ECS-native blue/green reweights the rules' forward actions (blue and green, 100/0 and back) on every deployment.
ECS_OWNED_RULE_FIELDS = ("actions",)
# The rules match every request; the listener's default action answers only what no rule matches (nothing).
RULE_PRIORITY = 1


def any_load_balancer_type(arn: str) -> str:
    """A listener's (``…:listener/app/<lb>/<lb-id>/<id>``) or rule's ARN with ``app`` as ``*``: still only it.

    The Service Authorization Reference lists both ``listener/app`` and ``listener/net`` (and ``listener-rule/…``)
    as resource types of ``elasticloadbalancing:ModifyListener`` (``ModifyRule``), and the IAM linter
    (parliament) wants a statement to match both; the load balancer's and the listener's ids keep the ARN unique.
    """
    return arn.replace(":listener/app/", ":listener/*/", 1).replace(":listener-rule/app/", ":listener-rule/*/", 1)


@dataclass(frozen=True)
class TargetGroupRef:
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]
    """``targetgroup/<name>/<id>``: the ``TargetGroup`` dimension of the load balancer's metrics."""


@dataclass(frozen=True)
class ServiceEndpoints:
    """The load balancer side of the service as the pipeline and the alarms need it."""

    url: pulumi.Output[str]
    """The site's URL: ``https://<domainName>/`` with HTTPS, else the ALB's own name."""
    test_url: pulumi.Output[str]
    alb_dns_name: pulumi.Output[str]
    load_balancer_arn_suffix: pulumi.Output[str]
    """``app/<name>/<id>``: the ``LoadBalancer`` dimension of its metrics."""
    prod_listener_arn: pulumi.Output[str]
    test_listener_arn: pulumi.Output[str]
    blue: TargetGroupRef
    """Where production traffic starts; CodeDeploy swaps blue and green with every deployment."""
    green: TargetGroupRef
    access_logs_bucket: pulumi.Output[str] | None
    """Bucket of the access logs (``None`` without them)."""
    prod_rule_arn: pulumi.Output[str] | None = None
    """With ``traffic_control`` ``rules``: the production listener's rule ECS reweights (else ``None``)."""
    test_rule_arn: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class LoadBalancerArgs:
    context: StackContext
    config: LoadBalancerConfig
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[Sequence[str]]
    """Subnets of the ALB (two or more AZs)."""
    target_port: int
    """The container port the target groups send to."""
    health_check_path: str
    certificate_arn: pulumi.Input[str] | None = None
    """Certificate of the HTTPS listener: a ``Certificate``'s (validated) ``arn``, or the configured existing
    ``certificateArn``. Given exactly when ``config.https``; ``None`` serves HTTP only."""
    traffic_control: TrafficControl = "listeners"
    """What a deployment rewrites: the listeners' default actions (CodeDeploy), or one rule per listener
    forwarding to both target groups with weights (ECS-native blue/green)."""


def check_certificate(args: LoadBalancerArgs) -> None:
    """Refuses a certificate that disagrees with the config: HTTP on port 443, or HTTPS without a name."""
    if args.config.https != (args.certificate_arn is not None):
        want = "a certificate_arn (HTTPS)" if args.config.https else "no certificate_arn (HTTP only)"
        raise ValueError(f"load balancer config (domain {args.config.domain_name!r}) needs {want}")


class LoadBalancer(Component):
    endpoints: ServiceEndpoints
    security_group_id: pulumi.Output[str]
    listeners: list[aws.lb.Listener]
    """Production and test listeners: a target group is attached to one before a service may use it."""
    rules: list[aws.lb.ListenerRule]
    """With ``traffic_control`` ``rules``: the production and test rules (else empty)."""
    buckets: tuple[BucketRef, ...]
    """The access-log bucket, if any (for the stack's S3 access logs)."""

    def __init__(
        self,
        name: str,
        args: LoadBalancerArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        children_formerly_of: pulumi.Resource | None = None,
    ) -> None:
        check_certificate(args)
        super().__init__(name, opts, children_formerly_of=children_formerly_of)
        self.rules = []
        ctx, cfg = args.context, args.config
        account_id = aws.get_caller_identity_output(opts=self.lookup()).account_id
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb",
            name=f"{ctx.name_prefix}-alb",
            description=f"ALB of {ctx.name_prefix}",
            vpc_id=args.vpc_id,
            opts=self.child(),
        )
        self._ingress(name, alb_sg, cfg)
        access_logs, alb_depends_on, logs_bucket = None, [], None
        self.buckets = ()
        if cfg.alb_access_logs:
            bucket, policy = self._access_logs_bucket(name, ctx, account_id)
            self.buckets = (BucketRef(name=bucket.bucket, arn=bucket.arn, role=ACCESS_LOGS_ROLE),)
            access_logs = aws.lb.LoadBalancerAccessLogsArgs(
                bucket=bucket.bucket, prefix=ACCESS_LOGS_PREFIX, enabled=True
            )
            # Enabling access logs makes ELB write a test object first; without the policy it cannot, and the
            # ALB is not created.
            alb_depends_on, logs_bucket = [policy], bucket.bucket
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=ctx.name_prefix,
            load_balancer_type="application",
            internal=False,
            security_groups=[alb_sg.id],
            subnets=args.public_subnet_ids,
            drop_invalid_header_fields=True,
            # Deleting the ALB takes the site offline and changes its DNS name (and the alias to it): with
            # protection on, `pulumi destroy` or a replacement fails until it is turned off first.
            enable_deletion_protection=cfg.alb_deletion_protection,
            access_logs=access_logs,
            opts=self.child(depends_on=alb_depends_on),
        )
        blue, green = (
            self._target_group(f"{name}-{color}", f"{ctx.name_prefix}-{color}", args) for color in ("blue", "green")
        )
        prod, test = self._listeners(name, args, alb, blue, green)
        self.security_group_id = alb_sg.id
        self.listeners = [prod, test]
        self.endpoints = ServiceEndpoints(
            url=self._url(cfg, alb),
            test_url=self._url(cfg, alb, cfg.test_listener_port),
            alb_dns_name=alb.dns_name,
            load_balancer_arn_suffix=alb.arn_suffix,
            prod_listener_arn=prod.arn,
            test_listener_arn=test.arn,
            blue=TargetGroupRef(blue.name, blue.arn, blue.arn_suffix),
            green=TargetGroupRef(green.name, green.arn, green.arn_suffix),
            access_logs_bucket=logs_bucket,
            prod_rule_arn=self.rules[0].arn if self.rules else None,
            test_rule_arn=self.rules[1].arn if self.rules else None,
        )
        self.register_outputs(
            {
                "url": self.endpoints.url,
                "alb_dns_name": alb.dns_name,
                "prod_listener_arn": prod.arn,
                "test_listener_arn": test.arn,
                "access_logs_bucket": logs_bucket,
            }
        )

    def _ingress(self, name: str, alb_sg: aws.ec2.SecurityGroup, cfg: LoadBalancerConfig) -> None:
        """The listener ports from the configured CIDRs (with HTTPS also port 80, which only redirects)."""
        for i, cidr in enumerate(cfg.allowed_cidrs):
            security_groups.from_cidr(
                self, f"{name}-alb-prod-{i}", alb_sg.id, cfg.production_port, cidr, "production listener"
            )
            if cfg.https:
                security_groups.from_cidr(
                    self, f"{name}-alb-redirect-{i}", alb_sg.id, HTTP_PORT, cidr, "HTTP, redirected to HTTPS"
                )
        for i, cidr in enumerate(cfg.test_listener_cidrs):
            description = "test listener (CodeDeploy test traffic)"
            security_groups.from_cidr(
                self, f"{name}-alb-test-{i}", alb_sg.id, cfg.test_listener_port, cidr, description
            )

    def _target_group(self, name: str, physical_name: str, args: LoadBalancerArgs) -> aws.lb.TargetGroup:
        return aws.lb.TargetGroup(
            name,
            name=physical_name,
            port=args.target_port,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=DEREGISTRATION_DELAY,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                path=args.health_check_path,
                interval=HEALTH_CHECK_INTERVAL,
                timeout=HEALTH_CHECK_TIMEOUT,
                healthy_threshold=HEALTHY_THRESHOLD,
                unhealthy_threshold=UNHEALTHY_THRESHOLD,
                matcher="200-399",
            ),
            opts=self.child(),
        )

    def _listeners(
        self,
        name: str,
        args: LoadBalancerArgs,
        alb: aws.lb.LoadBalancer,
        blue: aws.lb.TargetGroup,
        green: aws.lb.TargetGroup,
    ) -> tuple[aws.lb.Listener, aws.lb.Listener]:
        cfg, https = args.config, args.certificate_arn is not None
        rules = args.traffic_control == "rules"
        # CodeDeploy rewrites the listeners' default actions. With rules, ECS rewrites the rules, which take every
        # request (path /*); the default actions, which then answer nothing, stay the program's.
        owned = [] if rules else list(CODEDEPLOY_OWNED_LISTENER_FIELDS)
        # The production listener: HTTPS with the certificate when there is one. Same Pulumi name either way,
        # so turning HTTPS on changes the listener in place and CodeDeploy's reference to it (by ARN) holds.
        prod = aws.lb.Listener(
            f"{name}-prod",
            load_balancer_arn=alb.arn,
            port=cfg.production_port,
            protocol="HTTPS" if https else "HTTP",
            ssl_policy=cfg.ssl_policy if https else None,
            certificate_arn=args.certificate_arn,
            default_actions=[_forward(blue)],
            opts=self.child(ignore_changes=owned),
        )
        if https:
            self._https_extras(name, cfg, alb, prod)
        # The test listener serves the release being deployed: with a certificate it is HTTPS too, with the same
        # certificate and TLS policy (ELB.18: every listener encrypts; ELB.1: no HTTP listener forwards), so what
        # is tried is what production will serve. Same Pulumi name either way: turning HTTPS on modifies it in
        # place (ModifyListener takes the protocol, the policy and the certificate), keeping the ARN the
        # deployment group's test traffic route and the ECS test rule refer to.
        test = aws.lb.Listener(
            f"{name}-test",
            load_balancer_arn=alb.arn,
            port=cfg.test_listener_port,
            protocol="HTTPS" if https else "HTTP",
            ssl_policy=cfg.ssl_policy if https else None,
            certificate_arn=args.certificate_arn,
            default_actions=[_forward(green)],
            opts=self.child(ignore_changes=owned),
        )
        if rules:
            # Production starts on blue, tests on green; ECS moves the weights with every deployment.
            self.rules = [
                self._weighted_rule(f"{name}-prod-rule", prod, (blue, 100), (green, 0)),
                self._weighted_rule(f"{name}-test-rule", test, (blue, 0), (green, 100)),
            ]
        return prod, test

    def _weighted_rule(
        self, name: str, listener: aws.lb.Listener, *weights: tuple[aws.lb.TargetGroup, int]
    ) -> aws.lb.ListenerRule:
        """A rule matching every request and forwarding it to both target groups with ``weights``."""
        return aws.lb.ListenerRule(
            name,
            listener_arn=listener.arn,
            priority=RULE_PRIORITY,
            conditions=[
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=["/*"])
                )
            ],
            actions=[
                aws.lb.ListenerRuleActionArgs(
                    type="forward",
                    forward=aws.lb.ListenerRuleActionForwardArgs(
                        target_groups=[
                            aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=group.arn, weight=weight)
                            for group, weight in weights
                        ]
                    ),
                )
            ],
            opts=self.child(ignore_changes=list(ECS_OWNED_RULE_FIELDS)),
        )

    def traffic_shifting_statements(self) -> list[dict[str, Any]]:
        """What ECS-native blue/green needs of this load balancer: the actions of the AWS managed policy
        ``AmazonECSInfrastructureRolePolicyForLoadBalancers``, on this ALB's target groups, listeners and rules
        only (``Describe*`` have no resource-level permissions).
        https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonECSInfrastructureRolePolicyForLoadBalancers.html
        """
        if not self.rules:
            raise ValueError(f"load balancer {self.component_name!r} routes through listeners, not rules")
        listeners = [listener.arn.apply(any_load_balancer_type) for listener in self.listeners]
        rules = [rule.arn.apply(any_load_balancer_type) for rule in self.rules]
        groups = [self.endpoints.blue.arn, self.endpoints.green.arn]
        return [
            iam.allow(
                [
                    "elasticloadbalancing:DescribeListeners",
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetHealth",
                ],
                ["*"],
                sid="ReadTheLoadBalancer",
            ),
            iam.allow(
                ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
                groups,
                sid="RegisterTasksInBothTargetGroups",
            ),
            iam.allow(["elasticloadbalancing:ModifyListener"], listeners, sid="ModifyTheListeners"),
            iam.allow(["elasticloadbalancing:ModifyRule"], rules, sid="ReweightTheRules"),
        ]

    def _https_extras(
        self, name: str, cfg: LoadBalancerConfig, alb: aws.lb.LoadBalancer, prod: aws.lb.Listener
    ) -> None:
        """Port 80 redirecting to HTTPS, and the site's name as an alias of the ALB (with a hosted zone)."""
        # Port 80 only redirects (same host, path and query) to the HTTPS port. CodeDeploy never touches it: it
        # is not a traffic route of the deployment group, so its action stays under Pulumi's control.
        aws.lb.Listener(
            f"{name}-http-redirect",
            load_balancer_arn=alb.arn,
            port=HTTP_PORT,
            protocol="HTTP",
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(
                    type="redirect",
                    redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                        protocol="HTTPS", port=str(cfg.production_port), status_code=REDIRECT_STATUS
                    ),
                )
            ],
            # Turning HTTPS on moves the production listener off port 80: that update must be done before this
            # listener takes the port (an ALB refuses two listeners on one port).
            opts=self.child(depends_on=[prod]),
        )
        if cfg.hosted_zone_id is not None:
            aws.route53.Record(
                f"{name}-dns",
                zone_id=cfg.hosted_zone_id,
                name=cfg.domain_name,
                type="A",
                aliases=[
                    aws.route53.RecordAliasArgs(
                        name=alb.dns_name,
                        zone_id=alb.zone_id,
                        # The record counts as unhealthy while the ALB has no healthy target: what a failover
                        # record added next to it would need.
                        evaluate_target_health=True,
                    )
                ],
                opts=self.child(),
            )

    def _url(self, cfg: LoadBalancerConfig, alb: aws.lb.LoadBalancer, port: int | None = None) -> pulumi.Output[str]:
        """The URL of a listener (the production one by default): ``https://<domainName>:<port>/`` with HTTPS (the
        certificate names the domain, not the ALB), else the ALB's own DNS name over HTTP."""
        port = cfg.production_port if port is None else port
        if cfg.https:
            return pulumi.Output.from_input(_url(str(cfg.domain_name), port, "https"))
        return alb.dns_name.apply(lambda dns: _url(dns, port))

    def _access_logs_bucket(
        self, name: str, ctx: StackContext, account_id: pulumi.Output[str]
    ) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
        """The ALB's access-log bucket: SSE-S3 (the only encryption ALB log delivery supports), TLS only,
        writable by the region's ELB log writer under this account's prefix only, logs kept the log retention."""
        physical_name = account_id.apply(
            lambda account: buckets.physical_bucket_name(ctx.name_prefix, ACCESS_LOGS_ROLE, account, ctx.region)
        )
        bucket, block = buckets.private_bucket(
            self,
            f"{name}-access-logs",
            physical_name,
            force_destroy=ctx.force_destroy,
            protect=ctx.protect,
        )
        buckets.lifecycle(
            self, f"{name}-access-logs-lifecycle", bucket, buckets.expire_objects("expire-logs", ctx.log_retention_days)
        )
        # ELB writes <prefix>/AWSLogs/<account>/ELBAccessLogTestFile and then the logs, with PutObject only:
        # nothing else is granted, and nowhere else in the bucket.
        partition = aws.get_partition_output(opts=self.lookup()).partition
        deliver = {
            "Sid": "ElbLogDelivery",
            "Effect": "Allow",
            "Principal": partition.apply(lambda p: elb_log_writer(ctx.region, p)),
            "Action": "s3:PutObject",
            "Resource": pulumi.Output.concat(bucket.arn, f"/{ACCESS_LOGS_PREFIX}/AWSLogs/", account_id, "/*"),
        }
        policy = buckets.bucket_policy(
            self,
            f"{name}-access-logs-policy",
            bucket,
            block,
            [buckets.tls_only_statement(bucket.arn), deliver],
        )
        return bucket, policy


def _forward(group: aws.lb.TargetGroup) -> aws.lb.ListenerDefaultActionArgs:
    return aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=group.arn)


def _url(host: str, port: int, scheme: str = "http") -> str:
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}/" if port == default else f"{scheme}://{host}:{port}/"
