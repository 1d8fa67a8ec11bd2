"""fmriprep-cleanup: find, report and safely remove what fMRIPrep leaves on disk.

One pipeline, one folder per stage; each imports only from the stages listed before it::

    basics, energy          errors, units, the folder walk, hashing; the storage energy model
    fmriprep                discover: what fMRIPrep left where, each subject's run status
    rules                   classify: YAML keep/junk rules applied to each file
    plan                    scan and plan: every file with its decision, and the totals
    act                     dry-run, archive, delete, restore (with the journal)
    ops                     audit, policy runs, history, schedules
    report                  the dictionaries every output is made of, and their text and HTML
    api, cli                every command as a function, and the command line over them

Typical use from Python (the names below are imported on first use, so ``import fmriprep_cleanup`` is cheap)::

    import fmriprep_cleanup as fc
    plan = fc.open_plan("/data/derivatives/fmriprep")
    report = fc.make_report(plan)       # the dictionary `report --format json` prints
    result = fc.clean(plan)             # a dry run: exactly what `clean --mode delete` would remove
"""

from __future__ import annotations

from .basics.lazy import lazy_face

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_face(__name__, {
    # the commands, as functions (see api/)
    "open_plan": "api", "open_plan_with": "api", "PlanOptions": "api", "energy_model": "api", "make_report": "api", "make_status": "api", "explain": "api",
    "clean": "api", "CleanOptions": "api", "Declined": "api", "shared_files_plan": "api", "restore": "api", "audit": "api", "run_policy": "api", "history": "api", "schedule": "api",
    "rule_sets": "api", "load_rules": "api", "demo": "api", "plan_options": "api", "make_partial": "api",
    "merge_partials": "api", "write_plan_partial": "api", "merge_plan_partials": "api",
    "report_in_processes": "api", "slurm_array": "api", "audit_shard": "api", "archives": "api", "journals": "api",
    # the pipeline's parts, for those who compose their own
    "CleanupError": "basics.errors", "Dataset": "fmriprep.layout", "discover": "fmriprep.discovery",
    "RuleSet": "rules.model", "load_rulesets": "rules.rulesets", "Plan": "plan.plan", "Selection": "plan.selection",
    "build_plan": "plan.plan", "Summary": "plan.summary", "CleanResult": "act.clean", "report_data": "report.data",
})
__all__ = sorted(__dir__())
