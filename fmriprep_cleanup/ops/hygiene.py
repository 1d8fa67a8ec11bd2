"""Running a storage-hygiene policy (ops/policy.py reads the file), unattended: never prompts (the mode written in
the file is the consent); one lock per dataset, and a locked dataset is skipped and reported, never waited on; a
dataset that fails does not stop the others."""

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
from ..basics.results import FAILED, SKIPPED, Result, results_json
from ..plan.open import open_plan
from ..plan.options import PlanOptions
from ..plan.plan import Plan
from .policy import Policy, PolicyEntry
from .triggers import Trigger, Usage

if TYPE_CHECKING:
    from .history import History


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
    return open_plan(PlanOptions(path, rules=entry.rules, work_dir=entry.work_dir,
                                 participant_labels=entry.participant_labels,
                                 exclude_participant_labels=entry.exclude_participant_labels, min_age=entry.min_age,
                                 stale_after=entry.stale_after, now=now))


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
    an error before acting, never a surprise after it; so is every trigger's reading (a quota command that
    fails)."""
    from .history import History

    usages = {entry.name: entry.trigger.usage(expand_paths(entry)[0] if expand_paths(entry) else "/")
              for entry in policy.entries if entry.trigger is not None}
    wants_history = any(entry.mode != "dry-run" for entry in policy.entries) or record_dry_run
    run = PolicyRun(log, History(history_path or policy.history) if wants_history else None, record_dry_run, now)
    try:
        for entry in policy.entries:
            run.entry(entry, usages.get(entry.name))
            if run.results and run.results[-1].status == "stopped":
                break  # Ctrl-C or SIGTERM: the remaining datasets wait for the next run
    finally:
        if run.history is not None:
            run.history.close()
    return run.results, run.finish()


class PolicyRun:
    """One run of a policy: its results as they come, each logged (one JSON line) and, for entries that did not
    trigger, recorded in the history too."""

    def __init__(self, log: IO[str] | None, history: History | None, record_dry_run: bool,
                 now: float | None) -> None:
        self.log, self.history, self.record_dry_run, self.now = log, history, record_dry_run, now
        self.results: list[DatasetResult] = []

    def log_traceback(self, text: str) -> None:
        if self.log is not None:
            self.log.write(output_json({"time": round(time.time(), 3), "traceback": text}) + "\n")
            self.log.flush()

    def record(self, done: list[DatasetResult], untriggered: PolicyEntry | None = None) -> None:
        """Log ``done``; results of an ``untriggered`` entry (nothing done) are rows of the history too."""
        from .history import RunRecord

        self.results.extend(done)
        if untriggered is not None and self.history is not None:
            for result in done:
                moment = time.time()
                self.history.add(RunRecord(moment, moment, result.dataset, ",".join(untriggered.rules),
                                           untriggered.mode, 0, 0, 0, 0, 0.0, 0.0, 0, note=result.reason or ""))
        if self.log is not None:
            for result in done:
                self.log.write(output_json({"time": round(time.time(), 3), **result.as_dict()}) + "\n")
            self.log.flush()

    def entry(self, entry: PolicyEntry, usage: Usage | None) -> None:
        """Every dataset of one entry, unless its trigger says the storage is not full enough; with a trigger,
        the datasets stop once the storage is below its stop_below."""
        paths = expand_paths(entry)
        if not paths:
            self.results.append(DatasetResult(entry.name, ", ".join(entry.paths), "failed", entry.mode,
                                              "no path matches"))
            return
        if entry.trigger is not None and usage is not None and usage.share <= entry.trigger.start_above:
            self.record([DatasetResult(entry.name, ", ".join(paths), "ok", entry.mode,
                                       f"not triggered: {usage.line()}, not above {entry.trigger.start_above:.0%}: "
                                       "nothing to do", {"trigger": _trigger_record(entry.trigger, usage, False)})],
                        entry)
            return
        for number, path in enumerate(paths):
            if entry.trigger is not None and number:
                now = entry.trigger.usage(paths[0])  # what the datasets done so far freed
                if now.share < entry.trigger.stop_below:
                    self.record([DatasetResult(entry.name, rest, "ok", entry.mode,
                                               f"stopped: {now.line()}, below {entry.trigger.stop_below:.0%}",
                                               {"trigger": _trigger_record(entry.trigger, now, False)})
                                 for rest in paths[number:]], entry)
                    return
            self.dataset(entry, path, usage)
            if self.results[-1].status == "stopped":
                return

    def dataset(self, entry: PolicyEntry, path: str, usage: Usage | None) -> None:
        recording = self.history if entry.mode != "dry-run" or self.record_dry_run else None
        done = (run_retention(entry, path, recording, self.log_traceback, self.now) if entry.retention
                else [run_entry_dataset(entry, path, recording, self.log_traceback, now=self.now)])
        if entry.trigger is not None and usage is not None:
            for result in done:
                result.result["trigger"] = _trigger_record(entry.trigger, usage, True)
                result.reason = "; ".join(filter(None, [f"triggered: {usage.line()}, above "
                                                        f"{entry.trigger.start_above:.0%}", result.reason]))
                if recording is not None:
                    recording.note_last(result.result.get("dataset") or result.dataset, result.reason)
        self.record(done)

    def finish(self) -> int:
        """The run's exit code, after the summary line of the log."""
        statuses = [result.status for result in self.results]
        code = (EXIT_INTERRUPTED if "stopped" in statuses else EXIT_FAILED if "failed" in statuses
                else EXIT_INCOMPLETE if ("skipped" in statuses or "incomplete" in statuses) else EXIT_OK)
        if self.log is not None:
            acted = [result for result in self.results if result.mode != "dry-run"]
            dry = [result for result in self.results if result.mode == "dry-run"]
            self.log.write(output_json({
                "time": round(time.time(), 3), "summary": True, "datasets": len(self.results),
                **{status: statuses.count(status) for status in ("ok", "incomplete", "skipped", "failed", "stopped")},
                "files": sum(result.result.get("files", 0) for result in acted),
                "bytes": sum(result.result.get("bytes", 0) for result in acted),
                "would_remove_files": sum(result.result.get("files", 0) for result in dry),
                "would_remove_bytes": sum(result.result.get("bytes", 0) for result in dry),
                "exit_status": code}) + "\n")
            self.log.flush()
        return code
