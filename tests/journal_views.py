"""Views of the journals and manifests that only tests (and people reading them) need: what a run named,
what it removed, whether a cut-short run waits to be recovered. Built on the tool's own readers."""

from __future__ import annotations

from typing import Any

from fmriprep_cleanup.act.manifest import ManifestEntry, load_manifest
from fmriprep_cleanup.basics.journals import (
    REMOVED,
    REMOVING,
    batch_categories,
    journal_files,
    read_records,
    removed_files,
    survey_journals,
)


def read_manifest(path: str) -> list[ManifestEntry]:
    """Every line of a manifest, whatever its seal."""
    return load_manifest(path).entries


def needs_recovery(state_dir: str) -> bool:
    """Whether a run this user started in ``state_dir`` was cut short and its journal waits to be finished."""
    return bool(survey_journals(state_dir).actionable)


def _batch_paths(record: dict[str, Any]) -> list[str]:
    """The paths a "removing" record names (lists of [path, size, category]; dicts in earlier versions)."""
    return list(batch_categories(record))


def batches(state_dir: str) -> dict[tuple[str, Any], tuple[list[str], list[str] | None]]:
    """Every batch any run began: (run, batch) -> (the paths it named, the paths it removed; None while it has
    no end record). For people and tests checking that the record is exact."""
    found: dict[tuple[str, Any], tuple[list[str], list[str] | None]] = {}
    for path in journal_files(state_dir, finished=True):
        for record in read_records(path, chained=False):
            if record["event"] == REMOVING:
                found[(record["run"], record.get("batch"))] = (_batch_paths(record), None)
            elif record["event"] == REMOVED:
                key = (record.get("recovers") or record["run"], record.get("batch"))
                named = found.get(key, ([], None))[0]
                removed = record.get("removed")
                done = named if removed == "all" else [p for p in removed if isinstance(p, str)] if isinstance(removed, list) else []
                found[key] = (named, (found.get(key, ([], None))[1] or []) + done)
    return found


def removed_paths(state_dir: str) -> list[str]:
    """Every file any run of this state directory recorded as removed (recovered removals included)."""
    return [path for path, _ in removed_files(state_dir)]
