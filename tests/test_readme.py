"""The README is the user's manual: its configuration reference and set-up commands must stay true."""

from __future__ import annotations

import re
from pathlib import Path

from components.config import KEYS
from offline.engine import ProgramRun

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


def _setup_section() -> str:
    match = re.search(r"## Set-up: two commands\n(.*?)\n## ", README, flags=re.DOTALL)
    assert match, "README has no set-up section"
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
    setup = _setup_section()
    assert packages and {p for p in packages if f"`{p}`" not in setup} == set()


def test_the_nat_paragraph_says_what_the_tasks_may_reach(dev: ProgramRun) -> None:
    """What the README says goes through NAT is what the tasks' security group lets out."""
    tasks = dev.one("aws:ec2/securityGroup:SecurityGroup", "service-tasks")
    egress = [
        r.props
        for r in dev.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.props["securityGroupId"] == tasks.id and "cidrIpv4" in r.props
    ]
    assert [(e["ipProtocol"], e["fromPort"], e["toPort"], e["cidrIpv4"]) for e in egress] == [
        ("tcp", 443.0, 443.0, "0.0.0.0/0")
    ]
    paragraph = README[README.index("**NAT gateways or VPC endpoints") :].split("\n\n")[0]
    assert "TCP 443 only" in paragraph and "anything on the internet" not in paragraph
