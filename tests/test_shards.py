"""Scans in shards: partial results merged into exactly the report an unsharded scan gives, in processes, as
separate commands, and refusals for partials that are not one scan."""

import json
import os

import pytest
from conftest import DATA, LONG_AGO, ci_listing, finish_subjects, make_files, write_description
from conftest import cli as run


def report(*args):
    result = run("report", *args, "--format", "json", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def make_ds005_subjects(out, labels, extra=None):
    """fMRIPrep CI's real ds005 outputs copied for each label (sizes told apart), three working-directory nodes
    each, and shared files (a d3.js in the workflow folder, an fsaverage surface); ``extra``: more files."""
    write_description(out)
    listing = [path for path in ci_listing(DATA / "ds005_outputs.txt") if path != "dataset_description.json"]
    files = {}
    for label in labels:
        for path in listing:
            files[path.replace("sub-01", f"sub-{label}")] = 100 + len(path) + int(label)
        files.update({f"work/fmriprep_23_2_wf/sub_{label}_wf/n{n}/out.nii.gz": 5000 * n + int(label) for n in range(3)})
    files.update({"work/fmriprep_23_2_wf/d3.js": 99, "sourcedata/freesurfer/fsaverage/surf/lh.white": 4000,
                  **(extra or {})})
    make_files(out, files)


@pytest.fixture
def many_subjects(tmp_path):
    """fMRIPrep CI's real ds005 output tree for 9 subjects, a working directory with a running subject."""
    out = tmp_path / "ds005"
    labels = [f"{n:02d}" for n in range(1, 10)]
    make_ds005_subjects(out, labels)
    finish_subjects(out, labels[:-1])  # sub-09: no report (incomplete); the others finished long ago
    return out


def shard_files(command, suffix, tmp_path, out, shards, *options):
    """Run ``command`` (report or plan) once per shard; the partial results' paths, shard 1 first."""
    paths = []
    for shard in range(1, shards + 1):
        partial = tmp_path / f"{command}-{shards}-{shard}-{len(list(tmp_path.glob(f'{command}-*')))}.{suffix}"
        result = run(command, out, *options, "--shard", f"{shard}/{shards}", "--partial-out", partial, "-q")
        assert result.exit_code == 0, result.output
        paths.append(partial)
    return paths


def merged(tmp_path, out, shards, *options):
    return shard_files("report", "json", tmp_path, out, shards, *options)


@pytest.mark.parametrize("shards", [1, 2, 7, 9])  # 9: one per subject
def test_merged_shards_give_the_unsharded_report_byte_for_byte(many_subjects, tmp_path, shards):
    whole = run("report", many_subjects, "--format", "json", "-q").stdout
    partials = merged(tmp_path, many_subjects, shards)
    assert run("merge", *partials, "--format", "json", "-q").stdout == whole
    assert run("merge", *reversed(partials), "-q").stdout == run("report", many_subjects, "-q").stdout
    assert run("merge", *partials, "--format", "csv", "-q").stdout == run("report", many_subjects, "--format",
                                                                           "csv", "-q").stdout
    data = json.loads(whole)
    assert data["totals"]["junk_bytes"] > 0 and {row["status"] for row in data["subjects_by_status"]} == {
        "finished", "unknown"}  # sub-09 has no report: its cache is kept, and must stay kept when merged


def test_selection_and_rules_travel_with_the_shards(many_subjects, tmp_path):
    options = ("--participant-label", "02", "--participant-label", "05", "--participant-label", "07",
               "--rules", "volume-only", "--junk", "*.json")
    partials = merged(tmp_path, many_subjects, 2, *options)
    assert run("merge", *partials, "--format", "json", "-q").stdout == \
        run("report", many_subjects, *options, "--format", "json", "-q").stdout


def test_processes_give_the_same_report(many_subjects):
    assert report(many_subjects, "--jobs", "2") == report(many_subjects) == report(many_subjects, "--jobs", "3")


def test_a_missing_shard_is_named_and_mismatched_partials_refused(many_subjects, tmp_path):
    partials = merged(tmp_path, many_subjects, 3)
    missing = run("merge", partials[0], partials[2])
    assert missing.exit_code == 2 and "missing shard(s) 2/3" in missing.output
    twice = run("merge", partials[0], partials[0], partials[1])
    assert twice.exit_code == 2 and "given twice" in twice.output
    other = merged(tmp_path, many_subjects, 3, "--rules", "volume-only")
    mixed = run("merge", partials[0], other[1], partials[2])
    assert mixed.exit_code == 2 and "differ in their" in mixed.output
    two = merged(tmp_path, many_subjects, 2)
    counts = run("merge", partials[0], two[1])
    assert counts.exit_code == 2 and "differ in their shard count" in counts.output
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert "not an fmriprep-cleanup partial" in run("merge", tmp_path / "junk.json").output
    assert run("report", many_subjects, "--shard", "4/3", "--partial-out", tmp_path / "x.json").exit_code == 2
    assert "go together" in run("report", many_subjects, "--shard", "1/3").output


def test_an_audit_in_shards_is_the_audit(many_subjects, tmp_path):
    area = many_subjects.parent
    for name in ("ds-b", "ds-c", "ds-d"):
        other = area / "project" / name / "derivatives" / "fmriprep"
        write_description(other)
        make_files(other, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 1000 + len(name),
                           "work/fmriprep_23_2_wf/sub_01_wf/n/out.nii.gz": 50_000})
        finish_subjects(other, ["01"])
    whole = json.loads(run("audit", area, "--format", "json", "-q", "--country", "FR").stdout)
    partials = []
    for shard in (1, 2, 3):
        path = tmp_path / f"audit-{shard}.json"
        result = run("audit", area, "--shard", f"{shard}/3", "--partial-out", path, "-q", "--country", "FR")
        assert result.exit_code == 0, result.output
        partials.append(path)
    merged = json.loads(run("merge", *partials, "--format", "json", "-q").stdout)
    for data in (whole, merged):
        data.pop("created"), data.pop("command")
    assert merged == whole and len(whole["datasets"]) == 4
    assert run("merge", *partials, "-q").stdout == run("audit", area, "-q", "--country", "FR").stdout
    report_partial = merged_paths = tmp_path / "r.json"
    run("report", many_subjects, "--shard", "1/3", "--partial-out", report_partial, "-q")
    mixed = run("merge", partials[0], merged_paths, partials[2])
    assert mixed.exit_code == 2 and "differ in their kind" in mixed.output


STATUS_RULES = (
    "version: 1\nname: by-status\nextends: default\nrules:\n"
    "  - {id: finished-transforms, action: junk, category: transforms, why: w,"
    " match: {scope: derivatives, path: 'sub-*/anat/*_xfm.*', subject_status: finished}}\n"
    "  - {id: qc, action: junk, category: qc, why: w, match: {scope: derivatives, path: 'sub-*_qc.json'}}\n"
    "  - {id: shared-while-any-unknown, action: junk, category: shared, why: w,"
    " match: {scope: workdir, path: '**/*.js', any_subject_status: unknown}}\n"
    "  - {id: templates-once-finished, action: junk, category: templates, why: w,"
    " match: {scope: freesurfer, any_subject_status: finished}}\n")


@pytest.fixture
def busy_subjects(many_subjects, tmp_path):
    """The nine subjects, sub-04 running (its working directory written a minute ago), and rules that read
    each subject's status, any subject's status, and junk per-subject files at the dataset's top (so the
    top folder's files wait for different subjects)."""
    import time

    make_files(many_subjects, {f"sub-{n:02d}_qc.json": 10 + n for n in range(1, 10)})
    for n in range(1, 10):
        os.utime(many_subjects / f"sub-{n:02d}_qc.json", (LONG_AGO, LONG_AGO))
    os.utime(many_subjects / "sub-02_qc.json", (time.time() - 300, time.time() - 300))  # held back as recent
    newest = many_subjects / "work/fmriprep_23_2_wf/sub_04_wf/n1/out.nii.gz"
    os.utime(newest, (time.time() - 60, time.time() - 60))
    rules = tmp_path / "by-status.yaml"
    rules.write_text(STATUS_RULES)
    return many_subjects, rules


def sharded_plan(tmp_path, out, shards, *options):
    return shard_files("plan", "jsonl", tmp_path, out, shards, *options)


@pytest.mark.parametrize("shards", [1, 2, 7, 9])
@pytest.mark.parametrize("subject_rules", [True, False])  # False: the top folder's files wait for their subjects
def test_merged_plan_shards_give_the_unsharded_plan_byte_for_byte(busy_subjects, tmp_path, shards, subject_rules):
    out, rules = busy_subjects
    if not subject_rules:  # no rule reads a subject's status in the outputs: nothing asks before the walk does
        rules.write_text(STATUS_RULES.replace("_xfm.*', subject_status: finished", "_xfm.*', min_size: 1T"))
    options = ("--rules", rules, "--min-age", "10m")
    whole = run("plan", out, *options, "-q").stdout
    partials = sharded_plan(tmp_path, out, shards, *options)
    assert run("merge", *partials, "-q").stdout == whole
    for fmt in ("jsonl", "csv"):
        assert run("merge", *reversed(partials), "--format", fmt, "-q").stdout == \
            run("plan", out, *options, "--format", fmt, "-q").stdout
    assert run("merge", *partials, "--action", "junk", "-q").stdout == run("plan", out, *options, "--action", "junk",
                                                                         "-q").stdout
    rows = [line.split("\t") for line in whole.splitlines()[1:]]
    rules_used = {row[2] for row in rows}
    assert {"qc", "held-back-running", "held-back-shared", "held-back-recent"} | (
        {"finished-transforms"} if subject_rules else set()) <= rules_used, rules_used  # every kind of wait the plan's order depends on
    assert len(rows) == len({row[4] for row in rows})  # each file once


def test_merged_plan_with_rules_on_every_subjects_status(busy_subjects, tmp_path):
    out, rules = busy_subjects
    os.utime(out / "work/fmriprep_23_2_wf/sub_04_wf/n1/out.nii.gz", (LONG_AGO, LONG_AGO))  # nobody runs now
    whole = run("plan", out, "--rules", rules, "-q").stdout
    assert {"shared-while-any-unknown", "templates-once-finished"} <= {
        line.split("\t")[2] for line in whole.splitlines()}
    assert run("merge", *sharded_plan(tmp_path, out, 4, "--rules", rules), "-q").stdout == whole


def test_plan_shards_with_a_selection(busy_subjects, tmp_path):
    out, rules = busy_subjects
    options = ("--rules", rules, "--participant-label", "03", "--participant-label", "04", "--participant-label", "08")
    partials = sharded_plan(tmp_path, out, 2, *options)
    assert run("merge", *partials, "--format", "jsonl", "-q").stdout == \
        run("plan", out, *options, "--format", "jsonl", "-q").stdout


def test_plan_partials_missing_or_mixed_are_refused(many_subjects, tmp_path):
    partials = sharded_plan(tmp_path, many_subjects, 3)
    missing = run("merge", partials[0], partials[1])
    assert missing.exit_code == 2 and "missing shard(s) 3/3" in missing.output
    report_partials = merged(tmp_path, many_subjects, 3)
    mixed = run("merge", partials[0], report_partials[1], partials[2])
    assert mixed.exit_code == 2 and "differ in their kind" in mixed.output
    assert "--format html is a report's" in run("merge", *partials, "--format", "html").output
    assert "--action is a plan's" in run("merge", *report_partials, "--action", "junk").output
    broken = tmp_path / "broken.jsonl"
    broken.write_text(partials[1].read_text().splitlines()[0] + "\n[1, 2\n")
    result = run("merge", partials[0], broken, partials[2])
    assert result.exit_code == 2 and "broken.jsonl:2" in result.output


def listing(root):
    """Every path below root but the tool's own state (journals differ in number and names)."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if ".fmriprep-cleanup" not in path.parts)


def test_clean_in_shards_then_the_shared_files_removes_what_one_clean_removes(busy_subjects, tmp_path):
    import shutil

    out, rules = busy_subjects
    twin = tmp_path / "twin" / "ds005"
    shutil.copytree(out, twin, symlinks=True)
    whole = run("clean", twin, "--rules", rules, "--mode", "delete", "--yes", "-q")
    assert whole.exit_code == 3 and "Skipped 1 file (14 B): its subject's fMRIPrep run" in whole.output
    for shard, expected in ((1, 3), (2, 3), (3, 0)):  # 1: sub-04 runs; 2: sub-02's recent file waits
        result = run("clean", out, "--rules", rules, "--array-task", f"{shard}/3", "--mode", "delete", "--yes", "-q",
                     "--format", "json")
        assert result.exit_code == expected, (shard, result.output)
        removed = json.loads(result.stdout)
        assert removed["files"] > 0 and not removed["dry_run"]  # its subjects' caches
    assert (out / "work/fmriprep_23_2_wf/d3.js").exists()  # shared: not a shard's to judge
    shared = run("clean", out, "--rules", rules, "--shared-only", "--mode", "delete", "--yes", "-q")
    assert shared.exit_code == 3 and "shared by every subject, and some subject is still running" in shared.output
    assert listing(out) == listing(twin)
    assert (out / "work/fmriprep_23_2_wf/sub_04_wf").exists()  # sub-04 runs: kept by both
    assert not (out / "work/fmriprep_23_2_wf/sub_01_wf/n0/out.nii.gz").exists()


def hold_lock(state_dir, subjects=None):
    """Another process holding the dataset's lock (exclusively, or as the shard of these subjects)."""
    import subprocess
    import sys

    code = ("import sys, time; from fmriprep_cleanup.act.lock import RunLock\n"
            f"with RunLock({str(state_dir)!r}, subjects={subjects!r}):\n"
            "    print('held', flush=True); sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_shard_locks_cover_their_subjects_and_refuse_a_second_array(many_subjects, tmp_path):
    import subprocess
    import sys

    state = many_subjects / ".fmriprep-cleanup"
    def clean(*args):
        return subprocess.run([sys.executable, "-m", "fmriprep_cleanup", "clean", str(many_subjects), "--mode",
                               "delete", "--yes", "-q", *args], capture_output=True, text=True, timeout=120)

    holder = hold_lock(state, ["02", "05"])  # a shard of another array, at work on sub-02 and sub-05
    try:
        other = clean("--array-task", "2/3")  # sub-02, sub-05, sub-08
        assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr
        assert "sub-02" in other.stderr and "another array" in other.stderr
        assert (many_subjects / "work/fmriprep_23_2_wf/sub_02_wf/n0/out.nii.gz").exists()
        assert (many_subjects / "work/fmriprep_23_2_wf/sub_08_wf/n0/out.nii.gz").exists()
        sibling = clean("--array-task", "1/3")  # sub-01, 04, 07: a sibling shard works alongside
        assert sibling.returncode == 0, sibling.stderr
        assert not (many_subjects / "work/fmriprep_23_2_wf/sub_01_wf/n0/out.nii.gz").exists()
        whole = clean()
        assert whole.returncode == 2 and "another fmriprep-cleanup run" in whole.stderr
        assert clean("--shared-only").returncode == 2
    finally:
        holder.communicate("")
    holder = hold_lock(state)  # an exclusive run: no shard may start
    try:
        refused = clean("--array-task", "3/3")
        assert refused.returncode == 2 and "another fmriprep-cleanup run" in refused.stderr
    finally:
        holder.communicate("")
    assert clean("--array-task", "2/3").returncode == 0
    assert not (many_subjects / "work/fmriprep_23_2_wf/sub_02_wf/n0/out.nii.gz").exists()
    assert "--array-task and --shared-only" in run("clean", many_subjects, "--array-task", "1/2", "--shared-only").output


@pytest.fixture
def seventeen_subjects(tmp_path, monkeypatch):
    """17 subjects of fMRIPrep CI's ds005 outputs (enough for processes by default), with what makes order and
    warnings hard: a running subject (junk held back), one without a report, a broken run config (an evidence
    warning), hard-linked junk, files of no subject at the top and in the working directory, and two folders the
    scan cannot read (in subjects of different processes)."""
    import fmriprep_cleanup.basics.diskwalk as walking
    import fmriprep_cleanup.basics.folders as folders

    out = tmp_path / "ds"
    labels = [f"{n:02d}" for n in range(1, 18)]
    make_ds005_subjects(out, labels, {"work/notes.txt": 7, "README": 5})
    finish_subjects(out, labels[:-2])  # sub-16 runs (below), sub-17 has no report
    running = out / "work/fmriprep_23_2_wf/sub_16_wf/n0/out.nii.gz"
    os.utime(running)  # just written: sub-16 is running
    broken = next((out / "sub-03/log").iterdir()) / "fmriprep.toml"
    broken.write_text("[execution\n")
    os.utime(broken, (LONG_AGO, LONG_AGO))
    os.link(out / "work/fmriprep_23_2_wf/sub_05_wf/n1/out.nii.gz", out / "work/fmriprep_23_2_wf/sub_06_wf/n2/twin.nii.gz")
    real = walking.list_directory

    def listing_with_problems(path, *more, **options):  # in this tree and in copies of it
        unreadable = path.endswith(("/work/fmriprep_23_2_wf/sub_02_wf/n2", "/sub-07/anat"))
        return folders._no_listing("Permission denied") if unreadable else real(path, *more, **options)

    monkeypatch.setattr(walking, "list_directory", listing_with_problems)
    return out


@pytest.mark.parametrize("command", [("report", "--format", "json"), ("report",), ("plan",),
                                     ("plan", "--format", "jsonl", "--action", "junk")])
def test_the_default_run_is_byte_identical_to_one_process(seventeen_subjects, monkeypatch, command):
    """Processes by default (every usable core, here two) change nothing in what is printed, warnings included."""
    import fmriprep_cleanup.basics.mounts as mounts

    monkeypatch.setattr(mounts, "usable_cores", lambda: 2)
    from fmriprep_cleanup.api import open_plan

    assert open_plan(str(seventeen_subjects)).processes == 2  # the default really runs two processes here
    one = run(*command, seventeen_subjects, "--jobs", "1", "-q")
    default = run(*command, seventeen_subjects, "-q")
    three = run(*command, seventeen_subjects, "--jobs", "3", "-q")
    assert one.exit_code == default.exit_code == three.exit_code
    assert default.stdout == one.stdout and three.stdout == one.stdout
    assert default.stderr == one.stderr and three.stderr == one.stderr
    said = one.stdout + one.stderr
    if command[0] != "status":
        assert "sub_02_wf/n2: Permission denied" in said and "sub-07/anat: Permission denied" in said
    assert "sub-03" in said


def test_a_clean_in_processes_removes_and_records_what_one_process_does(seventeen_subjects, tmp_path, monkeypatch):
    """clean's scan in processes: the same files removed, in the same order, as in one process."""
    import subprocess

    import fmriprep_cleanup.basics.mounts as mounts

    monkeypatch.setattr(mounts, "usable_cores", lambda: 2)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(seventeen_subjects), str(copy)], check=True)  # hard links kept
    results = []
    for tree, jobs in ((seventeen_subjects, "1"), (copy, "2")):
        result = run("clean", tree, "--mode", "delete", "--yes", "--jobs", jobs, "--format", "json", "-q")
        assert result.exit_code in (0, 3), result.output
        data = json.loads(result.stdout)
        results.append(({key: data[key] for key in ("files", "bytes", "by_category", "skipped", "left")},
                        sorted(str(p.relative_to(tree)) for p in tree.rglob("*")
                               if p.is_file() and ".fmriprep-cleanup" not in p.parts)))
    assert results[0] == results[1] and results[0][0]["files"] > 0 and results[0][0]["skipped"]


def test_the_recorded_command_leaves_out_jobs_so_reports_made_with_any_jobs_are_identical(seventeen_subjects):
    """In a real process (the command line is recorded): the JSON of the default run and of --jobs 1 and -j3."""
    import subprocess
    import sys

    def report_json(*extra):
        return subprocess.run([sys.executable, "-m", "fmriprep_cleanup", "report", str(seventeen_subjects), "--format",
                               "json", "-q", *extra], capture_output=True, check=False).stdout

    default = report_json()
    assert b'"command": "fmriprep-cleanup report ' in default
    assert report_json("--jobs", "1") == default == report_json("-j3") == report_json("--jobs=2")
