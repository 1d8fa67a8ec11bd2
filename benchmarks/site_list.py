"""A site-wide scan list for the streaming audit benchmark: a real find -printf list of one tree, mixed with
LINES lines of other groups' files that are not fMRIPrep (they need not exist: an audit looks on disk only at
the folders the list marks). Written zstd-compressed, as sites keep such lists.

    python benchmarks/site_list.py ROOT TREE_LIST LINES OUT.zst
    /usr/bin/time -f '%M KiB' fmriprep-cleanup audit ROOT --from-scan OUT.zst --format json
"""

from __future__ import annotations

import subprocess
import sys


def main(root: str, tree_list: str, lines: int, out: str) -> None:
    with open(out, "wb") as target:
        process = subprocess.Popen(["zstd", "-q", "-c", "-"], stdin=subprocess.PIPE, stdout=target)
        assert process.stdin is not None
        write = process.stdin.write
        write(f"d 4096 8 1700000000.0 2049 1 9 {root}\0".encode())
        with open(tree_list, "rb") as tree:
            write(tree.read())
        batch = []
        for number in range(lines):
            if number % 1000 == 0:
                batch.append(f"d 4096 8 1700000000.0 2049 {number} 2 {root}/lab/group-{number // 1000}\0")
            batch.append(f"f {number % 90000} 8 1700000000.0 2049 {number + 10} 1 "
                         f"{root}/lab/group-{number // 1000}/sample-{number:08d}.dat\0")
            if len(batch) >= 100000:
                write("".join(batch).encode())
                batch = []
        write("".join(batch).encode())
        process.stdin.close()
        process.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
