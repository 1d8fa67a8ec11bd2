"""Verified archives: junk goes into one archive per subject (plus one for files of no subject), is hashed while
written, read back from disk and checked, made durable, and only then are the originals removed.

For each group: the archive is written under a temporary name (``*.tmp``), its manifest beside it; both are
fsynced, the archive's cached pages are dropped and it is read back from disk (decompressed) and must be the
stream that was written, byte for byte; then the archive is renamed into place and the manifest last - the
manifest is the commit marker - and the run folder is fsynced. Only then are the originals removed, each
re-checked right before. A name without ``.tmp`` whose manifest exists is always a complete, verified archive;
recovery (journal.recover) removes an archive or a manifest found without its partner.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
from typing import IO

from .. import __version__
from ..basics.annex import PRESENT, key_of
from ..basics.errors import CleanupError
from ..basics.hashing import CHUNK, HashingReader, sha256_of_fd, sha256_of_link
from ..basics.journal_writer import Journal
from ..basics.paths import below
from ..basics.repository import GitRepo
from ..fmriprep.layout import Dataset
from ..plan.rows import PlannedFile
from .delete import FileCheck, drop_files, remove_emptied_folders_by_subtree, remove_files
from .manifest import (
    MANIFEST_SUFFIX,
    TAR_SUFFIXES,
    ManifestEntry,
    group_key,
    member_name,
    root_labels,
    write_manifest,
    write_run_info,
)
from .members import GroupFailed, Written, reverify, verify_tar, verify_tree
from .recovery import ReusableArchive
from .safefs import (
    SKIP_CHANGED,
    SafeFolders,
    cannot_remove,
    drop_cache,
    error_reason,
    fsync_path,
    recheck,
    still_the_link,
)
from .threads import RunStopped, Stop
from .worklist import Outcome, Worklist

SKIP_NOT_REGULAR = "not a regular file or symlink"
SKIP_CHANGED_AFTER_ARCHIVING = "changed after it was archived (the archive holds the earlier version)"
SKIP_STOPPED = "not archived: the run was stopped first"
SKIP_UNLOCKED = "an unlocked annexed file: not archived (lock it with git annex lock, or use --mode delete)"


class TarWriter:
    """Writes a tar stream member by member, hashing every byte it writes.

    Headers come from ``tarfile.TarInfo.tobuf``: ustar when the member fits it (one 512-byte block; names up
    to 255 bytes split at a slash, which covers nearly all of fMRIPrep's paths), pax otherwise (longer or
    non-ASCII names, sizes or ids too large for ustar). Any tar reader reads the result. ``tarfile.TarFile``
    itself writes a pax header for every long name and re-parses it on reading, which costs more than the copy.
    """

    def __init__(self, out: IO[bytes], stop: Stop | None = None) -> None:
        self.out = out
        self.stop = stop
        self.digest = hashlib.sha256()
        self.length = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.digest.update(data)
        self.length += len(data)

    def add(self, info: tarfile.TarInfo, content: IO[bytes] | None = None) -> str:
        """Add a member (its content read from ``content``, ``info.size`` bytes); the sha256 of the content."""
        self._write(_header(info))
        if content is None:
            return hashlib.sha256().hexdigest()
        reader = HashingReader(content)
        while reader.count < info.size:
            if self.stop is not None:
                self.stop.check()
            chunk = reader.read(min(CHUNK, info.size - reader.count))
            if not chunk:
                raise GroupFailed(f"{info.name} shrank while it was archived")
            self._write(chunk)
        if info.size % tarfile.BLOCKSIZE:
            self._write(bytes(tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE))
        return reader.digest.hexdigest()

    def finish(self) -> None:
        """The end-of-archive marker (two zero blocks), padded to a whole record as tar does."""
        self._write(bytes(2 * tarfile.BLOCKSIZE))
        if self.length % tarfile.RECORDSIZE:
            self._write(bytes(tarfile.RECORDSIZE - self.length % tarfile.RECORDSIZE))

    def written(self) -> Written:
        return Written(self.length, self.digest.hexdigest())


def _header(info: tarfile.TarInfo) -> bytes:
    if info.name.isascii() and info.linkname.isascii():
        try:
            return info.tobuf(tarfile.USTAR_FORMAT)
        except ValueError:
            pass  # a name ustar cannot split, a size or id too large: pax records it
    return info.tobuf(tarfile.PAX_FORMAT)


def _compressor(raw: IO[bytes], compress: str | None) -> IO[bytes]:
    if compress == "gz":
        return gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)  # type: ignore[return-value]
    if compress == "xz":
        return lzma.LZMAFile(raw, "wb")
    return raw


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def open_for_writing(path: str) -> IO[bytes]:
    """The archive file itself (a function of its own so tests can simulate a full disk)."""
    return open(path, "xb", buffering=CHUNK)


def _durable(handle: IO[bytes]) -> None:
    """Flush and fsync a written file, then drop its cached pages so reading it back reads the disk."""
    handle.flush()
    os.fsync(handle.fileno())
    drop_cache(handle.fileno())


class _Source:
    """One original, opened safely and checked against the scan, ready to be archived."""

    def __init__(self, planned: PlannedFile, member: str, kind: str, st: os.stat_result,
                 handle: IO[bytes] | None, link_target: str | None, annex_key: str = "") -> None:
        self.planned, self.member, self.kind, self.st = planned, member, kind, st
        self.handle, self.link_target, self.annex_key = handle, link_target, annex_key

    def entry(self, sha256: str, link: str = "") -> ManifestEntry:
        return ManifestEntry(self.member, self.planned.path, self.planned.subject, self.kind, self.st.st_size,
                             self.st.st_mtime_ns, stat.S_IMODE(self.st.st_mode), sha256, self.annex_key,
                             self.st.st_uid, self.st.st_gid, link)


class _Links:
    """The first member of each file with several hard links in one archive: later links name it in the
    manifest, so restore makes them links again instead of copies."""

    def __init__(self) -> None:
        self._first: dict[tuple[int, int], str] = {}

    def earlier(self, source: _Source) -> str:
        if source.kind != "file" or source.st.st_nlink < 2:
            return ""
        key = (source.st.st_dev, source.st.st_ino)
        first = self._first.setdefault(key, source.member)
        return "" if first == source.member else first


def _open_annexed(planned: PlannedFile, member: str, repository: GitRepo | None, outcome: Outcome,
                  journal: Journal) -> _Source | None:
    """The content of an annexed link, opened in the repository's .git/annex/objects (nowhere else): archived
    as a file with its key, so restore can give it back to git-annex."""
    reason = still_the_link(planned)
    if reason is None and not os.path.islink(planned.path):
        reason = SKIP_UNLOCKED
    if reason is None and repository is not None:
        key = key_of(os.readlink(planned.path))
        content = os.path.realpath(planned.path)
        if key is None or not below(content, os.path.join(os.path.realpath(repository.git_dir), "annex", "objects")):
            reason = SKIP_CHANGED
        else:
            file_fd = os.open(content, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            fst = os.fstat(file_fd)
            if fst.st_size == planned.size and stat.S_ISREG(fst.st_mode):
                return _Source(planned, member, "annexed", fst, os.fdopen(file_fd, "rb"), None, key)
            os.close(file_fd)
            reason = SKIP_CHANGED
    outcome.skip(planned, reason or SKIP_CHANGED)
    journal.skipped(planned.path, reason or SKIP_CHANGED)
    return None


def _open_source(folders: SafeFolders, planned: PlannedFile, member: str, outcome: Outcome,
                 journal: Journal, repository: GitRepo | None = None) -> _Source | None:
    if planned.annex == PRESENT:
        return _open_annexed(planned, member, repository, outcome, journal)
    checked = recheck(folders, planned, outcome.links_removed(planned) if planned.nlink > 1 else 0)
    if isinstance(checked, str):
        outcome.skip(planned, checked)
        journal.skipped(planned.path, checked)
        return None
    fd, name, st = checked
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        outcome.skip(planned, SKIP_NOT_REGULAR)
        journal.skipped(planned.path, SKIP_NOT_REGULAR)
        return None
    file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd) if stat.S_ISREG(st.st_mode) else None
    stuck = cannot_remove(fd, file_fd)  # archived every run and never removed: not archived at all
    if stuck:
        if file_fd is not None:
            os.close(file_fd)
        outcome.skip(planned, stuck)
        journal.skipped(planned.path, stuck)
        return None
    if file_fd is None:
        return _Source(planned, member, "symlink", st, None, os.readlink(name, dir_fd=fd))
    fst = os.fstat(file_fd)
    if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
        os.close(file_fd)
        outcome.skip(planned, SKIP_CHANGED)
        return None
    return _Source(planned, member, "file", fst, os.fdopen(file_fd, "rb"), None)


class Archiver:
    """Writes and verifies one archive per group, then removes the originals it holds."""

    def __init__(self, dataset: Dataset, run_dir: str, fmt: str, compress: str | None,
                 journal: Journal, outcome: Outcome, stop: Stop) -> None:
        self.dataset, self.run_dir, self.fmt, self.compress = dataset, run_dir, fmt, compress
        self.journal, self.outcome, self.stop = journal, outcome, stop
        self.labels = root_labels(dataset)

    def archive_name(self, key: str) -> str:
        suffix = TAR_SUFFIXES[self.compress] if self.fmt == "tar" else ""
        return os.path.join(self.run_dir, key + suffix)

    def run_group(self, key: str, files: list[PlannedFile]) -> tuple[str | None, set[str]]:
        """Archive one group and remove its originals: (the archive, None if none was written; the folders emptied)."""
        with SafeFolders(self.dataset.scan_roots) as folders:
            archived = self._write_and_verify(key, files, folders)
        if archived is None:
            return None, set()
        final, entries = archived
        by_path = {planned.path: planned for planned in files}
        return final, remove_archived(entries, by_path, final, self.dataset, self.outcome, self.journal, self.stop)

    def _write_and_verify(self, key: str, files: list[PlannedFile],
                          folders: SafeFolders) -> tuple[str, list[ManifestEntry]] | None:
        final = self.archive_name(key)
        temporary = final + ".tmp"
        manifest_final = os.path.join(self.run_dir, key + MANIFEST_SUFFIX)
        manifest_temporary = manifest_final + ".tmp"
        self.journal.archive_begin(final, temporary, manifest_final, len(files))
        written: Written | None = None
        try:
            entries, written = (self._write_tar if self.fmt == "tar" else self._write_tree)(temporary, files, folders)
            if not entries:
                _remove(temporary)
                return None
            write_manifest(manifest_temporary, entries, manifest_final)
            if written is None:
                verify_tree(temporary, entries)
            else:
                verify_tar(temporary, self.compress, written)
            os.rename(temporary, final)
            os.rename(manifest_temporary, manifest_final)  # last: the manifest says the archive is complete
            fsync_path(self.run_dir)
        except BaseException as exc:
            for leftover in (temporary, manifest_temporary, manifest_final, final):
                _remove(leftover)
            if not isinstance(exc, (OSError, GroupFailed, tarfile.TarError, CleanupError, RunStopped)):
                raise
            if isinstance(exc, RunStopped):
                for planned in files:
                    self.outcome.skip(planned, SKIP_STOPPED)
                self.journal.archive_failed(final, "the run was stopped")
                return None
            reason = error_reason(exc) if isinstance(exc, OSError) else str(exc)
            for planned in files:
                self.outcome.fail(planned, f"archive {key} not written ({reason}); originals untouched",
                                  f"{planned.path}: not archived")
            self.journal.archive_failed(final, reason)
            return None
        self.journal.archive_verified(final, manifest_final, len(entries), sum(e.size for e in entries),
                                      (written.length, written.sha256) if written else None)
        return final, entries

    def _write_tar(self, temporary: str, files: list[PlannedFile], folders: SafeFolders) -> tuple[list[ManifestEntry], Written]:
        entries = []
        raw = open_for_writing(temporary)
        try:
            out = _compressor(raw, self.compress)
            writer = TarWriter(out, self.stop)
            links = _Links()
            for planned in files:
                self.stop.check()
                source = _open_source(folders, planned, member_name(planned.path, self.labels), self.outcome, self.journal,
                                  self.dataset.repository)
                if source is None:
                    continue
                info = tarfile.TarInfo(source.member)
                info.mtime = source.st.st_mtime_ns // 10**9  # whole seconds fit ustar; the manifest has the ns
                info.mode = stat.S_IMODE(source.st.st_mode)
                info.uid, info.gid = source.st.st_uid, source.st.st_gid
                if source.kind == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = source.link_target or ""
                    writer.add(info)
                    entries.append(source.entry(sha256_of_link(info.linkname)))
                    continue
                info.size = source.st.st_size
                assert source.handle is not None
                with source.handle:
                    entries.append(source.entry(writer.add(info, source.handle), links.earlier(source)))
                self.outcome.advance("archiving", planned)
            writer.finish()
            if out is not raw:
                out.close()  # writes the compressor's trailer; raw stays open
            _durable(raw)
        finally:
            raw.close()
        return entries, writer.written()

    def _write_tree(self, temporary: str, files: list[PlannedFile], folders: SafeFolders) -> tuple[list[ManifestEntry], None]:
        entries = []
        os.mkdir(temporary)
        made = {temporary}
        links = _Links()
        for planned in files:
            self.stop.check()
            source = _open_source(folders, planned, member_name(planned.path, self.labels), self.outcome, self.journal,
                                  self.dataset.repository)
            if source is None:
                continue
            destination = os.path.join(temporary, source.member)
            parent = os.path.dirname(destination)
            while parent not in made:  # every new folder is fsynced below, before any original goes
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
                parent = os.path.dirname(parent)
            if source.kind == "symlink":
                os.symlink(source.link_target or "", destination)  # a link to a folder stays a link
                os.utime(destination, ns=(source.st.st_mtime_ns, source.st.st_mtime_ns), follow_symlinks=False)
                entries.append(source.entry(sha256_of_link(source.link_target or "")))
                continue
            assert source.handle is not None
            with source.handle, open_for_writing(destination) as out:
                reader = HashingReader(source.handle)
                shutil.copyfileobj(reader, out, CHUNK)
                if reader.count != source.st.st_size:
                    raise GroupFailed(f"{planned.path} changed size while it was copied")
                _durable(out)
            os.chmod(destination, stat.S_IMODE(source.st.st_mode))
            os.utime(destination, ns=(source.st.st_mtime_ns, source.st.st_mtime_ns))
            entries.append(source.entry(reader.digest.hexdigest(), links.earlier(source)))
            self.outcome.advance("archiving", planned)
        for folder in sorted(made, key=len, reverse=True):  # children first; the run folder itself last
            fsync_path(folder)
        fsync_path(self.run_dir)
        return entries, None


def remove_archived(entries: list[ManifestEntry], by_path: dict[str, PlannedFile], archive: str, dataset: Dataset,
                    outcome: Outcome, journal: Journal, stop: Stop) -> set[str]:
    """Unlink originals that are in a verified archive and still exactly what was archived; the folders they were in."""

    def still_as_archived(entry: ManifestEntry) -> FileCheck:
        def check(st: os.stat_result) -> str | None:
            same = st.st_mtime_ns == entry.mtime_ns and st.st_size == entry.size
            return None if same else SKIP_CHANGED_AFTER_ARCHIVING
        return check

    annexed = [by_path[entry.path] for entry in entries if entry.kind == "annexed"]
    if annexed and dataset.repository is not None:  # the verified archive is the other copy: drop, never unlink
        drop_files(annexed, dataset.repository, outcome, journal, stop, force=True, archive=archive)
    pairs = [(by_path[entry.path], still_as_archived(entry)) for entry in entries if entry.kind != "annexed"]
    return remove_files(pairs, dataset, outcome, journal, stop, archive=archive)


def _still_archived(folders: SafeFolders, planned: PlannedFile, entry: ManifestEntry) -> bool:
    """The original is what the archive holds: same size and mtime, and the same content (re-hashed)."""
    if entry.size != planned.size or abs(entry.mtime_ns / 1e9 - planned.mtime) >= 1e-6:
        return False
    checked = recheck(folders, planned)
    if isinstance(checked, str):
        return False
    fd, name, st = checked
    if stat.S_ISLNK(st.st_mode):
        return sha256_of_link(os.readlink(name, dir_fd=fd)) == entry.sha256
    file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    try:
        return sha256_of_fd(file_fd) == entry.sha256
    finally:
        os.close(file_fd)


def archive(worklist: Worklist, dataset: Dataset, journal: Journal, archive_dir: str, reusable: list[ReusableArchive],
            stop: Stop, fmt: str = "tar", compress: str | None = None) -> tuple[Outcome, list[str]]:
    """Archive the worklist group by group (subject by subject), verified, then remove the originals.

    ``reusable``: verified archives that this run's interrupted predecessor wrote into the same archive folder;
    each is read back and checked again, and the originals it holds (re-hashed) are removed without archiving
    them a second time.
    """
    outcome = worklist.outcome
    groups: dict[str, list[PlannedFile]] = {}
    by_path = {planned.path: planned for planned in worklist.files}
    archives: list[str] = []
    emptied: set[str] = set()
    claimed: set[str] = set()
    for previous in reusable:
        try:
            entries = reverify(previous)
        except (GroupFailed, CleanupError, OSError) as exc:
            journal.recovered(previous.archive, f"not reused: {exc}")
            continue
        with SafeFolders(dataset.scan_roots) as folders:
            confirmed = [entry for entry in entries if entry.path in by_path and entry.path not in claimed
                         and _still_archived(folders, by_path[entry.path], entry)]
        if not confirmed:
            continue
        claimed |= {entry.path for entry in confirmed}
        journal.archive_reused(previous.archive, len(confirmed))
        emptied |= remove_archived(confirmed, by_path, previous.archive, dataset, outcome, journal, stop)
        archives.append(previous.archive)
    for planned in worklist.files:
        if planned.path not in claimed:
            groups.setdefault(group_key(planned.subject), []).append(planned)
    run_dir = os.path.join(archive_dir, journal.run_id)
    if groups and not stop:
        try:
            os.makedirs(run_dir)
            fsync_path(os.path.dirname(run_dir))  # the run folder's own entry is durable before anything in it
            write_run_info(run_dir, root_labels(dataset), dataset, journal.run_id, __version__)
            fsync_path(run_dir)
        except OSError as exc:
            raise CleanupError(f"cannot create {run_dir}: {exc.strerror or exc}") from None
        archiver = Archiver(dataset, run_dir, fmt, compress, journal, outcome, stop)
        for key in sorted(groups):  # one at a time: writing is CPU-bound Python, and removal already runs in threads
            if stop:
                for planned in groups[key]:
                    outcome.skip(planned, SKIP_STOPPED)
                continue
            written, group_emptied = archiver.run_group(key, groups[key])
            archives += [written] if written else []
            emptied |= group_emptied
    outcome.removed_dirs = remove_emptied_folders_by_subtree(emptied, dataset, journal, stop)
    if os.path.isdir(run_dir) and os.listdir(run_dir) == ["run.json"]:  # nothing was archived after all
        os.unlink(os.path.join(run_dir, "run.json"))
        os.rmdir(run_dir)
    return outcome, archives
