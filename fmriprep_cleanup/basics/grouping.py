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


def message_groups(messages: Iterable[str]) -> list[dict[str, Any]]:
    """Messages that say the same of different subjects (the same unreadable run config in each of 100
    subjects), one record each: the message with ``sub-*`` for the subject, how many times, which subjects; in
    the order first said. A message said of one subject, or of none, is a group of its own."""
    found: dict[str, dict[str, Any]] = {}
    for message in messages:
        subject = SUBJECT.search(message)
        pattern = RUN.sub("<run>", SUBJECT.sub("sub-*", message)) if subject else message
        group = found.setdefault(pattern, {"message": pattern, "count": 0, "subjects": [], "said": message})
        group["count"] += 1
        if subject and subject.group(0) not in group["subjects"]:
            group["subjects"].append(subject.group(0))
    return list(found.values())


def grouped_messages(messages: Iterable[str], examples: int = EXAMPLES) -> list[str]:
    """``message_groups`` as lines for people: a message said once as it is, the others once with how many
    times and a few subjects."""
    lines = []
    for group in message_groups(messages):
        if group["count"] < 2:
            lines.append(group["said"])
            continue
        subjects = group["subjects"]
        more = f" and {len(subjects) - examples} more" if len(subjects) > examples else ""
        lines.append(f"{group['message']} ({group['count']} times: {', '.join(subjects[:examples])}{more}; "
                     "--format json lists each)")
    return lines
