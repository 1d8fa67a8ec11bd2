"""Path arithmetic on absolute, normalised paths (no file system access): is this path inside that folder."""

from __future__ import annotations


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` itself or lies below it."""
    return path == folder or below(path, folder)


def below(path: str, folder: str) -> bool:
    """Whether ``path`` lies strictly below ``folder`` ("/data/ab" is not below "/data/a")."""
    return path.startswith(folder.rstrip("/") + "/")
