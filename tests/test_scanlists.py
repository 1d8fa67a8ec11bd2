"""Scan lists read instead of walking: ncdu and gdu exports made by the real tools, find -printf, GPFS LIST
files (written as mmapplypolicy writes them with docs/gpfs-list.pol), compressed or not. A report from a list is
the report from walking; clean from a list lstat-s every file again and skips what changed."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from conftest import cli

COMPARED = ("totals", "by_category", "by_subject", "subjects_by_status", "largest_junk_folders", "not_fmriprep")


def report(output: Path, *args: str) -> dict:
    result = cli("report", output, "--format", "json", "-q", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ncdu_export(tree: Path, target: Path) -> Path:
    subprocess.run(["ncdu", "-e", "-x", "-o", str(target), str(tree)], check=True, capture_output=True)
    return target


def gdu_export(tree: Path, target: Path) -> Path:
    subprocess.run(["gdu", "-n", "-o", str(target), str(tree)], check=True, capture_output=True)
    return target


def find_list(tree: Path, target: Path) -> Path:
    listed = subprocess.run(["find", str(tree), "-printf", "%y %s %b %T@ %D %i %n %p\\0"], check=True,
                            capture_output=True).stdout
    target.write_bytes(listed)
    return target


def gpfs_list(tree: Path, target: Path) -> Path:
    """What mmapplypolicy writes with docs/gpfs-list.pol: inode gen snapid SHOW(...) -- %-escaped path."""
    lines = []
    for folder, _, names in os.walk(tree):
        for name in names:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            mtime = datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M:%S.%f")
            mode = "l" if os.path.islink(path) else "-"
            escaped = quote_from_bytes(os.fsencode(path), safe="/._-+=@,")
            lines.append(f"{st.st_ino} 1 0  {st.st_size} {st.st_blocks // 2} {mtime} {mode}rw-r--r-- {st.st_nlink} -- {escaped}")
    target.write_text("\n".join(lines) + "\n")
    return target


@pytest.fixture
def tree(ds003752):
    output, work = ds003752
    return output.resolve(), work.resolve()


@pytest.mark.parametrize("make", [ncdu_export, gdu_export, find_list, gpfs_list], ids=["ncdu", "gdu", "find", "gpfs"])
def test_a_report_from_a_list_is_the_walked_report(tree, tmp_path, make):
    output, work = tree
    walked = report(output, "--work-dir", str(work))
    listed = make(output.parent, tmp_path / "scan.list")
    read = report(output, "--work-dir", str(work), "--from-scan", str(listed))
    for key in COMPARED:
        assert read[key] == walked[key], key
    assert any(warning.startswith("read from the scan of ") for warning in read["warnings"])


def test_compressed_lists_are_read_as_they_are(tree, tmp_path):
    output, work = tree
    listed = ncdu_export(output.parent, tmp_path / "scan.json")
    packed = tmp_path / "scan.json.gz"
    packed.write_bytes(gzip.compress(listed.read_bytes()))
    walked = report(output, "--work-dir", str(work))
    assert report(output, "--work-dir", str(work), "--from-scan", str(packed))["totals"] == walked["totals"]
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", str(listed), "-o", str(tmp_path / "scan.json.zst")], check=True)
        zstd = report(output, "--work-dir", str(work), "--from-scan", str(tmp_path / "scan.json.zst"))
        assert zstd["totals"] == walked["totals"]


def test_clean_from_a_stale_list_skips_exactly_the_changed_files(tree, tmp_path):
    output, work = tree
    listed = find_list(output.parent, tmp_path / "scan.list")
    junk = [line.split("\t")[4] for line in cli("plan", output, "--work-dir", str(work), "--action", "junk", "-q")
            .stdout.splitlines()[1:]]
    changed, gone = Path(junk[0]), Path(junk[1])
    with open(changed, "ab") as handle:
        handle.write(b"more")
    old = time.time() - 400 * 86400
    os.utime(changed, (old, old))  # the same age as before: only the size tells it changed
    gone.unlink()
    result = cli("clean", output, "--work-dir", str(work), "--mode", "delete", "--yes", "--from-scan", str(listed),
                 "--format", "json")
    assert result.exit_code == 3, result.output
    outcome = json.loads(result.stdout)
    skipped = {row["reason"]: row["files"] for row in outcome["skipped"]}
    assert skipped == {"changed since the scan list (size, time or type differ on disk)": 1,
                       "not on disk any more (the scan list is older)": 1}
    assert outcome["files"] == len(junk) - 2
    assert changed.exists()
    assert not any(Path(path).exists() for path in junk[2:])


@pytest.mark.parametrize(("content", "error"), [
    (b"[1,2,{\"progname\":\"ncdu\"},\n[{\"name\":\"/x\"},\n", "ends inside /x: truncated?"),
    (b"f 10 8 1700000000.0 2049 12 1 /x/a\0f 10 8 1700000000", "not NUL-terminated"),
    (b"hello world\n", "not an ncdu/gdu JSON export"),
    (b"d 0 8 1700000000.0 2049 11 1 @ROOT@\0f 10 8 1700000000.0 2049 12 1 @ROOT@/a\0"
     b"f 10 8 1700000000.0 2049 12 1 @ROOT@/a\0", "listed twice"),
    (b"12 1 0  10 8 2025-01-01 00:00:00.000000 -rw-r--r-- 1 -- /x/a\n12 1 0  bad -- /x/b\n", "scan.list:2"),
])
def test_a_list_that_cannot_be_read_whole_is_refused(tree, tmp_path, content, error):
    output, _ = tree
    listed = tmp_path / "scan.list"
    listed.write_bytes(content.replace(b"@ROOT@", os.fsencode(output)))  # a path twice matters only in the tree
    before = sorted(str(path) for path in output.rglob("*"))
    result = cli("clean", output, "--mode", "delete", "--yes", "--from-scan", str(listed))
    assert result.exit_code == 2 and error in result.output and "Traceback" not in result.output
    assert sorted(str(path) for path in output.rglob("*")) == before


def test_a_list_of_another_tree_is_refused(tree, tmp_path):
    output, _ = tree
    other = tmp_path / "other"
    (other / "a").mkdir(parents=True)
    (other / "a" / "f").write_text("x")
    result = cli("report", output, "--from-scan", str(find_list(other, tmp_path / "scan.list")))
    assert result.exit_code == 2 and "a scan of another tree" in result.output


@pytest.mark.parametrize("make", [find_list, gpfs_list], ids=["find", "gpfs"])
def test_names_with_newlines_and_invalid_utf8_are_read_exactly(tree, tmp_path, make):
    output, work = tree
    odd = os.path.join(os.fsencode(output), b"sub-01", b"odd\nname-\xff.txt")
    with open(odd, "wb") as handle:
        handle.write(b"12345")
    os.utime(odd, (time.time() - 400 * 86400,) * 2)
    walked = report(output, "--work-dir", str(work))
    read = report(output, "--work-dir", str(work), "--from-scan", str(make(output.parent, tmp_path / "scan.list")))
    assert read["totals"] == walked["totals"] and read["by_subject"] == walked["by_subject"]


def test_an_audit_over_a_site_list_finds_and_counts_what_walking_does(tree, tmp_path):
    output, _ = tree
    site = output.parent
    from conftest import project

    project(site / "lab2")
    walked = json.loads(cli("audit", site, "--format", "json", "-q").stdout)
    listed = ncdu_export(site, tmp_path / "site.json")
    read = json.loads(cli("audit", site, "--format", "json", "-q", "--from-scan", str(listed)).stdout)
    keys = ("path", "files", "bytes", "junk_bytes", "subjects")
    assert [{k: row[k] for k in keys} for row in read["datasets"]] == [{k: row[k] for k in keys} for row in walked["datasets"]]
    assert len(read["datasets"]) >= 2 and read["warnings"][0].startswith("read from the scan of ")


def test_reading_ahead_passes_errors_on_in_order_and_leaves_no_thread(tmp_path, monkeypatch):
    import threading

    from fmriprep_cleanup.basics import scanlists

    monkeypatch.setattr(scanlists, "BLOCK", 64)  # many blocks, so the reader runs ahead of the parser
    good = b"".join(b"f 10 8 1700000000.0 2049 %d 1 /x/f%05d\0" % (number, number) for number in range(2000))
    threads = threading.active_count()
    listed = tmp_path / "scan.list"
    listed.write_bytes(good[:640] + b"f ten 8 1700000000.0 2049 1 1 /x/bad\0" + good[640:])
    with pytest.raises(scanlists.ScanListError, match="entry 17 is not"):  # stops early; the reader stops too
        scanlists.read_scan_list(str(listed), within=["/x"])
    squeezed = tmp_path / "scan.list.gz"
    squeezed.write_bytes(gzip.compress(good)[:-40])  # a compressed list cut short
    with pytest.raises(scanlists.ScanListError, match="cannot be read whole"):
        scanlists.read_scan_list(str(squeezed), within=["/x"])
    whole = tmp_path / "whole.gz"
    whole.write_bytes(gzip.compress(good))
    assert scanlists.read_scan_list(str(whole), within=["/x"]).files == 2000
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads


@pytest.mark.parametrize("entry", [b"f x1 8 1700000000.5 2049 12 1", b"f 10 -8 1700000000.5 2049 12 1",
                                   b"f 10 8 17000000a0.5 2049 12 1", b"f 10 8 1.7.0 2049 12 1",
                                   b"f 10 8 --1.5 2049 12 1", b"f 10 8 1700000000.5 0x801 12 1",
                                   b"f 10 8 1700000000.5 2049 1_2 1", b"f 10 8 1700000000.5 2049 12 ",
                                   b"f 10 8  2049 12 1", b"q 10 8 1700000000.5 2049 12 1"])
def test_every_number_of_a_find_entry_is_checked_when_read(tmp_path, entry):
    """find entries keep their numbers as text until walked: each must still be a number when read."""
    from fmriprep_cleanup.basics.scanlists import ScanListError, read_scan_list

    listed = tmp_path / "scan.list"
    listed.write_bytes(b"d 4096 8 1700000000.0 2049 11 2 /x\0" + entry + b" /x/a\0")
    with pytest.raises(ScanListError, match="entry 2 is not"):
        read_scan_list(str(listed), "find", within=["/x"])


def test_find_numbers_read_as_text_are_the_numbers_walked(tmp_path):
    from fmriprep_cleanup.basics.scanlists import read_scan_list

    listed = tmp_path / "scan.list"
    listed.write_bytes(b"d 4096 8 1700000000.0 2049 11 2 /x\0f 10 8 1700000000.25 2049 12 3 /x/b\0"
                       b"l 7 0 -86400.5 2049 13 1 /x/a\0f 5 0 42 7 14 1 /x/c\0")
    listing = read_scan_list(str(listed), within=["/x"]).listing("/x")
    assert listing.names == ["a", "b", "c"]
    a, b, c = listing.stats
    assert (a.st_size, a.st_mtime, a.st_ino, a.st_mode & 0o170000) == (7, -86400.5, 13, 0o120000)
    assert (b.st_size, b.st_blocks, b.st_mtime, b.st_dev, b.st_ino, b.st_nlink) == (10, 8, 1700000000.25, 2049, 12, 3)
    assert (c.st_mtime, c[8], c.st_dev) == (42.0, 42, 7)
