"""Estimated monthly cost of a stack, from what the program registers and a small price table.

Every quantity comes from the registered resources (how many NAT gateways, the ECS service's ``desiredCount``,
the task definition's cpu and memory, the pipeline's type...), never from the config, so the estimate follows
whatever the program actually builds. Prices come from ``offline/prices.yaml`` (approximate list prices, with
their sources and the date they were read). Usage that a plan cannot know (uploads per month, build minutes)
comes from the table's ``assumptions`` and is named on every line that depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from offline.engine import ProgramRun, Registration

PRICES = Path(__file__).resolve().parent / "prices.yaml"

LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
ECS_SERVICE = "aws:ecs/service:Service"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
ELASTIC_IP = "aws:ec2/eip:Eip"
TRAIL = "aws:cloudtrail/trail:Trail"
PIPELINE = "aws:codepipeline/pipeline:Pipeline"
BUILD_PROJECT = "aws:codebuild/project:Project"
DEPLOYMENT_GROUP = "aws:codedeploy/deploymentGroup:DeploymentGroup"
KMS_KEY = "aws:kms/key:Key"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SECRET = "aws:secretsmanager/secret:Secret"


@dataclass(frozen=True)
class PriceTable:
    read_on: str
    currency: str
    hours_per_month: float
    sources: Mapping[str, str]
    assumptions: Mapping[str, float]
    regions: Mapping[str, Mapping[str, Any]]


def load_prices(path: Path = PRICES) -> PriceTable:
    doc = yaml.safe_load(path.read_text())
    return PriceTable(
        read_on=str(doc["read_on"]),
        currency=doc["currency"],
        hours_per_month=float(doc["hours_per_month"]),
        sources=dict(doc["sources"]),
        assumptions=dict(doc["assumptions"]),
        regions=dict(doc["regions"]),
    )


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float
    unit: str
    unit_price: float
    basis: str
    """Where the quantity comes from: the registered resources and, if any, the assumption used."""

    @property
    def monthly(self) -> float:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class CostEstimate:
    region: str
    priced: bool
    """False when the price table has no prices for the region (then there are no lines)."""
    fixed: list[CostLine] = field(default_factory=list)
    """Charges that run every hour of the month, plus the pipeline's (small, assumption-based) charges."""
    usage: list[CostLine] = field(default_factory=list)
    """Charges per deployment, not in the total."""
    excluded: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.monthly for line in self.fixed)


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _plural(n: float, word: str) -> str:
    count = int(n) if float(n).is_integer() else n
    return f"{count} {word}" + ("" if n == 1 else "s")


def _task_definition(run: ProgramRun, service: Registration) -> Registration | None:
    arn = service.props.get("taskDefinition")
    definitions = run.of_type(TASK_DEFINITION)
    for definition in definitions:
        if arn and arn in (definition.state.get("arn"), definition.state.get("arnWithoutRevision")):
            return definition
    return definitions[0] if len(definitions) == 1 else None


def _termination_wait_minutes(run: ProgramRun) -> float:
    waits = [
        _num(
            (
                (g.props.get("blueGreenDeploymentConfig") or {}).get("terminateBlueInstancesOnDeploymentSuccess") or {}
            ).get("terminationWaitTimeInMinutes")
        )
        for g in run.of_type(DEPLOYMENT_GROUP)
    ]
    return max(waits, default=0.0)


def _trail_logs_reads(trail: Registration) -> bool:
    """Whether a trail's data-event selectors also record reads (the pipeline's download of the source)."""
    for selector in trail.props.get("eventSelectors") or []:
        if selector.get("dataResources") and selector.get("readWriteType", "All") != "WriteOnly":
            return True
    for selector in trail.props.get("advancedEventSelectors") or []:
        fields = {f.get("field"): f for f in selector.get("fieldSelectors") or []}
        read_only = fields.get("readOnly")
        if "eventCategory" in fields and (read_only is None or read_only.get("equals") != ["false"]):
            return True
    return False


def _trail_logs_management_events(trail: Registration) -> bool:
    if trail.props.get("advancedEventSelectors"):
        return any(
            f.get("field") == "eventCategory" and "Management" in (f.get("equals") or [])
            for s in trail.props["advancedEventSelectors"]
            for f in s.get("fieldSelectors") or []
        )
    selectors = trail.props.get("eventSelectors") or [{}]
    return any(s.get("includeManagementEvents", True) for s in selectors)


def _alarm_metrics(alarm: Registration) -> int:
    """Metrics an alarm reads: one, or each ``metric`` of its metric-math queries (expressions are free)."""
    queries = alarm.props.get("metricQueries") or []
    return max(1, sum(1 for q in queries if q.get("metric")))


def estimate(run: ProgramRun, region: str, table: PriceTable | None = None) -> CostEstimate:
    """The monthly cost of what ``run`` registered, in ``region``."""
    table = table or load_prices()
    prices = table.regions.get(region)
    if prices is None:
        return CostEstimate(
            region=region,
            priced=False,
            notes=[f"The price table has no prices for {region} (it has {', '.join(sorted(table.regions))})."],
        )
    hours = table.hours_per_month
    a = table.assumptions
    fixed: list[CostLine] = []
    usage: list[CostLine] = []
    notes: list[str] = []

    # --- Load balancers: hours, a minimal LCU, and one public IPv4 address per subnet when internet-facing.
    public_ips: list[tuple[float, str]] = []
    albs = [r for r in run.of_type(LOAD_BALANCER) if r.props.get("loadBalancerType", "application") == "application"]
    if albs:
        names = ", ".join(r.name for r in albs)
        fixed.append(CostLine("ALB hours", len(albs) * hours, "ALB-hour", prices["alb_hour"], f"{names}, 24/7"))
        lcu = a["alb_lcu_per_hour"]
        fixed.append(
            CostLine(
                "ALB capacity (minimal LCU)",
                len(albs) * lcu * hours,
                "LCU-hour",
                prices["alb_lcu_hour"],
                f"assumes {lcu} LCU per hour per ALB (a small site)",
            )
        )
        for alb in albs:
            if not alb.props.get("internal", False):
                subnets = len(alb.props.get("subnets") or alb.props.get("subnetMappings") or [])
                public_ips.append((subnets, f"{alb.name}: one per AZ subnet ({subnets})"))
    other_lbs = [r.name for r in run.of_type(LOAD_BALANCER) if r not in albs]
    if other_lbs:
        notes.append(f"Load balancers other than ALBs are not priced: {', '.join(other_lbs)}.")

    # --- Fargate tasks: desiredCount x (vCPU + GB) per hour, with the task definition's size and architecture.
    per_task_hour = 0.0
    for service in run.of_type(ECS_SERVICE):
        if service.props.get("launchType", "FARGATE") != "FARGATE":
            notes.append(f"ECS service {service.name} is not on Fargate and is not priced.")
            continue
        desired = _num(service.props.get("desiredCount"), 1.0)
        definition = _task_definition(run, service)
        if definition is None:
            notes.append(f"No task definition found for ECS service {service.name}; its tasks are not priced.")
            continue
        vcpu = _num(definition.props.get("cpu")) / 1024
        gb = _num(definition.props.get("memory")) / 1024
        arch = (definition.props.get("runtimePlatform") or {}).get("cpuArchitecture") or "X86_64"
        basis = f"{service.name}: desiredCount {desired:g} x {definition.name} ({vcpu:g} vCPU, {gb:g} GB, {arch}), 24/7"
        fixed.append(
            CostLine("Fargate vCPU", desired * vcpu * hours, "vCPU-hour", prices["fargate_vcpu_hour"][arch], basis)
        )
        fixed.append(
            CostLine("Fargate memory", desired * gb * hours, "GB-hour", prices["fargate_gb_hour"][arch], basis)
        )
        per_task_hour += vcpu * prices["fargate_vcpu_hour"][arch] + gb * prices["fargate_gb_hour"][arch]
        if (service.props.get("networkConfiguration") or {}).get("assignPublicIp"):
            public_ips.append((desired, f"{service.name}: tasks with a public IP ({desired:g})"))

    # --- NAT gateways: hours only; data processing depends on traffic.
    nats = run.of_type(NAT_GATEWAY)
    if nats:
        fixed.append(
            CostLine(
                "NAT gateway hours",
                len(nats) * hours,
                "gateway-hour",
                prices["nat_gateway_hour"],
                f"{_plural(len(nats), 'NAT gateway')}, 24/7; data processing excluded",
            )
        )
    eips = run.of_type(ELASTIC_IP)
    if eips:
        public_ips.append((len(eips), f"{_plural(len(eips), 'Elastic IP')}"))
    if public_ips:
        count = sum(n for n, _ in public_ips)
        fixed.append(
            CostLine(
                "Public IPv4 addresses",
                count * hours,
                "IP-hour",
                prices["public_ipv4_hour"],
                "; ".join(why for _, why in public_ips),
            )
        )

    # --- CloudTrail data events (cloudtrail trigger mode): per 100,000 events.
    uploads = a["uploads_per_month"]
    for trail in run.of_type(TRAIL):
        per_upload = 2 if _trail_logs_reads(trail) else 1
        fixed.append(
            CostLine(
                "CloudTrail data events",
                uploads * per_upload / 100_000,
                "100k events",
                prices["cloudtrail_data_events_per_100k"],
                f"{trail.name}: assumes {uploads:g} uploads/month, {per_upload} logged event(s) each",
            )
        )
        if _trail_logs_management_events(trail):
            notes.append(
                f"Trail {trail.name} also logs management events: free if it is the region's only trail doing so, "
                "otherwise $2.00 per 100,000 events."
            )

    # --- CodePipeline: V1 per active pipeline, V2 per action-execution minute after the free minutes.
    wait = _termination_wait_minutes(run)
    minutes_per_execution = (
        a["source_minutes_per_execution"] + a["build_minutes_per_execution"] + a["deploy_minutes_per_execution"] + wait
    )
    v2_minutes = 0.0
    v2_names: list[str] = []
    for pipeline in run.of_type(PIPELINE):
        if pipeline.props.get("pipelineType", "V1") == "V2":
            v2_minutes += uploads * minutes_per_execution
            v2_names.append(pipeline.name)
        else:
            fixed.append(
                CostLine(
                    "CodePipeline V1",
                    1,
                    "active pipeline-month",
                    prices["codepipeline_v1_pipeline_month"],
                    f"{pipeline.name} (free in its first 30 days and in months without a change)",
                )
            )
    if v2_names:
        free = prices["codepipeline_v2_free_minutes"]
        billable = max(0.0, v2_minutes - free)
        fixed.append(
            CostLine(
                "CodePipeline V2 action minutes",
                billable,
                "action-minute",
                prices["codepipeline_v2_action_minute"],
                f"{', '.join(v2_names)}: assumes {uploads:g} executions/month x {minutes_per_execution:g} min "
                f"(deploy includes the {wait:g} min blue-task termination wait) = {v2_minutes:g} min, "
                f"less {free:g} free minutes per account",
            )
        )

    # --- Small per-resource monthly charges, when the program registers any.
    # CloudWatch bills a standard alarm per metric it reads: a metric-math alarm over two metrics costs two.
    alarms = run.of_type(ALARM)
    if alarms:
        metrics = sum(_alarm_metrics(a) for a in alarms)
        fixed.append(
            CostLine(
                "CloudWatch alarm metrics",
                metrics,
                "alarm-metric-month",
                prices["cloudwatch_alarm_month"],
                ", ".join(f"{a.name} ({_plural(_alarm_metrics(a), 'metric')})" for a in alarms),
            )
        )
    for typ, item, unit, key in (
        (KMS_KEY, "KMS keys", "key-month", "kms_key_month"),
        (SECRET, "Secrets Manager secrets", "secret-month", "secret_month"),
    ):
        found = run.of_type(typ)
        if found:
            fixed.append(CostLine(item, len(found), unit, prices[key], ", ".join(r.name for r in found)))

    # --- Per deployment (not in the total).
    for project in run.of_type(BUILD_PROJECT):
        compute = (project.props.get("environment") or {}).get("computeType", "BUILD_GENERAL1_SMALL")
        if compute in prices["codebuild_minute"]:
            minutes = a["build_minutes_per_execution"]
            usage.append(
                CostLine(
                    "CodeBuild minutes",
                    uploads * minutes,
                    "build-minute",
                    prices["codebuild_minute"][compute],
                    f"{project.name} ({compute}): assumes {uploads:g} builds/month x {minutes:g} min",
                )
            )
    if per_task_hour and run.of_type(DEPLOYMENT_GROUP):
        overlap = a["deploy_minutes_per_execution"] + wait
        desired_total = sum(_num(s.props.get("desiredCount"), 1.0) for s in run.of_type(ECS_SERVICE))
        usage.append(
            CostLine(
                "Blue/green overlap (replacement tasks)",
                uploads * desired_total * overlap / 60,
                "task-hour",
                per_task_hour,
                f"both task sets run for ~{overlap:g} min per deployment (incl. the {wait:g} min termination wait)",
            )
        )

    excluded = [
        f"NAT gateway data processing (${prices['nat_gateway_gb']}/GB) and data transfer out to the internet"
        if nats
        else "Data transfer out to the internet",
        f"CloudWatch Logs ingestion (${prices['logs_ingest_gb']}/GB) and storage "
        f"(${prices['logs_storage_gb_month']}/GB-month)",
        f"S3 storage (${prices['s3_standard_gb_month']}/GB-month; source versions and artifacts expire) and requests",
        f"ECR storage (${prices['ecr_storage_gb_month']}/GB-month; the lifecycle policy keeps a few images)",
        "ALB capacity above the minimal LCU",
        "Free: CodeDeploy to ECS, EventBridge delivery of AWS service events, VPC, subnets, security groups, IAM",
    ]
    return CostEstimate(region=region, priced=True, fixed=fixed, usage=usage, excluded=excluded, notes=notes)


def money(value: float) -> str:
    return f"${value:,.2f}"


def _quantity(value: float) -> str:
    if value == math.floor(value):
        return f"{int(value):,}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def render_cost_md(est: CostEstimate, table: PriceTable | None = None, *, title: str = "Estimated monthly cost") -> str:
    table = table or load_prices()
    out = [f"# {title}", ""]
    if not est.priced:
        out += [*est.notes, ""]
        return "\n".join(out)
    out += [
        f"Region **{est.region}**, {table.currency}, {table.hours_per_month:g} hours a month. **Approximate**: list "
        f"prices read on {table.read_on} (sources below), quantities from the resources the program registers.",
        "",
        f"**Estimated fixed monthly cost: {money(est.total)}**",
        "",
        "| Item | Quantity | Unit price | Monthly | From |",
        "|---|---:|---:|---:|---|",
    ]
    for line in est.fixed:
        out.append(
            f"| {line.item} | {_quantity(line.quantity)} {line.unit} | ${line.unit_price:g} | {money(line.monthly)} "
            f"| {line.basis} |"
        )
    out += [f"| **Total** | | | **{money(est.total)}** | |", ""]
    if est.usage:
        out += [
            "## Per deployment (not in the total)",
            "",
            "| Item | Quantity | Unit price | Monthly | From |",
            "|---|---:|---:|---:|---|",
        ]
        for line in est.usage:
            out.append(
                f"| {line.item} | {_quantity(line.quantity)} {line.unit} | ${line.unit_price:g} "
                f"| {money(line.monthly)} | {line.basis} |"
            )
        out.append("")
    out += ["## Not included", "", *[f"- {item}" for item in est.excluded], ""]
    if est.notes:
        out += ["## Notes", "", *[f"- {note}" for note in est.notes], ""]
    out += [
        "## Assumptions",
        "",
        *[f"- `{k}`: {v:g}" for k, v in sorted(table.assumptions.items())],
        "",
        "## Price sources",
        "",
        f"Read on {table.read_on} (`offline/prices.yaml`); approximate, check before relying on a figure.",
        "",
        *[f"- {k}: {v}" for k, v in sorted(table.sources.items())],
        "",
    ]
    return "\n".join(out)
