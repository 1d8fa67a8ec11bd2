"""What a person may change of the storage energy model, declared once (basics/options.py): each override with
its flag. The model itself, and the ranges the overrides must keep to, are model.py's."""

from __future__ import annotations

from dataclasses import dataclass

from ..basics.options import Declared, Flag, option, optional, real, text


@dataclass(frozen=True)
class EnergyOverrides(Declared):
    """The model's overrides a command takes: they beat a rule file's energy: section, which beats the storage
    profile (their ranges are checked by ``assumptions``, with the flag named)."""

    profile: str | None = option(None, optional(text), Flag(
        "--storage-profile", dest="storage_profile", metavar="NAME",
        help="Storage profile: hpc-hdd (default), hdd, ssd, workstation-hdd, ccf-hdd, ccf-ssd."))
    pue: float | None = option(None, optional(real), Flag(
        "--pue", number=True, help="Data-centre power usage effectiveness (>= 1)."))
    copies: float | None = option(None, optional(real), Flag(
        "--copies", number=True, help="Copies kept: replication and backups (e.g. 2)."))
    carbon_intensity: float | None = option(None, optional(real), Flag(
        "--carbon-intensity", number=True, metavar="G", help="Grid carbon intensity in gCO2e/kWh."))
    country: str | None = option(None, optional(text), Flag(
        "--country", metavar="CODE", help="Take the carbon intensity of this country or region (FR, US-CA...)."))


ENERGY_KEYS = tuple(item.name for item in EnergyOverrides.declared())  # also the keys of a rule file's energy:
