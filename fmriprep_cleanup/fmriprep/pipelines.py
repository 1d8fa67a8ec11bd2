"""The NiPreps pipelines this tool knows, as data: one YAML description per pipeline (pipelines/ at the top of
the repository, inside the package when installed). A description says how to recognise the pipeline's
output (the GeneratedBy name of its dataset_description.json) and working directory (its workflow folder,
``<prefix>_wf`` or ``<prefix>_<major>_<minor>_wf``), where its legacy output folder and per-run config are,
and which rule set is its default. Adding a pipeline is adding a file: no Python changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..basics.errors import CleanupError
from ..basics.guarded import load_yaml

PIPELINE_KEYS = ("version", "name", "description", "generated_by", "workflow_dir", "subject_workflows",
                 "output_folder", "run_config", "rules", "regenerable", "essential", "names", "source")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Pipeline:
    """One NiPreps pipeline's conventions (see the module's docstring)."""

    key: str  # its file's name: fmriprep, qsiprep, xcp_d...
    name: str  # as people write it: fMRIPrep, QSIPrep, XCP-D
    generated_by: tuple[str, ...]  # GeneratedBy names, compared without case
    workflow_prefix: str
    output_folder: str | None
    run_config: str | None
    rules: str
    regenerable: str | None
    description: str
    subject_workflows: bool = True  # its workflow folder holds one folder per subject (MRIQC's does not)
    essential: tuple[str, ...] = ()  # an example path of each output every analysis needs (reports, confounds...)
    names: tuple[tuple[str, str], ...] = ()  # (glob, the versions that write it): file names only its outputs have

    @property
    def workflow_dir(self) -> re.Pattern[str]:
        """Its workflow folder in a working directory; groups 1 and 2 are the major and minor version."""
        return _workflow_pattern(self.workflow_prefix)

    def recognises(self, generator: str) -> bool:
        return generator.lower() in {name.lower() for name in self.generated_by}


@lru_cache(maxsize=64)
def _workflow_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}(?:_(\d+)_(\d+))?_wf$")


def shipped_pipelines_dir() -> Path:
    """Inside the package when installed from a wheel (pipelines_shipped/), else the repository's pipelines/."""
    packaged = Path(__file__).parent / "pipelines_shipped"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parents[2] / "pipelines"


def _read(path: Path) -> Pipeline:
    data = load_yaml(str(path), "pipeline description")
    if not isinstance(data, dict):
        raise CleanupError(f"{path}: a pipeline description is a mapping")
    unknown = sorted(set(data) - set(PIPELINE_KEYS))
    if unknown:
        raise CleanupError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(PIPELINE_KEYS)})")
    if data.get("version") != 1:
        raise CleanupError(f"{path}: version must be 1")
    for key in ("name", "workflow_dir", "rules"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise CleanupError(f"{path}: {key} must be a non-empty string")
    generated_by = data.get("generated_by")
    if not isinstance(generated_by, list) or not generated_by or not all(isinstance(n, str) for n in generated_by):
        raise CleanupError(f"{path}: generated_by must list the GeneratedBy names")
    for key in ("output_folder", "run_config", "regenerable"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise CleanupError(f"{path}: {key} must be a string or null")
    essential = data.get("essential", [])
    if not isinstance(essential, list) or not all(isinstance(item, str) and item for item in essential):
        raise CleanupError(f"{path}: essential must list example paths of the outputs every analysis needs")
    names = data.get("names", [])
    if not isinstance(names, list) or not all(isinstance(item, dict) and set(item) == {"glob", "versions"}
                                              and all(isinstance(value, str) and value for value in item.values())
                                              for item in names):
        raise CleanupError(f"{path}: names must list {{glob: ..., versions: ...}} mappings")
    if not isinstance(data.get("subject_workflows", True), bool):
        raise CleanupError(f"{path}: subject_workflows must be true or false")
    if not NAME_PATTERN.match(path.stem) or not NAME_PATTERN.match(data["workflow_dir"]):
        raise CleanupError(f"{path}: file name and workflow_dir are lower-case letters, digits and _")
    return Pipeline(path.stem, data["name"], tuple(generated_by), data["workflow_dir"], data.get("output_folder"),
                    data.get("run_config"), data["rules"], data.get("regenerable"), str(data.get("description", "")),
                    data.get("subject_workflows", True), tuple(essential),
                    tuple((item["glob"], item["versions"]) for item in names))


@lru_cache(maxsize=1)
def pipelines() -> tuple[Pipeline, ...]:
    """Every shipped pipeline, fMRIPrep first (it decides when a folder could be several)."""
    found = [_read(path) for path in sorted(shipped_pipelines_dir().glob("*.yaml"))]
    return tuple(sorted(found, key=lambda pipeline: (pipeline.key != "fmriprep", pipeline.key)))


def pipeline_by_key(key: str) -> Pipeline:
    for pipeline in pipelines():
        if pipeline.key == key:
            return pipeline
    raise CleanupError(f"no pipeline {key!r}; known: {', '.join(p.key for p in pipelines())}")


def pipeline_named(generator: str) -> Pipeline | None:
    """The pipeline whose output a dataset_description.json's (first) GeneratedBy name is."""
    return next((pipeline for pipeline in pipelines() if pipeline.recognises(generator)), None)


def pipeline_of_workflow_dir(name: str) -> tuple[Pipeline, str | None] | None:
    """(pipeline, version) of a working directory's workflow folder name, or None."""
    for pipeline in pipelines():
        match = pipeline.workflow_dir.match(name)
        if match:
            return pipeline, (f"{match.group(1)}.{match.group(2)}" if match.group(1) else None)
    return None


def known_names() -> str:
    return ", ".join(pipeline.name for pipeline in pipelines())
