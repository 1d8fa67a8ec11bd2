"""Build realistic fMRIPrep projects from file listings, with sparse files of the real sizes.

Used by ``fmriprep-cleanup demo``, by the tests and by the benchmarks. A listing
is a list of ``(relative path, size in bytes)``; sparse files cost no disk space,
so a project of many gigabytes builds in a second.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections.abc import Iterable
from importlib import resources

DEMO_LISTING = "ds003752-fmriprep-23.2.0.tsv"
DEMO_VERSION = "23.2.0"
# fMRIPrep ran on 2024-01-27 (its run folders say so); files get that time, not "just now",
# so that age limits behave as they would on a real project.
DEMO_MTIME = 1706359710.0

Listing = list[tuple[str, int]]


def load_listing(path: str | os.PathLike | None = None) -> Listing:
    """Read a TSV with columns path and size; the shipped ds003752 listing by default."""
    if path is None:
        with resources.files("fmriprep_cleanup.data").joinpath(DEMO_LISTING).open(encoding="utf-8") as handle:
            return _parse_listing(handle)
    with open(path, encoding="utf-8") as handle:
        return _parse_listing(handle)


def _parse_listing(lines: Iterable[str]) -> Listing:
    reader = csv.DictReader(lines, delimiter="\t")
    return [(row["path"], int(row["size"])) for row in reader]


def dataset_description(version: str, size: int | None = None, legacy: bool = False) -> bytes:
    """A dataset_description.json as fMRIPrep writes it, padded with spaces to ``size`` bytes."""
    if legacy:
        content: dict = {"Name": "fMRIPrep output", "BIDSVersion": "1.1.1",
                         "PipelineDescription": {"Name": "fMRIPrep", "Version": version}}
    else:
        content = {
            "Name": "fMRIPrep - fMRI PREProcessing workflow",
            "BIDSVersion": "1.4.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": version,
                             "CodeURL": f"https://github.com/nipreps/fmriprep/archive/{version}.tar.gz"}],
        }
    text = json.dumps(content, indent=2).encode()
    if size is not None and size > len(text):
        text += b" " * (size - len(text) - 1) + b"\n"
    return text


def run_config(version: str, run_uuid: str, subject: str, work_dir: str = "/scratch/work",
               size: int | None = None) -> bytes:
    """An fmriprep.toml as fMRIPrep writes it in sub-<label>/log/<run_uuid>/, padded to ``size`` bytes."""
    text = (
        f'[environment]\nversion = "{version}"\n\n'
        f'[execution]\nwork_dir = "{work_dir}"\noutput_dir = "/out"\nrun_uuid = "{run_uuid}"\n'
        f'participant_label = ["{subject}"]\noutput_spaces = "MNI152NLin2009cAsym:res-2 MNI152NLin6Asym:res-2"\n'
        f'fs_subjects_dir = "/out/sourcedata/freesurfer"\n\n[workflow]\nrun_reconall = true\n'
    ).encode()
    if size is not None and size > len(text):
        text += b"#" * (size - len(text) - 1) + b"\n"
    return text


_RUN_CONFIG = re.compile(r"^sub-([a-zA-Z0-9]+)/log/([^/]+)/fmriprep\.toml$")


def real_contents(listing: Listing, version: str = DEMO_VERSION) -> dict[str, bytes]:
    """The files of a listing that tools read (dataset_description.json, fmriprep.toml), with real content."""
    contents = {}
    for relpath, size in listing:
        if relpath == "dataset_description.json":
            contents[relpath] = dataset_description(version, size)
        found = _RUN_CONFIG.match(relpath)
        if found:
            contents[relpath] = run_config(version, found.group(2), found.group(1), size=size)
    return contents


TEXT_NAMES = (".gitattributes", ".gitmodules", ".bidsignore", "README")  # text a person or git may read
TEXT_SUFFIXES = (".json", ".md", ".txt", ".bib")
TEXT_CAP = 64 << 10  # larger files (confounds tables) stay sparse: the demo must stay small on disk


def text_stand_ins(listing: Listing) -> dict[str, bytes]:
    """Small text files with real text of their listed size (a stand-in saying what it stands for), so that
    copying the demo into a git or DataLad dataset, or opening one, finds text, never NUL bytes."""
    return {relpath: stand_in(relpath, size) for relpath, size in listing
            if size <= TEXT_CAP and (os.path.basename(relpath).startswith(TEXT_NAMES) or relpath.endswith(TEXT_SUFFIXES))}


def stand_in(relpath: str, size: int) -> bytes:
    """``size`` bytes of text for ``relpath``: JSON for a .json file, else comment lines."""
    note = f"stand-in for {relpath} of ds003752's fMRIPrep output (fmriprep-cleanup demo)"
    if relpath.endswith(".json") and size >= 16:
        body = ('{"Note": "' + (note + " " * size)[:size - 13] + '"}\n').encode()
        return body
    line = f"# {note}\n"
    text = (line * (size // len(line) + 1))[:max(size - 1, 0)] + ("\n" if size else "")
    return text.encode()


def build_tree(root: str, listing: Listing, contents: dict[str, bytes] | None = None,
               mtime: float | None = DEMO_MTIME) -> None:
    """Create every listed file under ``root``: real bytes where ``contents`` has them, else sparse.
    Files and folders get ``mtime``, as a finished fMRIPrep run leaves them (not "just now")."""
    contents = contents or {}
    made: set[str] = set()
    for relpath, size in listing:
        path = os.path.join(root, relpath)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(path, "wb") as handle:
            data = contents.get(relpath)
            if data is not None:
                handle.write(data)
            else:
                handle.truncate(size)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    if mtime is not None:
        for folder in sorted(made, key=len, reverse=True):
            while folder.startswith(root) and folder != os.path.dirname(root):
                os.utime(folder, (mtime, mtime))
                folder = os.path.dirname(folder)


_BOLD_RUN = re.compile(r"^sub-([a-zA-Z0-9]+)/(?:ses-[a-zA-Z0-9]+/)?func/(sub-[^/]+?)_desc-hmc_boldref\.nii\.gz$")

# Per BOLD run: (node path inside the run's workflow, output file, size range in MB or None)
_BOLD_NODES = [
    ("bold_fit_wf/hmc_boldref_wf/validation_and_dummies_wf/val_bold", "bold_valid.nii.gz", (40, 90)),
    ("bold_fit_wf/bold_hmc_wf/mcflirt", "bold_mcf.nii.gz", (40, 90)),
    ("bold_fit_wf/bold_reg_wf/bbreg_wf/bbregister", "bold_bbreg.dat", None),
    ("bold_native_wf/bold_stc_wf/slice_timing_correction", "bold_tshift.nii.gz", (40, 90)),
    ("bold_native_wf/boldref2target", "bold_native.nii", (120, 240)),
    ("bold_confounds_wf/acompcor", "acompcor.tsv", None),
    ("bold_confounds_wf/tcompcor", "tcompcor.tsv", None),
    ("bold_confounds_wf/rois_plot", "rois.svg", None),
]
_ANAT_NODES = [
    ("anat_fit_wf/anat_validate", "T1w_valid.nii.gz", (40, 70)),
    ("anat_fit_wf/brain_extraction_wf/n4_only_wf/inu_n4_final", "T1w_corrected.nii.gz", (40, 70)),
    ("anat_fit_wf/brain_extraction_wf/atropos_wf/01_atropos", "segmentation.nii.gz", (5, 15)),
    ("anat_fit_wf/register_template_wf/registration", "ants_t1_to_mniComposite.h5", (70, 95)),
    ("anat_fit_wf/surface_recon_wf/autorecon1", "T1.mgz", (6, 10)),
    ("anat_fit_wf/surface_recon_wf/autorecon_resume_wf/autorecon_surfs", "stats.txt", None),
]


def _node_files(node: str, output: str, size_mb: tuple[int, int] | None, rng: random.Random) -> Listing:
    """The files nipype leaves in one node folder, plus the node's output."""
    name = node.rsplit("/", 1)[-1]
    files = [
        (f"{node}/_report/report.rst", rng.randint(1500, 6000)),
        (f"{node}/_inputs.pklz", rng.randint(600, 4000)),
        (f"{node}/_node.pklz", rng.randint(3000, 12000)),
        (f"{node}/result_{name}.pklz", rng.randint(1500, 9000)),
        (f"{node}/command.txt", rng.randint(150, 900)),
    ]
    size = rng.randint(size_mb[0], size_mb[1]) * 1_000_000 if size_mb else rng.randint(1000, 300_000)
    files.append((f"{node}/{output}", size))
    return files


def synthetic_workdir(listing: Listing, version: str = DEMO_VERSION, seed: int = 0) -> Listing:
    """A nipype working directory as fMRIPrep >= 23.2 leaves it, for the subjects and runs in ``listing``.

    Paths are relative to the working directory (``-w``). Seeded, so the same
    listing always gives the same tree.
    """
    rng = random.Random(seed)
    major, minor = version.split(".")[:2]
    top = f"fmriprep_{major}_{minor}_wf"
    runs: dict[str, list[str]] = {}
    for relpath, _ in listing:
        found = _BOLD_RUN.match(relpath)
        if found:
            runs.setdefault(found.group(1), []).append(found.group(2))
    files: Listing = []
    run_uuid = "20240127-124830_0c970070-7984-4260-b527-e484380e8f41"
    files += [(f"{run_uuid}/config.toml", 2637), (f"{run_uuid}/bids_db/layout_index.sqlite", 1_409_024)]
    for subject in sorted(runs):
        subject_wf = f"{top}/sub_{subject}_wf"
        for node, output, size_mb in _ANAT_NODES:
            files += _node_files(f"{subject_wf}/{node}", output, size_mb, rng)
        for bold in sorted(runs[subject]):
            run_wf = "bold_" + "_".join(part.replace("-", "_") for part in bold.split("_")[1:]) + "_wf"
            for node, output, size_mb in _BOLD_NODES:
                files += _node_files(f"{subject_wf}/{run_wf}/{node}", output, size_mb, rng)
        files.append((f"{top}/fsdir_run_{run_uuid.replace('-', '_')}/_report/report.rst", 2100))
        files.append((f"reportlets/fmriprep/sub-{subject}/figures/sub-{subject}_desc-reconall_T1w.svg", 812_000))
    files.append((f"{top}/d3.js", 144_000))
    files.append((f"{top}/graph1.json", 98_000))
    files.append((f"{top}/index.html", 2_000))
    return files


def build_demo(destination: str) -> tuple[str, str]:
    """The demo project: ds003752's real output tree and a working directory beside it.

    Returns (output directory, working directory), as one would pass them to
    ``report OUTPUT --work-dir WORK``.
    """
    listing = load_listing()
    output = os.path.join(destination, "ds003752")
    workdir = os.path.join(destination, "work")
    build_tree(output, listing, {**text_stand_ins(listing), **real_contents(listing)})
    work_listing = synthetic_workdir(listing)
    configs = {relpath: run_config(DEMO_VERSION, relpath.split("/")[0], "01", size=size)  # as the run saw it
               for relpath, size in work_listing if relpath.endswith("/config.toml")}
    build_tree(workdir, work_listing, configs)
    return output, workdir
