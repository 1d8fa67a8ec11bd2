"""Audit a whole project area: every fMRIPrep output below some roots, what it holds and what it could free.

The search lists folders only (no file is stat-ed while searching). A folder that discovery recognises
(either layout, or a working directory) is a dataset and is not descended into again; a sibling ``work/``
holding fMRIPrep's workflow folders is attached to the output beside it. A working directory found on its
own (``-w $SCRATCH``) is tied to its output when either records the other: the output's fmriprep.toml
(``work_dir``) or the working directory's run folders (``<run_uuid>/config.toml``, ``output_dir``), container
paths mapped with ``--path-map``. One whose output no longer exists is orphaned. No folder is ever part of
two datasets, so no file is counted twice. Each dataset is then scanned like ``report`` does.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..basics.annex import reclaimable
from ..basics.archivefile import archive_kind
from ..basics.errors import CleanupError
from ..basics.folders import list_folder
from ..basics.paths import below
from ..basics.repository import find_repository
from ..basics.scanlists import ScanList, read_scan_list
from ..energy.model import Assumptions, footprint
from ..fmriprep.archived import BABS_ZIP, discover_archive
from ..fmriprep.discovery import NotFMRIPrepError, discover, unfetched
from ..fmriprep.identify import names_pipeline
from ..fmriprep.layout import Dataset
from ..fmriprep.pipelines import pipeline_of_workflow_dir, pipelines
from ..fmriprep.workdirs import RECORDED_WORKDIR_MISSING as RECORDED
from ..fmriprep.workdirs import PathMap, map_path, newest_run_config, recorded_outputs
from ..plan.plan import build_plan
from ..rules.model import RuleSet


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
    if any(pipeline.output_folder in subdirs and os.path.lexists(  # annexed and not here: a link to nothing
            os.path.join(path, pipeline.output_folder, "dataset_description.json"))
           for pipeline in pipelines() if pipeline.output_folder):
        return True
    return any(pipeline_of_workflow_dir(name) for name in subdirs)


def uninstalled_outputs(top: str) -> list[str]:
    """The subdatasets of the repository at ``top`` that are not installed (an empty folder here) and are named
    as a pipeline's output is (fmriprep/, ds000002-fmriprep/): output-shaped, never silently passed over."""
    repository = find_repository(top)
    if repository is None or repository.top != os.path.realpath(top):
        return []
    return [path for path in repository.subdatasets
            if not os.path.lexists(os.path.join(path, ".git")) and os.path.isdir(path)
            and any(names_pipeline(os.path.basename(path), pipeline) for pipeline in pipelines())]


def _not_installed(top: str, warnings: list[str], failed: list[str]) -> None:
    """Say each output-shaped subdataset of ``top`` that is not installed: found, not judged."""
    for path in uninstalled_outputs(top):
        warnings.append(f"{path}: found, not judged: a subdataset that is not installed, so nothing of it is here "
                        f"(`datalad get -n {os.path.relpath(path, top)}` in {top} installs it, no content fetched)")
        failed.append(path)


def dataset_marks(name: str, is_dir: bool) -> bool:
    """The names that make their folder worth a look when searching a scan list: a dataset description, or a
    working directory's workflow folder."""
    return name == "dataset_description.json" if not is_dir else pipeline_of_workflow_dir(name) is not None


def listed_candidates(roots: list[str], listed: ScanList) -> list[str]:
    """The folders of a marks-mode scan list that may hold a dataset, top down: each marked folder, and the
    parent of a marked pipeline output folder (OUT/ of OUT/fmriprep); none below a hidden folder."""
    output_folders = {pipeline.output_folder for pipeline in pipelines() if pipeline.output_folder}
    found = set(listed.marked)
    found |= {os.path.dirname(folder) for folder in listed.marked if os.path.basename(folder) in output_folders}
    wanted = []
    for folder in found:
        root = next((root for root in roots if folder == root or below(folder, root)), None)
        if root is not None and not any(part.startswith(".") for part in os.path.relpath(folder, root).split("/")
                                        if part != "."):
            wanted.append(folder)
    return sorted(wanted)


def _zipped_outputs(folder: str, files: set[str], warnings: list[str], failed: list[str]) -> list[Dataset]:
    """The job outputs BABS zipped in ``folder`` (named as BABS names them), each a dataset of its own."""
    found = []
    for name in sorted(files):
        if BABS_ZIP.match(name):
            try:
                found.append(discover_archive(os.path.join(folder, name))[0])
            except CleanupError as exc:
                warnings.append(f"{os.path.join(folder, name)}: not audited: {exc}")
                failed.append(os.path.join(folder, name))
    return found


def find_datasets(roots: list[str], warnings: list[str], failed: list[str] | None = None,
                  path_map: PathMap = (), listed: ScanList | None = None) -> list[Dataset]:
    """Every fMRIPrep output (and unattached working directory) below ``roots``, each once, working directories
    tied to their outputs; the folders that look like one but could not be read go to ``failed`` (and
    ``warnings``). ``listed``: a marks-mode scan list (``dataset_marks``) names the folders to look at instead
    of walking the disk's (each candidate is still looked at and discovered on disk)."""
    failed = failed if failed is not None else []
    found: list[Dataset] = []
    claimed: set[str] = set()  # every scan root of a found dataset
    roots = [os.path.realpath(os.path.abspath(root)) for root in roots]
    for root in roots:
        if not os.path.isdir(root):
            raise CleanupError(f"{root}: no such directory")

    def look_at(folder: str) -> list[str]:
        """Take the dataset at ``folder``, if any; the subfolders to look through when not."""
        entries, problem = list_folder(folder)
        if problem:
            warnings.append(problem)
            return []
        names = {entry.name for entry in entries}
        subdirs = {entry.name for entry in entries if entry.is_dir(follow_symlinks=False)}
        if ".gitmodules" in names:
            _not_installed(folder, warnings, failed)
        if _looks_like_output(folder, names, subdirs):
            try:
                dataset = discover(folder, path_map=path_map)
            except NotFMRIPrepError as exc:
                dataset = None  # e.g. a raw BIDS dataset: its derivatives/ may hold fMRIPrep below
                if unfetched(os.path.join(folder, "dataset_description.json")):  # output-shaped, not readable here
                    warnings.append(f"{folder}: found, not judged: {exc}")
                    failed.append(folder)
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
                    claimed.update(scanned)
                return []
        found.extend(_zipped_outputs(folder, names - subdirs, warnings, failed))
        return [os.path.join(folder, name) for name in sorted(subdirs, reverse=True) if not name.startswith(".")]

    if listed is not None:
        for folder in listed_candidates(roots, listed):
            if folder not in claimed and not any(below(folder, other) for other in claimed):
                look_at(folder)
        return tie_working_directories(found, path_map)
    stack = list(reversed(roots))
    while stack:
        folder = stack.pop()
        if folder not in claimed:
            stack.extend(look_at(folder))
    return tie_working_directories(found, path_map)


def _output_dirs(dataset: Dataset) -> set[str]:
    """The paths a run of this output would record as its output directory (the derivatives; OUT/ of legacy)."""
    paths = {dataset.derivatives} if dataset.derivatives else set()
    if dataset.layout == "legacy" and dataset.derivatives:
        paths.add(dataset.container or os.path.dirname(dataset.derivatives))
    return {os.path.realpath(path) for path in paths}


def tie_working_directories(datasets: list[Dataset], path_map: PathMap = ()) -> list[Dataset]:
    """Attach each lone working directory to the output it ran for, when either records the other; what stays
    alone is reported on its own (orphaned, if its output is gone)."""
    outputs = [dataset for dataset in datasets if dataset.layout != "workdir"]
    recorded_workdir = {}
    for output in outputs:
        config = newest_run_config(output.derivatives) if output.derivatives else None
        if config is not None and config[1].get("work_dir"):
            recorded_workdir[os.path.realpath(map_path(str(config[1]["work_dir"]), path_map))] = (output, config[0])
    tied: dict[str, list[tuple[str, str]]] = {}  # output path -> [(working directory, how it was tied)]
    alone = []
    for dataset in datasets:
        if dataset.layout != "workdir":
            continue
        workdir = dataset.workdirs[0]
        owner, how = None, ""
        for recorded in recorded_outputs(workdir):
            mapped = os.path.realpath(map_path(recorded, path_map))
            owner = next((output for output in outputs if mapped in _output_dirs(output)), None)
            if owner is not None:
                how = f"its run folders record this output ({recorded})"
                break
        if owner is None and workdir in recorded_workdir:
            owner, config_path = recorded_workdir[workdir]
            how = f"recorded in {config_path}"
        if owner is None:
            alone.append(dataset)
        else:
            tied.setdefault(owner.path, []).extend((path, how) for path in dataset.workdirs)
    result = []
    for dataset in datasets:
        if dataset.layout == "workdir" and dataset not in alone:
            continue
        extra = [(path, how) for path, how in tied.get(dataset.path, []) if path not in dataset.workdirs]
        if extra:  # discovery's "the recorded working directory is not here" is answered now
            dataset = dataclasses.replace(dataset, workdirs=dataset.workdirs + tuple(path for path, _ in extra),
                                          found=dataset.found + tuple(extra),
                                          warnings=tuple(w for w in dataset.warnings if not w.startswith(RECORDED)))
        result.append(dataset)
    return result


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
    elsewhere_bytes: int = 0  # annexed content not on this disk (in bytes, not in junk_bytes)
    junk_in_git_bytes: int = 0  # junk stored in git: left in place by default (not in junk_bytes)
    nipoppy_steps: list[dict[str, Any]] | None = None  # a Nipoppy study's output: its steps (NipoppyStudy.steps)

    @property
    def bytes_here(self) -> int:
        """What the dataset takes on this disk: its bytes less annexed content that is elsewhere only."""
        return self.bytes - self.elsewhere_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.dataset.path, "layout": self.dataset.layout, "pipeline": self.dataset.pipeline_name,
            "fmriprep_version": self.dataset.fmriprep_version,
            "workdirs": list(self.dataset.workdirs), "folders": self.dataset.folders(),
            "orphan_of": self.dataset.orphan_of, "owner": self.owner, "subjects": self.subjects, "files": self.files,
            "bytes": self.bytes, "bytes_here": self.bytes_here, "junk_bytes": self.junk_bytes,
            "junk_share": self.junk_bytes / self.bytes_here if self.bytes_here else 0.0,
            "kwh_per_year_avoidable": self.kwh_per_year, "kgco2e_per_year_avoidable": self.kgco2e_per_year,
            "elsewhere_bytes": self.elsewhere_bytes, "junk_in_git_bytes": self.junk_in_git_bytes,
            "repository": self.dataset.repository.kind if self.dataset.repository else None,
            "nipoppy": {"root": self.dataset.nipoppy.root, "steps": self.nipoppy_steps} if self.dataset.nipoppy else None,
            "warnings": self.warnings,
        }


def audit(roots: list[str], ruleset: RuleSet, model: Assumptions, jobs: int | None = None,
          progress: Callable[[int, int], None] | None = None, path_map: PathMap = (),
          shard: tuple[int, int] | None = None, scan: tuple[str, str | None] | None = None,
          announce: Callable[[str, int, int], None] | None = None) -> tuple[list[AuditRow], list[str], list[str]]:
    """Scan every dataset below ``roots``; rows sorted by reclaimable bytes, largest first. Also the warnings,
    and the folders that looked like a dataset but could not be read (a broken or planted file).
    ``path_map``: (container path, host path) pairs for paths the runs recorded inside a container;
    ``shard``: (K, N), 0-based: scan only every N-th dataset found (sorted by path), starting at the K-th."""
    from ..plan.open import with_jobs
    from ..plan.shares import archive_figures, summarize

    warnings: list[str] = []
    failed: list[str] = []
    rows = []
    scan_list = None
    if scan is not None:  # twice through the list: where the datasets are (flat memory), then their entries only
        marked = read_scan_list(*scan, roots, marks=dataset_marks)
        missing = [root for root in roots if not marked.covers(os.path.realpath(os.path.abspath(root)))]
        if missing:
            raise CleanupError(f"{scan[0]} does not list {missing[0]}: a scan of another tree")
        warnings.append(f"read from the {marked.age_line(time.time())}, not walked")
        datasets = find_datasets(roots, warnings, failed, path_map, marked)
    else:
        datasets = find_datasets(roots, warnings, failed, path_map)
    if shard is not None:
        datasets = sorted(datasets, key=lambda dataset: dataset.path)[shard[0]::shard[1]]
    if scan is not None:
        scan_list = read_scan_list(*scan, [root.path for dataset in datasets for root in dataset.scan_roots])
    for number, dataset in enumerate(datasets, start=1):
        if announce is not None:  # the progress line names the dataset being scanned
            announce(dataset.path, number, len(datasets))
        members = discover_archive(dataset.path)[1] if archive_kind(dataset.path) else None
        plan = with_jobs(build_plan(dataset, ruleset), jobs) if members is None else \
            dataclasses.replace(build_plan(dataset, ruleset), scan_list=members, jobs=1, processes=1)
        if scan_list is not None and members is None:
            unlisted = [root.path for root in dataset.scan_roots if not scan_list.covers(root.path)]
            if unlisted:  # a working directory elsewhere, found through what a run recorded
                warnings.append(f"{dataset.path}: {unlisted[0]} is not in the scan list: walked")
            else:
                plan = dataclasses.replace(plan, scan_list=scan_list)
        summary, _, plan_warnings = summarize(plan, progress)
        totals = summary.totals
        freed = reclaimable(totals)  # not annexed junk elsewhere only, not junk stored in git
        stored, owner = totals.bytes, _owner(dataset.top)
        if members is not None:  # the archive file on disk, and what rewriting it without its junk frees
            stored, freed, owner = members.archive.size, archive_figures(plan, members)["junk_stored_bytes"], \
                _owner(dataset.path)
        avoidable = footprint(freed, model)
        rows.append(AuditRow(dataset, owner, len([s for s in summary.by_subject if s is not None]),
                             totals.files, stored, freed, avoidable.kwh_per_year, avoidable.total_kg,
                             plan_warnings, totals.elsewhere_bytes, totals.junk_in_git_bytes,
                             dataset.nipoppy.steps(summary.by_root) if dataset.nipoppy else None))
    rows.sort(key=lambda row: (-row.junk_bytes, row.dataset.path))
    return rows, warnings, failed
