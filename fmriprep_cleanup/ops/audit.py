"""Audit a whole project area: every fMRIPrep output below some roots, what it holds and what it could free.

The search lists folders only (no file is stat-ed while searching). A folder that discovery recognises
(either layout, or a working directory) is a dataset and is not descended into again; a sibling ``work/``
holding fMRIPrep's workflow folders is attached to the output beside it. No folder is ever part of two
datasets, so no file is counted twice. Each dataset is then scanned like ``report`` does.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..basics.errors import CleanupError
from ..basics.folders import list_folder
from ..basics.paths import below
from ..energy.model import Assumptions, footprint
from ..fmriprep.layout import WORKFLOW_DIR, Dataset, NotFMRIPrepError, discover
from ..plan.plan import build_plan
from ..rules.rulesets import RuleSet


def _owner(path: str) -> str:
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return "?"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _looks_like_output(path: str, names: set[str], subdirs: set[str]) -> bool:
    if "dataset_description.json" in names:
        return True
    if "fmriprep" in subdirs and os.path.isfile(os.path.join(path, "fmriprep", "dataset_description.json")):
        return True
    return any(WORKFLOW_DIR.match(name) for name in subdirs)


def find_datasets(roots: list[str], warnings: list[str], failed: list[str] | None = None) -> list[Dataset]:
    """Every fMRIPrep output (and unattached working directory) below ``roots``, each once; the folders that
    look like one but could not be read go to ``failed`` (and ``warnings``)."""
    failed = failed if failed is not None else []
    found: list[Dataset] = []
    claimed: set[str] = set()  # every scan root of a found dataset
    stack = [os.path.realpath(os.path.abspath(root)) for root in reversed(roots)]
    for root in stack:
        if not os.path.isdir(root):
            raise CleanupError(f"{root}: no such directory")
    while stack:
        folder = stack.pop()
        if folder in claimed:
            continue
        entries, problem = list_folder(folder)
        if problem:
            warnings.append(problem)
            continue
        names = {entry.name for entry in entries}
        subdirs = {entry.name for entry in entries if entry.is_dir(follow_symlinks=False)}
        if _looks_like_output(folder, names, subdirs):
            try:
                dataset = discover(folder)
            except NotFMRIPrepError:
                dataset = None  # e.g. a raw BIDS dataset: its derivatives/ may hold fMRIPrep below
            except CleanupError as exc:  # a broken or planted file: said, and the audit goes on
                warnings.append(f"{folder}: not audited: {exc}")
                failed.append(folder)
                dataset = None
            if dataset is not None:  # discovery attaches a work/ beside the output, or the one its runs recorded
                scanned = {root.path for root in dataset.scan_roots}
                if scanned & claimed or any(below(path, other) for path in scanned for other in claimed):
                    warnings.append(f"{folder}: overlaps a dataset already counted; left out")
                else:
                    found.append(dataset)
                    claimed |= scanned
                continue
        for name in sorted(subdirs, reverse=True):
            if not name.startswith("."):
                stack.append(os.path.join(folder, name))
    return found


@dataclass
class AuditRow:
    dataset: Dataset
    owner: str
    subjects: int
    files: int
    bytes: int
    junk_bytes: int
    kwh_per_year: float
    kgco2e_per_year: float
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.dataset.path, "layout": self.dataset.layout, "fmriprep_version": self.dataset.fmriprep_version,
            "workdirs": list(self.dataset.workdirs), "owner": self.owner, "subjects": self.subjects, "files": self.files,
            "bytes": self.bytes, "junk_bytes": self.junk_bytes,
            "junk_share": self.junk_bytes / self.bytes if self.bytes else 0.0,
            "kwh_per_year_avoidable": self.kwh_per_year, "kgco2e_per_year_avoidable": self.kgco2e_per_year,
            "warnings": self.warnings,
        }


def audit(roots: list[str], ruleset: RuleSet, model: Assumptions, jobs: int | None = None,
          progress: Callable[[int, int], None] | None = None) -> tuple[list[AuditRow], list[str], list[str]]:
    """Scan every dataset below ``roots``; rows sorted by reclaimable bytes, largest first. Also the warnings,
    and the folders that looked like a dataset but could not be read (a broken or planted file)."""
    from ..basics.folders import default_jobs

    warnings: list[str] = []
    failed: list[str] = []
    rows = []
    for dataset in find_datasets(roots, warnings, failed):
        plan = build_plan(dataset, ruleset, jobs=jobs or default_jobs([root.path for root in dataset.scan_roots]))
        summary = plan.summarize(progress)
        avoidable = footprint(summary.totals.junk_bytes, model)
        rows.append(AuditRow(dataset, _owner(dataset.top), len([s for s in summary.by_subject if s is not None]),
                             summary.totals.files, summary.totals.bytes, summary.totals.junk_bytes,
                             avoidable.kwh_per_year, avoidable.total_kg, plan.all_warnings()))
    rows.sort(key=lambda row: (-row.junk_bytes, row.dataset.path))
    return rows, warnings, failed
