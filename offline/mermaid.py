"""The delivery flow of a stack as a Mermaid flowchart, with the names the program registers.

GitLab job -> S3 bucket/key -> trigger (EventBridge rule, CloudTrail trail or polling) -> pipeline stages ->
listeners and target groups -> ECS service. Every name is read from the registered resources (the pipeline's
action configuration, the rule and its target, the listeners' default actions, the deployment group...), so
the diagram shows what the program builds, and a part the program does not register is simply left out.
Every shown value goes through the plan's ``display`` function (secrets redacted, AWS-only values replaced).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from offline.engine import ProgramRun, Registration, is_secret

PIPELINE = "aws:codepipeline/pipeline:Pipeline"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
TRAIL = "aws:cloudtrail/trail:Trail"
PROJECT_VARIABLE = "gitlab:index/projectVariable:ProjectVariable"
IAM_USER = "aws:iam/user:User"
OIDC_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
IAM_ROLE = "aws:iam/role:Role"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
DEPLOYMENT_GROUP = "aws:codedeploy/deploymentGroup:DeploymentGroup"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ECS_SERVICE = "aws:ecs/service:Service"
ECS_CLUSTER = "aws:ecs/cluster:Cluster"


@dataclass
class Flowchart:
    nodes: dict[str, list[str]] = field(default_factory=dict)
    """Node id -> label lines."""
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)
    """(from, to, label, dotted)."""
    subgraphs: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    """Subgraph id -> (title, node ids)."""
    names: list[tuple[str, str]] = field(default_factory=list)
    """(role, name) for the table under the diagram."""

    def node(self, node_id: str, *lines: str) -> str:
        self.nodes[node_id] = [line for line in lines if line]
        return node_id

    def edge(self, a: str | None, b: str | None, label: str = "", dotted: bool = False) -> None:
        if a and b:
            self.edges.append((a, b, label, dotted))

    def render(self) -> str:
        out = ["flowchart TD"]
        inside = {n for _, members in self.subgraphs.values() for n in members}
        for node_id, lines in self.nodes.items():
            if node_id not in inside:
                out.append(f"  {node_id}[{_label(lines)}]")
        for sub_id, (title, members) in self.subgraphs.items():
            out.append(f"  subgraph {sub_id}[{_label([title])}]")
            out.append("    direction TB")
            out += [f"    {m}[{_label(self.nodes[m])}]" for m in members]
            out.append("  end")
        for a, b, label, dotted in self.edges:
            arrow = "-.->" if dotted else "-->"
            out.append(f"  {a} {arrow}|{_label([label])}| {b}" if label else f"  {a} {arrow} {b}")
        return "\n".join(out) + "\n"


def _escape(text: str) -> str:
    # Mermaid entity codes: a label is a quoted string, so quotes and angle brackets must be encoded.
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _label(lines: list[str]) -> str:
    return '"' + "<br/>".join(_escape(line) for line in lines) + '"'


def _num(value: Any) -> float | None:
    """A port as the engine reports it (a float) from a string or number; ``None`` when it is neither."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _by_arn(run: ProgramRun, typ: str) -> dict[str, Registration]:
    return {r.state["arn"]: r for r in run.of_type(typ) if isinstance(r.state.get("arn"), str)}


def _plain(value: Any) -> Any:
    return None if is_secret(value) else value


def _job_names(ci_yaml: Any) -> list[str]:
    try:
        doc = yaml.safe_load(ci_yaml) if isinstance(ci_yaml, str) else None
    except yaml.YAMLError:
        return []
    if not isinstance(doc, dict):
        return []
    return sorted(k for k, v in doc.items() if isinstance(v, dict) and "script" in v and not str(k).startswith("."))


def build_flowchart(run: ProgramRun, display: Callable[[str], str]) -> Flowchart:
    f = Flowchart()

    def name(role: str, value: Any) -> str:
        shown = display(str(value))
        f.names.append((role, shown))
        return shown

    # --- GitLab side: the job that uploads, and the identity it uploads as.
    variables = {str(v.props.get("key")): _plain(v.inputs.get("value")) for v in run.of_type(PROJECT_VARIABLE)}
    projects = sorted({str(v.props.get("project")) for v in run.of_type(PROJECT_VARIABLE) if v.props.get("project")})
    jobs = _job_names(run.outputs.get("gitlabCiYml"))
    job = None
    if variables or jobs:
        job = f.node(
            "job",
            "GitLab job " + ", ".join(name("GitLab job", j) for j in jobs) if jobs else "GitLab job",
            "project " + ", ".join(name("GitLab project", p) for p in projects) if projects else "",
        )
    users = run.of_type(IAM_USER)
    oidc = run.of_type(OIDC_PROVIDER)
    if users:
        upload_as = "PutObject as IAM user " + ", ".join(
            name("upload identity", u.props.get("name", u.name)) for u in users
        )
    elif oidc:
        federated = [
            r for r in run.of_type(IAM_ROLE) if "sts:AssumeRoleWithWebIdentity" in str(r.props.get("assumeRolePolicy"))
        ]
        roles = ", ".join(name("upload identity", r.props.get("name", r.name)) for r in federated)
        upload_as = f"PutObject as role {roles} (OIDC web identity)" if roles else "PutObject via OIDC"
    else:
        upload_as = "PutObject"

    # --- The pipeline and its source object.
    pipelines = run.of_type(PIPELINE)
    pipeline = pipelines[0] if pipelines else None
    stages: list[dict[str, Any]] = list(pipeline.props.get("stages") or []) if pipeline else []
    source_config: dict[str, Any] = {}
    for stage in stages:
        for action in stage.get("actions") or []:
            if action.get("provider") == "S3" and action.get("category") == "Source":
                source_config = action.get("configuration") or {}
    bucket = source_config.get("S3Bucket") or variables.get("UPLOAD_BUCKET")
    key = source_config.get("S3ObjectKey")
    if key is None and variables.get("UPLOAD_FILE_ALL"):
        folder = variables.get("UPLOAD_FOLDER") or ""
        key = f"{folder.rstrip('/')}/{variables['UPLOAD_FILE_ALL']}" if folder else variables["UPLOAD_FILE_ALL"]
    source = None
    if bucket:
        source = f.node(
            "source",
            f"S3 bucket {name('source bucket', bucket)}",
            f"key {name('source key', key)}" if key else "",
            "versioned",
        )
    f.edge(job, source, upload_as)

    # --- What starts the pipeline.
    trigger = None
    trails = run.of_type(TRAIL)
    targets = run.of_type(EVENT_TARGET)
    pipeline_arn = pipeline.state.get("arn") if pipeline else None
    rules = {r.props.get("name", r.name): r for r in run.of_type(EVENT_RULE)}
    started_by = [
        rules.get(t.props.get("rule")) for t in targets if pipeline_arn and t.props.get("arn") == pipeline_arn
    ]
    rule = next((r for r in started_by if r is not None), None)
    if rule is not None:
        pattern = rule.props.get("eventPattern")
        try:
            detail_type = (json.loads(pattern) if isinstance(pattern, str) else {}).get("detail-type") or []
        except ValueError:
            detail_type = []
        if "AWS API Call via CloudTrail" in detail_type:
            mode = "cloudtrail (data events)"
        elif "Object Created" in detail_type:
            mode = "eventbridge (S3 notification)"
        else:
            mode = "event pattern " + ", ".join(map(str, detail_type))
        trigger = f.node(
            "trigger",
            f"EventBridge rule {name('trigger rule', rule.props.get('name', rule.name))}",
            f"trigger mode: {mode}",
        )
        if trails and "cloudtrail" in mode:
            trail = f.node(
                "trail", "CloudTrail trail " + ", ".join(name("trail", t.props.get("name", t.name)) for t in trails)
            )
            f.edge(source, trail, "PutObject data event")
            f.edge(trail, trigger, "AWS API Call via CloudTrail")
        else:
            f.edge(source, trigger, "Object Created")
    elif source_config.get("PollForSourceChanges") in ("true", True):
        trigger = f.node("trigger", "CodePipeline polls the bucket", "trigger mode: polling")
        f.edge(source, trigger)

    # --- Stages.
    stage_ids: list[str] = []
    repositories = run.of_type(ECR_REPOSITORY)
    deploy_stage = None
    for i, stage in enumerate(stages):
        lines = [f"Stage {stage.get('name', i)}"]
        for action in stage.get("actions") or []:
            provider = action.get("provider")
            config = action.get("configuration") or {}
            if provider == "S3":
                lines.append("S3 source action")
            elif provider == "CodeBuild" and action.get("outputArtifacts"):
                lines.append(f"CodeBuild project {name('build project', config.get('ProjectName'))}")
            elif provider == "CodeBuild":
                # A project that produces nothing: the release project, tagging the image around the deployment.
                project = name("release project", config.get("ProjectName"))
                lines.append(f"{action.get('name')}: CodeBuild project {project}")
            elif provider == "CodeDeployToECS":
                lines.append(f"CodeDeploy application {name('CodeDeploy application', config.get('ApplicationName'))}")
                lines.append(f"deployment group {name('deployment group', config.get('DeploymentGroupName'))}")
            else:
                lines.append(f"{action.get('category')} action {provider}")
        stage_id = f.node(f"stage{i}", *lines)
        stage_ids.append(stage_id)
        providers = {a.get("provider") for a in stage.get("actions") or []}
        builds = [a for a in stage.get("actions") or [] if a.get("provider") == "CodeBuild"]
        if builds and repositories:
            ecr = "ecr"
            if ecr not in f.nodes:
                f.node(
                    ecr,
                    "ECR repository "
                    + ", ".join(name("image repository", r.props.get("name", r.name)) for r in repositories),
                )
            pushes = any(a.get("outputArtifacts") for a in builds)
            f.edge(stage_id, ecr, "push image" if pushes else "tag the deployed image", dotted=True)
        if "CodeDeployToECS" in providers:
            deploy_stage = stage_id
    if pipeline is not None:
        kind = " ".join(str(pipeline.props.get(k)) for k in ("pipelineType", "executionMode") if pipeline.props.get(k))
        title = f"CodePipeline {name('pipeline', pipeline.props.get('name', pipeline.name))}" + (
            f" ({kind})" if kind else ""
        )
        f.subgraphs["pipeline"] = (title, stage_ids)
        f.edge(trigger, stage_ids[0] if stage_ids else None, "StartPipelineExecution")
        for a, b in itertools.pairwise(stage_ids):
            f.edge(a, b)

    # --- Traffic: ALB -> listeners -> target groups -> service; which listener is prod/test per CodeDeploy.
    groups = run.of_type(DEPLOYMENT_GROUP)
    routes: dict[str, str] = {}
    for g in groups:
        pair = ((g.props.get("loadBalancerInfo") or {}).get("targetGroupPairInfo")) or {}
        for role, route in (("production", "prodTrafficRoute"), ("test", "testTrafficRoute")):
            for arn in (pair.get(route) or {}).get("listenerArns") or []:
                routes[arn] = role
    lbs = _by_arn(run, LOAD_BALANCER)
    tgs = _by_arn(run, TARGET_GROUP)
    listeners = sorted(run.of_type(LISTENER), key=lambda r: (float(r.props.get("port") or 0), r.name))
    services = run.of_type(ECS_SERVICE)
    clusters = _by_arn(run, ECS_CLUSTER)
    service_ids: list[str] = []
    for i, svc in enumerate(services):
        cluster = clusters.get(str(svc.props.get("cluster")))
        count = svc.props.get("desiredCount")
        service_ids.append(
            f.node(
                f"service{i}",
                f"ECS service {name('ECS service', svc.props.get('name', svc.name))}",
                f"cluster {name('ECS cluster', cluster.props.get('name', cluster.name))}" if cluster else "",
                f"{count:g} task(s), {svc.props.get('launchType', 'FARGATE')}" if isinstance(count, float) else "",
            )
        )
    alb_ids: dict[str, str] = {}
    tg_ids: dict[str, str] = {}
    listener_ids: dict[tuple[str, float], str] = {}  # (load balancer ARN, port) -> node
    redirects: list[tuple[str, str, dict[str, Any]]] = []  # (listener node, load balancer ARN, redirect)
    for i, listener in enumerate(listeners):
        lb = lbs.get(str(listener.props.get("loadBalancerArn")))
        alb_id = None
        if lb is not None:
            alb_id = alb_ids.get(lb.urn)
            if alb_id is None:
                alb_id = alb_ids[lb.urn] = f.node(
                    f"alb{len(alb_ids)}", f"ALB {name('load balancer', lb.props.get('name', lb.name))}"
                )
        actions = listener.props.get("defaultActions") or []
        redirect = next((a.get("redirect") or {} for a in actions if a.get("type") == "redirect"), None)
        # Not a traffic route of the deployment group: a redirect (HTTP -> HTTPS) or some other listener;
        # without a deployment group, the lowest port is taken for production.
        fallback = "redirect" if redirect is not None else "other" if routes else "production" if i == 0 else "test"
        role = routes.get(str(listener.state.get("arn")), fallback)
        port = listener.props.get("port")
        listener_id = f.node(
            f"listener{i}",
            f"{role} listener {listener.props.get('protocol', '')}:{port:g}"
            if isinstance(port, float)
            else listener.name,
        )
        f.edge(alb_id, listener_id)
        lb_arn = str(listener.props.get("loadBalancerArn"))
        if isinstance(port, float):
            listener_ids[(lb_arn, port)] = listener_id
        if redirect is not None:
            redirects.append((listener_id, lb_arn, redirect))
        for action in actions:
            tg = tgs.get(str(action.get("targetGroupArn")))
            if tg is None:
                continue
            tg_id = tg_ids.get(tg.urn)
            if tg_id is None:
                tg_id = tg_ids[tg.urn] = f.node(
                    f"tg{len(tg_ids)}", f"target group {name('target group', tg.props.get('name', tg.name))}"
                )
                for service_id in service_ids:
                    f.edge(tg_id, service_id)
            f.edge(listener_id, tg_id, "forward (initially)")
        if deploy_stage and role in ("production", "test"):
            f.edge(deploy_stage, listener_id, "reroutes traffic", dotted=True)
    for listener_id, lb_arn, redirect in redirects:
        to_port = _num(redirect.get("port"))
        target = listener_ids.get((lb_arn, to_port)) if to_port is not None else None
        if target is not None:
            f.edge(listener_id, target, f"redirects ({redirect.get('statusCode', '').replace('HTTP_', '')})")
    if deploy_stage:
        for service_id in service_ids:
            f.edge(deploy_stage, service_id, "replacement task set")
    return f


def pipeline_markdown(run: ProgramRun, display: Callable[[str], str], *, title: str) -> str:
    f = build_flowchart(run, display)
    seen: set[tuple[str, str]] = set()
    rows = []
    for role, shown in f.names:
        if (role, shown) not in seen:
            seen.add((role, shown))
            # A pipe would end the table cell, even inside a code span (GitHub-flavoured Markdown).
            cell = shown.replace("|", r"\|")
            rows.append(f"| {role} | `{cell}` |")
    return "\n".join(
        [
            f"# Delivery flow: {title}",
            "",
            "How a commit reaches the service, with the names this stack registers. The listeners start on the "
            "target groups shown; each blue/green deployment swaps them.",
            "",
            "```mermaid",
            f.render().rstrip("\n"),
            "```",
            "",
            "| Part | Name |",
            "|---|---|",
            *rows,
            "",
        ]
    )
