"""Outputs kept in zip and tar files (issue 48): BABS zips and Nipoppy --tar archives read from their headers,
classified as the same tree unpacked; hostile archives refused in one line, unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import cli

import fmriprep_cleanup.fmriprep.demo as demo
from fmriprep_cleanup.basics.archivefile import HostileArchive, read_archive

BABS_ZIP = "sub-01_fmriprep-23-2-0.zip"  # 7z a ../${subid}_fmriprep-23-2-0.zip fmriprep (zip_foldernames)


def build_output(folder: Path, subjects=("sub-01",)) -> None:
    """ds003752's real fMRIPrep 23.2.0 tree for ``subjects``, with real text files and small stand-in bytes."""
    listing = [(path, size) for path, size in demo.load_listing()
               if not any(f"sub-0{n}" in path for n in (1, 2, 3)) or any(subject in path for subject in subjects)]
    real = demo.real_contents(listing)
    contents = {path: real.get(path) or (path.encode() * 40)[:min(size, 2000)] for path, size in listing}
    demo.build_tree(str(folder), [(path, len(data)) for path, data in contents.items()], contents)


def zip_folder(folder: Path, archive: Path) -> None:
    """What ``7z a ARCHIVE NAME`` run in the folder's parent writes: NAME/ and everything below, deflated."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as made:
        for path in sorted(folder.rglob("*")):
            made.write(path, path.relative_to(folder.parent).as_posix())


def without_places(report: dict) -> dict:
    """A report's figures with where the files are (and the blocks they take) left out."""
    def strip(value):
        if isinstance(value, dict):
            return {key: strip(item) for key, item in value.items()
                    if "allocated" not in key and key not in ("status", "folder")}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value
    return {key: strip(report[key]) for key in ("totals", "by_category", "by_subject", "largest_junk_folders")}


def report_json(*args) -> dict:
    result = cli("report", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def babs_zip(tmp_path):
    build_output(tmp_path / "job" / "fmriprep")
    zip_folder(tmp_path / "job" / "fmriprep", tmp_path / BABS_ZIP)
    return tmp_path / BABS_ZIP


@pytest.mark.parametrize("rules", ["default", "volume-only"])
def test_a_babs_zip_reports_what_the_same_tree_unzipped_reports(babs_zip, rules):
    in_zip = report_json(babs_zip, "--rules", rules)
    on_disk = report_json(babs_zip.parent / "job" / "fmriprep", "--rules", rules, "--no-work-dir")  # what was zipped
    assert without_places(in_zip) == without_places(on_disk)
    assert in_zip["totals"]["junk_files"] > 0 and in_zip["dataset"]["fmriprep_version"] == "23.2.0"
    with zipfile.ZipFile(babs_zip) as archive:
        names = {info.filename for info in archive.infolist()}
    assert junk_paths(babs_zip, "--rules", rules) <= names
    figures = in_zip["dataset"]["archive"]  # beside them: what the junk takes in the zip, compressed
    assert figures["bytes"] == babs_zip.stat().st_size and figures["junk_members"] == in_zip["totals"]["junk_files"]
    assert 0 < figures["junk_stored_bytes"] < in_zip["totals"]["junk_bytes"]


def test_explain_takes_a_member_of_the_zip(babs_zip):
    member = "fmriprep/sourcedata/freesurfer/fsaverage/label/lh.aparc.annot"
    found = cli("explain", babs_zip, member, "--format", "json")
    assert found.exit_code == 0, found.output
    explained = json.loads(found.stdout)
    explained = explained[0] if isinstance(explained, list) else explained
    assert explained["path"] == f"{babs_zip}/{member}" and explained["action"] == "junk"
    missing = cli("explain", babs_zip, "fmriprep/nothing.txt")
    assert missing.exit_code == 2 and "no such member" in missing.output


def test_a_nipoppy_tar_is_read_as_the_participant_folder_it_holds(tmp_path):
    """nipoppy process --tar: ``tar -cvf <dir>.tar -C <output> <dir>``, the folder then removed."""
    output = tmp_path / "derivatives" / "fmriprep" / "23.2.0" / "output"
    build_output(output)
    subprocess.run(["tar", "-cf", "sub-01.tar", "-C", str(output), "sub-01"], cwd=output, check=True)
    shutil.rmtree(output / "sub-01")
    unpacked = tmp_path / "unpacked"  # the same folder unpacked, its output's description beside it
    unpacked.mkdir()
    shutil.copy2(output / "dataset_description.json", unpacked)
    subprocess.run(["tar", "-xf", str(output / "sub-01.tar"), "-C", str(unpacked)], check=True)
    in_tar = report_json(output / "sub-01.tar")
    on_disk = report_json(unpacked, "--no-work-dir")
    assert in_tar["dataset"]["fmriprep_version"] == "23.2.0"  # from the output's description beside it
    subjects = [row for row in without_places(on_disk)["by_subject"] if row["subject"] is not None]
    assert without_places(in_tar)["by_subject"] == subjects
    assert in_tar["totals"]["files"] == on_disk["totals"]["files"] - 1  # all but the description


def _babs_zip_with(tmp_path: Path, *members: tuple[zipfile.ZipInfo | str, bytes]) -> Path:
    archive = tmp_path / BABS_ZIP
    with zipfile.ZipFile(archive, "w") as made:
        made.writestr("fmriprep/dataset_description.json", json.dumps(
            {"Name": "fMRIPrep", "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]}))
        for name, data in members:  # written long ago, as a finished job's outputs are
            made.writestr(name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)),
                          data)
    return archive


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _overlapping(tmp_path: Path) -> Path:
    """Two members whose central-directory entries point at the same data (the overlapping-member bomb)."""
    archive = _babs_zip_with(tmp_path, ("fmriprep/sub-01/a.txt", b"a" * 100), ("fmriprep/sub-01/b.txt", b"b" * 100))
    data = bytearray(archive.read_bytes())
    entries = [at for at in range(len(data)) if data[at:at + 4] == b"PK\x01\x02"]
    first = struct.unpack_from("<I", data, entries[1] + 42)[0]
    struct.pack_into("<I", data, entries[2] + 42, first)
    archive.write_bytes(bytes(data))
    return archive


def _claiming(tmp_path: Path) -> Path:
    """A member whose central directory claims a size no compressor reaches from its data (a zip bomb)."""
    archive = tmp_path / BABS_ZIP
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as made:
        made.writestr("fmriprep/sub-01/zeros.bin", b"\0" * 100_000)
    data = bytearray(archive.read_bytes())
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 4_000_000_000)
    archive.write_bytes(bytes(data))
    return archive


HOSTILE_ZIPS = {
    "absolute path": lambda tmp: _babs_zip_with(tmp, (zipfile.ZipInfo("/etc/cron.d/x"), b"x")),
    "dot-dot": lambda tmp: _babs_zip_with(tmp, ("fmriprep/../../outside.txt", b"x")),
    "symlink": lambda tmp: _babs_zip_with(tmp, (_link("fmriprep/sub-01/link"), b"/etc/passwd")),
    "duplicate": lambda tmp: _babs_zip_with(tmp, ("fmriprep/sub-01/a.txt", b"1"), ("fmriprep/sub-01/a.txt", b"2")),
    "file and folder": lambda tmp: _babs_zip_with(tmp, ("fmriprep/sub-01", b"1"), ("fmriprep/sub-01/a.txt", b"2")),
    "zip bomb": _claiming,
    "stored member claiming more": lambda tmp: _patched(_babs_zip_with(tmp, ("fmriprep/sub-01/a.txt", b"x" * 100)),
                                                        "fmriprep/sub-01/a.txt", 24, 10_000),
    "overlapping members": _overlapping,
    "truncated": lambda tmp: _truncated(_babs_zip_with(tmp, ("fmriprep/sub-01/a.txt", os.urandom(5000)))),
}


def _patched(archive: Path, member: str, offset: int, value: int) -> Path:
    """A field of ``member``'s central-directory entry (at ``offset``: 24 is its uncompressed size) rewritten."""
    data = bytearray(archive.read_bytes())
    at = data.find(b"PK\x01\x02")
    while data[at + 46:at + 46 + len(member)] != member.encode():
        at = data.find(b"PK\x01\x02", at + 1)
    struct.pack_into("<I", data, at + offset, value)
    archive.write_bytes(bytes(data))
    return archive


def _truncated(archive: Path) -> Path:
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return archive


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", sorted(HOSTILE_ZIPS))
def test_a_hostile_zip_is_one_line_and_changes_nothing(tmp_path, case):
    archive = HOSTILE_ZIPS[case](tmp_path)
    before = digest(archive)
    with pytest.raises(HostileArchive):
        read_archive(str(archive))
    for command in (["report", archive], ["plan", archive], ["clean", archive, "--mode", "delete", "--yes"]):
        result = cli(*command)
        assert result.exit_code == 2, (command, result.output)
        assert len(result.output.strip().splitlines()) == 1 and str(archive) in result.output, result.output
    assert digest(archive) == before and sorted(os.listdir(tmp_path)) == [BABS_ZIP]


def _tar_with(tmp_path: Path, *members: tarfile.TarInfo) -> Path:
    archive = tmp_path / "sub-01.tar"
    with tarfile.open(archive, "w") as made:
        for info in members:
            made.addfile(info, None if info.size == 0 else __import__("io").BytesIO(b"x" * info.size))
    return archive


def _tar_member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, target
    return info


HOSTILE_TARS = {
    "absolute path": lambda tmp: _tar_with(tmp, _tar_member("/etc/cron.d/x")),
    "dot-dot": lambda tmp: _tar_with(tmp, _tar_member("sub-01/../../outside")),
    "symlink": lambda tmp: _tar_with(tmp, _tar_member("sub-01/link", tarfile.SYMTYPE, target="/etc/passwd")),
    "hard link": lambda tmp: _tar_with(tmp, _tar_member("sub-01/a"), _tar_member("sub-01/b", tarfile.LNKTYPE,
                                                                                   target="sub-01/a")),
    "device": lambda tmp: _tar_with(tmp, _tar_member("sub-01/dev", tarfile.CHRTYPE)),
    "duplicate": lambda tmp: _tar_with(tmp, _tar_member("sub-01/a"), _tar_member("sub-01/a")),
    "truncated": lambda tmp: _truncated(_tar_with(tmp, _tar_member("sub-01/a", size=100_000))),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_a_hostile_tar_is_one_line_and_changes_nothing(tmp_path, case):
    archive = HOSTILE_TARS[case](tmp_path)
    before = digest(archive)
    with pytest.raises(HostileArchive):
        read_archive(str(archive))
    result = cli("report", archive)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert digest(archive) == before


def test_an_archive_behind_a_symlink_is_not_read(babs_zip, tmp_path):
    link = tmp_path / "elsewhere" / BABS_ZIP
    link.parent.mkdir()
    link.symlink_to(babs_zip)
    result = cli("report", link)
    assert result.exit_code == 2 and "symlink" in result.output


def members_of(archive: Path) -> dict[str, bytes]:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as opened:
            return {info.filename: opened.read(info) for info in opened.infolist() if not info.is_dir()}
    with tarfile.open(archive) as opened:
        return {info.name: opened.extractfile(info).read() for info in opened if info.isreg()}


def junk_paths(archive: Path, *options) -> set[str]:
    """The names of the members the plan makes junk: a zip's at ARCHIVE/NAME, a tar's where it unpacks."""
    planned = cli("plan", archive, "--action", "junk", "--format", "jsonl", *options).stdout.splitlines()
    base = archive if archive.suffix == ".zip" else archive.parent
    return {json.loads(line)["path"][len(str(base)) + 1:] for line in planned}


@pytest.mark.parametrize("rules", ["default", "volume-only"])
def test_delete_rewrites_the_zip_without_its_junk_and_keeps_every_other_member_byte_for_byte(babs_zip, rules):
    before, junk = members_of(babs_zip), junk_paths(babs_zip, "--rules", rules)
    size, promised = babs_zip.stat().st_size, report_json(babs_zip, "--rules", rules)["dataset"]["archive"]
    assert junk and junk < set(before)
    done = cli("clean", babs_zip, "--rules", rules, "--mode", "delete", "--yes", "--format", "json")
    assert done.exit_code == 0, done.output
    assert members_of(babs_zip) == {name: data for name, data in before.items() if name not in junk}
    assert size - babs_zip.stat().st_size == promised["junk_stored_bytes"]  # the report said what it frees
    assert json.loads(done.stdout)["rewritten"] == [{"archive": str(babs_zip), "members_removed": len(junk),
                                                     "bytes_before": size, "bytes_after": babs_zip.stat().st_size}]
    assert not junk_paths(babs_zip, "--rules", rules)
    assert sorted(os.listdir(babs_zip.parent)) == [".fmriprep-cleanup", "job", BABS_ZIP]  # no temporary left
    assert report_json(babs_zip, "--rules", rules)["totals"]["junk_files"] == 0


def test_delete_rewrites_a_nipoppy_tar_the_same_way(tmp_path):
    output = tmp_path / "derivatives" / "fmriprep" / "23.2.0" / "output"
    build_output(output)
    subprocess.run(["tar", "-cf", "sub-01.tar", "-C", str(output), "sub-01"], cwd=output, check=True)
    archive = output / "sub-01.tar"
    before, junk = members_of(archive), junk_paths(archive, "--rules", "volume-only")
    assert junk
    done = cli("clean", archive, "--rules", "volume-only", "--mode", "delete", "--yes")
    assert done.exit_code == 0, done.output
    assert members_of(archive) == {name: data for name, data in before.items() if name not in junk}
    listed = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=True).stdout
    assert not any(name.rstrip("/") in junk for name in listed.splitlines())  # GNU tar reads it as it is


def test_a_wrong_crc_stops_the_rewrite_in_one_line_and_leaves_the_zip_as_it_was(tmp_path):
    archive = _babs_zip_with(tmp_path, ("fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.json", b"{}" * 300),
                             ("fmriprep/sourcedata/freesurfer/fsaverage/label/lh.aparc.annot", b"x" * 300))
    data = bytearray(archive.read_bytes())
    at = data.find(b"{}{}{}")
    data[at] = ord("[")  # a kept member's data no longer matches its CRC-32
    archive.write_bytes(bytes(data))
    before = digest(archive)
    done = cli("clean", archive, "--mode", "delete", "--yes")
    assert done.exit_code == 3 and "CRC" in done.output, done.output
    assert digest(archive) == before
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


class Killed(BaseException):
    """What kill -9 leaves: no journal line after it, no tidying, no lock (the process is gone)."""


@pytest.mark.parametrize("dies_at", ["before the swap", "after the swap"])
def test_a_run_killed_during_the_rewrite_leaves_one_whole_archive_and_the_next_run_tidies(babs_zip, monkeypatch,
                                                                                         dies_at):
    from click.testing import CliRunner

    import fmriprep_cleanup.act.rewrite as rewrite
    from fmriprep_cleanup.cli import cli as command_line

    before, junk = members_of(babs_zip), junk_paths(babs_zip, "--rules", "volume-only")
    kept = {name: data for name, data in before.items() if name not in junk}

    def killed(*_args, **_kwargs):
        raise Killed

    where = "swap_in" if dies_at == "before the swap" else "_sync_folder"
    real = getattr(rewrite, where)
    monkeypatch.setattr(rewrite, where, killed)
    with pytest.raises(Killed):
        CliRunner().invoke(command_line, ["clean", str(babs_zip), "--rules", "volume-only", "--mode", "delete",
                                          "--yes"], catch_exceptions=False)
    monkeypatch.setattr(rewrite, where, real)  # (undo() would also undo the sandbox's own settings)
    assert members_of(babs_zip) == (before if dies_at == "before the swap" else kept)  # whole, old or new
    leftovers = [name for name in os.listdir(babs_zip.parent) if name.endswith(".tmp")]
    assert len(leftovers) == (1 if dies_at == "before the swap" else 0)
    again = cli("clean", babs_zip, "--rules", "volume-only", "--mode", "delete", "--yes")
    assert again.exit_code == 0, again.output
    assert members_of(babs_zip) == kept
    assert [name for name in os.listdir(babs_zip.parent) if name.endswith(".tmp")] == [], again.output


def test_a_planted_temporary_name_is_never_removed_without_our_journal(babs_zip):
    planted = babs_zip.parent / f".{BABS_ZIP}.someone-else.fmriprep-cleanup.tmp"
    planted.write_bytes(b"a group member's file")
    done = cli("clean", babs_zip, "--mode", "delete", "--yes")
    assert done.exit_code == 0, done.output
    assert planted.read_bytes() == b"a group member's file"


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archive_mode_keeps_the_junk_members_aside_and_restore_puts_them_back_byte_for_byte(tmp_path, kind):
    if kind == "zip":
        build_output(tmp_path / "job" / "fmriprep")
        archive = tmp_path / BABS_ZIP
        zip_folder(tmp_path / "job" / "fmriprep", archive)
    else:
        output = tmp_path / "derivatives" / "fmriprep" / "23.2.0" / "output"
        build_output(output)
        subprocess.run(["tar", "-cf", "sub-01.tar", "-C", str(output), "sub-01"], cwd=output, check=True)
        archive = output / "sub-01.tar"
    before, junk = members_of(archive), junk_paths(archive, "--rules", "volume-only")
    kept_dir = tmp_path / "kept"
    done = cli("clean", archive, "--rules", "volume-only", "--mode", "archive", "--archive-dir", kept_dir, "--yes",
               "--format", "json")
    assert done.exit_code == 0, done.output
    assert members_of(archive) == {name: data for name, data in before.items() if name not in junk}
    [aside] = json.loads(done.stdout)["archives"]
    assert Path(aside).parent.parent == kept_dir and members_of(Path(aside)) == {
        name: data for name, data in before.items() if name in junk}
    back = cli("restore", aside)
    assert back.exit_code == 0, back.output
    assert members_of(archive) == before  # every member back, byte for byte
    again = cli("restore", aside)  # they are there already: one line, the archive as it is
    assert again.exit_code != 0 and "already holds" in again.output
    assert members_of(archive) == before


def test_restore_refuses_a_planted_manifest(babs_zip, tmp_path):
    kept_dir = tmp_path / "kept"
    done = cli("clean", babs_zip, "--mode", "archive", "--archive-dir", kept_dir, "--yes", "--format", "json")
    assert done.exit_code == 0, done.output
    [aside] = json.loads(done.stdout)["archives"]
    manifest = Path(aside[: -len(".zip")] + ".json")
    record = json.loads(manifest.read_text())
    record["source"] = str(tmp_path / "someone-elses.zip")  # a group member points it elsewhere
    manifest.write_text(json.dumps(record) + "\n")
    before = digest(babs_zip)
    refused = cli("restore", aside)
    assert refused.exit_code != 0 and "not sealed" in refused.output and len(refused.output.splitlines()) == 1
    assert digest(babs_zip) == before and not (tmp_path / "someone-elses.zip").exists()
@pytest.mark.integration
def test_a_babs_output_clone_keeps_its_zips_annexed_they_are_read_and_rewritten_through_the_annex(babs_zip,
                                                                                                   tmp_path,
                                                                                                   monkeypatch):
    """A clone of BABS's merged output store keeps each job's zip in git-annex: the zip is a link into
    .git/annex/objects. Its members are read from the object (real datalad and git-annex); the rewrite is
    annexed and committed, then the old content dropped - here the only copy, so only with --force-drop; a clone
    without the content is told to get it."""
    from test_datalad import GIT_ENV, git, require_datalad, sh, status_porcelain

    require_datalad()
    for name, value in GIT_ENV.items():  # who commits (a user's ~/.gitconfig says it; the sandbox has none)
        monkeypatch.setenv(name, value)
    store = tmp_path / "output_ria_clone"
    sh("datalad", "create", store)
    shutil.copy2(babs_zip, store / BABS_ZIP)
    sh("datalad", "save", "-m", "merged job outputs", cwd=store)
    assert (store / BABS_ZIP).is_symlink()
    assert without_places(report_json(store / BABS_ZIP)) == without_places(report_json(babs_zip))
    clone = tmp_path / "elsewhere"
    sh("datalad", "clone", store, clone)
    missing = cli("report", clone / BABS_ZIP)
    assert missing.exit_code == 2 and "datalad get" in missing.output and len(missing.output.splitlines()) == 1
    before, junk = members_of(babs_zip), junk_paths(store / BABS_ZIP, "--rules", "volume-only")
    old_key = os.path.basename(os.readlink(store / BABS_ZIP))
    done = cli("clean", store / BABS_ZIP, "--rules", "volume-only", "--mode", "delete", "--yes", "--format", "json")
    assert done.exit_code == 0, done.output
    [rewritten] = json.loads(done.stdout)["rewritten"]
    assert rewritten["saved"] == "committed" and rewritten["old_content"].startswith("kept (no other copy")
    assert (store / BABS_ZIP).is_symlink() and os.path.basename(os.readlink(store / BABS_ZIP)) != old_key
    assert status_porcelain(store) == "" and "junk member" in git(store, "log", "-1", "--format=%s")
    assert members_of(store / BABS_ZIP) == {name: data for name, data in before.items() if name not in junk}
    assert git(store, "annex", "contentlocation", old_key).strip()  # the only copy of the old zip: kept
    for job in ("sub-02", "sub-03"):  # two more jobs whose zips have the same bytes: the same key
        shutil.copy2(babs_zip, store / f"{job}_fmriprep-23-2-0.zip")
    sh("datalad", "save", "-m", "more jobs", cwd=store)
    assert os.path.basename(os.readlink(store / "sub-03_fmriprep-23-2-0.zip")) == old_key

    def forced(job):
        done = cli("clean", store / f"{job}_fmriprep-23-2-0.zip", "--rules", "volume-only", "--mode", "delete",
                   "--yes", "--force-drop", "--format", "json")
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)["rewritten"][0]["old_content"]

    assert forced("sub-02") == "kept (another file here has the same content)"  # sub-03 still links to it
    assert members_of(store / "sub-03_fmriprep-23-2-0.zip") == before
    assert forced("sub-03") == "dropped"
    assert git(store, "annex", "contentlocation", old_key, check=False).strip() == ""  # freed, as asked


def test_audit_of_a_folder_of_babs_zips_judges_each_job_and_counts_what_rewriting_frees(babs_zip, tmp_path):
    """A BABS project's merged outputs: one zip per job (participant, or participant and session). audit finds
    each by its name, judges its members, and counts the archive's size and what rewriting it frees."""
    outputs = tmp_path / "merged"
    outputs.mkdir()
    shutil.copy2(babs_zip, outputs / BABS_ZIP)
    shutil.copy2(babs_zip, outputs / "sub-02_ses-A_fmriprep-23-2-0.zip")
    (outputs / "notes.zip").write_bytes(b"not a job's output")  # not named as BABS names them: left alone
    done = cli("audit", outputs, "--rules", "volume-only", "--format", "json")
    assert done.exit_code == 0, done.output
    rows = {Path(row["path"]).name: row for row in json.loads(done.stdout)["datasets"]}
    assert sorted(rows) == [BABS_ZIP, "sub-02_ses-A_fmriprep-23-2-0.zip"]
    alone = report_json(babs_zip, "--rules", "volume-only")
    for row in rows.values():
        assert row["bytes"] == babs_zip.stat().st_size and row["files"] == alone["totals"]["files"]
        assert row["junk_bytes"] == alone["dataset"]["archive"]["junk_stored_bytes"] > 0


def test_a_folder_of_babs_zips_or_a_babs_project_says_what_to_give_in_one_line(babs_zip, tmp_path):
    merged = tmp_path / "merged"
    merged.mkdir()
    shutil.copy2(babs_zip, merged / BABS_ZIP)
    said = cli("report", merged)
    assert said.exit_code == 2 and len(said.output.splitlines()) == 1
    assert BABS_ZIP in said.output and f"fmriprep-cleanup audit {merged}" in said.output
    project = tmp_path / "project"
    for folder in ("analysis/code", "input_ria", "output_ria"):  # what `babs init` makes
        (project / folder).mkdir(parents=True)
    said = cli("plan", project)
    assert said.exit_code == 2 and len(said.output.splitlines()) == 1
    assert f"datalad clone ria+file://{project}/output_ria#~data" in said.output


def test_a_tar_made_with_dot_slash_names_is_read_and_rewritten_by_the_same_names(tmp_path):
    """``tar -cf sub-01.tar ./sub-01`` names its members ./sub-01/...: the same members, the same rewrite."""
    output = tmp_path / "derivatives" / "fmriprep" / "23.2.0" / "output"
    build_output(output)
    subprocess.run(["tar", "-cf", "sub-01.tar", "./sub-01"], cwd=output, check=True)
    archive = output / "sub-01.tar"
    before = {name.removeprefix("./"): data for name, data in members_of(archive).items()}
    junk = junk_paths(archive, "--rules", "volume-only")
    assert junk and junk < set(before)
    done = cli("clean", archive, "--rules", "volume-only", "--mode", "delete", "--yes")
    assert done.exit_code == 0, done.output
    after = {name.removeprefix("./"): data for name, data in members_of(archive).items()}
    assert after == {name: data for name, data in before.items() if name not in junk}


def test_options_that_read_the_disk_do_not_apply_to_an_archive(babs_zip, tmp_path):
    for option in (["--work-dir", tmp_path], ["--from-scan", tmp_path / "scan.txt"]):
        said = cli("report", babs_zip, *option)
        assert said.exit_code == 2 and "do not apply" in said.output and len(said.output.splitlines()) == 1
