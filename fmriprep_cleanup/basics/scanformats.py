"""The formats scan lists come in, each registered once (FORMATS): how a list of it is recognised from its first
bytes and how it is read into a ScanList (basics/scanlist.py). A line a reader cannot read whole stops the reading
with one error naming the line: no decision rests on half a line.

    ncdu / gdu   ncdu -e -o FILE ROOT; gdu -o FILE ROOT (JSON: [1, 2, {meta}, [tree]])
    find         find ROOT -printf '%y %s %b %T@ %D %i %n %p\\0' (also lfs find, rbh-find)
    find-links   find ROOT -printf '%y %s %b %T@ %D %i %n %p\\0%l\\0' (each link's target too: git-annex)
    gpfs         mmapplypolicy LIST files (docs/gpfs-list.pol)
"""

from __future__ import annotations

import codecs
import json
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from . import numbers
from .scanlist import FIND_TYPES, ScanList, ScanListError

FIND_PRINTF = "%y %s %b %T@ %D %i %n %p\\0"
FIND_LINKS_PRINTF = FIND_PRINTF + "%l\\0"  # and each symlink's target (empty for other entries)
# A find list's numbers: type, size and 512-byte blocks (at most 19 digits), mtime (seconds, at most 11 digits:
# before the year 5138), device and inode (20), links (10). A number longer is no file's.
FIND_NUMBERS = re.compile(rb"[fldpscb] \d{1,19} \d{1,19} -?\d{1,11}(?:\.\d{1,10})? \d{1,20} \d{1,20} \d{1,10}")
GPFS_LINE = re.compile(rb"^(\d+) (\d+) (\d+) +(.*?) -- (/.*)$")
GPFS_TIME = "%Y-%m-%d %H:%M:%S.%f"
MODE_TYPES = {b"-": stat.S_IFREG, b"l": stat.S_IFLNK, b"d": stat.S_IFDIR, b"p": stat.S_IFIFO,
              b"s": stat.S_IFSOCK, b"c": stat.S_IFCHR, b"b": stat.S_IFBLK}


def _records(path: str, blocks: Iterator[bytes], end: bytes, what: str) -> Iterator[bytes]:
    """The ``end``-terminated records of a stream of blocks; a last record without its end is a truncated list."""
    rest = b""
    for block in blocks:
        records = (rest + block).split(end)
        rest = records.pop()
        yield from records
    if rest:
        raise ScanListError(f"{path}: the last {what}: truncated?")


def _read_find_links(listed: ScanList, blocks: Iterator[bytes]) -> None:
    """find -printf '%y %s %b %T@ %D %i %n %p\\0%l\\0': a find list with each symlink's target after its path."""
    listed.targets = {}
    _read_find(listed, blocks, with_targets=True)


def _read_find(listed: ScanList, blocks: Iterator[bytes], with_targets: bool = False) -> None:
    """find/lfs find/rbh-find -printf '%y %s %b %T@ %D %i %n %p\\0'. Each file's numbers are kept as their text,
    every one checked to be a number here (listing() makes them numbers). ``with_targets``: each entry is followed
    by its link target (find's %l; empty but for symlinks)."""
    assert listed.text_numbers
    folders, regular, link = listed.folders, stat.S_IFREG, stat.S_IFLNK
    # ScanList.add's first case inlined for files (a method call per line is 0.2 s of a million-line list)
    fast = listed.marks is None
    records = _records(listed.path, blocks, b"\0", "entry is not NUL-terminated")
    for number, record in enumerate(records, start=1):
        record = record.lstrip(b"\n")
        target = next(records, None) if with_targets else b""
        if target is None:
            raise ScanListError(f"{listed.path}: entry {number} has no link target field: not '{FIND_LINKS_PRINTF}'")
        try:
            kind, size, _blocks, mtime, dev, ino, nlink, name = record.split(b" ", 7)
            mode = FIND_TYPES[kind]
            numbers = record[:len(record) - len(name) - 1]
            if FIND_NUMBERS.fullmatch(numbers) is None:  # digits, each field within what it can hold
                raise ValueError
        except (ValueError, KeyError):
            raise ScanListError(f"{listed.path}: entry {number} is not '{FIND_PRINTF}' (or a number is out of "
                                f"range): {record[:80]!r}") from None
        path = name.decode("utf-8", "surrogateescape")
        if target and mode == link and listed.targets is not None and listed.marks is None and listed.wants(path):
            listed.targets[path] = target.decode("utf-8", "surrogateescape")
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


@dataclass(frozen=True)
class ScanFormat:
    """A scan list format: its name (--scan-format), what it is called in messages, whether a list of it starts
    as its first bytes do (``detect``), and its reader. ``text_numbers``: its numbers are kept as the list's
    text until a folder is walked (see ScanList)."""

    name: str
    described: str
    detect: Callable[[bytes], bool]
    read: Callable[[ScanList, Iterator[bytes]], None]
    text_numbers: bool = False


def _is_ncdu(head: bytes) -> bool:
    text = head.lstrip()
    return text.startswith(b"[") and re.match(rb"\[\s*1\s*,", text) is not None


def _is_find(head: bytes) -> bool:
    return b"\0" in head and re.match(rb"[fldpscb] \d+ \d+ ", head) is not None and not _is_find_links(head)


def _is_find_links(head: bytes) -> bool:
    """A find list whose every other field is a link target: each entry (of the whole ones in ``head``) is
    followed by a field that is empty, or, after a symlink, its target."""
    fields = head.split(b"\0")[:-1]
    pairs = list(zip(fields[0::2], fields[1::2], strict=False))
    return bool(pairs) and all(re.match(rb"[fldpscb] \d+ \d+ ", entry.lstrip(b"\n")) is not None
                               and (target == b"" or entry.lstrip(b"\n").startswith(b"l ")) for entry, target in pairs)


def _is_gpfs(head: bytes) -> bool:
    return GPFS_LINE.match(head.split(b"\n", 1)[0]) is not None


FORMATS = {scan_format.name: scan_format for scan_format in (
    ScanFormat("ncdu", "an ncdu/gdu JSON export", _is_ncdu, _read_ncdu),
    ScanFormat("find", f"a find -printf '{FIND_PRINTF}' list", _is_find, _read_find, text_numbers=True),
    ScanFormat("find-links", f"a find -printf '{FIND_LINKS_PRINTF}' list", _is_find_links, _read_find_links,
               text_numbers=True),
    ScanFormat("gpfs", "a GPFS LIST file", _is_gpfs, _read_gpfs),
)}
FORMAT_NAMES = tuple(FORMATS)


def detect_format(head: bytes) -> str | None:
    """The format whose lists start as ``head`` does, if one does."""
    return next((name for name, scan_format in FORMATS.items() if scan_format.detect(head)), None)
