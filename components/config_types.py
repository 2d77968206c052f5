"""What every section of the stack configuration is made of: a base model and the value types of stack files.

Each component declares the model of its own section (``NetworkConfig`` in ``network.py``...), built on
``ConfigModel``: frozen, unknown fields refused, each field's stack-file key its camelCase alias
(``gitlab-fargate:<alias>``), constraints as ``Field(...)``. ``components/config.py`` composes the sections into
the ``StackConfig`` and turns validation errors into messages that name the key, the bad value and what is
allowed.

Values reach a program as Pulumi passes them: strings, with lists and maps as JSON. The annotated types here
accept both that and the plain Python value (so tests and the JSON Schema of stack files use real types), and
refuse anything else with a sentence a user can act on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


class ConfigModel(BaseModel):
    """A section of the stack configuration."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        arbitrary_types_allowed=False,
    )


class ConfigError(ValueError):
    """Raised with every problem found in the stack configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class KeyProblems(ValueError):
    """Problems a section's cross-field check found, each with the key it is about (without namespace)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.problems))


def field_extra(info: FieldInfo) -> dict[str, Any]:
    """A field's ``json_schema_extra`` marks (``x-secret``, ``x-required``, ``x-default``), when it is a mapping."""
    extra = info.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def problems_if(*checks: tuple[bool, str, str]) -> None:
    """Raises ``KeyProblems`` for every ``(failed, key, message)`` that failed; a model validator's one exit."""
    found = [(key, message) for failed, key, message in checks if failed]
    if found:
        raise KeyProblems(found)


# --- Parsing what the CLI hands the program ----------------------------------------------------------------


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def as_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {value!r}")


def as_int(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def as_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    if value.strip() == "":
        raise ValueError("must not be empty")
    if value.lstrip()[:1] in ("{", "["):
        raise ValueError(f"expected a string, got a structured value {value!r}")
    return value


def as_str_list(value: Any) -> Any:
    decoded = _loads(value) if isinstance(value, str) else value
    if isinstance(decoded, list | tuple) and all(isinstance(v, str) for v in decoded):
        return tuple(decoded)
    raise ValueError(f"expected a list of strings, got {value!r}")


def as_str_map(value: Any) -> Any:
    decoded = _loads(value) if isinstance(value, str) else value
    if isinstance(decoded, Mapping) and all(isinstance(v, str) for v in decoded.values()):
        return dict(sorted(decoded.items()))
    raise ValueError(f"expected a map of strings to strings, got {value!r}")


Flag = Annotated[bool, BeforeValidator(as_bool)]
"""``true`` or ``false``."""
Integer = Annotated[int, BeforeValidator(as_int)]
"""A whole number (``"512"`` as the CLI passes it, or ``512``)."""

Text = Annotated[str, BeforeValidator(as_text)]
"""A non-empty string, not a list or map."""
StrList = Annotated[tuple[str, ...], BeforeValidator(as_str_list)]
"""A list of strings (JSON as the CLI passes it, or a list)."""


StrMap = Annotated[dict[str, str], BeforeValidator(as_str_map)]
"""A map of strings to strings, sorted by key."""


@dataclass(frozen=True)
class Matches:
    """``Annotated[Text, Matches(...)]``: a string of ``what`` (like ``example``). The check gives the sentence; the
    pattern also goes into the JSON Schema, for editors."""

    pattern: str
    what: str
    example: str

    def check(self, value: str) -> str:
        if not re.fullmatch(self.pattern, value):
            raise ValueError(f"{value!r} is not {self.what} (like {self.example})")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        found = handler(schema)
        found.update(pattern=f"^(?:{self.pattern})$", examples=[self.example])
        return found


@dataclass(frozen=True)
class Range:
    """``Annotated[Integer, Range(low, high)]``: a whole number from ``low`` to ``high``."""

    low: int
    high: int

    def check(self, value: int) -> int:
        if not self.low <= value <= self.high:
            raise ValueError(f"{value} is out of range; allowed: {self.low} to {self.high}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        found = handler(schema)
        found.update(minimum=self.low, maximum=self.high)
        return found


Port = Annotated[Integer, Range(1, 65535)]
"""A TCP port."""


def no_duplicates(what: str) -> AfterValidator:
    """``Annotated[StrList, no_duplicates("a subnet")]``: refuses a list naming something twice."""

    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(values)) != len(values):
            raise ValueError(f"lists {what} twice")
        return values

    return AfterValidator(check)


# --- Values several sections share --------------------------------------------------------------------------

# CloudWatch Logs accepts only these retention periods (days).
# https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
LogRetentionDays = Annotated[
    Literal[
        1,
        3,
        5,
        7,
        14,
        30,
        60,
        90,
        120,
        150,
        180,
        365,
        400,
        545,
        731,
        1096,
        1827,
        2192,
        2557,
        2922,
        3288,
        3653,
    ],
    BeforeValidator(as_int),
]
