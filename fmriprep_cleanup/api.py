"""The Python API: every command's logic, callable from a notebook or another tool without the command line.

Each function takes and returns plain values (paths, numbers, dictionaries: the JSON contract of the matching
command) or the pipeline's own objects (``Plan``, ``CleanResult``). Bad input raises ``CleanupError`` with the
message the command line would print. Durations are seconds here; the command line parses "1h" or "30d".

    import fmriprep_cleanup as fc
    plan = fc.open_plan("/data/derivatives/fmriprep", participant_labels=["01"])
    report = fc.make_report(plan)            # the same dictionary as `report --format json`
    result = fc.clean(plan)                  # a dry run: what `clean` would remove, to the byte
    result = fc.clean(plan, fc.CleanOptions(mode="archive", archive_dir="/archive/lab"))

Read-only commands (report, plan, status, explain, audit) never import the acting layer (act/): it is loaded by
clean, restore and archives only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

from .basics.errors import CleanupError
from .energy.overrides import EnergyOverrides
from .fmriprep.statuses import SUBJECT_STATUSES
from .ops.history import COLUMNS as HISTORY_COLUMNS
from .plan.options import DEFAULT_MIN_AGE, CleanOptions, Declined, PlanOptions, parse_path_maps, parse_shard

# The stages each function uses are imported when it is first called: `fmriprep-cleanup --help`, and every
# command, start without loading what they do not use (the command line builds its options from this module).
if TYPE_CHECKING:
    from .act.clean import CleanResult
    from .act.restore import RestoreOutcome
    from .act.worklist import ActProgress, Outcome, Worklist
    from .energy.model import Assumptions
    from .fmriprep.layout import Dataset
    from .fmriprep.rebuild import Recipe
    from .ops.history import History
    from .ops.shards import MergedPlan
    from .plan.plan import Plan
    from .rules.model import RuleSet

__all__ = ["CleanOptions", "DEFAULT_MIN_AGE", "Declined", "EnergyOverrides", "HISTORY_COLUMNS", "PlanOptions",
           "SUBJECT_STATUSES", "default_rules", "is_plan_partial", "open_plan", "parse_path_maps", "parse_shard"]  # and every function below

Progress = Callable[[int, int], None]  # called with (files, bytes) after each folder scanned


def default_rules(dataset: Dataset) -> str:
    """The rule set used when none is given: the pipeline's default (default for fMRIPrep, qsiprep-default...)."""
    from .plan.open import default_rules as pipeline_default

    return pipeline_default(dataset)


def is_plan_partial(path: str) -> bool:
    """Whether ``path`` is a plan's partial result (`plan --shard K/N --partial-out FILE`), not a report's."""
    from .ops.shards import is_plan_partial as starts_as_one

    return starts_as_one(path)


def energy_model(ruleset: RuleSet, profile: str | None = None, pue: float | None = None, copies: float | None = None,
                 carbon_intensity: float | None = None, country: str | None = None) -> Assumptions:
    """The storage energy and carbon model: these overrides beat the rule set's energy: section, which beats
    the storage profile."""
    from .energy.model import model_for

    return model_for(ruleset.energy, profile=profile, pue=pue, copies=copies, carbon_intensity=carbon_intensity,
                     country=country)


def make_report(plan: Plan, energy: Assumptions | dict[str, Any] | None = None, command: str | None = None,
                progress: Progress | None = None, compute_estimate: float | None = None,
                retention: str | None = None) -> dict[str, Any]:
    """Scan once and summarise: the dictionary `report --format json` prints (``energy``: the model, or overrides
    of the rule set's model, as energy_model takes them; default: the rule set's; ``command``: how the report
    was made, shown in it; ``compute_estimate``: kgCO2e per subject for subjects without a CodeCarbon record,
    marked as an estimate; ``retention``: a policy file whose retention plan is shown over time)."""
    from .energy.model import Assumptions
    from .plan.shares import summarize
    from .report.data import report_data

    model = energy if isinstance(energy, Assumptions) else energy_model(plan.ruleset, **(energy or {}))
    summary, statuses, warnings = summarize(plan, progress)  # in plan.processes processes: the same summary
    data = report_data(plan.dataset, plan.ruleset, summary, warnings, plan.selection.participant_labels, model,
                       command, statuses, compute_estimate, plan.status_book().stale_after,
                       regeneration_checks(plan, statuses))
    if retention:
        data["retention"] = retention_timeline(plan, retention, energy=model)
    return data


def write_plan(plan: Plan, stream: IO[str], fmt: str = "tsv", only: str | None = None,
               progress: Progress | None = None) -> list[str]:
    """Write the plan, one line per file (`plan --format FMT`; ``only``: files with this action), to
    ``stream``; returns the warnings of the scan."""
    from .report.planfile import write_plan_of

    write_plan_of(plan, stream, fmt, only, progress)
    return plan.all_warnings()


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
    from .basics.journals import removed_files
    from .plan import shares

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
    from .fmriprep.pipelines import pipeline_by_key

    pipeline = pipeline_by_key(open_plan(path, find_work_dir=False).dataset.pipeline)
    if pipeline.regenerable is None:
        raise CleanupError(f"{pipeline.name} has no regenerable rule set: give one with --rules")
    return pipeline.regenerable


def recipes_text(recipes: list[Recipe], sbatch: bool = False) -> str:
    """The recipes as bash scripts, one after another, or (``sbatch``) one Slurm array script, a task each."""
    from .fmriprep.rebuild import sbatch_script

    return sbatch_script(recipes) if sbatch else "\n".join(recipe.script() for recipe in recipes)


def regeneration_checks(plan: Plan, subjects: Iterable[str]) -> list[dict[str, Any]] | None:
    """Under a guarded rule set, each subject's BOLD runs and anatomy with whether they can be rebuilt
    (None: no rule is guarded)."""
    book = plan.regeneration()
    return [check.as_dict() for check in book.checks(sorted(subjects))] if book is not None else None


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
    from .plan.open import open_plan as open_checked

    return open_checked(_checked(
        path=path, rules=list(rules), work_dir=work_dir, find_work_dir=find_work_dir,
        participant_labels=list(participant_labels), exclude_participant_labels=list(exclude_participant_labels),
        keep=list(keep), junk=list(junk), jobs=jobs, min_age=min_age, stale_after=stale_after, state_dir=state_dir,
        now=now, path_map=path_map, from_scan=from_scan, scan_format=scan_format))


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


def make_partial(options: dict[str, Any], shard: int, shards: int, progress: Progress | None = None) -> dict[str, Any]:
    """Scan shard ``shard`` (0-based) of ``shards`` of the plan ``options`` describe (see plan_options): the
    partial result `report --shard K/N --partial-out FILE` writes."""
    from .ops.shards import partial

    return partial(open_plan(**options), options, shard, shards, progress)


def merge_partials(partials: Iterable[str | dict[str, Any]], energy: dict[str, Any] | None = None,
                   command: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The report (`report --format json`) of a scan done in shards, from their partial results (paths or
    dictionaries); refuses partials that are not of one scan, and names missing shards."""
    from .ops.shards import AUDIT_PARTIAL_FORMAT, check_partials, merge
    from .report.data import audit_data, report_data
    from .rules.rulesets import load_rulesets

    loaded = load_partials(partials)
    check_partials(loaded)
    options = loaded[0][1]["options"]
    if loaded[0][1]["format"] == AUDIT_PARTIAL_FORMAT:  # an audit's shards: their rows, sorted as one audit
        ruleset = load_rulesets(options["rules"])
        first = loaded[0][1]
        return audit_data(options["roots"], ruleset, energy_model(ruleset, **options["energy"]),
                          [row for _, data in loaded for row in data["rows"]], first["warnings"], first["failed"],
                          command)
    plan = open_plan(**options)
    shared, summary, statuses, warnings = merge(loaded, plan, progress)
    model = energy_model(plan.ruleset, **(energy or {}))
    return report_data(plan.dataset, plan.ruleset, summary, warnings, plan.selection.participant_labels, model,
                       command, statuses, regeneration=regeneration_checks(plan, statuses))


def load_partials(partials: Iterable[str | dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Partial results (paths or dictionaries) with their names: a plan partial is read through and checked."""
    from .ops.shards import is_plan_partial, read_partial, read_plan_partial

    return [(item, read_plan_partial(item) if is_plan_partial(item) else read_partial(item)) if isinstance(item, str)
            else (f"partial {index + 1}", item) for index, item in enumerate(partials)]


def write_plan_partial(options: dict[str, Any], shard: int, shards: int, stream: IO[str],
                       progress: Progress | None = None) -> list[str]:
    """Plan shard ``shard`` (0-based) of ``shards`` of the plan ``options`` describe and write its plan
    partial to ``stream`` (`plan --shard K/N --partial-out FILE`); returns its warnings."""
    from .ops.shards import write_plan_partial as write

    return list(write(open_plan(**options), options, shard, shards, stream, progress)["warnings"])


def write_merged_plan(partials: Iterable[str | dict[str, Any]], stream: IO[str], fmt: str = "tsv",
                      only: str | None = None, progress: Progress | None = None) -> list[str]:
    """Write the plan of a scan done in shards, from their plan partials (`merge`), as write_plan writes a plan;
    returns its warnings."""
    from .report.planfile import write_plan as write_lines

    merged = merge_plan_partials(partials, progress)
    write_lines(merged.files(), stream, fmt, only)
    return merged.warnings()


def merge_plan_partials(partials: Iterable[str | dict[str, Any]], progress: Progress | None = None) -> MergedPlan:
    """The plan of a scan done in shards (`merge` of plan partials): ``.files()`` streams it in the unsharded
    plan's order, ``.warnings()`` then says what went wrong; refuses partials that are not of one scan."""
    from .ops.shards import PLAN_PARTIAL_FORMAT, check_partials, merge_plan

    loaded = load_partials(partials)
    check_partials(loaded)
    if loaded[0][1]["format"] != PLAN_PARTIAL_FORMAT:
        raise CleanupError("these are a report's (or an audit's) partial results, not a plan's")
    return merge_plan(loaded, open_plan(**loaded[0][1]["options"]), progress)


def report_in_processes(options: dict[str, Any], processes: int, energy: Assumptions | None = None,
                        command: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Deprecated (goes in the next release): ``make_report(open_plan(**options, jobs=processes))`` is the same
    report, made the way every report is."""
    import warnings

    warnings.warn("report_in_processes(options, processes) is deprecated and goes in the next release: use "
                  "make_report(open_plan(**options, jobs=processes))", DeprecationWarning, stacklevel=2)
    return make_report(open_plan(**options, jobs=processes), energy, command, progress)


def retention_timeline(plan: Plan, policy: str, entry: str | None = None,
                       energy: Assumptions | None = None) -> dict[str, Any]:
    """What the retention plan of a policy entry (``entry``: its name; default: the first with a retention
    plan) will do to ``plan``'s dataset over time: `report --retention POLICY`."""
    from .ops.policy import load_policy
    from .ops.retention import idle_junk, timeline

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


def make_status(plan: Plan, only: Iterable[str] = (), progress: Progress | None = None) -> dict[str, Any]:
    """Each selected subject's run status with its evidence (``only``: these statuses): `status --format json`."""
    from .report.data import status_data

    return status_data(plan, plan.summarize(progress), only)


def explain(plan: Plan, files: Iterable[str]) -> list[dict[str, Any]]:
    """Why each file is kept or junk: `explain --format json`."""
    from .plan.explain import explain_file

    return [explain_file(plan, file) for file in files]


def clean(plan: Plan, options: CleanOptions | None = None, *, confirm: Callable[[Outcome, int], bool] | None = None,
          show: Callable[[Worklist], None] | None = None, energy: Assumptions | None = None,
          history: History | str | None = None, record: bool | None = None, progress: Progress | None = None,
          act_progress: ActProgress | None = None, shard: tuple[int, int] | None = None,
          shared_only: bool = False) -> CleanResult:
    """Dry-run (the default), archive or delete the plan's junk as ``options`` say (see CleanOptions), and record
    the run in the history - the path every clean run takes, policy runs included (ops/runs.py).

    ``confirm(preview, scanned_bytes)`` may say no after seeing the totals (then Declined is raised; None: the
    mode is the consent). ``history``: the history database's path (default $XDG_STATE_HOME/fmriprep-cleanup)
    or an open History, opened before acting so one that cannot be written stops the run before anything
    changes; ``record``: None records archive and delete runs, True also dry runs, False none.
    ``progress(files, bytes)``: after each folder scanned; ``act_progress(phase, files, bytes)``: after each
    file archived or removed. ``shard``: (K, N), 0-based - act as shard K of a job array of N on the plan's
    dataset: on its share of the subjects only, beside its sibling shards (see act.clean.clean);
    ``shared_only``: the last step after them, the files of no subject only (see shared_files_plan).
    """
    from .ops.runs import run_clean

    labels = None
    if shared_only:
        plan = shared_files_plan(plan)
    if shard is not None:
        from .plan.shares import shard_plan

        labels, plan = shard_plan(plan, *shard)
    return run_clean(plan, options or CleanOptions(), history, record, confirm, show, energy, progress, act_progress,
                     shard=labels)


def shared_files_plan(plan: Plan) -> Plan:
    """The plan of only the files of no subject (FreeSurfer's templates, the working directory's shared files):
    the last step after a job array of ``clean(shard=...)`` runs, once every subject's files are settled."""
    import dataclasses

    return dataclasses.replace(plan, selection=plan.selection.only(frozenset(), True))


def restore(source: str, to: str | None = None, participant_labels: Iterable[str] = (),
            progress: ActProgress | None = None) -> RestoreOutcome:
    """Put archived files back from an archive, its manifest or a folder of them (``to``: under this folder
    instead of where they were). An existing different file is never overwritten but reported.
    ``progress("restoring", files, bytes)`` is told after each file."""
    from .act.restore import restore as restore_files
    from .plan.selection import Selection

    return restore_files(source, to, Selection.from_labels(list(participant_labels)).participant_labels, progress)


def audit(roots: Iterable[str], rules: Iterable[str] = (), jobs: int | None = None, energy: dict[str, Any] | None = None,
          progress: Progress | None = None, path_map: dict[str, str] | None = None,
          command: str | None = None, from_scan: str | None = None, scan_format: str | None = None,
          announce: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Every fMRIPrep output below ``roots``, largest reclaimable first: `audit --format json` (its "failed"
    lists folders that looked like a dataset but could not be read). ``energy``: overrides, as energy_model's;
    ``path_map``: {path inside the container: the same path here}, for the output and working directories
    runs recorded; ``command``: how the audit was made, shown in it; ``announce(path, number, total)``: told
    as each dataset's scan starts."""
    from .ops.audit import audit as audit_roots
    from .report.data import audit_data
    from .rules.rulesets import load_rulesets

    roots = list(roots)
    ruleset = load_rulesets(list(rules))
    model = energy_model(ruleset, **(energy or {}))
    pairs = tuple((path_map or {}).items())
    scan = (os.path.abspath(from_scan), scan_format) if from_scan is not None else None
    rows, warnings, failed = audit_roots(roots, ruleset, model, jobs, progress, pairs, None, scan, announce)
    return audit_data(roots, ruleset, model, rows, warnings, failed, command)


def audit_shard(roots: Iterable[str], shard: int, shards: int, rules: Iterable[str] = (),
                energy: dict[str, Any] | None = None, progress: Progress | None = None,
                path_map: dict[str, str] | None = None) -> dict[str, Any]:
    """Shard ``shard`` (0-based) of ``shards`` of an audit - every shards-th dataset found, sorted by path - as
    the partial result `audit --shard K/N --partial-out FILE` writes; `merge` adds the shards up."""
    from .ops.audit import audit as audit_roots
    from .ops.shards import audit_partial, rules_digest
    from .rules.rulesets import load_rulesets

    roots = [os.path.abspath(root) for root in roots]
    ruleset = load_rulesets(list(rules))
    model = energy_model(ruleset, **(energy or {}))
    rows, warnings, failed = audit_roots(roots, ruleset, model, None, progress, tuple((path_map or {}).items()),
                                         (shard, shards))
    options = {"roots": roots, "rules": list(rules), "energy": energy or {}, "path_map": path_map or {}}
    return audit_partial(options, [row.as_dict() for row in rows], warnings, failed, rules_digest(ruleset),
                         shard, shards)


def run_policy(config: str, log: str | IO[str] | None = None, history_path: str | None = None,
               record: bool = False) -> tuple[list[Any], int]:
    """Run a storage-hygiene policy file unattended: the results (one per dataset) and the exit code. The
    policy is checked first: an invalid one is refused (CleanupError) before the log (a path, appended to, or
    an open stream) is opened or anything runs."""
    from .ops.hygiene import run_policy as run_loaded_policy
    from .ops.policy import load_policy

    policy = load_policy(config)
    if not isinstance(log, str):
        return run_loaded_policy(policy, log, history_path, record)
    from .basics.outputs import output_file

    with output_file(log, append=True) as handle:  # never through a link someone else planted
        return run_loaded_policy(policy, handle, history_path, record)


def history(history_path: str | None = None, since: float | None = None, command: str | None = None) -> dict[str, Any]:
    """The recorded runs (``since``: a Unix time) and their totals: `history --format json` (``command``: how
    the history was asked for, shown in the HTML page)."""
    from .ops.history import History
    from .report.data import history_data

    database = History(history_path)
    try:
        runs = database.runs(since)
    finally:
        database.close()
    return history_data(runs, command)


def schedule(kind: str, config: str, log: str | None = None) -> str:
    """The recipe that runs ``config`` every night under ``kind`` ("cron", "systemd" or "slurm"), with absolute
    paths; the policy is checked first (a schedule for a broken policy would only fail every night)."""
    from .ops.schedule import recipe

    return recipe(kind, config, log)


def slurm_array(dataset: str, shards: int, run_dir: str, options: Iterable[str] = (),
                clean: Iterable[str] | None = None) -> str:
    """The bash script that submits a sharded report of ``dataset`` to Slurm: a job array of ``shards`` tasks
    and a merge job after them (`schedule slurm-array`); ``options``: report options passed on.
    ``clean``: clean's options (["--mode", "delete"]): the array cleans, shard by shard, then the shared files."""
    from .ops.schedule import slurm_array as array_script

    return array_script(dataset, shards, run_dir, list(options), None if clean is None else list(clean))


def archives(action: str, directory: str, older_than: float | None = None, yes: bool = False,
             history_path: str | None = None) -> dict[str, Any]:
    """Archives over time (`archives list|verify|prune`): what ``directory`` holds; every member re-hashed
    against its manifest (``ok`` false and ``problems`` listed on any difference); or the runs older than
    ``older_than`` seconds removed (``yes``; else what would go). verify and prune are recorded in the history."""
    from .act import archives as managed
    from .ops.history import History, RunRecord

    started = time.time()
    if action == "list":
        return managed.list_archives(directory)
    if action == "verify":
        result = managed.verify_archives(directory)
        files, nbytes, failed = result["members"], 0, len(result["problems"])
    elif action == "prune":
        if older_than is None:
            raise CleanupError("archives prune needs --older-than (e.g. 5y)")
        result = managed.prune_archives(directory, older_than, yes)
        files, nbytes, failed = sum(run["archives"] for run in result["runs"]), result["bytes"], 0
        if not yes:
            return result
    else:
        raise CleanupError(f"unknown archives action {action!r}; one of list, verify, prune")
    database = History(history_path)
    try:
        record_run_of = RunRecord(started, time.time(), os.path.abspath(directory), "", action, files, nbytes, 0,
                                  failed, 0.0, 0.0, 3 if failed else 0)
        database.add(record_run_of)
    finally:
        database.close()
    return result


def journals(path: str, action: str = "list", runs: Iterable[str] = (), state_dir: str | None = None) -> dict[str, Any]:
    """Unfinished journals of the dataset at ``path`` (`journals list|discard|finish`): each with whether the
    next clean recovers it or why it will not; or those of ``runs`` set aside unread (discard), or, written by
    an earlier version, acted on as recovery would (finish)."""
    from .act import unfinished
    from .fmriprep.discovery import discover_dataset
    from .fmriprep.layout import state_dir_for

    dataset = discover_dataset(path, find_work_dir=False, state_base=state_dir)
    state = state_dir_for(dataset.identity, state_dir) if state_dir else dataset.state_dir
    if action == "list":
        return unfinished.list_journals(state)
    if action == "discard":
        return unfinished.discard_journals(state, list(runs), dataset.identity).as_dict()
    if action == "finish":
        return unfinished.finish_journals(state, list(runs), dataset.identity).as_dict()
    raise CleanupError(f"unknown journals action {action!r}; one of list, discard, finish")


def rule_sets() -> list[tuple[str, str]]:
    """The shipped rule sets: (name, who it is for, in one sentence)."""
    from .rules.rulesets import shipped_rulesets

    return shipped_rulesets()


def load_rules(references: Iterable[str] = ()) -> RuleSet:
    """Rule sets by shipped name or YAML path, combined (a later one extends the earlier); validated, every
    problem reported with file:line."""
    from .rules.rulesets import load_rulesets

    return load_rulesets(list(references))


def demo(destination: str) -> tuple[str, str]:
    """Build the demo project (a real fMRIPrep output shape, sparse files) under ``destination``: returns
    (output directory, working directory)."""
    from .fmriprep.demo import build_demo

    return build_demo(destination)
