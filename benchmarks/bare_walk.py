"""The floor of a scan in Python: scandir and one lstat per file, nothing else (no order, no records, no rules).

    python benchmarks/bare_walk.py TREE        # compare with: du -s --apparent-size TREE

What fmriprep-cleanup's one-process scan costs above this is its own work; this itself, above du, is Python's.
"""

import os
import sys

FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def walk(top: str) -> tuple[int, int]:
    files = total = 0
    stack = [top]
    while stack:
        folder = stack.pop()
        handle = os.open(folder, FLAGS)
        try:
            with os.scandir(handle) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(f"{folder}/{entry.name}")
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                        files += 1
        finally:
            os.close(handle)
    return files, total


if __name__ == "__main__":
    print(*walk(sys.argv[1]))
