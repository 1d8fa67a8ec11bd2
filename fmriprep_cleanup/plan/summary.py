"""The totals a report is made of: a plan folded into counts per category, per subject and per scope.

Nothing is kept per file, so memory stays flat however many files there are; the bytes of a file with several
hard links are settled once every link has been seen (junk only when every link is junk: what clean frees).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..basics.annex import ANNEXED, ELSEWHERE, IN_GIT
from ..basics.folders import Directory, Entry
from ..rules.classify import LEFT_ALONE, Decision
from .places import IN_WALK, Place, place_of
from .rows import Classified

SIZE, ALLOCATED, NLINK = operator.attrgetter("size"), operator.attrgetter("allocated"), operator.attrgetter("nlink")
ANNEX = operator.attrgetter("annex")
FOLDER_DEPTH = 3  # e.g. work/fmriprep_23_2_wf/sub_01_wf/bold_task_rest_wf, derivatives/sub-01/ses-1/func
COUNT_FIELDS = ("files", "bytes", "allocated_bytes", "keep_files", "keep_bytes", "junk_files", "junk_bytes",
                "junk_linked_bytes")
# junk_linked_bytes: junk files whose content a hard link outside the dataset keeps: removing them frees nothing,
# so their bytes are neither kept nor reclaimable; bytes = keep_bytes + junk_bytes + junk_linked_bytes.
# Of those bytes, in a git repository: annexed content that is not on this disk (git-annex has it elsewhere),
# counted in the dataset's size but taking no space here (annexed_bytes: all annexed content, here or not); and
# files stored in git itself, whose removal frees
# only the checkout copy (the content stays in .git/objects) and leaves the dataset modified. Neither is
# reclaimable: see ``reclaimable``.
REPOSITORY_FIELDS = ("annexed_bytes", "elsewhere_bytes", "junk_elsewhere_bytes", "in_git_bytes", "junk_in_git_bytes")


@dataclass
class Counts:
    files: int = 0
    bytes: int = 0
    allocated_bytes: int = 0
    keep_files: int = 0
    keep_bytes: int = 0
    junk_files: int = 0
    junk_bytes: int = 0
    junk_linked_bytes: int = 0
    annexed_bytes: int = 0
    elsewhere_bytes: int = 0
    junk_elsewhere_bytes: int = 0
    in_git_bytes: int = 0
    junk_in_git_bytes: int = 0

    def add(self, action: str, files: int, size: int, allocated: int, elsewhere: int = 0, in_git: int = 0,
            annexed: int = 0) -> None:
        self.files += files
        self.bytes += size
        self.allocated_bytes += allocated
        self.annexed_bytes += annexed
        self.elsewhere_bytes += elsewhere
        self.in_git_bytes += in_git
        if action == "junk":
            self.junk_files += files
            self.junk_bytes += size
            self.junk_elsewhere_bytes += elsewhere
            self.junk_in_git_bytes += in_git
        elif action == "linked":  # junk whose content links outside the dataset keep: its files are counted
            self.junk_linked_bytes += size  # as junk (they are removed), its bytes apart (nothing is freed)
        else:
            self.keep_files += files
            self.keep_bytes += size

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNT_FIELDS + REPOSITORY_FIELDS}



@dataclass
class Summary:
    """Totals of a plan. A file with several hard links counts its bytes once, and as junk only when every one
    of its links is junk (otherwise removing the junk links frees nothing): what clean will really free."""

    totals: Counts = field(default_factory=Counts)
    by_category: dict[str, Counts] = field(default_factory=dict)
    by_subject: dict[str | None, Counts] = field(default_factory=dict)
    junk_by_folder: dict[str, int] = field(default_factory=dict)  # folders FOLDER_DEPTH deep below their root
    bytes_by_subject_scope: dict[tuple[str | None, str], int] = field(default_factory=dict)
    kept_by_subject_scope: dict[tuple[str | None, str], int] = field(default_factory=dict)
    left_alone: dict[str, list[int]] = field(default_factory=dict)  # top entry in -w fMRIPrep did not write -> [files, bytes]
    by_root: dict[str, list[int]] = field(default_factory=dict)  # scan root -> [files, bytes, bytes freed here]
    _links: dict[tuple[int, int], list] = field(default_factory=dict, repr=False)  # inode -> see _later
    _keys: dict[str, list] = field(default_factory=dict, repr=False)  # annex key -> see _later
    _tally: dict[tuple, list[int]] = field(default_factory=dict, repr=False)  # not yet in the counts: see _count
    place: Place = Place(IN_WALK)  # where the folder being added comes in the plan: see _where
    positions: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)  # the walk's (walk_positions)

    def add_classified(self, place: Place, classified: Classified) -> None:
        """Count a classified folder that comes at ``place`` in the plan: its files of one subject and one
        decision together."""
        self.place = place
        for subject, decision, positions in classified.groups():
            self.add_files(classified.folder, positions, subject, decision)

    def add_files(self, folder: Directory, positions: tuple[int, ...] | None, subject: str | None,
                  decision: Decision) -> None:
        """Count the files at ``positions`` (in name order; None: all) of a folder, of one subject and one
        decision: from the lstat results alone when no file is linked twice or annexed (the usual folder),
        without making an entry per file."""
        if decision is not LEFT_ALONE and folder.plain():
            size, allocated, links = folder.totals(positions)
            if links <= 1:
                count = len(folder.names) if positions is None else len(positions)
                self._count(folder, subject, decision, count, size, allocated)
                return
        files = folder.files
        self.add_folder(folder, files if positions is None else [files[position] for position in positions],
                        subject, decision)

    def add_folder(self, folder: Directory, entries: Sequence[Entry], subject: str | None, decision: Decision) -> None:
        """Count files of one folder that share a subject and a decision (the bytes of multiply-linked files
        and of annexed links, whose key other links may share, are settled by ``finish``, once all are seen)."""
        elsewhere = in_git = annexed = 0
        if max(map(NLINK, entries)) == 1 and not any(map(ANNEX, entries)):  # the usual case, without a Python loop
            size, allocated = sum(map(SIZE, entries)), sum(map(ALLOCATED, entries))
        else:
            size = allocated = 0
            for entry in entries:
                if entry.key:  # links sharing an annex key share one content: counted once, junk if all are
                    self._later(self._keys, entry.key, entry, folder, subject, decision)
                elif entry.nlink > 1:
                    self._later(self._links, (entry.dev, entry.ino), entry, folder, subject, decision)
                else:
                    size += entry.size
                    allocated += entry.allocated
                    annexed += entry.size if entry.annex in ANNEXED else 0  # an unlocked file: content or pointer
                    elsewhere += entry.size if entry.annex == ELSEWHERE else 0
                    in_git += entry.size if entry.annex in IN_GIT else 0
        self._count(folder, subject, decision, len(entries), size, allocated, elsewhere, in_git, annexed)
        if decision is LEFT_ALONE:
            if folder.relpath:
                self._left_alone(f"{folder.root.path}/{folder.relpath.split('/', 1)[0]}", len(entries), size)
            else:
                for entry in entries:
                    self._left_alone(f"{folder.root.path}/{entry.name}", 1, entry.size)

    def _count(self, folder: Directory, subject: str | None, decision: Decision, files: int, size: int,
               allocated: int, elsewhere: int = 0, in_git: int = 0, annexed: int = 0, action: str | None = None) -> None:
        """Add to the running tally: one dictionary entry per (action, category, subject, scope), folded into the
        counts by ``_fold`` (one update per folder here instead of three objects' seven fields each)."""
        action = action or decision.action
        key = (action, decision.category, subject, folder.root.scope)
        root = self.by_root.get(folder.root.path)
        if root is None:
            root = self.by_root[folder.root.path] = [0, 0, 0]
        root[0] += files
        root[1] += size
        sums = self._tally.get(key)
        if sums is None:
            self._tally[key] = [files, size, allocated, elsewhere, in_git, annexed]
        else:
            sums[0] += files
            sums[1] += size
            sums[2] += allocated
            if elsewhere or in_git or annexed:
                sums[3] += elsewhere
                sums[4] += in_git
                sums[5] += annexed
        if action == "junk" and size - elsewhere - in_git:  # the folders where space can be freed here
            parts = folder.relpath.split("/", FOLDER_DEPTH)[:FOLDER_DEPTH] if folder.relpath else []
            where = "/".join([folder.root.path, *parts])
            self.junk_by_folder[where] = self.junk_by_folder.get(where, 0) + size - elsewhere - in_git
            root[2] += size - elsewhere - in_git

    def _fold(self) -> None:
        """Move the tally into the counts, in the order its keys were first met (so categories and subjects keep
        the order of the scan)."""
        for (action, category, subject, scope), sums in self._tally.items():
            self.totals.add(action, *sums)
            counts = self.by_category.get(category)
            if counts is None:
                counts = self.by_category[category] = Counts()
            counts.add(action, *sums)
            counts = self.by_subject.get(subject)
            if counts is None:
                counts = self.by_subject[subject] = Counts()
            counts.add(action, *sums)
            key = (subject, scope)
            self.bytes_by_subject_scope[key] = self.bytes_by_subject_scope.get(key, 0) + sums[1]
            if action == "keep":
                self.kept_by_subject_scope[key] = self.kept_by_subject_scope.get(key, 0) + sums[1]
        self._tally.clear()

    def _later(self, records: dict[Any, list], identity: Any, entry: Entry, folder: Directory, subject: str | None,
               decision: Decision) -> None:
        """One more path to a content other paths may share (a hard link: ``identity`` its inode; an annexed link:
        its key), settled by ``finish``: [first entry, paths seen, junk paths, first junk place, first keep place],
        a place being (folder, subject, decision, where the folder comes in the plan: ``_where``)."""
        record = records.get(identity)
        if record is None:
            record = records[identity] = [entry, 0, 0, None, None]
        record[1] += 1
        where = (folder, subject, decision, self._where(folder))
        if decision.action == "junk":
            record[2] += 1
            record[3] = record[3] or where
        else:
            record[4] = record[4] or where

    def _where(self, folder: Directory) -> tuple:
        """Where ``folder`` comes in the plan: its place, then its own place in the walk (asked only for paths to
        shared contents, so not worked out for every folder)."""
        return (self.place, *place_of(self.positions, folder)[2:])

    def absorb(self, other: Summary) -> None:
        """Add an unsettled summary of other folders (another process's share of the subjects): its counts, and
        its paths to shared contents with theirs, the first place of each being the earlier in the plan. Once
        every share is absorbed, ``finish`` settles the whole exactly as one scan would."""
        pending = other._links, other._keys
        other._links, other._keys = {}, {}
        try:
            self.add(other.as_json())
        finally:
            other._links, other._keys = pending
        pairs: tuple[tuple[dict[Any, list], dict[Any, list]], ...] = ((self._links, pending[0]),
                                                                      (self._keys, pending[1]))
        for records, theirs in pairs:
            for identity, (entry, paths, junk_paths, first_junk, first_keep) in theirs.items():
                mine = records.get(identity)
                if mine is None:
                    records[identity] = [entry, paths, junk_paths, first_junk, first_keep]
                    continue
                mine[1] += paths
                mine[2] += junk_paths
                mine[3] = _earlier(mine[3], first_junk)
                mine[4] = _earlier(mine[4], first_keep)

    def finish(self) -> Summary:
        """Settle the bytes of multiply-linked files: junk where every link is junk; kept under the first kept
        link's category where one is kept; junk that frees nothing (junk_linked_bytes, under the first junk
        link's category) where the other links lie outside the dataset."""
        for entry, _, junk_links, first_junk, first_keep in self._links.values():
            if junk_links >= entry.nlink:
                folder, subject, decision, _ = first_junk
                self._count(folder, subject, decision, 0, entry.size, entry.allocated)
            elif first_keep is not None:
                folder, subject, decision, _ = first_keep
                self._count(folder, subject, decision, 0, entry.size, entry.allocated, action="keep")
            else:
                folder, subject, decision, _ = first_junk
                self._count(folder, subject, decision, 0, entry.size, entry.allocated, action="linked")
        self._links.clear()
        for entry, paths, junk_paths, first_junk, first_keep in self._keys.values():
            folder, subject, decision, _ = first_junk if junk_paths == paths else first_keep
            self._count(folder, subject, decision, 0, entry.size, entry.allocated,
                        elsewhere=entry.size if entry.annex == ELSEWHERE else 0, annexed=entry.size,
                        action="junk" if junk_paths == paths else "keep")
        self._keys.clear()
        self._fold()
        return self

    def _left_alone(self, top: str, files: int, size: int) -> None:
        counts = self.left_alone.setdefault(top, [0, 0])
        counts[0] += files
        counts[1] += size

    def as_json(self) -> dict[str, Any]:
        """The settled totals as plain JSON (a shard's partial result; ``finish`` first). No file is listed."""
        assert not self._links and not self._keys, "finish() the summary before writing it"
        self._fold()
        return {
            "totals": self.totals.as_dict(),
            "by_category": {name: counts.as_dict() for name, counts in self.by_category.items()},
            "by_subject": [[subject, counts.as_dict()] for subject, counts in self.by_subject.items()],
            "junk_by_folder": self.junk_by_folder,
            "bytes_by_subject_scope": [[subject, scope, nbytes] for (subject, scope), nbytes
                                       in self.bytes_by_subject_scope.items()],
            "kept_by_subject_scope": [[subject, scope, nbytes] for (subject, scope), nbytes
                                      in self.kept_by_subject_scope.items()],
            "left_alone": self.left_alone,
            "by_root": self.by_root,
        }

    def add(self, other: dict[str, Any]) -> Summary:
        """Add another summary's totals (``as_json``): merging shards gives the counts of the whole."""
        self._fold()  # this summary's own first: categories and subjects keep the order they were met in
        def merged(counts: Counts | None, values: dict[str, int]) -> Counts:
            counts = counts or Counts()
            for name in COUNT_FIELDS + REPOSITORY_FIELDS:
                setattr(counts, name, getattr(counts, name) + int(values.get(name, 0)))
            return counts

        self.totals = merged(self.totals, other["totals"])
        for name, values in other["by_category"].items():
            self.by_category[name] = merged(self.by_category.get(name), values)
        for subject, values in other["by_subject"]:
            self.by_subject[subject] = merged(self.by_subject.get(subject), values)
        for folder, nbytes in other["junk_by_folder"].items():
            self.junk_by_folder[folder] = self.junk_by_folder.get(folder, 0) + nbytes
        for target, rows in ((self.bytes_by_subject_scope, other["bytes_by_subject_scope"]),
                             (self.kept_by_subject_scope, other["kept_by_subject_scope"])):
            for subject, scope, nbytes in rows:
                target[(subject, scope)] = target.get((subject, scope), 0) + nbytes
        for top, (files, nbytes) in other["left_alone"].items():
            self._left_alone(top, files, nbytes)
        for path, values in other["by_root"].items():
            mine = self.by_root.setdefault(path, [0, 0, 0])
            for index, value in enumerate(values):
                mine[index] += value
        return self

    def largest_junk_folders(self, count: int = 10) -> list[tuple[str, int]]:
        return sorted(self.junk_by_folder.items(), key=lambda item: (-item[1], item[0]))[:count]


def _earlier(one: tuple | None, other: tuple | None) -> tuple | None:
    """Of two places (see Summary._later), the one that comes first in the plan."""
    if one is None or other is None:
        return one or other
    return one if one[3] <= other[3] else other
