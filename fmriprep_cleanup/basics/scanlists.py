"""Scan lists a site already has, read instead of walking: ncdu and gdu JSON exports (``ncdu -e -o``,
``gdu -o``), GPFS policy LIST files (``mmapplypolicy``, the example policy in docs/gpfs-list.pol) and ``find`` /
``lfs find`` / ``rbh-find`` ``-printf`` output in the documented format; gzip- or zstd-compressed as they are.

A list becomes the folders a walk would yield (``ScanList.walk``, the same order and the same records), so every
stage after the scan is the one a walk feeds. Nothing in a list is trusted for acting: clean lstat-s every file
again before it acts (act/worklist.py), and evidence files are read from disk. A line the parser cannot read whole
stops the reading with one error naming the line: no decision rests on half a line.

    find ROOT -printf '%y %s %b %T@ %D %i %n %p\\0'     # type size 512-blocks mtime dev inode links path, NUL-ended
"""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from .errors import CleanupError
from .folders import Directory, Listing, Warnings
from .paths import below

FORMATS = ("ncdu", "find", "gpfs")
FIND_PRINTF = "%y %s %b %T@ %D %i %n %p\\0"
FIND_TYPES = {"f": stat.S_IFREG, "l": stat.S_IFLNK, "d": stat.S_IFDIR, "p": stat.S_IFIFO, "s": stat.S_IFSOCK,
              "c": stat.S_IFCHR, "b": stat.S_IFBLK}
GPFS_LINE = re.compile(rb"^(\d+) (\d+) (\d+) +(.*?) -- (/.*)$")
GPFS_TIME = "%Y-%m-%d %H:%M:%S.%f"
MODE_TYPES = {"-": stat.S_IFREG, "l": stat.S_IFLNK, "d": stat.S_IFDIR, "p": stat.S_IFIFO, "s": stat.S_IFSOCK,
              "c": stat.S_IFCHR, "b": stat.S_IFBLK}


class ScanListError(CleanupError):
    """A list that cannot be read whole: its file, line and what is wrong."""


@dataclass
class ScanList:
    """Every non-directory entry of a list, by folder: name -> lstat-like result."""

    path: str
    format: str
    created: float | None  # when the scan was made (the list says, else the file's time)
    has_mtimes: bool
    folders: dict[str, dict[str, tuple]] = field(default_factory=dict)  # folder -> name -> _stat's arguments
    subdirs: dict[str, set[str]] = field(default_factory=dict)
    files: int = 0

    def add(self, path: str, record: tuple, line: int) -> None:
        """One entry: ``record`` is (mode, size, 512-byte blocks, mtime, dev, inode, links)."""
        if not path.startswith("/") or "\0" in path:
            raise ScanListError(f"{self.path}:{line}: not an absolute path: {path!r}")
        if "//" in path or "/./" in path or "/../" in path or (path.endswith(("/", "/.", "/..")) and path != "/"):
            path = os.path.normpath(path)
        folder, _, name = path.rpartition("/")
        if stat.S_ISDIR(record[0]):
            self._folder(path)
            return
        entries = self._folder(folder or "/")
        if name in entries:
            raise ScanListError(f"{self.path}:{line}: {path} is listed twice: not one scan of one tree")
        entries[name] = record
        self.files += 1

    def _folder(self, folder: str) -> dict[str, tuple]:
        entries = self.folders.get(folder)
        if entries is None:
            entries = self.folders[folder] = {}
            parent, name = os.path.split(folder)
            if name:
                self._folder(parent)
                self.subdirs.setdefault(parent, set()).add(name)
        return entries

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
        entries = self.folders.get(folder, {})
        names = sorted(entries)
        return Listing(names, [_stat(*entries[name]) for name in names], {}, sorted(self.subdirs.get(folder, ())),
                       None)

    def walk(self, roots: list[Any], warnings: Warnings, skip_dir: Callable[[Any, str, str], bool] | None = None,
             exclude: frozenset[str] = frozenset(), jobs: int = 1) -> Iterator[Directory]:
        """The folders below ``roots`` as basics.folders.walk yields them (depth first, names sorted, nested roots
        taking over), from the list instead of the disk."""
        nested = {root.path: root for root in roots}
        tops = [root for root in roots if not any(below(root.path, other.path) for other in roots if other is not root)]
        for top in tops:
            stack: list[tuple[Any, str, str]] = [(top, "", top.path)]
            while stack:
                root, relpath, path = stack.pop()
                listing = self.listing(path)
                yield Directory(root, relpath, path, listing=listing)
                for name in reversed(listing.subdirs):
                    child = f"{path}/{name}"
                    if child in exclude:
                        continue
                    if child in nested:
                        stack.append((nested[child], "", child))
                    elif skip_dir is None or not skip_dir(root, relpath, name):
                        stack.append((root, f"{relpath}/{name}" if relpath else name, child))


def _stat(mode: int, size: int, blocks: int, mtime: float, dev: int = 0, ino: int = 0, nlink: int = 1) -> os.stat_result:
    """An lstat-like result: what Directory reads (size, blocks, mtime, nlink, mode), ctime unknown (0)."""
    return os.stat_result((mode, ino, dev, nlink, 0, 0, size, int(mtime), int(mtime), 0,
                           float(mtime), float(mtime), 0.0, 0, 0, 0, 4096, blocks))


def _open(path: str) -> IO[bytes]:
    """The list's bytes, decompressed where it is gzip or zstd (by its first bytes, not its name)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned
    except OSError as exc:
        raise ScanListError(f"cannot read the scan list {path}: {exc.strerror or exc}") from None
    magic = handle.peek(4)[:4] if hasattr(handle, "peek") else b""
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(handle)  # type: ignore[return-value]
    if magic == b"\x28\xb5\x2f\xfd":
        handle.close()
        try:
            process = subprocess.run(["zstd", "-dc", "--", path], capture_output=True, check=True)
        except FileNotFoundError:
            raise ScanListError(f"{path} is zstd-compressed and the zstd command is not installed") from None
        except subprocess.CalledProcessError as exc:
            raise ScanListError(f"{path}: zstd could not read it: {exc.stderr.decode(errors='replace').strip()}") from None
        import io

        return io.BytesIO(process.stdout)
    return handle


def detect_format(head: bytes) -> str | None:
    """ncdu/gdu JSON starts with [1,; find -printf lines with a type letter and NUL-ended paths; GPFS LIST lines
    with three numbers and ' -- /'."""
    text = head.lstrip()
    if text.startswith(b"[") and re.match(rb"\[\s*1\s*,", text):
        return "ncdu"
    if b"\0" in head and re.match(rb"[fldpscb] \d+ \d+ ", head):
        return "find"
    if GPFS_LINE.match(head.split(b"\n", 1)[0]):
        return "gpfs"
    return None


def read_scan_list(path: str, scan_format: str | None = None) -> ScanList:
    """The list at ``path`` in ``scan_format`` (detected when None). ScanListError for anything it cannot read
    whole: an unknown or mixed format, a truncated file, a path listed twice."""
    with _open(path) as handle:
        data = handle.read()
    detected = detect_format(data[:4096])
    fmt = scan_format or detected
    if fmt is None:
        raise ScanListError(f"{path}: not an ncdu/gdu JSON export, a find -printf '{FIND_PRINTF}' list or a GPFS "
                            "LIST file (give --scan-format)")
    if fmt not in FORMATS:
        raise ScanListError(f"unknown scan format {fmt!r}; known: {', '.join(FORMATS)}")
    if detected is not None and detected != fmt:
        raise ScanListError(f"{path} looks like a {detected} list, not {fmt}")
    try:
        created = os.stat(path).st_mtime
    except OSError:
        created = None
    return {"ncdu": _read_ncdu, "find": _read_find, "gpfs": _read_gpfs}[fmt](path, data, created)


def _read_ncdu(path: str, data: bytes, created: float | None) -> ScanList:
    """ncdu (1.x, 2.x) and gdu exports: [1, minor, {meta}, [dir, entry or [subdir...], ...]], read an object at
    a time (no document tree in memory: the list itself is the largest thing held)."""
    text = data.decode("utf-8", "surrogateescape")
    decode = json.JSONDecoder().raw_decode
    header = re.match(r"\s*\[\s*1\s*,\s*\d+\s*,\s*", text)
    if not header:
        raise ScanListError(f"{path}: not an ncdu export ([1, minor, {{meta}}, [tree]])")
    try:
        meta, at = decode(text, header.end())
    except ValueError:
        raise ScanListError(f"{path}: its metadata object cannot be read: truncated?") from None
    stamp = meta.get("timestamp") if isinstance(meta, dict) else None
    listed = ScanList(path, str(meta.get("progname", "ncdu")) if isinstance(meta, dict) else "ncdu",
                      float(stamp) if isinstance(stamp, (int, float)) else created, True)
    read_at = time.time()
    folders: list[str] = []  # the open folders, innermost last
    opening = False  # the next object names a folder
    length = len(text)
    while True:
        while at < length and text[at] in " \t\r\n,":
            at += 1
        if at >= length:
            raise ScanListError(f"{path}: ends inside {folders[-1] if folders else 'its tree'}: truncated?")
        char = text[at]
        if char == "[":
            opening, at = True, at + 1
            continue
        if char == "]":
            at += 1
            if not folders:
                break  # the document's own end
            folders.pop()
            continue
        if char != "{":
            raise ScanListError(f"{path}: unexpected {text[at:at + 20]!r} at byte {at}: not an ncdu export")
        try:
            item, at = decode(text, at)
        except ValueError:
            raise ScanListError(f"{path}: an entry at byte {at} cannot be read: truncated?") from None
        name = item.get("name")
        if not isinstance(name, str) or (folders and ("/" in name or name in (".", ".."))):
            raise ScanListError(f"{path}: an entry at byte {at} has no usable name: {str(item)[:80]}")
        if opening:
            folder = name.rstrip("/") or "/" if not folders else f"{folders[-1]}/{name}"
            folders.append(folder)
            listed.add(folder, (stat.S_IFDIR, 0, 0, 0), 0)
            opening = False
            continue
        if not folders:
            raise ScanListError(f"{path}: an entry outside any folder at byte {at}")
        if item.get("read_error") or item.get("excluded"):
            continue
        mode = item.get("mode")
        if not isinstance(mode, int):
            mode = stat.S_IFLNK | 0o777 if item.get("notreg") else stat.S_IFREG | 0o644
        mtime = item.get("mtime")
        if not isinstance(mtime, (int, float)):  # ncdu without -e: taken as modified now (kept, held back)
            listed.has_mtimes, mtime = False, read_at
        size, dsize = item.get("asize", 0), item.get("dsize", 0)
        if not (isinstance(size, int) and isinstance(dsize, int) and size >= 0 and dsize >= 0):
            raise ScanListError(f"{path}: {folders[-1]}/{name}: sizes are not counts")
        listed.add(f"{folders[-1]}/{name}", (mode, size, (dsize + 511) // 512, mtime, 0, int(item.get("ino") or 0),
                                             int(item.get("nlink") or 1)), 0)
    return listed


def _read_find(path: str, data: bytes, created: float | None) -> ScanList:
    """find/lfs find/rbh-find -printf '%y %s %b %T@ %D %i %n %p\\0'."""
    listed = ScanList(path, "find", created, True)
    if data and not data.endswith(b"\0"):
        raise ScanListError(f"{path}: the last entry is not NUL-terminated: truncated?")
    for number, record in enumerate(data.split(b"\0")[:-1], start=1):
        record = record.lstrip(b"\n")
        parts = record.split(b" ", 7)
        try:
            kind, size, blocks, mtime, dev, ino, nlink, name = parts
            mode = FIND_TYPES[kind.decode()]
            entry = (mode, int(size), int(blocks), float(mtime), int(dev), int(ino), int(nlink))
        except (ValueError, KeyError, UnicodeDecodeError):
            raise ScanListError(f"{path}: entry {number} is not '{FIND_PRINTF}': {record[:80]!r}") from None
        listed.add(os.fsdecode(name), entry, number)
    return listed


def _read_gpfs(path: str, data: bytes, created: float | None) -> ScanList:
    """mmapplypolicy LIST lines: inode gen snapid SHOW(size kb_allocated mtime mode nlink) -- /path, the path
    %-escaped (ESCAPE '%'), as docs/gpfs-list.pol writes them."""
    listed = ScanList(path, "gpfs", created, True)
    if data and not data.endswith(b"\n"):
        raise ScanListError(f"{path}: the last line is not complete: truncated?")
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        found = GPFS_LINE.match(line)
        if not found:
            raise ScanListError(f"{path}:{number}: not a GPFS LIST line: {line[:80]!r}")
        inode, _gen, _snap, shown, escaped = found.groups()
        fields = shown.split()
        try:
            size, kb, day, clock, mode_text, nlink = fields
            mtime = datetime.strptime(f"{day.decode()} {clock.decode()}", GPFS_TIME).timestamp()
            mode = MODE_TYPES[mode_text.decode()[0]]
            entry = (mode, int(size), int(kb) * 2, mtime, 0, int(inode), int(nlink))
        except (ValueError, KeyError, UnicodeDecodeError):
            raise ScanListError(f"{path}:{number}: SHOW is not 'size kb_allocated mtime mode nlink' as "
                                f"docs/gpfs-list.pol writes it: {shown[:80]!r}") from None
        listed.add(os.fsdecode(unquote_to_bytes(escaped)), entry, number)
    return listed
