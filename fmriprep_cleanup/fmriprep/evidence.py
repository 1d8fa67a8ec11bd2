"""The evidence of a subject's fMRIPrep run, read from disk: its report's Errors section, its run folders (crash
files, the run config), FreeSurfer's markers, and the newest time of its files. In a git-annex dataset the
evidence may be annexed links, read where their content is here; in any git repository, a file as committed has
its commit's time. status.py judges a status from what this module reads.
"""

from __future__ import annotations

import calendar
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from ..basics.annex import key_of
from ..basics.diskwalk import walk_folder
from ..basics.errors import CleanupError
from ..basics.folders import list_folder
from ..basics.guarded import read_bytes
from ..basics.paths import below
from ..basics.repository import GitRepo, GitState
from .workdirs import read_run_config

RUN_TIME = re.compile(r"^(\d{8}-\d{6})")
FREESURFER_MARKERS = ("recon-all.done", "recon-all.error")
ISRUNNING = "IsRunning."
# A report at the top of the derivatives and its subject: sub-01.html, sub-01_anat.html, sub-01_ses-1_func.html
# (fMRIPrep splits reports of subjects with many sessions); "sub-.html" names no subject.
REPORT_NAME = re.compile(r"sub-([^_]*?)(?:_.*)?\.html", re.DOTALL)
# The report's "Errors" section, in each generation of fMRIPrep's report template:
NO_ERRORS = b"No errors to report!"  # 1.x, niworkflows (20-23.1) and nireports (23.2 on) alike
FAILED_STEPS_START = b"One or more execution steps failed ("
FAILED_STEPS = re.compile(re.escape(FAILED_STEPS_START) + rb"(\d+)\)")  # nireports
ERRORS_SECTION = b'<div id="errors">'  # 1.x and niworkflows: one "Node Name:" per crashed node


class RunState(NamedTuple):
    """What rules may ask about a file's subject: its run status and whether its cache is stale."""

    status: str
    stale: bool = False


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
    report_errors: int | None = None  # what the report's Errors section lists; None: no report, or no section
    freesurfer: str | None = None  # "done", "error", "stopped" (IsRunning left) or None (no FreeSurfer folder)
    last_activity: float | None = None
    idle_seconds: float | None = None
    stale: bool = False  # idle longer than --stale-after
    workdir_bytes: int = 0
    output_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_time(name: str) -> float | None:
    """When a run folder's name (fMRIPrep's run_uuid, 20240127-124830_<uuid>) says the run started, local time."""
    found = RUN_TIME.match(name)
    if not found:
        return None
    stamp = found.group(1)  # digits by the pattern; time.strptime took a third of reading a subject's evidence
    year, month, day = int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8])
    hour, minute, second = int(stamp[9:11]), int(stamp[11:13]), int(stamp[13:15])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour <= 23 and minute <= 59
            and second <= 61):  # what time.strptime accepts
        return None
    try:
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def newest_file_time(path: str, git: GitState | None = None) -> tuple[float | None, list[str]]:
    """The newest modification time of the files below ``path`` (lstat, symlinks not followed), and the
    folders that could not be read. Annexed links and files stored in git as committed are not activity: their
    time is when they were checked out."""
    newest = None
    problems: list[str] = []
    for folder in walk_folder(path):
        if folder.problem:
            problems.extend(folder.problem.split("\n"))
        for entry in folder.files:
            if entry.key:
                continue  # an annexed link: checked out, not written by a run
            if git is not None and git.unchanged(f"{folder.path}/{entry.name}"):
                continue
            newest = entry.mtime if newest is None or entry.mtime > newest else newest
    return newest, problems


def report_errors(path: str) -> tuple[int | None, str | None]:
    """How many errors a subject report lists (0 for "No errors to report!"; None if it has no errors section
    this can read), and why it could not be read. Reads a regular file only (never through a symlink), and at
    most the guarded reader's cap for reports."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return None, None  # a symlink: not read (and never followed)
        data = read_bytes(path, "report", follow_links=False)
    except OSError as exc:
        return None, f"cannot read {path}: {why(exc)}"
    except CleanupError as exc:
        return None, str(exc)
    return count_report_errors(data), None


def _failed_steps(data: bytes) -> re.Match[bytes] | None:
    """FAILED_STEPS.search, with the regular expression tried only where its fixed start is (bytes.find is a
    quarter of the cost over a whole report)."""
    start = data.find(FAILED_STEPS_START)
    while start >= 0:
        found = FAILED_STEPS.match(data, start)
        if found:
            return found
        start = data.find(FAILED_STEPS_START, start + 1)
    return None


def count_report_errors(data: bytes) -> int | None:
    """The errors a report's text lists: 0, a count, or None where it has no errors section."""
    if NO_ERRORS in data:
        return 0
    found = _failed_steps(data)
    if found:
        return int(found.group(1))
    section = data.find(ERRORS_SECTION)
    if section >= 0:
        return data.count(b"Node Name:", section) or None
    return None


@dataclass
class Evidence:
    """What is read of a subject before the scan: reports, run folders, FreeSurfer's markers."""

    status: SubjectStatus
    crash_names: list[str]
    activity: list[tuple[float, str]]
    reports: list[str]  # names of its reports at the top of the derivatives
    newest_run_folder: str | None  # relative to the derivatives
    freesurfer_markers: dict[str, float]  # recon-all.done / recon-all.error / IsRunning.* -> mtime
    unreadable: list[str]
    not_here: list[str] = field(default_factory=list)  # annexed evidence whose content is elsewhere only


def annexed_content(path: str, annex: GitRepo | None) -> tuple[bool, str | None]:
    """Whether ``path`` is an annexed link of ``annex`` and, if so, its content's path when present here. Only a
    link into the repository's own .git/annex/objects counts: any other link is never followed."""
    if annex is None:
        return False, None
    try:
        target = os.readlink(path)
    except OSError:
        return False, None
    if key_of(target) is None:
        return False, None
    content = os.path.realpath(path)
    objects = os.path.join(os.path.realpath(annex.git_dir), "annex", "objects")
    if not below(content, objects):
        return False, None
    return True, content if os.path.isfile(content) else None


def evidence_of(label: str, derivatives: str | None, reports: list[str], freesurfer: str | None,
                 annex: GitRepo | None = None, run_config: str | None = "fmriprep.toml",
                 git: GitState | None = None) -> Evidence:
    """What a subject's evidence says. In a git-annex dataset the evidence may be annexed links: their content
    is read where it is here, and their times (when they were checked out) are not activity. In any git
    repository (``git``), a file as committed has its commit's time, and a folder's time is its checkout's."""
    reader = EvidenceReader(annex, git)
    evidence = Evidence(SubjectStatus(label, "unknown"), [], [], sorted(reports), None, {}, [])
    if freesurfer:
        reader.freesurfer_markers(evidence, freesurfer)
    if not derivatives:
        return evidence
    reader.reports(evidence, derivatives)
    newest = reader.newest_run(evidence, derivatives)
    if newest is not None and run_config is not None:  # a pipeline that writes none (sMRIPrep): crashes decide
        reader.run_config(evidence, newest, run_config)
    return evidence


class EvidenceReader:
    """Reads a subject's evidence files, knowing which are annexed links (their content read where it is here)
    and which are as git committed them (their times are the commit's, not activity)."""

    def __init__(self, annex: GitRepo | None, git: GitState | None) -> None:
        self.annex, self.git = annex, git

    def committed(self, path: str) -> bool:
        return self.git is not None and self.git.unchanged(path)

    def time_of(self, path: str, mtime: float) -> float:
        git = self.git
        return git.commit_time if git is not None and git.commit_time is not None and self.committed(path) else mtime

    def freesurfer_markers(self, evidence: Evidence, freesurfer: str) -> None:
        """recon-all's done, error and is-running markers in the subject's scripts/ folder, with their times."""
        entries, problem = list_folder(os.path.join(freesurfer, "scripts"))
        if problem:
            evidence.unreadable.append(problem)
        for entry in entries:
            if entry.name in FREESURFER_MARKERS or entry.name.startswith(ISRUNNING):
                try:
                    evidence.freesurfer_markers[entry.name] = self.time_of(entry.path,
                                                                           entry.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    continue

    def reports(self, evidence: Evidence, derivatives: str) -> None:
        """Each report's time and the errors it lists (an annexed report read where its content is)."""
        status = evidence.status
        for name in evidence.reports:
            path = os.path.join(derivatives, name)
            try:
                mtime = os.lstat(path).st_mtime
            except OSError as exc:
                evidence.unreadable.append(f"cannot stat {path}: {why(exc)}")
                continue
            annexed, content = annexed_content(path, self.annex)
            if annexed:
                errors, problem = report_errors(content) if content else (None, None)
                if content is None:
                    evidence.not_here.append(name)
            else:
                errors, problem = report_errors(path)
            if problem:
                evidence.unreadable.append(problem)
                continue
            mtime = self.time_of(path, mtime)
            status.report_time = max(mtime, status.report_time or mtime)
            if not annexed and not self.committed(path):
                evidence.activity.append((mtime, "its report"))
            if errors is not None:
                status.report_errors = max(errors, status.report_errors or 0)

    def newest_run(self, evidence: Evidence, derivatives: str) -> tuple[str, list[os.DirEntry]] | None:
        """The subject's run folders (log/<run>/): their number, the newest's crash files and activity; that
        folder and its entries, or None when there is no run folder."""
        status = evidence.status
        log = os.path.join(derivatives, f"sub-{status.subject}", "log")
        entries, problem = list_folder(log)
        if problem:
            evidence.unreadable.append(problem)
        runs = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
        status.runs = len(runs)
        if not runs:
            return None
        newest = os.path.join(log, runs[-1])
        status.newest_run, status.newest_run_time = runs[-1], run_time(runs[-1])
        evidence.newest_run_folder = f"sub-{status.subject}/log/{runs[-1]}"
        entries, problem = list_folder(newest)
        if problem:
            evidence.unreadable.append(problem)
        evidence.crash_names = [entry.name for entry in entries if entry.name.startswith("crash-")]
        status.crash_files = len(evidence.crash_names)
        for entry in entries:
            if self.annex is not None and annexed_content(entry.path, self.annex)[0]:
                continue  # checked out, not written by a run
            if self.git is not None and (self.committed(entry.path) or entry.is_dir(follow_symlinks=False)):
                continue  # as committed, or a folder (git keeps none: it was made by the checkout)
            try:
                evidence.activity.append((entry.stat(follow_symlinks=False).st_mtime, f"run folder {runs[-1]}"))
            except OSError:
                pass
        return newest, entries

    def run_config(self, evidence: Evidence, newest: tuple[str, list[os.DirEntry]], run_config: str) -> None:
        """The newest run's recorded configuration: the version, the output spaces and the working directory."""
        folder, entries = newest
        status = evidence.status
        config = os.path.join(folder, run_config)
        annexed_config, config_content = annexed_content(config, self.annex)
        if annexed_config:
            if config_content is None:
                evidence.not_here.append(f"sub-{status.subject}/log/{os.path.basename(folder)}/{run_config}")
            else:
                config = config_content
        if (annexed_config and config_content) or any(entry.name == run_config and entry.is_file(follow_symlinks=False)
                                                      for entry in entries):
            try:
                settings = read_run_config(config)
            except (OSError, ValueError) as exc:
                status.warnings.append(str(exc))
            else:
                status.fmriprep_version = settings["version"]
                status.output_spaces = settings["output_spaces"]
                status.recorded_work_dir = settings["work_dir"]
