"""One clean run, recorded: the single path every run takes - `clean` on the command line, a notebook's
``api.clean``, each dataset of an unattended policy run - so the same plan and options give the same work and the
same history record, whoever asks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..basics.errors import CleanupError
from ..energy.model import Assumptions, footprint, model_for
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
    sets. The callbacks and ``select``/``shard`` are act.clean.clean's; ``energy``: how avoided kWh and kgCO2e
    are counted (default: the rule set's energy: section).
    """
    from ..act.clean import clean

    wanted = record if record is not None else options.mode != "dry-run"
    database = None if not wanted else history if isinstance(history, History) else History(history)
    try:
        result = clean(plan, options, confirm=confirm, show=show, scan_progress=progress,
                       act_progress=act_progress, select=select, shard=shard)
        described(result, plan)
        count_avoided(result, energy or model_for(plan.ruleset.energy))  # the same figures whoever calls
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


def count_avoided(result: CleanResult, model: Assumptions) -> None:
    """The energy and carbon a year the run avoided (and each run it found cut short), by ``model``."""
    avoided = footprint(result.outcome["bytes"], model)
    result.kwh_per_year, result.kgco2e_per_year = avoided.kwh_per_year, avoided.total_kg
    for run in result.cut_short:
        cut = footprint(run["bytes"], model)
        run["kwh_per_year"], run["kgco2e_per_year"] = cut.kwh_per_year, cut.total_kg


def described(result: CleanResult, plan: Plan) -> None:
    """Where the run acted (the dataset's folders, and how each was found) and, first among its warnings, what
    reading the dataset said."""
    result.folders, result.notes = plan.dataset.folders(), list(plan.dataset.notes)
    result.warnings[:0] = plan.all_warnings()
