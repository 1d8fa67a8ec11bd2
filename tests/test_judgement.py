"""Judging right on real data states: what is fMRIPrep's, the evidence a status rests on, old and stripped
runs, FreeSurfer at work, unreadable evidence, stale caches, and one set of options for plan and clean."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import LONG_AGO, age_run, build_ds003752, make_files, write_description
from conftest import cli as run

import fmriprep_cleanup.fmriprep.demo as demo
from fmriprep_cleanup import build_plan, load_rulesets
from fmriprep_cleanup.act.delete import delete
from fmriprep_cleanup.act.threads import Stop
from fmriprep_cleanup.act.worklist import Outcome, Worklist
from fmriprep_cleanup.basics.journal_writer import Journal
from fmriprep_cleanup.fmriprep.discovery import discover
from fmriprep_cleanup.fmriprep.status import StatusBook
from fmriprep_cleanup.plan.rows import PlannedFile
from fmriprep_cleanup.rules.rulesets import shipped_ruleset_names

RUN = "20240127-124830_0c970070-7984-4260-b527-e484380e8f41"
YEAR = 365 * 86400
# The "Errors" section of a subject report, as each generation of fMRIPrep's template writes it.
NIREPORTS_CLEAN = '<div id="errors"><p class="alert alert-success" role="alert">No errors to report!</p></div>'
NIREPORTS_FAILED = ('<p class="alert alert-danger" role="alert">One or more execution steps failed (2). '
                    'Error details are attached below.</p><details><summary>Node: a</summary></details>')
NIWORKFLOWS_FAILED = ('<div id="errors">\n    <h1 class="sub-report-title">Errors</h1>\n    <details>\n'
                      '        <summary>Node Name: fmriprep_wf.single_subject_01_wf.anat_preproc_wf.t1_merge</summary><br>\n'
                      '    </details>\n</div>')
FMRIPREP_1X_CLEAN = ('<div id="errors">\n    <h1 class="sub-report-title">Errors</h1>\n    <ul>\n'
                     '        <li>No errors to report!</li>\n    </ul>\n</div>')
FMRIPREP_1X_FAILED = ('<div id="errors">\n    <h1 class="sub-report-title">Errors</h1>\n    <ul>\n        <li>\n'
                      '        <div class="nipype_error">\n            Node Name: <a target="_self">bold_hmc</a><br>\n'
                      '        </div>\n        </li>\n    </ul>\n</div>')


def files_below(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names)


def report(body):
    return f"<html><body><h1>Summary</h1>{body}</body></html>".encode()


def test_report_errors_section_of_every_template_generation():
    from fmriprep_cleanup.fmriprep.evidence import count_report_errors

    assert count_report_errors(report(NIREPORTS_CLEAN)) == 0
    assert count_report_errors(report(NIREPORTS_FAILED)) == 2
    assert count_report_errors(report(NIWORKFLOWS_FAILED)) == 1
    assert count_report_errors(report(FMRIPREP_1X_CLEAN)) == 0
    assert count_report_errors(report(FMRIPREP_1X_FAILED)) == 1
    assert count_report_errors(b"<html></html>") is None  # no errors section: the report cannot tell
    # the phrase quoted without a count first (a log line in the report), then the real one
    quoted = report("<pre>One or more execution steps failed (see below)</pre>" + NIREPORTS_FAILED)
    assert count_report_errors(quoted) == 2


# --- 1. -w $SCRATCH: only what fMRIPrep created there is in scope ------------------------------------------------

@pytest.fixture
def scratch(tmp_path):
    """fMRIPrep run with -w $SCRATCH: the working directory is a shared scratch folder that also holds a
    thesis, another project and loose files; the run recorded $SCRATCH in fmriprep.toml."""
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    write_description(out)
    make_files(out, {"sub-01.html": 500, "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 900,
                     "sourcedata/freesurfer/fsaverage/surf/lh.white": 400})
    log = out / "sub-01" / "log" / RUN
    log.mkdir(parents=True)
    (log / "fmriprep.toml").write_bytes(demo.run_config("23.2.0", RUN, "01", work_dir=str(scratch)))
    make_files(scratch, {"fmriprep_23_2_wf/sub_01_wf/node/out.nii.gz": 9000, "reportlets/fmriprep/sub-01/x.svg": 90,
                         "my_thesis/chapter1.tex": 1234, "other_project/derivatives/sub-9/big.nii.gz": 50_000,
                         "notes.txt": 77, "sub_01_wf/not_a_workflow_of_fmriprep.txt": 5})
    (scratch / RUN).mkdir()
    (scratch / RUN / "config.toml").write_bytes(demo.run_config("23.2.0", RUN, "01", work_dir=str(scratch))
                                                .replace(b'output_dir = "/out"', f'output_dir = "{out}"'.encode()))
    (out / "sub-01.html").write_bytes(report(NIREPORTS_CLEAN))
    age_run(out)
    age_run(scratch)
    return out, scratch


NOT_FMRIPREPS = ["my_thesis/chapter1.tex", "notes.txt", "other_project/derivatives/sub-9/big.nii.gz",
                 "sub_01_wf/not_a_workflow_of_fmriprep.txt"]


@pytest.mark.parametrize("options", [["--rules", name] for name in shipped_ruleset_names()]
                         + [["--junk", "**", "--allow-output-loss"],
                            ["--rules", "fmriprepcleanup", "--junk", "**", "--min-age", "0", "--allow-output-loss"]],
                         ids=lambda options: " ".join(options))
def test_files_fmriprep_did_not_write_in_the_working_directory_survive_every_rule_set(scratch, options):
    out, scratch = scratch
    assert discover(str(out)).workdirs == (str(scratch),)  # found through fmriprep.toml, with no option
    result = run("clean", out, "--mode", "delete", "--yes", *options)
    assert result.exit_code == 0, result.output
    assert all((scratch / path).is_file() for path in NOT_FMRIPREPS), files_below(scratch)
    assert not (scratch / "fmriprep_23_2_wf" / "sub_01_wf").exists()  # what fMRIPrep wrote for a finished subject


def test_report_counts_what_it_left_alone_and_explain_says_why(scratch):
    out, scratch = scratch
    data = json.loads(run("report", out, "--format", "json").stdout)
    left = {row["path"]: (row["files"], row["bytes"]) for row in data["not_fmriprep"]}
    assert left == {str(scratch / "other_project"): (1, 50_000), str(scratch / "my_thesis"): (1, 1234),
                    str(scratch / "notes.txt"): (1, 77), str(scratch / "sub_01_wf"): (1, 5)}
    category = {row["category"]: row for row in data["by_category"]}["not fMRIPrep's (left alone)"]
    assert (category["files"], category["junk_files"]) == (4, 0)
    assert "Left alone, not fMRIPrep's: 4 files" in run("report", out).stdout
    explained = json.loads(run("explain", out, scratch / "my_thesis/chapter1.tex", "--junk", "**", "--format", "json").stdout)
    assert explained[0]["rule_id"] == "not-fmriprep" and explained[0]["action"] == "keep"


def test_the_act_layer_refuses_what_fmriprep_did_not_write_whatever_the_worklist_says(scratch):
    """Defence in depth: even a worklist that names a file outside fMRIPrep's folders (a bug upstream) is refused."""
    from fmriprep_cleanup.act.safefs import SKIP_NOT_FMRIPREP

    out, scratch = scratch
    dataset = discover(str(out))
    thesis = scratch / "my_thesis/chapter1.tex"
    st = os.lstat(thesis)
    planned = PlannedFile(str(thesis), str(scratch), "workdir", None, st.st_size, st.st_blocks * 512, st.st_mtime,
                          st.st_dev, st.st_ino, st.st_nlink, "junk", "working directory", "workdir-shared")
    outcome = delete(Worklist([planned], Outcome("delete")), dataset, Journal(dataset.state_dir), Stop())
    assert thesis.is_file() and outcome.skipped[SKIP_NOT_FMRIPREP].files == 1 and outcome.acted.files == 0


def test_an_archive_kept_in_the_working_directory_is_never_junk(scratch, tmp_path):
    out, scratch = scratch
    archived = run("clean", out, "--no-work-dir", "--mode", "archive", "--archive-dir", scratch / "archives", "--yes")
    assert archived.exit_code == 0, archived.output
    archives = files_below(scratch / "archives")
    assert any(name.endswith(".tar") for name in archives)
    again = run("clean", out, "--mode", "delete", "--yes", "--rules", "fmriprepcleanup", "--junk", "**",
                "--allow-output-loss")
    assert again.exit_code == 0, again.output
    assert files_below(scratch / "archives") == archives


def test_a_working_directory_whose_runs_record_another_dataset_is_left_out_unless_named(tmp_path):
    area = tmp_path / "derivatives"
    mine, theirs = area / "fmriprep", area / "fmriprep-other"
    for out in (mine, theirs):
        write_description(out)
        make_files(out, {"sub-01.html": 10})
    make_files(area / "work", {"fmriprep_23_2_wf/sub_01_wf/n/out.nii.gz": 100})
    (area / "work" / RUN).mkdir()
    (area / "work" / RUN / "config.toml").write_bytes(
        demo.run_config("23.2.0", RUN, "01").replace(b'output_dir = "/out"', f'output_dir = "{theirs}"'.encode()))
    dataset = discover(str(mine))
    assert dataset.workdirs == ()
    assert any("left out" in warning and str(theirs) in warning for warning in dataset.warnings)
    assert discover(str(mine), work_dir=str(area / "work")).workdirs == (str(area / "work"),)
    # a run folder that records this dataset (or a container path that does not exist here) keeps it attached
    (area / "work" / RUN / "config.toml").write_bytes(demo.run_config("23.2.0", RUN, "01"))
    assert discover(str(mine)).workdirs == (str(area / "work"),)


# --- 2. the evidence a status rests on is kept: a failed subject stays failed ------------------------------------

def test_failed_subject_cleaned_twice_keeps_its_cache(ds003752):
    output, workdir = ds003752
    for tree in (output, workdir):  # a run that failed two days ago: not running, not yet a stale cache
        age_run(tree, time.time() - 2 * 86400)
    crash = output / "sub-03" / "log" / "20240127-124836_ae2f0b35-36b4-47c2-b987-1111907f4deb" / "crash-20240127-130000-fmriprep-autorecon1.txt"
    crash.write_text("Node: fmriprep_23_2_wf.sub_03_wf.anat_fit_wf.surface_recon_wf.autorecon1\n")
    os.utime(crash, (time.time() - 2 * 86400,) * 2)
    cache = files_below(workdir / "fmriprep_23_2_wf" / "sub_03_wf")
    for attempt in (1, 2):
        status = json.loads(run("status", output, "--work-dir", workdir, "--format", "json").stdout)
        assert {row["subject"]: row["status"] for row in status["subjects"]}["03"] == "failed", attempt
        result = run("clean", output, "--work-dir", workdir, "--mode", "delete", "--yes")
        assert result.exit_code == 0, result.output
        assert files_below(workdir / "fmriprep_23_2_wf" / "sub_03_wf") == cache, attempt
        assert crash.is_file()
    assert not (workdir / "fmriprep_23_2_wf" / "sub_01_wf").exists()  # finished subjects' caches went the first time


@pytest.mark.parametrize("rules", ["fmriprepcleanup", "default"])
def test_dataset_description_is_never_junk(ds003752, rules):
    output, workdir = ds003752
    result = run("clean", output, "--no-work-dir", "--rules", rules, "--junk", "*.json", "--mode", "delete", "--yes")
    assert result.exit_code == 0, result.output
    assert (output / "dataset_description.json").is_file()
    assert discover(str(output)).fmriprep_version == "23.2.0"  # still recognised on the next run


# --- 3. FreeSurfer at work ------------------------------------------------------------------------------------

def test_a_subject_inside_recon_all_keeps_fsaverage_and_its_own_files(ds003752):
    output, workdir = ds003752
    scripts = output / "sourcedata" / "freesurfer" / "sub-03" / "scripts"
    (scripts / "recon-all.done").unlink()
    (scripts / "IsRunning.lh+rh").write_text("PROCESSID 1234\nHOST node07\n")
    make_files(output / "sourcedata" / "freesurfer" / "sub-03" / "surf", {"lh.sphere": 3000})  # written just now
    freesurfer = files_below(output / "sourcedata" / "freesurfer")
    cache = files_below(workdir / "fmriprep_23_2_wf" / "sub_03_wf")
    status = json.loads(run("status", output, "--work-dir", workdir, "--format", "json").stdout)
    sub03 = {row["subject"]: row for row in status["subjects"]}["03"]
    assert sub03["status"] == "running" and "FreeSurfer folder" in sub03["evidence"][0]
    result = run("clean", output, "--work-dir", workdir, "--mode", "delete", "--yes", "--format", "json")
    assert result.exit_code == 3, result.output  # shared templates were held back: a skip
    assert files_below(output / "sourcedata" / "freesurfer") == freesurfer  # fsaverage and sub-03's own files
    assert files_below(workdir / "fmriprep_23_2_wf" / "sub_03_wf") == cache
    skipped = {row["reason"]: row["files"] for row in json.loads(result.stdout)["skipped"]}
    assert skipped["shared by every subject, and some subject is still running"] == 360  # every fsaverage* file


def test_recon_all_error_is_failed_and_isrunning_left_behind_is_incomplete(ds003752):
    output, workdir = ds003752
    freesurfer = output / "sourcedata" / "freesurfer"
    (freesurfer / "sub-01" / "scripts" / "recon-all.error").write_text("ERROR: mris_fix_topology failed\n")
    (freesurfer / "sub-02" / "scripts" / "IsRunning.lh").write_text("PROCESSID 99\n")
    age_run(freesurfer, demo.DEMO_MTIME + 60)  # after recon-all.done, but long ago
    statuses = StatusBook(discover(str(output), str(workdir)), time.time(), 3600).statuses()
    assert (statuses["01"].status, statuses["01"].freesurfer) == ("failed", "error")
    assert "recon-all.error" in statuses["01"].evidence[0]
    assert statuses["02"].status == "incomplete" and "IsRunning.lh left behind" in statuses["02"].evidence[0]
    assert statuses["03"].status == "finished" and "recon-all.done" in statuses["03"].evidence[0]


# --- 4. old and stripped runs -------------------------------------------------------------------------------

LEGACY_1X = {
    "fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 9_000,
    "fmriprep/sub-02/anat/sub-02_desc-preproc_T1w.nii.gz": 9_000,
    "freesurfer/fsaverage5/surf/lh.white": 400,
    "freesurfer/sub-01/scripts/recon-all.done": 800,
    "freesurfer/sub-02/scripts/recon-all.done": 800,
    "work/fmriprep_wf/single_subject_01_wf/func_preproc_task_rest_wf/bold_hmc_wf/mcflirt/vol_mcf.nii.gz": 500_000,
    "work/fmriprep_wf/single_subject_02_wf/func_preproc_task_rest_wf/bold_hmc_wf/mcflirt/vol_mcf.nii.gz": 600_000,
}


@pytest.fixture
def legacy(tmp_path):
    """An fMRIPrep 1.2.2 run in the legacy layout, untouched for a year: sub-01's report lists no errors,
    sub-02's lists a crashed node (its crash files are gone: an older tool deleted them)."""
    out = tmp_path / "OUT"
    make_files(out, LEGACY_1X)
    write_description(out / "fmriprep", "1.2.2", legacy=True)
    (out / "fmriprep" / "sub-01.html").write_bytes(report(FMRIPREP_1X_CLEAN))
    (out / "fmriprep" / "sub-02.html").write_bytes(report(FMRIPREP_1X_FAILED))
    age_run(out, time.time() - YEAR)
    return out


def test_fmriprep_1x_run_with_reports_is_judged_and_its_stale_caches_are_junk(legacy):
    statuses = StatusBook(discover(str(legacy)), time.time(), 3600).statuses()
    assert statuses["01"].status == "finished"
    assert statuses["01"].evidence == ["report lists no errors; recon-all.done"]
    assert statuses["02"].status == "failed" and statuses["02"].evidence == ["report lists 1 error(s)"]
    assert statuses["02"].stale and 364 < statuses["02"].idle_seconds / 86400 < 366
    rows = {os.path.relpath(row.path, legacy): row for row in build_plan(discover(str(legacy)), load_rulesets(["default"]))}
    work = {path.split("/")[2]: (row.action, row.category) for path, row in rows.items() if path.startswith("work/")}
    assert work == {"single_subject_01_wf": ("junk", "working directory"),
                    "single_subject_02_wf": ("junk", "working directory (stale: run failed)")}
    assert rows["fmriprep/sub-02.html"].action == "keep"  # the evidence stays (it is kept by every rule anyway)


def test_stale_after_from_the_option_the_rule_file_and_the_policy(legacy, tmp_path):
    def workdir_of_02(*options):
        rows = [json.loads(line) for line in run("plan", legacy, "--format", "jsonl", *options).stdout.splitlines()]
        return {row["category"] for row in rows if "single_subject_02_wf" in row["path"]}

    assert workdir_of_02() == {"working directory (stale: run failed)"}
    assert workdir_of_02("--stale-after", "400d") == {"working directory (kept: run failed)"}
    patient = tmp_path / "patient.yaml"
    patient.write_text("version: 1\nname: patient\nextends: default\nstale_after: 2y\nrules: []\n")
    assert workdir_of_02("--rules", str(patient)) == {"working directory (kept: run failed)"}
    assert workdir_of_02("--rules", str(patient), "--stale-after", "30d") == {"working directory (stale: run failed)"}
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: [{legacy}]\n    mode: dry-run\n    stale_after: 2y\n")
    before = files_below(legacy)
    result = run("run", policy, "--history", tmp_path / "h.sqlite")
    # sub-01's cache (488.3 KiB) and the fsaverage5 copy: sub-02's failed run is not stale under this policy
    assert result.exit_code == 0 and "would remove 2 files (488.7 KiB)" in result.output
    assert files_below(legacy) == before


def test_a_published_tree_without_log_folders_is_finished_not_incomplete(tmp_path):
    """fMRIPrep 21, BIDS layout, published without sub-*/log/: the report lists no errors, nothing after it."""
    out = tmp_path / "ds"
    write_description(out, "21.0.2")
    make_files(out, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 100, "sub-01/figures/sub-01_dseg.svg": 10})
    (out / "sub-01.html").write_bytes(report(NIREPORTS_CLEAN))
    age_run(out)
    status = StatusBook(discover(str(out)), time.time(), 3600).statuses()["01"]
    assert (status.status, status.runs) == ("finished", 0) and status.evidence == ["report lists no errors"]


# --- 5. evidence that cannot be read ---------------------------------------------------------------------------

def _without_root_powers(command, env):
    """Run ``command`` so that file permissions apply to it. Root reads everything; as root, drop the
    capabilities that let it (setpriv, util-linux), so a folder owned by someone else with mode 700 is closed."""
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + command, capture_output=True, text=True, env=env)


def test_unreadable_evidence_is_unknown_never_finished_and_clean_says_so(tmp_path):
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {"sub-01.html": 10, "sub-02.html": 10,
                     f"sub-01/log/{RUN}/fmriprep.toml": 10, f"sub-02/log/{RUN}/fmriprep.toml": 10,
                     f"sub-02/log/{RUN}/crash-20240127-130000-node.txt": 10,
                     "work/fmriprep_23_2_wf/sub_01_wf/n/out.nii.gz": 100,
                     "work/fmriprep_23_2_wf/sub_02_wf/n/out.nii.gz": 100})
    age_run(out)
    failed_run = out / "sub-02" / "log" / RUN  # the failed run's folder: someone else's, not readable
    if os.geteuid() == 0:
        os.chown(failed_run, 65534, 65534)
    os.chmod(failed_run, 0o700 if os.geteuid() == 0 else 0)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    tool = [sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()"]
    try:
        status = _without_root_powers(tool + ["status", str(out), "--format", "json"], env)
        subjects = {row["subject"]: row for row in json.loads(status.stdout)["subjects"]}
        assert subjects["02"]["status"] == "unknown" and "could not be read" in subjects["02"]["evidence"][0]
        assert "Permission denied" in subjects["02"]["evidence"][0] and subjects["01"]["status"] == "finished"
        clean = _without_root_powers(tool + ["clean", str(out), "--mode", "delete", "--yes"], env)
        assert clean.returncode == 0, clean.stderr
        assert f"warning: cannot read {failed_run}: Permission denied" in clean.stderr and "Traceback" not in clean.stderr
        assert (out / "work/fmriprep_23_2_wf/sub_02_wf/n/out.nii.gz").is_file()
        assert not (out / "work/fmriprep_23_2_wf/sub_01_wf").exists()
    finally:
        os.chmod(failed_run, 0o755)


# --- 6. one set of options: plan --action junk is exactly what clean acts on -----------------------------------

@pytest.fixture(scope="module")
def running_and_unknown(tmp_path_factory, ds003752_listing):
    """ds003752 with sub-02 running (a file written just now) and sub-03 unknown (no run folders, a report
    without an errors section): built once, only read by the tests that use it (plan and dry runs)."""
    output, workdir = build_ds003752(tmp_path_factory.mktemp("judged"), ds003752_listing)
    make_files(workdir / "fmriprep_23_2_wf" / "sub_02_wf", {"late_node/out.nii.gz": 10})  # sub-02: running, for 1h
    shutil.rmtree(output / "sub-03" / "log")
    return output, workdir


@pytest.mark.parametrize("options", [[], ["--min-age", "0"], ["--min-age", "0s", "--junk", "*.json"],
                                     ["--rules", "fmriprepcleanup"], ["--participant-label", "01", "03"],
                                     ["--rules", "volume-only", "--stale-after", "1d", "--keep", "sub-01/**"]],
                         ids=lambda options: " ".join(options) or "defaults")
def test_plan_only_junk_equals_clean_dry_run_list(running_and_unknown, options):
    output, workdir = running_and_unknown
    planned = run("plan", output, "--work-dir", workdir, "--action", "junk", *options)
    listed = run("clean", output, "--work-dir", workdir, "--mode", "dry-run", "--list", *options)
    assert planned.exit_code == 0 and listed.exit_code == 0, listed.output
    assert planned.stdout == listed.stdout and planned.stdout.count("\n") > 1
    summary = next(line for line in listed.stderr.splitlines() if line.startswith("Would remove"))
    assert summary.startswith(f"Would remove {len(planned.stdout.splitlines()) - 1:,} file")


def test_min_age_zero_means_no_age_limit(project_with_a_fresh_file):
    out, fresh = project_with_a_fresh_file
    assert str(fresh) not in run("plan", out, "--action", "junk").stdout
    assert str(fresh) in run("plan", out, "--action", "junk", "--min-age", "0").stdout
    assert str(fresh) in run("plan", out, "--action", "junk", "--min-age", "0s").stdout
    assert run("clean", out, "--min-age", "0").exit_code == 0


@pytest.fixture
def project_with_a_fresh_file(tmp_path):
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {"sub-01.html": 10, "sourcedata/freesurfer/fsaverage/surf/lh.white": 40})
    (out / "sub-01.html").write_bytes(report(NIREPORTS_CLEAN))
    age_run(out, LONG_AGO)
    fresh = out / "sourcedata" / "freesurfer" / "fsaverage" / "surf" / "rh.white"
    fresh.write_bytes(b"x")
    return out, fresh
