"""The warnings of a scan: problems met while reading (unreadable folders, vanished files), bounded in memory
and kept in an order that does not depend on how the scan was split."""

from __future__ import annotations

import bisect

MAX_WARNINGS = 100  # past this only the count grows: a broken mount must not flood the report


class Warnings:
    """Problems met during a scan, bounded in memory: past MAX_WARNINGS only the count grows. The messages kept
    are the first in sorted order, not in order of arrival, so a scan in shards, whatever order they finish
    in, keeps exactly the messages one scan would (``merge``)."""

    def __init__(self) -> None:
        self.messages: list[str] = []  # sorted
        self.count = 0

    def add(self, message: str) -> None:
        if message in self.messages:
            return  # said once is enough
        self.count += 1
        bisect.insort(self.messages, message)
        if len(self.messages) > MAX_WARNINGS:
            self.messages.pop()

    def merge(self, messages: list[str], count: int) -> None:
        """Add another scan's warnings (its kept ``messages`` and its ``count``)."""
        for message in messages:
            self.add(message)
        self.count += count - len(messages)

    def as_list(self) -> list[str]:
        extra = self.count - len(self.messages)
        return self.messages + ([f"... and {extra} more warnings"] if extra > 0 else [])
