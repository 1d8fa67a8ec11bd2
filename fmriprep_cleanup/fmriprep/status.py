"""Each subject's fMRIPrep run: finished, failed, running, incomplete or unknown, and the evidence for it.

What fMRIPrep and FreeSurfer leave behind, by version:

* the subject report ``sub-<label>.html`` (every version, written at the end of every run, failed or not) has
  an "Errors" section: it lists the crashed nodes, or says "No errors to report!";
* ``sub-<label>/log/<run_uuid>/`` holds nipype's crash files (``crash-*.txt``, ``crash-*.pklz``) of that run
  (every version; 1.x creates the folder only when something crashed) and, from 20 on, ``fmriprep.toml``;
* FreeSurfer's ``<subjects dir>/sub-<label>/scripts/`` holds ``recon-all.done``, ``recon-all.error`` and, while
  recon-all runs (or after it was killed), ``IsRunning.lh+rh`` / ``IsRunning.lh`` / ``IsRunning.rh``;
* while a subject is processed, files keep changing in its working-directory folder, its FreeSurfer folder
  and its output folder.

The newest evidence decides:

* running    - something of the subject's changed within --min-age;
* unknown    - evidence could not be read (permission denied, I/O error), or nothing decides (no report and
               no run folders, or a report without an errors section to read);
* failed     - crash files in the newest run, a report that lists errors, or recon-all.error after the last
               recon-all.done;
* incomplete - no report, activity after the report, or recon-all's IsRunning left behind: a stopped job;
* finished   - a report that lists no errors (or, where it cannot be read, no crash file in the newest run),
               and nothing changed after it.

Activity is the newest modification time of the files (not the folders: removing files, a cleanup's included,
is not fMRIPrep at work) in the subject's folders. The scan lstat-s every one of those files anyway, so
``StatusBook`` judges a subject when the walk leaves its folders, from the times the walk read; only a status
asked for earlier reads its folders itself. A subject's idle time (now minus its last activity) tells a stale
cache: one nobody touched for longer than --stale-after.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

from ..basics.annex import NOT_ACTIVITY, key_of
from ..basics.errors import CleanupError
from ..basics.folders import Entry, list_folder, walk_tree
from ..basics.guarded import read_bytes
from ..basics.paths import below
from ..basics.repository import GitRepo, GitState
from .layout import SUBJECT_WORKFLOW_DIR, Dataset
from .pipelines import pipeline_by_key
from .workdirs import read_run_config

RUN_TIME = re.compile(r"^(\d{8}-\d{6})")
REPORT_SLACK = 300.0  # seconds after the report that still belong to the run that wrote it
DEFAULT_STALE_AFTER = 30 * 86400.0
FREESURFER_MARKERS = ("recon-all.done", "recon-all.error")
ISRUNNING = "IsRunning."
# The report's "Errors" section, in each generation of fMRIPrep's report template:
NO_ERRORS = b"No errors to report!"  # 1.x, niworkflows (20-23.1) and nireports (23.2 on) alike
FAILED_STEPS = re.compile(rb"One or more execution steps failed \((\d+)\)")  # nireports
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


def _run_time(name: str) -> float | None:
    found = RUN_TIME.match(name)
    if not found:
        return None
    try:
        return time.mktime(time.strptime(found.group(1), "%Y%m%d-%H%M%S"))
    except ValueError:
        return None


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def newest_file_time(path: str, git: GitState | None = None) -> tuple[float | None, list[str]]:
    """The newest modification time of the files below ``path`` (lstat, symlinks not followed), and the
    folders that could not be read. Annexed links and files stored in git as committed are not activity: their
    time is when they were checked out."""
    newest = None
    problems: list[str] = []
    for _, entries, problem in walk_tree(path):
        if problem:
            problems.append(problem)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                continue
            try:
                if entry.is_symlink() and key_of(os.readlink(entry.path)):
                    continue  # an annexed link: checked out, not written by a run
                if git is not None and git.unchanged(entry.path):
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(f"cannot stat {entry.path}: {_why(exc)}")
                continue
            newest = mtime if newest is None or mtime > newest else newest
    return newest, problems


def newest_of(files: list[Entry]) -> float | None:
    """The same, for the files of one scanned folder; annexed links and files stored in git as committed are not
    activity (their time is when they were checked out)."""
    times = [entry.mtime for entry in files if entry.annex not in NOT_ACTIVITY]
    return max(times) if times else None


def report_errors(path: str) -> tuple[int | None, str | None]:
    """How many errors a subject report lists (0 for "No errors to report!"; None if it has no errors section
    this can read), and why it could not be read. Reads a regular file only (never through a symlink), and at
    most the guarded reader's cap for reports."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return None, None  # a symlink: not read (and never followed)
        data = read_bytes(path, "report", follow_links=False)
    except OSError as exc:
        return None, f"cannot read {path}: {_why(exc)}"
    except CleanupError as exc:
        return None, str(exc)
    return count_report_errors(data), None


def count_report_errors(data: bytes) -> int | None:
    """The errors a report's text lists: 0, a count, or None where it has no errors section."""
    if NO_ERRORS in data:
        return 0
    found = FAILED_STEPS.search(data)
    if found:
        return int(found.group(1))
    section = data.find(ERRORS_SECTION)
    if section >= 0:
        return data.count(b"Node Name:", section) or None
    return None


def report_label(name: str) -> str | None:
    """The subject of a report at the top of the derivatives: sub-01.html, sub-01_anat.html,
    sub-01_ses-1_func.html (fMRIPrep splits reports of subjects with many sessions)."""
    if not (name.startswith("sub-") and name.endswith(".html")):
        return None
    return name[4:-5].split("_", 1)[0] or None


def subject_workdirs(dataset: Dataset) -> dict[str, list[str]]:
    """Each subject's folders in the working directories (single_subject_01_wf, sub_01_wf, sub_01_ses_1_wf)."""
    found: dict[str, list[str]] = {}
    for workdir in dataset.workdirs:
        workflow_dir = pipeline_by_key(dataset.pipeline).workflow_dir
        tops = [workdir] if workflow_dir.match(os.path.basename(workdir)) else [
            entry.path for entry in list_folder(workdir)[0]
            if workflow_dir.match(entry.name) and entry.is_dir(follow_symlinks=False)]
        for top in tops:
            for entry in list_folder(top)[0]:
                match = SUBJECT_WORKFLOW_DIR.match(entry.name)
                if match and entry.is_dir(follow_symlinks=False):
                    found.setdefault(match.group(1) or match.group(2), []).append(entry.path)
    return found


@dataclass
class _Evidence:
    """What is read of a subject before the scan: reports, run folders, FreeSurfer's markers."""

    status: SubjectStatus
    crash_names: list[str]
    activity: list[tuple[float, str]]
    reports: list[str]  # names of its reports at the top of the derivatives
    newest_run_folder: str | None  # relative to the derivatives
    freesurfer_markers: dict[str, float]  # recon-all.done / recon-all.error / IsRunning.* -> mtime
    unreadable: list[str]
    not_here: list[str] = field(default_factory=list)  # annexed evidence whose content is elsewhere only


class StatusBook:
    """The run status of every subject with an output folder, a report, a FreeSurfer folder or a
    working-directory folder.

    Before the scan it reads only what is cheap: the reports, the run folders, FreeSurfer's markers and where
    each subject's folders are. The scan reports the files it lstat-s in those folders (``saw``), folders it
    could not read (``unreadable``) and when it has left one (``walked``). A status asked for before all of a
    subject's folders were walked reads the rest itself, once; from then on that subject's status does not
    change.
    """

    def __init__(self, dataset: Dataset, now: float, min_age: float,
                 stale_after: float = DEFAULT_STALE_AFTER, git: GitState | None = None) -> None:
        self.now = now
        self.git = git  # in a git repository: files as committed are evidence of nothing by their times
        self.min_age = min_age
        self.stale_after = stale_after
        self.has_run_folders = dataset.fmriprep_version is not None and _major(dataset.fmriprep_version) >= 20
        self.orphan_of = dataset.orphan_of
        derivatives = dataset.derivatives
        subjects: set[str] = set()
        output_folders: dict[str, str] = {}
        reports: dict[str, list[str]] = {}
        if derivatives:
            for entry in list_folder(derivatives)[0]:
                if entry.name.startswith("sub-") and entry.is_dir(follow_symlinks=False):
                    label = entry.name[4:]
                    if label:
                        subjects.add(label)
                        output_folders[label] = entry.path
                elif reported := report_label(entry.name):
                    reports.setdefault(reported, []).append(entry.name)
        subjects |= set(reports)
        freesurfer_folders: dict[str, str] = {}
        if dataset.freesurfer:
            for entry in list_folder(dataset.freesurfer)[0]:
                if entry.name.startswith("sub-") and len(entry.name) > 4 and entry.is_dir(follow_symlinks=False):
                    freesurfer_folders[entry.name[4:]] = entry.path
        subjects |= set(freesurfer_folders)
        workdirs = subject_workdirs(dataset)
        subjects |= set(workdirs)
        annex = dataset.repository if dataset.annexed else None
        run_config = pipeline_by_key(dataset.pipeline).run_config
        self._evidence = {label: _evidence_of(label, derivatives, reports.get(label, []), freesurfer_folders.get(label),
                                              annex, run_config, git)
                          for label in sorted(subjects)}
        # the folders whose files tell each subject's activity, with how the evidence names them
        self._folders_of: dict[str, dict[str, str]] = {label: {} for label in subjects}
        for label, folder in output_folders.items():
            self._folders_of[label][folder] = "a file in its output folders"
        for label, folder in freesurfer_folders.items():
            self._folders_of[label][folder] = "a file in its FreeSurfer folder"
        for label, folders in workdirs.items():
            for folder in folders:
                self._folders_of[label][folder] = f"a file in its working directory {folder}"
        self._with_workdir = set(workdirs)
        self._owner = {folder: label for label, folders in self._folders_of.items() for folder in folders}
        self._unread = {label: set(folders) for label, folders in self._folders_of.items()}  # not walked or read yet
        self._unwalked = {label: set(folders) for label, folders in self._folders_of.items()}  # not walked yet
        self._newest: dict[str, float] = {}  # folder -> newest file time the scan saw below it
        self._problems: dict[str, list[str]] = {}  # label -> folders of its the scan could not read
        self._judged: dict[str, SubjectStatus] = {}
        self._states: dict[str, RunState] = {}
        self._evidence_files = self._protected_evidence()

    # --- what the scan tells the book ---

    def know(self, statuses: dict[str, SubjectStatus]) -> None:
        """Take these subjects' statuses as judged (by the shards that scanned their folders), so a scan of the
        shared folders can ask about every subject without reading their folders again."""
        for label, judged in statuses.items():
            self._judged[label] = judged
            self._unread[label] = set()
            self._unwalked[label] = set()

    def subjects(self) -> frozenset[str]:
        """Every subject label with an output folder, a report, a FreeSurfer folder or a working directory."""
        return frozenset(self._evidence)

    def subject_folder(self, path: str) -> str | None:
        """The subject whose folder (output, FreeSurfer or working directory) ``path`` is, or None."""
        return self._owner.get(path)

    def saw(self, folder: str, files: list[Entry]) -> None:
        """The scan lstat-ed ``files`` somewhere below the subject folder ``folder``."""
        newest = newest_of(files)
        seen = self._newest.get(folder)
        if newest is not None and (seen is None or newest > seen):
            self._newest[folder] = newest

    def unreadable(self, folder: str, problem: str) -> None:
        """The scan could not read something below the subject folder ``folder``: its activity is not known."""
        self._problems.setdefault(self._owner[folder], []).append(problem)

    def walked(self, folder: str) -> str:
        """The scan has left the subject folder ``folder``: its activity is known. Returns its subject."""
        label = self._owner[folder]
        self._unread[label].discard(folder)
        self._unwalked[label].discard(folder)
        return label

    # --- questions ---

    def ready(self, label: str) -> bool:
        """True when the scan has walked every folder of the subject (or its status came from elsewhere): its
        status can be given without reading any folder. Deliberately not "judged": a question about every
        subject judges them all early, and when the scan decides to wait must not depend on which questions
        were asked before (shards of a plan ask different ones)."""
        return not self._unwalked.get(label)

    def status(self, label: str) -> SubjectStatus:
        """The subject's status; its folders the scan has not walked yet are read now."""
        judged = self._judged.get(label)
        if judged is None:
            evidence = self._evidence.get(label)
            if evidence is None:
                judged = SubjectStatus(label, "unknown", ["no output folder, report or working directory"])
            else:
                problems = self._problems.setdefault(label, [])
                for folder in sorted(self._unread.get(label, ())):
                    newest, unread = newest_file_time(folder, self.git)
                    problems += unread
                    if newest is not None:
                        self._newest[folder] = max(newest, self._newest.get(folder, newest))
                self._unread[label] = set()
                activity = list(evidence.activity)
                activity += [(self._newest[folder], how) for folder, how in self._folders_of[label].items()
                             if folder in self._newest]
                judged = _judge(evidence, activity, problems, self.now, self.min_age, self.stale_after,
                                self.has_run_folders, self.orphan_of)
            self._judged[label] = judged
        return judged

    def status_of(self, label: str) -> str:
        return self.status(label).status

    def state_of(self, label: str) -> RunState:
        state = self._states.get(label)
        if state is None:
            judged = self.status(label)
            state = self._states[label] = RunState(judged.status, judged.stale)
        return state

    def present(self) -> frozenset[str]:
        """The statuses some subject has (for any_subject_status); judges every subject."""
        return frozenset(self.status(label).status for label in self._evidence)

    def statuses(self, wanted: Callable[[str], bool] | None = None) -> dict[str, SubjectStatus]:
        """Every subject's status (or those ``wanted``), sorted by label."""
        return {label: self.status(label) for label in self._evidence if wanted is None or wanted(label)}

    # --- the files a status rests on ---

    def _protected_evidence(self) -> dict[tuple[str, str], frozenset[str] | None]:
        """(scope, folder relative to its root) -> the names there a status rests on (None: every file), for
        subjects whose working directory exists: deleting them would change the status and expose the cache."""
        guarded: dict[tuple[str, str], set[str] | None] = {}
        top: set[str] = set()
        for label in self._with_workdir:
            evidence = self._evidence[label]
            top.update(evidence.reports)
            if evidence.newest_run_folder:
                guarded[("derivatives", evidence.newest_run_folder)] = None
            if evidence.freesurfer_markers:
                guarded[("freesurfer", f"sub-{label}/scripts")] = set(evidence.freesurfer_markers)
        if top:
            guarded[("derivatives", "")] = top
        return {key: (frozenset(names) if names is not None else None) for key, names in guarded.items()}

    def guards(self, scope: str, folder: str) -> bool:
        """Whether some file directly in ``folder`` (relative to the scope's root) is protected evidence."""
        return (scope, folder) in self._evidence_files

    def is_evidence(self, scope: str, folder: str, name: str) -> bool:
        names = self._evidence_files.get((scope, folder), frozenset())
        return names is None or name in names


def _major(version: str) -> int:
    digits = re.match(r"\d+", version)
    return int(digits.group()) if digits else 0


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


def _evidence_of(label: str, derivatives: str | None, reports: list[str], freesurfer: str | None,
                 annex: GitRepo | None = None, run_config: str | None = "fmriprep.toml",
                 git: GitState | None = None) -> _Evidence:
    """What a subject's evidence says. In a git-annex dataset the evidence may be annexed links: their content
    is read where it is here, and their times (when they were checked out) are not activity. In any git
    repository (``git``), a file as committed has its commit's time, and a folder's time is its checkout's."""

    def committed(path: str) -> bool:
        return git is not None and git.unchanged(path)

    def time_of(path: str, mtime: float) -> float:
        return git.commit_time if git is not None and git.commit_time is not None and committed(path) else mtime

    status = SubjectStatus(label, "unknown")
    evidence = _Evidence(status, [], [], sorted(reports), None, {}, [])
    if freesurfer:
        entries, problem = list_folder(os.path.join(freesurfer, "scripts"))
        if problem:
            evidence.unreadable.append(problem)
        for entry in entries:
            if entry.name in FREESURFER_MARKERS or entry.name.startswith(ISRUNNING):
                try:
                    evidence.freesurfer_markers[entry.name] = time_of(entry.path,
                                                                      entry.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    continue
    if not derivatives:
        return evidence
    for name in evidence.reports:
        path = os.path.join(derivatives, name)
        try:
            mtime = os.lstat(path).st_mtime
        except OSError as exc:
            evidence.unreadable.append(f"cannot stat {path}: {_why(exc)}")
            continue
        annexed, content = annexed_content(path, annex)
        if annexed:
            errors, problem = report_errors(content) if content else (None, None)
            if content is None:
                evidence.not_here.append(name)
        else:
            errors, problem = report_errors(path)
        if problem:
            evidence.unreadable.append(problem)
            continue
        mtime = time_of(path, mtime)
        status.report_time = max(mtime, status.report_time or mtime)
        if not annexed and not committed(path):
            evidence.activity.append((mtime, "its report"))
        if errors is not None:
            status.report_errors = max(errors, status.report_errors or 0)
    log = os.path.join(derivatives, f"sub-{label}", "log")
    entries, problem = list_folder(log)
    if problem:
        evidence.unreadable.append(problem)
    runs = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
    status.runs = len(runs)
    if not runs:
        return evidence
    newest = os.path.join(log, runs[-1])
    status.newest_run = runs[-1]
    status.newest_run_time = _run_time(runs[-1])
    evidence.newest_run_folder = f"sub-{label}/log/{runs[-1]}"
    entries, problem = list_folder(newest)
    if problem:
        evidence.unreadable.append(problem)
    evidence.crash_names = [entry.name for entry in entries if entry.name.startswith("crash-")]
    status.crash_files = len(evidence.crash_names)
    for entry in entries:
        if annex is not None and annexed_content(entry.path, annex)[0]:
            continue  # checked out, not written by a run
        if git is not None and (committed(entry.path) or entry.is_dir(follow_symlinks=False)):
            continue  # as committed, or a folder (git keeps none: it was made by the checkout)
        try:
            evidence.activity.append((entry.stat(follow_symlinks=False).st_mtime, f"run folder {runs[-1]}"))
        except OSError:
            pass
    if run_config is None:  # the pipeline writes none (sMRIPrep): crash files and the report decide
        return evidence
    config = os.path.join(newest, run_config)
    annexed_config, config_content = annexed_content(config, annex)
    if annexed_config:
        if config_content is None:
            evidence.not_here.append(f"sub-{label}/log/{runs[-1]}/{run_config}")
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
    return evidence


def _freesurfer_state(markers: dict[str, float]) -> tuple[str | None, str]:
    """What FreeSurfer's scripts/ folder says: ("error" | "stopped" | "done" | None, the marker that says it)."""
    done = markers.get("recon-all.done")
    error = markers.get("recon-all.error")
    running = max(((mtime, name) for name, mtime in markers.items() if name.startswith(ISRUNNING)), default=None)
    if error is not None and (done is None or error >= done):
        return "error", "recon-all.error"
    if running is not None and (done is None or running[0] >= done):
        return "stopped", running[1]
    if done is not None:
        return "done", "recon-all.done"
    return None, ""


def _judge(evidence: _Evidence, activity: list[tuple[float, str]], problems: list[str], now: float, min_age: float,
           stale_after: float, has_run_folders: bool, orphan_of: str | None = None) -> SubjectStatus:
    status = replace(evidence.status, evidence=[], warnings=list(evidence.status.warnings))
    label = status.subject
    where = ""
    if activity:
        status.last_activity, where = max(activity)
        status.idle_seconds = max(0.0, now - status.last_activity)
        status.stale = status.idle_seconds > stale_after
    freesurfer, marker = _freesurfer_state(evidence.freesurfer_markers)
    status.freesurfer = freesurfer
    ran = f" ({status.runs} runs, newest {status.newest_run})" if status.runs > 1 else ""
    unreadable = list(dict.fromkeys(evidence.unreadable + problems))  # the scan may meet what was read before

    def decide(state: str, why: str) -> SubjectStatus:
        status.status = state
        status.evidence.append(why)
        if evidence.not_here:
            more = f" and {len(evidence.not_here) - 2} more" if len(evidence.not_here) > 2 else ""
            status.evidence.append(f"content not here (annexed, elsewhere only): {', '.join(evidence.not_here[:2])}{more}")
        return status

    if status.last_activity is not None and status.last_activity > now - min_age:
        return decide("running", f"{where} changed {_ago(now - status.last_activity)} ago, within --min-age")
    if orphan_of:  # recent activity says running (above); else nothing can ever reuse this cache
        return decide("orphaned", f"its working directory's runs wrote to {orphan_of}, which no longer exists")
    if unreadable:
        status.warnings += unreadable
        status.stale = False  # what could not be read may have changed lately: its idle time is not known
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        return decide("unknown", f"evidence could not be read: {unreadable[0]}{more}")
    if status.crash_files:
        return decide("failed", f"{status.crash_files} crash file(s) in the newest run {status.newest_run}{ran}: "
                      + ", ".join(evidence.crash_names[:3]))
    if freesurfer == "error":
        return decide("failed", f"FreeSurfer stopped with an error ({marker} after the last recon-all.done)")
    if freesurfer == "stopped":
        idle = f", nothing changed for {_ago(status.idle_seconds)}" if status.idle_seconds is not None else ""
        return decide("incomplete", f"recon-all stopped before its end ({marker} left behind{idle})")
    if status.report_time is None:
        if status.runs:
            return decide("incomplete", f"no report sub-{label}.html and nothing recent: the run was stopped")
        if has_run_folders:
            return decide("incomplete", f"no report sub-{label}.html and no run folder in sub-{label}/log/")
        return decide("unknown", "no report and no run folders (fMRIPrep before 20 writes them only for crashes)")
    if status.last_activity is not None and status.last_activity > status.report_time + REPORT_SLACK:
        return decide("incomplete", f"{where} changed after the report: a later run stopped before its end")
    fs_note = "; recon-all.done" if freesurfer == "done" else ""
    if status.report_errors:
        return decide("failed", f"report lists {status.report_errors} error(s)")
    if status.report_errors == 0:
        newest = f", no crash file in the newest run {status.newest_run}{ran}" if status.runs else ""
        return decide("finished", f"report lists no errors{newest}{fs_note}")
    if status.runs:
        return decide("finished", f"report written, no crash file in the newest run {status.newest_run}{ran}{fs_note}")
    return decide("unknown", "the report has no errors section to read and there are no run folders")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
