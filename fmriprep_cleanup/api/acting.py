"""The commands that change files, only when asked: clean (a dry run by default), restore, and the archives and
journals they leave. (The stages each function uses are imported when it is first called.)"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..basics.errors import CleanupError
from ..plan.options import CleanOptions

if TYPE_CHECKING:
    from ..act.clean import CleanResult
    from ..act.restore import RestoreOutcome
    from ..act.worklist import ActProgress, Outcome, Worklist
    from ..energy.model import Assumptions
    from ..ops.history import History
    from ..plan.plan import Plan

Progress = Callable[[int, int], None]  # called with (files, bytes) after each folder scanned


def clean(plan: Plan, options: CleanOptions | None = None, *, confirm: Callable[[Outcome, int], bool] | None = None,
          show: Callable[[Worklist], None] | None = None, energy: Assumptions | None = None,
          history: History | str | None = None, record: bool | None = None, progress: Progress | None = None,
          act_progress: ActProgress | None = None, shard: tuple[int, int] | None = None,
          shared_only: bool = False) -> CleanResult:
    """Dry-run (the default), archive or delete the plan's junk as ``options`` say (see CleanOptions), and record
    the run in the history - the path every clean run takes, policy runs included (ops/runs.py).

    ``confirm(preview, scanned_bytes)`` may say no after seeing the totals (then Declined is raised; None: the
    mode is the consent). ``history``: the history database's path (default $XDG_STATE_HOME/fmriprep-cleanup)
    or an open History, opened before acting so one that cannot be written stops the run before anything
    changes; ``record``: None records archive and delete runs, True also dry runs, False none.
    ``progress(files, bytes)``: after each folder scanned; ``act_progress(phase, files, bytes)``: after each
    file archived or removed. ``shard``: (K, N), 0-based - act as shard K of a job array of N on the plan's
    dataset: on its share of the subjects only, beside its sibling shards (see act.clean.clean);
    ``shared_only``: the last step after them, the files of no subject only (see shared_files_plan).
    """
    from ..ops.runs import run_clean

    labels = None
    if shared_only:
        plan = shared_files_plan(plan)
    if shard is not None:
        from ..plan.shares import shard_plan

        labels, plan = shard_plan(plan, *shard)
    return run_clean(plan, options or CleanOptions(), history, record, confirm, show, energy, progress, act_progress,
                     shard=labels)


def shared_files_plan(plan: Plan) -> Plan:
    """The plan of only the files of no subject (FreeSurfer's templates, the working directory's shared files):
    the last step after a job array of ``clean(shard=...)`` runs, once every subject's files are settled."""
    import dataclasses

    return dataclasses.replace(plan, selection=plan.selection.only(frozenset(), True))


def restore(source: str, to: str | None = None, participant_labels: Iterable[str] = (),
            progress: ActProgress | None = None) -> RestoreOutcome:
    """Put archived files back from an archive, its manifest or a folder of them (``to``: under this folder
    instead of where they were). An existing different file is never overwritten but reported.
    ``progress("restoring", files, bytes)`` is told after each file."""
    from ..act.restore import restore as restore_files
    from ..plan.selection import Selection

    return restore_files(source, to, Selection.from_labels(list(participant_labels)).participant_labels, progress)


def archives(action: str, directory: str, older_than: float | None = None, yes: bool = False,
             history_path: str | None = None) -> dict[str, Any]:
    """Archives over time (`archives list|verify|prune`): what ``directory`` holds; every member re-hashed
    against its manifest (``ok`` false and ``problems`` listed on any difference); or the runs older than
    ``older_than`` seconds removed (``yes``; else what would go). verify and prune are recorded in the history."""
    from ..act import archives as managed
    from ..ops.history import History, RunRecord

    started = time.time()
    if action == "list":
        return managed.list_archives(directory)
    if action == "verify":
        result = managed.verify_archives(directory)
        files, nbytes, failed = result["members"], 0, len(result["problems"])
    elif action == "prune":
        if older_than is None:
            raise CleanupError("archives prune needs --older-than (e.g. 5y)")
        result = managed.prune_archives(directory, older_than, yes)
        files, nbytes, failed = sum(run["archives"] for run in result["runs"]), result["bytes"], 0
        if not yes:
            return result
    else:
        raise CleanupError(f"unknown archives action {action!r}; one of list, verify, prune")
    database = History(history_path)
    try:
        record_run_of = RunRecord(started, time.time(), os.path.abspath(directory), "", action, files, nbytes, 0,
                                  failed, 0.0, 0.0, 3 if failed else 0)
        database.add(record_run_of)
    finally:
        database.close()
    return result


def journals(path: str, action: str = "list", runs: Iterable[str] = (), state_dir: str | None = None) -> dict[str, Any]:
    """Unfinished journals of the dataset at ``path`` (`journals list|discard|finish`): each with whether the
    next clean recovers it or why it will not; or those of ``runs`` set aside unread (discard), or, written by
    an earlier version, acted on as recovery would (finish)."""
    from ..act import unfinished
    from ..fmriprep.discovery import discover_dataset
    from ..fmriprep.layout import state_dir_for

    dataset = discover_dataset(path, find_work_dir=False, state_base=state_dir)
    state = state_dir_for(dataset.identity, state_dir) if state_dir else dataset.state_dir
    if action == "list":
        return unfinished.list_journals(state)
    if action == "discard":
        return unfinished.discard_journals(state, list(runs), dataset.identity).as_dict()
    if action == "finish":
        return unfinished.finish_journals(state, list(runs), dataset.identity).as_dict()
    raise CleanupError(f"unknown journals action {action!r}; one of list, discard, finish")
