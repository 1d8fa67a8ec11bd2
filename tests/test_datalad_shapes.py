"""The DataLad shapes the field ships whose dataset_description.json is annexed and not fetched (issue 46, items 1
and 2), built with the real datalad and git-annex: a legacy fMRIPrep 1.2 output in a YODA superdataset (fmriprep/
and freesurfer/ subdatasets) and a 21.0 output whose logs were not kept. Git holds their file names: the pipeline
is told from them, every command runs on that basis and says which evidence it used, audit lists each dataset,
and a clean changes nothing git tracks."""

import json

import pytest
from conftest import age_run, cli, write_description
from test_datalad import git, require_datalad, sh, status_porcelain

pytestmark = [pytest.mark.integration]

COMMANDS = (("report",), ("plan", "--action", "junk"), ("status",), ("clean",))


def contents(root, files, version=None):
    """Files with distinct contents (distinct annex keys) under ``root``; its dataset_description.json names
    fMRIPrep ``version`` as that version wrote it."""
    for number, (name, size) in enumerate(sorted(files.items())):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([number % 250 + 1]) * size)
    if version is not None:
        write_description(root, version, legacy=version.startswith("1."))


def legacy_files(subjects=("01", "02")):
    """What fMRIPrep 1.2.2 wrote in OUT/fmriprep/: BIDS-Derivatives RC names (desc-confounds_regressors), the
    report beside each subject, figures, the citation; no run configuration (1.x wrote none)."""
    files = {"dataset_description.json": 140, "logs/CITATION.md": 900}
    for label in subjects:
        files.update({
            f"sub-{label}.html": 30_000,
            f"sub-{label}/anat/sub-{label}_desc-preproc_T1w.nii.gz": 40_000,
            f"sub-{label}/anat/sub-{label}_space-MNI152NLin2009cAsym_desc-preproc_T1w.nii.gz": 50_000,
            f"sub-{label}/func/sub-{label}_task-rest_desc-confounds_regressors.tsv": 7_000,
            f"sub-{label}/func/sub-{label}_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz": 90_000,
            f"sub-{label}/func/sub-{label}_task-rest_space-T1w_desc-preproc_bold.nii.gz": 80_000,
            f"sub-{label}/figures/sub-{label}_task-rest_bbregister.svg": 3_000,
        })
    return files


def legacy_superdataset(tmp_path, with_freesurfer=True):
    """A YODA superdataset holding fmriprep/ (and freesurfer/) as subdatasets, everything annexed; its clone, with
    fmriprep/ installed and nothing fetched: what `datalad clone` + `datalad get -n fmriprep` gives."""
    require_datalad()
    study = tmp_path / "origin" / "study"
    sh("datalad", "create", study)
    sh("datalad", "create", "-d", study, study / "fmriprep")
    contents(study / "fmriprep", legacy_files(), "1.2.2")
    if with_freesurfer:
        sh("datalad", "create", "-d", study, study / "freesurfer")
        contents(study / "freesurfer", {"sub-01/mri/T1.mgz": 20_000, "fsaverage/surf/lh.white": 9_000})
    contents(study, {"code/run_fmriprep.sh": 200})
    age_run(study / "fmriprep")
    sh("datalad", "save", "-r", "-m", "fMRIPrep 1.2.2", cwd=study)
    clone = tmp_path / "site" / "clone"
    sh("datalad", "clone", study, clone)
    sh("datalad", "get", "-n", "fmriprep", cwd=clone)
    return clone


def bids_layout_21(tmp_path):
    """fMRIPrep 21.0 outputs (BIDS layout, FreeSurfer in sourcedata/) saved without their log folders, in a
    dataset whose name names no pipeline; its clone, nothing fetched."""
    require_datalad()
    ds = tmp_path / "origin" / "ds000117-derivatives"
    sh("datalad", "create", ds)
    files = {"dataset_description.json": 700, "logs/CITATION.md": 3_000, "desc-aseg_dseg.tsv": 1_500,
             "sourcedata/freesurfer/sub-01/mri/T1.mgz": 20_000,
             "sourcedata/freesurfer/fsaverage/surf/lh.white": 9_000}
    for label in ("01", "02"):
        files.update({
            f"sub-{label}.html": 30_000,
            f"sub-{label}/anat/sub-{label}_desc-preproc_T1w.nii.gz": 40_000,
            f"sub-{label}/func/sub-{label}_task-rest_desc-confounds_timeseries.tsv": 7_000,
            f"sub-{label}/func/sub-{label}_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz": 90_000,
            f"sub-{label}/func/sub-{label}_task-rest_space-T1w_desc-preproc_bold.nii.gz": 80_000,
            f"sub-{label}/figures/sub-{label}_task-rest_desc-carpetplot_bold.svg": 3_000,
        })
    contents(ds, files, "21.0.2")
    age_run(ds)
    sh("datalad", "save", "-m", "fMRIPrep 21.0.2", cwd=ds)
    clone = tmp_path / "site" / "clone"
    sh("datalad", "clone", ds, clone)
    return clone


def every_command_runs(target, evidence):
    """Each read-only command and a dry-run clean run, name fMRIPrep and the evidence, and say how to fetch
    the description; the JSON report's totals equal the plan's rows."""
    for command in COMMANDS:
        result = cli(*command, target)
        assert result.exit_code == 0, (command, result.output)
        assert "Traceback" not in result.output
    data = json.loads(cli("report", target, "--format", "json").stdout)
    assert data["dataset"]["pipeline"] == "fMRIPrep" and data["dataset"]["fmriprep_version"] is None
    notes = " ".join(data["dataset"]["notes"])
    assert all(part in notes for part in evidence), notes
    assert "datalad get dataset_description.json" in notes
    assert not [warning for warning in data["warnings"] if "git could not say" in warning], data["warnings"]
    explained = cli("explain", target, next(iter(target.glob("**/*_desc-preproc_bold.nii.gz"))))
    assert explained.exit_code == 0, explained.output
    return data


def test_a_legacy_output_in_a_yoda_superdataset_is_judged_from_the_names_git_holds(tmp_path):
    clone = legacy_superdataset(tmp_path)
    for target in (clone, clone / "fmriprep"):
        data = every_command_runs(target, ["the legacy layout", "desc-confounds_regressors", "1.x"])
        assert data["dataset"]["layout"] == "legacy"
    audited = cli("audit", clone.parent, "--format", "json")
    assert audited.exit_code == 0, audited.output
    assert [row["path"] for row in json.loads(audited.stdout)["datasets"]] == [str(clone)]
    before = status_porcelain(clone), status_porcelain(clone / "fmriprep")
    result = cli("clean", clone, "--mode", "delete", "--yes")
    assert result.exit_code == 0, result.output
    assert (status_porcelain(clone), status_porcelain(clone / "fmriprep")) == before


def test_a_legacy_output_without_freesurfer_beside_it_is_told_by_its_folder_and_file_names(tmp_path):
    """Before: "…is annexed and its content is not here, and nothing else here tells which pipeline wrote…",
    exit 2, and audit said "0 datasets" with the folder only in a warning."""
    clone = legacy_superdataset(tmp_path, with_freesurfer=False)
    every_command_runs(clone / "fmriprep", ["its folder's name (fmriprep)", "desc-confounds_regressors"])
    audited = cli("audit", clone, "--format", "json")
    assert audited.exit_code == 0, audited.output
    assert [row["path"] for row in json.loads(audited.stdout)["datasets"]] == [str(clone / "fmriprep")]
    before = status_porcelain(clone), status_porcelain(clone / "fmriprep")
    assert cli("clean", clone / "fmriprep", "--mode", "delete", "--yes").exit_code == 0
    assert (status_porcelain(clone), status_porcelain(clone / "fmriprep")) == before


def test_a_21_0_output_without_logs_is_told_by_its_file_names(tmp_path):
    clone = bids_layout_21(tmp_path)
    data = every_command_runs(clone, ["desc-confounds_timeseries", "20.x or later"])
    assert data["dataset"]["layout"] == "bids" and data["dataset"]["freesurfer"] == str(clone / "sourcedata/freesurfer")
    audited = cli("audit", clone.parent, "--format", "json")
    assert audited.exit_code == 0, audited.output
    assert [row["path"] for row in json.loads(audited.stdout)["datasets"]] == [str(clone)]
    before = status_porcelain(clone)
    assert cli("clean", clone, "--mode", "delete", "--yes").exit_code == 0
    assert status_porcelain(clone) == before and git(clone, "stash", "list") == ""


def test_a_folder_that_only_looks_like_an_output_is_listed_not_judged_and_audit_exits_3(tmp_path):
    """An output-shaped folder nothing identifies (an uninstalled subdataset named fmriprep/, a folder of
    subject reports whose description is not here and whose names tell no pipeline) is listed as found, not
    judged, with the reason, and the audit exits 3."""
    require_datalad()
    study = tmp_path / "origin" / "study"
    sh("datalad", "create", study)
    sh("datalad", "create", "-d", study, study / "fmriprep")
    contents(study / "fmriprep", legacy_files(("01",)), "1.2.2")
    sh("datalad", "save", "-r", "-m", "outputs", cwd=study)
    clone = tmp_path / "site" / "clone"
    sh("datalad", "clone", study, clone)  # fmriprep/ not installed: an empty folder
    mystery = tmp_path / "site" / "mystery"
    sh("datalad", "create", mystery)
    contents(mystery, {"dataset_description.json": 100, "sub-01.html": 1000, "sub-01/anat/sub-01_T1w.nii.gz": 5})
    sh("datalad", "save", "-m", "x", cwd=mystery)
    git(mystery, "annex", "drop", "--force", "dataset_description.json")
    result = cli("audit", tmp_path / "site", "--format", "json")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert sorted(data["failed"]) == [str(clone / "fmriprep"), str(mystery)]
    text = cli("audit", tmp_path / "site")
    assert text.exit_code == 3 and "Found, not judged (2; exit status 3):" in text.stdout
    assert f"  {clone / 'fmriprep'}: found, not judged: a subdataset that is not installed" in text.stdout
    assert "datalad get -n fmriprep" in text.stdout and f"  {mystery}: found, not judged: " in text.stdout
