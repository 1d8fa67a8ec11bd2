"""A plan's rows: one planned file, and a classified folder in the three shapes the classifier gives it - every
file under one decision (``WholeFolder``), every file of one subject with a decision each (``SubjectRows``, as
the memo of a folder's shape gives them), or some files each with its subject and decision (``FileRows``). All
three answer the same questions, so no caller asks which shape it holds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import NamedTuple

from ..basics.folders import Directory, Entry
from ..rules.classify import Decision


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


Row = tuple[int, "str | None", Decision]  # a file's position in its folder (name order), its subject, its decision
Group = tuple["str | None", Decision, "tuple[int, ...] | None"]  # a subject and a decision, with the positions of
# the files they cover (None: every file of the folder)


class WholeFolder(NamedTuple):
    """Every file of a folder, of one subject (or none), under one decision: no per-file work at all."""

    folder: Directory
    subject: str | None
    decision: Decision

    def positioned(self) -> Iterator[Row]:
        return zip(range(len(self.folder.names)), repeat(self.subject), repeat(self.decision))

    def rows(self) -> Iterator[tuple[Entry, str | None, Decision]]:
        return zip(self.folder.files, repeat(self.subject), repeat(self.decision))

    def groups(self) -> Iterator[Group]:
        yield self.subject, self.decision, None

    def file_decisions(self) -> Sequence[Decision] | None:
        return [self.decision] * len(self.folder.names)

    def has_junk(self) -> bool:
        return self.decision.action == "junk"

    def first_name(self) -> str:
        return self.folder.names[0]


class SubjectRows:
    """Every file of a folder of one subject, a decision each (``decisions``, in name order), as the memo of a
    folder's shape gives them: made into rows only when iterated. ``groups``: each decision with the positions
    of its files, so a report adds them up from the lstat results without a record per file."""

    __slots__ = ("folder", "subject", "decisions", "decision_groups")

    def __init__(self, folder: Directory, subject: str | None, decisions: tuple[Decision, ...],
                 groups: tuple[tuple[Decision, tuple[int, ...]], ...] | None = None) -> None:
        self.folder, self.subject, self.decisions = folder, subject, decisions
        self.decision_groups = groups if groups is not None else decision_groups(decisions)

    def positioned(self) -> Iterator[Row]:
        return zip(range(len(self.decisions)), repeat(self.subject), self.decisions)

    def rows(self) -> Iterator[tuple[Entry, str | None, Decision]]:
        return zip(self.folder.files, repeat(self.subject), self.decisions)

    def groups(self) -> Iterator[Group]:
        for decision, positions in self.decision_groups:
            yield self.subject, decision, positions

    def file_decisions(self) -> Sequence[Decision] | None:
        return self.decisions

    def has_junk(self) -> bool:
        return any(decision.action == "junk" for decision, _ in self.decision_groups)

    def first_name(self) -> str:
        return self.folder.names[0]


class FileRows(NamedTuple):
    """Some files of a folder (``decided``: in name order), each with its subject and its decision: a folder
    holding several subjects' files, files held back one by one, or a part of a folder."""

    folder: Directory
    decided: list[Row]

    def positioned(self) -> Iterator[Row]:
        return iter(self.decided)

    def rows(self) -> Iterator[tuple[Entry, str | None, Decision]]:
        files = self.folder.files
        return ((files[position], subject, decision) for position, subject, decision in self.decided)

    def groups(self) -> Iterator[Group]:
        """The files of one subject and one decision together, in order of first appearance."""
        found: dict[tuple[str | None, int], tuple[Decision, list[int]]] = {}
        for position, subject, decision in self.decided:
            found.setdefault((subject, id(decision)), (decision, []))[1].append(position)
        for (subject, _), (decision, positions) in found.items():
            yield subject, decision, tuple(positions)

    def file_decisions(self) -> Sequence[Decision] | None:
        return None  # not every file of the folder, or not all alike

    def has_junk(self) -> bool:
        return any(decision.action == "junk" for _, _, decision in self.decided)

    def first_name(self) -> str:
        return self.folder.names[self.decided[0][0]]


Classified = WholeFolder | SubjectRows | FileRows


def decision_groups(decisions: tuple[Decision, ...]) -> tuple[tuple[Decision, tuple[int, ...]], ...]:
    """Each distinct decision (in order of first use) with the positions of the files it decides."""
    positions: dict[int, tuple[Decision, list[int]]] = {}
    for position, decision in enumerate(decisions):
        positions.setdefault(id(decision), (decision, []))[1].append(position)
    return tuple((decision, tuple(found)) for decision, found in positions.values())


def planned_files(classified: Classified) -> Iterator[PlannedFile]:
    """A classified folder's files as plan rows."""
    folder = classified.folder
    base, root, scope = folder.path + "/", folder.root.path, folder.root.scope
    for entry, file_subject, decision in classified.rows():
        yield PlannedFile(
            base + entry.name, root, scope, file_subject, entry.size, entry.allocated, entry.mtime,
            entry.dev, entry.ino, entry.nlink, decision.action, decision.category, decision.rule_id,
            entry.ctime, entry.annex,
        )
