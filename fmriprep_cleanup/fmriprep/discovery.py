"""Discovery: what fMRIPrep (or another NiPreps pipeline) wrote, where, and which version wrote it.

fMRIPrep has two output layouts (see fmriprep/layout.py): the BIDS layout, where the output directory *is* the
derivatives dataset with FreeSurfer in ``sourcedata/freesurfer/``; and the legacy layout, with the
derivatives in ``OUT/fmriprep/`` and FreeSurfer in ``OUT/freesurfer/``. A folder given is recognised from its
dataset_description.json (its first GeneratedBy), or, where that is annexed and not fetched, from what else
the folder holds; a working directory from its workflow folder.

Discovery only lists a few folders and reads one JSON file; the scan comes later.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..basics.annex import key_of
from ..basics.errors import CleanupError
from ..basics.guarded import load_json
from ..basics.journals import recorded_roots
from ..basics.repository import GitRepo, datalad_problem, find_repository
from .identify import NotRecognisedError, identify
from .layout import Dataset, state_dir_for
from .nipoppy import NipoppyStudy, study_of, study_outputs
from .pipelines import Pipeline, known_names, pipeline_named, pipelines
from .workdirs import (
    KnownRoots,
    PathMap,
    check_directory,
    explicit_workdir,
    find_workdirs,
    list_dir,
    only_ours,
    orphaned_output,
    pipeline_of_workdir_name,
    recorded_or_beside,
    workdir_pipeline,
)


class NotFMRIPrepError(CleanupError):
    """The folder holds no fMRIPrep output (a raw BIDS dataset, another pipeline's derivatives, anything else)."""


def _version_tuple(version: str | None) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", version or "")
    return tuple(int(number) for number in numbers[:3])


def read_generator(description_path: str) -> tuple[str | None, str | None]:
    """(pipeline name, version) from a dataset_description.json: its first GeneratedBy entry, the pipeline
    that wrote it (fMRIPost-AROMA, XCP-D... list their inputs' pipelines after their own); CleanupError if
    unreadable. A known pipeline's name is spelled as its description spells it (fMRIPrep, not fmriprep)."""
    description = load_json(description_path, "dataset description")
    if not isinstance(description, dict):
        raise CleanupError(f"{description_path} is not a JSON object")
    generators = description.get("GeneratedBy")
    if isinstance(generators, dict):
        generators = [generators]
    first: Any = None
    if isinstance(generators, list):
        first = next((g for g in generators if isinstance(g, dict) and g.get("Name")), None)
    elif isinstance(description.get("PipelineDescription"), dict):  # BIDS-Derivatives RC, fMRIPrep 1.0-1.3
        first = description["PipelineDescription"]
    if first is None or not str(first.get("Name", "")):
        return None, None
    name = str(first["Name"])
    known = pipeline_named(name)
    return (known.name if known else name), (str(first.get("Version")) if first.get("Version") else None)


def unfetched(path: str) -> bool:
    """An annexed link (into .git/annex/objects) whose content is not on this disk: git (datalad) get fetches it."""
    if not os.path.islink(path):
        return False
    try:
        target = os.readlink(path)
    except OSError:
        return False
    return key_of(target) is not None and not os.path.exists(path)


def _require_known(description_path: str, notes: list[str] | None = None) -> tuple[Pipeline, str | None]:
    """The pipeline and version a dataset_description.json names, or a CleanupError saying what it names. An
    annexed description that is not here is recognised from what else the folder holds (noted in ``notes``)."""
    if notes is not None and unfetched(description_path):
        try:
            identified, version, note = identify(os.path.dirname(description_path), description_path)
        except NotRecognisedError as exc:
            raise NotFMRIPrepError(str(exc)) from None
        notes.append(note)
        return identified, version
    name, version = read_generator(description_path)
    pipeline = pipeline_named(name) if name else None
    if pipeline is None:
        what = f"names {name!r}" if name else "names no pipeline (GeneratedBy/PipelineDescription), so it is not derivatives"
        raise NotFMRIPrepError(f"{description_path} {what}, not fMRIPrep or another pipeline this tool knows "
                               f"({known_names()})")
    return pipeline, version


def repository_note(repository: GitRepo) -> str:
    """What discovery says of the repository the outputs live in: what is not scanned, and its subdatasets."""
    note = f"a {repository.kind} ({repository.top}): its .git/ and subdatasets are not scanned"
    if repository.subdatasets:
        installed = [path for path in repository.subdatasets if os.path.lexists(os.path.join(path, ".git"))]
        names = ", ".join(os.path.relpath(path, repository.top) + ("" if path in installed else " (not installed)")
                          for path in repository.subdatasets[:8])
        note += f" (subdatasets: {names}{', ...' if len(repository.subdatasets) > 8 else ''})"
    if repository.annexed:
        note += "; annexed files count their content's size"
    problem = datalad_problem(repository)
    return note + (f"; {problem}" if problem else "")


def discover(path: str, work_dir: str | None = None, find_work_dir: bool = True,
             known_roots: KnownRoots | None = None, path_map: PathMap = ()) -> Dataset:
    """Recognise fMRIPrep output (either layout) or a working directory at ``path``.

    ``known_roots(identity)``: the folders earlier cleanups of the dataset acted on (its journal), so that a
    working directory they emptied is still recognised when named again. Raises CleanupError with one line
    saying what was looked for and where. ``path_map``: container paths as this machine sees them, for the
    output directories a lone working directory's runs recorded.
    """
    return Discovery(path, work_dir, find_work_dir, known_roots, path_map).dataset()


EXPECTED = "fMRIPrep output or an fMRIPrep working directory"


class Discovery:
    """What one folder is: an output (BIDS or legacy layout), the folder holding a legacy output, or a working
    directory; with what was noted, warned and how each folder of the dataset was found on the way."""

    def __init__(self, path: str, work_dir: str | None, find_work_dir: bool, known_roots: KnownRoots | None,
                 path_map: PathMap) -> None:
        self.given = os.path.abspath(os.path.expanduser(str(path)))
        self.work_dir, self.find_work_dir, self.known_roots, self.path_map = work_dir, find_work_dir, known_roots, path_map
        self.real = check_directory(self.given, EXPECTED)
        self.entries = list_dir(self.real)
        if not self.entries:
            raise CleanupError(f"{self.given} is empty (expected {EXPECTED})")
        self.names = {entry.name for entry in self.entries}
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.found: dict[str, str] = {}  # folder -> how it was found (the working directories' as they are found)
        self.nipoppy: NipoppyStudy | None = None
        self.left_out: dict[str, str] = {}  # working directories of other runs -> why (only_ours)

    def dataset(self) -> Dataset:
        if "dataset_description.json" in self.names:
            return self.output()
        container_of = next((pipeline for pipeline in pipelines() if pipeline.output_folder
                             and pipeline.output_folder in self.names
                             and os.path.lexists(os.path.join(self.real, pipeline.output_folder,
                                                              "dataset_description.json"))), None)
        if container_of is not None:
            return self.legacy_container(container_of)
        found_workdir = workdir_pipeline(self.real) or pipeline_of_workdir_name(os.path.basename(self.real))
        emptied = found_workdir is None and self.known_roots is not None and self.real in self.known_roots(self.real)
        if found_workdir is not None or emptied:
            return self.workdir(found_workdir or ("fmriprep", None), emptied)
        raise self.not_recognised()

    def output(self) -> Dataset:
        """The folder given is an output: its layout, FreeSurfer folder and working directories."""
        real = self.real
        pipeline, version = _require_known(os.path.join(real, "dataset_description.json"), self.notes)
        key, parent = pipeline.key, os.path.dirname(real)
        bids_freesurfer = os.path.join(real, "sourcedata", "freesurfer")
        legacy_freesurfer = os.path.join(parent, "freesurfer")
        old = key == "fmriprep" and bool(version) and _version_tuple(version or "") < (21,)
        freesurfer: str | None
        if os.path.isdir(bids_freesurfer) and not os.path.islink(bids_freesurfer):
            layout, freesurfer = "bids", bids_freesurfer
        elif os.path.basename(real) == pipeline.output_folder and (os.path.isdir(legacy_freesurfer) or old):
            layout = "legacy"
            freesurfer = legacy_freesurfer if os.path.isdir(legacy_freesurfer) else None
            self.notes.append(f"legacy layout: only {real} and its sibling freesurfer/ are scanned, not the rest of "
                              f"{parent}")
        else:
            layout, freesurfer = "legacy" if old else "bids", None
        output_dir = real if layout == "bids" else parent
        known = frozenset(self.known_roots(real)) if self.known_roots is not None and self.find_work_dir \
            and not self.work_dir else frozenset()
        self.nipoppy = study_of(real)
        workdirs = self.named_workdirs(real, key) or (only_ours(
            find_workdirs(real, self.entries, key, known) or self.nipoppy_work_folders()
            or recorded_or_beside(real, output_dir, self.notes, self.warnings, self.found, pipeline, known),
            output_dir, real, self.warnings, self.left_out) if self.find_work_dir else [])
        return self.made(layout, version, real, freesurfer, workdirs, key, legacy=layout == "legacy")

    def nipoppy_work_folders(self) -> list[str]:
        """The working folders of a Nipoppy study's participant-sessions (scratch/work/<p>-<v>-<step>/...)."""
        study = self.nipoppy
        if study is None:
            return []
        self.notes.append(f"a Nipoppy study ({study.root}): the {len(study.tracked)} files its trackers count are kept, "
                          "and the working folders of participant-sessions it does not mark SUCCESS; run `nipoppy "
                          "track-processing` after a clean")
        for folder in study.work_folders:
            self.found[folder.path] = (f"Nipoppy's working folder of sub-{folder.participant}"
                                       f"{' ses-' + folder.session if folder.session else ''} "
                                       f"({folder.status or 'not tracked'})")
        return [folder.path for folder in study.work_folders]

    def legacy_container(self, container_of: Any) -> Dataset:
        """The folder given holds a legacy output (fmriprep/ beside freesurfer/)."""
        real = self.real
        derivatives = os.path.join(real, container_of.output_folder)
        pipeline, version = _require_known(os.path.join(derivatives, "dataset_description.json"), self.notes)
        key = pipeline.key
        freesurfer = os.path.join(real, "freesurfer")
        legacy_evidence = os.path.isdir(freesurfer) or (
            key == "fmriprep" and version is not None and _version_tuple(version) < (21,))
        if not legacy_evidence or os.path.isdir(os.path.join(derivatives, "sourcedata", "freesurfer")):
            raise NotFMRIPrepError(f"{derivatives} is {pipeline.name} output in the BIDS layout; give {derivatives} itself")
        workdirs = self.named_workdirs(derivatives, key) or (only_ours(
            find_workdirs(real, self.entries, key)
            or recorded_or_beside(derivatives, real, self.notes, self.warnings, self.found, pipeline),
            real, derivatives, self.warnings, self.left_out) if self.find_work_dir else [])
        freesurfer_found = freesurfer if os.path.isdir(freesurfer) and not os.path.islink(freesurfer) else None
        return self.made("legacy", version, derivatives, freesurfer_found, workdirs, key, legacy=True, container=real)

    def workdir(self, found: tuple[str, str | None], emptied: bool) -> Dataset:
        """The folder given is a working directory (or was one, before an earlier cleanup emptied it)."""
        key, version = found
        real = self.real
        if emptied:
            self.notes.append(f"working directory {real} holds nothing of fMRIPrep's any more (an earlier cleanup "
                              "emptied it)")
        workdirs = [real] + [workdir for workdir in self.named_workdirs(None, key) if workdir != real]
        orphan_of = orphaned_output(real, self.path_map)
        if orphan_of:
            self.notes.append(f"orphaned: its runs wrote to {orphan_of}, which no longer exists")
        return Dataset(path=self.given, layout="workdir", fmriprep_version=version, derivatives=None,
                       freesurfer=None, workdirs=tuple(workdirs), notes=tuple(self.notes),
                       found=self.how(None, None, workdirs, False), warnings=tuple(self.warnings),
                       orphan_of=orphan_of, pipeline=key)

    def made(self, layout: str, version: str | None, derivatives: str, freesurfer: str | None, workdirs: list[str],
             key: str, legacy: bool, container: str | None = None) -> Dataset:
        """An output's dataset, with the repository it lives in (if any) noted."""
        repository = find_repository(derivatives)
        if repository is not None:
            self.notes.append(repository_note(repository))
        return Dataset(path=self.given, layout=layout, fmriprep_version=version, derivatives=derivatives,
                       freesurfer=freesurfer, workdirs=tuple(workdirs), container=container, notes=tuple(self.notes),
                       found=self.how(derivatives, freesurfer, workdirs, legacy), warnings=tuple(self.warnings),
                       repository=repository, pipeline=key, nipoppy=self.nipoppy,
                       left_out=tuple(self.left_out.items()))

    def named_workdirs(self, identity: str | None, pipeline: str = "fmriprep") -> list[str]:
        return [explicit_workdir(self.work_dir, identity, self.known_roots, self.notes, pipeline)] \
            if self.work_dir else []

    def how(self, derivatives: str | None, freesurfer: str | None, workdirs: list[str], legacy: bool) -> tuple:
        """How each folder of the dataset was found, as the report says it."""
        found, real = self.found, self.real
        if derivatives:
            found[derivatives] = "the folder given" if derivatives == real else "the fmriprep/ of the folder given"
        if freesurfer:
            found[freesurfer] = ("freesurfer/ beside the output (legacy layout)" if legacy
                                 else "sourcedata/freesurfer in the output")
        for workdir in workdirs:
            if self.work_dir and workdir == workdirs[-1] and workdir not in found:
                found[workdir] = "given with --work-dir"
            elif workdir == real:
                found[workdir] = "the folder given"
            elif workdir not in found:
                found[workdir] = "inside the folder given"
        return tuple(found.items())

    def not_recognised(self) -> NotFMRIPrepError:
        """Why the folder given is none of them, with what it is instead when that can be told."""
        given = self.given
        if "fmriprep" in self.names:
            return NotFMRIPrepError(f"{given}/fmriprep has no dataset_description.json naming fMRIPrep")
        derivatives_here = sorted(entry.name for entry in self.entries if entry.is_dir(follow_symlinks=False) and
                                  os.path.isfile(os.path.join(self.real, entry.name, "dataset_description.json")))
        if derivatives_here and os.path.basename(self.real) == "derivatives":
            return NotFMRIPrepError(f"{given} holds several pipelines' outputs ({', '.join(derivatives_here)}): give "
                                    f"one of them, or audit {given} to see them all")
        outputs = study_outputs(self.real)
        if outputs is not None:
            return NotFMRIPrepError(f"{given} is a Nipoppy study: give one pipeline's output ("
                                    f"{', '.join(outputs) or 'none yet in derivatives/<pipeline>/<version>/output'}), "
                                    f"or audit {given} for the whole study by pipeline, version and step")
        return NotFMRIPrepError(
            f"{given} does not look like {EXPECTED}: found no dataset_description.json naming fMRIPrep, no "
            "fmriprep/ folder (legacy layout) and no fmriprep_wf/ or fmriprep_<major>_<minor>_wf/ (working directory)")


def discover_dataset(path: str, work_dir: str | None = None, find_work_dir: bool = True,
                     state_base: str | None = None) -> Dataset:
    """discover(), knowing what earlier cleanups of the dataset acted on (its sealed journals): a working
    directory a completed run emptied is still the dataset's, so the same command run again finds nothing to do."""
    return discover(path, work_dir, find_work_dir,
                    known_roots=lambda identity: recorded_roots(state_dir_for(identity, state_base)))


def outputs_below(path: str, depth: int = 3, most: int = 2000) -> list[str]:
    """The pipeline outputs at most ``depth`` folders below ``path`` (looking at ``most`` folders at most, never
    into subjects' raw data or hidden folders), for "did you mean ...?" when ``path`` is a raw BIDS root or a
    folder of datasets."""
    found: list[str] = []
    level, looked = [path], 0
    for _ in range(depth):
        below_here: list[str] = []
        for folder in level:
            try:
                names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False))
            except OSError:
                continue
            for name in names:
                looked += 1
                if name.startswith((".", "sub-")) or looked > most:
                    continue
                child = os.path.join(folder, name)
                try:
                    discover(child, find_work_dir=False)
                    found.append(child)
                except CleanupError:
                    below_here.append(child)
        level = below_here
    return found
