"""The per-file plan as a machine reads it: one line per file in TSV, JSON lines or CSV, streamed."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import IO

from ..basics.formats import csv_line, output_json
from ..plan.plan import Plan
from ..plan.rows import Classified, PlannedFile, planned_files
from ..plan.shares import rendered
from ..rules.classify import Decision
from .outputs import PLAN_FORMATS

PLAN_COLUMNS = ("action", "category", "rule_id", "size", "path")
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
BATCH = 4096  # lines written at once
BATCH_FOLDERS = 256  # folders' lines written at once
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


ACTIONS = ("keep", "junk")


def check_plan_output(fmt: str, only: str | None = None) -> None:
    """A plan's format and action filter must be known ones: ValueError otherwise (never a silent default)."""
    if fmt not in PLAN_FORMATS:
        raise ValueError(f"unknown plan format {fmt!r}; one of {', '.join(PLAN_FORMATS)}")
    if only is not None and only not in ACTIONS:
        raise ValueError(f"unknown action {only!r}; one of {', '.join(ACTIONS)}")


def plan_header(fmt: str) -> str:
    """The line a plan starts with: the column names (TSV, CSV); none for JSON lines."""
    if fmt == "tsv":
        return "\t".join(PLAN_COLUMNS) + "\n"
    return csv_line(PLAN_COLUMNS) if fmt == "csv" else ""


def plan_line(row: PlannedFile, fmt: str) -> str:
    """One file's line. TSV escapes backslash, tab and newline in names (as PostgreSQL's text format does),
    so every file is exactly one line; CSV quotes as RFC 4180 says."""
    if fmt == "tsv":
        return f"{_first_columns(row)}{row.size}\t{row.path.translate(_TSV_ESCAPES)}\n"
    if fmt == "csv":
        return csv_line((row.action, row.category, row.rule_id, row.size, row.path))
    return output_json({"action": row.action, "category": row.category, "rule_id": row.rule_id, "size": row.size,
                        "path": row.path, "scope": row.scope, "subject": row.subject}) + "\n"


def write_plan(rows: Iterable[PlannedFile], stream: IO[str], fmt: str, only: str | None = None) -> int:
    """Write one line per file (``only``: files with this action); returns how many were written."""
    check_plan_output(fmt, only)
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


def folder_lines(classified: Classified, fmt: str, only: str | None = None) -> tuple[str, int]:
    """A classified folder's lines (``only``: files with this action), and how many. TSV lines of a folder
    whose records are its lstat results are made from its names and sizes directly, without a plan row per file
    (making those rows was most of a plan's time)."""
    folder = classified.folder
    decisions = classified.file_decisions() if fmt == "tsv" else None
    sizes = folder.plain_sizes() if decisions is not None else None
    if decisions is None or sizes is None:
        lines = [plan_line(row, fmt) for row in planned_files(classified) if only is None or row.action == only]
        return "".join(lines), len(lines)
    distinct = {id(decision): decision for decision in decisions}  # by identity: hashing a Decision costs more
    columns = {key: _first_columns(decision) for key, decision in distinct.items()}
    starts = [columns[id(decision)] for decision in decisions]
    base = (folder.path + "/").translate(_TSV_ESCAPES)
    names = folder.names
    if _NEEDS_ESCAPE.search("".join(names)):
        names = [name.translate(_TSV_ESCAPES) for name in names]
    if only is None:
        lines = [f"{start}{size}\t{base}{name}\n" for start, size, name in zip(starts, sizes, names, strict=True)]
    else:
        lines = [f"{start}{size}\t{base}{name}\n" for start, size, name, decision
                 in zip(starts, sizes, names, decisions, strict=True) if decision.action == only]
    return "".join(lines), len(lines)


def _first_columns(decision: Decision | PlannedFile) -> str:
    """A TSV line's action, category and rule id, escaped, each followed by a tab."""
    return (f"{decision.action}\t{decision.category.translate(_TSV_ESCAPES)}"
            f"\t{decision.rule_id.translate(_TSV_ESCAPES)}\t")


def write_plan_of(plan: Plan, stream: IO[str], fmt: str, only: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Write ``plan``'s lines (see write_plan), a folder at a time; with several processes each formats its
    own subjects' lines and this one only puts the blocks in order: the same bytes as one process writes."""
    check_plan_output(fmt, only)
    stream.write(plan_header(fmt))
    render = functools.partial(folder_lines, fmt=fmt, only=only)
    blocks: Iterable[tuple[str, int]] = rendered(plan, render, progress)
    written = 0
    batch: list[str] = []
    for text, count in blocks:
        batch.append(text)
        written += count
        if len(batch) >= BATCH_FOLDERS:
            stream.write("".join(batch))
            batch.clear()
    stream.write("".join(batch))
    return written
