"""Recovery after a crash: finish the record of runs that were cut short, and tidy what they left.

Only sealed journal records are read (journal.read_records), and even those are checked against the tool's own
naming before anything is removed: a leftover must be ``<archive dir>/<run id>/<group>.tar.tmp`` (or the tree
folder, or the manifest, by those names) of the very run that began it, in a run folder whose sealed run.json
names that run - nothing else is ever removed, whatever a journal says.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..basics.errors import CleanupError
from ..basics.handles import remove_path
from ..basics.journals import (
    ARCHIVE_BEGIN,
    ARCHIVE_VERIFIED,
    DONE_SUFFIX,
    JOURNALS,
    LEGACY_JOURNAL,
    REMOVED,
    REMOVING,
    RUN_END,
    RUN_START,
    JournalProblems,
    journal_files,
    open_state_folder,
    read_records,
)
from ..basics.paths import inside
from .journal import Journal, mark_done
from .manifest import MANIFEST_SUFFIX, RUN_ID, load_run_info, our_archive_name


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

    * a batch it began and did not end: the files of it that are gone were removed by that run, and are
      recorded so (in this run's journal, as recovering it);
    * an archive it began and did not verify: the half-written archive and manifest are removed; an archive
      without its manifest (the commit marker), or a manifest without its archive, is removed too - each only
      under the names the tool gives them, in the run folder it made;
    * an archive it verified into ``archive_dir``: offered for reuse (the caller re-verifies it first).

    Its journal is then marked finished. Lines that are malformed or not sealed are skipped and named in
    ``Recovery.problems``.
    """
    recovery = Recovery()
    unfinished = [path for path in journal_files(journal.state_dir) if path != journal.path]
    legacy = os.path.join(journal.state_dir, LEGACY_JOURNAL)
    for path in ([legacy] if os.path.lexists(legacy) else []) + unfinished:
        problems = JournalProblems()
        by_run: dict[str, list[dict[str, Any]]] = {}
        for record in read_records(path, problems):  # the single journal of earlier versions holds many runs
            by_run.setdefault(record["run"], []).append(record)
        recovery.problems += problems.lines
        for records in by_run.values():
            _recover_run(records, journal, archive_dir, recovery)
        if path == legacy:
            _retire_legacy(journal.state_dir)
        else:
            mark_done(path)
    return recovery


def _retire_legacy(state_dir: str) -> None:
    """Move the single journal of earlier versions beside the per-run ones, finished (it was read)."""
    try:
        folder = open_state_folder(state_dir, create=False)
    except CleanupError:
        return
    try:
        os.rename(LEGACY_JOURNAL, f"{JOURNALS}/0-legacy-{int(time.time())}{DONE_SUFFIX}", src_dir_fd=folder,
                  dst_dir_fd=folder)
    except OSError:
        pass
    finally:
        os.close(folder)


def _recover_run(records: list[dict[str, Any]], journal: Journal, archive_dir: str | None, recovery: Recovery) -> None:
    run = records[0]["run"]
    ended = [record for record in records if record["event"] == RUN_END]
    finished = any(not record.get("interrupted") for record in ended)
    start = next((record for record in records if record["event"] == RUN_START), {})
    roots = [root for root in start.get("roots", []) if isinstance(root, str)] if isinstance(start.get("roots"), list) else []
    open_batches: dict[Any, tuple[str | None, list[tuple[str, int]]]] = {}
    sizes: dict[str, int] = {}
    removed_files = removed_bytes = 0
    begun: dict[str, dict[str, Any]] = {}
    verified: dict[str, dict[str, Any]] = {}
    for record in records:
        event = record["event"]
        if event == REMOVING:
            files = _batch_files(record)
            open_batches[record.get("batch")] = (record.get("archive"), files)
            sizes.update(files)
        elif event == REMOVED:
            named = open_batches.pop(record.get("batch"), (None, []))[1]
            done = [path for path, _ in named] if record.get("removed") == "all" else record.get("removed")
            if isinstance(done, list):
                removed_files += len(done)
                removed_bytes += sum(sizes.get(path, 0) for path in done if isinstance(path, str))
        elif event == ARCHIVE_BEGIN:
            begun[record["archive"]] = record
        elif event == ARCHIVE_VERIFIED:
            verified[record["archive"]] = record
    for batch, (archive, files) in open_batches.items():
        gone = [path for path, _ in files if any(inside(path, root) for root in roots) and not os.path.lexists(path)]
        journal.batch_end(batch if isinstance(batch, int) else 0, gone, [], [], archive, recovers=run)
        recovery.recovered_files += len(gone)
        removed_files += len(gone)
        removed_bytes += sum(sizes.get(path, 0) for path in gone)
    run_folder = _own_run_folder(start, run)
    for archive, record in begun.items():
        if archive in verified or run_folder is None or not _leftover_names_are_ours(record, run_folder):
            continue
        for leftover in (record["temporary"], record["manifest"] + ".tmp", record["manifest"], archive):
            if _remove_leftover(leftover, archive_of=record["manifest"] if leftover == archive else None):
                journal.recovered(leftover, "half-written archive of an interrupted run")
    same_folder = archive_dir is not None and isinstance(start.get("archive_dir"), str) and \
        os.path.realpath(start["archive_dir"]) == os.path.realpath(archive_dir)
    for archive, record in verified.items():
        if run_folder is None or not _leftover_names_are_ours(record, run_folder):
            continue
        has_archive, has_manifest = os.path.lexists(archive), os.path.lexists(record["manifest"])
        if has_archive != has_manifest:  # one without its partner: never a usable archive
            orphan = archive if has_archive else record["manifest"]
            if _remove_leftover(orphan):
                journal.recovered(orphan, "archive or manifest without its partner")
        elif has_archive and same_folder and not finished:
            length, sha = record.get("stream_length"), record.get("stream_sha256")
            stream = (length, sha) if isinstance(length, int) and isinstance(sha, str) else None
            recovery.reusable.append(ReusableArchive(archive, record["manifest"], stream))
    if not ended and start:
        times = [record["time"] for record in records if isinstance(record.get("time"), (int, float))]
        rules = start.get("rules")
        rules = rules if isinstance(rules, list) else []
        recovery.cut_short.append(CutShortRun(
            run, str(start.get("mode", "")), str(start.get("dataset", "")), [str(rule) for rule in rules],
            min(times, default=0.0), max(times, default=0.0), removed_files, removed_bytes))


def _batch_files(record: dict[str, Any]) -> list[tuple[str, int]]:
    """The (path, size) pairs a "removing" record names (lists of [path, size, category])."""
    found = []
    files = record.get("files")
    for item in files if isinstance(files, list) else []:
        if isinstance(item, list) and item and isinstance(item[0], str):
            size = item[1] if len(item) > 1 and isinstance(item[1], int) and not isinstance(item[1], bool) else 0
            found.append((item[0], max(size, 0)))
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


def _remove_leftover(path: str, archive_of: str | None = None) -> bool:
    """Remove a leftover file or folder (a half-written tree archive is a folder), never through a symlink. An
    archive under its final name is removed only when its manifest is missing (``archive_of`` names it)."""
    if not os.path.lexists(path):
        return False
    if archive_of is not None and os.path.lexists(archive_of):
        return False  # archive and manifest both there: complete, not a leftover
    try:
        remove_path(path)
    except OSError:
        return False
    return not os.path.lexists(path)
