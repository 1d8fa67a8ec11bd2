"""What storing data costs each year in energy and carbon, with every assumption in plain sight.

For V terabytes (10^12 bytes) kept for one year:

* operational energy  kWh/yr    = V x P (W per TB) x 8.766 x PUE x R (copies kept)
* operational carbon  kgCO2e/yr = kWh/yr x CI (gCO2e/kWh) / 1000
* embodied carbon     kgCO2e/yr = V x E (kgCO2e per TB manufactured) x R / L (drive lifetime, years)

8.766 turns watts over a year (8,766 hours) into kWh. The parameters come from
a named storage profile (``data/storage-profiles.yaml``), each with its source;
options and a rule file's ``energy:`` section override them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from ..basics.annex import reclaimable
from ..basics.errors import CleanupError
from ..basics.schema import At
from .overrides import ENERGY_KEYS

BYTES_PER_TB = 10**12
KWH_PER_WATT_YEAR = 8.766
CAR_G_PER_KM = 175  # Green Algorithms' equivalence: average European car
TREE_G_PER_MONTH = 917  # Green Algorithms' equivalence: CO2 a mature tree absorbs in a month
EQUIVALENCE_SOURCE = "Green Algorithms (Lannelongue et al. 2021): 175 gCO2e per km by car, 917 gCO2e per tree-month"
COUNTRY_ALIASES = {"UK": "GB"}
MAX_PUE = 10.0  # the worst data centres measured are near 3; above 10 is a typo
MAX_COPIES = 100.0
MAX_CARBON_INTENSITY = 5000.0  # gCO2e/kWh; coal-only grids are near 1,000


@lru_cache(maxsize=1)
def storage_profiles() -> dict[str, Any]:
    with resources.files("fmriprep_cleanup.data").joinpath("storage-profiles.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@lru_cache(maxsize=1)
def carbon_intensities() -> dict[str, tuple[float, str]]:
    """Country or region code -> (gCO2e/kWh, source), from Green Algorithms' table."""
    table = {}
    with resources.files("fmriprep_cleanup.data").joinpath("carbon-intensity-GA-v3.0.csv").open(encoding="utf-8") as handle:
        lines = handle.read().splitlines()[1:]  # the first row is a title row above the header
    for row in csv.DictReader(lines):
        name = row["countryName"] if row["regionName"] in ("Any", "") else f"{row['countryName']}, {row['regionName']}"
        table[row["location"].upper()] = (float(row["carbonIntensity"]), f"Green Algorithms GA-data v3.0 ({name}): {row['source']}")
    return table


@dataclass(frozen=True)
class Assumptions:
    """The parameters of the model, each with where it comes from."""

    profile: str
    watts_per_tb: float
    pue: float
    copies: float
    carbon_intensity: float
    embodied_kg_per_tb: float
    lifetime_years: float
    country: str | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in
                  ("watts_per_tb", "pue", "copies", "carbon_intensity", "embodied_kg_per_tb", "lifetime_years")}
        return {
            "profile": self.profile,
            "country": self.country,
            **{name: {"value": value, "source": self.sources.get(name, "")} for name, value in values.items()},
            "terabyte": "10^12 bytes",
            "formula": "kWh/yr = TB x watts_per_tb x 8.766 x pue x copies; operational kgCO2e/yr = kWh/yr x "
                       "carbon_intensity / 1000; embodied kgCO2e/yr = TB x embodied_kg_per_tb x copies / lifetime_years",
        }


def _in_range(name: str, value: Any, low: float, high: float, unit: str = "") -> float:
    """A finite number within [low, high]; CleanupError saying the range otherwise (inf and NaN included)."""
    if isinstance(value, bool):
        raise CleanupError(f"{name} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CleanupError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise CleanupError(f"{name} must be a finite number, not {value!r}")
    if number < low:
        if low == 0:
            raise CleanupError(f"{name} must be zero or positive, not {value!r}")
        if number <= 0:
            raise CleanupError(f"{name} must be positive (at least {low:g}{unit}), not {value!r}")
        raise CleanupError(f"{name} must be at least {low:g}{unit}, not {value!r}")
    if number > high:
        raise CleanupError(f"{name} must be at most {high:g}, not {value!r}")
    return number


def assumptions(profile: str | None = None, pue: float | None = None, copies: float | None = None,
                carbon_intensity: float | None = None, country: str | None = None) -> Assumptions:
    """Build the assumptions from a profile and overrides; CleanupError for an unknown name or a bad value."""
    data = storage_profiles()
    name = profile or data["default"]
    if name not in data["profiles"]:
        raise CleanupError(f"unknown storage profile {name!r}; one of {', '.join(sorted(data['profiles']))}")
    values = {**data["shared"], **data["profiles"][name]}
    sources = {key: entry["source"] for key, entry in values.items() if isinstance(entry, dict)}
    result = Assumptions(
        profile=name,
        watts_per_tb=values["watts_per_tb"]["value"],
        pue=values["pue"]["value"],
        copies=values["copies"]["value"],
        carbon_intensity=values["carbon_intensity"]["value"],
        embodied_kg_per_tb=values["embodied_kg_per_tb"]["value"],
        lifetime_years=values["lifetime_years"]["value"],
        sources=sources,
    )
    if country is not None:
        code = COUNTRY_ALIASES.get(country.upper(), country.upper())
        table = carbon_intensities()
        if code not in table:
            raise CleanupError(f"unknown country or region code {country!r}; use an ISO code such as FR, DE, GB, US "
                               f"or a region such as US-CA ({len(table)} in Green Algorithms' table)")
        intensity, source = table[code]
        result = replace(result, carbon_intensity=intensity, country=code, sources={**result.sources, "carbon_intensity": source})
    if carbon_intensity is not None:
        value = _in_range("--carbon-intensity", carbon_intensity, 0, MAX_CARBON_INTENSITY, " gCO2e/kWh")
        result = replace(result, carbon_intensity=value, country=None,
                         sources={**result.sources, "carbon_intensity": "given by the user"})
    if pue is not None:
        value = _in_range("--pue", pue, 1, MAX_PUE, " (1.0 means no overhead)")
        result = replace(result, pue=value, sources={**result.sources, "pue": "given by the user"})
    if copies is not None:
        result = replace(result, copies=_in_range("--copies", copies, 1, MAX_COPIES),
                         sources={**result.sources, "copies": "given by the user"})
    return result


def model_for(settings: dict[str, Any] | None = None, **overrides: Any) -> Assumptions:
    """The model every command uses: ``overrides`` (the command line's, None for not given) beat ``settings``
    (a rule file's energy: section), which beat the profile. A grid given as an override (carbon_intensity or
    country) replaces the settings' grid whole."""
    merged = dict(settings or {})
    given = {key: value for key, value in overrides.items() if value is not None}
    unknown = set(given) - set(ENERGY_KEYS)
    if unknown:
        raise TypeError(f"unknown energy settings: {', '.join(sorted(unknown))}")
    if "carbon_intensity" in given or "country" in given:
        merged.pop("carbon_intensity", None)
        merged.pop("country", None)
    merged.update(given)
    return assumptions(**merged)


@dataclass(frozen=True)
class Footprint:
    kwh_per_year: float
    operational_kg: float
    embodied_kg: float

    @property
    def total_kg(self) -> float:
        return self.operational_kg + self.embodied_kg

    def as_dict(self) -> dict[str, float]:
        return {
            "kwh_per_year": self.kwh_per_year,
            "operational_kgco2e_per_year": self.operational_kg,
            "embodied_kgco2e_per_year": self.embodied_kg,
            "kgco2e_per_year": self.total_kg,
        }


def footprint(nbytes: int, model: Assumptions) -> Footprint:
    """The yearly energy and carbon of keeping ``nbytes`` stored under ``model``."""
    terabytes = nbytes / BYTES_PER_TB
    kwh = terabytes * model.watts_per_tb * KWH_PER_WATT_YEAR * model.pue * model.copies
    operational = kwh * model.carbon_intensity / 1000
    embodied = terabytes * model.embodied_kg_per_tb * model.copies / model.lifetime_years
    return Footprint(kwh, operational, embodied)


def equivalences(kg: float) -> dict[str, float]:
    return {"km_by_car": kg * 1000 / CAR_G_PER_KM, "tree_months": kg * 1000 / TREE_G_PER_MONTH}


def energy_report(model: Assumptions, totals: dict[str, int], by_category: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON report's ``energy`` object: assumptions, then totals, junk and per category. Only bytes stored
    here cost energy here: annexed content that is elsewhere only (``elsewhere_bytes``) is left out; and the
    junk is what cleaning frees (basics.annex.reclaimable: not junk stored in git)."""

    def here(counts: dict[str, Any]) -> tuple[int, int]:
        return counts["bytes"] - counts.get("elsewhere_bytes", 0), reclaimable(counts)

    stored, junk_stored = here(totals)
    junk = footprint(junk_stored, model)
    rows = []
    for row in by_category:
        row_stored, row_junk = here(row)
        rows.append({"category": row["category"], "bytes": row_stored, **footprint(row_stored, model).as_dict(),
                     "junk_bytes": row_junk,
                     **{f"junk_{key}": value for key, value in footprint(row_junk, model).as_dict().items()}})
    return {
        "assumptions": model.as_dict(),
        "total": {"bytes": stored, **footprint(stored, model).as_dict()},
        "junk": {"bytes": junk_stored, **junk.as_dict(), **equivalences(junk.total_kg),
                 "equivalences_source": EQUIVALENCE_SOURCE},
        "by_category": rows,
    }


def energy_section(section: Any, at: At) -> dict[str, Any]:
    """A rule file's ``energy:`` section (read by basics/schema.py): the overrides it sets."""
    if not isinstance(section, dict):
        raise ValueError(f"must be a mapping of {', '.join(ENERGY_KEYS)}")
    for key in section:
        if key not in ENERGY_KEYS:
            at.problem(f"unknown key {key!r}; one of {', '.join(ENERGY_KEYS)}", getattr(section, "key_lines", {}).get(key))
    try:
        assumptions(**{key: section[key] for key in ENERGY_KEYS if key in section})
    except CleanupError as exc:
        raise ValueError(str(exc)) from None
    return dict(section)
