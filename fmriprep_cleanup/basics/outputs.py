"""Files the user names for output (``-o FILE``, ``--partial-out FILE``, ``run --log FILE``), written as the tool
may be run: as root, into folders others can write.

* A regular file (or nothing yet) is replaced whole: written under an unpredictable temporary name created
  exclusively beside it (``O_CREAT|O_EXCL|O_NOFOLLOW``), then renamed over it. A log is appended to, opened
  without following a symlink.
* A symlink is followed only if its owner is the invoking user or root (so ``-o /dev/stdout`` works), and in a
  sticky folder everyone can write (``/tmp``) only if its owner is the invoking user or the folder's owner: the
  kernel's protected_symlinks rule, applied whatever the kernel's setting. Any other link is refused.
* A FIFO or a character device (``/dev/null``, a pipe) is written into only when the path itself was one before
  it was opened and still is once opened: a FIFO planted in its place meanwhile is refused, never waited on.

Every refusal is a CleanupError naming the file, before anything is written.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from .errors import CleanupError


def _refuse(path: str, why: str) -> CleanupError:
    return CleanupError(f"refusing to write {path}: {why}")


def link_may_be_followed(path: str, link: os.stat_result) -> str | None:
    """None if the symlink at ``path`` (its lstat ``link``) may be followed for writing, else why not."""
    me = os.geteuid()
    folder = os.lstat(os.path.dirname(os.path.abspath(path)) or "/")
    sticky_public = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
    if sticky_public and link.st_uid not in (me, folder.st_uid):
        return (f"a symlink owned by uid {link.st_uid} in a folder everyone can write; only your own links are "
                "followed there")
    if link.st_uid not in (me, 0):
        return f"a symlink owned by uid {link.st_uid} (only your own links, or root's, are followed)"
    return None


def _open_following(path: str, append: bool) -> int:
    """Open what an allowed link points to (a device, a pipe, a file) for writing, and check it is still the
    link that was allowed."""
    before = os.lstat(path)
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_APPEND if append else 0)
    try:
        fd = os.open(path, flags | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        fd = os.open(path, flags | os.O_CREAT | os.O_NONBLOCK, 0o644)  # a dangling link of yours: its target is made
    after = os.lstat(path)
    if (before.st_ino, before.st_uid) != (after.st_ino, after.st_uid) or not stat.S_ISLNK(after.st_mode):
        os.close(fd)
        raise _refuse(path, "the link changed while it was opened")
    os.set_blocking(fd, True)
    if stat.S_ISREG(os.fstat(fd).st_mode) and not append:
        os.ftruncate(fd, 0)
    return fd


def _open_special(path: str, kind: int, append: bool) -> int:
    """Open a FIFO or character device that the path itself is (not made meanwhile)."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else 0))
    if stat.S_IFMT(os.fstat(fd).st_mode) != kind:
        os.close(fd)
        raise _refuse(path, "it changed while it was opened")
    return fd


def _text(fd: int) -> IO[str]:
    return open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="", closefd=True)


@contextmanager
def output_file(path: str, append: bool = False) -> Iterator[IO[str]]:
    """A text handle on the output file ``path`` (see the module's rules); committed when the block ends
    without an exception (a replaced file appears whole, or not at all). CleanupError for a refused path or an
    error while writing."""
    try:
        found: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise CleanupError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        if found is not None and stat.S_ISLNK(found.st_mode):
            why = link_may_be_followed(path, found)
            if why:
                raise _refuse(path, why)
            with _text(_open_following(path, append)) as handle:
                yield handle
        elif found is not None and (stat.S_ISFIFO(found.st_mode) or stat.S_ISCHR(found.st_mode)):
            with _text(_open_special(path, stat.S_IFMT(found.st_mode), append)) as handle:
                yield handle
        elif found is not None and not stat.S_ISREG(found.st_mode):
            raise _refuse(path, "not a regular file, a pipe or a device")
        elif append:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         0o644)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise _refuse(path, "it changed while it was opened")
            with _text(fd) as handle:
                yield handle
        else:
            with _replacing(path) as handle:
                yield handle
    except OSError as exc:
        why = "a symlink (not followed)" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise CleanupError(f"cannot write {path}: {why}") from None


@contextmanager
def _replacing(path: str) -> Iterator[IO[str]]:
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with _text(fd) as handle:
            yield handle
        os.replace(temporary, path)  # a link put there meanwhile is replaced, never followed
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_file(path: str, text_or_writer: str | Callable[[IO[str]], Any], append: bool = False) -> Any:
    """Write a text, or what ``text_or_writer(handle)`` writes, to the output file ``path`` (the writer's result
    is returned)."""
    with output_file(path, append) as handle:
        if isinstance(text_or_writer, str):
            return handle.write(text_or_writer)
        return text_or_writer(handle)
