"""Reading an archive back: the one place an archive's members are read and hashed - right after it is written
(before any original goes), before an interrupted run's archive is reused, and by `archives verify` years later.
A tar is read with tarfile, a tree archive walked without following a link; each member is compared with the
manifest: type, size, mode, time (whole seconds) and sha256."""

from __future__ import annotations

import gzip
import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from ..basics.diskwalk import walk_folder
from ..basics.errors import CleanupError
from ..basics.hashing import sha256_of_fd, sha256_of_link, sha256_of_stream
from .manifest import ManifestEntry, load_manifest
from .recovery import ReusableArchive


@dataclass(frozen=True)
class Member:
    """One member as the archive holds it."""

    name: str  # <root label>/<path inside it>
    kind: str  # "file" | "symlink"
    size: int
    mode: int
    mtime: int  # whole seconds
    sha256: str  # of the content; of the link target for a symlink


def read_members(archive: str) -> Iterator[Member]:
    """Every member of a tar (any compression) or a tree archive, hashed as it is read. OSError, EOFError or
    tarfile.TarError where the archive cannot be read to the end."""
    if os.path.isdir(archive) and not os.path.islink(archive):
        for folder in walk_folder(archive):
            if folder.problem:
                raise OSError(folder.problem)
            for child in folder.files:
                path = f"{folder.path}/{child.name}"
                st = os.lstat(path)
                name = os.path.relpath(path, archive)
                if stat.S_ISLNK(st.st_mode):
                    yield Member(name, "symlink", st.st_size, stat.S_IMODE(st.st_mode), int(st.st_mtime),
                                 sha256_of_link(os.readlink(path)))
                    continue
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    yield Member(name, "file", st.st_size, stat.S_IMODE(st.st_mode), int(st.st_mtime), sha256_of_fd(fd))
                finally:
                    os.close(fd)
        return
    with tarfile.open(archive, "r:*") as tar:
        for info in tar:
            if info.issym():
                yield Member(info.name, "symlink", 0, info.mode, int(info.mtime), sha256_of_link(info.linkname))
            else:
                stream = tar.extractfile(info)
                digest = sha256_of_stream(stream)[1] if stream is not None else ""
                yield Member(info.name, "file" if info.isfile() else "other", info.size, info.mode, int(info.mtime),
                             digest)


def differences(member: Member, entry: ManifestEntry) -> str | None:
    """What of a member differs from its manifest line (the first thing), or None."""
    kind = "file" if entry.kind == "annexed" else entry.kind
    if member.kind != kind:
        return "type"
    if member.kind == "file" and member.size != entry.size:
        return "size"
    if member.sha256 != entry.sha256:
        return "sha256"
    if member.mode != entry.mode & 0o7777:
        return "mode"
    if member.mtime != entry.mtime_ns // 10**9:
        return "modification time"
    return None


@dataclass
class Checked:
    members: int = 0  # members read back and found as their manifest says
    bytes: int = 0
    problems: list[str] | None = None


def check_archive(archive: str, entries: list[ManifestEntry]) -> Checked:
    """Read every member of ``archive`` back and compare it with its manifest line: a member not listed, a
    listed member missing, any difference, or an archive that cannot be read to the end is a problem."""
    expected = {entry.member: entry for entry in entries}
    checked = Checked(problems=[])
    assert checked.problems is not None
    seen: set[str] = set()
    try:
        for member in read_members(archive):
            entry = expected.get(member.name)
            if entry is None or member.name in seen:
                checked.problems.append(f"{archive}: {member.name} is not in its manifest")
                continue
            seen.add(member.name)
            difference = differences(member, entry)
            if difference:
                checked.problems.append(f"{archive}: {member.name}: its {difference} differs from its manifest")
            else:
                checked.members += 1
                checked.bytes += entry.size
    except (OSError, EOFError, tarfile.TarError, zlib.error, lzma.LZMAError) as exc:
        checked.problems.append(f"{archive} cannot be read to the end ({exc})")
    checked.problems += [f"{archive}: {member} is missing" for member in sorted(set(expected) - seen)]
    return checked


@dataclass(frozen=True)
class Written:
    """What a tar stream held when it was written: verification reads the archive back and compares."""

    length: int
    sha256: str


class GroupFailed(Exception):
    """Writing or verifying one group's archive failed; its originals stay untouched."""


DECOMPRESSORS: dict[str | None, Callable[..., IO[bytes]]] = {None: open, "gz": gzip.open, "xz": lzma.open}  # type: ignore[dict-item]  # open() is overloaded on its mode


def verify_tree(archive: str, entries: list[ManifestEntry]) -> None:
    """Re-read every copied file of a tree archive from disk and compare it with the manifest (symlinks, to
    folders too, as links, never followed); GroupFailed on any difference, missing or extra member."""
    checked = check_archive(archive, entries)
    if checked.problems:
        raise GroupFailed(f"verification failed: {checked.problems[0]}")


def verify_tar(archive: str, compress: str | None, written: Written) -> None:
    """Read the archive back from disk (decompressing it) and check it is, byte for byte, the stream that was
    written: same length, same sha256. GroupFailed on any difference."""
    try:
        with DECOMPRESSORS[compress](archive, "rb") as handle:
            length, sha256 = sha256_of_stream(handle)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:  # a corrupt gzip or xz stream says so itself
        raise GroupFailed(f"verification failed: cannot read {archive} back ({exc})") from None
    if (length, sha256) != (written.length, written.sha256):
        raise GroupFailed(f"verification failed: {archive} does not hold what was written "
                          f"({length:,} of {written.length:,} bytes read back)")


def compression_of(archive: str) -> str | None:
    return "gz" if archive.endswith(".gz") else "xz" if archive.endswith(".xz") else None


def reverify(reusable: ReusableArchive) -> list[ManifestEntry]:
    """The entries of an archive an interrupted run verified, after reading the archive back again and finding
    it unchanged; GroupFailed (or CleanupError for a damaged or unsealed manifest) otherwise."""
    manifest = load_manifest(reusable.manifest)
    if not manifest.verdict.trusted:
        raise CleanupError(f"{reusable.manifest}: {manifest.verdict.value}")
    entries = manifest.entries
    if os.path.isdir(reusable.archive):
        verify_tree(reusable.archive, entries)
    elif reusable.stream is None:
        raise GroupFailed(f"{reusable.archive}: no record of its stream to check it against")
    else:
        verify_tar(reusable.archive, compression_of(reusable.archive), Written(*reusable.stream))
    return entries
