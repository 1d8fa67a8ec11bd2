"""BIDS entities parsed with pybids' own entity definitions.

pybids describes every entity as a regular expression in its ``bids.json`` and
``derivatives.json`` configuration files. We read those two files directly
(importing ``bids`` itself costs over half a second and pulls in pandas) and
apply the same expressions to the same kind of path pybids would, so the
entity table is never copied by hand.

Speed: most expressions need a literal key such as ``space-`` to match; we test
for that substring before running the expression, which gives the same result
as running every expression, at a fraction of the cost.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from ..basics.errors import CleanupError

PYBIDS_CONFIGS = ("bids.json", "derivatives.json")


@dataclass(frozen=True)
class EntityDefinition:
    name: str
    regex: re.Pattern[str]
    key: str | None  # literal "space-" that must occur for the regex to match
    dtype: str  # "str" or "int", as pybids declares


def pybids_config_dir() -> str:
    """Where pybids keeps its entity definitions (bids.json, derivatives.json)."""
    spec = importlib.util.find_spec("bids")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise CleanupError("pybids is not installed; install fmriprep-cleanup with its dependencies")
    return os.path.join(list(spec.submodule_search_locations)[0], "layout", "config")


_LITERAL_KEY = re.compile(r"([a-zA-Z]+)-\(")


@lru_cache(maxsize=1)
def entity_definitions() -> tuple[EntityDefinition, ...]:
    """Every entity pybids knows for raw BIDS and derivatives, in pybids' order."""
    definitions = []
    seen = set()
    config_dir = pybids_config_dir()
    for config_name in PYBIDS_CONFIGS:
        path = os.path.join(config_dir, config_name)
        try:
            with open(path, encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, ValueError) as exc:
            raise CleanupError(f"cannot read pybids entity definitions {path}: {exc}") from exc
        for entity in config["entities"]:
            if entity["name"] in seen:
                continue
            seen.add(entity["name"])
            literal = _LITERAL_KEY.search(entity["pattern"])
            definitions.append(
                EntityDefinition(
                    name=entity["name"],
                    regex=re.compile(entity["pattern"]),
                    key=literal.group(1) + "-" if literal else None,
                    dtype=entity.get("dtype", "str"),
                )
            )
    return tuple(definitions)


@lru_cache(maxsize=1)
def entity_names() -> frozenset[str]:
    return frozenset(definition.name for definition in entity_definitions())


@lru_cache(maxsize=1)
def entity_keys() -> dict[str, str]:
    """Map the short key in file names (``ses``) to the entity name (``session``)."""
    return {d.key[:-1]: d.name for d in entity_definitions() if d.key}


def parse_entities(relative_path: str) -> dict[str, str | int]:
    """Entities of a file, from its path relative to the derivatives root.

    ``relative_path`` uses ``/`` separators, e.g. ``sub-01/anat/sub-01_desc-preproc_T1w.nii.gz``.
    Like pybids, the directory part counts (``datatype`` comes from ``anat/``).
    """
    path = "/" + relative_path
    entities: dict[str, str | int] = {}
    for definition in entity_definitions():
        if definition.key is not None and definition.key not in path:
            continue
        found = definition.regex.search(path)
        if found is None:
            continue
        value = found.group(1)
        entities[definition.name] = int(value) if definition.dtype == "int" else value
    return entities


@lru_cache(maxsize=1)
def _definitions_by_name() -> dict[str, EntityDefinition]:
    return {definition.name: definition for definition in entity_definitions()}


def parse_entity(relative_path: str, name: str) -> str | int | None:
    """One entity of a file, as ``parse_entities`` would give it (rules usually need only a few)."""
    definition = _definitions_by_name()[name]
    path = "/" + relative_path
    if definition.key is not None and definition.key not in path:
        return None
    found = definition.regex.search(path)
    if found is None:
        return None
    value = found.group(1)
    return int(value) if definition.dtype == "int" else value
