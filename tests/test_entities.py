import pytest
from conftest import CI_LISTS, DS003752, ci_listing

from fmriprep_cleanup.fmriprep.entities import entity_keys, entity_names, parse_entities


@pytest.mark.parametrize(
    "path, expected",
    [
        # fMRIPrep 1.x
        ("sub-01/func/sub-01_task-rest_space-fsaverage_hemi-L.func.gii",
         {"subject": "01", "task": "rest", "space": "fsaverage", "hemi": "L", "datatype": "func", "extension": ".func.gii"}),
        ("sub-01/func/sub-01_task-rest_desc-confounds_regressors.tsv",
         {"subject": "01", "task": "rest", "desc": "confounds", "suffix": "regressors", "datatype": "func", "extension": ".tsv"}),
        # fMRIPrep >= 20
        ("sub-01/func/sub-01_task-rest_desc-confounds_timeseries.tsv",
         {"subject": "01", "task": "rest", "desc": "confounds", "suffix": "timeseries", "datatype": "func", "extension": ".tsv"}),
        ("sub-01/anat/sub-01_from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5",
         {"subject": "01", "from": "T1w", "to": "MNI152NLin2009cAsym", "mode": "image", "suffix": "xfm", "datatype": "anat", "extension": ".h5"}),
        ("sub-01/anat/sub-01_hemi-L_space-fsLR_desc-msmsulc_sphere.surf.gii",
         {"subject": "01", "hemi": "L", "space": "fsLR", "desc": "msmsulc", "suffix": "sphere", "datatype": "anat", "extension": ".surf.gii"}),
        ("sub-01/func/sub-01_task-rest_run-01_space-fsLR_den-91k_bold.dtseries.nii",
         {"subject": "01", "task": "rest", "run": 1, "space": "fsLR", "den": "91k", "suffix": "bold", "datatype": "func", "extension": ".dtseries.nii"}),
        ("sub-01/ses-2/func/sub-01_ses-2_task-rest_desc-coreg_boldref.nii.gz",
         {"subject": "01", "session": "2", "task": "rest", "desc": "coreg", "suffix": "boldref", "datatype": "func", "extension": ".nii.gz"}),
    ],
)
def test_parses_names_of_every_fmriprep_generation(path, expected):
    assert parse_entities(path) == expected


def test_entity_table_comes_from_pybids_configs():
    names = entity_names()
    # raw BIDS (bids.json) and derivatives (derivatives.json) entities are both there
    assert {"subject", "session", "task", "run", "acquisition", "suffix", "extension", "datatype"} <= names
    assert {"space", "res", "den", "desc", "hemi", "label", "from", "to", "mode"} <= names
    assert entity_keys()["ses"] == "session" and entity_keys()["acq"] == "acquisition"


def _real_derivative_names():
    paths = []
    for listing in CI_LISTS:
        paths += [p for p in ci_listing(listing) if p.startswith("sub-")]
    for line in DS003752.read_text().splitlines()[1:]:
        path = line.split("\t")[0]
        if path.startswith("sub-"):
            paths.append(path)
    return sorted(set(paths))


@pytest.mark.slow
def test_agrees_with_pybids_own_parser_on_every_real_name():
    """Same definitions, same answers: pybids' parse_file_entities is the reference."""
    from bids.layout import parse_file_entities

    paths = _real_derivative_names()
    assert len(paths) > 1500
    for path in paths:
        theirs = {k: (int(v) if k == "run" else v) for k, v in parse_file_entities("/" + path, config=["bids", "derivatives"]).items()}
        assert parse_entities(path) == theirs, path


def test_every_subject_file_has_a_subject_and_extension():
    for path in _real_derivative_names():
        entities = parse_entities(path)
        if path.endswith(".html") and "/" not in path:
            continue
        assert entities.get("subject") == path.split("/")[0][4:], path
        assert "extension" in entities, path
