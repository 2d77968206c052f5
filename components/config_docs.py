"""What the config models document: the JSON Schema of stack files and README's configuration table.

Both are generated from the section models of ``components/config.py`` and committed; ``make config-docs``
rewrites them and a test fails when either is out of step with the models.

The schema describes ``Pulumi.<stack>.yaml`` as the Pulumi CLI writes it, so it accepts what the program
accepts: numbers and booleans also as the strings ``pulumi config set`` writes (``"512"``, ``"true"``), lists
and maps also as JSON strings, and secrets as ``secure:`` objects. Every stack file names it on its first line
(``# yaml-language-server: $schema=...``), so editors with the YAML language server complete and check keys.

    python -m components.config_docs           # rewrite the schema and README's table
    python -m components.config_docs --check   # exit 1 when either is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from components.base import PROJECT, ROOT
from components.config import REGION_PATTERN, SECTIONS, key_of
from components.config_types import ConfigModel, field_extra

SCHEMA_FILE = "schemas/stack-file.schema.json"
SCHEMA_PATH = ROOT / SCHEMA_FILE
MODELINE = f"# yaml-language-server: $schema={SCHEMA_FILE}"
"""The first line of every ``Pulumi.<stack>.yaml`` (the path is relative to the stack file)."""
README_PATH = ROOT / "README.md"
TABLE_BEGIN = "<!-- config-table: generated from the config models by `make config-docs`; do not edit -->"
TABLE_END = "<!-- /config-table -->"

# What the CLI reads from a stack file besides `config:`
# (https://www.pulumi.com/docs/iac/concepts/projects/stack-settings-file/).
_STACK_FILE_SETTINGS: dict[str, Any] = {
    "secretsprovider": {"type": "string", "description": "secrets provider of the stack (written by the CLI)"},
    "encryptedkey": {"type": "string", "description": "the stack's data key (written by the CLI)"},
    "encryptionsalt": {"type": "string", "description": "salt of the passphrase provider (written by the CLI)"},
    "environment": {"description": "Pulumi ESC environments imported by the stack"},
}
_INTEGER_TEXT = {"type": "string", "pattern": r"^\s*-?\d+\s*$"}
_BOOLEAN_TEXT = {"type": "string", "pattern": r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$"}
_JSON_TEXT = {"type": "string", "description": "JSON, as `pulumi config set` without `--path` writes it"}
_SECURE = {
    "type": "object",
    "properties": {"secure": {"type": "string", "minLength": 1}},
    "required": ["secure"],
    "additionalProperties": False,
}
_NOT_SCHEMA = ("title", "x-required", "x-secret", "x-default", "writeOnly", "format")


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    """A pydantic property schema without nulls (unset is how a stack file says null) or pydantic's extras."""
    found = dict(prop)
    variants = [v for v in found.pop("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        found = {**variants[0], **found}
    if found.get("default", "") is None:
        del found["default"]
    if "pattern" in found:
        # JSON Schema patterns are ECMA-262: no Python-style named groups.
        found["pattern"] = found["pattern"].replace("(?P<", "(?<")
    return {k: v for k, v in found.items() if k not in _NOT_SCHEMA}


def _as_stack_files_write_it(prop: dict[str, Any]) -> dict[str, Any]:
    """A value schema that also accepts the string form the CLI writes."""
    kind = prop.get("type")
    if kind == "integer" and "enum" in prop:
        return {"anyOf": [prop, {"type": "string", "enum": [str(v) for v in prop["enum"]]}]}
    if kind == "integer":
        return {"anyOf": [prop, _INTEGER_TEXT]}
    if kind == "boolean":
        return {"anyOf": [prop, _BOOLEAN_TEXT]}
    if kind in ("array", "object"):
        return {"anyOf": [prop, _JSON_TEXT]}
    if kind == "string" and "enum" not in prop:
        return {**prop, "minLength": 1}
    return prop


def key_schema(name: str, info: FieldInfo, prop: dict[str, Any]) -> dict[str, Any]:
    """The schema of one ``gitlab-fargate:<key>`` of the stack file."""
    if field_extra(info).get("x-secret"):
        return {**_SECURE, "description": f"{info.description} (set with `pulumi config set --secret`)"}
    value = {k: v for k, v in _plain(prop).items() if k not in ("description", "default")}
    described = {"description": info.description}
    if prop.get("default") is not None:
        described["default"] = prop["default"]
    return {**described, **_as_stack_files_write_it(value)}


def _fields() -> Iterator[tuple[str, FieldInfo, dict[str, Any]]]:
    for model in SECTIONS.values():
        props = model.model_json_schema(by_alias=True)["properties"]
        for name, info in model.model_fields.items():
            yield key_of(name, info), info, props[key_of(name, info)]


def _required(model: type[ConfigModel]) -> list[str]:
    return [
        key_of(n, i) for n, i in model.model_fields.items() if i.is_required() and not field_extra(i).get("x-secret")
    ]


def stack_file_schema() -> dict[str, Any]:
    """The JSON Schema of a ``Pulumi.<stack>.yaml``."""
    keys = {f"{PROJECT}:{key}": key_schema(key, info, prop) for key, info, prop in _fields()}
    required = ["aws:region", *(f"{PROJECT}:{key}" for model in SECTIONS.values() for key in _required(model))]
    region = {"type": "string", "pattern": REGION_PATTERN, "description": "AWS region of the stack"}
    config = {
        "type": "object",
        "description": f"the stack's configuration: {PROJECT}:* keys and aws:region (README.md, Configuration)",
        "properties": {"aws:region": region, **keys},
        "patternProperties": {"^pulumi:": {}},
        "additionalProperties": False,
        "required": required,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Pulumi stack file of {PROJECT} (Pulumi.<stack>.yaml)",
        "description": f"Generated from the config models (components/config.py) by `make config-docs`: {SCHEMA_FILE}",
        "type": "object",
        "properties": {"config": config, **_STACK_FILE_SETTINGS},
        "required": ["config"],
        "additionalProperties": False,
    }


def schema_text() -> str:
    return json.dumps(stack_file_schema(), indent=2, ensure_ascii=False) + "\n"


# --- README's table -----------------------------------------------------------------------------------------


def _shown_default(info: FieldInfo) -> str:
    extra = field_extra(info)
    if "x-default" in extra:
        return str(extra["x-default"])
    if info.is_required():
        return "(required, secret)" if extra.get("x-secret") else "(required)"
    default = info.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, str):
        return f"`{default}`"
    return f"`{json.dumps(list(default) if isinstance(default, tuple) else default, ensure_ascii=False)}`"


def _allowed(prop: dict[str, Any]) -> str:
    """What a key accepts, from its schema: the enumeration, the range, or an example of the pattern."""
    value = _plain(prop)
    if value.get("type") == "boolean":
        return "`true`, `false`"
    if "enum" in value:
        return ", ".join(f"`{v}`" for v in value["enum"])
    if "minimum" in value and "maximum" in value:
        return f"{value['minimum']} to {value['maximum']}"
    example = value.get("examples") or (value.get("items") or {}).get("examples")
    return f"like `{example[0]}`" if example else ""


def config_table() -> str:
    """README's configuration table: one row per key, in the order of the sections."""
    rows = [
        "| key | default | allowed | meaning |",
        "| --- | --- | --- | --- |",
        "| `aws:region` | (required) | like `eu-west-1` | AWS region of the stack |",
    ]
    for key, info, prop in _fields():
        rows.append(f"| `{key}` | {_shown_default(info)} | {_allowed(prop)} | {info.description} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the table markers replaced by today's table."""
    before, found, rest = readme.partition(TABLE_BEGIN)
    _, found_end, after = rest.partition(TABLE_END)
    if not found or not found_end:
        raise ValueError(f"README.md has no {TABLE_BEGIN!r} ... {TABLE_END!r} markers")
    return f"{before}{TABLE_BEGIN}\n{config_table()}\n{TABLE_END}{after}"


def stale(root: Path = ROOT) -> list[str]:
    """The generated files that differ from what the models generate today."""
    found = []
    schema = root / SCHEMA_FILE
    if not schema.exists() or schema.read_text() != schema_text():
        found.append(SCHEMA_FILE)
    readme = (root / "README.md").read_text()
    if readme_with_table(readme) != readme:
        found.append("README.md (configuration table)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.config_docs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for name in out_of_date:
            print(f"{name} is out of date with the config models: run make config-docs", file=sys.stderr)
        return 1 if out_of_date else 0
    SCHEMA_PATH.parent.mkdir(exist_ok=True)
    SCHEMA_PATH.write_text(schema_text())
    README_PATH.write_text(readme_with_table(README_PATH.read_text()))
    print(f"wrote {SCHEMA_FILE} and README.md's configuration table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
