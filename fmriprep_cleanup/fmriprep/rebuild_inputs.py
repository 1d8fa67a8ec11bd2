"""What a subject's rebuild rests on, read once from the output folder and the run configs it recorded: its
files with their entities and sizes, the newest run's config, the version every run names, the raw input and
the other --derivatives folders the run read, and how long it took. Reads only."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..basics.errors import CleanupError
from ..basics.folders import list_folder
from ..basics.guarded import load_toml
from .entities import parse_entities
from .evidence import run_time
from .layout import Dataset
from .pipelines import pipeline_by_key
from .transform_names import Spaces, recorded_spaces
from .workdirs import PathMap, map_path

FMAPID = re.compile(r"_fmapid-([a-zA-Z0-9]+)_")


def matches(entities: dict[str, Any], query: dict[str, Any]) -> bool:
    """A file's entities against an io_spec query: a value, any of a list, or null for absent."""
    for name, wanted in query.items():
        value = entities.get(name)
        if wanted is None:
            if value is not None:
                return False
        elif isinstance(wanted, list):
            if value is None or str(value) not in [str(item) for item in wanted]:
                return False
        elif value is None or str(value) != str(wanted):
            return False
    return True


@dataclass
class DerivedFile:
    relpath: str  # relative to the derivatives folder
    entities: dict[str, Any]
    size: int


@dataclass
class SubjectFacts:
    """What one subject's rebuild rests on, read once."""

    label: str
    files: list[DerivedFile] = field(default_factory=list)
    config: dict[str, Any] | None = None  # the newest run's recorded config (the whole TOML)
    config_path: str | None = None
    config_problem: str | None = None
    version: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # config key -> the folder here
    input_problem: str | None = None
    derivatives: dict[str, str] = field(default_factory=dict)  # the run's own --derivatives NAME=PATH, as here
    derived_elsewhere: list[DerivedFile] = field(default_factory=list)  # the subject's files in those folders
    duration: float | None = None  # how long the newest run took, from its log folder
    spaces: Spaces = field(default_factory=Spaces)
    expected: dict[str, dict[str, str]] = field(default_factory=dict)  # datatype -> name ending -> its kind

    def all_files(self) -> list[DerivedFile]:
        return self.files + self.derived_elsewhere


def read_subject(dataset: Dataset, spec: dict[str, Any] | None, path_map: PathMap, label: str) -> SubjectFacts:
    facts = SubjectFacts(label)
    derivatives = dataset.derivatives
    pipeline = pipeline_by_key(dataset.pipeline)
    if not derivatives:
        facts.config_problem = "no output folder"
        return facts
    top = os.path.join(derivatives, f"sub-{label}")
    facts.files = _subject_files(derivatives, label)
    facts.version = dataset.fmriprep_version
    config_name = pipeline.run_config
    if config_name is None:
        facts.config_problem = f"{pipeline.name} records no run config to rebuild from"
        return facts
    runs = sorted(entry.name for entry in list_folder(os.path.join(top, "log"))[0]
                  if entry.is_dir(follow_symlinks=False))
    if not runs:
        facts.config_problem = f"no recorded run of sub-{label} (sub-{label}/log/<run>/{config_name}) says where its inputs were"
        return facts
    facts.config_path = os.path.join(top, "log", runs[-1], config_name)
    if not os.path.lexists(facts.config_path):
        facts.config_problem = (f"its newest run (sub-{label}/log/{runs[-1]}) has no {config_name} to say where "
                                "its inputs were")
        return facts
    versions = _versions(top, runs, config_name, facts)
    if facts.config_problem is not None:
        return facts
    if len(versions) > 1:
        facts.config_problem = (f"sub-{label}'s runs were made by {pipeline.name} {' and '.join(sorted(versions))}: "
                                "which made each output cannot be told")
        return facts
    facts.version = next(iter(versions), facts.version)
    facts.duration = _duration(os.path.join(top, "log", runs[-1]), os.path.join(derivatives, f"sub-{label}.html"))
    _read_inputs(dataset, spec, path_map, facts)
    return facts

def _versions(top: str, runs: list[str], config_name: str, facts: SubjectFacts) -> set[str]:
    """The version each of the subject's recorded runs names (its config; the newest is kept in ``facts``)."""
    versions = set()
    for run in runs:
        path = os.path.join(top, "log", run, config_name)
        if not os.path.lexists(path):
            continue
        try:
            config = load_toml(path, "run config")
        except (CleanupError, OSError) as exc:
            facts.config_problem = f"its run config cannot be read: {exc}"
            return set()
        recorded = setting(config, "environment.version")
        if isinstance(recorded, str) and recorded:
            versions.add(recorded)
        if path == facts.config_path:
            facts.config = config
    return versions

def _read_inputs(dataset: Dataset, spec: dict[str, Any] | None, path_map: PathMap, facts: SubjectFacts) -> None:
    config = facts.config or {}
    facts.spaces = recorded_spaces(setting(config, "execution.output_spaces"), setting(config, "workflow.cifti_output"))
    for key in spec.get("inputs", []) if spec else []:
        value = setting(config, key)
        if not isinstance(value, str) or not value:
            facts.input_problem = f"{facts.config_path} records no {key}: where the raw input was is not known"
            break
        here = map_path(value, path_map)
        if not os.path.isdir(here):
            hint = (f" (recorded inside a container? map it with --path-map {value}=HOST)" if here == value
                    else f" (mapped to {here} by --path-map)")
            facts.input_problem = f"its recorded input {key} {value} is not here{hint}"
            break
        facts.inputs[key] = here
    recorded = setting(config, "execution.derivatives")
    if isinstance(recorded, dict):  # a fast-track run: its anatomy came from these folders (sMRIPrep...)
        for name, path in sorted(recorded.items()):
            folder = map_path(path, path_map) if isinstance(path, str) else ""
            if folder and os.path.isdir(folder) and os.path.realpath(folder) != os.path.realpath(dataset.derivatives or ""):
                facts.derivatives[str(name)] = folder
                facts.derived_elsewhere += _subject_files(folder, facts.label)

def _duration(log: str, report: str) -> float | None:
    """How long a run took: from its run folder's name (when it started) to the newest of its log files and the
    subject's report (when it ended); None when either cannot be read."""
    started = run_time(os.path.basename(log))
    ends = []
    for entry in list_folder(log)[0]:
        try:
            ends.append(entry.stat(follow_symlinks=False).st_mtime)
        except OSError:
            continue
    try:
        ends.append(os.lstat(report).st_mtime)
    except OSError:
        pass
    if started is None or not ends or max(ends) <= started:
        return None
    return max(ends) - started


def _subject_files(derivatives: str, label: str) -> list[DerivedFile]:
    """The subject's files in a derivatives folder (sub-<label>/[ses-<s>/]<datatype>/, not its logs or figures),
    with their entities and sizes; listed without following links (an annexed file's content is stat-ed)."""
    found = []
    stack = [os.path.join(derivatives, f"sub-{label}")]
    while stack:
        folder = stack.pop()
        for entry in list_folder(folder)[0]:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in ("log", "figures"):
                    stack.append(entry.path)
                continue
            relpath = os.path.relpath(entry.path, derivatives).replace(os.sep, "/")
            try:
                size = entry.stat(follow_symlinks=False).st_size
                if entry.is_symlink():  # annexed: the content's size where it is here, else 0
                    size = os.stat(entry.path).st_size
            except OSError:
                size = 0
            entities = parse_entities(relpath)
            fmapid = FMAPID.search(entry.name)
            if fmapid:
                entities["fmapid"] = fmapid.group(1)
            found.append(DerivedFile(relpath, entities, size))
    return found


def setting(config: dict[str, Any], dotted: str) -> Any:
    """``execution.bids_dir`` of a parsed run config, or None."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


