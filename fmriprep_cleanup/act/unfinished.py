"""Unfinished journals that recovery will not act on (``journals list|discard|finish``).

Recovery finishes only a run that the user's own record shows as started here and not ended, from a journal
that is one unbroken chain (act/recovery.py). Anything else in the state folder's ``journal/`` is reported on
every run until a person decides: ``discard`` sets it aside (renamed ``<name>.discarded``, never read again);
``finish`` acts on a journal written by an earlier version (its lines sealed one by one with your key, not
chained) on your word that its run was cut short - with the same checks as recovery: only half-written archives
(``*.tmp``) under the tool's own names are removed, never an archive or a manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..basics.errors import CleanupError
from ..basics.journal_writer import Journal, mark_done
from ..basics.journals import (
    LEGACY_JOURNAL,
    OPEN_SUFFIX,
    UNCHAINED,
    JournalProblems,
    journal_folder,
    open_state_folder,
    read_records,
    survey_journals,
)
from ..basics.ownstate import record_end
from .lock import RunLock
from .recovery import Recovery, recover_run

DISCARDED_SUFFIX = ".discarded"


@dataclass
class JournalsOutcome:
    """What ``discard`` or ``finish`` did, journal by journal."""

    done: list[str] = field(default_factory=list)  # journals set aside or finished
    problems: list[str] = field(default_factory=list)
    recovered_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "problems": self.problems, "recovered_files": self.recovered_files}


def list_journals(state_dir: str) -> dict[str, Any]:
    """Every unfinished journal of ``state_dir``: whether the next run recovers it, or why it will not."""
    survey = survey_journals(state_dir)
    rows = [{"journal": path, "run": _run_of(path), "recoverable": True, "why": "cut short; the next clean or "
             "restore of this dataset finishes it"} for path, _ in survey.actionable]
    rows += [{"journal": path, "run": _run_of(path), "recoverable": False, "why": why,
              "finish": why == UNCHAINED} for path, why in survey.refused]
    rows += [{"journal": None, "run": run.run, "recoverable": False, "why": "started here, left no journal"}
             for run in survey.missing]
    return {"state_dir": state_dir, "journals": rows}


def _run_of(path: str) -> str:
    name = os.path.basename(path)
    return "" if name == LEGACY_JOURNAL else name[: -len(OPEN_SUFFIX)]


def _chosen(state_dir: str, runs: list[str], outcome: JournalsOutcome) -> list[tuple[str, str]]:
    """(journal path, why refused) of each run asked for (``legacy`` names the single journal of early versions);
    runs recovery would finish itself, or that have no journal, are said in ``outcome.problems``."""
    survey = survey_journals(state_dir)
    by_run = {_run_of(path) or "legacy": (path, why) for path, why in survey.refused}
    actionable = {_run_of(path) for path, _ in survey.actionable}
    chosen = []
    for run in runs:
        if run in by_run:
            chosen.append(by_run[run])
        elif run in actionable:
            outcome.problems.append(f"run {run} was cut short and is finished by the next clean or restore; "
                                    "nothing to decide")
        else:
            outcome.problems.append(f"no unfinished journal of run {run} in {state_dir}")
    return chosen


def discard_journals(state_dir: str, runs: list[str], dataset: str) -> JournalsOutcome:
    """Set the journals of ``runs`` aside, unread: renamed ``<name>.discarded`` beside them."""
    outcome = JournalsOutcome()
    with RunLock(state_dir, dataset=dataset):
        for path, _ in _chosen(state_dir, runs, outcome):
            if _set_aside(state_dir, path):
                outcome.done.append(path)
                record_end(_run_of(path)) if _run_of(path) else None
            else:
                outcome.problems.append(f"{path}: could not be renamed")
    return outcome


def _set_aside(state_dir: str, path: str) -> bool:
    legacy = os.path.basename(path) == LEGACY_JOURNAL
    folder = open_state_folder(state_dir, create=False) if legacy else journal_folder(state_dir)
    if folder is None:
        return False
    name = os.path.basename(path)
    try:
        os.rename(name, name + DISCARDED_SUFFIX, src_dir_fd=folder, dst_dir_fd=folder)
        os.fsync(folder)
        return True
    except OSError:
        return False
    finally:
        os.close(folder)


def finish_journals(state_dir: str, runs: list[str], dataset: str) -> JournalsOutcome:
    """Act on journals written by an earlier version, as recovery would have: record what their runs removed and
    remove their half-written archives (``*.tmp``). Only sealed lines are read; a chained journal that recovery
    refused (broken, copied, not yours) is never finished this way: discard it."""
    outcome = JournalsOutcome()
    with RunLock(state_dir, dataset=dataset):
        chosen = _chosen(state_dir, runs, outcome)
        for path, why in chosen:
            if why != UNCHAINED:
                outcome.problems.append(f"{path}: {why}; only a journal of an earlier version can be finished "
                                        "(discard this one)")
        earlier = [path for path, why in chosen if why == UNCHAINED]
        if not earlier:
            return outcome
        journal = Journal(state_dir)
        try:
            journal.run_start(mode="finish-journals", dataset=dataset, roots=[], journals=earlier)
            for path in earlier:
                recovery = Recovery()
                problems = JournalProblems()
                by_run: dict[str, list[dict[str, Any]]] = {}
                for record in read_records(path, problems, chained=False):  # one file may hold many runs
                    by_run.setdefault(record["run"], []).append(record)
                for records in by_run.values():
                    recover_run(records, journal, None, recovery)
                outcome.problems += problems.lines + recovery.problems
                outcome.recovered_files += recovery.recovered_files
                if os.path.basename(path) == LEGACY_JOURNAL:
                    _set_aside(state_dir, path)
                else:
                    mark_done(path)
                outcome.done.append(path)
            journal.run_end(recovered_files=outcome.recovered_files)
            journal.finish()
        except CleanupError:
            journal.close()
            raise
    return outcome
