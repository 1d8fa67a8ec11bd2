"""Opening a plan: the one way every command - report, plan, status, explain, clean and unattended policy runs -
goes from a path and options to a Plan, so the same options always plan the same files."""

from __future__ import annotations

import dataclasses
import os

from ..basics.archivefile import archive_kind
from ..basics.errors import CleanupError
from ..basics.mounts import NETWORK_JOBS, default_processes, on_network
from ..basics.scanlists import ScanList, read_scan_list
from ..fmriprep.archived import babs_zips_in, discover_archive, with_tar_note
from ..fmriprep.discovery import NotFMRIPrepError, discover_dataset, outputs_below
from ..fmriprep.layout import Dataset, state_dir_for
from ..fmriprep.pipelines import pipeline_by_key
from ..rules.rulesets import load_rulesets
from .options import PlanOptions
from .plan import Plan, build_plan
from .selection import Selection


def default_rules(dataset: Dataset) -> str:
    """The rule set used when none is given: the pipeline's default (default for fMRIPrep, qsiprep-default...)."""
    return pipeline_by_key(dataset.pipeline).rules


def open_plan(options: PlanOptions) -> Plan:
    """The plan for the pipeline output (or working directory) at ``options.path``: what happens to every file
    (see api.open_plan for each option). Nothing is read beyond the dataset's top folders until it is iterated."""
    if not options.find_work_dir and options.work_dir:
        raise CleanupError("--no-work-dir and --work-dir contradict each other")
    path = options.path
    archived = archive_kind(path) is not None and os.path.lexists(path) and not os.path.isdir(path)
    if archived and (options.from_scan or options.work_dir):
        raise CleanupError(f"{path}: a zip or tar file is read from its own headers; --from-scan and --work-dir "
                           "do not apply to it")
    try:
        if archived:
            dataset, members = discover_archive(path)
        else:
            dataset = discover_dataset(path, options.work_dir, options.find_work_dir, options.state_dir)
    except NotFMRIPrepError as exc:
        kept_in = babs_zips_in(path) if os.path.isdir(path) else None
        if kept_in:
            raise NotFMRIPrepError(kept_in) from None
        nearby = outputs_below(os.path.abspath(path)) if os.path.isdir(path) else []
        if not nearby:
            raise
        others = f" (or {', '.join(nearby[1:3])}{', ...' if len(nearby) > 3 else ''})" if len(nearby) > 1 else ""
        raise NotFMRIPrepError(f"{exc}; did you mean {nearby[0]}?{others}") from None
    if not archived:
        dataset = with_tar_note(dataset)
    ruleset = load_rulesets(list(options.rules) or [default_rules(dataset)]).with_cli_globs(options.keep, options.junk)
    plan = build_plan(dataset, ruleset,
                      Selection.from_labels(options.participant_labels, exclude=options.exclude_participant_labels),
                      now=options.now,
                      state_dir=state_dir_for(dataset.identity, options.state_dir) if options.state_dir else None,
                      min_age=options.min_age, stale_after=options.stale_after,
                      path_map=tuple(sorted((options.path_map or {}).items())))
    if options.from_scan is not None:
        plan = dataclasses.replace(plan, scan_list=scan_list_for(plan, options.from_scan, options.scan_format))
    plan.check_selection()
    if archived:  # its members, read from its headers: one reading, nothing to walk in threads or processes
        return dataclasses.replace(plan, scan_list=members, jobs=1, processes=1)
    return with_jobs(plan, options.jobs)


def scan_list_for(plan: Plan, path: str, scan_format: str | None) -> ScanList:
    """The scan list, once it is known to be of this dataset: each of its folders is in the list (a list of
    another tree is refused), and what it cannot say is said once."""
    listed = read_scan_list(path, scan_format, [root.path for root in plan.dataset.scan_roots])
    missing = [root.path for root in plan.dataset.scan_roots if not listed.covers(root.path)]
    if missing:
        raise CleanupError(f"{path} does not list {missing[0]}: a scan of another tree (paths in it must be as "
                           "this machine sees them)")
    plan.warnings.add(f"read from the {listed.age_line(plan.now)}, not walked")
    if not listed.has_mtimes:
        plan.warnings.add(f"{path} has no modification times (ncdu without -e?): ages and running subjects cannot "
                          "be told from it, so every file is taken as modified now (nothing is junk by age, "
                          "running checks hold back)")
    return listed


def with_jobs(plan: Plan, jobs: int | None) -> Plan:
    """The plan scanned as ``--jobs`` says: on a network file system, ``jobs`` threads listing folders at once
    (default 8); on a local disk, ``jobs`` processes (default: every usable core once the selected subjects
    are enough, see basics.mounts.default_processes)."""
    if on_network([root.path for root in plan.dataset.scan_roots]):
        return dataclasses.replace(plan, jobs=jobs or NETWORK_JOBS, processes=1)
    selected = sum(1 for label in plan.status_book().subjects() if plan.selection.wants(label))
    return dataclasses.replace(plan, jobs=1, processes=jobs or default_processes(selected))
