"""The HTML report: one self-contained file to open offline, print or send to a colleague.

No network, scripts, fonts or stylesheets from elsewhere: CSS is inline and the charts are inline SVG. The
pages are Jinja2 templates (``templates/``) with autoescape on, so every name and number from the data is
escaped; the one value placed unescaped is the report data itself, as inert JSON (``embed_json``), for anyone
who wants the exact numbers. Rendered from the same dictionary as the JSON report, so the two never disagree.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jinja2
from markupsafe import Markup

from ..basics.formats import strict_json
from .people import LAYOUT_NAMES, count, number, share, size, status_line

KEEP_COLOUR = "#4c78a8"
JUNK_COLOUR = "#e45756"
CHART_WIDTH = 760
LABEL_WIDTH = 250
VALUE_WIDTH = 90
ASSUMPTION_LABELS = (("watts_per_tb", "Power per TB stored (W)"), ("pue", "Data-centre PUE"), ("copies", "Copies kept"),
                     ("carbon_intensity", "Carbon intensity (gCO2e/kWh)"),
                     ("embodied_kg_per_tb", "Embodied carbon (kgCO2e per TB)"), ("lifetime_years", "Drive lifetime (years)"))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("fmriprep_cleanup.report", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters.update(size=size, number=number, intcomma=count)
    environment.globals.update(share=share, keep_colour=KEEP_COLOUR, junk_colour=JUNK_COLOUR)
    return environment


def bar_chart(rows: list[tuple[str, int, int]], title: str, row_height: int = 20,
              label_width: int = LABEL_WIDTH) -> dict[str, Any]:
    """The geometry of horizontal stacked bars (kept, junk), scaled to the largest total; one bar per row."""
    largest = max((keep + junk for _, keep, junk in rows), default=0) or 1
    bar_width = CHART_WIDTH - label_width - VALUE_WIDTH
    max_label = label_width // 6
    bars = []
    for index, (label, keep, junk) in enumerate(rows):
        y = 2 + index * row_height
        keep_width, junk_width = bar_width * keep / largest, bar_width * junk / largest
        bars.append({
            "short": label if len(label) <= max_label else "…" + label[-(max_label - 1):],
            "tooltip": f"{label}: {size(keep)} kept, {size(junk)} junk",
            "keep": keep, "junk": junk, "total": keep + junk, "y": y, "text_y": f"{y + row_height * 0.7:.1f}",
            "keep_width": f"{max(keep_width, 1):.2f}", "junk_x": f"{label_width + keep_width:.2f}",
            "junk_width": f"{max(junk_width, 1):.2f}", "value_x": f"{label_width + keep_width + junk_width + 6:.2f}",
        })
    return {"title": title, "bars": bars, "width": CHART_WIDTH, "height": row_height * len(rows) + 4,
            "label_x": label_width - 6, "bar_x": label_width, "bar_height": max(2, row_height - 4),
            "font_size": None if row_height >= 16 else max(7, row_height - 3)}


def embed_json(data: dict[str, Any]) -> Markup:
    """The report data as JSON that is safe inside <script>: <, > and & written as \\u escapes, so no name
    (a path holding "</script>" or "<!--<script") can end the block or change how the page parses."""
    return Markup(strict_json(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                  .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _page(template: str, title: str, data: dict[str, Any], **view: Any) -> str:
    return _environment().get_template(template).render(title=title, data=data, embedded=embed_json(data), **view)


def render_html(data: dict[str, Any]) -> str:
    """The dataset report (``report_data``) as a page."""
    dataset = data["dataset"]
    subjects = sorted(data["by_subject"], key=lambda row: (-row["junk_bytes"], -row["bytes"], row["subject"] or ""))
    subject_rows = [(f"sub-{row['subject']}" if row["subject"] is not None else "(no subject)", row["keep_bytes"],
                     row["junk_bytes"]) for row in subjects]
    top = os.path.dirname(dataset["path"].rstrip("/"))
    folders = [(os.path.relpath(row["folder"], top) if row["folder"].startswith(top + "/") else row["folder"], 0,
                row["junk_bytes"]) for row in data["largest_junk_folders"]]
    return _page(
        "report.html.j2", f"fmriprep-cleanup report: {dataset['path']}", data,
        layout=LAYOUT_NAMES[dataset["layout"]],
        category_chart=bar_chart([(row["category"], row["keep_bytes"], row["junk_bytes"]) for row in data["by_category"]],
                                 "kept and junk bytes per category"),
        subject_chart=bar_chart(subject_rows, "kept and junk bytes per subject", 20 if len(subject_rows) <= 50 else 12),
        folder_chart=bar_chart(folders, "junk bytes in the largest folders", label_width=470),
        status_lines=[line for line in map(status_line, data["subjects_by_status"]) if line],
        energy_by_category={row["category"]: row for row in data["energy"]["by_category"]},
        assumption_labels=ASSUMPTION_LABELS, made=time.strftime("%Y-%m-%d %H:%M %Z"),
    )


def render_audit_html(data: dict[str, Any]) -> str:
    """The site overview (``audit_data``): every dataset below the audited roots, largest reclaimable first."""
    rows = data["datasets"]
    chart = bar_chart([(row["path"], row["bytes"] - row["junk_bytes"], row["junk_bytes"]) for row in rows],
                      "kept and reclaimable bytes per dataset", 20 if len(rows) <= 50 else 12, label_width=420)
    return _page("audit.html.j2", "fmriprep-cleanup site audit", data, dataset_chart=chart)
