"""Machine formats written exactly: strict JSON and CSV that any reader splits right, whatever the names."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def strict_json(data: Any, **options: Any) -> str:
    """JSON that any parser reads: NaN and infinities are refused (figures are checked finite on input)."""
    return json.dumps(data, allow_nan=False, **options)


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
