"""Options declared once: each option of a command's option set (a frozen dataclass: how a plan is opened, how a
clean run acts, the energy model's overrides) is a field that says its default, the check its value must pass and,
if it has one, its command-line flag. From that one declaration come the command line's options (cli/common.py),
the check of the Python call (the dataclass checks itself when made), and the check of what a shard recorded.

    @dataclass(frozen=True)
    class EnergyOverrides(Declared):
        pue: float | None = option(None, optional(number(1)), Flag("--pue", help="..."))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar

Check = Callable[[Any], Any]  # a value as given -> the value kept (ValueError: why it cannot be)


@dataclass(frozen=True)
class Flag:
    """How an option is given on the command line: its flag (and other spellings), click's name for it when the
    command's function calls it otherwise, and how the text given becomes the option's value (``parse``)."""

    names: str | tuple[str, ...]
    help: str = ""
    dest: str | None = None
    metavar: str | None = None
    multiple: bool = False
    is_flag: bool = False
    choices: Sequence[str] | None = None
    int_range: tuple[int, int] | None = None
    number: bool = False  # a float
    path: str | None = None  # "file" or "folder": a path (click.Path, not checked for existence)
    default: Any = None  # as typed on the command line ("1h"), when it is not the option's own default
    show_default: bool = False
    parse: Callable[[Any], Any] | None = None  # the command line's value -> the option's (a duration, a mapping)

    def spellings(self) -> tuple[str, ...]:
        return (self.names,) if isinstance(self.names, str) else self.names


def option(default: Any, check: Check, flag: Flag | None = None, recorded: bool = True) -> Any:
    """A declared option: its default, its check, its flag (None: not on the command line) and whether a shard
    records it (what a partial says of how its plan was opened)."""
    return field(default=default, metadata={"check": check, "flag": flag, "recorded": recorded})


class Declared:
    """An option set: a frozen dataclass of ``option`` fields, each value checked (and normalised: a list of
    labels becomes a tuple) when it is made; ValueError names the option and what is wrong."""

    def __post_init__(self) -> None:
        for item in fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if value is item.default:
                continue
            try:
                object.__setattr__(self, item.name, item.metadata["check"](value))
            except ValueError as exc:
                raise ValueError(f"{item.name}: {exc}") from None

    @classmethod
    def declared(cls) -> list[Field[Any]]:
        return list(fields(cls))  # type: ignore[arg-type]

    @classmethod
    def flagged(cls) -> list[tuple[Field[Any], Flag]]:
        """The options given on the command line, in the order declared."""
        return [(item, item.metadata["flag"]) for item in cls.declared() if item.metadata.get("flag") is not None]

    def recorded(self) -> dict[str, Any]:
        """The options a shard records, as plain JSON."""
        return {item.name: _plain(getattr(self, item.name)) for item in self.declared() if item.metadata["recorded"]}


D = TypeVar("D", bound=Declared)


def from_recorded(cls: type[D], recorded: Any, required: Sequence[str] = ()) -> D:
    """The option set a shard recorded, every name and value checked (ValueError naming the option): what was
    written by anyone is never passed on unchecked."""
    if not isinstance(recorded, dict):
        raise ValueError("options")
    known = {item.name for item in cls.declared() if item.metadata["recorded"]}
    unknown = sorted(set(recorded) - known)
    if unknown:
        raise ValueError(unknown[0])
    missing = [name for name in required if name not in recorded]
    if missing:
        raise ValueError(missing[0])
    return cls(**recorded)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(sorted(value.items()))
    return value


# --- checks ------------------------------------------------------------------------------------------------------

def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def texts(value: Any) -> tuple[str, ...]:
    """Labels, names, globs: a list of text (one text alone is not a list of its letters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or \
            not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of text, got {value!r}")
    return tuple(value)


def absolute_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"expected an absolute path, got {value!r}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def whole(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return value
    return check


def number(low: float, high: float = math.inf) -> Check:
    """A finite number from ``low`` to ``high``."""
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise ValueError(f"expected a number from {low:g}" + ("" if high == math.inf else f" to {high:g}")
                             + f", got {value!r}")
        return value
    return check


def real(value: Any) -> float:
    """A number, finite or not (whoever uses it says what range it needs, naming its flag)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def one_of(choices: Sequence[str]) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"unknown value {value!r}; one of {', '.join(choices)}")
        return str(value)
    return check


def mapping_of_text(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(key, str) and isinstance(item, str)
                                              for key, item in value.items()):
        raise ValueError(f"expected a mapping of text to text, got {value!r}")
    return dict(sorted(value.items()))


def optional(check: Check) -> Check:
    """``check``, or None."""
    def checked(value: Any) -> Any:
        return None if value is None else check(value)
    return checked
