"""The state directory of a dataset: one lock, so runs never overlap, and an append-only journal.

The journal is JSON lines, flushed and fsynced one record at a time, so after a
crash it says exactly which files were removed and which archives were verified.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import socket
import threading
import time
import uuid
from typing import Any, Iterator

from .errors import CleanupError

LOCK_NAME = "lock"
JOURNAL_NAME = "journal.jsonl"


class LockedError(CleanupError):
    """Another run holds the dataset's lock."""


class RunLock:
    """An OS-level exclusive lock (fcntl) on ``STATE_DIR/lock``; released when the process ends, even by SIGKILL."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, LOCK_NAME)
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            os.makedirs(self.state_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise CleanupError(f"cannot create the lock {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _read_holder(self.path)
                raise LockedError(
                    f"another fmriprep-cleanup run is working on this dataset{holder} (lock {self.path}); "
                    "try again when it has finished"
                ) from None
            raise CleanupError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            pid, _, host = handle.read().strip().partition(" ")
        return f" (pid {pid} on {host})" if pid else ""
    except OSError:
        return ""


class RunStopped(Exception):
    """The run is stopping (Ctrl-C, or an error in another of its threads): start nothing new."""


class Journal:
    """Append-only JSON lines; every record is on disk before the next action starts.

    Each record is one ``write`` of one line. If a crash left the last line
    incomplete, a newline is added first, so the broken line stays alone (and
    is ignored) instead of swallowing the next record. Threads acting on
    different subtrees share one journal: lines never interleave, and each
    batch of files has its own number, so recovery can tell concurrent
    batches apart. Once ``stop`` is called, ``begin`` refuses new work.
    """

    def __init__(self, state_dir: str, run_id: str | None = None) -> None:
        self.path = os.path.join(state_dir, JOURNAL_NAME)
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S") + "_" + uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._batches = itertools.count(1)
        self._stopping = threading.Event()
        try:
            os.makedirs(state_dir, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            if _ends_without_newline(self.path):
                os.write(self._fd, b"\n")
        except OSError as exc:
            raise CleanupError(f"cannot open the journal {self.path}: {exc.strerror or exc}") from None

    def new_batch(self) -> int:
        """A number for a batch of files, unique within the run."""
        with self._lock:
            return next(self._batches)

    def stop(self) -> None:
        self._stopping.set()

    def begin(self, event: str, **fields: Any) -> None:
        """Record work about to start, unless the run is stopping (then RunStopped)."""
        if self._stopping.is_set():
            raise RunStopped()
        self.write(event, **fields)

    def write(self, event: str, **fields: Any) -> None:
        record = {"time": round(time.time(), 3), "run": self.run_id, "event": event, **fields}
        line = (json.dumps(record) + "\n").encode("utf-8", "surrogateescape")
        try:
            with self._lock:
                written = os.write(self._fd, line)
                while written < len(line):  # a short write: finish the line before anything else
                    written += os.write(self._fd, line[written:])
            os.fsync(self._fd)  # also flushes the lines other threads wrote before it
        except OSError as exc:
            raise CleanupError(f"cannot write the journal {self.path}: {exc.strerror or exc}; stopped before acting further") from None

    def close(self) -> None:
        os.close(self._fd)


def _ends_without_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def read_journal(state_dir: str) -> Iterator[dict[str, Any]]:
    """Every complete record; a line cut short by a crash is ignored."""
    path = os.path.join(state_dir, JOURNAL_NAME)
    try:
        handle = open(path, encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def interrupted_runs(state_dir: str) -> list[str]:
    """Runs that started but never wrote their end record (killed, power loss)."""
    started: dict[str, None] = {}
    for record in read_journal(state_dir):
        if record.get("event") == "run-start":
            started[record["run"]] = None
        elif record.get("event") == "run-end":
            started.pop(record.get("run"), None)
    return list(started)
