"""Studies run by Nipoppy, judged by the real `nipoppy` (0.4.8, its own cached environment): a clean frees space
and Nipoppy's view of the study does not change - every participant-session SUCCESS before is SUCCESS after
`nipoppy track-processing`, the files its trackers count stay (even those the rules would junk), and the working
folders of participant-sessions it does not mark SUCCESS are kept for `nipoppy process` to re-run."""

from __future__ import annotations

import csv
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import age_run, cli, finish_subjects, write, write_description
from judges import environment

NIPOPPY = ["nipoppy==0.4.8"]
PIPELINE, VERSION, STEP = "fmriprep", "23.2.0", "default"
TRACKER = {  # what a study's fMRIPrep tracker may count: a preprocessed T1w, a figure and the report
    "PATHS": ["[[NIPOPPY_BIDS_PARTICIPANT_ID]]/[[NIPOPPY_BIDS_SESSION_ID]]/anat/"
              "[[NIPOPPY_BIDS_PARTICIPANT_ID]]_[[NIPOPPY_BIDS_SESSION_ID]]_desc-preproc_T1w.nii.gz",
              "[[NIPOPPY_BIDS_PARTICIPANT_ID]]/figures/"
              "[[NIPOPPY_BIDS_PARTICIPANT_ID]]_[[NIPOPPY_BIDS_SESSION_ID]]_desc-summary_T1w.html"],
    "PARTICIPANT_SESSION_DIR": "[[NIPOPPY_BIDS_PARTICIPANT_ID]]/[[NIPOPPY_BIDS_SESSION_ID]]",
    "SCHEMA_VERSION": "1.0",
}
JUNK_FIGURES = ["--junk", "**/figures/**", "--junk", "sub-*/*.tar"]  # rules that would take what trackers count


def nipoppy(*args: str | Path) -> subprocess.CompletedProcess[str]:
    program = environment(NIPOPPY).parent / "nipoppy"
    done = subprocess.run([str(program), *map(str, args)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def statuses(study: Path) -> dict[tuple[str, str], str]:
    nipoppy("track-processing", "--dataset", study, "--pipeline", PIPELINE, "--pipeline-version", VERSION)
    with open(study / "derivatives" / "processing_status.tsv") as table:
        return {(row["participant_id"], row["session_id"]): row["status"]
                for row in csv.DictReader(table, delimiter="\t")}


def make_study(root: Path, tarred: bool = False) -> tuple[Path, Path]:
    """A study Nipoppy made (init, pipeline create), fMRIPrep 23.2.0 outputs of sub-01 and sub-02 (session BL)
    in its layout, each with its working folder: sub-01 has every tracked file (SUCCESS), sub-02 lacks its
    preprocessed T1w (FAIL). ``tarred``: sub-01's session folder archived as Nipoppy's --tar leaves it."""
    study = root / "study"
    nipoppy("init", "--dataset", study)
    bundle = study / "pipelines" / "processing" / f"{PIPELINE}-{VERSION}"
    nipoppy("pipeline", "create", "--type", "processing", bundle)
    config = (bundle / "config.json").read_text()
    (bundle / "config.json").write_text(config.replace('"NAME": "tool name"', f'"NAME": "{PIPELINE}"')
                                        .replace('"VERSION": "v0.1.0"', f'"VERSION": "{VERSION}"'))
    (bundle / "tracker.json5").write_text("// the study's tracker\n" + json.dumps(TRACKER, indent=2))
    (study / "manifest.tsv").write_text("participant_id\tvisit_id\tsession_id\tdatatype\n"
                                        "01\tBL\tBL\t['anat']\n02\tBL\tBL\t['anat']\n")
    for label in ("01", "02"):
        write(study / "bids" / f"sub-{label}" / "ses-BL" / "anat" / f"sub-{label}_ses-BL_T1w.nii.gz", b"raw")
    (study / "bids" / "dataset_description.json").write_text('{"Name": "s", "BIDSVersion": "1.8.0"}')
    nipoppy("track-curation", "--dataset", study)
    return study, study_outputs(study, tarred)


def written_study(root: Path) -> Path:
    """The same study with Nipoppy's own files written as Nipoppy 0.4.8 writes them (for the documentation's
    sandbox, where Nipoppy is not installed): its configuration, curation and processing status tables."""
    study = root / "study"
    bundle = study / "pipelines" / "processing" / f"{PIPELINE}-{VERSION}"
    bundle.mkdir(parents=True)
    (study / "global_config.json").write_text("{}\n")
    (study / "manifest.tsv").write_text("participant_id\tvisit_id\tsession_id\tdatatype\n"
                                        "01\tBL\tBL\t['anat']\n02\tBL\tBL\t['anat']\n")
    (bundle / "config.json").write_text(json.dumps({"NAME": PIPELINE, "VERSION": VERSION, "STEPS": [
        {"TRACKER_CONFIG_FILE": "tracker.json5"}], "PIPELINE_TYPE": "processing", "SCHEMA_VERSION": "1.0"}))
    (bundle / "tracker.json5").write_text("// the study's tracker\n" + json.dumps(TRACKER, indent=2))
    write(study / "sourcedata" / "imaging" / "curation_status.tsv",
          b"participant_id\tvisit_id\tsession_id\tdatatype\tparticipant_dicom_dir\tin_pre_reorg\tin_post_reorg\t"
          b"in_bids\n01\tBL\tBL\t['anat']\t01/BL\tFalse\tFalse\tTrue\n02\tBL\tBL\t['anat']\t02/BL\tFalse\tFalse\tTrue\n")
    write(study / "derivatives" / "processing_status.tsv",
          b"participant_id\tbids_participant_id\tsession_id\tpipeline_name\tpipeline_version\tpipeline_step\t"
          b"bids_session_id\tstatus\n01\tsub-01\tBL\tfmriprep\t23.2.0\tdefault\tses-BL\tSUCCESS\n"
          b"02\tsub-02\tBL\tfmriprep\t23.2.0\tdefault\tses-BL\tFAIL\n")
    study_outputs(study)
    return study


def study_outputs(study: Path, tarred: bool = False) -> Path:
    """fMRIPrep's outputs and working folders of sub-01 (every tracked file) and sub-02 (no preprocessed T1w)."""
    output = study / "derivatives" / PIPELINE / VERSION / "output"
    write_description(output, VERSION)
    for label in ("01", "02"):
        anat = output / f"sub-{label}" / "ses-BL" / "anat"
        if label == "01":
            write(anat / f"sub-{label}_ses-BL_desc-preproc_T1w.nii.gz", b"t1w" * 1000)
        write(anat / f"sub-{label}_ses-BL_space-MNI152NLin6Asym_desc-preproc_T1w.nii.gz", b"mni" * 1000)
        write(output / f"sub-{label}" / "figures" / f"sub-{label}_ses-BL_desc-summary_T1w.html", b"<html/>")
        write(output / f"sub-{label}" / "figures" / f"sub-{label}_ses-BL_desc-reconall_T1w.svg", b"<svg/>" * 500)
        work = study / "scratch" / "work" / f"{PIPELINE}-{VERSION}-{STEP}" / f"{PIPELINE}-{VERSION}-{STEP}-{label}-BL"
        write(work / "fmriprep_23_2_wf" / f"sub_{label}_wf" / "node" / "out.nii.gz", b"cache" * 2000)
    finish_subjects(output, ["01", "02"])
    if tarred:
        session = output / "sub-01" / "ses-BL"
        with tarfile.open(output / "sub-01" / "ses-BL.tar", "w") as archive:
            archive.add(session, arcname="ses-BL")
        subprocess.run(["rm", "-r", str(session)], check=True)
    age_run(study)
    return output


@pytest.mark.integration
@pytest.mark.parametrize("tarred", [False, True], ids=["folders", "tar"])
def test_a_clean_leaves_nipoppys_view_of_the_study_as_it_was(tmp_path, tarred):
    study, output = make_study(tmp_path, tarred)
    before = statuses(study)
    assert before == {("01", "BL"): "SUCCESS", ("02", "BL"): "FAIL"}
    tracked = [output / "sub-01" / "figures" / "sub-01_ses-BL_desc-summary_T1w.html",
               output / "sub-01" / ("ses-BL.tar" if tarred else "ses-BL/anat/sub-01_ses-BL_desc-preproc_T1w.nii.gz")]
    work = study / "scratch" / "work" / f"{PIPELINE}-{VERSION}-{STEP}"
    failed_cache = sorted(path.relative_to(work) for path in (work / f"{PIPELINE}-{VERSION}-{STEP}-02-BL").rglob("*"))

    explained = cli("explain", output, "--format", "json", *JUNK_FIGURES, *map(str, tracked))
    assert explained.exit_code == 0, explained.output
    rows = json.loads(explained.stdout)
    assert all(row["action"] == "keep" for row in rows), rows
    overruled = rows if tarred else rows[:1]  # what --junk would take is kept for the tracker, and says so
    assert all(row["why"].startswith("kept: Nipoppy tracker pipelines/processing/fmriprep-23.2.0/tracker.json5")
               for row in overruled), overruled

    result = cli("clean", output, "--mode", "delete", "--yes", "--format", "json", *JUNK_FIGURES)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes"] > 0
    assert statuses(study) == before  # Nipoppy sees the study as it was: nothing to re-run
    assert all(path.is_file() for path in tracked)
    assert not (output / "sub-01" / "figures" / "sub-01_ses-BL_desc-reconall_T1w.svg").exists()  # not tracked
    assert not (work / f"{PIPELINE}-{VERSION}-{STEP}-01-BL" / "fmriprep_23_2_wf").exists()  # SUCCESS: reclaimed
    assert sorted(path.relative_to(work) for path in (work / f"{PIPELINE}-{VERSION}-{STEP}-02-BL").rglob("*")) \
        == failed_cache  # FAIL: kept for `nipoppy process`


@pytest.mark.integration
def test_status_shows_what_nipoppy_says_beside_fmripreps_evidence(tmp_path):
    study, output = make_study(tmp_path)
    statuses(study)
    shown = cli("status", output, "--format", "json")
    assert shown.exit_code == 0, shown.output
    subjects = {row["subject"]: row for row in json.loads(shown.stdout)["subjects"]}
    assert "Nipoppy's processing_status.tsv: ses-BL SUCCESS" in subjects["01"]["evidence"]
    assert subjects["02"]["status"] == "finished"  # fMRIPrep's files...
    assert any("Nipoppy says ses-BL FAIL" in warning for warning in subjects["02"]["warnings"])  # ...and Nipoppy


def test_a_tracker_nipoppy_reads_is_read_the_same_and_a_broken_one_is_refused(tmp_path):
    """Nipoppy's configuration files are JSON with comments (and trailing commas); one that cannot be read
    stops the run with one line: nothing says which files Nipoppy counts."""
    from fmriprep_cleanup.fmriprep.nipoppy import read_json5

    path = tmp_path / "tracker.json5"
    path.write_text('// a comment\n{\n  "PATHS": ["a//b", /* inline */ "c",],  // trailing\n  "X": "//no"\n}\n')
    assert read_json5(str(path), "Nipoppy tracker") == {"PATHS": ["a//b", "c"], "X": "//no"}
    study = tmp_path / "study"
    output = study / "derivatives" / PIPELINE / VERSION / "output"
    write_description(output, VERSION)
    (study / "global_config.json").write_text("{}")
    bundle = study / "pipelines" / "processing" / f"{PIPELINE}-{VERSION}"
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text('{"STEPS": [{"TRACKER_CONFIG_FILE": "tracker.json"}]}')
    (bundle / "tracker.json").write_text('{"PATHS": [')
    refused = cli("clean", output, "--mode", "delete", "--yes")
    assert refused.exit_code == 2 and "cannot read Nipoppy's tracker" in refused.output
    assert refused.output.count("\n") == 1, refused.output


def test_report_and_audit_of_a_study_give_each_pipeline_version_and_step_its_stored_and_reclaimable_bytes(tmp_path):
    """Per pipeline, version and step: what the output and the working folders Nipoppy left behind hold, and
    what of it is reclaimable (a SUCCESS participant-session's folder) or kept (one `nipoppy process` re-runs)."""
    study = written_study(tmp_path)
    output = study / "derivatives" / PIPELINE / VERSION / "output"
    work = study / "scratch" / "work" / f"{PIPELINE}-{VERSION}-{STEP}"
    cache = sum(path.stat().st_size for path in (work / f"{PIPELINE}-{VERSION}-{STEP}-01-BL").rglob("*")
                if path.is_file())
    stored = sum(path.stat().st_size for path in output.rglob("*") if path.is_file())

    result = cli("report", output, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    steps = data["dataset"]["nipoppy"]["steps"]
    assert [(row["pipeline"], row["version"], row["step"], row["folder"]) for row in steps] == \
        [(PIPELINE, VERSION, "", "output"), (PIPELINE, VERSION, STEP, "working folders")]
    outputs, folders = steps
    assert outputs["bytes"] == stored and outputs["folders"] == 1
    assert folders["folders"] == 2 and folders["kept_folders"] == 1  # sub-02 is FAIL: kept for the re-run
    assert folders["bytes"] == 2 * cache and folders["reclaimable_bytes"] == cache
    assert outputs["bytes"] + folders["bytes"] == data["totals"]["bytes"]
    assert outputs["reclaimable_bytes"] + folders["reclaimable_bytes"] == data["totals"]["junk_bytes"]
    text = cli("report", output).output
    assert f"Nipoppy study {study}" in text
    assert any(line.split()[:4] == [PIPELINE, VERSION, STEP, "working"] and "1 kept" in line
               for line in text.splitlines()), text

    audited = cli("audit", study, "--format", "json")
    assert audited.exit_code == 0, audited.output
    rows = json.loads(audited.stdout)["datasets"]
    assert [row["nipoppy"]["root"] for row in rows] == [str(study)]
    assert rows[0]["nipoppy"]["steps"] == steps
    table = cli("audit", study).output
    assert f"Nipoppy study {study}:" in table and "working folders" in table, table
    page = tmp_path / "audit.html"
    assert cli("audit", study, "--format", "html", "-o", page).exit_code == 0
    assert f"Nipoppy study {study}" in page.read_text() and f'data-reclaimable-bytes="{cache}"' in page.read_text()
    refused = cli("report", study)  # the study root: which outputs to give, or audit it
    assert refused.exit_code == 2 and "is a Nipoppy study" in refused.output
    assert f"derivatives/{PIPELINE}/{VERSION}/output" in refused.output and refused.output.count("\n") == 1


def test_an_audit_partial_with_a_planted_study_or_root_count_is_refused_in_one_line(tmp_path):
    """The study's steps and the per-folder counts travel in partials: one a group member edited is refused,
    never rendered."""
    study = written_study(tmp_path)
    partials = []
    for shard in (1, 2):
        partial = tmp_path / f"partial-{shard}.json"
        assert cli("audit", study, "--shard", f"{shard}/2", "--partial-out", partial, "-q").exit_code == 0
        partials.append(partial)
    assert cli("merge", *partials).exit_code == 0
    full = next(path for path in partials if json.loads(path.read_text())["rows"])
    data = json.loads(full.read_text())
    data["rows"][0]["nipoppy"]["steps"][1]["bytes"] = "lots"
    full.write_text(json.dumps(data))
    refused = cli("merge", *partials)
    assert refused.exit_code == 2 and "nipoppy.steps.bytes" in refused.output and refused.output.count("\n") == 1
    data["rows"][0]["nipoppy"] = {"root": 3}
    full.write_text(json.dumps(data))
    assert "rows.nipoppy" in cli("merge", *partials).output

    output = study / "derivatives" / PIPELINE / VERSION / "output"
    assert cli("report", output, "--shard", "1/1", "--partial-out", tmp_path / "r.json", "-q").exit_code == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert sum(counts[1] for counts in data["summary"]["by_root"].values()) == data["summary"]["totals"]["bytes"]
    data["summary"]["by_root"][str(output)] = [1, -5, 0]
    (tmp_path / "r.json").write_text(json.dumps(data))
    refused = cli("merge", tmp_path / "r.json")
    assert refused.exit_code == 2 and "summary.by_root" in refused.output, refused.output


@pytest.mark.integration
def test_rewriting_a_tar_without_its_junk_leaves_nipoppys_view_as_it_was(tmp_path):
    """Issue 48: the members of sub-01's --tar archive are read from its headers; a rule that would junk every
    anatomical output takes out only what no tracker counts, and `nipoppy track-processing` says what it said."""
    study, output = make_study(tmp_path, tarred=True)
    before = statuses(study)
    archive = output / "sub-01" / "ses-BL.tar"
    notes = json.loads(cli("report", output, "--format", "json").stdout)["dataset"]["notes"]
    assert any(f"fmriprep-cleanup report {archive}" in note for note in notes), notes  # the output's report says
    with tarfile.open(archive) as opened:
        names = set(opened.getnames())
    junk_anat = ["--junk", "**/anat/**"]
    explained = cli("explain", archive, "ses-BL/anat/sub-01_ses-BL_desc-preproc_T1w.nii.gz", "--format", "json",
                    *junk_anat)
    assert explained.exit_code == 0, explained.output
    row = json.loads(explained.stdout)
    row = row[0] if isinstance(row, list) else row
    assert row["action"] == "keep" and row["why"].startswith("kept: Nipoppy tracker"), row
    result = cli("clean", archive, "--mode", "delete", "--yes", "--format", "json", "--allow-output-loss", *junk_anat)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == 1, result.stdout  # the MNI-space T1w: junk, counted by no tracker
    with tarfile.open(archive) as opened:
        after = set(opened.getnames())
    assert names - after == {"ses-BL/anat/sub-01_ses-BL_space-MNI152NLin6Asym_desc-preproc_T1w.nii.gz"}
    assert statuses(study) == before
