"""Keep/junk rule sets written in YAML: loading and validation (the model they load into is model.py).

A rule set is an ordered list of rules; the first rule that matches a file
decides its action (keep or junk), its category and the reason shown by
``explain``. Sets can extend other sets; the extending set's rules come
first, so it can override what it builds on. Every validation error names the
file, the line and the offending value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..basics.errors import CleanupError
from ..basics.guarded import LinedMapping, load_yaml
from ..basics.schema import At, Key, Problems, Schema, did_you_mean
from ..basics.units import parse_duration
from ..energy.model import energy_section
from ..fmriprep.regeneration import REGENERATION
from .conditions import compile_match, glob_text
from .model import ACTIONS, Rule, RuleSet

GUARDS = (REGENERATION,)  # a junk rule's file is junk only if the guard holds (fmriprep/regeneration.py)
SUPPORTED_VERSION = 1
MAX_GLOB_TEXT = 64 * 1024  # a rule file's globs, added up: what matching them may cost is bounded


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


def version_problem(version: Any) -> str:
    """What is wrong with a rule or policy file's version, in words that say how to fix it."""
    if isinstance(version, str) and version.strip() == str(SUPPORTED_VERSION):
        return f"version must be the number {SUPPORTED_VERSION}, not the text {version!r} (write version: {SUPPORTED_VERSION})"
    return f"unsupported version {version!r}; this fmriprep-cleanup reads version {SUPPORTED_VERSION}"


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


def version(value: Any, at: At) -> int:
    if value != SUPPORTED_VERSION:
        raise ValueError(version_problem(value))
    return int(value)


def action(what: str) -> Any:
    def read(value: Any, at: At) -> str:
        if value not in ACTIONS:
            raise ValueError(f"unknown {what} {value!r}; use keep or junk")
        return str(value)
    return read


def text(name: str) -> Any:
    def read(value: Any, at: At) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty line of text")
        return value
    return read


def guard(value: Any, at: At) -> str:
    if value not in GUARDS:
        raise ValueError(f"guard {value!r}: unknown guard{did_you_mean(str(value), GUARDS)}; known: {', '.join(GUARDS)}")
    return str(value)


def match(value: Any, at: At) -> Any:
    return compile_match(value, at)


def identifier(value: Any, at: At) -> str:
    return str(value)


RULE = Schema((Key("id", identifier, required=True), Key("action", action("action"), required=True, named=False),
               Key("category", text("category"), required=True, named=False),
               Key("why", text("why"), required=True, named=False), Key("match", match, required=True, named=False),
               Key("guard", guard, named=False)),
              missing_in_one=True)


def _compile_rules(data: Any, at: At, set_name: str) -> list[Rule]:
    if not isinstance(data, list):
        at.problem(f"'rules' must be a list of rules, got {type(data).__name__}")
        return []
    rules = []
    seen_ids: dict[str, int] = {}
    for index, spec in enumerate(data, start=1):
        if not isinstance(spec, LinedMapping):
            at.problem(f"rule #{index}: expected a mapping with {', '.join(RULE.names()[:5])}, got {spec!r}")
            continue
        where = At(at.report, spec.line, f"rule {spec.get('id', '#' + str(index))!r}: ")
        values = RULE.read(spec, where)
        if "id" in values:
            if values["id"] in seen_ids:
                where.problem(f"duplicate rule id (first used on line {seen_ids[values['id']]})", spec.key_lines["id"])
            seen_ids[values["id"]] = spec.key_lines["id"]
        if "guard" in values and spec.get("action") != "junk":
            where.problem(f"guard {values['guard']!r}: only a junk rule can be guarded", spec.key_lines["guard"])
        if len(values) < sum(1 for key in RULE.keys if key.required or key.name in spec):
            continue  # a key missing or unreadable: said above
        rules.append(Rule(values["id"], values["action"], values["category"], values["why"].strip(), values["match"],
                          set_name, _one_line(spec["match"]), values.get("guard")))
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


def extends_of(path: str) -> Any:
    """The reader of a file's ``extends``: each reference must lead to a rule file (relative to ``path``)."""
    def read(value: Any, at: At) -> list[str]:
        found = []
        for reference in (value if isinstance(value, list) else [value]):
            if not isinstance(reference, str) or not reference:
                at.problem(f"expected a rule set name or path, got {reference!r}")
                continue
            found.append(reference)
            try:  # a reference that leads nowhere is one more problem of this file, said with the others
                target = _resolve_reference(reference, path)
                if not os.path.isfile(target):
                    at.report(at.line, f"extends {reference!r}: no rule file at {target}")
            except CleanupError as exc:
                at.report(at.line, f"extends {reference!r}: {exc}")
        return found
    return read


def duration(value: Any, at: At) -> float:
    return parse_duration(value)


def rules_list(value: Any, at: At) -> Any:
    return value  # compiled once the set's name is known (_compile_rules)


def ruleset_schema(path: str) -> Schema:
    return Schema((Key("version", version, required=True, named=False), Key("name", required=True),
                   Key("description"), Key("extends", extends_of(path)),
                   Key("default", action("default action"), named=False), Key("rules", rules_list, required=True),
                   Key("energy", energy_section), Key("stale_after", duration)))


def _load_file(path: str) -> _LoadedSet:
    data = read_yaml(path)
    problems = Problems(path)
    schema = ruleset_schema(path)
    if not isinstance(data, LinedMapping):
        raise RuleFileError(f"{path}:1: a rule set must be a mapping with {', '.join(schema.names())}")
    at = At(problems.add, data.line)
    values = schema.read(data, at)
    if glob_text(data.get("rules")) > MAX_GLOB_TEXT:
        problems.add(data.key_lines.get("rules", data.line), f"the rule file's globs add up to more than "
                                                              f"{MAX_GLOB_TEXT:,} characters; split it or simplify them")
        problems.raise_if_any(RuleFileError)
    name = str(data.get("name", Path(path).stem))
    rules = _compile_rules(data.get("rules", []), At(problems.add, data.key_lines.get("rules", data.line)), name)
    problems.raise_if_any(RuleFileError)
    return _LoadedSet(name, path, str(data.get("description", "")).strip(), values.get("default"), rules,
                      [(reference, data.key_lines["extends"]) for reference in values.get("extends", [])],
                      values.get("energy", {}), values.get("stale_after"))


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
