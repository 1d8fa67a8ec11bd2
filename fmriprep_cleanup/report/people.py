"""Numbers for people, shared by the text and HTML renderers: sizes in binary units, file counts, shares,
yearly figures, aligned tables, and what each run status means for a subject's files."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from typing import Any

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


def _scaled(value: float, units: tuple[tuple[float, str], ...]) -> str:
    """``value`` in the largest unit under it, three significant digits: 27 mWh, 1.2 kWh, 3.4 MWh."""
    if value == 0:
        return "0 " + next(unit for scale, unit in units if scale == 1)
    scale, unit = next(((scale, unit) for scale, unit in units if abs(value) >= scale), units[-1])
    return f"{number(value / scale)} {unit}"


def energy_amount(kwh: float) -> str:
    """An amount of energy for people: "27 mWh", "1.2 kWh", "3.4 MWh"."""
    return _scaled(kwh, ((1e6, "GWh"), (1e3, "MWh"), (1, "kWh"), (1e-3, "Wh"), (1e-6, "mWh"), (1e-9, "µWh")))


def co2e_mass(kg: float) -> str:
    """A mass of CO2e for people: "27 mg", "1.2 kg", "3.4 t"."""
    return _scaled(kg, ((1e3, "t"), (1, "kg"), (1e-3, "g"), (1e-6, "mg"), (1e-9, "µg")))


def count(value: int) -> str:
    """A count with thousands separated: 12,345."""
    return humanize.intcomma(value)


def table(headers: list[str], rows: list[list[str]], align: str, width: int | None = None,
          drop: Sequence[str] = ()) -> list[str]:
    """Aligned columns; ``align`` has one letter per column: r (numbers, right-aligned), l (paths: shortened in
    the middle with "…" when the terminal is narrow, so both ends stay readable), w (text: wrapped onto more
    lines) or d (dates, labels: never shortened). ``width``: the terminal's columns, which lines must not pass
    (None: never shortened, as for pipes, files and --wide). ``drop``: the headers of the columns left out, in
    this order, while the table does not fit otherwise (the least needed first)."""
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]
    if width is not None:
        widths = _fit(widths, align, width)
        for header in drop:
            if sum(widths) + 2 * (len(widths) - 1) <= width or header not in headers:
                continue
            gone = headers.index(header)
            headers = headers[:gone] + headers[gone + 1:]
            rows = [row[:gone] + row[gone + 1:] for row in rows]
            align = align[:gone] + align[gone + 1:]
            widths = _fit([max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))], align,
                          width)

    def lines(cells: list[str]) -> list[str]:
        wrapped = [textwrap.wrap(str(c), w) or [""] if a == "w" and len(str(c)) > w else [str(c)]
                   for c, w, a in zip(cells, widths, align, strict=True)]
        out = []
        for depth in range(max(len(parts) for parts in wrapped)):
            row = [parts[depth] if depth < len(parts) else "" for parts in wrapped]
            text = "  ".join(c.rjust(w) if a == "r" else (_shorten(c, w) if a == "l" else c).ljust(w)
                             for c, w, a in zip(row, widths, align, strict=True)).rstrip()
            out.append(text[:width - 1] + "…" if width is not None and len(text) > width else text)  # still too narrow
        return out

    return [line for cells in [headers, ["-" * w for w in widths], *rows] for line in lines(cells)]


MIN_COLUMN = 12  # a shortened column keeps at least this many characters
MIN_WRAPPED = 20  # a wrapped column at least this many


def _fit(widths: list[int], align: str, width: int) -> list[int]:
    """Narrow the wrapped columns first, then the shortened ones, one character at a time from the widest (the
    long columns end up equally wide, none cut to nothing); numbers and dates keep their width."""
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    for letter, least in (("w", MIN_WRAPPED), ("l", MIN_COLUMN)):
        while excess > 0:
            shrinkable = [i for i, a in enumerate(align) if a == letter and widths[i] > least]
            if not shrinkable:
                break
            widths[max(shrinkable, key=lambda i: widths[i])] -= 1
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


def folder_lines(folders: list[dict[str, str]], notes: Sequence[str] = (), width: int | None = None) -> list[str]:
    """The folders a dataset's files are in, aligned, each with how it was found; then discovery's notes (each
    wrapped to ``width``, the terminal's columns, if given)."""
    rows = [[SCOPE_NAMES.get(folder["scope"], folder["scope"]), folder["path"],
             f"({folder['found']})" if folder["found"] else ""] for folder in folders]
    lines = ["  " + line.rstrip() for line in table(["", "", ""], rows, "dll", None)[2:]] if rows else []
    if width is not None and rows and max(map(len, lines)) > width:  # each folder whole, on lines of its own
        lines = []
        for scope, path, found in rows:
            lines += [f"  {scope}", *path_lines(path, width, "    "), *textwrap.wrap(
                found, width - 4, initial_indent="    ", subsequent_indent="     ", break_long_words=False)]
    if width is None:
        return lines + [f"  ({note})" for note in notes]
    return lines + [line for note in notes for line in wrapped(f"({note})", width, "  ", "   ")]


def rewritten_lines(rewritten: dict[str, Any]) -> list[str]:
    """A zip or tar file written anew without its junk members: its size before and after, and in git-annex."""
    lines = [f"Rewrote {rewritten['archive']} without {count(rewritten['members_removed'])} members: "
             f"{size(rewritten['bytes_before'])} -> {size(rewritten['bytes_after'])} on disk (the sizes above are "
             "the members' unpacked)."]
    if "saved" in rewritten:
        old = f"; its old content {rewritten['old_content']}" if "old_content" in rewritten else ""
        lines.append(f"  git-annex: {rewritten['saved']}{old}.")
    return lines


def path_lines(path: str, width: int, indent: str) -> list[str]:
    """A path on as many lines as it needs, broken only after a "/" (never inside a name)."""
    lines, current = [], ""
    for number, part in enumerate(path.split("/")):
        piece = part if number == 0 else "/" + part
        if current and len(indent) + len(current) + len(piece) > width:
            lines.append(indent + current)
            current, indent = piece, indent + "  "
        else:
            current += piece
    return [*lines, indent + current]


def wrapped(text: str, width: int, indent: str = "", more: str = "  ") -> list[str]:
    """``text`` on lines of at most ``width``: broken between words, and a word longer than a line (a path) only
    after a "/" - never inside a name."""
    lines = textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=more, break_long_words=False,
                          break_on_hyphens=False) or [""]
    fitting = []
    for number, line in enumerate(lines):
        if len(line) <= width or "/" not in line:
            fitting.append(line)
            continue
        first = indent if number == 0 else more
        fitting += path_lines(line[len(first):], width, first)
    return fitting


def fitted(lines: list[str], width: int | None) -> list[str]:
    """Lines longer than the terminal wrapped (see ``wrapped``), the rest as they are (tables already fit); all
    as they are without a terminal."""
    if width is None:
        return lines
    return [part for line in lines for part in (wrapped(line, width) if len(line) > width else [line])]


FOLDERS_SHOWN = 5  # the largest folders a clean acts on, said before it acts (and in a dry run)
FOLDER_DEPTH = 2  # folders this deep below their root: work/fmriprep_23_2_wf/sub_01_wf, sub-01/ses-1


def largest_folders_lines(files: Sequence[Any], width: int | None = None) -> list[str]:
    """Where a clean acts, folder by folder: the largest folders (files, bytes; paths relative to the folder
    holding every root, so they stay whole), how many there are, and how to see every file."""
    folders: dict[str, list[int]] = {}
    for planned in files:
        relative = os.path.relpath(os.path.dirname(planned.path), planned.root)
        parts = [] if relative == "." else relative.split("/")[:FOLDER_DEPTH]
        tally = folders.setdefault(os.path.join(planned.root, *parts), [0, 0])
        tally[0] += 1
        tally[1] += planned.size
    if not folders:
        return []
    base = os.path.commonpath({planned.root for planned in files})
    largest = sorted(folders.items(), key=lambda item: (-item[1][1], item[0]))[:FOLDERS_SHOWN]
    shown = "the largest" if len(folders) > FOLDERS_SHOWN else "each"
    lines = [f"In {count(len(folders))} folder{'s' if len(folders) > 1 else ''} of {base} ({shown} below):"]
    lines += ["  " + line for line in table(["", "", ""], [[f"{count(n)} files", size(b), os.path.relpath(folder, base)]
                                                           for folder, (n, b) in largest], "rrd")[2:]]
    lines.append("Every file: add --list (or see `fmriprep-cleanup plan --action junk`).")
    return fitted(lines, width)
