"""The other NiPreps (sMRIPrep, QSIPrep, MRIQC, XCP-D, NiBabies, ASLPrep, fMRIPost-AROMA) through the same
engine, from their descriptions in pipelines/: recognised with their version, statuses from their run
configs and crash files, and default rule sets that junk only finished subjects' working directories. Trees
are built from tests/data/nipreps/ (each pipeline's documented outputs, see its README)."""

import json
import os
import time

import pytest
from conftest import DATA, LONG_AGO, make_files
from conftest import cli as run

import fmriprep_cleanup.fmriprep.demo as demo
from fmriprep_cleanup.fmriprep.pipelines import pipeline_by_key, pipelines

RUN = "20251101-120000_0b3c5e1a-1111-4222-8333-944455556666"
VERSIONS = {"smriprep": "0.19.1", "qsiprep": "26.0.0", "mriqc": "25.0.1", "xcp_d": "26.1.0", "nibabies": "25.2.0",
            "aslprep": "26.0.1", "fmripost_aroma": "0.0.12"}


def build(root, key, failed=False):
    """OUT (the pipeline's output, from its listing) and WORK beside it, all long ago; sub-01 finished (its
    report and, where the pipeline writes one, its run config) or, with ``failed``, a crash file."""
    pipeline = pipeline_by_key(key)
    version = VERSIONS[key]
    out, work = root / "out", root / "work"
    generated = [{"Name": pipeline.generated_by[0], "Version": version}]
    if key in ("fmripost_aroma", "xcp_d"):  # consumers list their input's pipeline after their own
        generated.append({"Name": "fMRIPrep", "Version": "25.2.0"})
    out.mkdir(parents=True)
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": f"{pipeline.name} outputs", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
         "GeneratedBy": generated}))
    major, minor = version.split(".")[:2]
    workflow = f"{pipeline.workflow_prefix}_{major}_{minor}_wf"
    files = {}
    for line in (DATA / "nipreps" / f"{key}.txt").read_text().splitlines():
        if line.startswith("work:"):
            files[str(work.relative_to(root) / line[5:].replace("<wf>", workflow))] = 20_000
        else:
            files[f"out/{line}"] = 1000
    log = f"out/sub-01/log/{RUN}"
    if failed:
        files[f"{log}/crash-20251101-130000-user-node-0000.txt"] = 100
    if pipeline.run_config:
        (root / log).mkdir(parents=True, exist_ok=True)
        (root / log / pipeline.run_config).write_bytes(demo.run_config(version, RUN, "01", str(work)))
    make_files(root, files)
    if (out / "sub-01.html").exists():  # the reports of every NiPrep share niworkflows' (nireports') errors section
        (out / "sub-01.html").write_text('<div id="errors"><h2>Errors</h2><p>No errors to report!</p></div>')
    when = time.time() - 2 * 86400 if failed else LONG_AGO  # a failed run's cache goes stale after 30 days
    for folder, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(folder, name), (when, when))
    return out, work


OTHERS = [pipeline.key for pipeline in pipelines() if pipeline.key != "fmriprep"]


def test_every_nipreps_pipeline_is_described():
    assert set(OTHERS) == set(VERSIONS)
    assert pipeline_by_key("fmriprep").rules == "default"


@pytest.mark.parametrize("key", OTHERS)
def test_each_pipeline_is_recognised_with_its_version_and_cleaned_by_its_default(tmp_path, key):
    pipeline = pipeline_by_key(key)
    out, work = build(tmp_path, key)
    report = json.loads(run("report", out, "--format", "json", "-q").stdout)
    assert report["dataset"]["pipeline"] == pipeline.name
    assert report["dataset"]["fmriprep_version"] == VERSIONS[key]
    assert report["dataset"]["workdirs"] == [str(work)]
    assert report["rules"][0] == f"{key}-default"
    text = run("report", out, "-q").stdout
    assert text.startswith(f"{pipeline.name} {VERSIONS[key]} · ")
    junk = run("plan", out, "--action", "junk", "-q").stdout.splitlines()[1:]
    junk_paths = [line.split("\t")[4] for line in junk]
    assert junk_paths and all(path.startswith(str(work) + "/") for path in junk_paths), junk_paths
    status = json.loads(run("status", out, "--format", "json").stdout)
    subjects = {row["subject"]: row for row in status["subjects"]}
    if key == "mriqc":  # no per-subject report, run config or workflow folder: nothing says how sub-01 ran
        assert set(subjects) <= {"01"} and all(row["status"] == "unknown" for row in subjects.values())
    else:
        assert subjects["01"]["status"] == "finished", subjects
        if pipeline.run_config:
            assert subjects["01"]["fmriprep_version"] == VERSIONS[key]  # read from its run config


@pytest.mark.parametrize("key", [key for key in OTHERS if key != "mriqc"])
def test_a_failed_subjects_cache_is_kept(tmp_path, key):
    out, work = build(tmp_path, key, failed=True)
    status = json.loads(run("status", out, "--format", "json").stdout)
    assert {row["subject"]: row["status"] for row in status["subjects"]}["01"] == "failed"
    result = run("clean", out, "--mode", "delete", "--yes", "-q")
    assert result.exit_code == 0, result.output
    assert all(os.path.getsize(path) for path in (work.rglob("out.*")))  # every cache file still there
    assert len(list(work.rglob("out.*"))) == sum(1 for line in (DATA / "nipreps" / f"{key}.txt").read_text()
                                                 .splitlines() if line.startswith("work:"))


@pytest.mark.parametrize(("key", "regenerable"), [
    ("xcp_d", {"desc-denoised_bold.nii.gz", "desc-denoisedSmoothed_bold.nii.gz", "desc-denoised_bold.dtseries.nii"}),
    ("fmripost_aroma", {"desc-nonaggrDenoised_bold.nii.gz", "desc-aggrDenoised_bold.nii.gz"}),
    ("qsiprep", {"desc-preproc_dwi.nii.gz", "desc-preproc_dwi.bval", "desc-preproc_dwi.bvec"}),
    ("aslprep", {"desc-preproc_asl.nii.gz", "desc-timeseries_cbf.nii.gz"}),
])
def test_minimal_sets_junk_the_regenerable_outputs(tmp_path, key, regenerable):
    out, work = build(tmp_path, key)

    def reclaimed() -> set[str]:
        junk = run("plan", out, "--action", "junk", "--rules", f"{key}-minimal", "-q").stdout.splitlines()[1:]
        return {line.split("\t")[4].rsplit("_", 2)[-2] + "_" + line.split("\t")[4].rsplit("_", 1)[-1]
                for line in junk if "/out/" in line}

    # guarded: rebuilt by running again, so only where the inputs the run recorded are here
    assert reclaimed() == set()
    config = out / "sub-01" / "log" / RUN / pipeline_by_key(key).run_config
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    key_name = "fmri_dir" if key == "xcp_d" else "bids_dir"
    config.write_text(config.read_text().replace("[execution]\n", f'[execution]\n{key_name} = "{inputs}"\n'))
    os.utime(config, (LONG_AGO, LONG_AGO))
    assert reclaimed() == regenerable
    recipe = run("regenerate", out).stdout
    program = {"fmripost_aroma": "fmripost-aroma"}.get(key, key)
    assert f'{program} {inputs} "$WORK/rebuild" participant --participant-label 01' in recipe  # a fresh folder,
    assert f"OUT={out}" in recipe  # whence only the reclaimed names are moved back


def test_a_consumers_input_pipeline_does_not_make_it_fmriprep(tmp_path):
    out, _ = build(tmp_path, "fmripost_aroma")
    data = json.loads(run("report", out, "--format", "json", "-q").stdout)
    assert data["dataset"]["pipeline"] == "fMRIPost-AROMA" and data["dataset"]["fmriprep_version"] == "0.0.12"


def test_several_pipelines_side_by_side_are_several_datasets(tmp_path):
    derivatives = tmp_path / "ds" / "derivatives"
    for key in ("xcp_d", "mriqc", "qsiprep"):
        out, work = build(tmp_path / key, key)
        out.rename(derivatives / key) if derivatives.exists() else (derivatives.mkdir(parents=True),
                                                                     out.rename(derivatives / key))
    audit = json.loads(run("audit", tmp_path / "ds", "--format", "json", "-q").stdout)
    assert sorted(row["pipeline"] for row in audit["datasets"]) == ["MRIQC", "QSIPrep", "XCP-D"]
    text = run("audit", tmp_path / "ds", "-q", "--wide").stdout
    assert "XCP-D 26.1.0" in text and "MRIQC 25.0.1" in text
    together = run("report", derivatives)
    assert together.exit_code == 2 and "several pipelines' outputs (mriqc, qsiprep, xcp_d)" in together.output


def test_an_unknown_derivative_is_refused(tmp_path):
    out = tmp_path / "halfpipe"
    out.mkdir()
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "x", "BIDSVersion": "1.9.0", "GeneratedBy": [{"Name": "HALFpipe", "Version": "1.2"}]}))
    result = run("report", out)
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "names 'HALFpipe', not fMRIPrep or another pipeline this tool knows (fMRIPrep, " in result.output


def test_a_policy_run_cleans_other_pipelines_too(tmp_path):
    qsiprep, qsiprep_work = build(tmp_path / "q", "qsiprep")
    xcp_d, xcp_d_work = build(tmp_path / "x", "xcp_d")
    policy = tmp_path / "hygiene.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: [{qsiprep}, {xcp_d}]\n    mode: delete\n")
    result = run("run", policy, "--log", tmp_path / "log.jsonl")
    assert result.exit_code == 0, result.output
    assert not list(qsiprep_work.rglob("out.*")) and not list(xcp_d_work.rglob("out.*"))  # finished: caches gone
    assert (qsiprep / "sub-01/dwi/sub-01_space-ACPC_desc-preproc_dwi.nii.gz").exists()  # outputs stay
    assert (xcp_d / "sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym_desc-denoised_bold.nii.gz").exists()
