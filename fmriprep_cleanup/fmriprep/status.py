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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from ..basics.folders import list_folder
from ..basics.repository import GitState
from .evidence import (
    ISRUNNING,
    REPORT_NAME,
    Evidence,
    RunState,
    SubjectStatus,
    evidence_of,
    newest_file_time,
)
from .layout import SUBJECT_WORKFLOW_DIR, Dataset
from .nipoppy import SUCCESS, Tracked
from .pipelines import pipeline_by_key

REPORT_SLACK = 300.0  # seconds after the report that still belong to the run that wrote it
DEFAULT_STALE_AFTER = 30 * 86400.0


@dataclass
class SubjectFolders:
    """Where each subject's files are, read before the scan from the dataset's top folders: its output folder,
    its reports (file names), its FreeSurfer folder and its working-directory folders."""

    outputs: dict[str, str] = field(default_factory=dict)
    reports: dict[str, list[str]] = field(default_factory=dict)
    freesurfer: dict[str, str] = field(default_factory=dict)
    workdirs: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, dataset: Dataset, workflow_dir: re.Pattern[str]) -> SubjectFolders:
        found = cls(workdirs=subject_workdirs(dataset.workdirs, workflow_dir))
        if dataset.derivatives:
            for entry in list_folder(dataset.derivatives)[0]:
                if entry.name.startswith("sub-") and entry.is_dir(follow_symlinks=False):
                    if entry.name[4:]:
                        found.outputs[entry.name[4:]] = entry.path
                elif (report := REPORT_NAME.fullmatch(entry.name)) and report.group(1):
                    found.reports.setdefault(report.group(1), []).append(entry.name)
        if dataset.freesurfer:
            for entry in list_folder(dataset.freesurfer)[0]:
                if entry.name.startswith("sub-") and len(entry.name) > 4 and entry.is_dir(follow_symlinks=False):
                    found.freesurfer[entry.name[4:]] = entry.path
        return found

    def subjects(self) -> set[str]:
        return set(self.outputs) | set(self.reports) | set(self.freesurfer) | set(self.workdirs)


def subject_workdirs(workdirs: Iterable[str], workflow_dir: re.Pattern[str]) -> dict[str, list[str]]:
    """Each subject's folders in the working directories (single_subject_01_wf, sub_01_wf, sub_01_ses_1_wf), below
    the pipeline's top workflow folder (``workflow_dir``: fmriprep_25_0_wf...)."""
    found: dict[str, list[str]] = {}
    for workdir in workdirs:
        tops = [workdir] if workflow_dir.match(os.path.basename(workdir)) else [
            entry.path for entry in list_folder(workdir)[0]
            if workflow_dir.match(entry.name) and entry.is_dir(follow_symlinks=False)]
        for top in tops:
            for entry in list_folder(top)[0]:
                match = SUBJECT_WORKFLOW_DIR.match(entry.name)
                if match and entry.is_dir(follow_symlinks=False):
                    found.setdefault(match.group(1) or match.group(2), []).append(entry.path)
    return found


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
        study = dataset.nipoppy  # what a Nipoppy study counts and keeps (read at discovery)
        self.left_out_folders = tuple((folder.rstrip("/") + "/", why) for folder, why in dataset.left_out)
        self._tracked: dict[str, dict[str, Tracked]] = {}  # folder (in the output) -> name -> what counts it
        for tracked in study.tracked if study else ():
            folder, _, name = tracked.path.rpartition("/")
            self._tracked.setdefault(folder, {})[name] = tracked
        self._held_work = {os.path.realpath(path): why for path, why in study.held_work_folders().items()} \
            if study else {}
        self._nipoppy_says = study.subject_statuses() if study else {}
        pipeline = pipeline_by_key(dataset.pipeline)
        found = SubjectFolders.read(dataset, pipeline.workflow_dir)
        subjects, reports, workdirs = found.subjects(), found.reports, found.workdirs
        annex = dataset.repository if dataset.annexed else None
        # what each subject's evidence is read from; read when first asked for (a shard reads its own subjects')
        self._sources = {label: (label, dataset.derivatives, reports.get(label, []), found.freesurfer.get(label),
                                 annex, pipeline.run_config, git) for label in sorted(subjects)}
        self._evidence: dict[str, Evidence] = {}
        # the folders whose files tell each subject's activity, with how the evidence names them
        self._folders_of: dict[str, dict[str, str]] = {label: {} for label in subjects}
        for label, folder in found.outputs.items():
            self._folders_of[label][folder] = "a file in its output folders"
        for label, folder in found.freesurfer.items():
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
        # the reports of subjects with a working directory: the only evidence files at the top of the outputs
        self._guarded_reports = frozenset(name for label in self._with_workdir for name in reports.get(label, ()))

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
        return frozenset(self._sources)

    def subject_folder(self, path: str) -> str | None:
        """The subject whose folder (output, FreeSurfer or working directory) ``path`` is, or None."""
        return self._owner.get(path)

    def saw(self, folder: str, newest: float | None) -> None:
        """The scan lstat-ed files somewhere below the subject folder ``folder``, the newest activity among them
        at ``newest`` (``Directory.newest``)."""
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
            evidence = self.evidence(label) if label in self._sources else None
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
                judged = self._beside_nipoppy(label, _judge(evidence, activity, problems, self.now, self.min_age,
                                                            self.stale_after, self.has_run_folders, self.orphan_of))
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
        return frozenset(self.status(label).status for label in self._sources)

    def _beside_nipoppy(self, label: str, judged: SubjectStatus) -> SubjectStatus:
        """The status with what Nipoppy's processing_status.tsv says of the subject, and where the two disagree."""
        says = self._nipoppy_says.get(label)
        if not says:
            return judged
        judged.evidence.append(f"Nipoppy's processing_status.tsv: {', '.join(says)}")
        all_success = all(line.split(" (")[0].endswith(SUCCESS) for line in says)
        if (judged.status == "finished") != all_success and judged.status in ("finished", "failed", "incomplete"):
            judged.warnings.append(f"fMRIPrep's files say {judged.status}, Nipoppy says "
                                   f"{', '.join(says)} (its trackers decide what `nipoppy process` re-runs)")
        return judged

    def statuses(self, wanted: Callable[[str], bool] | None = None) -> dict[str, SubjectStatus]:
        """Every subject's status (or those ``wanted``), sorted by label."""
        return {label: self.status(label) for label in self._sources if wanted is None or wanted(label)}

    # --- the files a status rests on ---

    def evidence(self, label: str) -> Evidence:
        """What the subject's report, run folders and FreeSurfer markers say, read once when first asked for."""
        found = self._evidence.get(label)
        if found is None:
            found = self._evidence[label] = evidence_of(*self._sources[label])
        return found

    def _protected(self, scope: str, folder: str) -> frozenset[str] | None | Literal[False]:
        """The names directly in ``folder`` (relative to the scope's root) a status rests on, for subjects whose
        working directory exists (deleting them would change the status and expose the cache): None for every
        file there, False for none. Only the folder's own subject's evidence is read."""
        if scope == "derivatives":
            if not folder:
                return self._guarded_reports or False
            if "/log/" not in folder:
                return False
        elif scope != "freesurfer" or not folder.endswith("/scripts"):
            return False
        parts = folder.split("/")
        if not parts[0].startswith("sub-") or parts[0][4:] not in self._with_workdir:
            return False
        label = parts[0][4:]
        if scope == "derivatives" and len(parts) == 3 and parts[1] == "log":
            return None if self.evidence(label).newest_run_folder == folder else False
        if scope == "freesurfer" and len(parts) == 2 and parts[1] == "scripts":
            return frozenset(self.evidence(label).freesurfer_markers) or False
        return False

    def guards(self, scope: str, folder: str) -> bool:
        """Whether some file directly in ``folder`` (relative to the scope's root) is protected evidence, or
        counted by a Nipoppy tracker."""
        return self._protected(scope, folder) is not False or (scope == "derivatives" and folder in self._tracked)

    def tracked(self, scope: str, folder: str, name: str) -> Tracked | None:
        """The Nipoppy tracker path that counts this file of the output, if one does."""
        return self._tracked.get(folder, {}).get(name) if scope == "derivatives" else None

    def held_work_folder(self, root: str) -> str | None:
        """Why a Nipoppy participant-session's working folder (a scan root) is kept, if it is."""
        return self._held_work.get(root)

    def left_out(self, path: str) -> str | None:
        """Why the folder at ``path`` is in another run's working directory that discovery left out, if it is."""
        return next((why for folder, why in self.left_out_folders if (path + "/").startswith(folder)), None)

    def is_evidence(self, scope: str, folder: str, name: str) -> bool:
        names = self._protected(scope, folder)
        return names is None or (names is not False and name in names)


def _major(version: str) -> int:
    digits = re.match(r"\d+", version)
    return int(digits.group()) if digits else 0


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


def _judge(evidence: Evidence, activity: list[tuple[float, str]], problems: list[str], now: float, min_age: float,
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
