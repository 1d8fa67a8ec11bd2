"""Recovery after a crash: finish the record of runs that were cut short, and tidy what they left.

Only the journals of runs this user's own record shows as started and not ended are acted on, and only when
their lines are one unbroken sealed chain (basics/journals.py). Even then every name is checked against the
tool's own naming before anything is removed: a leftover must be ``<archive dir>/<run id>/<group>.tar.tmp``
(or the tree folder, or the manifest, by those ``.tmp`` names) of the very run that began it, in a run folder
whose sealed run.json names that run. An archive or a manifest under its final name is never removed: nothing
else is ever removed, whatever a journal says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..basics import numbers
from ..basics.errors import CleanupError
from ..basics.handles import remove_path
from ..basics.journal_writer import Journal, mark_done
from ..basics.journals import (
    ARCHIVE_BEGIN,
    ARCHIVE_VERIFIED,
    REMOVED,
    REMOVING,
    RUN_END,
    RUN_START,
    JournalProblems,
    read_records,
    survey_journals,
)
from ..basics.ownstate import record_end
from ..basics.paths import inside
from .manifest import MANIFEST_SUFFIX, RUN_ID, load_run_info, our_archive_name
from .rewrite import remove_leftovers


@dataclass(frozen=True)
class ReusableArchive:
    """A verified archive that an interrupted run wrote into the same archive folder: after re-verifying it,
    the run that finishes the job may remove the originals it holds instead of archiving them again."""

    archive: str
    manifest: str
    stream: tuple[int, str] | None  # the tar stream's (length, sha256); None for a tree archive


@dataclass(frozen=True)
class CutShortRun:
    """A run killed before it could write its end (SIGKILL, a crash, a power cut): what its journal shows it
    removed, so the history can record it."""

    run: str
    mode: str
    dataset: str
    rules: list[str]
    started: float
    ended: float
    files: int
    bytes: int


@dataclass
class Recovery:
    reusable: list[ReusableArchive] = field(default_factory=list)
    recovered_files: int = 0
    problems: list[str] = field(default_factory=list)  # journal lines skipped: malformed, or not sealed
    cut_short: list[CutShortRun] = field(default_factory=list)


def recover(journal: Journal, archive_dir: str | None = None) -> Recovery:
    """Finish the record of every run of this state directory that was cut short, and tidy what it left.

    Only a journal whose run this user's own record shows as started here and not ended is acted on, and only
    when its lines are one unbroken chain (basics/journals.py); every other unfinished journal is reported in
    ``Recovery.problems`` and left as it is. For a run it acts on:

    * a batch it began and did not end: the files of it that are gone were removed by that run, and are
      recorded so (in this run's journal, as recovering it);
    * an archive it began: the half-written archive and manifest (``*.tmp``, under the names the tool gives
      them, in the run folder it made) are removed. An archive or manifest under its final name is never
      removed, whatever the journal says: a manifest is written only after its archive was verified;
    * an archive it verified into ``archive_dir``: offered for reuse (the caller re-verifies it first).

    Its journal is then marked finished, and the run ended in the user's own record.
    """
    recovery = Recovery()
    survey = survey_journals(journal.state_dir, exclude=journal.path)
    recovery.problems += survey.problems
    for run in survey.missing:
        record_end(run.run)
    for path, started in survey.actionable:
        records = _chained_records(path, started.run, recovery)
        if records is None:
            continue
        recover_run(records, journal, archive_dir, recovery)
        mark_done(path)
        record_end(started.run)
    return recovery


def _chained_records(path: str, run: str, recovery: Recovery) -> list[dict[str, Any]] | None:
    """The records of one run's journal, or None (said in ``recovery.problems``) unless every line is of that
    run and the lines are one unbroken chain."""
    problems = JournalProblems()
    records = list(read_records(path, problems))
    recovery.problems += problems.lines
    if problems.refused is None and any(record["run"] != run for record in records):
        problems.refused, problems.refused_at = "holds lines of another run", path
    if problems.refused is not None:
        recovery.problems.append(f"{problems.refused_at}: {problems.refused}: not acted on "
                                 "(`fmriprep-cleanup journals list` says what to do)")
        return None
    return records


@dataclass
class Replayed:
    """What an interrupted run's journal says it did: the batches it named and did not close (batch -> their
    archive and files), the sizes of the files it named, what it removed, and the archives it began and verified."""

    open_batches: dict[Any, tuple[str | None, list[tuple[str, int]]]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    removed_files: int = 0
    removed_bytes: int = 0
    begun: dict[str, dict[str, Any]] = field(default_factory=dict)
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, records: list[dict[str, Any]]) -> Replayed:
        replayed = cls()
        for record in records:
            event = record["event"]
            if event == REMOVING:
                files = _batch_files(record)
                replayed.open_batches[record.get("batch")] = (record.get("archive"), files)
                replayed.sizes.update(files)
            elif event == REMOVED:
                named = replayed.open_batches.pop(record.get("batch"), (None, []))[1]
                done = [path for path, _ in named] if record.get("removed") == "all" else record.get("removed")
                if isinstance(done, list):
                    replayed.removed_files += len(done)
                    replayed.removed_bytes += sum(replayed.sizes.get(path, 0) for path in done if isinstance(path, str))
            elif event == ARCHIVE_BEGIN:
                replayed.begun[record["archive"]] = record
            elif event == ARCHIVE_VERIFIED:
                replayed.verified[record["archive"]] = record
        return replayed

    def removed(self, paths: list[str]) -> None:
        self.removed_files += len(paths)
        self.removed_bytes += sum(self.sizes.get(path, 0) for path in paths)


def recover_run(records: list[dict[str, Any]], journal: Journal, archive_dir: str | None, recovery: Recovery) -> None:
    """Finish one interrupted run: close its open batches with what is gone from the disk, remove its half-written
    archives (never a final name), offer its verified archives for reuse, and record it as cut short."""
    run = records[0]["run"]
    ended = [record for record in records if record["event"] == RUN_END]
    start = next((record for record in records if record["event"] == RUN_START), {})
    roots = [root for root in start.get("roots", []) if isinstance(root, str)] if isinstance(start.get("roots"), list) else []
    replayed = Replayed.of(records)
    for batch, (archive, files) in replayed.open_batches.items():
        gone = [path for path, _ in files if any(inside(path, root) for root in roots) and not os.path.lexists(path)]
        journal.batch_end(batch if isinstance(batch, int) else 0, gone, [], [], archive, recovers=run)
        recovery.recovered_files += len(gone)
        replayed.removed(gone)
    remove_leftovers(records, journal)
    run_folder = _own_run_folder(start, run)
    if run_folder is not None:
        _tidy_begun(replayed, run_folder, journal, recovery)
        same_folder = archive_dir is not None and isinstance(start.get("archive_dir"), str) and \
            os.path.realpath(start["archive_dir"]) == os.path.realpath(archive_dir)
        finished = any(not record.get("interrupted") for record in ended)
        _offer_verified(replayed, run_folder, same_folder and not finished, recovery)
    if not ended and start:
        times = [record["time"] for record in records if _is_time(record.get("time"))]
        rules = start.get("rules")
        rules = rules if isinstance(rules, list) else []
        recovery.cut_short.append(CutShortRun(
            run, str(start.get("mode", "")), str(start.get("dataset", "")), [str(rule) for rule in rules],
            min(times, default=0.0), max(times, default=0.0), replayed.removed_files, replayed.removed_bytes))


def _tidy_begun(replayed: Replayed, run_folder: str, journal: Journal, recovery: Recovery) -> None:
    """The archives the run began: their half-written files removed, an unverified complete one reported."""
    for archive, record in replayed.begun.items():
        if not _leftover_names_are_ours(record, run_folder):
            continue
        for leftover in (record["temporary"], record["manifest"] + ".tmp"):  # never a final name
            if _remove_leftover(leftover):
                journal.recovered(leftover, "half-written archive of an interrupted run")
        if archive in replayed.verified:
            continue
        if os.path.lexists(archive) != os.path.lexists(record["manifest"]):
            recovery.problems.append(_partnerless(archive, record["manifest"]))
        elif os.path.lexists(archive):
            recovery.problems.append(f"{archive}: a complete archive of an interrupted run, written before any of "
                                     "its originals went; kept (restore or prune it as any other)")


def _offer_verified(replayed: Replayed, run_folder: str, reusable: bool, recovery: Recovery) -> None:
    """The archives the run verified: one without its partner reported (never removed); with ``reusable`` (this
    run archives to the same folder, the run did not finish), each offered to serve again once re-verified."""
    for archive, record in replayed.verified.items():
        if not _leftover_names_are_ours(record, run_folder):
            continue
        has_archive, has_manifest = os.path.lexists(archive), os.path.lexists(record["manifest"])
        if has_archive != has_manifest:  # one without its partner: reported, never removed
            recovery.problems.append(_partnerless(archive, record["manifest"]))
        elif has_archive and reusable:
            length, sha = record.get("stream_length"), record.get("stream_sha256")
            stream = (length, sha) if isinstance(length, int) and isinstance(sha, str) else None
            recovery.reusable.append(ReusableArchive(archive, record["manifest"], stream))


def _is_time(value: object) -> bool:
    try:
        numbers.moment(value, "time")
    except ValueError:
        return False
    return True


def _batch_files(record: dict[str, Any]) -> list[tuple[str, int]]:
    """The (path, size) pairs a "removing" record names (lists of [path, size, category])."""
    found = []
    files = record.get("files")
    for item in files if isinstance(files, list) else []:
        if isinstance(item, list) and item and isinstance(item[0], str):
            try:
                size = numbers.count(item[1] if len(item) > 1 else 0, "size")
            except ValueError:
                size = 0  # said nothing countable: counted as nothing, never as 10**400
            found.append((item[0], size))
    return found


def _own_run_folder(start: dict[str, Any], run: str) -> str | None:
    """ARCHIVE_DIR/<run> when the run's sealed start names an archive folder and that folder holds a run.json
    sealed for this run: the only place its leftovers may be."""
    archive_dir = start.get("archive_dir")
    if not isinstance(archive_dir, str) or not os.path.isabs(archive_dir) or not RUN_ID.match(run):
        return None
    folder = os.path.join(archive_dir, run)
    try:
        info = load_run_info(folder)
    except CleanupError:
        return None
    return folder if info.verdict.trusted and info.run == run else None


def _leftover_names_are_ours(record: dict[str, Any], run_folder: str) -> bool:
    """The archive, its temporary name and its manifest, as the tool names them in ``run_folder``."""
    archive, manifest = record.get("archive"), record.get("manifest")
    if not isinstance(archive, str) or not isinstance(manifest, str) or os.path.dirname(archive) != run_folder:
        return False
    name = os.path.basename(archive)
    group = name.split(".tar", 1)[0]
    temporary = record.get("temporary", archive + ".tmp")
    return (our_archive_name(name) and temporary == archive + ".tmp"
            and manifest == os.path.join(run_folder, group + MANIFEST_SUFFIX))


def _partnerless(archive: str, manifest: str) -> str:
    if os.path.lexists(archive):
        return (f"{archive}: an archive of an interrupted run without its manifest; kept (it may be the only copy "
                "of what it holds): `fmriprep-cleanup archives list` shows it")
    return f"{manifest}: a manifest of an interrupted run without its archive; kept"


def _remove_leftover(path: str) -> bool:
    """Remove a half-written archive or manifest (``*.tmp``; a tree archive is a folder), never through a
    symlink."""
    if not path.endswith(".tmp") or not os.path.lexists(path):
        return False
    try:
        remove_path(path)
    except OSError:
        return False
    return not os.path.lexists(path)
