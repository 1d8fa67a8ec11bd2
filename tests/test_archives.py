"""Archives over time: list, verify (a flipped byte, a missing member), prune (whole runs, leftovers too)."""

import json
import os
import time

import pytest
from conftest import LONG_AGO, finish_subjects, make_files, write_description
from conftest import cli as run

from fmriprep_cleanup.ops.history import History


@pytest.fixture
def archived(tmp_path):
    """Two subjects' working directories archived (tree and tar), with real bytes."""
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {f"work/fmriprep_23_2_wf/sub_0{s}_wf/node{n}/out.nii.gz": 3000 + n for s in (1, 2) for n in range(3)})
    for folder, _, names in os.walk(out / "work"):
        for name in names:
            os.utime(os.path.join(folder, name), (LONG_AGO, LONG_AGO))
    finish_subjects(out, ["01", "02"])
    archives = {}
    for fmt in ("tree", "tar"):
        target = tmp_path / f"archives-{fmt}"
        result = run("clean", out, "--mode", "archive", "--archive-dir", target, "--archive-format", fmt, "--yes",
                     "--history", tmp_path / "h.sqlite", "--participant-label", "01" if fmt == "tree" else "02")
        assert result.exit_code == 0, result.output
        archives[fmt] = target
    return archives, tmp_path


def test_list_shows_runs_archives_and_sizes(archived):
    archives, _ = archived
    data = json.loads(run("archives", "list", archives["tar"], "--format", "json").stdout)
    [one] = data["runs"]
    assert [a["subject"] for a in one["archives"]] == ["sub-02"] and one["archives"][0]["files"] == 3
    assert one["archives"][0]["bytes"] == 3000 + 3001 + 3002 and one["last_verified"] is None
    assert "sub-02" in run("archives", "list", archives["tar"]).stdout


def test_verify_catches_a_flipped_byte_and_a_missing_member(archived):
    archives, tmp_path = archived
    ok = run("archives", "verify", archives["tree"], "--history", tmp_path / "h.sqlite")
    assert ok.exit_code == 0 and "every one matches" in ok.stdout
    member = next(path for path in archives["tree"].rglob("out.nii.gz"))
    data = bytearray(member.read_bytes())
    data[100] ^= 0xFF
    member.write_bytes(bytes(data))
    flipped = run("archives", "verify", archives["tree"], "--format", "json", "--history", tmp_path / "h.sqlite")
    assert flipped.exit_code == 3
    assert [p for p in json.loads(flipped.stdout)["problems"] if "differs from its manifest" in p]
    other = next(path for path in archives["tree"].rglob("out.nii.gz") if path != member)
    other.unlink()
    missing = run("archives", "verify", archives["tree"], "--history", tmp_path / "h.sqlite")
    assert missing.exit_code == 3 and "is missing" in missing.stdout
    listed = json.loads(run("archives", "list", archives["tree"], "--format", "json").stdout)
    assert listed["runs"][0]["last_verify_ok"] is False
    modes = [row["mode"] for row in History(str(tmp_path / "h.sqlite")).runs()]
    assert modes.count("verify") == 3


def test_verify_of_a_tar_archive(archived):
    archives, tmp_path = archived
    assert run("archives", "verify", archives["tar"], "--history", tmp_path / "h.sqlite").exit_code == 0
    tar = next(archives["tar"].rglob("*.tar"))
    data = bytearray(tar.read_bytes())
    data[1024] ^= 0x01  # inside the first member's content (after its 512-byte header)
    tar.write_bytes(bytes(data))
    assert run("archives", "verify", archives["tar"], "--history", tmp_path / "h.sqlite").exit_code == 3


def test_prune_removes_old_runs_whole_leftovers_included_and_only_with_yes(archived):
    from fmriprep_cleanup.act.archives import prune_archives

    archives, tmp_path = archived
    [current] = [path for path in archives["tar"].iterdir() if path.is_dir()]
    (current / "sub-03.tar.tmp").write_bytes(b"partial")  # an interrupted run's leftover
    later = time.time() + 6 * 365 * 86400  # six years on
    dry = prune_archives(str(archives["tar"]), 5 * 365 * 86400, now=later)
    assert dry["dry_run"] and [run["run"] for run in dry["runs"]] == [current.name] and current.exists()
    done = prune_archives(str(archives["tar"]), 5 * 365 * 86400, yes=True, now=later)
    assert done["dry_run"] is False and done["runs"][0]["leftovers"] == 1 and not done["refused"]
    assert [path.name for path in archives["tar"].iterdir()] == ["prune-journal.jsonl"]  # nothing partial is left
    assert [json.loads(line)["event"] for line in (archives["tar"] / "prune-journal.jsonl").read_text().splitlines()] \
        == ["prune", "pruned"]
    young = run("archives", "prune", archives["tree"], "--older-than", "5y", "--mode", "delete", "--yes", "--history", tmp_path / "h.sqlite")
    assert young.exit_code == 0 and "Removed 0 run(s)" in young.stdout
    assert any(archives["tree"].rglob("*.manifest.tsv"))
    assert "prune" in [row["mode"] for row in History(str(tmp_path / "h.sqlite")).runs()]
