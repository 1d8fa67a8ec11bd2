"""A plan's rows and where they come: the selection of subjects (BIDS Apps' --participant-label), one planned
file, and a folder's place in the plan's order (so shards of a plan merge into exactly the unsharded order)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

from ..basics.folders import Directory, Entry
from ..basics.paths import below
from ..fmriprep.layout import ScanRoot
from ..rules.classify import Decision


def normalize_label(label: str) -> str:
    """BIDS Apps accept participant labels with or without ``sub-``."""
    return label[4:] if label.startswith("sub-") else label


@dataclass(frozen=True)
class Selection:
    """Which files a command looks at, beyond the rules: BIDS Apps' --participant-label."""

    participant_labels: frozenset[str] | None = None
    excluded_labels: frozenset[str] = frozenset()
    shared_files: bool | None = None  # files of no subject: None = included unless labels are given

    @classmethod
    def from_labels(cls, labels: tuple[str, ...] | list[str] | None,
                    exclude: tuple[str, ...] | list[str] | None = None) -> Selection:
        labels = [normalize_label(label) for label in labels or () if label.strip()]
        excluded = frozenset(normalize_label(label) for label in exclude or () if label.strip())
        return cls(frozenset(labels) if labels else None, excluded)

    def wants(self, subject: str | None) -> bool:
        if subject is None:
            return self.participant_labels is None if self.shared_files is None else self.shared_files
        if subject in self.excluded_labels:
            return False
        return self.participant_labels is None or subject in self.participant_labels

    @classmethod
    def shared_only(cls) -> Selection:
        """Only the files of no subject: what a sharded scan reads last, once every subject's status is known."""
        return cls(frozenset(), frozenset(), True)


class PlannedFile(NamedTuple):
    path: str  # absolute
    root: str  # the scan root it was found under
    scope: str
    subject: str | None
    size: int
    allocated: int
    mtime: float
    dev: int
    ino: int
    nlink: int
    action: str  # "keep" | "junk"
    category: str
    rule_id: str
    ctime: float = 0.0  # as the scan saw it; acting re-checks it (0: unknown, the file counts as changed)
    annex: int = 0  # basics.annex: NOT_ANNEXED, PRESENT (dropped, never unlinked) or ELSEWHERE (nothing to free)


Row = tuple[Entry, "str | None", Decision]  # a file, its subject, its decision


class SubjectRows:
    """The rows of a folder whose files are all one subject's, a decision each (``decisions``, in name order), as
    the memo of a folder's shape gives them: made into rows only when iterated. A report adds them up by
    decision (``groups``: each decision with the positions of its files) from the lstat results, without
    making a record per file."""

    __slots__ = ("folder", "subject", "decisions", "groups")

    def __init__(self, folder: Directory, subject: str | None, decisions: tuple[Decision, ...],
                 groups: tuple[tuple[Decision, tuple[int, ...]], ...] | None = None) -> None:
        self.folder, self.subject, self.decisions = folder, subject, decisions
        self.groups = groups if groups is not None else decision_groups(decisions)

    def __iter__(self) -> Iterator[Row]:
        return zip(self.folder.files, repeat(self.subject), self.decisions)

    def has_junk(self) -> bool:
        return any(decision.action == "junk" for decision, _ in self.groups)


def decision_groups(decisions: tuple[Decision, ...]) -> tuple[tuple[Decision, tuple[int, ...]], ...]:
    """Each distinct decision (in order of first use) with the positions of the files it decides."""
    positions: dict[int, tuple[Decision, list[int]]] = {}
    for position, decision in enumerate(decisions):
        positions.setdefault(id(decision), (decision, []))[1].append(position)
    return tuple((decision, tuple(found)) for decision, found in positions.values())


# A classified folder: (folder, subject, decision, None) when one subject and one decision cover all its files,
# else (folder, None, None, its rows).
Classified = tuple[Directory, "str | None", "Decision | None", "list[Row] | SubjectRows | None"]


# Where a folder's files come in a plan: (0, "", root number, walk key) in the walk, at a folder or right
# after one; (1, subject) at the end for a subject the scan never finished; (2,) last, for every subject.
Place = tuple


AFTER = "\U0010ffff"  # sorts after every name: the place right after a folder and everything below it


def walk_positions(roots: list[ScanRoot]) -> dict[str, tuple[int, str]]:
    """For each scan root, the number of the top root the walk reaches it from (a root inside another is
    walked where the walk meets it) and its path below that top."""
    tops = [root for root in roots if not any(below(root.path, other.path) for other in roots if other is not root)]
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
    return 0, "", number, relpath.replace("/", "\0")


def place_after(place: Place) -> Place:
    """The place right after a folder and everything below it."""
    number, key = place[2], place[3]
    return 0, "", number, f"{key}\0{AFTER}" if key else AFTER


def decided_rows(classified: Classified) -> Iterable[Row]:
    """A classified folder's (entry, subject, decision) rows."""
    folder, subject, shared, decided = classified
    if decided is None:
        assert shared is not None  # one decision for the whole folder
        return ((entry, subject, shared) for entry in folder.files)
    return decided


def file_decisions(classified: Classified) -> Sequence[Decision] | None:
    """Each file's decision, in name order, when the classified folder is every file of the folder (a whole
    folder, or its memoised rows): what a plan line needs besides the lstat result. None otherwise."""
    folder, _, shared, decided = classified
    if decided is None:
        assert shared is not None  # one decision for the whole folder
        return [shared] * len(folder.names)
    if isinstance(decided, SubjectRows):
        return decided.decisions
    return None


def planned_files(classified: Classified) -> Iterator[PlannedFile]:
    """A classified folder's files as plan rows."""
    folder = classified[0]
    base, root, scope = folder.path + "/", folder.root.path, folder.root.scope
    for entry, file_subject, decision in decided_rows(classified):
        yield PlannedFile(
            base + entry.name, root, scope, file_subject, entry.size, entry.allocated, entry.mtime,
            entry.dev, entry.ino, entry.nlink, decision.action, decision.category, decision.rule_id,
            entry.ctime, entry.annex,
        )
