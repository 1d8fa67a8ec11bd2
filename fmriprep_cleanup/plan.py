"""The plan: every scanned file with its decision, streamed, and the totals built from it.

``Plan`` is a recipe, not a list: iterating it walks the dataset once and
yields one ``PlannedFile`` at a time, so a million files never sit in memory.
``summarize`` folds that stream into per-category and per-subject counts.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple, Sequence

from .classify import (Classifier, Decision, FileFacts, folder_labels, name_shape, path_shape, subject_of_folder,
                       subject_of_root_file)
from .discover import Dataset, ScanRoot
from .rulesets import RuleSet
from .scan import Directory, Entry, Warnings, walk

if TYPE_CHECKING:
    from .status import StatusBook


def normalize_label(label: str) -> str:
    """BIDS Apps accept participant labels with or without ``sub-``."""
    return label[4:] if label.startswith("sub-") else label


@dataclass(frozen=True)
class Selection:
    """Which files a command looks at, beyond the rules: BIDS Apps' --participant-label."""

    participant_labels: frozenset[str] | None = None
    excluded_labels: frozenset[str] = frozenset()

    @classmethod
    def from_labels(cls, labels: tuple[str, ...] | list[str] | None,
                    exclude: tuple[str, ...] | list[str] | None = None) -> "Selection":
        labels = [normalize_label(label) for label in labels or () if label.strip()]
        excluded = frozenset(normalize_label(label) for label in exclude or () if label.strip())
        return cls(frozenset(labels) if labels else None, excluded)

    def wants(self, subject: str | None) -> bool:
        if subject in self.excluded_labels:
            return False
        return self.participant_labels is None or subject in self.participant_labels


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


@dataclass
class Plan:
    """What the rules decide for every file of a dataset (computed on iteration)."""

    dataset: Dataset
    ruleset: RuleSet
    selection: Selection = field(default_factory=Selection)
    now: float = field(default_factory=time.time)
    warnings: Warnings = field(default_factory=Warnings)
    state_dir: str | None = None  # never scanned; the dataset's own state directory by default
    jobs: int = 1  # folders listed at once (threads); see scan.walk
    min_age: float = 3600.0  # activity this recent means a subject is still running
    book: "StatusBook | None" = field(default=None, repr=False)  # run statuses, judged during the scan

    def run_statuses(self) -> dict:
        """The run status (finished, failed, running...) of each selected subject: after an iteration they
        come from what the scan read; before, each subject's folders are read for it."""
        return self.status_book().statuses(self.selection.wants)

    def status_book(self) -> "StatusBook":
        """The subjects' run statuses: the scan feeds it, a question before the scan reads for itself."""
        if self.book is None:
            from .status import StatusBook

            self.book = StatusBook(self.dataset, self.now, self.min_age)
        return self.book

    def folders(self) -> Iterator[tuple[Directory, str | None, Decision | None, list[tuple[Entry, str | None, Decision]] | None]]:
        """Each scanned folder, classified: (folder, subject, decision, None) when one subject and one
        decision cover all its files (no per-file work at all), else (folder, None, None, per-file list).

        Where the rules look at run statuses, a subject's folders are held back until the scan has left
        them and the subject can be judged from the file times the scan read; folders of no subject wait
        for the end when a rule asks about every subject (any_subject_status). So the working directory's
        shared folders come last; every other folder comes in scan order.
        """
        book = self.status_book()  # fed by the scan even when no rule asks: reports show the statuses
        classifier = Classifier(self.ruleset, self.now, book)
        selection = self.selection
        skip_dir = None
        if selection.participant_labels is not None or selection.excluded_labels:
            def skip_dir(root: ScanRoot, relpath: str, name: str) -> bool:
                subject = subject_of_folder(root.scope, f"{relpath}/{name}" if relpath else name)
                return subject is not None and not selection.wants(subject)

        # Derivatives repeat the same files for every subject: where no rule can tell labels apart, the
        # decision for a path shape (labels blanked) is made once and reused. Capped, to stay bounded.
        memo: dict[tuple, Decision] | None = {} if classifier.decisions_repeat_across_labels else None
        exclude = frozenset({self.dataset.state_dir, self.state_dir or self.dataset.state_dir})
        open_folder = None  # the subject folder (output or working directory) the scan is in
        inside = ""  # its path and a slash: the folders below it are its subject's
        held: list[tuple[Directory, str | None]] = []  # its folders, until its subject can be judged
        last: list[Directory] = []  # folders of no subject that wait for every subject's status
        for folder in walk(self.dataset.scan_roots, self.warnings, skip_dir, exclude, self.jobs):
            scope = folder.root.scope
            if open_folder is not None and folder.path.startswith(inside):
                subject = open_subject
            else:
                if open_folder is not None:
                    book.walked(open_folder)
                    open_folder = None
                    for waiting, waiting_subject in held:
                        classified = self._classified(waiting, waiting_subject, classifier, memo)
                        if classified is not None:
                            yield classified
                    held.clear()
                subject = subject_of_folder(scope, folder.relpath)
                if subject is not None and book.subject_folder(folder.path) == subject:
                    open_folder, open_subject, inside = folder.path, subject, folder.path + "/"
            if not folder.files:
                continue
            if open_folder is not None:
                book.saw(open_folder, folder.files)
                if classifier.scope_rules(scope).uses_status and (held or not book.ready(subject)):
                    held.append((folder, subject))
                    continue
            elif subject is None and classifier.scope_rules(scope).uses_any_status:
                if selection.wants(None):
                    last.append(folder)
                continue
            classified = self._classified(folder, subject, classifier, memo)
            if classified is not None:
                yield classified
        if open_folder is not None:
            book.walked(open_folder)
        for waiting, waiting_subject in held:
            classified = self._classified(waiting, waiting_subject, classifier, memo)
            if classified is not None:
                yield classified
        for folder in last:
            classified = self._classified(folder, None, classifier, memo)
            if classified is not None:
                yield classified

    def _classified(self, folder: Directory, folder_subject: str | None, classifier: Classifier,
                    memo: dict[tuple, Decision] | None) -> tuple | None:
        """One folder's files with their decisions, as ``folders`` yields them (None if none is selected)."""
        selection = self.selection
        scope = folder.root.scope
        at_root = not folder.relpath and scope in ("derivatives", "other")
        if not at_root and not selection.wants(folder_subject):
            return None
        shared = classifier.folder_decision(scope)  # cheap, per scope: the whole working directory
        rules, fallback = (), classifier.default
        if shared is None:
            rules, fallback = classifier.folder_plan(scope, folder.relpath, folder_subject, mixed_subjects=at_root)
            if not rules:
                shared = fallback
        if shared is not None and not at_root:
            return folder, folder_subject, shared, None
        decided = []
        rules_key = (scope, tuple(rule.id for rule, _ in rules), fallback.rule_id) if shared is None else None
        # memo keys: the folder's shape once, then each name with the folder's labels blanked
        prefix_shape = path_shape(folder.relpath + "/") if folder.relpath else ""
        labels = folder_labels(folder.relpath)
        for entry in folder.files:
            subject = subject_of_root_file(entry.name) if at_root else folder_subject
            if not selection.wants(subject):
                continue
            decision = shared
            if decision is None:
                status = classifier.status_for(scope, subject)
                key = (rules_key, status, prefix_shape + name_shape(entry.name, labels)) if memo is not None else None
                decision = memo.get(key) if key is not None else None
                if decision is None:
                    decision = classifier.decide(
                        FileFacts(scope, folder.relpath, entry.name, entry.size, entry.mtime, subject,
                                  status, classifier.present_statuses), rules, fallback)
                    if key is not None and len(memo) < MEMO_LIMIT:
                        memo[key] = decision
            decided.append((entry, subject, decision))
        return (folder, None, None, decided) if decided else None

    def __iter__(self) -> Iterator[PlannedFile]:
        for folder, subject, shared, decided in self.folders():
            base, root, scope = folder.path + "/", folder.root.path, folder.root.scope
            rows = ((entry, subject, shared) for entry in folder.files) if decided is None else decided
            for entry, file_subject, decision in rows:
                yield PlannedFile(
                    base + entry.name, root, scope, file_subject, entry.size, entry.allocated, entry.mtime,
                    entry.dev, entry.ino, entry.nlink, decision.action, decision.category, decision.rule_id,
                )

    def summarize(self, progress: Callable[[int, int], None] | None = None) -> "Summary":
        """Fold the plan into totals; folders with one decision are added in one step."""
        summary = Summary()
        for folder, subject, shared, decided in self.folders():
            if decided is None:
                summary.add_folder(folder, folder.files, subject, shared)
            else:  # files of one subject with one decision are added together
                groups: dict[tuple[str | None, int], tuple[Decision, list[Entry]]] = {}
                for entry, file_subject, decision in decided:
                    groups.setdefault((file_subject, id(decision)), (decision, []))[1].append(entry)
                for (file_subject, _), (decision, entries) in groups.items():
                    summary.add_folder(folder, entries, file_subject, decision)
            if progress is not None:
                progress(len(folder.files), sum(entry.size for entry in folder.files))
        return summary


SIZE, ALLOCATED, NLINK = operator.attrgetter("size"), operator.attrgetter("allocated"), operator.attrgetter("nlink")
MEMO_LIMIT = 200_000  # path shapes remembered; a derivatives dataset has a few thousand
FOLDER_DEPTH = 3  # e.g. work/fmriprep_23_2_wf/sub_01_wf/bold_task_rest_wf, derivatives/sub-01/ses-1/func
COUNT_FIELDS = ("files", "bytes", "allocated_bytes", "keep_files", "keep_bytes", "junk_files", "junk_bytes")


@dataclass
class Counts:
    files: int = 0
    bytes: int = 0
    allocated_bytes: int = 0
    keep_files: int = 0
    keep_bytes: int = 0
    junk_files: int = 0
    junk_bytes: int = 0

    def add(self, action: str, files: int, size: int, allocated: int) -> None:
        self.files += files
        self.bytes += size
        self.allocated_bytes += allocated
        if action == "junk":
            self.junk_files += files
            self.junk_bytes += size
        else:
            self.keep_files += files
            self.keep_bytes += size

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNT_FIELDS}


@dataclass
class Summary:
    """Totals of a plan. A file with several hard links counts its bytes once."""

    totals: Counts = field(default_factory=Counts)
    by_category: dict[str, Counts] = field(default_factory=dict)
    by_subject: dict[str | None, Counts] = field(default_factory=dict)
    junk_by_folder: dict[str, int] = field(default_factory=dict)  # folders FOLDER_DEPTH deep below their root
    bytes_by_subject_scope: dict[tuple[str | None, str], int] = field(default_factory=dict)
    kept_by_subject_scope: dict[tuple[str | None, str], int] = field(default_factory=dict)
    _seen_inodes: set[tuple[int, int]] = field(default_factory=set, repr=False)

    def add_folder(self, folder: Directory, entries: Sequence[Entry], subject: str | None, decision: Decision) -> None:
        """Count files of one folder that share a subject and a decision."""
        if max(map(NLINK, entries)) == 1:  # the usual case, summed without a Python loop
            size, allocated = sum(map(SIZE, entries)), sum(map(ALLOCATED, entries))
        else:
            size = allocated = 0
            for entry in entries:
                if entry.nlink > 1:
                    inode = (entry.dev, entry.ino)
                    if inode in self._seen_inodes:
                        continue  # counted as a file below, but its bytes only once
                    self._seen_inodes.add(inode)
                size += entry.size
                allocated += entry.allocated
        files, action = len(entries), decision.action
        self.totals.add(action, files, size, allocated)
        category = self.by_category.get(decision.category)
        if category is None:
            category = self.by_category[decision.category] = Counts()
        category.add(action, files, size, allocated)
        per_subject = self.by_subject.get(subject)
        if per_subject is None:
            per_subject = self.by_subject[subject] = Counts()
        per_subject.add(action, files, size, allocated)
        key = (subject, folder.root.scope)
        self.bytes_by_subject_scope[key] = self.bytes_by_subject_scope.get(key, 0) + size
        if action == "keep":
            self.kept_by_subject_scope[key] = self.kept_by_subject_scope.get(key, 0) + size
        if action == "junk" and size:
            parts = folder.relpath.split("/")[:FOLDER_DEPTH] if folder.relpath else []
            key = "/".join([folder.root.path, *parts])
            self.junk_by_folder[key] = self.junk_by_folder.get(key, 0) + size

    def largest_junk_folders(self, count: int = 10) -> list[tuple[str, int]]:
        return sorted(self.junk_by_folder.items(), key=lambda item: (-item[1], item[0]))[:count]


def build_plan(dataset: Dataset, ruleset: RuleSet, selection: Selection | None = None, now: float | None = None,
               state_dir: str | None = None) -> Plan:
    """The plan for a dataset under a rule set (nothing is scanned until it is iterated)."""
    return Plan(dataset, ruleset, selection or Selection(), now if now is not None else time.time(), state_dir=state_dir)

