"""Folders opened one component at a time, never through a symlink: the only way the tool opens a folder it
writes in or removes from (the dataset, the state folder, an archive folder).

A folder replaced by a symlink anywhere on the way - below the dataset root or above it - makes the open fail
(ELOOP or ENOTDIR) instead of sending the tool elsewhere; files are then made, renamed and removed relative to
those handles (``dir_fd``).
"""

from __future__ import annotations

import errno
import os
import stat

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_folder_nofollow(path: str, create: bool = False, mode: int = 0o755) -> int:
    """A handle on the folder ``path`` (absolute), opened from ``/`` one component at a time with O_NOFOLLOW.
    With ``create``, missing components are made (mkdirat), never through a symlink. OSError otherwise
    (ELOOP or ENOTDIR where a component is a symlink or a file)."""
    if not os.path.isabs(path):
        raise ValueError(f"not an absolute path: {path}")
    fd = os.open("/", FOLDER_FLAGS)
    for part in [part for part in path.split("/") if part]:
        try:
            if part == "..":
                raise OSError(errno.EINVAL, "'..' in a path to act on", path)
            child = open_child(fd, part, create, mode)
        finally:
            os.close(fd)
        fd = child
    return fd


def open_child(parent: int, name: str, create: bool, mode: int) -> int:
    """Open ``name`` in the folder ``parent``, making it first if asked; never through a symlink."""
    try:
        return os.open(name, FOLDER_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
        try:
            os.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            pass  # made meanwhile by someone else: open what is there, still without following links
        return os.open(name, FOLDER_FLAGS, dir_fd=parent)


def remove_at(folder: int, name: str) -> None:
    """Remove ``name`` from the folder handle ``folder``: a file or a link (never followed) is unlinked, a folder
    emptied through handles of its own, then removed. OSError if anything cannot be removed."""
    st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=folder)
        return
    child = os.open(name, FOLDER_FLAGS, dir_fd=folder)
    try:
        with os.scandir(child) as entries:
            names = [entry.name for entry in entries]
        for inner in names:
            remove_at(child, inner)
    finally:
        os.close(child)
    os.rmdir(name, dir_fd=folder)


def remove_path(path: str) -> None:
    """Remove a file, link or folder at the absolute ``path``, its parent opened from / without following a
    symlink (a folder swapped for a link on the way makes it fail)."""
    parent = open_folder_nofollow(os.path.dirname(path))
    try:
        remove_at(parent, os.path.basename(path))
    finally:
        os.close(parent)
