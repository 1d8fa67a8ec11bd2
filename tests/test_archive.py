"""clean --mode archive and restore on real temporary directories."""

import errno
import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile

import pytest
from conftest import cli as run_cli
from conftest import finish_subjects, kill_when_journal_says, write_description
from journal_views import needs_recovery, read_manifest, removed_paths

import fmriprep_cleanup.act.archive as archive_module
from fmriprep_cleanup.act.manifest import manifest_of
from fmriprep_cleanup.basics.journals import journal_files, read_records

OLD = 1_600_000_000


def write(path, data, mode=0o644, mtime_ns=OLD * 10**9 + 123456789):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def build_project(root, files_per_subject=6, size=20_000, seed=0):
    rng = random.Random(seed)
    out = root / "out"
    write_description(out)
    write(out / "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz", b"kept" * 100)
    write(out / "sourcedata/freesurfer/fsaverage/surf/lh.white", rng.randbytes(3000), mode=0o600)
    for subject in ("01", "02"):
        for n in range(files_per_subject):
            write(out / f"work/fmriprep_23_2_wf/sub_{subject}_wf/node{n}/out.nii.gz", rng.randbytes(size + n), mode=0o640)
    link = out / "work/fmriprep_23_2_wf/sub_01_wf/node0/link-to-kept"
    os.symlink("../../../../sub-01/anat/sub-01_desc-preproc_T1w.nii.gz", link)
    os.utime(link, ns=(OLD * 10**9, OLD * 10**9), follow_symlinks=False)
    finish_subjects(out, ["01", "02"])
    return out


def state_of(root):
    """path -> (kind, mode, mtime_ns, content digest or link target), excluding the tool's own state."""
    state = {}
    for dirpath, _, filenames in os.walk(root):
        if ".fmriprep-cleanup" in dirpath:
            continue
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                state[path] = ("link", st.st_mtime_ns, os.readlink(path))
            else:
                with open(path, "rb") as handle:
                    state[path] = ("file", st.st_mode, st.st_mtime_ns, hashlib.sha256(handle.read()).hexdigest())
    return state


@pytest.mark.parametrize("options", [[], ["--compress", "gz"], ["--compress", "xz"], ["--archive-format", "tree"]],
                         ids=["tar", "tar.gz", "tar.xz", "tree"])
def test_archive_then_restore_is_byte_identical_with_mtimes_and_modes(tmp_path, options):
    out = build_project(tmp_path)
    before = state_of(out)
    result = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "archives", "--yes", "--format", "json", *options)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["files"] == 14 and [os.path.basename(a).split(".")[0] for a in data["archives"]] == ["no-subject", "sub-01", "sub-02"]
    after = state_of(out)
    assert set(after) == {path for path in before if "/work/" not in path and "fsaverage" not in path}
    assert not (out / "work/fmriprep_23_2_wf").exists()
    for archive in data["archives"]:
        manifest = manifest_of(archive)
        assert os.path.isfile(manifest) and not os.path.exists(archive + ".tmp")
    restored = run_cli("restore", tmp_path / "archives")
    assert restored.exit_code == 0, restored.output
    assert "Restored 14 files" in restored.output
    assert state_of(out) == before


def test_restore_one_subject_elsewhere_and_never_overwrites(tmp_path):
    out = build_project(tmp_path)
    before = state_of(out)
    result = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes", "--format", "json")
    sub02 = [a for a in json.loads(result.output)["archives"] if "sub-02" in a][0]
    elsewhere = tmp_path / "elsewhere"
    moved = run_cli("restore", sub02, "--to", elsewhere, "--format", "json")
    assert json.loads(moved.output)["restored_files"] == 6
    assert sorted(p.name for p in (elsewhere / "workdir/fmriprep_23_2_wf/sub_02_wf").iterdir())[:2] == ["node0", "node1"]
    only_01 = run_cli("restore", tmp_path / "a", "--participant-label", "sub-01", "--format", "json")
    assert json.loads(only_01.output)["restored_files"] == 7  # six files and one link
    assert not (out / "work/fmriprep_23_2_wf/sub_02_wf").exists()
    # a different file now sits where an archived one was: reported, not overwritten
    clash = out / "work/fmriprep_23_2_wf/sub_02_wf/node3/out.nii.gz"
    write(clash, b"new analysis output")
    again = run_cli("restore", tmp_path / "a", "--format", "json")
    assert again.exit_code == 3
    data = json.loads(again.output)
    assert data["conflicts"] == [f"{clash} exists and differs from the archived file; not overwritten"]
    assert data["already_present"] == 7 and data["restored_files"] == 5 + 1  # sub-02 but the clash, and fsaverage
    assert clash.read_bytes() == b"new analysis output"
    assert {p: s for p, s in state_of(out).items() if p != str(clash)} == {p: s for p, s in before.items() if p != str(clash)}


def test_archive_dir_is_required_and_must_be_outside_the_dataset(tmp_path):
    out = build_project(tmp_path)
    before = state_of(out)
    missing = run_cli("clean", out, "--mode", "archive", "--yes")
    assert missing.exit_code == 2 and "needs --archive-dir" in missing.output
    inside = run_cli("clean", out, "--mode", "archive", "--archive-dir", out / "work" / "keep-here", "--yes")
    assert inside.exit_code == 2 and "lies inside what is being cleaned" in inside.output
    assert state_of(out) == before


class FullDisk:
    """Files that share ``space`` bytes of free space; past it, writes raise ENOSPC."""

    def __init__(self, path, space):
        self.handle = open(path, "xb")
        self.space = space

    def write(self, data):
        self.space["left"] -= len(data)
        if self.space["left"] < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


@pytest.mark.parametrize("fmt", ["tar", "tree"])
def test_full_disk_while_archiving_leaves_originals_untouched(tmp_path, monkeypatch, fmt):
    out = build_project(tmp_path)
    before = state_of(out)
    real_open = archive_module.open_for_writing
    space = {"left": 50_000}  # room for two of sub-01's six files
    monkeypatch.setattr(archive_module, "open_for_writing",
                        lambda path: FullDisk(path, space) if "sub-01" in path else real_open(path))
    result = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--archive-format", fmt,
                     "--yes", "--format", "json")
    assert result.exit_code == 3
    data = json.loads(result.output)
    assert [row["files"] for row in data["failed"]] == [7]
    assert "ENOSPC" in data["failed"][0]["reason"] and "originals untouched" in data["failed"][0]["reason"]
    after = state_of(out)
    assert {p: s for p, s in before.items() if "sub_01_wf" in p} == {p: s for p, s in after.items() if "sub_01_wf" in p}
    assert not any("sub_02_wf" in p for p in after)  # the other subject was archived as usual
    leftovers = [name for _, _, names in os.walk(tmp_path / "a") for name in names if ".tmp" in name]
    assert leftovers == [] and not any(p.name.startswith("sub-01") for p in (tmp_path / "a").glob("*/*"))


class LyingDisk(FullDisk):
    """Accepts every write but stores one byte wrong: only reading the archive back can tell."""

    def __init__(self, path):
        super().__init__(path, {"left": 1 << 40})
        self.flipped = False

    def write(self, data):
        if not self.flipped and len(data) > 1000:
            data = bytes([data[0] ^ 1]) + bytes(data[1:])
            self.flipped = True
        return self.handle.write(data)


@pytest.mark.parametrize("options", [[], ["--compress", "gz"]], ids=["tar", "tar.gz"])
def test_archive_that_reads_back_wrong_is_not_trusted(tmp_path, monkeypatch, options):
    out = build_project(tmp_path)
    before = state_of(out)
    real_open = archive_module.open_for_writing
    monkeypatch.setattr(archive_module, "open_for_writing",
                        lambda path: LyingDisk(path) if "sub-01" in path else real_open(path))
    result = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "a", "--yes", "--format", "json", *options)
    assert result.exit_code == 3
    data = json.loads(result.output)
    assert [row["files"] for row in data["failed"]] == [7] and "verification failed" in data["failed"][0]["reason"]
    after = state_of(out)
    assert {p: s for p, s in before.items() if "sub_01_wf" in p} == {p: s for p, s in after.items() if "sub_01_wf" in p}
    assert not any("sub_02_wf" in p for p in after)
    assert sorted(p.name for p in (tmp_path / "a").glob("*/*")) == [
        "no-subject.manifest.tsv", "no-subject.tar" + "".join(options[1:2] and ".gz"), "run.json",
        "sub-02.manifest.tsv", "sub-02.tar" + "".join(options[1:2] and ".gz")]


def verified_archive_contents(archive_dir):
    """original path -> sha256, read back from every complete archive (not from the manifests)."""
    contents = {}
    for manifest in archive_dir.glob("*/*.manifest.tsv"):
        entries = {entry.member: entry for entry in read_manifest(str(manifest))}
        archive = str(manifest)[: -len(".manifest.tsv")] + ".tar"
        with tarfile.open(archive) as tar:
            for info in tar:
                if info.isfile():
                    digest = hashlib.sha256(tar.extractfile(info).read()).hexdigest()
                    assert digest == entries[info.name].sha256
                    contents[entries[info.name].path] = digest
    return contents


@pytest.mark.slow
def test_killed_archive_runs_never_lose_a_file_and_rerun_reuses_verified_archives(tmp_path):
    out = build_project(tmp_path, files_per_subject=300, size=60_000, seed=3)
    (out / "work/fmriprep_23_2_wf/sub_01_wf/node0/link-to-kept").unlink()
    original = state_of(out)
    digests = {path: state[3] for path, state in original.items() if state[0] == "file"}
    junk = {path for path in digests if "/work/" in path or "fsaverage" in path}
    archives = tmp_path / "archives"
    command = [sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", "clean", str(out),
               "--mode", "archive", "--archive-dir", str(archives), "--yes"]
    state = out / ".fmriprep-cleanup"
    # while writing the first archive, right after one is verified, in the middle of removing originals
    kill_points = [('"archive-begin"', 1), ('"archive-verified"', 1), ('"removing"', 1)]
    for marker, count in kill_points:
        kill_when_journal_says(command, marker, count)
        current = state_of(out)
        in_archives = verified_archive_contents(archives)
        for path in junk:  # in place, or inside a verified archive: never neither
            assert (path in current and current[path][3] == digests[path]) or in_archives.get(path) == digests[path], path
        assert all(current[p] == original[p] for p in original if p not in junk)
    final = subprocess.run(command, capture_output=True, text=True)
    assert final.returncode == 0, final.stdout + final.stderr
    assert not any(p in state_of(out) for p in junk)
    in_archives = verified_archive_contents(archives)
    assert all(in_archives.get(path) == digests[path] for path in junk)
    assert not [name for _, _, names in os.walk(archives) for name in names if name.endswith(".tmp")]
    removed = removed_paths(str(state))  # a line cut by SIGKILL is ignored, as the tool does
    assert sorted(removed) == sorted(junk)  # each original counted once across all runs
    killed = [path for path in journal_files(str(state), finished=True)
              if not any(record["event"] == "run-end" for record in read_records(path))]
    assert len(killed) == len(kill_points) and all(path.endswith(".done.jsonl") for path in killed)  # all recovered
    assert not needs_recovery(str(state))


def test_tar_writer_output_reads_back_with_tarfile_for_every_kind_of_member():
    """ustar where a member fits, pax where it does not (long or non-ASCII names, large ids): any reader copes."""
    import io

    members = {
        "workdir/short.txt": b"a" * 10,
        "workdir/" + "/".join(["deep_folder_name_x"] * 10) + "/out.nii.gz": b"b" * 1000,  # 208 bytes: ustar splits it
        "workdir/" + "/".join(["deep_folder_name_x"] * 20) + "/out.nii.gz": b"c" * 513,  # > 255 bytes: pax
        "workdir/" + "x" * 120: b"d",  # a last component over 100 bytes: pax
        "workdir/sujet-é/données.txt": b"e" * 512,
        "workdir/empty": b"",
    }
    out = io.BytesIO()
    writer = archive_module.TarWriter(out)
    digests = {}
    for name, content in members.items():
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.uid = len(content), OLD, 3_000_000_000 if name.endswith("empty") else 1000
        digests[name] = writer.add(info, io.BytesIO(content))
    link = tarfile.TarInfo("workdir/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../" + "t" * 150
    writer.add(link)
    writer.finish()
    data = out.getvalue()
    assert writer.written() == archive_module.Written(len(data), hashlib.sha256(data).hexdigest())
    assert len(data) % tarfile.RECORDSIZE == 0
    assert digests == {name: hashlib.sha256(content).hexdigest() for name, content in members.items()}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        read = {info.name: (tar.extractfile(info).read() if info.isfile() else info.linkname) for info in tar}
        with_pax = {info.name if len(info.name) < 40 else len(info.name): sorted(info.pax_headers)
                    for info in tar if info.pax_headers}
        assert tar.getmember("workdir/empty").uid == 3_000_000_000 and tar.getmember("workdir/short.txt").mtime == OLD
    assert read == {**members, "workdir/link": link.linkname}
    long_names = sorted(len(name) for name in members if len(name) >= 40)
    assert long_names == [128, 208, 398]  # 208 fits ustar's prefix + name fields, the others do not
    assert with_pax == {128: ["path"], 398: ["path"], "workdir/sujet-é/données.txt": ["path"],
                        "workdir/empty": ["uid"], "workdir/link": ["linkpath"]}


def test_tar_writer_refuses_a_file_that_shrank():
    import io

    info = tarfile.TarInfo("workdir/shrunk")
    info.size = 100
    with pytest.raises(archive_module.GroupFailed, match="shrank"):
        archive_module.TarWriter(io.BytesIO()).add(info, io.BytesIO(b"x" * 60))


def _free(monkeypatch, free_bytes):
    """statvfs saying ``free_bytes`` are free (in 4 KiB blocks), for the room check only."""
    import fmriprep_cleanup.act.space as space

    real = os.statvfs

    def statvfs(path):
        st = real(path)
        return os.statvfs_result((st.f_bsize, 4096, st.f_blocks, free_bytes // 4096, free_bytes // 4096, st.f_files,
                                  st.f_ffree, st.f_favail, st.f_flag, st.f_namemax))

    monkeypatch.setattr(space.os, "statvfs", statvfs)


def test_an_archive_or_a_restore_that_would_fill_the_disk_is_refused_before_writing(tmp_path, monkeypatch):
    """Issue 49: an uncompressed tar of sparse files takes every byte of their apparent size. Before writing,
    the archive and the restore compare what they will write with the free space where they write it."""
    out = build_project(tmp_path)
    before = state_of(out)
    needed = sum(20_000 + n for n in range(6)) * 2 + 3000  # the junk: two subjects' node outputs, fsaverage
    _free(monkeypatch, 64 * 1024)
    refused = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "archives", "--yes")
    assert refused.exit_code == 2, refused.output
    [line] = [line for line in refused.output.splitlines() if "error:" in line]  # one line, after the header
    assert "archiving 14 files needs up to" in line and "64.0 KiB is free" in line
    assert "--compress gz or xz" in line and state_of(out) == before and not any((tmp_path / "archives").rglob("*.tar"))
    monkeypatch.undo()
    done = run_cli("clean", out, "--mode", "archive", "--archive-dir", tmp_path / "archives", "--yes")
    assert done.exit_code == 0, done.output
    archived = state_of(out)
    _free(monkeypatch, needed // 2)
    refused = run_cli("restore", tmp_path / "archives")
    assert refused.exit_code == 2 and "restoring from" in refused.output and "is free" in refused.output
    assert state_of(out) == archived  # nothing restored
