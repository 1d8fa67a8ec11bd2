"""A scan in shards: each shard scans some subjects' folders (every folder of a subject: its outputs, its
FreeSurfer folder, its working directory) and writes a partial result - the counts a report is made of and
its subjects' run statuses. The merge reads the shared folders (the files of no subject: templates, shared
working-directory files, dataset files), whose judgement needs every subject's status, and adds the partials:
the report is the one an unsharded scan gives.

Shards run as local processes (``--jobs N`` on a local disk), as separate commands (``--shard K/N
--partial-out FILE`` then ``merge``), or as a Slurm job array (``schedule slurm-array``).

A plan's shards write their plan lines too, each with its place in the plan's order (``Plan.placed_files``):
the merge interleaves them with the shared folders' lines into exactly the unsharded plan, streamed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

from .. import __version__
from ..basics import numbers
from ..basics.errors import CleanupError
from ..fmriprep.evidence import SubjectStatus
from ..plan.places import Place
from ..plan.plan import Plan
from ..plan.rows import PlannedFile
from ..plan.shares import Share, Whole, shard_labels, shard_plan
from ..plan.summary import Summary
from ..rules.model import RuleSet
from .partials import check_partial

PARTIAL_FORMAT = "fmriprep-cleanup partial"
AUDIT_PARTIAL_FORMAT = "fmriprep-cleanup audit partial"  # per dataset: a shard audits every N-th dataset
PLAN_PARTIAL_FORMAT = "fmriprep-cleanup plan partial"  # JSON lines: a header, folder lines, an end line
PLAN_LINE_CAP = 16 * 1024 * 1024  # bytes in one line of a plan partial (it holds at most ROWS_PER_LINE files)
ROWS_PER_LINE = 1000
PARTIAL_VERSION = 1


def rules_digest(ruleset: RuleSet) -> str:
    """What the rules decide, as a digest: shards judged with different rules must not be merged."""
    described = {"default": ruleset.default, "stale_after": ruleset.stale_after, "energy": ruleset.energy,
                 "rules": [[rule.id, rule.action, rule.category, rule.spec, rule.source] for rule in ruleset.rules]}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _header(kind: str, plan: Plan, options: dict[str, Any], shard: int, shards: int) -> dict[str, Any]:
    """What every partial says first: what it is and which scan it is a shard of."""
    return {"format": kind, "version": PARTIAL_VERSION, "tool_version": __version__, "dataset": plan.dataset.path,
            "options": options, "rules_digest": rules_digest(plan.ruleset), "shard": shard + 1, "shards": shards,
            "now": plan.now}


def partial(plan: Plan, options: dict[str, Any], shard: int, shards: int,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Scan the folders of one shard's subjects: the partial result a merge adds up. ``options``: how the plan
    was opened (api.open_plan's arguments), so the merge opens the same one."""
    header = _header(PARTIAL_FORMAT, plan, options, shard, shards)
    labels, shard_plan_ = shard_plan(plan, shard, shards)
    summary = shard_plan_.summarize(progress) if labels else Summary()
    statuses = shard_plan_.run_statuses() if labels else {}
    return {
        **header, "subjects": labels,
        "summary": summary.as_json(), "statuses": {label: status.as_dict() for label, status in statuses.items()},
        "warnings": shard_plan_.problems() if labels else [], **_scanned(shard_plan_ if labels else None),
    }


def _scanned(plan: Plan | None) -> dict[str, Any]:
    """A shard's own scan warnings, apart from its subjects' evidence problems: the merge sorts them in with
    the other shards' as one scan would have (see basics.folders.Warnings)."""
    return {"scanned_warnings": list(plan.warnings.messages) if plan else [],
            "scanned_count": plan.warnings.count if plan else 0}


def write_plan_partial(plan: Plan, options: dict[str, Any], shard: int, shards: int, stream: IO[str],
                       progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Scan one shard's subjects and write its plan partial: a header line, then its files a folder (at most
    ROWS_PER_LINE files) a line with their place in the plan's order, then an end line with the subjects'
    statuses and the warnings (a partial without it is a shard that did not finish). Returns the end line."""
    from ..basics.formats import strict_json

    header = _header(PLAN_PARTIAL_FORMAT, plan, options, shard, shards)
    labels, shard_plan_ = shard_plan(plan, shard, shards)
    stream.write(strict_json({**header, "subjects": labels}) + "\n")
    for place, root_number, walk_key, rows in (shard_plan_.placed_files(progress) if labels else ()):
        first = rows[0]
        folder = first.path.rpartition("/")[0]
        for start in range(0, len(rows), ROWS_PER_LINE):
            stream.write(strict_json({
                "at": [place.as_json(), root_number, walk_key], "folder": folder, "root": first.root, "scope": first.scope,
                "rows": [[row.path.rpartition("/")[2], row.subject, row.size, row.allocated, row.mtime, row.dev,
                          row.ino, row.nlink, row.action, row.category, row.rule_id, row.ctime, row.annex]
                         for row in rows[start:start + ROWS_PER_LINE]]}) + "\n")
    statuses = shard_plan_.run_statuses() if labels else {}
    end = {"end": True, "statuses": {label: status.as_dict() for label, status in statuses.items()},
           "warnings": shard_plan_.problems() if labels else [], **_scanned(shard_plan_ if labels else None)}
    stream.write(strict_json(end) + "\n")
    return end


def is_plan_partial(path: str) -> bool:
    """Whether ``path`` starts as a plan partial does (its header line names the format first)."""
    from ..basics.guarded import open_regular

    fd = open_regular(path, "partial result")
    try:
        start = os.read(fd, 256)
    except OSError:
        return False
    finally:
        os.close(fd)
    return start.startswith(b'{"format": "' + PLAN_PARTIAL_FORMAT.encode() + b'"')


def _plan_lines(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    from ..basics.guarded import parse_json, read_lines

    for number, line in read_lines(path, "plan partial", PLAN_LINE_CAP):
        data = parse_json(line, f"{path}:{number}")
        if not isinstance(data, dict):
            raise CleanupError(f"{path}:{number}: not a line of a plan partial")
        yield number, data


def read_plan_partial(path: str) -> dict[str, Any]:
    """A plan partial's header and end line as one partial (statuses, warnings), once every line of it has
    been read and checked: a broken or unfinished partial is refused before anything is written."""
    header: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    for number, data in _plan_lines(path):
        if header is None:
            if data.get("format") != PLAN_PARTIAL_FORMAT:
                raise CleanupError(f"{path} is not an fmriprep-cleanup plan partial")
            if data.get("version") != PARTIAL_VERSION:
                raise CleanupError(f"{path}: partial format version {data.get('version')!r}; this tool reads "
                                   f"{PARTIAL_VERSION}")
            header = data
        elif end is not None:
            raise CleanupError(f"{path}:{number}: a line after the end line")
        elif data.get("end") is True:
            if not isinstance(data.get("statuses"), dict) or not isinstance(data.get("warnings"), list):
                raise CleanupError(f"{path}:{number}: a broken end line")
            end = data
        else:
            declared = header.get("subjects")
            declared = declared if isinstance(declared, list) else []
            for row in _folder_rows(data, path, number)[1]:
                if row.subject not in declared:
                    raise CleanupError(f"{path}:{number}: a file of "
                                       f"{'no subject' if row.subject is None else 'sub-' + row.subject}, not one of "
                                       "its shard's subjects")
    if header is None:
        raise CleanupError(f"{path} is empty, not a plan partial")
    if end is None:
        raise CleanupError(f"{path} has no end line: its shard ({header.get('shard')}/{header.get('shards')}) did "
                           "not finish; rerun it")
    scanned: dict[str, Any] = {name: end.get(name) for name in ("scanned_warnings", "scanned_count")}
    merged = {**header, "statuses": end["statuses"], "warnings": end["warnings"], **scanned, "path": path}
    check_partial(path, merged)
    return merged


def _folder_rows(data: dict[str, Any], path: str, number: int) -> tuple[tuple, list[PlannedFile]]:
    """One folder line of a plan partial: its sort key and its files (checked field by field)."""
    try:
        (place, root_number, walk_key), folder, root, scope = data["at"], data["folder"], data["root"], data["scope"]
        if not isinstance(place, list) or not all(isinstance(item, (int, str)) for item in place) \
                or not isinstance(folder, str) \
                or not isinstance(root, str) or not isinstance(scope, str):
            raise TypeError
        key = (Place(*place), int(root_number), str(walk_key))
        rows = []
        for fields in data["rows"]:
            name, subject, size, allocated, mtime, dev, ino, nlink, action, category, rule_id, ctime, annex = fields
            if not isinstance(name, str) or "/" in name or action not in ("keep", "junk") \
                    or not (subject is None or isinstance(subject, str)):
                raise TypeError
            rows.append(PlannedFile(f"{folder}/{name}", root, scope, subject, numbers.count(size, "size"),
                                    numbers.count(allocated, "allocated"), numbers.moment(mtime, "mtime"),
                                    numbers.count(dev, "dev", numbers.MAX_ID), numbers.count(ino, "ino", numbers.MAX_ID),
                                    numbers.count(nlink, "nlink", numbers.MAX_LINKS), action, str(category),
                                    str(rule_id), numbers.moment(ctime, "ctime"), numbers.count(annex, "annex", 9)))
    except (KeyError, TypeError, ValueError):
        raise CleanupError(f"{path}:{number}: a broken line of a plan partial") from None
    return key, rows


def _partial_rows(path: str) -> Iterator[tuple[tuple, PlannedFile]]:
    for number, data in _plan_lines(path):
        if number == 1 or data.get("end") is True:
            continue
        key, rows = _folder_rows(data, path, number)
        for row in rows:
            yield (*key, row.path.rpartition("/")[2]), row


def _plan_rows(plan: Plan, progress: Callable[[int, int], None] | None) -> Iterator[tuple[tuple, PlannedFile]]:
    for place, root_number, walk_key, rows in plan.placed_files(progress):
        for row in rows:
            yield (place, root_number, walk_key, row.path.rpartition("/")[2]), row


@dataclasses.dataclass
class MergedPlan:
    """A plan merged from its shards' partials: its files in the unsharded plan's order (streamed), and then
    its warnings."""

    whole: Whole
    paths: list[str]
    progress: Callable[[int, int], None] | None = None

    def files(self) -> Iterator[PlannedFile]:
        streams = [_plan_rows(self.whole.shared, self.progress)] + [_partial_rows(path) for path in self.paths]
        for _, row in heapq.merge(*streams, key=_sort_key):
            yield row

    def warnings(self) -> list[str]:
        return self.whole.problems()


def _sort_key(item: tuple[tuple, PlannedFile]) -> tuple:
    return item[0]


def merge_plan(partials: list[tuple[str, dict[str, Any]]], plan: Plan,
               progress: Callable[[int, int], None] | None = None) -> MergedPlan:
    """The whole plan from its shards' plan partials (read with read_plan_partial): the shared folders are
    planned here with every subject's status known."""
    for path, data in partials:
        expected = shard_labels(plan, int(data["shard"]) - 1, int(data["shards"]))
        if sorted(data.get("subjects") or []) != expected:
            raise CleanupError(f"{path}: shard {data['shard']}/{data['shards']} holds other subjects now: rerun the "
                               "shards")
    ordered = _in_shard_order(partials)
    return MergedPlan(_whole(ordered, plan), [path for path, _ in ordered], progress)


def read_partial(path: str) -> dict[str, Any]:
    """A report's or an audit's partial result, checked field by field (it may have been written by anyone):
    CleanupError naming the file and the field that is not what a shard writes."""
    from ..basics.guarded import load_json

    data = load_json(path, "partial result")
    if not isinstance(data, dict) or data.get("format") not in (PARTIAL_FORMAT, AUDIT_PARTIAL_FORMAT):
        raise CleanupError(f"{path} is not an fmriprep-cleanup partial result")
    if data.get("version") != PARTIAL_VERSION:
        raise CleanupError(f"{path}: partial format version {data.get('version')!r}; this tool reads {PARTIAL_VERSION}")
    check_partial(path, data, audit=data["format"] == AUDIT_PARTIAL_FORMAT)
    return data


def check_subjects(partials: list[tuple[str, dict[str, Any]]], plan: Plan) -> None:
    """Each report partial counts exactly the subjects its shard holds now, and no subject is counted twice
    (shards taken at different times, or a partial edited); CleanupError naming the subject otherwise."""
    counted: dict[str, str] = {}
    for path, data in partials:
        declared = set(data["subjects"])
        expected = set(shard_labels(plan, int(data["shard"]) - 1, int(data["shards"])))
        labels = [row[0] for row in data["summary"]["by_subject"] if row[0] is not None] + list(data["statuses"])
        for label in labels:
            if label in counted and counted[label] != path:
                raise CleanupError(f"sub-{label} is counted in more than one partial ({counted[label]} and {path}): "
                                   "they are not shards of one scan")
            counted[label] = path
            if label not in declared:
                raise CleanupError(f"{path} counts sub-{label}, which is not one of its shard's subjects")
        if declared != expected:
            differ = sorted(declared ^ expected)
            raise CleanupError(f"{path}: shard {data['shard']}/{data['shards']} holds other subjects now "
                               f"(sub-{differ[0]}{' and more' if len(differ) > 1 else ''}): rerun the shards")


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


def _in_shard_order(partials: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(partials, key=lambda item: int(item[1]["shard"]))


def _whole(partials: list[tuple[str, dict[str, Any]]], plan: Plan, summaries: bool = False) -> Whole:
    """The partials as the shares of one plan (with their summaries, for a report): the shared folders are
    judged with every subject's status known, at the time the earliest shard started."""
    check_partials(partials)
    if rules_digest(plan.ruleset) != partials[0][1]["rules_digest"]:
        raise CleanupError("the rule files changed since the shards ran: rerun them")
    shares = [Share({label: SubjectStatus(**fields) for label, fields in data["statuses"].items()},
                    list(data["scanned_warnings"]), int(data["scanned_count"]),
                    Summary().add(data["summary"]) if summaries else None) for _, data in partials]
    return Whole(plan, shares, min(float(data["now"]) for _, data in partials))


def merge(partials: list[tuple[str, dict[str, Any]]], plan: Plan,
          progress: Callable[[int, int], None] | None = None) -> tuple[Plan, Summary, dict[str, SubjectStatus], list[str]]:
    """The whole from its shards: the shared folders scanned with every subject's status known, plus each
    partial's counts. Returns the shared-folder plan, the summary, the statuses and the warnings."""
    check_subjects(partials, plan)
    whole = _whole(_in_shard_order(partials), plan, summaries=True)
    summary = whole.summary(progress)
    return whole.shared, summary, whole.statuses, whole.problems()


def audit_partial(options: dict[str, Any], rows: list[dict[str, Any]], warnings: list[str], failed: list[str],
                  digest: str, shard: int, shards: int) -> dict[str, Any]:
    """A shard of an audit: the rows of its datasets (every shards-th found, sorted by path)."""
    return {"format": AUDIT_PARTIAL_FORMAT, "version": PARTIAL_VERSION, "tool_version": __version__,
            "dataset": None, "options": options, "rules_digest": digest, "shard": shard + 1, "shards": shards,
            "rows": rows, "warnings": warnings, "failed": failed}
