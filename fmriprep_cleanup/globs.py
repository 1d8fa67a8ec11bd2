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


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """Compile a rule glob; raises ValueError with the reason for a malformed one."""
    if not isinstance(glob, str) or not glob.strip():
        raise ValueError(f"bad glob {glob!r}: empty")
    if glob.startswith("/"):
        raise ValueError(f"bad glob {glob!r}: must be relative to the scope's root, not absolute")
    if "/" not in glob:
        glob_path = "**/" + glob
    else:
        glob_path = glob
    components = glob_path.split("/")
    if any(part in ("", ".", "..") for part in components):
        raise ValueError(f"bad glob {glob!r}: empty, '.' or '..' path component")
    pieces = []
    for index, component in enumerate(components):
        last = index == len(components) - 1
        if component == "**":
            pieces.append(".*" if last else "(?:[^/]*/)*")
        else:
            pieces.append(_component_regex(component, glob) + ("" if last else "/"))
    return re.compile("^" + "".join(pieces) + "$", re.DOTALL)
