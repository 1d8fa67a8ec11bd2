"""Issue 17: no silent no-ops, progress, a confirmation that says where, one error format, output people read."""

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import cli as run
from conftest import finish_subjects, make_files, on_a_sized_terminal, write_description

from fmriprep_cleanup.cli import cli


@pytest.fixture
def project(tmp_path):
    out = tmp_path / "out"
    write_description(out, "23.2.0")
    make_files(out, {
        "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000,
        "sub-02/func/sub-02_task-x_desc-confounds_timeseries.tsv": 300,
        "sub-03/anat/sub-03_desc-preproc_T1w.nii.gz": 5000,
        "sourcedata/freesurfer/fsaverage/surf/lh.white": 4000,
        "work/fmriprep_23_2_wf/sub_01_wf/n/_node.pklz": 100_000,
        "work/fmriprep_23_2_wf/sub_02_wf/n/out.nii.gz": 200_000,
        "work/fmriprep_23_2_wf/sub_03_wf/n/out.nii.gz": 300_000,
    })
    finish_subjects(out, ["01", "02", "03"])
    return out


def files_under(root):
    """Every file below root, less the tool's own lock and journal folder."""
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names
                  if ".fmriprep-cleanup" not in d)


# --- labels: a label that selects nothing is an error, not a silent no-op ---------------------------------------

@pytest.mark.parametrize("command", [["report"], ["plan"], ["status"], ["clean"], ["clean", "--mode", "delete", "--yes"]])
def test_a_participant_label_matching_no_subject_is_an_error_listing_the_subjects(project, command):
    before = files_under(project)
    result = run(command[0], project, *command[1:], "--participant-label", "99")
    assert result.exit_code == 2, result.output
    assert "sub-99" in result.output and "01, 02, 03" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert files_under(project) == before  # no journal, no state folder
    assert not (project / ".fmriprep-cleanup").exists()


def test_one_good_and_one_unknown_label_is_still_an_error(project):
    result = run("report", project, "--participant-label", "01", "7")
    assert result.exit_code == 2 and "sub-7" in result.output and "sub-01" not in result.output.split("subjects")[0]


def write_policy(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("key", ["participant_labels", "exclude_participant_labels"])
def test_an_unquoted_label_in_a_policy_is_an_error_with_line_and_fix(project, tmp_path, key):
    policy = write_policy(tmp_path / "p.yaml", f"version: 1\ndatasets:\n  - paths: [{project}]\n    mode: dry-run\n"
                                                f"    {key}: [01, 03]\n")
    result = run("run", policy)
    assert result.exit_code == 2, result.output
    assert f"{policy}:5:" in result.output and '"01"' in result.output and "number" in result.output


def test_an_unquoted_subject_in_a_rule_is_an_error_with_line_and_fix(tmp_path):
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\nextends: default\nrules:\n  - id: mine\n    action: keep\n    why: mine\n"
                     "    match: {subject: 03}\n")
    result = run("rules", "validate", rules)
    assert result.exit_code == 2
    assert f"{rules}:7:" in result.output and '"03"' in result.output


def test_a_policy_label_that_matches_no_subject_fails_that_dataset(project, tmp_path):
    policy = write_policy(tmp_path / "p.yaml", f'version: 1\ndatasets:\n  - paths: [{project}]\n    mode: delete\n'
                                                f'    exclude_participant_labels: ["3"]\n')
    before = files_under(project)
    result = run("run", policy)
    assert result.exit_code == 4, result.output
    assert "sub-3" in result.output and "01, 02, 03" in result.output
    assert files_under(project) == before


def test_restore_of_a_subject_no_archive_holds_is_an_error(project, tmp_path):
    archives = tmp_path / "archives"
    assert run("clean", project, "--mode", "archive", "--archive-dir", archives, "--yes",
               "--participant-label", "01").exit_code == 0
    result = run("restore", archives, "--participant-label", "99")
    assert result.exit_code == 2, result.output
    assert "sub-99" in result.output and "01" in result.output


def test_history_in_a_folder_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "no" / "such" / "h.sqlite"
    result = run("history", "--history", missing)
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "no").exists()


def test_clean_with_a_history_in_a_missing_folder_changes_nothing(project, tmp_path):
    before = files_under(project)
    result = run("clean", project, "--mode", "delete", "--yes", "--history", tmp_path / "no" / "h.sqlite")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert files_under(project) == before


def test_rules_validate_lists_every_problem_in_one_pass(tmp_path):
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\nname: x\nextends: nosuch\nrules:\n  - id: mine\n    action: keep\n    category: a\n"
                     "    match: {subject: 03, bogus: 1}\n  - id: two\n    action: keepx\n")
    result = run("rules", "validate", rules)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert all(line.startswith(f"fmriprep-cleanup: error: {rules}:") for line in lines)
    for expected in ("extends 'nosuch'", "missing why", '"03"', "'bogus'", "missing category, why, match",
                     "unknown action 'keepx'"):
        assert any(expected in line for line in lines), (expected, lines)


def test_a_misspelt_rule_set_name_gets_a_suggestion(project):
    result = run("report", project, "--rules", "volume_only")
    assert result.exit_code == 2
    assert "did you mean 'volume-only'?" in result.output


# --- the confirmation says where, and "no" is not an error ---------------------------------------------------------

@pytest.fixture
def beside(tmp_path):
    """An output with its working directory beside it (fMRIPrep's OUTPUT_DIR/work), found without --work-dir."""
    out = tmp_path / "derivatives" / "fmriprep"
    write_description(out, "23.2.0")
    make_files(out, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000,
                     "sourcedata/freesurfer/fsaverage/surf/lh.white": 4000})
    make_files(tmp_path / "derivatives" / "work", {"fmriprep_23_2_wf/sub_01_wf/n/out.nii.gz": 300_000})
    finish_subjects(out, ["01"])
    os.utime(tmp_path / "derivatives" / "work" / "fmriprep_23_2_wf/sub_01_wf/n/out.nii.gz", (1.6e9, 1.6e9))
    return out


def test_the_question_shows_the_folders_and_no_is_exit_0(beside, monkeypatch):
    from fmriprep_cleanup.cli import common

    monkeypatch.setattr(common, "interactive", lambda: True)
    workdir = beside.parent / "work"
    before = files_under(beside.parent)
    result = run("clean", beside, "--mode", "delete", input="n\n")
    assert result.exit_code == 0, result.output
    out = result.output
    question = out.index("Delete these files now?")
    for shown in (f"derivatives        {beside}", f"{beside}/sourcedata/freesurfer", f"working directory  {workdir}",
                  "(the work/ beside the output)", "To delete 2 files"):
        assert shown in out[:question], (shown, out)
    assert "Dry run" not in out and "error" not in out
    assert out[question:].strip().endswith("Nothing was changed.")
    assert files_under(beside.parent) == before


def test_the_dry_run_shows_the_folders_too(beside):
    result = run("clean", beside)
    assert result.exit_code == 0
    assert result.output.index("(the work/ beside the output)") < result.output.index("Would remove 2 files")
    data = json.loads(run("clean", beside, "--format", "json").stdout)
    assert [(folder["scope"], folder["found"]) for folder in data["folders"]] == [
        ("derivatives", "the folder given"), ("freesurfer", "sourcedata/freesurfer in the output"),
        ("workdir", "the work/ beside the output")]


# --- progress: on a terminal, for every long phase; never on a pipe -------------------------------------------

def run_with_stderr(args, terminal, cwd=None):
    """Run the CLI with stderr on a pseudo-terminal (or a pipe); returns (exit code, what stderr received)."""
    import pty

    command = [sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", *map(str, args)]
    if not terminal:
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        return done.returncode, done.stderr.decode()
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(), b"".join(chunks).decode()


@pytest.mark.parametrize("command, phases", [
    (["report", "{out}"], ["scanning: "]),
    (["status", "{out}"], ["scanning: "]),
    (["plan", "{out}", "-o", "{tmp}/plan.tsv"], ["scanning: "]),
    (["clean", "{out}", "--mode", "delete", "--yes"], ["scanning: ", "removing: "]),
    (["clean", "{out}", "--mode", "archive", "--yes", "--archive-dir", "{tmp}/a"], ["scanning: ", "archiving: ",
                                                                                      "removing: "]),
])
def test_progress_is_shown_on_a_terminal_and_wiped(project, tmp_path, command, phases):
    args = [part.format(out=project, tmp=tmp_path) for part in command]
    code, seen = run_with_stderr(args + ["--history", tmp_path / "h.sqlite"] if args[0] == "clean" else args, True)
    assert code == 0, seen
    for phase in phases:
        assert phase in seen, (phase, seen)
    assert seen.endswith("\r\x1b[K")  # the last thing written wipes the line: nothing stale is left


def test_restore_shows_progress_and_a_pipe_gets_none(project, tmp_path):
    archives = tmp_path / "a"
    assert run("clean", project, "--mode", "archive", "--yes", "--archive-dir", archives,
               "--history", tmp_path / "h.sqlite").exit_code == 0
    code, seen = run_with_stderr(["restore", archives, "--to", tmp_path / "back"], True)
    assert code == 0 and "restoring: " in seen
    code, seen = run_with_stderr(["report", project], False)
    assert code == 0 and "scanning" not in seen and "\r" not in seen
    code, seen = run_with_stderr(["report", project, "--quiet"], True)
    assert code == 0 and "scanning" not in seen


# --- audit ties working directories on scratch to their datasets, and finds orphans -------------------------------

RUN_ID = "20240101-120000_0c970070-7984-4260-b527-e484380e8f41"
LONG_AGO = 1_600_000_000


def scratch_workdir(path, output_dir, subjects=("01",), size=1_000_000, mtime=LONG_AGO):
    """A working directory as `fmriprep ... -w path` leaves it: a workflow folder and a run folder whose
    config.toml records the output directory the container saw."""
    from fmriprep_cleanup.fmriprep import demo

    make_files(path, {f"fmriprep_23_2_wf/sub_{s}_wf/node{n}/out.nii.gz": size for s in subjects for n in range(3)})
    (path / RUN_ID).mkdir(parents=True)
    (path / RUN_ID / "config.toml").write_bytes(
        demo.run_config("23.2.0", RUN_ID, subjects[0]).replace(b'output_dir = "/out"',
                                                               f'output_dir = "{output_dir}"'.encode()))
    for folder, _, names in os.walk(path):
        for name in names:
            os.utime(os.path.join(folder, name), (mtime, mtime))


def test_audit_ties_a_scratch_working_directory_to_its_dataset_through_a_path_map(tmp_path):
    project, scratch = tmp_path / "project", tmp_path / "scratch"
    output = project / "ds001" / "derivatives" / "fmriprep"
    write_description(output, "23.2.0")
    make_files(output, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000})
    two_days_ago = time.time() - 2 * 86400  # a cache from this week: not stale on its own
    finish_subjects(output, ["01"], mtime=two_days_ago + 3600)  # the report is written last
    scratch_workdir(scratch / "me" / "work", "/out", mtime=two_days_ago)  # the container saw the output as /out

    alone = json.loads(run("audit", project, scratch, "--format", "json").stdout)
    assert len(alone["datasets"]) == 2  # without the map the two cannot be tied: nothing is guessed
    assert all(row["orphan_of"] is None for row in alone["datasets"])
    on_scratch = next(row for row in alone["datasets"] if row["layout"] == "workdir")
    assert on_scratch["junk_bytes"] < 100_000  # the under-report: judged alone, the cache looks unfinished

    result = run("audit", project, scratch, "--format", "json", "--path-map", f"/out={output}")
    assert result.exit_code == 0, result.output
    tied = json.loads(result.stdout)
    assert [row["path"] for row in tied["datasets"]] == [str(output)]
    row = tied["datasets"][0]
    assert str(scratch / "me" / "work") in row["workdirs"]
    assert row["junk_bytes"] >= 3_000_000  # the finished subject's cache on scratch is reclaimable
    text = run("audit", project, scratch, "--path-map", f"/out={output}").output
    assert f"{scratch / 'me' / 'work'} (its run folders record this output (/out))" in text


def test_audit_ties_through_the_work_dir_the_output_recorded(tmp_path):
    project, scratch = tmp_path / "project", tmp_path / "scratch"
    output = project / "ds001" / "derivatives" / "fmriprep"
    write_description(output, "23.2.0")
    make_files(output, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000})
    finish_subjects(output, ["01"], )
    from fmriprep_cleanup.fmriprep import demo
    run_folder = next((output / "sub-01" / "log").iterdir())
    (run_folder / "fmriprep.toml").write_bytes(demo.run_config("23.2.0", run_folder.name, "01", work_dir="/work"))
    scratch_workdir(scratch / "w", "/somewhere/else/entirely")
    data = json.loads(run("audit", project, scratch, "--format", "json", "--path-map", f"/work={scratch / 'w'}").stdout)
    assert [row["path"] for row in data["datasets"]] == [str(output)]
    assert data["datasets"][0]["folders"][-1]["found"].startswith("recorded in ")


def test_audit_reports_an_orphaned_working_directory_as_reclaimable(tmp_path):
    project, scratch = tmp_path / "project", tmp_path / "scratch"
    project.mkdir()
    scratch_workdir(scratch / "old", str(project / "ds-deleted" / "derivatives" / "fmriprep"), ("01", "02"))
    result = run("audit", scratch, "--format", "json")
    data = json.loads(result.stdout)
    row = data["datasets"][0]
    assert row["orphan_of"] == str(project / "ds-deleted" / "derivatives" / "fmriprep")
    assert row["junk_bytes"] == row["bytes"] >= 6_000_000  # a cache nobody can reuse, whatever its age
    text = run("audit", scratch).output
    assert "Orphaned working directories" in text and str(scratch / "old") in text
    status = run("status", scratch / "old", "--format", "json").stdout
    assert {subject["status"] for subject in json.loads(status)["subjects"]} == {"orphaned"}


def test_a_fresh_orphan_is_still_running_and_a_container_path_is_not_an_orphan(tmp_path):
    project, scratch = tmp_path / "project", tmp_path / "scratch"
    project.mkdir()
    scratch_workdir(scratch / "old", str(project / "gone"))
    os.utime(scratch / "old" / "fmriprep_23_2_wf/sub_01_wf/node0/out.nii.gz")  # written just now
    assert json.loads(run("status", scratch / "old", "--format", "json").stdout)["subjects"][0]["status"] == "running"
    scratch_workdir(scratch / "container", "/out")
    assert json.loads(run("audit", scratch / "container", "--format", "json").stdout)["datasets"][0]["orphan_of"] is None


# --- history: ISO times with their zone, who and where, oldest first, "1 run" ------------------------------------

@pytest.fixture
def paris_time(monkeypatch):
    """The local zone is Europe/Paris during the test (and back to what it was after)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_history_is_ordered_with_iso_times_user_and_host(tmp_path, paris_time):
    import csv
    import io
    from datetime import datetime

    from fmriprep_cleanup.ops.history import History, RunRecord

    database = History(str(tmp_path / "h.sqlite"))
    for started in (1_800_000_000, 1_700_000_000):  # recorded out of order (two hosts' clocks)
        database.add(RunRecord(started, started + 5, "/d", "default", "delete", 3, 100, 0, 0, 1.5, 0.5, 0,
                               host=f"node{started % 7}", user="alice"))
    database.close()
    data = json.loads(run("history", "--history", tmp_path / "h.sqlite", "--format", "json").stdout)
    assert [row["started"] for row in data["runs"]] == ["2023-11-14T23:13:20+01:00", "2027-01-15T09:00:00+01:00"]
    assert datetime.fromisoformat(data["runs"][0]["finished"]).timestamp() == 1_700_000_005
    rows = list(csv.DictReader(io.StringIO(run("history", "--history", tmp_path / "h.sqlite", "--format", "csv").stdout)))
    assert rows[0]["started"] == "2023-11-14T23:13:20+01:00" and rows[0]["user"] == "alice"
    text = run("history", "--history", tmp_path / "h.sqlite").stdout
    header = text.splitlines()[0].split()
    assert header[:4] == ["#", "When", "User", "Host"] and "alice" in text and "node" in text
    assert text.index("2023-11-14 23:13") < text.index("2027-01-15 09:00")
    one = History(str(tmp_path / "one.sqlite"))
    one.add(RunRecord(1_700_000_000, 1_700_000_005, "/d", "default", "delete", 3, 100, 0, 0, 1.5, 0.5, 0))
    one.close()
    assert "reclaimed in 1 run (" in run("history", "--history", tmp_path / "one.sqlite").stdout


# --- one error format, whoever finds the error --------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["report", "--bogus"], "No such option '--bogus'"),
    (["report"], "Missing argument 'PATH'"),
    (["reprot", "x"], "Did you mean 'report'?"),
    (["report", "x", "--format", "xml"], "'xml' is not one of"),
    (["clean", "x", "--mode", "zap"], "'zap' is not one of"),
    (["report", "--participant-labl", "01", "x"], "Did you mean one of: '--participant-label'"),
])
def test_usage_errors_are_one_line_in_the_one_error_format(args, says):
    code, stderr = run_with_stderr(args, terminal=False)
    assert code == 2
    assert stderr.startswith("fmriprep-cleanup: error: ") and stderr.count("\n") == 1, stderr
    assert says in stderr and "--help" in stderr


def test_help_and_version_still_exit_0():
    assert run_with_stderr(["--version"], terminal=False)[0] == 0
    assert run_with_stderr(["report", "--help"], terminal=False)[0] == 0


# --- long output: tables fit the terminal unless --wide, 20 subjects unless --all ---------------------------------

def test_tables_fit_a_width_by_shortening_long_columns_in_the_middle():
    from fmriprep_cleanup.report.people import table

    path = "/project/lab/ds003752/derivatives/fmriprep/sub-01/func/very_long_name_bold.nii.gz"
    lines = table(["Path", "Size"], [[path, "1.0 GiB"], ["/short", "2 B"]], "lr", width=50)
    assert all(len(line) <= 50 for line in lines)
    assert lines[2].startswith("/project/lab/") and "…" in lines[2] and "bold.nii.gz  1.0 GiB" in lines[2]
    assert table(["Path", "Size"], [[path, "1.0 GiB"]], "lr")[2].startswith(path)  # no width: never shortened


def test_report_lists_20_subjects_unless_all(tmp_path):
    out = tmp_path / "out"
    write_description(out, "23.2.0")
    labels = [f"{n:02d}" for n in range(1, 26)]
    make_files(out, {f"work/fmriprep_23_2_wf/sub_{label}_wf/n/out.nii.gz": 1000 * int(label) for label in labels})
    make_files(out, {f"sub-{label}/anat/sub-{label}_desc-preproc_T1w.nii.gz": 10 for label in labels})
    finish_subjects(out, labels)
    text = run("report", out).stdout
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("sub-")]
    assert listed == [f"sub-{n:02d}" for n in range(6, 26)]  # the 20 with the most junk, in label order
    assert "... and 5 more subjects" in text and "--all" in text
    everything = run("report", out, "--all").stdout
    assert len([line for line in everything.splitlines() if line.startswith("sub-")]) == 25
    assert "more subjects" not in everything


def test_a_terminal_gets_tables_that_fit_and_wide_gets_everything(project, tmp_path):
    def on_terminal(*args):
        return on_a_sized_terminal(60, *args)

    narrow = on_terminal("rules", "show", "default")
    table_lines = [line for line in narrow.splitlines() if line[:3].strip().isdigit()]
    assert table_lines and all(len(line) <= 60 for line in table_lines), [len(line) for line in table_lines]
    wide = on_terminal("rules", "show", "default", "--wide")
    assert any(len(line) > 60 for line in wide.splitlines() if line[:3].strip().isdigit())


def test_every_command_help_shows_examples():

    def commands(group, prefix):
        for name, command in group.commands.items():
            if command.hidden:  # an old spelling, kept for one release
                continue
            if hasattr(command, "commands"):
                yield from commands(command, prefix + [name])
            else:
                yield prefix + [name]

    for path in commands(cli, []):
        shown = run(*path, "--help").output
        examples = shown.split("Examples:")[-1] if "Examples:" in shown else ""
        assert examples.count("fmriprep-cleanup ") >= 1, path


def test_a_shortened_folder_label_keeps_its_subject():
    from fmriprep_cleanup.report.html import LABEL_CHARACTERS, short_label

    path = ("ds001/derivatives/fmriprep/work/fmriprep_23_2_wf/sub_01_wf/very_long_workflow_name_wf/"
            "another_long_node_name_with_details/yet_another_nested_folder_name_3")
    shown = short_label(path)
    assert len(shown) <= LABEL_CHARACTERS and "sub_01_wf" in shown and shown.endswith("folder_name_3")
    assert short_label("ds001/sub-02/anat") == "ds001/sub-02/anat"  # short enough: as it is
    beside = short_label("ds001/derivatives/fmriprep/work/fmriprep_23_2_wf/sub_01_wf/a_rather_long_node_name_here")
    assert beside == "…/sub_01_wf/a_rather_long_node_name_here"  # the subject right before the tail: no gap
