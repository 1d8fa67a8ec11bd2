"""Machine formats written exactly: strict JSON and CSV that any reader splits right, whatever the names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# A name's byte that is not UTF-8 is held as a lone surrogate U+DC80-U+DCFF (Python's surrogateescape), which
# json.dumps writes as \udcNN: strict parsers reject it. Output JSON writes the byte as the text \xNN instead.
_LONE_SURROGATE = re.compile(r"(\\+)u[dD][cC]([89a-fA-F][0-9a-fA-F])")
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}$")


def strict_json(data: Any, **options: Any) -> str:
    """JSON that any parser reads: NaN and infinities are refused (figures are checked finite on input). Names
    keep their exact form (undecodable bytes as \\udcNN escapes): for the tool's own files, read back exactly."""
    return json.dumps(data, allow_nan=False, **options)


def output_json(data: Any, **options: Any) -> str:
    """JSON for people and scripts (reports, plans, results, logs): strict_json, and valid UTF-8 whatever the
    names hold - a byte of a file name that is not UTF-8 is written as the four characters \\xNN (a backslash,
    x and two hex digits), as Python's backslashreplace writes it."""
    text = strict_json(data, **options)
    if "\\udc" not in text and "\\uDC" not in text:
        return text

    def replace(found: re.Match[str]) -> str:
        slashes = found.group(1)
        if len(slashes) % 2 == 0:  # an escaped backslash, then plain text "udcNN"
            return found.group(0)
        if len(slashes) == 1 and _HIGH_SURROGATE.search(text, 0, found.start()):
            return found.group(0)  # the second half of a surrogate pair: a character beyond U+FFFF
        return slashes[:-1] + "\\\\x" + found.group(2).lower()

    return _LONE_SURROGATE.sub(replace, text)


def csv_line(values: Iterable[Any]) -> str:
    """One CSV record, ended by a newline. A field holding a comma, a quote, a carriage return or a newline is
    quoted (quotes doubled), so csv.reader and spreadsheets read one record per file whatever its name holds.
    (Python's csv.writer with a "\\n" line end leaves a lone "\\r" unquoted, which splits the row.)"""
    return ",".join(_field(value) for value in values) + "\n"


def _field(value: Any) -> str:
    text = "" if value is None else str(value)
    if any(char in text for char in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
