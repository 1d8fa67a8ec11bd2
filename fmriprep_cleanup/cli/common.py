"""What every command shares: the group that turns errors into one line and an exit code, the options that
select a dataset's files and set the energy model, progress on a terminal, and writing output safely."""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable
from typing import IO, Any, NoReturn

import click

from ..basics.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CleanupError
from ..basics.outputs import write_file

_LABEL = re.compile(r"^(?:sub-)?[a-zA-Z0-9]+$")
ARGUMENTS: list[str] = []  # the command line as typed, for reports that say how they were made


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """The one error format: each line "fmriprep-cleanup: error: ..." on stderr, then exit (2: nothing changed)."""
    for line in message.splitlines() or ["unknown error"]:
        click.echo(f"fmriprep-cleanup: error: {line}", err=True)
    sys.exit(code)


class CleanupGroup(click.Group):
    """Turns CleanupError, and click's own usage errors, into one line on stderr and exit code 2."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:  # click would print three lines starting "Usage:" and "Error:"
            where = exc.ctx.command_path if exc.ctx is not None else prog_name or "fmriprep-cleanup"
            fail(f"{exc.format_message()} (see '{where} --help')", exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:  # Ctrl-C or end of input at a prompt: nothing was changed
            click.echo("\nfmriprep-cleanup: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a full disk behind standard output is found here, not at the interpreter's exit
            return result
        except CleanupError as exc:
            fail(str(exc))
        except KeyboardInterrupt:  # Ctrl-C while reading (acting stops itself at the next file and reports)
            click.echo("\nfmriprep-cleanup: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away: not an error of ours.
            _quiet_stdout()
            ctx.exit(EXIT_OK)
        except OSError as exc:
            if exc.errno not in OUTPUT_ERRORS:
                raise
            _quiet_stdout()
            fail(f"cannot write the output: {exc.strerror or exc}")


OUTPUT_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)  # standard output cannot take it


def _quiet_stdout() -> None:
    """Send what is left to write on standard output nowhere, so exiting does not fail on it again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def apply_options(options: list[Callable], command: Callable) -> Callable:
    """Decorate ``command`` with ``options``, the first listed shown first in --help."""
    for option in reversed(options):
        command = option(command)
    return command


path_map_option = click.option(
    "--path-map", "path_maps", multiple=True, metavar="CONTAINER=HOST",
    help="A path runs recorded inside a container and where it is here (repeatable), e.g. "
         "--path-map /data=/project/ds001 --path-map /out=/project/ds001/derivatives/fmriprep.")


def parse_path_maps(values: tuple[str, ...]) -> dict[str, str]:
    """--path-map CONTAINER=HOST values as a dictionary; both sides must be absolute paths."""
    pairs = {}
    for value in values:
        container, separator, host = value.partition("=")
        if not separator or not container.startswith("/") or not host.startswith("/"):
            raise CleanupError(f"--path-map {value}: expected CONTAINER=HOST, two absolute paths "
                               "(e.g. /out=/project/ds/derivatives/fmriprep)")
        pairs[container] = host
    return pairs



rules_option = click.option(
    "--rules", "rule_refs", multiple=True, metavar="NAME|FILE",
    help="Rule set by shipped name or YAML path; repeat to combine (a later set extends the earlier). Default: default.")
work_dir_option = click.option(
    "--work-dir", type=click.Path(file_okay=False, path_type=str),
    help="fMRIPrep's working directory (-w), when it is not inside the output directory.")
jobs_option = click.option(
    "--jobs", "-j", type=click.IntRange(1, 256), metavar="N",
    help="Local disks: scan each dataset in N processes (default: every usable core, once there are 8 subjects "
         "per process); network file systems: N folders listed at once (default 8). The output is the same "
         "whatever N.")
from_scan_option = click.option(
    "--from-scan", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
    help="Read this scan list instead of walking: an ncdu/gdu JSON export (ncdu -e -o), a find -printf list or a "
         "GPFS LIST file, gzip/zstd or plain (see docs/storage-hygiene.md).")
scan_format_option = click.option(
    "--scan-format", type=click.Choice(["ncdu", "find", "gpfs"]),
    help="The --from-scan list's format (default: told from its first bytes; gdu's is ncdu).")
participant_label_option = click.option(
    "--participant-label", "--participant_label", "participant_labels", multiple=True, metavar="LABEL",
    help="Only these subjects (with or without sub-); several may follow one flag: --participant-label 01 02.")
record_option = click.option("--record", is_flag=True,
                             help="Record dry runs in the history too (archive and delete runs always are).")
output_option = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
                             help="Write to FILE instead of stdout (a file is replaced whole or not at all).")


def format_option(choices: list[str], default: str | None = None, note: str = "") -> Callable:
    """--format: always the output's format, its choices the command's own."""
    shown = f" (default: {default})" if default else ""
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, metavar="FORMAT",
                        help=f"Output format: {', '.join(choices)}{shown}." + (f" {note}" if note else ""))


def shard_options(unit: str) -> Callable:
    """--shard K/N with --partial-out FILE: do one share of the work and write a partial result for `merge`."""
    def decorate(command: Callable) -> Callable:
        return apply_options([
            click.option("--shard", metavar="K/N",
                         help=f"Do only shard K of N ({unit}) and write its partial result to --partial-out."),
            click.option("--partial-out", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
                         help="Where a shard's partial result goes, for `merge`."),
        ], command)
    return decorate


def action_option(command: Callable) -> Callable:
    """--action keep|junk: a plan's files with this action only. Its old name, --only, works for one release
    (as ``old_action``: the command takes ``action or old_action``); status's --only alone keeps the name."""
    def say_deprecated(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            deprecated(f"{ctx.info_name} --only keep|junk", f"{ctx.info_name} --action keep|junk")
        return value

    return apply_options([
        click.option("--action", type=click.Choice(["keep", "junk"]), help="Only files with this action."),
        click.option("--only", "old_action", type=click.Choice(["keep", "junk"]), hidden=True,
                     callback=say_deprecated),
    ], command)


def selection_options(command: Callable) -> Callable:
    """Options shared by every command that looks at a dataset (see ``open_plan``)."""
    return apply_options([
        rules_option,
        work_dir_option,
        click.option("--no-work-dir", "no_work_dir", is_flag=True,
                     help="Leave the working directory out, even one found inside or beside the output."),
        participant_label_option,
        click.option("--keep", "keep_globs", multiple=True, metavar="GLOB", help="Also keep files matching GLOB (beats --junk and the rules)."),
        click.option("--junk", "junk_globs", multiple=True, metavar="GLOB", help="Also treat files matching GLOB as junk (beats the rules)."),
        jobs_option,
        click.option("--min-age", default="1h", show_default=True, metavar="DURATION",
                     help="Activity this recent means a subject is still running, and junk this recent is held "
                          "back; 0 for no limit."),
        click.option("--stale-after", metavar="DURATION",
                     help="A failed, stopped or unknown run's working directory idle this long is a stale cache "
                          "(junk under default and workdir-only). Default: the rule set's stale_after, else 30d."),
        path_map_option,
        from_scan_option,
        scan_format_option,
    ], command)


def energy_options(command: Callable) -> Callable:
    """Overrides of the storage energy and carbon model (see README, "Energy and carbon")."""
    return apply_options([
        click.option("--storage-profile", metavar="NAME", help="Storage profile: hpc-hdd (default), hdd, ssd, workstation-hdd, ccf-hdd, ccf-ssd."),
        click.option("--pue", type=float, help="Data-centre power usage effectiveness (>= 1)."),
        click.option("--copies", type=float, help="Copies kept: replication and backups (e.g. 2)."),
        click.option("--carbon-intensity", type=float, metavar="G", help="Grid carbon intensity in gCO2e/kWh."),
        click.option("--country", metavar="CODE", help="Take the carbon intensity of this country or region (FR, US-CA...)."),
    ], command)


def energy_overrides(storage_profile: str | None = None, pue: float | None = None, copies: float | None = None,
                     carbon_intensity: float | None = None, country: str | None = None) -> dict[str, Any]:
    """The energy options as ``energy_model`` takes them."""
    return {"profile": storage_profile, "pue": pue, "copies": copies, "carbon_intensity": carbon_intensity,
            "country": country}


def duration(option: str, value: str | None) -> float | None:
    """A duration option (1h, 30d, 0) in seconds; None if not given."""
    from ..basics.units import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise CleanupError(f"{option}: {exc}") from None


def open_plan(path: str, rule_refs: tuple[str, ...] = (), work_dir: str | None = None,
              participant_labels: tuple[str, ...] = (), keep_globs: tuple[str, ...] = (),
              junk_globs: tuple[str, ...] = (), jobs: int | None = None, no_work_dir: bool = False,
              min_age: str = "1h", stale_after: str | None = None, state_dir: str | None = None,
              path_maps: tuple[str, ...] = (), from_scan: str | None = None, scan_format: str | None = None) -> Any:
    """The plan, from the selection options as click gives them."""
    from ..api import DEFAULT_MIN_AGE
    from ..api import open_plan as open_plan_api

    window, stale = duration("--min-age", min_age), duration("--stale-after", stale_after)
    return open_plan_api(path, rules=rule_refs, work_dir=work_dir, find_work_dir=not no_work_dir,
                         participant_labels=participant_labels, keep=keep_globs, junk=junk_globs, jobs=jobs,
                         min_age=window if window is not None else DEFAULT_MIN_AGE, stale_after=stale,
                         state_dir=state_dir, path_map=parse_path_maps(path_maps), from_scan=from_scan,
                         scan_format=scan_format)


def plan_options(path: str, rule_refs: tuple[str, ...] = (), work_dir: str | None = None,
                 participant_labels: tuple[str, ...] = (), keep_globs: tuple[str, ...] = (),
                 junk_globs: tuple[str, ...] = (), jobs: int | None = None, no_work_dir: bool = False,
                 min_age: str = "1h", stale_after: str | None = None, path_maps: tuple[str, ...] = (),
                 from_scan: str | None = None, scan_format: str | None = None) -> dict[str, Any]:
    """The selection options as api.plan_options records them (for shards and processes)."""
    from ..api import DEFAULT_MIN_AGE
    from ..api import plan_options as options

    window = duration("--min-age", min_age)
    return options(path, rule_refs, work_dir, not no_work_dir, participant_labels, keep_globs, junk_globs,
                   window if window is not None else DEFAULT_MIN_AGE, duration("--stale-after", stale_after),
                   parse_path_maps(path_maps), from_scan, scan_format)


class Progress:
    """One progress line on stderr for every long phase - scanning, archiving, removing, restoring - shown only
    when stderr is a terminal (and not --quiet), redrawn at most twice a second, and wiped when done."""

    INTERVAL = 0.5  # seconds between redraws

    def __init__(self, enabled: bool) -> None:
        import time

        self.enabled = enabled and sys.stderr.isatty()
        self.files = 0
        self.bytes = 0
        self.total_files = 0  # of the acting phases, once known (the work list)
        self.total_bytes = 0
        self._clock = time.monotonic
        self._started: dict[str, float] = {}
        self._next = self._clock()  # the first line at once: a sign of life from the start
        self._shown = False
        self._phase = ""  # a new phase is drawn at once
        self._where = ""  # the dataset being scanned, when there are several (audit)

    def __call__(self, files: int, nbytes: int) -> None:
        """The scan read another folder of ``files`` files and ``nbytes`` bytes."""
        self.files += files
        self.bytes += nbytes
        if self._due("scanning"):
            self._draw(f"scanning{self._where}: {self._counted(self.files, self.bytes)}")

    def dataset(self, path: str, number: int, total: int) -> None:
        """An audit starts on dataset ``number`` of ``total``: the next lines name it."""
        self._where = f" {number}/{total} {path}"
        self._draw(f"scanning{self._where}")

    def dataset_callback(self) -> Callable[[str, int, int], None] | None:
        return self.dataset if self.enabled else None

    def expect(self, files: int, nbytes: int) -> None:
        """What the acting phases will handle, for their share done and time left."""
        self.total_files, self.total_bytes = files, nbytes

    def acting(self, phase: str, files: int, nbytes: int) -> None:
        """``phase`` ("archiving", "removing", "restoring") has handled ``files`` files, ``nbytes`` bytes so far."""
        started = self._started.setdefault(phase, self._clock())
        if not self._due(phase):
            return
        from ..report.people import size

        elapsed = max(self._clock() - started, 1e-6)
        line = f"{phase}: {self._counted(files, nbytes, self.total_files, self.total_bytes)}"
        if elapsed >= 1 and nbytes:
            rate = nbytes / elapsed
            line += f", {size(int(rate))}/s"
            if self.total_bytes > nbytes:
                line += f", about {_duration(int((self.total_bytes - nbytes) / rate))} left"
        self._draw(line)

    def callback(self) -> Progress | None:
        """Itself, when it shows anything (so a scan that is not watched pays nothing)."""
        return self if self.enabled else None

    def acting_callback(self) -> Callable[[str, int, int], None] | None:
        return self.acting if self.enabled else None

    def done(self) -> None:
        """Wipe the line, so what follows starts clean."""
        if self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._shown = False

    def _due(self, phase: str) -> bool:
        if not self.enabled or (phase == self._phase and self._clock() < self._next):
            return False
        self._phase = phase
        self._next = self._clock() + self.INTERVAL
        return True

    def _draw(self, line: str) -> None:
        sys.stderr.write(f"\r{line}\x1b[K")  # the rest of a longer earlier line is cleared, not left behind
        sys.stderr.flush()
        self._shown = True

    @staticmethod
    def _counted(files: int, nbytes: int, total_files: int = 0, total_bytes: int = 0) -> str:
        from ..report.people import count, size
        from ..report.people import files as file_count

        if total_files:
            return f"{count(files)} of {file_count(total_files)}, {size(nbytes)} of {size(total_bytes)}"
        return f"{file_count(files)}, {size(nbytes)}"


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def terminal_width(wide: bool) -> int | None:
    """The columns text tables must fit: the terminal's, when stdout is one and --wide was not given; else no
    limit (a pipe or a file gets every character)."""
    import shutil

    if wide or not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


wide_option = click.option("--wide", is_flag=True,
                           help="Do not shorten long paths to fit the terminal (they never are in pipes and files).")


def warn(warnings: list[str]) -> None:
    """Warnings go to stderr, one line each, whatever the output format."""
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


history_option = click.option(
    "--history", "history_path", type=click.Path(dir_okay=False, path_type=str),
    help="Run history database (default: a policy's history:, else $XDG_STATE_HOME/fmriprep-cleanup/history.sqlite).")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")


def deprecated(old: str, new: str) -> None:
    """An old spelling still works for one release, said once on stderr (CHANGELOG.md lists them)."""
    click.echo(f"fmriprep-cleanup: deprecated: {old} is now {new}; the old spelling goes in the next release",
               err=True)


def write_output(text_or_writer: str | Callable[[IO[str]], object], output: str | None) -> None:
    """Write to --output FILE or to stdout. A regular file is replaced whole (basics/outputs.py); a pipe or a
    device (/dev/null, /dev/stdout) is written into; a link someone else planted is refused."""
    if output is None or output == "-":
        _write_to(sys.stdout, text_or_writer)
        sys.stdout.flush()
        return
    write_file(output, text_or_writer)


def _write_to(handle: IO[str], text_or_writer: str | Callable[[IO[str]], object]) -> None:
    if isinstance(text_or_writer, str):
        handle.write(text_or_writer)
    else:
        text_or_writer(handle)


def command_line() -> str | None:
    """The command as typed (shell-quoted), for reports that say how they were made; without --jobs, which
    changes how fast, never what (a report made with any --jobs is the same, byte for byte)."""
    import shlex

    return "fmriprep-cleanup " + " ".join(shlex.quote(arg) for arg in without_jobs(ARGUMENTS)) if ARGUMENTS else None


def without_jobs(args: list[str]) -> list[str]:
    """The arguments without --jobs N, --jobs=N, -j N or -jN."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--jobs", "-j"):
            skip = True
        elif not (arg.startswith("--jobs=") or (arg.startswith("-j") and arg[2:].isdigit())):
            kept.append(arg)
    return kept


def interactive() -> bool:
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
