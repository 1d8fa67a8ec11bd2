"""Whether a pipeline can rebuild an output from what stays (``guard: regeneration``), exactly as its recorded
version would.

fMRIPrep splits its work into a *fit* stage (head-motion correction, coregistration, fieldmaps, anatomical
segmentation and normalisation) and a cheap *transform* stage that resamples each BOLD run into the output spaces;
``--derivatives fmriprep=OUT`` makes a later run reuse the fit outputs in OUT. A guarded rule reclaims a file
only when every guard holds:

* the name is one the transform stage of the recorded version writes for the run's recorded options
  (transform_names.py): nothing else is ever reclaimed;
* every part of the fit the rebuild reuses is one that version reuses correctly (data/regeneration.yaml's
  features: the functional fit from 25.0.0, tissue maps from 25.1.0, fieldmaps from 25.1.4, multi-echo runs in
  no release), judged by the version that wrote the subject's runs (all of them must agree);
* the run's recorded config and raw input are here, and every fit output fMRIPrep's and sMRIPrep's own lookup
  queries is present and not empty.

The other NiPreps rebuild by running again on the same inputs; their guard asks for the recorded inputs and a
known version. Every guard reads only: nothing here acts. rebuild.py writes the command.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ..basics.errors import CleanupError
from ..basics.folders import list_folder
from ..basics.guarded import load_json, load_yaml
from .entities import parse_entities
from .layout import Dataset
from .pipelines import pipeline_by_key
from .rebuild import (
    VERSION,
    Recipe,
    carried_options,
    checked_image,
    checked_label,
    checked_version,
    derivative_folders,
    reclaimed_names,
    slurm_hours,
)
from .rebuild_inputs import SubjectFacts, matches, read_subject, setting
from .transform_names import expected_rests, split_name
from .workdirs import PathMap, map_path

REGENERATION = "regeneration"  # the guard's name in rule files
# entities that name a BOLD run (the raw file a series was made from); echo is left out: one fit serves every echo
RUN_ENTITIES = ("session", "task", "acquisition", "ceagent", "reconstruction", "direction", "run", "part")
NOT_WRITTEN = "not a name the transform stage of {pipeline} {version} writes for this run's recorded options"


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
        self._runs: dict[tuple, str | None] = {}

    # --- the guard ---

    def problem(self, subject: str | None, relpath: str) -> str | None:
        """Why the derivatives file ``relpath`` (of ``subject``) cannot be rebuilt from what stays; None if it
        can. Files of one run share the run's guards; each name is checked on its own."""
        if subject is None:
            return "it belongs to no subject: no run rebuilds it"
        common = self._common(subject)
        if common is not None or self.spec is None or "run_fit" not in self.spec:
            return common  # a pipeline that rebuilds by running again: the subject's inputs decide
        entities = parse_entities(relpath)
        datatype = entities.get("datatype")
        split = split_name(relpath.rpartition("/")[2])
        if split is None or datatype not in ("func", "anat") or (datatype == "func" and "task" not in entities):
            return f"no fit outputs are known to rebuild {datatype or 'these'} files from"
        prefix, rest, run = split
        facts = self.subject(subject)
        if "echo" in run:
            return self._feature(facts, "multi-echo")
        kinds = self._expected(facts, str(datatype))
        if rest not in kinds:
            return NOT_WRITTEN.format(pipeline=pipeline_by_key(self.dataset.pipeline).name, version=facts.version)
        kind = str(self.spec["transform_outputs"][kinds[rest]].get("space"))
        key = (subject, datatype, prefix if datatype == "func" else entities.get("session"), kind, _template(rest, kind))
        if key not in self._runs:
            self._runs[key] = self._check(facts, entities, str(datatype), kind, prefix, key[-1])
        return self._runs[key]

    def _check(self, facts: SubjectFacts, entities: dict[str, Any], datatype: str, kind: str, prefix: str,
               template: str | None) -> str | None:
        assert self.spec is not None
        spec = self.spec
        if datatype == "anat":
            session = entities.get("session")
            if any(self._multi_echo(facts, run) for run in _runs_of(facts)):  # its rebuild would run them too
                return self._feature(facts, "multi-echo")
            if not self._raw_present(facts, spec["raw_anat"], {"session": session} if session else {}, True):
                return f"no raw T1w of sub-{facts.label} in {self._input_folder(facts)}: fMRIPrep needs it to rebuild"
            return (self._feature(facts, "anat") or self._missing(facts, spec["anat_fit"], {}, "anatomical fit output")
                    or self._templates(facts, template))
        wanted = {name: entities[name] for name in RUN_ENTITIES if entities.get(name) is not None}
        if self._multi_echo(facts, wanted):
            return self._feature(facts, "multi-echo")
        if not self._raw_present(facts, spec["raw_bold"], wanted):
            return (f"its raw BOLD ({prefix}_bold.nii[.gz]) is not in "
                    f"{self._input_folder(facts)}, or only as a link to content that is not here")
        problem = (self._feature(facts, "bold")
                   or self._missing(facts, spec["anat_fit"], {}, "anatomical fit output")
                   or self._missing(facts, spec["run_fit"], wanted, "fit output")
                   or self._fieldmaps(facts, wanted) or self._templates(facts, template))
        if problem is None and kind in ("freesurfer", "cifti"):
            problem = self._surfaces(facts, kind)
        return problem

    def _common(self, label: str) -> str | None:
        """The guards every output of the subject shares: a spec, a known version, the recorded config and its
        inputs."""
        pipeline = pipeline_by_key(self.dataset.pipeline)
        if self.spec is None:
            return f"no way to rebuild {pipeline.name}'s outputs is known"
        if self.dataset.layout != "bids":
            return f"the {self.dataset.layout} layout: fMRIPrep's --derivatives reads a BIDS-layout output folder"
        facts = self.subject(label)
        if facts.version is None:
            return (f"the {pipeline.name} version is not known (no version in its run config or in "
                    "dataset_description.json's GeneratedBy)")
        if not VERSION.match(facts.version):
            return f"the recorded {pipeline.name} version {facts.version[:40]!r} is not a release number"
        if facts.config_problem is not None:
            return facts.config_problem
        return facts.input_problem

    def _feature(self, facts: SubjectFacts, need: str) -> str | None:
        """Why the recorded version cannot reuse the part of the fit ``need`` names (None: it can)."""
        assert self.spec is not None
        for feature in (self.spec.get("features") or {}).values():
            if feature["needed_by"] != need:
                continue
            first = feature["from"]
            have = version_tuple(facts.version or "")
            if first is None:
                return f"a multi-echo run: fMRIPrep {feature['why']}"
            if have is None or have < (version_tuple(str(first)) or ()):
                return f"fMRIPrep {facts.version} {feature['why']}"
        return None

    def _multi_echo(self, facts: SubjectFacts, run: dict[str, Any]) -> bool:
        """The run has several echoes: echo-wise outputs or a T2* map here, or echoes in its raw BOLD."""
        for file in facts.files:
            entities = file.entities
            if entities.get("datatype") == "func" and _of_run(entities, run) and (
                    "echo" in entities or entities.get("suffix") == "T2starmap"):
                return True
        assert self.spec is not None
        return any("echo" in entities for entities in self._raw_files(facts, self.spec["raw_bold"], run) if entities)

    # --- what a subject's rebuild rests on ---

    def subject(self, label: str) -> SubjectFacts:
        found = self._subjects.get(label)
        if found is None:
            found = self._subjects[label] = read_subject(self.dataset, self.spec, self.path_map, label)
        return found

    def _input_folder(self, facts: SubjectFacts) -> str:
        return next(iter(facts.inputs.values()), "the recorded input")

    def _raw_files(self, facts: SubjectFacts, query: dict[str, Any], wanted: dict[str, Any],
                   any_session: bool = False) -> list[dict[str, Any]]:
        """The entities of each raw file of the subject matching ``query`` and the run's entities whose content
        is here (a link is followed to see that: nothing is read or changed); an empty dict for one without."""
        bids = self._input_folder(facts)
        session = wanted.get("session")
        folders = [os.path.join(bids, f"sub-{facts.label}", *([f"ses-{session}"] if session else []), query["datatype"])]
        if any_session and not session:
            folders += [os.path.join(entry.path, query["datatype"])
                        for entry in list_folder(os.path.join(bids, f"sub-{facts.label}"))[0] if entry.name.startswith("ses-")]
        found = []
        for candidate in folders:
            for entry in list_folder(candidate)[0]:
                entities = parse_entities(os.path.relpath(entry.path, bids).replace(os.sep, "/"))
                if not matches(entities, query) or not _of_run(entities, wanted, ignore=("session",) if any_session else ()):
                    continue
                try:
                    present = os.stat(entry.path).st_size > 0  # through an annex link: its content must be here
                except OSError:
                    present = False
                found.append(entities if present else {})
        return found

    def _raw_present(self, facts: SubjectFacts, query: dict[str, Any], wanted: dict[str, Any],
                     any_session: bool = False) -> bool:
        return any(self._raw_files(facts, query, wanted, any_session))

    def _missing(self, facts: SubjectFacts, queries: dict[str, dict[str, Any]], run: dict[str, Any],
                 what: str) -> str | None:
        """The first of ``queries`` with no non-empty file (of the run, where ``run`` names one), in the output
        folder or the folders the run took precomputed outputs from (``--derivatives``)."""
        files = facts.all_files()
        for name, query in queries.items():
            found = [file for file in files if matches(file.entities, query) and (not run or _of_run(file.entities, run))]
            if not found:
                where = (f" (looked in the output folder and the run's --derivatives "
                         f"{' '.join(f'{key}={path}' for key, path in facts.derivatives.items())})"
                         if facts.derivatives else "")
                return f"its {what} {name} is missing{where}"
            if not any(file.size > 0 for file in found):
                return f"its {what} {name} is empty ({found[0].relpath})"
        return None

    def _fieldmaps(self, facts: SubjectFacts, run: dict[str, Any]) -> str | None:
        """The fieldmap outputs of every fieldmap the run was corrected with (its from-boldref_to-<fmapid>), in
        the output folder or the run's other --derivatives folders; and a version that reuses them."""
        assert self.spec is not None
        files = facts.all_files()
        for file in files:
            entities = file.entities
            if not (entities.get("datatype") == "func" and entities.get("from") == "boldref"
                    and entities.get("suffix") == "xfm" and _of_run(entities, run)):
                continue
            target = str(entities.get("to"))
            if target in ("T1w", "T2w", "anat"):
                continue
            problem = self._feature(facts, "fieldmap")
            if problem is not None:
                return f"it was corrected with fieldmap {target}: {problem}"
            for name, query in self.spec["fieldmap_fit"].items():
                found = [f for f in files if matches(f.entities, query) and f.entities.get("fmapid") == target]
                if not any(f.size > 0 for f in found):
                    return f"its fieldmap {target}'s {name} is missing or empty"
        return None

    def _templates(self, facts: SubjectFacts, template: str | None) -> str | None:
        """sMRIPrep's forward and reverse transforms between the T1w and the template an output is in, as its
        lookup queries them (from-T1w_to-<template> and back): without them the rebuild would register again."""
        assert self.spec is not None
        if template is None:
            return None
        files = facts.all_files()
        for direction, query in self.spec["template_transforms"].items():
            wanted = {**query, **({"to": template} if direction == "forward" else {"from": template})}
            if not any(matches(file.entities, wanted) and file.size > 0 for file in files):
                name = f"from-T1w_to-{template}" if direction == "forward" else f"from-{template}_to-T1w"
                return f"its template transform {name} is missing"
        return None

    def _surfaces(self, facts: SubjectFacts, kind: str) -> str | None:
        """FreeSurfer's subject folder (its surf/ folder) for surface outputs; for CIFTI also sMRIPrep's GIFTI
        surfaces, the fsLR sphere the run used (MSMSulc unless --no-msm) and the ribbon mask."""
        assert self.spec is not None
        if not self._freesurfer_here(facts):
            return f"it is on a surface and sub-{facts.label}'s FreeSurfer folder (with surf/) is not here"
        if kind != "cifti":
            return None
        msm = setting(facts.config or {}, "workflow.run_msmsulc") is not False
        queries = {name: query for name, query in self.spec["surfaces"].items()
                   if name != ("fsLR sphere" if msm else "MSMSulc sphere")}
        files = facts.all_files()
        for name, query in queries.items():
            found = [file for file in files if matches(file.entities, query) and file.size > 0]
            if len(found) < len(query.get("hemi") or [None]):
                return f"its surface {name} (sMRIPrep's GIFTI, for CIFTI) is missing"
        return None

    def _freesurfer_here(self, facts: SubjectFacts) -> bool:
        names = [f"sub-{facts.label}"]
        sessions = sorted({str(file.entities["session"]) for file in facts.files if file.entities.get("session")})
        names += [f"sub-{facts.label}_ses-{session}" for session in sessions]  # 25.2, one anatomy per session
        folders = [self.dataset.freesurfer] if self.dataset.freesurfer else []
        recorded = setting(facts.config or {}, "execution.fs_subjects_dir")
        if isinstance(recorded, str) and recorded:
            folders.append(map_path(recorded, self.path_map))
        return any(os.path.isdir(os.path.join(folder, name, "surf")) and not os.path.islink(os.path.join(folder, name))
                   for folder in folders for name in names)

    # --- what the report shows ---

    def checks(self, labels: list[str]) -> list[RunCheck]:
        """Every BOLD run of these subjects (by its fit outputs or its series), and each subject's anatomy where
        the run asked for a template, with why they cannot be rebuilt: judged on the first name the transform
        stage writes for the run, here or not (after a clean, the run's fit outputs stand for it)."""
        rows = []
        for label in labels:
            facts = self.subject(label)
            if self.spec is None or "run_fit" not in self.spec:  # rebuilt by running again: the subject as a whole
                rows.append(RunCheck(label, "all", self._common(label)))
                continue
            runs = sorted({(file.relpath.rpartition("/")[0], run_name(file.relpath)) for file in facts.files
                           if file.entities.get("datatype") == "func" and "task" in file.entities})
            anatomy = next(iter(self._expected(facts, "anat")), None) if facts.config else None
            if anatomy is not None:
                rows.append(RunCheck(label, "anat", self.problem(label, f"sub-{label}/anat/sub-{label}_{anatomy}")))
            series = next(iter(self._expected(facts, "func")), None) if facts.config else None
            for folder, name in runs:
                rows.append(RunCheck(label, name, self.problem(label, f"{folder}/{name}_{series}") if series
                                     else self._common(label) or NOT_WRITTEN.format(
                                         pipeline=pipeline_by_key(self.dataset.pipeline).name, version=facts.version)))
        return rows

    def _expected(self, facts: SubjectFacts, datatype: str) -> dict[str, str]:
        """The name endings the transform stage writes for the subject's recorded options, once per datatype."""
        assert self.spec is not None
        if datatype not in facts.expected:
            facts.expected[datatype] = expected_rests(self.spec["transform_outputs"], facts.spaces, datatype)
        return facts.expected[datatype]

    # --- the recipe ---

    def recipe(self, label: str, reclaimed: tuple[str, ...] = ()) -> Recipe:
        """The command that rebuilds the subject's reclaimed outputs (``reclaimed``: their paths): the recorded
        version and options, ``participant --participant-label`` and, for fMRIPrep, ``--derivatives`` with the
        run's own folders and the output folder. CleanupError for a value that cannot enter a script safely."""
        pipeline = pipeline_by_key(self.dataset.pipeline)
        facts = self.subject(label)
        output = self.dataset.derivatives or ""
        bids = next(iter(facts.inputs.values()), "BIDS_DIR")
        spec = self.spec or {}
        version = checked_version(facts.version, pipeline.name)
        options = ["--participant-label", checked_label(label)]
        filters = None
        derivatives: tuple[tuple[str, str], ...] = ()
        if spec.get("config"):
            carried, filters = carried_options(facts.config or {}, spec["config"], self.path_map)
            options += carried
        if spec.get("derivatives_option"):
            derivatives = derivative_folders(facts.derivatives, str(spec["derivatives_option"]), output)
        image = self._image() or (f"{spec['image']}:{version}" if spec.get("image") else None)
        return Recipe(label, pipeline.name, str(spec.get("program", pipeline.key)), version, bids, output, options,
                      filters, checked_image(image) if image else None, reclaimed_names(reclaimed, output),
                      slurm_hours(facts.duration), True, derivatives)

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
        return tag if isinstance(tag, str) else None


def _template(rest: str, kind: str) -> str | None:
    """The standard template an output in a volume space or CIFTI needs a transform to (as sMRIPrep names it:
    MNIPediatricAsym+1 for cohort 1), or None."""
    if kind == "cifti":
        return "MNI152NLin6Asym"
    entities = dict(part.partition("-")[::2] for part in rest.split("_")[:-1])
    space = entities.get("space")
    if kind not in ("volume", "resampled", "template") or not space or space in ("T1w", "T2w"):
        return None
    return f"{space}+{entities['cohort']}" if entities.get("cohort") else space


def _runs_of(facts: SubjectFacts) -> list[dict[str, Any]]:
    """The run entities of each BOLD run the subject has outputs of."""
    runs = {tuple((name, file.entities[name]) for name in RUN_ENTITIES if file.entities.get(name) is not None)
            for file in facts.files if file.entities.get("datatype") == "func" and "task" in file.entities}
    return [dict(run) for run in sorted(runs, key=str)]


def _of_run(entities: dict[str, Any], run: dict[str, Any], ignore: tuple[str, ...] = ()) -> bool:
    return all(str(entities.get(name)) == str(value) for name, value in run.items() if name not in ignore) and not any(
        name in entities for name in RUN_ENTITIES if name not in run and name not in ignore)


BIDS_KEYS = ("ses", "task", "acq", "ce", "rec", "dir", "run", "part")  # RUN_ENTITIES as file names write them


def run_name(relpath: str) -> str:
    """The run a derivative's name is of: sub-01_task-rest_run-01 (its other entities left out)."""
    parts = relpath.rpartition("/")[2].split("_")
    return "_".join([parts[0], *(part for part in parts[1:-1] if part.split("-", 1)[0] in BIDS_KEYS)])
