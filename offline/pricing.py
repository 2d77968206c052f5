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

from components.pipeline_actions import BUILD_ACTION, DEPLOY_ACTION
from offline.engine import ProgramRun, Registration
from policy import resource_types as rt

PRICES = Path(__file__).resolve().parent / "prices.yaml"


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
    definitions = run.of_type(rt.ECS_TASK_DEFINITION)
    for definition in definitions:
        if arn and arn in (definition.state.get("arn"), definition.state.get("arnWithoutRevision")):
            return definition
    return definitions[0] if len(definitions) == 1 else None


def _termination_wait_minutes(run: ProgramRun) -> float:
    """How long the old tasks stay after a deployment: CodeDeploy's termination wait, or ECS's bake time."""
    waits = [
        _num(
            (
                (g.props.get("blueGreenDeploymentConfig") or {}).get("terminateBlueInstancesOnDeploymentSuccess") or {}
            ).get("terminationWaitTimeInMinutes")
        )
        for g in run.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP)
    ]
    waits += [
        _num((s.props.get("deploymentConfiguration") or {}).get("bakeTimeInMinutes"))
        for s in run.of_type(rt.ECS_SERVICE)
        if (s.props.get("deploymentController") or {}).get("type") == "ECS"
    ]
    return max(waits, default=0.0)


def _runs_per_execution(run: ProgramRun) -> dict[str, list[str]]:
    """CodeBuild project name -> the names of the pipeline actions that run it (once per execution each)."""
    found: dict[str, list[str]] = {}
    for pipeline in run.of_type(rt.CODEPIPELINE_PIPELINE):
        for stage in pipeline.props.get("stages") or []:
            for action in stage.get("actions") or []:
                if action.get("provider") == "CodeBuild":
                    project = (action.get("configuration") or {}).get("ProjectName")
                    found.setdefault(str(project), []).append(str(action.get("name")))
    return found


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


# Capacity provider (or launch type) -> (cost line label, vCPU price key, GB price key) of prices.yaml.
FARGATE_PRICE_KEYS = {
    "FARGATE": ("Fargate", "fargate_vcpu_hour", "fargate_gb_hour"),
    "FARGATE_SPOT": ("Fargate Spot", "fargate_spot_vcpu_hour", "fargate_spot_gb_hour"),
}


def _capacity_shares(service: Registration) -> dict[str, tuple[float, float]]:
    """The service's capacity provider strategy as ``provider -> (base, weight)``, or its launch type
    (``FARGATE`` by default) as the one provider."""
    strategy = service.props.get("capacityProviderStrategies") or []
    if not strategy:
        return {str(service.props.get("launchType") or "FARGATE"): (0.0, 1.0)}
    return {str(s["capacityProvider"]): (_num(s.get("base")), _num(s.get("weight"))) for s in strategy}


def task_split(desired: float, shares: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """How ECS spreads ``desired`` tasks over a strategy: each provider's ``base`` tasks first, the rest by
    ``weight``. https://docs.aws.amazon.com/AmazonECS/latest/developerguide/cluster-capacity-providers.html"""
    bases = {p: min(base, desired) for p, (base, _) in shares.items()}
    rest = max(desired - sum(bases.values()), 0.0)
    total = sum(weight for _, weight in shares.values()) or 1.0
    return {p: bases[p] + rest * weight / total for p, (_, weight) in shares.items()}


# Container Insights (``containerInsights: enabled``) metrics of a Fargate cluster, in the ECS/ContainerInsights
# namespace (CloudWatch user guide, "Amazon ECS Container Insights metrics", and the two ephemeral-storage metrics
# Fargate tasks add: ECS developer guide, "Fargate task ephemeral storage"). Each metric is billed per dimension
# set it is published for.
INSIGHTS_USAGE_METRICS = (
    "CpuUtilized", "CpuReserved", "MemoryUtilized", "MemoryReserved", "NetworkRxBytes", "NetworkTxBytes",
    "StorageReadBytes", "StorageWriteBytes", "EphemeralStorageUtilized", "EphemeralStorageReserved",
)  # fmt: skip
"""Published per cluster, per service and per task definition family."""
INSIGHTS_CLUSTER_METRICS = ("ServiceCount", "TaskCount")
"""Per cluster only (``ContainerInstanceCount`` counts EC2 instances: none on Fargate)."""
INSIGHTS_SERVICE_METRICS = (
    "DeploymentCount", "DesiredTaskCount", "PendingTaskCount", "RunningTaskCount", "TaskSetCount",
)  # fmt: skip
"""Per service only."""
INSIGHTS_ON = ("enabled", "enhanced")


def insights_metrics(services: int, families: int) -> int:
    """Container Insights metrics of one cluster with ``services`` services running ``families`` task families."""
    usage = len(INSIGHTS_USAGE_METRICS) * (1 + services + families)
    return usage + len(INSIGHTS_CLUSTER_METRICS) + len(INSIGHTS_SERVICE_METRICS) * services


def _alarm_metrics(alarm: Registration) -> int:
    """Metrics an alarm reads: one, or each ``metric`` of its metric-math queries (expressions are free)."""
    queries = alarm.props.get("metricQueries") or []
    return max(1, sum(1 for q in queries if q.get("metric")))


class _Estimator:
    """One method per priced item; each appends its lines (and notes) for what ``run`` registered."""

    def __init__(self, run: ProgramRun, prices: Mapping[str, Any], table: PriceTable) -> None:
        self.run = run
        self.prices = prices
        self.hours = table.hours_per_month
        self.a = table.assumptions
        self.uploads = self.a["uploads_per_month"]
        self.wait = _termination_wait_minutes(run)
        self.fixed: list[CostLine] = []
        self.usage: list[CostLine] = []
        self.notes: list[str] = []
        self.public_ips: list[tuple[float, str]] = []
        self.per_task_hour = 0.0

    def load_balancers(self) -> None:
        """Hours, a minimal LCU, and one public IPv4 address per subnet when internet-facing."""
        all_lbs = self.run.of_type(rt.LB_LOAD_BALANCER)
        albs = [r for r in all_lbs if r.props.get("loadBalancerType", "application") == "application"]
        other_lbs = [r.name for r in all_lbs if r not in albs]
        if other_lbs:
            self.notes.append(f"Load balancers other than ALBs are not priced: {', '.join(other_lbs)}.")
        if not albs:
            return
        names = ", ".join(r.name for r in albs)
        self.fixed.append(
            CostLine("ALB hours", len(albs) * self.hours, "ALB-hour", self.prices["alb_hour"], f"{names}, 24/7")
        )
        lcu = self.a["alb_lcu_per_hour"]
        self.fixed.append(
            CostLine(
                "ALB capacity (minimal LCU)",
                len(albs) * lcu * self.hours,
                "LCU-hour",
                self.prices["alb_lcu_hour"],
                f"assumes {lcu} LCU per hour per ALB (a small site)",
            )
        )
        for alb in albs:
            if not alb.props.get("internal", False):
                subnets = len(alb.props.get("subnets") or alb.props.get("subnetMappings") or [])
                self.public_ips.append((subnets, f"{alb.name}: one per AZ subnet ({subnets})"))

    def fargate_tasks(self) -> None:
        """desiredCount x (vCPU + GB) per hour, with the task definition's size and architecture, on the launch
        type or split across the service's capacity providers (Fargate, Fargate Spot)."""
        for service in self.run.of_type(rt.ECS_SERVICE):
            shares = _capacity_shares(service)
            unknown = sorted(set(shares) - set(FARGATE_PRICE_KEYS))
            if unknown:
                self.notes.append(f"ECS service {service.name} runs on {', '.join(unknown)}, which is not priced.")
                continue
            definition = _task_definition(self.run, service)
            if definition is None:
                self.notes.append(f"No task definition found for ECS service {service.name}; its tasks are not priced.")
                continue
            self._fargate_service(service, definition, shares)

    def _fargate_service(
        self, service: Registration, definition: Registration, shares: dict[str, tuple[float, float]]
    ) -> None:
        desired = _num(service.props.get("desiredCount"), 1.0)
        vcpu = _num(definition.props.get("cpu")) / 1024
        gb = _num(definition.props.get("memory")) / 1024
        arch = (definition.props.get("runtimePlatform") or {}).get("cpuArchitecture") or "X86_64"
        for provider, tasks in task_split(desired, shares).items():
            if not tasks:
                continue
            label, vcpu_key, gb_key = FARGATE_PRICE_KEYS[provider]
            vcpu_price, gb_price = self.prices[vcpu_key][arch], self.prices[gb_key][arch]
            basis = f"{service.name}: {tasks:g} of desiredCount {desired:g} on {provider} x {definition.name} "
            basis += f"({vcpu:g} vCPU, {gb:g} GB, {arch}), 24/7"
            self.fixed.append(CostLine(f"{label} vCPU", tasks * vcpu * self.hours, "vCPU-hour", vcpu_price, basis))
            self.fixed.append(CostLine(f"{label} memory", tasks * gb * self.hours, "GB-hour", gb_price, basis))
            # Replacement tasks of a deployment follow the same strategy: the overlap is priced per average task.
            self.per_task_hour += (tasks / desired) * (vcpu * vcpu_price + gb * gb_price)
        if (service.props.get("networkConfiguration") or {}).get("assignPublicIp"):
            self.public_ips.append((desired, f"{service.name}: tasks with a public IP ({desired:g})"))

    def container_insights(self) -> None:
        """Container Insights: its metrics are billed as custom CloudWatch metrics, per cluster, service and task
        family (``enhanced`` adds per-task and per-container metrics billed by observation: not priced here)."""
        for cluster in self.run.of_type(rt.ECS_CLUSTER):
            settings = {s.get("name"): s.get("value") for s in cluster.props.get("settings") or []}
            mode = settings.get("containerInsights")
            if mode not in INSIGHTS_ON:
                continue
            arn = cluster.state.get("arn")
            services = [s for s in self.run.of_type(rt.ECS_SERVICE) if s.props.get("cluster") in (arn, cluster.id)]
            families = {
                str(d.props.get("family")) for d in (_task_definition(self.run, s) for s in services) if d is not None
            }
            metrics = insights_metrics(len(services), len(families))
            self.fixed.append(
                CostLine(
                    "Container Insights metrics",
                    metrics,
                    "metric-month",
                    self.prices["cloudwatch_metric_month"],
                    f"{cluster.name} (containerInsights {mode}): {len(INSIGHTS_USAGE_METRICS)} usage metrics per "
                    f"cluster, service ({len(services)}) and task family ({len(families)}), "
                    f"{len(INSIGHTS_CLUSTER_METRICS)} cluster and {len(INSIGHTS_SERVICE_METRICS)} service counts; "
                    "assumes every service runs all month (its performance log events: Logs ingestion)",
                )
            )
            if mode == "enhanced":
                self.notes.append(
                    f"Cluster {cluster.name} has Container Insights with enhanced observability: its per-task and "
                    "per-container observations are billed on top and not priced here."
                )

    def nat_and_addresses(self) -> None:
        """NAT gateway hours (data processing depends on traffic) and every public IPv4 address found so far."""
        nats = self.run.of_type(rt.EC2_NAT_GATEWAY)
        if nats:
            self.fixed.append(
                CostLine(
                    "NAT gateway hours",
                    len(nats) * self.hours,
                    "gateway-hour",
                    self.prices["nat_gateway_hour"],
                    f"{_plural(len(nats), 'NAT gateway')}, 24/7; data processing excluded",
                )
            )
        eips = self.run.of_type(rt.EC2_EIP)
        if eips:
            self.public_ips.append((len(eips), f"{_plural(len(eips), 'Elastic IP')}"))
        if self.public_ips:
            self.fixed.append(
                CostLine(
                    "Public IPv4 addresses",
                    sum(n for n, _ in self.public_ips) * self.hours,
                    "IP-hour",
                    self.prices["public_ipv4_hour"],
                    "; ".join(why for _, why in self.public_ips),
                )
            )

    def trails(self) -> None:
        """CloudTrail data events (cloudtrail trigger mode): per 100,000 events."""
        for trail in self.run.of_type(rt.CLOUDTRAIL_TRAIL):
            per_upload = 2 if _trail_logs_reads(trail) else 1
            self.fixed.append(
                CostLine(
                    "CloudTrail data events",
                    self.uploads * per_upload / 100_000,
                    "100k events",
                    self.prices["cloudtrail_data_events_per_100k"],
                    f"{trail.name}: assumes {self.uploads:g} uploads/month, {per_upload} logged event(s) each",
                )
            )
            if trail.props.get("cloudWatchLogsGroupArn"):
                self._trail_log_group(trail, per_upload)
            if trail.props.get("kmsKeyId"):
                self.notes.append(
                    f"Trail {trail.name} encrypts its log files with its KMS key (priced under KMS keys): one "
                    "GenerateDataKey request per log file delivered (about one per upload), within KMS's 20,000 free "
                    "requests a month."
                )
            if _trail_logs_management_events(trail):
                self.notes.append(
                    f"Trail {trail.name} also logs management events: free if it is the region's only trail doing "
                    "so, otherwise $2.00 per 100,000 events."
                )

    def _trail_log_group(self, trail: Registration, per_upload: int) -> None:
        """CloudWatch Logs ingestion of the events a trail delivers to its log group (CloudTrail.5)."""
        kb = self.a["trail_event_kb"]
        self.fixed.append(
            CostLine(
                "CloudWatch Logs ingestion (trail events)",
                self.uploads * per_upload * kb / (1024 * 1024),
                "GB",
                self.prices["logs_ingest_gb"],
                f"{trail.name}: assumes {self.uploads:g} uploads/month, {per_upload} event(s) of ~{kb:g} KB each; "
                "their storage is negligible",
            )
        )

    def pipelines(self) -> None:
        """V1: per active pipeline; V2: per action-execution minute after the free minutes."""
        v2_names: list[str] = []
        for pipeline in self.run.of_type(rt.CODEPIPELINE_PIPELINE):
            if pipeline.props.get("pipelineType", "V1") == "V2":
                v2_names.append(pipeline.name)
                continue
            self.fixed.append(
                CostLine(
                    "CodePipeline V1",
                    1,
                    "active pipeline-month",
                    self.prices["codepipeline_v1_pipeline_month"],
                    f"{pipeline.name} (free in its first 30 days and in months without a change)",
                )
            )
        if v2_names:
            self._v2_minutes(v2_names)

    def _v2_minutes(self, names: list[str]) -> None:
        a = self.a
        per_execution = (
            a["source_minutes_per_execution"]
            + a["build_minutes_per_execution"]
            + a["deploy_minutes_per_execution"]
            + self.wait
        )
        minutes = len(names) * self.uploads * per_execution
        free = self.prices["codepipeline_v2_free_minutes"]
        self.fixed.append(
            CostLine(
                "CodePipeline V2 action minutes",
                max(0.0, minutes - free),
                "action-minute",
                self.prices["codepipeline_v2_action_minute"],
                f"{', '.join(names)}: assumes {self.uploads:g} executions/month x {per_execution:g} min "
                f"(deploy includes the {self.wait:g} min blue-task termination wait) = {minutes:g} min, "
                f"less {free:g} free minutes per account",
            )
        )

    def small_charges(self) -> None:
        """Per-resource monthly charges. CloudWatch bills a standard alarm per metric it reads."""
        alarms = self.run.of_type(rt.METRIC_ALARM)
        if alarms:
            self.fixed.append(
                CostLine(
                    "CloudWatch alarm metrics",
                    sum(_alarm_metrics(alarm) for alarm in alarms),
                    "alarm-metric-month",
                    self.prices["cloudwatch_alarm_month"],
                    ", ".join(f"{x.name} ({_plural(_alarm_metrics(x), 'metric')})" for x in alarms),
                )
            )
        for typ, item, unit, key in (
            (rt.KMS_KEY, "KMS keys", "key-month", "kms_key_month"),
            (rt.SECRETS_MANAGER_SECRET, "Secrets Manager secrets", "secret-month", "secret_month"),
        ):
            found = self.run.of_type(typ)
            if found:
                self.fixed.append(CostLine(item, len(found), unit, self.prices[key], ", ".join(r.name for r in found)))

    def flow_logs(self) -> None:
        """VPC flow logs to CloudWatch Logs: vended-log delivery of an assumed volume, and its storage for the log
        group's retention (every record written, kept that many days)."""
        groups = {g.state.get("arn"): g for g in self.run.of_type(rt.LOG_GROUP)}
        gb = self.a["flow_log_gb_per_month"]
        for flow_log in self.run.of_type(rt.EC2_FLOW_LOG):
            if flow_log.props.get("logDestinationType", "cloud-watch-logs") != "cloud-watch-logs":
                self.notes.append(f"Flow log {flow_log.name} delivers outside CloudWatch Logs; it is not priced.")
                continue
            basis = f"{flow_log.name} ({flow_log.props.get('trafficType')}): assumes {gb:g} GB of records a month"
            self.fixed.append(CostLine("VPC flow logs delivery", gb, "GB", self.prices["vended_logs_cwl_gb"], basis))
            group = groups.get(flow_log.props.get("logDestination"))
            days = _num(group.props.get("retentionInDays")) if group else 0.0
            if not days:
                self.notes.append(
                    f"Flow log {flow_log.name}: no retention found for its log group; storage not priced."
                )
                continue
            self.fixed.append(
                CostLine(
                    "VPC flow logs storage",
                    gb * days / 30,
                    "GB-month",
                    self.prices["logs_storage_gb_month"],
                    f"{basis}, kept {days:g} days (at most: CloudWatch bills the compressed size)",
                )
            )

    def per_deployment(self) -> None:
        """Build minutes and the blue/green overlap: usage lines, not in the total."""
        runs = _runs_per_execution(self.run)
        for project in self.run.of_type(rt.CODEBUILD_PROJECT):
            environment = project.props.get("environment") or {}
            kind = environment.get("type", "LINUX_CONTAINER")
            compute = environment.get("computeType", "BUILD_GENERAL1_SMALL")
            price = (self.prices["codebuild_minute"].get(kind) or {}).get(compute)
            if price is None:
                self.notes.append(f"CodeBuild {compute} on {kind} ({project.name}) has no price in the table.")
                continue
            minutes, why = self._project_minutes(runs.get(str(project.props.get("name")), []))
            self.usage.append(
                CostLine(
                    "CodeBuild minutes",
                    self.uploads * minutes,
                    "build-minute",
                    price,
                    f"{project.name} ({compute}, {kind}): assumes {self.uploads:g} executions/month x {why}",
                )
            )
        if self.per_task_hour and self.deploys:
            overlap = self.a["deploy_minutes_per_execution"] + self.wait
            desired_total = sum(_num(s.props.get("desiredCount"), 1.0) for s in self.run.of_type(rt.ECS_SERVICE))
            self.usage.append(
                CostLine(
                    "Blue/green overlap (replacement tasks)",
                    self.uploads * desired_total * overlap / 60,
                    "task-hour",
                    self.per_task_hour,
                    f"both task sets run for ~{overlap:g} min per deployment (incl. the {self.wait:g} min "
                    "termination wait)",
                )
            )

    @property
    def deploys(self) -> bool:
        """Whether the stack deploys blue/green: with CodeDeploy, or with ECS-native blue/green."""
        native = any(
            (s.props.get("deploymentController") or {}).get("type") == "ECS" for s in self.run.of_type(rt.ECS_SERVICE)
        )
        return native or bool(self.run.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP))

    def _project_minutes(self, actions: list[str]) -> tuple[float, str]:
        """Minutes a project runs per pipeline execution, from the actions that run it: the build, the release
        steps around the deployment, or the ecs engine's deploy step (which waits out the whole deployment)."""
        a = self.a
        if DEPLOY_ACTION in actions:
            minutes = a["deploy_minutes_per_execution"] + self.wait
            return minutes, f"{minutes:g} min (the deployment and its {self.wait:g} min bake time)"
        if actions and all(name != BUILD_ACTION for name in actions):
            minutes = len(actions) * a["release_minutes_per_run"]
            return minutes, f"{len(actions)} runs x {a['release_minutes_per_run']:g} min"
        return a["build_minutes_per_execution"], f"{a['build_minutes_per_execution']:g} min"

    def _access_logs(self) -> list[str]:
        """S3 server access logs: no charge for logging or delivery, only the logs' storage (S3 guide,
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html)."""
        logged = self.run.of_type(rt.S3_BUCKET_LOGGING) + self.run.of_type(rt.S3_BUCKET_LOGGING_V2)
        if not logged:
            return []
        return [
            f"S3 server access logs of {_plural(len(logged), 'bucket')}: logging and delivery are free; their storage "
            "is S3 storage above, a few MB a month (one record of about 400 bytes per request: a few dozen per "
            "pipeline execution, one per ALB access-log file when those are logged), under a cent, expiring with the "
            "log retention"
        ]

    def excluded(self) -> list[str]:
        prices = self.prices
        return [
            f"NAT gateway data processing (${prices['nat_gateway_gb']}/GB) and data transfer out to the internet"
            if self.run.of_type(rt.EC2_NAT_GATEWAY)
            else "Data transfer out to the internet",
            f"CloudWatch Logs ingestion (${prices['logs_ingest_gb']}/GB) and storage "
            f"(${prices['logs_storage_gb_month']}/GB-month) of the task, build and function logs",
            f"S3 storage (${prices['s3_standard_gb_month']}/GB-month; source versions and artifacts expire) and "
            "requests",
            *self._access_logs(),
            f"ECR storage (${prices['ecr_storage_gb_month']}/GB-month; the lifecycle policy keeps a few images)",
            "ALB capacity above the minimal LCU",
            *(
                [
                    f"KMS requests (${prices['kms_requests_per_10k']}/10,000: a few per pipeline execution and per "
                    "notification)"
                ]
                if self.run.of_type(rt.KMS_KEY)
                else []
            ),
            "Free: CodeDeploy to ECS, EventBridge delivery of AWS service events, VPC, subnets, security groups, IAM",
            "Lambda and SQS of the commit-status feedback (a few invocations per execution: within the free tier)",
        ]


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
    est = _Estimator(run, prices, table)
    est.load_balancers()
    est.fargate_tasks()
    est.container_insights()
    est.nat_and_addresses()
    est.trails()
    est.pipelines()
    est.small_charges()
    est.flow_logs()
    est.per_deployment()
    return CostEstimate(
        region=region, priced=True, fixed=est.fixed, usage=est.usage, excluded=est.excluded(), notes=est.notes
    )


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
