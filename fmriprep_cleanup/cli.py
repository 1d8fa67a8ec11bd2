"""The command line: a thin layer over discover -> plan -> report.

Exit codes: 0 done; 2 bad input or refused (one line on stderr, never a traceback).
"""

from __future__ import annotations

import gc
import os
import re
import sys
from typing import IO, Any, Callable

import click

from . import __version__
from .formats import csv_line, strict_json
from .errors import CleanupError
from .rulesets import SUBJECT_STATUSES

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130
_LABEL = re.compile(r"^(?:sub-)?[a-zA-Z0-9]+$")


class CleanupGroup(click.Group):
    """Turns CleanupError into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CleanupError as exc:
            for line in str(exc).splitlines() or ["unknown error"]:
                click.echo(f"fmriprep-cleanup: error: {line}", err=True)
            ctx.exit(EXIT_USAGE)
        except KeyboardInterrupt:  # Ctrl-C while reading (acting stops itself at the next file and reports)
            click.echo("\nfmriprep-cleanup: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away: not an error of ours.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_OK)


def selection_options(command: Callable) -> Callable:
    """Options shared by every command that looks at a dataset."""
    options = [
        click.option(
            "--rules", "rule_refs", multiple=True, metavar="NAME|FILE",
            help="Rule set by shipped name or YAML path; repeat to combine (a later set extends the earlier). Default: default.",
        ),
        click.option(
            "--work-dir", type=click.Path(file_okay=False, path_type=str),
            help="fMRIPrep's working directory (-w), when it is not inside the output directory.",
        ),
        click.option("--no-work-dir", "no_work_dir", is_flag=True,
                     help="Leave the working directory out, even one found inside or beside the output."),
        click.option(
            "--participant-label", "--participant_label", "participant_labels", multiple=True, metavar="LABEL",
            help="Only these subjects (with or without sub-); several may follow one flag: --participant-label 01 02.",
        ),
        click.option("--keep", "keep_globs", multiple=True, metavar="GLOB", help="Also keep files matching GLOB (beats --junk and the rules)."),
        click.option("--junk", "junk_globs", multiple=True, metavar="GLOB", help="Also treat files matching GLOB as junk (beats the rules)."),
        click.option("--jobs", "-j", type=click.IntRange(1, 256), metavar="N",
                     help="Folders listed at once. Default: 8 on network file systems (NFS, Lustre, GPFS...), else 1."),
        click.option("--min-age", default="1h", show_default=True, metavar="DURATION",
                     help="Activity this recent means a subject is still running, and junk this recent is held "
                          "back; 0 for no limit."),
        click.option("--stale-after", metavar="DURATION",
                     help="A failed, stopped or unknown run's working directory idle this long is a stale cache "
                          "(junk under default and workdir-only). Default: the rule set's stale_after, else 30d."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _duration(option: str, value: str | None) -> float | None:
    from .units import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise CleanupError(f"{option}: {exc}") from None


def energy_options(command: Callable) -> Callable:
    """Overrides of the storage energy and carbon model (see README, "Energy and carbon")."""
    options = [
        click.option("--storage-profile", metavar="NAME", help="Storage profile: hpc-hdd (default), hdd, ssd, workstation-hdd."),
        click.option("--pue", type=float, help="Data-centre power usage effectiveness (>= 1)."),
        click.option("--copies", type=float, help="Copies kept: replication and backups (e.g. 2)."),
        click.option("--carbon-intensity", type=float, metavar="G", help="Grid carbon intensity in gCO2e/kWh."),
        click.option("--country", metavar="CODE", help="Take the carbon intensity of this country or region (FR, US-CA...)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _energy_model(ruleset: Any, storage_profile: str | None, pue: float | None, copies: float | None,
                  carbon_intensity: float | None, country: str | None) -> Any:
    """Command-line options beat a rule file's energy: section, which beats the profile."""
    from .energy import assumptions

    settings = dict(ruleset.energy)
    given = {"profile": storage_profile, "pue": pue, "copies": copies, "carbon_intensity": carbon_intensity, "country": country}
    if carbon_intensity is not None or country is not None:  # a grid given here replaces the file's grid
        settings.pop("carbon_intensity", None)
        settings.pop("country", None)
    settings.update({key: value for key, value in given.items() if value is not None})
    return assumptions(**settings)


class Progress:
    """Files and bytes seen so far, on stderr, when it is a terminal (and not --quiet)."""

    def __init__(self, enabled: bool) -> None:
        import time

        self.enabled = enabled and sys.stderr.isatty()
        self.files = 0
        self.bytes = 0
        self._clock = time.monotonic
        self._next = self._clock() + 0.5

    def __call__(self, files: int, nbytes: int) -> None:
        self.files += files
        self.bytes += nbytes
        if self._clock() >= self._next:
            from .report import files, size

            sys.stderr.write(f"\rscanned {files(self.files)}, {size(self.bytes)} ")
            sys.stderr.flush()
            self._next = self._clock() + 0.5

    def done(self) -> None:
        if self.enabled and self.files >= 1024:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _open_plan(path: str, rule_refs: tuple[str, ...] = (), work_dir: str | None = None,
               participant_labels: tuple[str, ...] = (), keep_globs: tuple[str, ...] = (),
               junk_globs: tuple[str, ...] = (), jobs: int | None = None, no_work_dir: bool = False,
               min_age: str = "1h", stale_after: str | None = None, state_dir: str | None = None):
    """The plan every command that looks at a dataset starts from, built from the shared selection options."""
    from .clean import discover_dataset
    from .discover import state_dir_for
    from .plan import Selection, build_plan
    from .rulesets import load_rulesets
    from .scan import default_jobs

    if no_work_dir and work_dir:
        raise CleanupError("--no-work-dir and --work-dir contradict each other")
    window, stale = _duration("--min-age", min_age), _duration("--stale-after", stale_after)
    dataset = discover_dataset(path, work_dir, not no_work_dir, state_dir)
    ruleset = load_rulesets(rule_refs).with_cli_globs(keep_globs, junk_globs)
    return build_plan(dataset, ruleset, Selection.from_labels(participant_labels),
                      state_dir=state_dir_for(dataset.identity, state_dir) if state_dir else None,
                      min_age=window if window is not None else 3600.0, stale_after=stale,
                      jobs=jobs or default_jobs([root.path for root in dataset.scan_roots]))


def _warn(warnings: list[str]) -> None:
    """Warnings go to stderr, one line each, whatever the output format."""
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _write_output(text_or_writer: str | Callable[[IO[str]], None], output: str | None) -> None:
    """Write to --output FILE (atomically: a temporary name, then rename) or to stdout."""
    if output is None or output == "-":
        if isinstance(text_or_writer, str):
            sys.stdout.write(text_or_writer)
        else:
            text_or_writer(sys.stdout)
        sys.stdout.flush()
        return
    temporary = f"{output}.tmp-{os.getpid()}"
    try:
        with open(temporary, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
            if isinstance(text_or_writer, str):
                handle.write(text_or_writer)
            else:
                text_or_writer(handle)
        os.replace(temporary, output)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise CleanupError(f"cannot write {output}: {exc.strerror or exc}") from None


@click.group(cls=CleanupGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fmriprep-cleanup")
def cli() -> None:
    """Find what fMRIPrep left on disk that no analysis needs, and how much space it takes.

    Start with `fmriprep-cleanup demo`, then `fmriprep-cleanup report PATH`.
    """


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@energy_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str), help="Write to FILE instead of stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def report(path: str, fmt: str, output: str | None, quiet: bool, storage_profile: str | None, pue: float | None,
           copies: float | None, carbon_intensity: float | None, country: str | None, **selection: Any) -> None:
    """Summarise what PATH holds: keep and junk by category and by subject, and what it costs per year (read-only)."""
    import shlex

    from .report import RENDERERS, report_data

    plan = _open_plan(path, **selection)
    model = _energy_model(plan.ruleset, storage_profile, pue, copies, carbon_intensity, country)
    progress = Progress(not quiet)
    summary = plan.summarize(progress if progress.enabled else None)
    progress.done()
    command = "fmriprep-cleanup " + " ".join(shlex.quote(arg) for arg in _ARGUMENTS) if _ARGUMENTS else None
    data = report_data(plan.dataset, plan.ruleset, summary, plan.all_warnings(), plan.selection.participant_labels,
                       model, command, plan.run_statuses())
    _warn(plan.problems())
    if fmt == "html":
        from .htmlreport import render_html

        _write_output(render_html(data), output)
    else:
        _write_output(RENDERERS[fmt](data), output)


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@click.option("--format", "fmt", type=click.Choice(["tsv", "jsonl", "csv"]), default="tsv", show_default=True)
@click.option("--only", type=click.Choice(["keep", "junk"]), help="Only files with this action.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str), help="Write to FILE instead of stdout.")
def plan(path: str, fmt: str, only: str | None, output: str | None, **selection: Any) -> None:
    """One line per file: action, category, rule id, size in bytes, path (read-only)."""
    from .report import write_plan

    planned = _open_plan(path, **selection)
    if output is None or output == "-":
        sys.stdout.reconfigure(errors="surrogateescape")  # odd bytes in names pass through unchanged
    _write_output(lambda stream: write_plan(planned, stream, fmt, only), output)
    _warn(planned.problems())


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@click.option("--only", type=click.Choice(SUBJECT_STATUSES), multiple=True,
              help="Only subjects with this status (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "tsv"]), default="text", show_default=True)
def status(path: str, only: tuple[str, ...], fmt: str, **selection: Any) -> None:
    """Each subject's fMRIPrep run: finished, failed, running, incomplete or unknown, with its evidence."""
    import time

    from .report import size, table

    plan = _open_plan(path, **selection)
    summary = plan.summarize()
    rows = []
    for label, subject in plan.run_statuses().items():
        if (only and subject.status not in only) or not plan.selection.wants(label):
            continue
        record = subject.as_dict()
        record["workdir_bytes"] = summary.bytes_by_subject_scope.get((label, "workdir"), 0)
        record["output_bytes"] = summary.bytes_by_subject_scope.get((label, "derivatives"), 0)
        rows.append(record)
    warnings = plan.all_warnings()
    _warn(plan.problems())
    if fmt == "json":
        sys.stdout.write(strict_json({"dataset": plan.dataset.path, "subjects": rows, "warnings": warnings},
                                    indent=2) + "\n")
        return
    columns = ["subject", "status", "runs", "newest_run", "fmriprep_version", "crash_files", "workdir_bytes",
               "output_bytes", "output_spaces", "evidence", "idle_seconds", "stale"]
    if fmt == "tsv":
        lines = ["\t".join(columns)]
        for row in rows:
            lines.append("\t".join("; ".join(row[c]) if c == "evidence" else "" if row[c] is None else str(row[c])
                                   for c in columns))
        sys.stdout.write("\n".join(lines) + "\n")
        return
    when = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"  # noqa: E731
    table_rows = [[f"sub-{row['subject']}", row["status"], when(row["newest_run_time"]), row["fmriprep_version"] or "-",
                   str(row["crash_files"]), size(row["workdir_bytes"]), size(row["output_bytes"]), _idle(row),
                   row["output_spaces"] or "-"] for row in rows]
    lines = table(["Subject", "Status", "Newest run", "fMRIPrep", "Crashes", "Work dir", "Output", "Idle", "Spaces"],
                  table_rows, "llllrrrrl")
    lines.append("")
    lines += [f"sub-{row['subject']}: {row['status']} ({'; '.join(row['evidence'])})"
              + (f" ({row['runs']} runs)" if row["runs"] > 1 else "") for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")


def _idle(row: dict[str, Any]) -> str:
    """How long a subject has been idle, for people; "stale" once past --stale-after."""
    seconds = row["idle_seconds"]
    if seconds is None:
        return "-"
    text = f"{seconds / 86400:.0f} d" if seconds >= 86400 else f"{seconds / 3600:.0f} h"
    return text + (" (stale)" if row["stale"] else "")


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@selection_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def explain(path: str, files: tuple[str, ...], fmt: str, **selection: Any) -> None:
    """Why each FILE is kept or junk: its scope, subject, entities and the rule that matched."""
    from .explain import explain_file, render_explanation

    planned = _open_plan(path, **selection)
    explanations = [explain_file(planned, file) for file in files]
    if fmt == "json":
        sys.stdout.write(strict_json(explanations, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(render_explanation(item) for item in explanations))


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@click.option("--mode", type=click.Choice(["dry-run", "archive", "delete"]), default="dry-run", show_default=True,
              help="dry-run touches nothing; archive moves junk into verified archives; delete unlinks it.")
@click.option("--archive-dir", type=click.Path(file_okay=False, path_type=str),
              help="Where archives go (needed for --mode archive; not inside the dataset).")
@click.option("--archive-format", type=click.Choice(["tar", "tree"]), default="tar", show_default=True,
              help="tar: one archive per subject; tree: a copy of the files, e.g. on a slower storage tier.")
@click.option("--compress", type=click.Choice(["none", "gz", "xz"]), default="none", show_default=True,
              help="Compression of tar archives (NIfTI files are usually gzipped already).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--list", "list_files", is_flag=True,
              help="Print the files it acts on (or would), as `plan --only junk` does; the summary goes to stderr.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=str),
              help="Where the lock and journal live (default: PATH/.fmriprep-cleanup).")
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=str),
              help="Run history database (default: $XDG_STATE_HOME/fmriprep-cleanup/history.sqlite).")
@click.option("--record", is_flag=True, help="Record a dry run in the history too (archive and delete always are).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How the end-of-run summary is printed.")
def clean(path: str, mode: str, archive_dir: str | None, archive_format: str, compress: str, yes: bool,
          list_files: bool, state_dir: str | None, history_path: str | None, record: bool, fmt: str,
          **selection: Any) -> None:
    """Remove junk files (or, by default, show exactly what would be removed).

    Exit codes: 0 done; 2 bad input or refused; 3 done, with files skipped or failed.
    """
    from .clean import clean as clean_dataset
    from .history import History, record_run
    from .report import render_outcome, write_plan

    plan = _open_plan(path, state_dir=state_dir, **selection)
    if mode != "dry-run" and not yes and not _interactive():
        raise CleanupError(f"--mode {mode} needs --yes when there is no terminal to confirm on")
    summary_stream = sys.stderr if list_files else sys.stdout
    history = History(history_path) if mode != "dry-run" or record else None  # can it be written? before acting

    def show_files(worklist: Any) -> None:
        if list_files:
            sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
            write_plan(worklist.files, sys.stdout, "tsv")
            sys.stdout.flush()

    def confirm(preview: Any, scanned_bytes: int) -> bool:
        summary_stream.write(render_outcome(preview.as_dict(), True))
        return click.confirm(f"{mode.capitalize()} these files now?", default=False, err=list_files)

    try:
        result = clean_dataset(plan, mode, archive_dir, archive_format, None if compress == "none" else compress,
                               None if yes or mode == "dry-run" else confirm,
                               _energy_model(plan.ruleset, None, None, None, None, None), show_files)
        if history is not None:
            try:
                record_run(history, result, list(plan.ruleset.names))
            except CleanupError as exc:  # after acting: the summary still comes, and exit 3
                result.after_acting.append(str(exc))
                result.warnings.append(str(exc))
    finally:
        if history is not None:
            history.close()
    _warn(result.warnings)
    if fmt == "json":
        summary_stream.write(strict_json(result.as_dict(), indent=2) + "\n")
    else:
        summary_stream.write(render_outcome(result.outcome, mode == "dry-run", result.journal, result.archives,
                                            result.nothing_to_do, result.recovered_files))
    if result.exit_status:
        sys.exit(result.exit_status)


@cli.command()
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=str),
              help="Run history database (default: $XDG_STATE_HOME/fmriprep-cleanup/history.sqlite).")
@click.option("--since", metavar="DATE", help="Only runs from this day on (YYYY-MM-DD) or this long ago (e.g. 30d).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
def history(history_path: str | None, since: str | None, fmt: str) -> None:
    """The runs that archived or deleted, and what they reclaimed and avoided, per dataset and overall."""
    import time

    from .history import COLUMNS, History, totals
    from .report import files, number, size, table
    from .units import parse_duration

    since_time = None
    if since:
        try:
            since_time = time.mktime(time.strptime(since, "%Y-%m-%d"))
        except ValueError:
            try:
                since_time = time.time() - parse_duration(since)
            except ValueError:
                raise CleanupError(f"--since {since!r}: give a date (2026-03-01) or a duration (30d)") from None
    database = History(history_path)
    try:
        runs = database.runs(since_time)
    finally:
        database.close()
    summary = totals(runs)
    if fmt == "json":
        sys.stdout.write(strict_json({"runs": runs, "totals": summary}, indent=2) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(csv_line(["id", *COLUMNS]))
        for run in runs:
            sys.stdout.write(csv_line([run["id"], *(run[column] for column in COLUMNS)]))
        return
    rows = [[str(run["id"]), time.strftime("%Y-%m-%d %H:%M", time.localtime(run["started"])), run["dataset"], run["mode"],
             files(run["files"]), size(run["bytes"]), number(run["kwh_per_year"]), number(run["kgco2e_per_year"]),
             str(run["exit_status"])] for run in runs]
    lines = table(["#", "When", "Dataset", "Mode", "Files", "Bytes", "kWh/yr", "kgCO2e/yr", "Exit"], rows, "rllllrrrr")
    overall = summary["overall"]
    period = f"since {since}" if since else "in all"
    lines += ["", f"{period.capitalize()}: {size(overall['bytes'])} reclaimed in {overall['runs']} runs "
              f"({files(overall['files'])}); {number(overall['kwh_per_year'])} kWh/yr and "
              f"{number(overall['kgco2e_per_year'])} kgCO2e/yr avoided."]
    for row in summary["by_dataset"]:
        lines.append(f"  {row['dataset']}: {size(row['bytes'])} in {row['runs']} runs, "
                     f"{number(row['kgco2e_per_year'])} kgCO2e/yr avoided")
    sys.stdout.write("\n".join(lines) + "\n")


@cli.command()
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=str),
              help="Restore under DIR (as derivatives/..., workdir/...) instead of where the files were.")
@click.option("--participant-label", "--participant_label", "participant_labels", multiple=True, metavar="LABEL",
              help="Only these subjects' files.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def restore(source: str, to: str | None, participant_labels: tuple[str, ...], fmt: str) -> None:
    """Put archived files back (SOURCE: an archive, its manifest, or a folder of them).

    Files come back byte-identical with their mode and mtime; an existing
    different file is never overwritten but reported (exit 3).
    """
    from .plan import Selection
    from .report import render_restore
    from .restore import restore as restore_files

    outcome = restore_files(source, to, Selection.from_labels(participant_labels).participant_labels)
    if fmt == "json":
        sys.stdout.write(strict_json(outcome.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_restore(outcome.as_dict()))
    if not outcome.complete:
        sys.exit(EXIT_INCOMPLETE)


@cli.command()
@click.argument("roots", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--rules", "rule_refs", multiple=True, metavar="NAME|FILE", help="Rule sets, as for report.")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), metavar="N", help="Folders listed at once (see report).")
@energy_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str), help="Write to FILE instead of stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def audit(roots: tuple[str, ...], rule_refs: tuple[str, ...], jobs: int | None, fmt: str, output: str | None,
          quiet: bool, storage_profile: str | None, pue: float | None, copies: float | None,
          carbon_intensity: float | None, country: str | None) -> None:
    """Every fMRIPrep output below ROOTS, largest reclaimable first: owner, version, subjects, sizes, energy (read-only).

    Exit codes: 0 done; 2 bad input; 3 done, but some folder that looked like a dataset could not be read.
    """

    from .audit import audit as audit_roots
    from .report import files, number, share, size, table
    from .rulesets import load_rulesets

    ruleset = load_rulesets(rule_refs)
    model = _energy_model(ruleset, storage_profile, pue, copies, carbon_intensity, country)
    progress = Progress(not quiet)
    rows, warnings, failed = audit_roots(list(roots), ruleset, model, jobs, progress if progress.enabled else None)
    progress.done()
    data = {"roots": [os.path.abspath(root) for root in roots], "rules": list(ruleset.names),
            "energy_assumptions": model.as_dict(), "datasets": [row.as_dict() for row in rows],
            "totals": {key: sum(row.as_dict()[key] for row in rows) for key in
                       ("files", "bytes", "junk_bytes", "kwh_per_year_avoidable", "kgco2e_per_year_avoidable")},
            "failed": failed, "warnings": warnings}
    if fmt == "json":
        _write_output(strict_json(data, indent=2) + "\n", output)
    elif fmt == "csv":
        columns = ["path", "owner", "fmriprep_version", "layout", "subjects", "files", "bytes", "junk_bytes", "junk_share",
                   "kwh_per_year_avoidable", "kgco2e_per_year_avoidable"]
        _write_output(csv_line(columns) + "".join(csv_line([row[column] for column in columns])
                                                  for row in data["datasets"]), output)
    elif fmt == "html":
        from .htmlreport import render_audit_html

        _write_output(render_audit_html(data), output)
    else:
        table_rows = [[row["path"], row["owner"], row["fmriprep_version"] or "?", str(row["subjects"]), size(row["bytes"]),
                       size(row["junk_bytes"]), share(row["junk_bytes"], row["bytes"]),
                       number(row["kwh_per_year_avoidable"]), number(row["kgco2e_per_year_avoidable"])]
                      for row in data["datasets"]]
        lines = table(["Dataset", "Owner", "fMRIPrep", "Subjects", "Total", "Reclaimable", "Share", "kWh/yr", "kgCO2e/yr"],
                      table_rows, "lllrrrrrr")
        totals = data["totals"]
        lines += ["", f"{len(rows)} datasets: {size(totals['junk_bytes'])} reclaimable of {size(totals['bytes'])} "
                  f"({files(totals['files'])}); {number(totals['kgco2e_per_year_avoidable'])} kgCO2e/yr avoidable. "
                  "Nothing was changed."]
        _write_output("\n".join(lines) + "\n", output)
    _warn(warnings + [f"{row['path']}: {warning}" for row in data["datasets"] for warning in row["warnings"]])
    if failed:
        sys.exit(EXIT_INCOMPLETE)  # some folder that looked like a dataset could not be read: said above


@cli.command("run")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="The policy file (YAML): which datasets, which rules, which mode.")
@click.option("--log", "log", type=click.Path(dir_okay=False, path_type=str),
              help="Append one JSON object per dataset, and a final summary, to FILE.")
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=str),
              help="Run history database (default: the policy's history:, else $XDG_STATE_HOME/fmriprep-cleanup/history.sqlite).")
@click.option("--record", is_flag=True, help="Record dry runs in the history too.")
def run_policy_command(config: str, log: str | None, history_path: str | None, record: bool) -> None:
    """Execute a storage-hygiene policy unattended (cron, systemd, Slurm): never prompts.

    Exit codes: 0 all datasets done; 2 the policy file is invalid (nothing ran); 3 some dataset was skipped
    (locked by another run) or had files skipped; 4 some dataset failed.
    """
    from .policy import load_policy, run_policy
    from .report import files, size

    policy = load_policy(config)
    handle = None
    if log:
        try:
            handle = open(log, "a", encoding="utf-8")
        except OSError as exc:
            raise CleanupError(f"cannot open the log {log}: {exc.strerror or exc}") from None
    try:
        results, code = run_policy(policy, handle, history_path, record)
    finally:
        if handle is not None:
            handle.close()
    for result in results:
        what = {"dry-run": "would remove", "archive": "archived", "delete": "removed"}[result.mode]
        line = f"{result.status.upper():10} {result.dataset}"
        if result.result:
            line += f": {what} {files(result.result['files'])} ({size(result.result['bytes'])})"
        if result.reason:
            line += f" [{result.reason}]"
        click.echo(line)
        _warn([f"{result.dataset}: {warning}" for warning in result.result.get("warnings", [])])
    click.echo(f"{len(results)} datasets: " + ", ".join(
        f"{sum(r.status == s for r in results)} {s}" for s in ("ok", "incomplete", "skipped", "failed", "stopped")
        if s != "stopped" or any(r.status == s for r in results)))
    sys.exit(code)


@cli.group(cls=CleanupGroup)
def schedule() -> None:
    """Scheduling recipes for `run --config`, with absolute paths filled in."""


@schedule.command("print")
@click.option("--cron", "kind", flag_value="cron", help="A crontab line.")
@click.option("--systemd", "kind", flag_value="systemd", help="A systemd service and timer pair.")
@click.option("--slurm", "kind", flag_value="slurm", help="A Slurm scrontab entry and an sbatch script.")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--log", "log", type=click.Path(dir_okay=False, path_type=str),
              help="JSON-lines log (default: beside the policy file, .log.jsonl).")
def schedule_print(kind: str | None, config: str, log: str | None) -> None:
    """Print the snippet for one scheduler."""
    from .policy import load_policy
    from .schedule import SNIPPETS

    if kind is None:
        raise CleanupError("choose one of --cron, --systemd or --slurm")
    load_policy(config)  # a schedule for a broken policy would only fail every night
    config_path = os.path.abspath(config)
    log_path = os.path.abspath(log) if log else os.path.splitext(config_path)[0] + ".log.jsonl"
    sys.stdout.write(SNIPPETS[kind](config_path, log_path))


@cli.group(cls=CleanupGroup)
def rules() -> None:
    """List, show and validate rule sets."""


@rules.command("list")
def rules_list() -> None:
    """The shipped rule sets and who each is for."""
    from .rulesets import load_rulesets, shipped_ruleset_names
    from .report import table

    rows = []
    for name in shipped_ruleset_names():
        ruleset = load_rulesets([name])
        description = " ".join(ruleset.descriptions.get(name, "").split())
        first_sentence = description.split(". ", 1)[0].rstrip(".") + "."
        rows.append([name, first_sentence])
    click.echo("\n".join(table(["Rule set", "For"], rows, "ll")))


@rules.command("show")
@click.argument("name")
def rules_show(name: str) -> None:
    """The rules in force for NAME (a shipped set or a file), in the order they apply."""
    from .rulesets import load_rulesets
    from .report import table

    ruleset = load_rulesets([name])
    click.echo(f"Rule set: {' <- '.join(ruleset.names)} (first match wins; unmatched files: {ruleset.default})")
    for set_name in ruleset.names:
        description = " ".join(ruleset.descriptions.get(set_name, "").split())
        if description:
            click.echo(f"  {set_name}: {description}")
    click.echo("")
    rows = [[str(i), rule.id, rule.action, rule.category, rule.spec, rule.source] for i, rule in enumerate(ruleset.rules, 1)]
    click.echo("\n".join(table(["#", "Rule", "Action", "Category", "Match", "From"], rows, "rlllll")))


@rules.command("validate")
@click.argument("file", type=click.Path(path_type=str))
def rules_validate(file: str) -> None:
    """Check a rule file (and what it extends); exit 2 with every problem listed."""
    from .rulesets import load_rulesets

    ruleset = load_rulesets([file])
    chain = f" (with {', '.join(ruleset.names[1:])})" if len(ruleset.names) > 1 else ""
    click.echo(f"{file}: OK, {len(ruleset.rules)} rules{chain}")


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=str),
              help="Build the demo project here and keep it (default: a temporary folder, removed afterwards).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
def demo(directory: str | None, fmt: str) -> None:
    """Build a small real-shaped fMRIPrep project (sparse files) and report on it."""
    import tempfile

    from .demo import build_demo
    from .report import RENDERERS, report_data

    def run(where: str) -> tuple[str, str]:
        output, workdir = build_demo(where)
        plan = _open_plan(output, work_dir=workdir)
        summary = plan.summarize()
        data = report_data(plan.dataset, plan.ruleset, summary, plan.all_warnings(), None, None, None,
                           plan.run_statuses())
        sys.stdout.write(RENDERERS[fmt](data))
        return output, workdir

    if directory:
        output, workdir = run(directory)
        if fmt == "text":
            click.echo(f"\nThe demo project is in {directory}. Try:\n"
                       f"  fmriprep-cleanup plan {output} --work-dir {workdir} --only junk\n"
                       f"  fmriprep-cleanup explain {output} {output}/sub-01.html")
        return
    with tempfile.TemporaryDirectory(prefix="fmriprep-cleanup-demo-") as where:
        run(where)
    if fmt == "text":
        click.echo("\n(The demo project was removed; use --dir DIR to keep it and try plan and explain.)")


def _interactive() -> bool:
    """Is there a person at a terminal to answer the confirmation question?"""
    return sys.stdin.isatty()


def expand_participant_labels(args: list[str]) -> list[str]:
    """Let ``--participant-label 01 02 03`` work as in BIDS Apps: labels after the flag are all taken."""
    expanded: list[str] = []
    args = list(args)
    index = 0
    while index < len(args):
        arg = args[index]
        expanded.append(arg)
        index += 1
        if arg == "--":
            expanded.extend(args[index:])
            break
        if arg in ("--participant-label", "--participant_label") and index < len(args):
            expanded.append(args[index])
            index += 1
            while index < len(args) and _LABEL.match(args[index]) and not os.path.exists(args[index]):
                expanded += [arg, args[index]]
                index += 1
    return expanded


_ARGUMENTS: list[str] = []  # the command line as typed, for reports that say how they were made


def main(argv: list[str] | None = None) -> None:
    # A short-lived process that streams millions of small tuples and builds no reference cycles:
    # the cyclic garbage collector would only spend time (about 10 % of a scan) finding nothing.
    gc.disable()
    _ARGUMENTS[:] = sys.argv[1:] if argv is None else argv
    cli.main(args=expand_participant_labels(_ARGUMENTS), prog_name="fmriprep-cleanup")

