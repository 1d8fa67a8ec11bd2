"""How a clean run acts, as plain data: what a person (or a policy) asked for, handed down to act/ unchanged;
and the answer no to the question a run asks before acting."""

from __future__ import annotations

from dataclasses import dataclass

from ..basics.errors import CleanupError


@dataclass(frozen=True)
class CleanOptions:
    """How a clean run acts - everything but the plan and the callbacks - the same whoever asks for it: the
    command line, a policy, a shard of a job array, a notebook."""

    mode: str = "dry-run"  # "dry-run" (touches nothing), "archive" or "delete"
    archive_dir: str | None = None  # where verified archives go (archive mode)
    archive_format: str = "tar"  # "tar": one archive per subject; "tree": a plain copy
    compress: str | None = None  # None, "gz" or "xz" (tar archives)
    force_drop: bool = False  # drop annexed content even where git-annex knows no other copy
    git_rm: bool = False  # remove junk stored in git too, with git rm and a commit
    allow_output_loss: bool = False  # act even on rules that junk what every analysis needs


class Declined(CleanupError):
    """The person (or the policy's threshold) said no after seeing the totals; nothing was changed."""
