"""Acting you can rerun, interrupt and trust: repeatable runs, durable and re-verified archives, honest
figures and exit codes, restore as careful as delete, a lock keyed on the dataset itself."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import (
    OLD,
    TOOL,
    cli,
    contents,
    kill_when_journal_says,
    make_files,
    project,
    stopped_at,
    write,
    write_description,
)

import fmriprep_cleanup.cli as cli_module
import fmriprep_cleanup.cli.common as cli_common
from fmriprep_cleanup.fmriprep.discovery import discover


class SimulatedKill(BaseException):
    """Stands for SIGKILL at a chosen point: nothing of the tool catches it, nothing after it runs."""


run_cli = cli


def junk_of(out):
    """What the default rules junk in a project(): its working directory and the fsaverage copy."""
    return {path for path in contents(out) if os.path.relpath(path, out).startswith(("work/", "sourcedata/freesurfer/fsaverage/"))}


def archived(archive_dir):
    """original path -> sha256, read back from every complete archive (tar or tree; a manifest commits it)."""
    from journal_views import read_manifest

    from fmriprep_cleanup.act.manifest import archive_of

    found = {}
    for manifest in Path(archive_dir).glob("*/*.manifest.tsv"):
        archive = archive_of(str(manifest))
        if archive is None:
            continue
        entries = {entry.member: entry for entry in read_manifest(str(manifest))}
        if os.path.isdir(archive):
            for member, entry in entries.items():
                path = os.path.join(archive, member)
                if entry.kind == "file" and os.path.isfile(path):
                    found[entry.path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            continue
        try:
            with tarfile.open(archive) as tar:
                for info in tar:
                    if info.isfile():
                        found[entries[info.name].path] = hashlib.sha256(tar.extractfile(info).read()).hexdigest()
        except (tarfile.TarError, OSError, EOFError):
            continue  # a damaged archive holds nothing one can count on
    return found


# --- 1. a second identical run -----------------------------------------------------------------------------

def test_a_second_identical_run_is_a_no_op_with_exit_0(tmp_path):
    out = project(tmp_path)
    work = tmp_path / "w"
    shutil.move(str(out / "work"), str(work))
    for attempt in (1, 2, 3):
        result = run_cli("clean", out, "--work-dir", work, "--mode", "delete", "--yes")
        assert result.exit_code == 0, (attempt, result.output)
    assert "Nothing to do" in result.stdout and not os.listdir(work)
    journals = os.listdir(out / ".fmriprep-cleanup" / "journal")
    again = run_cli("clean", out, "--work-dir", work, "--mode", "delete", "--yes", "--format", "json")
    assert again.exit_code == 0 and json.loads(again.stdout)["nothing_to_do"] is True
    assert os.listdir(out / ".fmriprep-cleanup" / "journal") == journals  # a no-op writes no journal


def test_rerunning_a_working_directory_that_still_holds_other_things(tmp_path):
    """-w $SCRATCH: once fMRIPrep's folders are gone only the user's files remain; the journal knows it was ours."""
    out = project(tmp_path)
    scratch = tmp_path / "scratch"
    shutil.move(str(out / "work"), str(scratch))
    write(scratch / "thesis/chapter1.tex", b"mine")
    assert run_cli("clean", out, "--work-dir", scratch, "--mode", "delete", "--yes").exit_code == 0
    again = run_cli("clean", out, "--work-dir", scratch, "--mode", "delete", "--yes")
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output
    assert (scratch / "thesis/chapter1.tex").read_bytes() == b"mine"
    elsewhere = tmp_path / "not-a-work-dir"
    write(elsewhere / "x.txt", b"x")
    typo = run_cli("clean", out, "--work-dir", elsewhere)
    assert typo.exit_code == 2 and "not an fMRIPrep working directory" in typo.output  # a typo is still caught


def test_a_lone_working_directory_cleaned_twice(tmp_path):
    out = project(tmp_path)
    work = out / "work"
    assert run_cli("clean", work, "--mode", "delete", "--yes").exit_code == 0
    again = run_cli("clean", work, "--mode", "delete", "--yes")
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output


def test_a_policy_run_twice_is_ok_both_times(tmp_path):
    out = project(tmp_path)
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: [{out}]\n    work_dir: {out / 'work'}\n    mode: delete\n")
    for _ in range(2):
        result = run_cli("run", policy, "--log", tmp_path / "log.jsonl")
        assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout


# --- 2. archives are reused only from this run's own interrupted predecessor, re-verified ----------------------

def test_an_archive_of_a_finished_run_is_never_reused(tmp_path):
    out = project(tmp_path)
    first = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a1", "--yes")
    assert first.exit_code == 0, first.output
    assert run_cli("restore", tmp_path / "a1").exit_code == 0
    junk = junk_of(out)
    second = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a2", "--yes", "--format", "json")
    assert second.exit_code == 0, second.output
    assert all(archive.startswith(str(tmp_path / "a2")) for archive in json.loads(second.stdout)["archives"])
    assert set(archived(tmp_path / "a2")) == junk  # written anew and verified, not taken on trust from a1


def test_a_reused_archive_is_read_back_again_and_a_damaged_one_is_not_trusted(tmp_path, monkeypatch):
    """An interrupted run verified sub-01's archive and removed none of its originals; the archive is then
    truncated. The rerun must not take it on trust: the originals are archived again before they go."""
    import fmriprep_cleanup.act.archive as archive_module

    out = project(tmp_path, files=40, size=20_000)
    junk_paths = junk_of(out)
    junk = {path: digest for path, digest in contents(out).items() if path in junk_paths}
    real_remove = archive_module.remove_archived

    def crash_before_removing(*args, **kwargs):
        raise SimulatedKill  # right after the archive was verified

    monkeypatch.setattr(archive_module, "remove_archived", crash_before_removing)
    with pytest.raises(SimulatedKill):
        from fmriprep_cleanup.act.clean import clean
        from fmriprep_cleanup.plan.options import CleanOptions
        from fmriprep_cleanup.plan.plan import build_plan
        from fmriprep_cleanup.rules.rulesets import load_rulesets

        clean(build_plan(discover(str(out)), load_rulesets(["default"])),
              CleanOptions(mode="archive", archive_dir=str(tmp_path / "a")))
    monkeypatch.setattr(archive_module, "remove_archived", real_remove)
    tars = sorted((tmp_path / "a").glob("*/*.tar"))
    assert tars and all(path in contents(out) for path in junk)  # verified, nothing removed
    with open(tars[0], "r+b") as handle:
        handle.truncate(10_000)  # damaged on the archive disk between the two runs
    rerun = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes", "--format", "json")
    assert rerun.exit_code == 0, rerun.output
    in_archives = archived(tmp_path / "a")  # the damaged one counts for nothing
    assert all(in_archives.get(path) == digest for path, digest in junk.items())  # every original safe somewhere
    assert not junk_of(out)


# --- 3. exit codes once something changed; Ctrl-C --------------------------------------------------------------

def test_a_corrupt_history_is_refused_before_anything_is_deleted(tmp_path):
    out = project(tmp_path)
    before = contents(out)
    history = tmp_path / "h.sqlite"
    history.write_bytes(b"this is not a database" * 100)
    result = run_cli("clean", out, "--mode", "delete", "--yes", "--history", history)
    assert result.exit_code == 2 and "cannot open the run history" in result.output
    assert contents(out) == before


def test_history_failing_after_acting_is_a_warning_with_the_summary_and_exit_3(tmp_path, monkeypatch):
    import fmriprep_cleanup.ops.history as history_module
    from fmriprep_cleanup.basics.errors import CleanupError

    out = project(tmp_path)

    def add(self, record):
        raise CleanupError(f"cannot record the run in {self.path}: database is locked")

    monkeypatch.setattr(history_module.History, "add", add)
    result = run_cli("clean", out, "--mode", "delete", "--yes")
    assert result.exit_code == 3, result.output
    assert "\nRemoved 13 files" in result.stdout and "warning: cannot record the run" in result.stderr


@pytest.mark.slow
def test_ctrl_c_during_an_archive_stops_cleanly_with_130_and_a_rerun_finishes(tmp_path):
    """Ctrl-C while the first archive is being written (the run stopped itself right after its journal said
    archive-begin, then gets SIGINT and goes on): the partial archive goes, the run ends with 130."""
    out = project(tmp_path, files=40, size=20_000)
    junk_paths = junk_of(out)
    junk = {path: digest for path, digest in contents(out).items() if path in junk_paths}
    command = TOOL + ["clean", str(out), "--mode", "archive", "--archive-dir", str(tmp_path / "a"), "--yes"]
    process = stopped_at(command, '"archive-begin"', 1, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGCONT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert "Stopped early: interrupted (Ctrl-C)" in stdout and "Traceback" not in stderr
    assert not [name for _, _, names in os.walk(tmp_path / "a") for name in names if name.endswith(".tmp")]
    current = contents(out)
    saved = archived(tmp_path / "a")
    assert all(current.get(path) == digest or saved.get(path) == digest for path, digest in junk.items())
    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    saved = archived(tmp_path / "a")
    assert not junk_of(out) and all(saved.get(path) == digest for path, digest in junk.items())


# --- 4. honest figures -------------------------------------------------------------------------------------

def test_a_junk_hard_link_whose_twin_is_kept_frees_nothing(tmp_path):
    out = project(tmp_path, subjects=("01",), files=0)
    big = out / "sub-01/anat/sub-01_desc-preproc_bold.nii.gz"
    write(big, b"x" * 10_000_000)
    node = out / "work/fmriprep_23_2_wf/sub_01_wf/node"
    node.mkdir(parents=True)
    os.link(big, node / "out.nii.gz")
    write(node / "_node.pklz", b"y" * 100)
    for path in (node / "out.nii.gz", node / "_node.pklz"):
        os.utime(path, (OLD, OLD))
    report = json.loads(run_cli("report", out, "--format", "json", "--rules", "workdir-only").stdout)
    assert report["totals"]["junk_bytes"] == 100
    dry = json.loads(run_cli("clean", out, "--format", "json", "--rules", "workdir-only").stdout)
    real = run_cli("clean", out, "--mode", "delete", "--yes", "--format", "json", "--rules", "workdir-only",
                   "--history", tmp_path / "h.sqlite")
    data = json.loads(real.stdout)
    assert (data["files"], data["bytes"]) == (dry["files"], dry["bytes"]) == (2, 100)
    assert data["hard_linked"]["files"] == 1 and big.stat().st_size == 10_000_000
    history = json.loads(run_cli("history", "--history", tmp_path / "h.sqlite", "--format", "json").stdout)
    assert history["runs"][-1]["bytes"] == 100


@pytest.mark.parametrize("junk_first", [True, False])
def test_report_and_clean_agree_on_hard_links_whichever_link_the_scan_meets_first(tmp_path, junk_first):
    out = project(tmp_path, subjects=("01",), files=0)
    anat = out / "sub-01/anat"
    kept, junk = (anat / "sub-01_z_desc-preproc_T1w.nii.gz", anat / "sub-01_a_desc-copy_T1w.nii.gz") if junk_first else \
        (anat / "sub-01_a_desc-preproc_T1w.nii.gz", anat / "sub-01_z_desc-copy_T1w.nii.gz")
    write(kept, b"x" * 5000)
    os.link(kept, junk)
    options = ["--junk", "*desc-copy*", "--rules", "workdir-only"]
    report = json.loads(run_cli("report", out, "--format", "json", *options).stdout)
    dry = json.loads(run_cli("clean", out, "--format", "json", *options).stdout)
    real = json.loads(run_cli("clean", out, "--mode", "delete", "--yes", "--format", "json", *options).stdout)
    assert report["totals"]["junk_bytes"] == dry["bytes"] == real["bytes"] == 0
    assert report["totals"]["bytes"] == report["totals"]["keep_bytes"] + report["totals"]["junk_bytes"]
    assert real["files"] == 1 and kept.read_bytes() == b"x" * 5000 and not junk.exists()


def test_run_log_does_not_add_dry_run_bytes_to_removed_bytes(tmp_path):
    one, two = project(tmp_path / "one"), project(tmp_path / "two")
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: [{one}]\n    mode: dry-run\n  - paths: [{two}]\n    mode: delete\n")
    assert run_cli("run", policy, "--log", tmp_path / "log.jsonl").exit_code == 0
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    summary, (dry, real) = lines[-1], lines[:2]
    assert summary["bytes"] == real["bytes"] and summary["would_remove_bytes"] == dry["bytes"] > 0


# --- 5. durable archives -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tar", "tree"])
def test_every_new_folder_is_fsynced_and_the_archive_read_from_disk_before_an_original_goes(tmp_path, monkeypatch, fmt):
    import fmriprep_cleanup.act.delete as delete_module

    out = project(tmp_path)
    events = []
    real_fsync, real_unlink, real_fadvise = os.fsync, delete_module.os.unlink, os.posix_fadvise

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def fadvise(fd, offset, length, advice):
        events.append(("drop-cache", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fadvise(fd, offset, length, advice)

    def unlink(path, *, dir_fd=None):
        if dir_fd is not None:  # an original (the sealing key's first write unlinks its temporary name)
            events.append(("unlink", path))
        return real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    monkeypatch.setattr(delete_module.os, "unlink", unlink)
    result = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--archive-format", fmt, "--yes")
    assert result.exit_code == 0, result.output
    first_unlink = next(index for index, event in enumerate(events) if event[0] == "unlink")
    synced = {path for kind, path in events[:first_unlink] if kind == "fsync"}
    run_dir = next((tmp_path / "a").iterdir())
    assert str(tmp_path / "a") in synced and str(run_dir) in synced  # the run folder's entry, and its content
    dropped = {path for kind, path in events[:first_unlink] if kind == "drop-cache"}
    if fmt == "tree":  # the first group's every folder (no-subject/...), made durable before its originals go
        folders = {str(path) for path in (run_dir / "no-subject").rglob("*") if path.is_dir()} | {str(run_dir / "no-subject")}
        assert len(folders) > 3 and folders <= {path.replace("no-subject.tmp", "no-subject") for path in synced}
        assert any(path.endswith("lh.white") for path in dropped)
    else:
        assert any(path.endswith("no-subject.tar.tmp") for path in dropped)


# --- 6. an orphaned manifest never blocks restore -------------------------------------------------------------

def test_a_manifest_without_its_archive_is_reported_and_the_others_restored(tmp_path):
    out = project(tmp_path)
    before = contents(out)
    data = json.loads(run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes",
                              "--format", "json").stdout)
    orphan = [archive for archive in data["archives"] if "sub-02" in archive][0]
    os.unlink(orphan)  # a crash between the two renames of an older version left only the manifest
    result = run_cli("restore", tmp_path / "a", "--format", "json")
    assert result.exit_code == 3
    restored = json.loads(result.stdout)
    assert restored["restored_files"] == 7 and any("no archive beside it" in error for error in restored["errors"])
    assert {p: d for p, d in contents(out).items() if "sub_02_wf" not in p} == {p: d for p, d in before.items() if "sub_02_wf" not in p}


def test_recovery_keeps_a_verified_archive_whose_manifest_is_missing(tmp_path, monkeypatch):
    """A run was killed after an archive was verified and before any original went; then the archive lost
    its manifest (the commit marker). The rerun never removes an archive it cannot prove is not the only copy
    (issue 42): it says so, and archives the originals properly in a run folder of its own."""
    import fmriprep_cleanup.act.archive as archive_module

    out = project(tmp_path)
    junk_paths = junk_of(out)
    junk = {path: digest for path, digest in contents(out).items() if path in junk_paths}
    real_remove = archive_module.remove_archived

    def killed(*args, **kwargs):
        raise SimulatedKill  # right after the first archive was verified and renamed into place

    monkeypatch.setattr(archive_module, "remove_archived", killed)
    with pytest.raises(SimulatedKill):
        CliRunner().invoke(cli_module.cli, ["clean", str(out), "--mode", "archive", "--archive-dir", str(tmp_path / "a"),
                                            "--yes"], catch_exceptions=False)
    monkeypatch.setattr(archive_module, "remove_archived", real_remove)
    orphan = next((tmp_path / "a").glob("*/no-subject.tar"))
    kept = orphan.read_bytes()
    Path(str(orphan)[:-4] + ".manifest.tsv").unlink()
    assert all(path in contents(out) for path in junk)
    rerun = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes")
    assert rerun.exit_code == 0, rerun.output
    assert orphan.read_bytes() == kept and "without its manifest; kept" in rerun.output, rerun.output
    saved = archived(tmp_path / "a")
    assert all(saved.get(path) == digest for path, digest in junk.items())
    assert not junk.keys() & contents(out).keys()


# --- 7. tree archives and symlinks to folders; damaged tree archives ---------------------------------------------

def test_a_tree_archive_keeps_a_symlink_to_a_folder_as_a_link(tmp_path):
    out = project(tmp_path)
    os.symlink("../node1", out / "work/fmriprep_23_2_wf/sub_01_wf/node0/linked_folder")
    os.utime(out / "work/fmriprep_23_2_wf/sub_01_wf/node0/linked_folder", (OLD, OLD), follow_symlinks=False)
    before = contents(out)
    result = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--archive-format", "tree", "--yes")
    assert result.exit_code == 0, result.output
    assert run_cli("restore", tmp_path / "a").exit_code == 0
    assert contents(out) == before


def test_restore_of_a_damaged_tree_archive_reports_and_restores_the_rest(tmp_path):
    out = project(tmp_path)
    run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--archive-format", "tree", "--yes")
    member = next((tmp_path / "a").glob("*/sub-01/workdir/fmriprep_23_2_wf/sub_01_wf/node3/out.nii.gz"))
    member.unlink()
    result = run_cli("restore", tmp_path / "a", "--format", "json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["restored_files"] == 12 and len(data["errors"]) == 1 and "node3/out.nii.gz" in data["errors"][0]


# --- 8. one lock per dataset, whatever the spelling ------------------------------------------------------------

def test_the_lock_is_the_same_for_every_spelling_of_a_dataset(tmp_path):
    from fmriprep_cleanup.act.lock import RunLock
    from fmriprep_cleanup.fmriprep.discovery import discover_dataset

    out = tmp_path / "OUT"
    make_files(out, {"fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 10, "freesurfer/fsaverage5/surf/lh.white": 10})
    write_description(out / "fmriprep", "1.5.8", legacy=True)
    (out / "fmriprep" / "sub-01.html").write_text("No errors to report!")
    os.symlink(out, tmp_path / "alias")
    spellings = [out, out / "fmriprep", tmp_path / "alias", tmp_path / "alias" / "fmriprep", str(out) + "/"]
    assert len({discover_dataset(str(path)).state_dir for path in spellings}) == 1
    with RunLock(discover_dataset(str(out / "fmriprep")).state_dir):
        for path in spellings:
            refused = run_cli("clean", path, "--mode", "delete", "--yes", "--min-age", "0")
            assert refused.exit_code == 2 and "another fmriprep-cleanup run" in refused.output, path
    base = tmp_path / "states"
    base.mkdir()
    os.symlink(base, tmp_path / "states-link")
    for path, state in zip(spellings, [base, tmp_path / "states-link"] * 3, strict=False):
        result = run_cli("clean", path, "--state-dir", state, "--mode", "delete", "--yes", "--min-age", "0")
        assert result.exit_code == 0, result.output
    assert len(list(base.iterdir())) == 1  # one state folder for the dataset, whichever spelling of either


# --- 9. restore is as careful as delete -------------------------------------------------------------------------

def _edit_manifest(archive_dir, replace):
    manifest = next(Path(archive_dir).glob("*/sub-01.manifest.tsv"))
    lines = manifest.read_text().splitlines()
    lines[1] = replace(lines[1])
    manifest.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("target", ["absolute", "dotdot"])
def test_restore_refuses_a_manifest_that_points_elsewhere(tmp_path, target):
    out = project(tmp_path)
    run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes")
    victim = tmp_path / "victim"
    victim.mkdir()

    def replace(line):
        fields = line.split("\t")
        fields[1] = str(victim / "planted.txt") if target == "absolute" else fields[1].rsplit("/", 1)[0] + "/../../../../../victim2/planted2.txt"
        return "\t".join(fields)

    _edit_manifest(tmp_path / "a", replace)
    result = run_cli("restore", tmp_path / "a", "--format", "json")
    assert result.exit_code == 3 and "not sealed with your key" in result.stdout  # the edit broke its seal
    assert not (victim / "planted.txt").exists() and not (tmp_path / "victim2").exists()
    assert json.loads(result.stdout)["restored_files"] == 7  # the other archives were restored


def test_restore_refuses_a_sealed_manifest_that_points_outside_its_roots(tmp_path):
    """Defence in depth: even a manifest sealed with the user's key (written by a bug) goes nowhere but its roots."""
    import dataclasses

    from fmriprep_cleanup.act.manifest import load_manifest, write_manifest

    out = project(tmp_path)
    run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes")
    manifest = next(Path(tmp_path / "a").glob("*/sub-01.manifest.tsv"))
    entries = load_manifest(str(manifest)).entries
    entries[0] = dataclasses.replace(entries[0], path=str(tmp_path / "victim" / "planted.txt"))
    manifest.unlink()
    write_manifest(str(manifest), entries, str(manifest))
    assert load_manifest(str(manifest)).verdict.trusted
    result = run_cli("restore", tmp_path / "a", "--format", "json")
    assert result.exit_code == 3 and "outside the roots the archive recorded" in result.stdout
    assert not (tmp_path / "victim").exists()


def test_restore_never_writes_through_a_symlink_on_the_way(tmp_path):
    out = project(tmp_path)
    run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(out / "work" / "fmriprep_23_2_wf", ignore_errors=True)
    os.symlink(elsewhere, out / "work" / "fmriprep_23_2_wf")
    result = run_cli("restore", tmp_path / "a", "--format", "json")
    assert result.exit_code == 3 and "a folder on the way is a symlink" in result.stdout
    assert list(elsewhere.iterdir()) == []


def test_restore_goes_on_after_a_damaged_archive(tmp_path):
    out = project(tmp_path)
    data = json.loads(run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes",
                              "--format", "json").stdout)
    damaged = sorted(data["archives"])[0]  # no-subject.tar comes first
    with open(damaged, "r+b") as handle:
        handle.truncate(700)  # cut inside its one member: tarfile cannot read it to the end
    result = run_cli("restore", tmp_path / "a", "--format", "json")
    assert result.exit_code == 3
    restored = json.loads(result.stdout)
    assert restored["restored_files"] == 12 and restored["errors"]  # both subjects' archives, after the damaged one


def test_a_file_rewritten_after_it_was_archived_is_kept(tmp_path, monkeypatch):
    import fmriprep_cleanup.act.archive as archive_module

    out = project(tmp_path)
    victim = out / "work/fmriprep_23_2_wf/sub_01_wf/node2/out.nii.gz"
    real_remove = archive_module.remove_archived

    def rewrite_then_remove(entries, *args, **kwargs):
        if any(entry.path == str(victim) for entry in entries):
            st = victim.stat()
            victim.write_bytes(b"N" * st.st_size)  # same size, new content...
            os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and its mtime put back
        return real_remove(entries, *args, **kwargs)

    monkeypatch.setattr(archive_module, "remove_archived", rewrite_then_remove)
    result = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes")
    assert result.exit_code == 3 and "changed since the scan" in result.output
    assert victim.read_bytes().startswith(b"NNNN")


def test_a_folder_above_the_dataset_replaced_by_a_symlink_during_the_prompt_stops_the_run(tmp_path, monkeypatch):
    parent = tmp_path / "parent"
    out = project(parent)
    decoy = tmp_path / "decoy"
    shutil.copytree(parent, decoy, symlinks=True)
    moved = tmp_path / "moved"
    decoy_before, data_before = contents(decoy), None

    def confirm(*args, **kwargs):
        nonlocal data_before
        os.rename(parent, moved)  # the folder above the dataset root is swapped...
        os.symlink(decoy, parent)  # ...for a link to a look-alike
        data_before = contents(moved)
        return True

    monkeypatch.setattr(cli_common, "interactive", lambda: True)
    monkeypatch.setattr(cli_module.click, "confirm", confirm)
    result = run_cli("clean", out, "--mode", "delete")
    # the journal is opened from / down without following a link: the run stops before anything changes
    assert result.exit_code == 2 and "is a symlink" in result.output, result.output
    assert contents(decoy) == decoy_before and contents(moved) == data_before


# --- 10. unattended runs go on; tests stay in their sandbox ------------------------------------------------------

def test_an_unexpected_error_in_one_dataset_is_logged_and_the_others_go_on(tmp_path, monkeypatch):
    import fmriprep_cleanup.act.clean as clean_module

    one, two = project(tmp_path / "one"), project(tmp_path / "two")
    real_clean = clean_module.clean

    def broken(plan, *args, **kwargs):
        if str(tmp_path / "one") in plan.dataset.path:
            raise RuntimeError("a bug")
        return real_clean(plan, *args, **kwargs)

    monkeypatch.setattr(clean_module, "clean", broken)
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: [{one}, {two}]\n    mode: delete\n")
    result = run_cli("run", policy, "--log", tmp_path / "log.jsonl")
    assert result.exit_code == 4
    assert f"FAILED     {one} [unexpected error (RuntimeError: a bug)" in result.stdout and f"OK         {two}" in result.stdout
    log = (tmp_path / "log.jsonl").read_text()
    assert "RuntimeError: a bug" in log and "Traceback (most recent call last)" in log
    assert not junk_of(two) and junk_of(one)


def test_tests_never_touch_the_real_history(tmp_path):
    from fmriprep_cleanup.ops.history import default_history_path

    real_home = os.path.expanduser("~root") if os.geteuid() == 0 else None
    assert not default_history_path().startswith(os.path.join(real_home or "/nonexistent", ".local"))
    assert os.environ["XDG_STATE_HOME"].startswith(os.path.dirname(os.environ["HOME"]))
    out = project(tmp_path)
    assert run_cli("clean", out, "--mode", "delete", "--yes").exit_code == 0
    assert os.path.exists(default_history_path()) and default_history_path().startswith(os.environ["HOME"])


# --- killed at every kind of moment --------------------------------------------------------------------------

# Where a run can be cut short, each the moment right after its journal recorded it (or the scan listed that
# many folders): while scanning, after the run starts, while a batch is removed and after it, while an archive
# is written and after it is verified, while emptied folders go, and after the run's end was written.
KILL_POINTS = {
    "delete": [("listing", 5), ('"run-start"', 1), ('"removing"', 1), ('"removed"', 1), ('"removing"', 2),
               ('"removed"', 2), ('"removed-dirs"', 1), ('"run-end"', 1)],
    "archive": [("listing", 5), ('"run-start"', 1), ('"archive-begin"', 1), ('"archive-verified"', 1),
                ('"removing"', 1), ('"removed"', 1), ('"archive-begin"', 2), ('"archive-verified"', 2),
                ('"removed"', 2), ('"removed-dirs"', 1), ('"run-end"', 1)],
}


@pytest.mark.slow
@pytest.mark.parametrize("mode,marker,count", [(mode, marker, count) for mode, points in KILL_POINTS.items()
                                               for marker, count in points])
def test_killed_at_any_moment_loses_nothing_and_a_rerun_finishes(tmp_path, mode, marker, count):
    """SIGKILL at each kind of moment of a run's life: every original is in place or in a verified archive (or,
    deleting, gone with its record), kept files are untouched, the same command run again exits 0 with the job
    done, and a third time finds nothing to do. Two subjects of 150 files: two batches, two archives."""
    out = project(tmp_path, files=150, size=200, seed=5)
    original = contents(out)
    junk_paths = junk_of(out)
    junk = {path: digest for path, digest in original.items() if path in junk_paths}
    kept = {path: digest for path, digest in original.items() if path not in junk}
    options = ["--archive-dir", str(tmp_path / "a")] if mode == "archive" else []
    command = TOOL + ["clean", str(out), "--mode", mode, "--yes"] + options
    kill_when_journal_says(command, marker, count)
    current = contents(out)
    saved = archived(tmp_path / "a") if mode == "archive" else {}
    for path, digest in junk.items():  # in place, or inside a verified archive (or, deleting, gone): never damaged
        if mode == "archive":
            assert current.get(path) == digest or saved.get(path) == digest, path
        else:
            assert current.get(path, digest) == digest, path
    assert all(current.get(path) == digest for path, digest in kept.items())
    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert not junk_of(out)
    if mode == "archive":
        saved = archived(tmp_path / "a")
        assert all(saved.get(path) == digest for path, digest in junk.items())
        assert not [name for _, _, names in os.walk(tmp_path / "a") for name in names if name.endswith(".tmp")]
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to do" in again.stdout, again.stdout + again.stderr
