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

import codecs
import gc
import gzip
import itertools
import json
import os
import re
import stat
import subprocess
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from . import numbers
from .errors import CleanupError
from .folders import Directory, FolderSource, Listing, Visit, traverse
from .guarded import open_regular
from .warnings import Warnings

FORMATS = ("ncdu", "find", "gpfs")
FIND_PRINTF = "%y %s %b %T@ %D %i %n %p\\0"
FIND_TYPES = {b"f": stat.S_IFREG, b"l": stat.S_IFLNK, b"d": stat.S_IFDIR, b"p": stat.S_IFIFO, b"s": stat.S_IFSOCK,
              b"c": stat.S_IFCHR, b"b": stat.S_IFBLK}
# A find list's numbers: type, size and 512-byte blocks (at most 19 digits), mtime (seconds, at most 11 digits:
# before the year 5138), device and inode (20), links (10). A number longer is no file's.
FIND_NUMBERS = re.compile(rb"[fldpscb] \d{1,19} \d{1,19} -?\d{1,11}(?:\.\d{1,10})? \d{1,20} \d{1,20} \d{1,10}")
GPFS_LINE = re.compile(rb"^(\d+) (\d+) (\d+) +(.*?) -- (/.*)$")
GPFS_TIME = "%Y-%m-%d %H:%M:%S.%f"
MODE_TYPES = {b"-": stat.S_IFREG, b"l": stat.S_IFLNK, b"d": stat.S_IFDIR, b"p": stat.S_IFIFO,
              b"s": stat.S_IFSOCK, b"c": stat.S_IFCHR, b"b": stat.S_IFBLK}


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
        return Listing([names[at] for at in order], stats, {}, sorted(self.subdirs.get(folder, ())), None)

    def walk(self, roots: list[Any], warnings: Warnings, skip_dir: Callable[[Any, str, str], bool] | None = None,
             exclude: frozenset[str] = frozenset(), jobs: int = 1) -> Iterator[Directory]:
        """The folders below ``roots`` as basics.folders.walk yields them (the same traversal: depth first, names
        sorted, nested roots taking over), from the list instead of the disk."""
        return traverse(roots, ListedFolders(self), warnings, skip_dir, exclude)


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


BLOCK = 1 << 23  # read 8 MiB at a time: the list is never held whole


def _blocks(path: str) -> Iterator[bytes]:
    """The list's bytes a block at a time, decompressed where it is gzip or zstd (by its first bytes, not its
    name)."""
    try:  # a regular file, opened without blocking: a FIFO or a device named by --from-scan is refused
        handle = os.fdopen(open_regular(path, "scan list"), "rb")
    except CleanupError as exc:
        raise ScanListError(str(exc)) from None
    with handle:
        magic = handle.peek(4)[:4]
        if magic == b"\x28\xb5\x2f\xfd":
            os.lseek(handle.fileno(), 0, os.SEEK_SET)  # zstd reads the file from its start, through this handle
            yield from _zstd_blocks(path, handle)
            return
        reader: IO[bytes] = gzip.open(handle) if magic[:2] == b"\x1f\x8b" else handle  # type: ignore[assignment]
        try:
            while block := reader.read(BLOCK):
                yield block
        except (OSError, EOFError) as exc:
            raise ScanListError(f"{path}: cannot be read whole ({exc}): truncated?") from None


def _read_ahead(blocks: Iterator[bytes], ahead: int = 2) -> Iterator[bytes]:
    """``blocks`` read by a thread up to ``ahead`` blocks before they are wanted: the disk (or the decompressor)
    works while the parser does (reads release the GIL), memory stays a few blocks. What the reading raises is
    raised here, in order."""
    import queue
    import threading

    handoff: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def read() -> None:
        try:
            for block in blocks:
                if stop.is_set():
                    return
                handoff.put((block, None))
            handoff.put((None, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            handoff.put((None, exc))

    reader = threading.Thread(target=read, name="scan-list-reader", daemon=True)
    reader.start()
    try:
        while True:
            block, problem = handoff.get()
            if problem is not None:
                raise problem
            if block is None:
                return
            yield block
    finally:
        stop.set()
        while reader.is_alive():  # let a blocked put go through, so the thread ends and closes the file
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                pass


def _zstd_blocks(path: str, handle: IO[bytes]) -> Iterator[bytes]:
    """zstd decompressing the list from the handle already opened (and checked) for it."""
    try:
        process = subprocess.Popen(["zstd", "-dc"], stdin=handle, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise ScanListError(f"{path} is zstd-compressed and the zstd command is not installed") from None
    assert process.stdout is not None and process.stderr is not None
    with process:
        while block := process.stdout.read(BLOCK):
            yield block
        problem = process.stderr.read().decode(errors="replace").strip()
    if process.returncode:
        raise ScanListError(f"{path}: zstd could not read it: {problem}")


def _records(path: str, blocks: Iterator[bytes], end: bytes, what: str) -> Iterator[bytes]:
    """The ``end``-terminated records of a stream of blocks; a last record without its end is a truncated list."""
    rest = b""
    for block in blocks:
        records = (rest + block).split(end)
        rest = records.pop()
        yield from records
    if rest:
        raise ScanListError(f"{path}: the last {what}: truncated?")


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


def read_scan_list(path: str, scan_format: str | None = None, within: Iterable[str] = (),
                   marks: Callable[[str, bool], bool] | None = None) -> ScanList:
    """The entries of the list at ``path`` (in ``scan_format``, detected when None) at or below the roots
    ``within`` (all when empty), read a block at a time. With ``marks``, no entry is kept: only the folders
    holding a name ``marks(name, is_dir)`` accepts (a search through a site-wide list in flat memory).
    ScanListError for anything it cannot read whole: an
    unknown or mixed format, a truncated file, a path listed twice."""
    blocks = _read_ahead(_blocks(path))
    head = next(blocks, b"")
    detected = detect_format(head[:4096])
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
    listed = ScanList(path, fmt, created, True, tuple(sorted({root.rstrip("/") or "/" for root in within})), marks,
                      text_numbers=fmt == "find")
    stream = itertools.chain([head], blocks)
    collecting = gc.isenabled()
    gc.disable()  # a million small records and no cycles among them: the collector would only rescan them
    try:
        {"ncdu": _read_ncdu, "find": _read_find, "gpfs": _read_gpfs}[fmt](listed, stream)
    finally:
        if collecting:
            gc.enable()
    return listed.check()


def _read_find(listed: ScanList, blocks: Iterator[bytes]) -> None:
    """find/lfs find/rbh-find -printf '%y %s %b %T@ %D %i %n %p\\0'. Each file's numbers are kept as their text,
    every one checked to be a number here (listing() makes them numbers)."""
    assert listed.text_numbers
    folders, regular = listed.folders, stat.S_IFREG
    # ScanList.add's first case inlined for files (a method call per line is 0.2 s of a million-line list)
    fast = listed.marks is None
    for number, record in enumerate(_records(listed.path, blocks, b"\0", "entry is not NUL-terminated"), start=1):
        record = record.lstrip(b"\n")
        try:
            kind, size, blocks_, mtime, dev, ino, nlink, name = record.split(b" ", 7)
            mode = FIND_TYPES[kind]
            numbers = record[:len(record) - len(name) - 1]
            if FIND_NUMBERS.fullmatch(numbers) is None:  # digits, each field within what it can hold
                raise ValueError
        except (ValueError, KeyError):
            raise ScanListError(f"{listed.path}: entry {number} is not '{FIND_PRINTF}' (or a number is out of "
                                f"range): {record[:80]!r}") from None
        path = name.decode("utf-8", "surrogateescape")
        if fast and mode == regular:
            folder, _, base = path.rpartition("/")
            entries = folders.get(folder)
            if entries is not None and base not in ("", ".", ".."):
                entries[0].append(base)
                entries[1].append(numbers)
                listed.files += 1
                continue
        listed.add(path, (mode, numbers), number)


def _read_gpfs(listed: ScanList, blocks: Iterator[bytes]) -> None:
    """mmapplypolicy LIST lines: inode gen snapid SHOW(size kb_allocated mtime mode nlink) -- /path, the path
    %-escaped (ESCAPE '%'), as docs/gpfs-list.pol writes them."""
    for number, line in enumerate(_records(listed.path, blocks, b"\n", "line is not complete"), start=1):
        found = GPFS_LINE.match(line)
        if not found:
            raise ScanListError(f"{listed.path}:{number}: not a GPFS LIST line: {line[:80]!r}")
        inode, _gen, _snap, shown, escaped = found.groups()
        try:
            size, kb, day, clock, mode_text, nlink = shown.split()
            mtime = datetime.strptime(f"{day.decode()} {clock.decode()}", GPFS_TIME).timestamp()
            entry = (MODE_TYPES[mode_text[:1]], numbers.count(numbers.digits(size, "size"), "size"),
                     numbers.count(numbers.digits(kb, "KB allocated"), "KB allocated", numbers.MAX_COUNT // 2048) * 2,
                     mtime, 0, numbers.count(numbers.digits(inode, "inode"), "inode", numbers.MAX_ID),
                     numbers.count(numbers.digits(nlink, "links"), "links", numbers.MAX_LINKS))
        except (ValueError, KeyError, UnicodeDecodeError):
            raise ScanListError(f"{listed.path}:{number}: SHOW is not 'size kb_allocated mtime mode nlink' as "
                                f"docs/gpfs-list.pol writes it: {shown[:80]!r}") from None
        listed.add(unquote_to_bytes(escaped).decode("utf-8", "surrogateescape"), entry, number)


class _Text:
    """An ncdu export's text, decoded a block at a time, with a read position: what is behind it is let go."""

    def __init__(self, path: str, blocks: Iterator[bytes]) -> None:
        self.path, self.blocks = path, blocks
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text, self.at, self.ended = "", 0, False
        self.lines_before = 0  # line ends in the text already let go

    def more(self) -> bool:
        """Add the next block (keeping what is not read yet); False at the end of the list."""
        if self.ended:
            return False
        block = next(self.blocks, None)
        self.ended = block is None
        self.lines_before += self.text.count("\n", 0, self.at)
        self.text = self.text[self.at:] + self.decoder.decode(block or b"", final=self.ended)
        self.at = 0
        return not self.ended or bool(self.text)

    def where(self, at: int | None = None) -> str:
        """``FILE:LINE`` of the read position (or of ``at`` in the text held)."""
        return f"{self.path}:{self.lines_before + self.text.count(chr(10), 0, self.at if at is None else at) + 1}"

    def next_char(self) -> str | None:
        """The next character that is not white space or a comma, or None at the end."""
        while True:
            text, at, length = self.text, self.at, len(self.text)
            while at < length and text[at] in " \t\r\n,":
                at += 1
            self.at = at
            if at < length:
                return text[at]
            if self.ended or not self.more():
                return None

    def value(self, decode: Callable[[str, int], tuple[Any, int]]) -> Any:
        """The JSON value at the read position, reading more of the list while it is cut by a block's end."""
        while True:
            try:
                item, self.at = decode(self.text, self.at)
                return item
            except RecursionError:
                raise ScanListError(f"{self.where()}: an entry nested too deeply to be one of ncdu's") from None
            except ValueError:
                if self.ended or not self.more():
                    raise ScanListError(f"{self.where()}: an entry cannot be read: truncated, or not JSON "
                                        "(NaN and Infinity are not)") from None


def _read_ncdu(listed: ScanList, blocks: Iterator[bytes]) -> None:
    """ncdu (1.x, 2.x) and gdu exports: [1, minor, {meta}, [dir, entry or [subdir...], ...]], read an object at
    a time."""
    path = listed.path
    source = _Text(path, blocks)
    source.more()
    header = re.match(r"\s*\[\s*1\s*,\s*\d+\s*,\s*", source.text)
    if not header:
        raise ScanListError(f"{path}: not an ncdu export ([1, minor, {{meta}}, [tree]])")
    source.at = header.end()
    decode = json.JSONDecoder(parse_constant=_not_a_number).raw_decode  # NaN, Infinity: not JSON, not numbers
    meta = source.value(decode)
    if isinstance(meta, dict):
        stamp = meta.get("timestamp")
        listed.format = str(meta.get("progname", "ncdu"))[:40]
        if stamp is not None:
            try:
                listed.created = numbers.moment(stamp, "its timestamp")
            except ValueError as exc:
                raise ScanListError(f"{source.where()}: {exc}") from None
    read_at = time.time()
    folders: list[str] = []  # the open folders, innermost last
    opening = False  # the next object names a folder
    while True:
        char = source.next_char()
        if char is None:
            raise ScanListError(f"{path}: ends inside {folders[-1] if folders else 'its tree'}: truncated?")
        if char == "[":
            opening, source.at = True, source.at + 1
            continue
        if char == "]":
            source.at += 1
            if not folders:
                break  # the document's own end
            folders.pop()
            continue
        if char != "{":
            raise ScanListError(f"{path}: unexpected {source.text[source.at:source.at + 20]!r}: not an ncdu export")
        start = source.at
        item = source.value(decode)
        name = item.get("name")
        if not isinstance(name, str) or (folders and ("/" in name or name in (".", ".."))):
            raise ScanListError(f"{source.where(start)}: an entry has no usable name: {str(item)[:80]}")
        if opening:
            folder = name.rstrip("/") or "/" if not folders else f"{folders[-1]}/{name}"
            folders.append(folder)
            listed.add(folder, (stat.S_IFDIR, 0, 0, 0), 0)
            opening = False
            continue
        if not folders:
            raise ScanListError(f"{path}: an entry outside any folder")
        if item.get("read_error") or item.get("excluded"):
            continue
        try:
            record = _ncdu_record(item, read_at)
        except ValueError as exc:
            raise ScanListError(f"{source.where(start)}: {folders[-1]}/{name}: {exc}") from None
        if item.get("mtime") is None:
            listed.has_mtimes = False
        listed.add(f"{folders[-1]}/{name}", record, 0)


def _ncdu_record(item: dict[str, Any], read_at: float) -> tuple:
    """(mode, size, 512-byte blocks, mtime, dev, inode, links) of one ncdu entry, every number checked; an
    entry without mtime (ncdu without -e) is taken as modified at ``read_at`` (kept, held back)."""
    mode = item.get("mode")
    if mode is None:
        mode = stat.S_IFLNK | 0o777 if item.get("notreg") else stat.S_IFREG | 0o644
    mode = numbers.count(mode, "mode", numbers.MAX_MODE)
    mtime = item.get("mtime")
    mtime = read_at if mtime is None else numbers.moment(mtime, "mtime")
    size = numbers.count(item.get("asize", 0), "asize")
    blocks = (numbers.count(item.get("dsize", 0), "dsize") + 511) // 512
    inode = numbers.count(item.get("ino", 0), "ino", numbers.MAX_ID)
    links = numbers.count(item.get("nlink", 1), "nlink", numbers.MAX_LINKS)
    return mode, size, blocks, mtime, 0, inode, links or 1


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
