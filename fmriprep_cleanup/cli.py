"""The command line: a thin layer over discover -> plan -> report.

Exit codes: 0 done; 2 bad input or refused (one line on stderr, never a traceback).
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
from typing import IO, Any, Callable

import click

from . import __version__
from .errors import CleanupError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
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
        click.option(
            "--participant-label", "--participant_label", "participant_labels", multiple=True, metavar="LABEL",
            help="Only these subjects (with or without sub-); several may follow one flag: --participant-label 01 02.",
        ),
        click.option("--keep", "keep_globs", multiple=True, metavar="GLOB", help="Also keep files matching GLOB (beats --junk and the rules)."),
        click.option("--junk", "junk_globs", multiple=True, metavar="GLOB", help="Also treat files matching GLOB as junk (beats the rules)."),
        click.option("--jobs", "-j", type=click.IntRange(1, 256), metavar="N",
                     help="Folders listed at once. Default: 8 on network file systems (NFS, Lustre, GPFS...), else 1."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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


def _open_plan(path: str, rule_refs: tuple[str, ...], work_dir: str | None, participant_labels: tuple[str, ...],
               keep_globs: tuple[str, ...], junk_globs: tuple[str, ...], jobs: int | None = None):
    from .discover import discover
    from .plan import Selection, build_plan
    from .rulesets import load_rulesets
    from .scan import default_jobs

    dataset = discover(path, work_dir)
    ruleset = load_rulesets(rule_refs).with_cli_globs(keep_globs, junk_globs)
    plan = build_plan(dataset, ruleset, Selection.from_labels(participant_labels))
    plan.jobs = jobs or default_jobs([root.path for root in dataset.scan_roots])
    return plan


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
    data = report_data(plan.dataset, plan.ruleset, summary, plan.warnings.as_list(), plan.selection.participant_labels,
                       model, command)
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
    for warning in planned.warnings.as_list():
        click.echo(f"warning: {warning}", err=True)


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
        sys.stdout.write(json.dumps(explanations, indent=2) + "\n")
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
@click.option("--min-age", default="1h", show_default=True, metavar="DURATION",
              help="Skip files modified more recently, and a subject's whole working directory if anything in it is.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=str),
              help="Where the lock and journal live (default: PATH/.fmriprep-cleanup).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How the end-of-run summary is printed.")
def clean(path: str, mode: str, archive_dir: str | None, archive_format: str, compress: str, yes: bool,
          min_age: str, state_dir: str | None, fmt: str, **selection: Any) -> None:
    """Remove junk files (or, by default, show exactly what would be removed).

    Exit codes: 0 done; 2 bad input or refused; 3 done, with files skipped or failed.
    """
    from .act import build_worklist, delete, refuse_unsafe_roots
    from .archive import archive
    from .report import render_outcome
    from .state import Journal, RunLock
    from .units import parse_duration

    try:
        min_age_seconds = parse_duration(min_age)
    except ValueError as exc:
        raise CleanupError(f"--min-age: {exc}") from None
    plan = _open_plan(path, **selection)
    dataset = plan.dataset
    state = os.path.abspath(state_dir) if state_dir else dataset.state_dir
    plan.state_dir = state
    dry_run = mode == "dry-run"
    if mode == "archive":
        archive_dir = _check_archive_dir(archive_dir, dataset)
    if not dry_run:
        refuse_unsafe_roots(dataset)
        if not yes and not _interactive():
            raise CleanupError(f"--mode {mode} needs --yes when there is no terminal to confirm on")

    def finish(outcome_dict: dict, journal_path: str | None, archives: list[str] | None = None) -> None:
        if fmt == "json":
            sys.stdout.write(json.dumps({"dataset": dataset.path, "dry_run": dry_run, **outcome_dict,
                                         "archives": archives or [], "journal": journal_path}, indent=2) + "\n")
        else:
            sys.stdout.write(render_outcome(outcome_dict, dry_run, journal_path, archives))

    if dry_run:
        finish(build_worklist(plan, mode, min_age_seconds).preview().as_dict(), None)
        return

    with RunLock(state):
        worklist = build_worklist(plan, mode, min_age_seconds)
        if not yes:
            sys.stdout.write(render_outcome(worklist.preview().as_dict(), True))
            if not click.confirm(f"{mode.capitalize()} these files now?", default=False):
                raise CleanupError("cancelled; nothing was changed")
        journal = Journal(state)
        journal.write("run-start", mode=mode, dataset=dataset.path, rules=list(plan.ruleset.names),
                      participant_labels=sorted(plan.selection.participant_labels or []), min_age=min_age_seconds,
                      files=len(worklist.files), tool_version=__version__, archive_dir=archive_dir,
                      archive_format=archive_format, compress=compress)
        archives: list[str] = []
        if mode == "archive":
            outcome, archives = archive(worklist, dataset, journal, state, archive_dir, archive_format,
                                        None if compress == "none" else compress)
        else:
            outcome = delete(worklist, dataset, journal, state)
        journal.write("run-end", archives=archives,
                      **{k: v for k, v in outcome.as_dict().items() if k != "failure_messages"})
        journal.close()
    finish(outcome.as_dict(), journal.path, archives)
    if not outcome.complete:
        sys.exit(EXIT_INCOMPLETE)


def _check_archive_dir(archive_dir: str | None, dataset: Any) -> str:
    if not archive_dir:
        raise CleanupError("--mode archive needs --archive-dir DIR (outside the dataset)")
    resolved = os.path.realpath(os.path.abspath(os.path.expanduser(archive_dir)))
    for root in dataset.scan_roots:
        if resolved == root.path or resolved.startswith(root.path.rstrip("/") + "/"):
            raise CleanupError(f"--archive-dir {archive_dir} lies inside what is being cleaned ({root.path})")
    return resolved


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
        sys.stdout.write(json.dumps(outcome.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_restore(outcome.as_dict()))
    if not outcome.complete:
        sys.exit(EXIT_INCOMPLETE)


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
        plan = _open_plan(output, (), workdir, (), (), ())
        data = report_data(plan.dataset, plan.ruleset, plan.summarize(), plan.warnings.as_list())
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

