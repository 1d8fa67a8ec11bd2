"""Keep/junk rule sets written in YAML: loading and validation (the model they load into is model.py).

A rule set is an ordered list of rules; the first rule that matches a file
decides its action (keep or junk), its category and the reason shown by
``explain``. Sets can extend other sets; the extending set's rules come
first, so it can override what it builds on. Every validation error names the
file, the line and the offending value.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..basics.errors import CleanupError
from ..basics.guarded import LinedMapping, label_problem, load_yaml
from ..basics.units import parse_duration, parse_size
from ..energy.model import validate_energy_section
from ..fmriprep.entities import entity_definitions, entity_keys, entity_names
from ..fmriprep.regeneration import REGENERATION
from ..fmriprep.statuses import SUBJECT_STATUSES
from .globs import Matcher, folder_glob_to_regex, glob_to_regex, name_glob
from .model import ACTIONS, NO_SUBJECT, SCOPES, Match, Rule, RuleSet, ValueSet

RULESET_KEYS = ("version", "name", "description", "extends", "default", "rules", "energy", "stale_after")
RULE_KEYS = ("id", "action", "category", "why", "match", "guard")
GUARDS = (REGENERATION,)  # a junk rule's file is junk only if the guard holds (fmriprep/regeneration.py)
RULE_REQUIRED = ("id", "action", "category", "why", "match")
MATCH_KEYS = ("scope", "path", "min_size", "max_size", "min_age", "max_age", "not", "subject_status", "any_subject_status",
              "stale")
SUPPORTED_VERSION = 1
MAX_GLOB_TEXT = 64 * 1024


def shipped_rules_dir() -> Path:
    """The shipped rule sets: inside the package when installed from a wheel (rules/shipped/), else the
    repository's top-level rules/."""
    packaged = Path(__file__).parent / "shipped"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parents[2] / "rules"


def shipped_ruleset_names() -> list[str]:
    return sorted(path.stem for path in shipped_rules_dir().glob("*.yaml"))


def shipped_rulesets() -> list[tuple[str, str]]:
    """The shipped rule sets: (name, who it is for, in one sentence)."""
    rows = []
    for name in shipped_ruleset_names():
        description = " ".join(load_rulesets([name]).descriptions.get(name, "").split())
        rows.append((name, description.split(". ", 1)[0].rstrip(".") + "."))
    return rows


# --- what a rule is matched against --------------------------------------------------------


class RuleFileError(CleanupError):
    pass


class Problems:
    """Collects validation errors for one file so all of them are reported at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.messages: list[str] = []
        self.glob_chars = 0  # the total length of the file's globs: what matching them may cost is bounded

    def add(self, line: int, message: str) -> None:
        self.messages.append(f"{self.path}:{line}: {message}")

    def raise_if_any(self) -> None:
        if self.messages:
            raise RuleFileError("\n".join(self.messages))


def version_problem(version: Any) -> str:
    """What is wrong with a rule or policy file's version, in words that say how to fix it."""
    if isinstance(version, str) and version.strip() == str(SUPPORTED_VERSION):
        return f"version must be the number {SUPPORTED_VERSION}, not the text {version!r} (write version: {SUPPORTED_VERSION})"
    return f"unsupported version {version!r}; this fmriprep-cleanup reads version {SUPPORTED_VERSION}"


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """" (did you mean 'x'?)" for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_yaml(path: str, kind: str = "rule file") -> Any:
    """Parse a YAML file through the guarded reader; every failure is a one-line RuleFileError naming file and line."""
    try:
        return load_yaml(path, kind)
    except CleanupError as exc:
        raise RuleFileError(str(exc)) from None


# --- validation and compilation ---------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)  # a WrittenInt, which the YAML dumper does not know
    return value


def _one_line(value: Any) -> str:
    return yaml.safe_dump(_plain(value), default_flow_style=True, width=10**6, sort_keys=False).strip()


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _value_set(name: str, value: Any, line: int, problems: Problems, integer: bool = False) -> ValueSet | None:
    exact: set[str | int] = set()
    patterns: list[Matcher] = []
    for item in _as_list(value):
        if item is None or isinstance(item, (dict, list, bool)):
            problems.add(line, f"{name}: expected a value or a list of values, got {item!r}")
            continue
        if not integer and (number := label_problem(name, item)):
            problems.add(getattr(item, "line", line), number)
            continue
        text = str(item)
        if any(char in text for char in "*?["):
            try:
                patterns.append(name_glob(text))
            except ValueError as exc:
                problems.add(line, f"{name}: {exc}")
                continue
        elif integer:
            if not text.isdigit():
                problems.add(line, f"{name}: expected a number, got {item!r}")
                continue
            exact.add(int(text))
        else:
            exact.add(text)
    if not exact and not patterns:
        return None
    return ValueSet(frozenset(exact), tuple(patterns))


def _compile_match(spec: Any, line: int, problems: Problems, where: str) -> Match:
    if not isinstance(spec, dict):
        problems.add(line, f"{where}: 'match' must be a mapping of conditions, got {spec!r}")
        return Match()
    lines = getattr(spec, "key_lines", {})
    known_entities = entity_names()
    integer_entities = {d.name for d in entity_definitions() if d.dtype == "int"}
    values: dict[str, Any] = {}
    entities = []
    negations = []
    for key, value in spec.items():
        key_line = lines.get(key, line)
        if key == "scope":
            scopes = [str(item) for item in _as_list(value)]
            for scope in scopes:
                if scope not in SCOPES:
                    problems.add(key_line, f"{where}: unknown scope {scope!r}{did_you_mean(scope, SCOPES)}; one of {', '.join(SCOPES)}")
            values["scopes"] = frozenset(scopes)
        elif key == "path":
            patterns, folder_patterns = [], []
            for glob in _as_list(value):
                problems.glob_chars += len(glob) if isinstance(glob, str) else 0
                if problems.glob_chars > MAX_GLOB_TEXT:
                    problems.add(key_line, f"{where}: the rule file's globs add up to more than {MAX_GLOB_TEXT:,} "
                                           "characters; split it or simplify them")
                    break
                try:
                    patterns.append(glob_to_regex(glob))
                    folder_pattern = folder_glob_to_regex(glob)
                except ValueError as exc:
                    problems.add(key_line, f"{where}: {exc}")
                    continue
                if folder_pattern is not None:
                    folder_patterns.append(folder_pattern)
            values["paths"] = tuple(patterns)
            values["globs"] = tuple(str(glob) for glob in _as_list(value))
            values["folder_paths"] = tuple(folder_patterns)
            values["name_paths"] = len(folder_patterns) < len(patterns)
        elif key in ("min_size", "max_size"):
            try:
                values[key] = parse_size(value)
            except ValueError as exc:
                problems.add(key_line, f"{where}: {key}: {exc}")
        elif key in ("min_age", "max_age"):
            try:
                values[key] = parse_duration(value)
            except ValueError as exc:
                problems.add(key_line, f"{where}: {key}: {exc}")
        elif key == "not":
            negations.append(_compile_match(value, key_line, problems, f"{where}: not"))
        elif key in ("subject_status", "any_subject_status"):
            allowed = SUBJECT_STATUSES + ((NO_SUBJECT,) if key == "subject_status" else ())
            chosen = [str(item) for item in _as_list(value)]
            for item in chosen:
                if item not in allowed:
                    problems.add(key_line, f"{where}: {key}: unknown status {item!r}{did_you_mean(item, allowed)}; one of {', '.join(allowed)}")
            values["statuses" if key == "subject_status" else "any_statuses"] = frozenset(chosen)
        elif key == "stale":
            if not isinstance(value, bool):
                problems.add(key_line, f"{where}: stale: expected true or false, got {value!r}")
            else:
                values["stale"] = value
        elif key == "subject":
            labels = [v if isinstance(v, (dict, list, bool, int, float)) or v is None else str(v).removeprefix("sub-")
                      for v in _as_list(value)]
            values["subjects"] = _value_set(key, labels, key_line, problems)
        elif key in known_entities:
            value_set = _value_set(key, value, key_line, problems, integer=key in integer_entities)
            if value_set is not None:
                entities.append((key, value_set))
        else:
            hint = ""
            if key in entity_keys():
                hint = f" (the entity is called {entity_keys()[key]!r})"
            else:
                hint = did_you_mean(key, list(MATCH_KEYS) + sorted(known_entities))
            problems.add(key_line, f"{where}: unknown condition or entity {key!r}{hint}")
    return Match(entities=tuple(entities), negations=tuple(negations), **values)


def _compile_rules(data: Any, line: int, problems: Problems, set_name: str) -> list[Rule]:
    if not isinstance(data, list):
        problems.add(line, f"'rules' must be a list of rules, got {type(data).__name__}")
        return []
    rules = []
    seen_ids: dict[str, int] = {}
    for index, spec in enumerate(data, start=1):
        if not isinstance(spec, LinedMapping):
            problems.add(line, f"rule #{index}: expected a mapping with {', '.join(RULE_REQUIRED)}, got {spec!r}")
            continue
        rule_line = spec.line
        lines = spec.key_lines
        where = f"rule {spec.get('id', '#' + str(index))!r}"
        for key in spec:
            if key not in RULE_KEYS:
                problems.add(lines[key], f"{where}: unknown key {key!r}{did_you_mean(key, RULE_KEYS)}")
        missing = [key for key in RULE_REQUIRED if key not in spec]
        if missing:  # said, and the keys that are there are checked too: every problem in one pass
            problems.add(rule_line, f"{where}: missing {', '.join(missing)}")
        if "id" in spec:
            rule_id = str(spec["id"])
            if rule_id in seen_ids:
                problems.add(lines["id"], f"{where}: duplicate rule id (first used on line {seen_ids[rule_id]})")
            seen_ids[rule_id] = lines["id"]
        action = spec.get("action")
        if "action" in spec and action not in ACTIONS:
            problems.add(lines["action"], f"{where}: unknown action {action!r}; use keep or junk")
        for text_key in ("category", "why"):
            if text_key in spec and (not isinstance(spec[text_key], str) or not spec[text_key].strip()):
                problems.add(lines[text_key], f"{where}: {text_key} must be a non-empty line of text")
        guard = spec.get("guard")
        if guard is not None and (guard not in GUARDS or action != "junk"):
            problems.add(lines["guard"], f"{where}: guard {guard!r}: " + (
                f"unknown guard{did_you_mean(str(guard), GUARDS)}; known: {', '.join(GUARDS)}" if guard not in GUARDS
                else "only a junk rule can be guarded"))
        match = _compile_match(spec["match"], lines["match"], problems, where) if "match" in spec else None
        if missing or match is None:
            continue
        rules.append(
            Rule(rule_id, str(action), str(spec["category"]), str(spec["why"]).strip(), match, set_name,
                 _one_line(spec["match"]), guard)
        )
    return rules


@dataclass
class _LoadedSet:
    name: str
    path: str
    description: str
    default: str | None
    rules: list[Rule]
    extends: list[tuple[str, int]]  # (reference, line)
    energy: dict[str, Any]
    stale_after: float | None = None


def _resolve_reference(reference: str, relative_to: str | None) -> str:
    """A shipped set's name, or a path (relative to the file that names it)."""
    looks_like_path = "/" in reference or reference.endswith((".yaml", ".yml")) or os.path.isfile(reference)
    if not looks_like_path:
        candidate = shipped_rules_dir() / f"{reference}.yaml"
        if candidate.is_file():
            return str(candidate)
        names = shipped_ruleset_names()
        raise CleanupError(f"unknown rule set {reference!r}{did_you_mean(reference, names)}; "
                           f"shipped sets: {', '.join(names)} (or give a .yaml path)")
    base = os.path.dirname(relative_to) if relative_to else os.getcwd()
    return os.path.abspath(os.path.join(base, os.path.expanduser(reference)))


def _load_file(path: str) -> _LoadedSet:
    data = read_yaml(path)
    problems = Problems(path)
    if not isinstance(data, LinedMapping):
        raise RuleFileError(f"{path}:1: a rule set must be a mapping with {', '.join(RULESET_KEYS)}")
    lines = data.key_lines
    for key in data:
        if key not in RULESET_KEYS:
            problems.add(lines[key], f"unknown key {key!r}{did_you_mean(key, RULESET_KEYS)}")
    for key in ("version", "name", "rules"):
        if key not in data:
            problems.add(data.line, f"missing {key!r}")
    if "version" in data and data["version"] != SUPPORTED_VERSION:
        problems.add(lines["version"], version_problem(data["version"]))
    default = data.get("default")
    if default is not None and default not in ACTIONS:
        problems.add(lines["default"], f"unknown default action {default!r}; use keep or junk")
    extends = []
    if "extends" in data:
        for reference in _as_list(data["extends"]):
            if not isinstance(reference, str) or not reference:
                problems.add(lines["extends"], f"extends: expected a rule set name or path, got {reference!r}")
            else:
                extends.append((reference, lines["extends"]))
                try:  # a reference that leads nowhere is one more problem of this file, said with the others
                    target = _resolve_reference(reference, path)
                    if not os.path.isfile(target):
                        problems.add(lines["extends"], f"extends {reference!r}: no rule file at {target}")
                except CleanupError as exc:
                    problems.add(lines["extends"], f"extends {reference!r}: {exc}")
    energy = {}
    if "energy" in data:
        try:
            energy = validate_energy_section(data["energy"], lines["energy"], path)
        except CleanupError as exc:
            problems.messages.append(str(exc))
    stale_after = None
    if "stale_after" in data:
        try:
            stale_after = parse_duration(data["stale_after"])
        except ValueError as exc:
            problems.add(lines["stale_after"], f"stale_after: {exc}")
    name = str(data.get("name", Path(path).stem))
    rules = _compile_rules(data.get("rules", []), lines.get("rules", data.line), problems, name)
    problems.raise_if_any()
    return _LoadedSet(name, path, str(data.get("description", "")).strip(), default, rules, extends, energy,
                      stale_after)


def _flatten(
    reference: str,
    referenced_from: tuple[str, int] | None,
    stack: list[str],
    done: dict[str, _LoadedSet],
    order: list[_LoadedSet],
) -> None:
    """Depth-first: a set's own rules, then those of the sets it extends."""
    where = f"{referenced_from[0]}:{referenced_from[1]}: extends {reference!r}: " if referenced_from else ""
    try:
        path = _resolve_reference(reference, referenced_from[0] if referenced_from else None)
    except CleanupError as exc:
        raise RuleFileError(where + str(exc)) from None
    if path in stack:
        raise RuleFileError(f"{where}cycle in extends: {' -> '.join(stack + [path])}")
    if path in done:
        return
    if not os.path.isfile(path):
        raise RuleFileError(f"{where}no rule file at {path}")
    loaded = _load_file(path)
    done[path] = loaded
    order.append(loaded)
    for parent, line in loaded.extends:
        _flatten(parent, (path, line), stack + [path], done, order)


def load_rulesets(references: list[str] | tuple[str, ...]) -> RuleSet:
    """Combine rule sets by name or path; a later one extends (and overrides) the earlier ones."""
    references = list(references) or ["default"]
    done: dict[str, _LoadedSet] = {}
    order: list[_LoadedSet] = []
    for reference in reversed(references):
        _flatten(reference, None, [], done, order)
    rules: list[Rule] = []
    for loaded in order:
        rules.extend(loaded.rules)
    default = next((loaded.default for loaded in order if loaded.default is not None), "keep")
    energy: dict[str, Any] = {}
    for loaded in reversed(order):  # the most derived set has the last word
        energy.update(loaded.energy)
    return RuleSet(
        names=tuple(loaded.name for loaded in order),
        rules=tuple(rules),
        default=default,
        descriptions={loaded.name: loaded.description for loaded in order},
        energy=energy,
        stale_after=next((loaded.stale_after for loaded in order if loaded.stale_after is not None), None),
    )
