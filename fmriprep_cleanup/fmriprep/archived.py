"""A pipeline's outputs kept in a zip or tar file, found the way the tools that write them name them:

* BABS zips each job's output folders, ``7z a ../sub-XX[_ses-YY]_<name>-<version>.zip <name>`` (one zip per
  folder named in ``zip_foldernames``; the version with dashes for dots): the zip holds ``<name>/``, fMRIPrep's
  output directory (BIDS layout: FreeSurfer in ``<name>/sourcedata/freesurfer/``), or ``freesurfer/``;
* Nipoppy ``--tar`` runs ``tar -cvf <dir>.tar -C <output> <dir>`` on each participant-session's folder
  (``PARTICIPANT_SESSION_DIR``, a ``sub-XX`` folder of the output): the tar holds ``sub-XX/...`` and sits in
  ``derivatives/<pipeline>/<version>/output/``.

The archive is read as the folder it would unpack to (basics/archivetree.py); the dataset found in it is plain
data like any other (fmriprep/layout.py), its folders paths inside the archive."""

from __future__ import annotations

import dataclasses
import json
import os
import re

from ..basics.archivefile import TAR, ZIP, ArchiveFile, read_archive, read_member
from ..basics.archivetree import ArchiveTree
from ..basics.errors import CleanupError
from ..basics.repository import find_repository
from .discovery import read_generator
from .layout import STATE_DIR_NAME, Dataset
from .nipoppy import study_of
from .pipelines import pipeline_named

BABS_ZIP = re.compile(r"^sub-[A-Za-z0-9]+(?:_ses-[A-Za-z0-9]+)?_(?P<name>[A-Za-z][A-Za-z0-9_]*?)"
                      r"-(?P<version>[0-9][0-9A-Za-z.-]*)\.zip$")
NIPOPPY_OUTPUT = re.compile(r"/derivatives/(?P<name>[^/]+)/(?P<version>[^/]+)/output$")
DESCRIPTION, DESCRIPTION_CAP = "dataset_description.json", 1 << 20


def discover_archive(path: str) -> tuple[Dataset, ArchiveTree]:
    """The pipeline output in the archive at ``path`` and the tree of its members; CleanupError when it holds none
    this tool knows. A zip is read as the folder it holds (BABS); a tar as unpacked beside it, in the folder
    Nipoppy's tracker reads it from, within the output it belongs to."""
    path = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
    archive = read_archive(path)
    tops = {member.name.split("/", 1)[0] for member in archive.members}
    if archive.kind == TAR:
        output = _output_above(os.path.dirname(path), tops)
        tree = ArchiveTree(archive, os.path.dirname(path), output)
        root, how = output, f"the members of {os.path.relpath(path, output)}, as unpacked in the output (Nipoppy --tar)"
    elif len(tops) == 1:
        tree, top = ArchiveTree(archive), next(iter(tops))
        root, how = f"{path}/{top}", f"the {top}/ folder kept in a zip file" + (" (BABS)" if BABS_ZIP.match(
            os.path.basename(path)) else "")
    else:
        raise CleanupError(f"{path}: its members are not one output folder ({', '.join(sorted(tops)[:3]) or 'empty'})"
                           ": not an archived pipeline output")
    pipeline, version = _pipeline(archive, root)
    known = pipeline_named(pipeline or "")
    if known is None:
        raise CleanupError(f"{path}: no pipeline output this tool knows is kept in it (its dataset_description.json, "
                           "a BABS zip name or a Nipoppy output folder names one)")
    study = study_of(root, tracked_in=(path, [member.name for member in archive.members])) \
        if archive.kind == TAR and NIPOPPY_OUTPUT.search(root) else None
    freesurfer = f"{root}/sourcedata/freesurfer"
    return Dataset(path=path, layout="bids", fmriprep_version=version, derivatives=root,
                   freesurfer=freesurfer if tree.is_folder(freesurfer) else None, workdirs=(),
                   found=((root, how),), pipeline=known.key, nipoppy=study,
                   state_base=_state_base(path),
                   notes=(f"read from the {archive.kind} file's {'central directory' if archive.kind == ZIP else 'headers'}"
                          f" ({len(archive.members):,} members), nothing unpacked",)), tree


def _state_base(path: str) -> str:
    """Where an archive's lock and journal live: in the repository's .git/ when it is in one (``git status``
    stays clean), else in .fmriprep-cleanup/ beside it."""
    repository = find_repository(os.path.dirname(path))
    if repository is not None:
        return os.path.join(repository.git_dir, "fmriprep-cleanup")
    return os.path.join(os.path.dirname(path), STATE_DIR_NAME)


def _output_above(folder: str, tops: set[str]) -> str:
    """The output a tar unpacked in ``folder`` belongs to: the Nipoppy output folder at or above it, else the
    folder itself when the tar holds subjects' folders, or its parent when it sits in a subject's folder."""
    for candidate in (folder, os.path.dirname(folder), os.path.dirname(os.path.dirname(folder))):
        if NIPOPPY_OUTPUT.search(candidate):
            return candidate
    if tops and all(top.startswith("sub-") for top in tops):
        return folder
    if os.path.basename(folder).startswith("sub-"):
        return os.path.dirname(folder)
    raise CleanupError(f"{folder}: a tar file here holds {', '.join(sorted(tops)[:3]) or 'nothing'}, not subjects' "
                       "folders of a pipeline output: not read")


def _pipeline(archive: ArchiveFile, root: str) -> tuple[str | None, str | None]:
    """(pipeline, version) as the archive says (its dataset_description.json), else the output's description
    beside it, else a BABS zip's name, else a Nipoppy output's folders."""
    found = _generator(archive, root) if root.startswith(archive.path + "/") else (None, None)
    description = os.path.join(root, DESCRIPTION)
    if found[0] is None and not root.startswith(archive.path + "/") and os.path.isfile(description):
        found = read_generator(description)
    named, nipoppy = BABS_ZIP.match(os.path.basename(archive.path)), NIPOPPY_OUTPUT.search(root)
    if found[0] is None and named:
        found = named["name"], named["version"].replace("-", ".")
    if found[0] is None and nipoppy:
        found = nipoppy["name"], nipoppy["version"]
    return found


def _generator(archive: ArchiveFile, root: str) -> tuple[str | None, str | None]:
    """(pipeline, version) from the archive's dataset_description.json, if it has one that says."""
    data = read_member(archive, f"{root[len(archive.path) + 1:]}/{DESCRIPTION}", DESCRIPTION_CAP)
    try:
        description = json.loads(data) if data else None
    except ValueError:
        return None, None
    generators = description.get("GeneratedBy") if isinstance(description, dict) else None
    first = generators[0] if isinstance(generators, list) and generators and isinstance(generators[0], dict) else None
    if first is None or not first.get("Name"):
        return None, None
    return str(first["Name"]), str(first["Version"]) if first.get("Version") else None


def babs_zips_in(folder: str) -> str | None:
    """What to say of a folder that holds no output but BABS's: its merged zips (one per job), or a BABS project
    whose results are in its output RIA store (a bare repository, read through a clone, never in place)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    zips = [name for name in names if BABS_ZIP.match(name)]
    if zips:
        return (f"{folder} holds {len(zips)} job outputs zipped by BABS ({zips[0]}{', ...' if len(zips) > 1 else ''}):"
                f" give one of them to report, plan, explain or clean it, or `fmriprep-cleanup audit {folder}` for all")
    if {"analysis", "output_ria"} <= set(names):
        return (f"{folder} is a BABS project: its results are in output_ria/, a store read through a clone - "
                f"`datalad clone ria+file://{os.path.abspath(folder)}/output_ria#~data merged` (after `babs merge`), "
                "then `fmriprep-cleanup audit merged`")
    return None


def with_tar_note(dataset: Dataset) -> Dataset:
    """A Nipoppy output whose participant-sessions ``--tar`` archived: a note naming them, and how to judge their
    members (the output's own report counts each as one kept file)."""
    study = dataset.nipoppy
    tarred = sorted(tracked.path for tracked in study.tracked if tracked.path.endswith(".tar")) if study else []
    if not tarred:
        return dataset
    note = (f"{len(tarred)} participant-session folders kept in tar files by nipoppy --tar ({tarred[0]}"
            f"{', ...' if len(tarred) > 1 else ''}): counted here as kept files; "
            f"`fmriprep-cleanup report {os.path.join(dataset.derivatives or '', tarred[0])}` judges their members")
    return dataclasses.replace(dataset, notes=(*dataset.notes, note))
