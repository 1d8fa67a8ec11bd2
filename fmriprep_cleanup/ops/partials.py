"""What a partial result must be before a merge reads it: every field a merge reads, of the type and range a
shard writes (counts are whole numbers from 0, labels text, statuses what a status is, options what the command
line or a Python call would accept). A partial may have been written by anyone: a field that is not what a shard
writes refuses the merge, naming the file and the field."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..basics import numbers
from ..basics.errors import CleanupError
from ..basics.options import from_recorded, mapping_of_text, texts
from ..basics.schema import At, Key, Schema
from ..energy.overrides import EnergyOverrides
from ..fmriprep.evidence import SubjectStatus
from ..plan.options import RECORDED_PATHS, PlanOptions
from ..plan.summary import COUNT_FIELDS, REPOSITORY_FIELDS

AUDIT_OPTIONS = ("roots", "rules", "energy", "path_map")


class _Broken(Exception):
    """A field of a partial that is not what a shard writes (its name, for the message)."""


def _count(value: Any, where: str) -> int:
    """A count a shard writes: a whole number from 0 to what 64 bits hold (10**400 is no file count)."""
    try:
        return numbers.count(value, where)
    except ValueError:
        raise _Broken(where) from None


def _counts(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise _Broken(where)
    for name in COUNT_FIELDS + REPOSITORY_FIELDS:
        _count(value.get(name, 0), f"{where}.{name}")


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Broken(where)
    return value


def _field(check: Callable[[Any, str], Any]) -> Callable[[Any, At], Any]:
    """A schema reader of a field checked by ``check(value, name)`` (which raises _Broken naming what is not
    right), the name being the field's (the schema's place for it, dotted)."""
    def read(value: Any, at: At) -> Any:
        return check(value, at.where.rstrip(": ").replace(": ", "."))
    return read


def _moment(value: Any, where: str) -> float:
    try:
        return numbers.moment(value, where)
    except ValueError:
        raise _Broken(where) from None


def _rows(rows: Any, where: str) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, dict) and isinstance(row.get("path"), str)
                                             for row in rows):
        raise _Broken(where)
    for row in rows:
        for name in ("files", "bytes", "junk_bytes", "elsewhere_bytes"):
            _count(row.get(name, 0), f"{where}.{name}")
        if row.get("nipoppy") is not None:
            _study(row["nipoppy"], f"{where}.nipoppy")


def _study(study: Any, where: str) -> None:
    """A Nipoppy study's steps, as an audit row carries them (NipoppyStudy.steps)."""
    if not isinstance(study, dict) or not isinstance(study.get("root"), str) \
            or not isinstance(study.get("steps"), list):
        raise _Broken(where)
    for step in study["steps"]:
        if not isinstance(step, dict) or not all(isinstance(step.get(name), str)
                                                 for name in ("pipeline", "version", "step", "folder")):
            raise _Broken(f"{where}.steps")
        for name in ("folders", "kept_folders", "files", "bytes", "reclaimable_bytes"):
            _count(step.get(name), f"{where}.steps.{name}")


def _broken(line: int, message: str) -> None:
    """An unknown or missing key (the schema's own problems; a field's check raises _Broken itself)."""
    quoted = re.search(r"'([^']*)'", message)
    raise _Broken(quoted.group(1) if quoted else message.partition(":")[0])


_COMMON = (Key("format", required=True), Key("version", required=True), Key("tool_version", required=True),
           Key("dataset", required=True), Key("rules_digest", required=True),
           Key("shard", _field(_count), required=True), Key("shards", _field(_count), required=True),
           Key("warnings", _field(_strings), required=True))
# The fields of a report's partial and of an audit's (what a merge reads), each with its check; "path" is added
# by the merge to a plan partial it read (ops/shards.py).
REPORT_PARTIAL = Schema((*_COMMON, Key("options", _field(lambda value, where: _check_options(value)), required=True),
                         Key("now", _field(_moment), required=True), Key("subjects", _field(_strings), required=True),
                         Key("scanned_warnings", _field(_strings), required=True),
                         Key("scanned_count", _field(_count), required=True),
                         Key("summary", _field(lambda value, where: _check_summary(value))),
                         Key("statuses", _field(lambda value, where: _check_statuses(value)), required=True),
                         Key("path")))
AUDIT_PARTIAL = Schema((*_COMMON, Key("options", _field(lambda value, where: _check_options(value, True)),
                                      required=True),
                        Key("failed", _field(_strings), required=True), Key("rows", _field(_rows), required=True)))


def check_partial(path: str, data: dict[str, Any], audit: bool = False) -> None:
    """Every field a merge reads, of the type and range a shard writes (a report's partial, an audit's, or a
    plan partial's header and end line): CleanupError naming the file and the first field that is not."""
    try:
        (AUDIT_PARTIAL if audit else REPORT_PARTIAL).read(data, At(_broken, 0))
        if not 1 <= data["shard"] <= data["shards"]:
            raise _Broken("shard")
        if not audit and data["scanned_count"] < len(data["scanned_warnings"]):
            raise _Broken("scanned_count")
    except _Broken as exc:
        raise CleanupError(f"{path}: its {exc} is not what a shard writes; not merged") from None


def _check_options(options: Any, audit: bool = False) -> None:
    """The options a partial records, each checked as a Python call's are (basics/options.py): the merge opens
    the same plan from them (an audit: the same rules, energy model and path map), so an unknown name or a value
    of another kind is refused, never passed on."""
    try:
        if audit:
            if not isinstance(options, dict) or set(options) - set(AUDIT_OPTIONS) \
                    or "roots" not in options:
                raise ValueError("options")
            checks: tuple[tuple[str, Callable[[Any], Any]], ...] = (
                ("roots", texts), ("rules", texts), ("path_map", mapping_of_text))
            for name, check in checks:
                _named(name, check, options.get(name, {} if name == "path_map" else []))
            if not all(root.startswith("/") for root in options["roots"]):
                raise ValueError("roots")
            from_recorded(EnergyOverrides, options.get("energy", {}))
            return
        recorded = from_recorded(PlanOptions, options, required=("path",))
        for name, where in RECORDED_PATHS.items():
            if name in options:
                _named(name, where, options[name])
        if recorded.recorded() != options:
            raise ValueError("options")
    except ValueError as exc:
        name = str(exc).partition(":")[0]
        raise _Broken(f"options.{name}" if name != "options" else "options") from None


def _named(name: str, check: Callable[[Any], Any], value: Any) -> None:
    try:
        check(value)
    except ValueError:
        raise ValueError(name) from None


def _check_statuses(statuses: Any) -> None:
    if not isinstance(statuses, dict):
        raise _Broken("statuses")
    for label, fields in statuses.items():
        if not isinstance(fields, dict):
            raise _Broken(f"statuses.{label}")
        try:
            SubjectStatus(**fields)
            _check_status(fields)
        except (TypeError, ValueError):
            raise _Broken(f"statuses.{label}") from None


def _check_status(fields: dict[str, Any]) -> None:
    """A subject's status as a shard writes it: its numbers counts and times (ValueError otherwise)."""
    for name in ("runs", "crash_files", "workdir_bytes", "output_bytes"):
        numbers.count(fields.get(name, 0), name)
    for name in ("newest_run_time", "report_time", "last_activity"):
        if fields.get(name) is not None:
            numbers.moment(fields[name], name)
    if fields.get("idle_seconds") is not None:
        numbers.amount(fields["idle_seconds"], "idle_seconds", -numbers.LATEST, numbers.LATEST)
    if fields.get("report_errors") is not None:
        numbers.count(fields["report_errors"], "report_errors")
    if not isinstance(fields.get("status"), str):
        raise ValueError("status")


def _check_summary(summary: Any) -> None:
    if not isinstance(summary, dict):
        raise _Broken("summary")
    _counts(summary.get("totals"), "summary.totals")
    categories = summary.get("by_category")
    if not isinstance(categories, dict):
        raise _Broken("summary.by_category")
    for name, counts in categories.items():
        _counts(counts, f"summary.by_category.{name}")
    subjects = summary.get("by_subject")
    if not isinstance(subjects, list):
        raise _Broken("summary.by_subject")
    for row in subjects:
        if not isinstance(row, list) or len(row) != 2 or not (row[0] is None or isinstance(row[0], str)):
            raise _Broken("summary.by_subject")
        _counts(row[1], "summary.by_subject")
    folders = summary.get("junk_by_folder")
    if not isinstance(folders, dict):
        raise _Broken("summary.junk_by_folder")
    for nbytes in folders.values():
        _count(nbytes, "summary.junk_by_folder")
    for name in ("bytes_by_subject_scope", "kept_by_subject_scope"):
        rows = summary.get(name)
        if not isinstance(rows, list):
            raise _Broken(f"summary.{name}")
        for row in rows:
            if not isinstance(row, list) or len(row) != 3 or not (row[0] is None or isinstance(row[0], str)) \
                    or not isinstance(row[1], str):
                raise _Broken(f"summary.{name}")
            _count(row[2], f"summary.{name}")
    _counts_by_path(summary.get("left_alone"), "summary.left_alone", 2)  # [files, bytes]
    _counts_by_path(summary.get("by_root"), "summary.by_root", 3)  # [files, bytes, bytes freed]


def _counts_by_path(value: Any, where: str, length: int) -> None:
    """A mapping of paths to lists of ``length`` counts, as Summary.as_json writes them."""
    if not isinstance(value, dict):
        raise _Broken(where)
    for counts in value.values():
        if not isinstance(counts, list) or len(counts) != length:
            raise _Broken(where)
        for count in counts:
            _count(count, where)


