import os
import time

import pytest
from conftest import make_files, write_description

from fmriprep_cleanup.basics.diskwalk import walk
from fmriprep_cleanup.basics.warnings import Warnings
from fmriprep_cleanup.fmriprep.discovery import discover
from fmriprep_cleanup.fmriprep.layout import ScanRoot
from fmriprep_cleanup.plan.plan import Summary, build_plan
from fmriprep_cleanup.rules.rulesets import load_rulesets


def files_of(roots, **kwargs):
    warnings = Warnings()
    found = [(d.root.scope, f"{d.relpath}/{e.name}".lstrip("/"), e) for d in walk(roots, warnings, **kwargs) for e in d.files]
    return found, warnings


def test_one_sorted_walk_with_nested_roots(fakefs):
    make_files("/out", ["b.txt", "a.txt", "sub-01/z.txt", "sourcedata/freesurfer/sub-01/mri/T1.mgz", "sub-01/anat/y.txt"])
    found, warnings = files_of([ScanRoot("derivatives", "/out"), ScanRoot("freesurfer", "/out/sourcedata/freesurfer")])
    assert [(scope, path) for scope, path, _ in found] == [
        ("derivatives", "a.txt"), ("derivatives", "b.txt"),
        ("freesurfer", "sub-01/mri/T1.mgz"),
        ("derivatives", "sub-01/z.txt"), ("derivatives", "sub-01/anat/y.txt"),
    ]
    assert warnings.count == 0


def test_symlinks_are_entries_and_never_followed(fakefs):
    make_files("/outside", {"big.nii.gz": 10_000_000, "dir/inner.nii.gz": 5})
    make_files("/out", {"real.txt": 7})
    os.symlink("/outside/big.nii.gz", "/out/link-to-file")
    os.symlink("/outside/dir", "/out/link-to-dir")
    found, _ = files_of([ScanRoot("derivatives", "/out")])
    by_name = {path: entry for _, path, entry in found}
    assert set(by_name) == {"real.txt", "link-to-file", "link-to-dir"}  # inner.nii.gz not reached
    assert by_name["link-to-file"].is_link and by_name["link-to-file"].size == len("/outside/big.nii.gz")
    assert not by_name["real.txt"].is_link and by_name["real.txt"].size == 7


def test_records_allocated_bytes_mtime_and_inode(fakefs):
    fakefs.create_file("/out/f.bin", contents=b"x" * 5000)
    os.utime("/out/f.bin", (1000, 1234))
    (_, _, entry), = files_of([ScanRoot("derivatives", "/out")])[0]
    stat = os.lstat("/out/f.bin")
    assert (entry.size, entry.allocated, entry.mtime) == (5000, stat.st_blocks * 512, 1234)
    assert (entry.dev, entry.ino, entry.nlink) == (stat.st_dev, stat.st_ino, 1)


def test_unreadable_folder_is_a_warning_not_a_crash(normal_user):
    make_files("/out", ["a.txt", "locked/secret.txt", "z/b.txt"])
    os.chmod("/out/locked", 0o100)
    found, warnings = files_of([ScanRoot("derivatives", "/out")])
    assert [path for _, path, _ in found] == ["a.txt", "z/b.txt"]
    assert warnings.as_list() == ["cannot read /out/locked: Permission denied"]


def test_skip_dir_and_exclude_prune_before_listing(fakefs):
    make_files("/out", ["sub-01/a", "sub-02/b", ".fmriprep-cleanup/journal", "c"])
    found, _ = files_of([ScanRoot("derivatives", "/out")], skip_dir=lambda root, rel, name: name == "sub-02",
                        exclude=frozenset({"/out/.fmriprep-cleanup"}))
    assert [path for _, path, _ in found] == ["c", "sub-01/a"]


def test_hard_links_count_once_in_totals(fakefs):
    write_description("/out")
    fakefs.create_file("/out/work/fmriprep_23_2_wf/sub_01_wf/n/_node.pklz", contents=b"y" * 300)
    fakefs.create_file("/out/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz", contents=b"x" * 1000)
    os.link("/out/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz", "/out/sub-01/anat/sub-01_desc-copy_T1w.nii.gz")
    summary = build_plan(discover("/out"), load_rulesets(["default"])).summarize()
    description = os.path.getsize("/out/dataset_description.json")
    assert summary.totals.files == 4
    assert summary.totals.bytes == 1000 + 300 + description
    assert summary.by_subject["01"].files == 3 and summary.by_subject["01"].bytes == 1300
    assert isinstance(summary, Summary)


def test_filesystem_type_and_network_file_systems(tmp_path, monkeypatch):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /project rw,relatime shared:30 - lustre 10.0.0.1@tcp:/proj rw\n"
        "41 22 0:51 / /project/local\\040disk rw shared:31 - xfs /dev/sdb rw\n"
    )
    from fmriprep_cleanup.basics import mounts
    from fmriprep_cleanup.basics.mounts import filesystem_type

    assert filesystem_type("/project/lab/ds001", str(mountinfo)) == "lustre"
    assert filesystem_type("/project/local disk/x", str(mountinfo)) == "xfs"
    assert filesystem_type("/home/me", str(mountinfo)) == "ext4"
    assert filesystem_type("/projects", str(mountinfo)) == "ext4"  # a name that only starts like a mount point
    monkeypatch.setattr(mounts, "filesystem_type", lambda path: {"/project": "lustre"}.get(path, "ext4"))
    assert mounts.on_network(["/home", "/project"]) and not mounts.on_network(["/home"])


def test_concurrent_walk_overlaps_slow_listings_and_keeps_the_order(tmp_path, monkeypatch):
    """Network file systems: with --jobs, slow listings wait side by side; the output stays the same."""
    import threading
    import time

    import fmriprep_cleanup.basics.diskwalk as scan

    make_files(tmp_path / "out", [f"sub-{s:02d}/{kind}/f{n}.nii.gz" for s in range(8) for kind in ("anat", "func") for n in range(3)])
    real_list = scan.list_directory
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def slow_list(path, *more, **options):  # every listing takes a network round trip
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.02)
        try:
            return real_list(path, *more, **options)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(scan, "list_directory", slow_list)
    roots = [ScanRoot("derivatives", str(tmp_path / "out"))]

    def run(jobs):
        state["most"] = 0
        found = [(d.relpath, [e.name for e in d.files]) for d in walk(roots, Warnings(), jobs=jobs)]
        return found, state["most"]

    sequential, most_sequential = run(1)
    concurrent, most_concurrent = run(8)
    assert concurrent == sequential and len(sequential) == 25
    assert most_sequential == 1 and most_concurrent > 1  # listings really overlapped (speed: benchmarks/)


def test_folder_swapped_for_a_symlink_during_the_walk_is_not_entered(tmp_path):
    """The parent was listed with a real folder; by the time the walk gets there it is a link elsewhere."""
    make_files(tmp_path / "root", {"a/x.nii.gz": 10, "b/y.nii.gz": 10})
    make_files(tmp_path / "elsewhere", {"secret.txt": 10})
    warnings = Warnings()
    walked = walk([ScanRoot("derivatives", str(tmp_path / "root"))], warnings)
    assert next(walked).relpath == ""  # the root, listed with its folders a/ and b/
    os.rename(tmp_path / "root" / "b", tmp_path / "b-moved")
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "b")
    rest = {folder.relpath: [entry.name for entry in folder.files] for folder in walked}
    assert rest == {"a": ["x.nii.gz"], "b": []}
    assert warnings.as_list() == [f"cannot read {tmp_path / 'root' / 'b'}: no longer a folder (a symlink or a file now): not followed"]


def test_the_walk_leaves_no_folder_open_done_or_stopped_midway(tmp_path):
    """Each folder is opened from its parent's handle, which stays open while subfolders wait: all are closed
    when the walk ends, and when its consumer stops early (the handles the stack still waited on too)."""
    make_files(tmp_path / "root", [f"sub-{s}/{kind}/{n}/f.nii.gz" for s in range(3) for kind in ("anat", "func")
                                   for n in range(3)])
    roots = [ScanRoot("derivatives", str(tmp_path / "root"))]

    def open_now():
        return len(os.listdir("/proc/self/fd"))

    before = open_now()
    assert len(list(walk(roots, Warnings()))) == 1 + 3 + 6 + 18
    assert open_now() == before
    walked = walk(roots, Warnings())
    for _ in range(5):  # down into sub-0/anat/0: its ancestors are open, waiting on their other subfolders
        next(walked)
    assert open_now() > before
    walked.close()
    assert open_now() == before


def test_a_glob_that_picks_subjects_by_wildcard_or_class_is_not_reused_across_labels(fakefs):
    """Decisions are reused across subjects only where no rule can tell their labels apart: a glob with ``?`` or a
    character class in the label (sub-?2_*, sub-[0]1_*) or a wildcard glued to label characters (*1_task*) can."""
    out = "/data/out"
    write_description(out)
    names = ["sub-{s}_task-rest_run-1_bold.nii.gz", "sub-{s}_task-rest_run-2_bold.nii.gz"]
    for label in ("01", "02", "11"):
        make_files(out, [f"sub-{label}/func/{name.format(s=label)}" for name in names])
    old = time.time() - 90 * 86400  # a finished run's files, not held back as recent
    for folder, _, files in os.walk(out):
        for name in files:
            os.utime(os.path.join(folder, name), (old, old))
    for glob, junk_labels in (("**/sub-?2_*", {"02"}), ("**/sub-[0]1_*", {"01"}), ("sub-*/func/*1_task*", {"01", "11"}),
                              ("**/*-?1_task-*", {"01", "11"}), ("sub-?1/**", {"01", "11"})):
        with open("/data/mine.yaml", "w") as handle:
            handle.write("version: 1\nname: mine\ndefault: keep\nrules:\n"
                         f"  - {{id: picked, action: junk, category: c, why: w, match: {{path: '{glob}'}}}}\n")
        rows = list(build_plan(discover(out, find_work_dir=False), load_rulesets(["/data/mine.yaml"])))
        assert {row.subject for row in rows if row.action == "junk"} == junk_labels, glob
        assert sum(row.action == "junk" for row in rows) == 2 * len(junk_labels)


def _walked(roots, jobs, skip=None, exclude=frozenset()):
    return [(folder.path, folder.names, [(entry.size, entry.is_link) for entry in folder.files])
            for folder in walk(roots, Warnings(), skip, exclude, jobs)]


def test_a_threaded_walk_lists_ahead_and_yields_exactly_the_single_threaded_walk(tmp_path):
    """With --jobs, workers list each folder's subfolders as soon as it is listed (a budget ahead) and share a
    large folder's lstats: the folders, their files, sizes, links and order are the one walk's; folders the
    walk prunes (skip_dir, exclude) are let go; no handle is left open, done or stopped midway."""
    root = tmp_path / "root"
    make_files(root, {f"sub-{s:02d}/{kind}/n{n}/{m}.nii.gz": s * 100 + n + m for s in range(6)
                      for kind in ("anat", "func") for n in range(4) for m in range(3)})
    make_files(root, {f"big/f{number:03d}.txt": number for number in range(100)})  # more than one stat chunk
    os.symlink("f001.txt", root / "big" / "link")
    roots = [ScanRoot("derivatives", str(root))]

    def open_now():
        return len(os.listdir("/proc/self/fd"))

    before = open_now()
    one = _walked(roots, 1)
    assert _walked(roots, 4) == one and _walked(roots, 2) == one
    assert open_now() == before

    def skip(_root, relpath, name):
        return name == "func" or name == "sub-03"

    exclude = frozenset({str(root / "sub-01" / "anat")})
    pruned = _walked(roots, 1, skip, exclude)
    assert _walked(roots, 4, skip, exclude) == pruned and len(pruned) < len(one)
    assert not any("/func" in path or "sub-03" in path or path.startswith(str(root / "sub-01" / "anat"))
                   for path, *_ in pruned)
    assert open_now() == before
    walked = walk(roots, Warnings(), jobs=4)
    for _ in range(7):
        next(walked)
    walked.close()
    assert open_now() == before


def test_workers_list_the_folders_the_walk_reaches_next_first(tmp_path, monkeypatch):
    """Issue 47: first-in-first-out workers listed every subject's folders breadth first; those listings held
    the budget of folders listed ahead until the depth-first walk reached them, and on an sshfs mount most of
    the time nothing was in flight. Workers now take the waiting folder earliest in the walk's order."""
    import threading
    import time

    import fmriprep_cleanup.basics.diskwalk as scan

    make_files(tmp_path / "out", [f"sub-{s:02d}/{kind}/f.nii.gz" for s in range(8) for kind in ("anat", "func")])
    real_list = scan.list_directory
    started: list[str] = []
    lock = threading.Lock()

    def slow_list(path, *more, **options):
        with lock:
            started.append(os.path.relpath(path, tmp_path / "out"))
        time.sleep(0.02)
        return real_list(path, *more, **options)

    monkeypatch.setattr(scan, "list_directory", slow_list)
    roots = [ScanRoot("derivatives", str(tmp_path / "out"))]
    assert len(list(walk(roots, Warnings(), jobs=2))) == 25
    assert started.index("sub-00/anat") < started.index("sub-05")


def test_ordered_pool_runs_the_smallest_key_first_and_cancels_the_rest_on_shutdown():
    import threading

    from fmriprep_cleanup.basics.orderedpool import OrderedPool

    pool = OrderedPool(1)
    gate, ran = threading.Event(), []
    first = pool.submit(["z"], gate.wait)  # holds the one worker while the others wait
    later = [pool.submit(key.split("/"), lambda key=key: ran.append(key)) for key in ("b/c", "a", "b", "c")]
    failing = pool.submit(["d"], lambda: 1 / 0)
    gate.set()
    for future in later:
        future.result(timeout=5)
    assert first.result(timeout=5) is True and ran == ["a", "b", "b/c", "c"]
    assert isinstance(failing.exception(timeout=5), ZeroDivisionError)
    pool = OrderedPool(1)
    gate.clear()
    pool.submit(["a"], gate.wait)
    waiting = pool.submit(["b"], lambda: None)
    threading.Timer(0.1, gate.set).start()
    pool.shutdown()
    assert waiting.cancelled()
    with pytest.raises(RuntimeError):
        pool.submit(["c"], lambda: None)
