"""Every git and git-annex process the tool starts, started one way: no program a repository names runs.

A repository's own ``.git/config`` (and the files it includes), its hooks and its ``.gitattributes`` can make git
and git-annex run programs: ``core.fsmonitor`` on a plain ``git status``, hooks on a commit, a filter driver on
any command that reads the index. Any member of a group that can write ``.git`` can plant one, and the tool often
runs as root. So each call:

* gets a minimal environment (PATH, HOME, the identity and locale variables; no ``GIT_DIR``, ``GIT_SSH``,
  ``GIT_EXTERNAL_DIFF`` or the like), and never prompts;
* runs with hooks off (``core.hooksPath=/dev/null``) and every program-naming setting forced on the command line
  (``-c``, which beats every configuration file): the fixed ones below, and each key of the repository's own
  configuration that names a program (a filter, diff or merge driver, a credential helper, a pager, a git-annex
  command...), found by listing it first. The annex filter is forced to git-annex's own commands, never trusted
  because of its name.

Acting commands (``git rm``/``commit``, ``git annex drop``/``reinject``) also refuse a repository whose ``.git``,
configuration files or hooks a user other than the invoking one (or root) can write (``check_trusted``): a
setting added there that no override knows of would run with the tool's privileges.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Sequence

from .commands import TooMuchOutput, run_capped
from .errors import CleanupError

# What git and git-annex may see of the caller's environment: where programs are, whose home (the user's own
# git configuration), who commits, and nothing that points git at another repository or program.
KEPT_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "XDG_CONFIG_HOME", "GIT_AUTHOR_NAME",
                    "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
                    "GIT_COMMITTER_DATE")
ANNEX_FILTER = {  # git-annex's own filter commands (as `git annex init` writes them)
    "filter.annex.process": "git-annex filter-process",
    "filter.annex.clean": "git-annex smudge --clean -- %f",
    "filter.annex.smudge": "git-annex smudge -- %f",
    "filter.annex.required": "false",
}
FIXED = {
    "core.fsmonitor": "false",
    "core.hooksPath": "/dev/null",
    "core.pager": "cat",
    "core.editor": "false",
    "sequence.editor": "false",
    "core.askPass": "",
    "core.sshCommand": "",
    "core.gitProxy": "",
    "core.alternateRefsCommand": "",
    "credential.helper": "",
    "diff.external": "",
    "gpg.program": "false",
    "gpg.openpgp.program": "false",
    "gpg.ssh.program": "false",
    "gpg.x509.program": "false",
    "commit.gpgSign": "false",
    "tag.gpgSign": "false",
    "protocol.ext.allow": "never",
    "annex.freezecontent-command": "",
    "annex.thawcontent-command": "",
    "annex.secure-erase-command": "",
    "annex.commitmessage-command": "",
    "annex.http-headers-command": "",
    "annex.youtube-dl-command": "",
    "annex.shared-sop-command": "",
    "annex.ssh-options": "",
    "annex.rsync-options": "",
}
# Keys (as `git config --list` spells them: section and name in lower case) that name a program to run.
PROGRAM_KEY = re.compile(
    r"^(?:filter\..+\.(?:clean|smudge|process)"
    r"|diff\..+\.(?:textconv|command)"
    r"|merge\..+\.driver"
    r"|credential\..+\.helper"
    r"|gpg\..+\.program"
    r"|pager\..+"
    r"|remote\..+\.(?:receivepack|uploadpack|vcs|annex-[a-z-]*(?:command|options|shell|program|hook|transport))"
    r"|annex\.[a-z-]*(?:command|options|program|hook)"
    r"|[a-z0-9-]+\.(?:.+\.)?[a-z-]*hook[a-z-]*"
    r"|[a-z0-9-]+\.(?:.+\.)?[a-z-]*(?:command|program|editor|askpass|proxy)"
    r")$")
NO_ANNEX = {key: "" for key in ANNEX_FILTER if key != "filter.annex.required"}


def environment() -> dict[str, str]:
    """The environment of every git and git-annex process."""
    kept = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
    return {**kept, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}


@functools.lru_cache(maxsize=64)
def _configured(top: str) -> tuple[tuple[str, str], ...]:
    """(key, origin) of every setting git reads in the repository at ``top`` (its own files and what they
    include, and the user's and the machine's); listing the configuration runs no program."""
    try:
        done = run_capped(["git", "-C", top, "config", "--list", "--show-origin", "--null"], 60, env=environment())
    except (OSError, subprocess.TimeoutExpired, TooMuchOutput):
        return ()
    found = []
    fields = done.stdout.decode("utf-8", "surrogateescape").split("\0")
    for origin, entry in zip(fields[::2], fields[1::2], strict=False):  # a last, empty field
        key = entry.split("\n", 1)[0]
        found.append((key, origin))
    return tuple(found)


def overrides(top: str, annex_filter: bool = True) -> list[str]:
    """The ``-c key=value`` arguments that switch off every program the configuration of ``top`` could make git
    or git-annex run (``annex_filter``: git-annex's own filter, else none at all)."""
    forced = {**FIXED, **(ANNEX_FILTER if annex_filter else NO_ANNEX)}
    known = {key.lower() for key in forced}
    for key, _ in _configured(top):
        if key.lower() not in known and PROGRAM_KEY.match(key.lower()):
            forced[key] = ANNEX_FILTER.get(key.lower(), "") if annex_filter else ""
            known.add(key.lower())
    arguments = []
    for key, value in forced.items():
        arguments += ["-c", f"{key}={value}"]
    return arguments


def git(top: str, args: Sequence[str], *, stdin: bytes | None = None, annex_filter: bool = True,
        timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``git -C top ARGS`` (``annex ...`` for git-annex) as this module says; OSError if git cannot start."""
    command = ["git", "--no-optional-locks", *overrides(top, annex_filter), "-C", top, *args]
    return subprocess.run(command, input=stdin, capture_output=True, check=False, env=environment(),
                          stdin=None if stdin is not None else subprocess.DEVNULL, timeout=timeout)


def available(program: str = "git") -> bool:
    return shutil.which(program) is not None


def check_trusted(top: str, git_dir: str) -> None:
    """CleanupError (nothing changed) unless the repository's ``.git``, its hooks and every configuration file
    git reads in it are writable only by the invoking user or root: acting git commands are never run where a
    group member could have planted a setting."""
    me = os.geteuid()
    places = [git_dir, os.path.join(git_dir, "hooks"), os.path.join(git_dir, "config")]
    hooks = os.path.join(git_dir, "hooks")
    try:
        places += [os.path.join(hooks, name) for name in os.listdir(hooks)]
    except OSError:
        pass
    home = os.path.realpath(os.path.expanduser("~"))
    for _, origin in _configured(top):
        if not origin.startswith("file:"):
            continue
        path = os.path.join(top, origin.removeprefix("file:"))
        if not path.startswith((home + os.sep, "/etc/")):  # the user's own files, and the machine's, are trusted
            places.append(path)
    for place in dict.fromkeys(places):
        try:
            st = os.lstat(place)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CleanupError(f"cannot check {place}: {exc.strerror or exc}; nothing was changed") from None
        others = st.st_uid not in (me, 0) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not stat.S_ISLNK(st.st_mode)
        if others:
            who = f"owned by uid {st.st_uid}" if st.st_uid not in (me, 0) else \
                f"writable by its {'group' if st.st_mode & stat.S_IWGRP else 'every user'}"
            raise CleanupError(f"refusing to run git in {top}: {place} is {who}, so a program someone else named "
                               "there would run as you; make it yours and writable only by you (chmod go-w), "
                               "or run as its owner; nothing was changed")
