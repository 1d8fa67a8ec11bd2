"""statx (through ctypes, only the fields a scan needs) against os.lstat, one call per file relative to its open
folder, as the walk makes them (issue 47: "use statx where it measurably wins"). Medians of 5 warm passes.

    python benchmarks/statx.py [FOLDER]     # default: the generated 100k tree's output in benchmarks/trees/
"""

from __future__ import annotations

import ctypes
import os
import statistics
import sys
import time

AT_SYMLINK_NOFOLLOW = 0x100
# STATX_TYPE | MODE | NLINK | MTIME | CTIME | INO | SIZE | BLOCKS: what a scan records of a file
MASK = 0x1 | 0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400


class Timestamp(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_uint32), ("reserved", ctypes.c_int32)]


class Statx(ctypes.Structure):
    """struct statx (linux/stat.h)."""

    _fields_ = [("stx_mask", ctypes.c_uint32), ("stx_blksize", ctypes.c_uint32), ("stx_attributes", ctypes.c_uint64),
                ("stx_nlink", ctypes.c_uint32), ("stx_uid", ctypes.c_uint32), ("stx_gid", ctypes.c_uint32),
                ("stx_mode", ctypes.c_uint16), ("pad", ctypes.c_uint16), ("stx_ino", ctypes.c_uint64),
                ("stx_size", ctypes.c_uint64), ("stx_blocks", ctypes.c_uint64),
                ("stx_attributes_mask", ctypes.c_uint64), ("stx_atime", Timestamp), ("stx_btime", Timestamp),
                ("stx_ctime", Timestamp), ("stx_mtime", Timestamp), ("stx_rdev_major", ctypes.c_uint32),
                ("stx_rdev_minor", ctypes.c_uint32), ("stx_dev_major", ctypes.c_uint32),
                ("stx_dev_minor", ctypes.c_uint32), ("spare", ctypes.c_uint64 * 14)]


def folders_of(tree: str) -> list[tuple[str, list[str]]]:
    return [(path, names) for path, _, names in os.walk(tree)]


def with_lstat(folders: list[tuple[str, list[str]]]) -> int:
    total = 0
    for path, names in folders:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        for name in names:
            total += os.lstat(name, dir_fd=fd).st_size
        os.close(fd)
    return total


def with_statx(folders: list[tuple[str, list[str]]]) -> int:
    statx = ctypes.CDLL(None, use_errno=True).statx
    statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Statx)]
    found = Statx()
    total = 0
    for path, names in folders:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        for name in names:
            statx(fd, name.encode("utf-8", "surrogateescape"), AT_SYMLINK_NOFOLLOW, MASK, ctypes.byref(found))
            total += found.stx_size
        os.close(fd)
    return total


def main() -> None:
    tree = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "trees", "tree-100000",
                                                              "fmriprep")
    folders = folders_of(tree)
    assert with_lstat(folders) == with_statx(folders), "both must read the same sizes"
    for way in (with_lstat, with_statx):
        walls = []
        for _ in range(5):
            started = time.perf_counter()
            way(folders)
            walls.append(time.perf_counter() - started)
        print(f"{way.__name__}: {statistics.median(walls):.3f} s for {sum(len(names) for _, names in folders):,} files")


if __name__ == "__main__":
    main()
