"""The exact names fMRIPrep's transform stage writes for one run, from the options its fmriprep.toml recorded:
the only names a `guard: regeneration` rule may reclaim (data/regeneration.yaml's transform_outputs pins the
kinds; the recorded output spaces and --cifti-output say which of each).

A name is compared whole with the names expected for its run, never by its suffix: a user's
``desc-smoothed6mm_bold`` in the same folder, an echo's series or a space the run never asked for is not one of
them, so it stays.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

# Spaces whose volume outputs carry no space entity (the run's own BOLD space), or the subject's anatomy.
NATIVE = frozenset({"func", "run", "bold", "boldref", "sbref"})
ANATOMICAL = {"T1w": "T1w", "anat": "T1w", "T2w": "T2w"}
FREESURFER = ("fsnative", "fsaverage", "fsaverage3", "fsaverage4", "fsaverage5", "fsaverage6")
FSAVERAGE_DENSITY = {"642": "fsaverage3", "2562": "fsaverage4", "10k": "fsaverage5", "41k": "fsaverage6",
                     "164k": "fsaverage"}  # niworkflows.utils.spaces.FSAVERAGE_DENSITY, inverted
SURFACE_TEMPLATES = ("fsLR", "onavg", "dhcpAsym", "dhcpSym", "dhcpVol")  # resampled by workbench, not pinned
DEFAULT_SPACES = "MNI152NLin2009cAsym:res-native"  # fmriprep/cli/parser.py, when none is given
ENTITY_ORDER = ("hemi", "space", "cohort", "res", "den", "label", "desc")  # as DerivativesDataSink names files
RUN_KEYS = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part")


@dataclass(frozen=True)
class VolumeSpace:
    """One volume space a run's outputs were resampled into: the space entity ("" for the run's own), res, cohort."""

    space: str
    res: str | None = None
    cohort: str | None = None

    @property
    def standard(self) -> bool:
        return self.space not in ("", *ANATOMICAL.values())

    def entities(self) -> dict[str, str]:
        found = {"space": self.space} if self.space else {}
        return {**found, **({"cohort": self.cohort} if self.cohort else {}), **({"res": self.res} if self.res else {})}

    @property
    def template(self) -> str:
        """How sMRIPrep names the transform to this space: MNIPediatricAsym:cohort-1 is to-MNIPediatricAsym+1."""
        return f"{self.space}+{self.cohort}" if self.cohort else self.space


@dataclass(frozen=True)
class Spaces:
    """What a run's recorded output spaces and --cifti-output ask the transform stage to write."""

    volumes: tuple[VolumeSpace, ...] = ()
    freesurfer: tuple[str, ...] = ()
    cifti: str | None = None  # 91k or 170k
    unknown: tuple[str, ...] = field(default=())  # words not understood: their outputs are not reclaimed


def recorded_spaces(output_spaces: Any, cifti_output: Any) -> Spaces:
    """The Spaces of a run config's ``execution.output_spaces`` (a string of words, or a list) and
    ``workflow.cifti_output``."""
    words = (output_spaces.split() if isinstance(output_spaces, str) else
             [str(word) for word in output_spaces] if isinstance(output_spaces, list) else DEFAULT_SPACES.split())
    volumes: list[VolumeSpace] = []
    surfaces: list[str] = []
    unknown: list[str] = []
    for word in words:
        name, *specs = word.split(":")
        options: dict[str, list[str]] = {}
        for spec in specs:
            key, _, value = spec.partition("-")
            options.setdefault(key, []).append(value)
        if not re.fullmatch(r"[A-Za-z0-9]+", name) or any(key not in ("res", "cohort", "den") for key in options):
            unknown.append(word)
        elif name in NATIVE:
            volumes.append(VolumeSpace(""))
        elif name in ANATOMICAL:
            volumes.append(VolumeSpace(ANATOMICAL[name]))
        elif name in FREESURFER:
            surfaces += [FSAVERAGE_DENSITY.get(den, name) if name == "fsaverage" else name
                         for den in options.get("den") or [""]]
        elif name in SURFACE_TEMPLATES or "den" in options:
            continue  # workbench-resampled surfaces: not among the pinned names, so never reclaimed
        else:
            for res, cohort in itertools.product(options.get("res") or [""], options.get("cohort") or [""]):
                volumes.append(VolumeSpace(name, None if res in ("", "native") else res, cohort or None))
    cifti = cifti_output if cifti_output in ("91k", "170k") else None
    return Spaces(tuple(dict.fromkeys(volumes)), tuple(dict.fromkeys(surfaces)), cifti, tuple(unknown))


def _rest(entities: dict[str, str], suffix: str, extension: str) -> str:
    """The part of a derivative's name after its run's entities: hemi-L_space-X_res-2_desc-preproc_bold.nii.gz."""
    parts = [f"{key}-{entities[key]}" for key in ENTITY_ORDER if entities.get(key)]
    return "_".join([*parts, suffix]) + extension


def expected_rests(kinds: dict[str, dict[str, Any]], spaces: Spaces, datatype: str) -> dict[str, str]:
    """Every name ending (after the run's own entities) the pinned ``kinds`` of ``datatype`` give for these
    spaces, with the kind it is."""
    found: dict[str, str] = {}
    for kind, spec in kinds.items():
        entities = {key: str(value) for key, value in spec["entities"].items() if key not in ("datatype", "suffix")}
        if spec["entities"].get("datatype") != datatype:
            continue
        suffix = str(spec["entities"]["suffix"])
        choices: list[dict[str, str]] = [{}]
        if spec["space"] in ("volume", "resampled", "template"):
            volumes = [volume for volume in spaces.volumes if spec["space"] == "volume"
                       or (spec["space"] == "resampled" and volume.space)
                       or (spec["space"] == "template" and volume.standard)]
            choices = [volume.entities() for volume in volumes]
        elif spec["space"] == "freesurfer":
            choices = [{"space": space} for space in spaces.freesurfer]
        elif spec["space"] == "cifti":
            choices = [{"den": spaces.cifti}] if spaces.cifti else []  # space-fsLR comes from the kind's entities
        for choice in choices:
            for hemi in spec.get("hemi") or [None]:
                for label in spec.get("label") or [None]:
                    named = {**entities, **choice, **({"hemi": hemi} if hemi else {}), **({"label": label} if label else {})}
                    for extension in spec["extensions"]:
                        found[_rest(named, suffix, str(extension))] = kind
    return found


def split_name(name: str) -> tuple[str, str, dict[str, str]] | None:
    """A derivative's name as (its run's entities as written, the rest, the run's entities by key): the run's are
    the leading sub, ses, task, acq, ce, rec, dir, run, echo and part pairs. None when it does not start with sub-."""
    parts = name.split("_")
    if not parts[0].startswith("sub-"):
        return None
    run: dict[str, str] = {}
    at = 0
    while at < len(parts) - 1:
        key, dash, value = parts[at].partition("-")
        if not dash or key not in RUN_KEYS or key in run:
            break
        run[key] = value
        at += 1
    return "_".join(parts[:at]), "_".join(parts[at:]), run
