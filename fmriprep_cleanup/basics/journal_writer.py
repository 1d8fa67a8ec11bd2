"""The journal: the one record of what a run does, written before each action (basics/journals.py reads it
back, act/recovery.py acts on it after a crash). What is written is about files and archives, nothing of fMRIPrep:
the acting layer (act/) writes it, through this module alone.

A journal is JSON lines, each fsynced before the next action starts, each sealed (basics/seal.py) with this
user's key and bound to its state folder, and chained: each line carries its sequence number (``seq``) and the
seal of the line before (``prev``), both under its own seal, so lines cannot be dropped, reordered or spliced in
from another journal unseen. The run's start and end are also recorded in the user's own state
(basics/ownstate.py): recovery acts only on a run recorded there as started and not ended. Executors call this module's methods; the event names are defined in
basics/journals.py, beside the reader. A run never reads the journals of finished runs in full (only their
first line, to know which working directories they acted on), so the cost of a run does not grow with the
history of the dataset.

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
import os
import threading
import time
import uuid
from typing import Any

from .errors import CleanupError
from .formats import strict_json
from .handles import open_child
from .journals import (
    ARCHIVE_BEGIN,
    ARCHIVE_FAILED,
    ARCHIVE_REUSED,
    ARCHIVE_VERIFIED,
    DONE_SUFFIX,
    JOURNALS,
    OPEN_SUFFIX,
    RECOVERED,
    REMOVED,
    REMOVED_DIRS,
    REMOVING,
    REWRITE_BEGIN,
    REWRITE_DONE,
    REWRITE_FAILED,
    RUN_END,
    RUN_START,
    SKIPPED,
    journal_folder,
    open_state_folder,
    seal_context,
)
from .ownstate import record_end, record_start
from .seal import seal_json, user_key

KEEP_FINISHED = 50  # finished runs' journals kept for people to read; older ones are deleted


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
        self._sequence, self._previous = 0, ""  # the chain: the next line's number, the last line's seal
        user_key(create=True)  # no key, no journal: found out before anything changes
        record_start(self.run_id, state_dir, os.path.basename(self.path))  # before the journal exists
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
        try:
            with self._lock:
                if self._fd is None:
                    raise OSError(errno.EBADF, "the journal is closed")
                record = {"time": round(time.time(), 3), "run": self.run_id, "event": event, **fields,
                          "seq": self._sequence, "prev": self._previous}
                text = seal_json(strict_json(record), self.context)
                line = (text + "\n").encode("utf-8", "surrogateescape")
                written = os.write(self._fd, line)
                while written < len(line):  # a short write: finish the line before anything else
                    written += os.write(self._fd, line[written:])
                os.fsync(self._fd)  # also flushes the lines other threads wrote before it
                self._sequence += 1
                self._previous = text[text.rindex('"seal": "') + 9:-2]
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

    def rewrite_begin(self, archive: str, temporary: str, members: list[str]) -> None:
        """A zip or tar file about to be written anew at ``temporary`` without ``members``."""
        self._write(REWRITE_BEGIN, archive=archive, temporary=temporary, members=members)

    def rewrite_done(self, archive: str, members: list[str], freed: int) -> None:
        self._write(REWRITE_DONE, archive=archive, members=members, freed=freed)

    def rewrite_failed(self, archive: str, error: str) -> None:
        self._write(REWRITE_FAILED, archive=archive, error=error)

    def skipped(self, path: str, reason: str) -> None:
        self._write(SKIPPED, path=path, reason=reason)

    def recovered(self, removed: str, reason: str) -> None:
        self._write(RECOVERED, removed=removed, reason=reason)

    def regeneration(self, subject: str, command: list[str], script: str) -> None:
        """The command that rebuilds a subject's regenerable outputs, written before any of them goes."""
        self._write("regeneration", subject=subject, command=command, script=script)

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
        record_end(self.run_id)
        self.path = self.path[: -len(OPEN_SUFFIX)] + DONE_SUFFIX
        _prune_finished(self.state_dir)


def mark_done(path: str) -> None:
    """Rename a journal to its finished name, inside its folder opened without following a symlink."""
    folder = journal_folder(os.path.dirname(os.path.dirname(path)))
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
    folder = journal_folder(state_dir)
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


