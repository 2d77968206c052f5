"""Shared fixtures: run the program (or a component) on Pulumi mocks, for one committed stack's config."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.config import SECRET_KEYS  # noqa: E402
from offline.engine import ProgramRun, run_program  # noqa: E402
from offline.stack_files import committed_stacks, load_stack_files  # noqa: E402

STACKS = committed_stacks()


def stack_run(stack: str, **kwargs: object) -> ProgramRun:
    """Runs ``__main__.py`` for a committed stack, as ``pulumi up`` would, with overrides if given."""
    files = load_stack_files(stack, required_secrets=tuple(sorted(SECRET_KEYS)))
    return run_program(files, **kwargs)  # type: ignore[arg-type]


_COMMITTED_RUNS: dict[str, ProgramRun] = {}


def committed_run(stack: str) -> ProgramRun:
    """A committed stack's run, made once per session (tests must not mutate it)."""
    if stack not in _COMMITTED_RUNS:
        _COMMITTED_RUNS[stack] = stack_run(stack)
    return _COMMITTED_RUNS[stack]


@pytest.fixture(scope="session")
def runs() -> Callable[[str], ProgramRun]:
    """The run of any committed stack by name, made once per session: tests over every committed stack file
    take it with ``@pytest.mark.parametrize("stack", STACKS)``, so a new stack file is tested by adding it."""
    return committed_run


@pytest.fixture(scope="session")
def dev() -> ProgramRun:
    """The dev stack, run once per session (tests must not mutate it)."""
    return committed_run("dev")


@pytest.fixture(scope="session")
def prod() -> ProgramRun:
    return committed_run("prod")


@pytest.fixture
def run_stack() -> Callable[..., ProgramRun]:
    return stack_run
