"""components/config_types.py: the value types every config section is made of, and the sentences they refuse with.

Values reach a program as the Pulumi CLI passes them (strings, lists and maps as JSON); tests and the JSON Schema
use real Python values. Each type must take both, and refuse anything else with a sentence a user can act on.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any

import botocore.session
import pytest
from pydantic import Field, TypeAdapter, ValidationError, model_validator

from components.base import PROJECT
from components.config import describe
from components.config_types import (
    ConfigError,
    ConfigModel,
    Flag,
    Integer,
    KeyProblems,
    LogRetentionDays,
    Matches,
    Port,
    Range,
    StrList,
    StrMap,
    Text,
    no_duplicates,
    problems_if,
)


def parsed(kind: Any, value: object) -> Any:
    return TypeAdapter(kind).validate_python(value)


def refusal(kind: Any, value: object) -> str:
    """The sentence ``kind`` refuses ``value`` with (the ValueError its validator raised)."""
    with pytest.raises(ValidationError) as err:
        TypeAdapter(kind).validate_python(value)
    [item] = err.value.errors(include_url=False)
    cause = (item.get("ctx") or {}).get("error")
    assert isinstance(cause, ValueError), item
    return str(cause)


# --- Flag ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("false", False), ("True", True), (" FALSE ", False), (True, True), (False, False)],
)
def test_a_flag_is_true_or_false_as_the_cli_or_yaml_gives_it(value: object, expected: bool) -> None:
    assert parsed(Flag, value) is expected


@pytest.mark.parametrize("value", ["yes", "1", "on", "", 1, 0, None])
def test_a_flag_refuses_anything_else_naming_the_value(value: object) -> None:
    assert refusal(Flag, value) == f"expected true or false, got {value!r}"


# --- Integer ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("512", 512), (" 3 ", 3), ("-1", -1), ("0", 0), (7, 7)])
def test_an_integer_comes_as_the_cli_string_or_a_number(value: object, expected: int) -> None:
    found = parsed(Integer, value)
    assert found == expected and type(found) is int


@pytest.mark.parametrize("value", ["two", "1.5", "1e3", "", "true", True, False, 1.5, None, "[1]"])
def test_an_integer_refuses_booleans_fractions_and_words(value: object) -> None:
    # A YAML `true` reaches the program as "true": it must not become 1.
    assert refusal(Integer, value) == f"expected an integer, got {value!r}"


# --- Text ---------------------------------------------------------------------------------------------------


def test_text_is_any_non_empty_string() -> None:
    assert parsed(Text, "aws/codebuild/standard:7.0") == "aws/codebuild/standard:7.0"
    assert parsed(Text, "a b") == "a b", "the string is kept as written"


@pytest.mark.parametrize("value", ["", " ", "\t"])
def test_text_refuses_an_empty_string(value: str) -> None:
    assert refusal(Text, value) == "must not be empty"


@pytest.mark.parametrize("value", ['["sample"]', '{"path": "/"}', ' ["x"]'])
def test_text_refuses_a_list_or_map_the_cli_passed_as_json(value: str) -> None:
    message = refusal(Text, value)
    assert "expected a string" in message and "structured" in message and repr(value) in message


@pytest.mark.parametrize("value", [5, None, ["a"], {"a": "b"}])
def test_text_refuses_what_is_not_a_string(value: object) -> None:
    assert refusal(Text, value) == f"expected a string, got {value!r}"


# --- StrList ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["203.0.113.0/24", "2001:db8::/32"]', ("203.0.113.0/24", "2001:db8::/32")),
        ("[]", ()),
        (["a", "b"], ("a", "b")),
        (("a",), ("a",)),
    ],
)
def test_a_list_comes_as_json_or_a_list_and_becomes_a_tuple(value: object, expected: tuple[str, ...]) -> None:
    # A tuple, so that a frozen config's list cannot be changed in place either.
    assert parsed(StrList, value) == expected
    assert isinstance(parsed(StrList, value), tuple)


@pytest.mark.parametrize("value", ["0.0.0.0/0", '"10.0.0.0/8"', "[1, 2]", '["a", null]', '{"a": "b"}', ["a", 1], 5])
def test_a_list_refuses_a_bare_string_a_map_or_non_strings(value: object) -> None:
    assert refusal(StrList, value) == f"expected a list of strings, got {value!r}"


# --- StrMap -------------------------------------------------------------------------------------------------


def test_a_map_comes_as_json_or_a_dict_sorted_by_key() -> None:
    found = parsed(StrMap, '{"B": "2", "A": "1"}')
    assert found == {"A": "1", "B": "2"} and list(found) == ["A", "B"]
    assert list(parsed(StrMap, {"z": "1", "a": "2"})) == ["a", "z"]
    assert parsed(StrMap, "{}") == {}


@pytest.mark.parametrize("value", ['["a", "b"]', "team=web", '{"PORT": 80}', {"PORT": 80}, ["a"], "null"])
def test_a_map_refuses_lists_words_and_non_string_values(value: object) -> None:
    assert refusal(StrMap, value) == f"expected a map of strings to strings, got {value!r}"


# --- Matches ------------------------------------------------------------------------------------------------

Color = Annotated[Text, Matches(r"blue|green", "a deployment color", "blue")]


def test_matches_takes_a_whole_match_only() -> None:
    assert parsed(Color, "green") == "green"
    for value in ("greenish", "a-blue", "Blue"):
        assert refusal(Color, value) == f"{value!r} is not a deployment color (like blue)"


def test_matches_checks_after_the_text_checks() -> None:
    assert refusal(Color, "") == "must not be empty", "an empty value says so, not that it mismatches"


def test_matches_puts_the_anchored_pattern_and_the_example_into_the_json_schema() -> None:
    schema = TypeAdapter(Color).json_schema()
    assert schema["pattern"] == "^(?:blue|green)$"
    assert schema["examples"] == ["blue"]
    # The anchors make the schema's (search) semantics equal the check's (fullmatch) ones.
    assert re.search(schema["pattern"], "greenish") is None


# --- Range and Port -----------------------------------------------------------------------------------------

Percent = Annotated[Integer, Range(1, 100)]


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("100", 100), (50, 50)])
def test_a_range_includes_both_ends(value: object, expected: int) -> None:
    assert parsed(Percent, value) == expected


@pytest.mark.parametrize("value", ["0", "101", "-5"])
def test_a_range_names_the_value_and_the_bounds(value: str) -> None:
    assert refusal(Percent, value) == f"{int(value)} is out of range; allowed: 1 to 100"


def test_a_range_parses_before_it_compares() -> None:
    assert refusal(Percent, "ten") == "expected an integer, got 'ten'"


def test_a_range_puts_its_bounds_into_the_json_schema() -> None:
    schema = TypeAdapter(Percent).json_schema()
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 100)


def test_a_port_is_a_tcp_port() -> None:
    assert (parsed(Port, "1"), parsed(Port, "65535")) == (1, 65535)
    assert refusal(Port, "0") == "0 is out of range; allowed: 1 to 65535"
    assert refusal(Port, "65536") == "65536 is out of range; allowed: 1 to 65535"


# --- no_duplicates ------------------------------------------------------------------------------------------

Subnets = Annotated[StrList, no_duplicates("a subnet")]


def test_no_duplicates_names_what_was_listed_twice() -> None:
    assert parsed(Subnets, '["subnet-a", "subnet-b"]') == ("subnet-a", "subnet-b")
    assert refusal(Subnets, '["subnet-a", "subnet-a"]') == "lists a subnet twice"


# --- problems_if, KeyProblems and a section's cross-field rules ---------------------------------------------


def test_problems_if_raises_nothing_when_no_check_failed() -> None:
    problems_if((False, "a", "never"), (False, "b", "never"))
    problems_if()


def test_problems_if_reports_every_failed_check_with_its_key_in_order() -> None:
    with pytest.raises(KeyProblems) as err:
        problems_if((True, "listenerPort", "first"), (False, "cpu", "passed"), (True, "memory", "second"))
    assert err.value.problems == [("listenerPort", "first"), ("memory", "second")]
    assert str(err.value) == "listenerPort: first; memory: second"


class Listeners(ConfigModel):
    """A section with a cross-field rule, as a component declares one."""

    listener_port: Port = Field(80, description="production port")
    test_listener_port: Port = Field(8080, description="test port")
    rollback_on_alarm: Flag = Field(True, description="alarms")

    @model_validator(mode="after")
    def _two_ports(self) -> Listeners:
        problems_if(
            (self.listener_port == self.test_listener_port, "testListenerPort", "is also listenerPort"),
            (not self.rollback_on_alarm and self.listener_port == 80, "rollbackOnAlarm", "needs another port"),
        )
        return self


def test_a_section_reads_its_keys_as_camel_case_aliases_and_by_name() -> None:
    by_key = Listeners.model_validate({"listenerPort": "81", "testListenerPort": "82"})
    by_name = Listeners.model_validate({"listener_port": 81, "test_listener_port": 82})
    assert by_key == by_name
    assert (by_key.listener_port, by_key.test_listener_port) == (81, 82)


def test_a_section_refuses_a_key_it_does_not_have() -> None:
    with pytest.raises(ValidationError) as err:
        Listeners.model_validate({"listenerPrt": "81"})
    assert [e["type"] for e in err.value.errors()] == ["extra_forbidden"]


def test_a_section_is_frozen() -> None:
    section = Listeners()
    with pytest.raises(ValidationError):
        section.listener_port = 81  # type: ignore[misc]
    assert section.listener_port == 80


def test_a_cross_field_rule_reaches_the_user_as_one_line_per_key() -> None:
    with pytest.raises(ValidationError) as err:
        Listeners.model_validate({"listenerPort": "80", "testListenerPort": "80", "rollbackOnAlarm": "false"})
    [item] = err.value.errors(include_url=False)
    cause = (item.get("ctx") or {}).get("error")
    assert isinstance(cause, KeyProblems)
    assert cause.problems == [("testListenerPort", "is also listenerPort"), ("rollbackOnAlarm", "needs another port")]
    assert describe(err.value, Listeners) == [
        f"{PROJECT}:testListenerPort: is also listenerPort",
        f"{PROJECT}:rollbackOnAlarm: needs another port",
    ]


def test_a_value_problem_reaches_the_user_naming_the_key() -> None:
    with pytest.raises(ValidationError) as err:
        Listeners.model_validate({"listenerPort": "70000", "testListenerPort": "x"})
    assert describe(err.value, Listeners) == [
        f"{PROJECT}:listenerPort: 70000 is out of range; allowed: 1 to 65535",
        f"{PROJECT}:testListenerPort: expected an integer, got 'x'",
    ]


def test_a_config_error_shows_one_problem_per_line() -> None:
    error = ConfigError(["a: first", "b: second"])
    assert error.problems == ["a: first", "b: second"]
    assert str(error) == "invalid stack configuration:\n  - a: first\n  - b: second"
    assert isinstance(error, ValueError)


# --- Values several sections share --------------------------------------------------------------------------


def test_log_retention_days_are_the_periods_cloudwatch_accepts() -> None:
    # https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html: the API
    # model documents the possible values of retentionInDays (the shape itself has no enum).
    model = botocore.session.get_session().get_service_model("logs")
    shape = model.operation_model("PutRetentionPolicy").input_shape.members["retentionInDays"]
    documented = re.search(r"Possible values are: ([\d, and]+)\.", shape.documentation)
    assert documented is not None, shape.documentation
    values = [int(v) for v in re.findall(r"\d+", documented.group(1))]
    [literal] = [a for a in typing.get_args(LogRetentionDays) if typing.get_origin(a) is typing.Literal]
    assert list(typing.get_args(literal)) == values


def test_log_retention_days_come_as_cli_strings_too() -> None:
    assert parsed(LogRetentionDays, "14") == 14
    assert parsed(LogRetentionDays, 3653) == 3653
    with pytest.raises(ValidationError):
        parsed(LogRetentionDays, "10")
