"""Numbers read from files the tool did not write (scan lists, partials, manifests, journals, command output),
checked where they are read: of the right type, finite, and in the range the field can hold. A count of 400
digits, a time of NaN or 1e300, a mode of -1 would otherwise travel on until an overflow, a crash or a wrong
total far from the line that caused it. Each check raises ValueError with what is wrong; the reader adds its
file and line."""

from __future__ import annotations

import math

MAX_COUNT = 2**63 - 1  # bytes, blocks, files: what a signed 64-bit field holds
MAX_ID = 2**64 - 1  # inode and device numbers
MAX_LINKS = 2**32 - 1
MAX_MODE = 0o177777  # file type and permission bits
# Times (seconds since 1970) Python's datetime can show: the years 1 to 9999.
EARLIEST, LATEST = -62135596800.0, 253402300799.0
MAX_DIGITS = 20  # a decimal number longer than this is no count, id or time in a list


def count(value: object, what: str, high: int = MAX_COUNT, low: int = 0) -> int:
    """``value`` as an integer from ``low`` to ``high`` (a bool, a float or text is not one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is not a whole number: {_shown(value)}")
    if not low <= value <= high:
        raise ValueError(f"{what} {_shown(value)} is out of range ({low} to {high})")
    return value


def moment(value: object, what: str) -> float:
    """``value`` as a time in seconds since 1970 (an int or a finite float, in the years 1 to 9999)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is not a number: {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} is {value}, not a time")
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"{what} {_shown(value)} is not a time between the years 1 and 9999")
    return float(value)


def amount(value: object, what: str, low: float = 0.0, high: float = 1e18) -> float:
    """``value`` as a finite number from ``low`` to ``high`` (kWh, kg, hours, a share)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is not a number: {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} is {value}, not a number")
    if not low <= value <= high:
        raise ValueError(f"{what} {_shown(value)} is out of range ({low:g} to {high:g})")
    return float(value)


def digits(text: bytes, what: str) -> int:
    """A decimal count written as ASCII digits (at most MAX_DIGITS of them), as an integer."""
    if not text.isdigit() or len(text) > MAX_DIGITS:
        raise ValueError(f"{what} is not a count of at most {MAX_DIGITS} digits: {_shown(text)}")
    return int(text)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
