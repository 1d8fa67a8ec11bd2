"""Which pipeline wrote an output whose dataset_description.json is annexed and not on this disk (a DataLad clone
before `datalad get`): told from what git holds here - names, and any text file whose content is here.

An annex key gives a size and a hash, so it names nothing; but a clone holds every file's name. Evidence, from the
strongest: a text naming the pipeline (the description's URL key, its subjects' run configurations, a citation or
subject report whose content is here); where the output sits (its folder's name, the legacy layout: fmriprep/
beside freesurfer/); the file names only its outputs have (each pipeline's ``names``, with the versions that write
them). The pipelines with the strongest evidence must be one, or nothing is judged and the command says how to
fetch the description.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..basics.annex import key_of
from ..basics.errors import CleanupError
from ..basics.guarded import read_bytes
from .layout import RUN_UUID
from .pipelines import Pipeline, pipelines
from .workdirs import listing, read_run_config

NAMES_TEXT, PLACE, FILE_NAMES = 3, 2, 1  # strengths of evidence
TEXTS = ("logs/CITATION.md", "logs/CITATION.html", "logs/CITATION.tex")  # then the first subject report
TEXT_CAP = 4 * 1024 * 1024
SUBJECTS_LOOKED_AT = 3  # file names are read in this many subjects' folders (a clone may hold thousands)
VERSION_AFTER = r"\b({names})[*_]?\s+(?:version:?\s+)?v?(\d+\.\d+[\w.\-]*)"


class NotRecognisedError(CleanupError):
    """Nothing here tells which pipeline wrote the output (discovery turns it into NotFMRIPrepError)."""


@dataclass(frozen=True)
class Evidence:
    pipeline: Pipeline
    how: str  # as the note says it: "its folder's name (fmriprep)"
    strength: int
    version: str | None = None  # a text's exact version


def identify(folder: str, description: str) -> tuple[Pipeline, str | None, str]:
    """(pipeline, version or None, the note saying how) of the output at ``folder``; NotRecognisedError, with the
    command that fetches the description, when the strongest evidence names no pipeline or several."""
    found = _evidence(folder, description)
    fetch = f"`datalad get {os.path.basename(description)}` in {folder} (or `git annex get`) fetches it"
    strongest = max((item.strength for item in found), default=0)
    named = sorted({item.pipeline.name for item in found if item.strength == strongest})
    if len(named) != 1:
        which = f"it could be {' or '.join(named)}" if named else "nothing else here tells which pipeline wrote it"
        raise NotRecognisedError(f"{description} is annexed and its content is not here, and {which} "
                                 f"({folder}): {fetch}")
    pipeline = next(item.pipeline for item in found if item.pipeline.name == named[0])
    used = [item for item in found if item.pipeline.key == pipeline.key]
    version = next((item.version for item in used if item.version), None)
    told = f"version {version}" if version else "the version cannot be known"
    note = (f"dataset_description.json is annexed and not here: {pipeline.name} recognised from "
            f"{'; '.join(item.how for item in used)}; {told} ({fetch}); version-independent rules apply")
    return pipeline, version, note


def _evidence(folder: str, description: str) -> list[Evidence]:
    found = []
    key = (key_of(os.readlink(description)) or "").lower()
    entries = listing(folder)  # listed once: the subjects' folders and reports every kind of evidence looks at
    names = _file_names(folder, entries)
    for pipeline in pipelines():
        if pipeline.key in key.replace("-", "_") or pipeline.name.lower() in key:
            found.append(Evidence(pipeline, "its dataset_description.json's git-annex key", NAMES_TEXT))
        config = _run_config(entries, pipeline.run_config) if pipeline.run_config else None
        if config is not None:  # its version as status reads it, when its content is here
            found.append(Evidence(pipeline, f"its subjects' {pipeline.run_config}", NAMES_TEXT, _version_in(config)))
        if pipeline.output_folder and os.path.basename(folder) == pipeline.output_folder and \
                os.path.isdir(os.path.join(os.path.dirname(folder), "freesurfer")):
            found.append(Evidence(pipeline, f"the legacy layout ({pipeline.output_folder}/ beside freesurfer/)", PLACE))
        elif names_pipeline(os.path.basename(folder), pipeline):
            found.append(Evidence(pipeline, f"its folder's name ({os.path.basename(folder)})", PLACE))
        for glob, versions in pipeline.names:
            match = next((name for name in names if PurePosixPath(name).match(glob)), None)
            if match is not None:
                found.append(Evidence(pipeline, f"its file names ({match}: {glob.rsplit('/', 1)[-1]}, written by "
                                                f"{versions})", FILE_NAMES))
    return found + _texts(folder, entries)


def names_pipeline(name: str, pipeline: Pipeline) -> bool:
    """A folder name with the pipeline's own name in it as a word: fmriprep, ds000002-fmriprep, xcp_d-0.7."""
    spellings = {pipeline.key, pipeline.key.replace("_", "-"), pipeline.name.lower(), pipeline.output_folder or ""}
    return any(re.search(rf"(?<![a-z0-9]){re.escape(spelling)}(?![a-z0-9])", name.lower())
               for spelling in spellings if spelling)


def _run_config(entries: list[os.DirEntry], run_config: str) -> str | None:
    """The path of the newest ``run_config`` in the sub-*/log/<run>/ folders of the output (its ``entries``),
    annexed or not (its name is enough to recognise the pipeline), or None."""
    found = []
    for entry in entries:
        if entry.name.startswith("sub-") and entry.is_dir(follow_symlinks=False):
            found += [os.path.join(run.path, run_config) for run in listing(os.path.join(entry.path, "log"))
                      if RUN_UUID.match(run.name) and os.path.lexists(os.path.join(run.path, run_config))]
    return max(found, key=lambda path: os.path.basename(os.path.dirname(path)), default=None)


def _version_in(config: str) -> str | None:
    """The version a run config records (read as `status` reads it), when its content is here."""
    try:
        version = read_run_config(config).get("version") if os.path.exists(config) else None
    except ValueError:
        return None
    return str(version) if version else None


def _file_names(folder: str, entries: list[os.DirEntry]) -> list[str]:
    """The paths (relative to ``folder``) of the files of its first few subjects, three folders deep at most:
    sub-01/ses-1/func/<file>. Names only: nothing is read or fetched."""
    subjects = sorted(entry.name for entry in entries
                      if entry.name.startswith("sub-") and entry.is_dir(follow_symlinks=False))
    names, stack = [], [(subject, 1) for subject in subjects[:SUBJECTS_LOOKED_AT]]
    while stack:
        relpath, depth = stack.pop()
        for entry in listing(os.path.join(folder, relpath)):
            if entry.is_dir(follow_symlinks=False):
                if depth < 3:
                    stack.append((f"{relpath}/{entry.name}", depth + 1))
            else:
                names.append(f"{relpath}/{entry.name}")
    return sorted(names)


def _texts(folder: str, entries: list[os.DirEntry]) -> list[Evidence]:
    """Each text here (its content on this disk: stored in git, or fetched) that names a pipeline with its
    version: the citation, else the first subject's report. The first pipeline a text names is the one that
    wrote it (XCP-D's citation names fMRIPrep after itself)."""
    reports = sorted(entry.name for entry in entries if entry.name.startswith("sub-")
                     and entry.name.endswith(".html"))
    names = "|".join(re.escape(name) for pipeline in pipelines() for name in {pipeline.name, *pipeline.generated_by})
    for relpath in (*TEXTS, *reports[:1]):
        path = os.path.join(folder, relpath)
        if not os.path.isfile(path):  # not here (an annexed link without its content), or no such file
            continue
        try:
            text = read_bytes(path, "text", cap=TEXT_CAP).decode("utf-8", "replace")
        except CleanupError:
            continue
        found = re.search(VERSION_AFTER.format(names=names), text, re.IGNORECASE)
        if found:
            named = found.group(1).lower()
            pipeline = next(p for p in pipelines() if named in {n.lower() for n in (p.name, *p.generated_by)})
            version = found.group(2).rstrip(".")
            return [Evidence(pipeline, f"{relpath} ({found.group(1)} {version})", NAMES_TEXT, version)]
    return []
