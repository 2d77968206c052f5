"""The commands of the README's set-up and the benchmark fail loudly, never half-way or silently."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.base import ROOT
from offline import bench


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The files `make install` reads, in a directory of their own (no .venv yet)."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def make(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", *args], cwd=project, capture_output=True, text=True, timeout=60)


def fake_python(project: Path, version: str) -> Path:
    """An interpreter that reports ``version`` and does nothing else."""
    path = project / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


# pyproject.toml: requires-python = ">=3.11,<3.12". Another Python would install the pinned wheels, or fail later
# with an unrelated error (a missing pkg_resources on 3.12).
@pytest.mark.parametrize("python", ["python3.99-missing", "3.12.1", "3.10.14"])
def test_make_refuses_anything_but_python_3_11_before_creating_the_venv(project: Path, python: str) -> None:
    interpreter = python if python.startswith("python") else str(fake_python(project, python))
    done = make(project, "install", f"PYTHON={interpreter}")
    assert done.returncode != 0
    assert "needs Python 3.11" in done.stderr
    assert "make PYTHON=/path/to/python3.11" in done.stderr
    if not python.startswith("python"):
        assert f"is Python {python}" in done.stderr
    assert not (project / ".venv").exists(), "nothing half-installed"


def test_bench_fails_when_the_test_suite_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "test_broken.py"
    suite.write_text("def test_broken() -> None:\n    assert 1 == 2\n")
    assert bench.main(["--stacks", "", "--sizes", "", "--tests", str(suite)]) == 1
    captured = capsys.readouterr()
    assert "exit status 1" in captured.out
    assert "bench: the test suite failed" in captured.err


def test_bench_fails_when_a_plan_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--stacks", "no-such-stack", "--sizes", "", "--repeat", "1", "--no-tests"]) == 1
    assert "bench: the plan of no-such-stack failed" in capsys.readouterr().err


def test_bench_succeeds_when_everything_it_measures_does(tmp_path: Path) -> None:
    suite = tmp_path / "test_fine.py"
    suite.write_text("def test_fine() -> None:\n    assert True\n")
    assert bench.main(["--stacks", "", "--sizes", "", "--tests", str(suite)]) == 0
