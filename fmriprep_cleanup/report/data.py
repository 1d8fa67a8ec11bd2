"""What every output is rendered from: one dictionary per command (report, status, audit, history), the JSON
contract with users' scripts. Text, CSV and HTML render the same dictionary, so they never disagree."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .. import __version__
from ..basics.annex import reclaimable
from ..basics.grouping import grouped, message_groups
from ..energy.model import Assumptions, assumptions, energy_report
from ..fmriprep.layout import Dataset
from ..fmriprep.statuses import SUBJECT_STATUSES
from ..ops.audit import AuditRow
from ..ops.history import totals as history_totals
from ..plan.plan import Plan
from ..plan.summary import Summary
from ..rules.model import RuleSet

SCHEMA_VERSION = 1
AUDIT_TOTALS = ("files", "bytes", "bytes_here", "elsewhere_bytes", "junk_bytes", "junk_in_git_bytes",
                "kwh_per_year_avoidable", "kgco2e_per_year_avoidable")


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
    compute_estimate: float | None = None,
    stale_after: float = 30 * 86400,
    regeneration: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON report. Its fields are a contract with users' scripts: add, never rename.

    ``warnings``: everything a person should know (Plan.all_warnings: what discovery left out, unreadable
    folders, subjects' evidence problems).
    """
    by_category = [{"category": name, **counts.as_dict()} for name, counts in _sorted_categories(summary)]
    totals = summary.totals.as_dict()
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "fmriprep-cleanup", "version": __version__},
        "dataset": {
            "path": dataset.path,
            "layout": dataset.layout,
            "pipeline": dataset.pipeline_name,
            "fmriprep_version": dataset.fmriprep_version,  # the pipeline's version (the key predates the others)
            "derivatives": dataset.derivatives,
            "freesurfer": dataset.freesurfer,
            "workdirs": list(dataset.workdirs),
            "notes": list(dataset.notes),
            "folders": dataset.folders(),
            "repository": repository_data(dataset),
            **({"nipoppy": {**dataset.nipoppy.as_json(), "steps": dataset.nipoppy.steps(summary.by_root)}}
               if dataset.nipoppy is not None else {}),
        },
        "rules": list(ruleset.names),
        "participant_labels": sorted(participant_labels) if participant_labels else None,
        "totals": totals,
        "by_category": by_category,
        "by_subject": [{"subject": name, **counts.as_dict(), "status": _status_of(statuses, name)}
                       for name, counts in _sorted_subjects(summary)],
        "largest_junk_folders": [{"folder": folder, "junk_bytes": nbytes} for folder, nbytes in summary.largest_junk_folders()],
        "energy": energy_report(energy_model or assumptions(), totals, by_category),
        "subjects_by_status": subjects_by_status(summary, statuses or {}),
        "not_fmriprep": [{"path": path, "files": counts[0], "bytes": counts[1]}
                         for path, counts in sorted(summary.left_alone.items(), key=lambda item: (-item[1][1], item[0]))],
        "compute": compute_data(dataset, summary, statuses or {}, energy_model or assumptions(), compute_estimate,
                                stale_after),
        "command": command,
        "warnings": list(warnings),
        "warning_groups": [{key: group[key] for key in ("message", "count", "subjects")}  # the same, grouped
                           for group in message_groups(warnings) if group["count"] > 1],
        **({"regeneration": regeneration_data(regeneration, ruleset, summary, energy_model or assumptions(),
                                              dataset)} if regeneration is not None else {}),
    }


def regeneration_data(runs: list[dict[str, Any]], ruleset: RuleSet, summary: Summary, model: Assumptions,
                      dataset: Dataset) -> dict[str, Any]:
    """What a guarded (regenerable) rule set reclaims, which runs pass its guards and why the others do not,
    and what rebuilding costs against keeping: the compute to regenerate once (CodeCarbon records scaled by
    the transform stage's share, else fMRIPrep's published benchmarks) and the break-even time of storage."""
    from ..energy.economics import BENCHMARK_ASSUMPTIONS, regeneration_cost
    from ..energy.model import footprint
    from ..fmriprep.emissions import compute_records

    categories = {rule.category for rule in ruleset.rules if rule.guard}
    counts = [summary.by_category[name] for name in sorted(categories) if name in summary.by_category]
    regenerable = sum(count.junk_bytes - count.junk_elsewhere_bytes for count in counts)
    records, _ = compute_records(dataset.derivatives) if dataset.derivatives else ([], [])
    storage_kg = footprint(regenerable, model).total_kg
    regenerate_kg, source = regeneration_cost(regenerable, sum(record.kg for record in records), len(records),
                                              dataset.pipeline == "fmriprep", model)
    return {
        "rules": sorted(rule.id for rule in ruleset.rules if rule.guard),
        "runs": runs,
        "runs_regenerable": sum(1 for run in runs if run["regenerable"]),
        "kept_by_reason": grouped((run["run"] if run["run"].startswith("sub-") else f"sub-{run['subject']} {run['run']}",
                                   run["why_not"]) for run in runs if not run["regenerable"]),
        "regenerable_bytes": regenerable,
        "storage_kgco2e_per_year": storage_kg,
        "regenerate_kgco2e": regenerate_kg,
        "compute_source": source,
        "assumptions": dict(BENCHMARK_ASSUMPTIONS),
        "break_even_years": regenerate_kg / storage_kg if storage_kg > 0 else None,
        "break_even": break_even_sentence(regenerable, regenerate_kg, storage_kg),
        "command": "fmriprep-cleanup regenerate " + shlex.quote(dataset.path),
    }


def break_even_sentence(nbytes: int, regenerate_kg: float, storage_kg_per_year: float) -> str:
    """"storing these 14.7 GB for 7 months emits what regenerating them once does" (or why it cannot be said)."""
    from .people import size

    if nbytes <= 0 or storage_kg_per_year <= 0:
        return "nothing here can be regenerated: no break-even"
    years = regenerate_kg / storage_kg_per_year
    if years >= 2:
        span = f"{years:.3g} years"
    elif years * 12 >= 1:
        span = f"{years * 12:.2g} months"
    else:
        span = f"{years * 365.25:.2g} days"
    return (f"break-even: storing these {size(nbytes)} for {span} emits what regenerating them once does "
            f"({regenerate_kg:.3g} kgCO2e against {storage_kg_per_year:.3g} kgCO2e a year)")


def subjects_by_status(summary: Summary, statuses: dict[str, Any]) -> list[dict[str, Any]]:
    """Subjects counted by run status, with their files' bytes and their kept working-directory bytes."""
    rows: dict[str, dict[str, Any]] = {}
    for label, status in statuses.items():
        row = rows.setdefault(status.status, {"status": status.status, "subjects": 0, "bytes": 0, "junk_bytes": 0,
                                              "workdir_bytes": 0, "workdir_kept_bytes": 0, "elsewhere_bytes": 0})
        counts = summary.by_subject.get(label)
        row["subjects"] += 1
        if counts is not None:
            row["bytes"] += counts.bytes
            row["junk_bytes"] += counts.junk_bytes
            row["elsewhere_bytes"] += counts.elsewhere_bytes
        row["workdir_bytes"] += summary.bytes_by_subject_scope.get((label, "workdir"), 0)
        row["workdir_kept_bytes"] += summary.kept_by_subject_scope.get((label, "workdir"), 0)
    order = {name: index for index, name in enumerate(SUBJECT_STATUSES)}
    return sorted(rows.values(), key=lambda row: order.get(row["status"], 99))


def status_data(plan: Plan, summary: Summary, only: Iterable[str] = ()) -> dict[str, Any]:
    """Each selected subject's run status with its evidence and its bytes (``only``: these statuses)."""
    wanted = set(only)
    rows = []
    for label, subject in plan.run_statuses().items():
        if (wanted and subject.status not in wanted) or not plan.selection.wants(label):
            continue
        record = subject.as_dict()
        record["workdir_bytes"] = summary.bytes_by_subject_scope.get((label, "workdir"), 0)
        record["output_bytes"] = summary.bytes_by_subject_scope.get((label, "derivatives"), 0)
        rows.append(record)
    return {"dataset": plan.dataset.path, "subjects": rows, "warnings": plan.all_warnings()}


def audit_data(roots: Iterable[str], ruleset: RuleSet, model: Assumptions, rows: list[AuditRow] | list[dict[str, Any]],
               warnings: list[str], failed: list[str], command: str | None = None) -> dict[str, Any]:
    """The site audit: every dataset found below ``roots``, largest reclaimable first, and the totals (``rows``:
    the audit's, or their dictionaries from the shards of a sharded audit)."""
    datasets = [row if isinstance(row, dict) else row.as_dict() for row in rows]
    datasets.sort(key=lambda row: (-row["junk_bytes"], row["path"]))
    return {"tool": {"name": "fmriprep-cleanup", "version": __version__},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
            "roots": [os.path.abspath(root) for root in roots], "rules": list(ruleset.names),
            "energy_assumptions": model.as_dict(), "datasets": datasets,
            "totals": {key: sum(row[key] for row in datasets) for key in AUDIT_TOTALS},
            "nipoppy_studies": nipoppy_studies(datasets), "failed": failed, "warnings": warnings}


def nipoppy_studies(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each Nipoppy study an audit found once, with the steps of every pipeline and version audited in it."""
    studies: dict[str, list[dict[str, Any]]] = {}
    for row in datasets:
        if row.get("nipoppy"):
            studies.setdefault(row["nipoppy"]["root"], []).extend(row["nipoppy"]["steps"])
    return [{"root": root, "steps": steps} for root, steps in sorted(studies.items())]


def iso_time(seconds: float) -> str:
    """A Unix time as ISO 8601 in the local zone, with its offset: 2026-11-27T03:17:02+01:00."""
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def compute_data(dataset: Dataset, summary: Summary, statuses: dict[str, Any], model: Assumptions,
                 estimate_kg: float | None = None, stale_after: float = 30 * 86400) -> dict[str, Any]:
    """Compute beside storage, per subject: what its fMRIPrep runs emitted (CodeCarbon records; an explicit
    estimate where there are none, marked so), what keeping its files and its working directory costs per
    year, and the break-even - how many years of keeping the working directory equal one re-run."""
    from ..energy.economics import cache_verdict
    from ..energy.model import footprint
    from ..fmriprep.emissions import compute_records

    records, problems = compute_records(dataset.derivatives) if dataset.derivatives else ([], [])
    per_subject: dict[str, dict[str, Any]] = {}
    for record in records:
        for label in record.subjects:
            entry = per_subject.setdefault(label, {"kg": 0.0, "kwh": 0.0, "runs": set(), "by_run": {}, "sources": []})
            share = 1 / len(record.subjects)
            entry["kg"] += record.kg * share
            entry["kwh"] += record.kwh * share
            entry["runs"].add(record.run_uuid)
            entry["by_run"][record.run_uuid] = entry["by_run"].get(record.run_uuid, 0.0) + record.kg * share
            entry["sources"].append(record.source)
    rows = []
    for label in sorted(set(statuses) | set(per_subject)):
        status = statuses.get(label)
        counts = summary.by_subject.get(label)
        stored = (counts.bytes - counts.elsewhere_bytes) if counts is not None else 0
        workdir = summary.bytes_by_subject_scope.get((label, "workdir"), 0)
        storage_kg = footprint(stored, model).total_kg
        workdir_kg = footprint(workdir, model).total_kg
        recorded = per_subject.get(label)
        newest_uuid = status.newest_run.split("_", 1)[-1] if status is not None and status.newest_run else None
        if recorded is not None:
            compute_kg, kind = recorded["kg"], "recorded"
            rerun_kg = recorded["by_run"].get(newest_uuid) or max(recorded["by_run"].values())
        elif estimate_kg is not None:
            compute_kg, rerun_kg, kind = estimate_kg, estimate_kg, "estimate"
        else:
            compute_kg = rerun_kg = None
            kind = None
        break_even = rerun_kg / workdir_kg if rerun_kg is not None and workdir_kg > 0 else None
        rows.append({
            "subject": label, "status": status.status if status is not None else None, "compute_source": kind,
            "compute_kgco2e": compute_kg, "compute_kwh": recorded["kwh"] if recorded else None,
            "runs_recorded": len(recorded["runs"]) if recorded else 0, "rerun_kgco2e": rerun_kg,
            "storage_kgco2e_per_year": storage_kg, "workdir_kgco2e_per_year": workdir_kg,
            "break_even_years": break_even, "verdict": cache_verdict(status.status if status is not None else None, rerun_kg, workdir_kg, stale_after),
            "sources": sorted(set(recorded["sources"]))[:20] if recorded else [],
        })
    totals = summary.totals
    junk_here = reclaimable(totals)
    recorded_total = sum(record.kg for record in records)
    return {"records": len(records), "recorded_kgco2e": recorded_total,
            "estimate_kg_per_subject": estimate_kg,
            "note": None if records else "no CodeCarbon record here (fMRIPrep 22.1+ writes them with --track-carbon)",
            "junk_storage_kgco2e_per_year": footprint(junk_here, model).total_kg,
            "subjects": rows, "problems": problems}


def repository_data(dataset: Dataset) -> dict[str, Any] | None:
    """The git repository the outputs live in (None: none): its kind, top and whether files are annexed."""
    repo = dataset.repository
    if repo is None:
        return None
    return {"kind": repo.kind, "top": repo.top, "annexed": repo.annexed, "datalad": repo.datalad,
            "unlocked": repo.unlocked, "subdatasets": list(repo.subdatasets)}


def _status_of(statuses: dict[str, Any] | None, label: str | None) -> str | None:
    subject = (statuses or {}).get(label) if label is not None else None
    return subject.status if subject is not None else None


def history_data(runs: list[dict[str, Any]], command: str | None = None) -> dict[str, Any]:
    """The recorded runs (oldest first; times in ISO 8601 with their zone) and what they reclaimed and
    avoided, overall and per dataset."""
    ordered = sorted(runs, key=lambda run: (run["started"], run["id"]))
    shown = [{**run, "started": iso_time(run["started"]), "finished": iso_time(run["finished"])} for run in ordered]
    return {"tool": {"name": "fmriprep-cleanup", "version": __version__}, "command": command, "runs": shown,
            "totals": history_totals(ordered)}
