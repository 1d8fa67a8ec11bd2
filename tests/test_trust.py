"""Nothing read back from disk is trusted: journals, manifests, run.json, verify.json, partials, the history and
the state folder itself may have been written by any group member. Each numbered test rebuilds one of the
hostile tester's reproductions (issue 26); the planted-state suite at the end checks that nothing outside the
tool's own files is ever removed or written, whatever is planted."""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import (
    OLD,
    TOOL,
    cli,
    contents,
    kill_when_journal_says,
    project,
    write,
)

from fmriprep_cleanup.ops.history import History

PLANTED_RUN = "20200101-000000_deadbeef"


def victim(tmp_path):
    """Somebody else's folder and file, outside every dataset: nothing may ever touch them."""
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "dir" / "precious.txt", b"years of work")
    write(elsewhere / "file", b"a file")
    return elsewhere


def snapshot(root):
    """Every path below root with its bytes (or link target) and mode: what 'untouched' means."""
    found = {}
    for path in sorted(Path(root).rglob("*")):
        st = path.lstat()
        data = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else None
        found[str(path)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), data)
    return found


def plant_journal(state_dir, records, name=f"{PLANTED_RUN}.jsonl"):
    folder = Path(state_dir) / "journal"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def hostile_journal(elsewhere, run=PLANTED_RUN):
    return [{"time": 1, "run": run, "event": "run-start", "roots": [str(elsewhere)], "mode": "archive",
             "archive_dir": str(elsewhere)},
            {"time": 2, "run": run, "event": "archive-begin", "archive": str(elsewhere / "dir"),
             "temporary": str(elsewhere / "file"), "manifest": str(elsewhere / "none"), "files": 1}]


# --- 1. a planted journal ----------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["clean", "policy"])
def test_1_a_planted_journal_never_makes_recovery_remove_anything(tmp_path, how):
    out = project(tmp_path)
    elsewhere = victim(tmp_path)
    before = snapshot(elsewhere)
    plant_journal(out / ".fmriprep-cleanup", hostile_journal(elsewhere))
    if how == "clean":
        result = cli("clean", out, "--mode", "delete", "--yes")
    else:  # a nightly policy in delete mode, with nothing to clean: recovery still runs
        assert cli("clean", out, "--mode", "delete", "--yes").exit_code == 0
        plant_journal(out / ".fmriprep-cleanup", hostile_journal(elsewhere, "20200101-000001_feedbeef"),
                      "20200101-000001_feedbeef.jsonl")
        policy = tmp_path / "policy.yaml"
        policy.write_text(f"version: 1\ndatasets:\n  - paths: ['{out}']\n    mode: delete\n")
        result = cli("run", policy, "--history", tmp_path / "h.sqlite")
    assert snapshot(elsewhere) == before
    assert "not sealed with your key" in result.output, result.output


def test_1_a_journal_sealed_by_this_user_for_another_dataset_is_not_acted_on(tmp_path):
    """A real journal, copied from another dataset's state folder (or replayed): its seal binds it to the state
    folder it was written in, so it is not recovery's to act on here."""
    from fmriprep_cleanup.basics.journal_writer import Journal

    first, second = project(tmp_path / "a"), project(tmp_path / "b")
    elsewhere = victim(tmp_path)
    before = snapshot(elsewhere)
    journal = Journal(str(first / ".fmriprep-cleanup"))
    journal.run_start(mode="archive", roots=[str(first)], archive_dir=str(elsewhere))
    journal.archive_begin(str(elsewhere / "dir"), str(elsewhere / "file"), str(elsewhere / "none"), 1)
    journal.close()
    target = second / ".fmriprep-cleanup" / "journal"
    target.mkdir(parents=True)
    shutil.copy(journal.path, target)
    result = cli("clean", second, "--mode", "delete", "--yes")
    assert result.exit_code == 0, result.output
    assert snapshot(elsewhere) == before and "not sealed with your key" in result.output


def test_1_even_an_authentic_journal_removes_only_temporary_names_the_tool_made(tmp_path):
    """Defence in depth: a sealed journal (a bug, a stolen key) naming anything but the tool's own
    <archive dir>/<run id>/<group>.tar.tmp is still not acted on."""
    from fmriprep_cleanup.basics.journal_writer import Journal

    out = project(tmp_path)
    elsewhere = victim(tmp_path)
    before = snapshot(elsewhere)
    journal = Journal(str(out / ".fmriprep-cleanup"))
    journal.run_start(mode="archive", roots=[str(out)], archive_dir=str(elsewhere))
    journal.archive_begin(str(elsewhere / "dir"), str(elsewhere / "file"), str(elsewhere / "none"), 1)
    journal.archive_begin(str(elsewhere / journal.run_id / "sub-01.tar"), str(elsewhere / "dir"),
                          str(elsewhere / journal.run_id / "sub-01.manifest.tsv"), 1)
    journal.close()
    result = cli("clean", out, "--mode", "delete", "--yes")
    assert result.exit_code == 0, result.output
    assert snapshot(elsewhere) == before


# --- 2. prune ----------------------------------------------------------------------------------------------

def test_2_prune_removes_only_archive_runs_it_wrote_never_the_folder_given(tmp_path):
    folder = tmp_path / "archives"
    write(folder / "projectA" / "run.json", json.dumps({"run": "projectA", "roots": {}}).encode(), OLD)
    write(folder / "projectA" / "data" / "results.csv", b"a,b\n1,2\n", OLD)
    before = snapshot(tmp_path)
    result = cli("archives", "prune", folder, "--older-than", "1y", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert (folder / "projectA" / "data" / "results.csv").read_bytes() == b"a,b\n1,2\n"
    assert "cannot prove it wrote" in result.output, result.output
    named = folder / "20200101-000000_deadbeef"  # named as the tool names runs, run.json planted
    write(named / "run.json", json.dumps({"run": named.name, "roots": {}}).encode(), OLD)
    write(named / "sub-01.tar", b"not an archive", OLD)
    result = cli("archives", "prune", folder, "--older-than", "1y", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert (named / "sub-01.tar").exists() and "not sealed" in result.output, result.output
    write(folder / "run.json", json.dumps({"run": "x", "roots": {}}).encode(), OLD)
    before = snapshot(tmp_path)
    result = cli("archives", "prune", folder, "--older-than", "1y", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 3 and "the folder given" in result.output, result.output
    assert folder.is_dir() and snapshot(tmp_path) == before | {k: v for k, v in snapshot(tmp_path).items()
                                                               if k.endswith(("h.sqlite", "prune-journal.jsonl"))}
    assert (folder / "projectA" / "data" / "results.csv").exists()


def test_2_a_pruning_leftover_is_finished_only_when_it_is_an_archive_run(tmp_path):
    folder = tmp_path / "archives"
    write(folder / "mine.pruning" / "thesis.tex", b"chapter 1")
    result = cli("archives", "prune", folder, "--older-than", "1y", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert (folder / "mine.pruning" / "thesis.tex").read_bytes() == b"chapter 1", result.output


def archived_project(tmp_path, fmt="tar", **kwargs):
    out = project(tmp_path, **kwargs)
    archives = tmp_path / "archives"
    result = cli("clean", out, "--mode", "archive", "--archive-dir", archives, "--archive-format", fmt, "--yes",
                 "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output
    [run] = [path for path in archives.iterdir() if path.is_dir()]
    return out, archives, run


def test_2_prune_still_removes_its_own_old_runs(tmp_path):
    out, archives, run = archived_project(tmp_path)
    result = cli("archives", "prune", archives, "--older-than", "0", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output
    assert not run.exists() and archives.is_dir()


# --- 3. restore: owner, group and set-id bits as GNU tar restores them ----------------------------------

def test_3_restore_as_root_gives_back_the_owner_and_only_then_the_set_id_bits(tmp_path):
    out = project(tmp_path)
    tool = out / "work/fmriprep_23_2_wf/sub_01_wf/node0/out.nii.gz"
    os.chown(tool, 65534, 65534)
    os.chmod(tool, 0o4755)
    os.utime(tool, (OLD, OLD))
    archives = tmp_path / "archives"
    assert cli("clean", out, "--mode", "archive", "--archive-dir", archives, "--yes",
               "--history", tmp_path / "h.sqlite").exit_code == 0
    assert not tool.exists()
    assert cli("restore", archives).exit_code == 0
    st = tool.lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o4755)
    other = out / "work/fmriprep_23_2_wf/sub_01_wf/node1/out.nii.gz"
    assert (other.lstat().st_uid, other.lstat().st_gid) == (0, 0)


def test_3_a_tampered_manifest_mode_is_detected_not_applied(tmp_path):
    out, archives, run = archived_project(tmp_path)
    manifest = next(run.glob("sub-01.manifest.tsv"))
    lines = manifest.read_text().splitlines(keepends=True)
    fields = lines[1].split("\t")
    columns = lines[0].rstrip("\n").split("\t")
    fields[columns.index("mode")] = "6777"
    lines[1] = "\t".join(fields)
    manifest.write_text("".join(lines))
    verified = cli("archives", "verify", archives, "--history", tmp_path / "h.sqlite")
    assert verified.exit_code == 3 and "sub-01.manifest.tsv" in verified.output, verified.output
    restored = cli("restore", archives)
    assert restored.exit_code != 0
    for path in out.rglob("*"):
        assert not path.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID), path


def test_3_an_unsealed_archive_restored_under_to_never_gets_set_id_bits(tmp_path):
    out, archives, run = archived_project(tmp_path)
    for manifest in run.glob("*.manifest.tsv"):  # as an archive of another user, or of an earlier version
        text = manifest.read_text()
        manifest.write_text("".join(line for line in text.splitlines(keepends=True) if not line.startswith("#")))
        lines = manifest.read_text().splitlines(keepends=True)
        columns = lines[0].rstrip("\n").split("\t")
        rows = []
        for line in lines[1:]:
            fields = line.rstrip("\n").split("\t")
            fields[columns.index("mode")] = "6777"
            rows.append("\t".join(fields) + "\n")
        manifest.write_text(lines[0] + "".join(rows))
    refused = cli("restore", archives)
    assert refused.exit_code == 2 and "--to" in refused.output, refused.output
    target = tmp_path / "restored"
    result = cli("restore", archives, "--to", target)
    assert result.exit_code == 0, result.output
    files = [path for path in target.rglob("*") if path.is_file()]
    assert files and all(stat.S_IMODE(path.lstat().st_mode) == 0o777 for path in files)


# --- 4. a tampered run.json --------------------------------------------------------------------------------

def test_4_a_tampered_run_json_cannot_send_restore_elsewhere(tmp_path):
    out, archives, run = archived_project(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    info = json.loads((run / "run.json").read_text())
    old_root = info["roots"]["derivatives"]
    info["roots"]["derivatives"] = str(other)
    (run / "run.json").write_text(json.dumps(info))
    for manifest in run.glob("*.manifest.tsv"):
        manifest.write_text(manifest.read_text().replace(old_root, str(other)))
    result = cli("restore", archives)
    assert result.exit_code == 2, result.output
    assert not list(other.rglob("*"))


# --- 5. bookkeeping through symlinks ---------------------------------------------------------------------

def test_5_verify_json_as_a_symlink_is_not_written_through(tmp_path):
    out, archives, run = archived_project(tmp_path)
    target = tmp_path / "victim.txt"
    target.write_bytes(b"do not overwrite")
    (run / "verify.json").symlink_to(target)
    cli("archives", "verify", archives, "--history", tmp_path / "h.sqlite")
    assert target.read_bytes() == b"do not overwrite"


def test_5_a_symlinked_prune_journal_is_not_appended_to(tmp_path):
    out, archives, run = archived_project(tmp_path)
    target = tmp_path / "victim.txt"
    target.write_bytes(b"do not append")
    (archives / "prune-journal.jsonl").symlink_to(target)
    result = cli("archives", "prune", archives, "--older-than", "0", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert target.read_bytes() == b"do not append"
    assert result.exit_code == 2 and run.exists(), result.output


def test_5_a_symlinked_state_folder_is_refused(tmp_path):
    out = project(tmp_path)
    target = tmp_path / "victim-state"
    target.mkdir()
    write(target / "lock", b"not yours")
    (out / ".fmriprep-cleanup").symlink_to(target)
    before = snapshot(target)
    work = contents(out / "work")
    result = cli("clean", out, "--mode", "delete", "--yes")
    assert result.exit_code == 2 and "symlink" in result.output, result.output
    assert snapshot(target) == before and contents(out / "work") == work


# --- 6. generated scripts ----------------------------------------------------------------------------------

def fake_sbatch(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 42\n")
    (bin_dir / "sbatch").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("where", ["run-dir", "dataset"])
def test_6_a_path_with_a_newline_is_refused_by_every_recipe(tmp_path, where):
    out = project(tmp_path)
    hostile = tmp_path / "x\nSHARD\ntouch PWNED\n#"
    hostile.mkdir()
    dataset = hostile if where == "dataset" else out
    run_dir = hostile / "run" if where == "run-dir" else tmp_path / "run"
    result = cli("schedule", "slurm-array", dataset, "--shards", "2", "--run-dir", run_dir)
    assert result.exit_code == 2 and "newline" in result.output, result.output
    policy = tmp_path / "a\nb.yaml"
    policy.write_text(f"datasets:\n  - path: {out}\n")
    for kind in ("cron", "sbatch", "scrontab", "systemd-service"):
        refused = cli("schedule", kind, policy)
        assert refused.exit_code == 2 and "newline" in refused.output, (kind, refused.output)


def test_6_quotes_and_dollars_in_paths_stay_data(tmp_path):
    out = project(tmp_path)
    odd = tmp_path / "it's $(touch PWNED) `touch PWNED2` ; a b"
    odd.mkdir()
    run_dir = odd / "run"
    script = cli("schedule", "slurm-array", out, "--shards", "2", "--run-dir", run_dir)
    assert script.exit_code == 0, script.output
    assert "<<" not in script.stdout  # no heredoc a path could end
    env = {**os.environ, "PATH": f"{fake_sbatch(tmp_path)}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script.stdout], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("PWNED*"))
    shard = (run_dir / "shard.sbatch").read_text()
    assert subprocess.run(["bash", "-n", str(run_dir / "shard.sbatch")]).returncode == 0
    assert str(run_dir).replace("'", "'\"'\"'") in shard


# --- 7. long names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tar", "tree"])
def test_7_a_255_byte_file_name_is_restored(tmp_path, fmt):
    out = project(tmp_path, subjects=("01",), files=1)
    long_name = out / "work/fmriprep_23_2_wf/sub_01_wf/node0" / ("n" * 248 + ".nii.gz")
    assert len(long_name.name.encode()) == 255
    write(long_name, b"long" * 100)
    out_archives = tmp_path / "archives"
    assert cli("clean", out, "--mode", "archive", "--archive-dir", out_archives, "--archive-format", fmt, "--yes",
               "--history", tmp_path / "h.sqlite").exit_code == 0
    assert not long_name.exists()
    result = cli("restore", out_archives)
    assert result.exit_code == 0, result.output
    assert long_name.read_bytes() == b"long" * 100


# --- 8. shards, then the shared files, without --work-dir --------------------------------------------------

def test_8_shards_then_shared_only_find_the_emptied_working_directory(tmp_path):
    out = project(tmp_path, subjects=("01", "02", "03"))
    write(out / "work/fmriprep_23_2_wf/fsdir_run_20240101/fsaverage/x.txt", b"shared")
    write(out / "work/fmriprep_23_2_wf/d3.js", b"shared")
    twin = tmp_path / "twin"
    shutil.copytree(out, twin / "out", symlinks=True)
    assert cli("clean", twin / "out", "--mode", "delete", "--yes").exit_code == 0
    for shard in ("1/2", "2/2"):
        assert cli("clean", out, "--array-task", shard, "--mode", "delete", "--yes", "-q").exit_code == 0
    result = cli("clean", out, "--shared-only", "--mode", "delete", "--yes", "-q")
    assert result.exit_code == 0, result.output
    mine = sorted(os.path.relpath(p, out) for p in contents(out))
    theirs = sorted(os.path.relpath(p, twin / "out") for p in contents(twin / "out"))
    assert mine == theirs
    assert not (out / "work/fmriprep_23_2_wf/d3.js").exists()


# --- 9. merge ----------------------------------------------------------------------------------------------

@pytest.fixture
def shards(tmp_path):
    out = project(tmp_path, subjects=("01", "02", "03"))
    paths = []
    for shard in (1, 2):
        partial = tmp_path / f"partial-{shard}.json"
        assert cli("report", out, "--shard", f"{shard}/2", "--partial-out", partial, "-q").exit_code == 0
        paths.append(partial)
    return out, paths


def test_9_partials_whose_subjects_overlap_are_refused(shards, tmp_path):
    out, (first, second) = shards
    data = json.loads(second.read_text())
    mine = json.loads(first.read_text())
    data["summary"]["by_subject"] += [row for row in mine["summary"]["by_subject"] if row[0] is not None]
    data["statuses"].update(mine["statuses"])
    second.write_text(json.dumps(data))
    result = cli("merge", first, second)
    assert result.exit_code == 2 and "sub-0" in result.output and "more than one" in result.output, result.output


@pytest.mark.parametrize("damage", ["summary", "statuses", "by_category", "negative", "unknown key",
                                    "no scanned_count"])
def test_9_a_malformed_partial_is_one_line_exit_2(shards, damage):
    out, (first, second) = shards
    data = json.loads(second.read_text())
    if damage == "summary":
        data["summary"] = "nonsense"
    elif damage == "statuses":
        data["statuses"] = [1, 2, 3]
    elif damage == "by_category":
        data["summary"]["by_category"] = {"working directory": {"files": "many"}}
    elif damage == "unknown key":
        data["extra_bytes"] = 10**12  # a field this version does not know is not passed over in silence
    elif damage == "no scanned_count":
        del data["scanned_count"]
    else:
        data["summary"]["totals"]["junk_bytes"] = -10**15
    second.write_text(json.dumps(data))
    result = cli("merge", first, second)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "partial-2.json" in result.output and "RiB" not in result.output
    if damage in ("unknown key", "no scanned_count"):
        assert ("extra_bytes" if damage == "unknown key" else "scanned_count") in result.output, result.output


# --- 10. one lock per dataset --------------------------------------------------------------------------------

def paused_clean(out, *options):
    """A clean that stops itself (SIGSTOP) right after its journal says run-start: it holds the lock."""
    from conftest import STOP_AFTER_EVENT

    code = STOP_AFTER_EVENT.format(event="run-start", count=1) + "from fmriprep_cleanup.cli import main; main()"
    process = subprocess.Popen([sys.executable, "-c", code, "clean", str(out), "--mode", "delete", "--yes", "-q",
                                *map(str, options)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid, status = os.waitpid(process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    return process


def test_10_one_lock_per_dataset_whatever_the_state_dir_and_restore_takes_it(tmp_path):
    out, archives, run = archived_project(tmp_path / "first")
    assert cli("restore", archives).exit_code == 0
    holder = paused_clean(out, "--state-dir", tmp_path / "state-a")
    try:
        second = subprocess.run([*TOOL, "clean", str(out), "--mode", "delete", "--yes", "--state-dir",
                                 str(tmp_path / "state-b")], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "another fmriprep-cleanup run" in second.stderr, second.stderr
        restore = subprocess.run([*TOOL, "restore", str(archives)], capture_output=True, text=True, timeout=120)
        assert restore.returncode == 2 and "another fmriprep-cleanup run" in restore.stderr, restore.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


# --- 11. an archive without its manifest, a garbage manifest ----------------------------------------------

def test_11_an_archive_whose_manifest_was_deleted_is_reported_everywhere(tmp_path):
    out, archives, run = archived_project(tmp_path)
    (run / "sub-01.manifest.tsv").unlink()
    verified = cli("archives", "verify", archives, "--history", tmp_path / "h.sqlite")
    assert verified.exit_code == 3 and "sub-01.tar" in verified.output, verified.output
    listed = json.loads(cli("archives", "list", archives, "--format", "json").stdout)
    assert any("sub-01.tar" in problem for problem in listed["problems"])
    restored = cli("restore", archives)
    assert restored.exit_code == 3 and "sub-01.tar" in restored.output, restored.output


def test_11_one_garbage_manifest_spoils_only_its_own_archive(tmp_path):
    out, archives, run = archived_project(tmp_path)
    (run / "sub-01.manifest.tsv").write_bytes(b"\x00garbage\n")
    listed = cli("archives", "list", archives, "--format", "json")
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert [a["subject"] for a in data["runs"][0]["archives"]] == ["no-subject", "sub-02"]
    assert any("sub-01.manifest.tsv" in problem for problem in data["problems"])
    dry = cli("archives", "prune", archives, "--older-than", "0")  # the run is still pruned whole; the problem said
    assert dry.exit_code == 3 and "Would remove 1 run(s)" in dry.output and "bad header" in dry.output, dry.output


# --- 12. a killed run is recorded --------------------------------------------------------------------------

@pytest.mark.slow
def test_12_a_killed_run_and_its_recovery_are_in_the_history(tmp_path):
    out = project(tmp_path, files=30, size=300)
    history = tmp_path / "h.sqlite"
    junk = {path for path in contents(out) if "/work/" in path or "fsaverage" in path}
    code = "from fmriprep_cleanup.cli import main; main()"
    kill_when_journal_says([sys.executable, "-c", code, "clean", str(out), "--mode", "delete", "--yes", "-q",
                            "--history", str(history), "--jobs", "1"], '"removed"', 1)
    assert cli("clean", out, "--mode", "delete", "--yes", "--history", history).exit_code == 0
    assert not junk & set(contents(out))
    runs = History(str(history)).runs()
    assert len(runs) == 2, runs
    assert sum(run["files"] for run in runs) == len(junk)
    assert runs[0]["exit_status"] == 137


# --- 13. smaller ------------------------------------------------------------------------------------------

def test_13_an_immutable_file_is_not_archived_again_on_every_rerun(tmp_path):
    out = project(tmp_path, subjects=("01",), files=2)
    stuck = out / "work/fmriprep_23_2_wf/sub_01_wf/node0/out.nii.gz"
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode != 0:
        pytest.fail("chattr +i is needed for this test (ext4 and CAP_LINUX_IMMUTABLE)")
    try:
        archives = tmp_path / "archives"
        for _ in range(2):
            result = cli("clean", out, "--mode", "archive", "--archive-dir", archives, "--yes",
                         "--history", tmp_path / "h.sqlite", "--format", "json")
            assert result.exit_code == 3, result.output
            assert any("immutable" in row["reason"] for row in json.loads(result.stdout)["skipped"])
        members = [tarfile.open(tar).getnames() for tar in archives.rglob("*.tar")]
        assert not [name for names in members for name in names if name.endswith("node0/out.nii.gz")]
    finally:
        subprocess.run(["chattr", "-i", str(stuck)])


def test_13_restore_gives_back_hard_links_as_links(tmp_path):
    out = project(tmp_path, subjects=("01",), files=1)
    first = out / "work/fmriprep_23_2_wf/sub_01_wf/node0/out.nii.gz"
    second = out / "work/fmriprep_23_2_wf/sub_01_wf/node9/same.nii.gz"
    second.parent.mkdir()
    os.link(first, second)
    archives = tmp_path / "archives"
    assert cli("clean", out, "--mode", "archive", "--archive-dir", archives, "--yes",
               "--history", tmp_path / "h.sqlite").exit_code == 0
    assert cli("restore", archives).exit_code == 0
    assert first.stat().st_ino == second.stat().st_ino and first.stat().st_nlink == 2


def test_13_junk_hard_linked_outside_counts_its_bytes_with_its_files(tmp_path):
    out = project(tmp_path, subjects=("01",), files=1)
    os.link(out / "work/fmriprep_23_2_wf/sub_01_wf/node0/out.nii.gz", tmp_path / "outside.bin")
    report = json.loads(cli("report", out, "--format", "json").stdout)
    for counts in [report["totals"], *report["by_category"], *report["by_subject"]]:
        assert counts["keep_bytes"] + counts["junk_bytes"] + counts["junk_linked_bytes"] == counts["bytes"]
        assert counts["keep_files"] or not counts["keep_bytes"], counts
    work = next(row for row in report["by_category"] if row["category"] == "working directory")
    assert (work["junk_files"], work["junk_bytes"], work["junk_linked_bytes"]) == (1, 0, 5000)


@pytest.mark.parametrize("rules", ["- id: all\n  action: junk\n  category: all\n  why: space\n  match: {path: '**'}\n",
                                   "default: junk\n"])
def test_13_a_rule_set_that_junks_every_output_is_named_and_refused(tmp_path, rules):
    out = project(tmp_path)
    rule_file = tmp_path / "rules.yaml"
    header = "version: 1\nname: everything\n"
    rule_file.write_text(header + (("rules:\n" + rules) if rules.startswith("-") else rules + "rules: []\n"))
    report = cli("report", out, "--rules", rule_file)
    assert report.exit_code == 0 and "every" in report.output and "--allow-output-loss" in report.output, report.output
    kept = contents(out)
    refused = cli("clean", out, "--rules", rule_file, "--mode", "delete", "--yes")
    assert refused.exit_code == 2 and "--allow-output-loss" in refused.output, refused.output
    assert contents(out) == kept
    allowed = cli("clean", out, "--rules", rule_file, "--mode", "delete", "--yes", "--allow-output-loss")
    assert allowed.exit_code == 0, allowed.output
    assert not (out / "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz").exists()


def test_13_json_is_valid_utf8_for_names_that_are_not(tmp_path):
    out = project(tmp_path, subjects=("01",), files=1)
    odd = os.path.join(os.fsencode(out / "work/fmriprep_23_2_wf/sub_01_wf/node0"), b"caf\xff.nii.gz")
    with open(odd, "wb") as handle:
        handle.write(b"x")
    os.utime(odd, (OLD, OLD))
    for args in (["plan", out, "--format", "jsonl"], ["report", out, "--format", "json"],
                 ["clean", out, "--format", "json"], ["explain", out, odd, "--format", "json"]):
        done = subprocess.run([*TOOL, *map(os.fsdecode, args)], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        text = done.stdout.decode("utf-8")  # strict
        for line in text.splitlines() if args[0] == "plan" else [text]:
            if line.strip():
                json.loads(line)
        assert "\\udc" not in text
    plan = subprocess.run([*TOOL, "plan", str(out), "--format", "jsonl"], capture_output=True, timeout=120).stdout
    assert b"caf\\\\xff.nii.gz" in plan


# --- the planted-state suite ------------------------------------------------------------------------------

def planted_cases(tmp_path, out, archives, run, elsewhere):
    """Each: (what is planted, the command that reads it)."""
    def journal():
        plant_journal(out / ".fmriprep-cleanup", hostile_journal(elsewhere))
        return ["clean", out, "--mode", "delete", "--yes"]

    def manifest():
        (run / "sub-01.manifest.tsv").write_text((run / "sub-01.manifest.tsv").read_text()
                                                 .replace(str(out), str(elsewhere)))
        return ["restore", archives]

    def run_json():
        (run / "run.json").write_text(json.dumps({"run": run.name, "roots": {"derivatives": str(elsewhere)}}))
        return ["restore", archives]

    def verify_json():
        os.unlink(run / "verify.json") if (run / "verify.json").exists() else None
        (run / "verify.json").symlink_to(elsewhere / "file")
        return ["archives", "verify", archives, "--history", tmp_path / "h.sqlite"]

    def partial():
        data = {"format": "fmriprep-cleanup-partial/1", "options": {"path": str(elsewhere)}, "shard": [1, 1]}
        (tmp_path / "partial.json").write_text(json.dumps(data))
        return ["merge", tmp_path / "partial.json"]

    def history():
        (tmp_path / "planted.sqlite").symlink_to(elsewhere / "file")
        return ["clean", out, "--mode", "delete", "--yes", "--history", tmp_path / "planted.sqlite"]

    def state_folder():
        shutil.rmtree(out / ".fmriprep-cleanup", ignore_errors=True)
        (out / ".fmriprep-cleanup").symlink_to(elsewhere / "dir")
        return ["clean", out, "--mode", "delete", "--yes"]

    def prune_journal():
        (archives / "prune-journal.jsonl").symlink_to(elsewhere / "file")
        return ["archives", "prune", archives, "--older-than", "0", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite"]

    return {"journal": journal, "manifest": manifest, "run.json": run_json, "verify.json": verify_json,
            "partial": partial, "history": history, "state folder": state_folder, "prune journal": prune_journal}


@pytest.mark.parametrize("planted", ["journal", "manifest", "run.json", "verify.json", "partial", "history",
                                     "state folder", "prune journal"])
def test_planted_state_never_touches_anything_outside_the_tools_own_files(tmp_path, planted):
    out, archives, run = archived_project(tmp_path)
    assert cli("restore", archives).exit_code == 0  # the junk is back: there is something to act on again
    elsewhere = victim(tmp_path)
    before = snapshot(elsewhere)
    command = planted_cases(tmp_path, out, archives, run, elsewhere)[planted]()
    result = cli(*command)
    assert snapshot(elsewhere) == before, result.output
    assert result.exit_code in (0, 2, 3), result.output


# --- beyond the reproductions --------------------------------------------------------------------------------

def test_the_sealing_key_is_private_and_a_shared_or_planted_key_is_refused(tmp_path):
    from fmriprep_cleanup.basics import seal

    out = project(tmp_path)
    assert cli("clean", out, "--mode", "delete", "--yes").exit_code == 0
    key = Path(seal.key_path())
    assert stat.S_IMODE(key.lstat().st_mode) == 0o600 and key.stat().st_size == 32
    key.chmod(0o644)  # readable by the group: whoever reads it can forge seals
    seal._cache.clear()
    shared = cli("clean", project(tmp_path / "again"), "--mode", "delete", "--yes")
    assert shared.exit_code == 2 and "chmod 600" in shared.output, shared.output
    key.unlink()
    key.symlink_to(tmp_path / "planted-key")
    (tmp_path / "planted-key").write_bytes(b"k" * 32)
    seal._cache.clear()
    planted = cli("clean", project(tmp_path / "third"), "--mode", "delete", "--yes")
    assert planted.exit_code == 2 and "sealing key" in planted.output, planted.output


def test_a_planted_verify_record_says_nothing(tmp_path):
    out, archives, run = archived_project(tmp_path)
    (run / "verify.json").write_text(json.dumps({"time": 1, "ok": True, "members": 1, "problems": []}))
    listed = json.loads(cli("archives", "list", archives, "--format", "json").stdout)
    assert listed["runs"][0]["last_verified"] is None
    assert cli("archives", "verify", archives, "--history", tmp_path / "h.sqlite").exit_code == 0
    listed = json.loads(cli("archives", "list", archives, "--format", "json").stdout)
    assert listed["runs"][0]["last_verify_ok"] is True


def test_a_history_planted_as_a_symlink_to_nowhere_is_not_created(tmp_path):
    out = project(tmp_path)
    (tmp_path / "h.sqlite").symlink_to(tmp_path / "elsewhere.sqlite")
    result = cli("clean", out, "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 2 and "symlink" in result.output
    assert not (tmp_path / "elsewhere.sqlite").exists() and (out / "work").exists()


def test_restore_as_another_user_never_keeps_set_id_bits_on_files_it_cannot_own(tmp_path, monkeypatch):
    """Not root: GNU tar keeps a set-user-id bit only on a file that was the restoring user's, a set-group-id bit
    only for one of their groups (the test runs as root, so it plays user 1000 for the decision)."""
    import fmriprep_cleanup.act.restore as restore_module

    out = project(tmp_path, subjects=("01",), files=2)
    tool = out / "work/fmriprep_23_2_wf/sub_01_wf/node0/out.nii.gz"
    own = out / "work/fmriprep_23_2_wf/sub_01_wf/node1/out.nii.gz"
    os.chown(own, 1000, 1000)
    for path in (tool, own):
        os.chmod(path, 0o6755)
        os.utime(path, (OLD, OLD))
    archives = tmp_path / "archives"
    assert cli("clean", out, "--mode", "archive", "--archive-dir", archives, "--yes",
               "--history", tmp_path / "h.sqlite").exit_code == 0
    monkeypatch.setattr(restore_module.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(restore_module.os, "getegid", lambda: 1000)
    monkeypatch.setattr(restore_module.os, "getgroups", lambda: [1000])
    assert cli("restore", archives).exit_code == 0
    assert stat.S_IMODE(tool.lstat().st_mode) == 0o755  # root's file: neither bit for user 1000
    assert stat.S_IMODE(own.lstat().st_mode) == 0o6755  # user 1000's own file, in its own group: both kept
