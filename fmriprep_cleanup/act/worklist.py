"""The work list of a clean run - the plan's junk, and what it holds back as skips - and the run's outcome.

Freed bytes are honest: a file frees its bytes only when its last link goes. A junk hard link whose twin is
kept (or lies outside the dataset) is removed as a link and counted as such, but frees nothing; the dry run
works this out from the links the scan saw, the real run from the link count right before each unlink, and
both give the same figure when nothing changed in between.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..basics.annex import ANNEXED, ELSEWHERE, IN_GIT, link_key
from ..basics.archivetree import ArchiveTree
from ..plan import shares
from ..plan.plan import Plan
from ..plan.rows import PlannedFile
from ..rules.classify import HELD_RECENT, HELD_RUNNING, HELD_SHARED

SKIP_RECENT = "modified within --min-age"
SKIP_RUNNING = "its subject's fMRIPrep run is still going (status running)"
SKIP_SHARED = "shared by every subject, and some subject is still running"
HELD_BACK_REASONS = {HELD_RUNNING.rule_id: SKIP_RUNNING, HELD_SHARED.rule_id: SKIP_SHARED,
                     HELD_RECENT.rule_id: SKIP_RECENT}
LINKED_NOTE = "hard-linked elsewhere: removed as links, the content stays (frees nothing)"
LEFT_IN_GIT = ("stored in git: removing it frees only the checkout copy (the content stays in .git/objects) and leaves "
               "the dataset modified; --git-rm removes it with git rm and a commit")
SKIP_SHARED_KEY = ("its content is also a kept file's (one git-annex key): dropping it would drop the kept file's "
                   "content too")
MAX_FAILURE_MESSAGES = 50

ActProgress = Callable[[str, int, int], None]  # (what is being done: "archiving", "removing"; files; bytes) so far


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0

    def add(self, size: int, files: int = 1) -> None:
        self.files += files
        self.bytes += size


@dataclass
class Outcome:
    """What a run did (or, in a dry run, would do). ``acted.bytes`` counts freed bytes only."""

    mode: str
    acted: Tally = field(default_factory=Tally)
    by_category: dict[str, Tally] = field(default_factory=dict)
    skipped: dict[str, Tally] = field(default_factory=dict)
    failed: dict[str, Tally] = field(default_factory=dict)
    failure_messages: list[str] = field(default_factory=list)
    left: dict[str, Tally] = field(default_factory=dict)  # junk left in place by design (stored in git): not a skip
    removed_dirs: int = 0
    rewritten: list[dict] = field(default_factory=list)  # zip or tar files written anew without their junk members
    interrupted: str | None = None  # why the run stopped early (Ctrl-C, SIGTERM), if it did
    _links: dict[tuple[int, int], list[int]] = field(default_factory=dict, repr=False)  # inode -> [removed, nlink, size]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)  # threads share it
    progress: ActProgress | None = field(default=None, repr=False, compare=False)  # told after every file
    _done: dict[str, Tally] = field(default_factory=dict, repr=False, compare=False)  # per phase, for progress
    _keys: set[str] = field(default_factory=set, repr=False, compare=False)  # annex keys whose content went

    def advance(self, phase: str, planned: PlannedFile) -> None:
        """One more file handled in ``phase`` (the caller holds no lock): tells the progress display."""
        if self.progress is not None:
            with self._lock:
                self._advance(phase, planned.size)

    def _advance(self, phase: str, size: int) -> None:
        if self.progress is not None:
            done = self._done.setdefault(phase, Tally())
            done.add(size)
            self.progress(phase, done.files, done.bytes)

    def content_gone(self, key: str) -> bool:
        """Whether this run already freed the content of git-annex ``key`` (another link to it went)."""
        return key in self._keys

    def act(self, planned: PlannedFile, nlink: int | None = None, key: str | None = None) -> None:
        """A file went (or, in a dry run, would go); ``nlink``: its link count right before it went; ``key``: its
        git-annex key, whose content frees its bytes once however many links share it."""
        links = planned.nlink if nlink is None else nlink
        with self._lock:
            freed = planned.size
            if key:
                freed = 0 if key in self._keys else planned.size
                self._keys.add(key)
            elif links > 1:
                inode = (planned.dev, planned.ino)
                counts = self._links.setdefault(inode, [0, links, planned.size])
                counts[0] += 1
                counts[1] = max(counts[1], links)
                freed = planned.size if counts[0] == counts[1] else 0  # its last link in this dataset went
            self.acted.add(freed)
            self.by_category.setdefault(planned.category, Tally()).add(freed)
            self._advance("removing", planned.size)

    def links_removed(self, planned: PlannedFile) -> int:
        """How many links of this file (its inode) the run has removed so far."""
        with self._lock:
            counts = self._links.get((planned.dev, planned.ino))
            return counts[0] if counts else 0

    def linked(self) -> Tally:
        """Links removed whose content other links still hold: files and the bytes they did not free."""
        tally = Tally()
        for removed, nlink, size in self._links.values():
            if removed < nlink:
                tally.add(size, removed)
        return tally

    def skip(self, planned: PlannedFile, reason: str) -> None:
        with self._lock:
            self.skipped.setdefault(reason, Tally()).add(planned.size)

    def leave(self, planned: PlannedFile, reason: str) -> None:
        """Junk left in place by design (stored in git): said, but not a skip (the run is complete)."""
        with self._lock:
            self.left.setdefault(reason, Tally()).add(planned.size)

    def fail(self, planned: PlannedFile, reason: str, message: str) -> None:
        with self._lock:
            self.failed.setdefault(reason, Tally()).add(planned.size)
            self._advance("removing", planned.size)
            if message and len(self.failure_messages) < MAX_FAILURE_MESSAGES:  # "": said with another file
                self.failure_messages.append(message)

    def as_dict(self) -> dict:
        linked = self.linked()
        return {
            "mode": self.mode,
            "files": self.acted.files,
            "bytes": self.acted.bytes,
            "by_category": [{"category": k, "files": v.files, "bytes": v.bytes} for k, v in sorted(self.by_category.items())],
            "hard_linked": {"files": linked.files, "bytes": linked.bytes, "note": LINKED_NOTE},
            "skipped": [{"reason": k, "files": v.files, "bytes": v.bytes} for k, v in sorted(self.skipped.items())],
            "failed": [{"reason": k, "files": v.files, "bytes": v.bytes} for k, v in sorted(self.failed.items())],
            "left": [{"reason": k, "files": v.files, "bytes": v.bytes} for k, v in sorted(self.left.items())],
            "failure_messages": list(self.failure_messages),
            "removed_dirs": self.removed_dirs,
            "rewritten": list(self.rewritten),
            "interrupted": self.interrupted,
        }


@dataclass
class Worklist:
    """The junk files a run will act on, in scan order, and those it skips up front (held back by the plan)."""

    files: list[PlannedFile]
    outcome: Outcome
    scanned_bytes: int = 0  # everything the scan saw, kept or junk: the whole of a share
    refused: dict[str, str] = field(default_factory=dict)  # path -> why acting on it will fail (known up front)
    keys: dict[str, str] = field(default_factory=dict)  # annexed path -> its key (links sharing one free it once)
    in_git: list[PlannedFile] = field(default_factory=list)  # junk stored in git, acted on with --git-rm only
    elsewhere: int = 0  # annexed junk whose content is not here: nothing to free, so not on the list
    git_left: int = 0  # junk stored in git, left in place without --git-rm

    def preview(self) -> Outcome:
        """What acting on every file would give: the dry run's answer, and the question before a real run."""
        preview = Outcome(self.outcome.mode, skipped=dict(self.outcome.skipped), left=dict(self.outcome.left))
        for planned in self.files:
            reason = self.refused.get(planned.path)
            if reason is None:
                preview.act(planned, key=self.keys.get(planned.path))
            else:
                preview.fail(planned, reason, f"{planned.path}: {reason}")
        return preview


SKIP_LIST_CHANGED = "changed since the scan list (size, time or type differ on disk)"
SKIP_LIST_GONE = "not on disk any more (the scan list is older)"


def as_on_disk(planned: PlannedFile) -> PlannedFile | str:
    """A file a scan list named, lstat-ed now: the same file as on disk (its device, inode, links and ctime now
    known, for the check right before acting) if its type, size and time are what the list says, else why not.
    A list is never trusted: what it says only selects what is checked."""
    try:
        st = os.lstat(planned.path)
    except FileNotFoundError:
        return SKIP_LIST_GONE
    except OSError as exc:
        return f"cannot lstat it: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode) or st.st_size != planned.size or int(st.st_mtime) != int(planned.mtime):
        return SKIP_LIST_CHANGED
    return planned._replace(dev=st.st_dev, ino=st.st_ino, nlink=st.st_nlink, ctime=st.st_ctime,
                            allocated=st.st_blocks * 512)


def build_worklist(plan: Plan, mode: str, progress: Callable[[int, int], None] | None = None,
                   select: Callable[[PlannedFile], bool] | None = None, git_rm: bool = False) -> Worklist:
    """One pass over the plan: its junk, in scan order, and what it holds back, as skips with their reasons
    (a running subject's files, shared files while some subject runs, files modified within --min-age).
    ``progress(files, bytes)`` is told after each folder scanned; ``select``: only the junk it accepts (a
    retention step's share of it; the rest is left for later, untouched).

    In a git repository: annexed junk whose content is elsewhere frees nothing and is not listed; junk stored in
    git is left in place (said in ``Outcome.left``) unless ``git_rm``; annexed junk sharing its key with a kept
    file is skipped (a drop would take both)."""
    outcome = Outcome(mode)
    files: list[PlannedFile] = []
    in_git: list[PlannedFile] = []
    keys: dict[str, str] = {}
    kept_keys: set[str] = set()
    scanned_bytes, elsewhere, git_left = 0, 0, 0
    for planned in shares.files(plan, progress):
        scanned_bytes += planned.size
        if planned.annex in ANNEXED:
            key = link_key(planned.path)
            if key and planned.action != "junk":
                kept_keys.add(key)
            elif key:
                keys[planned.path] = key
        if planned.action == "junk":
            if planned.annex == ELSEWHERE:  # its content is not here: dropping it frees nothing
                elsewhere += 1
                continue
            if select is not None and not select(planned):
                continue
            if planned.annex in IN_GIT:
                (in_git.append(planned) if git_rm else outcome.leave(planned, LEFT_IN_GIT))
                git_left += not git_rm
                continue
            if plan.scan_list is not None and not isinstance(plan.scan_list, ArchiveTree):  # members: re-read whole
                fresh = as_on_disk(planned)
                if isinstance(fresh, str):
                    outcome.skip(planned, fresh)
                    continue
                planned = fresh
            files.append(planned)
        elif planned.rule_id in HELD_BACK_REASONS:
            outcome.skip(planned, HELD_BACK_REASONS[planned.rule_id])
    if kept_keys:
        shared = [planned for planned in files if keys.get(planned.path) in kept_keys]
        for planned in shared:
            outcome.skip(planned, SKIP_SHARED_KEY)
        files = [planned for planned in files if keys.get(planned.path) not in kept_keys]
    return Worklist(files + in_git, outcome, scanned_bytes, keys=keys, in_git=in_git, elsewhere=elsewhere,
                    git_left=git_left)
