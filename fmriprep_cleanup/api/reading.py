"""The commands that read one dataset and change nothing: open a plan, report, plan, status, explain,
regenerate; and the rule sets and the energy model they use. (The stages each function uses are imported when it is first called.)"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

from ..basics.archivetree import ArchiveTree
from ..basics.errors import CleanupError
from ..plan.options import DEFAULT_MIN_AGE, PlanOptions

if TYPE_CHECKING:
    from ..energy.model import Assumptions
    from ..fmriprep.layout import Dataset
    from ..fmriprep.rebuild import Recipe
    from ..plan.plan import Plan
    from ..rules.model import RuleSet

Progress = Callable[[int, int], None]  # called with (files, bytes) after each folder scanned


def default_rules(dataset: Dataset) -> str:
    """The rule set used when none is given: the pipeline's default (default for fMRIPrep, qsiprep-default...)."""
    from ..plan.open import default_rules as pipeline_default

    return pipeline_default(dataset)


def energy_model(ruleset: RuleSet, profile: str | None = None, pue: float | None = None, copies: float | None = None,
                 carbon_intensity: float | None = None, country: str | None = None) -> Assumptions:
    """The storage energy and carbon model: these overrides beat the rule set's energy: section, which beats
    the storage profile."""
    from ..energy.model import model_for

    return model_for(ruleset.energy, profile=profile, pue=pue, copies=copies, carbon_intensity=carbon_intensity,
                     country=country)


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
    (threads on a network file system, default 8; processes on a local disk, default every usable core once
    the dataset has enough subjects: see basics.mounts.default_processes); ``min_age``: activity this recent
    means running, junk this recent is held back; ``stale_after``: an idle failed run's cache is stale after
    this long; ``state_dir``: where the lock and journal live; ``now``: the time to judge ages at;
    ``path_map``: {path a run recorded inside a container: the same path here}, for the inputs regeneration
    guards look for; ``from_scan``: a scan list (ncdu/gdu JSON, find -printf, GPFS LIST; ``scan_format`` or
    detected) read instead of walking. Each option is declared once, checked the same from here and from the
    command line (plan/options.py: PlanOptions). Nothing is read beyond the dataset's top folders until the
    plan is iterated.
    """
    return open_plan_with(_checked(
        path=path, rules=list(rules), work_dir=work_dir, find_work_dir=find_work_dir,
        participant_labels=list(participant_labels), exclude_participant_labels=list(exclude_participant_labels),
        keep=list(keep), junk=list(junk), jobs=jobs, min_age=min_age, stale_after=stale_after, state_dir=state_dir,
        now=now, path_map=path_map, from_scan=from_scan, scan_format=scan_format))


def open_plan_with(options: PlanOptions) -> Plan:
    """The plan an option set already made (and so checked) opens: what the command line and a shard's merge
    hold; the same as open_plan(**fields of ``options``)."""
    from ..plan.open import open_plan as open_checked

    return open_checked(options)


def plan_options(path: str, rules: Iterable[str] = (), work_dir: str | None = None, find_work_dir: bool = True,
                 participant_labels: Iterable[str] = (), keep: Iterable[str] = (), junk: Iterable[str] = (),
                 min_age: float = DEFAULT_MIN_AGE, stale_after: float | None = None,
                 path_map: dict[str, str] | None = None, from_scan: str | None = None,
                 scan_format: str | None = None) -> dict[str, Any]:
    """open_plan's arguments as plain JSON: what a shard records so the merge opens the same plan."""
    return _checked(path=path, rules=list(rules), work_dir=work_dir, find_work_dir=find_work_dir,
                    participant_labels=list(participant_labels), keep=list(keep), junk=list(junk), min_age=min_age,
                    stale_after=stale_after, path_map=path_map, from_scan=from_scan,
                    scan_format=scan_format).recorded()


def _checked(**options: Any) -> PlanOptions:
    """The options, checked: CleanupError (the command line's one line) naming the one that is not right."""
    try:
        return PlanOptions(**options)
    except ValueError as exc:
        raise CleanupError(str(exc)) from None


def make_report(plan: Plan, energy: Assumptions | dict[str, Any] | None = None, command: str | None = None,
                progress: Progress | None = None, compute_estimate: float | None = None,
                retention: str | None = None) -> dict[str, Any]:
    """Scan once and summarise: the dictionary `report --format json` prints (``energy``: the model, or overrides
    of the rule set's model, as energy_model takes them; default: the rule set's; ``command``: how the report
    was made, shown in it; ``compute_estimate``: kgCO2e per subject for subjects without a CodeCarbon record,
    marked as an estimate; ``retention``: a policy file whose retention plan is shown over time)."""
    from ..energy.model import Assumptions
    from ..plan.shares import archive_figures, summarize
    from ..report.data import report_data

    model = energy if isinstance(energy, Assumptions) else energy_model(plan.ruleset, **(energy or {}))
    summary, statuses, warnings = summarize(plan, progress)  # in plan.processes processes: the same summary
    data = report_data(plan.dataset, plan.ruleset, summary, warnings, plan.selection.participant_labels, model,
                       command, statuses, compute_estimate, plan.status_book().stale_after,
                       regeneration_checks(plan, statuses))
    if retention:
        data["retention"] = retention_timeline(plan, retention, energy=model)
    if isinstance(plan.scan_list, ArchiveTree):
        data["dataset"]["archive"] = archive_figures(plan, plan.scan_list)  # plan/shares.py
        data["dataset"]["notes"].append(archive_note(data["dataset"]["archive"]))
    return data


def archive_note(figures: dict[str, Any]) -> str:
    from humanize import naturalsize

    return (f"the {figures['kind']} file takes {naturalsize(figures['bytes'], binary=True)}; its "
            f"{figures['junk_members']:,} junk members take {naturalsize(figures['junk_stored_bytes'], binary=True)} "
            "of it, what rewriting it without them frees (the sizes below are unpacked)")


def write_plan(plan: Plan, stream: IO[str], fmt: str = "tsv", only: str | None = None,
               progress: Progress | None = None) -> list[str]:
    """Write the plan, one line per file (`plan --format FMT`; ``only``: files with this action), to
    ``stream``; returns the warnings of the scan."""
    from ..report.planfile import write_plan_of

    write_plan_of(plan, stream, fmt, only, progress)
    return plan.all_warnings()


def make_status(plan: Plan, only: Iterable[str] = (), progress: Progress | None = None) -> dict[str, Any]:
    """Each selected subject's run status with its evidence (``only``: these statuses): `status --format json`."""
    from ..report.data import status_data

    return status_data(plan, plan.summarize(progress), only)


def explain(plan: Plan, files: Iterable[str]) -> list[dict[str, Any]]:
    """Why each file is kept or junk: `explain --format json`."""
    from ..plan.explain import explain_file

    return [explain_file(plan, file) for file in files]


def retention_timeline(plan: Plan, policy: str, entry: str | None = None,
                       energy: Assumptions | None = None) -> dict[str, Any]:
    """What the retention plan of a policy entry (``entry``: its name; default: the first with a retention
    plan) will do to ``plan``'s dataset over time: `report --retention POLICY`."""
    from ..ops.policy import load_policy
    from ..ops.retention import idle_junk, timeline

    loaded = load_policy(policy)
    chosen = [item for item in loaded.entries if item.retention and (entry is None or item.name == entry)]
    if not chosen:
        raise CleanupError(f"{policy}: no entry{f' named {entry!r}' if entry else ''} with a retention plan")
    steps = list(chosen[0].retention)
    summary = plan.summarize()
    junk = idle_junk(plan, [step.category for step in steps])
    rows = timeline(summary.totals.bytes - summary.totals.elsewhere_bytes, steps, junk,
                    chosen[0].expire_archives_after, energy or energy_model(plan.ruleset))
    return {"policy": os.path.abspath(policy), "entry": chosen[0].name,
            "steps": [{"category": step.category, "archive_after_days": None if step.archive_after is None
                       else step.archive_after / 86400, "delete_after_days": None if step.delete_after is None
                       else step.delete_after / 86400} for step in steps],
            "expire_archives_after_days": None if chosen[0].expire_archives_after is None
            else chosen[0].expire_archives_after / 86400, "timeline": rows}


def regeneration_recipes(plan: Plan) -> tuple[list[Recipe], list[tuple[str, str]]]:
    """The commands that rebuild what the plan's guarded rules reclaim: a recipe for each selected subject with
    some run (or its anatomy) that passes every guard, and (subject, why not) for the others. CleanupError when
    no rule is guarded."""
    book = plan.regeneration()
    if book is None:
        raise CleanupError(f"no rule of {', '.join(plan.ruleset.names)} is guarded by regeneration: nothing it "
                           "reclaims is meant to be rebuilt (try --rules regenerable)")
    labels = sorted(label for label in plan.status_book().subjects() if plan.selection.wants(label))
    reclaimed = reclaimed_files(plan)
    recipes, refused = [], []
    for label in labels:
        checks = book.checks([label])
        if any(check.problem is None for check in checks):
            recipes.append(book.recipe(label, tuple(reclaimed.get(label, ()))))
        else:
            refused.append((label, next((check.problem for check in checks if check.problem), None)
                            or "none of its outputs is one the transform stage writes"))
    return recipes, refused


def reclaimed_files(plan: Plan) -> dict[str, list[str]]:
    """Per subject, the files its guarded rules reclaim (the plan's junk of those rules) or reclaimed (what the
    dataset's journals record as removed under those rules' categories): what a rebuild must give back."""
    from ..basics.journals import removed_files
    from ..plan import shares

    guarded = {rule.id for rule in plan.ruleset.rules if rule.guard}
    categories = {rule.category for rule in plan.ruleset.rules if rule.guard}
    found: dict[str, list[str]] = {}
    for planned in shares.files(plan):
        if planned.action == "junk" and planned.rule_id in guarded and planned.subject:
            found.setdefault(planned.subject, []).append(planned.path)
    output = plan.dataset.derivatives or ""
    for path, category in removed_files(plan.state_dir or plan.dataset.state_dir):
        top = os.path.relpath(path, output).split(os.sep)[0] if output else ""
        if category in categories and top.startswith("sub-") and not os.path.lexists(path):
            found.setdefault(top[4:], []).append(path)
    return {label: sorted(set(paths)) for label, paths in found.items()}


def regenerable_rules(path: str) -> str:
    """The shipped regenerable rule set of the pipeline whose output ``path`` is (regenerable for fMRIPrep,
    qsiprep-minimal...); CleanupError for a pipeline without one."""
    from ..fmriprep.pipelines import pipeline_by_key

    pipeline = pipeline_by_key(open_plan(path, find_work_dir=False).dataset.pipeline)
    if pipeline.regenerable is None:
        raise CleanupError(f"{pipeline.name} has no regenerable rule set: give one with --rules")
    return pipeline.regenerable


def recipes_text(recipes: list[Recipe], sbatch: bool = False) -> str:
    """The recipes as bash scripts, one after another, or (``sbatch``) one Slurm array script, a task each."""
    from ..fmriprep.rebuild import sbatch_script

    return sbatch_script(recipes) if sbatch else "\n".join(recipe.script() for recipe in recipes)


def regeneration_checks(plan: Plan, subjects: Iterable[str]) -> list[dict[str, Any]] | None:
    """Under a guarded rule set, each subject's BOLD runs and anatomy with whether they can be rebuilt
    (None: no rule is guarded)."""
    book = plan.regeneration()
    return [check.as_dict() for check in book.checks(sorted(subjects))] if book is not None else None


def rule_sets() -> list[tuple[str, str]]:
    """The shipped rule sets: (name, who it is for, in one sentence)."""
    from ..rules.rulesets import shipped_rulesets

    return shipped_rulesets()


def load_rules(references: Iterable[str] = ()) -> RuleSet:
    """Rule sets by shipped name or YAML path, combined (a later one extends the earlier); validated, every
    problem reported with file:line."""
    from ..rules.rulesets import load_rulesets

    return load_rulesets(list(references))


def demo(destination: str) -> tuple[str, str]:
    """Build the demo project (a real fMRIPrep output shape, sparse files) under ``destination``: returns
    (output directory, working directory)."""
    from ..fmriprep.demo import build_demo

    return build_demo(destination)
