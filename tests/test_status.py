"""Each subject's fMRIPrep run status, and cleaning only what is safe to clean."""

import json
import os
import time

import pytest
from conftest import FINISHED_RUN, age_run, finish_subjects, make_files, write, write_description
from conftest import cli as run

import fmriprep_cleanup.fmriprep.demo as demo
import fmriprep_cleanup.fmriprep.status as status_module
from fmriprep_cleanup import build_plan, load_rulesets
from fmriprep_cleanup.fmriprep.discovery import discover
from fmriprep_cleanup.fmriprep.status import StatusBook
from fmriprep_cleanup.plan.selection import Selection

OLD = time.time() - 2 * 86400  # runs that ended two days ago: not running, and not yet stale caches
RUN_NEW = "20240127-124830_0c970070-7984-4260-b527-e484380e8f41"


def age(root, mtime):
    """Give files and folders below root one modification time (folders too: activity is read from them)."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
        os.utime(dirpath, (mtime, mtime))


def add_subject(output, work, label, run_uuid, report=True, crash=False, version="23.2.0", toml=True):
    files = {f"sub-{label}/anat/sub-{label}_desc-preproc_T1w.nii.gz": 1000}
    if report:
        files[f"sub-{label}.html"] = 500
    make_files(output, files)
    log = output / f"sub-{label}" / "log" / run_uuid
    log.mkdir(parents=True)
    if toml:
        (log / "fmriprep.toml").write_bytes(demo.run_config(version, run_uuid, label))
    if crash:
        make_files(log, {f"crash-20240127-130000-fmriprep-node-{label}.txt": 800})
    make_files(work, {f"fmriprep_23_2_wf/sub_{label}_wf/node/out.nii.gz": 9000, f"fmriprep_23_2_wf/sub_{label}_wf/node/_node.pklz": 90})


@pytest.fixture
def study(tmp_path, ds003752_listing):
    """ds003752 (sub-01..03, finished) plus constructed subjects: failed, running, stopped, and one with
    an old failed run and a newer clean one. The runs recorded /scratch/work, a container path."""
    output, work = tmp_path / "ds003752", tmp_path / "work"
    demo.build_tree(str(output), ds003752_listing, demo.real_contents(ds003752_listing))
    demo.build_tree(str(work), demo.synthetic_workdir(ds003752_listing))
    add_subject(output, work, "04", RUN_NEW, crash=True)  # failed
    add_subject(output, work, "05", RUN_NEW, report=False)  # stopped: no report
    add_subject(output, work, "06", RUN_NEW)  # will be running
    add_subject(output, work, "07", "20240201-090000_11111111-2222-4333-8444-555555555555")  # the newer, clean run...
    make_files(output / "sub-07" / "log" / "20230101-000000_aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", {"crash-old.txt": 10})  # ...after a failed one
    age(output, OLD)
    age(work, OLD)
    make_files(work / "fmriprep_23_2_wf" / "sub_06_wf" / "node2", ["being_written.nii.gz"])  # fMRIPrep is at work on sub-06
    return output, work


def test_every_status_is_detected_with_its_evidence(study):
    output, work = study
    dataset = discover(str(output))
    statuses = StatusBook(dataset, time.time(), 3600).statuses()
    assert {label: s.status for label, s in statuses.items()} == {
        "01": "finished", "02": "finished", "03": "finished", "04": "failed", "05": "incomplete", "06": "running", "07": "finished"}
    assert "1 crash file(s) in the newest run" in statuses["04"].evidence[0] and statuses["04"].crash_files == 1
    assert "no report sub-05.html" in statuses["05"].evidence[0]
    assert "changed" in statuses["06"].evidence[0] and "within --min-age" in statuses["06"].evidence[0]
    assert statuses["07"].runs == 2 and statuses["07"].newest_run.startswith("20240201")
    assert statuses["01"].fmriprep_version == "23.2.0" and "MNI152NLin2009cAsym" in statuses["01"].output_spaces
    assert statuses["01"].recorded_work_dir == "/scratch/work"


def test_working_directory_found_beside_the_output_and_container_path_warned(study):
    output, work = study
    dataset = discover(str(output))
    assert dataset.workdirs == (str(work),)
    assert any("recorded in" in note and "/scratch/work" in note and "is not here" in note for note in dataset.notes)
    assert any("the work/ beside the output" in note for note in dataset.notes)


def test_recorded_work_dir_is_used_when_it_exists_here(tmp_path):
    output, elsewhere = tmp_path / "out", tmp_path / "scratch" / "w"
    demo.build_tree(str(output), [("dataset_description.json", 0)], {"dataset_description.json": demo.dataset_description("23.2.0")})
    add_subject(output, elsewhere, "01", RUN_NEW, toml=False)
    (output / "sub-01" / "log" / RUN_NEW / "fmriprep.toml").write_bytes(demo.run_config("23.2.0", RUN_NEW, "01", work_dir=str(elsewhere)))
    dataset = discover(str(output))
    assert dataset.workdirs == (str(elsewhere),)
    assert dict(dataset.found)[str(elsewhere)].startswith("recorded in ")


def test_default_keeps_failed_running_and_stopped_working_directories(study):
    output, work = study
    rows = list(build_plan(discover(str(output)), load_rulesets(["default"])))
    by_subject = {}
    for row in rows:
        if row.scope == "workdir" and row.subject:
            by_subject.setdefault(row.subject, set()).add((row.action, row.category))
    assert by_subject["04"] == {("keep", "working directory (kept: run failed)")}
    assert by_subject["05"] == {("keep", "working directory (kept: run stopped)")}
    assert by_subject["06"] == {("keep", "working directory (kept: still running)")}
    for finished in ("01", "02", "03", "07"):
        assert by_subject[finished] == {("junk", "working directory")}
    shared = {(row.action, row.category) for row in rows if row.scope == "workdir" and row.subject is None}
    assert shared == {("keep", "working directory (kept: a subject is running)")}  # sub-06 is running


def test_statuses_come_from_the_scan_without_reading_any_subject_folder_again(study, monkeypatch):
    """The scan judges each subject from the file times it reads: no second pass over the folders."""
    output, work = study
    dataset = discover(str(output))
    read_directly = StatusBook(dataset, time.time(), 3600).statuses()
    reads = []
    monkeypatch.setattr(status_module, "newest_file_time", lambda path: reads.append(path))
    plan = build_plan(dataset, load_rulesets(["default"]))
    rows = list(plan)
    from_scan = plan.run_statuses()
    assert reads == []
    assert {label: s.status for label, s in from_scan.items()} == {label: s.status for label, s in read_directly.items()}
    assert from_scan["06"].last_activity == read_directly["06"].last_activity
    assert from_scan["06"].evidence == read_directly["06"].evidence
    # the working directory's shared files (decided on every subject's status) come after the subjects' files
    workdir_subjects = [row.subject for row in rows if row.scope == "workdir"]
    first_shared = workdir_subjects.index(None)
    assert first_shared > 0 and set(workdir_subjects[first_shared:]) == {None}


def test_a_subject_with_two_working_directories_is_judged_on_both(study):
    """A re-run with a newer fMRIPrep: the old workflow folder is scanned first, the active one later."""
    output, work = study
    make_files(work / "fmriprep_22_1_wf" / "sub_06_wf" / "old_node", {"out.nii.gz": 500})
    age(work / "fmriprep_22_1_wf", OLD)
    plan = build_plan(discover(str(output)), load_rulesets(["default"]))
    rows = [row for row in plan if row.subject == "06" and row.scope == "workdir"]
    assert plan.run_statuses()["06"].status == "running"
    assert any("fmriprep_22_1_wf" in row.path for row in rows)
    assert {row.category for row in rows} == {"working directory (kept: still running)"}


def test_participant_label_reads_only_that_subjects_folders(study, monkeypatch):
    output, work = study
    reads = []
    monkeypatch.setattr(status_module, "newest_file_time", lambda path: reads.append(path))
    plan = build_plan(discover(str(output)), load_rulesets(["default"]), Selection.from_labels(["04"]))
    rows = list(plan)
    assert {row.subject for row in rows} == {"04"} and reads == []
    assert list(plan.run_statuses()) == ["04"] and plan.run_statuses()["04"].status == "failed"


def test_rules_on_subject_status_select_exactly_those_files(study, tmp_path):
    output, work = study
    rules = tmp_path / "status.yaml"
    rules.write_text("version: 1\nname: s\ndefault: keep\nrules:\n"
                     "  - {id: redo, action: junk, category: c, why: w, match: {subject_status: [failed, incomplete]}}\n"
                     "  - {id: not-finished, action: junk, category: d, why: w, match: {scope: derivatives, not: {subject_status: [finished, none]}}}\n")
    rows = list(build_plan(discover(str(output)), load_rulesets([str(rules)])))
    junk = {(row.subject, row.rule_id) for row in rows if row.action == "junk"}
    assert {subject for subject, rule in junk if rule == "redo"} == {"04", "05"}
    # sub-06 is running: its files, junk by "not-finished", are held back, never junk in the plan (nor acted on)
    assert not any(subject == "06" for subject, rule in junk)
    held = {row.path for row in rows if row.subject == "06" and row.rule_id == "held-back-running"}
    evidence = {row.path for row in rows if row.subject == "06" and row.rule_id == "run-evidence"}  # its report and run config
    assert evidence == {str(output / "sub-06.html"), str(output / "sub-06" / "log" / RUN_NEW / "fmriprep.toml")}
    assert held | evidence == {row.path for row in rows if row.subject == "06" and row.scope == "derivatives"}
    expected = sum(1 for row in rows if row.subject in ("04", "05") and row.rule_id != "run-evidence")
    assert sum(1 for row in rows if row.rule_id == "redo") == expected
    crash = output / "sub-04" / "log" / RUN_NEW / "crash-20240127-130000-fmriprep-node-04.txt"
    assert {row.rule_id for row in rows if row.path == str(crash)} == {"run-evidence"}  # sub-04's failure stays on record


def test_bad_subject_status_value_is_a_rule_error(tmp_path):
    from fmriprep_cleanup.basics.errors import CleanupError

    rules = tmp_path / "bad.yaml"
    rules.write_text("version: 1\nname: b\nrules:\n  - {id: a, action: junk, category: c, why: w, match: {subject_status: done}}\n")
    with pytest.raises(CleanupError, match=r"bad.yaml:4: rule 'a': subject_status: unknown status 'done'"):
        load_rulesets([str(rules)])


def test_malformed_toml_is_a_warning_for_that_subject(study):
    output, work = study
    broken = output / "sub-02" / "log" / "20240127-124830_24233d6a-c754-47b5-9be5-f2021d442373" / "fmriprep.toml"
    broken.write_text("[execution\nwork_dir =")
    os.utime(broken, (OLD, OLD))  # broken long ago, not just now (that would be activity)
    result = run("status", output, "--format", "json")
    assert result.exit_code == 0, result.output
    subjects = {row["subject"]: row for row in json.loads(result.stdout)["subjects"]}
    assert subjects["02"]["status"] == "finished" and "not valid TOML" in subjects["02"]["warnings"][0]
    assert "warning: sub-02: " in result.stderr and "not valid TOML" in result.stderr  # and on stderr
    report = json.loads(run("report", output, "--format", "json").stdout)
    assert any(w.startswith("sub-02: ") and "not valid TOML" in w for w in report["warnings"])


def test_status_command_table_filters_and_tsv(study):
    output, work = study
    text = run("status", output)
    assert text.exit_code == 0
    assert "sub-04: failed (1 crash file(s)" in text.output and "sub-07: finished (" in text.output and "(2 runs)" in text.output
    only = json.loads(run("status", output, "--only", "failed", "--only", "running", "--format", "json").output)
    assert {row["subject"]: row["status"] for row in only["subjects"]} == {"04": "failed", "06": "running"}
    assert only["subjects"][0]["workdir_bytes"] == 9090
    tsv = run("status", output, "--format", "tsv").output.splitlines()
    assert tsv[0].split("\t")[:3] == ["subject", "status", "runs"] and len(tsv) == 8


def test_report_shows_subjects_by_status(study):
    output, work = study
    data = json.loads(run("report", output, "--format", "json").output)
    by_status = {row["status"]: row for row in data["subjects_by_status"]}
    assert by_status["failed"]["subjects"] == 1 and by_status["failed"]["workdir_kept_bytes"] == 9090
    assert by_status["finished"]["subjects"] == 4
    text = run("report", output).output
    assert "1 failed subject: their working directories (8.9 KiB) are kept for re-runs" in text
    assert "1 running subject: fMRIPrep is still working on them" in text


def test_clean_never_touches_a_running_subject_whatever_the_rules(study):
    output, work = study
    running_files = sorted(p for p in work.rglob("*") if "sub_06_wf" in str(p) and p.is_file())
    output_files = sorted((output / "sub-06").rglob("*"))
    result = run("clean", output, "--rules", "fmriprepcleanup", "--mode", "delete", "--yes", "--format", "json")
    data = json.loads(result.output)
    assert result.exit_code == 3
    assert any(row["reason"] == "its subject's fMRIPrep run is still going (status running)" for row in data["skipped"])
    assert sorted(p for p in work.rglob("*") if "sub_06_wf" in str(p) and p.is_file()) == running_files
    assert sorted((output / "sub-06").rglob("*")) == output_files
    assert not (work / "fmriprep_23_2_wf" / "sub_04_wf").exists()  # the blunt set junks failed runs, as it says


def test_fmriprep_1x_output_without_run_folders_is_unknown(tmp_path):
    out = tmp_path / "OUT"
    make_files(out, {"fmriprep/sub-01.html": 10, "fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 10,
                     "work/fmriprep_wf/single_subject_01_wf/n/out.nii.gz": 5000})
    (out / "fmriprep" / "dataset_description.json").write_bytes(demo.dataset_description("1.5.8", legacy=True))
    age(out, OLD)
    dataset = discover(str(out))
    status = StatusBook(dataset, time.time(), 3600).statuses()["01"]
    assert status.status == "unknown" and "no run folders" in status.evidence[0]
    rows = [r for r in build_plan(dataset, load_rulesets(["default"])) if r.scope == "workdir"]
    assert {(r.action, r.category) for r in rows} == {("keep", "working directory (kept: status unknown)")}


def test_html_report_shows_subjects_by_status(study, tmp_path):
    output, work = study
    page = tmp_path / "r.html"
    assert run("report", output, "--format", "html", "--output", page).exit_code == 0
    html = page.read_text()
    assert "Subjects by fMRIPrep run status" in html
    assert '<tr data-status="failed"><td>failed</td><td>1</td>' in html and 'data-workdir-kept="9090"' in html
    assert "1 failed subject: their working directories (8.9 KiB) are kept for re-runs" in html


def test_no_work_dir_leaves_the_working_directory_out(study):
    output, work = study
    data = json.loads(run("report", output, "--no-work-dir", "--format", "json").output)
    assert data["dataset"]["workdirs"] == [] and not any(row["category"].startswith("working directory") for row in data["by_category"])
    assert run("report", output, "--no-work-dir", "--work-dir", work).exit_code == 2


@pytest.mark.parametrize("stamp", ["20240127-124830", "20240229-235960", "20230229-120000", "20240230-000000",
                                   "20241301-000000", "20240101-240000", "20240101-236000", "20240101-235961",
                                   "20240101-235962", "19991231-235959"])
def test_a_run_folders_time_is_what_strptime_reads_from_its_name(stamp):
    """The run folder's time stamp (local time) read without time.strptime, which took a third of reading a
    subject's evidence: the same times, and the same refusals (30 February, hour 24)."""
    from fmriprep_cleanup.fmriprep.evidence import run_time

    try:
        expected = time.mktime(time.strptime(stamp, "%Y%m%d-%H%M%S"))
    except ValueError:
        expected = None
    assert run_time(f"{stamp}_0c970070-7984-4260-b527-e484380e8f41") == expected


def test_a_containerized_runs_working_directory_inside_the_dataset_is_its_own(tmp_path):
    """`datalad containers-run` of fMRIPrep saves work/ inside the dataset; the container recorded its own paths
    (output_dir /tmp, work_dir /tmp/work - /tmp exists here too). The same run UUID in the output's log folder and
    in the working directory ties them: judged with its working directory by default."""
    out = tmp_path / "ds"
    write_description(out)
    finish_subjects(out, ["01"])
    container = demo.run_config("23.2.0", FINISHED_RUN, "01", work_dir="/tmp/work").replace(b'"/out"', b'"/tmp"')
    (out / "sub-01" / "log" / FINISHED_RUN / "fmriprep.toml").write_bytes(container)
    write(out / "work" / FINISHED_RUN / "config.toml", container)
    write(out / "work" / "fmriprep_23_2_wf" / f"fsdir_run_{FINISHED_RUN.replace('-', '_')}" / "_report" / "report.rst",
          b"cmdline: /tmp/sourcedata/freesurfer\n")
    write(out / "work" / "fmriprep_23_2_wf" / "sub_01_wf" / "node" / "out.nii.gz", b"cache" * 1000)
    age_run(out)
    data = json.loads(run("report", out, "--format", "json").stdout)
    assert data["dataset"]["workdirs"] == [str(out / "work")], data["warnings"]
    assert not any("left out" in warning for warning in data["warnings"])
    assert data["by_category"][0]["junk_bytes"] >= 5000  # the finished subject's cache: reclaimable


def test_a_working_directory_left_out_inside_the_dataset_is_its_own_row_not_kept_outputs(tmp_path):
    """A work/ inside the output whose run folders are another output's is left out, and its files were counted
    as 4,153 kept "other outputs": its category says what it is, in the table itself, and explain says why."""
    out = tmp_path / "ds"
    write_description(out)
    finish_subjects(out, ["01"])
    theirs = tmp_path / "elsewhere"  # another dataset's run (a different run UUID, its own output directory)
    write_description(theirs)
    other_run = "20240101-000000_11111111-1111-4111-8111-111111111111"
    write(out / "work" / other_run / "config.toml",
          demo.run_config("23.2.0", other_run, "01").replace(b'"/out"', f'"{theirs}"'.encode()))
    write(out / "work" / "fmriprep_23_2_wf" / "sub_01_wf" / "node" / "out.nii.gz", b"cache" * 1000)
    age_run(out)
    data = json.loads(run("report", out, "--format", "json").stdout)
    assert data["dataset"]["workdirs"] == [] and any("left out" in warning for warning in data["warnings"])
    rows = {row["category"]: row for row in data["by_category"]}
    left = rows["left out: another run's working directory"]
    assert left["files"] == 2 and left["junk_bytes"] == 0 and left["keep_bytes"] >= 5000
    assert "other outputs" not in rows or rows["other outputs"]["bytes"] < 5000
    text = run("report", out).stdout
    assert "left out: another run's working directory" in text
    explained = run("explain", out, out / "work" / "fmriprep_23_2_wf" / "sub_01_wf" / "node" / "out.nii.gz")
    assert "KEEP" in explained.stdout and str(theirs) in explained.stdout, explained.stdout
