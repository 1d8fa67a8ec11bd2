"""Path globs for rules: ``*`` and ``?`` stay within one folder, ``**`` spans folders.

A glob without ``/`` matches the file name at any depth (as in .gitignore); one with ``/`` matches the path
relative to the scope's root.

Matching never backtracks catastrophically, whatever a rule file says. A glob is parsed into components;
runs of ``*`` and ``?`` collapse into one "at least N characters" (``*?*?*?X`` is ``[^/]{3,}X``), and
consecutive ``**`` into one. A glob whose every component has at most two ``*`` and which has at most two
``**`` compiles to a regular expression whose backtracking is bounded (polynomial of low degree in the
length of one file name); any other glob is matched by a simple automaton over the path's components, each
component matched by placing the pieces between its ``*`` leftmost (linear in the name's length). Character
classes are checked when the glob is read: ``[z-a]`` is an error, not a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_GLOB_LENGTH = 1024
MAX_STARS_FOR_REGEX = 2  # per component: more, and a backtracking regex could take O(n^stars)
MAX_DOUBLES_FOR_REGEX = 2


@dataclass(frozen=True)
class _Any:
    """One character, any (``?``)."""


@dataclass(frozen=True)
class _Class:
    """One character of a set (``[a-z]``, ``[!0-9]``)."""

    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negated: bool

    def matches(self, char: str) -> bool:
        inside = char in self.chars or any(low <= char <= high for low, high in self.ranges)
        return inside != self.negated

    def regex(self) -> str:
        body = "".join(re.escape(c) for c in sorted(self.chars))
        body += "".join(f"{re.escape(low)}-{re.escape(high)}" for low, high in self.ranges)
        if self.negated:  # like * and ?, a class stays within one folder: [!a] never matches "/"
            return f"[^{body}/]"
        return f"[{body}]" if body else "(?!)"


@dataclass(frozen=True)
class _Star:
    """Any run of characters of at least ``minimum`` (a run of ``*`` and ``?`` with at least one ``*``)."""

    minimum: int


Atom = str | _Any | _Class | _Star
DOUBLE = "**"


def _parse_class(component: str, start: int, glob: str) -> tuple[_Class, int]:
    """The character class starting at ``component[start] == '['``; returns it and the index after ``]``."""
    i = start + 1
    negated = component[i:i + 1] in ("!", "^")
    if negated:
        i += 1
    end = component.find("]", i + 1)  # a "]" right after "[" or "[!" is a character of the class
    if end == -1:
        raise ValueError(f"bad glob {glob!r}: '[' without a closing ']'")
    body = component[i:end]
    chars, ranges = set(), []
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            low, high = body[j], body[j + 2]
            if low > high:
                raise ValueError(f"bad glob {glob!r}: the range {low}-{high} in [{body}] is out of order")
            ranges.append((low, high))
            j += 3
        else:
            chars.add(body[j])
            j += 1
    return _Class(frozenset(chars), tuple(ranges), negated), end + 1


def parse_component(component: str, glob: str) -> list[Atom]:
    """The atoms of one path component; runs of ``*`` and ``?`` collapse (``?*?`` -> at least 2 characters)."""
    atoms: list[Atom] = []
    i = 0
    while i < len(component):
        char = component[i]
        if char in "*?":
            run_end = i
            while run_end < len(component) and component[run_end] in "*?":
                run_end += 1
            run = component[i:run_end]
            questions = run.count("?")
            if "*" in run:
                atoms.append(_Star(questions))
            else:
                atoms.extend(_Any() for _ in range(questions))
            i = run_end
        elif char == "[":
            atom, i = _parse_class(component, i, glob)
            atoms.append(atom)
        else:
            atoms.append(char)
            i += 1
    return atoms


def _atom_regex(atom: Atom) -> str:
    if isinstance(atom, str):
        return re.escape(atom)
    if isinstance(atom, _Any):
        return "[^/]"
    if isinstance(atom, _Class):
        return atom.regex()
    return f"[^/]{{{atom.minimum},}}" if atom.minimum else "[^/]*"


def _atom_matches(atom: Atom, char: str) -> bool:
    if isinstance(atom, str):
        return atom == char
    if isinstance(atom, _Any):
        return True
    assert isinstance(atom, _Class)
    return atom.matches(char)


class _Pieces:
    """One component's glob cut at its stars: the pieces between them (plain text where they hold no ``?`` or
    class, so that finding them is str.find) and each star's minimum length."""

    def __init__(self, atoms: list[Atom]) -> None:
        pieces: list[list[Atom]] = [[]]
        self.minimums: list[int] = []
        for atom in atoms:
            if isinstance(atom, _Star):
                self.minimums.append(atom.minimum)
                pieces.append([])
            else:
                pieces[-1].append(atom)
        self.pieces: list[str | list[Atom]] = [
            "".join(piece) if all(isinstance(atom, str) for atom in piece) else piece for piece in pieces]  # type: ignore[arg-type]

    @staticmethod
    def _at(piece: str | list[Atom], text: str, position: int) -> bool:
        if isinstance(piece, str):
            return text.startswith(piece, position)
        return position + len(piece) <= len(text) and all(_atom_matches(a, text[position + k]) for k, a in enumerate(piece))

    def _find(self, piece: str | list[Atom], text: str, start: int, end: int) -> int:
        if isinstance(piece, str):
            return text.find(piece, start, end)
        return next((p for p in range(start, end - len(piece) + 1) if self._at(piece, text, p)), -1)

    def matches(self, text: str) -> bool:
        """Glob matching of one component, linear-ish: the pieces between stars are placed leftmost."""
        pieces = self.pieces
        if len(pieces) == 1:
            return len(text) == len(pieces[0]) and self._at(pieces[0], text, 0)
        first, last = pieces[0], pieces[-1]
        if not self._at(first, text, 0):
            return False
        position = len(first)
        end = len(text) - len(last)
        for index, piece in enumerate(pieces[1:-1]):
            found = self._find(piece, text, position + self.minimums[index], end)
            if found < 0:
                return False
            position = found + len(piece)
        return end >= position + self.minimums[-1] and self._at(last, text, end)


class ComponentMatcher:
    """A compiled glob over path components (an automaton: states are positions in the glob's components)."""

    def __init__(self, parts: list[list[Atom] | str], prefix: bool = False) -> None:
        self.parts = parts
        self.prefix = prefix  # accept once the whole glob has matched the path's first components
        self._pieces = [None if part == DOUBLE else _Pieces(part) for part in parts]  # type: ignore[arg-type]

    def match(self, path: str) -> bool:
        last = len(self.parts)
        states = self._closure({0})
        for component in path.split("/"):
            if self.prefix and last in states:
                return True
            following = set()
            for state in states:
                if state == last:
                    continue
                pieces = self._pieces[state]
                if pieces is None:  # **: takes this component and may take more
                    following.add(state)
                    following.add(state + 1)
                elif pieces.matches(component):
                    following.add(state + 1)
            states = self._closure(following)
            if not states:
                return False
        return last in states

    def _closure(self, states: set[int]) -> set[int]:
        """A ** that is not the last part may take no component at all."""
        result = set(states)
        for state in sorted(states):
            while state < len(self.parts) - 1 and self.parts[state] == DOUBLE:
                state += 1
                result.add(state)
        return result


Matcher = re.Pattern[str] | ComponentMatcher


def _check(glob: object) -> str:
    if not isinstance(glob, str):
        raise ValueError(f"expected a glob (text), got {glob!r}")
    if not glob.strip():
        raise ValueError("bad glob: empty")
    if glob.startswith("/"):
        raise ValueError(f"bad glob {glob!r}: must be relative to the scope's root, not absolute")
    if len(glob) > MAX_GLOB_LENGTH:
        raise ValueError(f"bad glob: {len(glob):,} characters is too long (at most {MAX_GLOB_LENGTH})")
    return glob


def _parse(glob: str, original: str) -> list[list[Atom] | str]:
    components = glob.split("/")
    if any(part in ("", ".", "..") for part in components):
        raise ValueError(f"bad glob {original!r}: empty, '.' or '..' path component")
    parts: list[list[Atom] | str] = []
    for component in components:
        if component == "**":
            if not parts or parts[-1] != DOUBLE:  # **/** is one **
                parts.append(DOUBLE)
        else:
            if "**" in component:
                raise ValueError(f"bad glob {original!r}: '**' must be a whole path component")
            parts.append(parse_component(component, original))
    return parts


def _regex_safe(parts: list[list[Atom] | str]) -> bool:
    doubles = sum(part == DOUBLE for part in parts)
    stars = max((sum(isinstance(a, _Star) for a in part) for part in parts if part != DOUBLE), default=0)
    return doubles <= MAX_DOUBLES_FOR_REGEX and stars <= MAX_STARS_FOR_REGEX


def _regex(parts: list[list[Atom] | str], tail: str = "") -> re.Pattern[str]:
    pieces = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == DOUBLE:
            pieces.append(".*" if last else "(?:[^/]*/)*")
        else:
            pieces.append("".join(_atom_regex(atom) for atom in part) + ("" if last else "/"))
    return re.compile("^" + "".join(pieces) + tail + "$", re.DOTALL)


def glob_parts(glob: str) -> list[list[Atom] | str]:
    """A path glob's components as they are matched (a glob without a slash matches a name in any folder).
    Raises ValueError with the reason for a malformed one."""
    glob = _check(glob)
    return _parse(glob if "/" in glob else "**/" + glob, glob)


def glob_to_regex(glob: str) -> Matcher:
    """Compile a rule glob: a regular expression where that is safe, else a component automaton; either has
    ``match(path)``. Raises ValueError with the reason for a malformed one."""
    parts = glob_parts(glob)
    return _regex(parts) if _regex_safe(parts) else ComponentMatcher(parts)


def folder_glob_to_regex(glob: str) -> Matcher | None:
    """For a glob ending in ``/**`` (every file below some folders): a matcher of the folders whose files all
    match it. None for other globs, which need each file's name."""
    glob = _check(glob)
    if not glob.endswith("/**") or glob == "**/**" or len(glob) <= 3:
        return None
    parts = _parse(glob[:-3], glob)
    return _regex(parts, "(?:/.*)?") if _regex_safe(parts) else ComponentMatcher(parts, prefix=True)


def name_glob(value: str) -> Matcher:
    """A wildcard value of an entity or a subject label (one name, no folders)."""
    atoms = parse_component(value, value)
    if sum(isinstance(atom, _Star) for atom in atoms) <= MAX_STARS_FOR_REGEX:
        return re.compile("^" + "".join(_atom_regex(atom) for atom in atoms) + "$", re.DOTALL)
    return ComponentMatcher([atoms])


LABEL_KEYS = ("sub", "ses")  # the entities whose labels a path shape blanks (classify.path_shape)


def sees_labels(glob: str) -> bool:
    """Whether a glob can answer differently for two paths that differ only in a subject or session label
    (sub-01 and sub-02): whether some literal, ``?`` or class of it can land on a label's letters and digits.
    That is a run of them right after ``sub-``/``ses-``, after a ``-`` a wildcard may make into one, or glued to
    a ``*`` (``*1_task*``, ``*index*``). A ``*`` alone cannot tell labels apart. When in doubt: True."""
    return any(not isinstance(part, str) and _component_sees_labels(part) for part in glob_parts(glob))


def _label_char(atom: Atom) -> bool:
    """Could stand for a letter or digit of a label."""
    return isinstance(atom, _Any | _Class) or (isinstance(atom, str) and atom.isalnum())


def _component_sees_labels(atoms: list[Atom]) -> bool:
    for start, atom in enumerate(atoms):
        if not _label_char(atom) or (start and _label_char(atoms[start - 1])):
            continue  # only where a run of label characters begins
        before = atoms[start - 1] if start else None
        if isinstance(before, _Star):
            return True  # the * may end inside a label that this run goes on with
        if before == "-":  # a label begins after sub- or ses-: is that what precedes?
            key_start = start - 1
            while key_start and _label_char(atoms[key_start - 1]):
                key_start -= 1
            key = atoms[key_start:start - 1]
            ahead = atoms[key_start - 1] if key_start else None
            if (isinstance(ahead, _Star) or not all(isinstance(char, str) for char in key)
                    or "".join(str(char) for char in key) in LABEL_KEYS):
                return True
    return False
