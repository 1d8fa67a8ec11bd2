"""One clean run of one dataset, as the ``clean`` command and unattended ``run --config`` both do it:
take the dataset's lock, select the worklist, ask (or not), journal, archive or delete, and record it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import __version__
from .act import Outcome, Worklist, build_worklist, delete, refuse_unsafe_roots
from .energy import Assumptions, assumptions, footprint
from .errors import CleanupError
from .plan import Plan
from .state import Journal, RunLock

EXIT_OK = 0
EXIT_INCOMPLETE = 3


class Declined(CleanupError):
    """The person (or the policy's threshold) said no after seeing the totals; nothing was changed."""


@dataclass
class CleanResult:
    dataset: str
    mode: str
    outcome: dict[str, Any]
    started: float
    finished: float
    archives: list[str] = field(default_factory=list)
    journal: str | None = None
    kwh_per_year: float = 0.0
    kgco2e_per_year: float = 0.0
    notes: list[str] = field(default_factory=list)  # how discovery found the folders
    warnings: list[str] = field(default_factory=list)  # what could not be read (also printed on stderr)

    @property
    def exit_status(self) -> int:
        return EXIT_OK if not self.outcome["skipped"] and not self.outcome["failed"] else EXIT_INCOMPLETE

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "dry_run": self.mode == "dry-run", **self.outcome, "archives": self.archives,
                "journal": self.journal, "kwh_per_year_avoided": self.kwh_per_year,
                "kgco2e_per_year_avoided": self.kgco2e_per_year, "notes": self.notes, "warnings": self.warnings}


def check_archive_dir(archive_dir: str | None, plan: Plan) -> str:
    if not archive_dir:
        raise CleanupError("--mode archive needs --archive-dir DIR (outside the dataset)")
    resolved = os.path.realpath(os.path.abspath(os.path.expanduser(archive_dir)))
    for root in plan.dataset.scan_roots:
        if resolved == root.path or resolved.startswith(root.path.rstrip("/") + "/"):
            raise CleanupError(f"--archive-dir {archive_dir} lies inside what is being cleaned ({root.path})")
    return resolved


def clean(plan: Plan, mode: str, archive_dir: str | None = None,
          archive_format: str = "tar", compress: str | None = None,
          confirm: Callable[[Outcome, int], bool] | None = None, energy_model: Assumptions | None = None,
          show: Callable[[Worklist], None] | None = None) -> CleanResult:
    """Dry-run, archive or delete the plan's junk (the plan holds back what must wait: see plan.Plan).
    ``confirm(preview, scanned_bytes)`` sees the totals before anything changes (None: unattended, the mode
    given is the consent); if it says no, Declined is raised. ``show(worklist)`` sees the files before that.
    The lock and journal live in the plan's state directory. Raises LockedError if another run holds the
    dataset's lock."""
    started = time.time()
    model = energy_model or assumptions()
    state = plan.state_dir or plan.dataset.state_dir
    if mode == "dry-run":
        worklist = build_worklist(plan, mode)
        if show is not None:
            show(worklist)
        outcome = worklist.preview()
        if confirm is not None and not confirm(outcome, worklist.scanned_bytes):
            raise Declined("declined; nothing was changed")
        avoided = footprint(outcome.acted.bytes, model)
        return CleanResult(plan.dataset.path, mode, outcome.as_dict(), started, time.time(),
                           kwh_per_year=avoided.kwh_per_year, kgco2e_per_year=avoided.total_kg,
                           notes=list(plan.dataset.notes), warnings=plan.problems())
    if mode == "archive":
        archive_dir = check_archive_dir(archive_dir, plan)
    refuse_unsafe_roots(plan.dataset)
    with RunLock(state):
        worklist = build_worklist(plan, mode)
        if show is not None:
            show(worklist)
        if confirm is not None and not confirm(worklist.preview(), worklist.scanned_bytes):
            raise Declined("cancelled; nothing was changed")
        journal = Journal(state)
        journal.write("run-start", mode=mode, dataset=plan.dataset.path, rules=list(plan.ruleset.names),
                      participant_labels=sorted(plan.selection.participant_labels or []), min_age=plan.min_age,
                      files=len(worklist.files), tool_version=__version__, archive_dir=archive_dir,
                      archive_format=archive_format, compress=compress)
        archives: list[str] = []
        if mode == "archive":
            from .archive import archive

            outcome, archives = archive(worklist, plan.dataset, journal, state, archive_dir, archive_format, compress)
        else:
            outcome = delete(worklist, plan.dataset, journal, state)
        journal.write("run-end", archives=archives,
                      **{key: value for key, value in outcome.as_dict().items() if key != "failure_messages"})
        journal.close()
    avoided = footprint(outcome.acted.bytes, model)
    return CleanResult(plan.dataset.path, mode, outcome.as_dict(), started, time.time(), archives, journal.path,
                       avoided.kwh_per_year, avoided.total_kg, list(plan.dataset.notes), plan.problems())


def record(result: CleanResult, rules: list[str], history_path: str | None) -> None:
    """Add a run to the history database."""
    from .history import History, RunRecord

    outcome = result.outcome
    history = History(history_path)
    try:
        history.add(RunRecord(
            started=result.started, finished=result.finished, dataset=result.dataset, rules=",".join(rules),
            mode=result.mode, files=outcome["files"], bytes=outcome["bytes"],
            skipped_files=sum(row["files"] for row in outcome["skipped"]),
            failed_files=sum(row["files"] for row in outcome["failed"]),
            kwh_per_year=result.kwh_per_year, kgco2e_per_year=result.kgco2e_per_year, exit_status=result.exit_status,
        ))
    finally:
        history.close()
