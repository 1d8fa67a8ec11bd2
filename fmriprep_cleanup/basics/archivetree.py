"""An archive's members as folders a walk yields: each member at ``<base>/<member path>``, where it would be
unpacked - ``base`` is the archive's own path for a BABS zip (as a zip file system shows it), the folder it sits
in for a Nipoppy tar (where Nipoppy's tracker looks for it) - so every stage after the scan is the one a walk of
the unpacked tree feeds: the same rules, the same evidence, the same figures.

A member's record is its lstat-like result: its size unpacked (``st_size``, as the file on disk would be) and
the bytes it takes in the archive rounded up to 512-byte blocks (``st_blocks``: what rewriting the archive
without it frees). Nothing here reads a member's data."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

from .archivefile import ArchiveFile, Member
from .folders import Directory, Entry, FolderSource, Listing, Visit, traverse
from .warnings import Warnings

FILE_MODE = stat.S_IFREG | 0o444


class ArchiveTree:
    """The folders of one archive, as a scan source (``walk``, as basics.diskwalk.walk and a scan list give)."""

    def __init__(self, archive: ArchiveFile, base: str | None = None, top: str | None = None) -> None:
        """``base``: where the members are unpacked (the archive's own path by default); ``top``: the folder the
        walk starts from, ``base`` or above it (the output a tar in a subject's folder belongs to)."""
        self.archive = archive
        self.base = base or archive.path
        self.top = top or self.base
        self.files: dict[str, list[tuple[str, Member]]] = {}  # folder path -> (name, member), any order
        self.subdirs: dict[str, set[str]] = {}
        self.by_path: dict[str, Member] = {}
        for member in archive.members:
            folder, _, name = f"{self.base}/{member.name}".rpartition("/")
            self.files.setdefault(folder, []).append((name, member))
            self.by_path[f"{folder}/{name}"] = member
            self._add_folders(folder)

    def _add_folders(self, folder: str) -> None:
        """``folder`` and every folder above it, each named in its parent's subfolders."""
        while folder != self.top:
            parent, _, name = folder.rpartition("/")
            above = self.subdirs.setdefault(parent, set())
            if name in above:
                return
            above.add(name)
            self.subdirs.setdefault(folder, set())
            folder = parent

    def is_folder(self, path: str) -> bool:
        return path == self.top or path in self.subdirs

    def member_name(self, path: str) -> str:
        """The name in the archive of the member at ``path``."""
        return path[len(self.base) + 1:]

    def entry(self, path: str) -> Entry | None:
        """The record a walk gives the member at ``path`` (``<archive>/<member>``), if it is one."""
        member = self.by_path.get(path)
        if member is None:
            return None
        st = self._stat(member)
        return Entry(path.rpartition("/")[2], st.st_size, st.st_blocks * 512, st.st_mtime, 0, 0, 1, False,
                     st.st_ctime)

    def locate(self, file: str) -> str | None:
        """``file`` (absolute; a member's name; relative to the archive's folder or the current one; or written
        inside the archive's path) as the path of a member or folder of the tree, if it is one."""
        folder = os.path.dirname(self.archive.path)
        inside = file[len(self.archive.path) + 1:] if file.startswith(self.archive.path + "/") else file
        for candidate in (file, os.path.join(self.base, inside), os.path.join(self.base, file),
                          os.path.join(folder, file), os.path.abspath(file)):
            if candidate in self.by_path or self.is_folder(candidate):
                return candidate
        return None

    def listing(self, path: str) -> Listing:
        if not self.is_folder(path):
            return Listing([], [], {}, [], "no such directory")
        found = sorted(self.files.get(path, ()))
        return Listing([name for name, _ in found], [self._stat(member) for _, member in found], {},
                       sorted(self.subdirs.get(path, ())), None)

    def _stat(self, member: Member) -> os.stat_result:
        archive, whole = self.archive, int(member.mtime)
        return os.stat_result((FILE_MODE, 0, 0, 1, 0, 0, member.size, whole, whole, int(archive.ctime),
                               float(member.mtime), float(member.mtime), archive.ctime, 0, 0, 0, 4096,
                               -(-member.stored // 512)))

    def walk(self, roots: list[Any], warnings: Warnings, skip_dir: Callable[[Any, str, str], bool] | None = None,
             exclude: frozenset[str] = frozenset(), jobs: int = 1) -> Iterator[Directory]:
        """The folders below ``roots`` (paths inside the archive) as a walk of the unpacked tree yields them."""
        return traverse(roots, _MemberFolders(self), warnings, skip_dir, exclude)


class _MemberFolders(FolderSource):
    def __init__(self, tree: ArchiveTree) -> None:
        self.tree = tree

    def listing(self, visit: Visit) -> Listing:
        return self.tree.listing(visit.path)
