"""Storage over time and across projects: audit, policy runs, the history, schedules. (The stages each function uses are imported when it is first called.)"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

from .reading import energy_model

if TYPE_CHECKING:
    pass

Progress = Callable[[int, int], None]  # called with (files, bytes) after each folder scanned


def audit(roots: Iterable[str], rules: Iterable[str] = (), jobs: int | None = None, energy: dict[str, Any] | None = None,
          progress: Progress | None = None, path_map: dict[str, str] | None = None,
          command: str | None = None, from_scan: str | None = None, scan_format: str | None = None,
          announce: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Every fMRIPrep output below ``roots``, largest reclaimable first: `audit --format json` (its "failed"
    lists folders that looked like a dataset but could not be read). ``energy``: overrides, as energy_model's;
    ``path_map``: {path inside the container: the same path here}, for the output and working directories
    runs recorded; ``command``: how the audit was made, shown in it; ``announce(path, number, total)``: told
    as each dataset's scan starts."""
    from ..ops.audit import audit as audit_roots
    from ..report.data import audit_data
    from ..rules.rulesets import load_rulesets

    roots = list(roots)
    ruleset = load_rulesets(list(rules))
    model = energy_model(ruleset, **(energy or {}))
    pairs = tuple((path_map or {}).items())
    scan = (os.path.abspath(from_scan), scan_format) if from_scan is not None else None
    rows, warnings, failed = audit_roots(roots, ruleset, model, jobs, progress, pairs, None, scan, announce)
    return audit_data(roots, ruleset, model, rows, warnings, failed, command)


def run_policy(config: str, log: str | IO[str] | None = None, history_path: str | None = None,
               record: bool = False) -> tuple[list[Any], int]:
    """Run a storage-hygiene policy file unattended: the results (one per dataset) and the exit code. The
    policy is checked first: an invalid one is refused (CleanupError) before the log (a path, appended to, or
    an open stream) is opened or anything runs."""
    from ..ops.hygiene import run_policy as run_loaded_policy
    from ..ops.policy import load_policy

    policy = load_policy(config)
    if not isinstance(log, str):
        return run_loaded_policy(policy, log, history_path, record)
    from ..basics.outputs import output_file

    with output_file(log, append=True) as handle:  # never through a link someone else planted
        return run_loaded_policy(policy, handle, history_path, record)


def history(history_path: str | None = None, since: float | None = None, command: str | None = None) -> dict[str, Any]:
    """The recorded runs (``since``: a Unix time) and their totals: `history --format json` (``command``: how
    the history was asked for, shown in the HTML page)."""
    from ..ops.history import History
    from ..report.data import history_data

    database = History(history_path)
    try:
        runs = database.runs(since)
    finally:
        database.close()
    return history_data(runs, command)


def schedule(kind: str, config: str, log: str | None = None) -> str:
    """The recipe that runs ``config`` every night under ``kind`` ("cron", "systemd" or "slurm"), with absolute
    paths; the policy is checked first (a schedule for a broken policy would only fail every night)."""
    from ..ops.schedule import recipe

    return recipe(kind, config, log)


def slurm_array(dataset: str, shards: int, run_dir: str, options: Iterable[str] = (),
                clean: Iterable[str] | None = None) -> str:
    """The bash script that submits a sharded report of ``dataset`` to Slurm: a job array of ``shards`` tasks
    and a merge job after them (`schedule slurm-array`); ``options``: report options passed on.
    ``clean``: clean's options (["--mode", "delete"]): the array cleans, shard by shard, then the shared files."""
    from ..ops.schedule import slurm_array as array_script

    return array_script(dataset, shards, run_dir, list(options), None if clean is None else list(clean))
