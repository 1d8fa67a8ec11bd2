"""Reports: one dictionary (the JSON contract) built from a plan's summary, rendered as
text, JSON or CSV; and the per-file plan written as TSV or JSON lines.

Every format renders the same ``report_data`` dictionary, so the numbers in
the text table, the CSV and the JSON can never disagree.
"""

from __future__ import annotations

from typing import IO, Any, Iterable

import humanize

from . import __version__
from .formats import csv_line, strict_json
from .discover import Dataset
from .energy import Assumptions, assumptions, energy_report
from .plan import COUNT_FIELDS, PlannedFile, Summary
from .rulesets import SUBJECT_STATUSES, RuleSet

SCHEMA_VERSION = 1


def _sorted_categories(summary: Summary) -> list[tuple[str, Any]]:
    return sorted(summary.by_category.items(), key=lambda item: (-item[1].junk_bytes, -item[1].bytes, item[0]))


def _sorted_subjects(summary: Summary) -> list[tuple[str | None, Any]]:
    return sorted(summary.by_subject.items(), key=lambda item: (item[0] is None, item[0] or ""))


def report_data(
    dataset: Dataset,
    ruleset: RuleSet,
    summary: Summary,
    warnings: list[str],
    participant_labels: Iterable[str] | None = None,
    energy_model: Assumptions | None = None,
    command: str | None = None,
    statuses: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report. Its fields are a contract with users' scripts: add, never rename.

    Every other format (text, CSV, HTML) is rendered from this dictionary. ``warnings``: everything a person
    should know (Plan.all_warnings: discovery's notes, unreadable folders, subjects' evidence problems).
    """
    by_category = [{"category": name, **counts.as_dict()} for name, counts in _sorted_categories(summary)]
    totals = summary.totals.as_dict()
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "fmriprep-cleanup", "version": __version__},
        "dataset": {
            "path": dataset.path,
            "layout": dataset.layout,
            "fmriprep_version": dataset.fmriprep_version,
            "derivatives": dataset.derivatives,
            "freesurfer": dataset.freesurfer,
            "workdirs": list(dataset.workdirs),
            "notes": list(dataset.notes),
        },
        "rules": list(ruleset.names),
        "participant_labels": sorted(participant_labels) if participant_labels else None,
        "totals": totals,
        "by_category": by_category,
        "by_subject": [{"subject": name, **counts.as_dict()} for name, counts in _sorted_subjects(summary)],
        "largest_junk_folders": [{"folder": folder, "junk_bytes": nbytes} for folder, nbytes in summary.largest_junk_folders()],
        "energy": energy_report(energy_model or assumptions(), totals, by_category),
        "subjects_by_status": subjects_by_status(summary, statuses or {}),
        "not_fmriprep": [{"path": path, "files": counts[0], "bytes": counts[1]}
                         for path, counts in sorted(summary.left_alone.items(), key=lambda item: (-item[1][1], item[0]))],
        "command": command,
        "warnings": list(warnings),
    }


def subjects_by_status(summary: Summary, statuses: dict[str, Any]) -> list[dict[str, Any]]:
    """Subjects counted by run status, with their files' bytes and their kept working-directory bytes."""
    rows: dict[str, dict[str, Any]] = {}
    for label, status in statuses.items():
        row = rows.setdefault(status.status, {"status": status.status, "subjects": 0, "bytes": 0, "junk_bytes": 0,
                                              "workdir_bytes": 0, "workdir_kept_bytes": 0})
        counts = summary.by_subject.get(label)
        row["subjects"] += 1
        if counts is not None:
            row["bytes"] += counts.bytes
            row["junk_bytes"] += counts.junk_bytes
        row["workdir_bytes"] += summary.bytes_by_subject_scope.get((label, "workdir"), 0)
        row["workdir_kept_bytes"] += summary.kept_by_subject_scope.get((label, "workdir"), 0)
    order = {name: index for index, name in enumerate(SUBJECT_STATUSES)}
    return sorted(rows.values(), key=lambda row: order.get(row["status"], 99))


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


def table(headers: list[str], rows: list[list[str]], align: str) -> list[str]:
    """Aligned columns; ``align`` has one letter per column, l or r."""
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        parts = [str(c).ljust(w) if a == "l" else str(c).rjust(w) for c, w, a in zip(cells, widths, align)]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(row) for row in rows]


def _count_row(key: str, counts: dict[str, int]) -> list[str]:
    return [
        key,
        humanize.intcomma(counts["files"]),
        size(counts["bytes"]),
        size(counts["keep_bytes"]),
        size(counts["junk_bytes"]),
        share(counts["junk_bytes"], counts["bytes"]),
    ]


def render_text(data: dict[str, Any]) -> str:
    dataset = data["dataset"]
    version = dataset["fmriprep_version"] or "unknown version"
    layout = {"bids": "BIDS layout", "legacy": "legacy layout", "workdir": "working directory only"}[dataset["layout"]]
    lines = [f"fMRIPrep {version} · {layout} · {dataset['path']}"]
    if dataset["derivatives"]:
        lines.append(f"  derivatives  {dataset['derivatives']}")
    lines.append(f"  FreeSurfer   {dataset['freesurfer'] or '(not found)'}")
    for workdir in dataset["workdirs"] or ["(not found; give --work-dir to include it)"]:
        lines.append(f"  work dir     {workdir}")
    for note in dataset.get("notes", []):
        lines.append(f"  note: {note}")
    lines.append(f"Rules: {', '.join(data['rules'])}")
    if data["participant_labels"]:
        lines.append(f"Participants: {', '.join('sub-' + label for label in data['participant_labels'])}")
    lines.append("")

    headers = ["Files", "Total", "Keep", "Junk", "Junk %"]
    category_rows = [_count_row(row["category"], row) for row in data["by_category"]]
    category_rows.append(_count_row("Total", data["totals"]))
    lines += table(["Category"] + headers, category_rows, "lrrrrr")
    lines.append("")
    subject_rows = [
        _count_row(f"sub-{row['subject']}" if row["subject"] is not None else "(no subject)", row)
        for row in data["by_subject"]
    ]
    lines += table(["Subject"] + headers, subject_rows, "lrrrrr")
    lines.append("")

    if data["subjects_by_status"]:
        status_rows = [[row["status"], str(row["subjects"]), size(row["bytes"]), size(row["workdir_bytes"]),
                        size(row["workdir_kept_bytes"])] for row in data["subjects_by_status"]]
        lines += table(["Run status", "Subjects", "Total", "Work dir", "Work dir kept"], status_rows, "lrrrr")
        for row in data["subjects_by_status"]:
            if row["status"] in STATUS_LINES and row["subjects"]:
                noun = "subject" if row["subjects"] == 1 else "subjects"
                lines.append(f"{row['subjects']} {row['status']} {noun}: "
                             + STATUS_LINES[row["status"]].format(kept=size(row["workdir_kept_bytes"])))
        lines.append("")
    totals = data["totals"]
    lines.append(
        f"Reclaimable: {size(totals['junk_bytes'])} of {size(totals['bytes'])} "
        f"({share(totals['junk_bytes'], totals['bytes'])}) in {files(totals['junk_files'])}. "
        "Nothing was changed."
    )
    if data["not_fmriprep"]:
        left = data["not_fmriprep"]
        total_files, total_bytes = sum(row["files"] for row in left), sum(row["bytes"] for row in left)
        shown = ", ".join(f"{row['path']} ({size(row['bytes'])})" for row in left[:5])
        more = f" and {len(left) - 5} more" if len(left) > 5 else ""
        lines.append(f"Left alone, not fMRIPrep's: {files(total_files)} ({size(total_bytes)}) in the working "
                     f"directory's folder: {shown}{more}.")
    lines.append("")
    lines += energy_lines(data["energy"])
    return "\n".join(lines) + "\n"


def number(value: float) -> str:
    """A yearly figure for people: three significant digits, thousands separated."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return humanize.intcomma(round(value))
    return f"{value:.3g}"


def energy_lines(energy: dict[str, Any]) -> list[str]:
    """The energy and carbon block of the text report, assumptions on one line."""
    a = energy["assumptions"]
    where = f" ({a['country']})" if a["country"] else ""
    assumptions_line = (f"{a['profile']}: {a['watts_per_tb']['value']:g} W/TB, PUE {a['pue']['value']:g}, "
                        f"{a['copies']['value']:g} copies, {a['carbon_intensity']['value']:g} gCO2e/kWh{where}, "
                        f"{a['embodied_kg_per_tb']['value']:g} kgCO2e/TB embodied over {a['lifetime_years']['value']:g} years")
    rows = []
    for label, row in (("Everything stored", energy["total"]), ("Junk (avoidable)", energy["junk"])):
        rows.append([label, size(row["bytes"]), number(row["kwh_per_year"]), number(row["operational_kgco2e_per_year"]),
                     number(row["embodied_kgco2e_per_year"]), number(row["kgco2e_per_year"])])
    junk = energy["junk"]
    return (
        ["Energy and carbon per year of storage"]
        + table(["", "Size", "kWh/yr", "Operational kgCO2e/yr", "Embodied kgCO2e/yr", "Total kgCO2e/yr"], rows, "lrrrrr")
        + [f"Cleaning up avoids {number(junk['kgco2e_per_year'])} kgCO2e a year: about {number(junk['km_by_car'])} km "
           f"by car or {number(junk['tree_months'])} tree-months.",
           f"Assumptions: {assumptions_line}. Sources: report --format json (energy.assumptions)."]
    )


def render_json(data: dict[str, Any]) -> str:
    return strict_json(data, indent=2) + "\n"


ENERGY_FIELDS = ("kwh_per_year", "kgco2e_per_year", "junk_kwh_per_year", "junk_kgco2e_per_year")


def render_csv(data: dict[str, Any]) -> str:
    """The per-category table (with its energy and carbon per year), then the total row."""
    lines = [csv_line(["category", *COUNT_FIELDS, *ENERGY_FIELDS])]
    energy = {row["category"]: row for row in data["energy"]["by_category"]}
    for row in data["by_category"]:
        lines.append(csv_line([row["category"], *(row[f] for f in COUNT_FIELDS),
                               *(energy[row["category"]][f] for f in ENERGY_FIELDS)]))
    total, junk = data["energy"]["total"], data["energy"]["junk"]
    lines.append(csv_line(["Total", *(data["totals"][f] for f in COUNT_FIELDS), total["kwh_per_year"],
                           total["kgco2e_per_year"], junk["kwh_per_year"], junk["kgco2e_per_year"]]))
    return "".join(lines)


RENDERERS = {"text": render_text, "json": render_json, "csv": render_csv}


# --- the per-file plan ------------------------------------------------------------------------

PLAN_COLUMNS = ("action", "category", "rule_id", "size", "path")
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def write_plan(rows: Iterable[PlannedFile], stream: IO[str], fmt: str, only: str | None = None) -> int:
    """Write one line per file; returns how many were written."""
    if fmt == "csv":
        return _write_plan_csv(rows, stream, only)
    return _write_plan_lines(rows, stream, fmt, only)


def _write_plan_csv(rows: Iterable[PlannedFile], stream: IO[str], only: str | None) -> int:
    stream.write(csv_line(PLAN_COLUMNS))
    written = 0
    for row in rows:
        if only is None or row.action == only:
            stream.write(csv_line((row.action, row.category, row.rule_id, row.size, row.path)))
            written += 1
    return written


def _write_plan_lines(rows: Iterable[PlannedFile], stream: IO[str], fmt: str, only: str | None = None) -> int:
    """Write one line per file; returns how many were written.

    TSV escapes backslash, tab and newline in names (as PostgreSQL's text format
    does), so every file is exactly one line.
    """
    written = 0
    batch: list[str] = []
    if fmt == "tsv":
        stream.write("\t".join(PLAN_COLUMNS) + "\n")
    for row in rows:
        if only is not None and row.action != only:
            continue
        if fmt == "tsv":
            batch.append(
                f"{row.action}\t{row.category.translate(_TSV_ESCAPES)}\t{row.rule_id.translate(_TSV_ESCAPES)}"
                f"\t{row.size}\t{row.path.translate(_TSV_ESCAPES)}\n"
            )
        else:
            batch.append(
                strict_json(
                    {
                        "action": row.action, "category": row.category, "rule_id": row.rule_id,
                        "size": row.size, "path": row.path, "scope": row.scope, "subject": row.subject,
                    }
                )
                + "\n"
            )
        written += 1
        if len(batch) >= 4096:
            stream.write("".join(batch))
            batch.clear()
    stream.write("".join(batch))
    return written


# --- what a clean run did ---------------------------------------------------------------------


def render_outcome(outcome: dict[str, Any], dry_run: bool, journal: str | None = None,
                   archives: list[str] | None = None, nothing_to_do: bool = False, recovered: int = 0) -> str:
    """The end-of-run summary: what was (or would be) removed, skipped and failed, by reason."""
    lines = []
    if nothing_to_do and not dry_run:
        lines.append("Nothing to do: no junk to act on; nothing was changed.")
    verb = "Would remove" if dry_run else ("Archived and removed" if outcome["mode"] == "archive" else "Removed")
    if not (nothing_to_do and not dry_run):
        lines.append(f"{verb} {files(outcome['files'])} ({size(outcome['bytes'])} freed)"
                     + (f" and {humanize.intcomma(outcome['removed_dirs'])} emptied folders." if outcome["removed_dirs"] else "."))
    if outcome["by_category"]:
        rows = [[row["category"], humanize.intcomma(row["files"]), size(row["bytes"])] for row in outcome["by_category"]]
        lines += ["  " + line for line in table(["Category", "Files", "Bytes"], rows, "lrr")]
    linked = outcome.get("hard_linked") or {}
    if linked.get("files"):
        lines.append(f"Of these, {files(linked['files'])} ({size(linked['bytes'])}) are {linked['note']}.")
    for title, key in (("Skipped", "skipped"), ("Failed", "failed")):
        for row in outcome[key]:
            lines.append(f"{title} {files(row['files'])} ({size(row['bytes'])}): {row['reason']}")
    for message in outcome["failure_messages"]:
        lines.append(f"  {message}")
    if recovered:
        lines.append(f"Recovered the record of {files(recovered)} an interrupted run had removed.")
    for archive in archives or []:
        lines.append(f"Archive: {archive}")
    if outcome.get("interrupted"):
        lines.append(f"Stopped early: {outcome['interrupted']}. Everything done so far is recorded; "
                     "run the same command again to finish.")
    if journal:
        lines.append(f"Journal: {journal}")
    if dry_run:
        lines.append("Dry run: nothing was changed.")
    return "\n".join(lines) + "\n"


def render_restore(outcome: dict[str, Any]) -> str:
    lines = [f"Restored {files(outcome['restored_files'])} ({size(outcome['restored_bytes'])}); "
             f"{files(outcome['already_present'])} already in place."]
    lines += [f"conflict: {message}" for message in outcome["conflicts"]]
    lines += [f"error: {message}" for message in outcome["errors"]]
    return "\n".join(lines) + "\n"
