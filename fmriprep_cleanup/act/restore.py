"""Restore: put archived files back, byte-identical, with their mode and mtime - as carefully as delete.

* Every manifest line must point inside the roots its archive recorded (its run's ``run.json``): no ``..``,
  no absolute path elsewhere; a manifest edited to point elsewhere is refused with a clear error.
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
import lzma
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import IO

from ..basics.annex import key_of
from ..basics.errors import CleanupError
from ..basics.folders import walk_tree
from ..basics.hashing import HashingReader, sha256_of_fd, sha256_of_link
from ..basics.repository import find_repository
from ..plan.worklist import ActProgress
from .annex import reinject
from .manifest import (
    MANIFEST_SUFFIX,
    ManifestEntry,
    archive_of,
    check_paths,
    manifest_of,
    read_manifest,
    recorded_roots,
)
from .safefs import open_folder_nofollow


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

    def as_dict(self) -> dict:
        return {"restored_files": self.restored_files, "restored_bytes": self.restored_bytes,
                "already_present": self.already_present, "conflicts": self.conflicts, "errors": self.errors}


def find_manifests(source: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(manifest, archive) pairs for an archive, a manifest, or a folder holding them; and the manifests found
    without their archive (an interrupted run's leftover: reported, never a reason to restore nothing)."""
    source = os.path.abspath(source)
    if os.path.isdir(source) and not source.endswith(".tmp") and not os.path.exists(source + MANIFEST_SUFFIX):
        manifests = [entry.path for _, entries, _ in walk_tree(source) for entry in entries
                     if entry.name.endswith(MANIFEST_SUFFIX) and entry.is_file(follow_symlinks=False)]
        if not manifests:
            raise CleanupError(f"{source} holds no fmriprep-cleanup manifest (*{MANIFEST_SUFFIX})")
        manifests.sort()
    elif source.endswith(MANIFEST_SUFFIX):
        manifests = [source]
    else:
        manifests = [manifest_of(source)]
    pairs, orphans = [], []
    for manifest in manifests:
        if not os.path.isfile(manifest):
            raise CleanupError(f"no manifest at {manifest}; give an archive made by fmriprep-cleanup or its manifest")
        archive = archive_of(manifest)
        if archive is None:
            orphans.append(f"{manifest}: no archive beside it (left by an interrupted run?); nothing restored from it")
        else:
            pairs.append((manifest, archive))
    return pairs, orphans


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
    staging = os.path.join(repository.git_dir, "fmriprep-cleanup", "reinject")
    os.makedirs(staging, exist_ok=True)
    temporary = os.path.join(staging, f"{os.getpid()}-{entry.annex_key}")
    try:
        reader = HashingReader(content if content is not None else io.BytesIO())
        with open(temporary, "xb") as out:
            for chunk in reader.chunks():
                out.write(chunk)
        if reader.digest.hexdigest() != entry.sha256:
            outcome.errors.append(f"{destination}: archived copy does not match its sha256; not restored")
            return
        problem = reinject(repository, temporary, destination)
        if problem:
            outcome.errors.append(f"{destination}: {problem}")
            return
    except OSError as exc:
        outcome.errors.append(f"{destination}: {exc.strerror or exc}")
        return
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    outcome.restored(entry.size)


def _put_back(entry: ManifestEntry, destination: str, destinations: _Destinations, content: IO[bytes] | None,
              link_target: str | None, outcome: RestoreOutcome) -> None:
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
            os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=fd, follow_symlinks=False)
        elif not _write_file(entry, fd, name, content, destination, outcome):
            return
    except FileExistsError:
        outcome.conflicts.append(f"{destination} appeared while restoring; not overwritten")
        return
    except OSError as exc:
        outcome.errors.append(f"{destination}: {exc.strerror or exc}")
        return
    outcome.restored(entry.size)


def _write_file(entry: ManifestEntry, fd: int, name: str, content: IO[bytes] | None, destination: str,
                outcome: RestoreOutcome) -> bool:
    """Write under a temporary name in the folder ``fd``, check the sha256, then link into place; False (and
    the error said) if the archived copy is not what the manifest records."""
    temporary = f".{name}.restore-{os.getpid()}.tmp"
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
        os.fchmod(file_fd, entry.mode)
        os.utime(file_fd, ns=(entry.mtime_ns, entry.mtime_ns))
        os.link(temporary, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)  # never replaces a file
        return True
    finally:
        os.close(file_fd)
        try:
            os.unlink(temporary, dir_fd=fd)
        except FileNotFoundError:
            pass


def _destination(entry: ManifestEntry, to: str | None) -> str:
    return os.path.join(to, entry.member) if to else entry.path


def restore(source: str, to: str | None = None, participant_labels: frozenset[str] | None = None,
            progress: ActProgress | None = None) -> RestoreOutcome:
    """Restore the files of an archive (or every archive below a folder) to where they were, or under ``to``."""
    outcome = RestoreOutcome(progress=progress)
    pairs, orphans = find_manifests(source)
    outcome.errors += orphans
    if participant_labels:
        _check_labels(pairs, participant_labels, source)
    target = os.path.realpath(os.path.abspath(to)) if to else None
    destinations = _Destinations()
    try:
        for manifest, archive in pairs:
            try:
                entries = read_manifest(manifest)
                check_paths(manifest, entries, recorded_roots(manifest, entries))
            except CleanupError as exc:
                outcome.errors.append(str(exc))
                continue
            wanted = {entry.member: entry for entry in entries
                      if participant_labels is None or entry.subject in participant_labels}
            if wanted:
                _restore_archive(archive, manifest, wanted, target, destinations, outcome)
    finally:
        destinations.close()
    return outcome


def _check_labels(pairs: list[tuple[str, str]], participant_labels: frozenset[str], source: str) -> None:
    """Refuse labels no archive holds, before anything is restored (a typo would restore nothing, successfully).
    A manifest that cannot be read is left to the restore itself, which reports it."""
    held: set[str] = set()
    for manifest, _ in pairs:
        try:
            held.update(entry.subject for entry in read_manifest(manifest) if entry.subject)
        except CleanupError:
            continue
    unknown = sorted(participant_labels - held)
    if unknown:
        names = ", ".join(f"sub-{label}" for label in unknown)
        holds = f"they hold {', '.join(sorted(held))}" if held else "they hold no subject's files"
        raise CleanupError(f"no archive under {source} holds {names}; {holds}")


def _restore_archive(archive: str, manifest: str, wanted: dict[str, ManifestEntry], target: str | None,
                     destinations: _Destinations, outcome: RestoreOutcome) -> None:
    found: set[str] = set()
    try:
        if os.path.isdir(archive):
            for member, entry in wanted.items():
                found.add(member)
                _restore_tree_member(archive, entry, _destination(entry, target), destinations, outcome)
        else:
            with tarfile.open(archive, "r:*") as tar:
                for info in tar:
                    if info.name not in wanted or info.name in found:
                        continue
                    entry = wanted[info.name]
                    found.add(info.name)
                    if info.issym():
                        _put_back(entry, _destination(entry, target), destinations, None, info.linkname, outcome)
                    elif info.isfile():
                        _put_back(entry, _destination(entry, target), destinations, tar.extractfile(info), None, outcome)
                    else:
                        outcome.errors.append(f"{info.name}: not a file or a link in {archive}; not restored")
    except (OSError, EOFError, tarfile.TarError, zlib.error, lzma.LZMAError) as exc:
        outcome.errors.append(f"{archive} is damaged ({exc}); the members before the damage were restored")
    for member in sorted(set(wanted) - found):
        outcome.errors.append(f"{member}: listed in {manifest} but missing from {archive}")


def _restore_tree_member(archive: str, entry: ManifestEntry, destination: str, destinations: _Destinations,
                         outcome: RestoreOutcome) -> None:
    """One member of a tree archive, read without following a symlink inside the archive folder."""
    folder, name = os.path.split(os.path.join(os.path.realpath(archive), entry.member))
    try:
        fd = open_folder_nofollow(folder)
    except OSError as exc:
        outcome.errors.append(f"{entry.member}: missing from {archive} ({exc.strerror or exc})")
        return
    try:
        if entry.kind == "symlink":
            _put_back(entry, destination, destinations, None, os.readlink(name, dir_fd=fd), outcome)
            return
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        with os.fdopen(file_fd, "rb") as content:
            _put_back(entry, destination, destinations, content, None, outcome)
    except OSError as exc:
        outcome.errors.append(f"{entry.member}: missing from {archive} or unreadable ({exc.strerror or exc})")
    finally:
        os.close(fd)
