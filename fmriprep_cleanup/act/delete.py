"""Removing files for real: the delete executor, also used to remove the originals of verified archives.

The promise: a run never loses a file it was not asked to remove. So, for every file, right before acting,
the folders on its path are opened from ``/`` down without following symlinks, and the file is lstat-ed
again; if it changed since the scan (device, inode, size, mtime, ctime) it is skipped and the skip reported.
A symlink is removed as a link; its target is never touched. Files go in journaled batches: the journal names
a batch before it is touched and records what happened after, so a crash leaves an exact record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

from ..basics.annex import PRESENT, link_key
from ..basics.annexcall import DROP_BATCH, ONLY_COPY, drop
from ..basics.journal_writer import Journal
from ..basics.paths import inside
from ..basics.repository import GitRepo
from ..fmriprep.layout import Dataset, ScanRoot
from ..plan.rows import PlannedFile
from .safefs import SafeFolders, error_reason, recheck, still_the_link
from .threads import Stop, in_threads
from .worklist import Outcome, Worklist

BATCH_SIZE = 256
GROUP_DEPTH = 2  # folders this deep below their root (a subject's workflow folder, say) are emptied independently
FileCheck = Callable[[os.stat_result], "str | None"]  # a file's fresh lstat -> None if it may go, else why not


def delete(worklist: Worklist, dataset: Dataset, journal: Journal, stop: Stop, force_drop: bool = False) -> Outcome:
    """Unlink every file of the worklist that is still as scanned, then the folders the run emptied. Annexed
    content is dropped with git-annex instead (``force_drop``: even the only copy), its links left in place."""
    annexed = [planned for planned in worklist.files if planned.annex == PRESENT]
    if annexed:
        assert dataset.repository is not None
        drop_files(annexed, dataset.repository, worklist.outcome, journal, stop, force_drop)
    plain = [(planned, None) for planned in worklist.files if planned.annex != PRESENT]
    emptied = remove_files(plain, dataset, worklist.outcome, journal, stop)
    worklist.outcome.removed_dirs = remove_emptied_folders_by_subtree(emptied, dataset, journal, stop)
    return worklist.outcome


def drop_files(files: Sequence[PlannedFile], repository: GitRepo, outcome: Outcome, journal: Journal, stop: Stop,
               force: bool = False, archive: str | None = None) -> None:
    """Drop the content of annexed files with git-annex, a journaled batch at a time: each link re-checked
    first; what git-annex refuses (no other copy) is a failure with its reason, the others are freed.
    ``archive``: the verified archive that holds them (then ``force``: it is the other copy)."""
    for start in range(0, len(files), DROP_BATCH):
        if stop:
            return
        batch = files[start:start + DROP_BATCH]
        skipped: list[dict[str, str]] = []
        ready = []
        keys: dict[str, str] = {}  # path -> its key: links sharing a key are one content, dropped once
        for planned in batch:
            reason = still_the_link(planned)
            key = link_key(planned.path) if reason is None else None
            if reason:
                outcome.skip(planned, reason)
                skipped.append({"path": planned.path, "reason": reason})
            else:
                ready.append(planned)
                if key:
                    keys[planned.path] = key
        number = journal.batch_begin([(p.path, p.size, p.category) for p in ready], archive)
        dropped: list[str] = []
        failed: list[dict[str, object]] = []
        try:
            first_of: dict[str, str] = {}  # key -> the one path git-annex is asked to drop it by
            for planned in ready:
                key = keys.get(planned.path, planned.path)
                if not outcome.content_gone(key):  # a key this run dropped already: nothing left to ask
                    first_of.setdefault(key, planned.path)
            asked = drop(repository, list(first_of.values()), force) if first_of else {}
            results = {planned.path: None if outcome.content_gone(keys.get(planned.path, planned.path))
                       else asked[first_of[keys.get(planned.path, planned.path)]] for planned in ready}
            for planned in ready:
                reason = results[planned.path]
                if reason is None:
                    outcome.act(planned, key=keys.get(planned.path))
                    dropped.append(planned.path)
                else:
                    outcome.fail(planned, ONLY_COPY if reason == ONLY_COPY else "git-annex did not drop it",
                                 f"{planned.path}: {reason}")
                    failed.append({"path": planned.path, "errno": None, "error": reason})
        finally:
            journal.batch_end(number, dropped, skipped, failed, archive, whole=len(dropped) == len(ready))


def remove_batch(batch: Sequence[tuple[PlannedFile, FileCheck | None]], folders: SafeFolders, outcome: Outcome,
                 journal: Journal, stop: Stop, archive: str | None = None) -> set[str]:
    """Remove one batch of files under the journal; the folders they were in.

    Before the batch is touched the journal names it; after, it records what was removed, skipped and failed.
    Two fsyncs per batch instead of one per file. Each file is re-checked right before it is unlinked, and
    the run's stop is asked before each file: once it is set, the rest of the batch stays (and is recorded).
    """
    number = journal.batch_begin([(p.path, p.size, p.category) for p, _ in batch], archive)
    removed: list[str] = []
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, object]] = []
    emptied: set[str] = set()
    try:
        for planned, extra_check in batch:
            if stop:
                break
            try:
                checked = recheck(folders, planned, outcome.links_removed(planned) if planned.nlink > 1 else 0)
                if isinstance(checked, str):
                    outcome.skip(planned, checked)
                    skipped.append({"path": planned.path, "reason": checked})
                    continue
                fd, name, st = checked
                reason = extra_check(st) if extra_check is not None else None
                if reason:
                    outcome.skip(planned, reason)
                    skipped.append({"path": planned.path, "reason": reason})
                    continue
                os.unlink(name, dir_fd=fd)
            except OSError as exc:
                outcome.fail(planned, error_reason(exc), f"{planned.path}: {exc.strerror or exc}")
                failed.append({"path": planned.path, "errno": exc.errno, "error": exc.strerror or str(exc)})
                continue
            outcome.act(planned, st.st_nlink)
            removed.append(planned.path)
            emptied.add(os.path.dirname(planned.path))
    finally:
        journal.batch_end(number, removed, skipped, failed, archive, whole=len(removed) == len(batch))
    return emptied


def remove_files(files: Sequence[tuple[PlannedFile, FileCheck | None]], dataset: Dataset, outcome: Outcome,
                 journal: Journal, stop: Stop, archive: str | None = None) -> set[str]:
    """Unlink files, each re-checked right before (and passing its extra check, if any), a few batches at
    once; returns the folders they were in. Unlinking mostly waits on the file system: threads overlap that."""

    def remove_with_own_handles(batch: Sequence[tuple[PlannedFile, FileCheck | None]]) -> set[str]:
        with SafeFolders(dataset.scan_roots) as folders:  # one thread's: open folder handles are not shared
            return remove_batch(batch, folders, outcome, journal, stop, archive)

    batches = [files[start:start + BATCH_SIZE] for start in range(0, len(files), BATCH_SIZE)]
    return set().union(*in_threads(remove_with_own_handles, batches, stop))


def subtree_of(folder: str, locate: SafeFolders) -> str | None:
    """The folder GROUP_DEPTH below its root that holds ``folder`` (None for a folder higher up).

    Subtrees share no folder, so threads can remove the emptied folders of different subtrees at once: no
    thread tries a folder another is emptying.
    """
    root = folder if folder in locate.roots else locate.root_of(folder)
    parts = folder[len(root) + 1:].split("/") if folder != root else []
    return "/".join([root, *parts[:GROUP_DEPTH]]) if len(parts) >= GROUP_DEPTH else None


def remove_emptied_folders(candidates: Iterable[str], dataset: Dataset, journal: Journal,
                           below: str | None = None) -> int:
    """rmdir the folders this run emptied, and their parents, children first: up to a scope root (never the
    root itself), or, with ``below``, only inside that folder (a subtree a thread owns; itself included).

    rmdir only removes an empty folder: one that still holds anything (a kept file, a skipped one) stays.
    """
    roots = {root.path for root in dataset.scan_roots}
    folders_to_try: set[str] = set()
    for folder in candidates:
        while (folder not in roots and folder not in folders_to_try and folder != "/"
               and (below is None or inside(folder, below))):
            folders_to_try.add(folder)
            folder = os.path.dirname(folder)
    removed = _remove_folders(dataset.scan_roots, folders_to_try)
    for start in range(0, len(removed), BATCH_SIZE):  # an empty folder lost from the record loses nothing
        journal.removed_dirs(removed[start:start + BATCH_SIZE])
    return len(removed)


def remove_emptied_folders_by_subtree(candidates: set[str], dataset: Dataset, journal: Journal, stop: Stop) -> int:
    """remove_emptied_folders, a few subtrees at once; the folders above them last."""
    if stop:
        return 0
    locate = SafeFolders(dataset.scan_roots)  # opens nothing: only its root_of
    by_subtree: dict[str, list[str]] = {}
    above: set[str] = set()
    for folder in candidates:
        subtree = subtree_of(folder, locate)
        if subtree is None:
            above.add(folder)
        else:
            by_subtree.setdefault(subtree, []).append(folder)
    above |= {os.path.dirname(subtree) for subtree in by_subtree}

    def empty_subtree(subtree_and_emptied: tuple[str, list[str]]) -> int:
        subtree, emptied = subtree_and_emptied
        return remove_emptied_folders(emptied, dataset, journal, below=subtree)

    return sum(in_threads(empty_subtree, list(by_subtree.items()), stop)) + remove_emptied_folders(above, dataset, journal)


def _remove_folders(roots: list[ScanRoot], folders: Iterable[str]) -> list[str]:
    """rmdir each of ``folders`` that is empty and fMRIPrep's, children first (a folder sorts after its parent)."""
    removed: list[str] = []
    with SafeFolders(roots) as handles:
        for folder in sorted(folders, reverse=True):
            parent, name = os.path.split(folder)
            try:
                if not handles.owns(folder + "/x"):
                    continue  # a folder in -w that fMRIPrep did not create: never ours to remove
                os.rmdir(name, dir_fd=handles.open_folder(parent))
            except OSError:
                continue  # not empty, already gone, or not ours to remove
            removed.append(folder)
    return removed
