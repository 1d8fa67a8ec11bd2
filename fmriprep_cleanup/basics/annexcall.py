"""Freeing annexed content the way git-annex frees it: ``git annex drop``, which removes the local content only
after verifying that enough other copies exist (numcopies), leaves the link (now dangling) and keeps the git
tree clean. An annexed link is never unlinked: that frees nothing and leaves the dataset dirty.

git-annex runs once per batch of files (``--json``, one line per file), never once per file, as basics/gitcall.py
runs every git program. These are the commands alone; act/ decides what they are asked to do.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from typing import IO

from . import gitcall
from .errors import CleanupError
from .handles import open_folder_nofollow
from .hashing import HashingReader
from .repository import GitRepo

DROP_BATCH = 200  # files per git-annex call: short command lines, and a killed run loses at most one batch
ONLY_COPY = "git-annex refuses: no other copy of the content could be verified (numcopies)"
NOT_INSTALLED = "git-annex is not installed here: annexed content cannot be dropped (install git-annex)"


def available() -> bool:
    return shutil.which("git-annex") is not None


def _git_annex(repo: GitRepo, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """git-annex as basics/gitcall.py runs every git program (no program the repository names), its output as text."""
    try:
        done = gitcall.git(repo.top, ["annex", *args])
    except OSError as exc:
        raise CleanupError(f"cannot run git annex in {repo.top}: {exc.strerror or exc}") from None
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("utf-8", "surrogateescape"),
                                       done.stderr.decode("utf-8", "surrogateescape"))


def _relative(repo: GitRepo, paths: Sequence[str]) -> list[str]:
    return [os.path.relpath(path, repo.top) for path in paths]


def drop(repo: GitRepo, paths: Sequence[str], force: bool = False) -> dict[str, str | None]:
    """``git annex drop`` the content of ``paths`` (absolute, in ``repo``): for each path, None when its content
    was dropped (or was not here), else git-annex's reason. ``force`` drops even the only copy."""
    if not available():
        raise CleanupError(NOT_INSTALLED)
    done = _git_annex(repo, ["drop", "--json", "--json-error-messages", *(["--force"] if force else []), "--",
                             *_relative(repo, paths)])
    by_relative = {os.path.relpath(path, repo.top): path for path in paths}
    results: dict[str, str | None] = {}
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        path = by_relative.get(str(record.get("file", "")))
        if path is None:
            continue
        if record.get("success"):
            results[path] = None
        else:
            messages = [str(message).strip() for message in record.get("error-messages") or [] if str(message).strip()]
            reason = "; ".join(messages) or str(record.get("note") or "git-annex did not drop it")
            results[path] = ONLY_COPY if "necessary cop" in reason else reason
    for path in paths:
        if path not in results:  # git-annex said nothing of it: an error that stopped it
            error = done.stderr.strip().splitlines()
            results[path] = f"git annex drop failed: {error[-1] if error else f'exit {done.returncode}'}"
    return results


def numcopies(repo: GitRepo) -> int:
    """The copies git-annex keeps (`git annex numcopies` prints the number, or that it is unset: 1)."""
    done = _git_annex(repo, ["numcopies"])
    found = re.search(r"\d+", done.stdout)
    return max(1, int(found.group())) if found and "not set" not in done.stdout else 1


def only_copies(repo: GitRepo, paths: Sequence[str]) -> set[str]:
    """Which of ``paths`` (content here) git-annex knows no other copy of, as many as numcopies asks for: what
    a drop would refuse, and what --force-drop would lose. From git-annex's location log (not verified)."""
    if not paths:
        return set()
    needed = numcopies(repo) + 1  # a drop leaves numcopies copies: this one plus numcopies elsewhere
    found: set[str] = set()
    for start in range(0, len(paths), DROP_BATCH):
        batch = list(paths[start:start + DROP_BATCH])
        done = _git_annex(repo, ["find", "--in", "here", "--and", "--not", f"--copies={needed}", "--json", "--",
                                 *_relative(repo, batch)])
        for line in done.stdout.splitlines():
            try:
                name = json.loads(line).get("file")
            except (ValueError, AttributeError):
                continue
            if isinstance(name, str) and name:
                found.add(os.path.normpath(os.path.join(repo.top, name)))
    return found


def reinject(repo: GitRepo, content: str, path: str) -> str | None:
    """Give ``content`` (a file holding the content of annexed ``path``) back to git-annex with `git annex
    reinject`, which checks it against the key and moves it into .git/annex/objects: None when done, else
    git-annex's reason."""
    if not available():
        return NOT_INSTALLED
    done = _git_annex(repo, ["reinject", "--", content, os.path.relpath(path, repo.top)])
    if done.returncode == 0:
        return None
    error = done.stderr.strip().splitlines()
    return f"git annex reinject failed: {error[-1] if error else f'exit {done.returncode}'}"


def reinject_stream(repo: GitRepo, content: IO[bytes], key: str, sha256: str, path: str) -> str | None:
    """Give archived ``content`` of annexed ``path`` back to git-annex: written to a private staging file in
    the repository's git folder (a planted link on the way is refused), checked against the manifest's
    ``sha256``, then reinjected. None when done, else why not."""
    staging = os.path.join(os.path.realpath(repo.git_dir), "fmriprep-cleanup", "reinject")
    name = f"{secrets.token_hex(8)}-{key}"
    try:
        folder = open_folder_nofollow(staging, create=True, mode=0o700)
    except OSError as exc:
        return f"cannot use {staging} ({exc.strerror or exc}; a symlink is not followed); not restored"
    try:
        reader = HashingReader(content)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        with os.fdopen(fd, "wb") as out:
            for chunk in reader.chunks():
                out.write(chunk)
        if reader.digest.hexdigest() != sha256:
            return "archived copy does not match its sha256; not restored"
        return reinject(repo, os.path.join(staging, name), path)
    except OSError as exc:
        return str(exc.strerror or exc)
    finally:
        try:
            os.unlink(name, dir_fd=folder)
        except OSError:
            pass
        os.close(folder)


def save_file(repo: GitRepo, path: str, message: str) -> str | None:
    """``git annex add`` the file at ``path`` (its new content annexed as the repository annexes it) and commit
    it alone: None when done, else why not."""
    if not available():
        return NOT_INSTALLED
    relative = os.path.relpath(path, repo.top)
    added = _git_annex(repo, ["add", "--quiet", "--", relative])
    if added.returncode:
        return f"git annex add failed: {(added.stderr.strip().splitlines() or [f'exit {added.returncode}'])[-1]}"
    try:
        done = gitcall.git(repo.top, ["commit", "--quiet", "--no-verify", "-m", message, "--", relative])
    except OSError as exc:
        return f"git commit failed: {exc.strerror or exc}"
    if done.returncode:
        error = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"git commit failed: {error[-1] if error else f'exit {done.returncode}'}"
    return None


IN_USE = "another file here has the same content"


def drop_key(repo: GitRepo, key: str, force: bool = False) -> str | None:
    """``git annex drop --key``: None when the content of ``key`` is gone from here, else why not (ONLY_COPY
    when no other copy is known: kept unless ``force``; IN_USE when a file of the working tree still links to it,
    whatever ``force`` says)."""
    present = _git_annex(repo, ["find", "--format=${key}\\n"])
    if present.returncode or key in present.stdout.split("\n"):
        return IN_USE if not present.returncode else "git annex find failed: not dropped"
    done = _git_annex(repo, ["drop", "--json", "--json-error-messages", *(["--force"] if force else []),
                             "--key", key])
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("success"):
            return None
        messages = [str(message).strip() for message in record.get("error-messages") or [] if str(message).strip()]
        reason = "; ".join(messages) or str(record.get("note") or "git-annex did not drop it")
        return ONLY_COPY if "necessary cop" in reason else reason
    error = done.stderr.strip().splitlines()
    return f"git annex drop failed: {error[-1] if error else f'exit {done.returncode}'}"
