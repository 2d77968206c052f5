"""The README is the user's manual: its configuration reference, set-up commands and project layout must stay
true."""

from __future__ import annotations

import re

from components.base import ROOT
from components.config import KEYS
from components.config_docs import TABLE_BEGIN, TABLE_END
from offline.engine import ProgramRun
from policy import resource_types as rt

README = (ROOT / "README.md").read_text()
COMPONENTS = ROOT / "components"


def test_every_config_key_is_documented_once() -> None:
    table = README.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]
    rows = re.findall(r"^\| `([A-Za-z0-9:]+)` \|", table, flags=re.MULTILINE)
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


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.DOTALL | re.MULTILINE)
    assert match, f"README has no '{title}' section"
    return match.group(1)


def test_the_setup_lists_every_system_package_ci_installs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    listed = re.search(r"^SYSTEM_PACKAGES=\((.*)\)$", ci, flags=re.MULTILINE)
    assert listed, ".ci/run declares its system packages in SYSTEM_PACKAGES=(...)"
    packages = set(listed.group(1).split())
    # The project's own GitLab CI installs packages on its Debian test image too.
    for line in (ROOT / ".gitlab-ci.yml").read_text().splitlines():
        if "apt-get install" in line:
            packages |= {w for w in line.split("apt-get install", 1)[1].split() if not w.startswith(("-", ">"))}
    setup = _section("Set-up: two commands")
    assert packages and {p for p in packages if f"`{p}`" not in setup} == set()


def test_the_nat_paragraph_says_what_the_tasks_may_reach(dev: ProgramRun) -> None:
    """What the README says goes through NAT is what the tasks' security group lets out."""
    tasks = dev.one(rt.EC2_SECURITY_GROUP, "service-tasks")
    egress = [
        r.props
        for r in dev.of_type(rt.VPC_SECURITY_GROUP_EGRESS_RULE)
        if r.props["securityGroupId"] == tasks.id and "cidrIpv4" in r.props
    ]
    assert [(e["ipProtocol"], e["fromPort"], e["toPort"], e["cidrIpv4"]) for e in egress] == [
        ("tcp", 443.0, 443.0, "0.0.0.0/0")
    ]
    paragraph = README[README.index("**NAT gateways or VPC endpoints") :].split("\n\n")[0]
    assert "TCP 443 only" in paragraph and "anything on the internet" not in paragraph


# --- Project layout ---------------------------------------------------------------------------------------


def _layout() -> str:
    """The code block of README's "Project layout" section: one line per file or folder."""
    block = re.search(r"```\n(.*?)```", _section("Project layout"), flags=re.DOTALL)
    assert block, "README's Project layout has no code block"
    return block.group(1)


def _named_in_layout(layout: str) -> set[str]:
    """File names of components/ the layout lists: ``components/x.py``, and the bare ``y.py, z.py`` that follow
    on the same line (``components/iam.py, buckets.py   helpers: ...``)."""
    names: set[str] = set()
    for listed in re.findall(r"^\s*components/(\w+\.py(?:,\s*\w+\.py)*)", layout, flags=re.MULTILINE):
        names |= {n.strip() for n in listed.split(",")}
    return names


def test_the_layout_names_every_file_of_components() -> None:
    """Issue 10: the layout list describes the new shape, so every module of components/ has its line."""
    files = {p.name for p in COMPONENTS.glob("*.py") if p.name != "__init__.py"}
    assert files, "components/ holds no module"
    missing = sorted(files - _named_in_layout(_layout()))
    assert missing == [], f"README's Project layout does not name components/{{{', '.join(missing)}}}"


def test_the_layout_names_no_file_that_does_not_exist() -> None:
    listed = _named_in_layout(_layout())
    assert "config.py" in listed, "the layout parser finds the listed files"
    assert sorted(n for n in listed if not (COMPONENTS / n).is_file()) == []
