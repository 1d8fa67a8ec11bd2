"""Removing files stored in git the way users do (``clean --git-rm``): the files were unlinked like any other
(re-checked, journaled); then their removal is staged with ``git rm --cached`` and committed, alone, with a
message naming the run, so ``git status`` is clean again and the history says what went and why. Without
--git-rm a file stored in git is never unlinked: that frees only the checkout copy and dirties the dataset."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from . import gitcall
from .repository import GitRepo


def _git(repo: GitRepo, args: list[str], paths: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    relative = b"\0".join(os.fsencode(os.path.relpath(path, repo.top)) for path in paths) + b"\0"
    return gitcall.git(repo.top, [*args, "--pathspec-from-file=-", "--pathspec-file-nul"], stdin=relative)


IN_PROGRESS = {"MERGE_HEAD": "a merge", "rebase-merge": "a rebase", "rebase-apply": "a rebase or git am",
               "CHERRY_PICK_HEAD": "a cherry-pick", "REVERT_HEAD": "a revert", "BISECT_LOG": "a bisect",
               "sequencer": "a cherry-pick or revert"}


def not_ready_to_commit(repo: GitRepo) -> str | None:
    """Why ``--git-rm`` must not start here (None: it may): the repository is in the middle of a merge, rebase,
    cherry-pick, revert or bisect, or its index holds staged changes the run did not make - a commit would take
    them along, or fail and leave the removals staged in someone's merge."""
    for name, what in IN_PROGRESS.items():
        if os.path.lexists(os.path.join(repo.git_dir, name)):
            return f"{repo.top} is in the middle of {what} ({name} in {repo.git_dir}); finish it first"
    try:
        staged = gitcall.git(repo.top, ["diff", "--cached", "--quiet", "--no-ext-diff"])
    except OSError as exc:
        return f"cannot ask git about {repo.top}: {exc.strerror or exc}"
    if staged.returncode == 1:
        return f"{repo.top} has staged changes (git diff --cached); commit or unstage them first"
    if staged.returncode != 0:
        error = staged.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"git cannot say whether {repo.top} has staged changes ({error[-1] if error else 'failed'})"
    return None


def commit_removals(repo: GitRepo, paths: Sequence[str], run_id: str) -> str | None:
    """Stage and commit the removal of ``paths`` (files stored in git that this run unlinked), nothing else the
    index holds: None when done, else why not (the files are gone; `git status` shows them deleted)."""
    gone = [path for path in paths if not os.path.lexists(path)]
    if not gone:
        return None
    try:
        staged = _git(repo, ["rm", "--cached", "--quiet", "--ignore-unmatch"], gone)
        if staged.returncode == 0:
            message = f"fmriprep-cleanup: remove {len(gone)} junk file(s) stored in git (run {run_id})"
            staged = _git(repo, ["commit", "--quiet", "--no-verify", "-m", message], gone)
    except OSError as exc:
        return f"git rm --cached and commit of {len(gone)} file(s) failed: {exc.strerror or exc}"
    if staged.returncode:
        error = staged.stderr.decode("utf-8", "replace").strip().splitlines()
        return (f"git could not commit the removal of {len(gone)} file(s) stored in git "
                f"({error[-1] if error else f'exit {staged.returncode}'}): `git status` shows them deleted")
    return None
