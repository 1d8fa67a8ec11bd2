"""How a clean run acts, as plain data: what a person (or a policy) asked for, handed down to act/ unchanged;
and the answer no to the question a run asks before acting.

Options are checked when they are made: a mode, archive format or compression that is not one of the known
values is a ValueError at once (``CleanOptions(mode="dryrun")`` never reaches the acting code, where anything
unknown could fall through to the most destructive branch)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from ..basics.errors import CleanupError


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
    DRY_RUN = "dry-run"  # touches nothing
    ARCHIVE = "archive"  # verified archives, then the originals go
    DELETE = "delete"


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


@dataclass(frozen=True)
class CleanOptions:
    """How a clean run acts - everything but the plan and the callbacks - the same whoever asks for it: the
    command line, a policy, a shard of a job array, a notebook."""

    mode: str = Mode.DRY_RUN  # a Mode (its plain string accepted): "dry-run", "archive" or "delete"
    archive_dir: str | None = None  # where verified archives go (archive mode)
    archive_format: str = ArchiveFormat.TAR  # "tar": one archive per subject; "tree": a plain copy
    compress: str | None = None  # None, "gz" or "xz" (tar archives)
    force_drop: bool = False  # drop annexed content even where git-annex knows no other copy
    git_rm: bool = False  # remove junk stored in git too, with git rm and a commit
    allow_output_loss: bool = False  # act even on rules that junk what every analysis needs

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", choice(Mode, self.mode, "mode"))
        object.__setattr__(self, "archive_format", choice(ArchiveFormat, self.archive_format, "archive format"))
        if self.compress is not None:
            object.__setattr__(self, "compress", choice(Compression, self.compress, "compression"))
        if self.archive_dir is not None and not isinstance(self.archive_dir, str):
            raise ValueError(f"archive_dir must be a path (a string), not {self.archive_dir!r}")
        for flag in ("force_drop", "git_rm", "allow_output_loss"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be True or False, not {getattr(self, flag)!r}")


class Declined(CleanupError):
    """The person (or the policy's threshold) said no after seeing the totals; nothing was changed."""
