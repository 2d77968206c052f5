"""FargateService: the runtime the pipeline deploys onto.

ECS cluster, log group, task execution and task roles, the first task definition, security groups, an ALB
with two ``ip`` target groups (blue and green) and two listeners (production and test), and an ECS service
whose deployments are controlled by CodeDeploy.

With a certificate (``certificate_arn``) the production listener is HTTPS, port 80 answers with a permanent
redirect to it, and with a Route 53 zone the site's name is an alias of the ALB. The ALB can be protected
against deletion and write access logs to a bucket of its own.

After the first blue/green deployment CodeDeploy owns some fields: it registers new task-definition
revisions on the service, swaps the service's target group, and rewrites both listeners' actions. The
program creates them once and then leaves exactly those fields alone (``CODEDEPLOY_OWNED``), so that a later
``pulumi up`` neither fails (ECS rejects task-definition updates on a CODE_DEPLOY service) nor reverts a
deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pulumi
import pulumi_aws as aws

from components import buckets, iam
from components.config import AlbConfig, ContainerConfig
from components.templates import TaskDefinitionValues, render_taskdef

# Fields CodeDeploy changes during a blue/green deployment, per resource, as Pulumi property names.
CODEDEPLOY_OWNED: dict[str, tuple[str, ...]] = {
    "service": ("taskDefinition", "loadBalancers"),
    "listener": ("defaultActions",),
}

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
REDIRECT_STATUS = "HTTP_301"

# Access logs go under <bucket>/access/AWSLogs/<account>/...: the ALB's connection and health-check logs, if
# ever enabled, get prefixes of their own in the same bucket.
ACCESS_LOGS_PREFIX = "access"
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


def elb_log_writer(region: str, partition: str) -> dict[str, str]:
    """The principal that writes a region's ALB access logs: the regional ELB account, or the service principal."""
    account = ELB_LOG_ACCOUNTS.get(region)
    if account is None:
        return {"Service": ELB_LOG_DELIVERY}
    return {"AWS": f"arn:{partition}:iam::{account}:root"}


@dataclass(frozen=True)
class FargateServiceArgs:
    name_prefix: str
    """Physical name prefix ``<appName>-<stack>``; ALB and target-group names derive from it (≤ 32)."""
    region: str
    container: ContainerConfig
    alb: AlbConfig
    log_retention_days: int
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    """Subnets of the ALB (two or more AZs)."""
    task_subnet_ids: pulumi.Input[list[str]]
    assign_public_ip: bool
    """True when tasks run in public subnets and need a public IP to pull images."""
    certificate_arn: pulumi.Input[str] | None = None
    """Certificate of the HTTPS listener: a ``Certificate``'s (validated) ``arn``, or the configured existing
    ``certificateArn``. Given exactly when ``alb.https``; ``None`` serves HTTP only."""
    force_destroy: bool = False
    """Dev only: ``pulumi destroy`` also deletes the log group and a non-empty access-log bucket. Otherwise
    both are protected."""


def check_certificate(args: FargateServiceArgs) -> None:
    """Refuses a certificate that disagrees with the ALB config: HTTP on port 443, or HTTPS without a name."""
    if args.alb.https != (args.certificate_arn is not None):
        want = "a certificate_arn (HTTPS)" if args.alb.https else "no certificate_arn (HTTP only)"
        raise ValueError(f"alb config (domain {args.alb.domain_name!r}) needs {want}")
    if args.alb.https and args.alb.domain_name is None:
        raise ValueError("HTTPS needs alb.domain_name: the name the certificate is for")


def _ipv4(cidr: str) -> str | None:
    return None if ":" in cidr else cidr


def _ipv6(cidr: str) -> str | None:
    return cidr if ":" in cidr else None


class FargateService(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    blue_target_group_name: pulumi.Output[str]
    green_target_group_name: pulumi.Output[str]
    blue_target_group_arn_suffix: pulumi.Output[str]
    green_target_group_arn_suffix: pulumi.Output[str]
    prod_listener_arn: pulumi.Output[str]
    test_listener_arn: pulumi.Output[str]
    load_balancer_arn_suffix: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    execution_role_name: pulumi.Output[str]
    task_role_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    family: str
    container_name: str
    container_port: int
    url: pulumi.Output[str]
    test_url: pulumi.Output[str]
    alb_dns_name: pulumi.Output[str]
    """The ALB's own DNS name: point the site's name at it when the stack manages no DNS record."""
    access_logs_bucket: pulumi.Output[str] | None
    """Bucket of the ALB's access logs (``None`` without access logs)."""
    taskdef_values: pulumi.Output[TaskDefinitionValues]
    """Values of the task definition without the image, for the pipeline's ``taskdef.json``."""

    def __init__(self, name: str, args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        check_certificate(args)
        super().__init__("gitlab-fargate:index:FargateService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        c = args.container
        self.family = prefix
        self.container_name = c.name
        self.container_port = c.port

        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id

        cluster = aws.ecs.Cluster(f"{name}-cluster", name=prefix, opts=child)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ecs/{prefix}",
            retention_in_days=args.log_retention_days,
            # The application's logs outlive the stack unless it is a dev stack that says otherwise.
            opts=pulumi.ResourceOptions(parent=self, protect=not args.force_destroy),
        )

        # Execution role: what ECS itself needs to start a task (write its logs). Pulling from the
        # pipeline's ECR repository is granted by the BuildStage, which owns that repository.
        execution_role = aws.iam.Role(
            f"{name}-execution",
            name=f"{prefix}-execution",
            assume_role_policy=iam.service_trust_policy("ecs-tasks.amazonaws.com", source_account=account_id),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution-logs",
            role=execution_role.id,
            policy=iam.policy_document(
                iam.allow(["logs:CreateLogStream", "logs:PutLogEvents"], [pulumi.Output.concat(log_group.arn, ":*")])
            ),
            opts=child,
        )
        # Task role: what the application may do. The sample needs nothing, so it has no policy at all.
        task_role = aws.iam.Role(
            f"{name}-task",
            name=f"{prefix}-task",
            assume_role_policy=iam.service_trust_policy("ecs-tasks.amazonaws.com", source_account=account_id),
            opts=child,
        )

        # Security groups: the ALB takes the listener ports from the configured CIDRs (with HTTPS also port
        # 80, which only redirects); tasks take the container port from the ALB only.
        https = args.certificate_arn is not None
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb",
            name=f"{prefix}-alb",
            description=f"ALB of {prefix}",
            vpc_id=args.vpc_id,
            opts=child,
        )
        task_sg = aws.ec2.SecurityGroup(
            f"{name}-tasks",
            name=f"{prefix}-tasks",
            description=f"Fargate tasks of {prefix}",
            vpc_id=args.vpc_id,
            opts=child,
        )
        for i, cidr in enumerate(args.alb.allowed_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-prod-{i}",
                security_group_id=alb_sg.id,
                ip_protocol="tcp",
                from_port=args.alb.listener_port,
                to_port=args.alb.listener_port,
                description="production listener",
                cidr_ipv4=_ipv4(cidr),
                cidr_ipv6=_ipv6(cidr),
                opts=child,
            )
            if https:
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-alb-redirect-{i}",
                    security_group_id=alb_sg.id,
                    ip_protocol="tcp",
                    from_port=HTTP_PORT,
                    to_port=HTTP_PORT,
                    description="HTTP, redirected to HTTPS",
                    cidr_ipv4=_ipv4(cidr),
                    cidr_ipv6=_ipv6(cidr),
                    opts=child,
                )
        for i, cidr in enumerate(args.alb.test_listener_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-test-{i}",
                security_group_id=alb_sg.id,
                ip_protocol="tcp",
                from_port=args.alb.test_listener_port,
                to_port=args.alb.test_listener_port,
                description="test listener (CodeDeploy test traffic)",
                cidr_ipv4=_ipv4(cidr),
                cidr_ipv6=_ipv6(cidr),
                opts=child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-to-tasks",
            security_group_id=alb_sg.id,
            ip_protocol="tcp",
            from_port=c.port,
            to_port=c.port,
            referenced_security_group_id=task_sg.id,
            description="to the tasks",
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-tasks-from-alb",
            security_group_id=task_sg.id,
            ip_protocol="tcp",
            from_port=c.port,
            to_port=c.port,
            referenced_security_group_id=alb_sg.id,
            description="from the ALB",
            opts=child,
        )
        # Tasks pull images from ECR and write logs over HTTPS.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-tasks-https",
            security_group_id=task_sg.id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
            description="HTTPS to AWS APIs and registries",
            opts=child,
        )

        access_logs: aws.lb.LoadBalancerAccessLogsArgs | None = None
        alb_depends_on: list[pulumi.Resource] = []
        self.access_logs_bucket = None
        if args.alb.access_logs:
            logs_bucket, logs_policy = self._access_logs_bucket(name, args, account_id)
            access_logs = aws.lb.LoadBalancerAccessLogsArgs(
                bucket=logs_bucket.bucket, prefix=ACCESS_LOGS_PREFIX, enabled=True
            )
            # Enabling access logs makes ELB write a test object first; without the policy it cannot, and the
            # ALB is not created.
            alb_depends_on = [logs_policy]
            self.access_logs_bucket = logs_bucket.bucket

        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=prefix,
            load_balancer_type="application",
            internal=False,
            security_groups=[alb_sg.id],
            subnets=args.public_subnet_ids,
            drop_invalid_header_fields=True,
            # Deleting the ALB takes the site offline and changes its DNS name (and the alias to it): with
            # protection on, `pulumi destroy` or a replacement fails until it is turned off first.
            enable_deletion_protection=args.alb.deletion_protection,
            access_logs=access_logs,
            opts=pulumi.ResourceOptions(parent=self, depends_on=alb_depends_on),
        )

        def target_group(color: str) -> aws.lb.TargetGroup:
            return aws.lb.TargetGroup(
                f"{name}-{color}",
                name=f"{prefix}-{color}",
                port=c.port,
                protocol="HTTP",
                target_type="ip",
                vpc_id=args.vpc_id,
                deregistration_delay=DEREGISTRATION_DELAY,
                health_check=aws.lb.TargetGroupHealthCheckArgs(
                    path=c.health_check_path,
                    interval=HEALTH_CHECK_INTERVAL,
                    timeout=HEALTH_CHECK_TIMEOUT,
                    healthy_threshold=HEALTHY_THRESHOLD,
                    unhealthy_threshold=UNHEALTHY_THRESHOLD,
                    matcher="200-399",
                ),
                opts=child,
            )

        blue = target_group("blue")
        green = target_group("green")

        listener_opts = pulumi.ResourceOptions(parent=self, ignore_changes=list(CODEDEPLOY_OWNED["listener"]))
        # The production listener: HTTPS with the certificate when there is one. Same Pulumi name either way,
        # so turning HTTPS on changes the listener in place and CodeDeploy's reference to it (by ARN) holds.
        prod_listener = aws.lb.Listener(
            f"{name}-prod",
            load_balancer_arn=alb.arn,
            port=args.alb.listener_port,
            protocol="HTTPS" if https else "HTTP",
            ssl_policy=args.alb.ssl_policy if https else None,
            certificate_arn=args.certificate_arn,
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=blue.arn)],
            opts=listener_opts,
        )
        if https:
            # Port 80 only redirects (same host, path and query) to the HTTPS port. CodeDeploy never touches
            # it: it is not a traffic route of the deployment group, so its action stays under Pulumi's control.
            aws.lb.Listener(
                f"{name}-http-redirect",
                load_balancer_arn=alb.arn,
                port=HTTP_PORT,
                protocol="HTTP",
                default_actions=[
                    aws.lb.ListenerDefaultActionArgs(
                        type="redirect",
                        redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                            protocol="HTTPS", port=str(args.alb.listener_port), status_code=REDIRECT_STATUS
                        ),
                    )
                ],
                # Turning HTTPS on moves the production listener off port 80: that update must be done before
                # this listener takes the port (an ALB refuses two listeners on one port).
                opts=pulumi.ResourceOptions(parent=self, depends_on=[prod_listener]),
            )
            if args.alb.hosted_zone_id is not None:
                aws.route53.Record(
                    f"{name}-dns",
                    zone_id=args.alb.hosted_zone_id,
                    name=args.alb.domain_name,
                    type="A",
                    aliases=[
                        aws.route53.RecordAliasArgs(
                            name=alb.dns_name,
                            zone_id=alb.zone_id,
                            # The record counts as unhealthy while the ALB has no healthy target: what a
                            # failover record added next to it would need.
                            evaluate_target_health=True,
                        )
                    ],
                    opts=child,
                )
        test_listener = aws.lb.Listener(
            f"{name}-test",
            load_balancer_arn=alb.arn,
            port=args.alb.test_listener_port,
            protocol="HTTP",
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=green.arn)],
            opts=listener_opts,
        )

        self.taskdef_values = pulumi.Output.all(execution_role.arn, task_role.arn, log_group.name).apply(
            lambda v: TaskDefinitionValues(
                family=prefix,
                cpu=c.cpu,
                memory=c.memory,
                execution_role_arn=v[0],
                task_role_arn=v[1],
                container_name=c.name,
                container_port=c.port,
                image="<IMAGE1_NAME>",
                environment=c.environment,
                log_group=v[2],
                region=args.region,
            )
        )
        # The first revision, from the same template the pipeline renders, with the initial image.
        first = self.taskdef_values.apply(lambda v: json.loads(render_taskdef(replace(v, image=c.initial_image))))
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-taskdef",
            family=prefix,
            cpu=str(c.cpu),
            memory=str(c.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture="X86_64"
            ),
            container_definitions=first.apply(lambda d: json.dumps(d["containerDefinitions"])),
            opts=child,
        )

        service = aws.ecs.Service(
            f"{name}-service",
            name=prefix,
            cluster=cluster.arn,
            task_definition=task_definition.arn,
            desired_count=c.desired_count,
            launch_type="FARGATE",
            platform_version="LATEST",
            deployment_controller=aws.ecs.ServiceDeploymentControllerArgs(type="CODE_DEPLOY"),
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.task_subnet_ids,
                security_groups=[task_sg.id],
                assign_public_ip=args.assign_public_ip,
            ),
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(target_group_arn=blue.arn, container_name=c.name, container_port=c.port)
            ],
            health_check_grace_period_seconds=30,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The target group must be attached to a listener before a service can use it.
                depends_on=[prod_listener, test_listener],
                ignore_changes=list(CODEDEPLOY_OWNED["service"]),
            ),
        )

        self.cluster_name = cluster.name
        self.service_name = service.name
        self.blue_target_group_name = blue.name
        self.green_target_group_name = green.name
        self.blue_target_group_arn_suffix = blue.arn_suffix
        self.green_target_group_arn_suffix = green.arn_suffix
        self.prod_listener_arn = prod_listener.arn
        self.test_listener_arn = test_listener.arn
        self.load_balancer_arn_suffix = alb.arn_suffix
        self.execution_role_arn = execution_role.arn
        self.execution_role_name = execution_role.name
        self.task_role_arn = task_role.arn
        self.log_group_name = log_group.name
        self.alb_dns_name = alb.dns_name
        if https:
            self.url = pulumi.Output.from_input(_url(str(args.alb.domain_name), args.alb.listener_port, "https"))
        else:
            self.url = alb.dns_name.apply(lambda dns: _url(dns, args.alb.listener_port))
        self.test_url = alb.dns_name.apply(lambda dns: _url(dns, args.alb.test_listener_port))
        self.register_outputs(
            {
                "url": self.url,
                "test_url": self.test_url,
                "alb_dns_name": self.alb_dns_name,
                "access_logs_bucket": self.access_logs_bucket,
                "cluster_name": self.cluster_name,
                "service_name": self.service_name,
                "blue_target_group_name": self.blue_target_group_name,
                "green_target_group_name": self.green_target_group_name,
                "prod_listener_arn": self.prod_listener_arn,
                "test_listener_arn": self.test_listener_arn,
                "execution_role_arn": self.execution_role_arn,
                "task_role_arn": self.task_role_arn,
                "log_group_name": self.log_group_name,
            }
        )

    def _access_logs_bucket(
        self, name: str, args: FargateServiceArgs, account_id: pulumi.Output[str]
    ) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
        """The ALB's access-log bucket: SSE-S3 (the only encryption ALB log delivery supports), TLS only,
        writable by ELB log delivery under this account's prefix only, logs kept ``log_retention_days``."""
        physical_name = account_id.apply(
            lambda account: buckets.physical_bucket_name(args.name_prefix, "alb-logs", account, args.region)
        )
        bucket, block = buckets.private_bucket(
            self,
            f"{name}-access-logs",
            physical_name,
            force_destroy=args.force_destroy,
            protect=not args.force_destroy,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-logs",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=args.log_retention_days),
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        # ELB writes <prefix>/AWSLogs/<account>/ELBAccessLogTestFile and then the logs, with PutObject only:
        # nothing else is granted, and nowhere else in the bucket.
        log_objects = pulumi.Output.concat(bucket.arn, f"/{ACCESS_LOGS_PREFIX}/AWSLogs/", account_id, "/*")
        partition = aws.get_partition_output(opts=pulumi.InvokeOptions(parent=self)).partition
        deliver = {
            "Sid": "ElbLogDelivery",
            "Effect": "Allow",
            "Principal": partition.apply(lambda p: elb_log_writer(args.region, p)),
            "Action": "s3:PutObject",
            "Resource": log_objects,
        }
        policy = buckets.bucket_policy(
            self, f"{name}-access-logs-policy", bucket, block, [buckets.tls_only_statement(bucket.arn), deliver]
        )
        return bucket, policy


def _url(host: str, port: int, scheme: str = "http") -> str:
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}/" if port == default else f"{scheme}://{host}:{port}/"
