"""The command that rebuilds what a regenerable rule set reclaimed: one subject's recorded version and options,
run into a fresh folder so that nothing kept is overwritten, and only the reclaimed names moved back.

Every value that enters the script is checked first (versions as versions, labels as BIDS labels, image tags by
pattern) and every word is quoted for bash: a value recorded in a run config (which anyone who can write the
dataset can edit) never becomes code. The options carried are the run config's keys that data/regeneration.yaml
classifies as carried, each in the form fMRIPrep's own parser reads back to the same value.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..basics.errors import CleanupError
from .workdirs import PathMap, map_path

VERSION = re.compile(r"^\d+\.\d+\.\d+(?:(?:a|b|rc|\.post|\.dev)\d+)?$")  # a release as fMRIPrep numbers them
LABEL = re.compile(r"^[A-Za-z0-9]+$")  # a BIDS label
IMAGE = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[A-Za-z0-9][A-Za-z0-9._-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
DEFAULT_HOURS = 24  # no recorded duration: enough for a fit re-run (fMRIPrep's benchmarks: ~2 h on 20 cores)
MARGIN = 1.5  # a recorded duration, times this: a rebuild on a busier node
OPTION_WORD = re.compile(r"^[^\x00-\x1f\x7f]*$")


def checked_version(version: str | None, pipeline: str) -> str:
    if not isinstance(version, str) or not VERSION.match(version):
        raise CleanupError(f"the recorded {pipeline} version {version!r} is not a release number; no recipe is written "
                           "with it")
    return version


def checked_label(label: str) -> str:
    if not LABEL.match(label):
        raise CleanupError(f"participant label {label!r} is not a BIDS label; no recipe is written with it")
    return label


def checked_image(image: str) -> str:
    if not IMAGE.match(image):
        raise CleanupError(f"container image {image!r} is not an image name; no recipe is written with it")
    return image


def _word(value: Any, key: str) -> str:
    text = str(value)
    if not OPTION_WORD.match(text) or (text.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", text)):
        raise CleanupError(f"the recorded {key} {text!r} cannot be carried to a command line safely; no recipe is "
                           "written with it")
    return text


def carried_options(config: dict[str, Any], classes: dict[str, Any], path_map: PathMap) -> tuple[list[str], Any]:
    """The command-line options that give a rebuild the recorded value of every key ``classes`` says is carried
    (data/regeneration.yaml's config), and the BIDS filters to write beside it (None if the run had none)."""
    options: list[str] = []
    filters = None
    for key, how in classes.items():
        if not isinstance(how, dict) or "carry" not in how:
            continue
        section, _, name = key.partition(".")
        recorded = config.get(section)
        if not isinstance(recorded, dict) or name not in recorded:
            continue
        value, flag, form = recorded[name], str(how["carry"]), how["form"]
        if form == "flag":
            options += [flag] if value is True else []
        elif form == "negated":
            options += [flag] if value is False else []
        elif form == "filters":
            if isinstance(value, dict) and value:
                filters = value
                options += [flag, "bids_filters.json"]
        elif value is None or value is False or value == [] or value == "":
            continue
        elif form in ("values", "spaces"):
            words = value.split() if isinstance(value, str) else list(value) if isinstance(value, list) else [value]
            options += [flag, *(_word(word, key) for word in words)]
        elif form == "path":
            options += [flag, map_path(_word(value, key), path_map)]
        else:
            options += [flag, _word(value, key)]
    return options, filters


def slurm_hours(duration: float | None) -> int:
    """Hours a Slurm job gets: the recorded run's duration with a margin, else DEFAULT_HOURS."""
    if duration is None or not math.isfinite(duration) or duration <= 0:
        return DEFAULT_HOURS
    return max(1, math.ceil(duration * MARGIN / 3600))


@dataclass(frozen=True)
class Recipe:
    """One subject's rebuild, as a shell command (and, with a filter file, the file it needs)."""

    subject: str
    pipeline: str  # as people write it
    program: str  # the command's name: fmriprep, qsiprep, xcp-d...
    version: str | None
    bids_dir: str
    output_dir: str
    options: list[str]
    bids_filters: Any = None
    image: str | None = None
    files: tuple[str, ...] = ()  # the reclaimed names (relative to output_dir) the rebuild gives back
    hours: int = DEFAULT_HOURS  # what a Slurm job running it asks for
    fresh_output: bool = True  # run into a fresh folder and move back only ``files`` (fMRIPrep reads OUT)
    derivatives: tuple[tuple[str, str], ...] = field(default=())  # --derivatives NAME=PATH, the kept outputs last

    def command(self, output: str | None = None) -> list[str]:
        derivatives = ["--derivatives", *(f"{name}={path}" for name, path in self.derivatives)] if self.derivatives else []
        return [self.program, self.bids_dir, output or self.output_dir, "participant", *self.options, *derivatives]

    def folders(self) -> list[str]:
        """Every folder the command reads or writes (a container must see them at the same paths)."""
        named = [self.bids_dir, self.output_dir, *(path for _, path in self.derivatives)]
        named += [word for word in self.options if os.path.isabs(word)]
        return sorted(set(named))

    def script(self) -> str:
        """A bash script that rebuilds the subject's reclaimed outputs."""
        lines = ["#!/bin/bash",
                 f"# Rebuild {self.pipeline}'s outputs of sub-{self.subject} that fmriprep-cleanup reclaimed: the",
                 f"# same version ({self.version or 'unknown'}) and options as the recorded run, reusing the fit outputs",
                 f"# kept in {self.output_dir}. Needs a FreeSurfer licence in $FS_LICENSE; WORK is the working",
                 "# directory (default ./work-sub-<label>); TEMPLATEFLOW_HOME the TemplateFlow cache (bound into",
                 "# the container: fetch the templates on a node with network first, or the rebuild fails offline).",
                 "set -euo pipefail",
                 f'WORK="${{WORK:-$PWD/work-sub-{self.subject}}}"',
                 'TEMPLATEFLOW_HOME="${TEMPLATEFLOW_HOME:-$HOME/.cache/templateflow}"',
                 'mkdir -p "$WORK" "$TEMPLATEFLOW_HOME"']
        output = '"$WORK/rebuild"' if self.fresh_output else shlex.quote(self.output_dir)
        if self.fresh_output:
            lines += ['if [ -e "$WORK/rebuild" ]; then echo "$WORK/rebuild exists: remove it or set WORK" >&2; exit 2; fi']
        if self.bids_filters is not None:
            lines += ["printf '%s\\n' " + shlex.quote(json.dumps(self.bids_filters, indent=2, sort_keys=True))
                      + ' > "$WORK/bids_filters.json"']
        words = [shlex.quote(part) for part in self.command("OUTPUT")]
        words[2] = output
        arguments = " ".join(words).replace(" bids_filters.json", ' "$WORK/bids_filters.json"')
        arguments += (' --work-dir "$WORK" --fs-license-file "$FS_LICENSE" --bids-database-dir "$WORK/bids_db"'
                      if self.program == "fmriprep" else ' --work-dir "$WORK" --fs-license-file "$FS_LICENSE"')
        if self.image:
            binds = ",".join(shlex.quote(path) for path in self.folders())
            image = shlex.quote(self.image)
            lines += ["# The recorded version's container: Apptainer (or Singularity) where installed, else the program on",
                      "# PATH, which must then be that very version. With Docker:",
                      f"#   docker run --rm {' '.join(f'-v {shlex.quote(path)}:{shlex.quote(path)}' for path in self.folders())} "
                      '-v "$WORK:$WORK" -v "$FS_LICENSE:$FS_LICENSE" -v "$TEMPLATEFLOW_HOME:$TEMPLATEFLOW_HOME" '
                      f'-e TEMPLATEFLOW_HOME="$TEMPLATEFLOW_HOME" {image} {arguments.split(" ", 1)[1]}',
                      "CONTAINER=()",
                      "for runner in apptainer singularity; do",
                      '  if command -v "$runner" >/dev/null 2>&1; then',
                      f'    CONTAINER=("$runner" exec --cleanenv -B {binds} -B "$WORK" -B "$FS_LICENSE" -B "$TEMPLATEFLOW_HOME" '
                      f'--env TEMPLATEFLOW_HOME="$TEMPLATEFLOW_HOME" docker://{image})',
                      "    break",
                      "  fi",
                      "done",
                      f'[ "${{#CONTAINER[@]}}" -gt 0 ] || echo "no Apptainer here: running {shlex.quote(self.program)} from PATH '
                      f'(it must be {self.pipeline} {self.version})" >&2',
                      f'"${{CONTAINER[@]}}" {arguments}']
        else:
            lines.append(arguments)
        if self.fresh_output:
            lines += self._move_back()
        return "\n".join(lines) + "\n"

    def _move_back(self) -> list[str]:
        """Move each reclaimed name from the fresh folder into the output folder, never over a file that is
        there; say which the rebuild did not make (exit 1)."""
        names = " ".join(shlex.quote(name) for name in self.files)
        return ["# Only the names that were reclaimed go back, and never over a file that is there:",
                f"OUT={shlex.quote(self.output_dir)}",
                f"RECLAIMED=({names})",
                "missing=0",
                'for name in "${RECLAIMED[@]}"; do',
                '  if [ -e "$OUT/$name" ] || [ -L "$OUT/$name" ]; then echo "kept, not overwritten: $OUT/$name" >&2',
                '  elif [ -f "$WORK/rebuild/$name" ]; then mkdir -p "$(dirname "$OUT/$name")"; '
                'mv -n "$WORK/rebuild/$name" "$OUT/$name"',
                '  else echo "not made by the rebuild: $name" >&2; missing=1; fi',
                "done",
                'exit "$missing"']

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "pipeline": self.pipeline, "version": self.version,
                "command": self.command(), "image": self.image, "bids_filters": self.bids_filters,
                "files": list(self.files), "slurm_hours": self.hours}


def derivative_folders(recorded: dict[str, str], option: str, output: str) -> tuple[tuple[str, str], ...]:
    """``--derivatives`` of a rebuild: the run's own (checked, mapped) and then the output folder under
    ``option``'s name - under another if the run already used that name for another folder (fMRIPrep refuses a
    name twice), or not at all if the run already listed it."""
    found: dict[str, str] = {}
    for name, path in recorded.items():
        if "=" in name or "=" in path or not name:
            raise CleanupError(f"the recorded --derivatives {name}={path} holds '=' or no name: fMRIPrep cannot read "
                               "it back; no recipe is written with it")
        found[_word(name, "derivatives name")] = _word(path, "derivatives path")
    if os.path.realpath(output) not in {os.path.realpath(path) for path in found.values()}:
        name = option
        while name in found:
            name += "-kept"
        found[name] = output
    return tuple(found.items())


def sbatch_script(recipes: list[Recipe]) -> str:
    """A Slurm array script: task i rebuilds the i-th subject (each task runs that subject's recipe)."""
    labels = " ".join(shlex.quote(recipe.subject) for recipe in recipes)
    hours = max(recipe.hours for recipe in recipes)
    lines = ["#!/bin/bash", f"#SBATCH --job-name=regenerate-{recipes[0].program}",
             f"#SBATCH --array=0-{len(recipes) - 1}", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=16G",
             f"#SBATCH --time={hours}:00:00",
             "# time: the longest recorded run with a margin, else a default that covers redoing the fit",
             "set -euo pipefail", f"LABELS=({labels})", 'LABEL="${LABELS[$SLURM_ARRAY_TASK_ID]}"',
             'case "$LABEL" in']
    for recipe in recipes:
        body = [line for line in recipe.script().splitlines() if line and not line.startswith(("#!", "set -"))]
        lines += [f"  {shlex.quote(recipe.subject)})", *(f"    {line}" for line in body), "    ;;"]
    lines += ["esac"]
    return "\n".join(lines) + "\n"


def reclaimed_names(paths: Iterable[str], output: str) -> tuple[str, ...]:
    """The reclaimed files' names relative to the output folder (those inside it), sorted."""
    prefix = output.rstrip("/") + "/"
    return tuple(sorted(path[len(prefix):] for path in paths if path.startswith(prefix)))
