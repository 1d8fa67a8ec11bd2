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

from ..api import EnergyOverrides, PlanOptions
from ..basics.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CleanupError
from ..basics.options import D, Declared, Flag
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


def declared_options(kind: type[Declared], skip: tuple[str, ...] = ()) -> Callable:
    """The options of a declared option set (basics/options.py: PlanOptions, CleanOptions, EnergyOverrides) as
    click options, in the order declared: a flag is defined once, where its option is."""
    def decorate(command: Callable) -> Callable:
        return apply_options([_click_option(item.name, flag) for item, flag in kind.flagged() if item.name not in skip],
                             command)
    return decorate


def declared_option(kind: type[Declared], name: str) -> Callable:
    """One option of a declared option set, as a click option (for a command that takes it alone)."""
    return next(_click_option(item.name, flag) for item, flag in kind.flagged() if item.name == name)


def _click_option(name: str, flag: Flag) -> Callable:
    settings: dict[str, Any] = {"help": flag.help}
    if flag.choices is not None:
        settings["type"] = click.Choice(list(flag.choices))
    elif flag.int_range is not None:
        settings["type"] = click.IntRange(*flag.int_range)
    elif flag.number:
        settings["type"] = float
    elif flag.path is not None:
        settings["type"] = click.Path(file_okay=flag.path == "file", dir_okay=flag.path == "folder", path_type=str)
    for setting in ("metavar", "multiple", "is_flag", "default", "show_default"):
        if getattr(flag, setting):
            settings[setting] = getattr(flag, setting)
    return click.option(*flag.spellings(), flag.dest or name, **settings)


def declared_values(kind: type[Declared], given: dict[str, Any]) -> dict[str, Any]:
    """The values click gave for ``kind``'s options, taken out of ``given``, as the option set's own (a duration
    in seconds, --no-work-dir as find_work_dir...)."""
    values = {}
    for item, flag in kind.flagged():
        dest = flag.dest or item.name
        if dest in given:
            value = given.pop(dest)
            values[item.name] = flag.parse(value) if flag.parse is not None else value
    return values


rules_option = declared_option(PlanOptions, "rules")
work_dir_option = declared_option(PlanOptions, "work_dir")
jobs_option = declared_option(PlanOptions, "jobs")
path_map_option = declared_option(PlanOptions, "path_map")
from_scan_option = declared_option(PlanOptions, "from_scan")
scan_format_option = declared_option(PlanOptions, "scan_format")
participant_label_option = declared_option(PlanOptions, "participant_labels")
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
    def say_deprecated(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            deprecated(f"{ctx.info_name} --only keep|junk", f"{ctx.info_name} --action keep|junk")
        return value

    return apply_options([
        click.option("--action", type=click.Choice(["keep", "junk"]), help="Only files with this action."),
        click.option("--only", "old_action", type=click.Choice(["keep", "junk"]), hidden=True,
                     callback=say_deprecated),
    ], command)


selection_options = declared_options(PlanOptions)  # every command that reads a dataset: how its plan is opened
energy_options = declared_options(EnergyOverrides)  # the storage energy and carbon model (README, "Energy and carbon")


def declared(kind: type[D], given: dict[str, Any], **more: Any) -> D:
    """An option set from its options as click gives them (taken out of ``given``; ``more``: a command's own,
    such as clean's --state-dir), checked as a Python call's are: a value it refuses is one line, exit 2."""
    try:
        return kind(**declared_values(kind, given), **more)
    except ValueError as exc:
        raise CleanupError(str(exc)) from None


def plan_options(path: str, given: dict[str, Any], **more: Any) -> PlanOptions:
    """How the plan is opened, from the selection options as click gives them."""
    return declared(PlanOptions, given, path=path, **more)


def open_plan(options: PlanOptions) -> Any:
    """The plan these options open (checked when they were made, as a Python call's are)."""
    from ..api.reading import open_plan_with

    return open_plan_with(options)


def energy_overrides(given: dict[str, Any]) -> dict[str, Any]:
    """The energy options as click gives them, as ``energy_model`` takes them (taken out of ``given``)."""
    return declared(EnergyOverrides, given).recorded()


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

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()

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
    """Warnings go to stderr, one line each, whatever the output format; the same warning of many subjects once,
    with how many (JSON keeps every one)."""
    from ..basics.grouping import grouped_messages

    for warning in grouped_messages(dict.fromkeys(warnings)):
        click.echo(f"warning: {warning}", err=True)


history_option = click.option(
    "--history", "history_path", type=click.Path(dir_okay=False, path_type=str),
    help="Run history database (default: a policy's history:, else $XDG_STATE_HOME/fmriprep-cleanup/history.sqlite).")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")


def deprecated(old: str, new: str) -> None:
    """An old spelling still works for one release, said once on stderr (CHANGELOG.md lists them)."""
    click.echo(f"fmriprep-cleanup: deprecated: {old} is now {new}; the old spelling goes in the next release",
               err=True)


def write_output(text_or_writer: str | Callable[[IO[str]], Any], output: str | None) -> Any:
    """Write to --output FILE or to stdout; a writer's result is returned. A regular file is replaced whole
    (basics/outputs.py); a pipe or a device (/dev/null, /dev/stdout) is written into; a link someone else
    planted is refused."""
    if output is None or output == "-":
        result = _write_to(sys.stdout, text_or_writer)
        sys.stdout.flush()
        return result
    return write_file(output, text_or_writer)


def _write_to(handle: IO[str], text_or_writer: str | Callable[[IO[str]], Any]) -> Any:
    if isinstance(text_or_writer, str):
        return handle.write(text_or_writer)
    return text_or_writer(handle)


def shard_of(shard: str | None, partial_out: str | None) -> tuple[int, int] | None:
    """--shard K/N with --partial-out FILE, as (K - 1, N); None when neither is given."""
    from ..api import parse_shard

    if (shard is None) != (partial_out is None):
        raise CleanupError("--shard K/N and --partial-out FILE go together")
    return None if shard is None else parse_shard(shard)


def screen_width(wide: bool, output: str | None) -> int | None:
    """The columns text must fit: the terminal's when the text goes to it (see terminal_width), else none."""
    return terminal_width(wide) if output in (None, "-") else None


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
