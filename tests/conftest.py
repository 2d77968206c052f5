"""Shared fixtures: the committed stacks' runs on the offline engine (Pulumi's mocks), made once per session.

Helpers that are plain functions live in ``tests/support/`` (``from support.stacks import ...``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from offline.engine import ProgramRun
from support.stacks import committed_run, stack_run


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
    """The prod stack, run once per session (tests must not mutate it)."""
    return committed_run("prod")


@pytest.fixture
def run_stack() -> Callable[..., ProgramRun]:
    """Runs the program for a committed stack with overrides: ``run_stack("dev", overrides={"cpu": "512"})``."""
    return stack_run
