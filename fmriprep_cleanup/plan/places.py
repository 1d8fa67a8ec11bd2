"""Where a folder's files come in a plan: places sort in the plan's order, so the shards of a plan, each placing
its own subjects' folders, merge into exactly the unsharded order."""

from __future__ import annotations

import os
from typing import NamedTuple

from ..basics.folders import Directory, top_roots
from ..basics.paths import below
from ..fmriprep.layout import ScanRoot
from .rows import Classified

AFTER = "\U0010ffff"  # sorts after every name: the place right after a folder and everything below it
IN_WALK, UNFINISHED, LAST = 0, 1, 2  # the stages of a plan's order


class Place(NamedTuple):
    """Where a folder's files come in a plan: in the walk (``number``: the top root it is reached from, ``key``:
    its walk key), at a folder or right after one; at the end for a ``subject`` the scan never finished; last,
    for the files that waited for every subject's status. Places sort in the plan's order."""

    stage: int
    subject: str = ""
    number: int = 0
    key: str = ""

    def as_json(self) -> list[int | str]:
        """As a plan partial writes it: [0, "", number, key], [1, subject] or [2]."""
        return list(self) if self.stage == IN_WALK else [self.stage, self.subject] if self.stage == UNFINISHED \
            else [self.stage]


class PlacedFolder(NamedTuple):
    """A classified folder, where it comes (``place``), and the place of the subject folder (output, FreeSurfer
    or working directory) whose span it comes in, if any: nothing of another subject or of none comes between
    two folders of one span."""

    place: Place
    classified: Classified
    span: Place | None


def walk_positions(roots: list[ScanRoot]) -> dict[str, tuple[int, str]]:
    """For each scan root, the number of the top root the walk reaches it from (a root inside another is
    walked where the walk meets it) and its path below that top."""
    tops = top_roots(roots)
    positions = {}
    for root in roots:
        number, top = next((number, top) for number, top in enumerate(tops) if top is root or below(root.path, top.path))
        positions[root.path] = (number, "" if top is root else os.path.relpath(root.path, top.path))
    return positions


def place_of(positions: dict[str, tuple[int, str]], folder: Directory) -> Place:
    """A folder's place in the walk: the walk is depth first with names sorted, which is the order of these
    keys ("/" as NUL sorts a folder before its subfolders and them before its next sibling)."""
    number, prefix = positions[folder.root.path]
    relpath = f"{prefix}/{folder.relpath}" if prefix and folder.relpath else prefix or folder.relpath
    return Place(IN_WALK, "", number, relpath.replace("/", "\0"))


def place_after(place: Place) -> Place:
    """The place right after a folder and everything below it."""
    return Place(IN_WALK, "", place.number, f"{place.key}\0{AFTER}" if place.key else AFTER)
