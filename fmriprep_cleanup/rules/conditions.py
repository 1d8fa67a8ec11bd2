"""The conditions of a rule's ``match:`` as written in YAML, each declared once (MATCH): how its value is read into
the Match fields it sets (model.py, where each field declares whether it can tell subjects apart). A BIDS entity
(pybids' table) is a condition too; ``not`` is a match of its own."""

from __future__ import annotations

from typing import Any

from ..basics.guarded import label_problem
from ..basics.schema import At, Key, Schema, did_you_mean, flag
from ..basics.units import parse_duration, parse_size
from ..fmriprep.entities import entity_definitions, entity_keys, entity_names
from ..fmriprep.statuses import SUBJECT_STATUSES
from .globs import Matcher, folder_glob_to_regex, glob_to_regex, name_glob
from .model import NO_SUBJECT, SCOPES, Match, ValueSet


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def value_set(name: str, value: Any, at: At, integer: bool = False) -> ValueSet | None:
    """Any-of values of an entity (or subject): exact values and shell-style wildcards; problems said as
    "NAME: ..." on the value's line."""
    exact: set[str | int] = set()
    patterns: list[Matcher] = []
    for item in as_list(value):
        if item is None or isinstance(item, (dict, list, bool)):
            at.report(at.line, f"{name}: expected a value or a list of values, got {item!r}")
            continue
        if not integer and (number := label_problem(name, item)):
            at.report(getattr(item, "line", at.line), number)
            continue
        text = str(item)
        if any(char in text for char in "*?["):
            try:
                patterns.append(name_glob(text))
            except ValueError as exc:
                at.report(at.line, f"{name}: {exc}")
                continue
        elif integer:
            if not text.isdigit():
                at.report(at.line, f"{name}: expected a number, got {item!r}")
                continue
            exact.add(int(text))
        else:
            exact.add(text)
    if not exact and not patterns:
        return None
    return ValueSet(frozenset(exact), tuple(patterns))


def scopes(value: Any, at: At) -> dict[str, Any]:
    chosen = [str(item) for item in as_list(value)]
    for scope in chosen:
        if scope not in SCOPES:
            at.problem(f"unknown scope {scope!r}{did_you_mean(scope, SCOPES)}; one of {', '.join(SCOPES)}")
    return {"scopes": frozenset(chosen)}


def paths(value: Any, at: At) -> dict[str, Any]:
    """Globs, relative to the scope's root: each as a file matcher and, ending in /**, a folder matcher."""
    patterns, folder_patterns = [], []
    for glob in as_list(value):
        try:
            patterns.append(glob_to_regex(glob))
            folder_pattern = folder_glob_to_regex(glob)
        except ValueError as exc:
            at.problem(str(exc))
            continue
        if folder_pattern is not None:
            folder_patterns.append(folder_pattern)
    return {"paths": tuple(patterns), "globs": tuple(str(glob) for glob in as_list(value)),
            "folder_paths": tuple(folder_patterns), "name_paths": len(folder_patterns) < len(patterns)}


def size(name: str) -> Any:
    def read(value: Any, at: At) -> dict[str, Any]:
        return {name: parse_size(value)}
    return read


def age(name: str) -> Any:
    def read(value: Any, at: At) -> dict[str, Any]:
        return {name: parse_duration(value)}
    return read


def statuses(field: str, allowed: tuple[str, ...]) -> Any:
    def read(value: Any, at: At) -> dict[str, Any]:
        chosen = [str(item) for item in as_list(value)]
        for item in chosen:
            if item not in allowed:
                at.problem(f"unknown status {item!r}{did_you_mean(item, allowed)}; one of {', '.join(allowed)}")
        return {field: frozenset(chosen)}
    return read


def stale(value: Any, at: At) -> dict[str, Any]:
    return {"stale": flag(value, at)}


def subject(value: Any, at: At) -> dict[str, Any]:
    labels = [item if isinstance(item, (dict, list, bool, int, float)) or item is None
              else str(item).removeprefix("sub-") for item in as_list(value)]
    return {"subjects": value_set("subject", labels, At(at.report, at.line))}


def negation(value: Any, at: At) -> dict[str, Any]:
    return {"negations": (compile_match(value, at),)}


def entity(name: str) -> Any | None:
    """The reader of a BIDS entity condition (None: ``name`` is no entity)."""
    if name not in entity_names():
        return None
    integer = name in {definition.name for definition in entity_definitions() if definition.dtype == "int"}

    def read(value: Any, at: At) -> dict[str, Any]:
        found = value_set(name, value, At(at.report, at.line), integer=integer)
        return {"entities": ((name, found),)} if found is not None else {}
    return read


def _entity_hint(name: str) -> str | None:
    known = entity_keys()
    return f"the entity is called {known[name]!r}" if name in known else None


MATCH = Schema(
    (Key("scope", scopes, named=False), Key("path", paths, named=False),
     Key("min_size", size("min_size")), Key("max_size", size("max_size")),
     Key("min_age", age("min_age")), Key("max_age", age("max_age")),
     Key("not", negation),
     Key("subject_status", statuses("statuses", SUBJECT_STATUSES + (NO_SUBJECT,))),
     Key("any_subject_status", statuses("any_statuses", SUBJECT_STATUSES)),
     Key("stale", stale), Key("subject", subject)),
    others=entity, also_known=lambda: sorted(entity_names()), hint=_entity_hint, unknown="condition or entity",
)


def compile_match(spec: Any, at: At) -> Match:
    """A rule's ``match:`` as a Match (every problem said at ``at``)."""
    if not isinstance(spec, dict):
        at.problem(f"'match' must be a mapping of conditions, got {spec!r}")
        return Match()
    fields: dict[str, Any] = {"entities": (), "negations": ()}
    for read in MATCH.read(spec, at).values():
        for name, value in read.items():
            fields[name] = fields[name] + value if name in ("entities", "negations") else value
    return Match(**fields)


def glob_text(spec: Any) -> int:
    """The characters of every ``path`` glob in a rule file (its matches and their negations, at any depth)."""
    if isinstance(spec, dict):
        return sum(sum(len(glob) for glob in as_list(value) if isinstance(glob, str)) if key == "path"
                   else glob_text(value) for key, value in spec.items())
    if isinstance(spec, list):
        return sum(glob_text(item) for item in spec)
    return 0
