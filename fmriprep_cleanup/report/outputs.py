"""The output formats of each kind of result, registered once: a format is a name and how the result is drawn in
it. A command offers exactly its kind's formats (``--format``), and draws with ``render``; a new format is one
line here (and its drawing function), and every command that shows that kind of result offers it.

Each drawing module is imported when a result is drawn with it (the command line imports this module to build
its options: `--help` stays fast).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class View:
    """How a person asked to see a result: the columns text must fit (None: no limit, as in pipes and files),
    every subject or only those with the most junk, and the history's --since as written."""

    width: int | None = None
    all_subjects: bool = False
    since: str | None = None


Draw = Callable[[dict[str, Any], View], str]


@dataclass(frozen=True)
class Formats:
    """The output formats of one kind of result, the first the default, each with how it is drawn."""

    draws: dict[str, Draw]
    note: str = ""  # what --help says of them beyond their names

    def names(self) -> list[str]:
        return list(self.draws)

    @property
    def default(self) -> str:
        return next(iter(self.draws))

    def render(self, fmt: str, data: dict[str, Any], view: View | None = None) -> str:
        if fmt not in self.draws:
            raise ValueError(f"unknown format {fmt!r}; one of {', '.join(self.draws)}")
        return self.draws[fmt](data, view or View())


PLAN_FORMATS = ("tsv", "jsonl", "csv")  # a plan's lines (report/planfile.py), the first the default


def _text(data: dict[str, Any], view: View) -> str:
    from .text import render_text

    return render_text(data, view.width, view.all_subjects)


def _json(data: dict[str, Any], view: View) -> str:
    from .text import render_json

    return render_json(data)


def _csv(data: dict[str, Any], view: View) -> str:
    from .text import render_csv

    return render_csv(data)


def _compute_csv(data: dict[str, Any], view: View) -> str:
    from .text import render_compute_csv

    return render_compute_csv(data)


def _html(data: dict[str, Any], view: View) -> str:
    from .html import render_html

    return render_html(data)


def _audit_text(data: dict[str, Any], view: View) -> str:
    from .text import render_audit_text

    return render_audit_text(data, view.width)


def _audit_csv(data: dict[str, Any], view: View) -> str:
    from .text import render_audit_csv

    return render_audit_csv(data)


def _audit_html(data: dict[str, Any], view: View) -> str:
    from .html import render_audit_html

    return render_audit_html(data)


def _status_text(data: dict[str, Any], view: View) -> str:
    from .text import render_status_text

    return render_status_text(data, view.width)


def _status_tsv(data: dict[str, Any], view: View) -> str:
    from .text import render_status_tsv

    return render_status_tsv(data)


def _history_text(data: dict[str, Any], view: View) -> str:
    from .text import render_history_text

    return render_history_text(data, view.since, view.width)


def _history_csv(data: dict[str, Any], view: View) -> str:
    from ..ops.history import COLUMNS
    from .text import render_history_csv

    return render_history_csv(data, COLUMNS)


def _history_html(data: dict[str, Any], view: View) -> str:
    from .html import render_history_html

    return render_history_html(data)


REPORT = Formats({"text": _text, "json": _json, "csv": _csv, "compute-csv": _compute_csv, "html": _html},
                 "csv: the per-category table; compute-csv: compute and storage per subject.")
AUDIT = Formats({"text": _audit_text, "json": _json, "csv": _audit_csv, "html": _audit_html})
STATUS = Formats({"text": _status_text, "json": _json, "tsv": _status_tsv})
HISTORY = Formats({"text": _history_text, "json": _json, "csv": _history_csv, "html": _history_html})
