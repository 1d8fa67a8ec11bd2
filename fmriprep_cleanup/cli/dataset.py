"""Commands that read one dataset and change nothing: report, plan, status, explain."""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..basics.errors import CleanupError
from ..report.outputs import PLAN_FORMATS, REPORT, STATUS, View
from ..report.people import SUBJECT_STATUSES
from .common import (
    Progress,
    action_option,
    apply_options,
    command_line,
    energy_options,
    energy_overrides,
    format_option,
    open_plan,
    output_option,
    plan_options,
    quiet_option,
    screen_width,
    selection_options,
    shard_of,
    shard_options,
    warn,
    wide_option,
    write_output,
)


def report_file_options(command: Callable) -> Callable:
    """Where a report goes and how much it says (report, merge; merge has its own --format)."""
    return apply_options([
        output_option,
        quiet_option,
        click.option("--all", "all_subjects", is_flag=True,
                     help="List every subject (default: the 20 with the most junk)."),
    ], command)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@energy_options
@format_option(REPORT.names(), REPORT.default, REPORT.note)
@report_file_options
@click.option("--compute-estimate", type=float, metavar="KG",
              help="kgCO2e of one subject's fMRIPrep run, for subjects without a CodeCarbon record (marked as an estimate).")
@click.option("--retention", "retention_policy", type=click.Path(dir_okay=False, path_type=str), metavar="POLICY",
              help="Show what this policy's retention plan will do to the dataset over time.")
@shard_options("a share of the subjects")
@wide_option
def report(path: str, fmt: str, output: str | None, quiet: bool, all_subjects: bool, compute_estimate: float | None,
           retention_policy: str | None, shard: str | None, partial_out: str | None, wide: bool, **given: Any) -> None:
    """Summarise what PATH holds: keep and junk by category and by subject, and what it costs per year (read-only).

    \b
    Examples:
      fmriprep-cleanup report /data/ds003752/derivatives/fmriprep
      fmriprep-cleanup report OUT --work-dir $SCRATCH/work --format html -o report.html
    """
    from ..api.reading import make_report
    from ..api.shards import make_partial

    options, energy, share = plan_options(path, given), energy_overrides(given), shard_of(shard, partial_out)
    if share is not None:
        from ..basics.formats import strict_json

        with Progress(not quiet) as progress:
            result = make_partial(options.recorded(), *share, progress.callback())
        write_output(strict_json(result) + "\n", partial_out)
        warn(result["warnings"])
        return
    with Progress(not quiet) as progress:
        data = make_report(open_plan(options), energy, command_line(), progress.callback(), compute_estimate,
                           retention_policy)
    write_report(data, fmt, output, wide, all_subjects)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@format_option(list(PLAN_FORMATS), PLAN_FORMATS[0])
@action_option
@output_option
@quiet_option
@shard_options("a share of the subjects")
def plan(path: str, fmt: str, action: str | None, old_action: str | None, output: str | None, quiet: bool,
         shard: str | None, partial_out: str | None, **given: Any) -> None:
    """One line per file: action, category, rule id, size in bytes, path (read-only).

    \b
    Examples:
      fmriprep-cleanup plan OUT --action junk > junk.tsv
      fmriprep-cleanup plan OUT --format jsonl --participant-label 01 | head
      fmriprep-cleanup plan OUT --shard 1/4 --partial-out p1.jsonl   # then: merge p*.jsonl
    """
    from ..api.reading import write_plan
    from ..api.shards import write_plan_partial

    options, share = plan_options(path, given), shard_of(shard, partial_out)
    if share is not None:
        with Progress(not quiet) as progress:
            warnings = write_output(functools.partial(write_plan_partial, options.recorded(), *share,
                                                      progress=progress.callback()), partial_out)
        warn(warnings)
        return
    if output is None or output == "-":
        sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]  # odd bytes in names pass through
    watched = not quiet and not (output in (None, "-") and sys.stdout.isatty())  # lines on the screen are progress
    with Progress(watched) as progress:
        warnings = write_output(functools.partial(write_plan, open_plan(options), fmt=fmt, only=action or old_action,
                                                  progress=progress.callback()), output)
    warn(warnings)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@click.option("--only", type=click.Choice(SUBJECT_STATUSES), multiple=True,
              help="Only subjects with this status (repeatable).")
@format_option(STATUS.names(), STATUS.default)
@output_option
@quiet_option
@wide_option
def status(path: str, only: tuple[str, ...], fmt: str, output: str | None, quiet: bool, wide: bool,
           **given: Any) -> None:
    """Each subject's fMRIPrep run: finished, failed, running, incomplete, unknown or orphaned, with its evidence.

    \b
    Examples:
      fmriprep-cleanup status OUT
      fmriprep-cleanup status OUT --only failed --format tsv
    """
    from ..api.reading import make_status

    with Progress(not quiet) as progress:
        data = make_status(open_plan(plan_options(path, given)), only, progress.callback())
    warn(data["warnings"])
    write_output(STATUS.render(fmt, data, View(screen_width(wide, output))), output)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@selection_options
@format_option(["text", "json"], "text")
@output_option
def explain(path: str, files: tuple[str, ...], fmt: str, output: str | None, **given: Any) -> None:
    """Why each FILE is kept or junk: its scope, subject, entities and the rule that matched.

    \b
    Examples:
      fmriprep-cleanup explain OUT OUT/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz
      fmriprep-cleanup explain OUT OUT/sub-01.html --format json
    """
    from ..api.reading import explain as explain_files
    from ..basics.formats import output_json
    from ..report.explain import render_explanation

    explanations = explain_files(open_plan(plan_options(path, given)), files)
    if fmt == "json":
        write_output(output_json(explanations, indent=2) + "\n", output)
    else:
        write_output("\n".join(render_explanation(item) for item in explanations), output)


@click.command()
@click.argument("partials", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@energy_options
@format_option(sorted(set(REPORT.names()) | set(PLAN_FORMATS), key=(REPORT.names() + list(PLAN_FORMATS)).index), None,
               "A report's or an audit's (default text), or a plan's (tsv, the default, jsonl or csv).")
@action_option
@report_file_options
@wide_option
def merge(partials: tuple[str, ...], fmt: str | None, action: str | None, old_action: str | None,
          output: str | None, quiet: bool, all_subjects: bool, wide: bool, **given: Any) -> None:
    """The report, audit or plan of a scan done in shards, from their partial results (--shard K/N
    --partial-out FILE).

    Reads the shared folders itself (their judgement needs every subject's status) and refuses partials that
    are not all the shards of one scan, naming the missing ones.

    \b
    Examples:
      fmriprep-cleanup report OUT --shard 1/2 --partial-out p1.json   # one per shard, anywhere
      fmriprep-cleanup merge p1.json p2.json --format html -o report.html
      fmriprep-cleanup merge plan-*.jsonl --action junk > junk.tsv
    """
    from ..api.shards import is_plan_partial, merge_partials

    only = action or old_action
    if is_plan_partial(partials[0]):
        merge_plan(partials, fmt or PLAN_FORMATS[0], only, output, quiet)
        return
    if only is not None:
        raise CleanupError("--action is a plan's option: these are a report's (or an audit's) partial results")
    if fmt in PLAN_FORMATS and fmt not in REPORT.names():
        raise CleanupError(f"--format {fmt} is a plan's: these are a report's (or an audit's) partial results")
    with Progress(not quiet) as progress:
        data = merge_partials(list(partials), energy_overrides(given), command_line(), progress.callback())
    if "datasets" in data:  # the shards of an audit
        from .hygiene import write_audit

        write_audit(data, fmt or "text", output, wide)
        return
    write_report(data, fmt or REPORT.default, output, wide, all_subjects)


def merge_plan(partials: tuple[str, ...], fmt: str, only: str | None, output: str | None, quiet: bool) -> None:
    """`merge` of plan partials: the plan, streamed, then its warnings."""
    from ..api.shards import write_merged_plan

    if fmt not in PLAN_FORMATS:
        raise CleanupError(f"--format {fmt} is a report's: a plan is written as tsv, jsonl or csv")
    if output is None or output == "-":
        sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]  # odd bytes in names pass through
    with Progress(not quiet) as progress:
        warnings = write_output(functools.partial(write_merged_plan, list(partials), fmt=fmt, only=only,
                                                  progress=progress.callback()), output)
    warn(warnings)


def write_report(data: dict[str, Any], fmt: str, output: str | None, wide: bool, all_subjects: bool) -> None:
    """A dataset report in the format asked for, to --output or stdout, its warnings on stderr."""
    warn(data["warnings"])
    write_output(REPORT.render(fmt, data, View(screen_width(wide, output), all_subjects)), output)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@click.option("--sbatch", is_flag=True, help="One Slurm array script for every subject (a task each) instead of a script per subject.")
@format_option(["sh", "json"], "sh")
@output_option
def regenerate(path: str, sbatch: bool, fmt: str, output: str | None, **given: Any) -> None:
    """Print the commands that rebuild what a regenerable rule set reclaims (or reclaimed) from PATH: per subject,
    the recorded version and options of its run, reusing the fit outputs kept beside them (read-only).

    \b
    Examples:
      fmriprep-cleanup regenerate OUT --participant-label 01 -o regenerate-sub-01.sh
      fmriprep-cleanup regenerate OUT --sbatch > regenerate.sbatch && sbatch regenerate.sbatch
    """
    from ..api.reading import recipes_text, regenerable_rules, regeneration_recipes
    from ..basics.formats import output_json
    from ..basics.grouping import grouped, grouped_line

    options = plan_options(path, given)
    if not options.rules:
        options = dataclasses.replace(options, rules=(regenerable_rules(path),))
    recipes, refused = regeneration_recipes(open_plan(options))
    groups = grouped((f"sub-{label}", why) for label, why in refused)
    if not recipes:
        raise CleanupError("no subject's outputs can be rebuilt here: " + grouped_line(groups[0], "subject")
                           + (f"; and {len(groups) - 1} other reason(s) (report --rules regenerable lists them)"
                              if len(groups) > 1 else ""))
    for group in groups:
        click.echo("fmriprep-cleanup: left out, " + grouped_line(group, "subject"), err=True)
    if fmt == "json":
        write_output(output_json({"recipes": [recipe.as_dict() for recipe in recipes],
                                  "left_out": [{"subject": label, "why": why} for label, why in refused]},
                                 indent=2) + "\n", output)
    else:
        write_output(recipes_text(recipes, sbatch), output)
