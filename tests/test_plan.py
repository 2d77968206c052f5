"""The offline plan (offline/plan.py, pricing.py, mermaid.py): what a reviewer without a cloud account relies on.

Golden-free: every expectation is read from the program's own registrations and outputs, so the tests hold
whatever the components register, and fail when the plan misses, leaks or invents something.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import contracts
from components.config import SECRET_KEYS
from offline import pricing
from offline.bench import run_synthetic
from offline.engine import ACCOUNT_ID, ProgramRun, Registration, is_secret, pulumi_secret
from offline.plan import SECRET, Plan, PlanError, Sanitizer, build_plan, main, render_plan, write_plan
from offline.stack_files import ROOT, StackFiles, load_stack_files, secret_placeholder
from policy import resource_types as rt
from support.stacks import STACKS

TEXT_FILES = ("plan.md", "pipeline.md", "cost.md")
# What the plan writes beside them: the application's job file, the build's buildspec and the two deployment
# templates the buildspec carries (files/).
GENERATED = ("app.gitlab-ci.yml", "buildspec.yml", contracts.TASKDEF_FILE, contracts.APPSPEC_FILE)


def stack_files(stack: str) -> StackFiles:
    return load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS)))


@pytest.fixture(scope="module")
def dev_plan(dev: ProgramRun) -> dict[str, bytes]:
    return render_plan(dev, stack_files("dev")).files


def text(files: dict[str, bytes], name: str) -> str:
    return files[name].decode()


# --- The command ----------------------------------------------------------------------------------


def test_command_writes_the_plan_and_matches_an_in_process_run(tmp_path: Path, dev_plan: dict[str, bytes]) -> None:
    out = tmp_path / "build" / "dev"
    result = subprocess.run(
        [sys.executable, "-m", "offline.plan", "dev", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    written = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert set(TEXT_FILES) <= set(written)
    # Another process (another hash seed) and another program run give the same bytes: deterministic.
    assert written == dev_plan
    # Progress on the terminal, then a summary with the resource count, the cost and the paths.
    assert "running __main__.py on the offline engine" in result.stderr
    count = text(dev_plan, "plan.md").count("\n### ")
    assert f"{count} resources" in result.stdout
    assert re.search(r"fixed cost \$\d+\.\d\d/month", result.stdout)
    for name in written:
        assert str(out / name) in result.stdout


def _project_copy(tmp_path: Path, stack_yaml: str) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, root / name)
    (root / "Pulumi.dev.yaml").write_text(stack_yaml)
    return root


def test_a_bad_stack_config_exits_non_zero_names_the_key_and_writes_nothing(tmp_path: Path) -> None:
    stack_yaml = (ROOT / "Pulumi.dev.yaml").read_text() + "  gitlab-fargate:contianerPort: 8080\n"
    root = _project_copy(tmp_path, stack_yaml)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "offline.plan", "dev", "--root", str(root), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "gitlab-fargate:contianerPort" in result.stderr
    assert "gitlab-fargate:containerPort" in result.stderr  # the suggestion
    assert not out.exists()
    assert not (root / "build").exists()


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("  gitlab-fargate:cpu: 300\n", "gitlab-fargate:cpu"),
        ("  gitlab-fargate:memory: 4096\n", "gitlab-fargate:memory"),
        ("  gitlab-fargate:gitlabToken: plain-text-token\n", "gitlab-fargate:gitlabToken"),
        ("  cpu: 512\n", "cpu"),  # a key without its namespace
    ],
)
def test_bad_values_leave_a_previous_plan_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, key: str
) -> None:
    root = _project_copy(tmp_path, (ROOT / "Pulumi.dev.yaml").read_text() + extra)
    out = tmp_path / "out"
    out.mkdir()
    (out / "plan.md").write_text("previous plan\n")
    assert main(["dev", "--root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert key in err and "nothing written" in err
    assert [p.name for p in out.iterdir()] == ["plan.md"]
    assert (out / "plan.md").read_text() == "previous plan\n"


DEV_CONFIG = (ROOT / "Pulumi.dev.yaml").read_text()


@pytest.mark.parametrize(
    ("stack_yaml", "says"),
    [
        (DEV_CONFIG + "  gitlab-fargate:tags: [\n", "Pulumi.dev.yaml: not valid YAML at line"),
        ("config:\n  - aws:region: eu-west-1\n", "Pulumi.dev.yaml: `config:` must map keys to values"),
        (DEV_CONFIG + "gitlab-fargate:cpu: 512\n", "'gitlab-fargate:cpu' is outside `config:`"),
        (DEV_CONFIG + "confg:\n  aws:region: eu-west-1\n", "unknown top-level key 'confg'; did you mean 'config'?"),
        ("- just\n- a list\n", "Pulumi.dev.yaml: must be a mapping with a `config:` section"),
        (DEV_CONFIG + "  gitlab-farget:cpu: 512\n", "did you mean 'gitlab-fargate:cpu'?"),
        (DEV_CONFIG + "  aws:regon: eu-west-1\n", "aws:regon: unknown key; did you mean 'aws:region'?"),
        (DEV_CONFIG + "  aws:profile: prod-admin\n", "aws:profile: not read"),
        (DEV_CONFIG + "  gitlab:token: glpat-x\n", "gitlab:token: not read"),
    ],
    ids=[
        "yaml-syntax",
        "config-as-list",
        "key-outside-config",
        "misspelt-section",
        "not-a-mapping",
        "misspelt-namespace",
        "unknown-aws-key",
        "unread-aws-key",
        "unread-gitlab-key",
    ],
)
def test_a_broken_stack_file_gives_one_clear_error_exits_non_zero_and_writes_nothing(
    tmp_path: Path, stack_yaml: str, says: str
) -> None:
    root = _project_copy(tmp_path, stack_yaml)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "offline.plan", "dev", "--root", str(root), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().endswith("plan: nothing written")
    assert not out.exists() and not (root / "build").exists()


def test_an_unknown_stack_lists_the_committed_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-stack", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    for stack in STACKS:
        assert stack in err
    assert not (tmp_path / "out").exists()


def test_the_plan_never_replaces_a_directory_that_is_not_a_plan(
    tmp_path: Path, dev: ProgramRun, dev_plan: dict[str, bytes]
) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    plan = Plan(dev_plan, len(dev.resources), 0, pricing.CostEstimate("eu-west-1", False), [], dev)
    with pytest.raises(PlanError, match="refusing to replace"):
        write_plan(plan, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    # A previous plan is replaced whole: no stale file survives.
    out = tmp_path / "plan"
    out.mkdir()
    (out / "plan.md").write_text("old\n")
    (out / "stale.yml").write_text("old\n")
    write_plan(plan, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == dev_plan


# --- plan.md --------------------------------------------------------------------------------------


def headings(plan_md: str) -> list[tuple[str, str]]:
    return re.findall(r"^### `([^`]+)` · `([^`]+)`$", plan_md, flags=re.MULTILINE)


@pytest.mark.parametrize("stack", STACKS)
def test_the_plan_lists_every_registered_resource_once(stack: str, runs: Callable[[str], ProgramRun]) -> None:
    run = runs(stack)
    plan_md = text(render_plan(run, stack_files(stack)).files, "plan.md")
    listed = headings(plan_md)
    assert len(listed) == plan_md.count("\n### ") == len(run.resources)
    assert Counter(listed) == Counter((r.name, r.type) for r in run.resources)


def test_resources_are_grouped_under_their_top_level_component(dev: ProgramRun, dev_plan: dict[str, bytes]) -> None:
    by_urn = {r.urn: r for r in dev.resources}

    def top(r: Registration) -> Registration:
        while r.parent in by_urn:
            r = by_urn[r.parent]
        return r

    sections = [headings("\n" + s) for s in re.split(r"^## ", text(dev_plan, "plan.md"), flags=re.MULTILINE)]
    components = [r for r in dev.resources if not r.custom and r.parent not in by_urn]
    assert components
    for component in components:
        # The component opens its own section, followed by exactly its descendants.
        section = next(s for s in sections if s and s[0] == (component.name, component.type))
        members = [r for r in dev.resources if top(r) is component]
        assert Counter(section) == Counter((r.name, r.type) for r in members)


def test_ids_and_arns_only_aws_knows_are_placeholders(dev: ProgramRun, dev_plan: dict[str, bytes]) -> None:
    shown = "".join(text(dev_plan, name) for name in TEXT_FILES)
    assert ACCOUNT_ID not in shown
    invented = [r.id for r in dev.resources if r.custom and not r.type.startswith("pulumi:providers:")]
    invented += [r.state["arn"] for r in dev.resources if isinstance(r.state.get("arn"), str)]
    for value in invented:
        assert not re.search(r"(?<![\w-])" + re.escape(value) + r"(?![\w-])", shown), value
    assert "(known after apply: " in shown


def test_reviewer_properties_are_shown(dev: ProgramRun, dev_plan: dict[str, bytes]) -> None:
    plan_md = text(dev_plan, "plan.md")
    # ignoreChanges (the CodeDeploy drift contract) is shown for every resource that has one.
    for r in dev.resources:
        if r.ignore_changes:
            section = plan_md.split(f"### `{r.name}` · `{r.type}`", 1)[1].split("\n### ", 1)[0]
            for prop in r.ignore_changes:
                assert f"`{prop}`" in section
    # Policies are pretty-printed JSON blocks that parse back to the registered documents.
    policies = [r for r in dev.resources if r.type == rt.IAM_ROLE_POLICY]
    assert policies
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", plan_md, flags=re.DOTALL)]
    for policy in policies:
        statements = json.loads(policy.props["policy"])["Statement"]
        assert any(
            isinstance(b, dict)
            and [s.get("Action") for s in b.get("Statement", [])] == [s.get("Action") for s in statements]
            for b in blocks
        )


# --- Secrets --------------------------------------------------------------------------------------


def secret_strings(run: ProgramRun) -> set[str]:
    found: set[str] = set()

    def walk(value: Any, inside: bool) -> None:
        if is_secret(value):
            walk(value["value"], True)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v, inside)
        elif isinstance(value, list):
            for v in value:
                walk(v, inside)
        elif inside and isinstance(value, str) and len(value) >= 4:
            found.add(value)

    for r in run.resources:
        walk(r.inputs, False)
        walk(r.state, False)
    for name in run.secret_outputs:
        walk(pulumi_secret(run.outputs[name]), False)
    return found


def assert_nowhere(values: Iterable[str], files: dict[str, bytes]) -> None:
    for name, data in files.items():
        content = data.decode()
        for value in values:
            assert value not in content, f"a secret appears in {name}"


def test_no_secret_value_appears_in_any_file(tmp_path: Path) -> None:
    planted = "planted-Secret-value-7f3a9c"
    plan = build_plan("dev", overrides={"gitlabToken": planted})
    secrets = secret_strings(plan.run)
    # The planted token reaches the program's resources (the GitLab provider) as a secret; the mocked access
    # key's secret, when the stack creates one, is among the wrapped values too.
    assert planted in secrets, "the stack does not use gitlabToken as a secret"
    secrets |= {secret_placeholder(k) for k in SECRET_KEYS}
    assert_nowhere(secrets, plan.files)
    # Also on disk, through the writer.
    write_plan(plan, tmp_path / "out")
    assert_nowhere(secrets, {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()})


def test_secrets_are_redacted_wherever_they_travel() -> None:
    """A synthetic run: a wrapped secret, the same secret leaked into a plain property, and a secret output."""

    # A made-up resource type: the sanitizer treats every custom resource alike.
    typ = "synthetic:index/value:Value"

    def reg(name: str, inputs: dict[str, Any], **kw: Any) -> Registration:
        return Registration(
            type=typ,
            name=name,
            urn=f"urn:pulumi:s::p::{typ}::{name}",
            parent="urn:pulumi:s::p::pulumi:pulumi:Stack::p-s",
            custom=True,
            inputs=inputs,
            ignore_changes=[],
            protect=False,
            additional_secret_outputs=kw.get("secret_props", []),
            dependencies=[],
            retain_on_delete=False,
            id=f"{name}-id",
        )

    secret = "hunter2-is-the-password"
    run = ProgramRun(
        resources=[
            reg("wrapped", {"value": pulumi_secret(secret), "type": "SecureString"}),
            reg("leaky", {"description": f"token={secret};", "value": "plain"}),
            reg("declared", {"value": "declared-secret-value"}, secret_props=["value"]),
        ],
        outputs={"token": secret, "other": "fine"},
        secret_outputs={"token"},
        calls=[],
    )
    files = StackFiles(project="p", stack="s", config={"aws:region": "us-east-1"}, secret_keys=[])
    plan = render_plan(run, files)
    assert_nowhere([secret, "declared-secret-value"], plan.files)
    assert plan.files["plan.md"].decode().count(SECRET) >= 4
    assert any("leaky.description" in w for w in plan.warnings)


# --- Generated files ------------------------------------------------------------------------------


def build_project(run: ProgramRun) -> Registration:
    """The BuildStage's build project (not its release project): the one whose buildspec carries the templates."""
    return run.one(rt.CODEBUILD_PROJECT, "build-project")


def test_generated_files_are_byte_identical_to_what_the_program_registers(
    dev: ProgramRun, dev_plan: dict[str, bytes]
) -> None:
    assert sorted(dev_plan) == sorted([*TEXT_FILES, *GENERATED])
    # The one an operator copies into the application repository comes from its stack output.
    assert dev_plan["app.gitlab-ci.yml"] == dev.outputs["gitlabCiYml"].encode()
    # The others from the CodeBuild project: its buildspec, and the two templates it writes (base64 variables of
    # files/buildspec.yml), exactly what the Deploy stage receives.
    buildspec = build_project(dev).props["source"]["buildspec"]
    assert dev_plan["buildspec.yml"] == buildspec.encode()
    variables = yaml.safe_load(buildspec)["env"]["variables"]
    assert dev_plan[contracts.TASKDEF_FILE] == base64.b64decode(variables["TASKDEF_JSON_BASE64"])
    assert dev_plan[contracts.APPSPEC_FILE] == base64.b64decode(variables["APPSPEC_YAML_BASE64"])
    # plan.md lists each with where it was read and its size.
    plan_md = text(dev_plan, "plan.md")
    for name in GENERATED:
        row = next(r for r in plan_md.splitlines() if r.startswith(f"| `{name}` |"))
        assert f"| {len(dev_plan[name])} bytes, " in row, row
    assert "stack output `gitlabCiYml`" in plan_md
    assert f"CodeBuild project `{build_project(dev).props['name']}`" in plan_md


def test_a_program_without_the_generated_files_gets_a_plan_that_says_so(tmp_path: Path) -> None:
    """A program with no build project and no job file output: nothing invented, each file named as missing."""
    files, run = run_synthetic(5)
    assert run.of_type(rt.CODEBUILD_PROJECT) == [] and "gitlabCiYml" not in run.outputs
    plan = render_plan(run, files)
    assert sorted(plan.files) == sorted(TEXT_FILES)
    for name in GENERATED:
        assert any(w.startswith(f"{name}: ") and "not written" in w for w in plan.warnings), (name, plan.warnings)
        row = next(r for r in text(plan.files, "plan.md").splitlines() if r.startswith(f"| `{name}` |"))
        assert "not registered by the program: not written" in row


def test_a_generated_file_holding_a_secret_is_not_written() -> None:
    secret = "glpat-leaked-into-the-job-file"
    run = ProgramRun(
        resources=[],
        outputs={"gitlabCiYml": f"upload:\n  variables:\n    TOKEN: {secret}\n"},
        secret_outputs={"gitlabCiYml"},
        calls=[],
    )
    files = StackFiles(project="p", stack="s", config={"aws:region": "eu-west-1"}, secret_keys=[])
    plan = render_plan(run, files)
    assert "app.gitlab-ci.yml" not in plan.files
    assert_nowhere([secret], plan.files)
    assert any(w.startswith("app.gitlab-ci.yml") and "contains a secret" in w for w in plan.warnings)


# --- pipeline.md ----------------------------------------------------------------------------------


def mermaid_block(pipeline_md: str) -> str:
    found = re.findall(r"```mermaid\n(.*?)\n```", pipeline_md, flags=re.DOTALL)
    assert len(found) == 1
    return str(found[0])


def check_flowchart(diagram: str) -> None:
    """The syntax rules the diagram relies on: quoted labels, defined endpoints, balanced subgraphs."""
    lines = diagram.splitlines()
    assert lines[0] == "flowchart TD"
    defined: set[str] = set()
    depth = 0
    for line in lines[1:]:
        body = line.strip()
        if body.startswith("subgraph "):
            depth += 1
            defined.add(body.split()[1].split("[")[0])
            continue
        if body == "end":
            depth -= 1
            continue
        if body.startswith("direction "):
            continue
        node = re.fullmatch(r'(\w+)\["([^"]*)"\]', body)
        edge = re.fullmatch(r'(\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)', body)
        assert node or edge, f"not a node or an edge: {body}"
        if node:
            defined.add(node.group(1))
        else:
            assert edge is not None
            assert edge.group(1) in defined and edge.group(4) in defined, body
    assert depth == 0


def test_the_diagram_names_the_registered_bucket_key_pipeline_and_service(
    dev: ProgramRun, dev_plan: dict[str, bytes]
) -> None:
    diagram = mermaid_block(text(dev_plan, "pipeline.md"))
    check_flowchart(diagram)
    show = Sanitizer(dev).text
    pipeline = dev.one(rt.CODEPIPELINE_PIPELINE)
    source = next(
        a["configuration"] for s in pipeline.props["stages"] for a in s["actions"] if a["category"] == "Source"
    )
    bucket = next(b for b in dev.of_type(rt.S3_BUCKET) if b.props.get("bucket") == source["S3Bucket"])
    expected = [
        show(bucket.props["bucket"]),
        show(source["S3ObjectKey"]),
        show(pipeline.props["name"]),
        *[
            show(a["configuration"]["ProjectName"])
            for s in pipeline.props["stages"]
            for a in s["actions"]
            if a["provider"] == "CodeBuild"
        ],
        # The rule that starts the pipeline (the other rules only notify).
        *[show(t.props["rule"]) for t in dev.of_type(rt.EVENTS_TARGET) if t.props["arn"] == pipeline.state["arn"]],
        *[show(r.props["name"]) for r in dev.of_type(rt.LB_TARGET_GROUP)],
        *[show(r.props["name"]) for r in dev.of_type(rt.ECS_SERVICE)],
        *[f":{r.props['port']:g}" for r in dev.of_type(rt.LB_LISTENER)],
    ]
    for name in expected:
        assert name in diagram, name
    assert "trigger mode: eventbridge" in diagram
    for stage in pipeline.props["stages"]:
        assert f"Stage {stage['name']}" in diagram


def test_the_prod_diagram_shows_the_https_route_and_the_redirect(prod: ProgramRun) -> None:
    diagram = mermaid_block(render_plan(prod, stack_files("prod")).files["pipeline.md"].decode())
    check_flowchart(diagram)
    nodes = dict(re.findall(r'^  (\w+)\["([^"]*)"\]$', diagram, flags=re.MULTILINE))
    by_label = {label: node for node, label in nodes.items()}
    https, redirect, test = (
        by_label["production listener HTTPS:443"],
        by_label["redirect listener HTTP:80"],
        by_label["test listener HTTPS:8080"],
    )
    assert f'{redirect} -->|"redirects (301)"| {https}' in diagram
    rerouted = set(re.findall(r'(\w+) -\.->\|"reroutes traffic"\| (\w+)', diagram))
    assert {listener for _, listener in rerouted} == {https, test}, "CodeDeploy never touches the redirect"


def test_cloudtrail_mode_shows_the_trail_and_prices_its_data_events(run_stack: Callable[..., ProgramRun]) -> None:
    run = run_stack("dev", overrides={"triggerMode": "cloudtrail"})
    trails = run.of_type(rt.CLOUDTRAIL_TRAIL)
    assert trails
    plan = render_plan(run, stack_files("dev"))
    diagram = mermaid_block(text(plan.files, "pipeline.md"))
    check_flowchart(diagram)
    assert "trigger mode: cloudtrail" in diagram
    for trail in trails:
        assert Sanitizer(run).text(trail.props["name"]) in diagram
    assert [line.item for line in plan.cost.fixed].count("CloudTrail data events") == len(trails)
    assert "CloudTrail data events" in text(plan.files, "cost.md")


# --- cost.md --------------------------------------------------------------------------------------


def line(est: pricing.CostEstimate, item: str) -> pricing.CostLine | None:
    return next((entry for entry in est.fixed if entry.item == item), None)


def test_cost_follows_the_desired_count(dev: ProgramRun, run_stack: Callable[..., ProgramRun]) -> None:
    region = "eu-west-1"
    one = pricing.estimate(dev, region)
    three = pricing.estimate(run_stack("dev", overrides={"desiredCount": "3"}), region)
    vcpu_one, vcpu_three = line(one, "Fargate Spot vCPU"), line(three, "Fargate Spot vCPU")  # dev runs on Spot
    assert vcpu_one is not None and vcpu_three is not None
    assert vcpu_three.quantity == pytest.approx(3 * vcpu_one.quantity)
    assert three.total > one.total


def test_alarms_are_priced_per_metric_they_read(dev: ProgramRun, run_stack: Callable[..., ProgramRun]) -> None:
    """Two target groups x (a 5xx-rate alarm over two metrics + an unhealthy-hosts alarm over one) = 6, and the
    commit-status feedback's two alarms (function errors, dead letters) over one metric each = 2, which exist only
    with a topic to tell (dev has none)."""
    alone = line(pricing.estimate(dev, "eu-west-1"), "CloudWatch alarm metrics")
    assert alone is not None and alone.quantity == 6 and "commit-status" not in alone.basis
    told = run_stack("dev", overrides={"notificationTopic": "true"})
    alarms = line(pricing.estimate(told, "eu-west-1"), "CloudWatch alarm metrics")
    assert alarms is not None and alarms.quantity == 6 + 2
    assert "5xx-rate (2 metrics)" in alarms.basis
    assert "commit-status-errors (1 metric)" in alarms.basis
    assert "commit-status-dead-letters (1 metric)" in alarms.basis
    without = run_stack("dev", overrides={"rollbackOnAlarm": "false", "notificationTopic": "true"})
    feedback_only = line(pricing.estimate(without, "eu-west-1"), "CloudWatch alarm metrics")
    assert feedback_only is not None and feedback_only.quantity == 2
    none = run_stack("dev", overrides={"rollbackOnAlarm": "false", "commitStatus": "false"})
    assert line(pricing.estimate(none, "eu-west-1"), "CloudWatch alarm metrics") is None


def test_cost_follows_the_nat_gateways(dev: ProgramRun, prod: ProgramRun, run_stack: Callable[..., ProgramRun]) -> None:
    region = "eu-west-1"
    single = run_stack("prod", overrides={"natGateways": "single"})
    estimates = {
        name: pricing.estimate(run, region) for name, run in (("dev", dev), ("prod", prod), ("single", single))
    }
    counts = {
        "dev": len(dev.of_type(rt.EC2_NAT_GATEWAY)),
        "prod": len(prod.of_type(rt.EC2_NAT_GATEWAY)),
        "single": len(single.of_type(rt.EC2_NAT_GATEWAY)),
    }
    assert counts["dev"] == 0 and counts["single"] == 1 and counts["prod"] > 1
    hours = pricing.load_prices().hours_per_month
    for name, est in estimates.items():
        nat = line(est, "NAT gateway hours")
        assert (nat.quantity if nat else 0) == counts[name] * hours
    assert estimates["prod"].total > estimates["single"].total


def test_cost_md_shows_each_line_with_quantity_unit_price_source_and_date(dev_plan: dict[str, bytes]) -> None:
    cost_md = text(dev_plan, "cost.md")
    table = pricing.load_prices()
    assert table.read_on in cost_md and "Approximate" in cost_md
    for url in table.sources.values():
        assert url in cost_md
    fixed = cost_md.split("| Item |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| ([^|*]+) \| ([\d,.]+) [\w-]+ \| \$([\d.]+) \| \$([\d,.]+) \|", fixed, flags=re.M)
    assert len(rows) >= 4  # ALB, LCU, Fargate vCPU and memory at least
    for item, quantity, unit_price, monthly in rows:
        assert float(monthly.replace(",", "")) == pytest.approx(
            float(quantity.replace(",", "")) * float(unit_price), abs=0.006
        ), item
    total = re.search(r"\*\*Estimated fixed monthly cost: \$([\d,]+\.\d\d)\*\*", cost_md)
    assert total is not None
    assert float(total.group(1).replace(",", "")) == pytest.approx(
        sum(float(row[3].replace(",", "")) for row in rows), abs=0.01 * len(rows)
    )
    assert f"**${total.group(1)}**" in text(dev_plan, "plan.md")


def test_the_price_table_covers_every_committed_stack_region() -> None:
    table = pricing.load_prices()
    assert {"us-east-1", "eu-west-1"} <= set(table.regions)
    keys = set(table.regions["us-east-1"])
    for region, prices in table.regions.items():
        assert set(prices) == keys, region
    for stack in STACKS:
        region = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["aws:region"]
        assert region in table.regions, stack


def test_a_region_without_prices_is_reported_not_guessed(dev: ProgramRun) -> None:
    est = pricing.estimate(dev, "ap-nowhere-9")
    assert not est.priced and not est.fixed and est.total == 0
    assert "ap-nowhere-9" in pricing.render_cost_md(est)


# --- The benchmark's synthetic program -------------------------------------------------------------


def test_the_benchmark_program_registers_the_requested_number_of_resources(tmp_path: Path) -> None:
    files, run = run_synthetic(23)
    assert len(run.resources) == 23
    assert text(render_plan(run, files).files, "plan.md").count("\n### ") == 23


def test_the_plan_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the plan tried to use the network")

    for name in ("getaddrinfo", "create_connection"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    plan = build_plan("dev")
    assert plan.resource_count == len(plan.run.resources) > 0


def test_the_plan_shows_what_replaces_the_upload_key(dev: ProgramRun) -> None:
    """A reviewer sees that the access key is replaced with its rotation (replacementTrigger), not when."""
    plan = text(render_plan(dev, stack_files("dev")).files, "plan.md")
    key_section = plan.split("### `upload-identity-key` · ", 1)[1].split("###", 1)[0]
    assert "replaced when this changes (replacementTrigger): (known after apply: upload-identity-key-rotation." in (
        key_section
    )
    assert "2025-01-01" not in plan, "the engine's stand-in timestamp is not shown as if real"
