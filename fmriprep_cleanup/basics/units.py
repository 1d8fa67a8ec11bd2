"""Sizes and durations as people write them in rule files and options ("500MB", "30d")."""

from __future__ import annotations

import math
import re

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4, "p": 1000**5, "pb": 1000**5,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "pib": 1024**5,
}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdwy])")
_ZERO = re.compile(r"^0+(?:\.0*)?$")


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"500MB"`` (powers of 1000) or ``"2GiB"`` (powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value}")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a size: {value!r} (it must be finite)")
    found = _SIZE.match(str(value))
    if not found or found.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {value!r} (write e.g. 500MB, 2GiB or a number of bytes)")
    return int(float(found.group(1)) * _SIZE_UNITS[found.group(2).lower()])


def parse_duration(value: object) -> float:
    """Seconds from ``"30d"``, ``"1h30m"``, ``"2w"``, ``"5y"`` (365 days), ``"0"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"not a duration: {value!r} (it must be finite)")
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return float(value)
    text = str(value).strip().lower()
    if _ZERO.match(text):
        return 0.0  # zero needs no unit: --min-age 0 means no age limit
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise ValueError(f"not a duration: {value!r} (write e.g. 90m, 24h, 30d, 2w or 5y)")
    return float(sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts))
