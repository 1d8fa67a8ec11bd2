"""Scan lists a site already has, read instead of walking: ncdu and gdu JSON exports (``ncdu -e -o``,
``gdu -o``), GPFS policy LIST files (``mmapplypolicy``, the example policy in docs/gpfs-list.pol) and ``find`` /
``lfs find`` / ``rbh-find`` ``-printf`` output in the documented format; gzip- or zstd-compressed as they are.

A list becomes the folders a walk would yield (``ScanList.walk``, the same order and the same records), so every
stage after the scan is the one a walk feeds. Its formats are registered in basics/scanformats.py; this module
reads a list of any of them, decompressed, a block at a time. Nothing in a list is trusted for acting: clean lstat-s every file
again before it acts (act/worklist.py), and evidence files are read from disk. A line the parser cannot read whole
stops the reading with one error naming the line: no decision rests on half a line.

    find ROOT -printf '%y %s %b %T@ %D %i %n %p\\0'     # type size 512-blocks mtime dev inode links path, NUL-ended
"""

from __future__ import annotations

import gc
import gzip
import itertools
import os
import subprocess
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from .errors import CleanupError
from .guarded import open_regular
from .scanformats import FORMATS, detect_format
from .scanlist import ScanList, ScanListError


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
        described = [scan_format.described for scan_format in FORMATS.values()]
        raise ScanListError(f"{path}: not {', '.join(described[:-1])} or {described[-1]} (give --scan-format)")
    if fmt not in FORMATS:
        raise ScanListError(f"unknown scan format {fmt!r}; known: {', '.join(FORMATS)}")
    if detected is not None and detected != fmt:
        raise ScanListError(f"{path} looks like a {detected} list, not {fmt}")
    try:
        created = os.stat(path).st_mtime
    except OSError:
        created = None
    listed = ScanList(path, fmt, created, True, tuple(sorted({root.rstrip("/") or "/" for root in within})), marks,
                      text_numbers=FORMATS[fmt].text_numbers)
    stream = itertools.chain([head], blocks)
    collecting = gc.isenabled()
    gc.disable()  # a million small records and no cycles among them: the collector would only rescan them
    try:
        FORMATS[fmt].read(listed, stream)
    finally:
        if collecting:
            gc.enable()
    return listed.check()


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
