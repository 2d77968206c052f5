"""The shared IAM builders (``components/iam.py``): trust policies that let one AWS service act for this account
only, ``Allow`` statements and documents as data, the log-writing grant scoped to one log group, roles made one
way (``service_role``) and grants on another component's role (``grant``).

Each shape is checked against what AWS accepts (moto's IAM policy grammar, parliament, the IAM API model) and for
least privilege (what it allows, and what it must not); the committed stacks' roles are checked to all be made
this way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import botocore.session
import pulumi
import pytest
from moto.iam.policy_validation import IAMPolicyDocumentValidator, IAMTrustPolicyDocumentValidator

from components import iam
from components.base import Component, component_type
from offline.engine import ACCOUNT_ID, ProgramRun
from policy import resource_types as rt
from policy import rules
from support import bundles
from support.aws import assert_valid_request, by_sid, parliament_findings, policy_of
from support.stacks import REGION, STACKS, run

OTHER_ACCOUNT = "210987654321"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/ecs/shop-dev"
BUCKET_ARN = "arn:aws:s3:::shop-dev-artifacts"


def resolved(make: Callable[[], Mapping[str, object]]) -> dict[str, Any]:
    """The values ``make`` returns (Outputs among them), resolved by a run on the offline engine."""

    def build() -> None:
        for key, value in make().items():
            pulumi.export(key, value)

    return run(build).outputs


def trust_allows(doc: Mapping[str, Any], service: str, context: Mapping[str, str]) -> bool:
    """Whether a trust policy lets ``service`` call ``sts:AssumeRole`` with these request context keys (the one
    condition operator the builders use, StringEquals; a key absent from the request fails it).
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html"""

    def matches(statement: Mapping[str, Any]) -> bool:
        conditions = statement.get("Condition", {})
        assert set(conditions) <= {"StringEquals"}, conditions
        return all(context.get(key) == value for key, value in conditions.get("StringEquals", {}).items())

    return any(
        s["Effect"] == "Allow"
        and s["Principal"] == {"Service": service}
        and s["Action"] == "sts:AssumeRole"
        and matches(s)
        for s in doc["Statement"]
    )


# --- service_trust_policy ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trusts() -> dict[str, Any]:
    return resolved(
        lambda: {
            "guarded": iam.service_trust_policy("codebuild.amazonaws.com", source_account=ACCOUNT_ID),
            # The account as an Output, as the program passes it (aws.get_caller_identity_output).
            "guardedOutput": iam.service_trust_policy(
                "ecs-tasks.amazonaws.com", source_account=pulumi.Output.from_input(ACCOUNT_ID)
            ),
            "open": iam.service_trust_policy("codebuild.amazonaws.com"),
        }
    )


def test_a_service_may_assume_the_role_only_on_behalf_of_this_account(trusts: dict[str, Any]) -> None:
    # The confused-deputy guard: a service principal acts for many accounts; aws:SourceAccount in the trust policy
    # limits it to requests made for this one.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html
    doc = json.loads(trusts["guarded"])
    [statement] = doc["Statement"]
    assert statement["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    assert trust_allows(doc, "codebuild.amazonaws.com", {"aws:SourceAccount": ACCOUNT_ID})
    assert not trust_allows(doc, "codebuild.amazonaws.com", {"aws:SourceAccount": OTHER_ACCOUNT})
    assert not trust_allows(doc, "codebuild.amazonaws.com", {}), "a request without the key must not match"
    assert not trust_allows(doc, "codepipeline.amazonaws.com", {"aws:SourceAccount": ACCOUNT_ID})


def test_the_account_may_be_an_output(trusts: dict[str, Any]) -> None:
    [statement] = json.loads(trusts["guardedOutput"])["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}


def test_without_an_account_there_is_no_condition(trusts: dict[str, Any]) -> None:
    [statement] = json.loads(trusts["open"])["Statement"]
    assert "Condition" not in statement
    assert trust_allows(json.loads(trusts["open"]), "codebuild.amazonaws.com", {"aws:SourceAccount": OTHER_ACCOUNT})


@pytest.mark.parametrize("which", ["guarded", "guardedOutput", "open"])
def test_trust_policies_are_valid_trust_policies(trusts: dict[str, Any], which: str) -> None:
    # A trust policy names a Principal and no Resource, and only sts: actions (IAM's grammar, as moto enforces it).
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
    doc = trusts[which]
    IAMTrustPolicyDocumentValidator(doc).validate()
    assert json.loads(doc)["Version"] == "2012-10-17"


# --- allow, policy_document, write_logs --------------------------------------------------------------------


def test_allow_is_one_allow_statement_with_sorted_actions() -> None:
    statement = iam.allow(["s3:PutObject", "s3:GetObject"], [f"{BUCKET_ARN}/*"])
    assert statement == {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [f"{BUCKET_ARN}/*"]}
    # No Sid or Condition keys unless given: IAM refuses an empty Sid and an empty Condition is noise.
    assert "Sid" not in statement and "Condition" not in statement


def test_allow_takes_a_sid_and_a_condition() -> None:
    condition = {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    statement = iam.allow(["sns:Publish"], ["arn:aws:sns:eu-west-1:123456789012:t"], sid="Publish", condition=condition)
    assert statement["Sid"] == "Publish"
    assert statement["Condition"] == condition
    assert statement["Condition"] is not condition, "the statement keeps its own copy"


@pytest.fixture(scope="module")
def documents() -> dict[str, Any]:
    def make() -> dict[str, object]:
        # An ARN that is an Output (a resource of another component) goes straight into Resource.
        bucket = pulumi.Output.from_input(BUCKET_ARN)
        return {
            "document": iam.policy_document(
                iam.allow(["s3:ListBucket"], [bucket], sid="Bucket"),
                iam.allow(["s3:GetObject", "s3:PutObject"], [pulumi.Output.concat(bucket, "/*")], sid="Objects"),
            ),
            "logs": iam.policy_document(iam.write_logs(pulumi.Output.from_input(LOG_GROUP_ARN), sid="WriteLogs")),
        }

    return resolved(make)


def test_a_document_holds_its_statements_in_order_with_outputs_resolved(documents: dict[str, Any]) -> None:
    doc = json.loads(documents["document"])
    # The current policy language version: without it, policy variables are not supported.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_version.html
    assert doc["Version"] == "2012-10-17"
    assert [s["Sid"] for s in doc["Statement"]] == ["Bucket", "Objects"]
    assert by_sid(doc)["Bucket"]["Resource"] == [BUCKET_ARN]
    assert by_sid(doc)["Objects"]["Resource"] == [f"{BUCKET_ARN}/*"]


def test_write_logs_reaches_the_streams_of_one_log_group_only(documents: dict[str, Any]) -> None:
    # Log streams are named arn:...:log-group:<group>:log-stream:<stream>; CreateLogStream and PutLogEvents are
    # authorised on them, so "<group ARN>:*" covers every stream of that group and no other group.
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html
    [statement] = json.loads(documents["logs"])["Statement"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    [resource] = statement["Resource"]
    assert fnmatchcase(f"{LOG_GROUP_ARN}:log-stream:ecs/web/0123abcd", resource)
    assert not fnmatchcase(f"{LOG_GROUP_ARN}-other:log-stream:ecs/web/0123abcd", resource)
    assert not fnmatchcase(f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/ecs/other:log-stream:x", resource)
    # Nothing beyond writing: no reading, no deleting, no other group.
    assert not any(a.startswith(("logs:Get", "logs:Delete", "logs:Describe")) for a in statement["Action"])


@pytest.mark.parametrize("which", ["document", "logs"])
def test_documents_pass_parliament_and_iams_grammar(documents: dict[str, Any], which: str) -> None:
    assert parliament_findings(documents[which]) == []
    IAMPolicyDocumentValidator(documents[which]).validate()


def test_parliament_would_flag_write_logs_on_the_wrong_resource() -> None:
    """The check above can fail: the same actions on the log group's ARN without ``:*`` (not a stream)."""
    wrong = {"Version": "2012-10-17", "Statement": [iam.allow(["logs:PutLogEvents"], [LOG_GROUP_ARN])]}
    assert parliament_findings(json.dumps(wrong)) != []


# --- service_role and grant ---------------------------------------------------------------------------------


class Owner(Component):
    """A component owning roles and grants, as every component of the program does."""

    def __init__(self, name: str, build: Callable[[Owner], Mapping[str, object]]) -> None:
        super().__init__(name)
        outputs = build(self)
        self.register_outputs(dict(outputs))


REPOSITORY_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/shop-dev"
# The build role's statements, as the policy should hold them.
EXPECTED_STATEMENTS = [
    {
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [f"{LOG_GROUP_ARN}:*"],
        "Sid": "WriteLogs",
    },
    {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": [REPOSITORY_ARN]},
]


def _ready(role: iam.ServiceRole) -> pulumi.Output[list[str]]:
    return pulumi.Output.all(*[r.urn for r in role.ready])


def _roles(owner: Owner) -> dict[str, object]:
    statements = [
        iam.write_logs(LOG_GROUP_ARN, sid="WriteLogs"),
        iam.allow(["ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"], [REPOSITORY_ARN]),
    ]
    with_policy = iam.service_role(
        owner,
        "owner-build",
        physical_name="shop-dev-build",
        service="codebuild.amazonaws.com",
        account_id=ACCOUNT_ID,
        statements=statements,
    )
    bare = iam.service_role(
        owner, "owner-task", physical_name="shop-dev-task", service="ecs-tasks.amazonaws.com", account_id=ACCOUNT_ID
    )
    named = iam.service_role(
        owner,
        "owner-deploy",
        physical_name="shop-dev-deploy",
        service="codedeploy.amazonaws.com",
        account_id=ACCOUNT_ID,
        statements=statements[:1],
        policy_name="deploy",
        policy_resource="owner-deploy-inline",
    )
    pulumi.export("ready", {"withPolicy": _ready(with_policy), "bare": _ready(bare)})
    pulumi.export("ref", {"name": with_policy.ref.name, "arn": with_policy.ref.arn})
    pulumi.export("namedPolicy", named.policy is not None)
    iam.grant(
        owner,
        "owner-pull",
        bundles.role("shop-dev-execution"),
        [iam.allow(["ecr:BatchGetImage"], [REPOSITORY_ARN], sid="Pull")],
        policy_name="pull-from-owner",
    )
    return {}


@pytest.fixture(scope="module")
def roles() -> ProgramRun:
    return run(lambda: Owner("owner", _roles))


def test_a_service_role_is_trusted_by_its_service_for_this_account_only(roles: ProgramRun) -> None:
    role = roles.one(rt.IAM_ROLE, "owner-build")
    assert role.props["name"] == "shop-dev-build"
    trust = policy_of(role, "assumeRolePolicy")
    assert trust_allows(trust, "codebuild.amazonaws.com", {"aws:SourceAccount": ACCOUNT_ID})
    assert not trust_allows(trust, "codebuild.amazonaws.com", {"aws:SourceAccount": OTHER_ACCOUNT})
    assert not trust_allows(trust, "ecs-tasks.amazonaws.com", {"aws:SourceAccount": ACCOUNT_ID})
    IAMTrustPolicyDocumentValidator(role.props["assumeRolePolicy"]).validate()


def test_a_service_role_has_one_inline_policy_of_its_statements(roles: ProgramRun) -> None:
    role = roles.one(rt.IAM_ROLE, "owner-build")
    policy = roles.one(rt.IAM_ROLE_POLICY, "owner-build-policy")
    assert policy.props["role"] == role.id
    assert policy_of(policy)["Statement"] == EXPECTED_STATEMENTS
    assert parliament_findings(policy.props["policy"]) == []
    # Inline, not a managed policy: it goes with the role, and nothing else can attach it.
    assert roles.of_type(rt.IAM_POLICY) == [] and roles.of_type(rt.IAM_ROLE_POLICY_ATTACHMENT) == []


def test_what_uses_a_role_waits_for_its_policy(roles: ProgramRun) -> None:
    # A role without its permissions makes the first build or deployment fail: users depend on the policy.
    assert roles.outputs["ready"] == {
        "withPolicy": [roles.one(rt.IAM_ROLE_POLICY, "owner-build-policy").urn],
        # Without statements there is no policy: the role itself.
        "bare": [roles.one(rt.IAM_ROLE, "owner-task").urn],
    }
    assert [r.name for r in roles.of_type(rt.IAM_ROLE_POLICY) if r.name.startswith("owner-task")] == []


def test_the_policy_name_and_resource_name_can_be_chosen(roles: ProgramRun) -> None:
    policy = roles.one(rt.IAM_ROLE_POLICY, "owner-deploy-inline")
    assert policy.props["name"] == "deploy"
    assert roles.outputs["namedPolicy"] is True


def test_a_role_ref_is_the_roles_name_and_arn(roles: ProgramRun) -> None:
    role = roles.one(rt.IAM_ROLE, "owner-build")
    assert roles.outputs["ref"] == {"name": role.state["name"], "arn": role.state["arn"]}


def test_a_grant_is_an_inline_policy_on_the_other_role_owned_by_the_granter(roles: ProgramRun) -> None:
    grant = roles.one(rt.IAM_ROLE_POLICY, "owner-pull")
    # PutRolePolicy takes the role's name, not its ARN.
    # https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html
    assert grant.props["role"] == "shop-dev-execution"
    assert grant.props["name"] == "pull-from-owner"
    assert_valid_request(
        "iam",
        "PutRolePolicy",
        {"RoleName": grant.props["role"], "PolicyName": grant.props["name"], "PolicyDocument": grant.props["policy"]},
    )
    assert [s["Sid"] for s in policy_of(grant)["Statement"]] == ["Pull"]
    assert parliament_findings(grant.props["policy"]) == []
    # Owned by the component whose resource it grants: it goes when that component goes.
    assert grant.parent == roles.one(component_type(Owner)).urn


def test_every_child_is_parented_to_and_named_after_the_owner(roles: ProgramRun) -> None:
    owner = roles.one(component_type(Owner))
    children = roles.children_of(owner)
    assert len(children) == len(roles.resources) - 1
    assert all(c.name.startswith("owner-") for c in children)


def test_role_and_policy_names_meet_iams_api_model(roles: ProgramRun) -> None:
    model = botocore.session.get_session().get_service_model("iam")
    for role in roles.of_type(rt.IAM_ROLE):
        assert_valid_request(
            "iam",
            "CreateRole",
            {"RoleName": role.props["name"], "AssumeRolePolicyDocument": role.props["assumeRolePolicy"]},
        )
    # ParamValidator checks lengths, not patterns: names must also match the model's pattern.
    pattern = model.shape_for("roleNameType").metadata["pattern"]
    assert all(re.fullmatch(pattern, r.props["name"]) for r in roles.of_type(rt.IAM_ROLE))


def test_the_policy_pack_accepts_every_resource(roles: ProgramRun) -> None:
    assert rules.check_stack([rules.from_registration(r) for r in roles.resources]) == []


# --- The committed stacks -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_role_of_every_stack_trusts_one_principal_under_a_condition(
    stack: str, runs: Callable[[str], ProgramRun]
) -> None:
    """Every role is trusted by one service for this account only (the flow logs' also for this account's flow
    logs only) or is the upload role (GitLab ID tokens of one project and branch): no role trusts an account
    root, ``*``, or anyone without a condition."""
    found = runs(stack)
    for role in found.of_type(rt.IAM_ROLE):
        trust = policy_of(role, "assumeRolePolicy")
        [statement] = trust["Statement"]
        principal = statement["Principal"]
        assert set(principal) <= {"Service", "Federated"}, role.name
        if "Service" in principal:
            condition = dict(statement["Condition"])
            assert condition.pop("StringEquals") == {"aws:SourceAccount": ACCOUNT_ID}, role.name
            # VPC Flow Logs' documented trust adds the flow logs' ARN pattern:
            # https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html
            if principal["Service"] == "vpc-flow-logs.amazonaws.com":
                [source_arn] = condition.pop("ArnLike").values()
                assert re.fullmatch(rf"arn:aws:ec2:[a-z0-9-]+:{ACCOUNT_ID}:vpc-flow-log/\*", source_arn), source_arn
            assert condition == {}, role.name
        else:
            assert statement["Action"] == "sts:AssumeRoleWithWebIdentity", role.name
            assert set(statement["Condition"]) == {"StringEquals"}, role.name


@pytest.mark.parametrize("stack", STACKS)
def test_every_inline_policy_of_every_stack_passes_parliament(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    found = runs(stack)
    policies = found.of_type(rt.IAM_ROLE_POLICY) + found.of_type(rt.IAM_USER_POLICY)
    assert policies
    assert {p.name: parliament_findings(p.props["policy"]) for p in policies} == {p.name: [] for p in policies}
