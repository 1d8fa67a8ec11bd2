"""One clean run of one dataset, as the ``clean`` command and unattended ``run --config`` both do it: take the
dataset's lock, build the work list, ask (or not), journal, recover what an interrupted run left, archive or
delete, and say what happened. Recording the run in the history is the caller's job (it may be shared).

Exit statuses: 0 done (or nothing to do); 3 done, with files skipped or failed, or a problem after acting (the
journal, the history); 130 stopped by Ctrl-C and 143 by SIGTERM, after finishing the file under way, tidying
the partial archive and closing the journal. Nothing is ever 2 once something changed: 2 means nothing did.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..basics.annex import PRESENT
from ..basics.annexcall import NOT_INSTALLED, ONLY_COPY, only_copies
from ..basics.annexcall import available as annex_available
from ..basics.archivetree import ArchiveTree
from ..basics.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, CleanupError
from ..basics.gitcall import check_trusted
from ..basics.gitcommit import commit_removals, not_ready_to_commit
from ..basics.journal_writer import Journal
from ..basics.journals import JournalSurvey, survey_journals
from ..basics.paths import inside
from ..basics.results import FAILED, SKIPPED, Result, results_json, tallied
from ..plan.options import CleanOptions, Declined, Mode
from ..plan.plan import Plan
from ..plan.rows import PlannedFile
from .delete import delete
from .lock import FolderLock, RunLock
from .memberarchive import keep_aside
from .recipes import write_recipes
from .recovery import Recovery, recover
from .rewrite import rewrite
from .safefs import refuse_unsafe_roots
from .space import check_room, compress_hint, tar_bytes
from .threads import RunStopped, Stop
from .worklist import ActProgress, Outcome, Worklist, build_worklist


@dataclass
class CleanResult:
    dataset: str
    mode: str
    outcome: dict[str, Any]
    started: float
    finished: float
    archives: list[str] = field(default_factory=list)
    journal: str | None = None
    kwh_per_year: float = 0.0  # avoided: counted by the caller, with its energy model (ops/runs.py)
    kgco2e_per_year: float = 0.0
    folders: list[dict[str, str]] = field(default_factory=list)  # where it acts, and how each folder was found
    notes: list[str] = field(default_factory=list)  # what discovery noted about the folders
    warnings: list[str] = field(default_factory=list)  # what could not be read, or went wrong after acting
    nothing_to_do: bool = False
    recovered_files: int = 0  # files an interrupted run had removed, recorded now
    cut_short: list[dict[str, Any]] = field(default_factory=list)  # killed runs this one recovered, for the history
    signal: int | None = None  # the signal that stopped the run early
    after_acting: list[str] = field(default_factory=list)  # problems met after something changed (exit 3)

    @property
    def exit_status(self) -> int:
        if self.signal is not None:
            return EXIT_INTERRUPTED if self.signal == signal.SIGINT else EXIT_TERMINATED
        problems = self.outcome["skipped"] or self.outcome["failed"] or self.after_acting
        return EXIT_INCOMPLETE if problems and self.mode != "dry-run" else EXIT_OK

    def results(self) -> list[Result]:
        """The run as result records: what it acted on, then each kind of skip (left in place too) and failure."""
        outcome = self.outcome
        return tallied(self.dataset, self.mode, (outcome["files"], outcome["bytes"]),
                       {SKIPPED: outcome["left"] + outcome["skipped"], FAILED: outcome["failed"]})

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "dry_run": self.mode == "dry-run", "nothing_to_do": self.nothing_to_do,
                **self.outcome, "archives": self.archives, "journal": self.journal,
                "recovered_files": self.recovered_files, "kwh_per_year_avoided": self.kwh_per_year,
                "kgco2e_per_year_avoided": self.kgco2e_per_year, "folders": self.folders, "notes": self.notes, "warnings": self.warnings,
                "exit_status": self.exit_status, "results": results_json(self.results())}


def check_archive_dir(archive_dir: str | None, plan: Plan) -> str:
    if not archive_dir:
        raise CleanupError("--mode archive needs --archive-dir DIR (outside the dataset)")
    resolved = os.path.realpath(os.path.abspath(os.path.expanduser(archive_dir)))
    for root in plan.dataset.scan_roots:
        if inside(resolved, root.path):
            raise CleanupError(f"--archive-dir {archive_dir} lies inside what is being cleaned ({root.path})")
    return resolved


@contextmanager
def stop_on_signals(stop: Stop) -> Iterator[None]:
    """While acting, Ctrl-C and SIGTERM stop the run at the next file instead of killing it mid-write; a
    second signal acts at once (the journal keeps even that recoverable)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: object) -> None:
        stop.set("interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)")
        stop.signal = signum
        signal.signal(signum, previous[signum])

    for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def clean(plan: Plan, options: CleanOptions, *, confirm: Callable[[Outcome, int], bool] | None = None,
          show: Callable[[Worklist], None] | None = None, scan_progress: Callable[[int, int], None] | None = None,
          act_progress: ActProgress | None = None, select: Callable[[PlannedFile], bool] | None = None,
          shard: Iterable[str] | None = None) -> CleanResult:
    """Dry-run, archive or delete the plan's junk as ``options`` say (the plan holds back what must wait: see
    plan.Plan).

    ``confirm(preview, scanned_bytes)`` sees the totals before anything changes (None: unattended, the mode
    given is the consent); if it says no, Declined is raised. ``show(worklist)`` sees the files before that.
    ``scan_progress(files, bytes)`` is told after each folder scanned, ``act_progress(phase, files, bytes)``
    after each file archived or removed; ``select``: only the junk it accepts (a retention step's share). The
    lock and journal live in the plan's state directory. Raises LockedError if another run holds the dataset's
    lock, CleanupError (nothing changed) for anything refused before acting.

    ``shard``: the subjects of this run when it is one shard of a job array (its plan selects only them): it
    shares the dataset's lock with its sibling shards, locks only its subjects, and leaves journals of other
    runs (perhaps a sibling at work) to the next whole run, which recovers them.

    Annexed content is dropped with git-annex (``options.force_drop``: even the only copy, never the default).
    In a git repository, junk stored in git itself is left in place (``Outcome.left``) unless
    ``options.git_rm``: then it is removed and the removal committed (basics/gitcommit.py). Rules that make the
    pipeline's essential outputs junk (every report, every confounds file...: see Plan.outputs_at_risk) are
    refused for archive and delete unless ``options.allow_output_loss`` (a dry run shows what they would do,
    with the warning).
    """
    started = time.time()
    options = dataclasses.replace(options)  # checked again (CleanOptions.__post_init__), whoever built it
    if options.mode == Mode.DRY_RUN:
        worklist, notes = checked_worklist(plan, options, scan_progress, select)
        if show is not None:
            show(worklist)
        outcome = worklist.preview()
        if confirm is not None and not confirm(outcome, worklist.scanned_bytes):
            raise Declined("declined; nothing was changed")
        return clean_result(plan, started, outcome, notes, nothing_to_do=not worklist.files)
    options = dataclasses.replace(options, archive_dir=refuse_before_acting(plan, options))
    state = plan.state_dir or plan.dataset.state_dir
    in_archive = isinstance(plan.scan_list, ArchiveTree)  # no folder to lock: its state folder's lock serves
    with RunLock(state, shard, dataset=None if in_archive else plan.dataset.identity), ExitStack() as archive_folder:
        if options.mode == Mode.ARCHIVE and options.archive_dir:  # shared: runs may archive side by side
            os.makedirs(options.archive_dir, exist_ok=True)
            archive_folder.enter_context(FolderLock(options.archive_dir, shared=True, what="this archive folder"))
        worklist, notes = checked_worklist(plan, options, scan_progress, select)
        if show is not None:
            show(worklist)
        if options.mode == Mode.ARCHIVE and not in_archive:
            check_archive_room(options, worklist)
        journals = survey_journals(state) if shard is None else JournalSurvey()
        if not worklist.files and not journals.actionable:  # no journal, nothing touched
            return clean_result(plan, started, worklist.outcome, notes + journals.problems, nothing_to_do=True)
        if confirm is not None and worklist.files and not confirm(worklist.preview(), worklist.scanned_bytes):
            raise Declined("cancelled; nothing was changed")
        journal, stop, skipped_lines = Journal(state), Stop(), list[str]()
        worklist.outcome.progress = act_progress
        with stop_on_signals(stop):
            outcome, archives, recovery, after_acting = _act(plan, options, worklist, journal, stop, skipped_lines,
                                                             recovering=shard is None)
    return clean_result(plan, started, outcome, notes + skipped_lines + after_acting, archives=archives,
                        journal=journal.path, recovered_files=recovery.recovered_files, signal=stop.signal,
                        after_acting=after_acting, cut_short=[dataclasses.asdict(run) for run in recovery.cut_short])


def check_archive_room(options: CleanOptions, worklist: Worklist) -> None:
    """CleanupError, nothing written, when the archive of the worklist would not fit where it goes."""
    if options.archive_dir and worklist.files:
        check_room(options.archive_dir, tar_bytes(planned.size for planned in worklist.files),
                   f"archiving {len(worklist.files):,} files", compress_hint(options.compress))


def clean_result(plan: Plan, started: float, outcome: Outcome, warnings: list[str], **more: Any) -> CleanResult:
    """What a run did (or, dry, would do) and what went wrong acting; the caller adds what the dataset is and
    what reading it said (ops/runs.py)."""
    return CleanResult(plan.dataset.path, outcome.mode, outcome.as_dict(), started, time.time(), warnings=warnings,
                       **more)


def refuse_before_acting(plan: Plan, options: CleanOptions) -> str | None:
    """What archive and delete refuse before anything is locked or read: rules that junk what every analysis
    needs (without --allow-output-loss), an archive folder inside the dataset, a root others may swap. Returns
    the archive folder, resolved."""
    at_risk = plan.outputs_at_risk()
    if at_risk and not options.allow_output_loss:
        raise CleanupError(f"{at_risk[0]}; nothing was changed")
    archive_dir = check_archive_dir(options.archive_dir, plan) if options.mode == Mode.ARCHIVE else options.archive_dir
    refuse_unsafe_roots([root.path for root in plan.dataset.scan_roots])
    return archive_dir


def checked_worklist(plan: Plan, options: CleanOptions, scan_progress: Callable[[int, int], None] | None,
                     select: Callable[[PlannedFile], bool] | None) -> tuple[Worklist, list[str]]:
    """The work list, once what git and git-annex will be asked to do is known to be possible here (see
    check_annexed; a repository others can write, or mid-merge, is refused), and the notes that go with it."""
    worklist = build_worklist(plan, options.mode, scan_progress, select, options.git_rm)
    notes = check_annexed(plan, worklist, options.mode, options.force_drop)
    repository = plan.dataset.repository
    if options.mode == Mode.DRY_RUN or repository is None:
        return worklist, notes
    if worklist.in_git or any(planned.annex == PRESENT for planned in worklist.files):
        check_trusted(repository.top, repository.git_dir)  # git and git-annex will act here
    if worklist.in_git:
        why = not_ready_to_commit(repository)
        if why:
            raise CleanupError(f"--git-rm: {why}; nothing was changed")
    return worklist, notes


def check_annexed(plan: Plan, worklist: Worklist, mode: str, force_drop: bool) -> list[str]:
    """Before acting on annexed content: git-annex must be here to drop it (else nothing changes, exit 2), and
    what it would refuse - content with no other copy - is known up front, so the dry run shows the same
    failures the real run will have. With ``force_drop`` that content is dropped: said as a warning."""
    annexed = [planned for planned in worklist.files if planned.annex == PRESENT]
    repository = plan.dataset.repository
    if not annexed or repository is None:
        return []
    if not annex_available():
        if mode == "dry-run":
            return [NOT_INSTALLED]
        raise CleanupError(NOT_INSTALLED)
    if mode == "archive":  # the verified archive is the other copy: dropped with --force after verifying it
        return []
    only = only_copies(repository, [planned.path for planned in annexed])
    if not only:
        return []
    lost = [planned for planned in annexed if planned.path in only]
    if force_drop:
        return [f"--force-drop drops the only copy of {len(lost)} annexed file(s) "
                f"({sum(planned.size for planned in lost):,} bytes): that content is lost"]
    worklist.refused.update((planned.path, ONLY_COPY) for planned in lost)
    return []


Action = Callable[[Plan, CleanOptions, Worklist, Journal, Stop, Recovery], tuple[Outcome, list[str]]]


def _archive(plan: Plan, options: CleanOptions, worklist: Worklist, journal: Journal, stop: Stop,
             recovery: Recovery) -> tuple[Outcome, list[str]]:
    """Verified archives first (reusing those an interrupted run verified), then the originals go."""
    from .archive import archive

    assert options.archive_dir is not None
    if isinstance(plan.scan_list, ArchiveTree):  # junk members: kept in the archive folder, then rewritten without
        tree, archive_dir = plan.scan_list, options.archive_dir
        found = tree.archive

        def keep(members: set[str]) -> str:
            return keep_aside(found.path, found.kind, found.data, members, archive_dir, journal.run_id)

        outcome = rewrite(worklist, tree, journal, stop, keep)
        return outcome, [row["kept_in"] for row in outcome.rewritten if "kept_in" in row]
    return archive(worklist, plan.dataset, journal, options.archive_dir, recovery.reusable, stop,
                   options.archive_format, options.compress)


def _delete(plan: Plan, options: CleanOptions, worklist: Worklist, journal: Journal, stop: Stop,
            recovery: Recovery) -> tuple[Outcome, list[str]]:
    if isinstance(plan.scan_list, ArchiveTree):  # junk members: the zip or tar file written anew without them
        return rewrite(worklist, plan.scan_list, journal, stop, force_drop=options.force_drop), []
    return delete(worklist, plan.dataset, journal, stop, options.force_drop), []


ACTIONS: dict[Mode, Action] = {Mode.ARCHIVE: _archive, Mode.DELETE: _delete}  # each mode that changes files


def _act(plan: Plan, options: CleanOptions, worklist: Worklist, journal: Journal, stop: Stop,
         skipped_lines: list[str], recovering: bool = True) -> tuple[Outcome, list[str], Recovery, list[str]]:
    """Journal the run, recover what an interrupted run left (``recovering``), act, and close the journal. A failure once
    something changed becomes a problem said after acting (exit 3); before, it is raised (exit 2). Malformed
    journal lines that recovery skipped go to ``skipped_lines`` (a warning: recovery used the rest)."""
    mode, archive_dir = options.mode, options.archive_dir
    outcome = worklist.outcome
    archives: list[str] = []
    recovery = Recovery()
    problems: list[str] = []
    journal.run_start(mode=mode, dataset=plan.dataset.path, roots=[root.path for root in plan.dataset.scan_roots],
                      rules=list(plan.ruleset.names), participant_labels=sorted(plan.selection.participant_labels or []),
                      min_age=plan.min_age, files=len(worklist.files), tool_version=__version__,
                      archive_dir=archive_dir, archive_format=options.archive_format, compress=options.compress,
                      git_rm=options.git_rm)
    try:
        if recovering:
            recovery = recover(journal, archive_dir if mode == "archive" else None)
        skipped_lines += recovery.problems
        skipped_lines += write_recipes(plan, worklist.files, journal)  # before anything they rebuild goes
        action = ACTIONS.get(Mode(mode)) if mode in Mode.values() else None
        if action is None:  # CleanOptions refuses any other mode; never fall through to a destructive branch
            raise CleanupError(f"unknown mode {mode!r}; nothing was changed")
        outcome, archives = action(plan, options, worklist, journal, stop, recovery)
        if worklist.in_git and plan.dataset.repository is not None:
            problem = commit_removals(plan.dataset.repository, [planned.path for planned in worklist.in_git],
                                      journal.run_id)
            if problem:
                problems.append(problem)
    except RunStopped:
        pass  # stopped by a signal: what was done is in the outcome and the journal
    except CleanupError as exc:
        if not (outcome.acted.files or outcome.removed_dirs or archives or recovery.recovered_files):
            journal.close()
            raise  # nothing changed: a plain refusal, exit 2
        problems.append(f"{exc} (after acting: what was done is recorded)")
    outcome.interrupted = stop.reason if stop.signal is not None else None
    try:
        totals = {key: value for key, value in outcome.as_dict().items() if key not in ("failure_messages", "interrupted")}
        journal.run_end(interrupted=outcome.interrupted is not None, archives=archives, **totals)
        if outcome.interrupted is None:
            journal.finish()  # an interrupted run's journal stays open: the next run recovers from it
        else:
            journal.close()
    except CleanupError as exc:
        journal.close()
        problems.append(str(exc))
    return outcome, archives, recovery, problems
