"""Each subject's fMRIPrep run: finished, failed, running, incomplete or unknown, and the evidence for it.

fMRIPrep (20 and later) writes ``sub-<label>/log/<run_uuid>/fmriprep.toml`` at every run, nipype writes its
crash files (``crash-*.txt``, ``crash-*.pklz``) into that same folder, and the subject report
``sub-<label>.html`` is written at the end of every run, failed or not. While a subject is processed, files
keep appearing in its working-directory folder. The newest run decides:

* running    - something of the subject's changed within --min-age (its working directory, output folders,
               report or newest run folder);
* failed     - crash files in the newest run folder;
* finished   - report present, no crash file in the newest run, nothing newer than the report;
* incomplete - no report, no run folder, or activity after the report, and nothing recent (a killed job);
* unknown    - fMRIPrep 1.x output without run folders, when nothing else decides.

Activity is read from the files in folders whose modification time moved (creating or removing a file
updates its folder): folders untouched since the run cost one listing each, no stat of their files, and
files removed by a cleanup are not mistaken for fMRIPrep at work.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .discover import SUBJECT_WORKFLOW_DIR, WORKFLOW_DIR, Dataset, read_run_config
from .discover import _listing

RUN_TIME = re.compile(r"^(\d{8}-\d{6})")
REPORT_SLACK = 300.0  # seconds after the report that still belong to the run that wrote it


@dataclass
class SubjectStatus:
    subject: str
    status: str
    evidence: list[str] = field(default_factory=list)
    runs: int = 0
    newest_run: str | None = None
    newest_run_time: float | None = None
    fmriprep_version: str | None = None
    crash_files: int = 0
    output_spaces: str | None = None
    recorded_work_dir: str | None = None
    report_time: float | None = None
    last_activity: float | None = None
    workdir_bytes: int = 0
    output_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_time(name: str) -> float | None:
    found = RUN_TIME.match(name)
    if not found:
        return None
    try:
        return time.mktime(time.strptime(found.group(1), "%Y%m%d-%H%M%S"))
    except ValueError:
        return None


def newest_file_time(path: str, since: float) -> float | None:
    """The newest modification time of the files below ``path`` that sit in folders changed after ``since``.

    A file created or removed updates its folder's time, so only folders changed after ``since`` can hold
    new files: only their files are stat-ed. Judging by the files, not the folders, means that removing
    files (a cleanup, ours included) is not mistaken for fMRIPrep at work.
    """
    newest = None
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            changed = os.lstat(folder).st_mtime > since
        except OSError:
            continue
        for entry in _listing(folder):
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif changed:
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    newest = mtime if newest is None or mtime > newest else newest
            except OSError:
                continue
    return newest


def subject_workdirs(dataset: Dataset) -> dict[str, list[str]]:
    """Each subject's folders in the working directories (single_subject_01_wf, sub_01_wf, sub_01_ses_1_wf)."""
    found: dict[str, list[str]] = {}
    for workdir in dataset.workdirs:
        tops = [workdir] if WORKFLOW_DIR.match(os.path.basename(workdir)) else [
            entry.path for entry in _listing(workdir) if WORKFLOW_DIR.match(entry.name) and entry.is_dir(follow_symlinks=False)]
        for top in tops:
            for entry in _listing(top):
                match = SUBJECT_WORKFLOW_DIR.match(entry.name)
                if match and entry.is_dir(follow_symlinks=False):
                    found.setdefault(match.group(1) or match.group(2), []).append(entry.path)
    return found


def subject_statuses(dataset: Dataset, now: float, min_age: float) -> dict[str, SubjectStatus]:
    """The status of every subject with an output folder, a report or a working-directory folder."""
    derivatives = dataset.derivatives
    subjects: set[str] = set()
    if derivatives:
        for entry in _listing(derivatives):
            if entry.name.startswith("sub-"):
                label = entry.name[4:].split(".", 1)[0]
                if label and (entry.is_dir(follow_symlinks=False) or entry.name.endswith(".html")):
                    subjects.add(label)
    workdirs = subject_workdirs(dataset)
    subjects |= set(workdirs)
    versioned = dataset.fmriprep_version is not None and _major(dataset.fmriprep_version) >= 20
    return {label: _status_of(label, derivatives, workdirs.get(label, []), now, min_age, versioned)
            for label in sorted(subjects)}


def _major(version: str) -> int:
    digits = re.match(r"\d+", version)
    return int(digits.group()) if digits else 0


def _status_of(label: str, derivatives: str | None, workdirs: list[str], now: float, min_age: float,
               has_run_folders: bool) -> SubjectStatus:
    status = SubjectStatus(label, "unknown")
    activity: list[tuple[float, str]] = []
    runs = []
    cutoff = now - min_age
    report_time = None
    if derivatives:
        try:
            report_time = os.lstat(os.path.join(derivatives, f"sub-{label}.html")).st_mtime
        except OSError:
            pass
    since = min(cutoff, report_time + REPORT_SLACK) if report_time is not None else cutoff
    if derivatives:
        status.report_time = report_time
        if report_time is not None:
            activity.append((report_time, "its report"))
        subject_folder = os.path.join(derivatives, f"sub-{label}")
        output_time = newest_file_time(subject_folder, since)
        if output_time is not None:
            activity.append((output_time, "a file in its output folders"))
        runs = sorted(entry.name for entry in _listing(os.path.join(subject_folder, "log")) if entry.is_dir(follow_symlinks=False))
    for workdir in workdirs:
        work_time = newest_file_time(workdir, since)
        if work_time is not None:
            activity.append((work_time, f"a file in its working directory {workdir}"))
    status.runs = len(runs)
    crash_names: list[str] = []
    if runs:
        newest = os.path.join(derivatives, f"sub-{label}", "log", runs[-1])
        status.newest_run = runs[-1]
        status.newest_run_time = _run_time(runs[-1])
        entries = _listing(newest)
        crash_names = sorted(entry.name for entry in entries if entry.name.startswith("crash-"))
        status.crash_files = len(crash_names)
        for entry in entries:
            try:
                activity.append((entry.stat(follow_symlinks=False).st_mtime, f"run folder {runs[-1]}"))
            except OSError:
                pass
        config = os.path.join(newest, "fmriprep.toml")
        if os.path.isfile(config):
            try:
                settings = read_run_config(config)
            except (OSError, ValueError) as exc:
                status.warnings.append(str(exc))
            else:
                status.fmriprep_version = settings["version"]
                status.output_spaces = settings["output_spaces"]
                status.recorded_work_dir = settings["work_dir"]
    if activity:
        status.last_activity, where = max(activity)
    ran = f" ({status.runs} runs, newest {status.newest_run})" if status.runs > 1 else ""
    if status.last_activity is not None and status.last_activity > cutoff:
        status.status = "running"
        status.evidence.append(f"{where} changed {_ago(now - status.last_activity)} ago, within --min-age")
    elif status.crash_files:
        status.status = "failed"
        status.evidence.append(f"{status.crash_files} crash file(s) in the newest run {status.newest_run}{ran}: "
                               + ", ".join(crash_names[:3]))
    elif not runs and not has_run_folders:
        status.status = "unknown"
        status.evidence.append("no run folders (fMRIPrep before 20 does not write them)")
    elif not runs:
        status.status = "incomplete"
        status.evidence.append(f"no run folder in sub-{label}/log/")
    elif status.report_time is None:
        status.status = "incomplete"
        status.evidence.append(f"no report sub-{label}.html and nothing recent: the run was stopped")
    elif status.last_activity is not None and status.last_activity > status.report_time + REPORT_SLACK:
        status.status = "incomplete"
        status.evidence.append(f"{where} changed after the report: a later run stopped before its end")
    else:
        status.status = "finished"
        status.evidence.append(f"report written, no crash file in the newest run {status.newest_run}{ran}")
    return status


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
