"""Property-based: whatever a stack file holds, the config answers with a clean ConfigError naming the key, in
words (no pydantic jargon), never with a traceback from deeper down (pydantic, Pulumi, the AWS provider, or our own
parsing)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from components.base import PROJECT
from components.config import KEYS, SECRET_KEYS, StackConfig, parse_config
from components.config_types import ConfigError
from components.ecs_service import FARGATE_SIZES
from components.source_bucket import check_object_key
from support.stacks import REGION, REQUIRED

# What a stack file can hand the program: any scalar as a string, or any JSON structure.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)
raw_values = st.text(max_size=60) | json_values.map(json.dumps)

# Phrases of pydantic's own messages; a user must never see them.
JARGON = ("validation error", "input should", "value error", "type=", "for further information", "should match")


def parse(values: dict[str, str]) -> StackConfig:
    return parse_config(values, stack="dev", region=REGION, secret_keys=SECRET_KEYS)


def check(values: dict[str, str]) -> None:
    try:
        cfg = parse(values)
    except ConfigError as err:
        assert err.problems, "a ConfigError must say what is wrong"
        for problem in err.problems:
            assert problem.startswith((f"{PROJECT}:", "aws:region", "stack name")), problem
            assert not [j for j in JARGON if j in problem.lower()], problem
        named = {p.split(":")[1] for p in err.problems if p.startswith(f"{PROJECT}:")}
        assert named <= set(KEYS) | set(values), f"an error names a key nobody set: {named}"
    else:
        assert isinstance(cfg, StackConfig)


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(sorted(KEYS)), raw=raw_values)
def test_any_value_of_any_key_gives_a_clean_error_or_a_model(key: str, raw: str) -> None:
    check({**REQUIRED, key: raw})


@settings(max_examples=30, deadline=None)
@given(values=st.dictionaries(st.sampled_from(sorted(KEYS)), raw_values, min_size=2, max_size=6))
def test_any_combination_gives_a_clean_error_or_a_model(values: dict[str, str]) -> None:
    check({**REQUIRED, **values})


@settings(max_examples=40, deadline=None)
@given(raw=raw_values.filter(lambda r: r.strip() not in {str(cpu) for cpu in FARGATE_SIZES}))
def test_a_wrong_cpu_always_names_the_cpu_key(raw: str) -> None:
    try:
        parse({**REQUIRED, "cpu": raw})
    except ConfigError as err:
        assert any(p.startswith(f"{PROJECT}:cpu:") for p in err.problems), err.problems
    else:
        raise AssertionError(f"cpu {raw!r} was accepted")


@settings(max_examples=200, deadline=None)
@given(key=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40).map(lambda k: k + ".zip"))
def test_a_source_key_the_config_accepts_is_one_the_source_bucket_accepts(key: str) -> None:
    """No key passes validation only to fail later inside the SourceBucket component, mid-deployment."""
    try:
        cfg = parse({**REQUIRED, "sourceObjectKey": key})
    except ConfigError:
        return
    assert check_object_key(cfg.source.source_object_key) == key
