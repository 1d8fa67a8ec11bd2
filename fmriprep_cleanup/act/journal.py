"""The journal: the one record of what a run does, its lock, and all recovery after a crash.

Layout of a state directory (by default ``<derivatives>/.fmriprep-cleanup/``)::

    lock                             an OS lock (fcntl), so runs on one dataset never overlap
    journal/<run id>.jsonl           a run's journal while it runs, or after it was cut short
    journal/<run id>.done.jsonl      a finished (or recovered) run's journal; the newest KEEP_FINISHED stay

A journal is JSON lines, each fsynced before the next action starts. The event names below are written and
read in this module only; executors call its methods. A run never reads the journals of finished runs in
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
import fcntl
import json
import os
import socket
import stat
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ..basics.errors import CleanupError
from ..basics.formats import strict_json

LOCK_NAME = "lock"
SUBJECTS_LOCK_NAME = "subjects.lock"  # a byte per subject, locked by the shard acting on it
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


class LockedError(CleanupError):
    """Another run holds the dataset's lock."""


class RunLock:
    """OS-level locks (fcntl) in the state directory, released when the process ends, even by SIGKILL.

    A run takes ``STATE_DIR/lock`` exclusively. A shard of a job array (``subjects``: its subjects) shares that
    lock with its sibling shards, so no whole run can start while any shard works, and locks its own subjects,
    each a byte of ``STATE_DIR/subjects.lock``: two shards never act on the same subject, so a second array on
    the same dataset is refused as soon as one of its shards meets a subject another array's shard holds.
    """

    def __init__(self, state_dir: str, subjects: Iterable[str] | None = None) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, LOCK_NAME)
        self.subjects = sorted(subjects) if subjects is not None else None
        self._fds: list[int] = []

    def __enter__(self) -> RunLock:
        fd = self._open(self.path)
        shared = self.subjects is not None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(
                    f"another fmriprep-cleanup run is working on this dataset{_read_holder(self.path)} "
                    f"(lock {self.path}); try again when it has finished") from None
            raise CleanupError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        self._fds.append(fd)
        if not shared:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return self
        try:
            self._lock_subjects()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open(self, path: str) -> int:
        try:
            os.makedirs(self.state_dir, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CleanupError(f"cannot create the lock {path}: {exc.strerror or exc}") from None

    def _lock_subjects(self) -> None:
        path = os.path.join(self.state_dir, SUBJECTS_LOCK_NAME)
        fd = self._open(path)
        self._fds.append(fd)
        for label in self.subjects or ():
            try:  # a byte per subject, at its label's CRC-32: a collision refuses too much, never too little
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, zlib.crc32(label.encode()))
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockedError(
                        f"another fmriprep-cleanup shard is working on sub-{label} of this dataset (another array "
                        f"on it? lock {path}); try again when it has finished") from None
                raise CleanupError(f"cannot lock {path}: {exc.strerror or exc}") from None

    def __exit__(self, *exc_info: object) -> None:
        for fd in reversed(self._fds):
            os.close(fd)  # closing releases flock and lockf locks alike
        self._fds.clear()


def _read_holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            pid, _, host = handle.read(200).strip().partition(" ")
        return f" (pid {pid} on {host})" if pid else ""
    except OSError:
        return ""


class Journal:
    """One run's journal: append-only JSON lines, every record on disk before the next action starts.

    Each record is one ``write`` of one line; threads acting on different subtrees share the journal and their
    lines never interleave. Each batch of files has its own number, so recovery can tell concurrent batches
    apart. A write that fails (the disk is full) raises CleanupError: the executor stops before acting further.
    """

    def __init__(self, state_dir: str, run_id: str | None = None) -> None:
        self.state_dir = state_dir
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S") + "_" + uuid.uuid4().hex[:8]
        folder = os.path.join(state_dir, JOURNALS)
        self.path = os.path.join(folder, self.run_id + OPEN_SUFFIX)
        self._lock = threading.Lock()
        self._batches = 0
        try:
            os.makedirs(folder, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CleanupError(f"cannot open the journal {self.path}: {exc.strerror or exc}") from None

    # --- writing ---

    def _write(self, event: str, **fields: Any) -> None:
        record = {"time": round(time.time(), 3), "run": self.run_id, "event": event, **fields}
        line = (strict_json(record) + "\n").encode("utf-8", "surrogateescape")
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
        _mark_done(self.path)
        self.path = self.path[: -len(OPEN_SUFFIX)] + DONE_SUFFIX
        _prune_finished(os.path.dirname(self.path))


def _mark_done(path: str) -> None:
    done = path[: -len(OPEN_SUFFIX)] + DONE_SUFFIX
    try:
        os.rename(path, done)
        fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # it stays open-looking: the next run reads it again, finds it complete, and marks it then


def _prune_finished(folder: str) -> None:
    finished = sorted(name for name in os.listdir(folder) if name.endswith(DONE_SUFFIX))
    for name in finished[:-KEEP_FINISHED]:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


# --- reading -----------------------------------------------------------------------------------------------

@dataclass
class JournalProblems:
    """Lines of a journal that are not well-formed records: skipped, and said (file:line: why)."""

    lines: list[str] = field(default_factory=list)


# The fields each event must have (and their types) for recovery to use it; others are informational.
REQUIRED_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    REMOVING: {"batch": int, "files": list},
    REMOVED: {"batch": int, "removed": (list, str)},
    ARCHIVE_BEGIN: {"archive": str, "temporary": str, "manifest": str},
    ARCHIVE_VERIFIED: {"archive": str, "manifest": str},
}
MAX_LINE = 64 << 20  # a journal line longer than this is not one we wrote


def _well_formed(record: Any) -> TypeGuard[dict[str, Any]]:
    """A dict with the run, the event and the fields its event needs, each of its kind."""
    if not isinstance(record, dict) or not isinstance(record.get("event"), str) or not isinstance(record.get("run"), str):
        return False
    required = REQUIRED_FIELDS.get(record["event"], {})
    return all(isinstance(record.get(name), kind) and not isinstance(record.get(name), bool)
               for name, kind in required.items())


def read_records(path: str, problems: JournalProblems | None = None) -> Iterator[dict[str, Any]]:
    """The well-formed records of one journal file. A line cut short by a crash, or any line that is not a JSON
    object with a run, an event and the fields that event needs, is skipped (and named in ``problems`` with its
    line number), never trusted. The file must be a regular file, opened without following a symlink."""
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
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as handle:
        number = 0
        while True:
            line = handle.readline(MAX_LINE)
            if not line:
                return
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
            yield record


def journal_files(state_dir: str, finished: bool = False) -> list[str]:
    """The journals of a state directory, oldest first: unfinished ones, or with ``finished`` all of them."""
    folder = os.path.join(state_dir, JOURNALS)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    wanted = [name for name in names if name.endswith(OPEN_SUFFIX)
              and (finished or not name.endswith(DONE_SUFFIX))]
    return [os.path.join(folder, name) for name in sorted(wanted)]


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


# --- recovery ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReusableArchive:
    """A verified archive that an interrupted run wrote into the same archive folder: after re-verifying it,
    the run that finishes the job may remove the originals it holds instead of archiving them again."""

    archive: str
    manifest: str
    stream: tuple[int, str] | None  # the tar stream's (length, sha256); None for a tree archive


@dataclass
class Recovery:
    reusable: list[ReusableArchive] = field(default_factory=list)
    recovered_files: int = 0
    problems: list[str] = field(default_factory=list)  # malformed journal lines that were skipped


def recover(journal: Journal, archive_dir: str | None = None) -> Recovery:
    """Finish the record of every run of this state directory that was cut short, and tidy what it left.

    * a batch it began and did not end: the files of it that are gone were removed by that run, and are
      recorded so (in this run's journal, as recovering it);
    * an archive it began and did not verify: the half-written archive and manifest are removed; an archive
      without its manifest (the commit marker), or a manifest without its archive, is removed too;
    * an archive it verified into ``archive_dir``: offered for reuse (the caller re-verifies it first).

    Its journal is then marked finished. Malformed lines are skipped and named in ``Recovery.problems``.
    """
    recovery = Recovery()
    unfinished = [path for path in journal_files(journal.state_dir) if path != journal.path]
    legacy = os.path.join(journal.state_dir, LEGACY_JOURNAL)
    for path in ([legacy] if os.path.exists(legacy) else []) + unfinished:
        problems = JournalProblems()
        by_run: dict[str, list[dict[str, Any]]] = {}
        for record in read_records(path, problems):  # the single journal of earlier versions holds many runs
            by_run.setdefault(record["run"], []).append(record)
        recovery.problems += problems.lines
        for records in by_run.values():
            _recover_run(records, journal, archive_dir, recovery)
        if path == legacy:
            _retire_legacy(legacy)
        else:
            _mark_done(path)
    return recovery


def _retire_legacy(path: str) -> None:
    """Move the single journal of earlier versions beside the per-run ones, finished (it is recovered)."""
    try:
        os.rename(path, os.path.join(os.path.dirname(path), JOURNALS, f"0-legacy-{int(time.time())}{DONE_SUFFIX}"))
    except OSError:
        pass


def _recover_run(records: list[dict[str, Any]], journal: Journal, archive_dir: str | None, recovery: Recovery) -> None:
    run = records[0]["run"] if records else None
    finished = any(record["event"] == RUN_END and not record.get("interrupted") for record in records)
    start = next((record for record in records if record["event"] == RUN_START), {})
    open_batches: dict[Any, tuple[str | None, list[str]]] = {}
    begun: dict[str, dict[str, Any]] = {}
    verified: dict[str, dict[str, Any]] = {}
    for record in records:
        event = record["event"]
        if event == REMOVING:
            open_batches[record.get("batch")] = (record.get("archive"), _batch_paths(record))
        elif event == REMOVED:
            open_batches.pop(record.get("batch"), None)
        elif event == ARCHIVE_BEGIN and _strings(record, "archive", "temporary", "manifest"):
            begun[record["archive"]] = record
        elif event == ARCHIVE_VERIFIED and _strings(record, "archive", "manifest"):
            verified[record["archive"]] = record
    for batch, (archive, files) in open_batches.items():
        gone = [path for path in files if not os.path.lexists(path)]
        journal.batch_end(batch if isinstance(batch, int) else 0, gone, [], [], archive, recovers=run)
        recovery.recovered_files += len(gone)
    for archive, record in begun.items():
        if archive in verified:
            continue
        for leftover in (record["temporary"], record["manifest"] + ".tmp", record["manifest"], archive):
            if _remove_leftover(leftover, archive_of=record["manifest"] if leftover == archive else None):
                journal.recovered(leftover, "half-written archive of an interrupted run")
    same_folder = archive_dir is not None and isinstance(start.get("archive_dir"), str) and \
        os.path.realpath(start["archive_dir"]) == os.path.realpath(archive_dir)
    for archive, record in verified.items():
        has_archive, has_manifest = os.path.lexists(archive), os.path.lexists(record["manifest"])
        if has_archive != has_manifest:  # one without its partner: never a usable archive
            orphan = archive if has_archive else record["manifest"]
            if _remove_leftover(orphan):
                journal.recovered(orphan, "archive or manifest without its partner")
        elif has_archive and same_folder and not finished:
            length, sha = record.get("stream_length"), record.get("stream_sha256")
            stream = (length, sha) if isinstance(length, int) and isinstance(sha, str) else None
            recovery.reusable.append(ReusableArchive(archive, record["manifest"], stream))


def _strings(record: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(record.get(key), str) and record[key] for key in keys)


def _remove_leftover(path: str, archive_of: str | None = None) -> bool:
    """Remove a leftover file or folder (a half-written tree archive is a folder). An archive under its final
    name is removed only when its manifest is missing (``archive_of`` names that manifest)."""
    if not os.path.lexists(path):
        return False
    if archive_of is not None and os.path.lexists(archive_of):
        return False  # archive and manifest both there: complete, not a leftover
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            return False
    return not os.path.lexists(path)
