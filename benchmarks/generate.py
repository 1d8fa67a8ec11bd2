"""Generate a realistic fMRIPrep project of about N files for benchmarks (sparse, so it costs no space).

Layout: TREE/fmriprep (the BIDS-layout output, FreeSurfer in sourcedata/freesurfer) and TREE/work (the
working directory, given with --work-dir), so that pybids and bids2table can index the output alone.

Every subject is a copy of sub-01 of the real ds003752 fMRIPrep 23.2.0 tree (its derivatives and its
FreeSurfer directory, with the real file names and sizes), plus a nipype working directory built by
``fmriprep_cleanup.fmriprep.synthetic_workdir`` (node folders with _report/, pklz files, command.txt and the
node's output). Subjects are added until the tree holds at least N files. Deterministic: the same N and
seed give the same tree.

Shapes (per subject: output, FreeSurfer and working-directory files):
- ``standard``: 473 output + 353 FreeSurfer + 1,909 work files (a full working directory), 366 subjects at 1M;
- ``freesurfer-heavy``: the same outputs and FreeSurfer folder, a working directory trimmed to 216 files (whole
  node folders, in walk order), so many more subjects - 960 at 1M, a third of the files under
  ``sourcedata/freesurfer`` (the shape of a large study kept after its working directories were mostly gone).

    python benchmarks/generate.py TREE --files 1000000 [--shape freesurfer-heavy]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time

from fmriprep_cleanup import fmriprep  # the demo trees: real fMRIPrep listings and work dirs


def json_sidecar(size: int) -> bytes:
    """An empty JSON object padded with spaces to the real sidecar's size."""
    return b"{}" + b" " * max(0, size - 3) + b"\n"


SHAPES = ("standard", "freesurfer-heavy")
HEAVY_WORK_FILES = 216  # a freesurfer-heavy subject's working-directory files


def trimmed_workdir(work: list[tuple[str, int]], files: int) -> list[tuple[str, int]]:
    """The first node folders of a subject's working directory (in path order) holding ``files`` files."""
    kept: list[tuple[str, int]] = []
    for path, size in sorted(work):
        if len(kept) == files:
            break
        kept.append((path, size))
    return kept


def subject_template(seed: int, shape: str = "standard"
                     ) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[tuple[str, int]]]:
    """(dataset-level files, one subject's output files, one subject's work files) with '{label}' placeholders."""
    listing = fmriprep.load_listing()
    shared, subject = [], []
    for path, size in listing:
        if path.startswith(("sub-01/", "sub-01.html", "sourcedata/freesurfer/sub-01/")):
            subject.append((path.replace("sub-01", "sub-{label}"), size))
        elif not re.match(r"^(sub-0[23]|sourcedata/freesurfer/sub-0[23])", path):
            shared.append((path, size))
    work = [(path, size) for path, size in fmriprep.synthetic_workdir([(p, s) for p, s in listing if p.startswith("sub-01/")], seed=seed)
            if "sub_01_wf" in path or "sub-01" in path]
    work = [(path.replace("sub_01_wf", "sub_{label}_wf").replace("sub-01", "sub-{label}"), size) for path, size in work]
    if shape == "freesurfer-heavy":
        work = trimmed_workdir(work, HEAVY_WORK_FILES)
    shared_work = [(p, s) for p, s in fmriprep.synthetic_workdir([], seed=seed)]
    return shared + [("../work/" + p, s) for p, s in shared_work], subject, [("../work/" + p, s) for p, s in work]


def generate(tree: str, files: int, seed: int = 0, shape: str = "standard") -> dict[str, int]:
    """Build the tree; returns its file count, subject count and apparent bytes."""
    shared, subject, work = subject_template(seed, shape)
    per_subject = len(subject) + len(work)
    subjects = max(1, -(-(files - len(shared)) // per_subject))
    rng = random.Random(seed)
    output = os.path.join(tree, "fmriprep")
    made_dirs: set[str] = set()
    count = 0
    total = 0

    def create(relpath: str, size: int) -> None:
        nonlocal count, total
        path = os.path.normpath(os.path.join(output, relpath))
        folder = os.path.dirname(path)
        if folder not in made_dirs:
            os.makedirs(folder, exist_ok=True)
            made_dirs.add(folder)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if relpath.endswith(".json"):
            os.write(fd, json_sidecar(size))  # indexers read sidecars: they must be JSON
        elif relpath.endswith("/fmriprep.toml"):
            parts = relpath.split("/")  # sub-<label>/log/<run_uuid>/fmriprep.toml
            os.write(fd, fmriprep.run_config(fmriprep.DEMO_VERSION, parts[2], parts[0][4:], size=size))
        elif size:
            os.ftruncate(fd, size)
        os.close(fd)
        os.utime(path, (fmriprep.DEMO_MTIME, fmriprep.DEMO_MTIME))
        count += 1
        total += size

    os.makedirs(output)
    for relpath, size in shared:
        if relpath == "dataset_description.json":
            description = fmriprep.dataset_description(fmriprep.DEMO_VERSION, size)
            with open(os.path.join(output, relpath), "wb") as handle:
                handle.write(description)
            os.utime(os.path.join(output, relpath), (fmriprep.DEMO_MTIME, fmriprep.DEMO_MTIME))
            count += 1
            total += len(description)
        else:
            create(relpath, size)
    for number in range(1, subjects + 1):
        label = f"{number:04d}"
        jitter = rng.uniform(0.8, 1.2)  # subjects differ a little in size
        for template, size in subject + work:
            create(template.format(label=label), int(size * jitter))
    folders: set[str] = set()
    for folder in made_dirs:
        while folder.startswith(tree + "/") and folder not in folders:
            folders.add(folder)
            folder = os.path.dirname(folder)
    for folder in folders:  # folders as a finished run left them, not "just now"
        os.utime(folder, (fmriprep.DEMO_MTIME, fmriprep.DEMO_MTIME))
    return {"files": count, "subjects": subjects, "bytes": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tree", help="folder to create (must not exist)")
    parser.add_argument("--files", type=int, default=250_000, help="at least this many files (default 250,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", choices=SHAPES, default="standard", help="subjects' make-up (default standard)")
    args = parser.parse_args()
    if os.path.exists(args.tree):
        sys.exit(f"{args.tree} exists; give a new folder")
    started = time.time()
    result = generate(args.tree, args.files, args.seed, args.shape)
    print(f"{args.tree}: {result['files']:,} files, {result['subjects']} subjects, "
          f"{result['bytes'] / 1e12:.2f} TB apparent, in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
