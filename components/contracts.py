"""The contracts between the pipeline's parts: every file name, placeholder and artifact name in one place.

The upload job writes ``COMMIT_FILE`` into the archive; the build reads it, writes ``IMAGE_DETAIL_FILE``,
``TASKDEF_FILE`` and ``APPSPEC_FILE`` into ``BUILD_ARTIFACT``; the deploy action reads them, puts the image
where ``taskdef.json`` says ``<IMAGE1_NAME>`` and the task definition where ``appspec.yaml`` says
``<TASK_DEFINITION>``. The templates in ``files/`` take these names as placeholders, the stages pass them to
AWS, and the offline plan and the tests read them from here.
"""

from __future__ import annotations

COMMIT_FILE = "git-commit-hash.txt"
"""Written by the application's upload job (the commit), read by the build (the image tag)."""

TASKDEF_FILE = "taskdef.json"
APPSPEC_FILE = "appspec.yaml"
IMAGE_DETAIL_FILE = "imageDetail.json"
"""``{"ImageURI": "<repository>@sha256:<digest>"}`` (the build names the image by digest; a ``<repository>:<tag>``
URI works too): CodePipeline's name for it, not ours to choose."""
BUILD_OUTPUT_FILES = (IMAGE_DETAIL_FILE, TASKDEF_FILE, APPSPEC_FILE)
"""What the build hands the Deploy stage, in its one output artifact."""
BUILD_OUTPUT_DIR = "pipeline-output"
"""The directory of the unpacked upload the build writes its output artifact from."""

IMAGE_PLACEHOLDER = "IMAGE1_NAME"
"""The image placeholder's name: ``"image": "<IMAGE1_NAME>"`` in taskdef.json, ``Image1ContainerName`` of the
CodeDeployToECS action (the placeholder's name, not the container's)."""
TASK_DEFINITION_PLACEHOLDER = "TASK_DEFINITION"
"""``TaskDefinition: <TASK_DEFINITION>`` in appspec.yaml, filled in by the CodeDeployToECS action."""

SOURCE_ARTIFACT = "SourceOutput"
BUILD_ARTIFACT = "BuildOutput"


def placeholder(name: str) -> str:
    """How a placeholder is written in a template: ``<NAME>``."""
    return f"<{name}>"
