"""The option sets of the commands that read a dataset and act on it, declared once (basics/options.py): how a
plan is opened (``PlanOptions``: every command that reads a dataset) and how a clean run acts (``CleanOptions``),
handed down unchanged; and the answer no to the question a run asks before acting.

Options are checked when they are made: a mode, archive format or compression that is not one of the known
values is a ValueError at once (``CleanOptions(mode="dryrun")`` never reaches the acting code, where anything
unknown could fall through to the most destructive branch)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from ..basics import numbers
from ..basics.errors import CleanupError
from ..basics.options import (
    Declared,
    Flag,
    absolute_path,
    boolean,
    mapping_of_text,
    number,
    one_of,
    option,
    optional,
    text,
    texts,
    whole,
)
from ..basics.scanformats import FORMAT_NAMES as SCAN_FORMATS
from ..basics.units import parse_duration

DEFAULT_MIN_AGE = 3600.0  # activity this recent: fMRIPrep may still be at work


class Choice(str, Enum):
    """A closed set of plain-string values: equal to its string, printed and written to JSON as it."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(str(member.value) for member in cls)


class Mode(Choice):
    """What a clean run does with the junk. A new mode is a member here, its words below, and its action in
    act/clean.py (ACTIONS); tests/test_declarations.py finds every place that must know it."""

    DRY_RUN = "dry-run"  # touches nothing
    ARCHIVE = "archive"  # verified archives, then the originals go
    DELETE = "delete"


@dataclass(frozen=True)
class ModeWords:
    """How the outputs say what a mode does: before it acts (the question), after it, and in a policy run's
    one line per dataset; and whether it changes files (what the history counts as reclaimed)."""

    before: str
    after: str
    line: str
    changes_files: bool = True


MODE_WORDS = {
    Mode.DRY_RUN: ModeWords("Would remove", "Would remove", "would remove", changes_files=False),
    Mode.ARCHIVE: ModeWords("To archive and remove", "Archived and removed", "archived"),
    Mode.DELETE: ModeWords("To delete", "Removed", "removed"),
}


class ArchiveFormat(Choice):
    TAR = "tar"  # one archive per subject
    TREE = "tree"  # a plain copy


class Compression(Choice):
    GZ = "gz"
    XZ = "xz"


C = TypeVar("C", bound=Choice)


def choice(kind: type[C], value: object, what: str) -> C:
    """``value`` (a member or its plain string) as a member of ``kind``; ValueError naming the choices."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}; one of {', '.join(kind.values())}") from None


def duration_flag(flag: str) -> Any:
    """How a duration flag's text (1h, 30d, 0) becomes seconds: CleanupError naming the flag otherwise."""
    def parse(value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise CleanupError(f"{flag}: {exc}") from None
    return parse


def parse_path_maps(values: tuple[str, ...]) -> dict[str, str]:
    """--path-map CONTAINER=HOST values as a mapping; both sides must be absolute paths."""
    pairs = {}
    for value in values:
        container, separator, host = value.partition("=")
        if not separator or not container.startswith("/") or not host.startswith("/"):
            raise CleanupError(f"--path-map {value}: expected CONTAINER=HOST, two absolute paths "
                               "(e.g. /out=/project/ds/derivatives/fmriprep)")
        pairs[container] = host
    return pairs


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (K from 1 to N) as (K - 1, N)."""
    number, _, count = text.partition("/")
    try:
        shard, shards = int(number), int(count)
    except ValueError:
        raise CleanupError(f"--shard {text}: expected K/N, e.g. 1/4") from None
    if not 1 <= shard <= shards:
        raise CleanupError(f"--shard {text}: K must be between 1 and N")
    return shard - 1, shards


seconds = number(0, numbers.LATEST)
labels = texts


@dataclass(frozen=True)
class PlanOptions(Declared):
    """How a plan is opened (plan/open.py): the options every command that reads a dataset takes, with their
    flags; those a shard records (``recorded``) open the same plan again where the shards are merged."""

    path: str = option("", text)
    rules: tuple[str, ...] = option((), labels, Flag(
        "--rules", dest="rule_refs", multiple=True, metavar="NAME|FILE",
        help="Rule set by shipped name or YAML path; repeat to combine (a later set extends the earlier). "
             "Default: default."))
    work_dir: str | None = option(None, optional(text), Flag(
        "--work-dir", path="folder",
        help="fMRIPrep's working directory (-w), when it is not inside the output directory."))
    find_work_dir: bool = option(True, boolean, Flag(
        "--no-work-dir", dest="no_work_dir", is_flag=True, parse=lambda given: not given,
        help="Leave the working directory out, even one found inside or beside the output."))
    participant_labels: tuple[str, ...] = option((), labels, Flag(
        ("--participant-label", "--participant_label"), dest="participant_labels", multiple=True, metavar="LABEL",
        help="Only these subjects (with or without sub-); several may follow one flag: --participant-label 01 02."))
    exclude_participant_labels: tuple[str, ...] = option((), labels, recorded=False)
    keep: tuple[str, ...] = option((), labels, Flag(
        "--keep", dest="keep_globs", multiple=True, metavar="GLOB",
        help="Also keep files matching GLOB (beats --junk and the rules)."))
    junk: tuple[str, ...] = option((), labels, Flag(
        "--junk", dest="junk_globs", multiple=True, metavar="GLOB",
        help="Also treat files matching GLOB as junk (beats the rules)."))
    jobs: int | None = option(None, optional(whole(1, 256)), Flag(
        ("--jobs", "-j"), int_range=(1, 256), metavar="N",
        help="Local disks: scan each dataset in N processes (default: every usable core, once there are 8 subjects "
             "per process); network file systems: N folders listed at once (default 8). The output is the same "
             "whatever N."), recorded=False)
    min_age: float = option(DEFAULT_MIN_AGE, seconds, Flag(
        "--min-age", default="1h", show_default=True, metavar="DURATION", parse=duration_flag("--min-age"),
        help="Activity this recent means a subject is still running, and junk this recent is held back; 0 for no "
             "limit."))
    stale_after: float | None = option(None, optional(seconds), Flag(
        "--stale-after", metavar="DURATION", parse=duration_flag("--stale-after"),
        help="A failed, stopped or unknown run's working directory idle this long is a stale cache (junk under "
             "default and workdir-only). Default: the rule set's stale_after, else 30d."))
    state_dir: str | None = option(None, optional(text), recorded=False)
    now: float | None = option(None, optional(number(numbers.EARLIEST, numbers.LATEST)), recorded=False)
    path_map: dict[str, str] | None = option(None, optional(mapping_of_text), Flag(
        "--path-map", dest="path_maps", multiple=True, metavar="CONTAINER=HOST", parse=parse_path_maps,
        help="A path runs recorded inside a container and where it is here (repeatable), e.g. "
             "--path-map /data=/project/ds001 --path-map /out=/project/ds001/derivatives/fmriprep."))
    from_scan: str | None = option(None, optional(text), Flag(
        "--from-scan", path="file", metavar="FILE",
        help="Read this scan list instead of walking: an ncdu/gdu JSON export (ncdu -e -o), a find -printf list or "
             "a GPFS LIST file, gzip/zstd or plain (see docs/storage-hygiene.md)."))
    scan_format: str | None = option(None, optional(one_of(SCAN_FORMATS)), Flag(
        "--scan-format", choices=SCAN_FORMATS,
        help="The --from-scan list's format (default: told from its first bytes; gdu's is ncdu)."))

    def recorded(self) -> dict[str, Any]:
        """What a shard records: its path absolute, the scan list's only when one was read."""
        found = super().recorded()
        found["path"] = os.path.abspath(self.path)
        found["path_map"] = found["path_map"] or {}
        if self.from_scan is None:
            del found["from_scan"], found["scan_format"]
        else:
            found["from_scan"] = os.path.abspath(self.from_scan)
        return found


RECORDED_PATHS = {"path": absolute_path, "from_scan": absolute_path}  # what a recorded plan says of where it is


@dataclass(frozen=True)
class CleanOptions(Declared):
    """How a clean run acts - everything but the plan and the callbacks - the same whoever asks for it: the
    command line, a policy, a shard of a job array, a notebook."""

    mode: str = option(Mode.DRY_RUN, lambda value: choice(Mode, value, "mode"), Flag(
        "--mode", choices=Mode.values(), default="dry-run", show_default=True,
        help="dry-run touches nothing; archive moves junk into verified archives; delete unlinks it."))
    archive_dir: str | None = option(None, optional(text), Flag(
        "--archive-dir", path="folder", help="Where archives go (needed for --mode archive; not inside the dataset)."))
    archive_format: str = option(ArchiveFormat.TAR, lambda value: choice(ArchiveFormat, value, "archive format"), Flag(
        "--archive-format", choices=ArchiveFormat.values(), default="tar", show_default=True,
        help="tar: one archive per subject; tree: a copy of the files, e.g. on a slower storage tier."))
    compress: str | None = option(None, optional(lambda value: choice(Compression, value, "compression")), Flag(
        "--compress", choices=("none", *Compression.values()), default="none", show_default=True,
        parse=lambda given: None if given == "none" else given,
        help="Compression of tar archives (NIfTI files are usually gzipped already)."))
    force_drop: bool = option(False, boolean, Flag(
        "--force-drop", is_flag=True,
        help="In a git-annex dataset, drop annexed junk even where no other copy exists (its content is lost)."))
    git_rm: bool = option(False, boolean, Flag(
        "--git-rm", is_flag=True,
        help="In a git repository, remove junk stored in git too, with git rm and a commit (default: left)."))
    allow_output_loss: bool = option(False, boolean, Flag(
        "--allow-output-loss", is_flag=True,
        help="Act even on rules that junk outputs every analysis needs (reports, confounds, masks)."))

    def __post_init__(self) -> None:
        for name, kind, what in (("mode", Mode, "mode"), ("archive_format", ArchiveFormat, "archive format")):
            object.__setattr__(self, name, choice(kind, getattr(self, name), what))  # the defaults too: members
        super().__post_init__()


class Declined(CleanupError):
    """The person (or the policy's threshold) said no after seeing the totals; nothing was changed."""
