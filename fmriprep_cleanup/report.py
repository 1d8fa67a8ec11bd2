"""Reports: one dictionary (the JSON contract) built from a plan's summary, rendered as
text, JSON or CSV; and the per-file plan written as TSV or JSON lines.

Every format renders the same ``report_data`` dictionary, so the numbers in
the text table, the CSV and the JSON can never disagree.
"""

from __future__ import annotations

import csv
import io
import json
from typing import IO, Any, Iterable

import humanize

from . import __version__
from .discover import Dataset
from .plan import COUNT_FIELDS, PlannedFile, Summary
from .rulesets import RuleSet

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
) -> dict[str, Any]:
    """The JSON report. Its fields are a contract with users' scripts: add, never rename."""
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
        },
        "rules": list(ruleset.names),
        "participant_labels": sorted(participant_labels) if participant_labels else None,
        "totals": summary.totals.as_dict(),
        "by_category": [{"category": name, **counts.as_dict()} for name, counts in _sorted_categories(summary)],
        "by_subject": [{"subject": name, **counts.as_dict()} for name, counts in _sorted_subjects(summary)],
        "warnings": list(dataset.notes) + list(warnings),
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

    totals = data["totals"]
    lines.append(
        f"Reclaimable: {size(totals['junk_bytes'])} of {size(totals['bytes'])} "
        f"({share(totals['junk_bytes'], totals['bytes'])}) in {files(totals['junk_files'])}. "
        "Nothing was changed."
    )
    for warning in data["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines) + "\n"


def render_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def render_csv(data: dict[str, Any]) -> str:
    """One table: the totals row, then per category, then per subject."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "key", *COUNT_FIELDS])
    writer.writerow(["total", "", *(data["totals"][f] for f in COUNT_FIELDS)])
    for row in data["by_category"]:
        writer.writerow(["category", row["category"], *(row[f] for f in COUNT_FIELDS)])
    for row in data["by_subject"]:
        writer.writerow(["subject", row["subject"] or "", *(row[f] for f in COUNT_FIELDS)])
    return out.getvalue()


RENDERERS = {"text": render_text, "json": render_json, "csv": render_csv}


# --- the per-file plan ------------------------------------------------------------------------

PLAN_COLUMNS = ("action", "category", "rule_id", "size", "path")
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def write_plan(rows: Iterable[PlannedFile], stream: IO[str], fmt: str, only: str | None = None) -> int:
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
                json.dumps(
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
                   archives: list[str] | None = None) -> str:
    """The end-of-run summary: what was (or would be) removed, skipped and failed, by reason."""
    verb = "Would remove" if dry_run else ("Archived and removed" if outcome["mode"] == "archive" else "Removed")
    lines = [f"{verb} {files(outcome['files'])} ({size(outcome['bytes'])})"
             + (f" and {humanize.intcomma(outcome['removed_dirs'])} emptied folders." if outcome["removed_dirs"] else ".")]
    if outcome["by_category"]:
        rows = [[row["category"], humanize.intcomma(row["files"]), size(row["bytes"])] for row in outcome["by_category"]]
        lines += ["  " + line for line in table(["Category", "Files", "Bytes"], rows, "lrr")]
    for title, key in (("Skipped", "skipped"), ("Failed", "failed")):
        for row in outcome[key]:
            lines.append(f"{title} {files(row['files'])} ({size(row['bytes'])}): {row['reason']}")
    for message in outcome["failure_messages"]:
        lines.append(f"  {message}")
    for archive in archives or []:
        lines.append(f"Archive: {archive}")
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
