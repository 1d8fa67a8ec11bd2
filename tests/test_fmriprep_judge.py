"""fMRIPrep's own code judges the regenerable set (issue 43): for each release the gate names (25.0, 25.1 and the
newest 25.2), installed from the package index with the sMRIPrep it shipped with,

(a) the run config a tree carries is the one that release's own parser records for the run's options, and every
    recipe parses with that parser back to the recorded value of every key the recipe carries;
(b) after `clean --rules regenerable --mode delete`, that release's own lookup (collect_derivatives,
    collect_fieldmaps, sMRIPrep's collect_derivatives) finds every fit output of every run whose outputs went;
(c) every name the set reclaims is one the pinned transform stage writes, and each pinned name, query and config
    key is found in the installed package's own code and data.

Trees are fMRIPrep's CI output lists (tests/data/*_outputs.txt) with the raw BIDS input they imply.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import age_run, ci_listing, cli, make_files, write_description
from judges import FMRIPREP, ask, environment
from test_regeneration import DATA, is_transform_output, junk, plan_of, size_of

pytestmark = [pytest.mark.integration]

SPEC = yaml.safe_load((Path(__file__).parent.parent / "fmriprep_cleanup" / "data" / "regeneration.yaml").read_text())
FMRIPREP_SPEC = SPEC["pipelines"]["fmriprep"]
# A run with options away from every default, so that a recipe that dropped one would parse to another value.
OPTIONS = {
    "ds005_outputs.txt": ["--output-spaces", "fsaverage5", "fsnative", "--fd-spike-threshold", "0.9",
                          "--dvars-spike-threshold", "2.0", "--return-all-components", "--me-t2s-fit-method", "loglin",
                          "--ignore", "slicetiming", "--dummy-scans", "2", "--bold2anat-dof", "9", "--fmap-bspline",
                          "--project-goodvoxels", "--medial-surface-nan", "--skull-strip-t1w", "skip"],
    "ds054_outputs.txt": ["--output-spaces", "MNI152NLin2009cAsym:res-2", "anat", "func", "--use-syn-sdc", "warn",
                          "--fs-no-reconall", "--slice-time-ref", "0", "--force", "bbr"],
    "ds210_outputs.txt": ["--output-spaces", "MNI152NLin2009cAsym", "anat", "func", "--me-output-echos"],
}


@pytest.fixture(scope="module", params=sorted(FMRIPREP))
def release(request):
    return request.param, environment(FMRIPREP[request.param])


@pytest.fixture(scope="module")
def facts(release):
    return ask(release[1], "judge_fmriprep.py", "facts")


def subject_of(listing: str) -> str:
    return next(path.split("/")[0] for path in ci_listing(DATA / listing) if path.startswith("sub-") and "/" in path)


def tree(root: Path, listing: str, release: tuple[str, Path]) -> tuple[Path, Path, list[str]]:
    """OUT (the CI list, realistic sizes), RAW (every BOLD run and T1w it implies, BIDS enough for pybids) and
    the run config the release's own parser records for OPTIONS, in OUT/sub-X/log/<run_uuid>/."""
    out, raw, work = root / "out", root / "raw", root / "work"
    files = [path for path in ci_listing(DATA / listing) if path != "dataset_description.json"]
    make_files(out, {path: size_of(path) for path in files})
    for path in files:
        if path.endswith(".json"):
            (out / path).write_text("{}")  # pybids reads every sidecar
    write_description(out, release[0])
    subject = subject_of(listing)
    runs = {re.sub(r"_(space|hemi|desc|from|to|mode|res|den|label|echo)-[^_]+", "", path.rpartition("/")[2])
            .split("_bold")[0].split("_boldref")[0].split("_xfm")[0].split("_mask")[0].split("_timeseries")[0]
            for path in files if "/func/" in path and "_task-" in path}
    echoes = sorted({match for path in files for match in re.findall(r"_echo-(\d+)_", path)})
    raw_files = {f"{subject}/anat/{subject}_T1w.nii.gz": 1000}
    for run in runs:
        for echo in echoes or [None]:
            raw_files[f"{subject}/func/{run}{f'_echo-{echo}' if echo else ''}_bold.nii.gz"] = 1000
    make_files(raw, raw_files)
    for path in list(raw_files):
        if path.endswith("_bold.nii.gz"):
            (raw / path.replace(".nii.gz", ".json")).write_text('{"RepetitionTime": 2.0, "TaskName": "task"}')
    (raw / "dataset_description.json").write_text('{"Name": "raw", "BIDSVersion": "1.8.0"}')
    (root / "license.txt").write_text("license")
    recorded = root / "fmriprep.toml"
    ask(release[1], "judge_fmriprep.py", "record", str(recorded), str(raw), str(out), "participant",
        "--skip-bids-validation", "-w", str(work), "--participant-label", subject[4:], "--notrack",
        *OPTIONS[listing])
    run_uuid = re.search(r'run_uuid = "([^"]+)"', recorded.read_text()).group(1)
    log = out / subject / "log" / run_uuid
    log.mkdir(parents=True)
    shutil.copy(recorded, log / "fmriprep.toml")
    shutil.rmtree(out / "logs", ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    if "fsnative" in " ".join(OPTIONS[listing]):
        make_files(out / "sourcedata" / "freesurfer", {f"{subject}/surf/lh.white": 1000})
    age_run(out)
    return out, raw, files


def toml_value(text: str, section: str, key: str):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    return tomllib.loads(text).get(section, {}).get(key)


@pytest.mark.parametrize("listing", ["ds005_outputs.txt", "ds054_outputs.txt"])
def test_a_every_recipe_parses_back_to_the_recorded_configuration(tmp_path, release, listing):
    out, raw, _ = tree(tmp_path, listing, release)
    asked = cli("regenerate", out, "--format", "json")
    if listing == "ds054_outputs.txt" and release[0] < "25.1":  # its runs used a fieldmap, its anatomy tissue maps
        assert asked.exit_code == 2 and "only from 25.1" in asked.output, asked.output
        return
    [recipe] = json.loads(asked.stdout)["recipes"]
    assert recipe["version"] == release[0]
    program, bids, _output, *arguments = recipe["command"]
    assert program == "fmriprep" and bids == str(raw)
    rebuilt = tmp_path / "rebuilt.toml"
    script_arguments = ["--work-dir", str(tmp_path / "w"), "--fs-license-file", str(tmp_path / "license.txt"),
                        "--bids-database-dir", str(tmp_path / "w" / "bids_db"), "--skip-bids-validation", "--notrack"]
    ask(release[1], "judge_fmriprep.py", "record", str(rebuilt), bids, str(tmp_path / "rebuild"), *arguments,
        *script_arguments)
    bare = tmp_path / "bare.toml"  # a recipe that carried nothing: must not pass the same comparison
    ask(release[1], "judge_fmriprep.py", "record", str(bare), bids, str(tmp_path / "rebuild2"), "participant",
        "--participant-label", recipe["subject"], *script_arguments)
    recorded = (next(out.glob("sub-*/log/*/fmriprep.toml"))).read_text()
    carried = [key for key, how in FMRIPREP_SPEC["config"].items() if isinstance(how, dict)]
    compared = 0
    for key in carried:
        section, name = key.split(".")
        if toml_value(recorded, section, name) is None:
            continue  # not in this release's config
        compared += 1
        assert toml_value(rebuilt.read_text(), section, name) == toml_value(recorded, section, name), key
    assert compared >= 20
    differs = [key for key in carried if toml_value(bare.read_text(), *key.split(".")) !=
               toml_value(recorded, *key.split("."))]
    assert differs, "the comparison cannot tell a recipe that carries nothing from a complete one"


@pytest.mark.parametrize("listing", ["ds005_outputs.txt", "ds054_outputs.txt"])
def test_b_the_releases_own_lookup_finds_every_fit_output_after_the_clean(tmp_path, release, listing):
    out, raw, files = tree(tmp_path, listing, release)
    before = junk(plan_of(out))
    rows = plan_of(out, "--rules", "regenerable")
    reclaimed = junk(rows) - before
    assert cli("clean", out, "--rules", "regenerable", "--mode", "delete", "--yes", "-q").exit_code in (0, 3)
    assert not any((out / path).exists() for path in reclaimed)
    subject = subject_of(listing)
    spaces = ["MNI152NLin2009cAsym"] if "MNI152" in " ".join(OPTIONS[listing]) else []
    found = ask(release[1], "judge_fmriprep.py", "lookup", str(out), str(raw), subject[4:], *spaces)
    reclaimed_runs = {path.rpartition("/")[2].split("_space-")[0].split("_hemi-")[0].split("_desc-")[0]
                      for path in reclaimed if "/func/" in path}
    for run in reclaimed_runs:
        seen = found["runs"][run]
        assert seen["baseline"] == ["coreg_boldref", "hmc_boldref"], (run, seen)
        assert {"hmc", "boldref2anat"} <= set(seen["transforms"]), (run, seen)
        if any("_to-auto" in path and run in path for path in files):
            assert "boldref2fmap" in seen["transforms"] and found["fieldmaps"], (run, found)
    if any("/anat/" in path for path in reclaimed):
        assert {"t1w_preproc", "t1w_mask", "t1w_dseg", "t1w_tpms"} <= set(found["anat"]), found
        assert found["tpms_order"] == ["GM", "WM", "CSF"], found  # sMRIPrep 0.18+: in the queries' order
        assert set(found["anat_transforms"]["MNI152NLin2009cAsym"]) == {"forward", "reverse"}
    expected = {path for path in files if is_transform_output(path)}
    gate = {"25.0.0": set(), "25.1.4": expected}.get(release[0], expected) if listing == "ds054_outputs.txt" \
        else expected
    assert reclaimed == gate, sorted(reclaimed ^ gate)


def test_b_multi_echo_runs_are_never_found_by_a_released_lookup(tmp_path, release):
    listing = "ds210_outputs.txt"
    out, raw, files = tree(tmp_path, listing, release)
    assert junk(plan_of(out, "--rules", "regenerable")) == junk(plan_of(out))  # nothing reclaimed
    found = ask(release[1], "judge_fmriprep.py", "lookup", str(out), str(raw), subject_of(listing)[4:])
    run = next(iter(found["runs"].values()))
    assert run["echoes"] == 3 and run["baseline"] == [], found  # the fit it would reuse is not found: #3628


def test_b_the_tissue_order_boundary_is_smripreps(tmp_path, release):
    """sMRIPrep before 0.18 (fMRIPrep before 25.1.0) returns reused tissue maps in file-name order."""
    out, raw, files = tree(tmp_path, "ds054_outputs.txt", release)
    found = ask(release[1], "judge_fmriprep.py", "lookup", str(out), str(raw), subject_of("ds054_outputs.txt")[4:])
    if release[0] < "25.1":
        assert found["tpms_order"] == ["CSF", "GM", "WM"]  # why anatomy is kept whole before 25.1.0
    else:
        assert found["tpms_order"] == ["GM", "WM", "CSF"]


def test_c_the_pinned_names_queries_and_config_keys_are_the_releases_own(facts, release):
    assert facts["fmriprep"] == release[0]
    for kind, spec in FMRIPREP_SPEC["transform_outputs"].items():
        written_by = spec["written_by"]
        calls = facts["sinks"][f"{written_by['file']}:{written_by['function']}"]
        assert any(all(call.get(key) == value for key, value in written_by["sink"].items()) for call in calls), kind
    io_spec, fmap_spec, anat_spec = (facts["specs"][name]["queries"] for name in
                                     ("fmriprep_io_spec", "fmap_spec", "smriprep_io_spec"))
    theirs = [*io_spec["baseline"].values(), *io_spec["transforms"].values()]
    for name, query in FMRIPREP_SPEC["run_fit"].items():
        assert query in theirs, name
    reuses_fieldmaps = FMRIPREP_SPEC["features"]["fieldmaps"]["from"]
    for name, query in FMRIPREP_SPEC["fieldmap_fit"].items():  # the queries of the releases that reuse fieldmaps
        assert (query in fmap_spec["fieldmaps"].values()) or release[0] < reuses_fieldmaps, name
    for name, query in FMRIPREP_SPEC["anat_fit"].items():
        base = {**query, "label": ["GM", "WM", "CSF"]} if "label" in query else query
        assert base in anat_spec["baseline"].values(), name
    for direction, query in FMRIPREP_SPEC["template_transforms"].items():
        assert {**query, **({"to": None} if direction == "forward" else {"from": None})} == \
            anat_spec["transforms"][direction], direction
    surfaces = {**anat_spec["surfaces"], **anat_spec["masks"]}
    for name, query in FMRIPREP_SPEC["surfaces"].items():
        assert query in surfaces.values(), name
    classified = set(FMRIPREP_SPEC["config"])
    for section, keys in facts["config_keys"].items():
        unknown = {f"{section}.{key}" for key in keys} - classified
        assert not unknown, f"fMRIPrep {release[0]} has config keys the data does not classify: {sorted(unknown)}"
