"""The git repository (and git-annex, DataLad) a dataset lives in, read from the files git keeps: no git
process is run. Its .git/ and .datalad/ and its subdatasets are never fMRIPrep output."""

from __future__ import annotations

import os
from dataclasses import dataclass

GIT_NAMES = frozenset({".git", ".datalad"})  # folders never scanned, wherever they are


@dataclass(frozen=True)
class GitRepo:
    top: str  # the working tree's top folder (where .git is)
    git_dir: str  # .git itself, or where a .git file points (a submodule)
    annexed: bool  # git-annex is used here: locked files are links into .git/annex/objects
    datalad: bool  # a DataLad dataset (.datalad/ at the top)
    subdatasets: tuple[str, ...]  # absolute paths of the submodules (.gitmodules): other datasets
    unlocked: bool  # an adjusted (unlocked) branch is checked out: files are content or pointer files

    @property
    def kind(self) -> str:
        return "DataLad dataset" if self.datalad else ("git-annex repository" if self.annexed else "git repository")


def find_repository(path: str) -> GitRepo | None:
    """The repository whose working tree holds ``path`` (the nearest .git above it), or None."""
    folder = os.path.realpath(path)
    while True:
        dot_git = os.path.join(folder, ".git")
        if os.path.lexists(dot_git):
            return _read_repository(folder, dot_git)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _read_repository(top: str, dot_git: str) -> GitRepo:
    git_dir = dot_git
    if os.path.isfile(dot_git) and not os.path.islink(dot_git):
        try:
            with open(dot_git, encoding="utf-8", errors="replace") as handle:
                line = handle.read(4096).strip()
            if line.startswith("gitdir:"):
                git_dir = os.path.normpath(os.path.join(top, line[len("gitdir:"):].strip()))
        except OSError:
            pass
    annexed = os.path.isdir(os.path.join(git_dir, "annex")) or _has_annex_branch(git_dir)
    head = _read_small(os.path.join(git_dir, "HEAD"))
    return GitRepo(top, git_dir, annexed, os.path.isdir(os.path.join(top, ".datalad")), _submodules(top),
                   "refs/heads/adjusted/" in head)


def _has_annex_branch(git_dir: str) -> bool:
    """A fresh clone that was never `git annex init`-ed has no .git/annex yet, but has the git-annex branch."""
    if os.path.exists(os.path.join(git_dir, "refs", "heads", "git-annex")):
        return True
    remotes = os.path.join(git_dir, "refs", "remotes")
    try:
        if any(os.path.exists(os.path.join(remotes, remote, "git-annex")) for remote in os.listdir(remotes)):
            return True
    except OSError:
        pass
    packed = _read_small(os.path.join(git_dir, "packed-refs"), 16 * 1024 * 1024)
    return any(line.endswith("/git-annex") for line in packed.splitlines())


def _submodules(top: str) -> tuple[str, ...]:
    paths = []
    for line in _read_small(os.path.join(top, ".gitmodules")).splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "path" and value.strip():
            paths.append(os.path.normpath(os.path.join(top, value.strip())))
    return tuple(paths)


def _read_small(path: str, limit: int = 1024 * 1024) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return ""
