"""One clean run, recorded: the single path every run takes - `clean` on the command line, a notebook's
``api.clean``, each dataset of an unattended policy run - so the same plan and options give the same work and the
same history record, whoever asks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..basics.errors import CleanupError
from ..energy.model import Assumptions
from ..plan.options import CleanOptions
from ..plan.plan import Plan
from .history import History, record_run

if TYPE_CHECKING:
    from ..act.clean import CleanResult


def run_clean(plan: Plan, options: CleanOptions, history: History | str | None = None, record: bool | None = None,
              confirm: Callable[[Any, int], bool] | None = None, show: Callable[[Any], None] | None = None,
              energy: Assumptions | None = None, progress: Callable[[int, int], None] | None = None,
              act_progress: Callable[[str, int, int], None] | None = None,
              select: Callable[[Any], bool] | None = None, shard: Iterable[str] | None = None) -> CleanResult:
    """Dry-run, archive or delete the plan's junk (act/clean.py) and record the run in the history.

    ``history``: an open History (a policy run shares one), or its path (None: the default database), opened
    before acting so that one that cannot be written stops the run before anything changes; ``record``: None
    records archive and delete runs, True dry runs too, False none. The record's rules are the plan's rule
    sets. The callbacks and ``select``/``shard`` are act.clean.clean's.
    """
    from ..act.clean import clean

    wanted = record if record is not None else options.mode != "dry-run"
    database = None if not wanted else history if isinstance(history, History) else History(history)
    try:
        result = clean(plan, options, confirm=confirm, energy_model=energy, show=show, scan_progress=progress,
                       act_progress=act_progress, select=select, shard=shard)
        if database is not None:
            try:
                record_run(database, result, list(plan.ruleset.names))
            except CleanupError as exc:  # after acting: the summary still comes, and exit 3
                result.after_acting.append(str(exc))
                result.warnings.append(str(exc))
    finally:
        if database is not None and database is not history:
            database.close()
    return result
