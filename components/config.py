"""The stack configuration: every section's model, composed and validated before any resource exists.

Each component declares the model of its own section (``NetworkConfig`` in ``network.py``, ``BuildConfig`` in
``build_stage.py``...); this module adds the stack-wide settings (``StackSettings``), routes each key of the
stack file to its section, validates them all, and turns every problem into one line that names the key, the
bad value and what is allowed. It reports every problem at once: all sections are validated even when one fails.

Values are read through ``pulumi.Config``; the one thing its public API cannot do, list every key a stack sets
(to refuse unknown and misspelt ones), goes through ``components.pulumi_internals``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, model_validator
from pydantic.fields import FieldInfo

from components.base import PROJECT, StackContext
from components.build_stage import BUILD_ENVIRONMENTS, BuildConfig, curated_image_architecture
from components.config_types import (
    ConfigError,
    ConfigModel,
    Flag,
    KeyProblems,
    LogRetentionDays,
    Matches,
    StrMap,
    Text,
    field_extra,
    problems_if,
)
from components.deploy_stage import DeployConfig
from components.ecs_service import ContainerConfig
from components.gitlab_project import GitLabConfig
from components.load_balancer import LoadBalancerConfig
from components.network import NetworkConfig
from components.network_acl import ADMIN_PORTS
from components.notifications import NotificationsConfig
from components.s3_access_logs import S3AccessLogsConfig
from components.service_alarms import AlarmsConfig
from components.source_bucket import SourceConfig
from components.upload_identity import UploadConfig

# The only stack that may delete non-empty buckets and repositories with the stack (``forceDestroy``).
FORCE_DESTROY_STACKS = ("dev",)
# ALB and target-group names allow 32 characters; the longest name the program derives is
# "<appName>-<stack>-green".
AWS_LB_NAME_MAX = 32
LONGEST_NAME_SUFFIX = "-green"

REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$"
_REGION = re.compile(REGION_PATTERN)
_STACK = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")


def _tags(tags: dict[str, str]) -> dict[str, str]:
    problems = []
    for key, value in tags.items():
        if key.lower().startswith("aws:") or not _TAG_KEY.match(key):
            problems.append(f"tag key {key!r} is not allowed (1-128 characters, not 'aws:')")
        if len(value) > 256:
            problems.append(f"the value of tag {key!r} is longer than 256 characters")
    if problems:
        raise ValueError("; ".join(problems))
    return tags


AppName = Annotated[
    Text,
    Matches(
        r"[a-z][a-z0-9-]*[a-z0-9]",
        "an app name of lower-case letters, digits and hyphens, starting with a letter",
        "shop",
    ),
]


class StackSettings(ConfigModel):
    """What applies to the whole stack."""

    app_name: AppName = Field(
        "sample-app",
        description="application name, prefix of every resource name (`<appName>-<stack>`; target-group names must "
        "stay ≤ 32 characters)",
    )
    tags: Annotated[StrMap, AfterValidator(_tags)] = Field(
        default_factory=dict,
        description="map of tags added to every AWS resource (with `app`, `stack`, `managed-by`)",
    )
    log_retention_days: LogRetentionDays = Field(
        14, description="CloudWatch log retention in days (a period CloudWatch accepts)"
    )
    force_destroy: Flag = Field(
        False,
        description="`dev` only: `pulumi destroy` deletes non-empty buckets, the ECR repository and log groups; "
        "otherwise they are protected",
    )

    @model_validator(mode="after")
    def _fits_the_stack(self, info: ValidationInfo) -> StackSettings:
        stack = str((info.context or {}).get("stack", "dev")).lower()
        longest = f"{self.app_name}-{stack}{LONGEST_NAME_SUFFIX}"
        room = AWS_LB_NAME_MAX - len(f"-{stack}{LONGEST_NAME_SUFFIX}")
        problems_if(
            (
                len(longest) > AWS_LB_NAME_MAX,
                "appName",
                f"{self.app_name!r} makes the target-group name {longest!r} {len(longest)} characters long; AWS "
                f"allows {AWS_LB_NAME_MAX}, so appName may have at most {room} characters in stack {stack!r}",
            ),
            (
                self.force_destroy and stack not in FORCE_DESTROY_STACKS,
                "forceDestroy",
                f"only the {', '.join(FORCE_DESTROY_STACKS)} stack may delete non-empty buckets and repositories; "
                f"stack {stack!r} keeps them protected",
            ),
        )
        return self


SECTIONS: dict[str, type[ConfigModel]] = {
    "settings": StackSettings,
    "network": NetworkConfig,
    "container": ContainerConfig,
    "load_balancer": LoadBalancerConfig,
    "source": SourceConfig,
    "build": BuildConfig,
    "deploy": DeployConfig,
    "alarms": AlarmsConfig,
    "notifications": NotificationsConfig,
    "gitlab": GitLabConfig,
    "upload": UploadConfig,
    "access_logs": S3AccessLogsConfig,
}
"""Every section of the stack file, by the attribute of ``StackConfig`` that holds it."""


def key_of(name: str, info: FieldInfo) -> str:
    """A field's key in the stack file (without namespace): its alias."""
    return info.alias or name


KEYS: dict[str, tuple[str, str]] = {
    key_of(name, info): (section, name)
    for section, model in SECTIONS.items()
    for name, info in model.model_fields.items()
}
"""Stack-file key (without namespace) -> (section, field)."""
SECRET_KEYS = frozenset(
    key for key, (section, name) in KEYS.items() if field_extra(SECTIONS[section].model_fields[name]).get("x-secret")
)


@dataclass(frozen=True)
class StackConfig:
    """The validated configuration of one stack."""

    stack: str
    region: str
    settings: StackSettings
    network: NetworkConfig
    container: ContainerConfig
    load_balancer: LoadBalancerConfig
    source: SourceConfig
    build: BuildConfig
    deploy: DeployConfig
    alarms: AlarmsConfig
    notifications: NotificationsConfig
    gitlab: GitLabConfig
    upload: UploadConfig
    access_logs: S3AccessLogsConfig

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical name: ``<appName>-<stack>``."""
        return f"{self.settings.app_name}-{self.stack}"

    @property
    def context(self) -> StackContext:
        return StackContext(
            name_prefix=self.name_prefix,
            region=self.region,
            log_retention_days=self.settings.log_retention_days,
            force_destroy=self.settings.force_destroy,
        )

    @property
    def container_name(self) -> str:
        return self.container.named(self.settings.app_name)


# --- Parsing ----------------------------------------------------------------------------------------------


def _qualified(key: str) -> str:
    return f"{PROJECT}:{key}"


def parse_config(
    values: Mapping[str, str],
    *,
    stack: str,
    region: str | None,
    secret_keys: frozenset[str] = frozenset(),
    other_keys: Iterable[str] = (),
) -> StackConfig:
    """Validates raw config values (``key -> string``, without namespace) into a ``StackConfig``.

    ``other_keys`` are the stack's namespaced keys outside the project's namespace (``aws:region``...), checked
    too: a key nothing reads is a mistake the user would not otherwise see. Raises ``ConfigError`` listing every
    problem.
    """
    problems = [*foreign_key_problems(other_keys), *_region_and_stack_problems(region, stack)]
    for key in sorted(values):
        if key not in KEYS:
            near = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.6)
            hint = f"; did you mean {_qualified(near[0])!r}?" if near else ""
            problems.append(f"{_qualified(key)}: unknown key{hint} (known keys are listed in README.md)")
    context = {"stack": stack, "region": region, "secret_keys": secret_keys}
    sections: dict[str, ConfigModel] = {}
    for attribute, model in SECTIONS.items():
        data = {key: value for key, value in values.items() if KEYS.get(key, ("", ""))[0] == attribute}
        try:
            sections[attribute] = model.model_validate(data, context=context)
        except ValidationError as error:
            problems.extend(describe(error, model))
    problems.extend(_between_sections(sections))
    if problems:
        raise ConfigError(problems)
    return StackConfig(stack=stack.lower(), region=str(region), **sections)  # type: ignore[arg-type]


def _region_and_stack_problems(region: str | None, stack: str) -> list[str]:
    problems = []
    if region is None:
        problems.append("aws:region: required (e.g. `pulumi config set aws:region eu-west-1`)")
    elif not _REGION.match(region):
        problems.append(f"aws:region: {region!r} is not an AWS region name (like eu-west-1)")
    if not _STACK.match(stack.lower()):
        problems.append(
            f"stack name {stack!r}: use lower-case letters, digits and hyphens (it is part of resource names)"
        )
    return problems


def _between_sections(sections: Mapping[str, ConfigModel]) -> list[str]:
    """Rules that need two sections: checked when both are valid."""
    return [*_gitlab_and_upload(sections), *_build_and_container(sections), *_network_and_load_balancer(sections)]


def _network_and_load_balancer(sections: Mapping[str, ConfigModel]) -> list[str]:
    network, balancer = sections.get("network"), sections.get("load_balancer")
    if not isinstance(network, NetworkConfig) or not isinstance(balancer, LoadBalancerConfig):
        return []
    if not network.creates_vpc:
        return []
    # The created VPC's network ACL lets no one on the internet reach SSH or RDP (FSBP EC2.21): a listener there
    # would be unreachable. https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-21
    return [
        f"{_qualified(key)}: {port} is the {ADMIN_PORTS[port]} port, which the created VPC's network ACL keeps "
        "closed to the internet (FSBP EC2.21); use another port"
        for key, port in (("listenerPort", balancer.production_port), ("testListenerPort", balancer.test_listener_port))
        if port in ADMIN_PORTS
    ]


def _build_and_container(sections: Mapping[str, ConfigModel]) -> list[str]:
    build, container = sections.get("build"), sections.get("container")
    if not isinstance(build, BuildConfig) or not isinstance(container, ContainerConfig) or not build.build_image:
        return []
    built_for = curated_image_architecture(build.build_image)
    if built_for is None or built_for == container.cpu_architecture:
        return []
    # An aarch64 curated image runs only on ARM_CONTAINER, an x86_64 one only on LINUX_CONTAINER, and docker
    # builds for the host's architecture: the image would not match the tasks.
    # https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-available.html
    return [
        f"{_qualified('buildImage')}: {build.build_image!r} is a {built_for} image, but "
        f"{_qualified('cpuArchitecture')} is {container.cpu_architecture!r}: use an image for "
        f"{container.cpu_architecture} (e.g. {BUILD_ENVIRONMENTS[container.cpu_architecture].image!r}) or leave "
        "buildImage unset"
    ]


def _gitlab_and_upload(sections: Mapping[str, ConfigModel]) -> list[str]:
    gitlab, upload = sections.get("gitlab"), sections.get("upload")
    if not isinstance(gitlab, GitLabConfig) or not isinstance(upload, UploadConfig):
        return []
    problems = []
    if upload.upload_identity == "oidc" and not gitlab.project_is_path:
        problems.append(
            f"{_qualified('gitlabProject')}: {gitlab.gitlab_project!r}: uploadIdentity 'oidc' needs the project's path "
            "(group/app), not its numeric id: GitLab's ID token names the project by path, and the role trusts "
            "exactly that path"
        )
    issuer = gitlab.gitlab_url.removeprefix("https://")
    if upload.oidc_issuer is not None and upload.oidc_issuer != issuer:
        problems.append(
            f"{_qualified('oidcProviderArn')}: the provider is for {upload.oidc_issuer!r}, but GitLab's ID tokens "
            f"come from {issuer!r} (gitlabUrl)"
        )
    return problems


# --- Problems in words --------------------------------------------------------------------------------------


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    """The values of the ``Literal`` inside a field's annotation (through ``Annotated`` and ``| None``)."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    for inner in typing.get_args(annotation):
        found = _literal_values(inner)
        if found:
            return found
    return ()


def describe(error: ValidationError, model: type[ConfigModel]) -> list[str]:
    """A section's validation errors as lines naming the key, the bad value and what is allowed (never pydantic's
    own wording)."""
    fields = {key_of(name, info): info for name, info in model.model_fields.items()}
    found: list[str] = []
    for item in error.errors(include_url=False):
        key = str(item["loc"][0]) if item["loc"] else ""
        found.extend(line for line in _lines(item, key, fields.get(key)) if line not in found)
    return found


def _lines(item: Any, key: str, info: FieldInfo | None) -> list[str]:
    cause = (item.get("ctx") or {}).get("error")
    allowed = ", ".join(map(str, _literal_values(info.annotation))) if info is not None else ""
    if isinstance(cause, KeyProblems):
        return [f"{_qualified(k)}: {message}" for k, message in cause.problems]
    if item["type"] == "missing":
        what = field_extra(info).get("x-required") if info is not None else None
        return [f"{_qualified(key)}: required: {what or (info.description if info else '')}"]
    if item["type"] == "literal_error":
        return [f"{_qualified(key)}: {item['input']!r} is not allowed; allowed: {allowed}"]
    if cause is not None:
        # A value that did not even parse (``cpu: abc``) still learns what is allowed.
        return [f"{_qualified(key)}: {cause}" + (f"; allowed: {allowed}" if allowed else "")]
    expected = info.description if info is not None else "a valid value"
    return [f"{_qualified(key)}: {item['input']!r} is not valid here: expected {expected}"]


# --- Keys of other namespaces -------------------------------------------------------------------------------

# The program's providers are explicit (``aws.Provider(region=...)``, ``gitlab.Provider(...)``): a provider's own
# config keys in the stack file (``aws:profile``, ``gitlab:token``) configure only default providers, which the
# program never uses, so they would be ignored without a word. Of other namespaces the program reads
# ``aws:region``; ``pulumi:`` keys belong to the engine.
READ_FOREIGN_KEYS = frozenset({"aws:region"})
ENGINE_NAMESPACES = frozenset({"pulumi"})
_PROVIDER_INSTEAD = {
    "aws": (
        "the program's AWS provider is explicit and takes only aws:region from the stack; credentials and roles "
        "come from the environment (AWS_PROFILE, AWS_ROLE_ARN, ...)"
    ),
    "gitlab": (
        f"the program's GitLab provider is explicit and takes no gitlab: key; set {PROJECT}:gitlabUrl and "
        f"{PROJECT}:gitlabToken instead"
    ),
}


def _provider_keys(namespace: str) -> tuple[str, ...]:
    """The config keys a provider package declares (its ``ProviderArgs`` properties, as the engine names them)."""
    module = importlib.import_module({"aws": "pulumi_aws", "gitlab": "pulumi_gitlab"}[namespace])
    members = inspect.getmembers(module.ProviderArgs, lambda m: isinstance(m, property))
    return tuple(sorted(getattr(p.fget, "_pulumi_name", name) for name, p in members))


def foreign_key_problems(keys: Iterable[str]) -> list[str]:
    """Problems with namespaced keys outside ``PROJECT``: misspelt namespaces, unknown or unused provider keys."""
    problems = []
    for key in sorted(keys):
        namespace, _, name = key.partition(":")
        if key in READ_FOREIGN_KEYS or namespace in ENGINE_NAMESPACES:
            continue
        if namespace in _PROVIDER_INSTEAD:
            known = _provider_keys(namespace)
            if name in known:
                problems.append(f"{key}: not read: {_PROVIDER_INSTEAD[namespace]}")
                continue
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean '{namespace}:{near[0]}'?" if near else ""
            problems.append(f"{key}: unknown key{hint}")
            continue
        if difflib.get_close_matches(namespace, [PROJECT], n=1, cutoff=0.75):
            near = difflib.get_close_matches(name, list(KEYS), n=1, cutoff=0.6)
            problems.append(
                f"{key}: unknown namespace {namespace!r}; did you mean {_qualified(near[0] if near else name)!r}?"
            )
            continue
        problems.append(
            f"{key}: unknown namespace {namespace!r}: the program reads {PROJECT}:* keys and aws:region only"
        )
    return problems


# --- The running program's config ---------------------------------------------------------------------------


def load_stack_config() -> StackConfig:
    """Reads the running program's config (``pulumi up`` or mocks) and validates it."""
    import pulumi

    from components import pulumi_internals

    keys = pulumi_internals.stack_config_keys()
    prefix = f"{PROJECT}:"
    config = pulumi.Config(PROJECT)
    values: dict[str, str] = {}
    for full_key in keys:
        if full_key.startswith(prefix):
            raw = config.get(full_key[len(prefix) :])
            if raw is not None:
                values[full_key[len(prefix) :]] = raw
    secret = frozenset(k[len(prefix) :] for k, is_secret in keys.items() if is_secret and k.startswith(prefix))
    return parse_config(
        values,
        stack=pulumi.get_stack(),
        region=pulumi.Config("aws").get("region"),
        secret_keys=secret,
        other_keys=[k for k in keys if ":" in k and not k.startswith(prefix)],
    )
