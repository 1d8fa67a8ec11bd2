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
