"""Whole-program runs of every committed stack, as `pulumi up` would run them: the runtime side.

Each committed `Pulumi.<stack>.yaml` must produce a program that runs; dev and prod must keep the
properties their comments promise (dev cheap and public, prod spread over AZs in private subnets).
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.base import PROJECT, ROOT
from offline.engine import ProgramRun, Registration
from policy import resource_types as rt
from support.stacks import STACKS, component, descendants


@pytest.fixture(scope="module", params=STACKS)
def stack(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    name: str = request.param
    run = request.getfixturevalue("runs")(name)
    return name, run


def stack_file(name: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())["config"]
    return config


def service(run: ProgramRun) -> dict[str, Any]:
    return run.one(rt.ECS_SERVICE).props


def task_subnets(run: ProgramRun) -> list[Registration]:
    ids = service(run)["networkConfiguration"]["subnets"]
    by_id = {s.id: s for s in run.of_type(rt.EC2_SUBNET)}
    assert set(ids) <= set(by_id), "stacks here create their VPC; task subnets are among its subnets"
    return [by_id[i] for i in ids]


def default_route(run: ProgramRun, subnet: Registration) -> dict[str, Any]:
    [association] = [a for a in run.of_type(rt.EC2_ROUTE_TABLE_ASSOCIATION) if a.props["subnetId"] == subnet.id]
    [table] = [t for t in run.of_type(rt.EC2_ROUTE_TABLE) if t.id == association.props["routeTableId"]]
    routes: list[dict[str, Any]] = table.props["routes"]
    [route] = [r for r in routes if r["cidrBlock"] == "0.0.0.0/0"]
    return route


# --- Every committed stack ---------------------------------------------------------------------------


def test_the_program_runs_and_builds_the_runtime(stack: tuple[str, ProgramRun]) -> None:
    name, run = stack
    assert component(run, "FargateService")
    assert run.one(rt.ECS_SERVICE).props["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert run.one(rt.LB_LOAD_BALANCER).props["name"] == f"{stack_file(name)[f'{PROJECT}:appName']}-{name}"


def test_url_is_the_first_output(stack: tuple[str, ProgramRun]) -> None:
    name, run = stack
    assert run.export_order[0] == "url", run.export_order
    domain = stack_file(name).get(f"{PROJECT}:domainName")
    if domain:  # HTTPS on the site's own name
        assert run.outputs["url"] == f"https://{domain}/"
    else:
        assert run.outputs["url"].startswith("http://") and run.outputs["url"].endswith(".elb.amazonaws.com/")
    assert run.outputs["albDnsName"] in run.outputs["testUrl"]
    assert "url" not in run.secret_outputs


def test_every_aws_resource_and_lookup_goes_through_the_tagged_provider(stack: tuple[str, ProgramRun]) -> None:
    name, run = stack
    provider = run.one(rt.AWS_PROVIDER)
    reference = f"{provider.urn}::{provider.id}"
    aws_resources = [r for r in run.resources if r.custom and r.type.startswith("aws:")]
    assert aws_resources
    assert [r.name for r in aws_resources if r.provider != reference] == []
    # Lookups too: the default provider would read AZs (and the account) from the caller's environment.
    assert [tok for tok, ref in run.call_providers if ref != reference] == []

    props = provider.props
    assert props["region"] == stack_file(name)["aws:region"]
    # A provider's nested inputs reach the engine as JSON.
    tags = json.loads(props["defaultTags"])["tags"]
    expected = {**stack_file(name).get(f"{PROJECT}:tags", {}), "stack": name, "managed-by": "pulumi"}
    assert tags == {**tags, **expected}
    assert tags["app"] == stack_file(name)[f"{PROJECT}:appName"]


# --- The component tree ------------------------------------------------------------------------------

# The design card's four public components, and what each is made of since issue 10 split the two big ones.
PARTS = {
    "FargateService": {"LoadBalancer", "EcsService"},
    "SourceBucket": set(),
    "BuildStage": set(),
    "DeployStage": {"CodeDeployBlueGreen", "ArtifactStore", "DeliveryPipeline", "PipelineTrigger", "FailureRules"},
}


def class_of(reg: Registration) -> str:
    return reg.type.rsplit(":", 1)[-1]


def test_the_four_public_components_are_at_the_top_and_made_of_their_parts(stack: tuple[str, ProgramRun]) -> None:
    _, run = stack
    urns = {r.urn for r in run.resources}
    top = [class_of(r) for r in run.resources if not r.custom and r.parent not in urns]
    assert set(PARTS) <= set(top), top
    for name, parts in PARTS.items():
        owner = component(run, name)
        assert owner.type == f"{PROJECT}:index:{name}", "the type token names the project and the class"
        # (FailureRules tell the notification topic: a stack without one has none.)
        expected = parts if run.of_type(rt.SNS_TOPIC) else parts - {"FailureRules"}
        assert {class_of(r) for r in run.children_of(owner) if not r.custom} == expected, name
        # Every part and every resource under it is named after the public component: two stacks' (or two
        # instances') URNs never collide.
        assert [r.name for r in descendants(run, owner) if not r.name.startswith(owner.name)] == [], name


def test_every_resource_is_named_after_its_top_level_component(stack: tuple[str, ProgramRun]) -> None:
    _, run = stack
    by_urn = {r.urn: r for r in run.resources}

    def top(r: Registration) -> Registration:
        while r.parent in by_urn:
            r = by_urn[r.parent]
        return r

    misnamed = [(r.name, top(r).name) for r in run.resources if not r.name.startswith(top(r).name)]
    assert misnamed == []


# --- dev and prod ----------------------------------------------------------------------------------


def test_dev_runs_public_tasks_without_nat(dev: ProgramRun) -> None:
    network = service(dev)["networkConfiguration"]
    assert network["assignPublicIp"] is True
    assert dev.of_type(rt.EC2_NAT_GATEWAY) == []
    assert dev.of_type(rt.EC2_EIP) == []
    igw = dev.one(rt.EC2_INTERNET_GATEWAY).id
    assert all(default_route(dev, s)["gatewayId"] == igw for s in task_subnets(dev))


def test_prod_runs_two_or_more_tasks_across_azs_in_private_subnets(prod: ProgramRun) -> None:
    svc = service(prod)
    assert svc["desiredCount"] >= 2
    subnets = task_subnets(prod)
    zones = {s.props["availabilityZone"] for s in subnets}
    assert len(zones) >= 2, "ECS spreads a service's Fargate tasks over the AZs of its subnets"
    assert svc["networkConfiguration"]["assignPublicIp"] is False
    nats = {n.id for n in prod.of_type(rt.EC2_NAT_GATEWAY)}
    for subnet in subnets:
        route = default_route(prod, subnet)
        assert route.get("natGatewayId") in nats and "gatewayId" not in route, subnet.name


def test_prod_is_bigger_and_safer_than_dev(dev: ProgramRun, prod: ProgramRun) -> None:
    def taskdef(run: ProgramRun) -> tuple[int, int]:
        props = run.one(rt.ECS_TASK_DEFINITION).props
        return int(props["cpu"]), int(props["memory"])

    assert taskdef(prod) >= taskdef(dev)

    def retention(run: ProgramRun) -> int:
        return int(run.one(rt.LOG_GROUP, "service-logs").props["retentionInDays"])

    assert retention(prod) > retention(dev)


# --- Production hardening: what prod shows and dev deliberately does not -----------------------------

LISTENER = rt.LB_LISTENER


def listener_on(run: ProgramRun, port: int) -> dict[str, Any]:
    [listener] = [r.props for r in run.of_type(LISTENER) if r.props["port"] == port]
    return listener


def test_prod_serves_https_with_a_tls13_policy_and_port_80_only_redirects(prod: ProgramRun) -> None:
    https = listener_on(prod, 443)
    assert https["protocol"] == "HTTPS" and https["sslPolicy"].startswith("ELBSecurityPolicy-TLS13-")
    validation = prod.one(rt.ACM_CERTIFICATE_VALIDATION)
    assert https["certificateArn"] == validation.state["certificateArn"], "the listener waits for validation"
    [redirect] = listener_on(prod, 80)["defaultActions"]
    assert redirect["type"] == "redirect" and redirect["redirect"]["protocol"] == "HTTPS"
    assert redirect["redirect"]["statusCode"] == "HTTP_301"
    group = prod.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props
    by_arn = {r.state["arn"]: r.props["port"] for r in prod.of_type(LISTENER)}
    routes = group["loadBalancerInfo"]["targetGroupPairInfo"]
    assert [by_arn[a] for a in routes["prodTrafficRoute"]["listenerArns"]] == [443]
    record = prod.one(rt.ROUTE53_RECORD, "service-dns").props
    assert record["name"] == stack_file("prod")[f"{PROJECT}:domainName"] and record["type"] == "A"


def test_the_test_listener_is_closed_to_the_internet_in_every_stack(stack: tuple[str, ProgramRun]) -> None:
    name, run = stack
    port = int(stack_file(name).get(f"{PROJECT}:testListenerPort", 8080))
    for rule in run.of_type(rt.VPC_SECURITY_GROUP_INGRESS_RULE):
        if rule.props.get("fromPort") == port:
            assert rule.props.get("cidrIpv4") != "0.0.0.0/0" and rule.props.get("cidrIpv6") != "::/0"


def test_prod_rolls_back_on_alarms_and_asks_for_approval(prod: ProgramRun) -> None:
    group = prod.one(rt.CODEDEPLOY_DEPLOYMENT_GROUP).props
    assert group["deploymentConfigName"].startswith("CodeDeployDefault.ECSCanary")
    # The ServiceAlarms' alarms roll back; the commit-status alarms (the feedback to GitLab) do not.
    owner = component(prod, "ServiceAlarms")
    alarms = {a.props["name"] for a in descendants(prod, owner) if a.type == rt.METRIC_ALARM}
    assert len(alarms) == 4 and group["alarmConfiguration"]["enabled"] is True
    assert set(group["alarmConfiguration"]["alarms"]) == alarms
    assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(group["autoRollbackConfiguration"]["events"])
    stages = [s["name"] for s in prod.one(rt.CODEPIPELINE_PIPELINE).props["stages"]]
    assert stages == ["Source", "Build", "Approve", "Deploy"]


def test_failures_and_rollbacks_reach_the_subscribed_emails(prod: ProgramRun) -> None:
    topic = prod.one(rt.SNS_TOPIC)
    assert topic.props["kmsMasterKeyId"], "the topic is encrypted"
    emails = {s.props["endpoint"] for s in prod.of_type(rt.SNS_TOPIC_SUBSCRIPTION)}
    assert emails == set(stack_file("prod")[f"{PROJECT}:notificationEmails"])
    targets = {t.props["rule"]: t.props["arn"] for t in prod.of_type(rt.EVENTS_TARGET)}
    assert targets["sample-app-prod-pipeline-failed"] == topic.state["arn"]
    assert targets["sample-app-prod-deployment-failed"] == topic.state["arn"]
    for alarm in prod.of_type(rt.METRIC_ALARM):
        assert alarm.props["alarmActions"] == [topic.state["arn"]]


def test_prod_protects_stateful_resources_and_the_alb_and_dev_does_not(dev: ProgramRun, prod: ProgramRun) -> None:
    protected = {(r.type, r.name) for r in prod.resources if r.protect}
    assert protected == {
        (rt.S3_BUCKET, "source-bucket"),  # every upload, the deploy history
        (rt.ECR_REPOSITORY, "build-repository"),  # the images CodeDeploy rolls back to
        (rt.LOG_GROUP, "service-logs"),
        (rt.LOG_GROUP, "build-logs"),
        (rt.LOG_GROUP, "network-flow-logs"),  # the VPC's rejected traffic: an audit trail
        (rt.S3_BUCKET, "service-access-logs"),
    }
    assert [r.name for r in dev.resources if r.protect] == []
    assert prod.one(rt.ECR_REPOSITORY).props.get("forceDelete") is not True
    assert dev.one(rt.ECR_REPOSITORY).props["forceDelete"] is True
    prod_alb = prod.one(rt.LB_LOAD_BALANCER).props
    assert prod_alb["enableDeletionProtection"] is True and prod_alb["accessLogs"]["enabled"] is True
    dev_alb = dev.one(rt.LB_LOAD_BALANCER).props
    assert not dev_alb.get("enableDeletionProtection") and "accessLogs" not in dev_alb


# --- The sample application the pipeline builds ------------------------------------------------------

APP = ROOT / "files" / "app"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of files/app/Dockerfile, comments and continuations handled."""
    text = re.sub(r"\\\n", " ", (APP / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def nginx_blocks(text: str) -> list[Any]:
    """A tiny nginx config parser: a list of (directive args) tuples and (block args, children) pairs."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))
    stack: list[list[Any]] = [[]]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].append(tuple(words))
            words = []
        elif token == "{":
            block: list[Any] = []
            stack[-1].append((tuple(words), block))
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced braces or a missing ';'"
    return stack[0]


def blocks(items: list[Any]) -> list[tuple[tuple[str, ...], list[Any]]]:
    return [item for item in items if len(item) == 2 and isinstance(item[1], list)]


def servers() -> list[list[Any]]:
    return [body for head, body in blocks(nginx_blocks((APP / "nginx.conf").read_text())) if head == ("server",)]


def locations(server: list[Any]) -> dict[tuple[str, ...], list[Any]]:
    return {head[1:]: body for head, body in blocks(server) if head[0] == "location"}


def test_app_base_image_comes_from_the_ecr_public_gallery() -> None:
    images: list[str] = []
    stages: set[str] = set()
    for op, args in dockerfile_instructions():
        if op == "FROM":  # FROM [--platform=...] image [AS stage]; a later FROM may name an earlier stage
            words = [w for w in args.split() if not w.startswith("--")]
            if words[0] not in stages:
                images.append(words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    assert images, "the Dockerfile has a FROM"
    assert all(image.startswith("public.ecr.aws/") for image in images), images


def test_app_copies_only_files_that_exist_and_replaces_the_default_server() -> None:
    copies = [args.split() for op, args in dockerfile_instructions() if op in ("COPY", "ADD")]
    assert all((APP / source).exists() for *sources, _ in copies for source in sources), copies
    assert ["nginx.conf", "/etc/nginx/conf.d/default.conf"] in copies, "the image's default server is replaced"


@pytest.mark.parametrize("name", STACKS)
def test_app_listens_on_the_stack_container_port_and_serves_its_health_check(name: str) -> None:
    port = str(stack_file(name).get(f"{PROJECT}:containerPort", 80))
    check_path = stack_file(name).get(f"{PROJECT}:healthCheckPath", "/")
    [server] = servers()
    listens = [d[1] for d in server if d[:1] == ("listen",)]
    assert listens and all(listen == port or listen.endswith(f":{port}") for listen in listens), listens
    exposed = [args for op, args in dockerfile_instructions() if op == "EXPOSE"]
    assert exposed == [port]
    locs = locations(server)
    assert ("return", "200", '"ok\\n"') in locs[("=", "/health")], "a fixed 200 on /health"
    assert (APP / "index.html").exists() and ("index", "index.html") in server
    # The stack's health check must pass on this app (and on the initial image, which serves "/").
    assert check_path in ("/", "/health"), check_path


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_app_nginx_config_serves_the_page_and_health(tmp_path: Path) -> None:
    """Runs the real nginx with the app's server block (on 127.0.0.1 and a free port) when nginx exists."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "html").mkdir()
    shutil.copy(APP / "index.html", tmp_path / "html" / "index.html")
    server = (APP / "nginx.conf").read_text()
    server = re.sub(r"listen\s+80\b", f"listen 127.0.0.1:{port}", server).replace(
        "/usr/share/nginx/html", f"{tmp_path}/html"
    )
    (tmp_path / "server.conf").write_text(server)
    temp = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        # Workers run as the test's user: pytest's temporary directories are private to it.
        f"user {getpass.getuser()}; daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; {temp} include {tmp_path}/server.conf; }}\n"
    )
    nginx = subprocess.Popen(["nginx", "-c", f"{tmp_path}/nginx.conf", "-p", str(tmp_path)], stderr=subprocess.PIPE)
    try:

        def get(path: str) -> tuple[int, bytes]:
            deadline = time.monotonic() + 5
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                        return response.status, response.read()
                except urllib.error.HTTPError as err:
                    return err.code, b""
                except OSError:
                    if time.monotonic() > deadline or nginx.poll() is not None:
                        raise
                    time.sleep(0.05)

        assert get("/health") == (200, b"ok\n")
        status, page = get("/")
        assert status == 200 and b"<h1>" in page
        assert get("/missing")[0] == 404
    finally:
        nginx.terminate()
        nginx.wait(timeout=5)
