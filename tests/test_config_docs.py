"""components/config_docs.py: the JSON Schema of stack files and README's configuration table, generated from the
config models and committed.

Both must equal what the models generate today, every committed stack file must name the schema on its first line
and pass it, and the schema must agree with the program: whatever ``parse_config`` accepts, the schema accepts
(an editor must never flag a working stack file), and what the schema can tell is wrong, the program refuses too.
Stack files are checked with check-jsonschema, the validator an editor's YAML language server is compared with.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from components import config_docs
from components.base import PROJECT, ROOT
from components.config import KEYS, SECRET_KEYS, SECTIONS, parse_config
from components.config_docs import MODELINE, SCHEMA_FILE, SCHEMA_PATH, TABLE_BEGIN, TABLE_END, stale
from components.config_types import ConfigError, ConfigModel, Flag
from components.ecs_service import FARGATE_SIZES
from offline.engine import ACCOUNT_ID
from support.stacks import REGION, STACKS
from support.tools import tool

SECURE_TOKEN = {"secure": "v1:AAABAKc0ZGVmYXVsdA=="}
"""A ``secure:`` value as ``pulumi config set --secret`` writes it."""
BASE: dict[str, Any] = {
    "aws:region": REGION,
    f"{PROJECT}:gitlabProject": "shop/web",
    f"{PROJECT}:gitlabToken": SECURE_TOKEN,
}
"""What every stack file must hold."""


def check_jsonschema(*paths: Path) -> dict[str, list[str]]:
    """check-jsonschema over stack files against the committed schema, in one run: file name -> its errors."""
    done = subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(SCHEMA_PATH), "--output-format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    assert not report.get("parse_errors"), report["parse_errors"]
    found: dict[str, list[str]] = {}
    for error in report.get("errors", []):
        best = error.get("best_deep_match") or error
        found.setdefault(Path(error["filename"]).name, []).append(f"{best['path']}: {best['message']}")
    return found


def stack_file(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(f"{MODELINE}\n" + yaml.safe_dump({"config": config}, allow_unicode=True))
    return path


# --- The generated files are today's ----------------------------------------------------------------------------


def test_the_committed_schema_and_readme_table_are_what_the_models_generate() -> None:
    assert stale() == [], "run `make config-docs` and commit the result"
    assert config_docs.main(["--check"]) == 0


def _generated_copy(tmp_path: Path) -> Path:
    (tmp_path / SCHEMA_FILE).parent.mkdir(parents=True)
    shutil.copy(SCHEMA_PATH, tmp_path / SCHEMA_FILE)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    return tmp_path


def test_an_edited_schema_is_out_of_date(tmp_path: Path) -> None:
    root = _generated_copy(tmp_path)
    assert stale(root) == []
    schema = json.loads((root / SCHEMA_FILE).read_text())
    del schema["properties"]["config"]["properties"][f"{PROJECT}:cpu"]
    (root / SCHEMA_FILE).write_text(json.dumps(schema, indent=2) + "\n")
    assert stale(root) == [SCHEMA_FILE]
    (root / SCHEMA_FILE).unlink()
    assert stale(root) == [SCHEMA_FILE], "a missing schema is out of date too"


def test_an_edited_readme_table_is_out_of_date(tmp_path: Path) -> None:
    root = _generated_copy(tmp_path)
    readme = (root / "README.md").read_text()
    (root / "README.md").write_text(readme.replace("| `cpu` |", "| `cpus` |"))
    assert stale(root) == ["README.md (configuration table)"]


def test_text_outside_the_table_is_the_readmes_own(tmp_path: Path) -> None:
    root = _generated_copy(tmp_path)
    readme = (root / "README.md").read_text()
    (root / "README.md").write_text(readme + "\nA line of prose added after the table.\n")
    assert stale(root) == []


class Telemetry(ConfigModel):
    """A section a component might add."""

    telemetry_enabled: Flag = Field(False, description="send traces to X-Ray")


def test_a_changed_model_makes_both_files_out_of_date(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = _generated_copy(tmp_path)
    monkeypatch.setitem(SECTIONS, "telemetry", Telemetry)
    assert stale(root) == [SCHEMA_FILE, "README.md (configuration table)"]
    assert f"{PROJECT}:telemetryEnabled" in config_docs.stack_file_schema()["properties"]["config"]["properties"]
    assert "| `telemetryEnabled` | `false` | `true`, `false` | send traces to X-Ray |" in config_docs.config_table()


def test_the_schema_is_a_valid_json_schema() -> None:
    done = subprocess.run(
        [tool("check-jsonschema"), "--check-metaschema", str(SCHEMA_PATH)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- README's table -------------------------------------------------------------------------------------------


def test_the_readme_table_has_one_row_per_key() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    keys = [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]
    assert keys == ["aws:region", *KEYS], "one row per key, in the order of the sections"


def test_the_readme_table_shows_defaults_and_what_is_allowed() -> None:
    table = config_docs.config_table()
    assert "| `cpu` | `256` | `256`, `512`, `1024`, `2048`, `4096`, `8192`, `16384` |" in table
    assert "| `containerPort` | `80` | 1 to 65535 |" in table
    assert "| `gitlabToken` | (required, secret) |" in table
    assert "| `gitlabProject` | (required) | like `group/app` |" in table


# --- The committed stack files --------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_names_the_schema_on_its_first_line(stack: str) -> None:
    path = ROOT / f"Pulumi.{stack}.yaml"
    assert path.read_text().splitlines()[0] == MODELINE
    # The YAML language server resolves the path relative to the stack file.
    named = MODELINE.split("$schema=", 1)[1]
    assert (path.parent / named).resolve() == SCHEMA_PATH.resolve() and SCHEMA_PATH.exists()


def test_every_committed_stack_file_passes_the_schema() -> None:
    assert check_jsonschema(*(ROOT / f"Pulumi.{stack}.yaml" for stack in STACKS)) == {}


# --- What the schema refuses and accepts ----------------------------------------------------------------------

REFUSED: dict[str, dict[str, Any]] = {
    "misspelt-key": {f"{PROJECT}:contianerPort": 8080},
    "misspelt-namespace": {"gitlab-farget:cpu": 512},
    "bad-enum": {f"{PROJECT}:taskSubnets": "isolated"},
    "bad-cpu": {f"{PROJECT}:cpu": 300},
    "bad-cpu-text": {f"{PROJECT}:cpu": "300"},
    "plaintext-token": {f"{PROJECT}:gitlabToken": "glpat-in-plain-text"},
    "out-of-range": {f"{PROJECT}:containerPort": 70000},
    "not-a-flag": {f"{PROJECT}:manualApproval": "yes"},
    "list-of-numbers": {f"{PROJECT}:allowedCidrs": [1, 2]},
    "map-of-numbers": {f"{PROJECT}:tags": {"team": 1}},
    "empty-string": {f"{PROJECT}:buildImage": ""},
    "bad-region": {"aws:region": "Ireland"},
}
ACCEPTED: dict[str, dict[str, Any]] = {
    "cli-strings": {
        f"{PROJECT}:cpu": "512",
        f"{PROJECT}:memory": "1024",
        f"{PROJECT}:desiredCount": "3",
        f"{PROJECT}:manualApproval": "true",
        f"{PROJECT}:albAccessLogs": "False",
        f"{PROJECT}:logRetentionDays": "30",
    },
    "json-strings": {
        f"{PROJECT}:allowedCidrs": '["203.0.113.0/24"]',
        f"{PROJECT}:tags": '{"team": "web"}',
    },
    "yaml-values": {
        f"{PROJECT}:cpu": 512,
        f"{PROJECT}:memory": 1024,
        f"{PROJECT}:manualApproval": True,
        f"{PROJECT}:allowedCidrs": ["203.0.113.0/24"],
        f"{PROJECT}:environment": {"LOG_LEVEL": "info"},
    },
    "engine-keys": {"pulumi:tags": {"team": "web"}},
    # Conveniences the program documents: the `CodeDeployDefault.` prefix may be left out, and gitlabUrl may end in
    # a slash.
    "short-deployment-config": {f"{PROJECT}:deploymentConfig": "ECSCanary10Percent5Minutes"},
    "url-with-slash": {f"{PROJECT}:gitlabUrl": "https://gitlab.example.com/"},
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("schema-cases")
    paths = [stack_file(folder / f"{name}.yaml", {**BASE, **extra}) for name, extra in {**REFUSED, **ACCEPTED}.items()]
    return check_jsonschema(*paths)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_schema_refuses(case: str, verdicts: dict[str, list[str]]) -> None:
    assert f"{case}.yaml" in verdicts


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_schema_accepts(case: str, verdicts: dict[str, list[str]]) -> None:
    assert verdicts.get(f"{case}.yaml") is None, verdicts.get(f"{case}.yaml")


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_program_accepts_what_the_schema_must_accept(case: str) -> None:
    values, secret = program_values({**BASE, **ACCEPTED[case]})
    assert parse_config(values, stack="dev", region=REGION, secret_keys=secret)


def test_the_schema_requires_the_region_and_the_project_and_a_secret_token() -> None:
    config = config_docs.stack_file_schema()["properties"]["config"]
    assert config["required"] == ["aws:region", f"{PROJECT}:gitlabProject"]
    token = config["properties"][f"{PROJECT}:gitlabToken"]
    assert (token["type"], token["required"], token["additionalProperties"]) == ("object", ["secure"], False)


# --- The schema and parse_config agree, key by key ------------------------------------------------------------
#
# Samples come from each key's model: its default, its choices, its bounds, its example, and values just outside
# them. A sample is good (both must accept it) or bad (the program must refuse it; `schema_too` when the schema
# can tell, from the value's type, choices, bounds or pattern). Whatever the schema refuses, the program refuses.


@dataclass(frozen=True)
class Sample:
    key: str
    value: Any
    """As a stack file holds it (a YAML value, or the string `pulumi config set` writes)."""
    good: bool
    schema_too: bool = True

    @property
    def name(self) -> str:
        return f"{self.key}-{'good' if self.good else 'bad'}-{uuid.uuid5(uuid.NAMESPACE_OID, repr(self.value)).hex[:8]}"


def model_schema(key: str) -> dict[str, Any]:
    """A key's JSON Schema as its model declares it, with ``| None`` unwrapped."""
    section, _ = KEYS[key]
    prop: dict[str, Any] = SECTIONS[section].model_json_schema(by_alias=True)["properties"][key]
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    return {**variants[0], **prop} if len(variants) == 1 else prop


def _matches(schema: dict[str, Any], value: str) -> bool:
    return "pattern" not in schema or re.search(schema["pattern"], value) is not None


def example(key: str) -> str | None:
    """The key's documented example, its placeholders (``<region>``) filled in, if it then matches the pattern."""
    prop = model_schema(key)
    found = (prop.get("examples") or [None])[0]
    if found is None:
        return None
    host = str(model_schema("gitlabUrl")["examples"][0]).removeprefix("https://")
    for placeholder, value in {
        "<region>": REGION,
        "<account>": ACCOUNT_ID,
        "<id>": str(uuid.UUID(int=1)),
        "<host>": host,
    }.items():
        found = found.replace(placeholder, value)
    return found if _matches(prop, found) else None


def item_examples(key: str) -> list[str]:
    """Two different items of a list key, from its items' example (``[]`` when it has none)."""
    items = model_schema(key).get("items", {})
    first = (items.get("examples") or [None])[0]
    if first is None:
        return []
    second = next(v for v in (first[:-1] + "1", first[:-1] + "a", "a" + first) if v != first and _matches(items, v))
    return [first, second]


def _scalar_samples(key: str, prop: dict[str, Any]) -> list[Sample]:
    kind = prop.get("type")
    if "enum" in prop:
        choices = prop["enum"]
        good = [Sample(key, v, True) for c in (choices[0], choices[-1]) for v in (c, str(c))]
        outside = max(choices) + 1 if kind == "integer" else "NoSuchChoice"
        return [*good, Sample(key, outside, False), Sample(key, str(outside), False), Sample(key, "", False)]
    if kind == "boolean":
        return [
            *(Sample(key, v, True) for v in (True, "false", "TRUE")),
            Sample(key, "yes", False),
            Sample(key, 1, False),
        ]
    if kind == "integer":
        low, high = prop["minimum"], prop["maximum"]
        good = [Sample(key, v, True) for bound in (low, high) for v in (bound, str(bound))]
        bad = [Sample(key, v, False) for v in (low - 1, high + 1, "1.5", "abc")]
        return [*good, *bad, Sample(key, str(high + 1), False, schema_too=False)]
    found = [Sample(key, "", False)]
    if example(key) is not None:
        found.append(Sample(key, example(key), True))
    if "pattern" in prop:
        found.append(Sample(key, "not valid!", False))
    return found


def committed_values(key: str) -> list[Any]:
    """What the committed stack files set ``key`` to."""
    found = []
    for stack in STACKS:
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        if f"{PROJECT}:{key}" in config and config[f"{PROJECT}:{key}"] not in found:
            found.append(config[f"{PROJECT}:{key}"])
    return found


def samples(key: str) -> list[Sample]:
    """Good and bad values of ``key``, derived from its model (and what the committed stacks set it to)."""
    prop = model_schema(key)
    if key in SECRET_KEYS:
        return [Sample(key, SECURE_TOKEN, True), Sample(key, "plain-text", False)]
    found = [Sample(key, value, True) for value in committed_values(key)]
    default = prop.get("default")
    if default not in (None, [], {}):  # an empty default means unset, not a value to set
        found.append(Sample(key, default, True))
    if prop.get("type") == "array":
        items = item_examples(key)
        if items:
            found += [Sample(key, items, True), Sample(key, json.dumps(items), True)]
        found += [Sample(key, 5, False), Sample(key, {"a": "b"}, False), Sample(key, "not json", False, False)]
    elif prop.get("type") == "object":
        found += [Sample(key, {"a": "b"}, True), Sample(key, json.dumps({"a": "b"}), True)]
        found += [Sample(key, {"a": 1}, False), Sample(key, ["a"], False), Sample(key, "a=b", False, False)]
    else:
        found += _scalar_samples(key, prop)
    unique = {(repr(s.value), s.good): s for s in found}
    return list(unique.values())


def _fargate_partner(cpu: int | None = None, memory: int | None = None) -> dict[str, str]:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
    if cpu in FARGATE_SIZES:
        return {"memory": str(FARGATE_SIZES[cpu][0])}
    fits = [c for c, memories in FARGATE_SIZES.items() if memory in memories]
    return {"cpu": str(fits[0])} if fits else {}


def _as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else None


# What another key must say for a key to apply at all (its cross-field rules), from the other key's own samples.
COMPANIONS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "cpu": lambda v: _fargate_partner(cpu=_as_int(v)),
    "memory": lambda v: _fargate_partner(memory=_as_int(v)),
    "vpcId": lambda v: {"publicSubnetIds": item_examples("publicSubnetIds")},
    "publicSubnetIds": lambda v: {"vpcId": example("vpcId")},
    "privateSubnetIds": lambda v: {
        "vpcId": example("vpcId"),
        "publicSubnetIds": item_examples("publicSubnetIds"),
        "taskSubnets": "private",
    },
    "natGateways": lambda v: {"taskSubnets": "private"},
    "domainName": lambda v: {"hostedZoneId": example("hostedZoneId")},
    "hostedZoneId": lambda v: {"domainName": example("domainName")},
    "certificateArn": lambda v: {"domainName": example("domainName")},
    "sslPolicy": lambda v: {"domainName": example("domainName"), "hostedZoneId": example("hostedZoneId")},
    "oidcProviderArn": lambda v: {"uploadIdentity": "oidc", "gitlabUrl": model_schema("gitlabUrl")["examples"][0]},
    "engineMigration": lambda v: {"deploymentEngine": "ecs"},
}


def sample_config(sample: Sample) -> dict[str, Any]:
    """The stack file's config of a sample: what every stack holds, the key's companions, the sample."""
    others = COMPANIONS.get(sample.key, lambda v: {})(sample.value)
    return {**BASE, **{f"{PROJECT}:{k}": v for k, v in others.items()}, f"{PROJECT}:{sample.key}": sample.value}


def program_values(config: dict[str, Any]) -> tuple[dict[str, str], frozenset[str]]:
    """The project's keys as the program receives them (scalars as strings, structures as JSON), and the secret
    ones: what the CLI does with a stack file (tests/test_stack_files.py checks the offline loader does the same)."""
    values: dict[str, str] = {}
    secret = set()
    for full, value in config.items():
        if not full.startswith(f"{PROJECT}:"):
            continue
        key = full.split(":", 1)[1]
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = "decrypted-secret"
            secret.add(key)
        elif isinstance(value, bool):
            values[key] = "true" if value else "false"
        else:
            values[key] = value if isinstance(value, str) else json.dumps(value)
    return values, frozenset(secret)


def program_problems(sample: Sample) -> list[str]:
    values, secret = program_values(sample_config(sample))
    try:
        parse_config(values, stack="dev", region=REGION, secret_keys=secret)
    except ConfigError as err:
        return err.problems
    return []


ALL_SAMPLES = [s for key in KEYS for s in samples(key)]


@pytest.fixture(scope="module")
def schema_verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("samples")
    return check_jsonschema(*(stack_file(folder / f"{s.name}.yaml", sample_config(s)) for s in ALL_SAMPLES))


def test_every_key_has_good_and_bad_samples() -> None:
    for key in KEYS:
        kinds = {s.good for s in samples(key)}
        assert kinds == {True, False}, (key, samples(key))
    assert len({s.name for s in ALL_SAMPLES}) == len(ALL_SAMPLES)


@pytest.mark.parametrize("key", list(KEYS))
def test_the_schema_and_the_program_agree_on_the_key(key: str, schema_verdicts: dict[str, list[str]]) -> None:
    for sample in samples(key):
        schema_refuses = f"{sample.name}.yaml" in schema_verdicts
        found = program_problems(sample)
        shown = f"{key}={sample.value!r}: schema {schema_verdicts.get(f'{sample.name}.yaml')}, program {found}"
        if sample.good:
            assert not schema_refuses and not found, shown
            continue
        assert any(p.startswith(f"{PROJECT}:{key}: ") for p in found), shown
        if sample.schema_too:
            assert schema_refuses, shown
