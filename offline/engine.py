"""Runs the Pulumi program in process on Pulumi's mock monitor: no CLI, no cloud, no network.

The tests and the offline plan both use it. Every resource registration is recorded with its inputs (secrets
kept wrapped, so a test can tell that a value travelled as a secret) and the options the engine would see
(parent, ignoreChanges, protect, additionalSecretOutputs...).

Values only AWS can know (ids, ARNs of created resources, DNS names) are invented here in a recognisable
shape: the account is ``123456789012`` (the account AWS documentation uses) and ids end in ``-id``.
"""

from __future__ import annotations

import asyncio
import hashlib
import runpy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pulumi

from components import pulumi_internals
from components.base import PROJECT
from offline.stack_files import ROOT, StackFiles
from policy import resource_types as rt

ACCOUNT_ID = "123456789012"
OFFLINE_PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9GRkxJTkUtUExBQ0VIT0xERVItS0VZLTAwMDAwMDAw offline-placeholder\n"
)
OFFLINE_PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nOFFLINE-PLACEHOLDER-KEY\n-----END OPENSSH PRIVATE KEY-----\n"
)
OFFLINE_PROJECT_TOKEN = "glpat-OFFLINE-PROJECT-ACCESS-TOKEN"
"""The stand-in value of a GitLab project access token (a secret)."""
SECRET_SIG = pulumi_internals.SECRET_SIG_KEY
SECRET_VALUE = pulumi_internals.SECRET_SIG_VALUE


def plain_assets(value: Any) -> Any:
    """Assets and archives (a Lambda's code) as data a plan can show and a test can read: the file's path (from
    the project root), its size and SHA-256, or an archive's members."""
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {name: plain_assets(member) for name, member in sorted(value.assets.items())}}
    if isinstance(value, pulumi.FileAsset):
        path = Path(str(value.path))
        content = path.read_bytes()
        shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        return {"file": shown, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    if isinstance(value, pulumi.StringAsset):
        return {"text": value.text}
    if isinstance(value, dict):
        return {k: plain_assets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_assets(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def unwrap(value: Any) -> Any:
    """The value with every secret wrapper removed."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass
class Registration:
    """One resource as the engine saw it."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    """Inputs with secrets still wrapped (see ``is_secret``)."""
    ignore_changes: list[str]
    protect: bool
    additional_secret_outputs: list[str]
    dependencies: list[str]
    retain_on_delete: bool
    id: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    provider: str = ""
    """Reference (``urn::id``) of the provider that manages it; empty for components."""
    aliases: list[str] = field(default_factory=list)
    """URNs the resource had before (its ``aliases``): state under them is taken over, not replaced."""
    replacement_trigger: Any = None
    """Its ``replacement_trigger`` option (secrets kept wrapped): a new value replaces the resource."""
    delete_before_replace: bool = False
    """Replaced by deleting it first (``delete_before_replace``), instead of creating the replacement first."""

    @property
    def props(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped."""
        result: dict[str, Any] = unwrap(self.inputs)
        return result


# Resource types whose name AWS (or the provider) derives when the program gives none: the mock answers
# with the logical name, so generated names stay readable and deterministic.
_NAME_KEYS = ("name", "bucket", "functionName", "repositoryName")

# type token -> (service, resource path format); {name} is the physical name.
_ARNS: dict[str, tuple[str, str]] = {
    rt.IAM_ROLE: ("iam", "role/{name}"),
    rt.IAM_USER: ("iam", "user/{name}"),
    rt.IAM_POLICY: ("iam", "policy/{name}"),
    rt.IAM_OIDC_PROVIDER: ("iam", "oidc-provider/{name}"),
    rt.S3_BUCKET: ("s3", "{name}"),
    rt.ECS_CLUSTER: ("ecs", "cluster/{name}"),
    rt.ECS_SERVICE: ("ecs", "service/{name}"),
    rt.ECS_TASK_DEFINITION: ("ecs", "task-definition/{name}:1"),
    rt.ECR_REPOSITORY: ("ecr", "repository/{name}"),
    rt.LOG_GROUP: ("logs", "log-group:{name}"),
    rt.EVENTS_RULE: ("events", "rule/{name}"),
    rt.METRIC_ALARM: ("cloudwatch", "alarm:{name}"),
    rt.LB_LOAD_BALANCER: ("elasticloadbalancing", "loadbalancer/app/{name}/0123456789abcdef"),
    rt.LB_TARGET_GROUP: ("elasticloadbalancing", "targetgroup/{name}/0123456789abcdef"),
    rt.LB_LISTENER: ("elasticloadbalancing", "listener/app/{name}/0123456789abcdef/fedcba9876543210"),
    rt.LB_LISTENER_RULE: (
        "elasticloadbalancing",
        "listener-rule/app/{name}/0123456789abcdef/fedcba9876543210/0a1b2c3d4e5f6a7b",
    ),
    rt.CODEBUILD_PROJECT: ("codebuild", "project/{name}"),
    rt.CODEPIPELINE_PIPELINE: ("codepipeline", "{name}"),
    rt.CODEDEPLOY_APPLICATION: ("codedeploy", "application:{name}"),
    rt.CODEDEPLOY_DEPLOYMENT_GROUP: ("codedeploy", "deploymentgroup:{name}"),
    rt.CLOUDTRAIL_TRAIL: ("cloudtrail", "trail/{name}"),
    rt.KMS_KEY: ("kms", "key/{name}"),
    rt.SNS_TOPIC: ("sns", "{name}"),
    rt.SECRETS_MANAGER_SECRET: ("secretsmanager", "secret:{name}-AbCdEf"),
    rt.ACM_CERTIFICATE: ("acm", "certificate/{name}"),
}
_GLOBAL_SERVICES = {"iam", "s3"}


def _certificate(name: str, region: str, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    # ACM's DNS validation: one CNAME per domain, in the shape ACM chooses (underscore-prefixed names).
    domain = unwrap(inputs.get("domainName"))
    option = {
        "domainName": domain,
        "resourceRecordName": f"_0123456789abcdef0123456789abcdef.{domain}.",
        "resourceRecordType": "CNAME",
        "resourceRecordValue": "_fedcba9876543210fedcba9876543210.xlfgrmvvlj.acm-validations.aws.",
    }
    return {"domainValidationOptions": [option]}


OFFLINE_NOW = datetime(2025, 1, 1, tzinfo=UTC)
"""The instant a time-based resource is created at offline (a ``Rotating``'s base timestamp): fixed, so that a
plan is the same from one run to the next."""


def _rfc3339(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rotating(name: str, region: str, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """What pulumiverse-time's ``Rotating`` computes at creation: its base timestamp (also its id) and, for a
    ``rotationDays`` schedule, the rotation timestamp and its parts."""
    days = unwrap(inputs.get("rotationDays"))
    if not isinstance(days, int | float) or set(inputs) & {"rotationHours", "rotationMinutes", "rotationMonths"}:
        raise NotImplementedError("the offline engine answers a Rotating on rotationDays only")
    rotation = OFFLINE_NOW + timedelta(days=days)
    parts = ("year", "month", "day", "hour", "minute", "second")
    return {
        "rfc3339": _rfc3339(OFFLINE_NOW),
        "rotationRfc3339": _rfc3339(rotation),
        "unix": int(rotation.timestamp()),
        **{part: getattr(rotation, part) for part in parts},
    }


def _vpc(name: str, region: str, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    # Every VPC comes with a default network ACL, security group and route table, which AWS names.
    digest = hashlib.sha256(name.encode()).hexdigest()[:17]
    return {
        "defaultNetworkAclId": f"acl-{digest}",
        "defaultSecurityGroupId": f"sg-{digest}",
        "defaultRouteTableId": f"rtb-{digest}",
        "mainRouteTableId": f"rtb-{digest}",
    }


_Answer = Callable[[str, str, dict[str, Any], dict[str, Any]], dict[str, Any]]
_ANSWERS: dict[str, _Answer] = {
    # What AWS (or the provider) computes for a resource, in the shape it would: name, region, state, inputs.
    rt.LB_LOAD_BALANCER: lambda name, region, state, _: {
        "dnsName": f"{name}-1234567890.{region}.elb.amazonaws.com",
        "arnSuffix": state["arn"].split(":loadbalancer/")[1],
        "zoneId": "Z0000000000000",
    },
    rt.LB_TARGET_GROUP: lambda name, region, state, _: {"arnSuffix": state["arn"].split(":")[-1]},
    rt.ECR_REPOSITORY: lambda name, region, state, _: {
        "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/{name}",
        "registryId": ACCOUNT_ID,
    },
    rt.ACM_CERTIFICATE: _certificate,
    rt.EC2_VPC: _vpc,
    rt.ROUTE53_RECORD: lambda name, region, state, _: {"fqdn": name.rstrip(".")},
    rt.S3_BUCKET: lambda name, region, state, _: {
        "bucketDomainName": f"{name}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
    },
    rt.IAM_ROLE: lambda name, region, state, _: {"uniqueId": "AROAEXAMPLE0000000000"},
    rt.IAM_USER: lambda name, region, state, _: {"uniqueId": "AIDAEXAMPLE0000000000"},
    rt.ECS_TASK_DEFINITION: lambda name, region, state, _: {
        "revision": 1,
        "arnWithoutRevision": state["arn"].rsplit(":", 1)[0],
    },
    rt.ECS_CLUSTER: lambda name, region, state, _: {"name": state.get("name", name)},
    rt.IAM_ACCESS_KEY: lambda name, region, state, _: {"secret": pulumi_secret("mock-secret-access-key")},
    # GitLab answers the token once, at creation; a recognisable stand-in, so a test can look for leaks of it.
    rt.GITLAB_PROJECT_ACCESS_TOKEN: lambda name, region, state, _: {
        "token": pulumi_secret(OFFLINE_PROJECT_TOKEN),
        "expiresAt": "2027-03-01",
    },
    rt.SQS_QUEUE: lambda name, region, state, _: {
        "url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{name}",
        "arn": f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}",
    },
    rt.LAMBDA_FUNCTION: lambda name, region, state, _: {
        "arn": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
        "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
        f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}/invocations",
    },
    rt.TIME_ROTATING: _rotating,
    # A fixed stand-in key pair: the plan must be deterministic, and no real key is needed offline.
    rt.TLS_PRIVATE_KEY: lambda name, region, state, _: {
        "publicKeyOpenssh": OFFLINE_PUBLIC_KEY,
        "privateKeyOpenssh": pulumi_secret(OFFLINE_PRIVATE_KEY),
    },
}


# Resources whose id is not ``<name>-id``: an access key's is its key id; a Rotating's is its base timestamp.
_RESOURCE_IDS: dict[str, Callable[[dict[str, Any]], str]] = {
    rt.IAM_ACCESS_KEY: lambda state: "AKIAEXAMPLE000000000",
    rt.TIME_ROTATING: lambda state: str(state["rfc3339"]),
}


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and invokes with deterministic, AWS-shaped values."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.call_providers: list[tuple[str, str]] = []

    def arn(self, service: str, resource: str) -> str:
        region = "" if service in _GLOBAL_SERVICES else self.region
        account = "" if service == "s3" else ACCOUNT_ID
        return f"arn:aws:{service}:{region}:{account}:{resource}"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        state = dict(inputs)
        name = next((unwrap(inputs[k]) for k in _NAME_KEYS if isinstance(unwrap(inputs.get(k)), str)), None)
        if name is None:
            name = args.name
            for key in ("name", "bucket"):
                state.setdefault(key, name)
        typ = args.typ
        if typ == rt.IAM_OIDC_PROVIDER:
            # IAM names a provider after its issuer: arn:aws:iam::<account>:oidc-provider/<host[/path]>.
            name = str(unwrap(inputs.get("url", name))).removeprefix("https://")
        if typ in _ARNS:
            service, path = _ARNS[typ]
            state["arn"] = self.arn(service, path.format(name=name))
        elif typ.startswith("aws:"):
            service = typ.split(":")[1].split("/")[0]
            state["arn"] = self.arn(service, f"{typ.split(':')[-1].lower()}/{name}")
        answer = _ANSWERS.get(typ)
        if answer is not None:
            state.update(answer(str(name), self.region, state, inputs))
        make_id = _RESOURCE_IDS.get(typ)
        resource_id = make_id(state) if make_id is not None else f"{name}-id"
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append((args.token, dict(args.args)))
        self.call_providers.append((args.token, args.provider))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/offline",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT_ID,
            }, []
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = availability_zones(self.region, dict(args.args))
            names = [z.name for z in zones]
            return {"names": names, "zoneIds": [z.zone_id for z in zones], "id": self.region}, []
        raise NotImplementedError(f"the offline engine has no answer for invoke {args.token}")


@dataclass(frozen=True)
class Zone:
    name: str
    zone_id: str
    zone_type: str
    """``availability-zone``, ``local-zone`` or ``wavelength-zone``."""
    opt_in_status: str
    """``opt-in-not-required`` (standard AZs), ``opted-in`` or ``not-opted-in``."""


# What DescribeAvailabilityZones answers, per region, for an account that opted in to some Local Zones: the
# standard AZs, and Local Zones whose names sort before them (``us-west-2-lax-1a`` < ``us-west-2a``). Regions
# not listed answer with three standard AZs.
_STANDARD_AZS = {"us-east-1": "abcdef", "us-west-2": "abcd", "eu-west-1": "abc", "eu-central-1": "abc"}
_LOCAL_ZONES = {
    "us-east-1": (("us-east-1-bos-1a", "opted-in"), ("us-east-1-mia-1a", "not-opted-in")),
    "us-west-2": (("us-west-2-lax-1a", "opted-in"), ("us-west-2-lax-1b", "opted-in")),
    "eu-central-1": (("eu-central-1-ham-1a", "opted-in"),),
}


def availability_zones(region: str, args: Mapping[str, Any]) -> list[Zone]:
    """The zones DescribeAvailabilityZones lists for ``args`` (``allAvailabilityZones``, ``filters``), as AWS
    does: without ``allAvailabilityZones`` only zones that need no opt-in or are opted in."""
    zones = [
        Zone(
            f"{region}{letter}",
            f"{region[:2]}{region.split('-')[1][0]}{region[-1]}-az{i}",
            "availability-zone",
            "opt-in-not-required",
        )
        for i, letter in enumerate(_STANDARD_AZS.get(region, "abc"), start=1)
    ]
    zones += [Zone(name, f"{name}-id", "local-zone", status) for name, status in _LOCAL_ZONES.get(region, ())]
    if not args.get("allAvailabilityZones"):
        zones = [z for z in zones if z.opt_in_status != "not-opted-in"]
    fields = {"zone-type": "zone_type", "opt-in-status": "opt_in_status", "zone-name": "name"}
    for selector in args.get("filters") or []:
        field_name = fields.get(selector["name"])
        if field_name is None:
            raise NotImplementedError(f"the offline engine has no zone filter {selector['name']!r}")
        zones = [z for z in zones if getattr(z, field_name) in selector["values"]]
    return sorted(zones, key=lambda z: z.name)


def pulumi_secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG: SECRET_VALUE, "value": value}


class RecordingMonitor(pulumi_internals.MockMonitor):
    """The mock monitor, also recording the options of every registration."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        response = pulumi_internals.register_resource(self, request)
        if request.type != "pulumi:pulumi:Stack":
            pulumi_internals.ensure_event_loop()
            registration = self.resources[response.urn]
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=request.custom,
                    inputs=plain_assets(pulumi_internals.deserialize_properties(request.object)),
                    ignore_changes=list(request.ignoreChanges),
                    protect=request.protect,
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                    dependencies=list(request.dependencies),
                    retain_on_delete=request.retainOnDelete,
                    id=registration.id or "",
                    state=dict(registration.state or {}),
                    provider=request.provider,
                    aliases=self._alias_urns(request),
                    replacement_trigger=pulumi_internals.replacement_trigger(request),
                    delete_before_replace=request.deleteBeforeReplace,
                )
            )
        return response

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """A URN as the engine makes it: the type chain of every ancestor, not only the parent's type (what the
        SDK's mock monitor uses), so that a nested component's children have the URNs a real stack gives them.
        The SDK's mock monitor adds only the parent's own type.
        https://www.pulumi.com/docs/iac/concepts/resources/names/#urns"""
        parent_types = parent.split("::")[2] if parent else ""
        # The stack resource is every top-level resource's parent, but not part of their URNs.
        qualified = type_ if parent_types in ("", "pulumi:pulumi:Stack") else f"{parent_types}${type_}"
        return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{qualified}::{name}"

    def _alias_urns(self, request: Any) -> list[str]:
        """The URNs a registration's aliases stand for (a spec names what changed: parent, name or type)."""
        urns = list(request.aliasURNs)
        for alias in request.aliases:
            if alias.urn:
                urns.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            urns.append(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        return urns


@dataclass
class ProgramRun:
    """What one run of the program registered and exported."""

    resources: list[Registration]
    outputs: dict[str, Any]
    """Stack outputs, resolved, secrets unwrapped."""
    secret_outputs: set[str]
    """Names of the stack outputs that are secret."""
    calls: list[tuple[str, dict[str, Any]]]
    export_order: list[str] = field(default_factory=list)
    call_providers: list[tuple[str, str]] = field(default_factory=list)
    """(token, provider reference) of every invoke, in the order of ``calls``."""
    """Names of the stack outputs in the order the program exported them (``outputs`` is sorted)."""

    def of_type(self, typ: str) -> list[Registration]:
        """Resources of one type in name order: registration order under mocks depends on scheduling."""
        return sorted((r for r in self.resources if r.type == typ), key=lambda r: r.name)

    def one(self, typ: str, name: str | None = None) -> Registration:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(typ)]
            raise LookupError(f"expected one {typ} named {name!r}, found {len(found)} among {names}")
        return found[0]

    def named(self, name: str) -> Registration:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one resource named {name!r}, found {len(found)}")
        return found[0]

    def children_of(self, parent: Registration) -> list[Registration]:
        return [r for r in self.resources if r.parent == parent.urn]


def _run_file(program: Path) -> None:
    root = str(program.parent)
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        runpy.run_path(str(program), run_name="__main__")
    finally:
        if added:
            sys.path.remove(root)


def run_components(
    build: Callable[[], object],
    *,
    region: str = "eu-west-1",
    stack: str = "dev",
    config: Mapping[str, str] | None = None,
    secret_keys: tuple[str, ...] = (),
    registered: list[Registration] | None = None,
) -> ProgramRun:
    """Runs ``build`` (a function that constructs components, and may ``pulumi.export``) on the offline engine,
    as a program of this project in ``region``: what a component test inspects (``registered``: see
    ``run_program``)."""
    files = StackFiles(PROJECT, stack, {"aws:region": region, **(config or {})}, sorted(secret_keys))
    return run_program(files, program=build, registered=registered)


def run_program(
    files: StackFiles,
    *,
    overrides: Mapping[str, str] | None = None,
    remove: tuple[str, ...] = (),
    program: Path | Callable[[], object] = ROOT / "__main__.py",
    preview: bool = False,
    registered: list[Registration] | None = None,
) -> ProgramRun:
    """Runs the program (a file, or a function that builds components) for one stack's config and returns what
    it registered.

    ``overrides`` and ``remove`` take bare keys of the project namespace (``cpu``) or namespaced ones.
    Raises whatever the program raises (e.g. ``ConfigError``); ``registered``, when given, receives every
    registration made before that (so a caller can tell whether a failure left half a stack).
    """

    def full(key: str) -> str:
        return key if ":" in key else f"{files.project}:{key}"

    config = {k: v for k, v in files.config.items() if k not in {full(r) for r in remove}}
    config.update({full(k): v for k, v in (overrides or {}).items()})
    region = config.get("aws:region", "us-east-1")

    mocks = RecordingMocks(region)
    monitor = RecordingMonitor(mocks)
    if registered is not None:
        monitor.registrations = registered
    pulumi_internals.reset_root_resource()
    pulumi.runtime.set_all_config(config, list(files.secret_keys))
    pulumi.runtime.set_mocks(mocks, project=files.project, stack=files.stack, preview=preview, monitor=monitor)

    exported: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    @pulumi_internals.test
    def go() -> pulumi.Output[None]:
        if callable(program):
            program()
        else:
            _run_file(program)
        outputs = pulumi_internals.root_resource_outputs()

        async def settle() -> None:
            for name, value in outputs.items():
                out = pulumi.Output.from_input(value)
                exported[name] = await out.future(with_unknowns=False)
                if await out.is_secret():
                    secret_outputs.add(name)

        return pulumi.Output.from_input(asyncio.ensure_future(settle()))

    go()
    return ProgramRun(
        resources=list(monitor.registrations),
        outputs=dict(sorted(exported.items())),
        secret_outputs=secret_outputs,
        calls=list(mocks.calls),
        export_order=list(exported),
        call_providers=list(mocks.call_providers),
    )
