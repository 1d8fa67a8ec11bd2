"""Verified archives: junk goes into one archive per subject (plus one for files of no subject),
is hashed while written, re-read and checked against its manifest, and only then removed.

Layout under ``--archive-dir DIR``, one folder per run::

    DIR/<run id>/sub-01.tar               (or .tar.gz / .tar.xz; or a folder sub-01/ with --archive-format tree)
    DIR/<run id>/sub-01.manifest.tsv      member, original path, subject, type, size, mtime_ns, mode, sha256
    DIR/<run id>/no-subject.tar

Everything is written under a temporary name (``*.tmp``) and renamed into place
after verification, so a name without ``.tmp`` is always a complete, verified
archive. Archive members are named ``<root>/<path inside that root>`` (root:
derivatives, freesurfer, workdir, other), so ``restore --to`` can lay them out
anywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO, Iterable

from .act import (SKIP_CHANGED, FileCheck, Outcome, SafeFolders, Worklist, _error_reason, recheck, recover_removals,
                  remove_emptied_folders_by_subtree, remove_files)
from .discover import Dataset
from .errors import CleanupError
from .plan import PlannedFile
from .state import Journal, read_journal

MANIFEST_SUFFIX = ".manifest.tsv"
MANIFEST_COLUMNS = ("member", "path", "subject", "type", "size", "mtime_ns", "mode", "sha256")
TAR_SUFFIXES = {None: ".tar", "gz": ".tar.gz", "xz": ".tar.xz"}
SKIP_NOT_REGULAR = "not a regular file or symlink"
SKIP_CHANGED_AFTER_ARCHIVING = "changed after it was archived (the archive holds the earlier version)"
CHUNK = 1 << 20
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


@dataclass(frozen=True)
class ManifestEntry:
    member: str
    path: str  # where the original was
    subject: str | None
    kind: str  # "file" | "symlink"
    size: int
    mtime_ns: int
    mode: int
    sha256: str  # of the content; of the link target for a symlink


def group_key(subject: str | None) -> str:
    return f"sub-{subject}" if subject is not None else "no-subject"


def root_labels(dataset: Dataset) -> dict[str, str]:
    """A short, stable label per scan root: the archive member prefix."""
    labels = {}
    workdirs = 0
    for root in dataset.scan_roots:
        if root.scope == "workdir":
            workdirs += 1
            labels[root.path] = "workdir" if workdirs == 1 else f"workdir{workdirs}"
        else:
            labels[root.path] = root.scope
    return labels


def member_name(path: str, labels: dict[str, str]) -> str:
    root = max((r for r in labels if path.startswith(r + "/")), key=len)
    return f"{labels[root]}/{path[len(root) + 1:]}"


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        pair = text[i:i + 2]
        if pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def write_manifest(path: str, entries: Iterable[ManifestEntry]) -> None:
    with open(path, "x", encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
        handle.write("\t".join(MANIFEST_COLUMNS) + "\n")
        for e in entries:
            handle.write("\t".join([
                e.member.translate(_ESCAPES), e.path.translate(_ESCAPES), e.subject or "", e.kind,
                str(e.size), str(e.mtime_ns), f"{e.mode:o}", e.sha256]) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(path: str) -> list[ManifestEntry]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise CleanupError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    if not lines or tuple(lines[0].split("\t")) != MANIFEST_COLUMNS:
        raise CleanupError(f"{path} is not an fmriprep-cleanup manifest (bad header)")
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        try:
            member, original, subject, kind, size, mtime_ns, mode, sha = fields
            entry = ManifestEntry(_unescape(member), _unescape(original), subject or None, kind,
                                  int(size), int(mtime_ns), int(mode, 8), sha)
        except ValueError:
            raise CleanupError(f"{path}:{number}: malformed manifest line") from None
        if kind not in ("file", "symlink") or entry.member.startswith("/") or ".." in entry.member.split("/"):
            raise CleanupError(f"{path}:{number}: unsafe or unknown entry {entry.member!r}")
        entries.append(entry)
    return entries


class HashingReader:
    """Reads a file object, hashing what passes through (the archive is hashed while written)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.count += len(data)
        return data


@dataclass(frozen=True)
class Written:
    """What a tar stream held when it was written: verification reads the archive back and compares."""

    length: int
    sha256: str


class TarWriter:
    """Writes a tar stream member by member, hashing every byte it writes.

    Headers come from ``tarfile.TarInfo.tobuf``: ustar when the member fits it
    (one 512-byte block; names up to 255 bytes split at a slash, which covers
    nearly all of fMRIPrep's paths), pax otherwise (longer or non-ASCII names,
    sizes or ids too large for ustar). Any tar reader reads the result.
    ``tarfile.TarFile`` itself writes a pax header for every long name and
    re-parses it on reading, which costs more than the copying.
    """

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
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
        return gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
    if compress == "xz":
        return lzma.LZMAFile(raw, "wb")
    return raw


_DECOMPRESSORS = {None: open, "gz": gzip.open, "xz": lzma.open}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def open_for_writing(path: str) -> IO[bytes]:
    """The archive file itself (a function of its own so tests can simulate a full disk)."""
    return open(path, "xb", buffering=CHUNK)


class _Source:
    """One original, opened safely and checked against the scan, ready to be archived."""

    def __init__(self, planned: PlannedFile, member: str, kind: str, st: os.stat_result,
                 handle: IO[bytes] | None, link_target: str | None) -> None:
        self.planned, self.member, self.kind, self.st = planned, member, kind, st
        self.handle, self.link_target = handle, link_target

    def entry(self, sha256: str) -> ManifestEntry:
        return ManifestEntry(self.member, self.planned.path, self.planned.subject, self.kind, self.st.st_size,
                             self.st.st_mtime_ns, stat.S_IMODE(self.st.st_mode), sha256)


def _open_source(folders: SafeFolders, planned: PlannedFile, member: str, outcome: Outcome, journal: Journal) -> _Source | None:
    checked = recheck(folders, planned)
    if isinstance(checked, str):
        outcome.skip(planned, checked)
        journal.write("skipped", path=planned.path, reason=checked)
        return None
    fd, name, st = checked
    if stat.S_ISLNK(st.st_mode):
        return _Source(planned, member, "symlink", st, None, os.readlink(name, dir_fd=fd))
    if not stat.S_ISREG(st.st_mode):
        outcome.skip(planned, SKIP_NOT_REGULAR)
        journal.write("skipped", path=planned.path, reason=SKIP_NOT_REGULAR)
        return None
    file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    fst = os.fstat(file_fd)
    if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
        os.close(file_fd)
        outcome.skip(planned, SKIP_CHANGED)
        return None
    return _Source(planned, member, "file", fst, os.fdopen(file_fd, "rb"), None)


def _link_digest(target: str) -> str:
    return hashlib.sha256(os.fsencode(target)).hexdigest()


class GroupFailed(Exception):
    """Writing or verifying one group's archive failed; its originals stay untouched."""


class Archiver:
    """Writes and verifies one archive per group, then removes the originals it holds."""

    def __init__(self, dataset: Dataset, run_dir: str, fmt: str, compress: str | None,
                 journal: Journal, outcome: Outcome) -> None:
        self.dataset, self.run_dir, self.fmt, self.compress = dataset, run_dir, fmt, compress
        self.journal, self.outcome = journal, outcome
        self.labels = root_labels(dataset)

    def archive_name(self, key: str) -> str:
        suffix = TAR_SUFFIXES[self.compress] if self.fmt == "tar" else ""
        return os.path.join(self.run_dir, key + suffix)

    def run_group(self, key: str, files: list[PlannedFile]) -> tuple[str | None, set[str]]:
        """Archive one group and remove its originals: (the archive, None if none was written; the folders emptied)."""
        folders = SafeFolders(self.dataset.scan_roots)
        try:
            archived = self._write_and_verify(key, files, folders)
        finally:
            folders.close()
        if archived is None:
            return None, set()
        final, entries = archived
        by_path = {planned.path: planned for planned in files}
        return final, remove_archived(entries, by_path, final, self.dataset, self.outcome, self.journal)

    def _write_and_verify(self, key: str, files: list[PlannedFile],
                          folders: SafeFolders) -> tuple[str, list[ManifestEntry]] | None:
        final = self.archive_name(key)
        temporary = final + ".tmp"
        manifest_final = os.path.join(self.run_dir, key + MANIFEST_SUFFIX)
        manifest_temporary = manifest_final + ".tmp"
        self.journal.write("archive-begin", archive=final, temporary=temporary, manifest=manifest_final, files=len(files))
        try:
            entries, written = (self._write_tar if self.fmt == "tar" else self._write_tree)(temporary, files, folders)
            if not entries:
                _remove(temporary)
                return None
            write_manifest(manifest_temporary, entries)
            if written is None:
                verify_tree(temporary, entries)
            else:
                verify_tar(temporary, self.compress, written)
            os.rename(manifest_temporary, manifest_final)
            os.rename(temporary, final)
            _fsync_dir(self.run_dir)
        except (OSError, GroupFailed, tarfile.TarError, CleanupError) as exc:
            for leftover in (temporary, manifest_temporary):
                _remove(leftover)
            reason = _error_reason(exc) if isinstance(exc, OSError) else str(exc)
            for planned in files:
                self.outcome.fail(planned, f"archive {key} not written ({reason}); originals untouched",
                                  f"{planned.path}: not archived")
            self.journal.write("archive-failed", archive=final, error=reason)
            return None
        self.journal.write("archive-verified", archive=final, manifest=manifest_final, files=len(entries),
                           bytes=sum(e.size for e in entries))
        return final, entries

    def _write_tar(self, temporary: str, files: list[PlannedFile], folders: SafeFolders) -> tuple[list[ManifestEntry], Written]:
        entries = []
        raw = open_for_writing(temporary)
        try:
            out = _compressor(raw, self.compress)
            writer = TarWriter(out)
            for planned in files:
                source = _open_source(folders, planned, member_name(planned.path, self.labels), self.outcome, self.journal)
                if source is None:
                    continue
                info = tarfile.TarInfo(source.member)
                info.mtime = source.st.st_mtime_ns // 10**9  # whole seconds fit ustar; the manifest has the ns
                info.mode = stat.S_IMODE(source.st.st_mode)
                info.uid, info.gid = source.st.st_uid, source.st.st_gid
                if source.kind == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = source.link_target
                    writer.add(info)
                    entries.append(source.entry(_link_digest(source.link_target)))
                    continue
                info.size = source.st.st_size
                with source.handle:
                    entries.append(source.entry(writer.add(info, source.handle)))
            writer.finish()
            if out is not raw:
                out.close()  # writes the compressor's trailer; raw stays open
            raw.flush()
            os.fsync(raw.fileno())
        finally:
            raw.close()
        return entries, writer.written()

    def _write_tree(self, temporary: str, files: list[PlannedFile], folders: SafeFolders) -> tuple[list[ManifestEntry], None]:
        entries = []
        os.makedirs(temporary)
        for planned in files:
            source = _open_source(folders, planned, member_name(planned.path, self.labels), self.outcome, self.journal)
            if source is None:
                continue
            destination = os.path.join(temporary, source.member)
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            if source.kind == "symlink":
                os.symlink(source.link_target, destination)
                entries.append(source.entry(_link_digest(source.link_target)))
                continue
            with source.handle, open_for_writing(destination) as out:
                reader = HashingReader(source.handle)
                shutil.copyfileobj(reader, out, CHUNK)
                if reader.count != source.st.st_size:
                    raise GroupFailed(f"{planned.path} changed size while it was copied")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(destination, stat.S_IMODE(source.st.st_mode))
            os.utime(destination, ns=(source.st.st_mtime_ns, source.st.st_mtime_ns))
            entries.append(source.entry(reader.digest.hexdigest()))
        return entries, None


def verify_tree(archive: str, entries: list[ManifestEntry]) -> None:
    """Re-read every copied file from disk and compare it with the manifest; GroupFailed on any difference."""
    expected = {entry.member: entry for entry in entries}
    seen = 0
    for dirpath, _, filenames in os.walk(archive):
        for name in filenames:
            path = os.path.join(dirpath, name)
            entry = expected.get(os.path.relpath(path, archive))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                kind, digest = "symlink", _link_digest(os.readlink(path))
            else:
                kind, digest = "file", _sha256_of_open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW))
            if entry is None or entry.kind != kind or entry.size != st.st_size or entry.sha256 != digest:
                raise GroupFailed(f"verification failed for {path}")
            seen += 1
    if seen != len(entries):
        raise GroupFailed(f"verification failed: {archive} holds {seen} of {len(entries)} files")


def verify_tar(archive: str, compress: str | None, written: Written) -> None:
    """Read the archive back from disk (decompressing it) and check it is, byte for byte, the stream
    that was written: same length, same sha256. GroupFailed on any difference."""
    digest = hashlib.sha256()
    length = 0
    try:
        with _DECOMPRESSORS[compress](archive, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
                length += len(chunk)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:  # a corrupt gzip or xz stream says so itself
        raise GroupFailed(f"verification failed: cannot read {archive} back ({exc})") from None
    if (length, digest.hexdigest()) != (written.length, written.sha256):
        raise GroupFailed(f"verification failed: {archive} does not hold what was written ({length:,} of {written.length:,} bytes read back)")


def remove_archived(entries: list[ManifestEntry], by_path: dict[str, PlannedFile], archive: str,
                    dataset: Dataset, outcome: Outcome, journal: Journal) -> set[str]:
    """Unlink originals that are in a verified archive and still exactly what was archived; the folders they were in."""

    def still_as_archived(entry: ManifestEntry) -> FileCheck:
        def check(st: os.stat_result) -> str | None:
            same = st.st_mtime_ns == entry.mtime_ns and st.st_size == entry.size
            return None if same else SKIP_CHANGED_AFTER_ARCHIVING
        return check

    pairs = [(by_path[entry.path], still_as_archived(entry)) for entry in entries]
    return remove_files(pairs, dataset, outcome, journal, event="archived", archive=archive)


# --- recovery after a crash -------------------------------------------------------------------


def recover(state_dir: str, journal: Journal) -> dict[str, tuple[ManifestEntry, str, str]]:
    """Tidy up after runs that were killed: remove their half-written archives and
    return the verified ones, original path -> (entry, archive, archive format), for reuse."""
    begun: dict[str, tuple[str, str]] = {}  # temporary archive -> (run, temporary manifest)
    verified: list[tuple[str, str]] = []
    finished: set[str] = set()
    for record in read_journal(state_dir):
        event = record.get("event")
        if event == "run-end":
            finished.add(record.get("run"))
        elif event == "archive-begin":
            begun[record["temporary"]] = (record["run"], record["manifest"] + ".tmp")
        elif event == "archive-verified":
            verified.append((record["archive"], record["manifest"]))
    reusable: dict[str, tuple[ManifestEntry, str, str]] = {}
    for temporary, (run, manifest_temporary) in begun.items():
        if run in finished:
            continue
        for leftover in (temporary, manifest_temporary):
            if os.path.lexists(leftover):
                _remove(leftover)
                journal.write("recovered", removed=leftover, reason="half-written archive of an interrupted run")
    for archive, manifest in verified:
        if not (os.path.lexists(archive) and os.path.exists(manifest)):
            continue
        fmt = "tree" if os.path.isdir(archive) else "tar"
        for entry in read_manifest(manifest):
            reusable[entry.path] = (entry, archive, fmt)
    return reusable


def _manifest_of(archive: str) -> str:
    base = archive
    for suffix in (".tar.gz", ".tar.xz", ".tar"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base + MANIFEST_SUFFIX


def _sha256_of(folders: SafeFolders, path: str) -> str | None:
    folder, name = os.path.split(path)
    fd = folders.open_folder(folder)
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        return _link_digest(os.readlink(name, dir_fd=fd))
    return _sha256_of_open(os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd))


def _sha256_of_open(file_fd: int) -> str:
    """sha256 of an opened file's content; closes it."""
    digest = hashlib.sha256()
    with os.fdopen(file_fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def archive(worklist: Worklist, dataset: Dataset, journal: Journal, state_dir: str, archive_dir: str,
            fmt: str = "tar", compress: str | None = None) -> tuple[Outcome, list[str]]:
    """Archive the worklist group by group (subject by subject), verified, then remove the originals."""
    outcome = worklist.outcome
    recover_removals(state_dir, journal)
    reusable = recover(state_dir, journal)
    run_dir = os.path.join(archive_dir, journal.run_id)
    try:
        os.makedirs(run_dir)
    except OSError as exc:
        raise CleanupError(f"cannot create {run_dir}: {exc.strerror or exc}") from None
    archiver = Archiver(dataset, run_dir, fmt, compress, journal, outcome)
    archives: list[str] = []
    emptied: set[str] = set()
    groups: dict[str, list[PlannedFile]] = {}
    reused: dict[str, list[tuple[ManifestEntry, PlannedFile]]] = {}
    for planned in worklist.files:
        previous = reusable.get(planned.path)
        if previous and previous[0].size == planned.size and abs(previous[0].mtime_ns / 1e9 - planned.mtime) < 1e-6:
            reused.setdefault(previous[1], []).append((previous[0], planned))
        else:
            groups.setdefault(group_key(planned.subject), []).append(planned)
    folders = SafeFolders(dataset.scan_roots)
    try:
        confirmed: dict[str, list[ManifestEntry]] = {}
        for old_archive, pairs in reused.items():
            for entry, planned in pairs:
                try:
                    same = _sha256_of(folders, planned.path) == entry.sha256
                except OSError:
                    same = False
                if same:
                    confirmed.setdefault(old_archive, []).append(entry)
                else:
                    groups.setdefault(group_key(planned.subject), []).append(planned)
    finally:
        folders.close()
    for old_archive, pairs in reused.items():
        entries = confirmed.get(old_archive, [])
        journal.write("archive-reused", archive=old_archive, files=len(entries))
        emptied |= remove_archived(entries, {planned.path: planned for _, planned in pairs}, old_archive,
                                   dataset, outcome, journal)
        archives.append(old_archive)
    for key in sorted(groups):  # one at a time: writing is CPU-bound Python, and the removal already runs in threads
        written, group_emptied = archiver.run_group(key, groups[key])
        archives += [written] if written else []
        emptied |= group_emptied
    outcome.removed_dirs = remove_emptied_folders_by_subtree(emptied, dataset, journal, state_dir)
    if not os.listdir(run_dir):
        os.rmdir(run_dir)
    return outcome, archives
