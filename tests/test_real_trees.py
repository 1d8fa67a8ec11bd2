"""Real fMRIPrep trees (from tests/data) rebuilt as sparse files in temporary folders."""

import hashlib
import os
import time

import pytest
from conftest import CI_LISTS, age_run, ci_listing, make_files, write_description

from fmriprep_cleanup import build_plan, load_rulesets
from fmriprep_cleanup.fmriprep.discovery import discover
from fmriprep_cleanup.plan.selection import Selection

SURFACE_EXTENSIONS = (".surf.gii", ".func.gii", ".shape.gii", ".label.gii", ".dtseries.nii")


def plan_rows(output, rules=("default",), work_dir=None, labels=None):
    dataset = discover(str(output), work_dir=str(work_dir) if work_dir else None)
    return list(build_plan(dataset, load_rulesets(list(rules)), Selection.from_labels(labels)))


def needed_by_an_analysis(relpath):
    name = os.path.basename(relpath)
    return (
        ("desc-preproc_" in name and ("_bold." in name or "_T1w." in name))
        or "desc-brain_mask" in name
        or "desc-confounds_" in name
        or (name.startswith("sub-") and name.endswith(".html") and "/" not in relpath)
    )


def test_ds003752_totals_exact_to_the_byte_and_each_file_once(ds003752_read_only, ds003752_listing):
    output, _ = ds003752_read_only
    rows = plan_rows(output)
    assert sorted(os.path.relpath(row.path, output) for row in rows) == sorted(p for p, _ in ds003752_listing)
    assert sum(row.size for row in rows) == sum(size for _, size in ds003752_listing)


def test_ds003752_default_junks_only_workdir_and_templates(ds003752_read_only, ds003752_listing):
    output, workdir = ds003752_read_only
    rows = plan_rows(output, work_dir=workdir)
    junk = {row.path for row in rows if row.action == "junk"}
    expected = {os.path.join(output, p) for p, _ in ds003752_listing if p.startswith("sourcedata/freesurfer/fsaverage")}
    expected |= {os.path.join(dirpath, f) for dirpath, _, files in os.walk(workdir) for f in files}
    assert junk == expected
    assert not any(needed_by_an_analysis(os.path.relpath(row.path, output)) for row in rows if row.action == "junk")
    subjects = {row.subject for row in rows if row.scope == "workdir" and "sub_" in row.path}
    assert subjects == {"01", "02", "03"}


def test_participant_label_selects_one_subject_everywhere(ds003752_read_only):
    output, workdir = ds003752_read_only
    rows = plan_rows(output, work_dir=workdir, labels=["sub-02"])
    assert rows and {row.subject for row in rows} == {"02"}
    scopes = {row.scope for row in rows}
    assert scopes == {"derivatives", "freesurfer", "workdir"}


def _build_ci_tree(root, listing_file):
    files = ci_listing(listing_file)
    sizes = {path: int(hashlib.sha256(path.encode()).hexdigest()[:6], 16) for path in files if path != "dataset_description.json"}
    make_files(root, sizes)
    write_description(root, "25.0.0")
    age_run(root)  # a run that ended long ago: nothing is held back as recent or running
    return files


@pytest.mark.parametrize("listing_file", CI_LISTS, ids=lambda p: p.stem)
def test_fmriprep_ci_trees(tmp_path, listing_file):
    files = _build_ci_tree(tmp_path / "out", listing_file)
    rows = plan_rows(tmp_path / "out")
    relpaths = [os.path.relpath(row.path, tmp_path / "out") for row in rows]
    assert sorted(relpaths) == sorted(files)  # every file classified exactly once
    by_path = dict(zip(relpaths, rows, strict=True))
    # default: nothing fMRIPrep wrote as a derivative is junk
    assert [p for p, row in by_path.items() if row.action == "junk"] == []
    assert any(needed_by_an_analysis(p) for p in relpaths)
    # volume-only: exactly the surface and CIFTI files become junk
    volume = {os.path.relpath(r.path, tmp_path / "out"): r.action for r in plan_rows(tmp_path / "out", ["volume-only"])}
    assert {p for p, action in volume.items() if action == "junk"} == {p for p in files if p.endswith(SURFACE_EXTENSIONS)}


def fmriprepcleanup_keeps(relpath, keep=("preproc", "brain_mask", "confounds", "html", "svg", "emissions"), delete=("index",)):
    """fMRIPrepCleanup's own decision, from shared/reference/fmriprepcleanup.md."""
    name = os.path.basename(relpath)
    if "single_subject" in relpath or "fsaverage" in relpath:
        return False
    return any(k in name for k in keep) and not any(d in name for d in delete)


@pytest.mark.parametrize("listing_file", CI_LISTS, ids=lambda p: p.stem)
def test_fmriprepcleanup_set_agrees_with_the_script_on_derivatives(tmp_path, listing_file):
    _build_ci_tree(tmp_path / "out", listing_file)
    for row in plan_rows(tmp_path / "out", ["fmriprepcleanup"]):
        relpath = os.path.relpath(row.path, tmp_path / "out")
        if relpath == "dataset_description.json":  # the script deletes it; no rule set may (it names the dataset)
            assert row.action == "keep" and row.rule_id == "dataset-description"
            continue
        assert (row.action == "keep") == fmriprepcleanup_keeps(relpath), relpath


RETAINED = """\
sub-001.html
logs/CITATION.html
logs/emissions.csv
sub-001/anat/sub-001_desc-brain_mask.json
sub-001/anat/sub-001_desc-brain_mask.nii.gz
sub-001/anat/sub-001_desc-preproc_T1w.json
sub-001/anat/sub-001_desc-preproc_T1w.nii.gz
sub-001/anat/sub-001_space-MNI152NLin6Asym_res-2_desc-brain_mask.json
sub-001/anat/sub-001_space-MNI152NLin6Asym_res-2_desc-brain_mask.nii.gz
sub-001/anat/sub-001_space-MNI152NLin6Asym_res-2_desc-preproc_T1w.json
sub-001/anat/sub-001_space-MNI152NLin6Asym_res-2_desc-preproc_T1w.nii.gz
sub-001/figures/sub-001_desc-about_T1w.html
sub-001/figures/sub-001_desc-conform_T1w.html
sub-001/figures/sub-001_desc-reconall_T1w.svg
sub-001/figures/sub-001_desc-summary_T1w.html
sub-001/figures/sub-001_dseg.svg
sub-001/figures/sub-001_space-MNI152NLin2009cAsym_T1w.svg
sub-001/figures/sub-001_space-MNI152NLin6Asym_T1w.svg
sub-001/figures/sub-001_task-stopsignal_desc-bbregister_bold.svg
sub-001/figures/sub-001_task-stopsignal_desc-carpetplot_bold.svg
sub-001/figures/sub-001_task-stopsignal_desc-compcorvar_bold.svg
sub-001/figures/sub-001_task-stopsignal_desc-confoundcorr_bold.svg
sub-001/figures/sub-001_task-stopsignal_desc-rois_bold.svg
sub-001/figures/sub-001_task-stopsignal_desc-summary_bold.html
sub-001/figures/sub-001_task-stopsignal_desc-validation_bold.html
sub-001/func/sub-001_task-stopsignal_desc-confounds_timeseries.json
sub-001/func/sub-001_task-stopsignal_desc-confounds_timeseries.tsv
sub-001/func/sub-001_task-stopsignal_space-MNI152NLin6Asym_res-2_desc-brain_mask.json
sub-001/func/sub-001_task-stopsignal_space-MNI152NLin6Asym_res-2_desc-brain_mask.nii.gz
sub-001/func/sub-001_task-stopsignal_space-MNI152NLin6Asym_res-2_desc-preproc_bold.json
sub-001/func/sub-001_task-stopsignal_space-MNI152NLin6Asym_res-2_desc-preproc_bold.nii.gz
""".split()

DELETED = """\
dataset_description.json
.bidsignore
desc-aseg_dseg.tsv
logs/CITATION.md
logs/CITATION.bib
sub-001/log/20240101-120000_abc/fmriprep.toml
sub-001/anat/sub-001_dseg.nii.gz
sub-001/anat/sub-001_label-GM_probseg.nii.gz
sub-001/anat/sub-001_from-T1w_to-MNI152NLin6Asym_mode-image_xfm.h5
sub-001/anat/sub-001_hemi-L_pial.surf.gii
sub-001/func/sub-001_task-stopsignal_desc-coreg_boldref.nii.gz
sub-001/func/sub-001_task-stopsignal_from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt
sourcedata/freesurfer/fsaverage/surf/lh.white
sourcedata/freesurfer/sub-001/mri/brainmask.mgz
sourcedata/freesurfer/sub-001/scripts/recon-all.log
work/fmriprep_23_2_wf/sub_001_wf/anat_fit_wf/anat_validate/sub-001_desc-preproc_T1w.nii.gz
work/fmriprep_23_2_wf/sub_001_wf/bold_task_stopsignal_wf/report.html
work/fmriprep_23_2_wf/index.html
""".split()


# What fmriprep-cleanup keeps beyond the script, whatever the rules: the dataset's description, and while the
# subject's working directory exists, the evidence of its run status (here the newest run's fmriprep.toml).
PROTECTED = ["dataset_description.json", "sub-001/log/20240101-120000_abc/fmriprep.toml"]


def test_fmriprepcleanup_example_subject_retains_exactly_the_documented_files(tmp_path):
    out = tmp_path / "target"
    make_files(out, [p for p in RETAINED + DELETED if p != "dataset_description.json"])
    write_description(out, "23.2.0")
    age_run(out)
    rows = plan_rows(out, ["fmriprepcleanup"])
    kept = sorted(os.path.relpath(row.path, out) for row in rows if row.action == "keep")
    assert kept == sorted(RETAINED + PROTECTED)
    assert len(rows) == len(RETAINED) + len(DELETED)


LEGACY_1X = {
    "fmriprep/sub-01.html": 100_000,
    "fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 9_000_000,
    "fmriprep/sub-01/anat/sub-01_desc-brain_mask.nii.gz": 90_000,
    "fmriprep/sub-01/anat/sub-01_from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5": 60_000_000,
    "fmriprep/sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz": 300_000_000,
    "fmriprep/sub-01/func/sub-01_task-rest_desc-confounds_regressors.tsv": 400_000,
    "fmriprep/sub-01/func/sub-01_task-rest_space-fsaverage5_hemi-L.func.gii": 2_000_000,
    "fmriprep/sub-01/figures/sub-01_task-rest_bbregister.svg": 1_000_000,
    "freesurfer/fsaverage5/surf/lh.white": 400_000,
    "freesurfer/sub-01/surf/lh.white": 12_000_000,
    "work/fmriprep_wf/single_subject_01_wf/func_preproc_task_rest_wf/bold_hmc_wf/mcflirt/vol_mcf.nii.gz": 500_000_000,
    "work/fmriprep_wf/single_subject_01_wf/func_preproc_task_rest_wf/bold_hmc_wf/mcflirt/_node.pklz": 4_000,
}


def test_legacy_fmriprep_1x_tree_works_like_the_bids_layout(tmp_path):
    make_files(tmp_path / "OUT", LEGACY_1X)
    write_description(tmp_path / "OUT" / "fmriprep", "1.5.8", legacy=True)
    age_run(tmp_path / "OUT", time.time() - 2 * 86400)  # a run that ended two days ago: not in progress, not stale
    rows = {os.path.relpath(r.path, tmp_path / "OUT"): r for r in plan_rows(tmp_path / "OUT")}
    assert set(rows) == set(LEGACY_1X) | {"fmriprep/dataset_description.json"}
    junk = {path for path, row in rows.items() if row.action == "junk"}
    assert junk == {p for p in LEGACY_1X if p.startswith("freesurfer/fsaverage5")}
    # no run folders and a report without an errors section: the run status is unknown, so its cache is kept
    assert {rows[p].category for p in LEGACY_1X if p.startswith("work/")} == {"working directory (kept: status unknown)"}
    assert rows["fmriprep/sub-01/func/sub-01_task-rest_desc-confounds_regressors.tsv"].category == "confounds"
    assert rows["fmriprep/sub-01/func/sub-01_task-rest_space-fsaverage5_hemi-L.func.gii"].category == "surfaces and CIFTI"
    assert rows["work/fmriprep_wf/single_subject_01_wf/func_preproc_task_rest_wf/bold_hmc_wf/mcflirt/_node.pklz"].subject == "01"
    assert rows["freesurfer/sub-01/surf/lh.white"].subject == "01"
    volume = {os.path.relpath(r.path, tmp_path / "OUT"): r.action for r in plan_rows(tmp_path / "OUT" / "fmriprep", ["volume-only"])}
    assert volume["fmriprep/sub-01/func/sub-01_task-rest_space-fsaverage5_hemi-L.func.gii"] == "junk"
    assert volume["freesurfer/sub-01/surf/lh.white"] == "junk"
    assert volume["fmriprep/sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"] == "keep"


@pytest.mark.parametrize("condition", ["subject: '02'", "path: 'sub-02/**'", "session: ResearchAguirre1"])
def test_rules_that_name_a_label_are_judged_file_by_file(ds003752_read_only, tmp_path, condition):
    """Decisions are reused across subjects only when no rule can tell labels apart; these rules can."""
    output, _ = ds003752_read_only
    rules = tmp_path / "one.yaml"
    rules.write_text(f"version: 1\nname: one\ndefault: keep\nrules:\n"
                     f"  - {{id: one, action: junk, category: c, why: w, match: {{scope: derivatives, {condition}}}}}\n")
    rows = plan_rows(output, [str(rules)])
    junk = [row for row in rows if row.action == "junk"]
    assert junk
    if "session" in condition:
        assert all("ses-ResearchAguirre1" in row.path for row in junk)
        assert {row.subject for row in junk} == {"01", "02", "03"}
    elif "subject" in condition:
        assert {row.subject for row in junk} == {"02"}
        assert len(junk) == sum(1 for row in rows if row.subject == "02" and row.scope == "derivatives")
    else:  # the folder sub-02/, not the report sub-02.html beside it
        assert {row.path for row in junk} == {row.path for row in rows if row.path.startswith(str(output / "sub-02") + "/")}


@pytest.mark.parametrize("rules", ["default", "volume-only", "fmriprepcleanup"])
def test_decisions_reused_across_subjects_equal_decisions_made_file_by_file(ds003752_read_only, tmp_path, monkeypatch,
                                                                          rules):
    """The memo of decisions by path shape (labels blanked) changes nothing, on a real tree with sessions."""
    from fmriprep_cleanup.rules.classify import Classifier

    output, workdir = ds003752_read_only
    _build_ci_tree(tmp_path / "ci", CI_LISTS[0])
    for tree, work in ((output, workdir), (tmp_path / "ci", None)):
        reused = plan_rows(tree, [rules], work_dir=work)
        monkeypatch.setattr(Classifier, "decisions_repeat_across_labels", False)
        one_by_one = plan_rows(tree, [rules], work_dir=work)
        monkeypatch.undo()
        assert [(r.path, r.action, r.rule_id) for r in reused] == [(r.path, r.action, r.rule_id) for r in one_by_one]
        assert len({r.rule_id for r in reused}) > 1


@pytest.mark.parametrize("rules", ["default", "volume-only"])
def test_totals_added_by_reused_decision_equal_totals_added_file_by_file(tmp_path, monkeypatch, rules):
    """A report adds up a reused folder's files by decision, from the lstat results: the same totals, to the byte,
    as adding each planned file, a file hard-linked into two subjects' folders included."""
    from fmriprep_cleanup.plan.summary import Summary
    from fmriprep_cleanup.rules.classify import Classifier

    tree = tmp_path / "ci"
    _build_ci_tree(tree, CI_LISTS[0])
    for path in sorted(tree.rglob("*")):  # a second subject with the same files
        relpath = path.relative_to(tree).as_posix()
        if path.is_file() and relpath.startswith("sub-01"):
            twin = tree / relpath.replace("sub-01", "sub-02")
            twin.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, twin) if "/anat/" in relpath and relpath.endswith(".json") else twin.write_bytes(b"x" * 7)
    age_run(tree)
    added_by_decision = []
    add_files = Summary.add_files
    monkeypatch.setattr(Summary, "add_files", lambda self, *args: (added_by_decision.append(args), add_files(self, *args)))

    def totals():
        dataset = discover(str(tree))
        return build_plan(dataset, load_rulesets([rules]), Selection()).summarize().as_json()

    reused = totals()
    assert added_by_decision  # the reused folders really were added by decision
    monkeypatch.setattr(Classifier, "decisions_repeat_across_labels", False)
    assert reused == totals()
    assert reused["totals"]["files"] == sum(1 for path in tree.rglob("*") if path.is_file())
