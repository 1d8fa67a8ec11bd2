"""The tool's own state folder and the journals in it, read back (basics/journal_writer.py writes them, act/recovery.py
acts on them; discovery reads which folders earlier runs acted on).

Layout of a state directory (by default ``<derivatives>/.fmriprep-cleanup/``)::

    lock                             an OS lock (fcntl), so runs on one dataset never overlap (act/lock.py)
    journal/<run id>.jsonl           a run's journal while it runs, or after it was cut short
    journal/<run id>.done.jsonl      a finished (or recovered) run's journal; the newest few stay

The state folder is opened one component at a time without following a symlink, and only journal lines sealed
with this user's key for this very state folder are returned (basics/seal.py): a line planted by a group
member, edited, copied from another dataset or written by an earlier version is reported, never trusted.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from .errors import CleanupError
from .handles import FOLDER_FLAGS, open_folder_nofollow
from .ownstate import StartedRun, recorded_run, unended_runs
from .seal import SEALED_TAIL, check_json

JOURNALS = "journal"
LEGACY_JOURNAL = "journal.jsonl"  # earlier versions kept every run in this one file
OPEN_SUFFIX = ".jsonl"
DONE_SUFFIX = ".done.jsonl"
RUN_START, RUN_END = "run-start", "run-end"
REMOVING, REMOVED, REMOVED_DIRS = "removing", "removed", "removed-dirs"
ARCHIVE_BEGIN, ARCHIVE_VERIFIED, ARCHIVE_FAILED, ARCHIVE_REUSED = (
    "archive-begin", "archive-verified", "archive-failed", "archive-reused")
SKIPPED, RECOVERED = "skipped", "recovered"
REWRITE_BEGIN, REWRITE_DONE, REWRITE_FAILED = "rewrite-begin", "rewrite-done", "rewrite-failed"  # a zip or tar
# file rewritten without its junk members (act/rewrite.py)


def open_state_folder(state_dir: str, create: bool = True) -> int:
    """A handle on the state folder (made if missing with ``create``); CleanupError if it, or a folder on the way
    to it, is a symlink: the tool's own files are never written through a link someone planted."""
    try:
        return open_folder_nofollow(os.path.abspath(state_dir), create=create, mode=0o755)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise CleanupError(f"the state folder {state_dir} (or a folder on its path) is a symlink or a file; "
                               "refusing to write through it") from None
        raise CleanupError(f"cannot open the state folder {state_dir}: {exc.strerror or exc}") from None


def seal_context(state_dir: str) -> str:
    """What a journal's seals bind it to: its state folder (a journal copied elsewhere does not verify)."""
    return "journal:" + os.path.abspath(state_dir)


def journal_folder(state_dir: str) -> int | None:
    """A handle on STATE_DIR/journal, neither of them followed through a symlink; None if there is none."""
    try:
        state = open_state_folder(state_dir, create=False)
    except CleanupError:
        return None
    try:
        return os.open(JOURNALS, FOLDER_FLAGS, dir_fd=state)
    except OSError:
        return None
    finally:
        os.close(state)


# --- reading -----------------------------------------------------------------------------------------------

@dataclass
class JournalProblems:
    """What was wrong with a journal read back: lines skipped (file:line: why), and, when the journal is not one
    unbroken chain of this user's sealed lines from its first line, why it may not be acted on."""

    lines: list[str] = field(default_factory=list)
    refused: str | None = None  # why the journal may not be acted on: not one chain, not sealed, unchained
    refused_at: str = ""  # where: file:line


# The fields each event must have (and their types) for recovery to use it; others are informational.
REQUIRED_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    REMOVING: {"batch": int, "files": list},
    REMOVED: {"batch": int, "removed": (list, str)},
    ARCHIVE_BEGIN: {"archive": str, "temporary": str, "manifest": str},
    ARCHIVE_VERIFIED: {"archive": str, "manifest": str},
    REWRITE_BEGIN: {"archive": str, "temporary": str, "members": list},
}
MAX_LINE = 64 << 20  # a journal line longer than this is not one we wrote
NOT_SEALED = "not sealed with your key"
BROKEN_CHAIN = "not one unbroken chain of sealed lines (truncated, reordered, spliced or edited)"
UNCHAINED = "written by an earlier version (its lines are not chained)"


def _well_formed(record: Any) -> TypeGuard[dict[str, Any]]:
    """A dict with the run, the event and the fields its event needs, each of its kind."""
    if not isinstance(record, dict) or not isinstance(record.get("event"), str) or not isinstance(record.get("run"), str):
        return False
    required = REQUIRED_FIELDS.get(record["event"], {})
    return all(isinstance(record.get(name), kind) and not isinstance(record.get(name), bool)
               for name, kind in required.items())


def _open_journal(path: str, problems: JournalProblems | None) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if problems is not None:
            problems.lines.append(f"{path}: cannot read the journal: {exc.strerror or exc}")
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        if problems is not None:
            problems.lines.append(f"{path}: not a regular file; not read as a journal")
        return None
    return fd


def _lines(handle: Any) -> Iterator[tuple[int, str, bool]]:
    """(number, line, whole) of a journal file; ``whole`` is False for an over-long line or a last line with
    no line end (cut short by a crash)."""
    number = 0
    while True:
        line = handle.readline(MAX_LINE)
        if not line:
            return
        number += 1
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            while line and not line.endswith("\n"):  # skip the rest of an over-long line
                line = handle.readline(MAX_LINE)
            yield number, "", False
        elif line.strip():
            yield number, line.rstrip("\n"), line.endswith("\n")


def _parsed(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line) if line else None
    except (ValueError, RecursionError):
        return None
    return record if _well_formed(record) else None


def read_records(path: str, problems: JournalProblems | None = None,
                 chained: bool = True) -> Iterator[dict[str, Any]]:
    """The well-formed, sealed records of one journal file (STATE_DIR/journal/NAME), opened without following a
    symlink.

    ``chained`` (what recovery reads): each line's seal covers its sequence number and the seal of the line
    before, so records are given only while they are one unbroken chain from the journal's first line; at the
    first line that breaks it (missing, moved, from another journal, edited, not sealed, unchained) reading
    stops and ``problems.refused`` says why. Only a last line cut short by a crash ends a chain quietly. Without
    ``chained`` (informational readers), every sealed line is given, those of earlier versions too, and the
    others are skipped and named in ``problems``."""
    context = seal_context(os.path.dirname(os.path.dirname(path)))
    fd = _open_journal(path, problems)
    if fd is None:
        return
    unsealed: list[int] = []
    expected, previous = 0, ""
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as handle:
        for number, line, whole in _lines(handle):
            record = _parsed(line)
            if record is None:
                if chained and not whole:
                    if next(_lines(handle), None) is None:
                        return  # the last line, cut short by a crash
                if problems is not None:
                    problems.lines.append(f"{path}:{number}: not a well-formed journal record; skipped")
                if chained:
                    _refuse(problems, path, number, BROKEN_CHAIN)
                    return
                continue
            seal = SEALED_TAIL.search(line)
            if seal is None or not check_json(line, context).trusted:
                if chained:
                    _refuse(problems, path, number, NOT_SEALED + " for this state folder")
                    return
                unsealed.append(number)
                continue
            if chained:
                if "seq" not in record:
                    _refuse(problems, path, number, UNCHAINED)
                    return
                if record.get("seq") != expected or record.get("prev") != previous:
                    _refuse(problems, path, number, BROKEN_CHAIN)
                    return
                expected, previous = expected + 1, seal.group(1)
            del record["seal"]
            yield record
    if unsealed and problems is not None:
        where = f"line {unsealed[0]}" if len(unsealed) == 1 else f"{len(unsealed)} lines from line {unsealed[0]}"
        problems.lines.append(f"{path}: {where} {NOT_SEALED} for this state folder (planted, edited, copied "
                              "from elsewhere, or written by another user or an earlier version): not acted on")


def _refuse(problems: JournalProblems | None, path: str, number: int, why: str) -> None:
    if problems is not None:
        problems.refused, problems.refused_at = why, f"{path}:{number}"


def journal_files(state_dir: str, finished: bool = False) -> list[str]:
    """The journals of a state directory, oldest first: unfinished ones, or with ``finished`` all of them.
    None when the state folder or its journal folder is a symlink: nobody's journal but the tool's is read."""
    folder = journal_folder(state_dir)
    if folder is None:
        return []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    finally:
        os.close(folder)
    wanted = [name for name in names if name.endswith(OPEN_SUFFIX)
              and (finished or not name.endswith(DONE_SUFFIX))]
    return [os.path.join(state_dir, JOURNALS, name) for name in sorted(wanted)]


@dataclass
class JournalSurvey:
    """The unfinished journals of a state folder, sorted by what may be done with them (nothing is read but
    their names, the first line of those that are refused, and this user's own record of runs)."""

    actionable: list[tuple[str, StartedRun]] = field(default_factory=list)  # (journal, its run): recover these
    refused: list[tuple[str, str]] = field(default_factory=list)  # (journal, why): reported, never acted on
    missing: list[StartedRun] = field(default_factory=list)  # runs started here whose journal is gone

    @property
    def problems(self) -> list[str]:
        lines = [f"{path}: {why}: not acted on (`fmriprep-cleanup journals list` says what to do)"
                 for path, why in self.refused]
        return lines + [f"run {run.run}, started here, left no journal (removed?): nothing of it can be finished"
                        for run in self.missing]


def survey_journals(state_dir: str, exclude: str | None = None) -> JournalSurvey:
    """Which unfinished journals of ``state_dir`` (``exclude``: the current run's own) recovery may act on: only
    a journal named for a run that this user's own record shows as started in this very state folder and not
    ended. Any other - planted, copied from a finished run, another user's, an earlier version's - is refused."""
    survey = JournalSurvey()
    present = set()
    legacy = os.path.join(state_dir, LEGACY_JOURNAL)
    if os.path.lexists(legacy):
        survey.refused.append((legacy, UNCHAINED))
    for path in journal_files(state_dir):
        if path == exclude:
            continue
        run = os.path.basename(path)[: -len(OPEN_SUFFIX)]
        present.add(run)
        recorded = recorded_run(run)
        if recorded is not None and not recorded.ended and recorded.state_dir == os.path.abspath(state_dir):
            survey.actionable.append((path, recorded))
        elif recorded is not None and recorded.ended:
            survey.refused.append((path, "a run your own record shows ended (a copy of its journal put back?)"))
        elif recorded is not None:
            survey.refused.append((path, f"a run you started in another state folder ({recorded.state_dir}); "
                                         + _first_line_verdict(path)))
        else:
            verdict = _first_line_verdict(path)
            survey.refused.append((path, verdict if verdict == UNCHAINED else f"not a run you started ({verdict})"))
    own = os.path.basename(exclude)[: -len(OPEN_SUFFIX)] if exclude else None
    survey.missing = [run for run in unended_runs(state_dir) if run.run not in present and run.run != own]
    return survey


def _first_line_verdict(path: str) -> str:
    problems = JournalProblems()
    for _ in read_records(path, problems):
        return "sealed with your key, but not recorded as started: copied from a finished run?"
    return problems.refused or NOT_SEALED


def removed_files(state_dir: str) -> list[tuple[str, str]]:
    """(path, category) of every file any run of this state directory recorded as removed (recovered removals
    included); the category is the one its batch named ("" where none was recorded)."""
    found: list[tuple[str, str]] = []
    for path in journal_files(state_dir, finished=True):
        batches: dict[tuple[str, Any], dict[str, str]] = {}
        for record in read_records(path, chained=False):
            if record["event"] == REMOVING:
                batches[(record["run"], record.get("batch"))] = batch_categories(record)
            elif record["event"] == REMOVED:
                named = batches.get((record.get("recovers") or record["run"], record.get("batch")), {})
                removed = record.get("removed")
                if removed == "all":
                    found += list(named.items())
                elif isinstance(removed, list):
                    found += [(item, named.get(item, "")) for item in removed if isinstance(item, str)]
    return found


def batch_categories(record: dict[str, Any]) -> dict[str, str]:
    """path -> category of a "removing" record's files ([path, size, category] each; paths alone before)."""
    files = record.get("files")
    found = {}
    for item in files if isinstance(files, list) else []:
        if isinstance(item, list) and item and isinstance(item[0], str):
            found[item[0]] = str(item[2]) if len(item) > 2 and isinstance(item[2], str) else ""
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            found[item["path"]] = ""
    return found


def recorded_roots(state_dir: str) -> set[str]:
    """The folders earlier runs acted on (their run-start roots): an emptied working directory is still known.
    Reads the first record of each journal only."""
    roots: set[str] = set()
    for path in journal_files(state_dir, finished=True):
        for record in read_records(path, chained=False):
            if record["event"] == RUN_START and isinstance(record.get("roots"), list):
                roots |= {root for root in record["roots"] if isinstance(root, str)}
            break
    return roots
