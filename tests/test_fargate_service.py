"""FargateService on its own, on Pulumi mocks: what the pipeline deploys onto, and what it must leave to
CodeDeploy.
"""

from __future__ import annotations

import ipaddress
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from parliament import analyze_policy_string

from components.buckets import physical_bucket_name
from components.config import StackConfig, parse_config
from components.fargate_service import (
    ACCESS_LOGS_PREFIX,
    CODEDEPLOY_OWNED,
    DEREGISTRATION_DELAY,
    ELB_LOG_ACCOUNTS,
    HEALTH_CHECK_INTERVAL,
    HEALTHY_THRESHOLD,
    UNHEALTHY_THRESHOLD,
    FargateServiceArgs,
    check_certificate,
    elb_log_writer,
)
from components.templates import TaskDefinitionValues, render_taskdef
from offline.engine import ACCOUNT_ID, ProgramRun, Registration, run_program
from offline.stack_files import StackFiles
from policy import rules

REGION = "eu-west-1"
COMPONENT = "gitlab-fargate:index:FargateService"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"

VALUES = {
    "gitlabProject": "shop/web",
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

# The program builds one FargateService per name in `test:names`, each with prefix "shop-<name>", and wires the
# certificate as __main__.py does: a Certificate when the config creates one, else the configured ARN (or none).
PROGRAM = """
import json
import pulumi
from components.certificate import Certificate, CertificateArgs
from components.config import parse_config
from components.fargate_service import FargateService, FargateServiceArgs

config = pulumi.Config("test")
cfg = parse_config(
    {"gitlabToken": "glpat-offline-test-token", **json.loads(config.require("values"))},
    stack="dev", region="eu-west-1", secret_keys=frozenset({"gitlabToken"}),
)
for name in config.require_object("names"):
    certificate_arn = cfg.alb.certificate_arn
    if cfg.alb.creates_certificate:
        certificate_arn = Certificate(f"{name}-certificate", CertificateArgs(
            domain_name=cfg.alb.domain_name, hosted_zone_id=cfg.alb.hosted_zone_id,
        )).arn
    service = FargateService(name, FargateServiceArgs(
        name_prefix=f"shop-{name}",
        region=cfg.region,
        container=cfg.container,
        alb=cfg.alb,
        log_retention_days=cfg.log_retention_days,
        vpc_id="vpc-0123456789abcdef0",
        public_subnet_ids=["subnet-0public00000000a", "subnet-0public00000000b"],
        task_subnet_ids=["subnet-0private0000000a", "subnet-0private0000000b"],
        assign_public_ip=config.require_bool("public"),
        certificate_arn=certificate_arn,
        force_destroy=cfg.force_destroy,
    ))
    pulumi.export(f"{name}-url", service.url)
    pulumi.export(f"{name}-albDnsName", service.alb_dns_name)
    pulumi.export(f"{name}-prodListenerArn", service.prod_listener_arn)
    pulumi.export(f"{name}-accessLogsBucket", service.access_logs_bucket)
    pulumi.export(f"{name}-testUrl", service.test_url)
    pulumi.export(f"{name}-taskdefValues", service.taskdef_values.apply(lambda v: v.__dict__))
"""


def run_services(tmp_path: Path, *names: str, public: bool = False, **overrides: str | None) -> ProgramRun:
    """Runs the program with ``VALUES`` changed by ``overrides`` (``None`` removes a key)."""
    program = tmp_path / "__main__.py"
    program.write_text(textwrap.dedent(PROGRAM))
    values = {k: v for k, v in {**VALUES, **overrides}.items() if v is not None}
    config = {
        "aws:region": REGION,
        "test:values": json.dumps(values),
        "test:names": json.dumps(list(names)),
        "test:public": "true" if public else "false",
    }
    return run_program(StackFiles("gitlab-fargate", "dev", config, []), program=program)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return run_services(tmp_path_factory.mktemp("fargate"), "svc")


def named(run: ProgramRun, typ: str, name: str) -> Registration:
    return run.one(typ, name)


# --- Drift contract with CodeDeploy ---------------------------------------------------------------


def test_codedeploy_owned_fields_are_pinned() -> None:
    # Changing this list changes what `pulumi up` may overwrite after a blue/green deployment.
    assert CODEDEPLOY_OWNED == {"service": ("taskDefinition", "loadBalancers"), "listener": ("defaultActions",)}


def test_service_is_deployed_by_codedeploy_and_leaves_it_its_fields(run: ProgramRun) -> None:
    service = run.one("aws:ecs/service:Service")
    assert service.props["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert service.ignore_changes == ["taskDefinition", "loadBalancers"]


def test_both_listeners_leave_their_actions_to_codedeploy(run: ProgramRun) -> None:
    listeners = run.of_type(LISTENER)
    assert len(listeners) == 2
    assert all(listener.ignore_changes == ["defaultActions"] for listener in listeners)


def test_nothing_else_ignores_changes(run: ProgramRun) -> None:
    others = [r.name for r in run.resources if r.ignore_changes and r.type not in (LISTENER, "aws:ecs/service:Service")]
    assert others == []


# --- Load balancing ---------------------------------------------------------------------------------


def test_two_ip_target_groups_with_fast_health_checks(run: ProgramRun) -> None:
    groups = {r.name: r.props for r in run.of_type(TARGET_GROUP)}
    assert set(groups) == {"svc-blue", "svc-green"}
    for props in groups.values():
        assert props["targetType"] == "ip", "awsvpc tasks register by IP"
        assert (props["port"], props["protocol"]) == (8080, "HTTP")
        assert props["vpcId"] == "vpc-0123456789abcdef0"
        assert props["deregistrationDelay"] == DEREGISTRATION_DELAY
        check = props["healthCheck"]
        assert check["path"] == "/health"
        assert check["interval"] == HEALTH_CHECK_INTERVAL
        assert (check["healthyThreshold"], check["unhealthyThreshold"]) == (HEALTHY_THRESHOLD, UNHEALTHY_THRESHOLD)
        assert check["timeout"] < check["interval"], "AWS requires the timeout to be shorter than the interval"
    assert {g["name"] for g in groups.values()} == {"shop-svc-blue", "shop-svc-green"}
    # A target turns healthy within half a minute, and a draining one is gone within 15 s.
    assert HEALTH_CHECK_INTERVAL * HEALTHY_THRESHOLD <= 30
    assert DEREGISTRATION_DELAY <= 30


def test_prod_listener_forwards_to_blue_and_test_listener_to_green(run: ProgramRun) -> None:
    blue = named(run, TARGET_GROUP, "svc-blue").state["arn"]
    green = named(run, TARGET_GROUP, "svc-green").state["arn"]
    alb = run.one("aws:lb/loadBalancer:LoadBalancer").state["arn"]
    prod = named(run, LISTENER, "svc-prod").props
    test = named(run, LISTENER, "svc-test").props
    assert (prod["port"], prod["loadBalancerArn"]) == (80, alb)
    assert (test["port"], test["loadBalancerArn"]) == (9000, alb)
    assert prod["defaultActions"] == [{"type": "forward", "targetGroupArn": blue}]
    assert test["defaultActions"] == [{"type": "forward", "targetGroupArn": green}]


def test_service_starts_on_blue_in_the_task_subnets(run: ProgramRun) -> None:
    service = run.one("aws:ecs/service:Service").props
    blue = named(run, TARGET_GROUP, "svc-blue").state["arn"]
    assert service["loadBalancers"] == [{"targetGroupArn": blue, "containerName": "web", "containerPort": 8080}]
    assert service["desiredCount"] == 2
    assert service["launchType"] == "FARGATE"
    network = service["networkConfiguration"]
    assert network["subnets"] == ["subnet-0private0000000a", "subnet-0private0000000b"]
    assert network["assignPublicIp"] is False
    assert network["securityGroups"] == [named(run, SG, "svc-tasks").id]


def test_public_tasks_get_a_public_ip(tmp_path: Path) -> None:
    service = run_services(tmp_path, "svc", public=True).one("aws:ecs/service:Service").props
    assert service["networkConfiguration"]["assignPublicIp"] is True


def test_alb_is_internet_facing_in_the_public_subnets(run: ProgramRun) -> None:
    alb = run.one("aws:lb/loadBalancer:LoadBalancer").props
    assert alb["internal"] is False and alb["loadBalancerType"] == "application"
    assert alb["subnets"] == ["subnet-0public00000000a", "subnet-0public00000000b"]
    assert alb["securityGroups"] == [named(run, SG, "svc-alb").id]
    assert run.outputs["svc-url"] == f"http://shop-svc-1234567890.{REGION}.elb.amazonaws.com/"
    assert run.outputs["svc-testUrl"] == f"http://shop-svc-1234567890.{REGION}.elb.amazonaws.com:9000/"


# --- Security groups: who reaches what ----------------------------------------------------------------


def reachable_ports(
    run: ProgramRun, sg: Registration, *, source_ip: str | None = None, source_sg: str | None = None
) -> set[int]:
    """Ports of ``sg`` a source can open, evaluated from the ingress rules as AWS does (any rule allows)."""
    ports: set[int] = set()
    for rule in run.of_type(INGRESS):
        p = rule.props
        if p["securityGroupId"] != sg.id:
            continue
        assert p["ipProtocol"] == "tcp"
        cidr = p.get("cidrIpv4") or p.get("cidrIpv6")
        if source_ip is not None and cidr and ipaddress.ip_address(source_ip) in ipaddress.ip_network(cidr):
            ports.update(range(int(p["fromPort"]), int(p["toPort"]) + 1))
        if source_sg is not None and p.get("referencedSecurityGroupId") == source_sg:
            ports.update(range(int(p["fromPort"]), int(p["toPort"]) + 1))
    return ports


def test_alb_takes_the_listener_ports_only_from_the_configured_cidrs(run: ProgramRun) -> None:
    alb_sg = named(run, SG, "svc-alb")
    assert reachable_ports(run, alb_sg, source_ip="203.0.113.9") == {80}
    assert reachable_ports(run, alb_sg, source_ip="2001:db8::1") == {80}
    assert reachable_ports(run, alb_sg, source_ip="192.0.2.4") == {9000}, "the test port only from test CIDRs"
    assert reachable_ports(run, alb_sg, source_ip="198.51.100.7") == set(), "anyone else reaches nothing"
    assert "ingress" not in alb_sg.props and "egress" not in alb_sg.props, "rules are separate resources only"


def test_tasks_take_only_the_container_port_and_only_from_the_alb(run: ProgramRun) -> None:
    alb_sg = named(run, SG, "svc-alb")
    task_sg = named(run, SG, "svc-tasks")
    assert reachable_ports(run, task_sg, source_sg=alb_sg.id) == {8080}
    for ip in ("203.0.113.9", "10.20.3.4", "198.51.100.7", "2001:db8::1"):
        assert reachable_ports(run, task_sg, source_ip=ip) == set(), ip
    ingress_to_tasks = [r for r in run.of_type(INGRESS) if r.props["securityGroupId"] == task_sg.id]
    assert len(ingress_to_tasks) == 1


def test_egress_is_limited(run: ProgramRun) -> None:
    alb_sg = named(run, SG, "svc-alb").id
    task_sg = named(run, SG, "svc-tasks").id
    rules = {(r.props["securityGroupId"], r.props["fromPort"], r.props["toPort"]): r.props for r in run.of_type(EGRESS)}
    assert set(rules) == {(alb_sg, 8080, 8080), (task_sg, 443, 443)}
    assert rules[(alb_sg, 8080, 8080)]["referencedSecurityGroupId"] == task_sg, "the ALB talks to the tasks only"


def test_no_test_cidrs_means_no_way_to_the_test_listener(tmp_path: Path) -> None:
    run = run_services(tmp_path, "svc", testListenerCidrs="[]")
    alb_sg = named(run, SG, "svc-alb")
    ports = [r.props["fromPort"] for r in run.of_type(INGRESS) if r.props["securityGroupId"] == alb_sg.id]
    assert ports == [80, 80]


# --- Logs and IAM ------------------------------------------------------------------------------------


def test_log_group_and_its_retention(run: ProgramRun) -> None:
    logs = run.one("aws:cloudwatch/logGroup:LogGroup").props
    assert logs == {**logs, "name": "/ecs/shop-svc", "retentionInDays": 30}


def test_execution_role_policy_passes_parliament_and_is_scoped_to_the_log_group(run: ProgramRun) -> None:
    log_group_arn = run.one("aws:cloudwatch/logGroup:LogGroup").state["arn"]
    role = named(run, "aws:iam/role:Role", "svc-execution")
    policy = named(run, "aws:iam/rolePolicy:RolePolicy", "svc-execution-logs").props
    assert policy["role"] == role.id
    findings = [f"{f.issue}: {f.detail}" for f in analyze_policy_string(policy["policy"]).findings]
    assert findings == []
    [statement] = json.loads(policy["policy"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == [f"{log_group_arn}:*"]


def test_roles_are_for_ecs_tasks_of_this_account_and_the_task_role_has_no_permissions(run: ProgramRun) -> None:
    roles = {r.name: r for r in run.of_type("aws:iam/role:Role")}
    assert set(roles) == {"svc-execution", "svc-task"}
    for role in roles.values():
        [statement] = json.loads(role.props["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
        assert "managedPolicyArns" not in role.props
    policies = run.of_type("aws:iam/rolePolicy:RolePolicy")
    assert [p.props["role"] for p in policies] == [roles["svc-execution"].id]
    assert run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []


# --- Task definition -----------------------------------------------------------------------------------


def register_task_definition_shape() -> Any:
    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


def assert_valid_for_ecs(params: dict[str, Any]) -> None:
    report = ParamValidator().validate(params, register_task_definition_shape())
    assert not report.has_errors(), report.generate_report()


def first_task_definition(run: ProgramRun) -> dict[str, Any]:
    """The registered task definition as ECS RegisterTaskDefinition takes it."""
    props = run.one("aws:ecs/taskDefinition:TaskDefinition").props
    params = {key: props[key] for key in ("family", "cpu", "memory", "networkMode", "requiresCompatibilities")}
    params.update(
        executionRoleArn=props["executionRoleArn"],
        taskRoleArn=props["taskRoleArn"],
        runtimePlatform=props["runtimePlatform"],
        containerDefinitions=json.loads(props["containerDefinitions"]),
    )
    return params


def test_the_validator_catches_what_it_should() -> None:
    # Guards the two tests below: a wrong type and an unknown field are reported.
    report = ParamValidator().validate(
        {"family": "x", "cpu": 256, "containerDefinitions": [{"name": "x", "imagee": "y"}]},
        register_task_definition_shape(),
    )
    assert report.has_errors()
    assert "cpu" in report.generate_report() and "imagee" in report.generate_report()


def test_first_task_definition_is_valid_for_ecs_and_runs_the_initial_image(run: ProgramRun) -> None:
    params = first_task_definition(run)
    assert_valid_for_ecs(params)
    assert (params["family"], params["cpu"], params["memory"]) == ("shop-svc", "512", "2048")
    assert (params["networkMode"], params["requiresCompatibilities"]) == ("awsvpc", ["FARGATE"])
    assert params["executionRoleArn"] == named(run, "aws:iam/role:Role", "svc-execution").state["arn"]
    assert params["taskRoleArn"] == named(run, "aws:iam/role:Role", "svc-task").state["arn"]
    [container] = params["containerDefinitions"]
    assert container["name"] == "web"
    assert container["image"] == "public.ecr.aws/nginx/nginx:stable-alpine"
    assert container["portMappings"] == [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]
    assert container["environment"] == [
        {"name": "GREETING", "value": "hello world"},
        {"name": "MODE", "value": "demo"},
    ]
    assert container["logConfiguration"]["options"] == {
        "awslogs-group": "/ecs/shop-svc",
        "awslogs-region": REGION,
        "awslogs-stream-prefix": "web",
    }


def test_pipeline_taskdef_json_is_valid_for_ecs_and_matches_the_first_revision(run: ProgramRun) -> None:
    values = TaskDefinitionValues(**run.outputs["svc-taskdefValues"])
    assert values.image == "<IMAGE1_NAME>", "CodeDeploy fills the image in"
    rendered = json.loads(render_taskdef(values))
    assert_valid_for_ecs(rendered)
    first = first_task_definition(run)
    [pipeline_container], [first_container] = rendered["containerDefinitions"], first["containerDefinitions"]
    assert {**pipeline_container, "image": None} == {**first_container, "image": None}
    assert {k: v for k, v in rendered.items() if k != "containerDefinitions"} == {
        k: v for k, v in first.items() if k != "containerDefinitions"
    }


def test_taskdef_template_renders_any_environment_value_safely() -> None:
    tricky = {"QUOTE": 'say "hi"', "BRACES": "${not_a_placeholder}", "NEWLINE": "a\nb"}
    values = TaskDefinitionValues(
        family="f", cpu=256, memory=512, execution_role_arn="arn:aws:iam::1:role/e",
        task_role_arn="arn:aws:iam::1:role/t", container_name="c", container_port=80, image="i",
        environment=tricky, log_group="/ecs/f", region=REGION,
    )  # fmt: skip
    rendered = json.loads(render_taskdef(values))
    assert_valid_for_ecs(rendered)
    assert {e["name"]: e["value"] for e in rendered["containerDefinitions"][0]["environment"]} == tricky


# --- Component shape -----------------------------------------------------------------------------------


def test_every_child_is_named_after_the_component_and_parented_to_it(run: ProgramRun) -> None:
    component = run.one(COMPONENT)
    children = run.children_of(component)
    others = [r for r in run.resources if r is not component]
    assert {r.urn for r in children} == {r.urn for r in others}, "every resource is a direct child"
    assert all(r.name.startswith(f"{component.name}-") for r in children), [r.name for r in children]


def test_two_instances_do_not_collide(tmp_path: Path) -> None:
    run = run_services(tmp_path, "one", "two")
    components = run.of_type(COMPONENT)
    assert len(components) == 2
    assert len(run.children_of(components[0])) == len(run.children_of(components[1])) > 10
    urns = [r.urn for r in run.resources]
    assert len(urns) == len(set(urns))
    physical = [(r.type, r.props["name"]) for r in run.resources if isinstance(r.props.get("name"), str)]
    assert len(physical) == len(set(physical)), "physical names derive from each instance's prefix"


# --- HTTP only (no certificate) ---------------------------------------------------------------------------


def test_without_a_certificate_the_site_is_plain_http_on_one_listener_and_no_dns(run: ProgramRun) -> None:
    assert [r.name for r in run.of_type(LISTENER)] == ["svc-prod", "svc-test"]
    prod = named(run, LISTENER, "svc-prod").props
    assert prod["protocol"] == "HTTP"
    assert "sslPolicy" not in prod and "certificateArn" not in prod
    assert run.of_type(RECORD) == [] and run.of_type(CERTIFICATE) == []
    assert run.outputs["svc-albDnsName"] == f"shop-svc-1234567890.{REGION}.elb.amazonaws.com"
    assert run.outputs["svc-prodListenerArn"] == named(run, LISTENER, "svc-prod").state["arn"]


def test_a_certificate_that_disagrees_with_the_alb_config_is_refused_before_anything_exists() -> None:
    token, secret = {"gitlabToken": "glpat-offline-test-token"}, frozenset({"gitlabToken"})
    http_only = parse_config({"gitlabProject": "shop/web", **token}, stack="dev", region=REGION, secret_keys=secret)
    https = parse_config(
        {"gitlabProject": "shop/web", "domainName": DOMAIN, "hostedZoneId": ZONE, **token},
        stack="dev",
        region=REGION,
        secret_keys=secret,
    )

    def args(cfg: StackConfig, certificate_arn: str | None) -> FargateServiceArgs:
        return FargateServiceArgs(
            name_prefix="shop-svc", region=REGION, container=cfg.container, alb=cfg.alb, log_retention_days=7,
            vpc_id="vpc-1", public_subnet_ids=[], task_subnet_ids=[], assign_public_ip=False,
            certificate_arn=certificate_arn,
        )  # fmt: skip

    with pytest.raises(ValueError, match="needs a certificate_arn"):
        check_certificate(args(https, None))  # would serve plain HTTP on port 443
    with pytest.raises(ValueError, match="needs no certificate_arn"):
        check_certificate(args(http_only, EXISTING_CERTIFICATE))
    check_certificate(args(https, EXISTING_CERTIFICATE))
    check_certificate(args(http_only, None))


# --- HTTPS ---------------------------------------------------------------------------------------------------

DOMAIN = "shop.example.com"
ZONE = "Z0123456789ABCDEFGHIJ"
EXISTING_CERTIFICATE = f"arn:aws:acm:{REGION}:{ACCOUNT_ID}:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
CERTIFICATE = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
ALB = "aws:lb/loadBalancer:LoadBalancer"


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    """HTTPS with a certificate the stack creates in the site's zone; the production port is left to default."""
    return run_services(
        tmp_path_factory.mktemp("https"), "svc", listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE
    )


def test_https_listener_serves_the_validated_certificate_with_a_tls13_policy(https: ProgramRun) -> None:
    prod = named(https, LISTENER, "svc-prod")
    validation = https.one(VALIDATION)
    assert (prod.props["protocol"], prod.props["port"]) == ("HTTPS", 443)
    assert prod.props["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert prod.props["certificateArn"] == validation.props["certificateArn"]
    assert validation.urn in prod.dependencies, "the listener waits until ACM has issued the certificate"
    blue = named(https, TARGET_GROUP, "svc-blue").state["arn"]
    assert prod.props["defaultActions"] == [{"type": "forward", "targetGroupArn": blue}]
    assert prod.ignore_changes == ["defaultActions"], "still CodeDeploy's production route"
    assert https.outputs["svc-prodListenerArn"] == prod.state["arn"]


def test_port_80_redirects_permanently_to_https_and_is_not_codedeploys(https: ProgramRun) -> None:
    redirect = named(https, LISTENER, "svc-http-redirect")
    alb = https.one(ALB).state["arn"]
    assert (redirect.props["protocol"], redirect.props["port"], redirect.props["loadBalancerArn"]) == ("HTTP", 80, alb)
    [action] = redirect.props["defaultActions"]
    assert action["type"] == "redirect"
    assert action["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    assert redirect.ignore_changes == [], "Pulumi keeps this action: CodeDeploy never routes through it"
    assert https.outputs["svc-prodListenerArn"] != redirect.state["arn"]
    assert named(https, LISTENER, "svc-prod").urn in redirect.dependencies, "port 80 is freed first"


def test_test_listener_stays_http_and_closed_to_the_internet(https: ProgramRun) -> None:
    test = named(https, LISTENER, "svc-test").props
    assert (test["protocol"], test["port"]) == ("HTTP", 9000)
    assert "certificateArn" not in test
    alb_sg = named(https, SG, "svc-alb")
    assert reachable_ports(https, alb_sg, source_ip="203.0.113.9") == {80, 443}
    assert reachable_ports(https, alb_sg, source_ip="2001:db8::1") == {80, 443}
    assert reachable_ports(https, alb_sg, source_ip="192.0.2.4") == {9000}
    assert reachable_ports(https, alb_sg, source_ip="198.51.100.7") == set()


def test_with_the_default_world_cidrs_the_internet_reaches_80_and_443_only(tmp_path: Path) -> None:
    run = run_services(
        tmp_path, "svc", listenerPort=None, allowedCidrs=None, domainName=DOMAIN, certificateArn=EXISTING_CERTIFICATE
    )
    alb_sg = named(run, SG, "svc-alb")
    assert reachable_ports(run, alb_sg, source_ip="198.51.100.7") == {80, 443}
    assert reachable_ports(run, alb_sg, source_ip="192.0.2.4") == {80, 443, 9000}
    assert rules.check_stack([rules.from_registration(r) for r in run.resources]) == []


def test_the_sites_name_is_an_alias_of_the_alb(https: ProgramRun) -> None:
    alb = https.one(ALB).state
    record = named(https, RECORD, "svc-dns").props
    assert (record["zoneId"], record["name"], record["type"]) == (ZONE, DOMAIN, "A")
    assert record["aliases"] == [{"name": alb["dnsName"], "zoneId": alb["zoneId"], "evaluateTargetHealth": True}]
    assert "records" not in record and "ttl" not in record, "an alias has neither"


def test_https_urls(https: ProgramRun) -> None:
    assert https.outputs["svc-url"] == f"https://{DOMAIN}/"
    assert https.outputs["svc-testUrl"] == f"http://shop-svc-1234567890.{REGION}.elb.amazonaws.com:9000/"
    assert https.outputs["svc-albDnsName"] == f"shop-svc-1234567890.{REGION}.elb.amazonaws.com"


def test_a_non_default_https_port_is_in_the_url_and_the_redirect(tmp_path: Path) -> None:
    run = run_services(tmp_path, "svc", listenerPort="8443", domainName=DOMAIN, hostedZoneId=ZONE)
    assert run.outputs["svc-url"] == f"https://{DOMAIN}:8443/"
    assert named(run, LISTENER, "svc-prod").props["port"] == 8443
    [action] = named(run, LISTENER, "svc-http-redirect").props["defaultActions"]
    assert action["redirect"]["port"] == "8443"
    assert reachable_ports(run, named(run, SG, "svc-alb"), source_ip="203.0.113.9") == {80, 8443}


def test_the_configured_ssl_policy_is_used(tmp_path: Path) -> None:
    policy = "ELBSecurityPolicy-TLS13-1-3-2021-06"
    run = run_services(tmp_path, "svc", listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE, sslPolicy=policy)
    assert named(run, LISTENER, "svc-prod").props["sslPolicy"] == policy


def test_an_existing_certificate_creates_no_acm_or_dns_resources(tmp_path: Path) -> None:
    run = run_services(tmp_path, "svc", listenerPort=None, domainName=DOMAIN, certificateArn=EXISTING_CERTIFICATE)
    assert [r.type for r in run.resources if r.type.startswith(("aws:acm/", "aws:route53/"))] == []
    assert named(run, LISTENER, "svc-prod").props["certificateArn"] == EXISTING_CERTIFICATE
    assert run.outputs["svc-url"] == f"https://{DOMAIN}/", "the operator points the name at albDnsName"
    assert run.outputs["svc-albDnsName"] == f"shop-svc-1234567890.{REGION}.elb.amazonaws.com"


def test_an_existing_certificate_with_a_zone_gets_the_alias_but_no_new_certificate(tmp_path: Path) -> None:
    run = run_services(
        tmp_path, "svc", listenerPort=None, domainName=DOMAIN, hostedZoneId=ZONE, certificateArn=EXISTING_CERTIFICATE
    )
    assert run.of_type(CERTIFICATE) == [] and run.of_type(VALIDATION) == []
    assert [r.name for r in run.of_type(RECORD)] == ["svc-dns"]
    assert named(run, LISTENER, "svc-prod").props["certificateArn"] == EXISTING_CERTIFICATE


# --- Deletion protection and access logs -----------------------------------------------------------------


def test_alb_deletion_protection_follows_the_config(run: ProgramRun, tmp_path: Path) -> None:
    assert run.one(ALB).props["enableDeletionProtection"] is True, "on by default"
    off = run_services(tmp_path, "svc", albDeletionProtection="false")
    assert off.one(ALB).props["enableDeletionProtection"] is False


def access_logs_bucket(run: ProgramRun) -> Registration:
    return named(run, "aws:s3/bucket:Bucket", "svc-access-logs")


def test_alb_writes_access_logs_to_a_bucket_of_its_own(run: ProgramRun) -> None:
    bucket = access_logs_bucket(run)
    expected = physical_bucket_name("shop-svc", "alb-logs", ACCOUNT_ID, REGION)
    assert bucket.props["bucket"] == expected
    assert run.outputs["svc-accessLogsBucket"] == expected
    alb = run.one(ALB)
    assert alb.props["accessLogs"] == {"bucket": expected, "prefix": ACCESS_LOGS_PREFIX, "enabled": True}
    policy = named(run, "aws:s3/bucketPolicy:BucketPolicy", "svc-access-logs-policy")
    assert policy.urn in alb.dependencies, "ELB writes a test object when logging is enabled: policy first"


def test_access_log_bucket_is_sse_s3_and_expires_logs_after_the_retention(run: ProgramRun) -> None:
    encryption = named(
        run,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "svc-access-logs-encryption",
    ).props
    [rule] = encryption["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256", "ALB logs support SSE-S3 only"
    lifecycle = named(
        run, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "svc-access-logs-lifecycle"
    ).props
    assert lifecycle["bucket"] == access_logs_bucket(run).id
    [expire] = lifecycle["rules"]
    assert expire["status"] == "Enabled"
    assert expire["expiration"]["days"] == 30
    assert not expire["filter"], "every object of the bucket"


def test_access_log_bucket_policy_grants_elb_only_putobject_under_this_accounts_prefix(run: ProgramRun) -> None:
    policy = named(run, "aws:s3/bucketPolicy:BucketPolicy", "svc-access-logs-policy").props
    findings = [f"{f.issue}: {f.detail}" for f in analyze_policy_string(policy["policy"]).findings]
    assert findings == []
    arn = access_logs_bucket(run).state["arn"]
    statements = json.loads(policy["policy"])["Statement"]
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
    assert rules.check_stack([rules.from_registration(r) for r in run.resources]) == []


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


def test_no_access_logs_means_no_bucket(tmp_path: Path) -> None:
    run = run_services(tmp_path, "svc", albAccessLogs="false")
    assert not [r for r in run.resources if r.type.startswith("aws:s3/")]
    assert "accessLogs" not in run.one(ALB).props
    assert run.outputs["svc-accessLogsBucket"] is None


# --- What `pulumi destroy` may delete ------------------------------------------------------------------------


def test_logs_are_protected_unless_force_destroy(run: ProgramRun, tmp_path: Path) -> None:
    protected = sorted(r.name for r in run.resources if r.protect)
    assert protected == ["svc-access-logs", "svc-logs"], "the data, not the settings around it"
    assert access_logs_bucket(run).props["forceDestroy"] is False
    forced = run_services(tmp_path, "svc", forceDestroy="true")
    assert [r.name for r in forced.resources if r.protect] == []
    assert access_logs_bucket(forced).props["forceDestroy"] is True


# --- The requests AWS receives ----------------------------------------------------------------------------


def assert_valid_request(service: str, operation: str, params: dict[str, Any]) -> None:
    """Validates a request against the AWS API model: unknown fields, types, and values of enum fields."""
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    bad = list(_bad_enum_values(shape, params, operation))
    assert bad == [], bad


def _bad_enum_values(shape: Any, value: Any, path: str) -> Any:
    if shape.type_name == "structure":
        for key, member in value.items():
            yield from _bad_enum_values(shape.members[key], member, f"{path}.{key}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            yield from _bad_enum_values(shape.member, item, f"{path}[{i}]")
    elif getattr(shape, "enum", None) and value not in shape.enum:
        yield f"{path}: {value!r} not in {shape.enum}"


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


def create_listener(listener: Registration) -> dict[str, Any]:
    """The ELBv2 CreateListener request for a listener on mocks, as the provider sends it."""
    p = listener.props
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
    listeners = https.of_type(LISTENER)
    assert len(listeners) == 3
    for listener in listeners:
        assert_valid_request("elbv2", "CreateListener", create_listener(listener))
    prod = create_listener(named(https, LISTENER, "svc-prod"))
    assert prod["Protocol"] == "HTTPS" and prod["SslPolicy"] and prod["Certificates"]


def test_alb_attributes_are_valid_elbv2_requests(run: ProgramRun) -> None:
    alb = run.one(ALB)
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
    # ELB forbids "AWSLogs" in the prefix (it adds that part itself) and a leading or trailing slash.
    assert "AWSLogs" not in logs["prefix"] and logs["prefix"].strip("/") == logs["prefix"]


def test_alias_record_is_a_valid_route53_request(https: ProgramRun) -> None:
    record = named(https, RECORD, "svc-dns").props
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
