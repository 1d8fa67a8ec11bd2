"""clean --mode dry-run|delete on real temporary directories (pyfakefs is not enough here)."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
from conftest import cli as run_cli
from conftest import finish_subjects, kill_when_journal_says, make_files, write_description
from journal_views import batches, needs_recovery, removed_paths

import fmriprep_cleanup.act.delete as delete_module
import fmriprep_cleanup.act.recovery as recovery_module
import fmriprep_cleanup.act.safefs as safefs
import fmriprep_cleanup.act.threads as threads
import fmriprep_cleanup.act.worklist as worklist_module
import fmriprep_cleanup.cli.common as cli_common
from fmriprep_cleanup import build_plan, load_rulesets
from fmriprep_cleanup.act.delete import delete
from fmriprep_cleanup.act.lock import RunLock
from fmriprep_cleanup.act.safefs import refuse_unsafe_roots
from fmriprep_cleanup.act.threads import Stop
from fmriprep_cleanup.act.worklist import build_worklist
from fmriprep_cleanup.basics.errors import CleanupError
from fmriprep_cleanup.basics.journal_writer import Journal
from fmriprep_cleanup.basics.journals import read_records
from fmriprep_cleanup.fmriprep.discovery import discover

OLD = 1_600_000_000  # files from 2020: older than any --min-age


def snapshot(root):
    """Every entry under root with its type, size, mtime and content hash."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                state[path] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                state[path] = ("dir",)
            else:
                with open(path, "rb") as handle:
                    state[path] = ("file", st.st_size, st.st_mtime, hashlib.sha256(handle.read()).hexdigest())
    return state


def age_tree(root, mtime=OLD):
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)


@pytest.fixture
def project(tmp_path):
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {
        "sub-01.html": 1000,
        "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000,
        "sub-01/log/20230101-000000_x/crash-20230101-node.txt": 321,  # an older, failed run
        "sourcedata/freesurfer/fsaverage/surf/lh.white": 4000,
        "sourcedata/freesurfer/fsaverage/label/lh.cortex.label": 4000,
        "sourcedata/freesurfer/sub-01/surf/lh.white": 2000,
    })
    for subject in ("01", "02"):
        for node in range(3):
            make_files(out / "work", {f"fmriprep_23_2_wf/sub_{subject}_wf/wf/node{node}/out.nii.gz": 10_000 + node,
                                      f"fmriprep_23_2_wf/sub_{subject}_wf/wf/node{node}/_node.pklz": 100})
    age_tree(out)
    finish_subjects(out, ["01", "02"])
    return out


def junk_paths(out, **kwargs):
    return {row.path for row in build_plan(discover(str(out)), load_rulesets(["default"]), **kwargs) if row.action == "junk"}


def test_dry_run_changes_nothing_and_matches_the_real_run_to_the_byte(project):
    before = snapshot(project)
    dry = run_cli("clean", project, "--format", "json")
    assert dry.exit_code == 0
    assert snapshot(project) == before
    assert not (project / ".fmriprep-cleanup").exists()
    real = run_cli("clean", project, "--mode", "delete", "--yes", "--format", "json")
    assert real.exit_code == 0, real.output
    dry_data, real_data = json.loads(dry.output), json.loads(real.output)
    for key in ("files", "bytes", "by_category", "skipped"):
        assert dry_data[key] == real_data[key]
    assert real_data["files"] == 6 * 2 + 2 + 1 and real_data["bytes"] == sum(10_000 + n + 100 for n in range(3)) * 2 + 8000 + 321


def test_delete_removes_exactly_the_planned_junk_and_emptied_folders(project):
    before = snapshot(project)
    junk = junk_paths(project)
    result = run_cli("clean", project, "--mode", "delete", "--yes")
    assert result.exit_code == 0, result.output
    after = snapshot(project)
    removed = {path for path in before if path not in after}
    removed_files = {path for path in removed if before[path][0] == "file"}
    assert removed_files == junk
    # kept files untouched, to the byte and the mtime
    assert all(after[path] == before[path] for path in before if path not in removed)
    # emptied folders went, scope roots stayed
    assert not (project / "work" / "fmriprep_23_2_wf").exists()
    assert (project / "work").is_dir() and (project / "sourcedata" / "freesurfer").is_dir()
    assert not (project / "sourcedata" / "freesurfer" / "fsaverage").exists()
    assert not (project / "sub-01" / "log" / "20230101-000000_x").exists()  # its only file was a crash file
    # exactly the folders left with nothing in them went, whatever their depth (removed by several threads)
    roots = {str(project), str(project / "work"), str(project / "sourcedata" / "freesurfer")}
    left = {path for path in after if after[path][0] != "dir"}
    removed_dirs = {path for path in removed if before[path][0] == "dir"}
    emptied = {path for path, (kind, *_) in before.items() if kind == "dir" and str(path) not in roots
               and not any(str(other).startswith(str(path) + "/") for other in left)}
    assert removed_dirs == emptied and len(emptied) > 5
    assert "Journal:" in result.output


def test_symlinks_are_removed_as_links_and_targets_survive(project, tmp_path):
    outside = tmp_path / "outside"
    make_files(outside, {"precious.nii.gz": 777, "dir/inner.nii.gz": 55})
    age_tree(outside)
    targets = snapshot(outside)
    node = project / "work" / "fmriprep_23_2_wf" / "sub_01_wf" / "wf" / "node0"
    os.symlink(outside / "precious.nii.gz", node / "link-to-file")
    os.symlink(outside / "dir", node / "link-to-dir")
    for link in ("link-to-file", "link-to-dir"):
        os.utime(node / link, (OLD, OLD), follow_symlinks=False)
    result = run_cli("clean", project, "--mode", "delete", "--yes")
    assert result.exit_code == 0, result.output
    assert not os.path.lexists(node / "link-to-file") and not os.path.lexists(node / "link-to-dir")
    assert snapshot(outside) == targets


def test_file_changed_between_scan_and_act_is_skipped(project):
    dataset = discover(str(project))
    plan = build_plan(dataset, load_rulesets(["default"]))
    worklist = build_worklist(plan, "delete")
    changed = project / "work/fmriprep_23_2_wf/sub_01_wf/wf/node1/out.nii.gz"
    with open(changed, "ab") as handle:
        handle.write(b"more")
    replaced = project / "work/fmriprep_23_2_wf/sub_01_wf/wf/node2/_node.pklz"
    os.unlink(replaced)
    make_files(replaced.parent, {"_node.pklz": 100})  # same name and size, another inode
    vanished = project / "work/fmriprep_23_2_wf/sub_02_wf/wf/node0/_node.pklz"
    os.unlink(vanished)
    journal = Journal(dataset.state_dir)
    outcome = delete(worklist, dataset, journal, Stop())
    assert changed.exists() and replaced.exists()
    assert outcome.skipped[safefs.SKIP_CHANGED].files == 2
    assert outcome.skipped[safefs.SKIP_VANISHED].files == 1
    assert outcome.acted.files == len(worklist.files) - 3


def test_folder_replaced_by_a_symlink_is_never_followed(project, tmp_path):
    dataset = discover(str(project))
    worklist = build_worklist(build_plan(dataset, load_rulesets(["default"])), "delete")
    node = project / "work/fmriprep_23_2_wf/sub_01_wf/wf"
    elsewhere = tmp_path / "elsewhere"
    os.rename(node, elsewhere)  # same files (same inodes) now outside the dataset...
    os.symlink(elsewhere, node)  # ...reachable through a link
    before = snapshot(elsewhere)
    outcome = delete(worklist, dataset, Journal(dataset.state_dir), Stop())
    assert snapshot(elsewhere) == before
    assert outcome.skipped[safefs.SKIP_PATH_CHANGED].files == 6


def test_min_age_skips_recent_files_and_active_subjects_working_directory(project):
    recent_node = project / "work/fmriprep_23_2_wf/sub_02_wf/wf/node1/_node.pklz"
    os.utime(recent_node, None)  # fMRIPrep is still writing sub-02
    recent_template = project / "sourcedata/freesurfer/fsaverage/surf/lh.white"
    os.utime(recent_template, None)
    result = run_cli("clean", project, "--mode", "delete", "--yes", "--format", "json")
    assert result.exit_code == 3
    data = json.loads(result.output)
    skipped = {row["reason"]: row["files"] for row in data["skipped"]}
    # sub-02 is running: the rules keep its working directory, and the shared FreeSurfer templates wait
    assert skipped == {worklist_module.SKIP_SHARED: 2}
    assert json.loads(run_cli("status", project, "--format", "json").output)["subjects"][1]["status"] == "running"
    assert len(list((project / "work/fmriprep_23_2_wf/sub_02_wf").rglob("*.*"))) == 6
    assert not (project / "work/fmriprep_23_2_wf/sub_01_wf").exists()
    assert recent_template.exists()
    none = run_cli("clean", project, "--mode", "delete", "--yes", "--min-age", "0s", "--format", "json")
    assert json.loads(none.output)["skipped"] == [] and none.exit_code == 0


def test_a_folder_fmriprep_did_not_create_in_the_working_directory_is_left_alone(project):
    """A subject folder under a workflow folder fMRIPrep does not name is not fMRIPrep's: left alone, even by
    the blunt set that junks the whole working directory (it used to be judged, and deleted when old enough)."""
    (project / "work/custom_wf").mkdir()
    os.rename(project / "work/fmriprep_23_2_wf/sub_02_wf", project / "work/custom_wf/sub_02_wf")
    before = snapshot(project / "work/custom_wf")
    result = run_cli("clean", project, "--mode", "delete", "--yes", "--rules", "fmriprepcleanup", "--format", "json")
    assert result.exit_code == 0, result.output
    assert snapshot(project / "work/custom_wf") == before
    assert not (project / "work/fmriprep_23_2_wf/sub_01_wf").exists()


def test_second_run_at_once_is_refused(project):
    with RunLock(str(project / ".fmriprep-cleanup")):
        before = snapshot(project / "work")
        result = run_cli("clean", project, "--mode", "delete", "--yes")
        assert result.exit_code == 2
        assert "another fmriprep-cleanup run is working on this dataset" in result.output
        assert snapshot(project / "work") == before


def test_needs_yes_without_a_terminal_and_asks_with_one(project, monkeypatch):
    before = snapshot(project)
    result = run_cli("clean", project, "--mode", "delete")
    assert result.exit_code == 2 and "needs --yes" in result.output
    monkeypatch.setattr(cli_common, "interactive", lambda: True)
    declined = run_cli("clean", project, "--mode", "delete", input="n\n")
    assert declined.exit_code == 0 and "To delete 15 files" in declined.output  # "no" is an answer, not an error
    assert declined.output.rstrip().endswith("Nothing was changed.")
    after = {path: state for path, state in snapshot(project).items() if "/.fmriprep-cleanup" not in path}
    assert after == before  # only the tool's own lock file was created
    accepted = run_cli("clean", project, "--mode", "delete", input="y\n")
    assert accepted.exit_code == 0 and "Removed 15 files" in accepted.output


def test_failures_are_reported_and_the_run_goes_on(project, monkeypatch):
    victim = str(project / "work/fmriprep_23_2_wf/sub_01_wf/wf/node0/out.nii.gz")
    real_unlink = os.unlink

    def unlink(path, *, dir_fd=None):
        if dir_fd is not None and os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path) == victim:
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(delete_module.os, "unlink", unlink)
    result = run_cli("clean", project, "--mode", "delete", "--yes", "--format", "json")
    assert result.exit_code == 3
    data = json.loads(result.output)
    assert data["failed"] == [{"reason": "EACCES: Permission denied", "files": 1, "bytes": 10_000}]
    assert data["files"] == 14 and os.path.exists(victim)


def test_refuses_root_and_home():
    home = os.path.realpath(os.path.expanduser("~"))
    for path in ("/", home, os.path.dirname(home)):
        with pytest.raises(CleanupError, match="refusing to act"):
            refuse_unsafe_roots([path])


@pytest.mark.slow
def test_killed_delete_runs_lose_nothing_and_rerun_finishes(tmp_path):
    """SIGKILL at several points of a delete run; after a rerun, junk is gone and every kept file is intact."""
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000, "sub-01.html": 100})
    make_files(out / "work", {f"fmriprep_23_2_wf/sub_01_wf/n{i:04d}/out.nii.gz": 100 + i for i in range(3000)})
    age_tree(out)
    finish_subjects(out, ["01"])
    kept = {path: state for path, state in snapshot(out).items() if "/work/" not in path and state[0] == "file"}
    junk = junk_paths(out)
    command = [sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", "clean", str(out), "--mode", "delete", "--yes"]
    state = out / ".fmriprep-cleanup"
    # kill points: (journal event, how many of them this run has written) - batches are 256 files
    for marker, count in (('"removing"', 1), ('"removed"', 3), ('"removing"', 6)):
        kill_when_journal_says(command, marker, count)
        current = snapshot(out)
        assert all(current.get(path) == state for path, state in kept.items())
        announced = {path for named, _ in batches(str(state)).values() for path in named}
        assert {path for path in junk if path not in current} <= announced  # nothing went without its record
    assert needs_recovery(str(state))  # the killed runs' journals wait to be recovered
    final = subprocess.run(command, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    current = snapshot(out)
    assert not any(path in current for path in junk)
    assert all(current.get(path) == state for path, state in kept.items())
    removed = removed_paths(str(state))  # a line cut by SIGKILL is ignored, as the tool does
    assert sorted(removed) == sorted(junk)  # each file journaled exactly once, across the killed runs too
    assert not needs_recovery(str(state))


def test_journal_survives_a_line_cut_short_by_a_crash(tmp_path):
    state = tmp_path / "state"
    first = Journal(str(state))
    first.run_start(mode="delete")
    first.close()
    with open(first.path, "ab") as handle:
        handle.write(b'{"time": 1, "run": "x", "event": "removing", "files": [{"pa')  # killed mid-record
    assert [record["event"] for record in read_records(first.path)] == ["run-start"]  # the cut line is ignored
    second = Journal(str(state))
    recovery_module.recover(second)  # finishing the killed run's record does not trip over the cut line
    second.batch_end(1, ["/a"], [], [])
    second.finish()
    assert [record["event"] for record in read_records(second.path)] == ["removed"]
    assert not needs_recovery(str(state))  # both journals are finished now


@pytest.mark.parametrize("failing", [1, 8])
def test_a_failing_batch_stops_the_run_and_leaves_an_exact_journal(tmp_path, monkeypatch, failing):
    """The journal cannot be written (disk full) when a batch starts: no batch starts after it, the batches
    under way stop at the next file, and every file that went is journaled as removed (the others stay).
    At the first batch nothing changed: one error line, exit 2. Later, files were removed: the summary comes,
    with the error as a warning, exit 3 (never 2 once something changed)."""
    out = tmp_path / "out"
    write_description(out)
    make_files(out / "work", {f"fmriprep_23_2_wf/sub_{s}_wf/n{i:04d}/out.nii.gz": 100 for s in ("01", "02") for i in range(2500)})
    age_tree(out)
    finish_subjects(out, ["01", "02"])
    junk = junk_paths(out)
    real_begin = Journal.batch_begin
    begun = []

    def batch_begin(self, files, archive=None):
        begun.append(len(files))
        if len(begun) == failing:
            raise CleanupError(f"cannot write the journal {self.path}: No space left on device; stopped before acting further")
        return real_begin(self, files, archive)

    monkeypatch.setattr(Journal, "batch_begin", batch_begin)
    result = run_cli("clean", out, "--mode", "delete", "--yes")
    state = str(out / ".fmriprep-cleanup")
    if failing == 1:
        assert result.exit_code == 2 and result.stderr.startswith("fmriprep-cleanup: error: cannot write the journal")
        assert len(result.stderr.strip().splitlines()) == 1 and all(os.path.exists(path) for path in junk)
        assert "Removed" not in result.stdout
        return
    assert result.exit_code == 3, result.output
    assert "No space left on device" in result.stderr and result.stderr.startswith("warning: cannot write the journal")
    assert "\nRemoved " in result.stdout
    record = batches(state)
    started = {key: set(named) for key, (named, removed) in record.items()}
    finished = {key: set(removed) for key, (named, removed) in record.items() if removed is not None}
    assert len(begun) <= failing + threads.ACT_THREADS < len(junk) // delete_module.BATCH_SIZE  # far from all 20 batches
    assert started.keys() == finished.keys()  # each begun batch has its end recorded
    assert all(finished[batch] <= started[batch] for batch in started)
    gone = {path for path in junk if not os.path.exists(path)}
    assert gone == set().union(*finished.values()) and gone  # exactly what went is recorded as removed


def test_delete_acts_on_batches_in_several_threads_with_the_same_result(tmp_path, monkeypatch):
    """Threads or not, the same files go, the same folders go, and the journal names each file once."""
    results = []
    for count in (1, threads.ACT_THREADS):
        monkeypatch.setattr(threads, "ACT_THREADS", count)
        out = tmp_path / f"out{count}"
        write_description(out)
        make_files(out, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 50, "sub-01/anat/sub-01_from-T1w_to-MNI_xfm.h5": 50})
        make_files(out / "work", {f"fmriprep_23_2_wf/sub_01_wf/n{i % 37}/m{i}/out.nii.gz": 10 for i in range(1500)})
        age_tree(out)
        finish_subjects(out, ["01"])
        result = run_cli("clean", out, "--mode", "delete", "--yes", "--format", "json")
        assert result.exit_code == 0, result.output
        state = str(out / ".fmriprep-cleanup")
        removed = [path[len(str(out)):] for path in removed_paths(state)]
        assert len(removed) == len(set(removed)) == 1500
        assert sorted(batch for _, batch in batches(state)) == list(range(1, 7))
        left = sorted(path[len(str(out)):] for path in snapshot(out) if ".fmriprep-cleanup" not in path)
        results.append((json.loads(result.output)["removed_dirs"], sorted(removed), left))
    assert results[0] == results[1]
    assert results[0][0] == 1500 + 37 + 2  # every m*, every n*, sub_01_wf, fmriprep_23_2_wf (work is a root: stays)
