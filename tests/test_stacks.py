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
from conftest import stack_run

from components.config import PROJECT
from offline.engine import ProgramRun, Registration
from offline.stack_files import ROOT, committed_stacks

SUBNET = "aws:ec2/subnet:Subnet"


@pytest.fixture(scope="module", params=committed_stacks())
def stack(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    name: str = request.param
    # dev and prod are already run once per session by conftest; reuse those runs.
    run = request.getfixturevalue(name) if name in ("dev", "prod") else stack_run(name)
    return name, run


def stack_file(name: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())["config"]
    return config


def service(run: ProgramRun) -> dict[str, Any]:
    return run.one("aws:ecs/service:Service").props


def task_subnets(run: ProgramRun) -> list[Registration]:
    ids = service(run)["networkConfiguration"]["subnets"]
    by_id = {s.id: s for s in run.of_type(SUBNET)}
    assert set(ids) <= set(by_id), "stacks here create their VPC; task subnets are among its subnets"
    return [by_id[i] for i in ids]


def default_route(run: ProgramRun, subnet: Registration) -> dict[str, Any]:
    [association] = [
        a
        for a in run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
        if a.props["subnetId"] == subnet.id
    ]
    [table] = [t for t in run.of_type("aws:ec2/routeTable:RouteTable") if t.id == association.props["routeTableId"]]
    [route] = [r for r in table.props["routes"] if r["cidrBlock"] == "0.0.0.0/0"]
    return route


# --- Every committed stack ---------------------------------------------------------------------------


def test_the_program_runs_and_builds_the_runtime(stack: tuple[str, ProgramRun]) -> None:
    name, run = stack
    assert run.one("gitlab-fargate:index:FargateService")
    assert run.one("aws:ecs/service:Service").props["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert (
        run.one("aws:lb/loadBalancer:LoadBalancer").props["name"] == f"{stack_file(name)[f'{PROJECT}:appName']}-{name}"
    )


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
    provider = run.one("pulumi:providers:aws")
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


# --- dev and prod ----------------------------------------------------------------------------------


def test_dev_runs_public_tasks_without_nat(dev: ProgramRun) -> None:
    network = service(dev)["networkConfiguration"]
    assert network["assignPublicIp"] is True
    assert dev.of_type("aws:ec2/natGateway:NatGateway") == []
    assert dev.of_type("aws:ec2/eip:Eip") == []
    igw = dev.one("aws:ec2/internetGateway:InternetGateway").id
    assert all(default_route(dev, s)["gatewayId"] == igw for s in task_subnets(dev))


def test_prod_runs_two_or_more_tasks_across_azs_in_private_subnets(prod: ProgramRun) -> None:
    svc = service(prod)
    assert svc["desiredCount"] >= 2
    subnets = task_subnets(prod)
    zones = {s.props["availabilityZone"] for s in subnets}
    assert len(zones) >= 2, "ECS spreads a service's Fargate tasks over the AZs of its subnets"
    assert svc["networkConfiguration"]["assignPublicIp"] is False
    nats = {n.id for n in prod.of_type("aws:ec2/natGateway:NatGateway")}
    for subnet in subnets:
        route = default_route(prod, subnet)
        assert route.get("natGatewayId") in nats and "gatewayId" not in route, subnet.name


def test_prod_is_bigger_and_safer_than_dev(dev: ProgramRun, prod: ProgramRun) -> None:
    def taskdef(run: ProgramRun) -> tuple[int, int]:
        props = run.one("aws:ecs/taskDefinition:TaskDefinition").props
        return int(props["cpu"]), int(props["memory"])

    assert taskdef(prod) >= taskdef(dev)

    def retention(run: ProgramRun) -> int:
        return int(run.one("aws:cloudwatch/logGroup:LogGroup", "service-logs").props["retentionInDays"])

    assert retention(prod) > retention(dev)


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


@pytest.mark.parametrize("name", committed_stacks())
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
