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

from components.pipeline_actions import DEPLOY_ACTION
from offline.engine import ProgramRun, Registration, is_secret
from policy import resource_types as rt


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
    return _Drawing(run, display).draw()


class _Drawing:
    """Draws the flow part by part, in the order a commit travels; each part reads only what it shows."""

    def __init__(self, run: ProgramRun, display: Callable[[str], str]) -> None:
        self.run, self.display, self.f = run, display, Flowchart()
        pipelines = run.of_type(rt.CODEPIPELINE_PIPELINE)
        self.pipeline = pipelines[0] if pipelines else None
        self.stages: list[dict[str, Any]] = list(self.pipeline.props.get("stages") or []) if self.pipeline else []

    def name(self, role: str, value: Any) -> str:
        shown = self.display(str(value))
        self.f.names.append((role, shown))
        return shown

    def draw(self) -> Flowchart:
        job, upload_as = self.gitlab_side()
        source_config = next(
            (
                a.get("configuration") or {}
                for stage in self.stages
                for a in stage.get("actions") or []
                if a.get("provider") == "S3" and a.get("category") == "Source"
            ),
            {},
        )
        source = self.source(source_config)
        self.f.edge(job, source, upload_as)
        trigger = self.trigger(source, source_config)
        deploy_stage = self.pipeline_stages(trigger)
        self.traffic(deploy_stage)
        self.feedback(job)
        return self.f

    def feedback(self, job: str | None) -> None:
        """The way back to GitLab: a rule on the pipeline's executions invoking a function that sets the commit
        status (its name from the function's environment)."""
        functions = {f.state.get("arn"): f for f in self.run.of_type(rt.LAMBDA_FUNCTION)}
        rules = {r.props.get("name", r.name): r for r in self.run.of_type(rt.EVENTS_RULE)}
        for target in self.run.of_type(rt.EVENTS_TARGET):
            function, rule = functions.get(target.props.get("arn")), rules.get(target.props.get("rule"))
            if (
                function is None
                or rule is None
                or "Pipeline Execution State Change" not in str(rule.props.get("eventPattern"))
            ):
                continue
            status = ((function.props.get("environment") or {}).get("variables") or {}).get("STATUS_NAME", "")
            node = self.f.node(
                "feedback",
                f"Lambda {self.name('commit-status function', function.props.get('name', function.name))}",
                f"GitLab commit status {self.name('commit status', status)}" if status else "GitLab commit status",
            )
            stages = self.f.subgraphs.get("pipeline", ("", []))[1]
            self.f.edge(stages[-1] if stages else None, node, "execution state changes", dotted=True)
            self.f.edge(node, job, "POST statuses/:sha", dotted=True)

    def gitlab_side(self) -> tuple[str | None, str]:
        """The job that uploads, and the identity it uploads as."""
        variables = self.variables()
        projects = sorted(
            {
                str(v.props.get("project"))
                for v in self.run.of_type(rt.GITLAB_PROJECT_VARIABLE)
                if v.props.get("project")
            }
        )
        jobs = _job_names(self.run.outputs.get("gitlabCiYml"))
        job = None
        if variables or jobs:
            job = self.f.node(
                "job",
                "GitLab job " + ", ".join(self.name("GitLab job", j) for j in jobs) if jobs else "GitLab job",
                "project " + ", ".join(self.name("GitLab project", p) for p in projects) if projects else "",
            )
        users, oidc = self.run.of_type(rt.IAM_USER), self.run.of_type(rt.IAM_OIDC_PROVIDER)
        if users:
            return job, "PutObject as IAM user " + ", ".join(
                self.name("upload identity", u.props.get("name", u.name)) for u in users
            )
        if oidc:
            federated = [
                r
                for r in self.run.of_type(rt.IAM_ROLE)
                if "sts:AssumeRoleWithWebIdentity" in str(r.props.get("assumeRolePolicy"))
            ]
            roles = ", ".join(self.name("upload identity", r.props.get("name", r.name)) for r in federated)
            return job, f"PutObject as role {roles} (OIDC web identity)" if roles else "PutObject via OIDC"
        return job, "PutObject"

    def variables(self) -> dict[str, Any]:
        return {
            str(v.props.get("key")): _plain(v.inputs.get("value")) for v in self.run.of_type(rt.GITLAB_PROJECT_VARIABLE)
        }

    def source(self, config: dict[str, Any]) -> str | None:
        variables = self.variables()
        bucket = config.get("S3Bucket") or variables.get("UPLOAD_BUCKET")
        key = config.get("S3ObjectKey")
        if key is None and variables.get("UPLOAD_FILE_ALL"):
            folder = variables.get("UPLOAD_FOLDER") or ""
            key = f"{folder.rstrip('/')}/{variables['UPLOAD_FILE_ALL']}" if folder else variables["UPLOAD_FILE_ALL"]
        if not bucket:
            return None
        return self.f.node(
            "source",
            f"S3 bucket {self.name('source bucket', bucket)}",
            f"key {self.name('source key', key)}" if key else "",
            "versioned",
        )

    def trigger(self, source: str | None, source_config: dict[str, Any]) -> str | None:
        """What starts the pipeline: the EventBridge rule targeting it (fed by S3 or a trail), or polling."""
        pipeline_arn = self.pipeline.state.get("arn") if self.pipeline else None
        rules = {r.props.get("name", r.name): r for r in self.run.of_type(rt.EVENTS_RULE)}
        started_by = [
            rules.get(t.props.get("rule"))
            for t in self.run.of_type(rt.EVENTS_TARGET)
            if pipeline_arn and t.props.get("arn") == pipeline_arn
        ]
        rule = next((r for r in started_by if r is not None), None)
        if rule is None:
            if source_config.get("PollForSourceChanges") in ("true", True):
                trigger = self.f.node("trigger", "CodePipeline polls the bucket", "trigger mode: polling")
                self.f.edge(source, trigger)
                return trigger
            return None
        mode = _trigger_mode(rule.props.get("eventPattern"))
        trigger = self.f.node(
            "trigger",
            f"EventBridge rule {self.name('trigger rule', rule.props.get('name', rule.name))}",
            f"trigger mode: {mode}",
        )
        trails = self.run.of_type(rt.CLOUDTRAIL_TRAIL)
        if trails and "cloudtrail" in mode:
            names = ", ".join(self.name("trail", t.props.get("name", t.name)) for t in trails)
            trail = self.f.node("trail", f"CloudTrail trail {names}")
            self.f.edge(source, trail, "PutObject data event")
            self.f.edge(trail, trigger, "AWS API Call via CloudTrail")
        else:
            self.f.edge(source, trigger, "Object Created")
        return trigger

    def pipeline_stages(self, trigger: str | None) -> str | None:
        """The stages in a subgraph; returns the stage that deploys (where traffic is rerouted from)."""
        stage_ids: list[str] = []
        deploy_stage = None
        for i, stage in enumerate(self.stages):
            lines = [f"Stage {stage.get('name', i)}"]
            for action in stage.get("actions") or []:
                lines += self.action_lines(action)
            stage_id = self.f.node(f"stage{i}", *lines)
            stage_ids.append(stage_id)
            self.repository_edge(stage_id, [a for a in stage.get("actions") or [] if a.get("provider") == "CodeBuild"])
            if any(_deploys(a) for a in stage.get("actions") or []):
                deploy_stage = stage_id
        if self.pipeline is not None:
            props = self.pipeline.props
            kind = " ".join(str(props.get(k)) for k in ("pipelineType", "executionMode") if props.get(k))
            title = f"CodePipeline {self.name('pipeline', props.get('name', self.pipeline.name))}" + (
                f" ({kind})" if kind else ""
            )
            self.f.subgraphs["pipeline"] = (title, stage_ids)
            self.f.edge(trigger, stage_ids[0] if stage_ids else None, "StartPipelineExecution")
            for a, b in itertools.pairwise(stage_ids):
                self.f.edge(a, b)
        return deploy_stage

    def action_lines(self, action: dict[str, Any]) -> list[str]:
        provider, config = action.get("provider"), action.get("configuration") or {}
        if provider == "S3":
            return ["S3 source action"]
        if provider == "CodeBuild" and action.get("outputArtifacts"):
            return [f"CodeBuild project {self.name('build project', config.get('ProjectName'))}"]
        if provider == "CodeBuild" and _deploys(action):
            # The ecs engine's deploy step: the project deploys with ECS-native blue/green and waits for it.
            project = self.name("deploy project", config.get("ProjectName"))
            return [f"{action.get('name')}: CodeBuild project {project}", "ECS-native blue/green"]
        if provider == "CodeBuild":
            # A project that produces nothing: the release project, tagging the image around the deployment.
            return [
                f"{action.get('name')}: CodeBuild project {self.name('release project', config.get('ProjectName'))}"
            ]
        if provider == "CodeDeployToECS":
            return [
                f"CodeDeploy application {self.name('CodeDeploy application', config.get('ApplicationName'))}",
                f"deployment group {self.name('deployment group', config.get('DeploymentGroupName'))}",
            ]
        return [f"{action.get('category')} action {provider}"]

    def repository_edge(self, stage_id: str, builds: list[dict[str, Any]]) -> None:
        repositories = self.run.of_type(rt.ECR_REPOSITORY)
        if not builds or not repositories:
            return
        if "ecr" not in self.f.nodes:
            names = ", ".join(self.name("image repository", r.props.get("name", r.name)) for r in repositories)
            self.f.node("ecr", f"ECR repository {names}")
        pushes = any(a.get("outputArtifacts") for a in builds)
        self.f.edge(stage_id, "ecr", "push image" if pushes else "tag the deployed image", dotted=True)

    def traffic(self, deploy_stage: str | None) -> None:
        """ALB -> listeners -> target groups -> service; which listener is prod/test per the deployment group."""
        service_ids = self.services()
        routes = _traffic_routes(self.run)
        lbs, tgs = _by_arn(self.run, rt.LB_LOAD_BALANCER), _by_arn(self.run, rt.LB_TARGET_GROUP)
        listeners = sorted(self.run.of_type(rt.LB_LISTENER), key=lambda r: (float(r.props.get("port") or 0), r.name))
        alb_ids: dict[str, str] = {}
        tg_ids: dict[str, str] = {}
        listener_ids: dict[tuple[str, float], str] = {}  # (load balancer ARN, port) -> node
        redirects: list[tuple[str, str, dict[str, Any]]] = []  # (listener node, load balancer ARN, redirect)
        for i, listener in enumerate(listeners):
            lb_arn = str(listener.props.get("loadBalancerArn"))
            alb_id = self.alb_node(lbs.get(lb_arn), alb_ids)
            actions = listener.props.get("defaultActions") or []
            redirect = next((a.get("redirect") or {} for a in actions if a.get("type") == "redirect"), None)
            # Not a traffic route of the deployment group: a redirect (HTTP -> HTTPS) or some other listener;
            # without a deployment group, the lowest port is taken for production.
            fallback = "redirect" if redirect is not None else "other" if routes else "production" if i == 0 else "test"
            role = routes.get(str(listener.state.get("arn")), fallback)
            port = listener.props.get("port")
            label = (
                f"{role} listener {listener.props.get('protocol', '')}:{port:g}"
                if isinstance(port, float)
                else listener.name
            )
            listener_id = self.f.node(f"listener{i}", label)
            self.f.edge(alb_id, listener_id)
            if isinstance(port, float):
                listener_ids[(lb_arn, port)] = listener_id
            if redirect is not None:
                redirects.append((listener_id, lb_arn, redirect))
            # With a rule taking every request (ECS-native blue/green), the default action answers nothing.
            shifted = self.rules(listener, listener_id, tgs, tg_ids, service_ids)
            for action in [] if shifted else actions:
                tg = tgs.get(str(action.get("targetGroupArn")))
                if tg is not None:
                    self.f.edge(listener_id, self.target_group_node(tg, tg_ids, service_ids), "forward (initially)")
            if deploy_stage and role in ("production", "test"):
                how = "reweights its rule" if shifted else "reroutes traffic"
                self.f.edge(deploy_stage, listener_id, how, dotted=True)
        for listener_id, lb_arn, redirect in redirects:
            to_port = _num(redirect.get("port"))
            target = listener_ids.get((lb_arn, to_port)) if to_port is not None else None
            if target is not None:
                self.f.edge(listener_id, target, f"redirects ({redirect.get('statusCode', '').replace('HTTP_', '')})")
        if deploy_stage:
            native = bool(self.run.of_type(rt.LB_LISTENER_RULE))
            for service_id in service_ids:
                self.f.edge(deploy_stage, service_id, "new service revision" if native else "replacement task set")

    def rules(
        self,
        listener: Registration,
        listener_id: str,
        tgs: dict[str, Registration],
        tg_ids: dict[str, str],
        service_ids: list[str],
    ) -> bool:
        """The listener's weighted rules (ECS-native blue/green): an edge per target group with its weight."""
        arn = listener.state.get("arn")
        found = False
        for rule in self.run.of_type(rt.LB_LISTENER_RULE):
            if rule.props.get("listenerArn") != arn:
                continue
            found = True
            for action in rule.props.get("actions") or []:
                for target in (action.get("forward") or {}).get("targetGroups") or []:
                    tg = tgs.get(str(target.get("arn")))
                    if tg is not None:
                        label = f"rule: weight {_num(target.get('weight')) or 0:g} (initially)"
                        self.f.edge(listener_id, self.target_group_node(tg, tg_ids, service_ids), label)
        return found

    def services(self) -> list[str]:
        clusters = _by_arn(self.run, rt.ECS_CLUSTER)
        ids = []
        for i, svc in enumerate(self.run.of_type(rt.ECS_SERVICE)):
            cluster = clusters.get(str(svc.props.get("cluster")))
            count = svc.props.get("desiredCount")
            ids.append(
                self.f.node(
                    f"service{i}",
                    f"ECS service {self.name('ECS service', svc.props.get('name', svc.name))}",
                    f"cluster {self.name('ECS cluster', cluster.props.get('name', cluster.name))}" if cluster else "",
                    f"{count:g} task(s), {_placement(svc)}" if isinstance(count, float) else "",
                )
            )
        return ids

    def alb_node(self, lb: Registration | None, alb_ids: dict[str, str]) -> str | None:
        if lb is None:
            return None
        if lb.urn not in alb_ids:
            name = self.name("load balancer", lb.props.get("name", lb.name))
            alb_ids[lb.urn] = self.f.node(f"alb{len(alb_ids)}", f"ALB {name}")
        return alb_ids[lb.urn]

    def target_group_node(self, tg: Registration, tg_ids: dict[str, str], service_ids: list[str]) -> str:
        if tg.urn not in tg_ids:
            name = self.name("target group", tg.props.get("name", tg.name))
            tg_ids[tg.urn] = self.f.node(f"tg{len(tg_ids)}", f"target group {name}")
            for service_id in service_ids:
                self.f.edge(tg_ids[tg.urn], service_id)
        return tg_ids[tg.urn]


def _trigger_mode(pattern: Any) -> str:
    try:
        detail_type = (json.loads(pattern) if isinstance(pattern, str) else {}).get("detail-type") or []
    except ValueError:
        detail_type = []
    if "AWS API Call via CloudTrail" in detail_type:
        return "cloudtrail (data events)"
    if "Object Created" in detail_type:
        return "eventbridge (S3 notification)"
    return "event pattern " + ", ".join(map(str, detail_type))


def _deploys(action: dict[str, Any]) -> bool:
    """The action that deploys: CodeDeploy's, or the ``ecs`` engine's deploy project (the Deploy action)."""
    return action.get("provider") == "CodeDeployToECS" or (
        action.get("provider") == "CodeBuild" and action.get("name") == DEPLOY_ACTION
    )


def _traffic_routes(run: ProgramRun) -> dict[str, str]:
    """Listener ARN -> ``production`` or ``test``, as the deployment groups route traffic, or as the ECS services'
    blue/green rules do."""
    routes: dict[str, str] = {}
    rules = {r.state.get("arn"): r for r in run.of_type(rt.LB_LISTENER_RULE)}
    for service in run.of_type(rt.ECS_SERVICE):
        for balancer in service.props.get("loadBalancers") or []:
            advanced = balancer.get("advancedConfiguration") or {}
            for role, key in (("production", "productionListenerRule"), ("test", "testListenerRule")):
                rule = rules.get(advanced.get(key))
                if rule is not None:
                    routes[str(rule.props.get("listenerArn"))] = role
    for g in run.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP):
        pair = ((g.props.get("loadBalancerInfo") or {}).get("targetGroupPairInfo")) or {}
        for role, route in (("production", "prodTrafficRoute"), ("test", "testTrafficRoute")):
            for arn in (pair.get(route) or {}).get("listenerArns") or []:
                routes[arn] = role
    return routes


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
            "How a commit reaches the service, with the names this stack registers. The listeners"
            + (" (their rules)" if run.of_type(rt.LB_LISTENER_RULE) else "")
            + " start on the target groups shown; each blue/green deployment swaps them.",
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


def _placement(service: Registration) -> str:
    """Where the service's tasks run: its launch type, or its capacity providers (``FARGATE_SPOT``...)."""
    strategy = service.props.get("capacityProviderStrategies") or []
    providers = [str(s.get("capacityProvider")) for s in strategy if isinstance(s, dict)]
    return " + ".join(providers) if providers else str(service.props.get("launchType", "FARGATE"))
