"""The git repository (and git-annex, DataLad) a dataset lives in. Discovery reads it from the files git keeps
(no git process); the scan asks git once, for the dataset's folder, which files it tracks and which of them
changed since the last commit (GitState): a tracked, unchanged file's time is its checkout's, not fMRIPrep at
work, and a file stored in git is never unlinked behind git's back. Its .git/ and .datalad/ and its
subdatasets are never fMRIPrep output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

from . import gitcall
from .errors import CleanupError
from .guarded import open_regular

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
        line = _read_small(dot_git, 4096).strip()
        if line.startswith("gitdir:"):
            git_dir = os.path.normpath(os.path.join(top, line[len("gitdir:"):].strip()))
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
    """At most ``limit`` bytes of a regular file git keeps ("" if it is not one: a FIFO planted as .gitmodules
    is not waited on)."""
    try:
        fd = open_regular(path, "git file")
    except CleanupError:
        return ""
    try:
        with os.fdopen(fd, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class GitState:
    """What git says of a dataset's folder, asked once per scan: the files it tracks (absolute paths) and which
    of them changed in the working tree since the last commit, and that commit's time."""

    tracked: frozenset[str]
    changed: frozenset[str]
    commit_time: float | None

    def unchanged(self, path: str) -> bool:
        """Tracked and as committed: its time is when it was checked out, evidence of nothing."""
        return path in self.tracked and path not in self.changed


def _git(repo: GitRepo, *args: str) -> str | None:
    """A read-only git query in ``repo`` (no index refresh written, no prompt, no program the repository names:
    basics/gitcall.py); None if git fails or is absent. Where git-annex's filter cannot run (git-annex not
    installed) the query is asked again without it: an unlocked file then looks changed, which only makes its
    time count."""
    if not gitcall.available():
        return None
    for annex_filter in (True, False):
        try:
            done = gitcall.git(repo.top, args, annex_filter=annex_filter)
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode == 0:
            return done.stdout.decode("utf-8", "surrogateescape")
    return None


def git_state(repo: GitRepo, folder: str) -> GitState | None:
    """GitState of ``folder`` (inside ``repo``'s working tree); None when git cannot say (not installed, a
    broken repository): then every time counts, as outside git."""
    relative = os.path.relpath(os.path.realpath(folder), repo.top)
    spec = ["--", relative] if relative != "." and not relative.startswith("..") else []  # a folder above the
    # repository (the legacy OUT/ holding a fmriprep/ subdataset): git answers for the whole repository
    listed = _git(repo, "ls-files", "-z", *spec)
    changes = _git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=no", "--ignore-submodules=all",
                   "--no-renames", *spec)
    if listed is None or changes is None:
        return None
    tracked = frozenset(os.path.join(repo.top, name) for name in listed.split("\0") if name)
    changed = frozenset(os.path.join(repo.top, record[3:]) for record in changes.split("\0") if len(record) > 3)
    when = _git(repo, "log", "-1", "--format=%ct")
    return GitState(tracked, changed, float(when.strip()) if when and when.strip().isdigit() else None)


def datalad_problem(repo: GitRepo) -> str | None:
    """Why a DataLad dataset's .datalad/config cannot be read (git config refuses it), or None."""
    config = os.path.join(repo.top, ".datalad", "config")
    if not repo.datalad or not os.path.isfile(config) or shutil.which("git") is None:
        return None
    try:
        done = subprocess.run(["git", "config", "-f", config, "-l"], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False, env=gitcall.environment())
    except OSError:
        return None
    if done.returncode == 0:
        return None
    reason = (done.stderr.strip().splitlines() or ["unreadable"])[-1].removeprefix("fatal: ")
    return f"{config} cannot be read ({reason}); the dataset is read as a plain git-annex repository"


def annexed_files(top: str) -> dict[str, int] | None:
    """Every annexed file of the repository at ``top`` with its content's size, from one `git annex find` call
    (the links say it themselves; this is for unlocked files, which are content or pointer files). None when
    git-annex is not installed or fails."""
    if shutil.which("git-annex") is None:
        return None
    try:
        done = gitcall.git(top, ["annex", "find", "--include=*", "--json"])
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode:
        return None
    sizes = {}
    for line in done.stdout.decode("utf-8", "surrogateescape").splitlines():
        try:
            record = json.loads(line)
            sizes[os.path.join(top, record["file"])] = int(record["bytesize"])
        except (ValueError, KeyError, TypeError):
            continue
    return sizes
