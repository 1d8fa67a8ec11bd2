"""The scanner: one walk over the dataset roots, lstat only, symlinks never followed.

It yields one ``Directory`` at a time (its files as small tuples) and keeps
nothing once the consumer has moved on, so memory stays flat however many
files there are. Order is deterministic: names sorted within each folder,
files before subfolders, depth first.
"""

from __future__ import annotations

import errno
import operator
import os
import stat
from collections.abc import Callable, Iterator
from stat import S_ISLNK
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

from .annex import ELSEWHERE, NOT_ACTIVITY, NOT_ANNEXED, PRESENT, key_of, key_size
from .paths import below
from .warnings import Warnings

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor


class HasPath(Protocol):
    """A root to walk: anything with an absolute path (fmriprep.layout.ScanRoot adds its scope)."""

    @property
    def path(self) -> str: ...


RootT = TypeVar("RootT", bound=HasPath)

BY_NAME = operator.attrgetter("name")
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
STAT_CHUNK = 16  # a large folder's lstats, this many to a thread at once, in a threaded walk (basics/diskwalk.py)
TOP_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # a folder the caller named, taken as given


class Entry(NamedTuple):
    """One non-directory entry: a file, a symlink (its own size, never its target's), a fifo..."""

    name: str
    size: int  # apparent size, st_size
    allocated: int  # st_blocks * 512: what the file really occupies (sparse files: less)
    mtime: float
    dev: int
    ino: int
    nlink: int
    is_link: bool
    ctime: float  # set by the kernel on every change (no one can put it back): acting re-checks it
    annex: int = NOT_ANNEXED  # an annexed link: PRESENT (size, allocated: its content's) or ELSEWHERE (its key's size);
    # GIT_STORED / GIT_CHANGED: stored in git itself (set by the plan, which asks git; see basics/annex.py)
    key: str = ""  # an annexed link's git-annex key: links sharing a key share one content


STAT_SIZE, STAT_BLOCKS = operator.attrgetter("st_size"), operator.attrgetter("st_blocks")
STAT_MTIME, STAT_NLINK = operator.attrgetter("st_mtime"), operator.attrgetter("st_nlink")


class Listing(NamedTuple):
    """What listing one folder gives: its non-directory entries as names with their lstat results (sorted by
    name), the symlinks among them already made entries (by index), its subfolders, and why something could
    not be read. Entries are made from the lstat results only when someone asks for them (``Directory.files``):
    a report adds sizes a folder at a time and never needs them."""

    names: list[str]
    stats: list[os.stat_result]
    links: dict[int, Entry]
    subdirs: list[str]
    problem: str | None
    handle: int | None = None  # the folder, left open for its subfolders to be opened from (``keep_open``)


class Directory(Generic[RootT]):
    """One scanned folder: where it is, its files, and why it (or some file in it) could not be read."""

    __slots__ = ("root", "relpath", "path", "problem", "names", "_stats", "_links", "_files", "_newest")

    def __init__(self, root: RootT, relpath: str, path: str, files: list[Entry] | None = None,
                 problem: str | None = None, listing: Listing | None = None) -> None:
        self.root = root
        self.relpath = relpath  # relative to root.path with "/" separators; "" for the root itself
        self.path = path  # absolute
        self.problem = problem  # why the folder (or some file in it) could not be read: its files are not all here
        self._files: list[Entry] | None = files
        self._newest: float | None | bool = False  # not worked out yet (see newest)
        self._stats: list[os.stat_result] | None
        self._links: dict[int, Entry]
        if listing is not None:
            self.names, self._stats, self._links = listing.names, listing.stats, listing.links
        else:
            self.names, self._stats, self._links = [entry.name for entry in files or ()], None, {}

    @property
    def files(self) -> list[Entry]:
        """The folder's non-directory entries, sorted by name (made on first use)."""
        if self._files is None:
            self._files = _entries(self.names, self._stats or [], self._links)
        return self._files

    @files.setter
    def files(self, entries: list[Entry]) -> None:  # a record rewritten (git, unlocked annex): no shortcut now
        self._files, self._stats, self.names = entries, None, [entry.name for entry in entries]
        self._newest = False

    def plain(self) -> bool:
        """Only regular lstat results (no link, no rewritten record): totals can be read straight from them."""
        return self._plain_stats() is not None

    def _plain_stats(self) -> list[os.stat_result] | None:
        return self._stats if not self._links else None

    def plain_sizes(self) -> list[int] | None:
        """Each file's apparent size, in name order, from the lstat results; None when some record is not one
        (a link made an entry, a record rewritten)."""
        stats = self._plain_stats()
        return None if stats is None else list(map(STAT_SIZE, stats))

    def size(self) -> int:
        """Apparent bytes of all its files."""
        stats = self._plain_stats()
        return sum(map(STAT_SIZE, stats)) if stats is not None else sum(entry.size for entry in self.files)

    def totals(self, positions: tuple[int, ...] | None = None) -> tuple[int, int, int]:
        """(apparent bytes, allocated bytes, largest link count) of all its files, or of those at ``positions``
        (in name order), without making entries."""
        stats = self._plain_stats()
        if stats is not None:
            if positions is not None and len(positions) < len(stats):
                stats = [stats[position] for position in positions]
            return (sum(map(STAT_SIZE, stats)), sum(map(STAT_BLOCKS, stats)) * 512,
                    max(map(STAT_NLINK, stats), default=0))
        files = self.files if positions is None else [self.files[position] for position in positions]
        return (sum(entry.size for entry in files), sum(entry.allocated for entry in files),
                max((entry.nlink for entry in files), default=0))

    def newest(self) -> float | None:
        """The newest modification time that can be activity (not an annexed link's, not a file stored in git
        as committed: those say when it was checked out). Worked out once: the status and the holds both ask."""
        if self._newest is False:
            stats = self._plain_stats()
            if stats is not None:
                self._newest = max(map(STAT_MTIME, stats), default=None)
            else:
                self._newest = max((entry.mtime for entry in self.files if entry.annex not in NOT_ACTIVITY),
                                   default=None)
        return self._newest


def _entries(names: list[str], stats: list[os.stat_result], links: dict[int, Entry]) -> list[Entry]:
    return [links[index] if index in links else
            Entry(name, st.st_size, st.st_blocks * 512, st.st_mtime, st.st_dev, st.st_ino, st.st_nlink, False,
                  st.st_ctime)
            for index, (name, st) in enumerate(zip(names, stats, strict=True))]


def _os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _no_listing(problem: str) -> Listing:
    return Listing([], [], {}, [], problem)


def list_directory(path: str, parent: int | None = None, name: str = "", keep_open: bool = False,
                   flags: int = FOLDER_FLAGS, stat_pool: ThreadPoolExecutor | None = None) -> Listing:
    """One folder: its non-directory entries (lstat-ed), its subfolder names, or why it could not be read.
    ``parent``: the open folder it is ``name`` in, to open it from (openat, as du does: its path is not resolved
    again from the top; 7% of a walk of the standard benchmark tree). ``keep_open``: a folder with subfolders is
    left open, its handle in the listing, for them (the caller closes it).

    Runs in worker threads when walking with several jobs: scandir and lstat
    release the GIL, so on a network file system many listings wait at once.
    """
    try:
        # Listing through a handle makes each lstat relative to the folder (fstatat), as du does, instead
        # of resolving the whole path again; O_NOFOLLOW refuses a folder swapped for a symlink meanwhile.
        handle = os.open(path, flags) if parent is None else os.open(name, FOLDER_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return _no_listing("no such directory")
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return _no_listing("no longer a folder (a symlink or a file now): not followed")
        return _no_listing(_os_error(exc))
    try:
        listing = _list_open_directory(handle, path, keep_open, stat_pool)
    except BaseException:
        os.close(handle)
        raise
    if listing.handle is None:
        os.close(handle)
    return listing


def _list_open_directory(handle: int, path: str, keep_open: bool = False,
                         stat_pool: ThreadPoolExecutor | None = None) -> Listing:
    """The loop every file of a scan goes through: kept to a name, an lstat and two appends. ``stat_pool``: a
    large folder's lstats are made by these threads, a chunk each, at once (on a network file system each is a
    round trip; the order and the result are the same)."""
    try:
        with os.scandir(handle) as iterator:
            entries = sorted(iterator, key=BY_NAME)
    except OSError as exc:
        return _no_listing(_os_error(exc))
    if stat_pool is not None and len(entries) > STAT_CHUNK:
        chunks = [entries[at:at + STAT_CHUNK] for at in range(0, len(entries), STAT_CHUNK)]
        done = list(stat_pool.map(lambda chunk: _stat_entries(handle, path, chunk), chunks))
        names, stats, links, subdirs, problems = done[0]
        for more in done[1:]:
            links.update({index + len(names): entry for index, entry in more[2].items()})
            names += more[0]
            stats += more[1]
            subdirs += more[3]
            problems += more[4]
    else:
        names, stats, links, subdirs, problems = _stat_entries(handle, path, entries)
    return Listing(names, stats, links, subdirs, "\n".join(problems) if problems else None,
                   handle if keep_open and subdirs else None)


def _stat_entries(handle: int, path: str, entries: list[os.DirEntry]) -> tuple[
        list[str], list[os.stat_result], dict[int, Entry], list[str], list[str]]:
    """Names, lstat results, link entries (by index), subfolders and problems of some entries of a folder."""
    names: list[str] = []
    stats: list[os.stat_result] = []
    links: dict[int, Entry] = {}
    subdirs = []
    problems = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
                continue
            st = entry.stat(follow_symlinks=False)  # fstatat(handle, name): the handle must still be open
        except FileNotFoundError:
            continue  # removed between listing and lstat: nothing to account for
        except OSError as exc:
            problems.append(f"cannot stat {path}/{entry.name}: {_os_error(exc)}")
            continue
        if S_ISLNK(st.st_mode):
            links[len(names)] = _link_entry(handle, entry.name, st)
        names.append(entry.name)
        stats.append(st)
    return names, stats, links, subdirs, problems


def _link_entry(handle: int, name: str, st: os.stat_result) -> Entry:
    """A symlink as an entry (see ``link_entry``), read in the open folder ``handle``."""
    try:
        target = os.readlink(name, dir_fd=handle)
    except OSError:
        target = None
    return link_entry(name, st, target, lambda: os.stat(name, dir_fd=handle))


def link_entry(name: str, st: os.stat_result, target: str | None,
               content: Callable[[], os.stat_result]) -> Entry:
    """A symlink as an entry: its own size, or, for a git-annex link (``target`` names a key), its content's (the
    key's size), present here when the link resolves (``content()``: the stat of what it points to, OSError when
    nothing is there). The link is read, never followed to read data."""
    plain = Entry(name, st.st_size, st.st_blocks * 512, st.st_mtime, st.st_dev, st.st_ino, st.st_nlink, True,
                  st.st_ctime)
    key = key_of(target) if target is not None else None
    if key is None:
        return plain
    size = key_size(key)
    try:
        found = content()  # resolves inside the repository's .git/annex/objects
    except OSError:  # content elsewhere only; a key without a size (a URL key) leaves it unknown: 0
        return plain._replace(size=size or 0, allocated=0, annex=ELSEWHERE, key=key)
    return plain._replace(size=found.st_size if size is None else size, allocated=found.st_blocks * 512,
                          annex=PRESENT, key=key)


def top_roots(roots: list[RootT]) -> list[RootT]:
    """The roots a walk starts from: those inside no other (a root inside another, FreeSurfer in
    ``sourcedata/``, takes over from where the walk meets it)."""
    return [root for root in roots if not any(below(root.path, other.path) for other in roots if other is not root)]


class Visit(Generic[RootT]):
    """A folder the walk will enter: its root, where it is, and what its source needs to list it (the open
    parent it is ``name`` in; a listing asked for ahead of time)."""

    __slots__ = ("root", "relpath", "path", "name", "parent", "ahead")

    def __init__(self, root: RootT, relpath: str, path: str, name: str = "", parent: Held | None = None) -> None:
        self.root, self.relpath, self.path, self.name, self.parent = root, relpath, path, name, parent
        self.ahead: Future[Listing] | None = None


class Held:
    """An open folder and how many of its subfolders are still to be opened from it."""

    __slots__ = ("fd", "children")

    def __init__(self, fd: int) -> None:
        self.fd, self.children = fd, 0


class FolderSource:
    """Where a walk's listings come from: the disk (``DiskFolders``) or a scan list (basics/scanlists.py)."""

    def listing(self, visit: Visit[Any]) -> Listing:
        raise NotImplementedError

    def entered(self, visit: Visit[Any], listing: Listing, children: list[Visit[Any]]) -> None:
        """The walk entered ``visit``'s folder and will enter ``children`` (in name order)."""

    def waiting(self, stack: list[Visit[Any]]) -> None:
        """These folders are next in line (the last first)."""

    def close(self) -> None:
        """The walk is over, or abandoned."""


def traverse(roots: list[RootT], source: FolderSource, warnings: Warnings,
             skip_dir: Callable[[RootT, str, str], bool] | None = None,
             exclude: frozenset[str] = frozenset()) -> Iterator[Directory[RootT]]:
    """The one walk: every folder below ``roots``, depth first, names sorted, listed by ``source``.

    A root nested inside another takes over from where the walk meets it; ``skip_dir(root, relpath, name)``
    prunes a subfolder before it is listed; paths in ``exclude`` are never entered; what could not be read is
    said once in ``warnings`` and on the folder (``Directory.problem``).
    """
    nested = {root.path: root for root in roots}
    try:
        for top in top_roots(roots):
            stack: list[Visit[RootT]] = [Visit(top, "", top.path)]
            while stack:
                visit = stack.pop()
                listing = source.listing(visit)
                yield Directory(visit.root, visit.relpath, visit.path, problem=_said(visit, listing, warnings),
                                listing=listing)
                children = []
                for name in listing.subdirs:
                    child = f"{visit.path}/{name}"
                    if child in exclude:
                        continue
                    if child in nested:
                        children.append(Visit(nested[child], "", child, name))
                    elif skip_dir is None or not skip_dir(visit.root, visit.relpath, name):
                        children.append(Visit(visit.root, f"{visit.relpath}/{name}" if visit.relpath else name,
                                              child, name))
                source.entered(visit, listing, children)
                stack.extend(reversed(children))
                source.waiting(stack)
    finally:
        source.close()


def _said(visit: Visit[Any], listing: Listing, warnings: Warnings) -> str | None:
    """Why a folder (or some file in it) could not be read, as the warnings say it; a subfolder removed since
    its parent was listed has nothing to account for."""
    problem = listing.problem
    if problem is None or (problem == "no such directory" and visit.relpath):
        return None
    problem = "\n".join(line if line.startswith("cannot stat") else f"cannot read {visit.path}: {line}"
                        for line in problem.split("\n"))
    for line in problem.split("\n"):
        warnings.add(line)
    return problem


def list_folder(path: str) -> tuple[list[os.DirEntry], str | None]:
    """One folder's entries sorted by name, and why it could not be read (``cannot read PATH: why``). A folder
    that does not exist has no entries and no problem: absent evidence is evidence, unreadable is not."""
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=BY_NAME), None
    except FileNotFoundError:
        return [], None
    except NotADirectoryError:
        return [], f"cannot read {path}: not a folder"
    except OSError as exc:
        return [], f"cannot read {path}: {_os_error(exc)}"


def lstat_entry(path: str) -> Entry:
    """The same record the walk makes, for one path (explain): an annexed link with its content's size, its key
    and whether the content is here. OSError if it cannot be read."""
    st = os.lstat(path)
    if not stat.S_ISLNK(st.st_mode):
        return Entry(os.path.basename(path), st.st_size, st.st_blocks * 512, st.st_mtime,
                     st.st_dev, st.st_ino, st.st_nlink, False, st.st_ctime)
    handle = os.open(os.path.dirname(path) or ".", FOLDER_FLAGS)
    try:
        return _link_entry(handle, os.path.basename(path), st)
    finally:
        os.close(handle)
