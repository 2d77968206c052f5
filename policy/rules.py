"""The security rules of the policy pack, as plain functions over resources.

A *resource rule* looks at one resource: its type token and its property dict, with the provider's camelCase
names (``dropInvalidHeaderFields``), exactly what ``offline.engine``'s ``Registration`` gives as ``.type`` and
``.props`` and what pulumi-policy's ``ResourceValidationArgs`` gives as ``resource_type`` and ``props``. It
returns one message per problem found (none when the resource complies or the rule does not apply to it).

A *stack rule* needs several resources at once, because AWS spreads one concern over separate resources (a
bucket and its public-access block, a security-group rule and the listeners of the ALB it belongs to). It
takes every ``Resource`` of the stack and returns ``Violation``s naming the offending resource.

Nothing here imports Pulumi: the pack's ``__main__.py`` only adapts pulumi-policy's arguments to these
functions, and the tests call them directly.

Values Pulumi cannot know yet during ``pulumi preview`` (an ARN of a bucket not yet created, a policy document
built from it) arrive as ``UNKNOWN``. A rule never reports a violation from a value it cannot see: it judges
what is known, and ``pulumi up`` (which runs the pack again with every value resolved, before each resource is
created) judges the rest.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

try:
    from policy import resource_types as rt
except ImportError:  # run by the Pulumi CLI from the pack's folder, where it is a sibling module
    import resource_types as rt  # type: ignore[no-redef]

# --- Values, resources, violations -----------------------------------------------------------------


class Unknown:
    """A value Pulumi computes only when the resource is created (seen during ``pulumi preview``)."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = Unknown()


def has_unknown(value: Any) -> bool:
    """Whether the value is, or contains, a value not known yet."""
    if value is UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_unknown(v) for v in value)
    return False


REFERENCE_KEYS = ("id", "arn", "name", "bucket", "defaultNetworkAclId", "defaultSecurityGroupId")
"""Output properties other resources use to refer to a resource: its id, ARN, physical name, and for a VPC the ids
of its default network ACL and security group (which ``DefaultNetworkAcl``/``DefaultSecurityGroup`` adopt)."""


@dataclass(frozen=True)
class Resource:
    """One resource of the stack, as the stack rules see it."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    ids: frozenset[str] = frozenset()
    """What other resources use to refer to this one: its id, ARN, physical name (when known)."""
    property_dependencies: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """URNs each property depends on. During a preview, a reference to a resource not created yet is
    unknown as a value but known as a dependency, so references are matched through these too."""
    dependencies: frozenset[str] = frozenset()
    """URNs of every resource this one depends on: its properties' dependencies and its ``dependsOn``."""


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    urn: str = ""
    """The offending resource (empty: the stack as a whole)."""

    def __str__(self) -> str:
        return f"[{self.rule}] {self.urn or 'stack'}: {self.message}"


ResourceCheck = Callable[[str, Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[Resource]], list[tuple[str, str]]]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    types: frozenset[str]
    """The resource types the rule looks at; every other type is not its concern."""
    check: ResourceCheck

    def __call__(self, resource_type: str, props: Mapping[str, Any]) -> list[str]:
        if resource_type not in self.types:
            return []
        return self.check(resource_type, props)


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck

    def __call__(self, resources: Sequence[Resource]) -> list[Violation]:
        return [Violation(self.name, message, urn) for urn, message in self.check(resources)]


# --- Resource types ----------------------------------------------------------------------------------

# pulumi-aws v7 still accepts the deprecated *V2 names and the aws.alb aliases of aws.lb; a rule keyed on the
# current token alone would miss a resource declared with the old one.
BUCKETS = frozenset({rt.S3_BUCKET, rt.S3_BUCKET_V2})
BUCKET_PUBLIC_ACCESS_BLOCK = rt.S3_BUCKET_PUBLIC_ACCESS_BLOCK
ACCOUNT_PUBLIC_ACCESS_BLOCK = rt.S3_ACCOUNT_PUBLIC_ACCESS_BLOCK
BUCKET_ENCRYPTION = frozenset({rt.S3_BUCKET_ENCRYPTION, rt.S3_BUCKET_ENCRYPTION_V2})
BUCKET_POLICY = rt.S3_BUCKET_POLICY
BUCKET_VERSIONING = frozenset({rt.S3_BUCKET_VERSIONING, rt.S3_BUCKET_VERSIONING_V2})
BUCKET_LOGGING = frozenset({rt.S3_BUCKET_LOGGING, rt.S3_BUCKET_LOGGING_V2})
TRAIL = rt.CLOUDTRAIL_TRAIL
PIPELINE = rt.CODEPIPELINE_PIPELINE
ECR_REPOSITORY = rt.ECR_REPOSITORY
ECR_LIFECYCLE_POLICY = rt.ECR_LIFECYCLE_POLICY
CODEBUILD_PROJECT = rt.CODEBUILD_PROJECT
TASK_DEFINITION = rt.ECS_TASK_DEFINITION
LAMBDA_FUNCTION = rt.LAMBDA_FUNCTION
LOG_GROUP = rt.LOG_GROUP
LOAD_BALANCERS = frozenset({rt.LB_LOAD_BALANCER, rt.ALB_LOAD_BALANCER})
LISTENERS = frozenset({rt.LB_LISTENER, rt.ALB_LISTENER})
SECURITY_GROUP = rt.EC2_SECURITY_GROUP
SECURITY_GROUP_RULE = rt.EC2_SECURITY_GROUP_RULE
SECURITY_GROUP_INGRESS_RULE = rt.VPC_SECURITY_GROUP_INGRESS_RULE
DEPLOYMENT_GROUP = rt.CODEDEPLOY_DEPLOYMENT_GROUP
ECS_SERVICE = rt.ECS_SERVICE
ECS_CLUSTER = rt.ECS_CLUSTER
ECS_CLUSTER_CAPACITY_PROVIDERS = rt.ECS_CLUSTER_CAPACITY_PROVIDERS
LISTENER_RULES = frozenset({rt.LB_LISTENER_RULE, rt.ALB_LISTENER_RULE})
SNS_TOPIC = rt.SNS_TOPIC
KMS_KEY = rt.KMS_KEY
METRIC_ALARM = rt.METRIC_ALARM
COMPOSITE_ALARM = rt.COMPOSITE_ALARM
ALARMS = frozenset({METRIC_ALARM, COMPOSITE_ALARM})
VPC = rt.EC2_VPC
DEFAULT_SECURITY_GROUP = rt.EC2_DEFAULT_SECURITY_GROUP
DEFAULT_NETWORK_ACL = rt.EC2_DEFAULT_NETWORK_ACL
NETWORK_ACL = rt.EC2_NETWORK_ACL
NETWORK_ACL_RULE = rt.EC2_NETWORK_ACL_RULE
FLOW_LOG = rt.EC2_FLOW_LOG
GITLAB_VARIABLES = frozenset({rt.GITLAB_PROJECT_VARIABLE, rt.GITLAB_GROUP_VARIABLE, rt.GITLAB_INSTANCE_VARIABLE})
ACCESS_KEY = rt.IAM_ACCESS_KEY
TIME_ROTATING = rt.TIME_ROTATING

# Resources holding an IAM policy document, and the properties that hold it. KMS key policies are left out on
# purpose: in a key policy ``Resource: "*"`` means "this key", and AWS's default key policy grants ``kms:*`` to
# the account, so these rules would misread every key policy.
POLICY_DOCUMENTS: dict[str, tuple[str, ...]] = {
    rt.IAM_ROLE_POLICY: ("policy",),
    rt.IAM_USER_POLICY: ("policy",),
    rt.IAM_GROUP_POLICY: ("policy",),
    rt.IAM_POLICY: ("policy",),
    rt.IAM_ROLE: ("assumeRolePolicy", "inlinePolicies"),
    rt.S3_BUCKET_POLICY: ("policy",),
    rt.S3_BUCKET: ("policy",),
    rt.S3_BUCKET_V2: ("policy",),
    rt.ECR_REPOSITORY_POLICY: ("policy",),
    rt.SNS_TOPIC_POLICY: ("policy",),
    rt.SNS_TOPIC: ("policy",),
    rt.LOG_RESOURCE_POLICY: ("policyDocument",),
    rt.EVENT_BUS_POLICY: ("policy",),
}

# Resources attaching managed policies, and the properties holding the policy ARNs.
POLICY_ATTACHMENTS: dict[str, str] = {
    rt.IAM_ROLE_POLICY_ATTACHMENT: "policyArn",
    rt.IAM_USER_POLICY_ATTACHMENT: "policyArn",
    rt.IAM_GROUP_POLICY_ATTACHMENT: "policyArn",
    rt.IAM_POLICY_ATTACHMENT: "policyArn",
    rt.IAM_ROLE_POLICY_ATTACHMENTS_EXCLUSIVE: "policyArns",
    rt.IAM_USER_POLICY_ATTACHMENTS_EXCLUSIVE: "policyArns",
    rt.IAM_GROUP_POLICY_ATTACHMENTS_EXCLUSIVE: "policyArns",
    rt.IAM_ROLE: "managedPolicyArns",
}

# --- IAM: what may have ``Resource: "*"`` ------------------------------------------------------------

RESOURCE_STAR_ACTIONS: dict[str, str] = {
    # action: why AWS leaves no narrower Resource than "*" (the Service Authorization Reference lists no
    # resource type for it; tests/test_policy.py checks each entry against parliament's copy of it).
    "ecr:GetAuthorizationToken": "the registry login token is account-wide; ECR defines no resource for it",
    "ecr-public:GetAuthorizationToken": "the ECR Public login token is account-wide (pulling public base images)",
    "sts:GetServiceBearerToken": "needed with ecr-public:GetAuthorizationToken; STS defines no resource for it",
    "ecs:DescribeTaskDefinition": "ECS defines no resource type for describing task definitions",
    "ecs:ListTaskDefinitions": "a list call over the account; ECS defines no resource for it",
    "ecs:CreateTaskSet": "ECS defines no resource type for it; scope it with ecs:cluster/ecs:service conditions",
    "cloudwatch:PutMetricData": "metrics are not resources; scope it with the cloudwatch:namespace condition",
    "ec2:DescribeNetworkInterfaces": "EC2 Describe calls take no resource (CodeBuild in a VPC)",
    "ec2:DescribeSubnets": "EC2 Describe calls take no resource (CodeBuild in a VPC)",
    "ec2:DescribeSecurityGroups": "EC2 Describe calls take no resource (CodeBuild in a VPC)",
    "ec2:DescribeVpcs": "EC2 Describe calls take no resource (CodeBuild in a VPC)",
    "ec2:DescribeDhcpOptions": "EC2 Describe calls take no resource (CodeBuild in a VPC)",
    "elasticloadbalancing:DescribeTargetGroups": "ELB Describe calls take no resource (blue/green deployments)",
    "elasticloadbalancing:DescribeListeners": "ELB Describe calls take no resource (blue/green deployments)",
    "elasticloadbalancing:DescribeRules": "ELB Describe calls take no resource (blue/green deployments)",
    "elasticloadbalancing:DescribeTargetHealth": "ELB Describe calls take no resource (blue/green deployments)",
}
_RESOURCE_STAR_ACTIONS = {a.lower() for a in RESOURCE_STAR_ACTIONS}

# AWS managed policies that grant whole services (``service:*``) or everything: attaching one defeats the
# scoped inline policies this program writes.
_BROAD_MANAGED_POLICY = re.compile(
    r"^arn:aws[a-z-]*:iam::aws:policy/(?:[\w+=,.@-]+/)*"
    r"(AdministratorAccess|PowerUserAccess|[\w+=,.@-]*FullAccess[\w+=,.@-]*|[\w+=,.@-]*AdminAccess)$"
)

# --- Secrets in names ----------------------------------------------------------------------------

_CREDENTIAL_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "PRIVATE_KEY", "KEY")
NOT_CREDENTIAL_PARTS: dict[str, str] = {
    # name part containing KEY: why it names no secret
    "OBJECT_KEY": "an S3 object key is a path",
    "S3_KEY": "an S3 key is a path",
    "CACHE_KEY": "a cache key is a lookup name",
    "PUBLIC_KEY": "public key material is meant to be shared",
}
NOT_CREDENTIAL_SUFFIXES: dict[str, str] = {
    # name ending: why the value is a reference to a secret, not the secret
    "_SECRET_ARN": "a Secrets Manager ARN says where the secret is; reading it takes GetSecretValue",
    "_PARAMETER_NAME": "a Parameter Store name says where the value is; reading it takes GetParameter",
}


def looks_like_credential(name: str) -> bool:
    """Whether a variable name says it holds a credential (``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*``, ``*KEY*``)."""
    upper = name.upper().replace("-", "_")
    if upper.endswith(tuple(NOT_CREDENTIAL_SUFFIXES)):
        return False
    for part in NOT_CREDENTIAL_PARTS:
        upper = upper.replace(part, "")
    return any(word in upper for word in _CREDENTIAL_WORDS)


def _is_private_key(name: str) -> bool:
    upper = name.upper().replace("-", "_")
    return "PRIVATE_KEY" in upper or "SSH_KEY" in upper


# --- Helpers -----------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _document(value: Any) -> Any:
    """A policy document (or other JSON-in-a-string property) as data; ``None`` when it cannot be parsed."""
    if value is UNKNOWN or isinstance(value, Mapping | list):
        return value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def _statements(document: Any) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return []
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, Mapping)]


def _strings(value: Any) -> Iterator[str]:
    """Every known string inside a value (lists and maps walked through)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _get(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...``; a list along the way contributes its first element (a provider block)."""
    for key in path:
        if isinstance(value, list) and value:
            value = value[0]
        if not isinstance(value, Mapping):
            return UNKNOWN if value is UNKNOWN else None
        value = value.get(key)
    return value


def _refers_to(resource: Resource, prop: str, target: Resource) -> bool:
    """Whether ``resource.props[prop]`` refers to ``target``: by value, or by dependency when not known yet."""
    if target.ids and any(s in target.ids for s in _strings(resource.props.get(prop))):
        return True
    return bool(target.urn) and target.urn in resource.property_dependencies.get(prop, frozenset())


def _label(resource: Resource) -> str:
    return f"{resource.type.split(':')[-1]} {resource.name!r}"


def _of_type(resources: Sequence[Resource], types: Iterable[str]) -> list[Resource]:
    wanted = set(types)
    return [r for r in resources if r.type in wanted]


def _policy_documents(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(property label, parsed document) for every policy document the resource holds."""
    for prop in POLICY_DOCUMENTS.get(resource_type, ()):
        value = props.get(prop)
        if prop == "inlinePolicies":
            for i, inline in enumerate(_as_list(value)):
                if isinstance(inline, Mapping) and inline.get("policy") is not None:
                    yield f"inlinePolicies[{i}]", _document(inline.get("policy"))
        elif value is not None:
            yield prop, _document(value)


def _allow_statements(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for label, document in _policy_documents(resource_type, props):
        for i, statement in enumerate(_statements(document)):
            if statement.get("Effect") == "Allow":
                sid = statement.get("Sid")
                yield (f"{label} statement {sid!r}" if isinstance(sid, str) else f"{label} statement {i}"), statement


# --- Resource rules ---------------------------------------------------------------------------------


def iam_no_wildcard_actions(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No Allow statement grants every action (``*``), a whole service (``s3:*``), or all-but (``NotAction``)."""
    messages = []
    for label, document in _policy_documents(resource_type, props):
        if document is None:
            messages.append(f"{label} is not a JSON policy document, so it cannot be checked")
    for where, statement in _allow_statements(resource_type, props):
        if "NotAction" in statement:
            messages.append(f"{where} allows NotAction: it grants every action except those listed")
        for action in _as_list(statement.get("Action")):
            if isinstance(action, str) and (action == "*" or action.endswith(":*")):
                messages.append(f"{where} allows {action!r}: list the actions the principal needs")
    return messages


def iam_resource_star_only_for_unscopable_actions(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """``Resource: "*"`` only with actions AWS cannot scope to a resource (``RESOURCE_STAR_ACTIONS``)."""
    messages = []
    for where, statement in _allow_statements(resource_type, props):
        resources = _as_list(statement.get("Resource"))
        if "NotResource" in statement:
            messages.append(f"{where} allows NotResource: it grants every resource except those listed")
            continue
        if "*" not in resources:
            continue
        actions = [a for a in _as_list(statement.get("Action")) if isinstance(a, str)]
        scopable = sorted(a for a in actions if a.lower() not in _RESOURCE_STAR_ACTIONS)
        if scopable:
            messages.append(
                f'{where} allows {", ".join(scopable)} on Resource "*": scope them to the ARNs they act on '
                f'(only {len(RESOURCE_STAR_ACTIONS)} actions AWS cannot scope may use "*", see RESOURCE_STAR_ACTIONS)'
            )
    return messages


def iam_no_wildcard_principal(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No Allow statement (trust, bucket, repository, topic policy...) lets anyone (``*``) in."""
    messages = []
    for where, statement in _allow_statements(resource_type, props):
        if "NotPrincipal" in statement:
            messages.append(f"{where} allows NotPrincipal: it lets in everyone except those listed")
        principal = statement.get("Principal")
        if principal == "*" or "*" in _strings(principal):
            messages.append(f"{where} allows Principal '*': name the accounts, roles or services instead")
    return messages


def iam_no_broad_managed_policies(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No AWS managed policy granting a whole service or everything (``*FullAccess``, ``AdministratorAccess``)."""
    prop = POLICY_ATTACHMENTS.get(resource_type)
    if prop is None:
        return []
    return [
        f"attaches {arn}, which grants whole services; write a policy scoped to the resources used"
        for arn in _strings(props.get(prop))
        if _BROAD_MANAGED_POLICY.match(arn)
    ]


def ecr_scan_on_push(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    scan = _get(props, "imageScanningConfiguration", "scanOnPush")
    if scan is UNKNOWN or scan is True:
        return []
    return ["does not scan images on push: set imageScanningConfiguration.scanOnPush to true"]


def _plaintext_credentials(variables: Any, where: str) -> list[str]:
    messages = []
    for variable in _as_list(variables):
        if not isinstance(variable, Mapping):
            continue
        name = variable.get("name")
        # CodeBuild's default type is PLAINTEXT; PARAMETER_STORE and SECRETS_MANAGER hold only a reference.
        kind = variable.get("type") or "PLAINTEXT"
        if isinstance(name, str) and kind == "PLAINTEXT" and looks_like_credential(name):
            messages.append(
                f"{where} sets {name!r} as PLAINTEXT; store it in Secrets Manager or Parameter Store and pass "
                "it with type SECRETS_MANAGER or PARAMETER_STORE"
            )
    return messages


def codebuild_no_plaintext_secrets(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No credential-like CodeBuild environment variable of type PLAINTEXT (project or pipeline action)."""
    if resource_type == CODEBUILD_PROJECT:
        return _plaintext_credentials(_get(props, "environment", "environmentVariables"), "the build environment")
    messages = []
    for stage in _as_list(props.get("stages")):
        for action in _as_list(_get(stage, "actions")):
            if not isinstance(action, Mapping) or action.get("provider") != "CodeBuild":
                continue
            variables = _document(_get(action, "configuration", "EnvironmentVariables"))
            if isinstance(variables, list):
                messages += _plaintext_credentials(variables, f"pipeline action {action.get('name')!r}")
    return messages


def _containers(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A task definition's container definitions (a JSON string in the provider's ``containerDefinitions``);
    none while the string is not known."""
    containers = _document(props.get("containerDefinitions"))
    return [c for c in containers if isinstance(c, Mapping)] if isinstance(containers, list) else []


def _container_label(container: Mapping[str, Any]) -> str:
    return f"container {container.get('name')!r}"


def ecs_no_secrets_in_environment(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No credential-like name in a container's ``environment`` (visible to anyone who can describe the task)."""
    messages = []
    for container in _containers(props):
        for variable in _as_list(container.get("environment")):
            name = variable.get("name") if isinstance(variable, Mapping) else None
            if isinstance(name, str) and looks_like_credential(name):
                messages.append(
                    f"{_container_label(container)} has {name!r} in its environment; pass it in "
                    "`secrets` (valueFrom a Secrets Manager or Parameter Store ARN)"
                )
    return messages


def fsbp_ecs_5_read_only_root_filesystem(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """ECS.5: every container of a task definition has read-only access to its root filesystem. The control
    fails a container whose ``readonlyRootFilesystem`` is false, which is ECS's default when it is left out.
    https://docs.aws.amazon.com/securityhub/latest/userguide/ecs-controls.html#ecs-5
    https://docs.aws.amazon.com/config/latest/developerguide/ecs-containers-readonly-access.html
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html"""
    return [
        f"{_container_label(c)} can write to its root filesystem: set readonlyRootFilesystem to true and give it "
        "writable scratch space only where it writes (a tmpfs or a volume)"
        for c in _containers(props)
        if c.get("readonlyRootFilesystem") not in (True, UNKNOWN)
    ]


def _is_root(user: str) -> bool:
    """Whether a container ``user`` (``user``, ``uid``, ``user:group``, ``uid:gid``...) is the root user."""
    name = user.split(":", 1)[0].strip().lower()
    return name in ("", "root", "0")


def fsbp_ecs_20_non_root_user(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """ECS.20: every container of a Linux task definition names a non-root ``user``. The control fails a
    container without ``user`` (it then runs as the image's user, root unless the image says otherwise) or with
    the root user (``root`` or uid ``0``). Task definitions of another operating system family are ECS.21's.
    https://docs.aws.amazon.com/securityhub/latest/userguide/ecs-controls.html#ecs-20
    https://docs.aws.amazon.com/config/latest/developerguide/ecs-task-definition-linux-user-non-root.html"""
    family = _get(props, "runtimePlatform", "operatingSystemFamily")
    if family is UNKNOWN or (isinstance(family, str) and family != "LINUX"):
        return []
    messages = []
    for container in _containers(props):
        user = container.get("user")
        if user is UNKNOWN:
            continue
        if not isinstance(user, str) or not user.strip():
            messages.append(
                f"{_container_label(container)} names no user, so it runs as the image's user (root unless the "
                "image says otherwise): set user to a non-root uid (uid:gid)"
            )
        elif _is_root(user):
            messages.append(f"{_container_label(container)} runs as root ({user!r}): set user to a non-root uid")
    return messages


def fsbp_ecs_12_container_insights(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """ECS.12: the cluster has Container Insights on (its ``containerInsights`` setting ``enabled``, or
    ``enhanced``, Container Insights with enhanced observability). A cluster that leaves the setting out takes the
    account's default when it is created, which the stack does not decide: the rule asks for it to be said.
    https://docs.aws.amazon.com/securityhub/latest/userguide/ecs-controls.html#ecs-12
    https://docs.aws.amazon.com/config/latest/developerguide/ecs-container-insights-enabled.html
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ClusterSetting.html"""
    settings = props.get("settings")
    if has_unknown(settings):
        return []
    values = [_get(s, "value") for s in _as_list(settings) if _get(s, "name") == "containerInsights"]
    if any(v in ("enabled", "enhanced") for v in values):
        return []
    shown = f"containerInsights is {values[0]!r}" if values else "it does not set containerInsights"
    return [f"has no Container Insights ({shown}): add the cluster setting containerInsights = enabled"]


def lambda_no_secrets_in_environment(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No credential-like name in a function's environment variables (part of the configuration GetFunction
    returns): AWS recommends Secrets Manager for tokens and keys, read at run time.
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html"""
    environment = props.get("environment")
    variables = environment.get("variables") if isinstance(environment, Mapping) else None
    if not isinstance(variables, Mapping):
        return []
    return [
        f"has {name!r} in its environment variables; keep the value in Secrets Manager or Parameter Store and "
        "pass the secret's ARN or name instead"
        for name in variables
        if isinstance(name, str) and looks_like_credential(name)
    ]


def log_group_retention(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    days = props.get("retentionInDays")
    if days is UNKNOWN or (isinstance(days, int | float) and days > 0):
        return []
    return ["keeps logs forever: set retentionInDays"]


def alb_drops_invalid_headers(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    kind = props.get("loadBalancerType") or "application"
    drop = props.get("dropInvalidHeaderFields")
    if kind != "application" or drop is UNKNOWN or drop is True:
        return []
    return ["forwards invalid HTTP header fields: set dropInvalidHeaderFields to true (request smuggling)"]


def gitlab_credentials_masked_protected(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Credential variables are masked (kept out of job logs) and protected (protected branches/tags only).

    A private key cannot be masked (GitLab masks only single-line values), so it need only be protected.
    """
    key = props.get("key")
    if not isinstance(key, str) or not looks_like_credential(key):
        return []
    messages = []
    if props.get("protected") not in (True, UNKNOWN):
        messages.append(f"{key!r} is not protected: any branch's pipeline could read it")
    if not _is_private_key(key) and props.get("masked") not in (True, UNKNOWN) and props.get("hidden") is not True:
        messages.append(f"{key!r} is not masked: a job that prints it leaks it into the job log")
    return messages


# The ELB policies that negotiate TLS 1.3 and accept nothing older than TLS 1.2. ``ELBSecurityPolicy-TLS13-1-0-*``
# and ``-1-1-*`` also offer TLS 1.3 but still accept TLS 1.0 / 1.1, which RFC 8996 deprecates.
_TLS13_POLICY = re.compile(r"^ELBSecurityPolicy-TLS13-1-[23]-")


def https_listener_tls13(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """An HTTPS listener uses a TLS 1.3 policy (TLS 1.2 at the oldest) and has a certificate."""
    protocol = props.get("protocol")
    if not isinstance(protocol, str) or protocol.upper() != "HTTPS":
        return []
    messages = []
    policy = props.get("sslPolicy")
    if policy is not UNKNOWN and not (isinstance(policy, str) and _TLS13_POLICY.match(policy)):
        shown = f"uses TLS policy {policy!r}" if policy else "sets no sslPolicy (the ELB default may change)"
        messages.append(
            f"{shown}: use an ELBSecurityPolicy-TLS13-1-2-* or -1-3-* policy (TLS 1.3, nothing older than 1.2)"
        )
    certificate = props.get("certificateArn")
    if certificate is not UNKNOWN and not (isinstance(certificate, str) and certificate):
        messages.append("has no certificateArn: an HTTPS listener needs a default (ACM) certificate")
    return messages


def sns_topic_encrypted(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    key = props.get("kmsMasterKeyId")
    if key is UNKNOWN or (isinstance(key, str) and key):
        return []
    return [
        "is not encrypted at rest: set kmsMasterKeyId (a customer managed key whose policy lets the services "
        "that publish to the topic, such as CloudWatch or EventBridge, use it)"
    ]


def kms_key_rotation(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A symmetric encryption key with key material KMS generates rotates it (the only keys KMS can rotate)."""
    spec = props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    usage = props.get("keyUsage") or "ENCRYPT_DECRYPT"
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        return []
    if props.get("customKeyStoreId") or props.get("xksKeyId"):
        return []
    rotation = props.get("enableKeyRotation")
    if rotation is UNKNOWN or rotation is True:
        return []
    return ["does not rotate its key material: set enableKeyRotation to true"]


# Condition keys that EventBridge's KMS requests to an encrypted SNS topic never carry (SNS developer guide,
# https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services): a key
# statement for events.amazonaws.com that requires one of them never matches, and every event is dropped.
EVENTBRIDGE_ABSENT_KEYS = frozenset({"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid", "aws:sourceorgpaths"})


def _condition_keys(statement: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    condition = statement.get("Condition")
    if isinstance(condition, Mapping):
        for pairs in condition.values():
            if isinstance(pairs, Mapping):
                keys.update(str(k).lower() for k in pairs)
    return keys


def kms_eventbridge_grant_usable(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A key policy granting EventBridge the key does not condition the grant on keys EventBridge never sends."""
    document = _document(props.get("policy"))
    if document is UNKNOWN or document is None:
        return []
    messages = []
    for statement in _statements(document):
        principal = statement.get("Principal")
        services = _as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
        if statement.get("Effect") != "Allow" or "events.amazonaws.com" not in services:
            continue
        absent = sorted(_condition_keys(statement) & EVENTBRIDGE_ABSENT_KEYS)
        if absent:
            sid = statement.get("Sid") or "a statement"
            messages.append(
                f"{sid} grants events.amazonaws.com the key only under {', '.join(absent)}, which EventBridge's KMS "
                "requests never carry: every event to the encrypted topic is dropped. Grant EventBridge without them "
                "and limit publishers in the topic policy."
            )
    return messages


def codebuild_image_matches_environment_type(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A CodeBuild curated image runs on the environment type of its architecture: an aarch64 image
    (``aws/codebuild/amazonlinux-aarch64-...``) only on ``ARM_*`` types, an x86_64 one only on the others; the
    other pairing fails when the build starts. Images outside ``aws/codebuild/`` are not judged.
    https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-available.html"""
    image, kind = _get(props, "environment", "image"), _get(props, "environment", "type")
    if not isinstance(image, str) or not isinstance(kind, str) or not image.startswith("aws/codebuild/"):
        return []
    if image.startswith("aws/codebuild/windows"):
        return []
    arm_image, arm_type = "aarch64" in image, kind.startswith("ARM_")
    if arm_image == arm_type:
        return []
    want = "an ARM_* type (ARM_CONTAINER)" if arm_image else "an x86_64 type (LINUX_CONTAINER)"
    return [
        f"environment image {image!r} is built for {'aarch64' if arm_image else 'x86_64'}: it needs {want}, not {kind}"
    ]


def blue_green_rolls_back(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A blue/green deployment that fails, or trips an alarm, rolls back by itself: a CodeDeploy group rolls back
    on failure (and on its alarms when it has some); an ECS-native blue/green service rolls back on its alarms.
    https://docs.aws.amazon.com/codedeploy/latest/userguide/deployments-rollback-and-redeploy.html
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
    """
    if resource_type == DEPLOYMENT_GROUP:
        rollback = props.get("autoRollbackConfiguration")
        if rollback is UNKNOWN:
            return []
        events = set(_strings(_get(rollback, "events")))
        problems = []
        if _get(rollback, "enabled") is not True or "DEPLOYMENT_FAILURE" not in events:
            problems.append("autoRollbackConfiguration does not roll back a failed deployment (DEPLOYMENT_FAILURE)")
        if _get(props.get("alarmConfiguration"), "enabled") is True and "DEPLOYMENT_STOP_ON_ALARM" not in events:
            problems.append("its alarms stop a deployment without rolling it back (DEPLOYMENT_STOP_ON_ALARM)")
        return problems
    controller = _get(props.get("deploymentController"), "type")
    strategy = _get(props.get("deploymentConfiguration"), "strategy")
    alarms = props.get("alarms")
    if controller != "ECS" or strategy not in ("BLUE_GREEN", "CANARY", "LINEAR") or alarms in (None, UNKNOWN):
        return []
    if _get(alarms, "enable") is True and _get(alarms, "rollback") is not True:
        return ["its deployment alarms are enabled without rollback: a failing version stays in production"]
    return []


def fsbp_cloudtrail_2_encrypted(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CloudTrail.2: a trail encrypts its log files with a KMS key (SSE-KMS); the control passes when the
    trail's ``KmsKeyId`` is set.
    https://docs.aws.amazon.com/securityhub/latest/userguide/cloudtrail-controls.html#cloudtrail-2
    The key's policy must let CloudTrail use it for the trail, or CloudTrail delivers no log file:
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-kms-key-policy-for-cloudtrail.html"""
    key = props.get("kmsKeyId")
    if key is UNKNOWN or (isinstance(key, str) and key):
        return []
    return [
        "does not encrypt its log files with a KMS key: set kmsKeyId to a customer managed key whose policy lets "
        "CloudTrail use it for this trail (SSE-KMS)"
    ]


def fsbp_cloudtrail_5_cloudwatch_logs(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CloudTrail.5: a trail delivers its events to CloudWatch Logs; the control fails when the trail's
    ``CloudWatchLogsLogGroupArn`` is empty.
    https://docs.aws.amazon.com/securityhub/latest/userguide/cloudtrail-controls.html#cloudtrail-5
    CloudTrail writes through a role it assumes, allowed to create the group's streams and put events there:
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/send-cloudtrail-events-to-cloudwatch-logs.html"""
    group = props.get("cloudWatchLogsGroupArn")
    if group is UNKNOWN or (isinstance(group, str) and group):
        return []
    return [
        "does not deliver its events to CloudWatch Logs: set cloudWatchLogsGroupArn (the log group's ARN with "
        "':*') and cloudWatchLogsRoleArn (a role CloudTrail assumes, allowed to write to that group)"
    ]


# --- FSBP IAM.2: permissions through groups, not on users ----------------------------------------------------

# Resources that give an IAM user a policy of its own: (the property naming the user or users, the property
# listing what they give, ``None`` when the resource is itself one policy). An exclusive attachment or inline
# policy list that is empty gives nothing, nor does a PolicyAttachment to no user.
USER_POLICY_GRANTS: dict[str, tuple[str, str | None]] = {
    rt.IAM_USER_POLICY: ("user", None),
    rt.IAM_USER_POLICY_ATTACHMENT: ("user", None),
    rt.IAM_USER_POLICY_ATTACHMENTS_EXCLUSIVE: ("userName", "policyArns"),
    rt.IAM_USER_POLICIES_EXCLUSIVE: ("userName", "policyNames"),
    rt.IAM_POLICY_ATTACHMENT: ("users", "users"),
}


def fsbp_iam_2_no_user_policies(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """IAM.2: IAM users have no policies attached, inline or managed; they take their permissions from groups
    (or assume roles).

    FSBP control: https://docs.aws.amazon.com/securityhub/latest/userguide/iam-controls.html#iam-2 (AWS Config
    rule ``iam-user-no-policies-check``: NON_COMPLIANT if a policy is attached to a user,
    https://docs.aws.amazon.com/config/latest/developerguide/iam-user-no-policies-check.html). Group policies:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_groups_manage_attach-policy.html
    """
    if resource_type not in USER_POLICY_GRANTS:
        return []
    user_prop, given_prop = USER_POLICY_GRANTS[resource_type]
    given = None if given_prop is None else props.get(given_prop)
    if given is UNKNOWN or (given_prop is not None and not _as_list(given)):
        return []
    users = ", ".join(repr(u) for u in _strings(props.get(user_prop)))
    return [
        f"gives IAM user {users or '(not known yet)'} a policy of its own: put the user in a group and give the "
        "group the policy (GroupPolicy or GroupPolicyAttachment), or use a role"
    ]


# --- FSBP and cdk-nag controls of the build ------------------------------------------------------------------


def _exempts_every_tag(pattern: Any) -> bool:
    """Whether an ECR WILDCARD exclusion filter matches any tag: one made of wildcards only (``*``, ``**``)."""
    return isinstance(pattern, str) and bool(pattern) and set(pattern) == {"*"}


def fsbp_ecr_2_tag_immutability(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """ECR.2: a private repository's tags are immutable, so a tag names one image for good.

    FSBP control: https://docs.aws.amazon.com/securityhub/latest/userguide/ecr-controls.html#ecr-2
    ``IMMUTABLE`` complies. ``IMMUTABLE_WITH_EXCLUSION`` (since July 2025) keeps every tag immutable except those
    its exclusion filters match (WILDCARD filters, ``*`` matching any characters): it complies unless a filter
    exempts every tag (``*``), which would make it ``MUTABLE`` under another name. ``MUTABLE`` (the default) and
    ``MUTABLE_WITH_EXCLUSION`` do not.
    https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html
    https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageTagMutabilityExclusionFilter.html
    """
    mutability = props.get("imageTagMutability")
    if mutability is UNKNOWN:
        return []
    mutability = mutability or "MUTABLE"
    if mutability == "IMMUTABLE":
        return []
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        filters = props.get("imageTagMutabilityExclusionFilters")
        if has_unknown(filters):
            return []
        every = [
            f.get("filter") for f in _as_list(filters) if isinstance(f, Mapping) and _exempts_every_tag(f.get("filter"))
        ]
        if not every:
            return []
        return [
            f"exempts every tag from immutability (exclusion filter {every[0]!r}): list only the tags that must move "
            "(latest, release tags)"
        ]
    return [
        f"image tags are {mutability}: an image under a tag can be replaced; set imageTagMutability to IMMUTABLE, or "
        "IMMUTABLE_WITH_EXCLUSION with filters naming only the tags that must move"
    ]


# AWS managed keys are named alias/aws/<service> (https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html):
# as a key id ("alias/aws/s3") or inside an alias ARN ("arn:aws:kms:<region>:<account>:alias/aws/s3").
_AWS_MANAGED_KEY = re.compile(r"(^|:)alias/aws/")


def cdk_nag_cb4_codebuild_kms_key(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """AwsSolutions-CB4: a CodeBuild project encrypts its build output artifacts with a customer-managed KMS key.

    cdk-nag rule: https://github.com/cdklabs/cdk-nag/blob/main/RULES.md (AwsSolutions-CB4, "The CodeBuild
    project does not use an AWS KMS key for encryption"). Without ``encryptionKey`` CodeBuild uses the
    AWS-managed key for Amazon S3 (``aws/s3``), whose policy nobody can restrict or audit separately; naming that
    key explicitly (``alias/aws/s3``) is no better.
    https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-kms.html
    https://docs.aws.amazon.com/codebuild/latest/APIReference/API_Project.html (encryptionKey)
    """
    key = props.get("encryptionKey")
    if key is UNKNOWN:
        return []
    if not isinstance(key, str) or not key:
        return [
            "sets no encryptionKey: its output artifacts are encrypted with the AWS-managed aws/s3 key; name a "
            "customer-managed KMS key"
        ]
    if _AWS_MANAGED_KEY.search(key):
        return [f"encrypts its output artifacts with the AWS-managed key {key!r}: name a customer-managed KMS key"]
    return []


def fsbp_ecs_2_no_public_ip(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """ECS.2: an ECS service does not assign public IP addresses to its tasks automatically (the AWS Config rule
    ``ecs-service-assign-public-ip-disabled`` fails a service whose awsvpc configuration has ``assignPublicIp``
    ENABLED). https://docs.aws.amazon.com/securityhub/latest/userguide/ecs-controls.html#ecs-2"""
    assign = _get(props, "networkConfiguration", "assignPublicIp")
    if assign is True:
        return [
            "assigns its tasks public IP addresses (assignPublicIp true): run them in private subnets behind NAT "
            "or VPC endpoints"
        ]
    return []


def fsbp_elb_6_deletion_protection(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """ELB.6: an application, gateway or network load balancer has deletion protection enabled (the default is
    off). https://docs.aws.amazon.com/securityhub/latest/userguide/elb-controls.html#elb-6"""
    enabled = props.get("enableDeletionProtection")
    if enabled is UNKNOWN or enabled is True:
        return []
    return ["has no deletion protection (enableDeletionProtection is not true): one API call deletes it"]


def fsbp_codebuild_5_no_privileged_mode(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CodeBuild.5: a CodeBuild project environment does not run in privileged mode.

    FSBP control: https://docs.aws.amazon.com/securityhub/latest/userguide/codebuild-controls.html#codebuild-5
    Privileged mode gives the build container access to every device of the build host (it runs a Docker
    daemon). https://docs.aws.amazon.com/codebuild/latest/APIReference/API_ProjectEnvironment.html
    """
    privileged = _get(props, "environment", "privilegedMode")
    if privileged is True:
        return [
            "its environment runs in privileged mode (privilegedMode true): the build has access to every "
            "device of the host; turn it off unless the project builds Docker images"
        ]
    return []


_IAM_TYPES = frozenset(POLICY_DOCUMENTS)

RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "iam-no-wildcard-actions",
        'No IAM statement allows "*" or "service:*" actions (or NotAction).',
        _IAM_TYPES,
        iam_no_wildcard_actions,
    ),
    ResourceRule(
        "iam-resource-star-only-unscopable",
        'An IAM statement uses Resource "*" only for actions AWS cannot scope to a resource.',
        _IAM_TYPES,
        iam_resource_star_only_for_unscopable_actions,
    ),
    ResourceRule(
        "iam-no-wildcard-principal",
        'No policy (trust, bucket, repository...) allows the principal "*".',
        _IAM_TYPES,
        iam_no_wildcard_principal,
    ),
    ResourceRule(
        "iam-no-broad-managed-policies",
        "No AWS managed policy granting whole services (AdministratorAccess, *FullAccess) is attached.",
        frozenset(POLICY_ATTACHMENTS),
        iam_no_broad_managed_policies,
    ),
    ResourceRule(
        "ecr-scan-on-push",
        "Every ECR repository scans images on push.",
        frozenset({ECR_REPOSITORY}),
        ecr_scan_on_push,
    ),
    ResourceRule(
        "codebuild-no-plaintext-secrets",
        "No credential-like CodeBuild environment variable is PLAINTEXT.",
        frozenset({CODEBUILD_PROJECT, PIPELINE}),
        codebuild_no_plaintext_secrets,
    ),
    ResourceRule(
        "ecs-no-secrets-in-environment",
        "No credential-like variable in a task definition's container environment.",
        frozenset({TASK_DEFINITION}),
        ecs_no_secrets_in_environment,
    ),
    ResourceRule(
        "fsbp-ecs-5-read-only-root-filesystem",
        "ECS.5: every container of a task definition has a read-only root filesystem.",
        frozenset({TASK_DEFINITION}),
        fsbp_ecs_5_read_only_root_filesystem,
    ),
    ResourceRule(
        "fsbp-ecs-20-non-root-user",
        "ECS.20: every container of a Linux task definition runs as a non-root user.",
        frozenset({TASK_DEFINITION}),
        fsbp_ecs_20_non_root_user,
    ),
    ResourceRule(
        "fsbp-ecs-12-container-insights",
        "ECS.12: every ECS cluster has Container Insights on.",
        frozenset({ECS_CLUSTER}),
        fsbp_ecs_12_container_insights,
    ),
    ResourceRule(
        "lambda-no-secrets-in-environment",
        "No credential-like variable in a Lambda function's environment.",
        frozenset({LAMBDA_FUNCTION}),
        lambda_no_secrets_in_environment,
    ),
    ResourceRule(
        "log-group-retention",
        "Every CloudWatch log group has a retention period.",
        frozenset({LOG_GROUP}),
        log_group_retention,
    ),
    ResourceRule(
        "alb-drop-invalid-headers",
        "Every application load balancer drops invalid HTTP header fields.",
        LOAD_BALANCERS,
        alb_drops_invalid_headers,
    ),
    ResourceRule(
        "gitlab-credentials-masked-protected",
        "GitLab CI/CD variables holding credentials are masked and protected (private keys: protected).",
        GITLAB_VARIABLES,
        gitlab_credentials_masked_protected,
    ),
    ResourceRule(
        "https-listener-tls13",
        "Every HTTPS listener has a certificate and a TLS 1.3 policy accepting nothing older than TLS 1.2.",
        LISTENERS,
        https_listener_tls13,
    ),
    ResourceRule(
        "sns-topic-encrypted",
        "Every SNS topic is encrypted with a KMS key.",
        frozenset({SNS_TOPIC}),
        sns_topic_encrypted,
    ),
    ResourceRule(
        "kms-eventbridge-grant-usable",
        "A KMS key policy granting EventBridge does not require condition keys EventBridge never sends.",
        frozenset({KMS_KEY}),
        kms_eventbridge_grant_usable,
    ),
    ResourceRule(
        "blue-green-rolls-back",
        "A blue/green deployment that fails or trips an alarm rolls back (CodeDeploy groups, ECS-native services).",
        frozenset({DEPLOYMENT_GROUP, ECS_SERVICE}),
        blue_green_rolls_back,
    ),
    ResourceRule(
        "codebuild-image-matches-environment-type",
        "A CodeBuild curated image runs on the environment type of its CPU (aarch64 on ARM_CONTAINER).",
        frozenset({CODEBUILD_PROJECT}),
        codebuild_image_matches_environment_type,
    ),
    ResourceRule(
        "kms-key-rotation",
        "Every symmetric encryption KMS key rotates its key material.",
        frozenset({KMS_KEY}),
        kms_key_rotation,
    ),
    ResourceRule(
        "fsbp-cloudtrail-2-encrypted-at-rest",
        "CloudTrail.2: Every CloudTrail trail encrypts its log files with a KMS key (kmsKeyId).",
        frozenset({TRAIL}),
        fsbp_cloudtrail_2_encrypted,
    ),
    ResourceRule(
        "fsbp-cloudtrail-5-cloudwatch-logs",
        "CloudTrail.5: Every CloudTrail trail delivers its events to CloudWatch Logs (cloudWatchLogsGroupArn).",
        frozenset({TRAIL}),
        fsbp_cloudtrail_5_cloudwatch_logs,
    ),
    ResourceRule(
        "fsbp-iam-2-no-user-policies",
        "IAM.2: No IAM user has a policy of its own (inline or attached); users take permissions from groups.",
        frozenset(USER_POLICY_GRANTS),
        fsbp_iam_2_no_user_policies,
    ),
    ResourceRule(
        "fsbp-ecr-2-tag-immutability",
        "ECR.2: ECR private repositories have tag immutability (exclusion filters may not exempt every tag).",
        frozenset({ECR_REPOSITORY}),
        fsbp_ecr_2_tag_immutability,
    ),
    ResourceRule(
        "cdk-nag-cb4-codebuild-kms-key",
        "AwsSolutions-CB4: CodeBuild projects encrypt their output artifacts with a customer-managed KMS key.",
        frozenset({CODEBUILD_PROJECT}),
        cdk_nag_cb4_codebuild_kms_key,
    ),
    ResourceRule(
        "fsbp-ecs-2-no-public-ip",
        "ECS.2: no ECS service assigns public IP addresses to its tasks.",
        frozenset({ECS_SERVICE}),
        fsbp_ecs_2_no_public_ip,
    ),
    ResourceRule(
        "fsbp-elb-6-deletion-protection",
        "ELB.6: every load balancer has deletion protection enabled.",
        LOAD_BALANCERS,
        fsbp_elb_6_deletion_protection,
    ),
    ResourceRule(
        "fsbp-codebuild-5-no-privileged-mode",
        "CodeBuild.5: CodeBuild project environments do not have privileged mode enabled.",
        frozenset({CODEBUILD_PROJECT}),
        fsbp_codebuild_5_no_privileged_mode,
    ),
)


# --- Stack rules -------------------------------------------------------------------------------------


def _bucket_settings(resources: Sequence[Resource], bucket: Resource, types: Iterable[str]) -> list[Resource]:
    """The resources of ``types`` configuring ``bucket`` (through their ``bucket`` property)."""
    return [r for r in _of_type(resources, types) if _refers_to(r, "bucket", bucket)]


def _all_true(props: Mapping[str, Any], keys: Sequence[str]) -> bool | None:
    values = [props.get(k) for k in keys]
    if any(v is UNKNOWN for v in values):
        return None
    return all(v is True for v in values)


_PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def s3_public_access_blocked(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every bucket has a public-access block with all four flags (or the account has one)."""
    if any(
        _all_true(r.props, _PUBLIC_ACCESS_FLAGS) is not False
        for r in _of_type(resources, [ACCOUNT_PUBLIC_ACCESS_BLOCK])
    ):
        return []
    found = []
    for bucket in _of_type(resources, BUCKETS):
        blocks = _bucket_settings(resources, bucket, [BUCKET_PUBLIC_ACCESS_BLOCK])
        if not blocks:
            found.append((bucket.urn, f"{_label(bucket)} has no BucketPublicAccessBlock"))
        elif all(_all_true(b.props, _PUBLIC_ACCESS_FLAGS) is False for b in blocks):
            found.append((bucket.urn, f"{_label(bucket)}: set all of {', '.join(_PUBLIC_ACCESS_FLAGS)} to true"))
    return found


_SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")


def _sse_algorithms(rules: Any) -> list[Any]:
    return [_get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm") for rule in _as_list(rules)]


def s3_bucket_encrypted(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every bucket has a default server-side encryption configuration."""
    found = []
    for bucket in _of_type(resources, BUCKETS):
        algorithms = _sse_algorithms(_get(bucket.props, "serverSideEncryptionConfiguration", "rule"))
        for config in _bucket_settings(resources, bucket, BUCKET_ENCRYPTION):
            algorithms += _sse_algorithms(config.props.get("rules"))
        if not any(a is UNKNOWN or a in _SSE_ALGORITHMS for a in algorithms):
            found.append(
                (
                    bucket.urn,
                    f"{_label(bucket)} has no default encryption: add a BucketServerSideEncryptionConfiguration",
                )
            )
    return found


def _denies_insecure_transport(statement: Mapping[str, Any], bucket_arns: set[str]) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    principal = statement.get("Principal")
    if not (principal == "*" or _get(principal, "AWS") in ("*", ["*"])):
        return False
    if not any(a in ("*", "s3:*") for a in _as_list(statement.get("Action"))):
        return False
    condition = _get(statement.get("Condition"), "Bool", "aws:SecureTransport")
    if not any(str(v).lower() == "false" for v in _as_list(condition)):
        return False
    covered = set(_strings(statement.get("Resource")))
    if bucket_arns:
        return any(arn in covered and f"{arn}/*" in covered for arn in bucket_arns)
    return any(f"{r}/*" in covered for r in covered)


def s3_bucket_tls_only(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every bucket's policy denies requests not made over TLS (``aws:SecureTransport`` false)."""
    found = []
    for bucket in _of_type(resources, BUCKETS):
        documents = [_document(bucket.props.get("policy"))] if bucket.props.get("policy") is not None else []
        documents += [_document(p.props.get("policy")) for p in _bucket_settings(resources, bucket, [BUCKET_POLICY])]
        if any(d is UNKNOWN for d in documents):
            continue
        arns = {i for i in bucket.ids if i.startswith("arn:")} | {
            f"arn:aws:s3:::{i}" for i in bucket.ids if not i.startswith("arn:")
        }
        if not any(_denies_insecure_transport(s, arns) for d in documents for s in _statements(d)):
            found.append(
                (
                    bucket.urn,
                    f"{_label(bucket)} accepts plain-HTTP requests: its bucket policy needs a Deny of s3:* on the "
                    'bucket and its objects for Principal "*" when aws:SecureTransport is "false"',
                )
            )
    return found


def _source_buckets(resources: Sequence[Resource]) -> list[tuple[Resource, Resource]]:
    """(pipeline, bucket) for every bucket of the stack an S3 source action reads."""
    pairs = []
    buckets = _of_type(resources, BUCKETS)
    for pipeline in _of_type(resources, [PIPELINE]):
        for stage in _as_list(pipeline.props.get("stages")):
            for action in _as_list(_get(stage, "actions")):
                if _get(action, "category") != "Source" or _get(action, "provider") != "S3":
                    continue
                name = _get(action, "configuration", "S3Bucket")
                if name is UNKNOWN:
                    # Not known yet: the buckets the pipeline's stages depend on are the candidates.
                    deps = pipeline.property_dependencies.get("stages", frozenset())
                    pairs += [(pipeline, b) for b in buckets if b.urn in deps]
                else:
                    pairs += [(pipeline, b) for b in buckets if name in b.ids]
    return pairs


def s3_source_bucket_versioned(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """The bucket the pipeline's S3 source action reads is versioned (the action requires it)."""
    found = []
    for pipeline, bucket in _source_buckets(resources):
        statuses = [_get(bucket.props, "versioning", "enabled")]
        statuses += [
            _get(v.props, "versioningConfiguration", "status")
            for v in _bucket_settings(resources, bucket, BUCKET_VERSIONING)
        ]
        if not any(s in (True, "Enabled", UNKNOWN) for s in statuses):
            found.append(
                (
                    bucket.urn,
                    f"{_label(bucket)} is the S3 source of {_label(pipeline)} but is not versioned: add a "
                    'BucketVersioning with status "Enabled"',
                )
            )
    return found


def _set(value: Any) -> bool:
    """Whether a property holds a value, or one not known yet."""
    return value is UNKNOWN or (isinstance(value, str) and value != "")


def _receives_access_logs(resources: Sequence[Resource], bucket: Resource) -> bool:
    """Whether another bucket's server access logs go to ``bucket`` (a BucketLogging's or an inline
    ``logging.targetBucket``)."""
    if any(_refers_to(logging, "targetBucket", bucket) for logging in _of_type(resources, BUCKET_LOGGING)):
        return True
    return any(
        other is not bucket and bucket.ids & set(_strings(_get(other.props, "logging", "targetBucket")))
        for other in _of_type(resources, BUCKETS)
    )


def fsbp_s3_9_server_access_logging(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """S3.9: every bucket logs the requests made to it (S3 server access logging) into an access-log bucket: a
    ``BucketLogging`` refers to it with a ``targetBucket`` (or the bucket's inline ``logging`` does). A bucket that
    receives access logs is not judged: the control says the target bucket need not be logged, and its findings
    are to be suppressed (logging it into itself would log forever).
    https://docs.aws.amazon.com/securityhub/latest/userguide/s3-controls.html#s3-9
    How a target bucket admits the logs (bucket policy for logging.s3.amazonaws.com, SSE-S3, same account and
    region): https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html"""
    found = []
    for bucket in _of_type(resources, BUCKETS):
        targets = [_get(bucket.props, "logging", "targetBucket")]
        targets += [
            logging.props.get("targetBucket") for logging in _bucket_settings(resources, bucket, BUCKET_LOGGING)
        ]
        if any(_set(t) for t in targets) or _receives_access_logs(resources, bucket):
            continue
        found.append(
            (
                bucket.urn,
                f"{_label(bucket)} does not log the requests made to it: add a BucketLogging with this bucket as "
                "`bucket` and an access-log bucket as `targetBucket` (S3 server access logging)",
            )
        )
    return found


def ecr_lifecycle_policy(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every ECR repository has a lifecycle policy with at least one rule (old images expire)."""
    found = []
    for repository in _of_type(resources, [ECR_REPOSITORY]):
        policies = [p for p in _of_type(resources, [ECR_LIFECYCLE_POLICY]) if _refers_to(p, "repository", repository)]
        documents = [_document(p.props.get("policy")) for p in policies]
        if not any(d is UNKNOWN or (isinstance(d, Mapping) and _as_list(d.get("rules"))) for d in documents):
            found.append((repository.urn, f"{_label(repository)} has no lifecycle policy with a rule"))
    return found


def _ports(rule: Mapping[str, Any], protocol_key: str) -> tuple[str, range] | None:
    if has_unknown([rule.get(protocol_key), rule.get("fromPort"), rule.get("toPort")]):
        return None
    protocol = str(rule.get(protocol_key, "")).lower()
    low, high = rule.get("fromPort"), rule.get("toPort")
    if protocol in ("-1", "all"):
        return "all", range(0, 65536)
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    return {"6": "tcp", "17": "udp"}.get(protocol, protocol), range(int(low), int(high) + 1)


def _is_world(cidr: Any) -> bool:
    try:
        return isinstance(cidr, str) and ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def _world_ingress(resources: Sequence[Resource]) -> Iterator[tuple[Resource, list[Resource], tuple[str, range]]]:
    """(rule resource, its security groups in the stack, (protocol, ports)) for every ingress open to the world."""
    groups = _of_type(resources, [SECURITY_GROUP])
    for r in resources:
        if r.type == SECURITY_GROUP_INGRESS_RULE:
            entries = [(r.props, [r.props.get("cidrIpv4"), r.props.get("cidrIpv6")], "ipProtocol")]
            owners = [g for g in groups if _refers_to(r, "securityGroupId", g)]
        elif r.type == SECURITY_GROUP_RULE and r.props.get("type") == "ingress":
            cidrs = _as_list(r.props.get("cidrBlocks")) + _as_list(r.props.get("ipv6CidrBlocks"))
            entries = [(r.props, cidrs, "protocol")]
            owners = [g for g in groups if _refers_to(r, "securityGroupId", g)]
        elif r.type == SECURITY_GROUP:
            entries = [
                (e, _as_list(e.get("cidrBlocks")) + _as_list(e.get("ipv6CidrBlocks")), "protocol")
                for e in _as_list(r.props.get("ingress"))
                if isinstance(e, Mapping)
            ]
            owners = [r]
        else:
            continue
        for entry, cidrs, protocol_key in entries:
            if any(_is_world(c) for c in cidrs):
                ports = _ports(entry, protocol_key)
                if ports is not None:
                    yield r, owners, ports


def _test_listener_ids(resources: Sequence[Resource]) -> set[str]:
    """ARNs of the listeners that carry test traffic (they serve the version not yet released): a CodeDeploy
    deployment group's test traffic route, or the listener of an ECS service's blue/green test rule."""
    ids: set[str] = set()
    for group in _of_type(resources, [DEPLOYMENT_GROUP]):
        for pair in _as_list(_get(group.props, "loadBalancerInfo", "targetGroupPairInfo")):
            ids.update(_strings(_get(pair, "testTrafficRoute", "listenerArns")))
    test_rules: set[str] = set()
    for service in _of_type(resources, [ECS_SERVICE]):
        for balancer in _as_list(service.props.get("loadBalancers")):
            test_rules.update(_strings(_get(balancer, "advancedConfiguration", "testListenerRule")))
    for rule in _of_type(resources, LISTENER_RULES):
        if rule.ids & test_rules:
            ids.update(_strings(rule.props.get("listenerArn")))
    return ids


def security_group_world_ingress(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Only an ALB's security group, and only on that ALB's (production) listener ports, is open to the world."""
    balancers = [
        lb
        for lb in _of_type(resources, LOAD_BALANCERS)
        if (lb.props.get("loadBalancerType") or "application") == "application"
    ]
    listeners = _of_type(resources, LISTENERS)
    test_ids = _test_listener_ids(resources)
    found = []
    for rule, owners, (protocol, ports) in _world_ingress(resources):
        allowed: set[int] = set()
        for group in owners:
            for lb in balancers:
                if not _refers_to(lb, "securityGroups", group):
                    continue
                for listener in listeners:
                    port = listener.props.get("port")
                    if (
                        _refers_to(listener, "loadBalancerArn", lb)
                        and isinstance(port, int | float)
                        and not (listener.ids & test_ids)
                    ):
                        allowed.add(int(port))
        if protocol != "tcp" or not set(ports) <= allowed:
            shown = "all ports" if protocol == "all" else f"{protocol} {ports.start}-{ports.stop - 1}"
            where = (
                f"the ALB's production listener ports {sorted(allowed)}"
                if allowed
                else "an ALB's production listener ports"
            )
            found.append(
                (
                    rule.urn,
                    f"{_label(rule)} opens {shown} to the internet; only {where} may be open to 0.0.0.0/0 or ::/0",
                )
            )
    return found


def fsbp_ec2_2_default_security_group_closed(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """EC2.2: a VPC's default security group allows no inbound or outbound traffic. Every VPC the stack creates
    comes with one that AWS opens (inbound from itself, everything out), so the stack must adopt it with a
    ``DefaultSecurityGroup`` that has no rules; and no ``DefaultSecurityGroup`` of the stack may have any.
    https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-2
    https://docs.aws.amazon.com/vpc/latest/userguide/default-security-group.html"""
    defaults = _of_type(resources, [DEFAULT_SECURITY_GROUP])
    found = []
    for group in defaults:
        blocks = [group.props.get("ingress"), group.props.get("egress")]
        if has_unknown(blocks):
            continue
        inbound, outbound = (len(_as_list(b)) for b in blocks)
        if inbound or outbound:
            found.append(
                (
                    group.urn,
                    f"{_label(group)} has {inbound} inbound and {outbound} outbound rules: a default security group "
                    "must have none (FSBP EC2.2); give what needs access a security group of its own",
                )
            )
    for vpc in _of_type(resources, [VPC]):
        if not any(_refers_to(group, "vpcId", vpc) for group in defaults):
            found.append(
                (
                    vpc.urn,
                    f"{_label(vpc)}'s default security group keeps AWS's rules (inbound from itself, all outbound): "
                    "adopt it with an aws.ec2.DefaultSecurityGroup without rules (FSBP EC2.2)",
                )
            )
    return found


ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
"""The remote administration ports FSBP EC2.21 keeps closed to the internet."""


def _admin_ports_open_to_world(entry: Mapping[str, Any], action_key: str) -> list[int]:
    """The administration ports a network ACL entry allows from anywhere, over TCP, UDP or every protocol."""
    if entry.get(action_key) != "allow":
        return []
    if not any(_is_world(entry.get(k)) for k in ("cidrBlock", "ipv6CidrBlock")):
        return []
    ports = _ports(entry, "protocol")
    if ports is None or ports[0] not in ("tcp", "udp", "all"):
        return []
    return [p for p in ADMIN_PORTS if p in ports[1]]


def _nacl_ingress(resources: Sequence[Resource]) -> Iterator[tuple[Resource, Mapping[str, Any], str]]:
    """(resource, entry, key of its action) for every inbound entry of a network ACL of the stack."""
    for r in _of_type(resources, [DEFAULT_NETWORK_ACL, NETWORK_ACL]):
        for entry in _as_list(r.props.get("ingress")):
            if isinstance(entry, Mapping):
                yield r, entry, "action"
    for r in _of_type(resources, [NETWORK_ACL_RULE]):
        if r.props.get("egress") in (None, False):
            yield r, r.props, "ruleAction"


def fsbp_ec2_21_nacl_no_admin_ports_from_world(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """EC2.21: no network ACL entry allows ingress from ``0.0.0.0/0`` or ``::/0`` to port 22 or 3389 (TCP or UDP,
    or every protocol). Judged entry by entry, as the control does: a deny numbered before an allow does not
    excuse the allow. A VPC the stack creates has a default network ACL that AWS opens to everything, so the stack
    must adopt it (``DefaultNetworkAcl``) and its entries are then judged.
    https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-21
    https://docs.aws.amazon.com/config/latest/developerguide/nacl-no-unrestricted-ssh-rdp.html
    https://docs.aws.amazon.com/controltower/latest/controlreference/ec2-rules.html#ct-ec2-pr-5-description"""
    found = []
    for acl, entry, action_key in _nacl_ingress(resources):
        opened = _admin_ports_open_to_world(entry, action_key)
        if opened:
            number = entry.get("ruleNo", entry.get("ruleNumber"))
            shown = int(number) if isinstance(number, int | float) else number
            ports = " and ".join(f"{ADMIN_PORTS[p]} ({p})" for p in opened)
            found.append(
                (
                    acl.urn,
                    f"{_label(acl)}'s inbound entry {shown} allows {ports} from the internet (FSBP EC2.21): narrow "
                    "its source or its ports",
                )
            )
    defaults = _of_type(resources, [DEFAULT_NETWORK_ACL])
    for vpc in _of_type(resources, [VPC]):
        if not any(_refers_to(acl, "defaultNetworkAclId", vpc) for acl in defaults):
            found.append(
                (
                    vpc.urn,
                    f"{_label(vpc)}'s default network ACL keeps AWS's entries, which allow everything from anywhere, "
                    "SSH and RDP included: adopt it with an aws.ec2.DefaultNetworkAcl (FSBP EC2.21)",
                )
            )
    return found


FLOW_LOG_TRAFFIC_TYPES = ("REJECT", "ALL")
"""Flow logs that record rejected traffic, what FSBP EC2.6 asks for."""


def fsbp_ec2_6_vpc_flow_logs(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """EC2.6: every VPC the stack creates has a flow log recording (at least) rejected traffic.
    https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-6
    https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs.html"""
    flow_logs = [
        f for f in _of_type(resources, [FLOW_LOG]) if f.props.get("trafficType") in (*FLOW_LOG_TRAFFIC_TYPES, UNKNOWN)
    ]
    return [
        (
            vpc.urn,
            f"{_label(vpc)} has no flow log of rejected traffic (FSBP EC2.6): add an aws.ec2.FlowLog with trafficType "
            "REJECT or ALL (in this program, flowLogs: true)",
        )
        for vpc in _of_type(resources, [VPC])
        if not any(_refers_to(f, "vpcId", vpc) for f in flow_logs)
    ]


def codebuild_logs_retained(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every CodeBuild project logs to a log group of the stack (which has a retention), not one it creates.

    Without ``logsConfig.cloudwatchLogs.groupName``, CodeBuild creates ``/aws/codebuild/<project>`` itself, with
    no retention: build logs would be kept (and billed) forever.
    """
    groups = _of_type(resources, [LOG_GROUP])
    found = []
    for project in _of_type(resources, [CODEBUILD_PROJECT]):
        cloudwatch = _get(project.props, "logsConfig", "cloudwatchLogs")
        if cloudwatch is UNKNOWN or _get(cloudwatch, "status") in ("DISABLED", UNKNOWN):
            continue
        name = _get(cloudwatch, "groupName")
        if name is UNKNOWN:
            continue
        deps = project.property_dependencies.get("logsConfig", frozenset())
        if not any((isinstance(name, str) and name in g.ids) or g.urn in deps for g in groups):
            found.append(
                (
                    project.urn,
                    f"{_label(project)} writes build logs to a log group CodeBuild creates without retention: set "
                    "logsConfig.cloudwatchLogs.groupName to a LogGroup of the stack",
                )
            )
    return found


def _watches(watcher: Resource, alarm: Resource) -> bool:
    """Whether ``watcher`` acts on ``alarm``'s state: a deployment group rolling back on it, or a composite
    alarm whose rule names it (``ALARM("name")``, ``OK(arn)``...). By value, or by dependency when not known."""
    names = set(alarm.ids) | {
        n for n in (alarm.props.get("name"), alarm.props.get("alarmName")) if isinstance(n, str) and n
    }
    if watcher.type == ECS_SERVICE:
        alarms = watcher.props.get("alarms")
        # ECS acts on its deployment alarms only when they are enabled (DeploymentAlarms.enable).
        if _get(alarms, "enable") not in (True, UNKNOWN):
            return False
        return bool(names & set(_strings(_get(alarms, "alarmNames")))) or _refers_to(watcher, "alarms", alarm)
    if watcher.type == DEPLOYMENT_GROUP:
        config = watcher.props.get("alarmConfiguration")
        # The provider sends a configuration without `enabled` as disabled: CodeDeploy then ignores its alarms.
        if _get(config, "enabled") not in (True, UNKNOWN):
            return False
        return bool(names & set(_strings(config))) or _refers_to(watcher, "alarmConfiguration", alarm)
    rule = watcher.props.get("alarmRule")
    named = isinstance(rule, str) and any(re.search(rf'\(\s*"?{re.escape(n)}"?\s*\)', rule) for n in names)
    return watcher is not alarm and (named or _refers_to(watcher, "alarmRule", alarm))


def ecs_capacity_providers_associated(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """A service's capacity provider strategy names only providers associated with its cluster (for Fargate,
    ``FARGATE`` and ``FARGATE_SPOT`` through the cluster's capacity providers); otherwise ECS refuses the
    service. Services on a cluster outside the stack are not judged.
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html"""
    clusters = _of_type(resources, [ECS_CLUSTER])
    associations = _of_type(resources, [ECS_CLUSTER_CAPACITY_PROVIDERS])
    found = []
    for service in _of_type(resources, [ECS_SERVICE]):
        strategy = service.props.get("capacityProviderStrategies")
        named = {_get(item, "capacityProvider") for item in _as_list(strategy)}
        if strategy is UNKNOWN or not named or any(not isinstance(n, str) for n in named):
            continue
        for cluster in (c for c in clusters if _refers_to(service, "cluster", c)):
            associated: set[Any] = set()
            for association in (a for a in associations if _refers_to(a, "clusterName", cluster)):
                providers = association.props.get("capacityProviders")
                associated |= {UNKNOWN} if has_unknown(providers) else set(_strings(providers))
            missing = sorted(str(n) for n in named - associated)
            if missing and UNKNOWN not in associated:
                found.append(
                    (
                        service.urn,
                        f"{_label(service)}'s capacity provider strategy names {', '.join(missing)}, not associated "
                        f"with its cluster {_label(cluster)}: associate them (aws.ecs.ClusterCapacityProviders)",
                    )
                )
    return found


def cloudwatch_alarm_actions(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every alarm does something when it fires: an alarm action, or a watcher in the stack (a CodeDeploy
    deployment group or an ECS service that rolls back on it, a composite alarm built on it). A silent alarm is
    useless."""
    watchers = _of_type(resources, [DEPLOYMENT_GROUP, ECS_SERVICE, COMPOSITE_ALARM])
    found = []
    for alarm in _of_type(resources, ALARMS):
        actions, enabled = alarm.props.get("alarmActions"), alarm.props.get("actionsEnabled")
        if actions is UNKNOWN or enabled is UNKNOWN or (enabled is not False and _as_list(actions)):
            continue
        if any(_watches(w, alarm) for w in watchers):
            continue
        why = "its actions are disabled" if enabled is False else "it has no alarmActions"
        found.append(
            (
                alarm.urn,
                f"{_label(alarm)} fires silently ({why}) and no deployment group, ECS service or composite alarm "
                "watches it: "
                "send it to an SNS topic (alarmActions) or roll deployments back on it",
            )
        )
    return found


# --- FSBP ELB.1 and ELB.18: HTTPS listeners ------------------------------------------------------------------


def _load_balancer_of(listener: Resource, balancers: Sequence[Resource]) -> Resource | None:
    return next((lb for lb in balancers if _refers_to(listener, "loadBalancerArn", lb)), None)


def _redirects_to_https(actions: Any) -> bool | None:
    """Whether a listener's default actions only redirect to HTTPS (``None``: not known yet)."""
    if has_unknown(actions):
        return None
    found = [a for a in _as_list(actions) if isinstance(a, Mapping)]
    return bool(found) and all(
        a.get("type") == "redirect" and str(_get(a, "redirect", "protocol") or "").upper() == "HTTPS" for a in found
    )


def fsbp_elb_1_http_redirects_to_https(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """ELB.1: every HTTP listener of an application load balancer redirects to HTTPS. Judged per load balancer,
    as the control is: one HTTP listener that forwards (or answers) instead fails the whole ALB, whether or not it
    also has an HTTPS listener. The default actions are judged (listener rules are not).

    FSBP control: https://docs.aws.amazon.com/securityhub/latest/userguide/elb-controls.html#elb-1 (AWS Config
    rule ``alb-http-to-https-redirection-check``,
    https://docs.aws.amazon.com/config/latest/developerguide/alb-http-to-https-redirection-check.html). Redirect
    actions: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/rule-action-types.html
    """
    listeners = _of_type(resources, LISTENERS)
    found = []
    for lb in _of_type(resources, LOAD_BALANCERS):
        if (lb.props.get("loadBalancerType") or "application") != "application":
            continue
        serving = []
        for listener in (r for r in listeners if _refers_to(r, "loadBalancerArn", lb)):
            # An ALB listener without a protocol is HTTP (the API's default).
            protocol = listener.props.get("protocol") or "HTTP"
            if protocol is UNKNOWN or str(protocol).upper() != "HTTP":
                continue
            if _redirects_to_https(listener.props.get("defaultActions")) is False:
                serving.append(_label(listener))
        if serving:
            found.append(
                (
                    lb.urn,
                    f"{_label(lb)} serves plain HTTP on {', '.join(serving)}: an HTTP listener's default action must "
                    "redirect to HTTPS (serve the site on an HTTPS listener with a certificate)",
                )
            )
    return found


_SECURE_PROTOCOL = {"application": "HTTPS", "network": "TLS"}
# The kind of load balancer a listener protocol belongs to (for a listener whose load balancer is not in the stack).
_KIND_OF_PROTOCOL = {"HTTP": "application", "HTTPS": "application"}
_KIND_OF_PROTOCOL |= {p: "network" for p in ("TCP", "TLS", "UDP", "TCP_UDP")}


def fsbp_elb_18_listener_secure_protocol(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """ELB.18: every listener of an application load balancer is HTTPS, every listener of a network load balancer
    TLS. Judged per listener, as the control is, on its protocol alone: an HTTP listener that only redirects to
    HTTPS (what ELB.1 asks for) still fails it. A listener of a load balancer outside the stack is judged by
    its protocol when it names one; gateway load balancers are not concerned.

    FSBP control: https://docs.aws.amazon.com/securityhub/latest/userguide/elb-controls.html#elb-18 (AWS Config
    rule ``elbv2-listener-encryption-in-transit``: NON_COMPLIANT if a listener is not configured with HTTPS or
    TLS termination, https://docs.aws.amazon.com/config/latest/developerguide/elbv2-listener-encryption-in-transit.html).
    Listener protocols: https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateListener.html
    """
    balancers = _of_type(resources, LOAD_BALANCERS)
    found = []
    for listener in _of_type(resources, LISTENERS):
        protocol = listener.props.get("protocol")
        lb = _load_balancer_of(listener, balancers)
        kind = (lb.props.get("loadBalancerType") or "application") if lb is not None else None
        if protocol is UNKNOWN or kind is UNKNOWN or kind == "gateway":
            continue
        if kind is None:
            kind = _KIND_OF_PROTOCOL.get(str(protocol).upper()) if protocol else None
        secure = _SECURE_PROTOCOL.get(str(kind))
        shown = str(protocol or ("HTTP" if kind == "application" else "")).upper()
        if secure is None or shown == secure:
            continue
        note = (
            " (it only redirects to HTTPS, as ELB.1 asks, but ELB.18 judges the protocol, redirect or not)"
            if _redirects_to_https(listener.props.get("defaultActions"))
            else ""
        )
        found.append(
            (
                listener.urn,
                f"{_label(listener)} listens on {shown or 'no protocol'} on {'an' if kind == 'application' else 'a'} "
                f"{kind} load balancer: use {secure} with a certificate{note}",
            )
        )
    return found


# --- FSBP IAM.3: access keys rotated --------------------------------------------------------------------------

MAX_ACCESS_KEY_AGE_DAYS = 90
"""IAM.3's bound: the AWS Config rule ``access-keys-rotated`` fails an active key older than this
(``maxAccessKeyAge``, 90 in the FSBP standard)."""

# time:index/rotating:Rotating's rotation arguments, in the order its provider applies them (a later one set
# overrides an earlier one), with a conservative length in days: a month counts 31 days, a year 366.
_ROTATION_DAYS: tuple[tuple[str, float], ...] = (
    ("rotationDays", 1),
    ("rotationHours", 1 / 24),
    ("rotationMinutes", 1 / 1440),
    ("rotationMonths", 31),
    ("rotationRfc3339", 0),
    ("rotationYears", 366),
)


def _rotation_period_days(props: Mapping[str, Any]) -> float | Unknown | None:
    """Days between two rotations of a ``Rotating`` (``None``: no schedule, e.g. a fixed ``rotationRfc3339``)."""
    period: float | Unknown | None = None
    for key, days in _ROTATION_DAYS:
        value = props.get(key)
        if value is UNKNOWN:
            period = UNKNOWN
        elif key == "rotationRfc3339" and value:
            period = None  # one fixed instant, not a period
        elif isinstance(value, int | float) and not isinstance(value, bool) and value:
            period = float(value) * days
    return period


def fsbp_iam_3_access_key_rotated(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """IAM.3: every active IAM access key of the stack is replaced at least every 90 days.

    What the pack can see: a key that depends on a ``time`` ``Rotating`` (pulumiverse-time) of the stack whose
    period is at most 90 days. What it cannot: that the dependency replaces the key. The program replaces it
    with the ``replacementTrigger`` resource option (the Rotating's timestamp), and resource options reach a
    policy pack only as protect, ignoreChanges, deleteBeforeReplace, aliases, customTimeouts and
    additionalSecretOutputs (the analyzer's ``AnalyzerResourceOptions``): so the program also declares the
    Rotating in the key's ``dependsOn``, and its own tests check the trigger. A key that depends on a Rotating
    without being replaced by it passes this rule and is never rotated. Nor can the pack see when ``pulumi up``
    runs: a Rotating expires on schedule, but the key is replaced at the first refreshed update after that.

    FSBP control: https://docs.aws.amazon.com/securityhub/latest/userguide/iam-controls.html#iam-3 (AWS Config
    rule ``access-keys-rotated``, https://docs.aws.amazon.com/config/latest/developerguide/access-keys-rotated.html).
    Rotating access keys: https://docs.aws.amazon.com/IAM/latest/UserGuide/id-credentials-access-keys-update.html
    """
    rotations = _of_type(resources, [TIME_ROTATING])
    found = []
    for key in _of_type(resources, [ACCESS_KEY]):
        if key.props.get("status") in ("Inactive", UNKNOWN):
            continue
        periods = [_rotation_period_days(r.props) for r in rotations if r.urn in key.dependencies]
        if any(p is UNKNOWN or (isinstance(p, float) and p <= MAX_ACCESS_KEY_AGE_DAYS) for p in periods):
            continue
        if not periods:
            why = "depends on no time Rotating: nothing replaces it on a schedule"
        else:
            why = "depends only on a time Rotating whose period is longer than 90 days, or not a period"
        found.append(
            (
                key.urn,
                f"{_label(key)} {why}. Replace it at least every {MAX_ACCESS_KEY_AGE_DAYS} days: a Rotating with "
                "rotationDays <= 90 in its dependsOn, and its timestamp as the key's replacementTrigger",
            )
        )
    return found


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "s3-public-access-blocked", "Every S3 bucket blocks public access (all four flags).", s3_public_access_blocked
    ),
    StackRule("s3-bucket-encrypted", "Every S3 bucket has default server-side encryption.", s3_bucket_encrypted),
    StackRule("s3-bucket-tls-only", "Every S3 bucket policy denies requests not made over TLS.", s3_bucket_tls_only),
    StackRule(
        "s3-source-bucket-versioned",
        "The bucket the pipeline's S3 source action reads is versioned.",
        s3_source_bucket_versioned,
    ),
    StackRule("ecr-lifecycle-policy", "Every ECR repository has a lifecycle policy.", ecr_lifecycle_policy),
    StackRule(
        "security-group-world-ingress",
        "Nothing but an ALB's production listener ports is open to 0.0.0.0/0 or ::/0.",
        security_group_world_ingress,
    ),
    StackRule(
        "fsbp-ec2-2-default-security-group-closed",
        "EC2.2: A VPC's default security group has no inbound or outbound rules (a created VPC's is adopted).",
        fsbp_ec2_2_default_security_group_closed,
    ),
    StackRule(
        "fsbp-ec2-21-nacl-no-admin-ports-from-world",
        "EC2.21: No network ACL allows ingress from 0.0.0.0/0 or ::/0 to port 22 or 3389 (a created VPC's default "
        "ACL is adopted).",
        fsbp_ec2_21_nacl_no_admin_ports_from_world,
    ),
    StackRule(
        "fsbp-ec2-6-vpc-flow-logs",
        "EC2.6: Every created VPC has a flow log recording rejected traffic.",
        fsbp_ec2_6_vpc_flow_logs,
    ),
    StackRule(
        "codebuild-logs-retained",
        "Every CodeBuild project logs to a log group of the stack (with a retention).",
        codebuild_logs_retained,
    ),
    StackRule(
        "ecs-capacity-providers-associated",
        "An ECS service's capacity provider strategy names only providers associated with its cluster.",
        ecs_capacity_providers_associated,
    ),
    StackRule(
        "fsbp-s3-9-server-access-logging",
        "S3.9: Every S3 bucket logs its requests to an access-log bucket (a bucket receiving access logs need not).",
        fsbp_s3_9_server_access_logging,
    ),
    StackRule(
        "cloudwatch-alarm-actions",
        "Every CloudWatch alarm has an alarm action, or a deployment group, ECS service or composite alarm watches it.",
        cloudwatch_alarm_actions,
    ),
    StackRule(
        "fsbp-elb-1-http-redirects-to-https",
        "ELB.1: Every HTTP listener of an application load balancer redirects to HTTPS.",
        fsbp_elb_1_http_redirects_to_https,
    ),
    StackRule(
        "fsbp-elb-18-listener-secure-protocol",
        "ELB.18: Every application load balancer listener is HTTPS, every network load balancer listener TLS.",
        fsbp_elb_18_listener_secure_protocol,
    ),
    StackRule(
        "fsbp-iam-3-access-key-rotated",
        "IAM.3: Every active IAM access key depends on a time Rotating of at most 90 days that replaces it.",
        fsbp_iam_3_access_key_rotated,
    ),
)


# --- Running every rule ------------------------------------------------------------------------------


def check_resource(resource_type: str, props: Mapping[str, Any], urn: str = "") -> list[Violation]:
    """Every resource rule over one resource."""
    return [Violation(rule.name, message, urn) for rule in RESOURCE_RULES for message in rule(resource_type, props)]


def check_stack(resources: Sequence[Resource]) -> list[Violation]:
    """Every rule over a whole stack: each resource rule on each resource, then each stack rule."""
    found = [v for r in resources for v in check_resource(r.type, r.props, r.urn)]
    for rule in STACK_RULES:
        found += rule(resources)
    return found


class _Registration(Protocol):
    type: str
    name: str
    urn: str
    id: str
    state: dict[str, Any]
    dependencies: list[str]

    @property
    def props(self) -> dict[str, Any]: ...


def from_registration(registration: _Registration) -> Resource:
    """A ``Resource`` from an ``offline.engine`` registration (the program run on mocks).

    The mock gives every value, so references are matched by value: the id and the ARN and name the mock
    reported are what other resources' properties hold.
    """
    state = registration.state
    ids = {registration.id} | {state[k] for k in REFERENCE_KEYS if isinstance(state.get(k), str)}
    return Resource(
        type=registration.type,
        name=registration.name,
        props=registration.props,
        urn=registration.urn,
        ids=frozenset(i for i in ids if i),
        dependencies=frozenset(registration.dependencies),
    )
