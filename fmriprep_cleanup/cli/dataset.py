"""Commands that read one dataset and change nothing: report, plan, status, explain."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from ..basics.errors import CleanupError
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
    selection_options,
    shard_options,
    terminal_width,
    warn,
    wide_option,
    write_output,
)

REPORT_FORMATS = ["text", "json", "csv", "compute-csv", "html"]
PLAN_FORMATS = ["tsv", "jsonl", "csv"]


def report_output_options(command: Callable) -> Callable:
    """The options of every command that writes a dataset report (report): its format and report_file_options."""
    return apply_options([
        format_option(REPORT_FORMATS, "text",
                      "csv: the per-category table; compute-csv: compute and storage per subject."),
    ], report_file_options(command))


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
@report_output_options
@click.option("--compute-estimate", type=float, metavar="KG",
              help="kgCO2e of one subject's fMRIPrep run, for subjects without a CodeCarbon record (marked as an estimate).")
@click.option("--retention", "retention_policy", type=click.Path(dir_okay=False, path_type=str), metavar="POLICY",
              help="Show what this policy's retention plan will do to the dataset over time.")
@shard_options("a share of the subjects")
@wide_option
def report(path: str, fmt: str, output: str | None, quiet: bool, all_subjects: bool, compute_estimate: float | None,
           retention_policy: str | None, shard: str | None,
           partial_out: str | None, wide: bool, storage_profile: str | None, pue: float | None,
           copies: float | None, carbon_intensity: float | None, country: str | None, **selection: Any) -> None:
    """Summarise what PATH holds: keep and junk by category and by subject, and what it costs per year (read-only).

    \b
    Examples:
      fmriprep-cleanup report /data/ds003752/derivatives/fmriprep
      fmriprep-cleanup report OUT --work-dir $SCRATCH/work --format html -o report.html
    """
    from ..api import energy_model, make_partial, make_report

    if (shard is None) != (partial_out is None):
        raise CleanupError("--shard K/N and --partial-out FILE go together")
    plan = open_plan(path, **selection)
    progress = Progress(not quiet)
    if shard is not None and partial_out is not None:
        from ..api import parse_shard
        from ..basics.formats import strict_json

        number, count = parse_shard(shard)
        try:
            result = make_partial(plan_options(path, **selection), number, count, progress.callback())
        finally:
            progress.done()
        write_output(strict_json(result) + "\n", partial_out)
        warn(result["warnings"])
        return
    model = energy_model(plan.ruleset, **energy_overrides(storage_profile, pue, copies, carbon_intensity, country))
    try:
        data = make_report(plan, model, command_line(), progress.callback(), compute_estimate)
    finally:
        progress.done()
    if retention_policy:
        from ..api import retention_timeline

        data["retention"] = retention_timeline(plan, retention_policy, energy=model)
    write_report(data, fmt, output, wide, all_subjects)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@format_option(PLAN_FORMATS, "tsv")
@action_option
@output_option
@quiet_option
@shard_options("a share of the subjects")
def plan(path: str, fmt: str, action: str | None, old_action: str | None, output: str | None, quiet: bool,
         shard: str | None, partial_out: str | None, **selection: Any) -> None:
    """One line per file: action, category, rule id, size in bytes, path (read-only).

    \b
    Examples:
      fmriprep-cleanup plan OUT --action junk > junk.tsv
      fmriprep-cleanup plan OUT --format jsonl --participant-label 01 | head
      fmriprep-cleanup plan OUT --shard 1/4 --partial-out p1.jsonl   # then: merge p*.jsonl
    """
    from ..report.planfile import write_plan_of

    if (shard is None) != (partial_out is None):
        raise CleanupError("--shard K/N and --partial-out FILE go together")
    planned = open_plan(path, **selection)
    if shard is not None and partial_out is not None:
        from ..api import parse_shard, write_plan_partial

        number, count = parse_shard(shard)
        progress = Progress(not quiet)
        warnings: list[str] = []
        try:
            write_output(lambda stream: warnings.extend(write_plan_partial(
                plan_options(path, **selection), number, count, stream, progress.callback())), partial_out)
        finally:
            progress.done()
        warn(warnings)
        return
    to_stdout = output is None or output == "-"
    if to_stdout:
        sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]  # odd bytes in names pass through
    progress = Progress(not quiet and not (to_stdout and sys.stdout.isatty()))  # lines on the screen are progress
    try:
        write_output(lambda stream: write_plan_of(planned, stream, fmt, action or old_action,
                                                            progress.callback()), output)
    finally:
        progress.done()
    warn(planned.all_warnings())


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@click.option("--only", type=click.Choice(SUBJECT_STATUSES), multiple=True,
              help="Only subjects with this status (repeatable).")
@format_option(["text", "json", "tsv"], "text")
@output_option
@quiet_option
@wide_option
def status(path: str, only: tuple[str, ...], fmt: str, output: str | None, quiet: bool, wide: bool,
           **selection: Any) -> None:
    """Each subject's fMRIPrep run: finished, failed, running, incomplete, unknown or orphaned, with its evidence.

    \b
    Examples:
      fmriprep-cleanup status OUT
      fmriprep-cleanup status OUT --only failed --format tsv
    """
    from ..api import make_status
    from ..report.text import render_json, render_status_text, render_status_tsv

    plan = open_plan(path, **selection)
    progress = Progress(not quiet)
    try:
        data = make_status(plan, only, progress.callback())
    finally:
        progress.done()
    warn(plan.all_warnings())
    if fmt == "text":
        write_output(render_status_text(data, terminal_width(wide) if output in (None, "-") else None), output)
    else:
        write_output({"json": render_json, "tsv": render_status_tsv}[fmt](data), output)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@selection_options
@format_option(["text", "json"], "text")
@output_option
def explain(path: str, files: tuple[str, ...], fmt: str, output: str | None, **selection: Any) -> None:
    """Why each FILE is kept or junk: its scope, subject, entities and the rule that matched.

    \b
    Examples:
      fmriprep-cleanup explain OUT OUT/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz
      fmriprep-cleanup explain OUT OUT/sub-01.html --format json
    """
    from ..api import explain as explain_files
    from ..basics.formats import output_json
    from ..report.explain import render_explanation

    explanations = explain_files(open_plan(path, **selection), files)
    if fmt == "json":
        write_output(output_json(explanations, indent=2) + "\n", output)
    else:
        write_output("\n".join(render_explanation(item) for item in explanations), output)


@click.command()
@click.argument("partials", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@energy_options
@format_option(REPORT_FORMATS + PLAN_FORMATS[:2], None,
              "A report's or an audit's (default text), or a plan's (tsv, the default, jsonl or csv).")
@action_option
@report_file_options
@wide_option
def merge(partials: tuple[str, ...], fmt: str | None, action: str | None, old_action: str | None,
          output: str | None, quiet: bool,
          all_subjects: bool, wide: bool, storage_profile: str | None, pue: float | None, copies: float | None,
          carbon_intensity: float | None, country: str | None) -> None:
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
    from ..api import is_plan_partial, merge_partials

    only = action or old_action
    if is_plan_partial(partials[0]):
        merge_plan(partials, fmt or "tsv", only, output, quiet)
        return
    if only is not None:
        raise CleanupError("--action is a plan's option: these are a report's (or an audit's) partial results")
    if fmt in PLAN_FORMATS and fmt not in REPORT_FORMATS:
        raise CleanupError(f"--format {fmt} is a plan's: these are a report's (or an audit's) partial results")
    fmt = fmt or "text"
    progress = Progress(not quiet)
    try:
        data = merge_partials(list(partials), energy_overrides(storage_profile, pue, copies, carbon_intensity, country),
                              command_line(), progress.callback())
    finally:
        progress.done()
    if "datasets" in data:  # the shards of an audit
        from ..report.html import render_audit_html
        from ..report.text import render_audit_csv, render_audit_text, render_json

        warn(data["warnings"] + [f"{row['path']}: {w}" for row in data["datasets"] for w in row["warnings"]])
        width = terminal_width(wide) if output in (None, "-") else None
        renderers = {"html": render_audit_html, "json": render_json, "csv": render_audit_csv,
                     "text": lambda audit: render_audit_text(audit, width)}
        if fmt not in renderers:
            raise CleanupError(f"--format {fmt} is a report's, not an audit's: use text, json, csv or html")
        write_output(renderers[fmt](data), output)
        return
    write_report(data, fmt, output, wide, all_subjects)


def merge_plan(partials: tuple[str, ...], fmt: str, only: str | None, output: str | None, quiet: bool) -> None:
    """`merge` of plan partials: the plan, streamed, then its warnings."""
    from ..api import merge_plan_partials
    from ..report.planfile import write_plan

    if fmt not in PLAN_FORMATS:
        raise CleanupError(f"--format {fmt} is a report's: a plan is written as tsv, jsonl or csv")
    progress = Progress(not quiet)
    merged = merge_plan_partials(list(partials), progress.callback())
    if output is None or output == "-":
        sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]  # odd bytes in names pass through
    try:
        write_output(lambda stream: write_plan(merged.files(), stream, fmt, only), output)
    finally:
        progress.done()
    warn(merged.warnings())


def write_report(data: dict[str, Any], fmt: str, output: str | None, wide: bool, all_subjects: bool) -> None:
    """A dataset report in the format asked for, to --output or stdout, its warnings on stderr."""
    warn(data["warnings"])
    if fmt == "html":
        from ..report.html import render_html

        write_output(render_html(data), output)
    elif fmt == "text":
        from ..report.text import render_text

        write_output(render_text(data, terminal_width(wide) if output in (None, "-") else None, all_subjects), output)
    else:
        from ..report.text import RENDERERS

        write_output(RENDERERS[fmt](data), output)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@click.option("--sbatch", is_flag=True, help="One Slurm array script for every subject (a task each) instead of a script per subject.")
@format_option(["sh", "json"], "sh")
@output_option
def regenerate(path: str, sbatch: bool, fmt: str, output: str | None, **selection: Any) -> None:
    """Print the commands that rebuild what a regenerable rule set reclaims (or reclaimed) from PATH: per subject,
    the recorded version and options of its run, reusing the fit outputs kept beside them (read-only).

    \b
    Examples:
      fmriprep-cleanup regenerate OUT --participant-label 01 -o regenerate-sub-01.sh
      fmriprep-cleanup regenerate OUT --sbatch > regenerate.sbatch && sbatch regenerate.sbatch
    """
    from ..api import recipes_text, regenerable_rules, regeneration_recipes
    from ..basics.formats import output_json
    from ..basics.grouping import grouped, grouped_line

    if not selection.get("rule_refs"):
        selection["rule_refs"] = (regenerable_rules(path),)
    recipes, refused = regeneration_recipes(open_plan(path, **selection))
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
