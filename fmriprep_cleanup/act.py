"""Acting on a plan: dry run or delete, under the dataset's lock and journal.

The promise: a run never loses a file it was not asked to remove. So, for
every file, right before acting:

* the folders on its path are opened one by one without following symlinks
  (a folder swapped for a link since the scan cannot redirect us elsewhere);
* the file is lstat-ed again; if its (device, inode, size, mtime) changed since
  the scan, it is skipped and the skip is reported;
* a symlink is removed as a link; its target is never touched.

A dry run goes through the same selection (age limits, active subjects) and
reports the same files and bytes the real run would act on.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterable, TypeVar

from .discover import Dataset, ScanRoot
from .errors import CleanupError
from .classify import HELD_RECENT, HELD_RUNNING, HELD_SHARED
from .plan import Plan, PlannedFile
from .scan import FOLDER_FLAGS
from .state import Journal, RunStopped

SKIP_RECENT = "modified within --min-age"
SKIP_RUNNING = "its subject's fMRIPrep run is still going (status running)"
SKIP_SHARED = "shared by every subject, and some subject is still running"
SKIP_NOT_FMRIPREP = "not fMRIPrep's: outside what fMRIPrep creates in its working directory (never touched)"
SKIP_CHANGED = "changed since the scan"
SKIP_VANISHED = "vanished since the scan"
SKIP_PATH_CHANGED = "a folder on its path was replaced (by a symlink?) since the scan"
MAX_FAILURE_MESSAGES = 50


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


@dataclass
class Outcome:
    """What a run did (or, in a dry run, would do)."""

    mode: str
    acted: Tally = field(default_factory=Tally)
    by_category: dict[str, Tally] = field(default_factory=dict)
    skipped: dict[str, Tally] = field(default_factory=dict)
    failed: dict[str, Tally] = field(default_factory=dict)
    failure_messages: list[str] = field(default_factory=list)
    removed_dirs: int = 0
    _seen_inodes: set[tuple[int, int]] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)  # threads share it

    def _size(self, planned: PlannedFile) -> int:
        """Bytes a file frees; a file with several hard links is counted once."""
        if planned.nlink > 1:
            inode = (planned.dev, planned.ino)
            if inode in self._seen_inodes:
                return 0
            self._seen_inodes.add(inode)
        return planned.size

    def act(self, planned: PlannedFile) -> None:
        with self._lock:
            size = self._size(planned)
            self.acted.add(size)
            self.by_category.setdefault(planned.category, Tally()).add(size)

    def skip(self, planned: PlannedFile, reason: str) -> None:
        with self._lock:
            self.skipped.setdefault(reason, Tally()).add(planned.size)

    def fail(self, planned: PlannedFile, reason: str, message: str) -> None:
        with self._lock:
            self.failed.setdefault(reason, Tally()).add(planned.size)
            if len(self.failure_messages) < MAX_FAILURE_MESSAGES:
                self.failure_messages.append(message)

    @property
    def complete(self) -> bool:
        return not self.skipped and not self.failed

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "files": self.acted.files,
            "bytes": self.acted.bytes,
            "by_category": [{"category": k, "files": v.files, "bytes": v.bytes} for k, v in sorted(self.by_category.items())],
            "skipped": [{"reason": k, "files": v.files, "bytes": v.bytes} for k, v in sorted(self.skipped.items())],
            "failed": [{"reason": k, "files": v.files, "bytes": v.bytes} for k, v in sorted(self.failed.items())],
            "failure_messages": list(self.failure_messages),
            "removed_dirs": self.removed_dirs,
        }


def refuse_unsafe_roots(dataset: Dataset) -> None:
    """Never act on /, the home directory or a folder above it."""
    home = os.path.realpath(os.path.expanduser("~"))
    for root in dataset.scan_roots:
        if root.path == "/" or root.path == home or home.startswith(root.path.rstrip("/") + "/"):
            raise CleanupError(f"refusing to act on {root.path}: it is / or your home directory (or holds it)")


@dataclass
class Worklist:
    """The junk files a run will act on, in scan order, and those it will skip up front."""

    files: list[PlannedFile]
    outcome: Outcome
    scanned_bytes: int = 0  # everything the scan saw, kept or junk: the whole of a share

    def preview(self) -> Outcome:
        """What acting on every file would give: the dry run's answer, and the question before a real run."""
        preview = Outcome(self.outcome.mode, skipped=dict(self.outcome.skipped))
        for planned in self.files:
            preview.act(planned)
        return preview


HELD_BACK_REASONS = {HELD_RUNNING.rule_id: SKIP_RUNNING, HELD_SHARED.rule_id: SKIP_SHARED,
                     HELD_RECENT.rule_id: SKIP_RECENT}


def build_worklist(plan: Plan, mode: str) -> Worklist:
    """One pass over the plan: its junk, in scan order, and what it holds back, as skips with their reasons
    (a running subject's files, shared files while some subject runs, files modified within --min-age)."""
    outcome = Outcome(mode)
    files: list[PlannedFile] = []
    scanned_bytes = 0
    for planned in plan:
        scanned_bytes += planned.size
        if planned.action == "junk":
            files.append(planned)
        elif planned.rule_id in HELD_BACK_REASONS:
            outcome.skip(planned, HELD_BACK_REASONS[planned.rule_id])
    return Worklist(files, outcome, scanned_bytes)


class SafeFolders:
    """Folder handles opened component by component with O_NOFOLLOW, from a scan root down.

    Acting through these handles (unlink(name, dir_fd=...)) means a folder
    replaced by a symlink after the scan makes the open fail instead of
    sending us outside the dataset. The handles of the current folder's
    ancestors stay open, so moving to a sibling or a child folder (files come
    folder by folder, depth first) opens only the components that differ;
    each is still opened relative to its already verified parent.
    """

    FLAGS = FOLDER_FLAGS  # as the scan opens folders: never through a symlink

    def __init__(self, roots: list[ScanRoot]) -> None:
        self.scan_roots = sorted(roots, key=lambda root: len(root.path), reverse=True)
        self.roots = [root.path for root in self.scan_roots]
        self._chain: list[tuple[str, int]] = []  # (path, handle) from a root down to the current folder

    def scan_root_of(self, path: str) -> ScanRoot:
        for root in self.scan_roots:
            if path.startswith(root.path + "/"):
                return root
        raise CleanupError(f"internal safety check: {path} is outside the dataset's roots")

    def root_of(self, path: str) -> str:
        return self.scan_root_of(path).path

    def owns(self, path: str) -> bool:
        """Whether fMRIPrep wrote ``path``: nothing in -w outside fMRIPrep's own folders is ever acted on."""
        root = self.scan_root_of(path)
        return root.owns(path[len(root.path) + 1:])

    def open_folder(self, folder: str) -> int:
        if self._chain and self._chain[-1][0] == folder:
            return self._chain[-1][1]  # the usual case: the next file of the same folder
        root = folder if folder in self.roots else self.root_of(folder)
        keep = 0  # how much of the open chain leads to ``folder``
        for index, (path, _) in enumerate(self._chain):
            if index == 0 and path != root:
                break
            if path == folder or folder.startswith(path + "/"):
                keep = index + 1
            else:
                break
        self._truncate(keep)
        if not self._chain:
            self._chain.append((root, os.open(root, self.FLAGS)))
        current, fd = self._chain[-1]
        rest = folder[len(current) + 1:] if folder != current else ""
        for part in rest.split("/") if rest else ():
            fd = os.open(part, self.FLAGS, dir_fd=fd)
            current = f"{current}/{part}"
            self._chain.append((current, fd))
        return fd

    def _truncate(self, length: int) -> None:
        while len(self._chain) > length:
            os.close(self._chain.pop()[1])

    def close(self) -> None:
        self._truncate(0)


def _same_file(st: os.stat_result, planned: PlannedFile) -> bool:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime) == (planned.dev, planned.ino, planned.size, planned.mtime)


def recheck(folders: SafeFolders, planned: PlannedFile) -> tuple[int, str, os.stat_result] | str:
    """(folder handle, name, its lstat) if the file is still what the scan saw, else the reason to skip it."""
    if not folders.owns(planned.path):
        return SKIP_NOT_FMRIPREP
    folder, name = os.path.split(planned.path)
    try:
        fd = folders.open_folder(folder)
    except FileNotFoundError:
        return SKIP_VANISHED
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return SKIP_PATH_CHANGED
        raise
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return SKIP_VANISHED
    if stat.S_ISDIR(st.st_mode) or not _same_file(st, planned):
        return SKIP_CHANGED
    return fd, name, st


def _error_reason(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0, "error")
    return f"{code}: {exc.strerror or exc}"


BATCH_SIZE = 256
FileCheck = Callable[[os.stat_result], "str | None"]  # a file's fresh lstat -> None if it may go, else why not


def remove_batch(batch: list[tuple[PlannedFile, FileCheck | None]], folders: SafeFolders, outcome: Outcome,
                 journal: Journal, event: str = "removed", archive: str | None = None) -> set[str]:
    """Remove one batch of files under the journal, so that a crash leaves an exact record; the folders they were in.

    Before the batch is touched the journal names it ("removing"); after, it
    records what was removed, skipped and failed ("removed" or "archived").
    Two fsyncs per batch instead of one per file; a rerun resolves a batch a
    crash cut short (see ``recover_removals``). Each file is still re-checked
    right before it is unlinked.
    """
    number = journal.new_batch()
    journal.begin("removing", archive=archive, batch=number,
                  files=[{"path": p.path, "size": p.size, "category": p.category} for p, _ in batch])
    removed, skipped, failed = [], [], []
    emptied: set[str] = set()
    for planned, still_as_archived in batch:
        try:
            checked = recheck(folders, planned)
            if isinstance(checked, str):
                outcome.skip(planned, checked)
                skipped.append({"path": planned.path, "reason": checked})
                continue
            fd, name, st = checked
            if still_as_archived is not None:
                reason = still_as_archived(st)
                if reason:
                    outcome.skip(planned, reason)
                    skipped.append({"path": planned.path, "reason": reason})
                    continue
            os.unlink(name, dir_fd=fd)
        except OSError as exc:
            outcome.fail(planned, _error_reason(exc), f"{planned.path}: {exc.strerror or exc}")
            failed.append({"path": planned.path, "errno": exc.errno, "error": exc.strerror or str(exc)})
            continue
        outcome.act(planned)
        removed.append({"path": planned.path, "size": planned.size, "category": planned.category})
        emptied.add(os.path.dirname(planned.path))
    journal.write(event, archive=archive, batch=number, files=removed, skipped=skipped, failed=failed)
    return emptied


def delete(worklist: Worklist, dataset: Dataset, journal: Journal, state_dir: str) -> Outcome:
    """Unlink every file of the worklist that is still as scanned, then the folders the run emptied."""
    recover_removals(state_dir, journal)
    emptied = remove_files([(planned, None) for planned in worklist.files], dataset, worklist.outcome, journal)
    worklist.outcome.removed_dirs = remove_emptied_folders_by_subtree(emptied, dataset, journal, state_dir)
    return worklist.outcome


def recover_removals(state_dir: str, journal: Journal) -> int:
    """Complete the record of batches that a crash cut short: files named by an unfinished
    "removing" batch that are gone now were removed by that run. Returns how many."""
    from .state import read_journal

    open_batches: dict[tuple[str, int | None], list[tuple[dict, str | None]]] = {}  # (run, batch) -> files
    for record in read_journal(state_dir):
        event, run = record.get("event"), record.get("run")
        if event == "removing":
            open_batches[run, record.get("batch")] = [(item, record.get("archive")) for item in record.get("files", [])]
        elif event in ("removed", "archived"):
            open_batches.pop((record.get("recovers", run), record.get("batch")), None)
        elif event == "run-end":
            for key in [key for key in open_batches if key[0] == run]:
                del open_batches[key]
    recovered = 0
    for (run, batch), items in open_batches.items():
        gone = [(item, archive) for item, archive in items if not os.path.lexists(item["path"])]
        for archive in {archive for _, archive in gone} or {None}:
            files = [item for item, a in gone if a == archive]
            journal.write("archived" if archive else "removed", archive=archive, batch=batch, files=files, skipped=[],
                          failed=[], recovers=run)
            recovered += len(files)
    return recovered


ACT_THREADS = 4  # unlink and rmdir mostly wait on the file system: a few at once overlap those waits
GROUP_DEPTH = 2  # folders this deep below their root (a subject's workflow folder, say) are emptied independently

Item = TypeVar("Item")
Result = TypeVar("Result")


def subtree_of(folder: str, locate: SafeFolders) -> str | None:
    """The folder GROUP_DEPTH below its root that holds ``folder`` (None for a folder higher up).

    Subtrees share no folder, so threads can remove the emptied folders of
    different subtrees at once: no thread tries a folder another is emptying.
    """
    root = folder if folder in locate.roots else locate.root_of(folder)
    parts = folder[len(root) + 1:].split("/") if folder != root else []
    return "/".join([root, *parts[:GROUP_DEPTH]]) if len(parts) >= GROUP_DEPTH else None


def in_threads(work: Callable[[Item], Result], items: list[Item], journal: Journal) -> list[Result]:
    """``work(item)`` for every item, ACT_THREADS at a time; the results in the items' order.

    The first to fail (or Ctrl-C) stops the journal, so no batch starts after
    it: the running ones finish the batch they are in, the queued ones never
    start, and the error is raised once the running ones are done.
    """

    def guarded(item: Item) -> Result:
        try:
            return work(item)
        except BaseException:
            journal.stop()
            raise

    if len(items) <= 1:
        return [guarded(item) for item in items]
    with ThreadPoolExecutor(max_workers=ACT_THREADS) as pool:
        futures = [pool.submit(guarded, item) for item in items]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C while waiting
            journal.stop()
            raise
        finally:
            for future in futures:
                future.cancel()  # only those not yet started
        wait(futures)
        errors = [future.exception() for future in futures if not future.cancelled() and future.exception()]
        if errors:
            raise next((error for error in errors if not isinstance(error, RunStopped)), errors[0])
        return [future.result() for future in futures]


def remove_files(files: list[tuple[PlannedFile, FileCheck | None]], dataset: Dataset, outcome: Outcome,
                 journal: Journal, event: str = "removed", archive: str | None = None) -> set[str]:
    """Unlink files, each re-checked right before (and passing its extra check, if any), a few batches at
    once; returns the folders they were in. Unlinking mostly waits on the file system: threads overlap that."""

    def remove_with_own_handles(batch: list[tuple[PlannedFile, FileCheck | None]]) -> set[str]:
        folders = SafeFolders(dataset.scan_roots)  # one thread's: open folder handles are not shared
        try:
            return remove_batch(batch, folders, outcome, journal, event, archive)
        finally:
            folders.close()

    batches = [files[start:start + BATCH_SIZE] for start in range(0, len(files), BATCH_SIZE)]
    return set().union(*in_threads(remove_with_own_handles, batches, journal))


def remove_emptied_folders(candidates: Iterable[str], dataset: Dataset, journal: Journal, state_dir: str,
                           below: str | None = None) -> int:
    """rmdir the folders this run emptied, and their parents, children first: up to a scope root (never
    the root itself), or, with ``below``, only inside that folder (a subtree a thread owns; itself included).

    rmdir only removes an empty folder: one that still holds anything (a kept file, a skipped one) stays.
    """
    roots = {root.path for root in dataset.scan_roots}
    folders_to_try: set[str] = set()
    for folder in candidates:
        while (folder not in roots and folder not in folders_to_try and folder != state_dir and folder != "/"
               and (below is None or folder == below or folder.startswith(below + "/"))):
            folders_to_try.add(folder)
            folder = os.path.dirname(folder)
    removed = _remove_folders(dataset.scan_roots, folders_to_try)
    for start in range(0, len(removed), BATCH_SIZE):  # an empty folder lost from the record loses nothing
        journal.write("removed-dirs", paths=removed[start:start + BATCH_SIZE])
    return len(removed)


def remove_emptied_folders_by_subtree(candidates: set[str], dataset: Dataset, journal: Journal, state_dir: str) -> int:
    """remove_emptied_folders, a few subtrees at once; the folders above them last."""
    locate = SafeFolders(dataset.scan_roots)  # opens nothing: only its root_of
    by_subtree: dict[str | None, list[str]] = {}
    for folder in candidates:
        by_subtree.setdefault(subtree_of(folder, locate), []).append(folder)
    above = set(by_subtree.pop(None, [])) | {os.path.dirname(subtree) for subtree in by_subtree}

    def empty_subtree(subtree_and_emptied: tuple[str, list[str]]) -> int:
        subtree, emptied = subtree_and_emptied
        return remove_emptied_folders(emptied, dataset, journal, state_dir, below=subtree)

    return sum(in_threads(empty_subtree, list(by_subtree.items()), journal)) + remove_emptied_folders(above, dataset, journal, state_dir)


def _remove_folders(roots: list[ScanRoot], folders: Iterable[str]) -> list[str]:
    """rmdir each of ``folders`` that is empty, children first (a folder sorts after its parent)."""
    handles = SafeFolders(roots)
    removed: list[str] = []
    try:
        for folder in sorted(folders, reverse=True):
            parent, name = os.path.split(folder)
            try:
                os.rmdir(name, dir_fd=handles.open_folder(parent))
            except OSError:
                continue  # not empty, already gone, or not ours to remove
            removed.append(folder)
    finally:
        handles.close()
    return removed
