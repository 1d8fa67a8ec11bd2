"""A sharded report on a real single-node Slurm cluster (Debian's slurm-wlm and munge, started by
tests/slurm/cluster.sh): the generated array and merge jobs run with sbatch, and the merged report equals the
unsharded one."""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, ci_listing, finish_subjects, make_files, write_description

from fmriprep_cleanup.cli import cli

CLUSTER = Path(__file__).parent / "slurm" / "cluster.sh"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_ports(count: int) -> list[int]:
    """Ports no one listens on now: each pytest-xdist worker may start its own cluster, and two clusters on the
    same ports fail ("Address already in use")."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for handle in sockets:
            handle.bind(("127.0.0.1", 0))
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running cluster for this module's tests, stopped afterwards; SLURM_CONF points at it."""
    missing = [name for name in ("slurmctld", "slurmd", "sbatch", "munged", "mungekey") if not shutil.which(name)]
    if missing:
        message = f"needs Debian's slurm-wlm and munge ({', '.join(missing)} missing)"
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the Slurm test: " + message)
        pytest.skip(message)
    state = tmp_path_factory.mktemp("slurm")
    ports = [str(port) for port in free_ports(2)]
    started = subprocess.run(["bash", str(CLUSTER), "start", str(state), *ports], capture_output=True, text=True,
                             timeout=120)
    assert started.returncode == 0, started.stderr
    conf = started.stdout.strip().split("=", 1)[1]
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, timeout=60)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


def five_subjects(root: Path) -> tuple[Path, Path]:
    """fMRIPrep CI's ds005 outputs for five finished subjects and their working directory, beside it."""
    out = root / "ds005"
    write_description(out)
    listing = [path for path in ci_listing(DATA / "ds005_outputs.txt") if path != "dataset_description.json"]
    labels = [f"{n:02d}" for n in range(1, 6)]
    make_files(out, {path.replace("sub-01", f"sub-{label}"): 100 + len(path) for label in labels for path in listing})
    make_files(root / "work", {f"fmriprep_23_2_wf/sub_{label}_wf/node/out.nii.gz": 9000 for label in labels})
    make_files(root / "work", {"fmriprep_23_2_wf/d3.js": 500})
    finish_subjects(out, labels)
    for folder, _, names in os.walk(root / "work"):
        for name in names:
            os.utime(os.path.join(folder, name), (1_600_000_000, 1_600_000_000))
    return out, root / "work"


def submit(tmp_path: Path, *options: str) -> Path:
    """Print the array recipe, run it, and wait for the last job's report; returns the run folder."""
    run_dir = tmp_path / "run"
    script = CliRunner().invoke(cli, ["schedule", "slurm-array", *options, "--shards", "3", "--run-dir", str(run_dir)])
    assert script.exit_code == 0, script.output
    (tmp_path / "submit.sh").write_text(script.stdout)
    submitted = subprocess.run(["bash", str(tmp_path / "submit.sh")], capture_output=True, text=True, timeout=60)

    assert submitted.returncode == 0, submitted.stderr
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # the cluster is this test's own: its queue empties once all jobs ended
        queue = subprocess.run(["squeue", "-h"], capture_output=True, text=True)
        if queue.returncode == 0 and not queue.stdout.strip():
            break
        time.sleep(0.2)
    log = "\n".join(path.read_text() for path in sorted(run_dir.glob("*.out")))
    assert (run_dir / "report.html").exists(), log
    return run_dir


def test_the_slurm_array_and_its_merge_give_the_unsharded_report(slurm, tmp_path):
    out, work = five_subjects(tmp_path)
    run_dir = submit(tmp_path, str(out), "--work-dir", str(work))
    assert sorted(path.name for path in run_dir.glob("partial-*.json")) == [f"partial-{k}.json" for k in (1, 2, 3)]
    merged = json.loads((run_dir / "report.json").read_text())
    whole = json.loads(CliRunner().invoke(cli, ["report", str(out), "--work-dir", str(work),
                                                "--format", "json", "-q"]).stdout)
    assert merged.pop("command").startswith("fmriprep-cleanup merge ")  # how the merged report was made
    whole.pop("command")
    assert merged == whole and whole["totals"]["junk_bytes"] >= 5 * 9000
    text = CliRunner().invoke(cli, ["report", str(out), "--work-dir", str(work), "-q"]).stdout
    assert (run_dir / "report.txt").read_text() == text


def paths_below(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if ".fmriprep-cleanup" not in path.parts)


def test_a_slurm_array_cleans_shard_by_shard_then_the_shared_files(slurm, tmp_path):
    out, work = five_subjects(tmp_path / "sharded")
    twin, twin_work = five_subjects(tmp_path / "whole")
    whole = CliRunner().invoke(cli, ["clean", str(twin), "--work-dir", str(twin_work), "--mode", "delete", "--yes"])
    assert whole.exit_code == 0, whole.output
    run_dir = submit(tmp_path, str(out), "--work-dir", str(work), "--clean", "delete")
    summaries = [json.loads((run_dir / f"clean-{k}.json").read_text()) for k in (1, 2, 3)]
    assert [summary["files"] for summary in summaries] == [2, 2, 1]  # sub-01 and 04, 02 and 05, 03
    assert json.loads((run_dir / "clean-shared.json").read_text())["files"] == 1  # d3.js, once all were done
    assert paths_below(out) == paths_below(twin) and paths_below(work) == paths_below(twin_work)
    assert not (work / "fmriprep_23_2_wf/d3.js").exists()
    assert json.loads((run_dir / "report.json").read_text())["totals"]["junk_bytes"] == 0
