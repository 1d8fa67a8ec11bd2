"""The plan: every scanned file with its decision, streamed, and the totals built from it.

``Plan`` is a recipe, not a list: iterating it walks the dataset once and
yields one ``PlannedFile`` at a time, so a million files never sit in memory.
``summarize`` folds that stream into per-category and per-subject counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..basics.annex import ELSEWHERE, key_size
from ..basics.archivetree import ArchiveTree
from ..basics.diskwalk import walk
from ..basics.errors import CleanupError
from ..basics.folders import Directory, Entry
from ..basics.repository import GIT_NAMES, GitState, annexed_files, git_state
from ..basics.scanlist import ScanList
from ..basics.warnings import Warnings
from ..fmriprep.layout import STATE_DIR_NAME, Dataset, ScanRoot
from ..fmriprep.regeneration import RegenerationBook
from ..fmriprep.workdirs import PathMap
from ..rules.classify import Classifier, subject_of_folder, subject_parts
from ..rules.model import RuleSet
from .classifier import FolderClassifier
from .holds import Holds, as_unlocked, in_git
from .options import DEFAULT_MIN_AGE
from .order import FolderOrder
from .places import Place, PlacedFolder, place_of, walk_positions
from .rows import Classified, PlannedFile, planned_files
from .selection import Selection
from .summary import Summary

if TYPE_CHECKING:
    from ..fmriprep.evidence import SubjectStatus
    from ..fmriprep.status import StatusBook




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
    jobs: int = 1  # folders listed at once (threads, for network file systems); see basics.diskwalk.walk
    processes: int = 1  # local processes that scan it, each a share of the subjects (see ops.shards)
    min_age: float = DEFAULT_MIN_AGE  # activity this recent means a subject is still running
    stale_after: float | None = None  # a cache idle this long is stale; None: the rule set's, else 30 days
    path_map: PathMap = ()  # (path a run recorded inside a container, the same path here): its inputs, found
    scan_list: ScanList | ArchiveTree | None = None  # read instead of walking the disk (basics/scanlists.py), or
    # an archive's members (basics/archivetree.py)
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
        """Each scanned folder, classified (plan/rows.py), in the plan's order (plan/order.py); ``progress(files,
        bytes)`` is told after each folder the scan reads."""
        for placed in self.placed_folders(progress):
            yield placed.classified

    def placed_folders(self, progress: Callable[[int, int], None] | None = None) -> Iterator[PlacedFolder]:
        """``folders`` with where each comes in the plan's order: shards of a plan, each placing its own
        subjects' folders the same way, merge into exactly the unsharded order."""
        book = self.status_book()  # fed by the scan even when no rule asks: reports show the statuses
        order = FolderOrder(FolderClassifier(self.classifier(), book, self.selection),
                            Holds(book, self.now - self.min_age), walk_positions(self.dataset.scan_roots),
                            self.selection)
        return order.placed(self.scanned_folders(progress))

    def scanned_folders(self, progress: Callable[[int, int], None] | None = None) -> Iterator[Directory]:
        """The dataset's folders as the scan reads them (from the disk, or the scan list), each file's record as
        git and git-annex say it is; never the state directory nor a repository's own folders."""
        exclude = frozenset({self.dataset.state_dir, self.state_dir or self.dataset.state_dir,
                             os.path.join(self.dataset.identity, STATE_DIR_NAME),  # where older versions kept it
                             *self.dataset.never_scanned()})
        unlocked = self._unlocked_sizes()
        git = self.git_state()
        sizeless = 0
        walker = self.scan_list.walk if self.scan_list is not None else walk
        for folder in walker(self.dataset.scan_roots, self.warnings, self._skipped, exclude, self.jobs):
            if unlocked:
                folder.files = [as_unlocked(entry, unlocked.get(f"{folder.path}/{entry.name}"))
                                for entry in folder.files]
            if git is not None:
                folder.files = [in_git(entry, f"{folder.path}/{entry.name}", git) for entry in folder.files]
                sizeless += sum(1 for entry in folder.files if entry.annex == ELSEWHERE and key_size(entry.key) is None)
            if progress is not None:
                progress(len(folder.names), folder.size())
            yield folder
        if sizeless:
            self.warnings.add(f"{sizeless} annexed file(s) have git-annex keys without a size (URL keys) and their "
                              "content is not here: their size cannot be known, counted as 0 B (git annex get them "
                              "to count them)")

    def _skipped(self, root: ScanRoot, relpath: str, name: str) -> bool:
        """Whether the walk leaves a subfolder out unread: a repository's own, or a subject's not selected."""
        if name in GIT_NAMES:  # a repository's own folders are never output, whatever repository it is
            return True
        if not self.selection.selects_subjects() or (relpath and relpath.count("/") + 1 >= subject_parts(root.scope)):
            return False  # below the depth that names a subject: its parent's, which the walk entered
        subject = subject_of_folder(root.scope, f"{relpath}/{name}" if relpath else name)
        return subject is not None and root.owns(relpath or name) and not self.selection.wants(subject)

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
        book = self.status_book()
        classified = FolderClassifier(self.classifier(), book, Selection(), memoise=False).classify(folder,
                                                                                                  folder_subject)
        return None if classified is None else Holds(book, self.now - self.min_age).held_back(classified)

    def __iter__(self) -> Iterator[PlannedFile]:
        return self.files()

    def files(self, progress: Callable[[int, int], None] | None = None) -> Iterator[PlannedFile]:
        """Every file with its decision, in the plan's order, walked in this process (plan/shares.py walks a
        plan in its ``processes``, in the same order)."""
        for classified in self.folders(progress):
            yield from planned_files(classified)

    def placed_files(self, progress: Callable[[int, int], None] | None = None
                     ) -> Iterator[tuple[Place, int, str, list[PlannedFile]]]:
        """The files of ``files``, a folder (or part of one) at a time, with its place and its own place in the
        walk (top number, walk key): sorting files by (place, top number, walk key, name) gives the plan's
        order, which is how the shards of a plan are merged."""
        positions = walk_positions(self.dataset.scan_roots)
        for placed in self.placed_folders(progress):
            own = place_of(positions, placed.classified.folder)
            yield placed.place, own.number, own.key, list(planned_files(placed.classified))

    def summarize(self, progress: Callable[[int, int], None] | None = None, settle: bool = True) -> Summary:
        """Fold the plan into totals; folders with one decision are added in one step. ``settle=False`` leaves
        the contents several paths share unsettled, for a summary of other subjects to be absorbed first."""
        summary = Summary(positions=walk_positions(self.dataset.scan_roots))
        for placed in self.placed_folders(progress):
            summary.add_classified(placed.place, placed.classified)
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

