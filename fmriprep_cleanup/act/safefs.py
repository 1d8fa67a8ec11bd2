"""Safe file-system primitives for acting on other people's data: folders opened one component at a time
without following symlinks, a re-check of each file right before it is touched, durable writes.

Every action (unlink, rmdir, open for archiving, create for restoring) goes through a folder handle that was
opened from ``/`` down, component by component, with ``O_NOFOLLOW``: a folder replaced by a symlink anywhere
on the way - below the dataset root or above it - makes the open fail instead of sending us elsewhere.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from typing import Protocol

from ..basics.errors import CleanupError
from ..basics.handles import FOLDER_FLAGS, open_folder_nofollow
from ..basics.paths import below, inside
from ..fmriprep.layout import ScanRoot
from ..plan.rows import PlannedFile

SKIP_CHANGED = "changed since the scan"
SKIP_VANISHED = "vanished since the scan"
SKIP_PATH_CHANGED = "a folder on its path was replaced (by a symlink?) since the scan"
SKIP_NOT_FMRIPREP = "not fMRIPrep's: outside what fMRIPrep creates in its working directory (never touched)"
SKIP_IMMUTABLE = "immutable or append-only (chattr +i/+a), or its folder is: it cannot be removed, so it is not archived"
SKIP_READ_ONLY_FOLDER = "its folder cannot be written: it could not be removed, so it is not archived"
FS_IOC_GETFLAGS = 0x80086601  # Linux: a file's attributes (lsattr)
FS_IMMUTABLE_FL, FS_APPEND_FL = 0x10, 0x20


def error_reason(exc: OSError) -> str:
    """An OS error as a reason people and scripts can group by: "ENOSPC: No space left on device"."""
    code = errno.errorcode.get(exc.errno or 0, "error")
    return f"{code}: {exc.strerror or exc}"


def fsync_path(path: str) -> None:
    fd = os.open(path, FOLDER_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_cache(fd: int) -> None:
    """Ask the kernel to forget a file's cached pages (after fsync), so reading it back reads the disk."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # not every file system supports it: then the check reads what the kernel holds


def attributes(fd: int) -> int:
    """A file's or folder's Linux attribute flags (lsattr); 0 where the file system has none."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    except OSError:
        return 0


def cannot_remove(folder: int, file_fd: int | None) -> str | None:
    """Why a file in the folder handle ``folder`` (opened as ``file_fd``, None for a link) could not be unlinked,
    found before it is archived - an archive of a file that stays would be made again by every run; None if it
    can be."""
    stuck = FS_IMMUTABLE_FL | FS_APPEND_FL
    if attributes(folder) & stuck or (file_fd is not None and attributes(file_fd) & stuck):
        return SKIP_IMMUTABLE
    if not os.access(".", os.W_OK | os.X_OK, dir_fd=folder, effective_ids=os.access in os.supports_effective_ids):
        return SKIP_READ_ONLY_FOLDER
    return None


class Seen(Protocol):
    """What the scan saw of a file (a PlannedFile), to be compared right before acting on it."""

    @property
    def path(self) -> str: ...
    @property
    def dev(self) -> int: ...
    @property
    def ino(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime(self) -> float: ...
    @property
    def ctime(self) -> float: ...
    @property
    def nlink(self) -> int: ...


class SafeFolders:
    """Folder handles opened component by component with O_NOFOLLOW.

    Acting through these handles (unlink(name, dir_fd=...)) means a folder replaced by a symlink after the scan
    makes the open fail instead of sending us outside the dataset. The handles of the current folder's
    ancestors stay open, so moving to a sibling or a child folder (files come folder by folder, depth first)
    opens only the components that differ; each is opened relative to its already checked parent, and a root
    is opened from ``/`` down.
    """

    def __init__(self, roots: list[ScanRoot]) -> None:
        self.scan_roots = sorted(roots, key=lambda root: len(root.path), reverse=True)
        self.roots = [root.path for root in self.scan_roots]
        self._chain: list[tuple[str, int]] = []  # (path, handle) from a root down to the current folder

    def scan_root_of(self, path: str) -> ScanRoot:
        for root in self.scan_roots:
            if below(path, root.path):
                return root
        raise CleanupError(f"internal safety check: {path} is outside the dataset's roots")

    def root_of(self, path: str) -> str:
        return self.scan_root_of(path).path

    def owns(self, path: str) -> bool:
        """Whether fMRIPrep wrote ``path``: nothing in -w outside fMRIPrep's own folders is ever acted on."""
        root = self.scan_root_of(path)
        return root.owns(path[len(root.path) + 1:])

    def open_folder(self, folder: str) -> int:
        if self._chain and self._chain[-1][0] == folder:
            return self._chain[-1][1]  # the usual case: the next file of the same folder
        root = folder if folder in self.roots else self.root_of(folder)
        keep = 0  # how much of the open chain leads to ``folder``
        for index, (path, _) in enumerate(self._chain):
            if index == 0 and path != root:
                break
            if inside(folder, path):
                keep = index + 1
            else:
                break
        self._truncate(keep)
        if not self._chain:
            self._chain.append((root, open_folder_nofollow(root)))
        current, fd = self._chain[-1]
        rest = folder[len(current) + 1:] if folder != current else ""
        for part in rest.split("/") if rest else ():
            fd = os.open(part, FOLDER_FLAGS, dir_fd=fd)
            current = f"{current}/{part}"
            self._chain.append((current, fd))
        return fd

    def _truncate(self, length: int) -> None:
        while len(self._chain) > length:
            os.close(self._chain.pop()[1])

    def close(self) -> None:
        self._truncate(0)

    def __enter__(self) -> SafeFolders:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()


def same_file(st: os.stat_result, seen: Seen, links_gone: int = 0) -> bool:
    """Still the file the scan saw: same device, inode, size, mtime and ctime (a file rewritten in place with
    its mtime put back still has a new ctime, which no one can set). ``links_gone``: links of this very file
    the run itself removed since - each changed its ctime; then the link count must be down by exactly that."""
    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime) != (seen.dev, seen.ino, seen.size, seen.mtime):
        return False
    if links_gone:
        return st.st_nlink == seen.nlink - links_gone
    return st.st_ctime == seen.ctime


def recheck(folders: SafeFolders, seen: Seen, links_gone: int = 0) -> tuple[int, str, os.stat_result] | str:
    """(folder handle, name, its lstat) if the file is still what the scan saw, else the reason to skip it
    (``links_gone``: links of the same file this run removed since the scan)."""
    if not folders.owns(seen.path):
        return SKIP_NOT_FMRIPREP
    folder, name = os.path.split(seen.path)
    try:
        fd = folders.open_folder(folder)
    except FileNotFoundError:
        return SKIP_VANISHED
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return SKIP_PATH_CHANGED
        raise
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return SKIP_VANISHED
    if stat.S_ISDIR(st.st_mode) or not same_file(st, seen, links_gone):
        return SKIP_CHANGED
    return fd, name, st


def refuse_unsafe_roots(roots: list[str]) -> None:
    """Never act on /, the home directory or a folder above it."""
    home = os.path.realpath(os.path.expanduser("~"))
    for root in roots:
        if root == "/" or inside(home, root):
            raise CleanupError(f"refusing to act on {root}: it is / or your home directory (or holds it)")


CHANGED = "changed since the scan (no longer the same annexed link)"


def still_the_link(planned: PlannedFile) -> str | None:
    """None if ``planned`` is still the annexed link (or unlocked file) the scan saw (same inode, times), else
    why not."""
    try:
        st = os.lstat(planned.path)
    except FileNotFoundError:
        return "vanished since the scan"
    except OSError as exc:
        return f"cannot stat it: {exc.strerror or exc}"
    same = ((stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode)) and st.st_dev == planned.dev
            and st.st_ino == planned.ino
            and st.st_mtime == planned.mtime and (not planned.ctime or st.st_ctime == planned.ctime))
    return None if same else CHANGED
