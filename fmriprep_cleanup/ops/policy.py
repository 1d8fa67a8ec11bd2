"""Unattended storage hygiene: a policy file lists datasets and what to do with each (ops/hygiene.py runs it).

    version: 1
    datasets:
      - paths: ["/project/*/derivatives/fmriprep"]   # globs allowed
        work_dir: /scratch/work                       # optional
        rules: [default]                              # optional
        mode: archive                                 # dry-run | archive | delete
        archive_dir: /archive/fmriprep                # needed for archive
        min_age: 24h                                  # default 24h when unattended
        threshold: {bytes: 50GB, share: 0.5}          # optional: act only above either
        trigger: {usage: filesystem, start_above: 85%, stop_below: 75%}   # optional: act only when full (triggers.py)
        participant_labels: ["01", "02"]              # optional
        exclude_participant_labels: ["03"]            # optional

The file's keys are declared once, below (POLICY, ENTRY, RETENTION_STEP), and read by basics/schema.py: every
problem is said with its file and line before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..basics.errors import CleanupError
from ..basics.guarded import LinedMapping, label_problem
from ..basics.schema import At, Key, Problems, Reader, Schema, choice, flag
from ..basics.units import parse_duration, parse_size
from ..plan.options import ArchiveFormat, CleanOptions, Compression, Mode
from ..rules.rulesets import read_yaml, version_problem
from .triggers import Trigger, parse_trigger

MODES = Mode.values()
UNATTENDED_MIN_AGE = "24h"


@dataclass(frozen=True)
class RetentionStep:
    """When the junk of one category goes: archived once idle archive_after, deleted once idle delete_after."""

    category: str
    archive_after: float | None = None
    delete_after: float | None = None

    def due(self, idle: float) -> str | None:
        """What happens now to a junk file idle this long: "delete", "archive" or None (not yet)."""
        if self.delete_after is not None and idle >= self.delete_after:
            return "delete"
        if self.archive_after is not None and idle >= self.archive_after:
            return "archive"
        return None


@dataclass(frozen=True)
class PolicyEntry:
    line: int
    name: str
    paths: tuple[str, ...]
    mode: str
    work_dir: str | None = None
    rules: tuple[str, ...] = ()  # none: the pipeline's own default, as clean without --rules
    archive_dir: str | None = None
    archive_format: str = "tar"
    compress: str | None = None
    min_age: float = 86400.0
    stale_after: float | None = None  # None: the rule sets', else 30 days
    min_bytes: int | None = None
    min_share: float | None = None
    participant_labels: tuple[str, ...] = ()
    exclude_participant_labels: tuple[str, ...] = ()
    retention: tuple[RetentionStep, ...] = ()
    expire_archives_after: float | None = None  # archive runs older than this are pruned
    allow_output_loss: bool = False  # act even on rules that junk what every analysis needs (clean --allow-output-loss)
    trigger: Trigger | None = None  # act only when the storage is this full (ops/triggers.py)

    def clean_options(self, mode: str | None = None) -> CleanOptions:
        """The entry's clean options (``mode``: a retention step's, instead of the entry's)."""
        return CleanOptions(mode=mode or self.mode, archive_dir=self.archive_dir, archive_format=self.archive_format,
                            compress=self.compress, allow_output_loss=self.allow_output_loss)


@dataclass(frozen=True)
class Policy:
    path: str
    entries: tuple[PolicyEntry, ...]
    history: str | None = None


# --- how each value is read -----------------------------------------------------------------------------------

def duration(value: Any, at: At) -> float:
    return parse_duration(value)


def labels(key: str) -> Reader:
    """A reader of a label or a list of labels, in quotes (YAML reads an unquoted 03 as the number 3)."""
    def read(value: Any, at: At) -> tuple[str, ...]:
        values = value if isinstance(value, list) else [value]
        numbers = [item for item in values if label_problem(key, item)]
        for number in numbers:
            at.report(getattr(number, "line", at.line), label_problem(key, number) or "")
        if numbers:
            return ()
        if not values or not all(isinstance(item, str) for item in values):
            raise ValueError(f"expected a label or a list of labels in quotes, got {value!r}")
        return tuple(values)
    return read


def threshold(value: Any, at: At) -> dict[str, Any]:
    """{bytes: 50GB, share: 0.5}: act only above either."""
    if not isinstance(value, dict) or not value or set(value) - {"bytes", "share"}:
        raise ValueError("expected bytes and/or share, e.g. {bytes: 50GB, share: 0.5}")
    found: dict[str, Any] = {}
    try:
        if "bytes" in value:
            found["min_bytes"] = parse_size(value["bytes"])
        if "share" in value:
            if isinstance(value["share"], bool):
                raise ValueError(f"share must be a number between 0 and 1, not {value['share']!r}")
            share = float(value["share"])
            if not 0 <= share <= 1:
                raise ValueError(f"share must be between 0 and 1, not {value['share']!r}")
            found["min_share"] = share
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return found


def trigger(value: Any, at: At) -> Trigger:
    return parse_trigger(value)


RETENTION_STEP = Schema((Key("category", required=True), Key("archive_after", duration),
                         Key("delete_after", duration)))


def retention(value: Any, at: At) -> tuple[RetentionStep, ...]:
    """A list of {category, archive_after, delete_after}: when the junk of each category goes."""
    if not isinstance(value, list) or not value:
        raise ValueError("expected a list of {category, archive_after, delete_after}")
    steps = []
    for spec in value:
        line = getattr(spec, "line", at.line)
        if not isinstance(spec, LinedMapping) or not isinstance(spec.get("category"), str):
            at.problem("each step needs a category (as the report names it)", line)
            continue
        read = RETENTION_STEP.read(spec, At(at.report, line, at.where))
        step = RetentionStep(spec["category"], read.get("archive_after"), read.get("delete_after"))
        if step.archive_after is None and step.delete_after is None:
            at.problem(f"{step.category!r} needs archive_after or delete_after", line)
        if step.archive_after is not None and step.delete_after is not None \
                and step.delete_after <= step.archive_after:
            at.problem("delete_after must come after archive_after", line)
        steps.append(step)
    return tuple(steps)


POLICY = Schema((Key("version"), Key("datasets"), Key("history")))  # version and datasets: see load_policy
ENTRY = Schema((
    Key("name"),
    Key("paths", labels("paths"), required=True),
    Key("work_dir"),
    Key("rules", labels("rules")),
    Key("mode", choice(MODES, "mode"), required=True, named=False),
    Key("archive_dir"),
    Key("archive_format", choice(ArchiveFormat.values(), "archive format")),
    Key("compress", choice(("none", *Compression.values()), "compression")),
    Key("min_age", duration),
    Key("stale_after", duration),
    Key("threshold", threshold),
    Key("participant_labels", labels("participant_labels")),
    Key("exclude_participant_labels", labels("exclude_participant_labels")),
    Key("retention", retention),
    Key("expire_archives_after", duration),
    Key("allow_output_loss", flag),
    Key("trigger", trigger),
))


# --- the file ----------------------------------------------------------------------------------------------------

def load_policy(path: str) -> Policy:
    """Read and validate a policy file; every problem is reported (file:line) before anything runs."""
    data = read_yaml(path, "policy file")
    problems = Problems(path)
    if not isinstance(data, LinedMapping):
        raise CleanupError(f"{path}:1: a policy must be a mapping with version and datasets")
    POLICY.read(data, At(problems.add, data.line))
    if data.get("version") != 1:
        problems.add(data.key_lines.get("version", data.line), version_problem(data.get("version")))
    datasets = data.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        problems.add(data.key_lines.get("datasets", data.line), "datasets: expected a non-empty list of entries")
        datasets = []
    entries = []
    for index, spec in enumerate(datasets, start=1):
        if not isinstance(spec, LinedMapping):
            problems.add(data.key_lines.get("datasets", data.line), f"entry #{index}: expected a mapping, got {spec!r}")
            continue
        entries.append(read_entry(spec, index, problems))
    check_rules(entries, problems)
    problems.raise_if_any()
    return Policy(path, tuple(entries), data.get("history"))


def read_entry(spec: LinedMapping, index: int, problems: Problems) -> PolicyEntry:
    """One entry of ``datasets``, every problem of it said (the entry is only used if there are none)."""
    given = spec.get("paths")
    first_path = given[0] if isinstance(given, list) and given else given
    at = At(problems.add, spec.line, f"entry {str(spec.get('name') or first_path or '#' + str(index))!r}: ")
    values = ENTRY.read(spec, at)
    lines = spec.key_lines
    if values.get("mode") == "archive" and not spec.get("archive_dir"):
        at.problem("mode archive needs archive_dir", lines["mode"])
    if any(step.archive_after is not None for step in values.get("retention", ())) and not spec.get("archive_dir"):
        at.problem("retention: archive_after needs the entry's archive_dir", lines["retention"])
    if "expire_archives_after" in spec and not spec.get("archive_dir"):
        at.problem("expire_archives_after needs archive_dir", lines["expire_archives_after"])
    paths = values.get("paths", ())
    compress = values.pop("compress", "none")
    values.update(values.pop("threshold", {}))
    values.setdefault("min_age", parse_duration(UNATTENDED_MIN_AGE))
    return PolicyEntry(line=spec.line, name=str(spec.get("name", paths[0] if paths else f"#{index}")), paths=paths,
                       mode=str(values.pop("mode", "dry-run")), compress=None if compress == "none" else compress,
                       **{key: value for key, value in values.items() if key not in ("name", "paths")})


def check_rules(entries: list[PolicyEntry], problems: Problems) -> None:
    """Each entry's rule sets load (none: the pipeline's default, checked when the dataset is opened)."""
    from ..rules.rulesets import load_rulesets

    for entry in entries:
        try:
            load_rulesets(list(entry.rules) or ["default"])
        except CleanupError as exc:
            problems.add(entry.line, f"entry {entry.name!r}: rules: {exc}")
