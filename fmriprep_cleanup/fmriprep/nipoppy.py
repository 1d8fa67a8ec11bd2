"""Studies run by Nipoppy: where an output and its working folders sit in a study, what its trackers count, and
what Nipoppy says of each participant-session.

Nipoppy (0.4; its default layout) keeps a pipeline's outputs in ``derivatives/<pipeline>/<version>/output/``, the
working folder of each participant-session in ``scratch/work/<p>-<v>-<step>/<p>-<v>-<step>-<participant>-<session>``,
each pipeline's configuration in ``pipelines/processing/<p>-<v>/config.json`` (a step names its tracker file), and
the status of every participant-session in ``derivatives/processing_status.tsv``. ``nipoppy track-processing``
marks a participant-session SUCCESS only if every path of the tracker matches under the output (or inside
``<output>/<PARTICIPANT_SESSION_DIR>.tar``), and ``nipoppy process`` re-runs each one not SUCCESS. So a file a
tracker matches is never junk here (deleting it costs a whole run), an archive Nipoppy made with ``--tar`` is never
junk, and the working folder of a participant-session that is not SUCCESS is kept for the re-run.

Nothing of Nipoppy's is written: after a clean, ``nipoppy track-processing`` shows the study as before.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..basics.errors import CleanupError
from ..basics.guarded import BrokenFileError, parse_json, read_text

STUDY_CONFIG = "global_config.json"
STATUS_TABLE = os.path.join("derivatives", "processing_status.tsv")
CURATION_TABLE = os.path.join("sourcedata", "imaging", "curation_status.tsv")
PARTICIPANT, SESSION = "[[NIPOPPY_BIDS_PARTICIPANT_ID]]", "[[NIPOPPY_BIDS_SESSION_ID]]"
SUCCESS = "SUCCESS"
DEFAULT_STEP = "default"  # a step without a NAME (nipoppy.env.DEFAULT_PIPELINE_STEP_NAME)
TAR = ".tar"
COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)  # strings are kept, comments dropped
TRAILING_COMMA = re.compile(r",(\s*[}\]])")


@dataclass(frozen=True)
class Tracked:
    """A file (or a --tar archive) of the output a tracker counts: kept, whatever a rule set says."""

    path: str  # relative to the output
    tracker: str  # the tracker file, relative to the study root
    glob: str  # the tracker's path, as written


@dataclass(frozen=True)
class WorkFolder:
    """One participant-session's working folder and what Nipoppy says of it."""

    path: str
    participant: str
    session: str
    step: str
    status: str | None  # None: Nipoppy has not tracked it


@dataclass(frozen=True)
class NipoppyStudy:
    root: str
    pipeline: str
    version: str
    output: str
    tracked: tuple[Tracked, ...]
    work_folders: tuple[WorkFolder, ...]
    statuses: tuple[tuple[str, str, str, str], ...]  # (participant, session, step, status) of this pipeline

    def held_work_folders(self) -> dict[str, str]:
        """Working folders to keep (path -> why): each participant-session Nipoppy does not mark SUCCESS is re-run
        by ``nipoppy process``, and its cache is what that run reuses."""
        return {folder.path: f"Nipoppy says {folder.status or 'nothing (not tracked)'} for sub-{folder.participant}"
                             f"{' ses-' + folder.session if folder.session else ''} ({self.pipeline} {self.version} "
                             f"{folder.step}): `nipoppy process` re-runs it"
                for folder in self.work_folders if folder.status != SUCCESS}

    def as_json(self) -> dict[str, Any]:
        """What the report says of the study: where it is, what its trackers count, and each working folder with
        what Nipoppy says of it and whether it is kept."""
        held = self.held_work_folders()
        return {"root": self.root, "pipeline": self.pipeline, "version": self.version,
                "tracked_files": len(self.tracked),
                "work_folders": [{"path": folder.path, "participant": folder.participant, "session": folder.session,
                                  "step": folder.step, "status": folder.status, "kept": folder.path in held}
                                 for folder in self.work_folders]}

    def steps(self, by_root: dict[str, list[int]]) -> list[dict[str, Any]]:
        """What the study holds for this pipeline and version, per step: the output, then each step's working
        folders (those Nipoppy left behind: failed invocations, --keep-workdir), each with its files, bytes and
        the bytes a clean frees. ``by_root``: scan root -> [files, bytes, bytes freed] (the plan's summary)."""
        held = self.held_work_folders()
        folders_of: dict[str, list[WorkFolder]] = {}
        for folder in self.work_folders:
            folders_of.setdefault(folder.step, []).append(folder)
        working = {folder.path for folder in self.work_folders}
        rows = [self._row("", "output", 1, 0, [counts for path, counts in by_root.items() if path not in working])]
        for step, folders in folders_of.items():
            rows.append(self._row(step, "working folders", len(folders),
                                  sum(1 for folder in folders if folder.path in held),
                                  [by_root.get(folder.path, [0, 0, 0]) for folder in folders]))
        return rows

    def _row(self, step: str, folder: str, folders: int, kept: int, counts: list[list[int]]) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "version": self.version, "step": step, "folder": folder,
                "folders": folders, "kept_folders": kept, "files": sum(count[0] for count in counts),
                "bytes": sum(count[1] for count in counts), "reclaimable_bytes": sum(count[2] for count in counts)}

    def subject_statuses(self) -> dict[str, list[str]]:
        """sub label -> "ses-BL SUCCESS"-like lines: what Nipoppy's processing_status.tsv says of the subject."""
        found: dict[str, list[str]] = {}
        for participant, session, step, status in self.statuses:
            where = f"ses-{session} " if session else ""
            found.setdefault(participant, []).append(f"{where}{status}" + (f" ({step})" if step != DEFAULT_STEP else ""))
        return found


def study_of(output: str, tracked_in: tuple[str, list[str]] | None = None) -> NipoppyStudy | None:
    """The Nipoppy study ``output`` is a pipeline's output of (``<root>/derivatives/<p>/<v>/output``), or None.
    A configuration or tracker that cannot be read is refused (CleanupError): without it nothing says which
    files Nipoppy counts. ``tracked_in``: a --tar archive (its path, its members' names) whose members a
    tracker's paths also count, as Nipoppy matches them."""
    version_folder = os.path.dirname(output)
    pipeline_folder = os.path.dirname(version_folder)
    derivatives = os.path.dirname(pipeline_folder)
    root = os.path.dirname(derivatives)
    if os.path.basename(output) != "output" or os.path.basename(derivatives) != "derivatives" \
            or not os.path.isfile(os.path.join(root, STUDY_CONFIG)):
        other = _study_above(output)
        if other is not None:
            raise CleanupError(f"{output} is inside a Nipoppy study ({other}) but not where Nipoppy's default layout "
                               "puts a pipeline's output (derivatives/<pipeline>/<version>/output): its trackers "
                               "cannot be matched, so nothing is judged; nothing was changed")
        return None
    pipeline, version = os.path.basename(pipeline_folder), os.path.basename(version_folder)
    statuses = [(row["participant_id"], row.get("session_id") or "", row.get("pipeline_step") or DEFAULT_STEP,
                 row.get("status") or "") for row in _table(os.path.join(root, STATUS_TABLE))
                if row.get("pipeline_name") == pipeline and row.get("pipeline_version") == version
                and row.get("participant_id")]
    sessions = sorted({(participant, session) for participant, session, _, _ in statuses} | set(_curated(root)))
    steps = _steps(root, pipeline, version)
    tracked = tuple(found for step, tracker in steps if tracker
                    for found in _tracked_files(root, output, tracker, sessions, tracked_in))
    status_of = {(participant, session, step): status for participant, session, step, status in statuses}
    work_folders = tuple(
        WorkFolder(os.path.join(root, "scratch", "work", f"{pipeline}-{version}-{step}", entry.name), participant,
                   session, step, status_of.get((participant, session, step)))
        for step, _ in steps
        for entry in _folders(os.path.join(root, "scratch", "work", f"{pipeline}-{version}-{step}"))
        for participant, session in sessions
        if entry.name == "-".join(filter(None, [pipeline, version, step, participant, session])))
    return NipoppyStudy(root, pipeline, version, output, tracked, work_folders, tuple(statuses))


def study_outputs(folder: str) -> list[str] | None:
    """The pipelines' outputs of the Nipoppy study rooted at ``folder`` (derivatives/<p>/<v>/output, relative to
    it), or None when ``folder`` is no study root."""
    if not _is_study_root(folder):
        return None
    derivatives = os.path.join(folder, "derivatives")
    return [os.path.join("derivatives", pipeline.name, version.name, "output") for pipeline in _folders(derivatives)
            for version in _folders(pipeline.path) if os.path.isdir(os.path.join(version.path, "output"))]


def _is_study_root(folder: str) -> bool:
    return all(os.path.exists(os.path.join(folder, name)) for name in (STUDY_CONFIG, "pipelines", "manifest.tsv"))


def _study_above(folder: str, levels: int = 5) -> str | None:
    """A Nipoppy study root above ``folder`` (its global_config.json beside pipelines/ and manifest.tsv), if any."""
    for _ in range(levels):
        folder = os.path.dirname(folder)
        if _is_study_root(folder):
            return folder
    return None


def _table(path: str) -> list[dict[str, str]]:
    """The rows of a Nipoppy TSV (none when it does not exist yet)."""
    if not os.path.lexists(path):
        return []
    text = read_text(path, "Nipoppy table", cap=256 * 1024 * 1024)
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def _curated(root: str) -> list[tuple[str, str]]:
    """The participant-sessions in BIDS (curation_status.tsv's in_bids): those the tracker is run on."""
    return [(row["participant_id"], row.get("session_id") or "") for row in _table(os.path.join(root, CURATION_TABLE))
            if row.get("participant_id") and row.get("in_bids") == "True"]


def read_json5(path: str, kind: str) -> Any:
    """A Nipoppy configuration file: JSON with // and /* */ comments and trailing commas (what its templates use)."""
    text = read_text(path, kind, cap=1024 * 1024)
    return parse_json(TRAILING_COMMA.sub(r"\1", COMMENT.sub(lambda found: found.group() if found.group()[0] == '"'
                                                             else "", text)), path)


def _steps(root: str, pipeline: str, version: str) -> list[tuple[str, str | None]]:
    """(step name, its tracker file or None) of the pipeline's configuration; none if it has no configuration."""
    bundle = os.path.join(root, "pipelines", "processing", f"{pipeline}-{version}")
    config = os.path.join(bundle, "config.json")
    if not os.path.isfile(config):
        return [(DEFAULT_STEP, None)]
    try:
        steps = read_json5(config, "Nipoppy pipeline configuration").get("STEPS")
    except (BrokenFileError, AttributeError) as exc:
        raise CleanupError(f"{config}: cannot read Nipoppy's pipeline configuration ({exc}); nothing was changed") \
            from None
    if not isinstance(steps, list):
        raise CleanupError(f"{config}: Nipoppy's pipeline configuration has no STEPS list; nothing was changed")
    found = []
    for step in steps:
        step = step if isinstance(step, dict) else {}
        tracker = step.get("TRACKER_CONFIG_FILE")
        found.append((str(step.get("NAME") or DEFAULT_STEP),
                      os.path.join(bundle, tracker) if isinstance(tracker, str) and tracker else None))
    return found


def _tracked_files(root: str, output: str, tracker: str, sessions: list[tuple[str, str]],
                   tracked_in: tuple[str, list[str]] | None = None) -> list[Tracked]:
    """What a tracker counts for each participant-session, found as Nipoppy finds it: its paths globbed under
    the output with pathlib, the participant-session's --tar archive when there is one, and in ``tracked_in``
    (a tar's path and members) the members its paths match."""
    try:
        config = read_json5(tracker, "Nipoppy tracker")
    except BrokenFileError as exc:
        raise CleanupError(f"{tracker}: cannot read Nipoppy's tracker ({exc}); nothing was changed") from None
    config = config if isinstance(config, dict) else {}
    paths, folder = config.get("PATHS"), config.get("PARTICIPANT_SESSION_DIR")
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise CleanupError(f"{tracker}: Nipoppy's tracker has no PATHS list; nothing was changed")
    name, found = os.path.relpath(tracker, root), []
    base = Path(output)
    for participant, session in sessions:
        ids = {PARTICIPANT: f"sub-{participant}", SESSION: f"ses-{session}" if session else ""}
        for glob in paths:
            pattern = _filled(glob, ids)
            if not pattern or os.path.isabs(pattern) or ".." in pattern.split("/"):
                continue  # nothing of the output (Nipoppy would look outside it): it keeps nothing here
            for match in base.glob(pattern):
                found += [Tracked(os.path.relpath(path, output), name, glob) for path in _files_at(str(match))]
            if tracked_in is not None:
                found += [Tracked(path, name, glob) for path in _members_matching(output, *tracked_in, pattern)]
        if isinstance(folder, str) and folder and os.path.isfile(os.path.join(output, _filled(folder, ids) + TAR)):
            found.append(Tracked(_filled(folder, ids) + TAR, name, "PARTICIPANT_SESSION_DIR (nipoppy --tar)"))
    return found


def _members_matching(output: str, archive: str, members: list[str], pattern: str) -> list[str]:
    """The members of the tar ``archive`` a tracker path counts (relative to the output): Nipoppy matches each
    member name (folders too) with ``Path.match`` against the path taken relative to the tar's folder; a
    folder counted keeps every file below it."""
    folder = os.path.relpath(os.path.dirname(archive), output)
    within = pattern if folder == "." else pattern[len(folder) + 1:] if pattern.startswith(folder + "/") else None
    if not within:
        return []
    prefix = "" if folder == "." else folder + "/"
    return [prefix + member for member in members
            if any(PurePosixPath(part).match(within) for part in _with_folders(member))]


def _with_folders(member: str) -> list[str]:
    parts = member.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def _filled(text: str, ids: dict[str, str]) -> str:
    """A tracker path with Nipoppy's participant and session substitutions made."""
    for template, value in ids.items():
        text = text.replace(template, value)
    return text


def _files_at(path: str) -> list[str]:
    """A tracked path's files: itself, or every file below a tracked folder (emptied, the folder would go)."""
    if not os.path.isdir(path) or os.path.islink(path):
        return [path]
    return [os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names]


def _folders(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return sorted((entry for entry in entries if entry.is_dir(follow_symlinks=False)), key=lambda e: e.name)
    except OSError:
        return []
