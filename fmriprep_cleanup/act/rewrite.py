"""Taking junk out of a zip or tar file (BABS zips, Nipoppy ``--tar``): a new archive is written beside the old
one without the junk members, every kept member checked against the old one, then swapped in with one rename.

The promise: a kill at any moment leaves the old archive or the new one whole under its name, never neither
(``os.replace`` is atomic; the new one is complete and synced before it). The archive is read again right before
acting and must be the one the plan read (same size, change time and members); the new one is read back whole
and each kept member must have the old one's size, CRC-32 (zip) and SHA-256. The journal names the temporary
file before it exists, so an interrupted run's leftover is removed by the next run, and only that file.

Kept members are streamed, never unpacked to disk: a zip member is decompressed and compressed again with its
own method (Python's zipfile cannot copy compressed data as it is; the cost is measured in benchmarks/), a tar
member is copied block for block."""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from typing import IO, BinaryIO

from ..basics import annexcall
from ..basics.archivefile import ZIP, ArchiveFile, HostileArchive, member_key, read_archive
from ..basics.archivetree import ArchiveTree
from ..basics.errors import CleanupError
from ..basics.gitcall import check_trusted
from ..basics.gitcommit import not_ready_to_commit
from ..basics.journal_writer import Journal
from ..basics.journals import REWRITE_BEGIN, REWRITE_DONE, REWRITE_FAILED
from ..basics.repository import GitRepo, find_repository
from .threads import Stop
from .worklist import Outcome, Worklist

CHUNK = 1 << 20
TEMPORARY_SUFFIX = ".fmriprep-cleanup.tmp"


def temporary_name(archive: str, run_id: str) -> str:
    """Where the new archive is written: beside the old one (the same file system, so the swap is one rename),
    hidden, named by the archive and the run - recovery removes exactly this name and nothing else."""
    folder, name = os.path.split(archive)
    return os.path.join(folder, f".{name}.{run_id}{TEMPORARY_SUFFIX}")


def rewrite(worklist: Worklist, tree: ArchiveTree, journal: Journal, stop: Stop,
            keep: Callable[[set[str]], str] | None = None, force_drop: bool = False) -> Outcome:
    """Rewrite the archive of ``tree`` without the worklist's members; each is then counted removed (or skipped,
    failed). ``keep(members)``: keeps them elsewhere first (archive mode), once the archive is known unchanged.
    An annexed archive (a DataLad dataset's): the new one is annexed and committed, then the old content dropped
    (``force_drop``: even when no other copy is known)."""
    outcome, files, archive = worklist.outcome, worklist.files, tree.archive
    if not files or stop:
        return outcome
    why_not = _changed_since_the_scan(archive)
    repository, unsaveable = annexed_repository(archive) if archive.key else (None, None)
    why_not = why_not or unsaveable
    if why_not is not None:
        for planned in files:
            outcome.skip(planned, why_not)
        return outcome
    junk = {tree.member_name(planned.path) for planned in files}
    temporary = temporary_name(archive.path, journal.run_id)
    journal.rewrite_begin(archive.path, temporary, sorted(junk))
    kept_in = None
    try:
        if keep is not None:
            kept_in = keep(junk)
        _write_and_verify(archive, junk, temporary)
        if _changed_since_the_scan(archive) is not None:
            raise CleanupError(f"{archive.path} changed while it was rewritten; left as it is")
        swap_in(temporary, archive.path)
    except (CleanupError, OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        remove_file(temporary)
        reason = str(exc) if isinstance(exc, CleanupError) else f"{archive.path}: {exc}"
        journal.rewrite_failed(archive.path, reason)
        for number, planned in enumerate(files):
            outcome.fail(planned, "archive-not-rewritten", "" if number else reason)  # one archive, one message
        return outcome
    after = os.lstat(archive.path).st_size
    journal.rewrite_done(archive.path, sorted(junk), archive.size - after)
    for planned in files:
        outcome.act(planned)
    saved = _save(repository, archive, len(junk), journal.run_id, force_drop) if repository is not None else {}
    outcome.rewritten.append({"archive": archive.path, "members_removed": len(junk), "bytes_before": archive.size,
                              "bytes_after": after, **({"kept_in": kept_in} if kept_in else {}), **saved})
    return outcome


def annexed_repository(archive: ArchiveFile) -> tuple[GitRepo | None, str | None]:
    """The repository an annexed archive is committed in, once git may act there (its settings writable by you
    alone, no merge or staged change under way); else why not."""
    repository = find_repository(os.path.dirname(archive.path))
    if repository is None or not annexcall.available():
        return None, "annexed, and git-annex is not installed here: nothing can save the rewrite"
    try:
        check_trusted(repository.top, repository.git_dir)
    except CleanupError as exc:
        return None, str(exc)
    return repository, not_ready_to_commit(repository)


def _save(repository: GitRepo, archive: ArchiveFile, removed: int, run_id: str, force: bool) -> dict[str, str]:
    """The rewritten archive annexed and committed (as ``datalad save`` would), then its old content dropped -
    only once the new one is committed. What happened, for the result."""
    message = f"fmriprep-cleanup: {os.path.basename(archive.path)} without {removed} junk member(s) (run {run_id})"
    problem = annexcall.save_file(repository, archive.path, message)
    if problem is not None:
        return {"saved": f"not committed ({problem}): `datalad save {archive.path}`; the old content is kept"}
    dropped = annexcall.drop_key(repository, archive.key, force)
    return {"saved": "committed", "old_content": "dropped" if dropped is None else
            f"kept ({'no other copy is known: --force-drop frees it' if dropped == annexcall.ONLY_COPY else dropped})"}


def _changed_since_the_scan(archive: ArchiveFile) -> str | None:
    try:
        now = read_archive(archive.path)
    except (CleanupError, HostileArchive) as exc:
        return f"cannot read it again: {exc}"
    if (now.size, now.ctime, now.members) != (archive.size, archive.ctime, archive.members):
        return "the archive changed since the scan"
    return None


def _write_and_verify(archive: ArchiveFile, junk: set[str], temporary: str) -> None:
    """The new archive at ``temporary``, complete, synced and checked member by member against the old one."""
    with open(archive.data, "rb", opener=no_follow) as source, new_file(temporary, archive.path) as target:
        digests = copy_members(archive.kind, source, target, lambda name: name not in junk)
        target.flush()
        os.fsync(target.fileno())
    written = read_archive(temporary, archive.kind)
    kept = {member.name: member for member in archive.members if member.name not in junk}
    now = {member.name: member for member in written.members}
    if set(now) != set(kept):
        raise CleanupError(f"{archive.path}: the rewritten archive does not hold exactly the kept members; left as it is")
    for name, member in now.items():
        old = kept[name]
        if member.size != old.size or (archive.kind == ZIP and member.crc != old.crc):
            raise CleanupError(f"{archive.path}: member {name} differs in the rewritten archive; left as it is")
    if digests_of(temporary, archive.kind) != digests:
        raise CleanupError(f"{archive.path}: a kept member's content differs in the rewritten archive; left as it is")


def copy_members(kind: str, source: BinaryIO, target: BinaryIO, wanted: Callable[[str], bool],
                 more: BinaryIO | None = None) -> dict[str, str]:
    """The members of ``source`` that are ``wanted`` (and then every member of ``more``, an archive of the same
    kind) written into ``target``, a new archive of that kind; the SHA-256 of each file member's content."""
    copy = _copy_zip if kind == ZIP else _copy_tar
    if more is None:
        return copy(source, target, wanted)
    return copy(source, target, wanted, more)


def _copy_zip(source: BinaryIO, target: BinaryIO, wanted: Callable[[str], bool],
              more: BinaryIO | None = None) -> dict[str, str]:
    """Each wanted member into ``target``, with its name, time, attributes and method. zipfile checks each
    CRC-32 as it reads: a wrong one stops the copy."""
    digests: dict[str, str] = {}
    with zipfile.ZipFile(target, "w", allowZip64=True) as new:
        _zip_into(new, source, wanted, digests)
        if more is not None:
            _zip_into(new, more, lambda _name: True, digests)
    return digests


def _zip_into(new: zipfile.ZipFile, source: BinaryIO, wanted: Callable[[str], bool], digests: dict[str, str]) -> None:
    with zipfile.ZipFile(source) as old:
        for info in old.infolist():
            name = member_key(info.filename)
            if not wanted(name):
                continue
            copied = zipfile.ZipInfo(info.filename, info.date_time)
            copied.compress_type, copied.external_attr = info.compress_type, info.external_attr
            copied.create_system, copied.internal_attr, copied.comment = info.create_system, info.internal_attr, info.comment
            if info.is_dir():
                new.writestr(copied, b"")
                continue
            with old.open(info) as reading, new.open(copied, "w", force_zip64=info.file_size >= 1 << 31) as writing:
                digests[name] = _stream(reading, writing)


def _copy_tar(source: BinaryIO, target: BinaryIO, wanted: Callable[[str], bool],
              more: BinaryIO | None = None) -> dict[str, str]:
    digests: dict[str, str] = {}
    with tarfile.open(fileobj=target, mode="w", format=tarfile.PAX_FORMAT) as new:
        _tar_into(new, source, wanted, digests)
        if more is not None:
            _tar_into(new, more, lambda _name: True, digests)
    return digests


def _tar_into(new: tarfile.TarFile, source: BinaryIO, wanted: Callable[[str], bool], digests: dict[str, str]) -> None:
    with tarfile.open(fileobj=source, mode="r:") as old:
        for info in old:
            name = member_key(info.name)
            if not wanted(name):
                continue
            if not info.isreg():
                new.addfile(info)
                continue
            data = old.extractfile(info)
            assert data is not None  # a regular member
            hashing = _HashingReader(data)
            new.addfile(info, hashing)
            digests[name] = hashing.hexdigest()


def digests_of(path: str, kind: str) -> dict[str, str]:
    """The SHA-256 of each file member's content, read back from the archive at ``path``."""
    found = {}
    with open(path, "rb", opener=no_follow) as handle:
        if kind == ZIP:
            with zipfile.ZipFile(handle) as opened:
                for info in opened.infolist():
                    if not info.is_dir():
                        with opened.open(info) as reading:
                            found[member_key(info.filename)] = _stream(reading, None)
        else:
            with tarfile.open(fileobj=handle, mode="r:") as tarred:
                for member in tarred:
                    data = tarred.extractfile(member) if member.isreg() else None
                    if data is not None:
                        found[member_key(member.name)] = _stream(data, None)
    return found


def _stream(reading: IO[bytes], writing: IO[bytes] | None) -> str:
    digest = hashlib.sha256()
    while chunk := reading.read(CHUNK):
        digest.update(chunk)
        if writing is not None:
            writing.write(chunk)
    return digest.hexdigest()


class _HashingReader:
    """A member's data as tarfile.addfile reads it, hashed on the way."""

    def __init__(self, data: IO[bytes]) -> None:
        self.data, self.digest = data, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.data.read(size)
        self.digest.update(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def new_file(path: str, like: str) -> BinaryIO:
    """A new file (never one that exists, never through a link) with the old archive's mode and owner."""
    st = os.lstat(like)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.geteuid() == 0:
            os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, st.st_mode & 0o7777)
    except OSError:
        os.close(fd)
        remove_file(path)
        raise
    return os.fdopen(fd, "wb")


def swap_in(temporary: str, archive: str) -> None:
    """The new archive in the old one's place, in one rename (atomic: the name always holds a whole archive),
    made to last (the folder synced)."""
    os.replace(temporary, archive)
    _sync_folder(os.path.dirname(archive))


def _sync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_file(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def leftover_temporaries(records: Iterable[dict]) -> list[str]:
    """The temporaries an interrupted run's journal names (rewrite begun, never done nor failed), each only if
    it is the name this run would have used for its archive."""
    begun: dict[str, str] = {}
    for record in records:
        archive, event = record.get("archive"), record.get("event")
        if not isinstance(archive, str):
            continue
        if event == REWRITE_BEGIN and record.get("temporary") == temporary_name(archive, str(record.get("run"))):
            begun[archive] = record["temporary"]
        elif event in (REWRITE_DONE, REWRITE_FAILED):
            begun.pop(archive, None)
    return list(begun.values())


def remove_leftovers(records: Iterable[dict], journal: Journal) -> None:
    """Remove the new archives an interrupted run began and did not swap in (the old ones are whole)."""
    for leftover in leftover_temporaries(records):
        if remove_file(leftover):
            journal.recovered(leftover, "half-written archive of an interrupted rewrite")

