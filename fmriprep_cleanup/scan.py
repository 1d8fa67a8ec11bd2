"""The scanner: one walk over the dataset roots, lstat only, symlinks never followed.

It yields one ``Directory`` at a time (its files as small tuples) and keeps
nothing once the consumer has moved on, so memory stays flat however many
files there are. Order is deterministic: names sorted within each folder,
files before subfolders, depth first.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

from .discover import ScanRoot

MAX_WARNINGS = 100  # past this only the count grows: a broken mount must not flood the report


class Entry(NamedTuple):
    """One non-directory entry: a file, a symlink (its own size, never its target's), a fifo..."""

    name: str
    size: int  # apparent size, st_size
    allocated: int  # st_blocks * 512: what the file really occupies (sparse files: less)
    mtime: float
    dev: int
    ino: int
    nlink: int
    is_link: bool


@dataclass
class Directory:
    root: ScanRoot
    relpath: str  # relative to root.path with "/" separators; "" for the root itself
    path: str  # absolute
    files: list[Entry]


class Warnings:
    """Problems met during a scan (unreadable folders, vanished files), bounded in memory."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.messages) < MAX_WARNINGS:
            self.messages.append(message)

    def as_list(self) -> list[str]:
        extra = self.count - len(self.messages)
        return self.messages + ([f"... and {extra} more warnings"] if extra > 0 else [])


def _os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)


def walk(
    roots: list[ScanRoot],
    warnings: Warnings,
    skip_dir: Callable[[ScanRoot, str, str], bool] | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Iterator[Directory]:
    """Yield every folder below ``roots`` with its non-directory entries.

    A root nested inside another (FreeSurfer in ``sourcedata/``) takes over
    from where the walk meets it. ``skip_dir(root, relpath, name)`` prunes a
    subfolder before it is listed. Paths in ``exclude`` are never entered.
    """
    nested = {root.path: root for root in roots}
    tops = [root for root in roots if not any(_inside(root.path, other.path) for other in roots if other is not root)]
    for top in tops:
        stack: list[tuple[ScanRoot, str, str]] = [(top, "", top.path)]
        while stack:
            root, relpath, path = stack.pop()
            try:
                with os.scandir(path) as iterator:
                    entries = sorted(iterator, key=_name)
            except FileNotFoundError:
                if relpath:  # vanished since its parent was listed
                    continue
                warnings.add(f"cannot read {path}: no such directory")
                continue
            except OSError as exc:
                warnings.add(f"cannot read {path}: {_os_error(exc)}")
                continue
            files = []
            subdirs = []
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    if not is_dir:
                        st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed between listing and lstat: nothing to account for
                except OSError as exc:
                    warnings.add(f"cannot stat {entry.path}: {_os_error(exc)}")
                    continue
                if is_dir:
                    subdirs.append(entry)
                    continue
                files.append(
                    Entry(
                        entry.name, st.st_size, st.st_blocks * 512, st.st_mtime,
                        st.st_dev, st.st_ino, st.st_nlink, stat.S_ISLNK(st.st_mode),
                    )
                )
            yield Directory(root, relpath, path, files)
            for entry in reversed(subdirs):
                child = entry.path
                if child in exclude:
                    continue
                if child in nested:
                    stack.append((nested[child], "", child))
                    continue
                if skip_dir is not None and skip_dir(root, relpath, entry.name):
                    continue
                stack.append((root, f"{relpath}/{entry.name}" if relpath else entry.name, child))


def _name(entry: os.DirEntry) -> str:
    return entry.name


def _inside(path: str, other: str) -> bool:
    return path.startswith(other.rstrip("/") + "/")


def lstat_entry(path: str) -> Entry:
    """The same record the walk makes, for one path (explain, and re-checks before acting)."""
    st = os.lstat(path)
    return Entry(
        os.path.basename(path), st.st_size, st.st_blocks * 512, st.st_mtime,
        st.st_dev, st.st_ino, st.st_nlink, stat.S_ISLNK(st.st_mode),
    )
