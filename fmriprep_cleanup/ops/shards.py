"""A scan in shards: each shard scans some subjects' folders (every folder of a subject: its outputs, its
FreeSurfer folder, its working directory) and writes a partial result - the counts a report is made of and
its subjects' run statuses. The merge reads the shared folders (the files of no subject: templates, shared
working-directory files, dataset files), whose judgement needs every subject's status, and adds the partials:
the report is the one an unsharded scan gives.

Shards run as local processes (``--jobs N`` on a local disk), as separate commands (``--shard K/N
--partial-out FILE`` then ``merge``), or as a Slurm job array (``schedule print --slurm-array``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..basics.errors import CleanupError
from ..fmriprep.status import SubjectStatus
from ..plan.plan import Learned, Plan, Selection
from ..plan.summary import Summary
from ..rules.rulesets import RuleSet

PARTIAL_FORMAT = "fmriprep-cleanup partial"
AUDIT_PARTIAL_FORMAT = "fmriprep-cleanup audit partial"  # per dataset: a shard audits every N-th dataset
PARTIAL_VERSION = 1


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (K from 1 to N) as (K - 1, N)."""
    number, _, count = text.partition("/")
    try:
        shard, shards = int(number), int(count)
    except ValueError:
        raise CleanupError(f"--shard {text}: expected K/N, e.g. 1/4") from None
    if not 1 <= shard <= shards:
        raise CleanupError(f"--shard {text}: K must be between 1 and N")
    return shard - 1, shards


def rules_digest(ruleset: RuleSet) -> str:
    """What the rules decide, as a digest: shards judged with different rules must not be merged."""
    described = {"default": ruleset.default, "stale_after": ruleset.stale_after, "energy": ruleset.energy,
                 "rules": [[rule.id, rule.action, rule.category, rule.spec, rule.source] for rule in ruleset.rules]}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shard_labels(plan: Plan, shard: int, shards: int) -> list[str]:
    """The subjects of shard ``shard`` (0-based) of ``shards``: every shards-th of the selected labels, sorted."""
    labels = sorted(label for label in plan.status_book().subjects() if plan.selection.wants(label))
    return labels[shard::shards]


def partial(plan: Plan, options: dict[str, Any], shard: int, shards: int,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Scan the folders of one shard's subjects: the partial result a merge adds up. ``options``: how the plan
    was opened (api.open_plan's arguments), so the merge opens the same one."""
    labels = shard_labels(plan, shard, shards)
    selection = Selection(frozenset(labels), plan.selection.excluded_labels, False)
    shard_plan = dataclasses.replace(plan, selection=selection)  # the plan's status book: it knows every subject
    summary = shard_plan.summarize(progress) if labels else Summary()
    statuses = shard_plan.run_statuses() if labels else {}
    return {
        "format": PARTIAL_FORMAT, "version": PARTIAL_VERSION, "tool_version": __version__,
        "dataset": plan.dataset.path, "options": options, "rules_digest": rules_digest(plan.ruleset),
        "shard": shard + 1, "shards": shards, "now": plan.now, "subjects": labels,
        "summary": summary.as_json(), "statuses": {label: status.as_dict() for label, status in statuses.items()},
        "warnings": shard_plan.problems() if labels else [],
    }


def read_partial(path: str) -> dict[str, Any]:
    from ..basics.guarded import load_json

    data = load_json(path, "partial result")
    if not isinstance(data, dict) or data.get("format") not in (PARTIAL_FORMAT, AUDIT_PARTIAL_FORMAT):
        raise CleanupError(f"{path} is not an fmriprep-cleanup partial result")
    if data.get("version") != PARTIAL_VERSION:
        raise CleanupError(f"{path}: partial format version {data.get('version')!r}; this tool reads {PARTIAL_VERSION}")
    return data


def check_partials(partials: list[tuple[str, dict[str, Any]]]) -> int:
    """The shard count, once every partial agrees on the tool version, dataset, options and rules, and every
    shard is there exactly once; CleanupError naming what does not fit (or which shards are missing)."""
    if not partials:
        raise CleanupError("no partial results to merge")
    first_path, first = partials[0]
    for path, data in partials[1:]:
        for key, what in (("format", "kind (a report's or an audit's)"), ("tool_version", "tool version"),
                          ("dataset", "dataset"), ("options", "options"),
                          ("rules_digest", "rules"), ("shards", "shard count")):
            if data.get(key) != first.get(key):
                raise CleanupError(f"{path} and {first_path} differ in their {what} ({data.get(key)!r} and "
                                   f"{first.get(key)!r}): they are not shards of one scan")
    if first.get("tool_version") != __version__:
        raise CleanupError(f"{first_path} was written by fmriprep-cleanup {first.get('tool_version')}, not "
                           f"{__version__}: rerun the shards with this version")
    shards = int(first["shards"])
    seen: dict[int, str] = {}
    for path, data in partials:
        number = int(data["shard"])
        if number in seen:
            raise CleanupError(f"shard {number}/{shards} given twice: {seen[number]} and {path}")
        seen[number] = path
    missing = [f"{number}/{shards}" for number in range(1, shards + 1) if number not in seen]
    if missing:
        raise CleanupError(f"missing shard(s) {', '.join(missing)}: rerun them (--shard K/{shards}) and merge again")
    return shards


def merge(partials: list[tuple[str, dict[str, Any]]], plan: Plan,
          progress: Callable[[int, int], None] | None = None) -> tuple[Plan, Summary, dict[str, SubjectStatus], list[str]]:
    """The whole from its shards: the shared folders scanned with every subject's status known, plus each
    partial's counts. Returns the shared-folder plan, the summary, the statuses and the warnings."""
    check_partials(partials)
    if rules_digest(plan.ruleset) != partials[0][1]["rules_digest"]:
        raise CleanupError("the rule files changed since the shards ran: rerun them")
    statuses: dict[str, SubjectStatus] = {}
    for _, data in partials:
        for label, fields in data["statuses"].items():
            statuses[label] = SubjectStatus(**fields)
    now = min(float(data["now"]) for _, data in partials)
    shared_selection = Selection(frozenset(), plan.selection.excluded_labels, plan.selection.wants(None))
    shared = dataclasses.replace(plan, selection=shared_selection, now=now,
                                 learned=Learned(book=plan.learned.book))  # its book, read before the scan
    shared.status_book().know(statuses)
    summary = shared.summarize(progress)
    for _, data in sorted(partials, key=lambda item: int(item[1]["shard"])):
        summary.add(data["summary"])
    warnings = shared.all_warnings() + [warning for _, data in partials for warning in data["warnings"]]
    ordered = {label: statuses[label] for label in sorted(statuses)}
    return shared, summary, ordered, list(dict.fromkeys(warnings))


_FORKED_PLAN: list[Plan] = []  # the plan a forked worker scans (inherited, not pickled: rules hold compiled code)


def _scan_shard(job: tuple[dict[str, Any], int, int]) -> dict[str, Any]:
    options, shard, shards = job
    return partial(_FORKED_PLAN[0], options, shard, shards)


def partial_in_processes(plan: Plan, options: dict[str, Any], processes: int) -> list[dict[str, Any]]:
    """Every shard's partial, ``processes`` shards scanned at once in forked processes (each lists and
    lstat-s its own subjects' folders: on a local disk the cores, not the disk, set the pace)."""
    import multiprocessing

    _FORKED_PLAN[:] = [plan]
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(processes) as pool:
            return pool.map(_scan_shard, [(options, shard, processes) for shard in range(processes)], chunksize=1)
    finally:
        _FORKED_PLAN.clear()


def audit_partial(options: dict[str, Any], rows: list[dict[str, Any]], warnings: list[str], failed: list[str],
                  digest: str, shard: int, shards: int) -> dict[str, Any]:
    """A shard of an audit: the rows of its datasets (every shards-th found, sorted by path)."""
    return {"format": AUDIT_PARTIAL_FORMAT, "version": PARTIAL_VERSION, "tool_version": __version__,
            "dataset": None, "options": options, "rules_digest": digest, "shard": shard + 1, "shards": shards,
            "rows": rows, "warnings": warnings, "failed": failed}
