"""Restore: put archived files back, byte-identical, with their mode and mtime - as carefully as delete.

* An archive goes back to where it came from only if its manifest and its run's ``run.json`` are sealed with
  this user's key (act/manifest.py): one written by another user, by an earlier version, or edited, is
  restored only under ``--to DIR``. Every manifest line must point inside the roots its archive recorded: no
  ``..``, no absolute path elsewhere; a manifest edited to point elsewhere is refused with a clear error.
* Owner, group and mode follow GNU tar's rules: as root, owner and group are restored (and then the set-id
  bits); otherwise a set-user-id bit is kept only on a file that was the restoring user's, a set-group-id bit
  only for one of their groups. A manifest that is not sealed never brings a set-id or sticky bit back.
* Files that were hard links of each other in one archive come back as hard links.
* Runs that change a dataset exclude each other: restoring to where files were takes the dataset's lock, and a
  shared lock on the archive folder (so `archives prune` waits).
* Folders are created and opened from ``/`` down with O_NOFOLLOW, so a symlink on the way is an error, never
  a redirection; files are created inside those handles only.
* Each file is written under a temporary name, fsynced, checked against the manifest's sha256, then linked
  into place, which fails rather than overwrite a file that appeared meanwhile. An existing file is never
  overwritten: if it is the same it counts as already restored, otherwise it is reported as a conflict.
* A damaged archive (truncated, unreadable, a member missing) is reported and the others are restored.
"""

from __future__ import annotations

import errno
import io
import itertools
import lzma
import os
import stat
import tarfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import IO

from ..basics import gitcall
from ..basics.annex import key_of
from ..basics.annexcall import reinject_stream
from ..basics.diskwalk import walk_folder
from ..basics.errors import CleanupError
from ..basics.handles import open_folder_nofollow
from ..basics.hashing import HashingReader, sha256_of_fd, sha256_of_link
from ..basics.repository import find_repository
from ..basics.results import FAILED, OK, SKIPPED, Result, results_json
from .lock import FolderLock, RunLock
from .manifest import (
    MANIFEST_SUFFIX,
    RUN_INFO,
    Manifest,
    ManifestEntry,
    RunInfo,
    archive_of,
    check_paths,
    load_manifest,
    load_run_info,
    manifest_of,
    run_contents,
)
from .memberarchive import is_removed_members, put_back
from .space import check_room_for_files
from .worklist import ActProgress

_temporary_names = itertools.count()


@dataclass
class RestoreOutcome:
    restored_files: int = 0
    restored_bytes: int = 0
    already_present: int = 0
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    progress: ActProgress | None = field(default=None, repr=False)  # told after every file restored

    def restored(self, size: int) -> None:
        """One more file back in place (``size`` bytes): counted, and told to the progress display."""
        self.restored_files += 1
        self.restored_bytes += size
        if self.progress is not None:
            self.progress("restoring", self.restored_files, self.restored_bytes)

    @property
    def complete(self) -> bool:
        return not self.conflicts and not self.errors

    source: str = ""  # what was restored from: an archive, a manifest or a folder of them

    def results(self) -> list[Result]:
        """The restore as result records: what came back, what was already in place, each conflict and error."""
        records = [Result(self.source, "restore", OK, "", self.restored_files, self.restored_bytes)]
        if self.already_present:
            records.append(Result(self.source, "restore", SKIPPED, "already in place", self.already_present))
        records += [Result(self.source, "restore", FAILED, message, 1) for message in self.conflicts + self.errors]
        return records

    def as_dict(self) -> dict:
        return {"restored_files": self.restored_files, "restored_bytes": self.restored_bytes,
                "already_present": self.already_present, "conflicts": self.conflicts, "errors": self.errors,
                "results": results_json(self.results())}


def find_manifests(source: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(manifest, archive) pairs for an archive, a manifest, or a folder holding them; and what cannot be
    restored: a manifest without its archive (an interrupted run's leftover), an archive without its manifest
    (deleted?) - reported, never a reason to restore nothing."""
    source = os.path.abspath(source)
    if os.path.isdir(source) and not source.endswith(".tmp") and not os.path.exists(source + MANIFEST_SUFFIX):
        pairs, problems = [], []
        folders = sorted({folder.path for folder in walk_folder(source) for entry in folder.files
                          if (entry.name == RUN_INFO or entry.name.endswith(MANIFEST_SUFFIX)) and not entry.is_link})
        for folder in folders:
            contents = run_contents(folder)
            pairs += contents.pairs
            problems += contents.problems
        if not pairs and not problems:
            raise CleanupError(f"{source} holds no fmriprep-cleanup manifest (*{MANIFEST_SUFFIX})")
        return pairs, problems
    manifest = source if source.endswith(MANIFEST_SUFFIX) else manifest_of(source)
    if not os.path.isfile(manifest):
        raise CleanupError(f"no manifest at {manifest}; give an archive made by fmriprep-cleanup or its manifest")
    archive = archive_of(manifest)
    if archive is None:
        return [], [f"{manifest}: no archive beside it (left by an interrupted run?); nothing restored from it"]
    return [(manifest, archive)], []


class _Destinations:
    """Folder handles for the places files go back to, each opened (and made) from / down without following
    symlinks, once per folder."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def folder(self, path: str) -> int:
        fd = self._open.get(path)
        if fd is None:
            fd = self._open[path] = open_folder_nofollow(path, create=True)
        return fd

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


def _existing_digest(fd: int, name: str) -> str | None:
    """sha256 of what already sits at ``name`` (a link's target text), never following a symlink."""
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        return sha256_of_link(os.readlink(name, dir_fd=fd))
    if not stat.S_ISREG(st.st_mode):
        return None
    file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    try:
        return sha256_of_fd(file_fd)
    finally:
        os.close(file_fd)


def _give_back_to_annex(entry: ManifestEntry, destination: str, content: IO[bytes] | None,
                        outcome: RestoreOutcome) -> None:
    """Archived annexed content goes back where it came from through git-annex: its link is still there
    (dangling) after the drop, and `git annex reinject` checks the content against the key and moves it into
    .git/annex/objects, so the dataset's tree is as before and `git status` stays clean."""
    try:
        target = os.readlink(destination)
    except FileNotFoundError:
        outcome.errors.append(f"{destination}: its git-annex link is gone; restore it with --to DIR as a file")
        return
    except OSError as exc:
        outcome.conflicts.append(f"{destination} is no longer a git-annex link ({exc.strerror}); not overwritten")
        return
    if key_of(target) != entry.annex_key:
        outcome.conflicts.append(f"{destination} now links to another git-annex key; not restored")
        return
    if os.path.exists(destination):
        outcome.already_present += 1
        return
    repository = find_repository(destination)
    if repository is None:
        outcome.errors.append(f"{destination}: not in a git repository any more; restore it with --to DIR")
        return
    problem = reinject_stream(repository, content if content is not None else io.BytesIO(), entry.annex_key,
                              entry.sha256, destination)
    if problem:
        outcome.errors.append(f"{destination}: {problem}")
        return
    outcome.restored(entry.size)


def ownership(entry: ManifestEntry, sealed: bool) -> tuple[int, tuple[int, int] | None]:
    """(mode, (uid, gid) to restore or None) for a file coming back, as GNU tar decides: as root the owner is
    restored and then the set-id bits may stay; otherwise a set-id bit stays only where the file was the
    restoring user's (or one of their groups'). Bits of a manifest that is not sealed are never trusted."""
    mode = entry.mode & 0o7777
    if not sealed:
        return mode & 0o777, None
    if os.geteuid() == 0 and entry.uid is not None and entry.gid is not None:
        return mode, (entry.uid, entry.gid)
    if entry.uid != os.geteuid():
        mode &= ~stat.S_ISUID
    if entry.gid is None or entry.gid not in {os.getegid(), *os.getgroups()}:
        mode &= ~stat.S_ISGID
    return mode, None


@dataclass
class _Archive:
    """One archive being restored: its entries wanted, whether its seals are this user's, where members went."""

    path: str
    manifest: str
    wanted: dict[str, ManifestEntry]
    sealed: bool
    target: str | None
    placed: dict[str, str] = field(default_factory=dict)  # member -> where it is now (restored or already there)

    def destination(self, entry: ManifestEntry) -> str:
        return os.path.join(self.target, entry.member) if self.target else entry.path


def _put_back(entry: ManifestEntry, archive: _Archive, destinations: _Destinations, content: IO[bytes] | None,
              link_target: str | None, outcome: RestoreOutcome) -> None:
    destination = archive.destination(entry)
    if entry.kind == "annexed" and destination == entry.path:
        _give_back_to_annex(entry, destination, content, outcome)
        return
    folder, name = os.path.split(destination)
    try:
        fd = destinations.folder(folder)
    except OSError as exc:
        why = "a folder on the way is a symlink or a file" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        outcome.errors.append(f"{destination}: {why}; not restored")
        return
    try:
        if _existing_digest(fd, name) == entry.sha256:
            outcome.already_present += 1
            archive.placed[entry.member] = destination
        else:
            outcome.conflicts.append(f"{destination} exists and differs from the archived file; not overwritten")
        return
    except FileNotFoundError:
        pass
    except OSError as exc:
        outcome.errors.append(f"{destination}: {exc.strerror or exc}")
        return
    try:
        if entry.kind == "symlink":
            if sha256_of_link(link_target or "") != entry.sha256:
                outcome.errors.append(f"{destination}: archived link does not match its manifest; not restored")
                return
            os.symlink(link_target or "", name, dir_fd=fd)
            _, owner = ownership(entry, archive.sealed)
            if owner is not None:
                os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)
            os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=fd, follow_symlinks=False)
        elif not _link_again(entry, archive, destinations, fd, name) and \
                not _write_file(entry, archive.sealed, fd, name, content, destination, outcome):
            return
    except FileExistsError:
        outcome.conflicts.append(f"{destination} appeared while restoring; not overwritten")
        return
    except OSError as exc:
        outcome.errors.append(f"{destination}: {exc.strerror or exc}")
        return
    archive.placed[entry.member] = destination
    outcome.restored(entry.size)


def _link_again(entry: ManifestEntry, archive: _Archive, destinations: _Destinations, fd: int, name: str) -> bool:
    """Make ``name`` a hard link of the member it was a link of, if that one is back and still the same
    content; False to write it as a file instead."""
    first = archive.placed.get(entry.link) if entry.link else None
    if first is None:
        return False
    source_folder, source_name = os.path.split(first)
    try:
        source_fd = destinations.folder(source_folder)
        if _existing_digest(source_fd, source_name) != entry.sha256:
            return False
        os.link(source_name, name, src_dir_fd=source_fd, dst_dir_fd=fd, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        return False  # another file system, a link limit: a copy, then
    return True


def _write_file(entry: ManifestEntry, sealed: bool, fd: int, name: str, content: IO[bytes] | None,
                destination: str, outcome: RestoreOutcome) -> bool:
    """Write under a short temporary name in the folder ``fd`` (a name of 255 bytes leaves no room to add to it),
    check the sha256, set owner and mode, then link into place; False (and the error said) if the archived
    copy is not what the manifest records."""
    temporary = f".fmriprep-cleanup-{os.getpid()}-{next(_temporary_names)}.tmp"
    file_fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
    try:
        reader = HashingReader(content if content is not None else io.BytesIO())
        with os.fdopen(file_fd, "wb", closefd=False) as out:
            for chunk in reader.chunks():
                out.write(chunk)
            out.flush()
            os.fsync(file_fd)
        if reader.digest.hexdigest() != entry.sha256:
            outcome.errors.append(f"{destination}: archived copy does not match its sha256; not restored")
            return False
        mode, owner = ownership(entry, sealed)
        if owner is not None:
            os.fchown(file_fd, *owner)  # first: changing the owner clears set-id bits
        os.fchmod(file_fd, mode)
        os.utime(file_fd, ns=(entry.mtime_ns, entry.mtime_ns))
        os.link(temporary, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)  # never replaces a file
        return True
    finally:
        os.close(file_fd)
        try:
            os.unlink(temporary, dir_fd=fd)
        except FileNotFoundError:
            pass


@dataclass
class _Loaded:
    manifest: Manifest
    archive: str
    run: RunInfo | None

    @property
    def sealed(self) -> bool:
        return self.manifest.verdict.trusted and self.run is not None and self.run.verdict.trusted


def restore(source: str, to: str | None = None, participant_labels: frozenset[str] | None = None,
            progress: ActProgress | None = None) -> RestoreOutcome:
    """Restore the files of an archive (or every archive below a folder) to where they were, or under ``to``.
    CleanupError, before anything is restored, for archives that are not sealed with this user's key (unless
    ``to`` is given), for a manifest pointing outside its recorded roots, and while another run holds a
    dataset's lock."""
    outcome = RestoreOutcome(progress=progress, source=os.path.abspath(source))
    if is_removed_members(source):  # members kept aside from a zip or tar file: put back into it
        if to is not None or participant_labels:
            raise CleanupError("members of a zip or tar file go back into it: --to and --participant-label do not "
                               "apply; nothing restored")
        members, nbytes = put_back(os.path.abspath(source))
        outcome.restored_files, outcome.restored_bytes = members, nbytes
        return outcome
    pairs, problems = find_manifests(source)
    outcome.errors += problems
    loaded: list[_Loaded] = []
    for manifest, archive in pairs:
        try:
            read = load_manifest(manifest)
        except CleanupError as exc:
            outcome.errors.append(str(exc))
            continue
        try:
            run: RunInfo | None = load_run_info(os.path.dirname(manifest))
        except CleanupError:
            run = None
        loaded.append(_Loaded(read, archive, run))
    if participant_labels:
        _check_labels(loaded, participant_labels, source)
    if to is None:
        loaded = _in_place(loaded, outcome)
    target = os.path.realpath(os.path.abspath(to)) if to else None
    destinations = _Destinations()
    with ExitStack() as locks:
        for folder in sorted({os.path.dirname(os.path.dirname(item.manifest.path)) for item in loaded}):
            locks.enter_context(FolderLock(folder, shared=True, what="this archive folder"))
        if to is None:
            for identity in sorted({item.run.identity for item in loaded if item.run and item.run.identity
                                    and os.path.isdir(item.run.identity)}):
                locks.enter_context(RunLock(None, dataset=identity))
        if to is None:
            _check_repositories(loaded)
        check_room_for_files(((os.path.join(target, entry.member) if target else entry.path, entry.size)
                              for item in loaded for entry in item.manifest.entries
                              if participant_labels is None or entry.subject in participant_labels),
                             f"restoring from {source}")
        try:
            for item in loaded:
                wanted = {entry.member: entry for entry in item.manifest.entries
                          if participant_labels is None or entry.subject in participant_labels}
                if wanted:
                    _restore_archive(_Archive(item.archive, item.manifest.path, wanted, item.sealed, target),
                                     destinations, outcome)
        finally:
            destinations.close()
    return outcome


def _check_repositories(loaded: list[_Loaded]) -> None:
    """CleanupError, nothing restored, if annexed content would go back through git-annex into a repository
    someone else could have planted a program in (basics/gitcall.py)."""
    annexed = {os.path.dirname(entry.path) for item in loaded for entry in item.manifest.entries
               if entry.kind == "annexed"}
    for repository in {found for found in map(find_repository, sorted(annexed)) if found is not None}:
        gitcall.check_trusted(repository.top, repository.git_dir)


def _in_place(loaded: list[_Loaded], outcome: RestoreOutcome) -> list[_Loaded]:
    """The archives that may go back where they came from: sealed with this user's key, and pointing only inside
    the roots their run recorded. The others are said (and restored by nobody); CleanupError, nothing
    restored, when that leaves none."""
    fit = []
    for item in loaded:
        why = _unsealed(item)
        if why is None:
            try:
                assert item.run is not None
                check_paths(item.manifest.path, item.manifest.entries, item.run.roots)
            except CleanupError as exc:
                outcome.errors.append(str(exc))
                continue
            fit.append(item)
        else:
            outcome.errors.append(f"{item.manifest.path}: {why}")
    if loaded and not fit:
        raise CleanupError(f"{len(loaded)} archive(s) {NOT_IN_PLACE} ({outcome.errors[-1]})")
    return fit


NOT_IN_PLACE = ("not sealed with your key, so where their files would go cannot be trusted: not restored in place; "
                "restore them with --to DIR (files land under DIR by member name), or as the user who archived them")


def _unsealed(item: _Loaded) -> str | None:
    if not item.manifest.verdict.trusted:
        return f"{item.manifest.verdict.value}; {NOT_IN_PLACE}"
    if item.run is None:
        return f"its run.json is missing or unreadable; {NOT_IN_PLACE}"
    if not item.run.verdict.trusted:
        return f"its run.json is {item.run.verdict.value}; {NOT_IN_PLACE}"
    return None


def _check_labels(loaded: list[_Loaded], participant_labels: frozenset[str], source: str) -> None:
    """Refuse labels no archive holds, before anything is restored (a typo would restore nothing, successfully)."""
    held = {entry.subject for item in loaded for entry in item.manifest.entries if entry.subject}
    unknown = sorted(participant_labels - held)
    if unknown:
        names = ", ".join(f"sub-{label}" for label in unknown)
        holds = f"they hold {', '.join(sorted(held))}" if held else "they hold no subject's files"
        raise CleanupError(f"no archive under {source} holds {names}; {holds}")


def _restore_archive(archive: _Archive, destinations: _Destinations, outcome: RestoreOutcome) -> None:
    found: set[str] = set()
    wanted = archive.wanted
    try:
        if os.path.isdir(archive.path):
            for member, entry in wanted.items():
                found.add(member)
                _restore_tree_member(archive, entry, destinations, outcome)
        else:
            with tarfile.open(archive.path, "r:*") as tar:
                for info in tar:
                    if info.name not in wanted or info.name in found:
                        continue
                    entry = wanted[info.name]
                    found.add(info.name)
                    if info.issym():
                        _put_back(entry, archive, destinations, None, info.linkname, outcome)
                    elif info.isfile():
                        _put_back(entry, archive, destinations, tar.extractfile(info), None, outcome)
                    else:
                        outcome.errors.append(f"{info.name}: not a file or a link in {archive.path}; not restored")
    except (OSError, EOFError, tarfile.TarError, zlib.error, lzma.LZMAError) as exc:
        outcome.errors.append(f"{archive.path} is damaged ({exc}); the members before the damage were restored")
    for member in sorted(set(wanted) - found):
        outcome.errors.append(f"{member}: listed in {archive.manifest} but missing from {archive.path}")


def _restore_tree_member(archive: _Archive, entry: ManifestEntry, destinations: _Destinations,
                         outcome: RestoreOutcome) -> None:
    """One member of a tree archive, read without following a symlink inside the archive folder."""
    folder, name = os.path.split(os.path.join(os.path.realpath(archive.path), entry.member))
    try:
        fd = open_folder_nofollow(folder)
    except OSError as exc:
        outcome.errors.append(f"{entry.member}: missing from {archive.path} ({exc.strerror or exc})")
        return
    try:
        if entry.kind == "symlink":
            _put_back(entry, archive, destinations, None, os.readlink(name, dir_fd=fd), outcome)
            return
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        with os.fdopen(file_fd, "rb") as content:
            _put_back(entry, archive, destinations, content, None, outcome)
    except OSError as exc:
        outcome.errors.append(f"{entry.member}: missing from {archive.path} or unreadable ({exc.strerror or exc})")
    finally:
        os.close(fd)
