"""DataLad and git-annex datasets, with the real git-annex: true sizes, .git never scanned, space freed with
`git annex drop` (never an unlink), refusals said, the git tree left clean."""

import csv
import json
import os
import shutil
import subprocess

import pytest
from conftest import DATA, LONG_AGO, finish_subjects, make_files, write_description
from conftest import cli as run

from fmriprep_cleanup.fmriprep import demo

pytestmark = [pytest.mark.integration]

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.org", "GIT_COMMITTER_NAME": "Test",
           "GIT_COMMITTER_EMAIL": "test@example.org"}


def require_git_annex():
    """git-annex is installed by .ci/run; on a laptop without it these tests skip, in CI they fail."""
    if shutil.which("git-annex"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI must run the git-annex tests: apt-get install git-annex")
    pytest.skip("needs git-annex (Debian: apt-get install git-annex)")


def git(repo, *args, check=True):
    done = subprocess.run(["git", "-C", str(repo), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, check=False)
    if check and done.returncode:
        raise AssertionError(f"git {' '.join(map(str, args))}: {done.stderr}")
    return done.stdout


def objects_bytes(repo):
    """What .git/annex/objects holds, as du counts it."""
    total = 0
    for folder, _, names in os.walk(repo / ".git" / "annex" / "objects"):
        for name in names:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


JUNK_TEMPLATE = "sourcedata/freesurfer/fsaverage/surf/lh.white"  # junk under the default rules


@pytest.fixture
def annexed(tmp_path):
    """An fMRIPrep output kept as a git-annex repository: derivatives, reports, FreeSurfer templates annexed
    (locked), dataset_description.json in git; a working directory beside it (never in git)."""
    require_git_annex()
    repo = tmp_path / "ds001-fmriprep"
    write_description(repo)
    make_files(repo, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 50_000, "sub-02/anat/sub-02_desc-preproc_T1w.nii.gz": 60_000,
                      JUNK_TEMPLATE: 40_000, "sourcedata/freesurfer/fsaverage/surf/rh.white": 30_000})
    finish_subjects(repo, ["01", "02"])
    for index, path in enumerate(sorted(repo.rglob("*.white"))):  # distinct content: distinct annex keys
        path.write_bytes(bytes([index + 1]) * path.stat().st_size)
    make_files(tmp_path / "work", {f"fmriprep_23_2_wf/sub_0{s}_wf/node/out.nii.gz": 7000 for s in (1, 2)})
    for folder, _, names in os.walk(tmp_path / "work"):
        for name in names:
            os.utime(os.path.join(folder, name), (LONG_AGO, LONG_AGO))
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "Test")  # as a user's own identity: git-annex commits its location log
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "annex", "init", "-q", "test")
    git(repo, "add", "dataset_description.json")
    git(repo, "annex", "add", "-q", ".")
    git(repo, "commit", "-q", "-m", "fmriprep outputs")
    return repo


def with_second_copy(repo, tmp_path):
    (tmp_path / "backup").mkdir(exist_ok=True)
    git(repo, "annex", "initremote", "backup", "type=directory", f"directory={tmp_path / 'backup'}",
        "encryption=none")
    git(repo, "annex", "copy", "-q", "--to", "backup", ".")


def test_annexed_sizes_are_the_contents_and_git_is_not_output(annexed):
    data = json.loads(run("report", annexed, "--no-work-dir", "--format", "json").stdout)
    assert data["dataset"]["repository"]["annexed"] is True
    contents = {os.path.realpath(os.path.join(folder, name))  # links sharing a key (the two reports) share one
                for folder, dirs, names in os.walk(annexed) if ".git" not in folder.split(os.sep) for name in names}
    expected = sum(os.path.getsize(path) for path in contents)
    assert data["totals"]["bytes"] == expected  # links count their content, once, not their own ~100 bytes
    assert data["totals"]["elsewhere_bytes"] == 0
    assert not any(".git" in row["folder"] for row in data["largest_junk_folders"])
    plan = run("plan", annexed, "--no-work-dir").stdout
    assert plan.count("\n") > 5 and "/.git/" not in plan


def test_delete_drops_annexed_junk_with_git_annex_and_leaves_the_tree_clean(annexed, tmp_path):
    with_second_copy(annexed, tmp_path)
    before = objects_bytes(annexed)
    dry = json.loads(run("clean", annexed, "--format", "json").stdout)
    result = run("clean", annexed, "--mode", "delete", "--yes", "--format", "json",
                 "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    freed = before - objects_bytes(annexed)
    assert freed == 70_000  # the lh and rh templates' content, dropped
    assert done["bytes"] == dry["bytes"] == 70_000 + 14_000  # and the working directory's files, unlinked
    assert os.path.islink(annexed / JUNK_TEMPLATE) and not os.path.exists(annexed / JUNK_TEMPLATE)  # dangling
    assert not (tmp_path / "work" / "fmriprep_23_2_wf" / "sub_01_wf" / "node" / "out.nii.gz").exists()
    assert git(annexed, "status", "--porcelain") == ""
    again = run("clean", annexed, "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert again.exit_code == 0 and "Nothing to do" in again.stdout
    report = json.loads(run("report", annexed, "--format", "json").stdout)
    assert report["totals"]["junk_elsewhere_bytes"] == 70_000  # still counted, as elsewhere only


def test_without_another_copy_nothing_is_dropped_and_the_run_says_why(annexed, tmp_path):
    before = objects_bytes(annexed)
    dry = run("clean", annexed, "--no-work-dir")
    assert dry.exit_code == 0 and "git-annex refuses" in dry.stdout  # the dry run shows the same failure
    result = run("clean", annexed, "--no-work-dir", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 3, result.output
    assert "Failed 2 files" in result.stdout and "no other copy" in result.stdout
    assert objects_bytes(annexed) == before and os.path.exists(annexed / JUNK_TEMPLATE)
    assert git(annexed, "status", "--porcelain") == ""
    warned = run("clean", annexed, "--no-work-dir", "--force-drop")
    assert "--force-drop drops the only copy of 2 annexed file(s) (70,000 bytes)" in warned.output
    forced = run("clean", annexed, "--no-work-dir", "--mode", "delete", "--yes", "--force-drop",
                 "--history", tmp_path / "h.sqlite")
    assert forced.exit_code == 0, forced.output
    assert before - objects_bytes(annexed) == 70_000 and git(annexed, "status", "--porcelain") == ""


def test_fresh_clone_times_are_not_activity_and_absent_evidence_is_said(annexed, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(annexed), str(clone)], check=True, env={**os.environ, **GIT_ENV})
    data = json.loads(run("status", clone, "--no-work-dir", "--format", "json").stdout)
    assert {row["status"] for row in data["subjects"]} == {"finished"}  # not "running" for the clone's times
    assert any("content not here" in line for row in data["subjects"] for line in row["evidence"])
    report = json.loads(run("report", clone, "--no-work-dir", "--format", "json").stdout)
    assert report["totals"]["elsewhere_bytes"] == report["totals"]["bytes"] - os.path.getsize(
        clone / "dataset_description.json")
    assert report["totals"]["junk_bytes"] == report["totals"]["junk_elsewhere_bytes"] == 70_000
    assert "0 B of" in run("report", clone, "--no-work-dir").stdout  # reclaimable here: nothing
    assert run("clean", clone, "--no-work-dir", "--mode", "delete", "--yes",
               "--history", tmp_path / "h.sqlite").exit_code == 0
    assert git(clone, "status", "--porcelain") == ""


def test_the_clone_shape_of_openneuroderivatives_ds003752(tmp_path):
    """Every file of the listing as a git-annex link (MD5E key with its size, content absent), as a fresh
    clone of OpenNeuroDerivatives/ds003752-fmriprep is; .git with objects, .datalad, and a subdataset."""
    with open(DATA / "ds003752-fmriprep-23.2.0.tsv", newline="") as handle:
        listing = [(row["path"], int(row["size"])) for row in csv.DictReader(handle, delimiter="\t")]
    root = tmp_path / "ds003752-fmriprep"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".git" / "refs" / "remotes" / "origin").mkdir(parents=True)
    (root / ".git" / "refs" / "remotes" / "origin" / "git-annex").write_text("0" * 40 + "\n")
    make_files(root / ".git" / "objects" / "pack", {"pack-1.pack": 70_000_000})
    make_files(root / ".datalad", {"config": 120})
    (root / ".gitmodules").write_text('[submodule "sourcedata/raw"]\n\tpath = sourcedata/raw\n')
    make_files(root / "sourcedata" / "raw", {"sub-01/anat/sub-01_T1w.nii.gz": 9_000_000})
    for number, (path, size) in enumerate(listing):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path == "dataset_description.json":
            target.write_bytes(demo.dataset_description("23.2.0", size))
            continue
        if path == ".gitmodules":
            continue
        key = f"MD5E-s{size}--{number:032x}{''.join(target.suffixes)}"
        depth = len(path.split("/")) - 1
        os.symlink("../" * depth + f".git/annex/objects/Xx/Yy/{key}/{key}", target)
    listed = sum(size for path, size in listing if path != ".gitmodules") + (root / ".gitmodules").stat().st_size
    data = json.loads(run("report", root, "--format", "json").stdout)
    totals = data["totals"]
    assert totals["bytes"] == listed  # the annexed sizes, to the byte
    assert totals["elsewhere_bytes"] == listed - os.path.getsize(root / "dataset_description.json") \
        - (root / ".gitmodules").stat().st_size
    assert totals["junk_bytes"] == totals["junk_elsewhere_bytes"]  # reclaimable here: 0 bytes
    assert data["energy"]["junk"]["bytes"] == 0
    assert data["dataset"]["repository"]["kind"] == "DataLad dataset"
    assert data["dataset"]["repository"]["subdatasets"] == [str(root / "sourcedata" / "raw")]
    plan = run("plan", root).stdout
    assert "/.git/" not in plan and "/.datalad/" not in plan and "sourcedata/raw/" not in plan
    assert {row["category"] for row in data["by_category"]}.isdisjoint({"git", ".git"})
    statuses = json.loads(run("status", root, "--format", "json").stdout)["subjects"]
    assert statuses and all(row["status"] != "running" for row in statuses)
    audit = json.loads(run("audit", tmp_path, "--format", "json").stdout)["datasets"][0]
    assert audit["junk_bytes"] == 0 and audit["elsewhere_bytes"] == totals["elsewhere_bytes"]


def test_a_plain_git_repository_keeps_its_git_folder_out(tmp_path):
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 500})
    finish_subjects(out, ["01"])
    subprocess.run(["git", "init", "-q", str(out)], check=True)
    make_files(out / ".git" / "objects", {"big": 1_000_000})
    data = json.loads(run("report", out, "--format", "json").stdout)
    assert data["totals"]["bytes"] < 100_000 and data["dataset"]["repository"]["kind"] == "git repository"
    assert data["dataset"]["repository"]["annexed"] is False


def test_an_unlocked_branch_counts_content_and_pointer_files_by_their_keys(annexed, tmp_path):
    with_second_copy(annexed, tmp_path)
    git(annexed, "annex", "adjust", "--unlock")
    git(annexed, "annex", "drop", "-q", "sub-02/anat/sub-02_desc-preproc_T1w.nii.gz")  # now a pointer file
    pointer = annexed / "sub-02/anat/sub-02_desc-preproc_T1w.nii.gz"
    assert not pointer.is_symlink() and pointer.stat().st_size < 200
    data = json.loads(run("report", annexed, "--no-work-dir", "--format", "json").stdout)
    assert data["dataset"]["repository"]["unlocked"] is True
    assert data["totals"]["elsewhere_bytes"] == 60_000  # the pointer stands for its content's 60,000 bytes
    by_subject = {row["subject"]: row for row in data["by_subject"]}
    assert by_subject["02"]["bytes"] >= 60_000 and by_subject["01"]["bytes"] >= 50_000
    before = objects_bytes(annexed)
    result = run("clean", annexed, "--no-work-dir", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output
    assert before - objects_bytes(annexed) == 70_000  # the unlocked templates' content, dropped by git-annex
    assert (annexed / JUNK_TEMPLATE).read_bytes().startswith(b"/annex/objects/")  # a pointer now
    assert git(annexed, "status", "--porcelain") == ""


def test_archive_is_the_other_copy_and_restore_gives_the_content_back_to_git_annex(annexed, tmp_path):
    content = (annexed / JUNK_TEMPLATE).read_bytes()
    before = objects_bytes(annexed)
    result = run("clean", annexed, "--no-work-dir", "--mode", "archive", "--archive-dir", tmp_path / "archives",
                 "--yes", "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output
    assert before - objects_bytes(annexed) == 70_000  # no other copy existed: the verified archive is it
    assert os.path.islink(annexed / JUNK_TEMPLATE) and not os.path.exists(annexed / JUNK_TEMPLATE)
    assert git(annexed, "status", "--porcelain") == ""
    manifest = next((tmp_path / "archives").rglob("*.manifest.tsv")).read_text()
    key = os.path.basename(os.readlink(annexed / JUNK_TEMPLATE))
    assert "\tannexed\t" in manifest and key in manifest  # the key travels with the content
    assert run("clean", annexed, "--no-work-dir", "--mode", "archive", "--archive-dir", tmp_path / "archives",
               "--yes", "--history", tmp_path / "h.sqlite").exit_code == 0  # a rerun: nothing to do
    restored = run("restore", tmp_path / "archives")
    assert restored.exit_code == 0, restored.output
    assert (annexed / JUNK_TEMPLATE).read_bytes() == content and objects_bytes(annexed) == before
    assert git(annexed, "status", "--porcelain") == ""
    assert "already in place" in run("restore", tmp_path / "archives").output  # restoring twice changes nothing
    elsewhere = run("restore", tmp_path / "archives", "--to", tmp_path / "copy")
    assert elsewhere.exit_code == 0 and (tmp_path / "copy" / "freesurfer" / "fsaverage/surf/lh.white").read_bytes() == content


def test_the_lock_and_journal_live_inside_git_and_an_old_state_folder_is_not_output(annexed, tmp_path):
    old_state = annexed / ".fmriprep-cleanup" / "journal"
    old_state.mkdir(parents=True)
    (old_state / "old.done.jsonl").write_text("{}\n" * 1000)  # left by an older version in the dataset
    git(annexed, "add", "-f", ".fmriprep-cleanup")
    git(annexed, "commit", "-q", "-m", "an older version's state, committed by mistake")
    plan = run("plan", annexed, "--no-work-dir").stdout
    assert ".fmriprep-cleanup" not in plan
    result = run("clean", annexed, "--no-work-dir", "--mode", "delete", "--yes", "--force-drop",
                 "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output
    assert str(annexed / ".git" / "fmriprep-cleanup") in result.stdout  # the journal's path is printed
    assert git(annexed, "status", "--porcelain") == ""


def test_links_sharing_a_key_across_batches_are_dropped_once_and_none_fails(tmp_path):
    """FreeSurfer's fsaverage copies share git-annex keys; a key dropped in one batch of a run is dropped for
    every later link to it (git-annex says nothing of a link whose content is already gone): exit 0, no failure."""
    from fmriprep_cleanup.basics.annexcall import DROP_BATCH

    require_git_annex()
    repo = tmp_path / "ds"
    write_description(repo)
    surf = repo / "sourcedata" / "freesurfer" / "fsaverage" / "surf"
    surf.mkdir(parents=True)
    for index in range(DROP_BATCH + 1):  # more than one batch of distinct content...
        (surf / f"a{index:04d}").write_bytes(b"%d" % index * 50)
    (surf / "z-copy").write_bytes((surf / "a0000").read_bytes())  # ...and a copy of the first, in the last batch
    finish_subjects(repo, ["01"])
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "annex", "init", "-q", "test")
    git(repo, "add", "dataset_description.json")
    git(repo, "annex", "add", "-q", ".")
    git(repo, "commit", "-q", "-m", "outputs")
    with_second_copy(repo, tmp_path)
    result = run("clean", repo, "--no-work-dir", "--mode", "delete", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["exit_status"] == 0 and not done["failure_messages"] and done["files"] == DROP_BATCH + 2, done
    assert not any((surf / name).exists() for name in ("a0000", "z-copy"))  # the content is gone, once
    assert git(repo, "status", "--porcelain") == ""


def test_clean_list_is_plan_junk_less_what_it_cannot_free_and_says_so(annexed, tmp_path):
    """On a git-annex dataset `clean --list` leaves out annexed junk whose content is elsewhere (dropping it
    frees nothing): exactly those lines of `plan --action junk`, counted on stderr."""
    with_second_copy(annexed, tmp_path)
    git(annexed, "annex", "drop", "-q", JUNK_TEMPLATE)
    planned = run("plan", annexed, "--no-work-dir", "--action", "junk").stdout.splitlines()
    listed = run("clean", annexed, "--no-work-dir", "--list")
    assert listed.exit_code == 0, listed.output
    rows = listed.stdout.splitlines()
    assert rows[0] == planned[0] and set(rows) <= set(planned)
    assert [line for line in planned if line not in rows] == [line for line in planned if JUNK_TEMPLATE in line]
    assert "Not listed (1 annexed junk files whose content is not here (nothing to free))" in listed.stderr
