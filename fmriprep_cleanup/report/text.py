"""Text for people and CSV for spreadsheets, rendered from the dictionaries in report.data: the report, the
subjects' run statuses, the site audit, the run history, and what a clean, restore or policy run did."""

from __future__ import annotations

import textwrap
import time
from typing import Any

from ..basics.annex import reclaimable
from ..basics.formats import csv_line, output_json
from ..basics.grouping import grouped_line
from ..plan.options import MODE_WORDS, Mode
from ..plan.summary import COUNT_FIELDS
from .people import (
    LAYOUT_NAMES,
    co2e_mass,
    count,
    energy_amount,
    files,
    fitted,
    folder_lines,
    number,
    rewritten_lines,
    share,
    size,
    status_line,
    table,
)


def _count_row(key: str, counts: dict[str, int], elsewhere: bool = False) -> list[str]:
    """A row of the category or subject table; ``elsewhere``: with its bytes not on this disk (annexed content
    elsewhere only) in a column of their own, after the total they are part of."""
    return [
        key,
        count(counts["files"]),
        size(counts["bytes"]),
        *([size(counts["elsewhere_bytes"])] if elsewhere else []),
        size(counts["keep_bytes"]),
        size(counts["junk_bytes"]),
        share(counts["junk_bytes"], counts["bytes"]),
    ]


SUBJECTS_SHOWN = 20  # a report lists this many subjects (the largest junk first) unless asked for all


def render_text(data: dict[str, Any], width: int | None = None, all_subjects: bool = False) -> str:
    """The report for people: where things are, keep and junk by category and subject, run statuses, energy.
    ``width``: the terminal's columns (long paths are shortened to fit; None: never); ``all_subjects``: list
    every subject, not only the SUBJECTS_SHOWN with the most junk."""
    lines = where_lines(data, width) + [""] + count_lines(data, width, all_subjects) + [""]
    if data["dataset"].get("nipoppy"):
        lines += nipoppy_lines(data["dataset"]["nipoppy"], width) + [""]
    if data["subjects_by_status"]:
        elsewhere = any(row["elsewhere_bytes"] for row in data["subjects_by_status"])
        status_rows = [[row["status"], str(row["subjects"]), size(row["bytes"]),
                        *([size(row["elsewhere_bytes"])] if elsewhere else []), size(row["workdir_bytes"]),
                        size(row["workdir_kept_bytes"])] for row in data["subjects_by_status"]]
        headers = ["Run status", "Subjects", "Total", *(["Elsewhere only"] if elsewhere else []), "Work dir",
                   "Work dir kept"]
        lines += table(headers, status_rows, "l" + "r" * (len(headers) - 1), width)
        lines += [line for line in map(status_line, data["subjects_by_status"]) if line]
        lines.append("")
    lines += reclaimable_lines(data) + [""]
    lines += energy_lines(data["energy"])
    lines += compute_lines(data["compute"], width)
    if data.get("regeneration") is not None:
        lines += regeneration_lines(data["regeneration"], width)
    if data.get("retention"):
        plan = data["retention"]
        rows = [[f"{row['day']:g}", size(row["dataset_bytes"]), size(row["archive_bytes"]), number(row["kgco2e_per_year"])]
                for row in plan["timeline"]]
        lines += ["", f"Retention plan of {plan['entry']!r} ({plan['policy']}), from today:"]
        lines += table(["Day", "In the dataset", "In archives", "kgCO2e/yr"], rows, "rrrr", width)
    return "\n".join(fitted(lines, width)) + "\n"


def where_lines(data: dict[str, Any], width: int | None) -> list[str]:
    """The dataset, its folders and how each was found, the rules and the participants."""
    dataset = data["dataset"]
    version = dataset["fmriprep_version"] or "unknown version"
    lines = [f"{dataset.get('pipeline', 'fMRIPrep')} {version} · {LAYOUT_NAMES[dataset['layout']]} · {dataset['path']}"]
    lines += folder_lines(dataset["folders"], dataset["notes"], width)
    if not dataset["freesurfer"]:
        lines.append("  (no FreeSurfer folder found)")
    if not dataset["workdirs"]:
        lines.append("  (no working directory found; give --work-dir to include it)")
    lines.append(f"Rules: {', '.join(data['rules'])}")
    if data["participant_labels"]:
        lines.append(f"Participants: {', '.join('sub-' + label for label in data['participant_labels'])}")
    return lines


def count_lines(data: dict[str, Any], width: int | None, all_subjects: bool) -> list[str]:
    """Keep and junk by category, then by subject (the SUBJECTS_SHOWN with the most junk, unless all)."""
    elsewhere = data["totals"]["elsewhere_bytes"] > 0  # a clone: part of the total is not on this disk
    headers = ["Files", "Total", *(["Elsewhere only"] if elsewhere else []), "Keep", "Junk", "Junk %"]
    align = "l" + "r" * len(headers)
    category_rows = [_count_row(row["category"], row, elsewhere) for row in data["by_category"]]
    category_rows.append(_count_row("Total", data["totals"], elsewhere))
    lines = table(["Category"] + headers, category_rows, align, width) + [""]
    subjects = [row for row in data["by_subject"] if row["subject"] is not None]
    shown = subjects
    if not all_subjects and len(subjects) > SUBJECTS_SHOWN:
        shown = sorted(sorted(subjects, key=lambda row: -row["junk_bytes"])[:SUBJECTS_SHOWN],
                       key=lambda row: row["subject"])
    subject_rows = [_count_row(f"sub-{row['subject']}", row, elsewhere) for row in shown]
    subject_rows += [_count_row("(no subject)", row, elsewhere) for row in data["by_subject"] if row["subject"] is None]
    lines += table(["Subject"] + headers, subject_rows, align, width)
    if len(shown) < len(subjects):
        rest = [row for row in subjects if row not in shown]
        lines.append(f"... and {count(len(rest))} more subjects ({size(sum(row['bytes'] for row in rest))}, "
                     f"{size(sum(row['junk_bytes'] for row in rest))} junk): the {SUBJECTS_SHOWN} with the most junk "
                     "are shown; --all lists every subject")
    return lines


def nipoppy_lines(study: dict[str, Any], width: int | None) -> list[str]:
    """A Nipoppy study's pipeline, version and steps: the output and the working folders left behind."""
    rows = [[row["pipeline"], row["version"], row["step"] or "-", row["folder"],
             count(row["folders"]) + (f" ({count(row['kept_folders'])} kept)" if row["kept_folders"] else ""),
             count(row["files"]), size(row["bytes"]), size(row["reclaimable_bytes"])] for row in study["steps"]]
    lines = [f"Nipoppy study {study['root']}:"] + table(
        ["Pipeline", "Version", "Step", "Folder", "Folders", "Files", "Stored", "Reclaimable"], rows, "ddddrrrr", width,
        drop=("Files",))
    if any(row["kept_folders"] for row in study["steps"]):
        lines.append("Working folders kept: participant-sessions Nipoppy does not mark SUCCESS (`nipoppy process` "
                     "re-runs them).")
    return lines


def reclaimable_lines(data: dict[str, Any]) -> list[str]:
    """What can be freed here (and, in a repository, what cannot), and what was left alone as not fMRIPrep's."""
    totals = data["totals"]
    junk_here = reclaimable(totals)
    lines = repository_lines(data["dataset"]["repository"], totals) if data["dataset"].get("repository") else []
    apart = totals["junk_elsewhere_bytes"] + totals["junk_in_git_bytes"]
    if totals["elsewhere_bytes"] or apart:  # a repository: what is on this disk, and the junk that frees nothing
        here = totals["bytes"] - totals["elsewhere_bytes"]
        lines.append(f"Reclaimable: {size(junk_here)} of {size(here)} on this disk ({share(junk_here, here)}); "
                     f"{size(totals['elsewhere_bytes'])} more is elsewhere only. Of the "
                     f"{files(totals['junk_files'])} judged junk, {size(totals['junk_elsewhere_bytes'])} of content "
                     f"is elsewhere only and {size(totals['junk_in_git_bytes'])} stored in git: nothing to free here. "
                     "Nothing was changed.")
    else:
        lines.append(f"Reclaimable: {size(junk_here)} of {size(totals['bytes'])} ({share(junk_here, totals['bytes'])}) "
                     f"in {files(totals['junk_files'])}. Nothing was changed.")
    if data["not_fmriprep"]:
        left = data["not_fmriprep"]
        total_files, total_bytes = sum(row["files"] for row in left), sum(row["bytes"] for row in left)
        examples = ", ".join(f"{row['path']} ({size(row['bytes'])})" for row in left[:5])
        more = f" and {len(left) - 5} more" if len(left) > 5 else ""
        lines.append(f"Left alone, not fMRIPrep's: {files(total_files)} ({size(total_bytes)}) in the working "
                     f"directory's folder: {examples}{more}.")
    return lines


def compute_lines(compute: dict[str, Any], width: int | None = None) -> list[str]:
    """Compute beside storage: each subject's fMRIPrep runs (kgCO2e) against keeping its files per year."""
    lines = ["", "Compute and storage"]
    if compute["note"] and compute["estimate_kg_per_subject"] is None:
        return lines + [f"  {compute['note']}; --compute-estimate KG fills in an estimate."]

    def kg(value: float | None) -> str:
        return "-" if value is None else number(value)

    rows = [[f"sub-{row['subject']}", row["status"] or "-", kg(row["compute_kgco2e"]) + ("*" if row["compute_source"]
             == "estimate" else ""), kg(row["rerun_kgco2e"]), kg(row["storage_kgco2e_per_year"]),
             kg(row["workdir_kgco2e_per_year"]),
             "-" if row["break_even_years"] is None else f"{row['break_even_years']:.3g} yr"]
            for row in compute["subjects"]]
    lines += table(["Subject", "Status", "Compute kgCO2e", "Re-run kgCO2e", "Keep kgCO2e/yr", "Work dir kgCO2e/yr",
                    "Break-even"], rows, "llrrrrr", width)
    lines.append(f"Break-even: the years of keeping a subject's working directory that emit as much as one re-run. "
                 f"Recorded: {compute['records']} CodeCarbon rows, {number(compute['recorded_kgco2e'])} kgCO2e"
                 + (" (* an estimate given with --compute-estimate)" if compute["estimate_kg_per_subject"] is not None
                    else "") + ".")
    lines += [f"sub-{row['subject']} ({row['status']}): {row['verdict']}" for row in compute["subjects"] if row["verdict"]]
    return lines


def regeneration_lines(regeneration: dict[str, Any], width: int | None = None) -> list[str]:
    """What a regenerable rule set reclaims, which runs pass its guards (and why the others do not), the cost."""
    runs = regeneration["runs"]
    lines = ["", f"Regenerable: {size(regeneration['regenerable_bytes'])} of outputs that can be rebuilt "
                 f"({regeneration['runs_regenerable']} of {len(runs)} runs and anatomies pass every guard)"]
    for group in regeneration["kept_by_reason"]:
        lines += textwrap.wrap("Kept, " + grouped_line(group, "run"), width or 100, subsequent_indent="  ",
                               break_on_hyphens=False)
    lines.append(f"Rebuilding them once: {number(regeneration['regenerate_kgco2e'])} kgCO2e "
                 f"({regeneration['compute_source']}); {regeneration['break_even']}.")
    if regeneration["runs_regenerable"]:
        lines.append(f"The commands that rebuild them: {regeneration['command']} [--sbatch]")
    return lines


def repository_lines(repository: dict[str, Any], totals: dict[str, Any]) -> list[str]:
    """What the git repository means for the figures: annexed content here and elsewhere only, and what is
    stored in git itself."""
    lines = [f"In a {repository['kind']} ({repository['top']})."]
    if repository["annexed"]:
        annexed_here = totals["annexed_bytes"] - totals["elsewhere_bytes"]
        lines.append(f"Annexed content: {size(annexed_here)} present here, {size(totals['elsewhere_bytes'])} "
                     f"elsewhere only (not on this disk). Junk elsewhere only: {size(totals['junk_elsewhere_bytes'])}, "
                     "which frees nothing here; junk present here is dropped with git annex drop, never unlinked.")
    if totals["junk_in_git_bytes"]:
        lines.append(f"Junk stored in git: {size(totals['junk_in_git_bytes'])}, left in place (removing it frees only "
                     "the checkout copy and leaves the dataset modified; clean --git-rm removes it with git rm and a "
                     "commit).")
    return lines


def energy_lines(energy: dict[str, Any]) -> list[str]:
    """The energy and carbon block of the text report, assumptions on one line."""
    a = energy["assumptions"]
    where = f" ({a['country']})" if a["country"] else ""
    assumptions_line = (f"{a['profile']}: {a['watts_per_tb']['value']:g} W/TB, PUE {a['pue']['value']:g}, "
                        f"{a['copies']['value']:g} copies, {a['carbon_intensity']['value']:g} gCO2e/kWh{where}, "
                        f"{a['embodied_kg_per_tb']['value']:g} kgCO2e/TB embodied over {a['lifetime_years']['value']:g} years")
    rows = []
    for label, row in (("Everything stored", energy["total"]), ("Junk (avoidable)", energy["junk"])):
        rows.append([label, size(row["bytes"]), energy_amount(row["kwh_per_year"]), co2e_mass(row["operational_kgco2e_per_year"]),
                     co2e_mass(row["embodied_kgco2e_per_year"]), co2e_mass(row["kgco2e_per_year"])])
    junk = energy["junk"]
    return (
        ["Energy and carbon per year of storage (CO2e: operational, embodied in the hardware, total)"]
        + table(["", "Size", "Energy", "Operational", "Embodied", "Total CO2e"], rows, "lrrrrr")
        + [f"Cleaning up avoids {co2e_mass(junk['kgco2e_per_year'])} CO2e a year: about {number(junk['km_by_car'])} km "
           f"by car or {number(junk['tree_months'])} tree-months.",
           f"Assumptions: {assumptions_line}. Sources: report --format json (energy.assumptions)."]
    )


def render_json(data: dict[str, Any]) -> str:
    """Any of the dictionaries, exactly: strict JSON (no NaN), keys in their order."""
    return output_json(data, indent=2) + "\n"


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


COMPUTE_COLUMNS = ("subject", "status", "compute_source", "compute_kgco2e", "compute_kwh", "runs_recorded",
                   "rerun_kgco2e", "storage_kgco2e_per_year", "workdir_kgco2e_per_year", "break_even_years", "verdict")


def render_compute_csv(data: dict[str, Any]) -> str:
    """Compute beside storage, one row per subject (the report's `compute` section; empty cells: no record)."""
    return csv_line(COMPUTE_COLUMNS) + "".join(csv_line([row[column] for column in COMPUTE_COLUMNS])
                                                for row in data["compute"]["subjects"])


RENDERERS = {"text": render_text, "json": render_json, "csv": render_csv, "compute-csv": render_compute_csv}


# --- the subjects' run statuses -------------------------------------------------------------------

STATUS_COLUMNS = ("subject", "status", "runs", "newest_run", "fmriprep_version", "crash_files", "workdir_bytes",
                  "output_bytes", "output_spaces", "evidence", "idle_seconds", "stale")


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "-"


def _idle(row: dict[str, Any]) -> str:
    """How long a subject has been idle, for people; "stale" once past --stale-after."""
    seconds = row["idle_seconds"]
    if seconds is None:
        return "-"
    text = f"{seconds / 86400:.0f} d" if seconds >= 86400 else f"{seconds / 3600:.0f} h"
    return text + (" (stale)" if row["stale"] else "")


def render_status_text(data: dict[str, Any], width: int | None = None) -> str:
    rows = data["subjects"]
    table_rows = [[f"sub-{row['subject']}", row["status"], _when(row["newest_run_time"]), row["fmriprep_version"] or "-",
                   str(row["crash_files"]), size(row["workdir_bytes"]), size(row["output_bytes"]), _idle(row),
                   row["output_spaces"] or "-"] for row in rows]
    lines = table(["Subject", "Status", "Newest run", "fMRIPrep", "Crashes", "Work dir", "Output", "Idle", "Spaces"],
                  table_rows, "ldddrrrrl", width, drop=("Spaces", "Idle", "Crashes", "fMRIPrep"))
    lines.append("")
    evidence = [f"sub-{row['subject']}: {row['status']} ({'; '.join(row['evidence'])})"
                + (f" ({row['runs']} runs)" if row["runs"] > 1 else "") for row in rows]
    lines += evidence if width is None else [part for line in evidence
                                              for part in textwrap.wrap(line, width, subsequent_indent="  ")]
    return "\n".join(lines) + "\n"


def render_status_tsv(data: dict[str, Any]) -> str:
    lines = ["\t".join(STATUS_COLUMNS)]
    for row in data["subjects"]:
        lines.append("\t".join("; ".join(row[c]) if c == "evidence" else "" if row[c] is None else str(row[c])
                               for c in STATUS_COLUMNS))
    return "\n".join(lines) + "\n"


# --- the site audit ------------------------------------------------------------------------------------

AUDIT_COLUMNS = ("path", "owner", "fmriprep_version", "layout", "subjects", "files", "bytes", "bytes_here",
                 "elsewhere_bytes", "junk_bytes", "junk_share", "junk_in_git_bytes", "kwh_per_year_avoidable",
                 "kgco2e_per_year_avoidable", "orphan_of")


def render_audit_text(data: dict[str, Any], width: int | None = None) -> str:
    """The audit as a table: each dataset's bytes on this disk, what of it is reclaimable (annexed content that is
    elsewhere only is a column apart, when there is any: it frees nothing here)."""
    rows = data["datasets"]
    table_rows = [[row["path"], row["owner"], _pipeline_version(row), str(row["subjects"]), size(row["bytes_here"]),
                   size(row["junk_bytes"]), share(row["junk_bytes"], row["bytes_here"]),
                   number(row["kwh_per_year_avoidable"]), number(row["kgco2e_per_year_avoidable"])] for row in rows]
    headers, align = ["Dataset", "Owner", "fMRIPrep", "Subjects", "On this disk", "Reclaimable", "Share", "kWh/yr",
                      "kgCO2e/yr"], "lllrrrrrr"
    if any(row["elsewhere_bytes"] for row in rows):  # git-annex datasets: content not on this disk, apart
        headers.insert(5, "Elsewhere only")
        align = "lllrrrrrrr"
        for table_row, row in zip(table_rows, rows, strict=True):
            table_row.insert(5, size(row["elsewhere_bytes"]))
    lines = table(headers, table_rows, align, width, drop=("kWh/yr", "kgCO2e/yr", "Owner", "Share", "fMRIPrep"))
    tied = [(row["path"], folder) for row in rows for folder in row["folders"]
            if folder["scope"] == "workdir" and not folder["path"].startswith(row["path"].rstrip("/") + "/")
            and folder["path"] != row["path"]]
    if tied:
        lines += ["", "Working directories elsewhere, counted with their datasets:"]
        lines += [f"  {path}: {folder['path']} ({folder['found']})" for path, folder in tied]
    for study in data["nipoppy_studies"]:
        lines += [""] + nipoppy_lines(study, width)
    if data["failed"]:  # output-shaped folders: listed here too, not only among the warnings
        lines += ["", f"Found, not judged ({count(len(data['failed']))}; exit status 3):"]
        lines += [f"  {path}: " + next((warning[len(path) + 2:] for warning in data["warnings"]
                                         if warning.startswith(f"{path}: ")), "could not be read")
                  for path in data["failed"]]
    orphans = [row for row in rows if row["orphan_of"]]
    if orphans:
        lines += ["", "Orphaned working directories (their output directory no longer exists; nothing can reuse them):"]
        lines += [f"  {row['path']}: {size(row['bytes'])}, ran for {row['orphan_of']}" for row in orphans]
    totals = data["totals"]
    lines += ["", f"{count(len(rows))} dataset{'' if len(rows) == 1 else 's'}: {size(totals['junk_bytes'])} reclaimable of {size(totals['bytes_here'])} on this disk "
              f"({files(totals['files'])}); {number(totals['kgco2e_per_year_avoidable'])} kgCO2e/yr avoidable. "
              "Nothing was changed."]
    return "\n".join(lines) + "\n"


def render_audit_csv(data: dict[str, Any]) -> str:
    return csv_line(AUDIT_COLUMNS) + "".join(csv_line([row[column] for column in AUDIT_COLUMNS])
                                             for row in data["datasets"])


# --- the run history -----------------------------------------------------------------------------------


def render_history_text(data: dict[str, Any], since: str | None = None, width: int | None = None) -> str:
    """The runs, oldest first, one per line (when, who, where), then what they reclaimed and avoided (``since``:
    the period, as the user gave it)."""
    rows = [[str(run["id"]), run["started"][:16].replace("T", " "), run["user"], run["host"], run["dataset"],
             run["mode"], files(run["files"]), size(run["bytes"]), number(run["kwh_per_year"]),
             number(run["kgco2e_per_year"]), str(run["exit_status"])] for run in data["runs"]]
    lines = table(["#", "When", "User", "Host", "Dataset", "Mode", "Files", "Bytes", "kWh/yr", "kgCO2e/yr", "Exit"],
                  rows, "rllllllrrrr", width)
    overall = data["totals"]["overall"]
    period = f"since {since}" if since else "in all"
    lines += ["", f"{period.capitalize()}: {size(overall['bytes'])} reclaimed in {runs(overall['runs'])} "
              f"({files(overall['files'])}); {number(overall['kwh_per_year'])} kWh/yr and "
              f"{number(overall['kgco2e_per_year'])} kgCO2e/yr avoided."]
    for row in data["totals"]["by_dataset"]:
        lines.append(f"  {row['dataset']}: {size(row['bytes'])} in {runs(row['runs'])}, "
                     f"{number(row['kgco2e_per_year'])} kgCO2e/yr avoided")
    return "\n".join(lines) + "\n"


def runs(count_of_runs: int) -> str:
    return f"{count(count_of_runs)} run{'' if count_of_runs == 1 else 's'}"


def render_history_csv(data: dict[str, Any], columns: tuple[str, ...]) -> str:
    return csv_line(["id", *columns]) + "".join(csv_line([run["id"], *(run[column] for column in columns)])
                                                for run in data["runs"])


# --- rule sets ------------------------------------------------------------------------------------------


def render_ruleset_list(rows: list[tuple[str, str]], width: int | None = None) -> str:
    """The shipped rule sets: name and who each is for."""
    return "\n".join(table(["Rule set", "For"], [list(row) for row in rows], "dw", width)) + "\n"


def render_ruleset(ruleset: Any, width: int | None = None) -> str:
    """The rules in force, in the order they apply, with where each came from."""
    lines = [f"Rule set: {' <- '.join(ruleset.names)} (first match wins; unmatched files: {ruleset.default})"]
    for set_name in ruleset.names:
        description = " ".join(ruleset.descriptions.get(set_name, "").split())
        if description:
            lines += textwrap.wrap(f"{set_name}: {description}", width or 100, initial_indent="  ",
                                   subsequent_indent="    ")
    lines.append("")
    rows = [[str(i), rule.id, rule.action + (f" if {rule.guard} holds" if rule.guard else ""), rule.category,
             rule.spec, rule.source] for i, rule in enumerate(ruleset.rules, 1)]
    lines += table(["#", "Rule", "Action", "Category", "Match", "From"], rows, "rdwdwl", width)
    return "\n".join(lines) + "\n"


# --- what a clean run did ---------------------------------------------------------------------


def render_folders(dataset: dict[str, Any], width: int | None = None) -> str:
    """Where a clean run reads and acts, said before anything else (and before the question)."""
    version = dataset["fmriprep_version"] or "unknown version"
    lines = [f"{dataset.get('pipeline', 'fMRIPrep')} {version} · {LAYOUT_NAMES[dataset['layout']]} · {dataset['path']}",
             "Acts only in these folders:", *folder_lines(dataset["folders"], dataset["notes"], width)]
    lines = fitted(lines, width)
    return "\n".join(lines) + "\n"


def render_outcome(outcome: dict[str, Any], dry_run: bool, journal: str | None = None,
                   archives: list[str] | None = None, nothing_to_do: bool = False, recovered: int = 0,
                   preview: bool = False) -> str:
    """The end-of-run summary: what was (or would be) removed, skipped and failed, by reason. ``preview``:
    what an archive or delete run is about to do, shown before the question."""
    lines = []
    if nothing_to_do and not dry_run:
        lines.append("Nothing to do: no junk to act on; nothing was changed.")
    words = MODE_WORDS[Mode(outcome["mode"])]
    verb = words.before if preview else MODE_WORDS[Mode.DRY_RUN].after if dry_run else words.after
    if not (nothing_to_do and not dry_run):
        lines.append(f"{verb} {files(outcome['files'])} ({size(outcome['bytes'])} freed)"
                     + (f" and {count(outcome['removed_dirs'])} emptied folders." if outcome["removed_dirs"] else "."))
    if outcome["by_category"]:
        rows = [[row["category"], count(row["files"]), size(row["bytes"])] for row in outcome["by_category"]]
        lines += ["  " + line for line in table(["Category", "Files", "Bytes"], rows, "lrr")]
    lines += [line for rewritten in outcome.get("rewritten", []) for line in rewritten_lines(rewritten)]
    linked = outcome.get("hard_linked") or {}
    if linked.get("files"):
        lines.append(f"Of these, {files(linked['files'])} ({size(linked['bytes'])}) are {linked['note']}.")
    for title, key in (("Left in place", "left"), ("Skipped", "skipped"), ("Failed", "failed")):
        for row in outcome.get(key, []):
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
    if dry_run and not preview:
        lines.append("Dry run: nothing was changed.")
    return "\n".join(lines) + "\n"


def render_restore(outcome: dict[str, Any]) -> str:
    lines = [f"Restored {files(outcome['restored_files'])} ({size(outcome['restored_bytes'])}); "
             f"{files(outcome['already_present'])} already in place."]
    lines += [f"conflict: {message}" for message in outcome["conflicts"]]
    lines += [f"error: {message}" for message in outcome["errors"]]
    return "\n".join(lines) + "\n"


def render_policy_run(results: list[Any]) -> tuple[str, list[str]]:
    """One line per dataset of a policy run and a final count; also the datasets' warnings, for stderr."""
    lines, warnings = [], []
    for result in results:
        what = MODE_WORDS[Mode(result.mode)].line
        line = f"{result.status.upper():10} {result.dataset}"
        if "files" in result.result:
            line += f": {what} {files(result.result['files'])} ({size(result.result['bytes'])})"
        if result.reason:
            line += f" [{result.reason}]"
        lines.append(line)
        warnings += [f"{result.dataset}: {warning}" for warning in result.result.get("warnings", [])]
    lines.append(f"{len(results)} datasets: " + ", ".join(
        f"{sum(r.status == s for r in results)} {s}" for s in ("ok", "incomplete", "skipped", "failed", "stopped")
        if s != "stopped" or any(r.status == s for r in results)))
    return "\n".join(lines) + "\n", warnings


def _pipeline_version(row: dict[str, Any]) -> str:
    """An audit row's pipeline and version: the version alone for fMRIPrep (as before the other NiPreps)."""
    version = row["fmriprep_version"] or "?"
    pipeline = row.get("pipeline", "fMRIPrep")
    return version if pipeline == "fMRIPrep" else f"{pipeline} {version}"
