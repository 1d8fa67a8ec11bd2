"""One problem, one line: many items that share a reason (runs kept for the same cause, the same warning about a
hundred subjects) are said once, with how many and a few examples. Machine formats keep every item besides."""

from __future__ import annotations

import re
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


SUBJECT = re.compile(r"\bsub-[A-Za-z0-9]+")
RUN = re.compile(r"\b\d{8}-\d{6}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")  # a run's uuid


def grouped_messages(messages: Iterable[str], examples: int = EXAMPLES) -> list[str]:
    """Messages that say the same of different subjects (the same unreadable run config in each of 100
    subjects) as one line: the message with ``sub-*`` for the subject, how many, a few subjects; the others as
    they are, in order."""
    by_pattern: dict[str, list[str]] = {}
    for message in messages:
        pattern = RUN.sub("<run>", SUBJECT.sub("sub-*", message))
        by_pattern.setdefault(pattern if SUBJECT.search(message) else message, []).append(message)
    lines = []
    for pattern, said in by_pattern.items():
        if len(said) < 2:
            lines.extend(said)
            continue
        subjects = list(dict.fromkeys(found.group(0) for message in said for found in [SUBJECT.search(message)]
                                      if found))
        more = f" and {len(subjects) - examples} more" if len(subjects) > examples else ""
        lines.append(f"{pattern} ({len(said)} times: {', '.join(subjects[:examples])}{more}; "
                     "--format json lists each)")
    return lines
