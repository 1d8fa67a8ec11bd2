"""Commands that change files, only when asked: clean (dry run by default, archive, delete) and restore."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..api import CleanOptions, duration_flag
from ..basics.errors import EXIT_INCOMPLETE, CleanupError
from . import common
from .common import (
    CleanupGroup,
    Progress,
    declared,
    declared_options,
    format_option,
    history_option,
    open_plan,
    participant_label_option,
    plan_options,
    quiet_option,
    record_option,
    selection_options,
    terminal_width,
    warn,
)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@selection_options
@declared_options(CleanOptions)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--list", "list_files", is_flag=True,
              help="Print the files it acts on (or would), as `plan --action junk` does; the summary goes to stderr.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=str),
              help="Where the lock and journal live (default: PATH/.fmriprep-cleanup).")
@history_option
@record_option
@format_option(["text", "json"], "text", "The end-of-run summary's.")
@quiet_option
@click.option("--array-task", "shard", metavar="K/N",
              help="Act as task K of a job array of N: on a share of the subjects only, beside the other tasks.")
@click.option("--shard", "old_shard", metavar="K/N", hidden=True)
@click.option("--shared-only", is_flag=True,
              help="Only files of no subject (templates, shared working-directory files): the step after the shards.")
def clean(path: str, yes: bool, list_files: bool, state_dir: str | None, history_path: str | None, record: bool,
          fmt: str, quiet: bool, shard: str | None, old_shard: str | None, shared_only: bool, **given: Any) -> None:
    """Remove junk files (or, by default, show exactly what would be removed).

    Exit codes: 0 done (or answered no); 2 bad input or refused; 3 done, with files skipped or failed.

    \b
    Examples:
      fmriprep-cleanup clean OUT --work-dir $SCRATCH/work
      fmriprep-cleanup clean OUT --mode archive --archive-dir /archive/ds001 --participant-label 01 02
      fmriprep-cleanup clean OUT --mode delete --yes --array-task 3/16   # then, once all 16 are done:
      fmriprep-cleanup clean OUT --mode delete --yes --shared-only
    """
    from ..api import Declined, parse_shard
    from ..api.acting import clean as clean_plan

    if old_shard is not None:  # --shard means "scan a share, write a partial" on report, plan and audit
        common.deprecated("clean --shard K/N", "clean --array-task K/N")
        shard = shard or old_shard
    if shard is not None and shared_only:
        raise CleanupError("--array-task and --shared-only are two steps of a sharded clean: give one")
    options = declared(CleanOptions, given)
    if options.mode == "archive" and not options.archive_dir:  # what is missing from the command first
        raise CleanupError("--mode archive needs --archive-dir DIR (outside the dataset)")
    if options.mode != "dry-run" and not yes and not common.interactive():
        raise CleanupError(f"--mode {options.mode} needs --yes when there is no terminal to confirm on")
    plan = open_plan(plan_options(path, given, state_dir=state_dir))
    screen = CleanScreen(plan, options.mode, fmt, list_files, Progress(not quiet))
    try:
        with screen.progress:
            result = clean_plan(plan, options, confirm=None if yes or options.mode == "dry-run" else screen.confirm,
                                show=screen.show, history=history_path, record=True if record else None,
                                progress=screen.progress.callback(), act_progress=screen.progress.acting_callback(),
                                shard=None if shard is None else parse_shard(shard), shared_only=shared_only)
    except Declined:
        screen.stream.write("Nothing was changed.\n")
        return
    screen.done(result)
    if result.exit_status:
        sys.exit(result.exit_status)


class CleanScreen:
    """What a person sees of a clean run: where it acts and, if asked, the files (once scanned); the totals and
    the question (before acting); the summary (after). With --list the files go to stdout, the rest to stderr."""

    def __init__(self, plan: Any, mode: str, fmt: str, list_files: bool, progress: Progress) -> None:
        self.plan, self.mode, self.fmt, self.list_files, self.progress = plan, mode, fmt, list_files, progress
        self.stream = sys.stderr if list_files else sys.stdout
        self.warned: list[str] = []

    def show(self, worklist: Any) -> None:
        """Scanned and about to act (or ask): say where, folder by folder, and list the files if asked."""
        from ..report.people import largest_folders_lines
        from ..report.planfile import write_plan
        from ..report.text import render_folders

        self.progress.done()
        self.progress.expect(len(worklist.files), sum(planned.size for planned in worklist.files))
        if self.fmt == "text":
            dataset = self.plan.dataset
            self.stream.write(render_folders({"path": dataset.path, "layout": dataset.layout,
                                              "pipeline": dataset.pipeline_name,
                                              "fmriprep_version": dataset.fmriprep_version,
                                              "folders": dataset.folders(), "notes": list(dataset.notes)},
                                             terminal_width(False) if self.stream is sys.stdout else None))
            if not self.list_files:
                self.stream.write("".join(line + "\n" for line in largest_folders_lines(
                    worklist.files, terminal_width(False) if self.stream is sys.stdout else None)))
            self.stream.flush()
        if self.list_files:
            sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
            write_plan(worklist.files, sys.stdout, "tsv")
            sys.stdout.flush()
            not_listed = [f"{worklist.elsewhere:,} annexed junk files whose content is not here (nothing to free)"] \
                if worklist.elsewhere else []
            if worklist.git_left:
                not_listed.append(f"{worklist.git_left:,} junk files stored in git (left in place; --git-rm)")
            if not_listed:  # in `plan --action junk`, not acted on here
                self.stream.write(f"Not listed ({'; '.join(not_listed)}): `plan --action junk` lists them.\n")

    def confirm(self, preview: Any, scanned_bytes: int) -> bool:
        """The totals, then the question."""
        from ..report.text import render_outcome

        self.warned.extend(self.plan.all_warnings())
        warn(self.warned)
        self.stream.write(render_outcome(preview.as_dict(), True, preview=True))
        return click.confirm(f"{self.mode.capitalize()} these files now?", default=False, err=self.list_files)

    def done(self, result: Any) -> None:
        """The warnings not said yet, and the summary."""
        from ..basics.formats import output_json
        from ..report.text import render_outcome

        warn([warning for warning in result.warnings if warning not in self.warned])
        if self.fmt == "json":
            self.stream.write(output_json(result.as_dict(), indent=2) + "\n")
        else:
            self.stream.write(render_outcome(result.outcome, self.mode == "dry-run", result.journal, result.archives,
                                             result.nothing_to_do, result.recovered_files))


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=str),
              help="Restore under DIR (as derivatives/..., workdir/...) instead of where the files were.")
@participant_label_option
@format_option(["text", "json"], "text")
@quiet_option
def restore(source: str, to: str | None, participant_labels: tuple[str, ...], fmt: str, quiet: bool) -> None:
    """Put archived files back (SOURCE: an archive, its manifest, or a folder of them).

    Files come back byte-identical with their mode and mtime; an existing
    different file is never overwritten but reported (exit 3).

    \b
    Examples:
      fmriprep-cleanup restore /archive/ds001 --participant-label 02
      fmriprep-cleanup restore /archive/ds001/20261127-031700/sub-02.tar --to /tmp/check
    """
    from ..api.acting import restore as restore_archives
    from ..basics.formats import output_json
    from ..report.text import render_restore

    progress = Progress(not quiet)
    try:
        outcome = restore_archives(source, to, participant_labels, progress.acting_callback())
    finally:
        progress.done()
    if fmt == "json":
        sys.stdout.write(output_json(outcome.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_restore(outcome.as_dict()))
    if not outcome.complete:
        sys.exit(EXIT_INCOMPLETE)


@click.group(cls=CleanupGroup)
def archives() -> None:
    """List, verify and prune the archives `clean --mode archive` wrote."""


def _archives_output(data: dict[str, Any], fmt: str, text: str) -> None:
    from ..basics.formats import output_json

    sys.stdout.write(output_json(data, indent=2) + "\n" if fmt == "json" else text)


@archives.command("list")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@format_option(["text", "json"], "text")
def archives_list(directory: str, fmt: str) -> None:
    """Each run and archive below DIRECTORY: subject, files, bytes, age, last verification, leftovers.

    \b
    Examples:
      fmriprep-cleanup archives list /archive/ds003752
      fmriprep-cleanup archives list /archive/ds003752 --format json
    """
    from ..api.acting import archives as manage
    from ..report.people import files, size, table

    data = manage("list", directory)
    rows = [[run["run"], archive["subject"], files(archive["files"]), size(archive["bytes"]),
             size(archive["bytes_on_disk"]), f"{run['age_days']:g} d",
             "never" if run["last_verified"] is None else ("ok" if run["last_verify_ok"] else "FAILED")]
            for run in data["runs"] for archive in run["archives"]]
    lines = table(["Run", "Archive", "Files", "Bytes", "On disk", "Age", "Re-verified"], rows, "llrrrrl")
    lines += [f"leftover of an interrupted run (not an archive): {path}" for run in data["runs"]
              for path in run["leftovers"]]
    lines += [f"not sealed with your key (restore it with --to; never pruned): {run['path']}" for run in data["runs"]
              if not run["sealed"]]
    lines += [f"problem: {problem}" for problem in data["problems"]]
    _archives_output(data, fmt, "\n".join(lines) + "\n")


@archives.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@format_option(["text", "json"], "text")
@history_option
def archives_verify(directory: str, fmt: str, history_path: str | None) -> None:
    """Re-hash every member of every archive below DIRECTORY against its manifest; exit 3 on any difference.

    \b
    Examples:
      fmriprep-cleanup archives verify /archive/ds003752
    """
    from ..api.acting import archives as manage
    from ..report.people import files, size

    data = manage("verify", directory, history_path=history_path)
    text = [f"Verified {files(data['members'])} ({size(data['bytes'])}): "
            + ("every one matches its manifest." if data["ok"] else f"{len(data['problems'])} problem(s):")]
    text += [f"  {problem}" for problem in data["problems"]]
    if data["unsealed"]:
        text.append("Checked against manifests not sealed with your key (another user's, or an earlier version's):")
        text += [f"  {note}" for note in data["unsealed"]]
    _archives_output(data, fmt, "\n".join(text) + "\n")
    if not data["ok"]:
        sys.exit(EXIT_INCOMPLETE)


@archives.command("prune")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option("--older-than", required=True, metavar="DURATION", help="Remove runs archived longer ago (e.g. 5y).")
@click.option("--mode", type=click.Choice(["dry-run", "delete"]), default=None,
              help="dry-run (default): say what would go; delete: remove them, as clean --mode does.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@format_option(["text", "json"], "text")
@history_option
def archives_prune(directory: str, older_than: str, mode: str | None, yes: bool, fmt: str,
                   history_path: str | None) -> None:
    """Remove the archive runs older than --older-than, each whole (a dry run unless --mode delete).

    \b
    Examples:
      fmriprep-cleanup archives prune /archive/ds003752 --older-than 5y
      fmriprep-cleanup archives prune /archive/ds003752 --older-than 5y --mode delete --yes
    """
    if mode is None and yes:  # --yes alone used to mean "remove them"
        common.deprecated("archives prune --yes (remove them)", "--mode delete --yes")
        mode = "delete"
    mode = mode or "dry-run"
    seconds = duration_flag("--older-than")(older_than)
    if mode == "delete" and not yes:
        if not common.interactive():
            raise CleanupError("--mode delete needs --yes when there is no terminal to confirm on")
        from ..api.acting import archives as preview
        planned = preview("prune", directory, seconds, False, history_path)
        if not planned["runs"] or not click.confirm(f"Remove {len(planned['runs'])} archive run(s) whole?",
                                                    default=False, err=True):
            click.echo("Nothing was changed.", err=True)
            return
    yes = mode == "delete"
    from ..api.acting import archives as manage
    from ..report.people import size

    data = manage("prune", directory, seconds, yes, history_path)
    verb = "Would remove" if data["dry_run"] else "Removed"
    text = [f"{verb} {len(data['runs'])} run(s) archived more than {older_than} ago ({size(data['bytes'])}):"]
    text += [f"  {run['run']}: {run['archives']} archive(s), {size(run['bytes_on_disk'])}, {run['age_days']:g} d old"
             for run in data["runs"]]
    if data["refused"]:
        text.append(f"Not pruned, {len(data['refused'])} folder(s) fmriprep-cleanup cannot prove it wrote:")
        text += [f"  {row['path']}: {row['reason']}" for row in data["refused"]]
    text += [f"problem: {problem}" for problem in data["problems"]]
    if data["dry_run"]:
        text.append("Dry run: nothing was changed (--mode delete removes them).")
    _archives_output(data, fmt, "\n".join(text) + "\n")
    if data["refused"] or data["problems"]:
        sys.exit(EXIT_INCOMPLETE)  # done, but some folder was not pruned (or could not be read): said above


@click.group(cls=CleanupGroup)
def journals() -> None:
    """Unfinished journals the next clean will not act on: list, discard, or finish an earlier version's."""


_state_dir_option = click.option("--state-dir", type=click.Path(file_okay=False, path_type=str),
                                 help="Where the lock and journal live (default: PATH/.fmriprep-cleanup).")


@journals.command("list")
@click.argument("path", type=click.Path(path_type=str))
@_state_dir_option
@format_option(["text", "json"], "text")
def journals_list(path: str, state_dir: str | None, fmt: str) -> None:
    """Each unfinished journal of PATH's dataset: recovered by the next clean, or why not.

    \b
    Examples:
      fmriprep-cleanup journals list /data/ds003752/derivatives/fmriprep
    """
    from ..api.acting import journals as manage

    data = manage(path, "list", state_dir=state_dir)
    lines = [f"{row['journal'] or row['run']}: {'recovered by the next clean' if row['recoverable'] else row['why']}"
             for row in data["journals"]]
    if any(not row["recoverable"] for row in data["journals"]):
        lines.append(f"Set one aside: fmriprep-cleanup journals discard {path} RUN (a journal of an earlier "
                     "version: journals finish finishes it on your word that its run was cut short)")
    _archives_output(data, fmt, "\n".join(lines or ["No unfinished journal."]) + "\n")


@journals.command("discard")
@click.argument("path", type=click.Path(path_type=str))
@click.argument("runs", nargs=-1, required=True)
@_state_dir_option
@format_option(["text", "json"], "text")
def journals_discard(path: str, runs: tuple[str, ...], state_dir: str | None, fmt: str) -> None:
    """Set the journals of RUNS aside, unread (renamed *.discarded): no run reports them again.

    \b
    Examples:
      fmriprep-cleanup journals discard /data/ds003752/derivatives/fmriprep 20240101-000000_deadbeef
    """
    from ..api.acting import journals as manage

    data = manage(path, "discard", runs, state_dir)
    _journals_outcome(data, fmt, "Set aside")


@journals.command("finish")
@click.argument("path", type=click.Path(path_type=str))
@click.argument("runs", nargs=-1, required=True)
@_state_dir_option
@format_option(["text", "json"], "text")
def journals_finish(path: str, runs: tuple[str, ...], state_dir: str | None, fmt: str) -> None:
    """Finish journals an earlier version left (RUN, or `legacy` for its single journal.jsonl), as recovery does.

    \b
    Examples:
      fmriprep-cleanup journals finish /data/ds003752/derivatives/fmriprep legacy
    """
    from ..api.acting import journals as manage

    data = manage(path, "finish", runs, state_dir)
    _journals_outcome(data, fmt, "Finished")


def _journals_outcome(data: dict[str, Any], fmt: str, verb: str) -> None:
    text = [f"{verb}: {path}" for path in data["done"]] + [f"problem: {problem}" for problem in data["problems"]]
    _archives_output(data, fmt, "\n".join(text or ["Nothing was changed."]) + "\n")
    if data["problems"]:
        sys.exit(EXIT_INCOMPLETE)
