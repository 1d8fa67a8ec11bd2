"""Locks: one per dataset, whatever state folder a run keeps its journal in, and one per archive folder.

A run that changes a dataset (clean, restore) locks the dataset's own folder (its identity: the derivatives, or a
lone working directory) with flock, so two runs never overlap even when they were given different
``--state-dir``s; it also locks ``STATE_DIR/lock``, where the holder's pid and host are written for the message
a second run prints. Locks are the kernel's: they go when the process ends, even by SIGKILL.

The state folder is opened one component at a time without following a symlink: a group member who replaces
``.fmriprep-cleanup`` with a symlink makes the run stop, never write where the link points.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import socket
import zlib
from collections.abc import Callable, Iterable

from ..basics.errors import CleanupError
from ..basics.handles import FOLDER_FLAGS
from ..basics.journals import open_state_folder

LOCK_NAME = "lock"
SUBJECTS_LOCK_NAME = "subjects.lock"  # a byte per subject, locked by the shard acting on it
BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
# flock on a folder is not supported everywhere (NFS emulates it with byte-range locks, which need a file open
# for writing): there the state folder's lock file is the only lock.
UNSUPPORTED = (errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP)


class LockedError(CleanupError):
    """Another run holds the dataset's lock."""


def open_lock_file(folder_fd: int, name: str, shown: str) -> int:
    try:
        return os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder_fd)
    except OSError as exc:
        raise CleanupError(f"cannot create the lock {shown}: {exc.strerror or exc}") from None


def lock_folder(path: str, shared: bool, what: str) -> int | None:
    """flock the folder ``path`` itself (shared or exclusive, never waiting); its handle, to close when done.
    None where the file system cannot lock folders. LockedError when another run holds it."""
    try:
        fd = os.open(path, FOLDER_FLAGS)
    except OSError as exc:
        raise CleanupError(f"cannot open {path} to lock it: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in BUSY:
            raise LockedError(f"another fmriprep-cleanup run is working on {what} (lock on {path}); try again when "
                              "it has finished") from None
        if exc.errno in UNSUPPORTED:
            return None
        raise CleanupError(f"cannot lock {path}: {exc.strerror or exc}") from None
    return fd


class RunLock:
    """The locks of a run that changes a dataset.

    ``dataset``: the dataset's identity folder, locked itself (exclusively, or shared by the shards of one job
    array). ``state_dir``: its ``lock`` file is locked too and names the holder. A shard (``subjects``: its
    subjects) shares both with its sibling shards and locks its own subjects, each a byte of
    ``STATE_DIR/subjects.lock``: two shards never act on the same subject, so a second array on the same
    dataset is refused as soon as one of its shards meets a subject another array's shard holds.
    """

    def __init__(self, state_dir: str | None, subjects: Iterable[str] | None = None, dataset: str | None = None) -> None:
        self.state_dir = state_dir
        self.dataset = dataset
        self.path = os.path.join(state_dir, LOCK_NAME) if state_dir else dataset or ""
        self.subjects = sorted(subjects) if subjects is not None else None
        self._fds: list[int] = []

    def __enter__(self) -> RunLock:
        shared = self.subjects is not None
        try:
            if self.dataset is not None:
                held = lock_folder(self.dataset, shared, "this dataset")
                if held is not None:
                    self._fds.append(held)
            if self.state_dir is not None:
                self._lock_state_folder(shared)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _lock_state_folder(self, shared: bool) -> None:
        assert self.state_dir is not None
        folder = open_state_folder(self.state_dir)
        try:
            fd = open_lock_file(folder, LOCK_NAME, self.path)
            self._fds.append(fd)
            _take(functools.partial(fcntl.flock, fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB),
                  self.path, f"another fmriprep-cleanup run is working on this dataset{{holder}} (lock {self.path})",
                  fd)
            if shared:
                self._lock_subjects(folder)
            else:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        finally:
            os.close(folder)

    def _lock_subjects(self, folder: int) -> None:
        assert self.state_dir is not None
        path = os.path.join(self.state_dir, SUBJECTS_LOCK_NAME)
        fd = open_lock_file(folder, SUBJECTS_LOCK_NAME, path)
        self._fds.append(fd)
        for label in self.subjects or ():
            # a byte per subject, at its label's CRC-32: a collision refuses too much, never too little
            offset = zlib.crc32(label.encode())
            busy = (f"another fmriprep-cleanup shard is working on sub-{label} of this dataset (another array on "
                    f"it? lock {path})")
            _take(functools.partial(fcntl.lockf, fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset), path, busy)

    def __exit__(self, *_exc_info: object) -> None:
        for fd in reversed(self._fds):
            os.close(fd)  # closing releases flock and lockf locks alike
        self._fds.clear()


def _take(lock: Callable[[], object], path: str, busy: str, holder_fd: int | None = None) -> None:
    """Take a lock without waiting; LockedError saying ``busy`` if another process holds it (``{holder}`` in it
    becomes who, as the holder wrote it into ``holder_fd``)."""
    try:
        lock()
    except OSError as exc:
        if exc.errno in BUSY:
            holder = _holder(holder_fd) if holder_fd is not None else ""
            raise LockedError(f"{busy.replace('{holder}', holder)}; try again when it has finished") from None
        raise CleanupError(f"cannot lock {path}: {exc.strerror or exc}") from None


def _holder(fd: int) -> str:
    """ " (pid N on HOST)" from a lock file's content, as its holder wrote it."""
    try:
        pid, _, host = os.pread(fd, 200, 0).decode("utf-8", "replace").strip().partition(" ")
    except OSError:
        return ""
    return f" (pid {pid} on {host})" if pid.isdigit() else ""


class FolderLock:
    """A lock on one folder (an archive folder: clean writes into it shared, prune removes from it exclusively)."""

    def __init__(self, path: str, shared: bool, what: str) -> None:
        self.path, self.shared, self.what = path, shared, what
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self._fd = lock_folder(self.path, self.shared, self.what)
        return self

    def __exit__(self, *_exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

