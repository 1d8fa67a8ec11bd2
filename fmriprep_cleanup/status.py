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

Activity is the newest modification time of the files (not the folders: removing files, a cleanup's
included, is not fMRIPrep at work) in the subject's output folder and working-directory folders. The scan
lstat-s every one of those files anyway, so ``StatusBook`` judges a subject when the walk leaves its
folders, from the times the walk read; only a status asked for earlier reads its folders itself.
"""

from __future__ import annotations

import operator
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from .discover import SUBJECT_WORKFLOW_DIR, WORKFLOW_DIR, Dataset, read_run_config
from .discover import _listing
from .scan import Entry

RUN_TIME = re.compile(r"^(\d{8}-\d{6})")
MTIME = operator.attrgetter("mtime")
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


def newest_file_time(path: str) -> float | None:
    """The newest modification time of the files below ``path`` (lstat, symlinks not followed)."""
    newest = None
    stack = [path]
    while stack:
        for entry in _listing(stack.pop()):
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    newest = mtime if newest is None or mtime > newest else newest
            except OSError:
                continue
    return newest


def newest_of(files: list[Entry]) -> float | None:
    """The same, for the files of one scanned folder."""
    return max(map(MTIME, files)) if files else None


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


class StatusBook:
    """The run status of every subject with an output folder, a report or a working-directory folder.

    Before the scan it reads only what is cheap: the reports, the run folders and where each subject's
    folders are. The scan reports the files it lstat-s in those folders (``saw``) and when it has left one
    (``walked``). A status asked for before all of a subject's folders were walked reads the rest itself,
    once; from then on that subject's status does not change.
    """

    def __init__(self, dataset: Dataset, now: float, min_age: float) -> None:
        self.now = now
        self.min_age = min_age
        self.has_run_folders = dataset.fmriprep_version is not None and _major(dataset.fmriprep_version) >= 20
        derivatives = dataset.derivatives
        subjects: set[str] = set()
        output_folders: dict[str, str] = {}
        if derivatives:
            for entry in _listing(derivatives):
                if entry.name.startswith("sub-"):
                    label = entry.name[4:].split(".", 1)[0]
                    if not label:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        subjects.add(label)
                        output_folders[label] = entry.path
                    elif entry.name.endswith(".html"):
                        subjects.add(label)
        workdirs = subject_workdirs(dataset)
        subjects |= set(workdirs)
        self._evidence = {label: _evidence_of(label, derivatives) for label in sorted(subjects)}
        # the folders whose files tell each subject's activity, with how the evidence names them
        self._folders_of: dict[str, dict[str, str]] = {label: {} for label in subjects}
        for label, folder in output_folders.items():
            self._folders_of[label][folder] = "a file in its output folders"
        for label, folders in workdirs.items():
            for folder in folders:
                self._folders_of[label][folder] = f"a file in its working directory {folder}"
        self._owner = {folder: label for label, folders in self._folders_of.items() for folder in folders}
        self._unread = {label: set(folders) for label, folders in self._folders_of.items()}  # not walked yet
        self._newest: dict[str, float] = {}  # folder -> newest file time the scan saw below it
        self._judged: dict[str, SubjectStatus] = {}

    def subject_folder(self, path: str) -> str | None:
        """The subject whose folder (output or working directory) ``path`` is, or None."""
        return self._owner.get(path)

    def saw(self, folder: str, files: list[Entry]) -> None:
        """The scan lstat-ed ``files`` somewhere below the subject folder ``folder``."""
        newest = newest_of(files)
        seen = self._newest.get(folder)
        if newest is not None and (seen is None or newest > seen):
            self._newest[folder] = newest

    def walked(self, folder: str) -> None:
        """The scan has left the subject folder ``folder``: its activity is known."""
        self._unread[self._owner[folder]].discard(folder)

    def ready(self, label: str) -> bool:
        """True when the subject's status can be given without reading any folder."""
        return label in self._judged or not self._unread.get(label)

    def status(self, label: str) -> SubjectStatus:
        """The subject's status; its folders the scan has not walked yet are read now."""
        judged = self._judged.get(label)
        if judged is None:
            evidence = self._evidence.get(label)
            if evidence is None:
                judged = SubjectStatus(label, "unknown", ["no output folder, report or working directory"])
            else:
                for folder in sorted(self._unread.get(label, ())):
                    newest = newest_file_time(folder)
                    if newest is not None:
                        self._newest[folder] = max(newest, self._newest.get(folder, newest))
                self._unread[label] = set()
                activity = list(evidence.activity)
                activity += [(self._newest[folder], how) for folder, how in self._folders_of[label].items()
                             if folder in self._newest]
                judged = _judge(evidence, activity, self.now, self.min_age, self.has_run_folders)
            self._judged[label] = judged
        return judged

    def status_of(self, label: str) -> str:
        return self.status(label).status

    def present(self) -> frozenset[str]:
        """The statuses some subject has (for any_subject_status); judges every subject."""
        return frozenset(self.status(label).status for label in self._evidence)

    def statuses(self, wanted: Callable[[str], bool] | None = None) -> dict[str, SubjectStatus]:
        """Every subject's status (or those ``wanted``), sorted by label."""
        return {label: self.status(label) for label in self._evidence if wanted is None or wanted(label)}


def subject_statuses(dataset: Dataset, now: float, min_age: float) -> dict[str, SubjectStatus]:
    """The status of every subject, reading its folders directly (without a scan)."""
    return StatusBook(dataset, now, min_age).statuses()


def _major(version: str) -> int:
    digits = re.match(r"\d+", version)
    return int(digits.group()) if digits else 0


@dataclass
class _Evidence:
    """What is read of a subject before the scan: its report, its run folders and its newest run."""

    status: SubjectStatus
    crash_names: list[str]
    activity: list[tuple[float, str]]


def _evidence_of(label: str, derivatives: str | None) -> _Evidence:
    status = SubjectStatus(label, "unknown")
    activity: list[tuple[float, str]] = []
    crash_names: list[str] = []
    if not derivatives:
        return _Evidence(status, crash_names, activity)
    try:
        status.report_time = os.lstat(os.path.join(derivatives, f"sub-{label}.html")).st_mtime
    except OSError:
        pass
    else:
        activity.append((status.report_time, "its report"))
    subject_folder = os.path.join(derivatives, f"sub-{label}")
    runs = sorted(entry.name for entry in _listing(os.path.join(subject_folder, "log")) if entry.is_dir(follow_symlinks=False))
    status.runs = len(runs)
    if runs:
        newest = os.path.join(subject_folder, "log", runs[-1])
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
    return _Evidence(status, crash_names, activity)


def _judge(evidence: _Evidence, activity: list[tuple[float, str]], now: float, min_age: float,
           has_run_folders: bool) -> SubjectStatus:
    status = replace(evidence.status, evidence=[], warnings=list(evidence.status.warnings))
    crash_names = evidence.crash_names
    cutoff = now - min_age
    where = ""
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
    elif not status.runs and not has_run_folders:
        status.status = "unknown"
        status.evidence.append("no run folders (fMRIPrep before 20 does not write them)")
    elif not status.runs:
        status.status = "incomplete"
        status.evidence.append(f"no run folder in sub-{status.subject}/log/")
    elif status.report_time is None:
        status.status = "incomplete"
        status.evidence.append(f"no report sub-{status.subject}.html and nothing recent: the run was stopped")
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
