"""Room for what a run writes, checked before it writes anything: an archive of junk and a restore write every
byte of their files' apparent size (a sparse file archived or restored takes all of it: the demo's 13 MB of
sparse files become 14 GB), so each compares that with the free space of the file system it writes to
(``statvfs``: the blocks an unprivileged user may still take) and refuses in one line with both numbers."""

from __future__ import annotations

import os
from collections.abc import Iterable

from humanize import naturalsize

from ..basics.errors import CleanupError

TAR_BLOCK = 512
TAR_END = 2 * TAR_BLOCK * 10  # the end-of-archive blocks, padded to tar's 10 KiB record


def tar_bytes(sizes: Iterable[int]) -> int:
    """What an uncompressed tar of files of these sizes takes: a header block and the data blocks of each."""
    return sum(TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK for size in sizes) + TAR_END


def _existing(path: str) -> str:
    """``path``, or the nearest folder above it that exists (where a file written there would go)."""
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def free_bytes(folder: str) -> int:
    st = os.statvfs(_existing(folder))
    return st.f_bavail * st.f_frsize


def check_room(folder: str, needed: int, what: str, hint: str = "") -> None:
    """CleanupError, nothing written, when ``needed`` bytes do not fit in the file system of ``folder``."""
    free = free_bytes(folder)
    if needed > free:
        raise CleanupError(f"{what} needs up to {_size(needed)} in {folder}{hint}, where {_size(free)} is free; "
                           "nothing was changed")


def compress_hint(compress: str | None) -> str:
    """What the figure of an archive's room assumes about compression."""
    if compress:
        return f" (before {compress} compression, which writes less: how much depends on the files)"
    return " (uncompressed: --compress gz or xz writes less, how much depends on the files)"


def check_room_for_files(files: Iterable[tuple[str, int]], what: str) -> None:
    """The same for files written where they were (path, size): their sizes summed per file system."""
    needed: dict[int, tuple[str, int]] = {}
    for path, size in files:
        folder = _existing(os.path.dirname(path))
        device = os.stat(folder).st_dev
        where, total = needed.get(device, (folder, 0))
        needed[device] = (where, total + size)
    for folder, total in needed.values():
        check_room(folder, total, what)


def _size(count: int) -> str:
    return naturalsize(count, binary=True)
