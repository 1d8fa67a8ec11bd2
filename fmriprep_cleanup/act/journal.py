"""The journal: the one record of what a run does, written and read back (recovery.py acts on it).

Layout of a state directory (by default ``<derivatives>/.fmriprep-cleanup/``)::

    lock                             an OS lock (fcntl), so runs on one dataset never overlap (lock.py)
    journal/<run id>.jsonl           a run's journal while it runs, or after it was cut short
    journal/<run id>.done.jsonl      a finished (or recovered) run's journal; the newest KEEP_FINISHED stay

A journal is JSON lines, each fsynced before the next action starts, each sealed (basics/seal.py) with this
user's key and bound to its state folder: a line without a valid seal - planted by a group member, edited,
copied from another dataset, written by an earlier version - is reported and never acted on. The event names
below are written and read in this module (and recovery.py) only; executors call its methods. A run never reads the journals of finished runs in
full (only their first line, to know which working directories they acted on), so the cost of a run does
not grow with the history of the dataset.

Events:
    run-start       the run's options and roots
    removing        a batch of files about to be removed (path, size, category each)
    removed         the end of that batch: the paths removed, skipped (with reason), failed (with errno)
    archive-begin   an archive is being written under a temporary name
    archive-verified  it was written, read back and found identical; renamed into place, manifest last
    archive-failed  it could not be written or verified: its originals stay
    archive-reused  a verified archive of this run's own interrupted predecessor, re-verified, serves again
    skipped         one file skipped while archiving, with the reason
    removed-dirs    folders the run emptied and removed
    recovered       a leftover of an interrupted run was tidied (half-written archive, orphaned manifest)
    run-end         the run's totals (``interrupted`` when stopped by Ctrl-C or SIGTERM)
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ..basics.errors import CleanupError
from ..basics.formats import strict_json
from ..basics.seal import check_json, seal_json, user_key
from .lock import open_state_folder
from .safefs import FOLDER_FLAGS, open_child

JOURNALS = "journal"
LEGACY_JOURNAL = "journal.jsonl"  # earlier versions kept every run in this one file
OPEN_SUFFIX = ".jsonl"
DONE_SUFFIX = ".done.jsonl"
KEEP_FINISHED = 50  # finished runs' journals kept for people to read; older ones are deleted

RUN_START, RUN_END = "run-start", "run-end"
REMOVING, REMOVED, REMOVED_DIRS = "removing", "removed", "removed-dirs"
ARCHIVE_BEGIN, ARCHIVE_VERIFIED, ARCHIVE_FAILED, ARCHIVE_REUSED = (
    "archive-begin", "archive-verified", "archive-failed", "archive-reused")
SKIPPED, RECOVERED = "skipped", "recovered"


class Journal:
    """One run's journal: append-only JSON lines, every record on disk before the next action starts.

    Each record is one ``write`` of one line; threads acting on different subtrees share the journal and their
    lines never interleave. Each batch of files has its own number, so recovery can tell concurrent batches
    apart. A write that fails (the disk is full) raises CleanupError: the executor stops before acting further.
    """

    def __init__(self, state_dir: str, run_id: str | None = None) -> None:
        self.state_dir = state_dir
        self.context = seal_context(state_dir)
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S") + "_" + uuid.uuid4().hex[:8]
        self.path = os.path.join(state_dir, JOURNALS, self.run_id + OPEN_SUFFIX)
        self._lock = threading.Lock()
        self._batches = 0
        user_key(create=True)  # no key, no journal: found out before anything changes
        state = open_state_folder(state_dir)
        try:
            folder = open_child(state, JOURNALS, create=True, mode=0o755)
            try:
                self._fd: int | None = os.open(os.path.basename(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                               | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder)
            finally:
                os.close(folder)
        except OSError as exc:
            why = "a symlink (not followed)" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror or exc
            raise CleanupError(f"cannot open the journal {self.path}: {why}") from None
        finally:
            os.close(state)

    # --- writing ---

    def _write(self, event: str, **fields: Any) -> None:
        record = {"time": round(time.time(), 3), "run": self.run_id, "event": event, **fields}
        line = (seal_json(strict_json(record), self.context) + "\n").encode("utf-8", "surrogateescape")
        try:
            with self._lock:
                if self._fd is None:
                    raise OSError(errno.EBADF, "the journal is closed")
                written = os.write(self._fd, line)
                while written < len(line):  # a short write: finish the line before anything else
                    written += os.write(self._fd, line[written:])
                os.fsync(self._fd)  # also flushes the lines other threads wrote before it
        except OSError as exc:
            raise CleanupError(f"cannot write the journal {self.path}: {exc.strerror or exc}; "
                               "stopped before acting further") from None

    def run_start(self, **options: Any) -> None:
        self._write(RUN_START, **options)

    def batch_begin(self, files: list[tuple[str, int, str]], archive: str | None = None) -> int:
        """Name a batch of files (path, size, category) about to be removed; returns its number (unique within
        the run). Recovery needs each path; the rest is for people reading the journal."""
        with self._lock:
            self._batches += 1
            number = self._batches
        self._write(REMOVING, batch=number, archive=archive, files=[list(item) for item in files])
        return number

    def batch_end(self, batch: int, removed: list[str], skipped: list[dict[str, Any]], failed: list[dict[str, Any]],
                  archive: str | None = None, recovers: str | None = None, whole: bool = False) -> None:
        """What became of a batch: ``whole`` when every file of it was removed (written as "all", which keeps
        the journal to about one path per file), else the paths removed."""
        fields: dict[str, Any] = {"batch": batch, "archive": archive, "removed": "all" if whole else removed,
                                  "skipped": skipped, "failed": failed}
        if recovers:
            fields["recovers"] = recovers
        self._write(REMOVED, **fields)

    def removed_dirs(self, paths: list[str]) -> None:
        self._write(REMOVED_DIRS, paths=paths)

    def archive_begin(self, archive: str, temporary: str, manifest: str, files: int) -> None:
        self._write(ARCHIVE_BEGIN, archive=archive, temporary=temporary, manifest=manifest, files=files)

    def archive_verified(self, archive: str, manifest: str, files: int, nbytes: int,
                         stream: tuple[int, str] | None) -> None:
        """``stream``: the tar stream's (length, sha256), for re-verifying the archive before it is reused."""
        self._write(ARCHIVE_VERIFIED, archive=archive, manifest=manifest, files=files, bytes=nbytes,
                    stream_length=stream[0] if stream else None, stream_sha256=stream[1] if stream else None)

    def archive_failed(self, archive: str, error: str) -> None:
        self._write(ARCHIVE_FAILED, archive=archive, error=error)

    def archive_reused(self, archive: str, files: int) -> None:
        self._write(ARCHIVE_REUSED, archive=archive, files=files)

    def skipped(self, path: str, reason: str) -> None:
        self._write(SKIPPED, path=path, reason=reason)

    def recovered(self, removed: str, reason: str) -> None:
        self._write(RECOVERED, removed=removed, reason=reason)

    def run_end(self, interrupted: bool = False, **totals: Any) -> None:
        self._write(RUN_END, interrupted=interrupted, **totals)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def finish(self) -> None:
        """Close the journal and mark it finished (it ends with run-end): no later run needs to read it."""
        self.close()
        mark_done(self.path)
        self.path = self.path[: -len(OPEN_SUFFIX)] + DONE_SUFFIX
        _prune_finished(self.state_dir)


def seal_context(state_dir: str) -> str:
    """What a journal's seals bind it to: its state folder (a journal copied elsewhere does not verify)."""
    return "journal:" + os.path.abspath(state_dir)


def _journal_folder(state_dir: str) -> int | None:
    """A handle on STATE_DIR/journal, neither of them followed through a symlink; None if there is none."""
    try:
        state = open_state_folder(state_dir, create=False)
    except CleanupError:
        return None
    try:
        return os.open(JOURNALS, FOLDER_FLAGS, dir_fd=state)
    except OSError:
        return None
    finally:
        os.close(state)


def mark_done(path: str) -> None:
    """Rename a journal to its finished name, inside its folder opened without following a symlink."""
    folder = _journal_folder(os.path.dirname(os.path.dirname(path)))
    if folder is None:
        return
    name = os.path.basename(path)
    try:
        os.rename(name, name[: -len(OPEN_SUFFIX)] + DONE_SUFFIX, src_dir_fd=folder, dst_dir_fd=folder)
        os.fsync(folder)
    except OSError:
        pass  # it stays open-looking: the next run reads it again, finds it complete, and marks it then
    finally:
        os.close(folder)


def _prune_finished(state_dir: str) -> None:
    folder = _journal_folder(state_dir)
    if folder is None:
        return
    try:
        finished = sorted(name for name in os.listdir(folder) if name.endswith(DONE_SUFFIX))
        for name in finished[:-KEEP_FINISHED]:
            try:
                os.unlink(name, dir_fd=folder)
            except OSError:
                pass
    finally:
        os.close(folder)


# --- reading -----------------------------------------------------------------------------------------------

@dataclass
class JournalProblems:
    """Lines of a journal that are not well-formed, sealed records: skipped, and said (file:line: why)."""

    lines: list[str] = field(default_factory=list)


# The fields each event must have (and their types) for recovery to use it; others are informational.
REQUIRED_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    REMOVING: {"batch": int, "files": list},
    REMOVED: {"batch": int, "removed": (list, str)},
    ARCHIVE_BEGIN: {"archive": str, "temporary": str, "manifest": str},
    ARCHIVE_VERIFIED: {"archive": str, "manifest": str},
}
MAX_LINE = 64 << 20  # a journal line longer than this is not one we wrote
NOT_SEALED = "not sealed with your key"


def _well_formed(record: Any) -> TypeGuard[dict[str, Any]]:
    """A dict with the run, the event and the fields its event needs, each of its kind."""
    if not isinstance(record, dict) or not isinstance(record.get("event"), str) or not isinstance(record.get("run"), str):
        return False
    required = REQUIRED_FIELDS.get(record["event"], {})
    return all(isinstance(record.get(name), kind) and not isinstance(record.get(name), bool)
               for name, kind in required.items())


def read_records(path: str, problems: JournalProblems | None = None) -> Iterator[dict[str, Any]]:
    """The well-formed, sealed records of one journal file (STATE_DIR/journal/NAME). A line cut short by a
    crash, a line that is not a JSON object with a run, an event and the fields that event needs, and a line
    whose seal is not this user's for this state folder are skipped (and named in ``problems``), never
    trusted. The file must be a regular file, opened without following a symlink."""
    context = seal_context(os.path.dirname(os.path.dirname(path)))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        if problems is not None:
            problems.lines.append(f"{path}: cannot read the journal: {exc.strerror or exc}")
        return
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        if problems is not None:
            problems.lines.append(f"{path}: not a regular file; not read as a journal")
        return
    unsealed: list[int] = []
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as handle:
        number = 0
        while True:
            line = handle.readline(MAX_LINE)
            if not line:
                break
            number += 1
            if len(line) >= MAX_LINE and not line.endswith("\n"):
                while line and not line.endswith("\n"):  # skip the rest of an over-long line
                    line = handle.readline(MAX_LINE)
                record = None
            elif not line.strip():
                continue
            else:
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    record = None
            if not _well_formed(record):
                if problems is not None:
                    problems.lines.append(f"{path}:{number}: not a well-formed journal record; skipped")
                continue
            verdict = check_json(line.rstrip("\n"), context)
            if not verdict.trusted:
                unsealed.append(number)
                continue
            del record["seal"]
            yield record
    if unsealed and problems is not None:
        where = f"line {unsealed[0]}" if len(unsealed) == 1 else f"{len(unsealed)} lines from line {unsealed[0]}"
        problems.lines.append(f"{path}: {where} {NOT_SEALED} for this state folder (planted, edited, copied "
                              "from elsewhere, or written by another user or an earlier version): not acted on")


def journal_files(state_dir: str, finished: bool = False) -> list[str]:
    """The journals of a state directory, oldest first: unfinished ones, or with ``finished`` all of them.
    None when the state folder or its journal folder is a symlink: nobody's journal but the tool's is read."""
    folder = _journal_folder(state_dir)
    if folder is None:
        return []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    finally:
        os.close(folder)
    wanted = [name for name in names if name.endswith(OPEN_SUFFIX)
              and (finished or not name.endswith(DONE_SUFFIX))]
    return [os.path.join(state_dir, JOURNALS, name) for name in sorted(wanted)]


def needs_recovery(state_dir: str) -> bool:
    """Whether an earlier run left a journal to finish (it was cut short, or stopped by a signal)."""
    return bool(journal_files(state_dir)) or os.path.exists(os.path.join(state_dir, LEGACY_JOURNAL))


def _batch_paths(record: dict[str, Any]) -> list[str]:
    """The paths a "removing" record names (lists of [path, size, category]; dicts in earlier versions)."""
    paths = []
    files = record.get("files")
    for item in files if isinstance(files, list) else []:
        path = item[0] if isinstance(item, list) and item else item.get("path") if isinstance(item, dict) else None
        if isinstance(path, str):
            paths.append(path)
    return paths


def batches(state_dir: str) -> dict[tuple[str, Any], tuple[list[str], list[str] | None]]:
    """Every batch any run began: (run, batch) -> (the paths it named, the paths it removed; None while it has
    no end record). For people and tests checking that the record is exact."""
    found: dict[tuple[str, Any], tuple[list[str], list[str] | None]] = {}
    for path in journal_files(state_dir, finished=True):
        for record in read_records(path):
            if record["event"] == REMOVING:
                found[(record["run"], record.get("batch"))] = (_batch_paths(record), None)
            elif record["event"] == REMOVED:
                key = (record.get("recovers") or record["run"], record.get("batch"))
                named = found.get(key, ([], None))[0]
                removed = record.get("removed")
                done = named if removed == "all" else [p for p in removed if isinstance(p, str)] if isinstance(removed, list) else []
                found[key] = (named, (found.get(key, ([], None))[1] or []) + done)
    return found


def removed_paths(state_dir: str) -> list[str]:
    """Every file any run of this state directory recorded as removed (recovered removals included)."""
    paths: list[str] = []
    for path in journal_files(state_dir, finished=True):
        batches: dict[tuple[str, Any], list[str]] = {}
        for record in read_records(path):
            if record["event"] == REMOVING:
                batches[(record["run"], record.get("batch"))] = _batch_paths(record)
            elif record["event"] == REMOVED:
                removed = record.get("removed")
                if removed == "all":
                    paths += batches.get((record.get("recovers") or record["run"], record.get("batch")), [])
                elif isinstance(removed, list):
                    paths += [item for item in removed if isinstance(item, str)]
    return paths


def recorded_roots(state_dir: str) -> set[str]:
    """The folders earlier runs acted on (their run-start roots): an emptied working directory is still known.
    Reads the first record of each journal only."""
    roots: set[str] = set()
    for path in journal_files(state_dir, finished=True):
        for record in read_records(path):
            if record["event"] == RUN_START and isinstance(record.get("roots"), list):
                roots |= {root for root in record["roots"] if isinstance(root, str)}
            break
    return roots


def events(state_dir: str, name: str) -> list[dict[str, Any]]:
    """Every well-formed record called ``name`` in all journals, oldest first (for people and tests)."""
    return [record for path in journal_files(state_dir, finished=True) for record in read_records(path)
            if record["event"] == name]


