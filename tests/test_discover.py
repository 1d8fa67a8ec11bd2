import os

import pytest
from conftest import make_files, write_description

from fmriprep_cleanup.basics.errors import CleanupError
from fmriprep_cleanup.fmriprep.discovery import discover

WORK = ["fmriprep_23_2_wf/sub_01_wf/anat_fit_wf/node/_node.pklz"]


def test_bids_layout_with_freesurfer_and_work_inside(fakefs):
    write_description("/out", "23.2.0")
    make_files("/out", ["sub-01.html", "sourcedata/freesurfer/sub-01/mri/T1.mgz"])
    make_files("/out/work", WORK)
    dataset = discover("/out")
    assert (dataset.layout, dataset.fmriprep_version) == ("bids", "23.2.0")
    assert dataset.derivatives == "/out" and dataset.freesurfer == "/out/sourcedata/freesurfer"
    assert dataset.workdirs == ("/out/work",)
    assert [(r.scope, r.path) for r in dataset.scan_roots] == [
        ("derivatives", "/out"), ("freesurfer", "/out/sourcedata/freesurfer"), ("workdir", "/out/work")]


@pytest.mark.parametrize("argument", ["/OUT", "/OUT/fmriprep"])
def test_legacy_layout_from_out_or_out_fmriprep(fakefs, argument):
    write_description("/OUT/fmriprep", "1.2.2", legacy=True)  # PipelineDescription, fMRIPrep 1.x
    make_files("/OUT", ["fmriprep/sub-01.html", "freesurfer/sub-01/mri/T1.mgz"])
    dataset = discover(argument)
    assert (dataset.layout, dataset.fmriprep_version) == ("legacy", "1.2.2")
    assert dataset.derivatives == "/OUT/fmriprep" and dataset.freesurfer == "/OUT/freesurfer"
    assert dataset.container == ("/OUT" if argument == "/OUT" else None)


def test_legacy_layout_of_recent_fmriprep_is_recognised_by_its_freesurfer_sibling(fakefs):
    write_description("/OUT/fmriprep", "23.1.4")
    make_files("/OUT", ["freesurfer/sub-01/mri/T1.mgz"])
    assert discover("/OUT/fmriprep").layout == "legacy"
    # a BIDS-layout output that happens to be called fmriprep/ stays BIDS
    write_description("/deriv/fmriprep", "23.1.4")
    make_files("/deriv/fmriprep", ["sourcedata/freesurfer/sub-01/mri/T1.mgz"])
    assert discover("/deriv/fmriprep").layout == "bids"


def test_working_directory_alone_and_versions_from_folder_names(fakefs):
    make_files("/work", WORK)
    dataset = discover("/work")
    assert (dataset.layout, dataset.fmriprep_version, dataset.workdirs) == ("workdir", "23.2", ("/work",))
    make_files("/old", ["fmriprep_wf/single_subject_01_wf/x/_node.pklz"])
    assert discover("/old").fmriprep_version is None


def test_explicit_work_dir(fakefs):
    write_description("/out")
    make_files("/scratch/w", WORK)
    assert discover("/out", work_dir="/scratch/w").workdirs == ("/scratch/w",)
    assert discover("/out", work_dir="/scratch/w/fmriprep_23_2_wf").workdirs == ("/scratch/w/fmriprep_23_2_wf",)
    make_files("/scratch/other", ["x.txt"])
    with pytest.raises(CleanupError, match="/scratch/other is not an fMRIPrep working directory"):
        discover("/out", work_dir="/scratch/other")


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda: None, r"^/nowhere: no such directory \(expected fMRIPrep output"),
        (lambda: make_files("/", ["nowhere"]), r"^/nowhere is a file, not a directory"),
        (lambda: os.makedirs("/nowhere"), r"^/nowhere is empty"),
        (lambda: write_description("/nowhere", name="HALFpipe"), r"dataset_description.json names 'HALFpipe', not fMRIPrep"),
        (lambda: make_files("/nowhere", ["sub-01/anat/sub-01_T1w.nii.gz"]), r"does not look like fMRIPrep output .*fmriprep_wf"),
        (lambda: make_files("/nowhere", {"dataset_description.json": 0}), r"dataset_description.json:1: not valid JSON"),
        (lambda: make_files("/nowhere", ["fmriprep/sub-01.html"]), r"/nowhere/fmriprep has no dataset_description.json naming fMRIPrep"),
    ],
)
def test_not_fmriprep_output_is_one_clear_error(fakefs, setup, message):
    setup()
    with pytest.raises(CleanupError, match=message):
        discover("/nowhere")


def test_raw_bids_dataset_is_refused(fakefs):
    os.makedirs("/raw")
    with open("/raw/dataset_description.json", "w") as handle:
        handle.write('{"Name": "raw", "BIDSVersion": "1.8.0", "DatasetType": "raw"}')
    with pytest.raises(CleanupError, match="names no pipeline"):
        discover("/raw")


def test_unreadable_output_or_description(normal_user):
    write_description("/out")
    os.chmod("/out/dataset_description.json", 0o000)
    with pytest.raises(CleanupError, match="cannot read /out/dataset_description.json: permission denied"):
        discover("/out")
    os.chmod("/out", 0o100)
    with pytest.raises(CleanupError, match="cannot read /out: permission denied"):
        discover("/out")


def test_folder_holding_a_bids_layout_output_points_at_it(fakefs):
    write_description("/project/derivatives/fmriprep", "23.2.0")
    make_files("/project/derivatives/fmriprep", ["sourcedata/freesurfer/sub-01/mri/T1.mgz"])
    with pytest.raises(CleanupError, match="is fMRIPrep output in the BIDS layout; give /project/derivatives/fmriprep itself"):
        discover("/project/derivatives")
