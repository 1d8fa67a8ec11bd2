"""Path globs for rules: ``*`` and ``?`` stay within one folder, ``**`` spans folders.

A glob without ``/`` matches the file name at any depth (as in .gitignore);
one with ``/`` matches the path relative to the scope's root.
"""

from __future__ import annotations

import re


def _component_regex(component: str, glob: str) -> str:
    out = []
    i = 0
    while i < len(component):
        char = component[i]
        if char == "*":
            if component.startswith("**", i):
                raise ValueError(f"bad glob {glob!r}: '**' must be a whole path component")
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = component.find("]", i + 2 if component.startswith("[!", i) or component.startswith("[^", i) else i + 1)
            if end == -1:
                raise ValueError(f"bad glob {glob!r}: '[' without a closing ']'")
            body = component[i + 1:end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\")
            out.append(f"[{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _anchored(glob: str, original: str) -> str:
    """Regex text for a glob over a path relative to the scope's root (no implicit ``**/``)."""
    components = glob.split("/")
    if any(part in ("", ".", "..") for part in components):
        raise ValueError(f"bad glob {original!r}: empty, '.' or '..' path component")
    pieces = []
    for index, component in enumerate(components):
        last = index == len(components) - 1
        if component == "**":
            pieces.append(".*" if last else "(?:[^/]*/)*")
        else:
            pieces.append(_component_regex(component, original) + ("" if last else "/"))
    return "".join(pieces)


def _check(glob: str) -> None:
    if not isinstance(glob, str) or not glob.strip():
        raise ValueError(f"bad glob {glob!r}: empty")
    if glob.startswith("/"):
        raise ValueError(f"bad glob {glob!r}: must be relative to the scope's root, not absolute")


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """Compile a rule glob; raises ValueError with the reason for a malformed one."""
    _check(glob)
    path_glob = glob if "/" in glob else "**/" + glob
    return re.compile("^" + _anchored(path_glob, glob) + "$", re.DOTALL)


def folder_glob_to_regex(glob: str) -> re.Pattern[str] | None:
    """For a glob ending in ``/**`` (every file below some folders): a regex matching the folders
    whose files all match it. None for other globs, which need each file's name."""
    _check(glob)
    if not glob.endswith("/**") or glob == "**/**" or len(glob) <= 3:
        return None
    return re.compile("^" + _anchored(glob[:-3], glob) + "(?:/.*)?$", re.DOTALL)
