"""A sharded report on a real single-node Slurm cluster (Debian's slurm-wlm and munge, started by
tests/slurm/cluster.sh): the generated array and merge jobs run with sbatch, and the merged report equals the
unsharded one."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, ci_listing, finish_subjects, make_files, write_description

from fmriprep_cleanup.cli import cli

CLUSTER = Path(__file__).parent / "slurm" / "cluster.sh"


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
    started = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=120)
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


def test_the_slurm_array_and_its_merge_give_the_unsharded_report(slurm, tmp_path):
    out = tmp_path / "ds005"
    write_description(out)
    listing = [path for path in ci_listing(DATA / "ds005_outputs.txt") if path != "dataset_description.json"]
    labels = [f"{n:02d}" for n in range(1, 6)]
    make_files(out, {path.replace("sub-01", f"sub-{label}"): 100 + len(path) for label in labels for path in listing})
    make_files(tmp_path / "work", {f"fmriprep_23_2_wf/sub_{label}_wf/node/out.nii.gz": 9000 for label in labels})
    finish_subjects(out, labels)
    for folder, _, names in os.walk(tmp_path / "work"):
        for name in names:
            os.utime(os.path.join(folder, name), (1_600_000_000, 1_600_000_000))
    run_dir = tmp_path / "run"
    script = CliRunner().invoke(cli, ["schedule", "print", "--slurm-array", str(out), "--shards", "3",
                                      "--run-dir", str(run_dir), "--work-dir", str(tmp_path / "work")])
    assert script.exit_code == 0, script.output
    (tmp_path / "submit.sh").write_text(script.stdout)
    submitted = subprocess.run(["bash", str(tmp_path / "submit.sh")], capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    deadline = time.monotonic() + 180
    while not (run_dir / "report.html").exists() and time.monotonic() < deadline:
        time.sleep(1)
    log = "\n".join(path.read_text() for path in sorted(run_dir.glob("*.out")))
    assert (run_dir / "report.html").exists(), log
    assert sorted(path.name for path in run_dir.glob("partial-*.json")) == [f"partial-{k}.json" for k in (1, 2, 3)]
    merged = json.loads((run_dir / "report.json").read_text())
    whole = json.loads(CliRunner().invoke(cli, ["report", str(out), "--work-dir", str(tmp_path / "work"),
                                                "--format", "json", "-q"]).stdout)
    assert merged.pop("command").startswith("fmriprep-cleanup merge ")  # how the merged report was made
    whole.pop("command")
    assert merged == whole and whole["totals"]["junk_bytes"] >= 5 * 9000
    text = CliRunner().invoke(cli, ["report", str(out), "--work-dir", str(tmp_path / "work"), "-q"]).stdout
    assert (run_dir / "report.txt").read_text() == text
