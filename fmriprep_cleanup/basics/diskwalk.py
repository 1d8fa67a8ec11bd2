"""The walk of the disk: folders listed from their parents' handles, ahead of the walk by worker threads where
``jobs`` > 1 (a network file system), yielding exactly what one thread would (basics/folders.traverse)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from .folders import (
    FOLDER_FLAGS,
    TOP_FLAGS,
    Directory,
    FolderSource,
    Held,
    Listing,
    RootT,
    Visit,
    list_directory,
    traverse,
)
from .warnings import Warnings

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from .orderedpool import OrderedPool

# A threaded walk (network file systems): measured on an sshfs mount of the 100k-file benchmark tree
# (benchmarks/network.py; more threads, a larger budget or smaller chunks were not faster on 2 cores shared
# with sshd and sshfs). folders.STAT_CHUNK: a large folder's lstats, this many to a thread at once.
STAT_THREADS_PER_JOB = 4  # threads making lstats, per job (--jobs)
AHEAD_PER_JOB = 32  # folders a walk may have listed ahead and not yet taken, per job


class DiskFolders(FolderSource):
    """Listings from the disk: each folder opened from its parent's handle (no path resolved again, no symlink
    followed), a top folder with ``top_flags``. With ``jobs`` > 1, worker threads list ahead of the walk: a folder
    a worker lists has its subfolders asked for at once (each opened from a duplicate of its parent's handle,
    made while that handle is open), up to a budget of folders listed and not yet taken, and a large folder's
    lstats are shared among threads. On a network file system every open, listing and lstat is a round trip:
    this keeps many in flight, as gdu does. What is yielded stays the same, in the same order."""

    def __init__(self, jobs: int = 1, top_flags: int = FOLDER_FLAGS) -> None:
        self.top_flags = top_flags
        self.pool: OrderedPool | None = None
        self.stat_pool: ThreadPoolExecutor | None = None
        if jobs > 1:
            from concurrent.futures import ThreadPoolExecutor  # only a threaded walk pays for it (and logging)

            from .orderedpool import OrderedPool

            self.pool = OrderedPool(jobs)
            self.stat_pool = ThreadPoolExecutor(max_workers=STAT_THREADS_PER_JOB * jobs)
        self.budget = min(jobs * AHEAD_PER_JOB, _handles_to_spare())
        self.held: set[int] = set()  # the handles open now, closed whatever happens
        # path -> (its listing asked of a worker, the duplicate of its parent's handle it is opened from)
        self.ahead: dict[str, tuple[Future[Listing], int]] = {}
        self.lock = threading.Lock()
        self.closing = False

    def listing(self, visit: Visit[Any]) -> Listing:
        parent = visit.parent
        asked = self._take(visit.path)
        if asked is not None:
            listing = asked.result()
        elif parent is None:
            listing = list_directory(visit.path, keep_open=True, flags=self.top_flags, stat_pool=self.stat_pool)
        else:
            listing = list_directory(visit.path, parent.fd, visit.name, keep_open=True, stat_pool=self.stat_pool)
        if parent is not None:
            parent.children -= 1
            if not parent.children:
                self._release(parent.fd)
        if listing.handle is not None:
            self.held.add(listing.handle)
        return listing

    def entered(self, visit: Visit[Any], listing: Listing, children: list[Visit[Any]]) -> None:
        """Keep the folder open for the subfolders still to be opened from it, or close it; what a worker
        listed ahead below a subfolder the walk does not enter is let go."""
        if self.pool is not None and len(children) < len(listing.subdirs):
            entering = {child.path for child in children}
            for name in listing.subdirs:
                if f"{visit.path}/{name}" not in entering:
                    self._drop(f"{visit.path}/{name}")
        if listing.handle is None:
            return
        if not children:
            self._release(listing.handle)
            return
        held = Held(listing.handle)
        held.children = len(children)
        for child in children:
            child.parent = held
        if self.pool is not None:
            self._ask(listing.handle, [(child.path, child.name) for child in children])

    def waiting(self, stack: list[Visit[Any]]) -> None:
        """The folders next in line: ask for those not asked yet (the budget was spent when they were met)."""
        if self.pool is None:
            return
        for visit in reversed(stack[-AHEAD_PER_JOB:]):
            if visit.parent is not None and visit.path not in self.ahead:
                self._ask(visit.parent.fd, [(visit.path, visit.name)])

    def _ask(self, handle: int, folders: list[tuple[str, str]]) -> None:
        """List ``folders`` (path, name in the open folder ``handle``) in the workers, within the budget."""
        assert self.pool is not None
        for path, name in folders:
            with self.lock:
                if self.closing or len(self.ahead) >= self.budget:
                    return
                if path in self.ahead:
                    continue
                fd = os.dup(handle)
                try:
                    future = self.pool.submit(path.split("/"), functools.partial(self._list_ahead, path, fd, name))
                except RuntimeError:  # shut down meanwhile
                    os.close(fd)
                    return
                self.ahead[path] = (future, fd)

    def _list_ahead(self, path: str, fd: int, name: str) -> Listing:
        """A worker's listing, its subfolders asked for in turn while it is open."""
        try:
            listing = list_directory(path, fd, name, keep_open=True, stat_pool=self.stat_pool)
        finally:
            os.close(fd)
        if listing.handle is not None:
            self._ask(listing.handle, [(f"{path}/{child}", child) for child in listing.subdirs])
        return listing

    def _take(self, path: str) -> Future[Listing] | None:
        if self.pool is None:
            return None
        with self.lock:
            asked = self.ahead.pop(path, None)
        return asked[0] if asked is not None else None

    def _drop(self, path: str) -> None:
        """Let go of what was listed ahead at or below ``path`` (the walk does not enter it): its handles closed
        once the workers are done with them."""
        with self.lock:
            dropped = [self.ahead.pop(key) for key in [key for key in self.ahead
                                                       if key == path or key.startswith(path + "/")]]
        for future, fd in dropped:
            future.add_done_callback(functools.partial(_let_go, fd=fd))

    def close(self) -> None:
        with self.lock:
            self.closing = True
        if self.pool is not None:
            self.pool.shutdown()
        if self.stat_pool is not None:
            self.stat_pool.shutdown(wait=True)
        for future, fd in self.ahead.values():  # listed ahead and never taken: their handles too
            _let_go(future, fd)
        self.ahead.clear()
        for fd in self.held:
            os.close(fd)
        self.held.clear()

    def _release(self, fd: int) -> None:
        self.held.discard(fd)
        os.close(fd)


def _let_go(future: Future[Listing], fd: int) -> None:
    """Close what a listing asked ahead holds: the duplicate handle it was to be opened from, if it never ran;
    its own handle, if it ran."""
    if future.cancelled():
        os.close(fd)
    elif future.exception() is None:
        handle = future.result().handle
        if handle is not None:
            os.close(handle)


def _handles_to_spare() -> int:
    """How many folders may wait listed ahead: each may hold a handle open, so a quarter of what this process may
    open (ulimit -n)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        soft = 1024
    return max(16, (soft if soft > 0 else 1024) // 4)


def walk(roots: list[RootT], warnings: Warnings, skip_dir: Callable[[RootT, str, str], bool] | None = None,
         exclude: frozenset[str] = frozenset(), jobs: int = 1) -> Iterator[Directory[RootT]]:
    """Every folder below ``roots`` from the disk, with its non-directory entries (see ``traverse``); ``jobs``:
    folders listed at once."""
    return traverse(roots, DiskFolders(jobs), warnings, skip_dir, exclude)


class FolderRoot(NamedTuple):
    path: str


def walk_folder(path: str) -> Iterator[Directory[FolderRoot]]:
    """Every folder below ``path`` (itself first, taken as given: it may be a link to a folder), depth first;
    a folder that does not exist has nothing to say (absent evidence is evidence, unreadable is not)."""
    warnings = Warnings()
    for folder in traverse([FolderRoot(path)], DiskFolders(top_flags=TOP_FLAGS), warnings):
        if folder.problem == f"cannot read {path}: no such directory":
            folder.problem = None
        yield folder


