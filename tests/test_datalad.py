"""DataLad datasets as the field ships them (issue 27), built with the real datalad and git-annex: a fresh clone
is not "running", an annexed dataset_description.json that is not here does not stop a report, nothing stored
in git is unlinked, content shared by several paths counts once, and every command gives one size."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LONG_AGO, cli, finish_subjects, make_files, write_description

pytestmark = [pytest.mark.integration]

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.org", "GIT_COMMITTER_NAME": "Test",
           "GIT_COMMITTER_EMAIL": "test@example.org"}
TEMPLATES = "sourcedata/freesurfer/fsaverage"  # FreeSurfer's template copies: junk, stored in git (as in ds003752)
SHARED_KEY = ("sourcedata/freesurfer/fsaverage5/surf/rh.thickness", "sourcedata/freesurfer/fsaverage5/surf/rh.avg_thickness")


def require_datalad():
    """datalad (PyPI, the test extra) and git-annex (Debian, .ci/run) are installed in CI; a laptop without them
    skips these tests, CI fails them."""
    missing = [name for name in ("datalad", "git-annex") if shutil.which(name) is None]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the DataLad tests: {', '.join(missing)} missing")
    pytest.skip(f"needs {', '.join(missing)}")


def sh(*args, cwd=None, check=True):
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, check=False)
    if check and done.returncode:
        raise AssertionError(f"{' '.join(map(str, args))}: {done.stdout}\n{done.stderr}")
    return done.stdout


def git(repo, *args, check=True):
    return sh("git", "-C", repo, *args, check=check)


def status_porcelain(repo):
    return git(repo, "status", "--porcelain")


def build_outputs(ds, subjects=("01", "02", "03")):
    """fMRIPrep 23.2 outputs of finished subjects, with the shapes of OpenNeuroDerivatives' datasets: NIfTI,
    reports and run configs annexed; JSON sidecars, dataset_description.json and the fsaverage template copies
    in git; two template files with identical content (one annex key, two paths)."""
    write_description(ds)
    files = {}
    for label in subjects:
        files[f"sub-{label}/anat/sub-{label}_desc-preproc_T1w.nii.gz"] = 40_000 + int(label)
        files[f"sub-{label}/func/sub-{label}_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"] = 90_000 + int(label)
        files[f"sub-{label}/func/sub-{label}_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.json"] = 300  # in git
    files.update({f"{TEMPLATES}/surf/lh.white": 3000, f"{TEMPLATES}/surf/rh.white": 3100,
                  f"{TEMPLATES}/label/lh.aparc.annot": 2000})
    make_files(ds, files)
    for index, path in enumerate(sorted(ds / name for name in files)):
        path.write_bytes(bytes([index % 250 + 1]) * path.stat().st_size)  # distinct content: distinct keys
    for name in SHARED_KEY:
        (ds / name).parent.mkdir(parents=True, exist_ok=True)
        (ds / name).write_bytes(b"same thickness" * 500)  # 7,000 bytes, one key for both
    finish_subjects(ds, list(subjects))
    with open(ds / ".gitattributes", "a") as handle:
        handle.write(f"{TEMPLATES}/** annex.largefiles=nothing\n*.json annex.largefiles=nothing\n")
    for folder, _, names in os.walk(ds):
        if ".git" not in folder:
            for name in names:
                os.utime(os.path.join(folder, name), (LONG_AGO, LONG_AGO), follow_symlinks=False)


@pytest.fixture(autouse=True)
def git_identity(monkeypatch):
    """A user's git identity, as anyone who commits has (git-annex and --git-rm commit)."""
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """A DataLad dataset of fMRIPrep outputs, saved: what OpenNeuroDerivatives publishes. Built once; tests
    clone it and change only their clones."""
    require_datalad()
    ds = tmp_path_factory.mktemp("published") / "ds000001-fmriprep"
    sh("datalad", "create", ds)
    build_outputs(ds)
    sh("datalad", "save", "-m", "fMRIPrep 23.2.0 outputs", cwd=ds)
    return ds


@pytest.fixture
def fresh_clone(published, tmp_path):
    """`datalad clone` of it, elsewhere: every file just checked out, no annexed content here."""
    clone = tmp_path / "clone"
    sh("datalad", "clone", published, clone)
    return clone


def report(path, *options):
    result = cli("report", path, "--format", "json", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- 1. a fresh clone is not running ------------------------------------------------------------------------

def test_1_a_fresh_clone_is_finished_not_running(fresh_clone):
    status = cli("status", fresh_clone)
    assert status.exit_code == 0, status.output
    assert "running" not in status.output and status.output.count("finished") >= 3, status.output
    data = report(fresh_clone)
    assert {row["status"] for row in data["subjects_by_status"]} == {"finished"}
    assert not [row for row in data["by_category"] if row["category"].startswith("held back")]


def test_1_after_datalad_get_it_is_still_not_running(fresh_clone):
    sh("datalad", "get", "sub-01", cwd=fresh_clone)
    data = report(fresh_clone)
    assert {row["status"] for row in data["subjects_by_status"]} == {"finished"}


def test_1_a_new_untracked_file_is_activity(fresh_clone):
    (fresh_clone / "sub-02" / "func" / "sub-02_new_bold.nii.gz").write_bytes(b"being written")
    status = json.loads(cli("status", fresh_clone, "--format", "json").stdout)
    states = {row["subject"]: row["status"] for row in status["subjects"]}
    assert states["02"] == "running" and states["01"] == "finished", states


# --- 2. an annexed dataset_description.json that is not here -------------------------------------------------

def annex_everything_elsewhere(tmp_path):
    """An fMRIPrep output whose every file, description included, is annexed under URL keys and not fetched
    (git annex fromkey: the links, no content), as OpenNeuroDerivatives' older datasets are shipped."""
    require_datalad()
    ds = tmp_path / "ds000002-fmriprep"
    sh("datalad", "create", ds)
    url = "https&c%%s3.amazonaws.com%openneuro-derivatives%fmriprep%ds000002-fmriprep%"
    files = {"dataset_description.json": 696, "sub-01.html": 120_000, "logs/CITATION.md": 3_000,
             "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 4_000_000,
             "sub-01/log/20240127-124830_0c970070-7984-4260-b527-e484380e8f41/fmriprep.toml": 4_200,
             f"{TEMPLATES}/surf/lh.white": 9_000}
    for name, size in files.items():
        (ds / name).parent.mkdir(parents=True, exist_ok=True)
        key = f"URL-s{size}--{url}{name.replace('/', '%')}"
        git(ds, "annex", "fromkey", "--force", key, name)
    git(ds, "commit", "-q", "-m", "links to content on S3")
    return ds


def test_2a_an_annexed_description_not_here_is_recognised_and_says_how_to_fetch_it(tmp_path):
    ds = annex_everything_elsewhere(tmp_path)
    result = cli("report", ds)
    assert result.exit_code == 0, result.output
    assert "fMRIPrep" in result.output and "datalad get dataset_description.json" in result.output
    assert "version unknown" in result.output.lower() or "version cannot be known" in result.output.lower()


def test_2b_a_yoda_superdataset_is_found_through_its_fmriprep_output(tmp_path):
    require_datalad()
    bids = tmp_path / "raw"
    sh("datalad", "create", bids)
    make_files(bids, {"sub-01/anat/sub-01_T1w.nii.gz": 1000})
    sh("datalad", "save", "-m", "raw", cwd=bids)
    study = tmp_path / "study"
    sh("datalad", "create", study)
    sh("datalad", "clone", "-d", study, bids, study / "bids")
    legacy = study / "fmriprep"
    write_description(legacy, version="1.2.2", legacy=True)
    make_files(study, {"fmriprep/sub-01/anat/sub-01_T1w_preproc.nii.gz": 5000, "code/run.sh": 10,
                       "logs/job.out": 10, "freesurfer/fsaverage/surf/lh.white": 2000})
    finish_subjects(legacy, ["01"], version="1.2.2")
    sh("datalad", "save", "-m", "fmriprep 1.2.2", cwd=study)
    clone = tmp_path / "clone"
    sh("datalad", "clone", study, clone)  # nothing fetched, the bids subdataset not installed
    for target in (clone, clone / "fmriprep"):
        result = cli("report", target)
        assert result.exit_code == 0, result.output
        assert "fMRIPrep" in result.output and "datalad get" in result.output
    data = report(clone)
    assert data["dataset"]["repository"]["subdatasets"] == [str(clone / "bids")]
    assert not [row for row in data["by_subject"] if row["subject"] and "bids" in str(row)]


# --- 3. no side effects in a git repository ------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["delete", "archive"])
def test_3_files_stored_in_git_are_never_unlinked_by_default(fresh_clone, tmp_path, mode):
    templates = sorted(str(p) for p in (fresh_clone / TEMPLATES).rglob("*") if p.is_file() and not p.is_symlink())
    assert templates, "the fixture keeps the templates in git"
    data = report(fresh_clone)
    in_git = data["totals"]["junk_in_git_bytes"]
    assert in_git == sum(os.path.getsize(path) for path in templates)
    assert data["totals"]["junk_bytes"] - data["totals"]["junk_elsewhere_bytes"] - in_git >= 0
    text = cli("report", fresh_clone).output
    assert "stored in git" in text
    archive = ["--archive-dir", tmp_path / "archives"] if mode == "archive" else []
    result = cli("clean", fresh_clone, "--mode", mode, "--yes", *archive, "--format", "json")
    assert result.exit_code == 0, result.output  # left in place by design: not a skip
    assert all(os.path.isfile(path) for path in templates)
    assert status_porcelain(fresh_clone) == ""
    assert any("stored in git" in row["reason"] for row in json.loads(result.stdout)["left"])


def test_3_git_rm_removes_them_the_way_users_do_and_commits(fresh_clone):
    result = cli("clean", fresh_clone, "--mode", "delete", "--yes", "--git-rm")
    assert result.exit_code == 0, result.output
    assert not (fresh_clone / TEMPLATES).exists()
    assert status_porcelain(fresh_clone) == ""
    assert "fmriprep-cleanup" in git(fresh_clone, "log", "-1", "--format=%s")


# --- 4. one content, counted once ----------------------------------------------------------------------------

def test_4_paths_sharing_a_key_count_their_content_once_and_are_dropped_once(published, tmp_path):
    clone = tmp_path / "full"
    sh("datalad", "clone", published, clone)
    sh("datalad", "get", ".", cwd=clone)
    data = report(clone, "--rules", "volume-only")
    shared = 7000
    plan = [json.loads(line) for line in cli("plan", clone, "--rules", "volume-only", "--format", "jsonl").stdout.splitlines()]
    sizes = {Path(row["path"]).name: row["size"] for row in plan}
    assert sizes["rh.thickness"] == sizes["rh.avg_thickness"] == shared
    listed = sum(row["size"] for row in plan if row["action"] == "junk")
    assert data["totals"]["junk_bytes"] == listed - shared  # the shared content once
    result = cli("clean", clone, "--rules", "volume-only", "--mode", "delete", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert not done["failed"], done["failed"]
    for name in SHARED_KEY:
        assert os.path.islink(clone / name) and not os.path.exists(clone / name)  # dropped, the links stay
    assert status_porcelain(clone) == ""


# --- 5. one size everywhere ---------------------------------------------------------------------------------

def test_5_explain_plan_report_and_audit_give_the_content_size_and_where_it_is(fresh_clone, tmp_path):
    nifti = fresh_clone / "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz"
    explained = json.loads(cli("explain", fresh_clone, nifti, "--format", "json").stdout)[0]
    assert explained["size"] == 40_001 and explained["content"] == "elsewhere only"
    assert "removed as a link" not in cli("explain", fresh_clone, nifti).output
    plan = [json.loads(line) for line in cli("plan", fresh_clone, "--format", "jsonl").stdout.splitlines()]
    assert next(row for row in plan if row["path"] == str(nifti))["size"] == 40_001
    audit = json.loads(cli("audit", tmp_path, "--format", "json").stdout)
    [row] = [row for row in audit["datasets"] if row["path"] == str(fresh_clone)]
    assert row["elsewhere_bytes"] > 0 and row["bytes_here"] == row["bytes"] - row["elsewhere_bytes"]
    csv_text = cli("audit", tmp_path, "--format", "csv").stdout
    assert "elsewhere_bytes" in csv_text.splitlines()[0]
    html = cli("audit", tmp_path, "--format", "html").stdout
    assert "Elsewhere only" in html
    text = cli("report", fresh_clone).output
    annexed_here = [line for line in text.splitlines() if line.startswith("Annexed content")]
    assert annexed_here and "0 B present here" in annexed_here[0], text  # the templates in git are not annexed


# --- the round trip, as users do it --------------------------------------------------------------------------

def test_the_round_trip_create_save_clone_get_report_clean_get(published, tmp_path):
    clone = tmp_path / "mine"
    sh("datalad", "clone", published, clone)
    sh("datalad", "get", "sub-01", "sourcedata/freesurfer/fsaverage5", cwd=clone)
    data = report(clone, "--rules", "volume-only")
    assert {row["status"] for row in data["subjects_by_status"]} == {"finished"}
    present = data["totals"]["bytes"] - data["totals"]["elsewhere_bytes"] - data["totals"]["in_git_bytes"]
    assert present > 0 and data["totals"]["elsewhere_bytes"] > 0
    result = cli("clean", clone, "--rules", "volume-only", "--mode", "delete", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes"] > 0
    assert status_porcelain(clone) == ""
    sh("datalad", "get", ".", cwd=clone)
    assert all(os.path.exists(path) for path in clone.rglob("*.nii.gz"))
    assert all(os.path.exists(clone / name) for name in SHARED_KEY)  # dropped, and brought back
    assert status_porcelain(clone) == ""


# --- bad input ----------------------------------------------------------------------------------------------

def test_a_broken_datalad_config_is_one_line_and_the_report_goes_on(fresh_clone):
    (fresh_clone / ".datalad" / "config").write_text('[datalad "dataset"\n  id = broken')
    result = cli("report", fresh_clone)
    assert result.exit_code == 0, result.output
    assert sum(".datalad/config cannot be read" in line for line in result.output.splitlines()) == 1


def test_subdatasets_not_installed_are_listed_not_scanned(tmp_path):
    require_datalad()
    raw = tmp_path / "raw"
    sh("datalad", "create", raw)
    ds = tmp_path / "out"
    sh("datalad", "create", ds)
    build_outputs(ds, ("01",))
    sh("datalad", "clone", "-d", ds, raw, ds / "sourcedata" / "raw")
    sh("datalad", "save", "-m", "outputs", cwd=ds)
    clone = tmp_path / "clone"
    sh("datalad", "clone", ds, clone)
    result = cli("report", clone)
    assert result.exit_code == 0 and "sourcedata/raw (not installed)" in result.output, result.output


def test_keys_without_a_size_are_said_once(tmp_path):
    require_datalad()
    ds = annex_everything_elsewhere(tmp_path)
    git(ds, "annex", "fromkey", "--force", "URL--https&c%%example.org%sub-01_T2w.nii.gz", "sub-01/anat/sub-01_T2w.nii.gz")
    git(ds, "commit", "-q", "-m", "a URL key without a size")
    result = cli("report", ds)
    assert result.exit_code == 0, result.output
    assert sum("keys without a size" in line for line in result.output.splitlines()) == 1


def test_without_git_annex_on_path_nothing_is_dropped_and_it_says_so(published, tmp_path):
    clone = tmp_path / "full"
    sh("datalad", "clone", published, clone)
    sh("datalad", "get", "sourcedata/freesurfer/fsaverage5", cwd=clone)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    def present():  # the dataset, not the tool's own state in .git/fmriprep-cleanup
        return {str(path): os.path.exists(path) for path in clone.rglob("*") if ".git" not in path.parts}

    before = present()
    done = subprocess.run([sys.executable, "-m", "fmriprep_cleanup", "clean", str(clone), "--rules", "volume-only",
                           "--mode", "delete", "--yes"], capture_output=True, text=True,
                          env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "git-annex is not installed" in done.stderr
    assert present() == before and status_porcelain(clone) == ""


# --- issue 46, item 3: one size from every source ---------------------------------------------------------

def find_links_list(tree, target):
    """The documented find command with each link's target (%l): what git-annex datasets need."""
    listed = subprocess.run(["find", str(tree), "-printf", "%y %s %b %T@ %D %i %n %p\\0%l\\0"], check=True,
                            capture_output=True).stdout
    target.write_bytes(listed)
    return target


@pytest.mark.parametrize("kind", ["find", "find-links", "ncdu", "gdu", "audit"])
def test_a_report_from_a_scan_list_of_a_datalad_dataset_equals_the_walked_report(fresh_clone, tmp_path, kind):
    """Before: a find list said 133 MiB total and "0 B elsewhere only" where walking said 4.4 GiB with 4.3 GiB
    elsewhere (an annexed link counted as its own few bytes)."""
    from test_scanlists import COMPARED, find_list, gdu_export, ncdu_export

    sh("datalad", "get", "sub-01", cwd=fresh_clone)  # some content here, the rest elsewhere only
    make = {"find": find_list, "find-links": find_links_list, "ncdu": ncdu_export, "gdu": gdu_export,
            "audit": ncdu_export}[kind]
    listed = make(fresh_clone, tmp_path / "scan.list")
    if kind == "audit":
        walked, read = (json.loads(cli("audit", fresh_clone, "--format", "json", *extra).stdout)["datasets"][0]
                        for extra in ((), ("--from-scan", listed)))
        assert {key: read[key] for key in ("bytes", "bytes_here", "elsewhere_bytes", "junk_bytes")} == \
            {key: walked[key] for key in ("bytes", "bytes_here", "elsewhere_bytes", "junk_bytes")}
        assert read["elsewhere_bytes"] > 0
        return
    walked = report(fresh_clone)
    read = report(fresh_clone, "--from-scan", listed)
    assert read["totals"]["elsewhere_bytes"] > 0 and read["totals"]["annexed_bytes"] > read["totals"]["elsewhere_bytes"]
    for key in COMPARED:
        assert read[key] == walked[key], key
    said = [warning for warning in read["warnings"] if "targets were read from the disk" in warning]
    assert bool(said) == (kind != "find-links"), read["warnings"]


def test_every_total_card_and_bar_says_what_is_on_this_disk_and_what_is_elsewhere(fresh_clone, tmp_path):
    """Before: "Reclaimable: 0 B of 4.4 GiB (0.0 %) in 360 files"; the HTML showed "360 junk files" beside
    "0 B reclaimable" and drew 4.4 GiB of bars as if stored here; only the energy table said what was stored."""
    from fmriprep_cleanup.report.html import here as on_this_disk
    from fmriprep_cleanup.report.people import size

    data = report(fresh_clone)
    totals = data["totals"]
    here = totals["bytes"] - totals["elsewhere_bytes"]
    assert totals["elsewhere_bytes"] > here > 0
    text = cli("report", fresh_clone).stdout
    assert f"of {size(here)} on this disk" in text and f"{size(totals['elsewhere_bytes'])} more is elsewhere only" in text
    tables = [line for line in text.splitlines() if line.startswith(("Category", "Subject", "Run status"))]
    assert len(tables) == 3 and all("Elsewhere only" in line for line in tables), tables
    assert data["energy"]["total"]["bytes"] == here  # energy from the bytes on this disk
    assert sum(row["elsewhere_bytes"] for row in data["subjects_by_status"]) == \
        sum(row["elsewhere_bytes"] for row in data["by_subject"] if row["subject"] is not None)

    page = tmp_path / "report.html"
    assert cli("report", fresh_clone, "--format", "html", "-o", page).exit_code == 0
    html = page.read_text()
    assert f"of {size(here)} on this disk" in html and "stored in git (nothing to free here)" in html
    assert "kept and junk bytes on this disk per category" in html  # the bars: what is stored here
    assert sum(sum(on_this_disk(row)) for row in data["by_category"]) == here
    assert sum(sum(on_this_disk(row)) for row in data["by_subject"]) == here
