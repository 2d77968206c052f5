"""Offline plan of a stack: ``python -m offline.plan <stack> [--out DIR] [--root DIR]`` (``make plan STACK=dev``).

Runs the real program (``__main__.py``) for the stack's config, loaded by the same loader as the tests
(``offline.stack_files``), on the in-process engine (``offline.engine``): no Pulumi CLI, no cloud account, no
network. Writes into ``build/<stack>/``:

- ``plan.md``: every registered resource grouped by its top-level component, with its inputs and options;
- ``pipeline.md``: a Mermaid diagram of the delivery flow with the stack's names;
- ``cost.md``: the estimated fixed monthly cost (``offline.pricing``);
- the generated files, byte-identical to the stack outputs they come from (``GENERATED_FILES``).

What the files show is made safe for a merge-request artifact: secret values (anything the engine saw wrapped
as a secret, secret stack outputs, the secret config values and their offline placeholders) are replaced by
``[secret]`` everywhere, and the values only AWS can know, which the engine invents (ids ending in ``-id``,
ARNs and DNS names, account ``123456789012``), are shown as ``(known after apply: <resource>.<attribute>)`` or
``{account-id}``. The generated files are the exception: they are the stack outputs verbatim, so they carry
the engine's stand-in account id where the deployed stack has the real one.

Nothing is written unless the whole plan succeeds: a bad config exits non-zero with the config error on
stderr and leaves the output directory untouched. Output is deterministic (sorted, no timestamps).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.build_stage import EMBEDDED_FILES, embedded_files
from components.config import SECRET_KEYS
from components.config_types import ConfigError
from offline import mermaid, pricing
from offline.engine import ACCOUNT_ID, ProgramRun, Registration, is_secret, run_program, unwrap
from offline.stack_files import ROOT, StackFileError, StackFiles, load_stack_files, secret_placeholder
from policy import resource_types as rt

APP_CI_FILE = "app.gitlab-ci.yml"
APP_CI_OUTPUT = "gitlabCiYml"
"""The one generated file an operator takes from a stack output (into the application repository)."""


@dataclass(frozen=True)
class GeneratedFile:
    name: str
    source: str
    """Where the plan read it: a stack output, or a resource's property."""
    content: str | None
    """``None`` when the program registered nothing to read it from."""


def generated_files(run: ProgramRun) -> list[GeneratedFile]:
    """The files the program renders, read from what it registers, byte for byte: the application's job file
    (a stack output), the build's buildspec (its CodeBuild project) and the two deployment templates the
    buildspec carries."""
    found = [GeneratedFile(APP_CI_FILE, f"stack output {code(APP_CI_OUTPUT)}", run.outputs.get(APP_CI_OUTPUT))]
    builds = [
        p
        for p in run.of_type(rt.CODEBUILD_PROJECT)
        if embedded_files(str((p.props.get("source") or {}).get("buildspec", "")))
    ]
    buildspec = str(builds[0].props["source"]["buildspec"]) if builds else None
    source = f"CodeBuild project {code(str(builds[0].props.get('name')))}" if builds else "no CodeBuild project"
    found.append(GeneratedFile("buildspec.yml", f"{source}, its buildspec", buildspec))
    embedded = embedded_files(buildspec) if buildspec else {}
    for name in EMBEDDED_FILES.values():
        found.append(GeneratedFile(name, f"{source}, carried by its buildspec", embedded.get(name)))
    return found


SECRET = "[secret]"
KNOWN_AFTER_APPLY = "(known after apply)"
ACCOUNT_PLACEHOLDER = "{account-id}"

# Outputs of a registration the engine invents in the shape AWS would return them (see offline.engine).
_COMPUTED_KEYS = frozenset(
    {
        "arn",
        "arnSuffix",
        "arnWithoutRevision",
        "dnsName",
        "zoneId",
        "repositoryUrl",
        "registryId",
        "bucketDomainName",
        "bucketRegionalDomainName",
        "uniqueId",
    }
)
# Components the delivery flow passes through, in its order; other components follow, by name.
_FLOW = ("Network", "FargateService", "SourceBucket", "BuildStage", "DeployStage", "UploadIdentity", "GitLabProject")
_INLINE_MAX = 100
_COLLAPSE_LINES = 15


class PlanError(Exception):
    """A problem that stops the plan before anything is written (exit status 2)."""


# --- Making values safe to show -------------------------------------------------------------------


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _secret_leaves(value: Any, inside: bool = False) -> Iterable[str]:
    """Every string under a secret wrapper in ``value``."""
    if is_secret(value):
        yield from _secret_leaves(value["value"], True)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _secret_leaves(v, inside)
    elif isinstance(value, list):
        for v in value:
            yield from _secret_leaves(v, inside)
    elif inside and isinstance(value, str):
        yield value


def _alternation(values: Iterable[str]) -> str:
    return "|".join(re.escape(v) for v in sorted(set(values), key=lambda v: (-len(v), v)))


class Sanitizer:
    """Redacts secrets and replaces invented (AWS-only) values with placeholders, in values and text."""

    def __init__(self, run: ProgramRun, secret_values: Iterable[str] = ()) -> None:
        secrets: set[str] = {v for v in secret_values if v}
        for r in run.resources:
            secrets.update(_secret_leaves(r.inputs))
            secrets.update(_secret_leaves(r.state))
            for prop in r.additional_secret_outputs:
                secrets.update(str(v) for v in _leaves(unwrap(r.inputs.get(prop))) if v not in (None, ""))
        for name in run.secret_outputs:
            secrets.update(str(v) for v in _leaves(run.outputs.get(name)) if v not in (None, ""))
        # A multi-line secret (a private key) may reappear re-indented: redact its long lines on their own too.
        for s in list(secrets):
            secrets.update(line.strip() for line in s.splitlines() if len(line.strip()) >= 16)
        self.secrets = frozenset(s for s in secrets if s.strip())
        substrings = [s for s in self.secrets if len(s) >= 4]
        self._secret_re = re.compile(_alternation(substrings)) if substrings else None

        labels: dict[str, set[str]] = {}
        for r in run.resources:
            if not r.custom or r.type.startswith("pulumi:providers:"):
                continue
            if r.id:
                labels.setdefault(r.id, set()).add(f"{r.name}.id")
            for key, value in r.state.items():
                if not isinstance(value, str) or not value or r.inputs.get(key) == value:
                    continue
                # The account id alone is not one resource's attribute: it becomes ACCOUNT_PLACEHOLDER below.
                if value != ACCOUNT_ID and (key in _COMPUTED_KEYS or ACCOUNT_ID in value):
                    labels.setdefault(value, set()).add(f"{r.name}.{key}")
        self.invented = {
            value: f"(known after apply: {next(iter(names))})" if len(names) == 1 else KNOWN_AFTER_APPLY
            for value, names in labels.items()
            if value not in self.secrets
        }
        self._invented_re = (
            re.compile(r"(?<![\w-])(?:" + _alternation(self.invented) + r")(?![\w-])") if self.invented else None
        )
        self.warnings: list[str] = []

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced."""
        if self._secret_re is None:
            return text
        return self._secret_re.sub(SECRET, text)

    def text(self, text: str, where: str = "") -> str:
        """``text`` made safe to show: secrets redacted, invented values replaced by placeholders."""
        if text in self.secrets:
            return SECRET
        redacted = self.redact(text)
        if redacted != text and where:
            self.warnings.append(f"{where}: a secret value appears in a property not marked secret (redacted here)")
        if self._invented_re is not None:
            redacted = self._invented_re.sub(lambda m: self.invented[m.group(0)], redacted)
        return redacted.replace(ACCOUNT_ID, ACCOUNT_PLACEHOLDER)

    def value(self, value: Any, where: str = "") -> Any:
        """A registered value made safe to show (secret wrappers become ``[secret]``)."""
        if is_secret(value):
            return SECRET
        if isinstance(value, dict):
            return {k: self.value(v, where) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, where) for v in value]
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return self.text(value, where)
        return value


# --- Markdown helpers -----------------------------------------------------------------------------


def code(text: str) -> str:
    """An inline code span that survives backticks and table pipes in ``text``."""
    ticks = max((len(m) for m in re.findall(r"`+", text)), default=0) + 1
    fence = "`" * ticks
    pad = " " if text.startswith("`") or text.endswith("`") or ticks > 1 else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def block(text: str, lang: str = "") -> list[str]:
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`{3,}", text)), default=0) + 1)
    return [f"{fence}{lang}", *text.rstrip("\n").split("\n"), fence]


def _as_document(value: str) -> tuple[str, str] | None:
    """A JSON document in a string (a policy, container definitions...), pretty-printed."""
    stripped = value.strip()
    if stripped[:1] not in ("{", "["):
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    return json.dumps(parsed, indent=2, ensure_ascii=False), "json"


def _lift_texts(value: Any, path: str, lifted: list[tuple[str, str]]) -> Any:
    """``value`` with its multi-line strings (a buildspec inside ``source``...) moved out to ``lifted``."""
    if isinstance(value, dict):
        return {k: _lift_texts(v, f"{path}.{k}", lifted) for k, v in value.items()}
    if isinstance(value, list):
        return [_lift_texts(v, f"{path}[{i}]", lifted) for i, v in enumerate(value)]
    if isinstance(value, str) and "\n" in value.strip():
        lifted.append((path, value))
        return f"(shown below as {path})"
    return value


def _block_lines(key: str, body: str, lang: str) -> list[str]:
    lines = body.rstrip("\n").count("\n") + 1
    kind = "JSON" if lang == "json" else "text"
    if lines > _COLLAPSE_LINES:
        return [
            f"<details><summary><code>{key}</code>: {kind}, {lines} lines</summary>",
            "",
            *block(body, lang),
            "",
            "</details>",
            "",
        ]
    return [f"**{key}** ({kind}):", "", *block(body, lang), ""]


def _render_text(key: str, value: str) -> tuple[str | None, list[str]]:
    document = _as_document(value)
    if document is not None:
        return None, _block_lines(key, *document)
    if "\n" in value or len(value) > _INLINE_MAX:
        return None, _block_lines(key, value, "")
    return code(value), []


def render_property(key: str, value: Any) -> tuple[str | None, list[str]]:
    """A property as a table cell (short values) or as blocks (documents, long or multi-line values)."""
    if isinstance(value, str):
        return _render_text(key, value)
    if isinstance(value, bool) or value is None:
        return code(json.dumps(value)), []
    if isinstance(value, (int, float)):
        return code(str(value)), []
    lifted: list[tuple[str, str]] = []
    value = _lift_texts(value, key, lifted)
    extra = [line for path, text in lifted for line in render_property(path, text)[1]]
    compact = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(compact) <= _INLINE_MAX:
        return code(compact), extra
    return None, _block_lines(key, json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False), "json") + extra


# --- The plan -------------------------------------------------------------------------------------


@dataclass
class Group:
    title: str
    root: Registration | None
    """The top-level component, or None for resources registered at the top of the stack."""
    members: list[Registration] = field(default_factory=list)


def class_name(typ: str) -> str:
    return typ.rsplit(":", 1)[-1]


def group_resources(run: ProgramRun) -> list[Group]:
    """Resources grouped by their top-level component ancestor (the parent URN chain), in the flow's order."""
    by_urn = {r.urn: r for r in run.resources}

    def top(r: Registration) -> Registration:
        while r.parent in by_urn:
            r = by_urn[r.parent]
        return r

    stack = Group("Stack (top level)", None)
    groups: dict[str, Group] = {}
    for r in run.resources:
        root = top(r)
        if root.custom:
            stack.members.append(r)
            continue
        group = groups.setdefault(root.urn, Group(f"{class_name(root.type)} `{root.name}`", root))
        group.members.append(r)

    def order(g: Group) -> tuple[int, str, str]:
        assert g.root is not None
        cls = class_name(g.root.type)
        return (_FLOW.index(cls) if cls in _FLOW else len(_FLOW), cls, g.root.name)

    ordered = sorted(groups.values(), key=order)
    for g in [stack, *ordered]:
        g.members.sort(key=lambda r: (r is not g.root, r.type, r.name, r.urn))
    return [g for g in [stack, *ordered] if g.members]


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", text.lower()).strip().replace(" ", "-")


def render_resource(r: Registration, group: Group, by_urn: Mapping[str, Registration], s: Sanitizer) -> list[str]:
    kind = "component" if not r.custom else ("provider" if r.type.startswith("pulumi:providers:") else "resource")
    out = [f"### {code(r.name)} · {code(r.type)}", ""]
    facts = [kind]
    parent = by_urn.get(r.parent)
    if parent is not None and parent is not group.root:
        facts.append(f"parent {code(parent.name)}")
    if r.ignore_changes:
        facts.append("ignoreChanges " + ", ".join(code(p) for p in sorted(r.ignore_changes)))
    if r.additional_secret_outputs:
        facts.append("secret outputs " + ", ".join(code(p) for p in sorted(r.additional_secret_outputs)))
    if r.protect:
        facts.append("protect")
    if r.retain_on_delete:
        facts.append("retainOnDelete")
    if r.replacement_trigger is not None:
        facts.append(f"replaced when this changes (replacementTrigger): {s.value(r.replacement_trigger, r.name)}")
    if not r.custom:
        children = sum(1 for x in by_urn.values() if x.parent == r.urn)
        facts.append(f"{children} direct children")
    out += ["_" + "; ".join(facts) + "_", ""]

    secret_props = set(r.additional_secret_outputs)
    rows: list[str] = []
    blocks: list[str] = []
    for key in sorted(r.inputs):
        raw = r.inputs[key]
        if raw is None or raw == [] or raw == {}:
            continue
        value = SECRET if key in secret_props else s.value(raw, f"{r.name}.{key}")
        cell, lines = render_property(key, value)
        if cell is not None:
            rows.append(f"| {key} | {cell} |")
        blocks += lines
    if rows:
        out += ["| Property | Value |", "|---|---|", *rows, ""]
    out += blocks
    return out


@dataclass
class Plan:
    """Everything the plan writes, as bytes by relative path, plus what the summary reports."""

    files: dict[str, bytes]
    resource_count: int
    group_count: int
    cost: pricing.CostEstimate
    warnings: list[str]
    run: ProgramRun
    """The program run the plan shows."""


def region_of(run: ProgramRun, files: StackFiles) -> str:
    for r in run.of_type(rt.AWS_PROVIDER):
        region = r.props.get("region")
        if isinstance(region, str):
            return region
    return files.config.get("aws:region", "us-east-1")


def render_plan(run: ProgramRun, files: StackFiles, secret_values: Iterable[str] = ()) -> Plan:
    """Renders every file of the plan from one program run. Pure: same run, same bytes."""
    placeholders = {secret_placeholder(k) for k in [*SECRET_KEYS, *files.secret_keys]}
    config_secrets = {files.config[k] for k in files.secret_keys if k in files.config}
    s = Sanitizer(run, [*placeholders, *config_secrets, *secret_values])
    groups = group_resources(run)
    region = region_of(run, files)
    table = pricing.load_prices()
    cost = pricing.estimate(run, region, table)
    warnings: list[str] = []
    out, generated = _write_generated(generated_files(run), s, warnings)
    title = f"{files.project} / {files.stack}"
    md = _header(run, files, region, cost)
    if warnings:
        md += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    md += ["## Contents", "", "| Group | Resources |", "|---|---:|"]
    md += [f"| [{g.title.replace('`', '')}](#{_anchor(g.title)}) | {len(g.members)} |" for g in groups]
    md += _outputs_section(run, s, written={APP_CI_OUTPUT: APP_CI_FILE} if APP_CI_FILE in out else {})
    md += [*engine_section(run), ""]
    md += [
        "## Generated files",
        "",
        "Written next to this file, byte for byte what the program registers. Where they hold an account id, it is "
        "the offline engine's stand-in (the example account of the AWS documentation); the deployed stack renders "
        "the real one.",
        "",
        "| File | From | |",
        "|---|---|---|",
        *[f"| {code(f.name)} | {f.source} | {status} |" for f, status in generated],
        "",
    ]
    by_urn = {r.urn: r for r in run.resources}
    for g in groups:
        md += [f"## {g.title}", "", f"{_count(len(g.members), 'resource')}.", ""]
        for r in g.members:
            md += render_resource(r, g, by_urn, s)
    # Leaks found while rendering (a secret in a plain property) are reported too, once each.
    leak_warnings = sorted(set(s.warnings))
    if leak_warnings:
        at = md.index("## Contents")
        md[at:at] = ["## Secret leaks", "", *[f"- {w}" for w in leak_warnings], ""]
    warnings += leak_warnings
    diagram = mermaid.pipeline_markdown(run, s.text, title=title)
    cost_md = pricing.render_cost_md(cost, table, title=f"Estimated monthly cost: {title}")
    # A last pass over every text file: whatever path a value took, no secret leaves the plan.
    out["plan.md"] = s.redact("\n".join(md).rstrip("\n") + "\n").encode()
    out["pipeline.md"] = s.redact(diagram).encode()
    out["cost.md"] = s.redact(cost_md).encode()
    return Plan(dict(sorted(out.items())), len(run.resources), len(groups), cost, warnings, run)


def _owned(resources: list[Registration]) -> str:
    return "; ".join(f"{code(r.name)}: " + ", ".join(code(f) for f in r.ignore_changes) for r in resources) or "-"


def engine_section(run: ProgramRun) -> list[str]:
    """What deploys the service, what it owns afterwards (read from the resources' ignoreChanges), and what
    switching a deployed stack to this engine does."""
    services = run.of_type(rt.ECS_SERVICE)
    native = [s for s in services if (s.props.get("deploymentController") or {}).get("type") == "ECS"]
    md = ["", "## Deployment engine", ""]
    if native:
        config = native[0].props.get("deploymentConfiguration") or {}
        shift = config.get("canaryConfiguration") or config.get("linearConfiguration") or {}
        shown = ", ".join(f"{k} {v}" for k, v in sorted(shift.items()))
        rules = run.of_type(rt.LB_LISTENER_RULE)
        md += [
            f"`ecs`: ECS-native blue/green, strategy {code(str(config.get('strategy')))}"
            + (f" ({shown})" if shown else "")
            + f", bake time {config.get('bakeTimeInMinutes')} min. ECS shifts traffic by reweighting the listener "
            "rules and deploys new task-definition revisions; the program leaves those fields to it "
            f"(ignoreChanges): {_owned(native)}; {_owned(rules)}. Run `pulumi up --refresh` so that Pulumi sees "
            "what ECS changed before it sends an update.",
            "",
            "Switching a stack deployed with `codedeploy` to this engine: the ECS service is **updated in place** "
            "(UpdateService changes its deployment controller from `CODE_DEPLOY` to `ECS`; the AWS provider does "
            "not replace the service), the CodeDeploy application, group and role are deleted, and the listener "
            "rules, the ECS infrastructure role and the deploy project are created. "
            + (
                "`engineMigration` is on: this run also sends the service's load-balancer settings. Remove it "
                "after the switch."
                if "loadBalancers" not in native[0].ignore_changes
                else "That one `pulumi up` needs `engineMigration: true` (README, Switching engines)."
            ),
        ]
        return md
    groups = run.of_type(rt.CODEDEPLOY_DEPLOYMENT_GROUP)
    if not groups:
        none = "No blue/green deployment engine: neither a deployment group nor an ECS service deployed by ECS."
        return [*md, none]
    listeners = [r for r in run.of_type(rt.LB_LISTENER) if r.ignore_changes]
    md += [
        f"`codedeploy`: CodeDeploy deployment group {code(str(groups[0].props.get('deploymentGroupName')))}, "
        f"{code(str(groups[0].props.get('deploymentConfigName')))}. CodeDeploy shifts traffic by rewriting the "
        "listeners and deploys new task-definition revisions; the program leaves those fields to it "
        f"(ignoreChanges): {_owned(services)}; {_owned(listeners)}.",
        "",
        "Switching this stack to `ecs` later updates the ECS service in place (README, Switching engines).",
    ]
    return md


def _write_generated(
    found: list[GeneratedFile], s: Sanitizer, warnings: list[str]
) -> tuple[dict[str, bytes], list[tuple[GeneratedFile, str]]]:
    """The generated files to write (none holding a secret), and each one's status for the table."""
    out: dict[str, bytes] = {}
    statuses: list[tuple[GeneratedFile, str]] = []
    for f in found:
        if f.content is None:
            statuses.append((f, "not registered by the program: not written"))
            warnings.append(f"{f.name}: {f.source} holds nothing, so it was not written")
        elif s.redact(f.content) != f.content:
            statuses.append((f, "contains a secret: not written"))
            warnings.append(f"{f.name} ({f.source}) contains a secret, so it was not written")
        else:
            out[f.name] = f.content.encode()
            lines = f.content.count("\n") + (0 if f.content.endswith("\n") else 1)
            statuses.append((f, f"{len(f.content.encode())} bytes, {lines} lines"))
    return out, statuses


def _header(run: ProgramRun, files: StackFiles, region: str, cost: pricing.CostEstimate) -> list[str]:
    return [
        f"# Offline plan: {files.project} / {files.stack}",
        "",
        "Generated by `make plan` (`python -m offline.plan`) from the program and the committed stack files, on the "
        "offline engine. This is **not** a `pulumi preview`: there is no state and no cloud account, so it shows "
        "everything the stack would create, not a diff. Values only AWS knows read `(known after apply: …)` or "
        f"`{ACCOUNT_PLACEHOLDER}`; secrets read `{SECRET}`.",
        "",
        "| | |",
        "|---|---|",
        f"| Stack | {code(files.stack)} (project {code(files.project)}) |",
        f"| Region | {code(region)} |",
        f"| Resources | {len(run.resources)} registered ({_kinds(run.resources)}) |",
        f"| Estimated fixed monthly cost | {_cost_summary(cost)} — see [cost.md](cost.md) |",
        "| Delivery flow | [pipeline.md](pipeline.md) |",
        "",
    ]


def _outputs_section(run: ProgramRun, s: Sanitizer, written: Mapping[str, str]) -> list[str]:
    """The stack outputs, in the order the program exports them (the URL first), as `pulumi stack output` does."""
    md = ["", "## Stack outputs", "", "| Output | Value |", "|---|---|"]
    blocks: list[str] = []
    for name in [n for n in run.export_order if n in run.outputs] or list(run.outputs):
        shown: str | None
        if name in written:
            shown = f"written to {code(written[name])}"
        elif name in run.secret_outputs:
            shown = code(SECRET)
        else:
            value = s.value(run.outputs[name], f"output {name}")
            if isinstance(value, str) and "\n" not in value:
                shown = code(value)
            else:
                shown, lines = render_property(name, value)
                blocks += lines
        md.append(f"| {name} | {shown if shown is not None else 'below'} |")
    return [*md, "", *blocks]


def _kinds(resources: list[Registration]) -> str:
    components = sum(1 for r in resources if not r.custom)
    providers = sum(1 for r in resources if r.type.startswith("pulumi:providers:"))
    cloud = len(resources) - components - providers
    return f"{_count(components, 'component')}, {_count(cloud, 'cloud resource')}, {_count(providers, 'provider')}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _cost_summary(cost: pricing.CostEstimate) -> str:
    return f"**{pricing.money(cost.total)}**" if cost.priced else "not estimated (no prices for the region)"


# --- Running it -----------------------------------------------------------------------------------


def build_plan(
    stack: str,
    root: Path = ROOT,
    *,
    overrides: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Plan:
    """Loads the stack's config, runs the program offline and renders the plan, writing nothing.

    Raises ``ConfigError`` / ``StackFileError`` for a bad config; ``overrides`` (bare or namespaced keys) are
    applied on top of the stack files, as in the tests.
    """
    progress(f"loading Pulumi.yaml and Pulumi.{stack}.yaml from {root}")
    files = load_stack_files(stack, root, required_secrets=tuple(sorted(SECRET_KEYS)))
    program = root / "__main__.py"
    if not program.exists():
        raise PlanError(f"no program at {program}")
    started = time.perf_counter()
    progress(f"running {program.name} on the offline engine (no cloud, no network)")
    run = run_program(files, overrides=overrides, program=program)
    progress(f"registered {len(run.resources)} resources in {time.perf_counter() - started:.2f} s")
    progress("rendering plan.md, pipeline.md, cost.md and the generated files")
    secret_keys = set(files.secret_keys)
    planted = [
        v
        for k, v in (overrides or {}).items()
        if (k if ":" in k else f"{files.project}:{k}") in secret_keys or k.split(":")[-1] in SECRET_KEYS
    ]
    return render_plan(run, files, planted)


def write_plan(plan: Plan, out: Path) -> None:
    """Replaces ``out`` with the plan's files in one step (a new directory renamed into place)."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "plan.md").exists())):
        raise PlanError(f"{out} exists and does not hold a previous plan; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, data in plan.files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        staging.chmod(0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.plan",
        description="Offline plan of a stack: resources, delivery diagram, generated files, monthly cost.",
    )
    parser.add_argument("stack", help="stack name (a committed Pulumi.<stack>.yaml)")
    parser.add_argument("--out", type=Path, help="directory to write (default: <root>/build/<stack>)")
    parser.add_argument("--root", type=Path, default=ROOT, help="project directory (Pulumi.yaml, __main__.py)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    out = args.out or root / "build" / args.stack

    def progress(message: str) -> None:
        print(f"plan: {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    # The run is short and mostly imports pulumi-aws modules (thousands of classes): the cyclic garbage
    # collector, scanning them over and over, costs a third of the run and frees almost nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        plan = build_plan(args.stack, root, progress=progress)
        progress(f"writing {out}")
        write_plan(plan, out)
    except (ConfigError, StackFileError, PlanError) as error:
        print(f"plan: {args.stack}: {error}\nplan: nothing written", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("plan: the program failed on the offline engine; nothing written", file=sys.stderr)
        return 1
    finally:
        if gc_was_enabled:
            gc.enable()

    elapsed = time.perf_counter() - started
    cost = f"{pricing.money(plan.cost.total)}/month (estimated, {plan.cost.region})" if plan.cost.priced else "n/a"
    print(f"plan {args.stack}: {plan.resource_count} resources in {plan.group_count} groups; fixed cost {cost}")
    for w in plan.warnings:
        print(f"  warning: {w}")
    for rel in plan.files:
        print(f"  {out / rel}")
    print(f"  done in {elapsed:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
