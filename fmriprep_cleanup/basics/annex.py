"""git-annex as the scan sees it: an annexed file is a symlink whose target ends in the key
``BACKEND-s<bytes>--<hash><ext>`` (or, unlocked, a pointer file holding ``/annex/objects/<key>``), the key
carries the content's size (URL keys may not), and the content is on this disk exactly when the link resolves.
Reading links needs no git-annex; only an unlocked branch asks it once (``git annex find``), since there a file
is the content or a pointer and only git-annex can tell which."""

from __future__ import annotations

import os
import re
from typing import Any

# Entry.annex, where a file's content is: a plain file; annexed, content here; annexed, content elsewhere only;
# stored in git itself and as committed (its time is its checkout's); stored in git and changed since.
NOT_ANNEXED, PRESENT, ELSEWHERE, GIT_STORED, GIT_CHANGED = 0, 1, 2, 3, 4
ANNEXED = (PRESENT, ELSEWHERE)
IN_GIT = (GIT_STORED, GIT_CHANGED)
NOT_ACTIVITY = frozenset({PRESENT, ELSEWHERE, GIT_STORED})  # times that say when a checkout (or get) happened
OBJECTS = "annex/objects/"
KEY = re.compile(r"^[A-Z0-9]+(?:-[smSC]\d+)*--.")  # BACKEND[-sSIZE][-mMTIME][-SCHUNK-CNUMBER]--NAME
KEY_SIZE = re.compile(r"^[A-Z0-9]+-s(\d+)(?:-[^-]+)*--")


def key_of(target: str) -> str | None:
    """The annex key a link target (or pointer text) names, or None if it is not an annexed object."""
    if OBJECTS not in target:
        return None
    key = target.rstrip("\n").rsplit("/", 1)[-1]
    return key if KEY.match(key) else None


def reclaimable(counts: Any) -> int:
    """The junk bytes cleaning frees on this disk, from a report's counts (a dict or a Counts): not annexed
    content that is elsewhere only, not files stored in git (left in place unless clean --git-rm)."""
    def get(name: str) -> int:
        return int(counts.get(name, 0) if isinstance(counts, dict) else getattr(counts, name, 0))

    return get("junk_bytes") - get("junk_elsewhere_bytes") - get("junk_in_git_bytes")


def link_key(path: str) -> str | None:
    """The git-annex key the link at ``path`` names (read, never followed), or None if it is not an annexed link."""
    try:
        return key_of(os.readlink(path))
    except OSError:
        return None


def is_key(text: str) -> bool:
    return KEY.match(text) is not None


def key_size(key: str) -> int | None:
    """The content size a key records (``-s<bytes>``), or None for keys made without one (URL keys)."""
    found = KEY_SIZE.match(key)
    return int(found.group(1)) if found else None
