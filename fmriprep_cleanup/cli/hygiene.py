"""Commands for storage over time and across projects: audit, run (a policy, unattended), history, schedule."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from ..api import Mode, parse_path_maps
from ..basics.errors import EXIT_INCOMPLETE, CleanupError
from ..report.outputs import AUDIT, HISTORY, View
from .common import (
    CleanupGroup,
    Progress,
    command_line,
    deprecated,
    energy_options,
    energy_overrides,
    format_option,
    from_scan_option,
    history_option,
    jobs_option,
    output_option,
    path_map_option,
    quiet_option,
    record_option,
    rules_option,
    scan_format_option,
    screen_width,
    shard_of,
    shard_options,
    warn,
    wide_option,
    work_dir_option,
    write_output,
)


@click.command()
@click.argument("roots", nargs=-1, required=True, type=click.Path(path_type=str))
@rules_option
@jobs_option
@energy_options
@format_option(AUDIT.names(), AUDIT.default)
@output_option
@path_map_option
@from_scan_option
@scan_format_option
@quiet_option
@shard_options("every N-th dataset")
@wide_option
def audit(roots: tuple[str, ...], rule_refs: tuple[str, ...], jobs: int | None, fmt: str, output: str | None,
          path_maps: tuple[str, ...], from_scan: str | None, scan_format: str | None, quiet: bool,
          shard: str | None, partial_out: str | None, wide: bool, **given: Any) -> None:
    """Every fMRIPrep output below ROOTS, largest reclaimable first: owner, version, subjects, sizes, energy (read-only).

    \b
    Examples:
      fmriprep-cleanup audit /project /scratch --format html -o site.html
      fmriprep-cleanup audit /project /scratch --path-map /out=/project/ds001/derivatives/fmriprep

    Exit codes: 0 done; 2 bad input; 3 done, but some folder that looked like a dataset could not be read.
    """
    from ..api.hygiene import audit as audit_roots
    from ..api.shards import audit_shard

    energy, share, path_map = energy_overrides(given), shard_of(shard, partial_out), parse_path_maps(path_maps)
    if share is not None:
        from ..basics.formats import strict_json

        if from_scan is not None:
            raise CleanupError("--from-scan reads one list for the whole audit: give it without --shard")
        with Progress(not quiet) as progress:
            result = audit_shard(roots, *share, rule_refs, energy, progress.callback(), path_map)
        write_output(strict_json(result) + "\n", partial_out)
        warn(result["warnings"] + [f"{row['path']}: {w}" for row in result["rows"] for w in row["warnings"]])
        if result["failed"]:
            sys.exit(EXIT_INCOMPLETE)
        return
    with Progress(not quiet) as progress:
        data = audit_roots(roots, rule_refs, jobs, energy, progress.callback(), path_map, command_line(), from_scan,
                           scan_format, progress.dataset_callback())
    write_audit(data, fmt, output, wide)


def write_audit(data: dict[str, Any], fmt: str, output: str | None, wide: bool) -> None:
    """An audit (or the merge of an audit's shards) in the format asked for, its warnings on stderr; exit 3 when
    some folder that looked like a dataset could not be read."""
    if fmt not in AUDIT.names():
        raise CleanupError(f"--format {fmt} is a report's, not an audit's: use {', '.join(AUDIT.names())}")
    write_output(AUDIT.render(fmt, data, View(screen_width(wide, output))), output)
    warn(data["warnings"] + [f"{row['path']}: {warning}" for row in data["datasets"] for warning in row["warnings"]])
    if data["failed"]:
        sys.exit(EXIT_INCOMPLETE)  # some folder that looked like a dataset could not be read: said above


@click.command("run")
@click.argument("policy", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("--config", "config", hidden=True, type=click.Path(dir_okay=False, path_type=str),
              help="Deprecated: give the policy file as the argument.")
@click.option("--log", "log", type=click.Path(dir_okay=False, path_type=str),
              help="Append one JSON object per dataset, and a final summary, to FILE (JSON lines).")
@history_option
@record_option
def run_policy(policy: str | None, config: str | None, log: str | None, history_path: str | None,
               record: bool) -> None:
    """Execute the storage-hygiene POLICY file (YAML: which datasets, which rules, which mode) unattended (cron,
    systemd, Slurm): never prompts.

    Exit codes: 0 all datasets done; 2 the policy file is invalid (nothing ran); 3 some dataset was skipped
    (locked by another run) or had files skipped; 4 some dataset failed.

    \b
    Examples:
      fmriprep-cleanup run hygiene.yaml --log /var/log/fmriprep-cleanup.jsonl
      fmriprep-cleanup schedule cron hygiene.yaml
    """
    from ..api.hygiene import run_policy as run_policy_file
    from ..report.text import render_policy_run

    if config is not None:
        deprecated("run --config FILE", "run FILE")
    path = policy or config
    if path is None or (policy is not None and config is not None):
        raise click.UsageError("give the policy file once: fmriprep-cleanup run POLICY")
    results, code = run_policy_file(path, log, history_path, record)  # an invalid policy: refused before the log
    text, warnings = render_policy_run(results)
    sys.stdout.write(text)
    warn(warnings)
    sys.exit(code)


@click.command()
@history_option
@click.option("--since", metavar="DATE", help="Only runs from this day on (YYYY-MM-DD) or this long ago (e.g. 30d).")
@format_option(HISTORY.names(), HISTORY.default)
@output_option
@wide_option
def history(history_path: str | None, since: str | None, fmt: str, output: str | None, wide: bool) -> None:
    """The runs that archived or deleted, and what they reclaimed and avoided, per dataset and overall.

    \b
    Examples:
      fmriprep-cleanup history --since 90d
      fmriprep-cleanup history --history /project/admin/history.sqlite --format html -o history.html
    """
    from ..api.hygiene import history as read_history

    data = read_history(history_path, since_time(since), command_line())
    write_output(HISTORY.render(fmt, data, View(screen_width(wide, output), since=since)), output)


def since_time(since: str | None) -> float | None:
    """--since as a Unix time: a day (2026-03-01, local midnight) or a duration ago (30d)."""
    import time

    from ..basics.units import parse_duration

    if not since:
        return None
    try:
        return time.mktime(time.strptime(since, "%Y-%m-%d"))
    except ValueError:
        try:
            return time.time() - parse_duration(since)
        except ValueError:
            raise CleanupError(f"--since {since!r}: give a date (2026-03-01) or a duration (30d)") from None


@click.group(cls=CleanupGroup)
def schedule() -> None:
    """Scheduling recipes, with absolute paths filled in: one per command, ready to save or submit as it is.

    \b
    Examples:
      fmriprep-cleanup schedule cron hygiene.yaml
      fmriprep-cleanup schedule sbatch hygiene.yaml > cleanup.sbatch && sbatch cleanup.sbatch
      fmriprep-cleanup schedule slurm-array /data/ds/derivatives/fmriprep --shards 16 --run-dir runs/1 > submit.sh
    """


POLICY_RECIPES = {
    "cron": "A crontab line running POLICY nightly.",
    "systemd-service": "The systemd user service running POLICY (pair it with `schedule systemd-timer`).",
    "systemd-timer": "The systemd user timer that starts the service nightly.",
    "scrontab": "A Slurm scrontab entry running POLICY nightly.",
    "sbatch": "A Slurm batch script running POLICY, starting with #!/bin/bash.",
}


def _policy_recipe(kind: str, text: str) -> None:
    """`schedule KIND POLICY [--log FILE]`: the recipe that runs the policy file, one command per kind."""

    @schedule.command(kind, help=f"{text}\n\nThe log is JSON lines, beside the policy file unless --log says.\n\n"
                                 f"\b\nExamples:\n  fmriprep-cleanup schedule {kind} hygiene.yaml\n"
                                 f"  fmriprep-cleanup schedule {kind} /project/admin/hygiene.yaml --log /var/log/cleanup.jsonl")
    @click.argument("policy", type=click.Path(dir_okay=False, path_type=str))
    @click.option("--log", "log", type=click.Path(dir_okay=False, path_type=str),
                  help="Append one JSON object per dataset, and a final summary, to FILE (JSON lines; default: "
                       "beside the policy file, .log.jsonl).")
    def recipe(policy: str, log: str | None) -> None:
        from ..api.hygiene import schedule as schedule_recipe

        sys.stdout.write(schedule_recipe(kind, policy, log))


for _kind, _text in POLICY_RECIPES.items():
    _policy_recipe(_kind, _text)


def slurm_array_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options of a sharded report (and clean) as a Slurm job array, defined once."""
    for option in reversed([
        click.option("--shards", type=click.IntRange(1, 100_000), default=8, show_default=True,
                     help="Array tasks (each a share of the subjects)."),
        click.option("--run-dir", type=click.Path(file_okay=False, path_type=str),
                     help="Where the partial results and the reports go."),
        work_dir_option,
        rules_option,
        click.option("--clean", "clean_mode", type=click.Choice(Mode.values()),
                     help="The array cleans in this mode (shard by shard, then the shared files)."),
        click.option("--archive-dir", type=click.Path(file_okay=False, path_type=str),
                     help="Where archives go (needed for --clean archive; not inside the dataset)."),
    ]):
        command = option(command)
    return command


@schedule.command("slurm-array")
@click.argument("dataset", type=click.Path(file_okay=False, path_type=str))
@slurm_array_options
def schedule_slurm_array(dataset: str, shards: int, run_dir: str | None, work_dir: str | None,
                         rule_refs: tuple[str, ...], clean_mode: str | None, archive_dir: str | None) -> None:
    """A script submitting the report of DATASET as a Slurm job array and a merge job (and, with --clean, the
    clean of each shard, then of the shared files).

    \b
    Examples:
      fmriprep-cleanup schedule slurm-array /data/ds/derivatives/fmriprep --shards 16 --run-dir runs/1 > submit.sh
      fmriprep-cleanup schedule slurm-array OUT --shards 16 --run-dir runs/2 --clean delete > clean.sh
    """
    _write_slurm_array(dataset, shards, run_dir, work_dir, rule_refs, clean_mode, archive_dir)


def _write_slurm_array(dataset: str, shards: int, run_dir: str | None, work_dir: str | None,
                       rule_refs: tuple[str, ...], clean_mode: str | None, archive_dir: str | None) -> None:
    from ..api.hygiene import slurm_array

    if not run_dir:
        raise CleanupError("a Slurm array needs --run-dir DIR (where the partials and the report go)")
    options = (["--work-dir", os.path.abspath(work_dir)] if work_dir else []) + \
        [part for rule in rule_refs for part in ("--rules", rule)]
    if (archive_dir is not None) != (clean_mode == "archive"):
        raise CleanupError("--clean archive and --archive-dir DIR go together")
    clean = None if clean_mode is None else ["--mode", clean_mode] + (
        ["--archive-dir", os.path.abspath(archive_dir)] if archive_dir else [])
    sys.stdout.write(slurm_array(dataset, shards, run_dir, options, clean))


@schedule.command("print", hidden=True)
@click.option("--cron", is_flag=True)
@click.option("--systemd-service", is_flag=True)
@click.option("--systemd-timer", is_flag=True)
@click.option("--scrontab", is_flag=True)
@click.option("--sbatch", is_flag=True)
@click.option("--slurm-array", "slurm_array_of", metavar="DATASET")
@click.option("--systemd", "--slurm", "two_recipes", is_flag=True)
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=str))
@click.option("--log", "log", type=click.Path(dir_okay=False, path_type=str))
@slurm_array_options
def schedule_print(cron: bool, systemd_service: bool, systemd_timer: bool, scrontab: bool, sbatch: bool,
                   slurm_array_of: str | None, two_recipes: bool, config: str | None, log: str | None, shards: int,
                   run_dir: str | None, work_dir: str | None, rule_refs: tuple[str, ...], clean_mode: str | None,
                   archive_dir: str | None) -> None:
    """Deprecated: `schedule print --KIND --config FILE` is `schedule KIND FILE`."""
    from ..api.hygiene import schedule as schedule_recipe

    chosen = [kind for kind, asked in (("cron", cron), ("systemd-service", systemd_service),
                                       ("systemd-timer", systemd_timer), ("scrontab", scrontab),
                                       ("sbatch", sbatch), ("slurm-array", slurm_array_of is not None)) if asked]
    if chosen == ["slurm-array"]:
        deprecated("schedule print --slurm-array DATASET", "schedule slurm-array DATASET")
        assert slurm_array_of is not None
        _write_slurm_array(slurm_array_of, shards, run_dir, work_dir, rule_refs, clean_mode, archive_dir)
        return
    deprecated("schedule print --KIND --config FILE", "schedule KIND FILE")
    if config is None:
        raise CleanupError("--config FILE (the policy to run) is needed for this recipe")
    if two_recipes:
        raise CleanupError("--systemd and --slurm each have two recipes, one per file: use systemd-service and "
                           "systemd-timer, or scrontab or sbatch")
    if len(chosen) != 1:
        raise CleanupError("choose exactly one of cron, systemd-service, systemd-timer, scrontab, sbatch, "
                           "slurm-array" + (f" (got {', '.join('--' + kind for kind in chosen)})" if chosen else ""))
    sys.stdout.write(schedule_recipe(chosen[0], config, log))
