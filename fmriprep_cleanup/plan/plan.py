"""The plan: every scanned file with its decision, streamed, and the totals built from it.

``Plan`` is a recipe, not a list: iterating it walks the dataset once and
yields one ``PlannedFile`` at a time, so a million files never sit in memory.
``summarize`` folds that stream into per-category and per-subject counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..basics.annex import ELSEWHERE, annexed_files, key_size
from ..basics.errors import CleanupError
from ..basics.folders import Directory, Entry, walk
from ..basics.repository import GIT_NAMES, GitState, git_state
from ..basics.scanlists import ScanList
from ..basics.warnings import Warnings
from ..fmriprep.layout import STATE_DIR_NAME, Dataset, ScanRoot
from ..fmriprep.regeneration import RegenerationBook
from ..fmriprep.workdirs import PathMap
from ..rules.classify import (
    GIT_OWN,
    HELD_RECENT,
    LEFT_ALONE,
    Classifier,
    Decision,
    FileFacts,
    folder_labels,
    name_shape,
    path_shape,
    subject_of_folder,
    subject_of_root_file,
    subject_parts,
)
from ..rules.model import Rule, RuleSet
from .files import (
    Classified,
    Place,
    PlannedFile,
    Selection,
    SubjectRows,
    decision_groups,
    place_after,
    place_of,
    planned_files,
    walk_positions,
)
from .holds import SHARED_SCOPES, Holds, as_unlocked, git_own, holds_git_own, in_git, owned, protected, recent
from .summary import Summary

if TYPE_CHECKING:
    from ..fmriprep.evidence import SubjectStatus
    from ..fmriprep.status import StatusBook


MEMO_LIMIT = 200_000  # path shapes remembered; a derivatives dataset has a few thousand
DEFAULT_MIN_AGE = 3600.0  # activity this recent: fMRIPrep may still be at work


@dataclass
class Learned:
    """What a plan learns while it is walked: the subjects' run statuses (judged from the scan) and the folders
    it could not read. The plan's options never change; this is the only thing about it that does."""

    warnings: Warnings = field(default_factory=Warnings)
    book: StatusBook | None = None
    git: GitState | None = None  # what git says of the dataset's files (asked once, in a git repository)
    git_asked: bool = False
    regeneration: RegenerationBook | None = None  # read for guarded rules (regeneration), a subject at a time


def scan_problems(warnings: Warnings, statuses: dict[str, SubjectStatus]) -> list[str]:
    """The scan's warnings (sorted), then each subject's evidence problems the scan did not already say."""
    scanned = warnings.as_list()
    return scanned + [f"sub-{label}: {warning}" for label, status in sorted(statuses.items())
                      for warning in status.warnings if warning not in scanned]


@dataclass
class Memo:
    """Decisions made once for a path shape (labels blanked) and reused for every subject: by file, and for a
    whole folder by its names (the same folder of the next subject), so most folders cost one lookup."""

    files: dict[tuple, Decision] = field(default_factory=dict)
    folders: dict[tuple, tuple[tuple[Decision, ...], tuple[tuple[Decision, tuple[int, ...]], ...]]] = field(
        default_factory=dict)  # a folder's shape -> its files' decisions, and them grouped (files.decision_groups)


ALLOW_OUTPUT_LOSS = "--allow-output-loss"  # the option that lets clean act on rules junking essential outputs


@dataclass(frozen=True)
class Plan:
    """What happens to every file of a dataset (computed on iteration).

    Each file's decision is made here, in this order: a file in the working directory's folder that fMRIPrep
    did not create is left alone; otherwise the rules decide; a junk decision on the dataset's description or
    on the evidence a subject's status rests on is overruled; and junk that must wait - a running subject's
    files, shared files while some subject runs, anything modified within ``min_age`` - is held back. So
    ``plan --action junk`` lists exactly the files ``clean`` with the same options acts on.
    """

    dataset: Dataset
    ruleset: RuleSet
    selection: Selection = field(default_factory=Selection)
    now: float = field(default_factory=time.time)
    state_dir: str | None = None  # never scanned; the dataset's own state directory by default
    jobs: int = 1  # folders listed at once (threads, for network file systems); see basics.folders.walk
    processes: int = 1  # local processes that scan it, each a share of the subjects (see ops.shards)
    min_age: float = DEFAULT_MIN_AGE  # activity this recent means a subject is still running
    stale_after: float | None = None  # a cache idle this long is stale; None: the rule set's, else 30 days
    path_map: PathMap = ()  # (path a run recorded inside a container, the same path here): its inputs, found
    scan_list: ScanList | None = None  # read instead of walking the disk (basics/scanlists.py)
    learned: Learned = field(default_factory=Learned, repr=False, compare=False)

    @property
    def warnings(self) -> Warnings:
        """Folders the scan could not read, so far."""
        return self.learned.warnings

    def run_statuses(self) -> dict:
        """The run status (finished, failed, running...) of each selected subject: after an iteration they
        come from what the scan read; before, each subject's folders are read for it."""
        return self.status_book().statuses(self.selection.wants)

    def status_book(self) -> StatusBook:
        """The subjects' run statuses: the scan feeds it, a question before the scan reads for itself."""
        if self.learned.book is None:
            from ..fmriprep.status import DEFAULT_STALE_AFTER, StatusBook

            stale_after = next((value for value in (self.stale_after, self.ruleset.stale_after) if value is not None),
                               DEFAULT_STALE_AFTER)
            self.learned.book = StatusBook(self.dataset, self.now, self.min_age, stale_after, self.git_state())
        return self.learned.book

    def guarded(self) -> bool:
        """Some rule is junk only where a guard holds (``guard: regeneration``)."""
        return any(rule.guard for rule in self.ruleset.rules)

    def regeneration(self) -> RegenerationBook | None:
        """Whether each output a guarded rule reclaims can be rebuilt (None when no rule is guarded)."""
        if self.learned.regeneration is None and self.guarded():
            self.learned.regeneration = RegenerationBook(self.dataset, self.path_map)
        return self.learned.regeneration

    def classifier(self) -> Classifier:
        """The rules applied with the subjects' statuses and the guards this plan knows."""
        return Classifier(self.ruleset, self.now, self.status_book(), self.regeneration())

    def git_state(self) -> GitState | None:
        """In a git repository (DataLad, git-annex), which of the dataset's files git tracks and which changed
        since the last commit: asked once (two git queries, nothing written); None outside git."""
        repository = self.dataset.repository
        if repository is not None and not self.learned.git_asked:
            self.learned.git_asked = True
            self.learned.git = git_state(repository, self.dataset.top)
            if self.learned.git is None:
                self.warnings.add(f"{repository.top}: git could not say which files it tracks (is git installed?): "
                                  "every file's time counts as activity, and no file is known to be stored in git")
        return self.learned.git

    def as_scanned(self, entry: Entry, path: str) -> Entry:
        """A file's record as the scan makes it (explain reads one file): in a git repository, stored in git or
        not."""
        git = self.git_state()
        return in_git(entry, path, git) if git is not None else entry

    def check_selection(self) -> None:
        """Refuse a participant label (selected or excluded) that names no subject of the dataset: a typo
        would otherwise report, clean and record nothing, successfully."""
        wanted = (self.selection.participant_labels or frozenset()) | self.selection.excluded_labels
        known = self.status_book().subjects()
        unknown = sorted(wanted - known)
        if unknown:
            names = ", ".join(f"sub-{label}" for label in unknown)
            listed = sorted(known)
            shown = ", ".join(listed[:20]) + (f", ... ({len(listed)} in all)" if len(listed) > 20 else "")
            here = f"subjects here: {shown}" if known else "it has no subjects"
            raise CleanupError(f"no {names} in {self.dataset.path}; {here}")

    def problems(self) -> list[str]:
        """What went wrong reading the dataset: folders the scan could not read, and problems with the selected
        subjects' evidence (complete once the plan has been iterated)."""
        return scan_problems(self.warnings, self.run_statuses() if self.learned.book is not None else {})

    def outputs_at_risk(self) -> list[str]:
        """One line per essential output of the pipeline (reports, confounds, masks: see pipelines/*.yaml) the rule
        set makes junk; empty for any set that keeps what every analysis needs."""
        from ..fmriprep.pipelines import pipeline_by_key
        from ..rules.classify import essential_junk

        found = essential_junk(self.ruleset, pipeline_by_key(self.dataset.pipeline).essential, self.now)
        return [f"the rules make every output like {example} junk (rule {decision.rule_id}): that is more than "
                f"{self.dataset.pipeline_name}'s junk, it is what analyses need; clean refuses it without "
                f"{ALLOW_OUTPUT_LOSS}" for example, decision in found]

    def context_warnings(self) -> list[str]:
        """What a person should be warned of before any scan: what discovery left out, rules that junk
        essential outputs."""
        return list(self.dataset.warnings) + self.outputs_at_risk()

    def all_warnings(self) -> list[str]:
        """``context_warnings``, then the problems reading the dataset."""
        return self.context_warnings() + self.problems()

    def folders(self, progress: Callable[[int, int], None] | None = None) -> Iterator[Classified]:
        """Each scanned folder, classified: (folder, subject, decision, None) when one subject and one
        decision cover all its files (no per-file work at all), else (folder, None, None, per-file list).

        A folder's files whose decision needs a subject's run status (a rule reads it, or some of them are junk
        and the subject may be running) wait until the scan has left every folder of that subject, which is
        then judged from the file times the scan read. Files of no subject wait for the end when a rule
        asks about every subject, or when they are shared junk. So the working directory's shared folders
        come last; every other folder comes in scan order or soon after (a folder holding several subjects'
        files, the dataset's top, may come in parts). ``progress(files, bytes)`` is told after each folder
        the scan reads.
        """
        for _, classified, _ in self.placed_folders(progress):
            yield classified

    def placed_folders(self, progress: Callable[[int, int], None] | None = None
                       ) -> Iterator[tuple[Place, Classified, Place | None]]:
        """``folders`` with where each comes in the plan's order (see ``Place``): shards of a plan, each
        placing its own subjects' folders the same way, merge into exactly the unsharded order. Third, the place
        of the subject folder (output, FreeSurfer or working directory) whose span it comes in, if any: nothing
        of another subject or of none comes between two folders of one span (processes.blocks batches them)."""
        book = self.status_book()  # fed by the scan even when no rule asks: reports show the statuses
        classifier = self.classifier()
        selection = self.selection
        selecting = selection.participant_labels is not None or bool(selection.excluded_labels)

        def skip_dir(root: ScanRoot, relpath: str, name: str) -> bool:
            if name in GIT_NAMES:  # a repository's own folders are never output, whatever repository it is
                return True
            if not selecting or (relpath and relpath.count("/") + 1 >= subject_parts(root.scope)):
                return False  # below the depth that names a subject: its parent's, which the walk entered
            subject = subject_of_folder(root.scope, f"{relpath}/{name}" if relpath else name)
            return subject is not None and root.owns(relpath or name) and not selection.wants(subject)

        # Derivatives repeat the same files for every subject: where no rule can tell labels apart, the
        # decision for a path shape (labels blanked) is made once and reused. Capped, to stay bounded.
        memo = Memo() if classifier.decisions_repeat_across_labels else None
        exclude = frozenset({self.dataset.state_dir, self.state_dir or self.dataset.state_dir,
                             os.path.join(self.dataset.identity, STATE_DIR_NAME),  # where older versions kept it
                             *self.dataset.never_scanned()})
        cutoff = self.now - self.min_age
        holds = Holds(book)
        open_folder: str | None = None  # the subject folder (output, FreeSurfer or working directory) the scan is in
        open_subject: str | None = None
        inside = ""  # its path and a slash: the folders below it are its subject's
        waiting: dict[str, list[tuple[Directory, str | None, Classified | None]]] = {}  # for a subject's status
        last: list[tuple[Directory, str | None, Classified | None]] = []  # for every subject's status

        def settle(place: Place, items: Iterable[tuple[Directory, str | None, Classified | None]],
                   span: Place | None = None) -> Iterator[tuple[Place, Classified, Place | None]]:
            for folder, subject, classified in items:
                if classified is None:
                    classified = self._classified(folder, subject, classifier, memo)
                if classified is not None:
                    yield place, self._held_back(classified, holds, cutoff), span

        def close(label: str) -> Iterator[tuple[Place, Classified, Place | None]]:
            """The scan left a folder of subject ``label``: once all are walked its waiting files come."""
            if book.ready(label):
                yield from settle(place_after(open_place), waiting.pop(label, ()), open_place)

        positions = walk_positions(self.dataset.scan_roots)
        open_place: Place = ()

        unlocked = self._unlocked_sizes()
        git = self.git_state()
        sizeless = 0
        walker = self.scan_list.walk if self.scan_list is not None else walk
        for folder in walker(self.dataset.scan_roots, self.warnings, skip_dir, exclude, self.jobs):
            if unlocked:
                folder.files = [as_unlocked(entry, unlocked.get(f"{folder.path}/{entry.name}"))
                                for entry in folder.files]
            if git is not None:
                folder.files = [in_git(entry, f"{folder.path}/{entry.name}", git) for entry in folder.files]
                sizeless += sum(1 for entry in folder.files if entry.annex == ELSEWHERE and key_size(entry.key) is None)
            if progress is not None:
                progress(len(folder.names), folder.size())
            scope = folder.root.scope
            if open_folder is not None and folder.path.startswith(inside):
                subject = open_subject
            else:
                if open_folder is not None:
                    label = book.walked(open_folder)
                    open_folder = None
                    yield from close(label)
                subject = subject_of_folder(scope, folder.relpath) if owned(folder) else None
                if subject is not None and book.subject_folder(folder.path) == subject:
                    open_folder, open_subject, inside = folder.path, subject, folder.path + "/"
                    open_place = place_of(positions, folder)
            if open_folder is not None and folder.problem is not None:
                book.unreadable(open_folder, folder.problem)
            if not folder.names:
                continue  # a folder of folders only (many in a working directory): no activity, no files
            if open_folder is not None:
                book.saw(open_folder, folder.newest())
            scope_rules = classifier.scope_rules(scope)
            if subject is not None and scope_rules.uses_status and not book.ready(subject):
                waiting.setdefault(subject, []).append((folder, subject, None))
                continue
            if subject is None and scope_rules.uses_any_status and owned(folder):
                if selection.wants(None) or not folder.relpath:  # the top holds subjects' files too
                    last.append((folder, subject, None))
                continue
            classified = self._classified(folder, subject, classifier, memo)
            if classified is None:
                continue
            for wait_for, part in self._waits_for(classified, book):
                if wait_for is None:
                    yield (place_of(positions, folder), self._held_back(part, holds, cutoff),
                           open_place if open_folder is not None else None)
                elif wait_for:
                    waiting.setdefault(wait_for, []).append((folder, subject, part))
                else:
                    last.append((folder, subject, part))
        if sizeless:
            self.warnings.add(f"{sizeless} annexed file(s) have git-annex keys without a size (URL keys) and their "
                              "content is not here: their size cannot be known, counted as 0 B (git annex get them "
                              "to count them)")
        if open_folder is not None:
            yield from close(book.walked(open_folder))
        for label in sorted(waiting):  # subjects the scan never finished walking (a folder could not be read)
            yield from settle((1, label), waiting[label])
        yield from settle((2,), last)

    def _unlocked_sizes(self) -> dict[str, int]:
        """In an unlocked (adjusted) git-annex branch, the annexed files and their contents' sizes: a file is
        the content or a pointer file, which only git-annex can tell (one call for the whole dataset)."""
        repository = self.dataset.repository
        if repository is None or not repository.annexed or not repository.unlocked:
            return {}
        sizes = annexed_files(repository.top)
        if sizes is None:
            self.warnings.add(f"{repository.top}: an unlocked git-annex branch, and git-annex is not installed "
                              "or failed: unlocked files are counted as the files they are (pointers as ~100 B)")
            return {}
        return sizes

    def decide_folder(self, folder: Directory, folder_subject: str | None) -> Classified | None:
        """A folder's files with their final decisions, whether selected or not, by the very steps iterating the
        plan takes (rules, what overrules them, what must wait): how explain judges a file."""
        classified = self._classified(folder, folder_subject, self.classifier(), None, Selection())
        return None if classified is None else self._held_back(classified, Holds(self.status_book()),
                                                                self.now - self.min_age)

    def _classified(self, folder: Directory, folder_subject: str | None, classifier: Classifier,
                    memo: Memo | None, selection: Selection | None = None) -> Classified | None:
        """One folder's files with the decisions of the rules, fMRIPrep's scope and the protected evidence
        applied (None if no file of it is selected; ``selection``: another than the plan's); what must wait is
        held back later (``_held_back``)."""
        selection = selection or self.selection
        root = folder.root
        scope = root.scope
        if not owned(folder):  # in -w, but not a folder fMRIPrep created
            return (folder, None, LEFT_ALONE, None) if selection.wants(None) else None
        at_root = not folder.relpath and scope in ("derivatives", "other")
        top_of_workdir = not folder.relpath and root.fmriprep_entries_only  # its files are mostly not fMRIPrep's
        if not at_root and not selection.wants(folder_subject):
            return None
        git_files = holds_git_own(folder.names)  # git's own files are decided one by one, never junk
        book = self.status_book()
        guarded = book.guards(scope, folder.relpath) or (scope == "derivatives" and not folder.relpath)
        shared = classifier.folder_decision(scope)  # cheap, per scope: the whole working directory
        rules: tuple[tuple[Rule, Decision], ...] = ()
        fallback = classifier.default
        if shared is None:
            rules, fallback = classifier.folder_plan(scope, folder.relpath, folder_subject, mixed_subjects=at_root)
            if not rules:
                shared = fallback
        if shared is not None and not at_root and not top_of_workdir and not git_files \
                and not (guarded and shared.action == "junk"):
            return folder, folder_subject, shared, None
        decided: list[tuple[Entry, str | None, Decision]] = []
        rules_key = (scope, tuple(rule.id for rule, _ in rules), fallback.rule_id) if shared is None else None
        # memo keys: the folder's shape once, then each name with the folder's labels blanked
        prefix_shape = path_shape(folder.relpath + "/") if folder.relpath else ""
        labels = folder_labels(folder.relpath)
        if memo is not None and shared is None and not at_root and not top_of_workdir and not git_files:
            # the same folder of the next subject (its names differing only by the labels) decides alike:
            # one lookup for the whole folder instead of one per file
            names = "\0".join(folder.names)
            for label in labels:
                names = names.replace(label, label[:4] + "X")
            folder_key = (rules_key, classifier.state_for(scope, folder_subject), prefix_shape, names)
            known = memo.folders.get(folder_key)
            if known is None:
                decisions = tuple(self._decide(folder, entry, folder_subject, classifier, rules, fallback)
                                  for entry in folder.files)
                known = decisions, decision_groups(decisions)
                if len(memo.folders) < MEMO_LIMIT:
                    memo.folders[folder_key] = known
            if guarded:
                decisions = tuple(protected(scope, folder.relpath, name, book) or decision
                                  if decision.action == "junk" else decision
                                  for name, decision in zip(folder.names, known[0], strict=True))
                return folder, None, None, SubjectRows(folder, folder_subject, decisions)
            return folder, None, None, SubjectRows(folder, folder_subject, *known)
        for entry in folder.files:
            if top_of_workdir and not root.owns(entry.name):  # the pipeline's own test, as explain asks it
                if selection.wants(None):
                    decided.append((entry, None, LEFT_ALONE))
                continue
            subject = subject_of_root_file(entry.name) if at_root else folder_subject
            if not selection.wants(subject):
                continue
            decision = shared
            if decision is None:
                state = classifier.state_for(scope, subject)
                key = None if memo is None else (rules_key, state, prefix_shape + name_shape(entry.name, labels))
                decision = None if memo is None or key is None else memo.files.get(key)
                if decision is None:
                    decision = self._decide(folder, entry, subject, classifier, rules, fallback)
                    if memo is not None and key is not None and len(memo.files) < MEMO_LIMIT:
                        memo.files[key] = decision
            if git_files and decision.action == "junk" and git_own(entry.name):
                decision = GIT_OWN
            elif guarded and decision.action == "junk":
                decision = protected(scope, folder.relpath, entry.name, book) or decision
            decided.append((entry, subject, decision))
        return (folder, None, None, decided) if decided else None

    @staticmethod
    def _decide(folder: Directory, entry: Entry, subject: str | None, classifier: Classifier,
                rules: tuple[tuple[Rule, Decision], ...], fallback: Decision) -> Decision:
        """One file's decision by the rules left for its folder."""
        scope = folder.root.scope
        return classifier.decide(FileFacts(scope, folder.relpath, entry.name, entry.size, entry.mtime, subject,
                                           classifier.state_for(scope, subject), classifier.present_statuses),
                                 rules, fallback)

    @staticmethod
    def _waits_for(classified: Classified, book: StatusBook) -> list[tuple[str | None, Classified]]:
        """A folder's files split by whether their junk must wait before it can be held back or let go: None
        (no), a subject (until its folders are walked) or "" (until the end: shared junk). The files of one
        subject wait together; so do the files of no subject."""
        folder, subject, shared, decided = classified
        if decided is None or isinstance(decided, SubjectRows):  # one subject: all its files come at once
            if isinstance(decided, SubjectRows):
                subject = decided.subject
                has_junk = decided.has_junk()
            else:
                has_junk = shared is not None and shared.action == "junk"
            if not has_junk:
                return [(None, classified)]
            if subject is None:
                return [("" if folder.root.scope in SHARED_SCOPES else None, classified)]
            return [(None if book.ready(subject) else subject, classified)]
        junk_of = {file_subject for _, file_subject, decision in decided if decision.action == "junk"}

        def target(file_subject: str | None) -> str | None:
            if file_subject not in junk_of:
                return None
            if file_subject is None:
                return "" if folder.root.scope in SHARED_SCOPES else None
            return None if book.ready(file_subject) else file_subject

        targets = {file_subject: target(file_subject) for file_subject in {row[1] for row in decided}}
        if len(set(targets.values())) == 1:  # the usual folder: all its files come at once
            return [(next(iter(targets.values())), classified)]
        parts: dict[str | None, list[tuple[Entry, str | None, Decision]]] = {}
        for row in decided:  # in name order within each part
            parts.setdefault(targets[row[1]], []).append(row)
        return [(wait_for, (folder, None, None, rows)) for wait_for, rows in parts.items()]

    @staticmethod
    def _held_back(classified: Classified, holds: Holds, cutoff: float) -> Classified:
        """The folder with its junk that must wait held back: a running subject's, shared junk while some
        subject runs, and files modified after ``cutoff``."""
        folder, subject, shared, decided = classified
        if decided is None:
            if shared is None or shared.action != "junk":
                return classified
            held = holds.hold(folder.root.scope, subject)
            if held is not None:
                return folder, subject, held, None
            newest = folder.newest()  # the newest activity: no file of it is recent unless this is
            if newest is None or newest <= cutoff:
                return classified
            return folder, None, None, [(entry, subject, HELD_RECENT if recent(entry, cutoff) else shared)
                                        for entry in folder.files]
        if isinstance(decided, SubjectRows):
            if not decided.has_junk():
                return classified
        elif not any(decision.action == "junk" for _, _, decision in decided):
            return classified
        scope = folder.root.scope
        rows = []
        for entry, file_subject, decision in decided:
            if decision.action == "junk":
                decision = holds.hold(scope, file_subject) or (HELD_RECENT if recent(entry, cutoff) else decision)
            rows.append((entry, file_subject, decision))
        return folder, None, None, rows

    def __iter__(self) -> Iterator[PlannedFile]:
        return self.files()

    def files(self, progress: Callable[[int, int], None] | None = None) -> Iterator[PlannedFile]:
        """Every file with its decision, in scan order (``progress``: as for ``folders``); walked in
        ``processes`` processes when there are several, in the same order."""
        if self.processes > 1:
            from .processes import plan_in_processes, rows_of

            for rows in plan_in_processes(self, rows_of, progress):
                yield from rows
            return
        for classified in self.folders(progress):
            yield from planned_files(classified)

    def placed_files(self, progress: Callable[[int, int], None] | None = None
                     ) -> Iterator[tuple[Place, int, str, list[PlannedFile]]]:
        """The files of ``files``, a folder (or part of one) at a time, with its place and its own place in the
        walk (top number, walk key): sorting files by (place, top number, walk key, name) gives the plan's
        order, which is how the shards of a plan are merged."""
        positions = walk_positions(self.dataset.scan_roots)
        for place, classified, _ in self.placed_folders(progress):
            _, _, number, key = place_of(positions, classified[0])
            yield place, number, key, list(planned_files(classified))

    def summarize(self, progress: Callable[[int, int], None] | None = None, settle: bool = True) -> Summary:
        """Fold the plan into totals; folders with one decision are added in one step. ``settle=False`` leaves
        the contents several paths share unsettled, for a summary of other subjects to be absorbed first."""
        summary = Summary(positions=walk_positions(self.dataset.scan_roots))
        for place, (folder, subject, shared, decided), _ in self.placed_folders(progress):
            summary.place = place
            if decided is None:
                assert shared is not None  # one decision for the whole folder
                summary.add_whole_folder(folder, subject, shared)
            elif isinstance(decided, SubjectRows):
                for decision, files_at in decided.groups:
                    summary.add_files(folder, files_at, decided.subject, decision)
            else:  # files of one subject with one decision are added together
                groups: dict[tuple[str | None, int], tuple[Decision, list[Entry]]] = {}
                for entry, file_subject, decision in decided:
                    groups.setdefault((file_subject, id(decision)), (decision, []))[1].append(entry)
                for (file_subject, _), (decision, entries) in groups.items():
                    summary.add_folder(folder, entries, file_subject, decision)
        return summary.finish() if settle else summary


def build_plan(dataset: Dataset, ruleset: RuleSet, selection: Selection | None = None, now: float | None = None,
               state_dir: str | None = None, min_age: float = DEFAULT_MIN_AGE, stale_after: float | None = None,
               jobs: int = 1, processes: int = 1, path_map: PathMap = ()) -> Plan:
    """The plan for a dataset under a rule set (nothing is scanned until it is iterated).

    ``min_age``: activity this recent means a subject is running, and junk this recent is held back;
    ``stale_after``: a subject idle this long has a stale cache (default: the rule set's, else 30 days);
    ``jobs``: folders listed at once; ``processes``: local processes that scan it (reports, plans, clean).
    """
    return Plan(dataset=dataset, ruleset=ruleset, selection=selection or Selection(),
                now=now if now is not None else time.time(), state_dir=state_dir, jobs=jobs, min_age=min_age,
                stale_after=stale_after, processes=processes, path_map=path_map)

