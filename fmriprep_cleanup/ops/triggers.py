"""When an unattended run acts: on how full the storage is, as Robinhood's triggers do - not blindly every night.

A policy entry's ``trigger`` names what to watch and two levels:

    trigger:
      usage: filesystem            # statvfs of the entry's first dataset (or path: /project)
      # usage: {command: "lfs quota -q -p 1234 /lustre"}   # or quota -w, mmlsquota: their tables are read
      # usage: {command: "/usr/local/bin/used-and-limit"}  # or any command printing "USED LIMIT" in bytes
      start_above: 85%             # act only when usage is above this
      stop_below: 75%              # between datasets: stop once usage is below this

A command that fails, or prints something that is not one of those, is one clear line and nothing is done.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from ..basics import numbers
from ..basics.commands import TooMuchOutput, run_capped
from ..basics.errors import CleanupError

USED_COLUMNS = ("kbytes", "blocks", "kb", "space")  # the used-space column of lfs quota, quota -w, mmlsquota
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Usage:
    used: int  # bytes
    limit: int  # bytes
    what: str  # "filesystem /project", "quota (lfs quota -p 1234 /lustre)"

    @property
    def share(self) -> float:
        return self.used / self.limit

    def line(self) -> str:
        return f"{self.what} {self.share:.0%} full"


@dataclass(frozen=True)
class Trigger:
    start_above: float  # a share, 0-1
    stop_below: float
    command: str | None = None  # None: the file system's usage (statvfs)
    path: str | None = None  # where statvfs looks (default: the entry's first dataset)

    def usage(self, default_path: str) -> Usage:
        if self.command is None:
            path = self.path or default_path
            try:
                vfs = os.statvfs(path)
            except OSError as exc:
                raise CleanupError(f"trigger: cannot read the usage of {path}: {exc.strerror or exc}") from None
            total = vfs.f_blocks * vfs.f_frsize
            free = vfs.f_bavail * vfs.f_frsize  # what users can still write, as df counts it
            used = total - vfs.f_bfree * vfs.f_frsize
            return Usage(used, used + free, f"filesystem {path}")
        return command_usage(self.command)

    def as_dict(self) -> dict[str, Any]:
        return {"start_above": self.start_above, "stop_below": self.stop_below, "command": self.command,
                "path": self.path}


def parse_share(value: Any, key: str) -> float:
    """85% or 0.85 -> 0.85."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{key}: expected a share such as 85% or 0.85, got {value!r}") from None
    if isinstance(value, bool) or not 0 < share <= 1:
        raise ValueError(f"{key}: expected a share above 0 and at most 100%, got {value!r}")
    return share


def parse_trigger(spec: Any) -> Trigger:
    """A policy entry's trigger section; ValueError saying what is wrong."""
    if not isinstance(spec, dict) or set(spec) - {"usage", "path", "start_above", "stop_below"}:
        raise ValueError("expected usage, start_above and stop_below (and path), e.g. {usage: filesystem, "
                         "start_above: 85%, stop_below: 75%}")
    start = parse_share(spec.get("start_above"), "start_above")
    stop = parse_share(spec.get("stop_below", spec.get("start_above")), "stop_below")
    if stop > start:
        raise ValueError("stop_below must not be above start_above")
    usage = spec.get("usage", "filesystem")
    if usage == "filesystem":
        command = None
    elif isinstance(usage, dict) and set(usage) == {"command"} and isinstance(usage["command"], str) and usage["command"]:
        command = usage["command"]
    else:
        raise ValueError("usage: filesystem, or {command: \"...\"} (lfs quota, quota -w, mmlsquota, or one that "
                         "prints USED LIMIT in bytes)")
    path = spec.get("path")
    if path is not None and not isinstance(path, str):
        raise ValueError("path: expected a folder")
    return Trigger(start, stop, command, path)


def command_usage(command: str) -> Usage:
    """Run the admin's command (no shell) and read used and limit bytes from what it prints."""
    try:
        done = run_capped(shlex.split(command), COMMAND_TIMEOUT)
    except (OSError, ValueError, subprocess.TimeoutExpired, TooMuchOutput) as exc:
        raise CleanupError(f"trigger: cannot run {command!r}: {exc}") from None
    stdout, stderr = (data.decode("utf-8", "replace") for data in (done.stdout, done.stderr))
    if done.returncode != 0:
        said = (stderr or stdout).strip().splitlines()
        raise CleanupError(f"trigger: {command!r} failed (exit {done.returncode}): {said[-1] if said else 'no output'}")
    used, limit = parse_usage(stdout, command)
    return Usage(used, limit, f"quota ({command})")


def parse_usage(text: str, command: str = "the command") -> tuple[int, int]:
    """(used, limit) bytes from ``USED LIMIT`` (bytes), or from a quota table: ``lfs quota``, ``quota -w`` and
    ``mmlsquota`` print a header naming the used column (kbytes, blocks, KB: KiB) and then quota and limit; the
    soft quota counts where one is set, else the hard limit. CleanupError for anything else."""
    lines = [line for line in text.splitlines() if line.strip()]
    plain = re.fullmatch(r"\s*(\d+)\s+(\d+)\s*", "\n".join(lines)) if len(lines) == 1 else None
    if plain:
        used, limit = int(plain.group(1)[:21]), int(plain.group(2)[:21])
    else:
        used, limit = _quota_table(lines, command)
    try:
        used, limit = numbers.count(used, "used bytes"), numbers.count(limit, "the limit")
    except ValueError as exc:
        raise CleanupError(f"trigger: {command!r} printed {exc}") from None
    if limit <= 0:
        raise CleanupError(f"trigger: {command!r} reports no limit: a quota trigger needs one")
    return used, limit


def _quota_table(lines: list[str], command: str) -> tuple[int, int]:
    for number, line in enumerate(lines):
        header = [word.lower() for word in re.split(r"[\s|]+", line.strip())]
        column = next((header.index(name) for name in USED_COLUMNS if name in header), None)
        if column is None or "limit" not in header[column:]:
            continue  # not the header of the table
        for row in lines[number + 1:]:
            values = [word.rstrip("*") for word in re.split(r"[\s|]+", row.strip())]
            # the used column is the row's first number: before it only names (file system, fileset, type), and a
            # long file system name may sit on a line of its own (lfs quota), leaving a row of numbers
            digits = [index for index, word in enumerate(values) if word.isdigit()]
            if len(digits) < 3 or values[digits[0]:digits[0] + 3] != [values[i] for i in digits[:3]]:
                continue
            used, soft, hard = (int(values[i][:21]) for i in digits[:3])
            return used * 1024, (soft or hard) * 1024
    raise CleanupError(f"trigger: cannot read used and limit from what {command!r} printed (expected USED LIMIT "
                       "in bytes, or lfs quota / quota -w / mmlsquota's table)")
