"""A scan list's entries, by folder, at or below the roots a run looks at: what a walk of the list yields
(``ScanList.walk``: the same traversal as a walk of the disk, basics/folders.py). The formats it is read from are
basics/scanformats.py's; reading a list (decompressed, a block at a time) is basics/scanlists.py's."""

from __future__ import annotations

import os
import stat
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import CleanupError
from .folders import Directory, Entry, FolderSource, Listing, Visit, link_entry, traverse
from .warnings import Warnings

FIND_TYPES = {b"f": stat.S_IFREG, b"l": stat.S_IFLNK, b"d": stat.S_IFDIR, b"p": stat.S_IFIFO, b"s": stat.S_IFSOCK,
              b"c": stat.S_IFCHR, b"b": stat.S_IFBLK}

class ScanListError(CleanupError):
    """A list that cannot be read whole: its file, line and what is wrong."""


@dataclass
class ScanList:
    """The entries of a list at or below some roots, by folder: names and, for each, its lstat-like numbers
    packed seven to a name (mode, size, 512-byte blocks, mtime, dev, inode, links) - about 150 bytes a file.
    A find list keeps each file's numbers as the text the list holds instead (``text_numbers``): checked digit
    by digit when read, made numbers only when the folder is walked, which the walk's processes share."""

    path: str
    format: str
    created: float | None  # when the scan was made (the list says, else the file's time)
    has_mtimes: bool
    within: tuple[str, ...] = ()  # the roots kept; () keeps everything
    marks: Callable[[str, bool], bool] | None = None  # set: keep no entries, only the folders holding a marked name
    folders: dict[str, tuple[list[str], array]] = field(default_factory=dict)
    subdirs: dict[str, set[str]] = field(default_factory=dict)
    marked: set[str] = field(default_factory=set)  # folders holding a name ``marks(name, is_dir)`` accepts
    files: int = 0
    text_numbers: bool = False  # values are the list's text ("f SIZE BLOCKS MTIME DEV INODE LINKS"), not numbers
    targets: dict[str, str] | None = None  # symlink path -> its target, for a list that carries them (find %l)
    links_read: int = 0  # symlinks whose target was read from the disk (a list without targets): said once

    def wants(self, path: str) -> bool:
        """Whether ``path`` is at or below one of the roots kept."""
        return not self.within or path.startswith(self._prefixes) or path in self.within

    def __post_init__(self) -> None:
        self._prefixes = tuple(root.rstrip("/") + "/" for root in self.within)

    def add(self, path: str, record: tuple, line: int) -> None:
        """One entry: ``record`` is (mode, size, 512-byte blocks, mtime, dev, inode, links)."""
        folder, _, name = path.rpartition("/")
        entries = self.folders.get(folder) if self.marks is None else None
        if entries is None or name in ("", ".", "..") or "\0" in name:
            self._add(path, record, line)
        elif stat.S_ISDIR(record[0]):
            # An entry of a folder already kept (so absolute, normalised and wanted) needs nothing checked again.
            if path not in self.folders:
                self.folders[path] = self._no_entries()
                self.subdirs.setdefault(folder, set()).add(name)
        else:
            entries[0].append(name)
            self._store(entries[1], record)
            self.files += 1

    def _no_entries(self) -> tuple[list[str], Any]:
        return ([], []) if self.text_numbers else ([], array("d"))

    def _store(self, values: Any, record: tuple) -> None:
        """A file's numbers: ``record`` is (mode, size, blocks, mtime, dev, inode, links), or, for text numbers,
        (mode, the list's text of them)."""
        if self.text_numbers:
            values.append(record[1])
        else:
            values.extend(record)

    def _add(self, path: str, record: tuple, line: int) -> None:
        if not path.startswith("/") or "\0" in path:
            raise ScanListError(f"{self.path}:{line}: not an absolute path: {path!r}")
        if "//" in path or "/./" in path or "/../" in path or (path.endswith(("/", "/.", "/..")) and path != "/"):
            path = os.path.normpath(path)
        if self.within and not path.startswith(self._prefixes) and path not in self.within:
            return
        if self.marks is not None:
            self._mark(path, stat.S_ISDIR(record[0]))
            return
        if stat.S_ISDIR(record[0]):
            self._folder(path)
            return
        folder, _, name = path.rpartition("/")
        names, values = self._folder(folder or "/")
        names.append(name)
        self._store(values, record)
        self.files += 1

    def _mark(self, path: str, is_dir: bool) -> None:
        """Marks mode: remember the folder holding a wanted name, and the roots seen; memory stays flat."""
        folder, _, name = path.rpartition("/")
        if self.marks is not None and self.marks(name, is_dir):
            self.marked.add(folder or "/")
        if is_dir and path in self.within:
            self.folders[path] = self._no_entries()
        self.files += not is_dir

    def _folder(self, folder: str) -> tuple[list[str], array]:
        """The entries of ``folder``, made (with each wanted parent not yet known, up the path) if new. A loop,
        not a recursion: a path thousands of folders deep is only a long path."""
        entries = self.folders.get(folder)
        if entries is not None:
            return entries
        entries = self.folders[folder] = self._no_entries()
        child = folder
        while True:
            parent, _, name = child.rpartition("/")
            parent = parent or "/"
            if not name or not self.wants(parent):
                break
            self.subdirs.setdefault(parent, set()).add(name)
            if parent in self.folders:
                break
            self.folders[parent] = self._no_entries()
            child = parent
        return entries

    def check(self) -> ScanList:
        """Refuse a list naming one path twice: it is not one scan of one tree."""
        subdirs = self.subdirs
        for folder, (names, _) in self.folders.items():
            if not names:
                continue
            if len(names) > 1 and len(set(names)) != len(names):
                twice = next(name for name in sorted(names) if names.count(name) > 1)
                raise ScanListError(f"{self.path}: {folder}/{twice} is listed twice: not one scan of one tree")
            if folder in subdirs and not subdirs[folder].isdisjoint(names):
                twice = sorted(subdirs[folder] & set(names))[0]
                raise ScanListError(f"{self.path}: {folder}/{twice} is listed twice: not one scan of one tree")
        return self

    def covers(self, root: str) -> bool:
        return root in self.folders

    def age_line(self, now: float) -> str:
        """"scan of 2026-11-30 02:00, 3 days old (ncdu)"."""
        if self.created is None:
            return f"scan list {self.path} ({self.format}), of unknown date"
        days = (now - self.created) / 86400
        when = datetime.fromtimestamp(self.created).strftime("%Y-%m-%d %H:%M")
        old = f"{days:.0f} days old" if days >= 1.5 else f"{(now - self.created) / 3600:.0f} hours old"
        return f"scan of {when}, {old} ({self.format} list {self.path})"

    def listing(self, folder: str) -> Listing:
        names, values = self.folders.get(folder, ([], []))
        order = sorted(range(len(names)), key=names.__getitem__)
        if self.text_numbers:
            stats = [_stat_of_text(values[at]) for at in order]
        else:
            stats = [_stat(*values[at * 7:at * 7 + 7]) for at in order]
        names = [names[at] for at in order]
        links = {index: self._link(folder, names[index], st) for index, st in enumerate(stats)
                 if stat.S_ISLNK(st.st_mode)}
        return Listing(names, stats, links, sorted(self.subdirs.get(folder, ())), None)

    def _link(self, folder: str, name: str, st: os.stat_result) -> Entry:
        """A listed symlink as the walk makes it: a git-annex link counts its content's size (its key), here or
        elsewhere only, as a walk of the disk says. The target is the list's, else read from the disk (one
        readlink), and whether the content is here one stat of what it points to; no content is read."""
        path = f"{folder}/{name}"
        target = self.targets.get(path) if self.targets is not None else None
        if target is None and self.targets is None:
            try:
                target = os.readlink(path)
                self.links_read += 1
            except OSError:
                target = None  # gone since the scan: its own numbers, as listed
        return link_entry(name, st, target, lambda: os.stat(path))

    def walk(self, roots: list[Any], warnings: Warnings, skip_dir: Callable[[Any, str, str], bool] | None = None,
             exclude: frozenset[str] = frozenset(), jobs: int = 1) -> Iterator[Directory]:
        """The folders below ``roots`` as basics.diskwalk.walk yields them (the same traversal: depth first, names
        sorted, nested roots taking over), from the list instead of the disk."""
        self.links_read = 0
        yield from traverse(roots, ListedFolders(self), warnings, skip_dir, exclude)
        if self.links_read:
            warnings.add(f"{self.links_read:,} symbolic links' targets were read from the disk ({self.format} lists "
                         "carry none): git-annex links count their content's size, as a walk does; no content read")


class ListedFolders(FolderSource):
    """A scan list as the walk's source of listings: nothing to open, nothing to close."""

    def __init__(self, listed: ScanList) -> None:
        self.listed = listed

    def listing(self, visit: Visit) -> Listing:
        return self.listed.listing(visit.path)


def _stat(mode: float, size: float, blocks: float, mtime: float, dev: float = 0, ino: float = 0,
          nlink: float = 1) -> os.stat_result:
    """An lstat-like result: what Directory reads (size, blocks, mtime, nlink, mode), ctime unknown (0)."""
    whole = int(mtime)
    return os.stat_result((int(mode), int(ino), int(dev), int(nlink), 0, 0, int(size), whole, whole, 0,
                           float(mtime), float(mtime), 0.0, 0, 0, 0, 4096, int(blocks)))


def _stat_of_text(numbers: bytes) -> os.stat_result:
    """_stat of a find list's text "f SIZE BLOCKS MTIME DEV INODE LINKS" (checked when it was read)."""
    kind, size, blocks, mtime, dev, ino, nlink = numbers.split(b" ")
    seconds = float(mtime)
    whole = int(seconds)
    return os.stat_result((FIND_TYPES[kind], int(ino), int(dev), int(nlink), 0, 0, int(size), whole, whole, 0,
                           seconds, seconds, 0.0, 0, 0, 0, 4096, int(blocks)))
