"""Run inside an environment where a released fMRIPrep is installed (tests/judges.py makes them): fMRIPrep's own
code answers, as JSON on standard output. Nothing of fmriprep-cleanup is imported here.

    python judge_fmriprep.py record TOML ARGS...     parse ARGS as fMRIPrep does, write the run config it records
    python judge_fmriprep.py lookup OUT RAW SUBJECT SPACE...   what its --derivatives lookup finds for each BOLD run
    python judge_fmriprep.py facts                   its version, config keys, lookup queries, DataSink calls
"""

from __future__ import annotations

import ast
import json
import os
import sys
import warnings
from collections import defaultdict
from pathlib import Path

warnings.filterwarnings("ignore")


def record(target: str, args: list[str]) -> None:
    from fmriprep import config
    from fmriprep.cli.parser import parse_args

    parse_args(args)
    config.to_filename(target)
    print(json.dumps({"written": target}))


def lookup(out: str, raw: str, subject: str, spaces: list[str]) -> None:
    """fMRIPrep's own lookup of every BOLD run of ``subject`` in ``raw`` (its echoes together, as fMRIPrep groups
    them), its fieldmaps, and sMRIPrep's anatomical lookup."""
    from bids.layout import BIDSLayout
    from fmriprep.utils.bids import collect_derivatives, collect_fieldmaps, extract_entities
    from smriprep.utils.bids import collect_derivatives as collect_anat

    layout = BIDSLayout(raw, validate=False)
    runs = defaultdict(list)
    for path in layout.get(subject=subject, suffix="bold", extension=[".nii", ".nii.gz"], return_type="filename"):
        entities = layout.parse_file_entities(path)
        key = tuple(sorted((k, str(v)) for k, v in entities.items() if k not in ("echo", "extension")))
        runs[key].append(path)
    found = {}
    for _, series in sorted(runs.items()):
        entities = extract_entities(sorted(series))
        cache = collect_derivatives(Path(out), entities)
        name = os.path.basename(sorted(series)[0]).split("_bold")[0].replace("_echo-1", "")
        found[name] = {"baseline": sorted(k for k in cache if k != "transforms"),
                       "transforms": sorted(cache.get("transforms", {})), "echoes": len(series)}
    fieldmaps = collect_fieldmaps(Path(out), {"subject": subject})
    anat = collect_anat(out, subject, spaces)
    tpms = anat.get("t1w_tpms") or []
    print(json.dumps({"runs": found, "fieldmaps": {k: sorted(v) for k, v in fieldmaps.items()},
                      "anat": sorted(k for k in anat if k != "transforms"),
                      "anat_transforms": {space: sorted(v) for space, v in anat.get("transforms", {}).items()},
                      "tpms_order": [os.path.basename(str(path)).split("label-")[1].split("_")[0] for path in tpms]
                      if isinstance(tpms, list) else []}))


def sinks(path: Path, function: str) -> list[dict[str, object]]:
    """The constant keyword arguments of every DerivativesDataSink(...) call inside ``function`` of ``path``."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", "")) == "DerivativesDataSink":
                    found.append({kw.arg: kw.value.value for kw in call.keywords
                                  if kw.arg and isinstance(kw.value, ast.Constant)})
    return found


def facts() -> None:
    import fmriprep
    import smriprep
    from fmriprep import config

    site = Path(fmriprep.__file__).parent.parent
    keys = {section.__name__: sorted(k for k in vars(section) if not k.startswith("_") and
                                     not callable(getattr(section, k)))
            for section in (config.workflow, config.execution)}
    specs = {name: json.loads((site / path).read_text()) for name, path in (
        ("fmriprep_io_spec", "fmriprep/data/io_spec.json"), ("fmap_spec", "fmriprep/data/fmap_spec.json"),
        ("smriprep_io_spec", "smriprep/data/io_spec.json"))}
    calls = {}
    for path in ("fmriprep/workflows/bold/outputs.py", "fmriprep/workflows/bold/resampling.py",
                 "fmriprep/workflows/bold/base.py", "smriprep/workflows/outputs.py"):
        tree = ast.parse((site / path).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                calls[f"{path}:{node.name}"] = sinks(site / path, node.name)
    print(json.dumps({"fmriprep": fmriprep.__version__, "smriprep": smriprep.__version__, "config_keys": keys,
                      "specs": specs, "sinks": calls}))


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "record":
        record(rest[0], rest[1:])
    elif command == "lookup":
        lookup(rest[0], rest[1], rest[2], rest[3:])
    elif command == "facts":
        facts()
    else:
        raise SystemExit(f"unknown command {command}")
