"""The members of a zip or tar file as a pipeline's outputs kept in it (BABS zips, Nipoppy ``--tar``), read
from its headers only: a zip's central directory, a tar's member headers. Nothing is extracted.

An archive is someone else's file and may have been made to mislead: a member with an absolute path or ``..``,
a link, a device, a name given twice, sizes no compressor can reach (a zip bomb), members whose data overlap or
run past the end of the file (a truncated copy, or the overlapping-member bomb) - each is refused in one line
naming the archive and the member, and nothing is done with it."""

from __future__ import annotations

import itertools
import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Iterator
from typing import NamedTuple

from .annex import key_of
from .errors import CleanupError
from .guarded import BrokenFileError, open_regular
from .repository import find_repository

ZIP, TAR = "zip", "tar"
# Deflate cannot compress better than about 1032 to 1 (RFC 1951: a 258-byte match in at most 2 bits): a member
# claiming more is lying about its size, the mark of a zip bomb.
MOST_DEFLATE_RATIO = 1032
UNIX = 3  # a zip member's "made by" system whose external attributes carry a file type and mode
ZIP_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field
ZIP_CENTRAL_ENTRY = 46  # bytes of a central directory entry before its name, extra field and comment


class HostileArchive(CleanupError):
    """An archive this tool will not read or change: what is wrong, in one line."""


class Member(NamedTuple):
    """One file kept in an archive: its path inside it ("/"-separated), its size unpacked, the bytes it takes in
    the archive (its headers and its compressed data or data blocks: what taking it out frees), its CRC-32
    (zip; None for tar) and mtime."""

    name: str
    size: int
    stored: int
    crc: int | None
    mtime: float


class ArchiveFile(NamedTuple):
    """An archive's members (files only; folders are implied by their paths) and what it is."""

    path: str
    kind: str  # ZIP | TAR
    members: tuple[Member, ...]
    size: int  # the archive file's own size
    mtime: float
    ctime: float
    content: str = ""  # where its bytes are read from when not at ``path``: a git-annex link's object
    key: str = ""  # that object's git-annex key

    @property
    def data(self) -> str:
        return self.content or self.path


def archive_kind(path: str) -> str | None:
    """ZIP or TAR from the name (``.zip``, ``.tar``); None for anything else (compressed tars included: listing
    one means decompressing all of it)."""
    lowered = path.lower()
    return ZIP if lowered.endswith(".zip") else TAR if lowered.endswith(".tar") else None


def read_archive(path: str, kind: str | None = None) -> ArchiveFile:
    """The members of the zip or tar at ``path`` (a regular file, never through a symlink; ``kind``: ZIP or TAR,
    else told by its name), checked; HostileArchive for anything this tool will not trust, CleanupError if it
    cannot be read."""
    kind = kind or archive_kind(path)
    if kind is None:
        raise CleanupError(f"{path}: not a .zip or .tar file")
    key, content = annexed_content(path)
    try:
        fd = open_regular(content or path, "archive", follow_links=False)
    except BrokenFileError as exc:
        raise CleanupError(str(exc).replace(content, path) if content else str(exc)) from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        try:
            members = list(_zip_members(path, handle, st.st_size) if kind == ZIP else _tar_members(path, handle, st.st_size))
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as exc:
            raise HostileArchive(f"{path}: not a whole {kind} file ({exc})") from None
    _no_duplicates(path, members)
    return ArchiveFile(path, kind, tuple(members), st.st_size, st.st_mtime, st.st_ctime, content, key)


def annexed_content(path: str) -> tuple[str, str]:
    """(key, object path) when ``path`` is a git-annex link (a DataLad clone of a BABS output store keeps its
    zips so) whose content is here, inside the annex of the repository that holds the link; ("", "") when it is
    no annexed link. CleanupError when its content is not here, or the link leads anywhere else."""
    try:
        target = os.readlink(path)
    except OSError:
        return "", ""
    key = key_of(target)
    repository = find_repository(os.path.dirname(os.path.abspath(path))) if key else None
    if key is None or repository is None:
        return "", ""  # a plain symlink: refused when opened, never followed
    objects = os.path.join(os.path.realpath(repository.git_dir), "annex", "objects") + os.sep
    content = os.path.realpath(path)
    if not content.startswith(objects) or os.path.basename(content) != key:
        raise CleanupError(f"{path}: a git-annex link that leads outside its repository's annex: not read")
    if not os.path.lexists(content):
        raise CleanupError(f"{path}: its content is not here (git-annex has it elsewhere): `datalad get {path}` first")
    return key, content


def member_key(name: str) -> str:
    """A member's path as this tool names it: without a folder's trailing "/" and the "./" tar gives members of
    an archive made from inside their folder (``tar -cf x.tar .``)."""
    name = name.rstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name


def checked_name(archive: str, name: str) -> str:
    """A member's path (``member_key``), refused if it could land outside the folder it is unpacked in."""
    bare = member_key(name)
    parts = bare.split("/")
    if (not bare or name.startswith("/") or "\\" in name or "\0" in name or (len(name) > 1 and name[1] == ":")
            or any(part in ("", ".", "..") for part in parts)):
        raise HostileArchive(f"{archive}: member {name!r} has a path that is absolute, empty or leaves the archive's "
                             "folder (..): not read")
    return bare


def _zip_members(path: str, handle, size: int) -> Iterator[Member]:
    with zipfile.ZipFile(handle) as archive:
        infos = archive.infolist()
    ends = []
    for info in infos:
        name = checked_name(path, info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == UNIX else 0  # else no file type
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise HostileArchive(f"{path}: member {name} is a {'symlink' if stat.S_ISLNK(kind) else 'special file'}: "
                                 "not read")
        if info.file_size > MOST_DEFLATE_RATIO * info.compress_size + 1024 or (
                info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size):
            raise HostileArchive(f"{path}: member {name} claims {info.file_size:,} bytes from {info.compress_size:,} "
                                 "(more than any compressor gives: a zip bomb): not read")
        start = info.header_offset
        end = start + ZIP_LOCAL_HEADER + len(info.orig_filename.encode("utf-8", "surrogateescape")) + info.compress_size
        if end > size:
            raise HostileArchive(f"{path}: member {name} runs past the end of the file (truncated): not read")
        ends.append((start, end, name))
        if not info.is_dir():
            yield Member(name, info.file_size, _zip_stored(info), info.CRC, _zip_time(info))
    ends.sort()
    for (_, end, name), (start, _, following) in itertools.pairwise(ends):
        if start < end:
            raise HostileArchive(f"{path}: members {name} and {following} share their data (an overlapping-member "
                                 "zip bomb): not read")


def _zip_stored(info: zipfile.ZipInfo) -> int:
    """The bytes a member takes in a zip file: its compressed data, its local header and its central directory
    entry (each with its name and extra field), and a data descriptor when it has one."""
    name = len(info.orig_filename.encode("utf-8", "surrogateescape"))
    descriptor = 16 if info.flag_bits & 0x08 else 0
    return (info.compress_size + ZIP_LOCAL_HEADER + name + len(info.extra) + ZIP_CENTRAL_ENTRY + name + len(info.extra)
            + len(info.comment) + descriptor)


def _zip_time(info: zipfile.ZipInfo) -> float:
    """A member's time: zip keeps the local time of the machine that wrote it, to 2 seconds."""
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0


def _tar_members(path: str, handle, size: int) -> Iterator[Member]:
    with tarfile.open(fileobj=handle, mode="r:") as archive:
        for info in archive:
            if info.isdir() and not member_key(info.name):
                continue  # "./": the folder the archive was made from
            name = checked_name(path, info.name)
            if info.isdir():
                continue
            if not info.isreg():
                what = "symlink" if info.issym() else "hard link" if info.islnk() else "special file"
                raise HostileArchive(f"{path}: member {name} is a {what}: not read")
            if info.offset_data + info.size > size:
                raise HostileArchive(f"{path}: member {name} runs past the end of the file (truncated): not read")
            yield Member(name, info.size, info.offset_data - info.offset + -(-info.size // tarfile.BLOCKSIZE)
                         * tarfile.BLOCKSIZE, None, float(info.mtime))  # its header(s) and its data blocks


def _no_duplicates(path: str, members: list[Member]) -> None:
    """Each path once, and no file where another member needs a folder."""
    seen: set[str] = set()
    for member in members:
        if member.name in seen:
            raise HostileArchive(f"{path}: member {member.name} is in it twice (which one is meant cannot be "
                                 "known): not read")
        seen.add(member.name)
    for member in members:
        parts = member.name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in seen:
                raise HostileArchive(f"{path}: member {'/'.join(parts[:depth])} is a file and a folder of "
                                     f"{member.name}: not read")


def read_member(archive: ArchiveFile, name: str, cap: int) -> bytes | None:
    """The data of the small member ``name`` (at most ``cap`` bytes; None when larger or gone), read from the
    archive only if it is still the file its members were read from (same size and change time)."""
    member = next((member for member in archive.members if member.name == name), None)
    if member is None or member.size > cap:
        return None
    try:
        fd = open_regular(archive.data, "archive", follow_links=False)
    except BrokenFileError:
        return None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if (st.st_size, st.st_ctime) != (archive.size, archive.ctime):
            return None
        try:
            if archive.kind == ZIP:
                with zipfile.ZipFile(handle) as opened, opened.open(name) as data:
                    return data.read(cap + 1)[:cap]
            with tarfile.open(fileobj=handle, mode="r:") as tarred:
                extracted = tarred.extractfile(name)
                return extracted.read(cap) if extracted is not None else None
        except (zipfile.BadZipFile, tarfile.TarError, KeyError, EOFError, ValueError, OSError):
            return None
