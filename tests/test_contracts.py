"""components/contracts.py: the Build -> Deploy artifact contract has one home, and every party honours it.

The upload job writes the commit file, the build reads it and writes the image detail, task definition and
appspec into the build artifact, and the CodeDeployToECS action reads them by name and fills in the two
placeholders. If any party spelt a name on its own, a rename would break a deployment only AWS would notice.
https://docs.aws.amazon.com/codepipeline/latest/userguide/action-reference-ECSbluegreen.html
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import contracts
from components.base import ROOT
from components.build_stage import embedded_files
from offline.engine import ProgramRun
from policy import resource_types as rt

CONTRACT = {
    name: value
    for name, value in vars(contracts).items()
    if name.isupper() and isinstance(value, str) and name != "BUILD_OUTPUT_FILES"
}
PRODUCT_CODE = [
    *sorted((ROOT / "components").glob("*.py")),
    *sorted((ROOT / "offline").glob("*.py")),
    *sorted((ROOT / "ci").glob("*.py")),
    ROOT / "__main__.py",
]


def string_constants(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module that are not docstrings (of modules, classes, functions or attributes:
    every string that is a statement of its own)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_module_but_contracts_spells_a_contract_value() -> None:
    spelt = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for path in PRODUCT_CODE
        if path.name != "contracts.py"
        for line, value in string_constants(path)
        for contract in CONTRACT.values()
        if contract in value
    ]
    assert spelt == []


def test_the_scan_sees_a_spelt_name(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""taskdef.json in a docstring is prose."""\nNAME = "taskdef.json"\n')
    assert string_constants(module) == [(2, "taskdef.json")]


def template_lines(name: str) -> list[str]:
    """A template's lines that are not comments."""
    return [line for line in (ROOT / "files" / name).read_text().splitlines() if not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", ["buildspec.yml", "release-buildspec.yml", "app.gitlab-ci.yml", "appspec.yaml"])
def test_templates_take_contract_names_as_values(name: str) -> None:
    spelt = [line for line in template_lines(name) for value in CONTRACT.values() if value in line]
    assert spelt == []


@pytest.fixture(scope="module")
def build_spec(dev: ProgramRun) -> dict[str, Any]:
    project = next(p for p in dev.of_type(rt.CODEBUILD_PROJECT) if "release" not in p.name)
    spec: dict[str, Any] = yaml.safe_load(project.props["source"]["buildspec"])
    return spec


def deploy_action(run: ProgramRun) -> dict[str, Any]:
    stages = run.one(rt.CODEPIPELINE_PIPELINE).props["stages"]
    action: dict[str, Any] = next(a for s in stages for a in s["actions"] if a["provider"] == "CodeDeployToECS")
    return action


def test_the_build_hands_over_exactly_the_contract_files(build_spec: dict[str, Any]) -> None:
    variables = build_spec["env"]["variables"]
    artifacts = build_spec["artifacts"]
    assert artifacts["base-directory"] == contracts.BUILD_OUTPUT_DIR
    named = [variables[f.strip("${}")] if f.startswith("$") else f for f in artifacts["files"]]
    assert named == list(contracts.BUILD_OUTPUT_FILES)
    assert variables["COMMIT_FILE"] == contracts.COMMIT_FILE


def test_the_deploy_action_reads_what_the_build_wrote(dev: ProgramRun) -> None:
    config = deploy_action(dev)["configuration"]
    assert deploy_action(dev)["inputArtifacts"] == [contracts.BUILD_ARTIFACT]
    assert (config["TaskDefinitionTemplatePath"], config["AppSpecTemplatePath"]) == (
        contracts.TASKDEF_FILE,
        contracts.APPSPEC_FILE,
    )
    assert config["Image1ArtifactName"] == contracts.BUILD_ARTIFACT
    assert config["Image1ContainerName"] == contracts.IMAGE_PLACEHOLDER


def test_the_build_artifact_is_the_build_actions_output(dev: ProgramRun) -> None:
    stages = dev.one(rt.CODEPIPELINE_PIPELINE).props["stages"]
    actions = {a["name"]: a for s in stages for a in s["actions"]}
    assert actions["Source"]["outputArtifacts"] == [contracts.SOURCE_ARTIFACT]
    assert actions["Build"]["inputArtifacts"] == [contracts.SOURCE_ARTIFACT]
    assert actions["Build"]["outputArtifacts"] == [contracts.BUILD_ARTIFACT]


def test_the_templates_carry_the_placeholders_the_action_fills(build_spec: dict[str, Any]) -> None:
    files = embedded_files(yaml.safe_dump(build_spec))
    taskdef = json.loads(files[contracts.TASKDEF_FILE])
    appspec = yaml.safe_load(files[contracts.APPSPEC_FILE])
    images = [c["image"] for c in taskdef["containerDefinitions"]]
    assert images == [contracts.placeholder(contracts.IMAGE_PLACEHOLDER)]
    target = appspec["Resources"][0]["TargetService"]["Properties"]
    assert target["TaskDefinition"] == contracts.placeholder(contracts.TASK_DEFINITION_PLACEHOLDER)


def test_the_upload_job_writes_the_commit_file_the_build_reads(dev: ProgramRun) -> None:
    job_file = yaml.safe_load(dev.outputs["gitlabCiYml"])
    variables = [job.get("variables", {}) for job in job_file.values() if isinstance(job, dict)]
    assert {"COMMIT_FILE": contracts.COMMIT_FILE}.items() <= {k: v for v in variables for k, v in v.items()}.items()
