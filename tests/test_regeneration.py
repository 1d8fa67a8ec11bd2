"""The regenerable rule set: it reclaims what fMRIPrep's transform stage rebuilds, only where the rebuild can
happen (guards per BOLD run and per subject), and prints the command that rebuilds it.

Trees are fMRIPrep's own CI output lists (tests/data/ds005_outputs.txt, ds054_outputs.txt: 25.x naming) with a
raw BIDS input beside them, realistic sizes and the fmriprep.toml a run records.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from conftest import FINISHED_RUN, age_run, ci_listing, cli, make_files, write_description

DATA = Path(__file__).parent / "data"
FMRIPREP_OPTIONS = set((DATA / "fmriprep-25.2-options.txt").read_text().split())


def size_of(relpath: str) -> int:
    """Realistic sizes: series are large, fit outputs small, template transforms in between."""
    name = relpath.rpartition("/")[2]
    if re.search(r"_bold\.(func\.gii|dtseries\.nii|nii\.gz)$", name):
        return 60_000_000
    if name.endswith(".h5"):
        return 150_000_000
    if name.endswith((".nii.gz", ".gii", ".nii")):
        return 4_000_000
    return 2_000


def run_config(version: str, bids_dir: str, spaces: str, fs: str, extra: str = "") -> str:
    return (f'[environment]\nversion = "{version}"\n\n[execution]\nbids_dir = "{bids_dir}"\noutput_dir = "/out"\n'
            f'participant_label = ["01"]\noutput_spaces = "{spaces}"\nfs_subjects_dir = "{fs}"\n{extra}\n'
            '[workflow]\nrun_reconall = true\n')


def build(root: Path, listing: str = "ds005_outputs.txt", version: str = "25.0.0", bids_dir: str | None = None,
          spaces: str = "fsaverage5 fsnative", extra: str = "") -> tuple[Path, list[str]]:
    """OUT (the CI tree), RAW (its BIDS input: a T1w and each run's BOLD) and FS (FreeSurfer's subjects)."""
    out, raw, fs = root / "out", root / "raw", root / "fs"
    files = [path for path in ci_listing(DATA / listing) if path != "dataset_description.json"]
    make_files(out, {path: size_of(path) for path in files})
    write_description(out, version)
    subjects = sorted({path.split("/")[0] for path in files if path.startswith("sub-") and "/" in path})
    for subject in subjects:
        log = out / subject / "log" / FINISHED_RUN
        log.mkdir(parents=True)
        (log / "fmriprep.toml").write_text(run_config(version, bids_dir or str(raw), spaces, str(fs), extra))
        runs = {re.sub(r"_(space|hemi|desc|from|to|mode|res|den|label)-[^_]+", "", path.rpartition("/")[2]).split("_bold")[0]
                .split("_boldref")[0].split("_xfm")[0].split("_mask")[0].split("_timeseries")[0]
                for path in files if path.startswith(f"{subject}/func/") and "_task-" in path}
        make_files(raw, {f"{subject}/anat/{subject}_T1w.nii.gz": 10_000_000,
                         **{f"{subject}/func/{run}_bold.nii.gz": 80_000_000 for run in runs}})
        make_files(fs, {f"{subject}/surf/lh.white": 5_000_000})
    age_run(out)
    return out, files


def plan_of(out: Path, *args: str) -> dict[str, tuple[str, str, str]]:
    """relpath -> (action, category, rule id) for every file under the rule set (TSV of `plan`)."""
    result = cli("plan", out, "-q", *args)
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        action, category, rule, _size, path = line.split("\t")
        rows[os.path.relpath(path, out)] = (action, category, rule)
    return rows


def junk(rows: dict[str, tuple[str, str, str]]) -> set[str]:
    return {path for path, row in rows.items() if row[0] == "junk"}


def is_transform_output(relpath: str) -> bool:
    """What the transform stage writes (fMRIPrep's fit outputs carry no space; series are never fit outputs)."""
    name = relpath.rpartition("/")[2]
    if "/func/" in relpath and re.search(r"_bold\.", name):
        return True
    spaced = "_space-" in name
    if "/func/" in relpath and spaced and re.search(r"_(boldref|T2starmap|dseg)\.", name):
        return True
    return "/anat/" in relpath and spaced and bool(re.search(r"_(T1w|T2w|dseg|probseg)\.", name))


@pytest.fixture
def ds005(tmp_path):
    return build(tmp_path)


def test_ds005_reclaims_the_resampled_series_and_keeps_every_fit_output(ds005):
    out, files = ds005
    default, regenerable = plan_of(out), plan_of(out, "--rules", "regenerable")
    reclaimed = junk(regenerable) - junk(default)
    assert reclaimed == {path for path in files if is_transform_output(path)}
    assert reclaimed and all("_bold." in path for path in reclaimed)  # ds005: the GIFTI series and sidecars
    assert all(regenerable[path][1] == "regenerable" for path in reclaimed)
    fit = [path for path in files if re.search(r"desc-(hmc|coreg)_(boldref|xfm)|_xfm\.|desc-preproc_T1w|probseg|"
                                               r"_dseg|confounds|_mask\.", path)]
    assert fit and all(regenerable[path][0] == "keep" for path in fit)
    assert regenerable["dataset_description.json"][0] == "keep"
    assert regenerable["sub-01.html"][0] == "keep"


def test_ds054_with_fieldmaps_and_standard_spaces(tmp_path):
    out, files = build(tmp_path, "ds054_outputs.txt", version="25.2.7", spaces="MNI152NLin2009cAsym:res-2 anat func")
    rows = plan_of(out, "--rules", "regenerable")
    reclaimed = junk(rows) - junk(plan_of(out))
    assert reclaimed == {path for path in files if is_transform_output(path)}
    assert any("space-MNI152NLin2009cAsym_res-2_desc-preproc_bold" in path for path in reclaimed)
    assert not any("fieldmap" in path or "desc-brain_mask" in path for path in reclaimed)
    # the fieldmap a run was corrected with is part of its fit: without its coefficients the run stays
    coeff = next(path for path in files if "desc-coeff_fieldmap" in path)
    os.truncate(out / coeff, 0)
    age_run(out)
    rows = plan_of(out, "--rules", "regenerable")
    series = {path for path in reclaimed if "/func/" in path}
    assert junk(rows) - junk(plan_of(out)) == reclaimed - series  # the anatomy needs no fieldmap
    assert {rows[path][1] for path in series} == {"kept: cannot be regenerated"}
    explained = cli("explain", out, out / sorted(series)[0], "--rules", "regenerable")
    assert "its fieldmap auto00000's fieldmap coefficients is missing or empty" in explained.output


def test_a_run_without_its_raw_bold_or_its_coreg_transform_is_kept(ds005, tmp_path):
    out, files = ds005
    run1 = {path for path in files if is_transform_output(path) and "run-01" in path}
    run2 = {path for path in files if is_transform_output(path) and "run-02" in path}
    (tmp_path / "raw/sub-01/func/sub-01_task-mixedgamblestask_run-01_bold.nii.gz").unlink()
    rows = plan_of(out, "--rules", "regenerable")
    assert junk(rows) - junk(plan_of(out)) == run2
    assert {rows[path][1] for path in run1} == {"kept: cannot be regenerated"}
    explained = cli("explain", out, out / sorted(run1)[0], "--rules", "regenerable")
    assert "raw BOLD (sub-01_task-mixedgamblestask_run-01_bold.nii[.gz]) is not in" in explained.output

    make_files(tmp_path / "raw", {"sub-01/func/sub-01_task-mixedgamblestask_run-01_bold.nii.gz": 80_000_000})
    coreg = "sub-01/func/sub-01_task-mixedgamblestask_run-02_from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt"
    (out / coreg).unlink()
    rows = plan_of(out, "--rules", "regenerable")
    assert junk(rows) - junk(plan_of(out)) == run1
    explained = cli("explain", out, out / sorted(run2)[0], "--rules", "regenerable", "--format", "json")
    why = json.loads(explained.stdout)[0]["why"]
    assert "coregistration transform (from-boldref_to-T1w) is missing" in why


def test_an_empty_fit_output_or_a_dangling_raw_link_keeps_the_run(ds005, tmp_path):
    out, files = ds005
    hmc = "sub-01/func/sub-01_task-mixedgamblestask_run-01_desc-hmc_boldref.nii.gz"
    os.truncate(out / hmc, 0)
    age_run(out)
    raw2 = tmp_path / "raw/sub-01/func/sub-01_task-mixedgamblestask_run-02_bold.nii.gz"
    raw2.unlink()
    raw2.symlink_to(".git/annex/objects/XX/YY/SHA256E-s80000000--abc.nii.gz")  # content not here
    rows = plan_of(out, "--rules", "regenerable")
    assert junk(rows) == junk(plan_of(out))
    explained = cli("explain", out, *[out / path for path in files if is_transform_output(path)][:1], "--rules",
                    "regenerable")
    assert "hmc boldref is empty" in explained.output


def test_a_version_before_reuse_reclaims_nothing(tmp_path):
    for version in ("23.1.4", "23.2.3", "24.1.0", "24.1.1"):
        out, _ = build(tmp_path / version, version=version)
        rows = plan_of(out, "--rules", "regenerable")
        assert junk(rows) == junk(plan_of(out)), version
    explained = cli("explain", out, next(out.glob("sub-01/func/*_bold.func.gii")), "--rules", "regenerable")
    assert "fMRIPrep 24.1.1 reuses the BOLD fit correctly only from 25.0.0" in explained.output


@pytest.mark.parametrize(("damage", "reason"), [
    ("no-config", "has no fmriprep.toml to say where its inputs were"),
    ("broken-config", "its run config cannot be read"),
    ("no-bids-dir", "records no execution.bids_dir"),
    ("missing-bids-dir", "its recorded input execution.bids_dir"),
    ("no-version", "version is not known"),
])
def test_bad_inputs_keep_the_run_with_one_line(ds005, tmp_path, damage, reason):
    out, files = ds005
    config = out / "sub-01" / "log" / FINISHED_RUN / "fmriprep.toml"
    if damage == "no-config":
        config.unlink()
    elif damage == "broken-config":
        config.write_text("[environment\nversion = ")
    elif damage == "no-bids-dir":
        config.write_text(config.read_text().replace('bids_dir = ', 'other = '))
    elif damage == "missing-bids-dir":
        config.write_text(config.read_text().replace(str(tmp_path / "raw"), str(tmp_path / "gone")))
    else:
        config.write_text(config.read_text().replace('version = "25.0.0"\n', ""))
        description = json.loads((out / "dataset_description.json").read_text())
        description["GeneratedBy"][0].pop("Version")
        (out / "dataset_description.json").write_text(json.dumps(description))
    age_run(out)
    rows = plan_of(out, "--rules", "regenerable")
    assert junk(rows) == junk(plan_of(out))
    series = [out / path for path in files if is_transform_output(path)]
    explained = cli("explain", out, series[0], "--rules", "regenerable")
    assert explained.exit_code == 0 and reason in explained.output
    report = cli("report", out, "--rules", "regenerable", "--format", "json", "-q")
    data = json.loads(report.stdout)
    runs = data["regeneration"]["runs"]
    assert runs and all(not run["regenerable"] and reason in run["why_not"] for run in runs)


def test_a_container_path_needs_path_map(tmp_path):
    out, files = build(tmp_path, bids_dir="/data")
    rows = plan_of(out, "--rules", "regenerable")
    assert junk(rows) == junk(plan_of(out))
    explained = cli("explain", out, next(out.glob("sub-01/func/*_bold.func.gii")), "--rules", "regenerable")
    assert "map it with --path-map /data=HOST" in explained.output
    mapped = plan_of(out, "--rules", "regenerable", "--path-map", f"/data={tmp_path / 'raw'}")
    assert junk(mapped) - junk(plan_of(out)) == {path for path in files if is_transform_output(path)}


def test_surface_series_need_the_subjects_freesurfer_folder(ds005, tmp_path):
    out, files = ds005
    config = out / "sub-01" / "log" / FINISHED_RUN / "fmriprep.toml"
    config.write_text(config.read_text().replace(f'fs_subjects_dir = "{tmp_path / "fs"}"', f'fs_subjects_dir = "{tmp_path / "nofs"}"'))
    age_run(out)
    assert junk(plan_of(out, "--rules", "regenerable")) == junk(plan_of(out))
    config.write_text(config.read_text().replace(str(tmp_path / "nofs"), str(tmp_path / "fs")))
    age_run(out)
    assert junk(plan_of(out, "--rules", "regenerable")) - junk(plan_of(out))


def test_the_recipe_names_derivatives_the_participant_and_real_fmriprep_options(ds005, tmp_path):
    out, _ = ds005
    config = out / "sub-01" / "log" / FINISHED_RUN / "fmriprep.toml"
    config.write_text(config.read_text().replace(
        "[workflow]\n", '[workflow]\ncifti_output = "91k"\nproject_goodvoxels = true\nignore = ["slicetiming"]\n')
        .replace("[execution]\n", '[execution]\necho_idx = 1\nbids_filters = {bold = {acquisition = "mb"}}\n'))
    age_run(out)
    result = cli("regenerate", out, "--participant-label", "01")
    assert result.exit_code == 0, result.output
    command = next(line for line in result.output.splitlines() if line.startswith('"${CONTAINER[@]}" fmriprep '))
    command = command.removeprefix('"${CONTAINER[@]}" ')
    words = shlex.split(command.replace("\\", ""))
    start = words.index("fmriprep")
    assert words[start + 1:start + 4] == [str(tmp_path / "raw"), "$WORK/rebuild", "participant"]  # a fresh folder
    assert f"OUT={out}" in result.output  # only the reclaimed names are moved back into it
    assert words[words.index("--participant-label") + 1] == "01"
    assert words[words.index("--derivatives") + 1] == f"fmriprep={out}"
    assert words[words.index("--output-spaces") + 1:words.index("--output-spaces") + 3] == ["fsaverage5", "fsnative"]
    for option in ("--cifti-output", "--project-goodvoxels", "--ignore", "--echo-idx", "--bids-filter-file"):
        assert option in words
    options = [word for word in words if word.startswith("--")]
    assert set(options) <= FMRIPREP_OPTIONS, set(options) - FMRIPREP_OPTIONS
    assert "docker://nipreps/fmriprep:25.0.0" in result.output
    assert '"acquisition": "mb"' in result.output  # the filter file the command reads, written by the script
    assert '--bids-filter-file "$WORK/bids_filters.json"' in result.output
    sbatch = cli("regenerate", out, "--sbatch")
    assert sbatch.exit_code == 0 and "#SBATCH --array=0-0" in sbatch.output and "LABELS=(01)" in sbatch.output
    script = tmp_path / "regenerate.sbatch"
    assert cli("regenerate", out, "--sbatch", "-o", script).stdout == "" and script.read_text() == sbatch.stdout


def test_regenerate_refuses_what_cannot_be_rebuilt(tmp_path):
    out, _ = build(tmp_path, version="23.1.4")
    result = cli("regenerate", out)
    assert result.exit_code == 2
    assert "no subject's outputs can be rebuilt" in result.output and "23.1.4" in result.output


def test_report_shows_runs_recipes_and_the_break_even(ds005):
    out, files = ds005
    data = json.loads(cli("report", out, "--rules", "regenerable", "--format", "json", "-q").stdout)
    regeneration = data["regeneration"]
    assert [(run["run"], run["regenerable"]) for run in regeneration["runs"]] == [  # no anatomy in a template here
        ("sub-01_task-mixedgamblestask_run-01", True), ("sub-01_task-mixedgamblestask_run-02", True)]
    reclaimed = sum(size_of(path) for path in files if is_transform_output(path))
    assert regeneration["regenerable_bytes"] == reclaimed
    assert regeneration["compute_source"] == "an estimate from fMRIPrep's published benchmarks"
    assert regeneration["regenerate_kgco2e"] > 0 and regeneration["storage_kgco2e_per_year"] > 0
    assert regeneration["break_even_years"] == pytest.approx(
        regeneration["regenerate_kgco2e"] / regeneration["storage_kgco2e_per_year"])
    text = cli("report", out, "--rules", "regenerable", "-q").output
    assert "Regenerable" in text and "break-even" in text
    html = cli("report", out, "--rules", "regenerable", "--format", "html", "-q").output
    assert "Regenerable" in html and "break-even" in html


def test_clean_writes_the_recipe_beside_the_outputs_and_in_the_journal(ds005, tmp_path):
    out, files = ds005
    result = cli("clean", out, "--rules", "regenerable", "--mode", "delete", "--yes", "-q")
    assert result.exit_code == 0, result.output
    reclaimed = [path for path in files if is_transform_output(path)]
    assert not any((out / path).exists() for path in reclaimed)
    assert all((out / path).exists() for path in files if path not in reclaimed and "/func/" in path)
    script = (out / "code" / "regenerate-sub-01.sh").read_text()
    assert "--derivatives" in script and "--participant-label 01" in script
    journal = "".join(path.read_text() for path in (out / ".fmriprep-cleanup").rglob("*.jsonl"))
    assert "--derivatives" in journal and '"event": "regeneration"' in journal


def test_processes_give_the_same_plan(tmp_path):
    out, _ = build(tmp_path)
    one = cli("plan", out, "-q", "--rules", "regenerable", "--jobs", "1").output
    two = cli("plan", out, "-q", "--rules", "regenerable", "--jobs", "2").output
    assert one == two and "regenerable" in one


def test_other_nipreps_minimal_sets_are_guarded(tmp_path):
    out = tmp_path / "qsiprep"
    make_files(out, {"sub-01/dwi/sub-01_space-ACPC_desc-preproc_dwi.nii.gz": 90_000_000,
                     "sub-01/dwi/sub-01_space-ACPC_desc-brain_mask.nii.gz": 100_000, "sub-01.html": 1000})
    write_description(out, "1.0.0", name="qsiprep")
    log = out / "sub-01" / "log" / FINISHED_RUN
    log.mkdir(parents=True)
    (log / "qsiprep.toml").write_text(f'[environment]\nversion = "1.0.0"\n[execution]\nbids_dir = "{tmp_path / "raw"}"\n')
    age_run(out)
    series = "sub-01/dwi/sub-01_space-ACPC_desc-preproc_dwi.nii.gz"
    rows = plan_of(out, "--rules", "qsiprep-minimal")
    assert rows[series][0] == "keep" and rows[series][1] == "kept: cannot be regenerated"
    (tmp_path / "raw" / "sub-01").mkdir(parents=True)
    rows = plan_of(out, "--rules", "qsiprep-minimal")
    assert rows[series][0] == "junk"
    recipe = cli("regenerate", out).output
    assert "qsiprep" in recipe and "--participant-label 01" in recipe and "--derivatives" not in recipe


def test_a_fast_track_run_finds_its_anatomy_where_it_took_it_from(tmp_path):
    """fMRIPrep's CI fast-track runs take the anatomy from sMRIPrep (--derivatives anat=...): its fit outputs
    are not in the output folder, and the rebuild must be given that folder again."""
    out, files = build(tmp_path, "ds005_fasttrack_outputs.txt",
                       extra='derivatives = {anat = "/tmp/ds005/smriprep"}')
    assert junk(plan_of(out, "--rules", "regenerable")) == junk(plan_of(out))  # the anatomy is not here
    smriprep = tmp_path / "smriprep"
    make_files(smriprep, {f"sub-01/anat/sub-01_{name}": 4_000_000 for name in (
        "desc-preproc_T1w.nii.gz", "desc-brain_mask.nii.gz", "dseg.nii.gz", "label-GM_probseg.nii.gz",
        "label-WM_probseg.nii.gz", "label-CSF_probseg.nii.gz", "from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5",
        "from-MNI152NLin2009cAsym_to-T1w_mode-image_xfm.h5")})
    mapped = ("--path-map", f"/tmp/ds005/smriprep={smriprep}")
    reclaimed = junk(plan_of(out, "--rules", "regenerable", *mapped)) - junk(plan_of(out))
    assert reclaimed == {path for path in files if is_transform_output(path)} and reclaimed
    recipe = cli("regenerate", out, *mapped).stdout
    assert f"--derivatives anat={smriprep} fmriprep={out}" in recipe


def test_a_rule_file_names_only_known_guards_on_junk_rules(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nname: mine\nrules:\n"
                     "  - {id: a, action: junk, category: c, why: w, guard: regenration, match: {suffix: bold}}\n"
                     "  - {id: b, action: keep, category: c, why: w, guard: regeneration, match: {suffix: bold}}\n")
    result = cli("rules", "validate", rules)
    assert result.exit_code == 2
    assert "rules.yaml:4: rule 'a': guard 'regenration': unknown guard (did you mean 'regeneration'?)" in result.output
    assert "rules.yaml:5: rule 'b': guard 'regeneration': only a junk rule can be guarded" in result.output
