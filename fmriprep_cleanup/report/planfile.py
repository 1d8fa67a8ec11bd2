"""The per-file plan as a machine reads it: one line per file in TSV, JSON lines or CSV, streamed."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import IO

from ..basics.formats import csv_line, output_json
from ..plan.files import PlannedFile
from ..plan.plan import Plan

PLAN_COLUMNS = ("action", "category", "rule_id", "size", "path")
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
BATCH = 4096  # lines written at once


def plan_header(fmt: str) -> str:
    """The line a plan starts with: the column names (TSV, CSV); none for JSON lines."""
    if fmt == "tsv":
        return "\t".join(PLAN_COLUMNS) + "\n"
    return csv_line(PLAN_COLUMNS) if fmt == "csv" else ""


def plan_line(row: PlannedFile, fmt: str) -> str:
    """One file's line. TSV escapes backslash, tab and newline in names (as PostgreSQL's text format does),
    so every file is exactly one line; CSV quotes as RFC 4180 says."""
    if fmt == "tsv":
        return (f"{row.action}\t{row.category.translate(_TSV_ESCAPES)}\t{row.rule_id.translate(_TSV_ESCAPES)}"
                f"\t{row.size}\t{row.path.translate(_TSV_ESCAPES)}\n")
    if fmt == "csv":
        return csv_line((row.action, row.category, row.rule_id, row.size, row.path))
    return output_json({"action": row.action, "category": row.category, "rule_id": row.rule_id, "size": row.size,
                        "path": row.path, "scope": row.scope, "subject": row.subject}) + "\n"


def write_plan(rows: Iterable[PlannedFile], stream: IO[str], fmt: str, only: str | None = None) -> int:
    """Write one line per file (``only``: files with this action); returns how many were written."""
    written = 0
    batch: list[str] = [plan_header(fmt)]
    for row in rows:
        if only is not None and row.action != only:
            continue
        batch.append(plan_line(row, fmt))
        written += 1
        if len(batch) >= BATCH:
            stream.write("".join(batch))
            batch.clear()
    stream.write("".join(batch))
    return written


def _lines(rows: list[PlannedFile], fmt: str, only: str | None) -> tuple[str, int]:
    """A block of a plan as its lines, and how many."""
    lines = [plan_line(row, fmt) for row in rows if only is None or row.action == only]
    return "".join(lines), len(lines)


def write_plan_of(plan: Plan, stream: IO[str], fmt: str, only: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Write ``plan``'s lines (see write_plan); with several processes each formats its own subjects' lines
    and this one only puts the blocks in order: the same bytes as one process writes."""
    if plan.processes <= 1:
        return write_plan(plan.files(progress), stream, fmt, only)
    from ..plan.processes import plan_in_processes

    stream.write(plan_header(fmt))
    written = 0
    for text, count in plan_in_processes(plan, functools.partial(_lines, fmt=fmt, only=only), progress):
        stream.write(text)
        written += count
    return written
