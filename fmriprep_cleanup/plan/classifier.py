"""A folder's files with their decisions: the rules (made once per path shape and reused for every subject where
no rule can tell labels apart), fMRIPrep's scope of the working directory, git's own files and the evidence no
rule may take. What must wait for a subject's status is held back afterwards (holds.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..basics.folders import Directory, Entry
from ..rules.classify import (
    GIT_OWN,
    LEFT_ALONE,
    Classifier,
    Decision,
    FileFacts,
    folder_labels,
    name_shape,
    path_shape,
    subject_of_root_file,
)
from ..rules.model import Rule
from .holds import git_own, holds_git_own, left_out_kept, owned, protected, work_folder_kept
from .rows import Classified, FileRows, Row, SubjectRows, WholeFolder, decision_groups
from .selection import Selection

if TYPE_CHECKING:
    from ..fmriprep.status import StatusBook

MEMO_LIMIT = 200_000  # path shapes remembered; a derivatives dataset has a few thousand
FolderRules = tuple[tuple[tuple[Rule, Decision], ...], Decision]  # the rules left for a folder, and its fallback


@dataclass
class Memo:
    """Decisions made once for a path shape (labels blanked) and reused for every subject: by file, and for a
    whole folder by its names (the same folder of the next subject), so most folders cost one lookup."""

    files: dict[tuple, Decision] = field(default_factory=dict)
    folders: dict[tuple, tuple[tuple[Decision, ...], tuple[tuple[Decision, tuple[int, ...]], ...]]] = field(
        default_factory=dict)  # a folder's shape -> its files' decisions, and them grouped (rows.decision_groups)


class FolderClassifier:
    """The rules and what overrules them, applied a folder at a time, for the files ``selection`` wants."""

    def __init__(self, classifier: Classifier, book: StatusBook, selection: Selection, memoise: bool = True) -> None:
        self.rules, self.book, self.selection = classifier, book, selection
        # Derivatives repeat the same files for every subject: where no rule can tell labels apart, the
        # decision for a path shape (labels blanked) is made once and reused. Capped, to stay bounded.
        self.memo = Memo() if memoise and classifier.decisions_repeat_across_labels else None

    def classify(self, folder: Directory, folder_subject: str | None) -> Classified | None:
        """One folder's files with the decisions of the rules, fMRIPrep's scope and the protected evidence
        applied; None if no file of it is selected."""
        selection, scope = self.selection, folder.root.scope
        if not owned(folder):  # in -w, but not a folder fMRIPrep created
            return WholeFolder(folder, None, LEFT_ALONE) if selection.wants(None) else None
        left_out = self.book.left_out(folder.path) if self.book.left_out_folders else None
        if left_out is not None:  # another run's working directory inside the output
            return WholeFolder(folder, folder_subject, left_out_kept(left_out)) \
                if selection.wants(folder_subject) else None
        held = self.book.held_work_folder(folder.root.path) if scope == "workdir" else None
        if held is not None:  # a Nipoppy participant-session not SUCCESS: the cache of its re-run
            return WholeFolder(folder, folder_subject, work_folder_kept(held)) \
                if selection.wants(folder_subject) else None
        at_root = not folder.relpath and scope in ("derivatives", "other")
        if not at_root and not selection.wants(folder_subject):
            return None
        mixed = at_root or (not folder.relpath and folder.root.fmriprep_entries_only)  # not all one subject's
        git_files = holds_git_own(folder.names)  # git's own files are decided one by one, never junk
        guarded = self.book.guards(scope, folder.relpath) or (scope == "derivatives" and not folder.relpath)
        shared = self.rules.folder_decision(scope)  # cheap, per scope: the whole working directory
        rules: FolderRules = ((), self.rules.default)
        if shared is None:
            rules = self.rules.folder_plan(scope, folder.relpath, folder_subject, mixed_subjects=at_root)
            shared = None if rules[0] else rules[1]
        if shared is not None and not mixed and not git_files and not (guarded and shared.action == "junk"):
            return WholeFolder(folder, folder_subject, shared)
        if self.memo is not None and shared is None and not mixed and not git_files:
            return self._memoised(folder, folder_subject, rules, guarded)
        decided = self._file_by_file(folder, folder_subject, shared, rules, at_root, guarded, git_files)
        return FileRows(folder, decided) if decided else None

    def _memoised(self, folder: Directory, subject: str | None, rules: FolderRules, guarded: bool) -> SubjectRows:
        """A folder of one subject decided as the same folder of an earlier subject was (its names differing
        only by the labels): one lookup for the whole folder instead of one per file."""
        assert self.memo is not None
        scope = folder.root.scope
        names = "\0".join(folder.names)
        for label in folder_labels(folder.relpath):
            names = names.replace(label, label[:4] + "X")
        folder_key = (self._rules_key(scope, rules), self.rules.state_for(scope, subject), _shape_of(folder), names)
        known = self.memo.folders.get(folder_key)
        if known is None:
            decisions = tuple(self._decide(folder, entry, subject, rules) for entry in folder.files)
            known = decisions, decision_groups(decisions)
            if len(self.memo.folders) < MEMO_LIMIT:
                self.memo.folders[folder_key] = known
        if guarded:
            decisions = tuple(protected(scope, folder.relpath, name, self.book) or decision
                              if decision.action == "junk" else decision
                              for name, decision in zip(folder.names, known[0], strict=True))
            return SubjectRows(folder, subject, decisions)
        return SubjectRows(folder, subject, *known)

    def _file_by_file(self, folder: Directory, folder_subject: str | None, shared: Decision | None,
                      rules: FolderRules, at_root: bool, guarded: bool, git_files: bool) -> list[Row]:
        """Each selected file's decision: its subject (at a dataset's top, from its name), the rules (or the
        decision the whole folder shares), git's own files and the protected evidence."""
        root, scope, selection = folder.root, folder.root.scope, self.selection
        top_of_workdir = not folder.relpath and root.fmriprep_entries_only  # its files are mostly not fMRIPrep's
        shapes = (self._rules_key(scope, rules), _shape_of(folder), folder_labels(folder.relpath))
        decided: list[Row] = []
        for position, entry in enumerate(folder.files):
            if top_of_workdir and not root.owns(entry.name):  # the pipeline's own test, as explain asks it
                if selection.wants(None):
                    decided.append((position, None, LEFT_ALONE))
                continue
            subject = subject_of_root_file(entry.name) if at_root else folder_subject
            if not selection.wants(subject):
                continue
            decision = shared if shared is not None else self._remembered(folder, entry, subject, rules, shapes)
            if git_files and decision.action == "junk" and git_own(entry.name):
                decision = GIT_OWN
            elif guarded and decision.action == "junk":
                decision = protected(scope, folder.relpath, entry.name, self.book) or decision
            decided.append((position, subject, decision))
        return decided

    def _remembered(self, folder: Directory, entry: Entry, subject: str | None, rules: FolderRules,
                    shapes: tuple[tuple, str, tuple[str, ...]]) -> Decision:
        """A file's decision by the rules, from the memo when a file of the same shape was decided before
        (``shapes``: the folder's rules key, its path shape and its labels, worked out once per folder)."""
        if self.memo is None:
            return self._decide(folder, entry, subject, rules)
        rules_key, shape, labels = shapes
        key = (rules_key, self.rules.state_for(folder.root.scope, subject), shape + name_shape(entry.name, labels))
        decision = self.memo.files.get(key)
        if decision is None:
            decision = self._decide(folder, entry, subject, rules)
            if len(self.memo.files) < MEMO_LIMIT:
                self.memo.files[key] = decision
        return decision

    @staticmethod
    def _rules_key(scope: str, rules: FolderRules) -> tuple:
        return scope, tuple(rule.id for rule, _ in rules[0]), rules[1].rule_id

    def _decide(self, folder: Directory, entry: Entry, subject: str | None, rules: FolderRules) -> Decision:
        """One file's decision by the rules left for its folder."""
        scope, classifier = folder.root.scope, self.rules
        return classifier.decide(FileFacts(scope, folder.relpath, entry.name, entry.size, entry.mtime, subject,
                                           classifier.state_for(scope, subject), classifier.present_statuses),
                                 *rules)


def _shape_of(folder: Directory) -> str:
    """A folder's path with its labels blanked (and a slash): the first part of its files' memo keys."""
    return path_shape(folder.relpath + "/") if folder.relpath else ""
