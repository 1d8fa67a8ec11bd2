"""The floor of a scan in Python: scandir and one lstat per file, nothing else (no order, no records, no rules).

    python benchmarks/bare_walk.py TREE                 # one process; compare with: du -s --apparent-size TREE
    python benchmarks/bare_walk.py TREE --processes 2   # the subject folders dealt round N processes

What fmriprep-cleanup's scan costs above this is its own work; this itself, above du, is Python's. With
``--processes`` the subject folders of a generated tree (TREE/fmriprep/*, its sourcedata/freesurfer/*,
TREE/work/*_wf/*) are shared out one by one, as the tool shares subjects out, so both halves weigh the same.
"""

import argparse
import os
from multiprocessing import get_context

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


def subject_folders(tree: str) -> list[str]:
    """The folders one level below each root of a generated tree (outputs, FreeSurfer, the workflow folder)."""
    workflows = [entry.path for entry in os.scandir(f"{tree}/work") if entry.name.endswith("_wf")]
    return [entry.path for top in (f"{tree}/fmriprep", f"{tree}/fmriprep/sourcedata/freesurfer", *workflows)
            for entry in os.scandir(top) if entry.is_dir(follow_symlinks=False) and entry.name != "sourcedata"]


def walk_all(tops: list[str]) -> tuple[int, int]:
    counted = [walk(top) for top in tops]
    return sum(files for files, _ in counted), sum(total for _, total in counted)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tree")
    parser.add_argument("--processes", type=int, default=0, help="share the subject folders out to N processes")
    args = parser.parse_args()
    if not args.processes:
        print(*walk(args.tree))
    else:
        folders = subject_folders(args.tree)
        with get_context("fork").Pool(args.processes) as pool:
            shares = pool.map(walk_all, [folders[n::args.processes] for n in range(args.processes)])
        print(sum(files for files, _ in shares), sum(total for _, total in shares))
