"""One small validator for what people and other runs write for us - rule files, policy files, partial results -
from one declaration per format: its keys, which are required, and how each value is read. Every problem is said,
all of them at once, with where it is (file:line for YAML, the field for JSON); a reader that cannot read a value
raises ValueError with what is wrong.

    ENTRY = Schema(Key("paths", labels, required=True), Key("min_age", duration))
    values = ENTRY.read(spec, At(problems.add, spec.line, "entry 'x': "))   # {"paths": (...), "min_age": 3600.0}
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import CleanupError


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """" (did you mean 'x'?)" for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Problems:
    """Every problem of one file, "file:line: message", so all of them are reported at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.messages: list[str] = []

    def add(self, line: int, message: str) -> None:
        self.messages.append(f"{self.path}:{line}: {message}")

    def raise_if_any(self, error: type[CleanupError] = CleanupError) -> None:
        if self.messages:
            raise error("\n".join(self.messages))


@dataclass(frozen=True)
class At:
    """Where a value is read: how a problem there is said (``report(line, message)``), its line, and what the
    messages about it start with (``where``: "entry 'x': ")."""

    report: Callable[[int, str], None]
    line: int
    where: str = ""

    def problem(self, message: str, line: int | None = None) -> None:
        self.report(self.line if line is None else line, self.where + message)

    def inside(self, name: str, line: int | None = None) -> At:
        """The place of a part of this value: its messages start with ``name``."""
        return At(self.report, self.line if line is None else line, f"{self.where}{name}: ")


def as_is(value: Any, at: At) -> Any:
    return value


Reader = Callable[[Any, At], Any]  # a value as written -> what it means (ValueError: why it cannot be read)


@dataclass(frozen=True)
class Key:
    """One key of a mapping: how its value is read. ``named``: a problem with it starts "key: " (False: the
    reader's message says which key it is about)."""

    name: str
    read: Reader = as_is
    required: bool = False
    named: bool = True


@dataclass(frozen=True)
class Schema:
    """The keys of a mapping. ``others(name)``: the reader of a key not declared (a rule's BIDS entities), or
    None: an unknown key. ``missing_in_one``: the missing keys said in one problem ("missing a, b") rather than
    one each ("missing 'a'")."""

    keys: tuple[Key, ...]
    others: Callable[[str], Reader | None] | None = None
    also_known: Callable[[], list[str]] = list  # more names a misspelt key may be close to
    hint: Callable[[str], str | None] = lambda name: None  # what to say of an unknown key, before "did you mean"
    unknown: str = "key"  # what an unknown key is called: "unknown key 'x'"
    missing_in_one: bool = False
    by_name: dict[str, Key] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {key.name: key for key in self.keys})

    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)

    def read(self, data: Mapping[str, Any], at: At) -> dict[str, Any]:
        """The values of ``data``'s keys as their readers read them (a key whose value could not be read is
        left out); every problem said at ``at``."""
        lines: dict[str, int] = getattr(data, "key_lines", {})
        values: dict[str, Any] = {}
        for name, value in data.items():
            line = lines.get(name, at.line)
            key = self.by_name.get(name)
            reader = key.read if key is not None else self.others(name) if self.others is not None else None
            if reader is None:
                at.problem(f"unknown {self.unknown} {name!r}{self._hint(name)}", line)
                continue
            try:
                values[name] = reader(value, at.inside(name, line) if key is None or key.named else
                                      At(at.report, line, at.where))
            except ValueError as exc:
                at.problem(f"{name}: {exc}" if key is None or key.named else str(exc), line)
        missing = [key.name for key in self.keys if key.required and key.name not in data]
        if missing and self.missing_in_one:
            at.problem(f"missing {', '.join(missing)}")
        else:
            for name in missing:
                at.problem(f"missing {name!r}")
        return values

    def _hint(self, name: str) -> str:
        said = self.hint(name)
        return f" ({said})" if said else did_you_mean(name, list(self.names()) + self.also_known())


def choice(choices: tuple[str, ...], what: str, where: str = "") -> Reader:
    """A reader of one of ``choices`` (ValueError: "unknown WHAT 'x'; one of ..."), ``where`` before it."""
    def read(value: Any, at: At) -> str:
        if value not in choices:
            raise ValueError(f"{where}unknown {what} {value!r}; one of {', '.join(choices)}")
        return str(value)
    return read


def flag(value: Any, at: At) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value
