"""The per-file plan as a machine reads it: one line per file in TSV, JSON lines or CSV, streamed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from ..basics.formats import csv_line, output_json
from ..plan.files import PlannedFile

PLAN_COLUMNS = ("action", "category", "rule_id", "size", "path")
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
BATCH = 4096  # lines written at once


def write_plan(rows: Iterable[PlannedFile], stream: IO[str], fmt: str, only: str | None = None) -> int:
    """Write one line per file (``only``: files with this action); returns how many were written.

    TSV escapes backslash, tab and newline in names (as PostgreSQL's text format does), so every file is
    exactly one line; CSV quotes as RFC 4180 says.
    """
    written = 0
    batch: list[str] = []
    if fmt == "tsv":
        batch.append("\t".join(PLAN_COLUMNS) + "\n")
    elif fmt == "csv":
        batch.append(csv_line(PLAN_COLUMNS))
    for row in rows:
        if only is not None and row.action != only:
            continue
        if fmt == "tsv":
            batch.append(
                f"{row.action}\t{row.category.translate(_TSV_ESCAPES)}\t{row.rule_id.translate(_TSV_ESCAPES)}"
                f"\t{row.size}\t{row.path.translate(_TSV_ESCAPES)}\n"
            )
        elif fmt == "csv":
            batch.append(csv_line((row.action, row.category, row.rule_id, row.size, row.path)))
        else:
            batch.append(output_json({"action": row.action, "category": row.category, "rule_id": row.rule_id,
                                      "size": row.size, "path": row.path, "scope": row.scope,
                                      "subject": row.subject}) + "\n")
        written += 1
        if len(batch) >= BATCH:
            stream.write("".join(batch))
            batch.clear()
    stream.write("".join(batch))
    return written
