"""One problem, one line: many items that share a reason (runs kept for the same cause, the same warning about a
hundred subjects) are said once, with how many and a few examples. Machine formats keep every item besides."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EXAMPLES = 3


def grouped(items: Iterable[tuple[str, str]], examples: int = EXAMPLES) -> list[dict[str, Any]]:
    """(item, reason) pairs as one record per reason: ``{"why", "count", "examples"}`` (the first ``examples``
    items, in the order given), the commonest reason first, then in order of first appearance."""
    found: dict[str, dict[str, Any]] = {}
    for item, why in items:
        group = found.setdefault(why, {"why": why, "count": 0, "examples": []})
        group["count"] += 1
        if len(group["examples"]) < examples:
            group["examples"].append(item)
    order = {why: position for position, why in enumerate(found)}
    return sorted(found.values(), key=lambda group: (-group["count"], order[group["why"]]))


def grouped_line(group: dict[str, Any], noun: str = "item") -> str:
    """"3 runs: why (e.g. a, b, c)" of one group, with "and N more" past the examples."""
    count, shown = group["count"], group["examples"]
    more = f", and {count - len(shown)} more" if count > len(shown) else ""
    plural = noun if count == 1 else noun + "s"
    return f"{count} {plural}: {group['why']} (e.g. {', '.join(shown)}{more})"
