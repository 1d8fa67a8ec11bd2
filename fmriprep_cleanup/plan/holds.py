"""What overrules the rules, file by file: junk no rule may take (the dataset's description, a subject's run
evidence), junk that must wait (a running subject's, shared junk while one runs, anything modified within
--min-age), and how a file's record reads in a git repository (stored in git; annexed, unlocked)."""

from __future__ import annotations

import bisect
import functools
from typing import TYPE_CHECKING

from ..basics.annex import ELSEWHERE, GIT_CHANGED, GIT_STORED, NOT_ACTIVITY, PRESENT
from ..basics.folders import Directory, Entry
from ..basics.repository import GitState
from ..rules.classify import EVIDENCE, HELD_RECENT, HELD_RUNNING, HELD_SHARED, IDENTITY, Decision
from .rows import Classified, FileRows, Row, WholeFolder

if TYPE_CHECKING:
    from ..fmriprep.status import StatusBook

SHARED_SCOPES = ("workdir", "freesurfer")  # where files of no subject are caches every subject may use
NO_ANNEX = ".noannex"  # git-annex's marker (DataLad's own folder .datalad/ is never scanned at all)


def git_own(name: str) -> bool:
    """git's and DataLad's own files (.gitattributes, .gitignore, .gitmodules, a submodule's .git file,
    .noannex): never junk, whatever a rule set says."""
    return name.startswith(".git") or name == NO_ANNEX


def holds_git_own(names: list[str]) -> bool:
    """Whether a folder's names (sorted) include one of git's own files: usually one comparison (a first name
    after ".noannex" leaves no room for either), else two binary searches."""
    if not names or names[0] > NO_ANNEX:
        return False
    at = bisect.bisect_left(names, ".git")
    if at < len(names) and names[at].startswith(".git"):
        return True
    at = bisect.bisect_left(names, NO_ANNEX)
    return at < len(names) and names[at] == NO_ANNEX


def as_unlocked(entry: Entry, content_size: int | None) -> Entry:
    """An unlocked annexed file: its content (PRESENT) or a pointer file standing for it (ELSEWHERE)."""
    if content_size is None or entry.is_link:
        return entry
    if entry.size == content_size:
        return entry._replace(annex=PRESENT)
    return entry._replace(size=content_size, allocated=0, annex=ELSEWHERE)


def in_git(entry: Entry, path: str, git: GitState) -> Entry:
    """A file git tracks, not annexed: stored in git, as committed (GIT_STORED) or changed since (GIT_CHANGED)."""
    if entry.annex or path not in git.tracked:
        return entry
    return entry._replace(annex=GIT_CHANGED if path in git.changed else GIT_STORED)


def recent(entry: Entry, cutoff: float) -> bool:
    """Modified after ``cutoff``, so perhaps still being written. Not an annexed link nor a file stored in git
    as committed: their time is when they were checked out (a clone, a `datalad get`), not fMRIPrep at work."""
    return entry.mtime > cutoff and entry.annex not in NOT_ACTIVITY


def owned(folder: Directory) -> bool:
    """Whether fMRIPrep created ``folder`` (every folder but those in -w outside fMRIPrep's own; a root is)."""
    return not folder.root.fmriprep_entries_only or not folder.relpath or folder.root.owns(folder.relpath)


def protected(scope: str, folder: str, name: str, book: StatusBook) -> Decision | None:
    """The decision that overrules junk for a file no rule may take: the dataset's description, a file a
    Nipoppy tracker counts, and the evidence a subject's run status rests on while its working directory exists."""
    if scope == "derivatives" and not folder and name == "dataset_description.json":
        return IDENTITY
    tracked = book.tracked(scope, folder, name)
    if tracked is not None:
        return tracker_kept(tracked.tracker, tracked.glob)
    if book.guards(scope, folder) and book.is_evidence(scope, folder, name):
        return EVIDENCE
    return None


NIPOPPY = "kept for Nipoppy"  # the category of what a Nipoppy study keeps whatever the rules say


@functools.lru_cache(maxsize=4096)
def tracker_kept(tracker: str, glob: str) -> Decision:
    """A file a Nipoppy tracker counts: deleting it turns its participant-session to FAIL at the next
    `nipoppy track-processing`, and `nipoppy process` runs the whole pipeline again."""
    return Decision("keep", NIPOPPY, "nipoppy-tracker",
                    f"kept: Nipoppy tracker {tracker}, path {glob} (deleting it makes `nipoppy process` re-run the "
                    "participant-session)", "nipoppy")


@functools.lru_cache(maxsize=4096)
def work_folder_kept(why: str) -> Decision:
    """A Nipoppy participant-session's working folder while Nipoppy does not mark it SUCCESS: its re-run's cache."""
    return Decision("keep", NIPOPPY, "nipoppy-not-success", f"kept: {why}", "nipoppy")


LEFT_OUT = "left out: another run's working directory"  # its files are neither this output's nor judged


@functools.lru_cache(maxsize=64)
def left_out_kept(why: str) -> Decision:
    """A folder inside the output that is another run's working directory: never junk here, and never counted as
    this run's outputs without saying so."""
    return Decision("keep", LEFT_OUT, "left-out-workdir", f"kept: {why}", "discovery")


class Holds:
    """Why junk of a subject (or of no subject, in a scope) must wait, if it must: a running subject's junk,
    shared junk while some subject runs, anything modified after ``cutoff``. Asked once per subject, since a
    subject's status does not change once judged."""

    def __init__(self, book: StatusBook, cutoff: float) -> None:
        self.book, self.cutoff = book, cutoff
        self._known: dict[tuple[str, str | None], Decision | None] = {}

    def hold(self, scope: str, subject: str | None) -> Decision | None:
        key = (scope, subject) if subject is None else ("", subject)
        if key in self._known:
            return self._known[key]
        held = None
        if subject is not None:
            held = HELD_RUNNING if self.book.status_of(subject) == "running" else None
        elif scope in SHARED_SCOPES and "running" in self.book.present():
            held = HELD_SHARED
        self._known[key] = held
        return held

    def held_back(self, classified: Classified) -> Classified:
        """The folder with its junk that must wait held back."""
        if not classified.has_junk():
            return classified
        folder, cutoff = classified.folder, self.cutoff
        scope = folder.root.scope
        if isinstance(classified, WholeFolder):  # one decision: held whole, or only its files modified lately
            held = self.hold(scope, classified.subject)
            if held is not None:
                return classified._replace(decision=held)
            newest = folder.newest()  # the newest activity: no file of it is recent unless this is
            if newest is None or newest <= cutoff:
                return classified
        files = folder.files
        rows = []
        for position, subject, decision in classified.positioned():
            if decision.action == "junk":
                decision = self.hold(scope, subject) or (HELD_RECENT if recent(files[position], cutoff) else decision)
            rows.append((position, subject, decision))
        return FileRows(folder, rows)

    def waits_for(self, classified: Classified) -> list[tuple[str | None, Classified]]:
        """A folder's files split by whether their junk must wait before it can be held back or let go: None
        (no), a subject (until its folders are walked) or "" (until the end: shared junk). The files of one
        subject wait together; so do the files of no subject."""
        shared_scope = classified.folder.root.scope in SHARED_SCOPES
        if not isinstance(classified, FileRows):  # one subject: all its files come at once
            subject = classified.subject
            if not classified.has_junk():
                return [(None, classified)]
            if subject is None:
                return [("" if shared_scope else None, classified)]
            return [(None if self.book.ready(subject) else subject, classified)]
        junk_of = {subject for _, subject, decision in classified.decided if decision.action == "junk"}

        def target(subject: str | None) -> str | None:
            if subject not in junk_of:
                return None
            if subject is None:
                return "" if shared_scope else None
            return None if self.book.ready(subject) else subject

        targets = {subject: target(subject) for subject in {row[1] for row in classified.decided}}
        if len(set(targets.values())) == 1:  # the usual folder: all its files come at once
            return [(next(iter(targets.values())), classified)]
        parts: dict[str | None, list[Row]] = {}
        for row in classified.decided:  # in name order within each part
            parts.setdefault(targets[row[1]], []).append(row)
        return [(wait_for, FileRows(classified.folder, rows)) for wait_for, rows in parts.items()]
