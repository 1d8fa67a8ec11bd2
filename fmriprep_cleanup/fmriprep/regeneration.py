"""Whether a pipeline can rebuild an output from what stays, and the command that does it.

fMRIPrep from 23.2 splits its work into a *fit* stage (head-motion correction, coregistration, fieldmaps,
anatomical segmentation and normalisation) and a cheap *transform* stage that resamples each BOLD run into the
output spaces; ``--derivatives fmriprep=OUT`` makes a later run reuse the fit outputs in OUT. A rule with
``guard: regeneration`` reclaims a transform output only when everything that rebuild needs is here: the
version, the run's recorded config, its raw input, and the fit outputs fMRIPrep's own lookup queries
(data/regeneration.yaml pins them per pipeline). Every guard reads only: nothing here acts.

The other NiPreps rebuild their reclaimed outputs by running again on the same inputs; their guard asks for the
recorded inputs and a known version.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ..basics.errors import CleanupError
from ..basics.folders import list_folder
from ..basics.guarded import load_json, load_toml, load_yaml
from .entities import parse_entities
from .layout import Dataset
from .pipelines import pipeline_by_key
from .workdirs import PathMap, map_path

REGENERATION = "regeneration"  # the guard's name in rule files
# entities that name a BOLD run (the raw file a series was made from); echo is left out: one fit serves every echo
RUN_ENTITIES = ("session", "task", "acquisition", "ceagent", "reconstruction", "direction", "run", "part")
# output spaces that are not templates: no template transform is needed to resample into them
NOT_TEMPLATES = frozenset({"T1w", "T2w", "anat", "func", "run", "boldref", "sbref", "fsnative", "fsaverage",
                           "fsaverage3", "fsaverage4", "fsaverage5", "fsaverage6", "fsLR"})
SURFACE_SPACES = ("fsnative", "fsaverage", "fsLR")
CIFTI_VOLUME_TEMPLATE = "MNI152NLin6Asym"  # the volume part of fMRIPrep's grayordinates
FMAPID = re.compile(r"_fmapid-([a-zA-Z0-9]+)_")


@lru_cache(maxsize=1)
def regeneration_specs() -> dict[str, dict[str, Any]]:
    """data/regeneration.yaml: per pipeline key, what its rebuild needs."""
    path = resources.files("fmriprep_cleanup") / "data" / "regeneration.yaml"
    data = load_yaml(str(path), "regeneration spec")
    return dict(data["pipelines"])


def version_tuple(version: str) -> tuple[int, ...] | None:
    """25.2.0 -> (25, 2, 0); 24.1.1rc1 -> (24, 1, 1); None when it does not start with a number."""
    numbers = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version.strip().lstrip("v"))
    if not numbers:
        return None
    return tuple(int(part) for part in numbers.groups() if part is not None)


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


@dataclass(frozen=True)
class RunCheck:
    """One BOLD run (or a subject's anatomy, run ``anat``) and whether its outputs can be rebuilt."""

    subject: str
    run: str  # the run's entities as in its file names (task-rest_run-01), or "anat"
    problem: str | None  # None: every guard passes; else the first that fails, in one line

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "run": self.run, "regenerable": self.problem is None,
                "why_not": self.problem}


class RegenerationBook:
    """Answers ``guard: regeneration`` for a dataset's files, a subject at a time, and writes the recipes."""

    def __init__(self, dataset: Dataset, path_map: PathMap = ()) -> None:
        self.dataset = dataset
        self.path_map = path_map
        self.spec = regeneration_specs().get(dataset.pipeline)
        self._subjects: dict[str, SubjectFacts] = {}
        self._checks: dict[tuple[str, tuple], str | None] = {}

    # --- the guard ---

    def problem(self, subject: str | None, relpath: str) -> str | None:
        """Why the derivatives file ``relpath`` (of ``subject``) cannot be rebuilt from what stays; None if it
        can. Files of one run share the answer."""
        if subject is None:
            return "it belongs to no subject: no run rebuilds it"
        entities = parse_entities(relpath)
        datatype = entities.get("datatype")
        if datatype == "func" and "task" in entities:
            key: tuple = ("func", run_key(entities))
        elif datatype == "anat":
            key = ("anat", entities.get("session"))
        elif self.spec is not None and "run_fit" not in self.spec:
            key = ("rerun",)  # a pipeline that rebuilds by running again: the subject's inputs decide
        else:
            return f"no fit outputs are known to rebuild {datatype or 'these'} files from"
        cache_key = (subject, key + (entities.get("space"), entities.get("extension")))
        if cache_key not in self._checks:
            self._checks[cache_key] = self._check(subject, relpath, entities, key)
        return self._checks[cache_key]

    def _check(self, label: str, relpath: str, entities: dict[str, Any], key: tuple) -> str | None:
        problem = self._common(label)
        if problem is not None or self.spec is None or "run_fit" not in self.spec:
            return problem
        facts = self.subject(label)
        spec = self.spec
        space = entities.get("space")
        if key[0] == "anat":
            if not self._raw_present(label, spec["raw_anat"], {"session": key[1]} if key[1] else {}, any_session=True):
                return f"no raw T1w of sub-{label} in {self._input_folder(facts)}: fMRIPrep needs it to rebuild"
            return (self._missing(facts, spec["anat_fit"], {}, "anatomical fit output")
                    or self._templates(facts, [space] if space else []))
        wanted = dict(key[1])  # the run's entities
        if not self._raw_present(label, spec["raw_bold"], wanted):
            return (f"its raw BOLD ({run_name(relpath)}_bold.nii[.gz]) is not in "
                    f"{self._input_folder(facts)}, or only as a link to content that is not here")
        problem = (self._missing(facts, spec["anat_fit"], {}, "anatomical fit output")
                   or self._missing(facts, spec["run_fit"], wanted, "fit output")
                   or self._fieldmaps(facts, wanted))
        if problem is not None:
            return problem
        spaces = [space] if space else []
        if (space and space.startswith(SURFACE_SPACES)) or entities.get("extension") == ".dtseries.nii":
            if not self._freesurfer_here(facts):
                return f"it is on a surface and sub-{label}'s FreeSurfer folder is not here"
            if entities.get("extension") == ".dtseries.nii":
                spaces.append(CIFTI_VOLUME_TEMPLATE)
        return self._templates(facts, spaces)

    def _common(self, label: str) -> str | None:
        """The guards every output of the subject shares: a spec, a known reusable version, the recorded
        config and its inputs."""
        pipeline = pipeline_by_key(self.dataset.pipeline)
        if self.spec is None:
            return f"no way to rebuild {pipeline.name}'s outputs is known"
        if self.dataset.layout != "bids":
            return f"the {self.dataset.layout} layout: fMRIPrep's --derivatives reads a BIDS-layout output folder"
        facts = self.subject(label)
        if facts.version is None:
            return (f"the {pipeline.name} version is not known (no version in its run config or in "
                    "dataset_description.json's GeneratedBy)")
        reusable_from = self.spec.get("reusable_from")
        if reusable_from is not None:
            have, need = version_tuple(facts.version), version_tuple(str(reusable_from))
            if have is None or need is None or have < need:
                return f"{pipeline.name} {facts.version}: {' '.join(str(self.spec['not_reusable']).split())}"
        if facts.config_problem is not None:
            return facts.config_problem
        return facts.input_problem

    # --- what a subject's rebuild rests on ---

    def subject(self, label: str) -> SubjectFacts:
        found = self._subjects.get(label)
        if found is None:
            found = self._subjects[label] = self._read_subject(label)
        return found

    def _read_subject(self, label: str) -> SubjectFacts:
        facts = SubjectFacts(label)
        derivatives = self.dataset.derivatives
        pipeline = pipeline_by_key(self.dataset.pipeline)
        if not derivatives:
            facts.config_problem = "no output folder"
            return facts
        top = os.path.join(derivatives, f"sub-{label}")
        facts.files = _subject_files(derivatives, label)
        facts.version = self.dataset.fmriprep_version
        config_name = pipeline.run_config
        if config_name is None:
            facts.config_problem = f"{pipeline.name} records no run config to rebuild from"
            return facts
        runs = [entry.name for entry in list_folder(os.path.join(top, "log"))[0] if entry.is_dir(follow_symlinks=False)]
        if not runs:
            facts.config_problem = f"no recorded run of sub-{label} (sub-{label}/log/<run>/{config_name}) says where its inputs were"
            return facts
        facts.config_path = os.path.join(top, "log", runs[-1], config_name)
        if not os.path.lexists(facts.config_path):
            facts.config_problem = (f"its newest run (sub-{label}/log/{runs[-1]}) has no {config_name} to say where "
                                    "its inputs were")
            return facts
        try:
            facts.config = load_toml(facts.config_path, "run config")
        except (CleanupError, OSError) as exc:
            facts.config_problem = f"its run config cannot be read: {exc}"
            return facts
        recorded = setting(facts.config, "environment.version")
        if isinstance(recorded, str) and recorded:
            facts.version = recorded
        for key in self.spec.get("inputs", []) if self.spec else []:
            value = setting(facts.config, key)
            if not isinstance(value, str) or not value:
                facts.input_problem = f"{facts.config_path} records no {key}: where the raw input was is not known"
                break
            here = map_path(value, self.path_map)
            if not os.path.isdir(here):
                hint = (f" (recorded inside a container? map it with --path-map {value}=HOST)" if here == value
                        else f" (mapped to {here} by --path-map)")
                facts.input_problem = f"its recorded input {key} {value} is not here{hint}"
                break
            facts.inputs[key] = here
        recorded = setting(facts.config, "execution.derivatives")
        if isinstance(recorded, dict):  # a fast-track run: its anatomy came from these folders (sMRIPrep...)
            for name, path in sorted(recorded.items()):
                folder = map_path(path, self.path_map) if isinstance(path, str) else ""
                if folder and os.path.isdir(folder) and os.path.realpath(folder) != os.path.realpath(derivatives):
                    facts.derivatives[str(name)] = folder
                    facts.derived_elsewhere += _subject_files(folder, label)
        return facts

    def _input_folder(self, facts: SubjectFacts) -> str:
        return next(iter(facts.inputs.values()), "the recorded input")

    def _raw_present(self, label: str, query: dict[str, Any], wanted: dict[str, Any], any_session: bool = False) -> bool:
        """A raw file of the subject matching ``query`` and the run's entities is here, with its content (a
        link is followed to see that its content is present: nothing is read or changed)."""
        facts = self.subject(label)
        bids = self._input_folder(facts)
        session = wanted.get("session")
        folder = os.path.join(bids, f"sub-{label}", *([f"ses-{session}"] if session else []), query["datatype"])
        folders = [folder]
        if any_session and not session:
            folders += [os.path.join(entry.path, query["datatype"]) for entry in list_folder(os.path.join(bids, f"sub-{label}"))[0]
                        if entry.name.startswith("ses-")]
        for candidate in folders:
            for entry in list_folder(candidate)[0]:
                entities = parse_entities(os.path.relpath(entry.path, bids).replace(os.sep, "/"))
                if not matches(entities, query):
                    continue
                if any(str(entities.get(name)) != str(value) for name, value in wanted.items() if name in RUN_ENTITIES):
                    continue
                if any(name in entities for name in RUN_ENTITIES if name not in wanted and name != "session"):
                    continue
                try:
                    content = os.stat(entry.path)  # through an annex link: its content must be here
                except OSError:
                    continue
                if content.st_size > 0:
                    return True
        return False

    def _missing(self, facts: SubjectFacts, queries: dict[str, dict[str, Any]], run: dict[str, Any],
                 what: str) -> str | None:
        """The first of ``queries`` with no non-empty file (of the run, where ``run`` names one), in the output
        folder or the folders the run took precomputed outputs from (``--derivatives``)."""
        files = facts.files + facts.derived_elsewhere
        for name, query in queries.items():
            found = [file for file in files if matches(file.entities, query) and _of_run(file.entities, run)]
            if not found:
                where = (f" (looked in the output folder and the run's --derivatives "
                         f"{' '.join(f'{key}={path}' for key, path in facts.derivatives.items())})"
                         if facts.derivatives else "")
                return f"its {what} {name} is missing{where}"
            if not any(file.size > 0 for file in found):
                return f"its {what} {name} is empty ({found[0].relpath})"
        return None

    def _fieldmaps(self, facts: SubjectFacts, run: dict[str, Any]) -> str | None:
        """The fieldmap outputs of every fieldmap the run was corrected with (its from-boldref_to-<fmapid>)."""
        assert self.spec is not None
        for file in facts.files:
            entities = file.entities
            if not (entities.get("datatype") == "func" and entities.get("from") == "boldref"
                    and entities.get("suffix") == "xfm" and _of_run(entities, run)):
                continue
            target = str(entities.get("to"))
            if target in ("T1w", "T2w", "anat"):
                continue
            for name, query in self.spec["fieldmap_fit"].items():
                found = [f for f in facts.files if matches(f.entities, query) and f.entities.get("fmapid") == target]
                if not any(f.size > 0 for f in found):
                    return f"its fieldmap {target}'s {name} is missing or empty"
        return None

    def _templates(self, facts: SubjectFacts, spaces: list[str]) -> str | None:
        """A template transform for every standard space the file is in or the run asked for."""
        assert self.spec is not None
        recorded = setting(facts.config or {}, "execution.output_spaces")
        names = list(spaces) + (recorded.split() if isinstance(recorded, str) else
                                [str(item) for item in recorded] if isinstance(recorded, list) else [])
        templates = sorted({name.split(":", 1)[0] for name in names} - NOT_TEMPLATES)
        for template in templates:
            query = {**self.spec["template_transform"], "to": template}
            if not any(matches(file.entities, query) and file.size > 0 for file in facts.files + facts.derived_elsewhere):
                return f"its template transform to {template} (from-T1w_to-{template}) is missing"
        return None

    def _freesurfer_here(self, facts: SubjectFacts) -> bool:
        folders = [os.path.join(self.dataset.freesurfer, f"sub-{facts.label}")] if self.dataset.freesurfer else []
        recorded = setting(facts.config or {}, "execution.fs_subjects_dir")
        if isinstance(recorded, str) and recorded:
            folders.append(os.path.join(map_path(recorded, self.path_map), f"sub-{facts.label}"))
        return any(os.path.isdir(folder) and not os.path.islink(folder) for folder in folders)

    # --- what the report shows ---

    def checks(self, labels: list[str]) -> list[RunCheck]:
        """Every BOLD run of these subjects (by its fit outputs or its series), and each subject's anatomy, with
        why it cannot be rebuilt."""
        rows = []
        for label in labels:
            facts = self.subject(label)
            runs: dict[str, str] = {}
            for file in facts.files:
                entities = file.entities
                if entities.get("datatype") == "func" and "task" in entities:
                    runs.setdefault(run_name(file.relpath), file.relpath)
            rows.append(RunCheck(label, "anat", self.problem(label, f"sub-{label}/anat/sub-{label}_desc-preproc_T1w.nii.gz")))
            for name in sorted(runs):
                rows.append(RunCheck(label, name, self.problem(label, runs[name])))
        return rows

    # --- the recipe ---

    def recipe(self, label: str) -> Recipe:
        """The command that rebuilds the subject's reclaimed outputs: the recorded version and options,
        ``participant --participant-label`` and, for fMRIPrep, ``--derivatives fmriprep=OUT``."""
        pipeline = pipeline_by_key(self.dataset.pipeline)
        facts = self.subject(label)
        output = self.dataset.derivatives or ""
        bids = next(iter(facts.inputs.values()), "BIDS_DIR")
        options: list[str] = ["--participant-label", label]
        spec = self.spec or {}
        if spec.get("derivatives_option"):  # the run's own precomputed folders first, then its outputs
            options += ["--derivatives", *(f"{name}={path}" for name, path in facts.derivatives.items()),
                        f"{spec['derivatives_option']}={output}", "--level", "full"]
        filters = None
        for key, flag in (spec.get("options") or {}).items():
            value = setting(facts.config or {}, key)
            if value is None or value is False or value == [] or value == "":
                continue
            if flag == "--fs-no-reconall":
                if value is False:
                    options.append(flag)
                continue
            if value is True:
                options.append(flag)
            elif flag == "--bids-filter-file":
                filters = value
                options += [flag, "bids_filters.json"]
            elif flag == "--fs-subjects-dir":
                options += [flag, map_path(str(value), self.path_map)]
            elif isinstance(value, list):
                options += [flag, *[str(item) for item in value]]
            else:
                options += [flag, *str(value).split()] if flag == "--output-spaces" else [flag, str(value)]
        program = str(spec.get("program", pipeline.key))
        image = self._image() or (f"{spec['image']}:{facts.version}" if spec.get("image") and facts.version else None)
        return Recipe(label, pipeline.name, program, facts.version, bids, output, options, filters, image)

    def _image(self) -> str | None:
        """The container image dataset_description.json's GeneratedBy names (Container.Tag), if any."""
        try:
            description = load_json(os.path.join(self.dataset.derivatives or "", "dataset_description.json"),
                                    "dataset description")
        except (CleanupError, OSError):
            return None
        generators = description.get("GeneratedBy") if isinstance(description, dict) else None
        first = generators[0] if isinstance(generators, list) and generators else None
        container = first.get("Container") if isinstance(first, dict) else None
        tag = container.get("Tag") if isinstance(container, dict) else None
        return tag if isinstance(tag, str) and re.fullmatch(r"[A-Za-z0-9./_:@-]+", tag) else None


@dataclass(frozen=True)
class Recipe:
    """One subject's rebuild, as a shell command (and, with a filter file, the file it needs)."""

    subject: str
    pipeline: str  # as people write it
    program: str  # the command's name: fmriprep, qsiprep, xcp-d...
    version: str | None
    bids_dir: str
    output_dir: str
    options: list[str]
    bids_filters: Any = None
    image: str | None = None

    def command(self) -> list[str]:
        return [self.program, self.bids_dir, self.output_dir, "participant", *self.options]

    def folders(self) -> list[str]:
        """Every folder the command reads or writes (a container must see them at the same paths)."""
        named = [self.bids_dir, self.output_dir] + [part.partition("=")[2] or part for part in self.options
                                                    if os.path.isabs(part.partition("=")[2] or part)]
        return sorted(set(named))

    def script(self) -> str:
        """A bash script that rebuilds the subject: the recorded version in a container where one is known."""
        lines = ["#!/bin/bash",
                 f"# Rebuild {self.pipeline}'s outputs of sub-{self.subject} that fmriprep-cleanup reclaimed:",
                 f"# the same version ({self.version or 'unknown'}) and options as the recorded run, reusing the",
                 "# outputs left in the output folder. Needs a FreeSurfer licence in $FS_LICENSE; WORK is the",
                 "# working directory (default: ./work-sub-<label>).",
                 "set -euo pipefail",
                 f'WORK="${{WORK:-$PWD/work-sub-{self.subject}}}"', 'mkdir -p "$WORK"']
        if self.bids_filters is not None:
            lines += ['cat > "$WORK/bids_filters.json" <<\'FILTERS\'',
                      json.dumps(self.bids_filters, indent=2, sort_keys=True), "FILTERS"]
        arguments = " ".join(shlex.quote(part) for part in self.command()).replace(
            "bids_filters.json", '"$WORK/bids_filters.json"')
        arguments += ' --work-dir "$WORK" --fs-license-file "$FS_LICENSE"'
        if self.image:
            binds = ",".join(shlex.quote(path) for path in self.folders())
            docker = " ".join(f"-v {shlex.quote(path)}:{shlex.quote(path)}" for path in self.folders())
            lines += [f"# or with Docker: docker run --rm {docker} -v \"$WORK:$WORK\" -v \"$FS_LICENSE:$FS_LICENSE\" "
                      f"{self.image} {arguments.split(' ', 1)[1]}",
                      f'apptainer exec --cleanenv -B {binds} -B "$WORK" -B "$FS_LICENSE" docker://{self.image} \\',
                      f"  {arguments}"]
        else:
            lines.append(arguments)
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "pipeline": self.pipeline, "version": self.version,
                "command": self.command(), "image": self.image,
                "bids_filters": self.bids_filters}


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


def run_key(entities: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The entities that name the BOLD run a derivative was made from."""
    return tuple((name, str(entities[name])) for name in RUN_ENTITIES if entities.get(name) is not None)


def _of_run(entities: dict[str, Any], run: dict[str, Any]) -> bool:
    return all(str(entities.get(name)) == str(value) for name, value in run.items()) and not any(
        name in entities for name in RUN_ENTITIES if name not in run)


BIDS_KEYS = ("ses", "task", "acq", "ce", "rec", "dir", "run", "part")  # RUN_ENTITIES as file names write them


def run_name(relpath: str) -> str:
    """The run a derivative's name is of: sub-01_task-rest_run-01 (its other entities left out)."""
    parts = relpath.rpartition("/")[2].split("_")
    return "_".join([parts[0], *(part for part in parts[1:-1] if part.split("-", 1)[0] in BIDS_KEYS)])


def sbatch_script(recipes: list[Recipe]) -> str:
    """A Slurm array script: task i rebuilds the i-th subject (each task runs that subject's recipe)."""
    labels = " ".join(shlex.quote(recipe.subject) for recipe in recipes)
    lines = ["#!/bin/bash", f"#SBATCH --job-name=regenerate-{recipes[0].program}",
             f"#SBATCH --array=0-{len(recipes) - 1}", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=16G",
             "#SBATCH --time=2:00:00",
             "# the transform stage alone: fMRIPrep's benchmarks took 12-38 minutes a subject on 20 cores",
             "set -euo pipefail", f"LABELS=({labels})", 'LABEL="${LABELS[$SLURM_ARRAY_TASK_ID]}"',
             'case "$LABEL" in']
    for recipe in recipes:
        body = [line for line in recipe.script().splitlines() if line and not line.startswith(("#!", "set -"))]
        lines += [f"  {shlex.quote(recipe.subject)})", *(f"    {line}" for line in body), "    ;;"]
    lines += ["esac"]
    return "\n".join(lines) + "\n"
