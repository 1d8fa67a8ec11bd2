"""A scan in shards: each shard's partial result (report, plan, audit), and the merge of them. (The stages each function uses are imported when it is first called.)"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

from ..basics.errors import CleanupError
from .reading import energy_model, make_report, open_plan, regeneration_checks

if TYPE_CHECKING:
    from ..energy.model import Assumptions
    from ..ops.shards import MergedPlan

Progress = Callable[[int, int], None]  # called with (files, bytes) after each folder scanned


def is_plan_partial(path: str) -> bool:
    """Whether ``path`` is a plan's partial result (`plan --shard K/N --partial-out FILE`), not a report's."""
    from ..ops.shards import is_plan_partial as starts_as_one

    return starts_as_one(path)


def make_partial(options: dict[str, Any], shard: int, shards: int, progress: Progress | None = None) -> dict[str, Any]:
    """Scan shard ``shard`` (0-based) of ``shards`` of the plan ``options`` describe (see plan_options): the
    partial result `report --shard K/N --partial-out FILE` writes."""
    from ..ops.shards import partial

    return partial(open_plan(**options), options, shard, shards, progress)


def merge_partials(partials: Iterable[str | dict[str, Any]], energy: dict[str, Any] | None = None,
                   command: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The report (`report --format json`) of a scan done in shards, from their partial results (paths or
    dictionaries); refuses partials that are not of one scan, and names missing shards."""
    from ..ops.shards import AUDIT_PARTIAL_FORMAT, check_partials, merge
    from ..report.data import audit_data, report_data
    from ..rules.rulesets import load_rulesets

    loaded = load_partials(partials)
    check_partials(loaded)
    options = loaded[0][1]["options"]
    if loaded[0][1]["format"] == AUDIT_PARTIAL_FORMAT:  # an audit's shards: their rows, sorted as one audit
        ruleset = load_rulesets(options["rules"])
        first = loaded[0][1]
        return audit_data(options["roots"], ruleset, energy_model(ruleset, **options["energy"]),
                          [row for _, data in loaded for row in data["rows"]], first["warnings"], first["failed"],
                          command)
    plan = open_plan(**options)
    shared, summary, statuses, warnings = merge(loaded, plan, progress)
    model = energy_model(plan.ruleset, **(energy or {}))
    return report_data(plan.dataset, plan.ruleset, summary, warnings, plan.selection.participant_labels, model,
                       command, statuses, regeneration=regeneration_checks(plan, statuses))


def load_partials(partials: Iterable[str | dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Partial results (paths or dictionaries) with their names: a plan partial is read through and checked."""
    from ..ops.shards import is_plan_partial, read_partial, read_plan_partial

    return [(item, read_plan_partial(item) if is_plan_partial(item) else read_partial(item)) if isinstance(item, str)
            else (f"partial {index + 1}", item) for index, item in enumerate(partials)]


def write_plan_partial(options: dict[str, Any], shard: int, shards: int, stream: IO[str],
                       progress: Progress | None = None) -> list[str]:
    """Plan shard ``shard`` (0-based) of ``shards`` of the plan ``options`` describe and write its plan
    partial to ``stream`` (`plan --shard K/N --partial-out FILE`); returns its warnings."""
    from ..ops.shards import write_plan_partial as write

    return list(write(open_plan(**options), options, shard, shards, stream, progress)["warnings"])


def write_merged_plan(partials: Iterable[str | dict[str, Any]], stream: IO[str], fmt: str = "tsv",
                      only: str | None = None, progress: Progress | None = None) -> list[str]:
    """Write the plan of a scan done in shards, from their plan partials (`merge`), as write_plan writes a plan;
    returns its warnings."""
    from ..report.planfile import write_plan as write_lines

    merged = merge_plan_partials(partials, progress)
    write_lines(merged.files(), stream, fmt, only)
    return merged.warnings()


def merge_plan_partials(partials: Iterable[str | dict[str, Any]], progress: Progress | None = None) -> MergedPlan:
    """The plan of a scan done in shards (`merge` of plan partials): ``.files()`` streams it in the unsharded
    plan's order, ``.warnings()`` then says what went wrong; refuses partials that are not of one scan."""
    from ..ops.shards import PLAN_PARTIAL_FORMAT, check_partials, merge_plan

    loaded = load_partials(partials)
    check_partials(loaded)
    if loaded[0][1]["format"] != PLAN_PARTIAL_FORMAT:
        raise CleanupError("these are a report's (or an audit's) partial results, not a plan's")
    return merge_plan(loaded, open_plan(**loaded[0][1]["options"]), progress)


def report_in_processes(options: dict[str, Any], processes: int, energy: Assumptions | None = None,
                        command: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Deprecated (goes in the next release): ``make_report(open_plan(**options, jobs=processes))`` is the same
    report, made the way every report is."""
    import warnings

    warnings.warn("report_in_processes(options, processes) is deprecated and goes in the next release: use "
                  "make_report(open_plan(**options, jobs=processes))", DeprecationWarning, stacklevel=2)
    return make_report(open_plan(**options, jobs=processes), energy, command, progress)


def audit_shard(roots: Iterable[str], shard: int, shards: int, rules: Iterable[str] = (),
                energy: dict[str, Any] | None = None, progress: Progress | None = None,
                path_map: dict[str, str] | None = None) -> dict[str, Any]:
    """Shard ``shard`` (0-based) of ``shards`` of an audit - every shards-th dataset found, sorted by path - as
    the partial result `audit --shard K/N --partial-out FILE` writes; `merge` adds the shards up."""
    from ..ops.audit import audit as audit_roots
    from ..ops.shards import audit_partial, rules_digest
    from ..rules.rulesets import load_rulesets

    roots = [os.path.abspath(root) for root in roots]
    ruleset = load_rulesets(list(rules))
    model = energy_model(ruleset, **(energy or {}))
    rows, warnings, failed = audit_roots(roots, ruleset, model, None, progress, tuple((path_map or {}).items()),
                                         (shard, shards))
    options = {"roots": roots, "rules": list(rules), "energy": energy or {}, "path_map": path_map or {}}
    return audit_partial(options, [row.as_dict() for row in rows], warnings, failed, rules_digest(ruleset),
                         shard, shards)
