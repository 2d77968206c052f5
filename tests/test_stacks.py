"""Whole-program runs of every committed stack, as `pulumi up` would run them: the runtime side.

Each committed `Pulumi.<stack>.yaml` must produce a program that runs; dev and prod must keep the
properties their comments promise (dev cheap and public, prod spread over AZs in private subnets).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
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
from support import netns
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
    if domain:  # HTTPS on the site's own name, the test listener's too (the certificate names the site)
        assert run.outputs["url"] == f"https://{domain}/"
        assert run.outputs["testUrl"].startswith(f"https://{domain}:")
    else:
        assert run.outputs["url"].startswith("http://") and run.outputs["url"].endswith(".elb.amazonaws.com/")
        assert run.outputs["testUrl"].startswith(f"http://{run.outputs['albDnsName']}:")
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
        (rt.S3_BUCKET, "s3-access-logs-bucket"),  # who read and wrote the buckets above
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


# --- The sample application as ECS runs it: non-root, read-only, on the stack's port ----------------------------

# The image's main configuration (/etc/nginx/nginx.conf of the nginx images, which the sample keeps: it only
# replaces conf.d/default.conf), with what nginx writes at run time: its pid file and the temp paths compiled into
# the image (nginx -V: --http-*-temp-path=/var/cache/nginx/*_temp). The error log goes to stderr, as the image's
# /var/log/nginx/error.log links to /dev/stderr.
NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
"""Debian installs nginx in /usr/sbin, which a non-login PATH may lack."""
IMAGE_PID = "/run/nginx.pid"
IMAGE_TEMP_PATHS = {
    "client_body_temp_path": "/var/cache/nginx/client_temp",
    "proxy_temp_path": "/var/cache/nginx/proxy_temp",
    "fastcgi_temp_path": "/var/cache/nginx/fastcgi_temp",
    "uwsgi_temp_path": "/var/cache/nginx/uwsgi_temp",
    "scgi_temp_path": "/var/cache/nginx/scgi_temp",
}


def container_definition(run: ProgramRun) -> dict[str, Any]:
    """The app's container as the stack's first task definition has it (the pipeline's ``taskdef.json`` has the
    same: tests/test_ecs_service.py, tests/test_fsbp_container.py)."""
    containers: list[dict[str, Any]] = json.loads(run.one(rt.ECS_TASK_DEFINITION).props["containerDefinitions"])
    [container] = containers
    return container


class Sandbox:
    """The image's filesystem as the task definition leaves it to the container: ``root`` stands for ``/``,
    owned by root and not writable by the container's user (``readonlyRootFilesystem``), except the tmpfs paths
    of the task definition (mode 1777, a tmpfs's). Paths in the app's config are rebased under ``root``."""

    def __init__(self, container: dict[str, Any], listen: str) -> None:
        # Not pytest's tmp_path: its parent is private to the test's user, and the container's user must reach
        # the files (as it reaches the image's).
        self.root = Path(tempfile.mkdtemp(prefix="nginx-image-"))
        self.root.chmod(0o755)
        self.scratch = [m["containerPath"] for m in container["linuxParameters"]["tmpfs"]]
        for path in [*self.scratch, "/etc/nginx/conf.d", "/usr/share/nginx/html"]:
            self.at(path).mkdir(parents=True, exist_ok=True)
        for path in self.scratch:
            self.at(path).chmod(0o1777)
        shutil.copy(APP / "index.html", self.at("/usr/share/nginx/html/index.html"))
        server = (APP / "nginx.conf").read_text()
        server = re.sub(r"listen\s+\d+\b", f"listen {listen}", server)
        server = server.replace("/usr/share/nginx/html", str(self.at("/usr/share/nginx/html")))
        self.at("/etc/nginx/conf.d/default.conf").write_text(server)
        temp = " ".join(f"{key} {self.at(path)};" for key, path in IMAGE_TEMP_PATHS.items())
        self.at("/etc/nginx/nginx.conf").write_text(
            f"worker_processes 1; daemon off; error_log stderr notice; pid {self.at(IMAGE_PID)};\n"
            "events { worker_connections 64; }\n"
            f"http {{ types {{ text/html html; }} access_log off; {temp}\n"
            f"  include {self.at('/etc/nginx/conf.d')}/*.conf; }}\n"
        )
        scratch = {self.at(path) for path in self.scratch}
        for path in [*self.root.rglob("*"), self.root]:
            if path not in scratch:
                path.chmod(path.stat().st_mode & ~0o222)

    def at(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def remove(self) -> None:
        for path in [self.root, *self.root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(self.root)


def user_ids(container: dict[str, Any]) -> tuple[int, int]:
    uid, gid = container["user"].split(":")
    return int(uid), int(gid)


def test_everything_the_image_writes_is_on_a_scratch_path_of_the_task_definition(
    stack: tuple[str, ProgramRun],
) -> None:
    scratch = [m["containerPath"] for m in container_definition(stack[1])["linuxParameters"]["tmpfs"]]
    for path in [IMAGE_PID, *IMAGE_TEMP_PATHS.values()]:
        assert any(path.startswith(f"{s}/") for s in scratch), path


def start_nginx(sandbox: Sandbox, as_user: tuple[int, int] | None) -> subprocess.Popen[bytes]:
    """nginx with the sandbox's configuration, as ``as_user`` (``uid, gid``; ``None``: this process's user)."""
    uid, gid = as_user if as_user else (None, None)
    config = sandbox.at("/etc/nginx/nginx.conf")
    return subprocess.Popen(
        [str(NGINX), "-e", "stderr", "-p", str(sandbox.root), "-c", str(config)],
        stderr=subprocess.PIPE,
        user=uid,
        group=gid,
        extra_groups=[] if as_user else None,
    )


def stop(nginx: subprocess.Popen[bytes]) -> str:
    if nginx.poll() is None:
        nginx.terminate()
        try:
            nginx.wait(timeout=5)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait(timeout=5)
    return nginx.stderr.read().decode() if nginx.stderr else ""


def get(nginx: subprocess.Popen[bytes], port: int, path: str) -> tuple[int, bytes]:
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


def can_write(path: Path, as_user: tuple[int, int] | None) -> bool:
    """Whether the container's user can create ``path``."""
    uid, gid = as_user if as_user else (None, None)
    # A shell, not this Python: the container's user may not reach the interpreter. `set -C`: create, never
    # truncate.
    command = ["/bin/sh", "-c", 'set -C; : > "$1"', "sh", str(path)]
    done = subprocess.run(
        command, capture_output=True, timeout=10, user=uid, group=gid, extra_groups=[] if as_user else None
    )
    return done.returncode == 0


@pytest.mark.e2e
def test_the_app_serves_as_a_non_root_user_with_only_its_scratch_paths_writable(stack: tuple[str, ProgramRun]) -> None:
    """The real nginx with the app's config, as ECS runs the container: the task definition's user, nothing
    writable but its tmpfs paths, listening on the stack's container port (below 1024 by default) thanks to the
    task definition's sysctl, in a network namespace of its own as a Fargate task has.

    As root (CI), all of it: nginx as the task definition's uid and gid, in a private network namespace with its
    own loopback and sysctls (``support.netns``), and first a start without the sysctl, which must fail to bind.
    Without root, nginx runs as the (unprivileged) test user; without network namespaces, on a free port of
    127.0.0.1 above 1023: the sysctl's effect is then not exercised (a non-root process may bind there anyway),
    everything else is the same."""
    if NGINX is None:
        pytest.fail("nginx is not installed: apt-get install nginx (README, Set-up; .ci/run installs it)")
    name, run = stack
    container = container_definition(run)
    port = int(container["portMappings"][0]["containerPort"])
    assert port == int(stack_file(name).get(f"{PROJECT}:containerPort", 80))
    assert container["readonlyRootFilesystem"] is True
    isolated = netns.available()
    as_user = user_ids(container) if os.geteuid() == 0 else None
    if not isolated:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    sandbox = Sandbox(container, listen=f"127.0.0.1:{port}")

    def serve() -> None:
        if isolated:
            sysctls = {c["namespace"]: c["value"] for c in container["systemControls"]}
            if port < 1024:
                # Without the task definition's sysctl a non-root nginx cannot listen there: the setting matters.
                refused = start_nginx(sandbox, as_user)
                refused.wait(timeout=10)
                assert "Permission denied" in stop(refused)
                assert sysctls == {"net.ipv4.ip_unprivileged_port_start": str(port)}
            for key, value in sysctls.items():
                netns.set_sysctl(key, value)
        nginx = start_nginx(sandbox, as_user)
        try:
            assert get(nginx, port, "/health") == (200, b"ok\n")
            status, page = get(nginx, port, "/")
            assert status == 200 and b"<h1>" in page
            assert get(nginx, port, "/missing")[0] == 404
            # nginx wrote its pid file in its scratch space and runs as the task definition's user.
            pid = int(sandbox.at(IMAGE_PID).read_text())
            uids = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:2]
            assert [int(u) for u in uids] == [as_user[0] if as_user else os.geteuid()] * 2
            assert sandbox.at("/var/cache/nginx/client_temp").is_dir()
        finally:
            log = stop(nginx)
        assert "emerg" not in log, log

    try:
        (netns.in_private_network if isolated else lambda fn: fn())(serve)
        # The same user can write in the scratch paths and nowhere else in the image.
        for path in sandbox.scratch:
            assert can_write(sandbox.at(path) / "probe", as_user), path
        for path in ("/etc/nginx/conf.d/extra.conf", "/usr/share/nginx/html/evil.html", "/new-file", "/var/x"):
            assert not can_write(sandbox.at(path), as_user), path
    finally:
        sandbox.remove()
