"""Opening a plan: the one way every command - report, plan, status, explain, clean and unattended policy runs -
goes from a path and options to a Plan, so the same options always plan the same files."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from ..basics.errors import CleanupError
from ..basics.mounts import NETWORK_JOBS, default_processes, on_network
from ..basics.scanlists import ScanList, read_scan_list
from ..fmriprep.discovery import NotFMRIPrepError, discover_dataset, outputs_below
from ..fmriprep.layout import Dataset, state_dir_for
from ..fmriprep.pipelines import pipeline_by_key
from ..rules.rulesets import load_rulesets
from .plan import DEFAULT_MIN_AGE, Plan, build_plan
from .selection import Selection


def default_rules(dataset: Dataset) -> str:
    """The rule set used when none is given: the pipeline's default (default for fMRIPrep, qsiprep-default...)."""
    return pipeline_by_key(dataset.pipeline).rules


def open_plan(path: str, rules: Iterable[str] = (), work_dir: str | None = None, find_work_dir: bool = True,
              participant_labels: Iterable[str] = (), exclude_participant_labels: Iterable[str] = (),
              keep: Iterable[str] = (), junk: Iterable[str] = (), jobs: int | None = None,
              min_age: float = DEFAULT_MIN_AGE, stale_after: float | None = None, state_dir: str | None = None,
              now: float | None = None, path_map: dict[str, str] | None = None, from_scan: str | None = None,
              scan_format: str | None = None) -> Plan:
    """The plan for the pipeline output (or working directory) at ``path``: what happens to every file.

    ``rules``: shipped names or YAML paths (default: the pipeline's own default set); ``work_dir``: the
    pipeline's -w when it is elsewhere (``find_work_dir=False`` leaves any working directory out);
    ``participant_labels``: only these subjects, ``exclude_participant_labels``: not these (a label naming no
    subject is refused); ``keep``/``junk``: extra globs that beat the rules; ``jobs``: folders listed at once
    (threads on a network file system, default 8; processes on a local disk, default every usable core
    once the dataset has enough subjects: see basics.mounts.default_processes); ``min_age``: activity this recent means running, junk this
    recent is held back; ``stale_after``: an idle failed run's cache is stale after this long; ``state_dir``:
    where the lock and journal live; ``now``: the time to judge ages at; ``path_map``: {path a run recorded
    inside a container: the same path here}, for the inputs regeneration guards look for; ``from_scan``: a scan
    list (ncdu/gdu JSON, find -printf, GPFS LIST; ``scan_format`` or detected) read instead of walking. Nothing is read beyond the dataset's
    top folders until the plan is iterated.
    """
    if not find_work_dir and work_dir:
        raise CleanupError("--no-work-dir and --work-dir contradict each other")
    try:
        dataset = discover_dataset(path, work_dir, find_work_dir, state_dir)
    except NotFMRIPrepError as exc:
        nearby = outputs_below(os.path.abspath(path)) if os.path.isdir(path) else []
        if not nearby:
            raise
        others = f" (or {', '.join(nearby[1:3])}{', ...' if len(nearby) > 3 else ''})" if len(nearby) > 1 else ""
        raise NotFMRIPrepError(f"{exc}; did you mean {nearby[0]}?{others}") from None
    ruleset = load_rulesets(list(rules) or [default_rules(dataset)]).with_cli_globs(tuple(keep), tuple(junk))
    plan = build_plan(dataset, ruleset,
                      Selection.from_labels(list(participant_labels), exclude=list(exclude_participant_labels)),
                      now=now, state_dir=state_dir_for(dataset.identity, state_dir) if state_dir else None,
                      min_age=min_age, stale_after=stale_after, path_map=tuple(sorted((path_map or {}).items())))
    if from_scan is not None:
        plan = dataclasses.replace(plan, scan_list=scan_list_for(plan, from_scan, scan_format))
    plan.check_selection()
    return with_jobs(plan, jobs)


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
