"""Result records: what a run did, or did not do and why, in one shape for every acting command - clean, restore,
archives verify and prune, and each dataset of a policy run - as DataLad reports its result records. Each is one
line of the ``results`` list of the command's JSON; the counts and figures beside it stay as they were."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OK, SKIPPED, FAILED = "ok", "skipped", "failed"


@dataclass(frozen=True)
class Result:
    """One outcome: ``path`` (a dataset, an archive or a file), ``action`` (dry-run, delete, archive, restore,
    verify, prune), ``status`` (ok, skipped or failed), why (``reason``, empty when it went as asked), and how
    many files and bytes it concerns."""

    path: str
    action: str
    status: str
    reason: str = ""
    files: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def results_json(results: list[Result]) -> list[dict[str, Any]]:
    """The ``results`` list of a command's JSON."""
    return [result.as_dict() for result in results]


def tallied(path: str, action: str, done: tuple[int, int], by_status: dict[str, list[dict[str, Any]]]) -> list[Result]:
    """Records from tallies: one ok record (files, bytes done), then one per reason of each status, as a run's
    outcome counts them ({"reason", "files", "bytes"} rows)."""
    records = [Result(path, action, OK, "", *done)]
    for status, rows in by_status.items():
        records += [Result(path, action, status, str(row["reason"]), int(row["files"]), int(row["bytes"])) for row in rows]
    return records
