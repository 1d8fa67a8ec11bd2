"""The HTML report: one self-contained file to open offline, print or send to a colleague.

No network, scripts, fonts or stylesheets from elsewhere: CSS is inline and the charts are inline SVG. The
pages are Jinja2 templates (``templates/``) with autoescape on, so every name and number from the data is
escaped; the one value placed unescaped is the report data itself, as inert JSON (``embed_json``), for anyone
who wants the exact numbers. Rendered from the same dictionary as the JSON report, so the two never disagree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jinja2
from markupsafe import Markup

from ..basics.annex import reclaimable
from ..basics.formats import output_json
from ..plan.options import MODE_WORDS
from .people import LAYOUT_NAMES, count, number, share, size, status_line

KEEP_COLOUR = "#4c78a8"
JUNK_COLOUR = "#e45756"
ROW_HEIGHT = 34  # a label line above a bar
BAR_SHARE = 64  # the longest bar takes this % of the chart's width; its value is written after it
CHARTED_SUBJECTS = 50  # the subject chart shows the subjects with the most junk; the table below has them all
LABEL_CHARACTERS = 48  # a label longer than this is shortened (in full on hover): it fits a 360 px phone
ASSUMPTION_LABELS = (("watts_per_tb", "Power per TB stored (W)"), ("pue", "Data-centre PUE"), ("copies", "Copies kept"),
                     ("carbon_intensity", "Carbon intensity (gCO2e/kWh)"),
                     ("embodied_kg_per_tb", "Embodied carbon (kgCO2e per TB)"), ("lifetime_years", "Drive lifetime (years)"))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("fmriprep_cleanup.report", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters.update(size=size, number=number, intcomma=count)
    environment.globals.update(share=share, reclaimable=reclaimable, keep_colour=KEEP_COLOUR, junk_colour=JUNK_COLOUR,
                               assumption_labels=ASSUMPTION_LABELS)
    return environment


def short_label(label: str, limit: int = LABEL_CHARACTERS) -> str:
    """``label`` in at most ``limit`` characters. A path keeps its subject's folder (sub-01, sub_01_wf) and its
    last folders whole, as many as fit, with "…" for what is left out (the subject and the end of a path are what
    tell folders apart); anything else keeps its end after "…"."""
    if len(label) <= limit:
        return label
    parts = label.split("/")
    at = next((i for i, part in enumerate(parts) if part.startswith(("sub-", "sub_"))), None)
    if at is not None and at < len(parts) - 1:
        head = ("…/" if at else "") + parts[at] + "/"
        tail = parts[at + 1:]
        kept: list[str] = []
        while tail and len(head + "…/" + "/".join([tail[-1], *kept])) <= limit:
            kept.insert(0, tail.pop())
        if kept:
            return head + ("…/" if tail else "") + "/".join(kept)
    kept = []
    while parts and len("…/" + "/".join([parts[-1], *kept])) <= limit:
        kept.insert(0, parts.pop())
    if kept:
        return "…/" + "/".join(kept)
    return "…" + label[-(limit - 1):]


def _bytes(amount: float) -> str:
    return size(int(amount))


def bar_chart(rows: Sequence[tuple[str, float, float]], title: str, value: str = "total",
              value_text: Callable[[float], str] = _bytes) -> dict[str, Any]:
    """The geometry of horizontal stacked bars (kept, junk), one per row, each under its label; x positions and
    widths are percentages, so the chart stretches to any screen while its text keeps its size. ``value``:
    what the number after each bar says - "total" or "junk" (say what the bars are sorted by)."""
    largest = max((keep + junk for _, keep, junk in rows), default=0) or 1
    bars = []
    for index, (label, keep, junk) in enumerate(rows):
        y = index * ROW_HEIGHT
        keep_width, junk_width = BAR_SHARE * keep / largest, BAR_SHARE * junk / largest
        shown = value_text(junk) + " junk" if value == "junk" else value_text(keep + junk)
        bars.append({
            "label": short_label(label), "full": label, "value": shown,
            "tooltip": f"{label}: {value_text(keep)} kept, {value_text(junk)} junk",
            "keep": keep, "junk": junk, "label_y": y + 12, "bar_y": y + 16, "value_y": y + 27,
            "keep_width": f"{max(keep_width, 0.2):.2f}%", "junk_x": f"{keep_width:.2f}%",
            "junk_width": f"{max(junk_width, 0.2):.2f}%", "value_x": f"{keep_width + junk_width + 1:.2f}%",
        })
    return {"title": title, "bars": bars, "height": ROW_HEIGHT * len(rows), "bar_height": 14}


def embed_json(data: dict[str, Any]) -> Markup:
    """The report data as JSON that is safe inside <script>: <, > and & written as \\u escapes, so no name
    (a path holding "</script>" or "<!--<script") can end the block or change how the page parses."""
    return Markup(output_json(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                  .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _page(template: str, title: str, data: dict[str, Any], **view: Any) -> str:
    return _environment().get_template(template).render(title=title, data=data, embedded=embed_json(data), **view)


def here(counts: dict[str, Any]) -> tuple[int, int]:
    """(kept, junk) bytes on this disk of a row of counts: annexed content elsewhere only is not drawn as if it
    were stored here (junk stored in git is: it takes space here, though a clean leaves it)."""
    junk = counts["junk_bytes"] - counts["junk_elsewhere_bytes"]
    return counts["keep_bytes"] - (counts["elsewhere_bytes"] - counts["junk_elsewhere_bytes"]), junk


def render_html(data: dict[str, Any]) -> str:
    """The dataset report (``report_data``) as a page."""
    dataset = data["dataset"]
    subjects = [row for row in data["by_subject"] if row["subject"] is not None]
    by_junk = sorted(subjects, key=lambda row: (-row["junk_bytes"], -row["bytes"], row["subject"]))
    shared = [row for row in data["by_subject"] if row["subject"] is None]
    subject_rows = [(f"sub-{row['subject']}", *here(row)) for row in by_junk[:CHARTED_SUBJECTS]]
    subject_rows += [("files of no subject", *here(row)) for row in shared]
    on_disk = " on this disk" if data["totals"]["elsewhere_bytes"] else ""
    top = os.path.dirname(dataset["path"].rstrip("/"))
    folders = [(os.path.relpath(row["folder"], top) if row["folder"].startswith(top + "/") else row["folder"], 0,
                row["junk_bytes"]) for row in data["largest_junk_folders"]]
    return _page(
        "report.html.j2", f"fmriprep-cleanup report: {dataset['path']}", data,
        layout=LAYOUT_NAMES[dataset["layout"]], subjects=subjects, charted_subjects=CHARTED_SUBJECTS,
        category_chart=bar_chart([(row["category"], *here(row)) for row in data["by_category"]],
                                 f"kept and junk bytes{on_disk} per category"),
        subject_chart=bar_chart(subject_rows, f"kept and junk bytes{on_disk} per subject", "junk"),
        folder_chart=bar_chart(folders, "junk bytes in the largest folders", "junk"),
        status_lines=[line for line in map(status_line, data["subjects_by_status"]) if line],
        energy_by_category={row["category"]: row for row in data["energy"]["by_category"]},
        compute_chart=compute_chart(data["compute"]),
        retention_chart=bar_chart([(f"day {row['day']:g}", row["dataset_bytes"], row["archive_bytes"])
                                   for row in data["retention"]["timeline"]], "bytes in the dataset and in archives",
                                  ) if data.get("retention") else None,
        made=time.strftime("%Y-%m-%d %H:%M %Z"),
    )


def compute_chart(compute: dict[str, Any]) -> dict[str, Any]:
    """Per subject, one bar for its compute (kgCO2e, all recorded runs) and one for a year of keeping its files."""
    rows: list[tuple[str, float, float]] = []
    for row in compute["subjects"][:CHARTED_SUBJECTS]:
        if row["compute_kgco2e"] is not None:
            rows.append((f"sub-{row['subject']}: compute", 0, row["compute_kgco2e"]))
        rows.append((f"sub-{row['subject']}: keeping it a year", row["storage_kgco2e_per_year"], 0))
    return bar_chart(rows, "kgCO2e of compute and of a year of storage per subject",
                     value_text=lambda kg: f"{number(kg)} kgCO2e")


def render_audit_html(data: dict[str, Any]) -> str:
    """The site overview (``audit_data``): every dataset below the audited roots, largest reclaimable first."""
    rows = data["datasets"]
    chart = bar_chart([(row["path"], row["bytes_here"] - row["junk_bytes"], row["junk_bytes"]) for row in rows],
                      "kept and reclaimable bytes on this disk per dataset", "junk")
    return _page("audit.html.j2", "fmriprep-cleanup site audit", data, dataset_chart=chart,
                 made=time.strftime("%Y-%m-%d %H:%M %Z"))


def render_history_html(data: dict[str, Any]) -> str:
    """The run history (``history_data``): space reclaimed and carbon avoided per month, and every run."""
    months: dict[str, list[float]] = {}
    for run in data["runs"]:
        if run["mode"] in MODE_WORDS and MODE_WORDS[run["mode"]].changes_files:
            month = months.setdefault(run["started"][:7], [0, 0])
            month[0] += run["bytes"]
            month[1] += run["kgco2e_per_year"]
    return _page(
        "history.html.j2", "fmriprep-cleanup run history", data,
        bytes_chart=bar_chart([(month, 0, values[0]) for month, values in sorted(months.items())],
                              "space reclaimed per month"),
        carbon_chart=bar_chart([(month, 0, values[1]) for month, values in sorted(months.items())],
                               "kgCO2e per year avoided, per month", value_text=lambda kg: f"{number(kg)} kg"),
        made=time.strftime("%Y-%m-%d %H:%M %Z"),
    )
