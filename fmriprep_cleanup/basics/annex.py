"""git-annex as the scan sees it, without running git-annex: an annexed file is a symlink whose target ends in
the key ``BACKEND-s<bytes>--<hash><ext>`` (or, unlocked, a pointer file holding ``/annex/objects/<key>``), the
key carries the content's size, and the content is on this disk exactly when the link resolves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

NOT_ANNEXED, PRESENT, ELSEWHERE = 0, 1, 2  # Entry.annex: a plain file; annexed, content here; content elsewhere only
OBJECTS = "annex/objects/"
KEY_SIZE = re.compile(r"^[A-Z0-9]+-s(\d+)(?:-[^-]+)*--")
POINTER_PREFIX = b"/annex/objects/"
POINTER_MAX = 32 * 1024  # a pointer file is one short line; git-annex's own limit for recognising one


def key_of(target: str) -> str | None:
    """The annex key a link target (or pointer text) names, or None if it is not an annexed object."""
    if OBJECTS not in target:
        return None
    key = target.rstrip("\n").rsplit("/", 1)[-1]
    return key if KEY_SIZE.match(key) else None


def key_size(key: str) -> int | None:
    """The content size a key records (``-s<bytes>``), or None for keys made without one (URL keys)."""
    found = KEY_SIZE.match(key)
    return int(found.group(1)) if found else None


def annexed_files(top: str) -> dict[str, int] | None:
    """Every annexed file of the repository at ``top`` with its content's size, from one `git annex find` call
    (the links say it themselves; this is for unlocked files, which are content or pointer files). None when
    git-annex is not installed or fails."""
    if shutil.which("git-annex") is None:
        return None
    try:
        done = subprocess.run(["git", "-C", top, "annex", "find", "--include=*", "--json"], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=False,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    except OSError:
        return None
    if done.returncode:
        return None
    sizes = {}
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
            sizes[os.path.join(top, record["file"])] = int(record["bytesize"])
        except (ValueError, KeyError, TypeError):
            continue
    return sizes
