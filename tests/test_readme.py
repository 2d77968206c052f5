"""The README is the user's manual: its configuration reference and set-up commands must stay true."""

from __future__ import annotations

import re
from pathlib import Path

from components.config import KEYS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_config_key_is_documented_once() -> None:
    rows = re.findall(r"^\| `([A-Za-z0-9:]+)` \|", README, flags=re.MULTILINE)
    documented = [r for r in rows if r != "aws:region"]
    assert sorted(documented) == sorted(KEYS), "README's configuration table and components/config.KEYS differ"


def test_setup_commands_are_make_targets_and_ci_runs_the_test_command() -> None:
    block = re.search(r"## Set-up: two commands.*?```sh\n(.*?)```", README, flags=re.DOTALL)
    assert block, "README has no set-up block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make plan STACK=dev", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("plan", "test"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), f"Makefile has no {target} target"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.MULTILINE), ".ci/run must run the README's test command"


def test_linked_docs_exist() -> None:
    for link in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (ROOT / link).exists(), f"README links {link}, which does not exist"
