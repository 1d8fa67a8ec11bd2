"""The Python API: every command's logic, callable from a notebook or another tool without the command line.

Each function takes and returns plain values (paths, numbers, dictionaries: the JSON contract of the matching
command) or the pipeline's own objects (``Plan``, ``CleanResult``). Bad input raises ``CleanupError`` with the
message the command line would print. Durations are seconds here; the command line parses "1h" or "30d".

    import fmriprep_cleanup as fc
    plan = fc.open_plan("/data/derivatives/fmriprep", participant_labels=["01"])
    report = fc.make_report(plan)            # the same dictionary as `report --format json`
    result = fc.clean(plan)                  # a dry run: what `clean` would remove, to the byte
    result = fc.clean(plan, fc.CleanOptions(mode="archive", archive_dir="/archive/lab"))

One module per command group, as the command line's (cli/): reading.py (report, plan, status, explain,
regenerate), shards.py (partials and merge), acting.py (clean, restore, archives, journals), hygiene.py (audit,
policy runs, history, schedules). Each imports the stages it uses when a function is first called, so importing
the API (as the command line does, for its options) is cheap; read-only commands never import the acting layer
(act/): it is loaded by clean, restore and archives only.
"""

from __future__ import annotations

from ..energy.overrides import EnergyOverrides
from ..fmriprep.statuses import SUBJECT_STATUSES
from ..ops.history import COLUMNS as HISTORY_COLUMNS
from ..plan.options import (
    DEFAULT_MIN_AGE,
    CleanOptions,
    Declined,
    Mode,
    PlanOptions,
    duration_flag,
    parse_path_maps,
    parse_shard,
)
from .acting import archives, clean, journals, restore, shared_files_plan
from .hygiene import audit, history, run_policy, schedule, slurm_array
from .reading import (
    default_rules,
    demo,
    energy_model,
    explain,
    load_rules,
    make_report,
    make_status,
    open_plan,
    open_plan_with,
    plan_options,
    recipes_text,
    reclaimed_files,
    regenerable_rules,
    regeneration_checks,
    regeneration_recipes,
    retention_timeline,
    rule_sets,
    write_plan,
)
from .shards import (
    audit_shard,
    is_plan_partial,
    load_partials,
    make_partial,
    merge_partials,
    merge_plan_partials,
    report_in_processes,
    write_merged_plan,
    write_plan_partial,
)

__all__ = ["CleanOptions", "DEFAULT_MIN_AGE", "Declined", "EnergyOverrides", "HISTORY_COLUMNS", "Mode", "duration_flag", "PlanOptions",
           "SUBJECT_STATUSES", "archives", "audit", "audit_shard", "clean", "default_rules", "demo", "energy_model",
           "explain", "history", "is_plan_partial", "journals", "load_partials", "load_rules", "make_partial",
           "make_report", "make_status", "merge_partials", "merge_plan_partials", "open_plan", "open_plan_with", "parse_path_maps",
           "parse_shard", "plan_options", "recipes_text", "reclaimed_files", "regenerable_rules", "regeneration_checks",
           "regeneration_recipes", "report_in_processes", "restore", "retention_timeline", "rule_sets", "run_policy",
           "schedule", "shared_files_plan", "slurm_array", "write_merged_plan", "write_plan", "write_plan_partial"]
