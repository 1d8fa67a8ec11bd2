"""Regeneration as wide as fMRIPrep's own reuse and no wider (issue 43): each finding rebuilt as a test on trees
made from fMRIPrep's CI output lists (tests/data/*_outputs.txt), with their raw inputs and recorded configs.
tests/test_fmriprep_judge.py checks the same against the installed fMRIPrep's own code."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FINISHED_RUN, age_run, cli, make_files
from test_regeneration import build, is_transform_output, junk, plan_of

DS054_SPACES = "MNI152NLin2009cAsym:res-2 anat func"


def reclaimed(out: Path) -> set[str]:
    return junk(plan_of(out, "--rules", "regenerable")) - junk(plan_of(out))


def why(out: Path, relpath: str) -> str:
    explained = cli("explain", out, out / relpath, "--rules", "regenerable", "--format", "json")
    return json.loads(explained.stdout)[0]["why"]


def config_of(out: Path, subject: str = "sub-01") -> Path:
    return out / subject / "log" / FINISHED_RUN / "fmriprep.toml"


# --- 1. the version gate, feature by feature ---------------------------------------------------------------

@pytest.mark.parametrize("version, anat, runs", [
    ("24.1.1", False, False),  # boldref2anat looked up to-anat: nothing functional reclaimed
    ("25.0.0", False, False),  # functional fit ok; the runs used a fieldmap (25.1.4); tissue maps (25.1.0)
    ("25.1.0", True, False),
    ("25.1.3", True, False),
    ("25.1.4", True, True),
    ("25.2.7", True, True),
])
def test_43_1_each_part_of_the_fit_is_reclaimed_only_from_the_release_that_reuses_it(tmp_path, version, anat, runs):
    out, files = build(tmp_path, "ds054_outputs.txt", version=version, spaces=DS054_SPACES)
    got = reclaimed(out)
    expected_anat = {path for path in files if is_transform_output(path) and "/anat/" in path}
    expected_func = {path for path in files if is_transform_output(path) and "/func/" in path}
    assert (got & expected_anat == expected_anat if anat else not got & expected_anat), sorted(got)
    assert (got & expected_func == expected_func if runs else not got & expected_func), sorted(got)
    assert got <= expected_anat | expected_func
    if not runs:
        reason = why(out, sorted(expected_func)[0])
        assert (f"fMRIPrep {version} reuses the BOLD fit correctly only from 25.0.0" in reason if version < "25"
                else f"fieldmap auto00000: fMRIPrep {version} reuses estimated fieldmaps correctly only from 25.1.4"
                in reason), reason
    if not anat:
        assert "only from 25" in why(out, sorted(expected_anat)[0])


def test_43_1_a_run_without_a_fieldmap_is_reclaimed_from_25_0(tmp_path):
    out, files = build(tmp_path, version="25.0.0")  # ds005: no fieldmap, surfaces only
    assert reclaimed(out) == {path for path in files if is_transform_output(path)} != set()


# --- 2. multi-echo: never ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["25.0.0", "25.1.4", "25.2.7"])
def test_43_2_a_multi_echo_tree_reclaims_nothing_at_any_release(tmp_path, version):
    out, files = build(tmp_path, "ds210_outputs.txt", version=version, spaces="MNI152NLin2009cAsym anat func")
    assert any("_echo-" in path for path in files) and any("T2starmap" in path for path in files)
    assert reclaimed(out) == set()
    series = next(path for path in files if "_echo-2_desc-preproc_bold.nii.gz" in path)
    assert "multi-echo run" in why(out, series)
    boldref = next(path for path in files if path.endswith("_space-MNI152NLin2009cAsym_boldref.nii.gz"))
    assert "multi-echo run" in why(out, boldref)


# --- 3. exact names, never by suffix -----------------------------------------------------------------------

def test_43_3_a_users_own_series_beside_fmripreps_is_never_reclaimed(tmp_path):
    out, files = build(tmp_path, "ds054_outputs.txt", version="25.2.7", spaces=DS054_SPACES)
    prefix = "sub-100185/func/sub-100185_task-machinegame_run-01"
    mine = [f"{prefix}_space-MNI152NLin2009cAsym_res-2_desc-smoothed6mm_bold.nii.gz",
            f"{prefix}_space-MNI152NLin2009cAsym_res-2_desc-denoised_bold.nii.gz",
            f"{prefix}_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz"]  # a space the run never asked for
    make_files(out, {path: 1_000_000 for path in mine})
    age_run(out)
    got = reclaimed(out)
    assert got == {path for path in files if is_transform_output(path)}
    assert not got & set(mine)
    assert "not a name the transform stage of fMRIPrep 25.2.7 writes" in why(out, mine[0])
    echo = f"{prefix}_echo-2_desc-optcom_bold.nii.gz"  # an echo's file: the run is taken as multi-echo, kept whole
    make_files(out, {echo: 1_000_000})
    age_run(out)
    got = reclaimed(out)
    assert echo not in got and not any(path.startswith(prefix) for path in got)


# --- 4. guards as strict as fMRIPrep's lookup --------------------------------------------------------------

def test_43_4_a_template_transform_from_the_t2w_is_not_the_one_smriprep_looks_up(tmp_path):
    out, files = build(tmp_path, "ds054_outputs.txt", version="25.2.7", spaces=DS054_SPACES)
    for path in files:
        if "/anat/" in path and "_from-T1w_to-MNI152NLin2009cAsym" in path:
            os.rename(out / path, out / path.replace("from-T1w", "from-T2w"))
    age_run(out)
    got = reclaimed(out)
    assert not any("space-MNI152NLin2009cAsym" in path for path in got)
    assert "from-T1w_to-MNI152NLin2009cAsym is missing" in why(
        out, next(path for path in files if "_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz" in path))


def test_43_4_cifti_needs_smripreps_surfaces_and_the_sphere_the_run_used(tmp_path):
    out, files = build(tmp_path, version="25.2.7", extra="")
    config = config_of(out)
    config.write_text(config.read_text().replace("[workflow]\n", '[workflow]\ncifti_output = "91k"\n'))
    runs = sorted({path.split("_hemi-")[0] for path in files if "_hemi-L_space-fsnative_bold.func.gii" in path})
    cifti = {f"{run}_space-fsLR_den-91k_bold.{ext}" for run in runs for ext in ("dtseries.nii", "dtseries.json")}
    make_files(out, {path: 50_000_000 for path in cifti})
    mni6 = {f"sub-01/anat/sub-01_{name}_mode-image_xfm.h5": 150_000_000 for name in
            ("from-T1w_to-MNI152NLin6Asym", "from-MNI152NLin6Asym_to-T1w")}
    make_files(out, mni6)
    age_run(out)
    assert cifti <= reclaimed(out)  # ds005 has the MSMSulc sphere, midthickness, white, pial and ribbon
    msm = next(path for path in files if "hemi-L_space-fsLR_desc-msmsulc_sphere" in path)
    (out / msm).unlink()
    assert not cifti & reclaimed(out)
    assert "its surface MSMSulc sphere" in why(out, sorted(cifti)[0])
    config.write_text(config.read_text().replace("[workflow]\n", "[workflow]\nrun_msmsulc = false\n"))
    age_run(out)
    assert cifti <= reclaimed(out)  # --no-msm: the fsLR sphere is the one it resamples with


def test_43_4_fieldmaps_found_in_the_runs_other_derivatives_folder(tmp_path):
    out, files = build(tmp_path, "ds054_outputs.txt", version="25.2.7", spaces=DS054_SPACES)
    elsewhere = tmp_path / "sdcflows"
    for path in files:
        if "/fmap/" in path:
            target = elsewhere / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(out / path, target)
    config = config_of(out, "sub-100185")
    config.write_text(config.read_text().replace("[execution]\n", f'[execution]\nderivatives = {{sdc = "{elsewhere}"}}\n'))
    age_run(out)
    assert {path for path in files if is_transform_output(path) and "/func/" in path} <= reclaimed(out)


def test_43_4_a_subject_whose_runs_were_made_by_several_versions_is_kept(tmp_path):
    out, files = build(tmp_path, version="25.2.7")
    older = out / "sub-01" / "log" / "20230101-000000_00000000-0000-4000-8000-000000000001"
    older.mkdir()
    (older / "fmriprep.toml").write_text(config_of(out).read_text().replace('"25.2.7"', '"24.1.1"'))
    age_run(out)
    assert reclaimed(out) == set()
    assert "made by fMRIPrep 24.1.1 and 25.2.7" in why(out, next(path for path in files if is_transform_output(path)))


# --- 5. a complete recipe ------------------------------------------------------------------------------------

def recipe_words(out: Path, *args: str) -> list[str]:
    result = cli("regenerate", out, *args)
    assert result.exit_code == 0, result.output
    command = next(line for line in result.output.splitlines() if line.startswith('"${CONTAINER[@]}" '))
    return shlex.split(command.removeprefix('"${CONTAINER[@]}" '))


def test_43_5_the_recipe_carries_every_option_that_changes_the_rebuilt_data(tmp_path):
    out, _ = build(tmp_path, version="25.2.7")
    config = config_of(out)
    config.write_text(config.read_text().replace("run_reconall = true", "run_reconall = false").replace(
        "[workflow]\n", '[workflow]\nuse_syn_sdc = "warn"\nme_t2s_fit_method = "loglin"\nrun_msmsulc = false\n'
        'subject_anatomical_reference = "sessionwise"\ntrack_sessions = false\nregressors_fd_th = 0.9\n'
        'regressors_dvars_th = 2.0\nregressors_all_comps = true\nforce = ["syn-sdc"]\n').replace(
        "[execution]\n", '[execution]\nsession_label = ["1", "2"]\n'))
    age_run(out)
    words = recipe_words(out)
    for option, value in (("--use-syn-sdc", "warn"), ("--me-t2s-fit-method", "loglin"),
                          ("--subject-anatomical-reference", "sessionwise"), ("--fd-spike-threshold", "0.9"),
                          ("--dvars-spike-threshold", "2.0"), ("--force", "syn-sdc"), ("--session-label", "1")):
        assert words[words.index(option) + 1] == value, option
    for flag in ("--fs-no-reconall", "--no-msm", "--no-track-sessions", "--return-all-components"):
        assert flag in words, flag
    assert words[words.index("--session-label") + 2] == "2"


def test_43_5_a_run_that_read_its_own_fmriprep_derivatives_gets_distinct_names(tmp_path):
    out, _ = build(tmp_path, version="25.2.7")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    config = config_of(out)
    config.write_text(config.read_text().replace("[execution]\n", f'[execution]\nderivatives = {{fmriprep = "{earlier}"}}\n'))
    age_run(out)
    words = recipe_words(out)
    at = words.index("--derivatives")
    assert words[at + 1:at + 3] == [f"fmriprep={earlier}", f"fmriprep-kept={out}"]


# --- 6. a rebuild that cannot overwrite ----------------------------------------------------------------------

FAKE_FMRIPREP = """#!/bin/bash
# Stands for fMRIPrep: writes into its output folder (argument 2) every name listed in $MAKES, and a confounds file
set -euo pipefail
out="$2"
while IFS= read -r name; do mkdir -p "$(dirname "$out/$name")"; echo rebuilt > "$out/$name"; done < "$MAKES"
mkdir -p "$out/sub-01/func" && echo rebuilt > "$out/sub-01/func/sub-01_task-mixedgamblestask_run-01_desc-confounds_timeseries.tsv"
"""


def test_43_6_the_rebuild_runs_into_a_fresh_folder_and_moves_back_only_what_was_reclaimed(tmp_path):
    out, files = build(tmp_path, version="25.2.7")
    assert cli("clean", out, "--rules", "regenerable", "--mode", "delete", "--yes", "-q").exit_code == 0
    gone = sorted(path for path in files if is_transform_output(path))
    assert gone and not any((out / path).exists() for path in gone)
    script = out / "code" / "regenerate-sub-01.sh"
    assert (out / "code" / "regenerate-sub-01.reclaimed.txt").read_text().split() == gone
    confounds = out / "sub-01/func/sub-01_task-mixedgamblestask_run-01_desc-confounds_timeseries.tsv"
    kept = confounds.read_bytes()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fmriprep").write_text(FAKE_FMRIPREP)
    (bin_dir / "fmriprep").chmod(0o755)
    makes = tmp_path / "makes.txt"
    makes.write_text("".join(f"{path}\n" for path in gone[1:]))  # the rebuild fails to make one
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "WORK": str(tmp_path / "work"),
           "FS_LICENSE": str(tmp_path / "license.txt"), "MAKES": str(makes)}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"not made by the rebuild: {gone[0]}" in done.stderr
    assert all((out / path).read_text() == "rebuilt\n" for path in gone[1:])
    assert confounds.read_bytes() == kept  # what was kept is never overwritten by the rebuild's own copy
    again = subprocess.run(["bash", str(script)], env={**env, "WORK": str(tmp_path / "work2")}, capture_output=True,
                           text=True, timeout=60)
    assert "kept, not overwritten" in again.stderr  # a name that is back is not replaced


# --- 7. nothing recorded becomes code -------------------------------------------------------------------------

def test_43_7_a_version_that_is_not_a_release_number_keeps_everything_and_writes_no_script(tmp_path):
    out, files = build(tmp_path, version="25.2.7")
    config = config_of(out)
    config.write_text(config.read_text().replace('version = "25.2.7"', 'version = "25.2.7\\ntouch PWNED #"'))
    age_run(out)
    assert reclaimed(out) == set()
    refused = cli("regenerate", out)
    assert refused.exit_code == 2 and "not a release number" in refused.output and refused.output.count("\n") == 1
    assert not list(tmp_path.rglob("PWNED"))


def test_43_7_hostile_paths_in_the_config_stay_data_in_the_script(tmp_path):
    raw = tmp_path / "raw $(touch PWNED) `touch PWNED2` it's"
    out, files = build(tmp_path, version="25.2.7", bids_dir=str(raw))
    os.rename(tmp_path / "raw", raw)
    age_run(out)
    result = cli("regenerate", out)
    assert result.exit_code == 0, result.output
    script = tmp_path / "regenerate.sh"
    script.write_text(result.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fmriprep").write_text(f"#!/bin/bash\nprintf '%s\\n' \"$1\" > {tmp_path / 'argv'}\n")
    (bin_dir / "fmriprep").chmod(0o755)
    subprocess.run(["bash", str(script)], env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path),
                                               "WORK": str(tmp_path / "w"), "FS_LICENSE": "x"},
                   capture_output=True, timeout=60)
    assert (tmp_path / "argv").read_text() == f"{raw}\n" and not list(tmp_path.rglob("PWNED*"))


# --- 8. running it ---------------------------------------------------------------------------------------------

def test_43_8_templateflow_is_bound_and_slurm_time_follows_the_recorded_run(tmp_path):
    out, _ = build(tmp_path, version="25.2.7")
    script = cli("regenerate", out).stdout
    assert '-B "$TEMPLATEFLOW_HOME" --env TEMPLATEFLOW_HOME="$TEMPLATEFLOW_HOME"' in script
    assert "#SBATCH --time=24:00:00" in cli("regenerate", out, "--sbatch").stdout  # no duration recorded
    log = config_of(out).parent
    started = time.mktime(time.strptime(FINISHED_RUN[:15], "%Y%m%d-%H%M%S"))
    for path in (log / "fmriprep.toml", out / "sub-01.html"):
        os.utime(path, (started + 10 * 3600, started + 10 * 3600))  # a ten-hour run
    assert "#SBATCH --time=15:00:00" in cli("regenerate", out, "--sbatch").stdout


def test_43_8_runs_kept_for_one_reason_are_one_line(tmp_path):
    out, files = build(tmp_path, "ds054_outputs.txt", version="25.0.0", spaces=DS054_SPACES)
    text = cli("report", out, "--rules", "regenerable", "-q").stdout
    lines = [line for line in text.splitlines() if line.startswith("Kept, ")]
    assert lines and all(len(line) <= 100 for line in lines), text
    data = json.loads(cli("report", out, "--rules", "regenerable", "--format", "json", "-q").stdout)["regeneration"]
    assert sum(group["count"] for group in data["kept_by_reason"]) == sum(not run["regenerable"] for run in data["runs"])
    assert re.match(r"Kept, \d+ runs?: ", lines[0])
