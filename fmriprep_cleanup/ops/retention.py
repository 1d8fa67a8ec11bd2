"""What a retention plan will do over time: the dataset's junk of each listed category by how long it has
been idle, then, at each day a step falls due, the bytes left in the dataset, the bytes in archives, and what
keeping them costs per year. The plan (ops/policy.py) acts; this only foresees."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..basics.annex import ELSEWHERE
from ..energy.model import Assumptions, footprint
from ..plan import shares
from ..plan.plan import Plan
from .policy import RetentionStep

DAY = 86400.0


def idle_junk(plan: Plan, categories: Iterable[str]) -> dict[str, list[tuple[float, int]]]:
    """The junk of ``categories`` as (idle seconds, bytes) pairs, annexed content not here left out."""
    wanted = set(categories)
    found: dict[str, list[tuple[float, int]]] = {category: [] for category in wanted}
    for planned in shares.files(plan):
        if planned.action == "junk" and planned.category in wanted and planned.annex != ELSEWHERE:
            found[planned.category].append((plan.now - planned.mtime, planned.size))
    return found


def timeline(total_bytes: int, steps: list[RetentionStep], junk: dict[str, list[tuple[float, int]]],
             expire_after: float | None, model: Assumptions) -> list[dict[str, Any]]:
    """The dataset and its archives today and on each day a step falls due for some file: bytes kept in the
    dataset, bytes in archives, and their kgCO2e per year."""
    days = {0.0}
    for step in steps:
        for idle, _ in junk.get(step.category, []):
            for after in (step.archive_after, step.delete_after):
                if after is not None:
                    day = max(0.0, after - idle)
                    days.add(day)
                    if expire_after is not None and after == step.archive_after:
                        days.add(day + expire_after)
    rows = []
    for day in sorted(days):
        dataset, archived = total_bytes, 0
        for step in steps:
            for idle, size in junk.get(step.category, []):
                due = step.due(idle + day * 1.0)
                if due is None:
                    continue
                dataset -= size
                if due == "archive" and step.archive_after is not None:
                    archived_on = max(0.0, step.archive_after - idle)
                    if expire_after is None or day < archived_on + expire_after:
                        archived += size
        rows.append({"day": round(day / DAY, 1), "dataset_bytes": dataset, "archive_bytes": archived,
                     "kgco2e_per_year": footprint(dataset, model).total_kg + footprint(archived, model).total_kg})
    return rows
