"""Numbers for people, shared by the text and HTML renderers: sizes in binary units, file counts, shares,
yearly figures, aligned tables, and what each run status means for a subject's files."""

from __future__ import annotations

from collections.abc import Sequence

import humanize

from ..fmriprep.statuses import SUBJECT_STATUSES as SUBJECT_STATUSES  # the words statuses are said in

LAYOUT_NAMES = {"bids": "BIDS layout", "legacy": "legacy layout", "workdir": "working directory only"}
STATUS_LINES = {
    "failed": "their working directories ({kept}) are kept for re-runs",
    "running": "fMRIPrep is still working on them: nothing of theirs is touched ({kept} of working directory)",
    "incomplete": "their runs stopped before the end: working directories ({kept}) are kept for re-runs",
    "unknown": "their run status cannot be told: working directories ({kept}) are kept",
}


def size(n: int) -> str:
    """Bytes for people: binary units, as du -h and storage quotas use."""
    text = humanize.naturalsize(n, binary=True, format="%.1f")
    return text.replace(" Bytes", " B").replace(" Byte", " B")


def files(count: int) -> str:
    return f"{humanize.intcomma(count)} file" + ("" if count == 1 else "s")


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def number(value: float) -> str:
    """A yearly figure for people: three significant digits, thousands separated."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return humanize.intcomma(round(value))
    return f"{value:.3g}"


def count(value: int) -> str:
    """A count with thousands separated: 12,345."""
    return humanize.intcomma(value)


def table(headers: list[str], rows: list[list[str]], align: str, width: int | None = None) -> list[str]:
    """Aligned columns; ``align`` has one letter per column, l or r. ``width``: the terminal's columns, which
    lines must not pass: the widest left-aligned columns (paths, rule conditions) are shortened in the middle
    with "…", so both ends of a path stay readable (None: never shortened, as for pipes and --wide)."""
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]
    if width is not None:
        widths = _fit(widths, align, width)

    def line(cells: list[str]) -> str:
        parts = [_shorten(str(c), w).ljust(w) if a == "l" else _shorten(str(c), w).rjust(w)
                 for c, w, a in zip(cells, widths, align, strict=True)]
        text = "  ".join(parts).rstrip()
        return text[:width - 1] + "…" if width is not None and len(text) > width else text  # still too narrow

    return [line(headers), line(["-" * w for w in widths])] + [line(row) for row in rows]


MIN_COLUMN = 12  # a shortened column keeps at least this many characters


def _fit(widths: list[int], align: str, width: int) -> list[int]:
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    while excess > 0:
        shrinkable = [i for i, a in enumerate(align) if a == "l" and widths[i] > MIN_COLUMN]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])  # one character at a time from the widest: the
        widths[widest] -= 1  # long columns end up equally wide, none cut to nothing
        excess -= 1
    return widths


def _shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: the middle replaced by "…" when it is longer."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def status_line(row: dict) -> str | None:
    """What a run status means for the subjects that have it ("2 failed subjects: ..."), or None."""
    if row["status"] not in STATUS_LINES or not row["subjects"]:
        return None
    noun = "subject" if row["subjects"] == 1 else "subjects"
    return f"{row['subjects']} {row['status']} {noun}: " + STATUS_LINES[row["status"]].format(kept=size(row["workdir_kept_bytes"]))


SCOPE_NAMES = {"derivatives": "derivatives", "freesurfer": "FreeSurfer", "workdir": "working directory",
               "other": "other outputs"}


def folder_lines(folders: list[dict[str, str]], notes: Sequence[str] = ()) -> list[str]:
    """The folders a dataset's files are in, aligned, each with how it was found; then discovery's notes."""
    rows = [[SCOPE_NAMES.get(folder["scope"], folder["scope"]), folder["path"],
             f"({folder['found']})" if folder["found"] else ""] for folder in folders]
    lines = ["  " + line.rstrip() for line in table(["", "", ""], rows, "lll")[2:]] if rows else []
    return lines + [f"  ({note})" for note in notes]
