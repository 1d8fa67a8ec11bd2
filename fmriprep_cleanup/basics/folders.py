"""The scanner: one walk over the dataset roots, lstat only, symlinks never followed.

It yields one ``Directory`` at a time (its files as small tuples) and keeps
nothing once the consumer has moved on, so memory stays flat however many
files there are. Order is deterministic: names sorted within each folder,
files before subfolders, depth first.
"""

from __future__ import annotations

import bisect
import errno
import operator
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from stat import S_ISLNK
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from .annex import ELSEWHERE, NOT_ACTIVITY, NOT_ANNEXED, PRESENT, key_of, key_size
from .paths import below, inside


class HasPath(Protocol):
    """A root to walk: anything with an absolute path (fmriprep.layout.ScanRoot adds its scope)."""

    @property
    def path(self) -> str: ...


RootT = TypeVar("RootT", bound=HasPath)

BY_NAME = operator.attrgetter("name")
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
TOP_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # a folder the caller named, taken as given
MAX_WARNINGS = 100  # past this only the count grows: a broken mount must not flood the report


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


class Warnings:
    """Problems met during a scan (unreadable folders, vanished files), bounded in memory: past MAX_WARNINGS only
    the count grows. The messages kept are the first in sorted order, not in order of arrival, so a scan in
    shards, whatever order they finish in, keeps exactly the messages one scan would (``merge``)."""

    def __init__(self) -> None:
        self.messages: list[str] = []  # sorted
        self.count = 0

    def add(self, message: str) -> None:
        if message in self.messages:
            return  # said once is enough
        self.count += 1
        bisect.insort(self.messages, message)
        if len(self.messages) > MAX_WARNINGS:
            self.messages.pop()

    def merge(self, messages: list[str], count: int) -> None:
        """Add another scan's warnings (its kept ``messages`` and its ``count``)."""
        for message in messages:
            self.add(message)
        self.count += count - len(messages)

    def as_list(self) -> list[str]:
        extra = self.count - len(self.messages)
        return self.messages + ([f"... and {extra} more warnings"] if extra > 0 else [])


def _os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _no_listing(problem: str) -> Listing:
    return Listing([], [], {}, [], problem)


def list_directory(path: str, parent: int | None = None, name: str = "", keep_open: bool = False) -> Listing:
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
        handle = os.open(path, FOLDER_FLAGS) if parent is None else os.open(name, FOLDER_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return _no_listing("no such directory")
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return _no_listing("no longer a folder (a symlink or a file now): not followed")
        return _no_listing(_os_error(exc))
    try:
        listing = _list_open_directory(handle, path, keep_open)
    except BaseException:
        os.close(handle)
        raise
    if listing.handle is None:
        os.close(handle)
    return listing


def _list_open_directory(handle: int, path: str, keep_open: bool = False) -> Listing:
    """The loop every file of a scan goes through: kept to a name, an lstat and two appends."""
    try:
        with os.scandir(handle) as iterator:
            entries = sorted(iterator, key=BY_NAME)
    except OSError as exc:
        return _no_listing(_os_error(exc))
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
    return Listing(names, stats, links, subdirs, "\n".join(problems) if problems else None,
                   handle if keep_open and subdirs else None)


def _link_entry(handle: int, name: str, st: os.stat_result) -> Entry:
    """A symlink as an entry: its own size, or, for a git-annex link, its content's (the key's size), present
    here when the link resolves. The link is read, never followed to read data."""
    plain = Entry(name, st.st_size, st.st_blocks * 512, st.st_mtime, st.st_dev, st.st_ino, st.st_nlink, True,
                  st.st_ctime)
    try:
        key = key_of(os.readlink(name, dir_fd=handle))
    except OSError:
        return plain
    if key is None:
        return plain
    size = key_size(key)
    try:
        content = os.stat(name, dir_fd=handle)  # resolves inside the repository's .git/annex/objects
    except OSError:  # content elsewhere only; a key without a size (a URL key) leaves it unknown: 0
        return plain._replace(size=size or 0, allocated=0, annex=ELSEWHERE, key=key)
    return plain._replace(size=content.st_size if size is None else size, allocated=content.st_blocks * 512,
                          annex=PRESENT, key=key)


def walk(
    roots: list[RootT],
    warnings: Warnings,
    skip_dir: Callable[[RootT, str, str], bool] | None = None,
    exclude: frozenset[str] = frozenset(),
    jobs: int = 1,
) -> Iterator[Directory[RootT]]:
    """Yield every folder below ``roots`` with its non-directory entries, depth first, names sorted.

    A root nested inside another (FreeSurfer in ``sourcedata/``) takes over
    from where the walk meets it. ``skip_dir(root, relpath, name)`` prunes a
    subfolder before it is listed. Paths in ``exclude`` are never entered.
    With ``jobs`` > 1 the folders next in line are listed ahead by worker
    threads; the order and content of what is yielded stay the same.
    """
    nested = {root.path: root for root in roots}
    tops = [root for root in roots if not any(below(root.path, other.path) for other in roots if other is not root)]
    pool = ThreadPoolExecutor(max_workers=jobs) if jobs > 1 else None
    window = jobs * 4
    # Every folder is opened from its parent's handle (no path resolved again, no symlink followed), by this
    # thread or, listed ahead, by a worker: [fd, subfolders still to open], closed after the last is opened.
    held: set[int] = set()  # the handles open now, closed whatever happens
    ahead: set[Future[Listing]] = set()  # listings asked of the workers and not yet taken
    try:
        for top in tops:
            # stack items: [root, relpath, path, pending listing or None, name, parent's handle or None]
            stack: list[list[Any]] = [[top, "", top.path, None, "", None]]
            while stack:
                root, relpath, path, pending, name, parent = stack.pop()
                if pending is not None:
                    ahead.discard(pending)
                    listing = pending.result()
                elif parent is None:
                    listing = list_directory(path, keep_open=True)
                else:
                    listing = list_directory(path, parent[0], name, keep_open=True)
                if parent is not None:
                    parent[1] -= 1
                    if not parent[1]:
                        held.discard(parent[0])
                        os.close(parent[0])
                this = None
                if listing.handle is not None:
                    this = [listing.handle, 0]
                    held.add(listing.handle)
                problem = listing.problem
                if problem is not None and problem == "no such directory" and relpath:
                    problem = None  # removed since its parent was listed: nothing to account for
                if problem is not None:
                    problem = "\n".join(line if line.startswith("cannot stat") else f"cannot read {path}: {line}"
                                        for line in problem.split("\n"))
                    for line in problem.split("\n"):
                        warnings.add(line)
                yield Directory(root, relpath, path, problem=problem, listing=listing)
                for name in reversed(listing.subdirs):
                    child = f"{path}/{name}"
                    if child in exclude:
                        continue
                    if child in nested:
                        stack.append([nested[child], "", child, None, name, this])
                    elif skip_dir is None or not skip_dir(root, relpath, name):
                        stack.append([root, f"{relpath}/{name}" if relpath else name, child, None, name, this])
                    else:
                        continue
                    if this is not None:
                        this[1] += 1
                if this is not None and not this[1]:
                    held.discard(this[0])
                    os.close(this[0])
                if pool is not None:
                    for item in stack[-window:]:
                        if item[3] is None and item[5] is not None:  # from its parent's handle, held open for it
                            future = pool.submit(list_directory, item[2], item[5][0], item[4], True)
                            item[3] = future
                            ahead.add(future)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for future in ahead:  # listed ahead and never taken: their handles too
            if future.done() and not future.cancelled() and future.exception() is None:
                handle = future.result().handle
                if handle is not None:
                    os.close(handle)
        for fd in held:
            os.close(fd)


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


class TreeEntry:
    """An entry of a folder walk_tree listed through its handle: os.DirEntry's questions, with its full path."""

    __slots__ = ("name", "path", "_entry")

    def __init__(self, entry: os.DirEntry, folder: str) -> None:
        self.name, self.path, self._entry = entry.name, f"{folder}/{entry.name}", entry

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_file(follow_symlinks=follow_symlinks)

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return self._entry.stat(follow_symlinks=follow_symlinks)


def walk_tree(path: str) -> Iterator[tuple[str, list[TreeEntry], str | None]]:
    """Every folder below ``path`` (itself first, then depth first), with its entries sorted by name and why it
    could not be read. Each folder below ``path`` (which is taken as given) is opened from its parent's handle,
    never through a symlink: a link to a folder is an entry, never entered, and a folder swapped for one while
    the walk goes is not followed."""
    stack: list[tuple[str, list[int] | None, str]] = [(path, None, "")]  # (folder, [parent fd, children left], name)
    held: set[int] = set()
    try:
        while stack:
            folder, parent, name = stack.pop()
            entries: list[TreeEntry] = []
            problem: str | None = None
            fd: int | None
            try:
                fd = os.open(folder, TOP_FLAGS) if parent is None else os.open(name, FOLDER_FLAGS, dir_fd=parent[0])
            except FileNotFoundError:
                fd = None
            except OSError as exc:
                why = "a symlink or a file now: not followed" if exc.errno in (errno.ELOOP, errno.ENOTDIR) \
                    else _os_error(exc)
                fd, problem = None, f"cannot read {folder}: {why}"
            if parent is not None:
                parent[1] -= 1
                if not parent[1]:
                    held.discard(parent[0])
                    os.close(parent[0])
            if fd is not None:
                held.add(fd)
                try:
                    with os.scandir(fd) as listed:
                        entries = sorted((TreeEntry(entry, folder) for entry in listed), key=BY_NAME)
                except OSError as exc:
                    problem = f"cannot read {folder}: {_os_error(exc)}"
            yield folder, entries, problem
            children = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
            if fd is not None:
                this = [fd, len(children)]
                if not children:
                    held.discard(fd)
                    os.close(fd)
                stack.extend((f"{folder}/{child}", this, child) for child in reversed(children))
    finally:
        for fd in held:
            os.close(fd)


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


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph", "glusterfs",
                       "fuse.glusterfs", "fuse.sshfs", "fuse.ceph", "panfs", "wekafs", "9p", "afs", "fuse.rclone")
NETWORK_JOBS = 8


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the file system holding ``path`` (Linux), or None if it cannot be told."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            mounts = handle.read().splitlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in mounts:
        fields = line.split(" - ", 1)
        if len(fields) != 2:
            continue
        mount_point = fields[0].split()[4].replace("\\040", " ")
        fs_type = fields[1].split()[0]
        if inside(path, mount_point) and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def on_network(paths: list[str]) -> bool:
    types = {filesystem_type(path) for path in paths}
    return any(t in NETWORK_FILESYSTEMS for t in types if t)


SUBJECTS_PER_PROCESS = 8  # fewer per process and forking and merging cost more than the process saves


def usable_cores() -> int:
    """The processors this process may run on (its affinity: a Slurm allocation, taskset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_processes(subjects: int) -> int:
    """Processes a scan of a local disk uses by default: every usable core, as long as each gets at least
    SUBJECTS_PER_PROCESS subjects (a small dataset is scanned in one)."""
    return max(1, min(usable_cores(), subjects // SUBJECTS_PER_PROCESS))


def default_jobs(paths: list[str]) -> int:
    """Threads help where every stat is a network round trip; on a local disk they only add overhead."""
    return NETWORK_JOBS if on_network(paths) else 1
