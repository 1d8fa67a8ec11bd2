"""The HTML report: one self-contained file to open offline, print or send to a colleague.

No network, scripts, fonts or stylesheets from elsewhere: CSS is inline and the
charts are inline SVG. It is rendered from the same dictionary as the JSON
report (which it also carries, as inert JSON data, for anyone who wants the
exact numbers), so the two never disagree.
"""

from __future__ import annotations

import os
import time
from html import escape
from typing import Any

from .formats import strict_json
from .report import STATUS_LINES, number, share, size

KEEP_COLOUR = "#4c78a8"
JUNK_COLOUR = "#e45756"
CHART_WIDTH = 760
LABEL_WIDTH = 250
VALUE_WIDTH = 90

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #222;
       max-width: 980px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.meta { color: #555; margin: .2em 0; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; margin: 1.5em 0; }
.card { flex: 1 1 200px; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; }
.card .value { font-size: 1.6em; font-weight: 600; }
.card .label { color: #555; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
th, td { text-align: right; padding: .25em .5em; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
td.source { text-align: left; color: #555; font-size: .9em; }
pre { background: #f6f6f6; padding: .6em; white-space: pre-wrap; word-break: break-all; }
.legend span { display: inline-block; width: .9em; height: .9em; vertical-align: middle; margin: 0 .3em 0 1em; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; fill: #222; }
.warning { color: #8a4b00; }
@media print { body { margin: 0; max-width: none; } section { break-inside: avoid; } section.long { break-inside: auto; } }
"""


def _bar_chart(rows: list[tuple[str, int, int]], title: str, row_height: int = 20, label_width: int = LABEL_WIDTH) -> str:
    """Horizontal stacked bars (kept, junk), scaled to the largest total; one row per item."""
    if not rows:
        return "<p>Nothing to show.</p>"
    largest = max(keep + junk for _, keep, junk in rows) or 1
    bar_width = CHART_WIDTH - label_width - VALUE_WIDTH
    max_label = label_width // 6
    height = row_height * len(rows) + 4
    font = "" if row_height >= 16 else f' style="font-size:{max(7, row_height - 3)}px"'
    parts = [f'<svg width="{CHART_WIDTH}" height="{height}" '
             f'viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="{escape(title)}">']
    for index, (label, keep, junk) in enumerate(rows):
        y = 2 + index * row_height
        keep_width = bar_width * keep / largest
        junk_width = bar_width * junk / largest
        bar_height = max(2, row_height - 4)
        short = label if len(label) <= max_label else "…" + label[-(max_label - 1):]
        parts.append(f'<text x="{label_width - 6}" y="{y + row_height * 0.7:.1f}" text-anchor="end"{font}>{escape(short)}</text>')
        tooltip = escape(f"{label}: {size(keep)} kept, {size(junk)} junk")
        if keep:
            parts.append(f'<rect class="keep" x="{label_width}" y="{y}" width="{max(keep_width, 1):.2f}" height="{bar_height}" '
                         f'fill="{KEEP_COLOUR}"><title>{tooltip}</title></rect>')
        if junk:
            parts.append(f'<rect class="junk" x="{label_width + keep_width:.2f}" y="{y}" width="{max(junk_width, 1):.2f}" '
                         f'height="{bar_height}" fill="{JUNK_COLOUR}"><title>{tooltip}</title></rect>')
        parts.append(f'<text x="{label_width + keep_width + junk_width + 6:.2f}" y="{y + row_height * 0.7:.1f}"{font}>'
                     f'{escape(size(keep + junk))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    return (f'<p class="legend"><span style="background:{KEEP_COLOUR}"></span>kept'
            f'<span style="background:{JUNK_COLOUR}"></span>junk</p>')


def _card(value: str, label: str, key: str, exact: float | int) -> str:
    return (f'<div class="card"><div class="value" data-key="{key}" data-value="{exact}">{escape(value)}</div>'
            f'<div class="label">{escape(label)}</div></div>')


def embed_json(data: dict[str, Any]) -> str:
    """The report data as JSON that is safe inside <script>: <, > and & written as \\u escapes, so no name
    (a path holding "</script>" or "<!--<script") can end the block or change how the page parses."""
    return (strict_json(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _page(title: str, body: str, data: dict[str, Any]) -> str:
    """A whole self-contained page: inline style, the body, and the report data as inert JSON."""
    embedded = embed_json(data)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
{body}
<script type="application/json" id="report-data">{embedded}</script>
</body>
</html>
"""


def render_html(data: dict[str, Any]) -> str:
    dataset, totals, energy = data["dataset"], data["totals"], data["energy"]
    junk = energy["junk"]
    layout = {"bids": "BIDS layout", "legacy": "legacy layout", "workdir": "working directory only"}[dataset["layout"]]
    title = f"fmriprep-cleanup report: {dataset['path']}"
    subjects = sorted(data["by_subject"], key=lambda row: (-row["junk_bytes"], -row["bytes"], row["subject"] or ""))
    subject_rows = [(f"sub-{row['subject']}" if row["subject"] is not None else "(no subject)", row["keep_bytes"], row["junk_bytes"])
                    for row in subjects]
    energy_by_category = {row["category"]: row for row in energy["by_category"]}
    category_table = "".join(
        f'<tr data-category="{escape(row["category"])}"><td>{escape(row["category"])}</td>'
        f'<td data-files="{row["files"]}">{row["files"]:,}</td>'
        f'<td data-bytes="{row["bytes"]}">{escape(size(row["bytes"]))}</td>'
        f'<td data-keep-bytes="{row["keep_bytes"]}">{escape(size(row["keep_bytes"]))}</td>'
        f'<td data-junk-bytes="{row["junk_bytes"]}">{escape(size(row["junk_bytes"]))}</td>'
        f'<td>{share(row["junk_bytes"], row["bytes"])}</td>'
        f'<td data-junk-kwh="{energy_by_category[row["category"]]["junk_kwh_per_year"]}">'
        f'{number(energy_by_category[row["category"]]["junk_kwh_per_year"])}</td>'
        f'<td data-junk-kg="{energy_by_category[row["category"]]["junk_kgco2e_per_year"]}">'
        f'{number(energy_by_category[row["category"]]["junk_kgco2e_per_year"])}</td></tr>'
        for row in data["by_category"]
    )
    assumptions = energy["assumptions"]
    assumption_rows = "".join(
        f'<tr><td>{escape(label)}</td><td data-assumption="{name}">{assumptions[name]["value"]:g}</td>'
        f'<td class="source">{escape(assumptions[name]["source"])}</td></tr>'
        for name, label in (("watts_per_tb", "Power per TB stored (W)"), ("pue", "Data-centre PUE"),
                            ("copies", "Copies kept"), ("carbon_intensity", "Carbon intensity (gCO2e/kWh)"),
                            ("embodied_kg_per_tb", "Embodied carbon (kgCO2e per TB)"), ("lifetime_years", "Drive lifetime (years)"))
    )
    warnings = "".join(f'<p class="warning">warning: {escape(w)}</p>' for w in data["warnings"])
    left = data.get("not_fmriprep", [])
    if left:
        warnings += ('<p class="meta">Left alone, not fMRIPrep\'s (in the working directory\'s folder, never junk): '
                     + ", ".join(f'{escape(row["path"])} ({escape(size(row["bytes"]))})' for row in left[:10])
                     + (f" and {len(left) - 10} more" if len(left) > 10 else "") + ".</p>")
    status_rows = "".join(
        f'<tr data-status="{escape(row["status"])}"><td>{escape(row["status"])}</td><td>{row["subjects"]}</td>'
        f'<td data-bytes="{row["bytes"]}">{escape(size(row["bytes"]))}</td>'
        f'<td data-workdir-bytes="{row["workdir_bytes"]}">{escape(size(row["workdir_bytes"]))}</td>'
        f'<td data-workdir-kept="{row["workdir_kept_bytes"]}">{escape(size(row["workdir_kept_bytes"]))}</td></tr>'
        for row in data.get("subjects_by_status", []))
    status_lines = "".join(
        f'<p>{row["subjects"]} {escape(row["status"])} subject{"" if row["subjects"] == 1 else "s"}: '
        f'{escape(STATUS_LINES[row["status"]].format(kept=size(row["workdir_kept_bytes"])))}</p>'
        for row in data.get("subjects_by_status", []) if row["status"] in STATUS_LINES and row["subjects"])
    status_section = (f'<section><h2>Subjects by fMRIPrep run status</h2>{status_lines}<table><thead><tr><th>Status</th>'
                      f'<th>Subjects</th><th>Total</th><th>Working directory</th><th>Working directory kept</th></tr></thead>'
                      f'<tbody>{status_rows}</tbody></table></section>') if status_rows else ""
    top = os.path.dirname(dataset["path"].rstrip("/"))
    folders = [(os.path.relpath(row["folder"], top) if row["folder"].startswith(top + "/") else row["folder"], 0, row["junk_bytes"])
               for row in data["largest_junk_folders"]]
    row_height = 20 if len(subject_rows) <= 50 else 12
    body = f"""<header>
<h1>What fMRIPrep left on disk</h1>
<p class="meta">{escape(dataset['path'])}</p>
<p class="meta">fMRIPrep {escape(dataset['fmriprep_version'] or 'unknown version')} · {layout} · rules: {escape(', '.join(data['rules']))}</p>
</header>
<section class="cards">
{_card(size(totals['junk_bytes']), f"reclaimable, {share(totals['junk_bytes'], totals['bytes'])} of {size(totals['bytes'])}", "junk_bytes", totals['junk_bytes'])}
{_card(f"{totals['junk_files']:,}", f"junk files of {totals['files']:,}", "junk_files", totals['junk_files'])}
{_card(number(junk['kwh_per_year']) + " kWh", "energy avoided per year", "junk_kwh_per_year", junk['kwh_per_year'])}
{_card(number(junk['kgco2e_per_year']) + " kg", f"CO2e avoided per year (≈ {number(junk['km_by_car'])} km by car, {number(junk['tree_months'])} tree-months)", "junk_kgco2e_per_year", junk['kgco2e_per_year'])}
</section>
{warnings}
<section>
<h2>Kept and junk by category</h2>
{_legend()}
{_bar_chart([(row['category'], row['keep_bytes'], row['junk_bytes']) for row in data['by_category']], 'kept and junk bytes per category')}
</section>
<section class="long">
<h2>Per subject ({len(subject_rows)}), most junk first</h2>
{_legend()}
{_bar_chart(subject_rows, 'kept and junk bytes per subject', row_height)}
</section>
{status_section}
<section>
<h2>Largest junk folders</h2>
{_bar_chart(folders, 'junk bytes in the largest folders', label_width=470)}
</section>
<section>
<h2>Categories</h2>
<table>
<thead><tr><th>Category</th><th>Files</th><th>Total</th><th>Kept</th><th>Junk</th><th>Junk %</th><th>Junk kWh/yr</th><th>Junk kgCO2e/yr</th></tr></thead>
<tbody>{category_table}</tbody>
<tfoot><tr><th>Total</th><th>{totals['files']:,}</th><th data-bytes="{totals['bytes']}">{escape(size(totals['bytes']))}</th>
<th>{escape(size(totals['keep_bytes']))}</th><th>{escape(size(totals['junk_bytes']))}</th><th>{share(totals['junk_bytes'], totals['bytes'])}</th>
<th>{number(junk['kwh_per_year'])}</th><th>{number(junk['kgco2e_per_year'])}</th></tr></tfoot>
</table>
</section>
<section>
<h2>Assumptions and sources</h2>
<p>Storage profile <strong>{escape(assumptions['profile'])}</strong>{' · grid of ' + escape(assumptions['country']) if assumptions['country'] else ''}.
{escape(assumptions['formula'])}; TB = {escape(assumptions['terabyte'])}.</p>
<table><thead><tr><th>Parameter</th><th>Value</th><th>Source</th></tr></thead><tbody>{assumption_rows}</tbody></table>
<p class="meta">Equivalences: {escape(junk['equivalences_source'])}.</p>
</section>
<section>
<h2>How this report was made</h2>
<pre>{escape(data.get('command') or '(called from Python)')}</pre>
<p class="meta">fmriprep-cleanup {escape(data['tool']['version'])} · {escape(time.strftime('%Y-%m-%d %H:%M %Z'))} · nothing was changed on disk.</p>
</section>
"""
    return _page(title, body, data)


def render_audit_html(data: dict[str, Any]) -> str:
    """The site overview: every dataset below the audited roots, largest reclaimable first."""
    rows = data["datasets"]
    chart = _bar_chart([(row["path"], row["bytes"] - row["junk_bytes"], row["junk_bytes"]) for row in rows],
                       "kept and reclaimable bytes per dataset", 20 if len(rows) <= 50 else 12, label_width=420)
    table_rows = "".join(
        f'<tr><td>{escape(row["path"])}</td><td>{escape(row["owner"])}</td><td>{escape(row["fmriprep_version"] or "?")}</td>'
        f'<td>{row["subjects"]}</td><td data-bytes="{row["bytes"]}">{escape(size(row["bytes"]))}</td>'
        f'<td data-junk-bytes="{row["junk_bytes"]}">{escape(size(row["junk_bytes"]))}</td>'
        f'<td>{share(row["junk_bytes"], row["bytes"])}</td><td>{number(row["kwh_per_year_avoidable"])}</td>'
        f'<td>{number(row["kgco2e_per_year_avoidable"])}</td></tr>'
        for row in rows)
    totals = data["totals"]
    body = f"""<h1>fMRIPrep outputs on this storage</h1>
<p class="meta">{escape(', '.join(data['roots']))} · rules: {escape(', '.join(data['rules']))}</p>
<section class="cards">
{_card(size(totals['junk_bytes']), f"reclaimable of {size(totals['bytes'])}", "junk_bytes", totals['junk_bytes'])}
{_card(str(len(rows)), "fMRIPrep datasets", "datasets", len(rows))}
{_card(number(totals['kgco2e_per_year_avoidable']) + " kg", "CO2e avoidable per year", "kgco2e", totals['kgco2e_per_year_avoidable'])}
</section>
<section class="long"><h2>Datasets, most reclaimable first</h2>{_legend()}{chart}</section>
<section class="long"><h2>Table</h2><table><thead><tr><th>Dataset</th><th>Owner</th><th>fMRIPrep</th><th>Subjects</th>
<th>Total</th><th>Reclaimable</th><th>Share</th><th>kWh/yr</th><th>kgCO2e/yr</th></tr></thead><tbody>{table_rows}</tbody></table></section>
<section><h2>Assumptions</h2><p>{escape(data['energy_assumptions']['formula'])}</p></section>
"""
    return _page("fmriprep-cleanup site audit", body, data)
