"""Unattended storage hygiene: a policy file lists datasets and what to do with each; ``run`` executes it.

Unattended means: never prompts (the mode written in the file is the consent); one lock per dataset, and a
locked dataset is skipped and reported, never waited on; a dataset that fails does not stop the others.

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
"""

from __future__ import annotations

import glob
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ..basics.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, CleanupError
from ..basics.formats import output_json
from ..basics.guarded import LinedMapping, label_problem
from ..basics.results import FAILED, SKIPPED, Result, results_json
from ..basics.units import parse_duration, parse_size
from ..plan.open import open_plan
from ..plan.options import ArchiveFormat, CleanOptions, Compression, Mode
from ..plan.plan import Plan
from ..rules.rulesets import Problems, did_you_mean, read_yaml, version_problem
from .triggers import Trigger, Usage, parse_trigger

if TYPE_CHECKING:
    from .history import History

POLICY_KEYS = ("version", "datasets", "history")
ENTRY_KEYS = ("name", "paths", "work_dir", "rules", "mode", "archive_dir", "archive_format", "compress", "min_age",
              "stale_after", "threshold", "participant_labels", "exclude_participant_labels", "retention",
              "expire_archives_after", "allow_output_loss", "trigger")
RETENTION_KEYS = ("category", "archive_after", "delete_after")


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
MODES = Mode.values()
UNATTENDED_MIN_AGE = "24h"


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


def _labels(value: Any, key: str, line: int, problems: Problems) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    numbers = [item for item in values if label_problem(key, item)]
    for number in numbers:
        problems.add(getattr(number, "line", line), label_problem(key, number) or "")
    if numbers:
        return ()
    if not values or not all(isinstance(item, str) for item in values):
        problems.add(line, f"{key}: expected a label or a list of labels in quotes, got {value!r}")
        return ()
    return tuple(values)


def _retention(value: Any, line: int, where: str, problems: Problems, has_archive_dir: bool) -> tuple[RetentionStep, ...]:
    """A policy entry's retention: a list of {category, archive_after, delete_after}, every problem said."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        problems.add(line, f"{where}: retention: expected a list of {{category, archive_after, delete_after}}")
        return ()
    steps = []
    for spec in value:
        at = getattr(spec, "line", line)
        if not isinstance(spec, LinedMapping) or not isinstance(spec.get("category"), str):
            problems.add(at, f"{where}: retention: each step needs a category (as the report names it)")
            continue
        for key in spec:
            if key not in RETENTION_KEYS:
                problems.add(spec.key_lines[key], f"{where}: retention: unknown key {key!r}"
                                                  f"{did_you_mean(key, RETENTION_KEYS)}")
        after: dict[str, float | None] = {}
        for key in ("archive_after", "delete_after"):
            try:
                after[key] = parse_duration(spec[key]) if key in spec else None
            except ValueError as exc:
                problems.add(spec.key_lines[key], f"{where}: retention: {key}: {exc}")
                after[key] = None
        if after["archive_after"] is None and after["delete_after"] is None:
            problems.add(at, f"{where}: retention: {spec['category']!r} needs archive_after or delete_after")
        if after["archive_after"] is not None and not has_archive_dir:
            problems.add(at, f"{where}: retention: archive_after needs the entry's archive_dir")
        if (after["archive_after"] is not None and after["delete_after"] is not None
                and after["delete_after"] <= after["archive_after"]):
            problems.add(at, f"{where}: retention: delete_after must come after archive_after")
        steps.append(RetentionStep(spec["category"], after["archive_after"], after["delete_after"]))
    return tuple(steps)


def load_policy(path: str) -> Policy:
    """Read and validate a policy file; every problem is reported (file:line) before anything runs."""
    data = read_yaml(path, "policy file")
    problems = Problems(path)
    if not isinstance(data, LinedMapping):
        raise CleanupError(f"{path}:1: a policy must be a mapping with version and datasets")
    for key in data:
        if key not in POLICY_KEYS:
            problems.add(data.key_lines[key], f"unknown key {key!r}{did_you_mean(key, POLICY_KEYS)}")
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
        lines = spec.key_lines
        given_paths = spec.get("paths")
        first_path = given_paths[0] if isinstance(given_paths, list) and given_paths else given_paths
        where = f"entry {str(spec.get('name') or first_path or '#' + str(index))!r}"
        for key in spec:
            if key not in ENTRY_KEYS:
                problems.add(lines[key], f"{where}: unknown key {key!r}{did_you_mean(key, ENTRY_KEYS)}")
        for required in ("paths", "mode"):
            if required not in spec:
                problems.add(spec.line, f"{where}: missing {required!r}")
        mode = spec.get("mode", "dry-run")
        if mode not in MODES:
            problems.add(lines.get("mode", spec.line), f"{where}: unknown mode {mode!r}; one of {', '.join(MODES)}")
        if mode == "archive" and not spec.get("archive_dir"):
            problems.add(lines.get("mode", spec.line), f"{where}: mode archive needs archive_dir")
        values: dict[str, Any] = {}
        try:
            values["min_age"] = parse_duration(spec.get("min_age", UNATTENDED_MIN_AGE))
        except ValueError as exc:
            problems.add(lines.get("min_age", spec.line), f"{where}: min_age: {exc}")
        if "stale_after" in spec:
            try:
                values["stale_after"] = parse_duration(spec["stale_after"])
            except ValueError as exc:
                problems.add(lines["stale_after"], f"{where}: stale_after: {exc}")
        threshold = spec.get("threshold")
        if threshold is not None:
            if not isinstance(threshold, dict) or not threshold or set(threshold) - {"bytes", "share"}:
                problems.add(lines["threshold"], f"{where}: threshold: expected bytes and/or share, e.g. {{bytes: 50GB, share: 0.5}}")
            else:
                try:
                    if "bytes" in threshold:
                        values["min_bytes"] = parse_size(threshold["bytes"])
                    if "share" in threshold:
                        if isinstance(threshold["share"], bool):
                            raise ValueError(f"share must be a number between 0 and 1, not {threshold['share']!r}")
                        share = float(threshold["share"])
                        if not 0 <= share <= 1:
                            raise ValueError(f"share must be between 0 and 1, not {threshold['share']!r}")
                        values["min_share"] = share
                except (TypeError, ValueError) as exc:
                    problems.add(lines["threshold"], f"{where}: threshold: {exc}")
        values["retention"] = _retention(spec.get("retention"), lines.get("retention", spec.line), where, problems,
                                         bool(spec.get("archive_dir")))
        if "expire_archives_after" in spec:
            if not spec.get("archive_dir"):
                problems.add(lines["expire_archives_after"], f"{where}: expire_archives_after needs archive_dir")
            try:
                values["expire_archives_after"] = parse_duration(spec["expire_archives_after"])
            except ValueError as exc:
                problems.add(lines["expire_archives_after"], f"{where}: expire_archives_after: {exc}")
        if "trigger" in spec:
            try:
                values["trigger"] = parse_trigger(spec["trigger"])
            except ValueError as exc:
                problems.add(lines["trigger"], f"{where}: trigger: {exc}")
        if not isinstance(spec.get("allow_output_loss", False), bool):
            problems.add(lines["allow_output_loss"], f"{where}: allow_output_loss must be true or false")
        else:
            values["allow_output_loss"] = spec.get("allow_output_loss", False)
        if spec.get("archive_format", "tar") not in ArchiveFormat.values():
            problems.add(lines["archive_format"], f"{where}: archive_format must be tar or tree")
        compress = spec.get("compress", "none")
        if compress != "none" and compress not in Compression.values():
            problems.add(lines["compress"], f"{where}: compress must be none, gz or xz")
        paths = _labels(spec.get("paths", []), "paths", lines.get("paths", spec.line), problems)
        rules = _labels(spec["rules"], "rules", lines["rules"], problems) if "rules" in spec else ()
        include = _labels(spec["participant_labels"], "participant_labels", lines["participant_labels"], problems) \
            if "participant_labels" in spec else ()
        exclude = _labels(spec["exclude_participant_labels"], "exclude_participant_labels",
                           lines["exclude_participant_labels"], problems) if "exclude_participant_labels" in spec else ()
        entries.append(PolicyEntry(
            line=spec.line, name=str(spec.get("name", paths[0] if paths else f"#{index}")), paths=paths, mode=str(mode),
            work_dir=spec.get("work_dir"), rules=rules, archive_dir=spec.get("archive_dir"),
            archive_format=str(spec.get("archive_format", "tar")), compress=None if compress == "none" else compress,
            participant_labels=include, exclude_participant_labels=exclude, **values,
        ))
    if entries:
        from ..rules.rulesets import load_rulesets

        for entry in entries:
            try:
                load_rulesets(list(entry.rules) or ["default"])  # none: the pipeline's default, checked when opened
            except CleanupError as exc:
                problems.add(entry.line, f"entry {entry.name!r}: rules: {exc}")
    problems.raise_if_any()
    return Policy(path, tuple(entries), data.get("history"))


@dataclass
class DatasetResult:
    entry: str
    dataset: str
    status: str  # "ok" | "incomplete" (files skipped or failed) | "skipped" (locked, below threshold) | "failed" | "stopped"
    mode: str
    reason: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The log's line for this dataset: the clean's JSON (with its result records) when it ran; else one result
        record saying why not."""
        results = self.result.get("results") or results_json(
            [Result(self.dataset, self.mode, FAILED if self.status == "failed" else SKIPPED, self.reason)])
        return {"entry": self.entry, "dataset": self.dataset, "status": self.status, "mode": self.mode,
                "reason": self.reason, **self.result, "results": results}


def expand_paths(entry: PolicyEntry) -> list[str]:
    found: list[str] = []
    for pattern in entry.paths:
        pattern = os.path.expanduser(pattern)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        found += [match for match in matches if match not in found]
    return found


def entry_plan(entry: PolicyEntry, path: str, now: float | None = None) -> Plan:
    """The plan of one dataset of an entry: opened as `clean` opens it with the same options (plan/open.py)."""
    return open_plan(path, rules=entry.rules, work_dir=entry.work_dir, participant_labels=entry.participant_labels,
                     exclude_participant_labels=entry.exclude_participant_labels, min_age=entry.min_age,
                     stale_after=entry.stale_after, now=now)


def run_entry_dataset(entry: PolicyEntry, path: str, history: History | None, log_traceback: Callable[[str], None],
                      mode_override: str | None = None, select: Callable[[Any], bool] | None = None,
                      now: float | None = None) -> DatasetResult:
    """One dataset of one entry, unattended; every error becomes a result, never an exception. An unexpected
    one (a bug) is logged with its traceback and makes this dataset failed; the others go on. ``mode_override``
    and ``select``: a retention step's (default: the entry's mode, on all the junk); ``now``: the time to judge
    ages at (tests inject it)."""
    mode = mode_override or entry.mode
    from ..act.lock import LockedError
    from ..plan.options import Declined
    from .runs import run_clean

    try:
        plan = entry_plan(entry, path, now)

        def above_threshold(preview: Any, scanned_bytes: int) -> bool:
            if entry.min_bytes is None and entry.min_share is None:
                return True
            junk = preview.acted.bytes
            return ((entry.min_bytes is not None and junk > entry.min_bytes)
                    or (entry.min_share is not None and scanned_bytes > 0 and junk / scanned_bytes > entry.min_share))

        result = run_clean(plan, entry.clean_options(mode), history, record=history is not None,
                           confirm=above_threshold, select=select)
    except Declined:
        return DatasetResult(entry.name, path, "skipped", mode, "reclaimable space below the threshold")
    except LockedError as exc:
        return DatasetResult(entry.name, path, "skipped", mode, str(exc))
    except CleanupError as exc:
        return DatasetResult(entry.name, path, "failed", mode, str(exc))
    except OSError as exc:
        return DatasetResult(entry.name, path, "failed", mode, f"{exc.strerror or exc}")
    except Exception as exc:  # a bug must not cost the other datasets their run
        log_traceback(traceback.format_exc())
        return DatasetResult(entry.name, path, "failed", mode,
                             f"unexpected error ({type(exc).__name__}: {exc}); traceback in the log")
    if result.signal is not None:
        status = "stopped"
    else:
        status = "ok" if result.exit_status == 0 or mode == "dry-run" else "incomplete"
    reasons = [f"{row['files']} skipped: {row['reason']}" for row in result.outcome["skipped"]]
    reasons += [f"{row['files']} failed: {row['reason']}" for row in result.outcome["failed"]]
    reasons += result.after_acting
    if result.nothing_to_do:
        reasons.insert(0, "nothing to do")
    return DatasetResult(entry.name, path, status, mode, "; ".join(reasons), result.as_dict())


def run_retention(entry: PolicyEntry, path: str, history: History | None, log_traceback: Callable[[str], None],
                  now: float | None = None) -> list[DatasetResult]:
    """An entry with a retention plan, on one dataset: junk of a listed category goes when its step says
    (deleted once idle delete_after, else archived once idle archive_after; until then it stays), junk of the
    other categories as the entry's mode says; then archive runs older than expire_archives_after are pruned.
    A dry-run entry only says what each step would do."""
    from ..act.archives import prune_archives

    when = time.time() if now is None else now
    steps = {step.category: step for step in entry.retention}

    def chooser(action: str) -> Callable[[Any], bool]:
        def chosen(planned: Any) -> bool:
            step = steps.get(planned.category)
            if step is None:
                return entry.mode == action
            return step.due(when - planned.mtime) == action
        return chosen

    results = []
    for action in ("delete", "archive"):
        wanted = any((step.delete_after if action == "delete" else step.archive_after) is not None
                     for step in entry.retention)
        if not wanted and entry.mode != action:
            continue  # no step of this kind, and the other categories' junk is not the entry's to act on so
        results.append(run_entry_dataset(entry, path, history, log_traceback,
                                         "dry-run" if entry.mode == "dry-run" else action, chooser(action), when))
        results[-1].reason = f"retention {action}: {results[-1].reason}" if results[-1].reason else f"retention {action}"
    if entry.expire_archives_after is not None and entry.archive_dir and os.path.isdir(entry.archive_dir):
        try:
            pruned = prune_archives(entry.archive_dir, entry.expire_archives_after, entry.mode != "dry-run", when)
            results.append(DatasetResult(entry.name, entry.archive_dir, "ok", "prune" if entry.mode != "dry-run"
                                         else "dry-run", f"retention expire: {len(pruned['runs'])} archive run(s)",
                                         {"files": 0, "bytes": pruned["bytes"], "pruned_runs": pruned["runs"]}))
        except (CleanupError, OSError) as exc:
            results.append(DatasetResult(entry.name, entry.archive_dir, "failed", "prune", str(exc)))
    return results


def _trigger_record(trigger: Trigger, usage: Usage, triggered: bool) -> dict[str, Any]:
    return {**trigger.as_dict(), "used_bytes": usage.used, "limit_bytes": usage.limit, "share": usage.share,
            "what": usage.what, "triggered": triggered}


def run_policy(policy: Policy, log: IO[str] | None = None, history_path: str | None = None,
               record_dry_run: bool = False, now: float | None = None) -> tuple[list[DatasetResult], int]:
    """Run every entry on every dataset it names; returns the results and the exit code.

    The history is opened (so checked for writing) before anything runs: a history that cannot be written is
    an error before acting, never a surprise after it."""
    from .history import History, RunRecord

    def log_traceback(text: str) -> None:
        if log is not None:
            log.write(output_json({"time": round(time.time(), 3), "traceback": text}) + "\n")
            log.flush()

    # every trigger is read before anything runs: a quota command that fails is an error with nothing changed
    usages = {entry.name: entry.trigger.usage(expand_paths(entry)[0] if expand_paths(entry) else "/")
              for entry in policy.entries if entry.trigger is not None}
    wants_history = any(entry.mode != "dry-run" for entry in policy.entries) or record_dry_run
    history = History(history_path or policy.history) if wants_history else None
    results: list[DatasetResult] = []

    def record(done: list[DatasetResult], untriggered: PolicyEntry | None = None) -> None:
        """Log ``done``; results of an ``untriggered`` entry (nothing done) are rows of the history too."""
        results.extend(done)
        if untriggered is not None and history is not None:
            for result in done:
                moment = time.time()
                history.add(RunRecord(moment, moment, result.dataset, ",".join(untriggered.rules), untriggered.mode,
                                      0, 0, 0, 0, 0.0, 0.0, 0, note=result.reason or ""))
        if log is not None:
            for result in done:
                log.write(output_json({"time": round(time.time(), 3), **result.as_dict()}) + "\n")
            log.flush()

    try:
        for entry in policy.entries:
            paths = expand_paths(entry)
            if not paths:
                results.append(DatasetResult(entry.name, ", ".join(entry.paths), "failed", entry.mode, "no path matches"))
            if entry.trigger is not None and paths:
                usage = usages[entry.name]
                if usage.share <= entry.trigger.start_above:
                    record([DatasetResult(entry.name, ", ".join(paths), "ok", entry.mode,
                                          f"not triggered: {usage.line()}, not above "
                                          f"{entry.trigger.start_above:.0%}: nothing to do",
                                          {"trigger": _trigger_record(entry.trigger, usage, False)})], entry)
                    continue
            for number, path in enumerate(paths):
                if entry.trigger is not None and number:
                    usage = entry.trigger.usage(paths[0])  # what the datasets done so far freed
                    if usage.share < entry.trigger.stop_below:
                        record([DatasetResult(entry.name, rest, "ok", entry.mode,
                                              f"stopped: {usage.line()}, below {entry.trigger.stop_below:.0%}",
                                              {"trigger": _trigger_record(entry.trigger, usage, False)})
                                for rest in paths[number:]], entry)
                        break
                recording = history if entry.mode != "dry-run" or record_dry_run else None
                done = (run_retention(entry, path, recording, log_traceback, now) if entry.retention
                        else [run_entry_dataset(entry, path, recording, log_traceback, now=now)])
                if entry.trigger is not None:
                    for result in done:
                        result.result["trigger"] = _trigger_record(entry.trigger, usages[entry.name], True)
                        result.reason = "; ".join(filter(None, [f"triggered: {usages[entry.name].line()}, above "
                                                                f"{entry.trigger.start_above:.0%}", result.reason]))
                        if recording is not None:
                            recording.note_last(result.result.get("dataset") or result.dataset, result.reason)
                record(done)
                if results[-1].status == "stopped":
                    break  # Ctrl-C or SIGTERM: the remaining datasets wait for the next run
            if results and results[-1].status == "stopped":
                break
    finally:
        if history is not None:
            history.close()
    statuses = [result.status for result in results]
    code = (EXIT_INTERRUPTED if "stopped" in statuses else EXIT_FAILED if "failed" in statuses
            else EXIT_INCOMPLETE if ("skipped" in statuses or "incomplete" in statuses) else EXIT_OK)
    acted = [r for r in results if r.mode != "dry-run"]
    dry = [r for r in results if r.mode == "dry-run"]
    if log is not None:
        log.write(output_json({"time": round(time.time(), 3), "summary": True, "datasets": len(results),
                              **{status: statuses.count(status) for status in ("ok", "incomplete", "skipped", "failed", "stopped")},
                              "files": sum(r.result.get("files", 0) for r in acted),
                              "bytes": sum(r.result.get("bytes", 0) for r in acted),
                              "would_remove_files": sum(r.result.get("files", 0) for r in dry),
                              "would_remove_bytes": sum(r.result.get("bytes", 0) for r in dry),
                              "exit_status": code}) + "\n")
        log.flush()
    return results, code
