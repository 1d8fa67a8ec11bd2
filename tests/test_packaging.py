"""The shipped rule sets and the demo listing must be inside the wheel, not only in a checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_rule_sets_and_demo_listing(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel, = tmp_path.glob("fmriprep_cleanup-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"fmriprep_cleanup/rules/shipped/{p.name}" for p in (ROOT / "rules").glob("*.yaml")}
    assert len(shipped) >= 4 and shipped <= names
    assert "fmriprep_cleanup/data/ds003752-fmriprep-23.2.0.tsv" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "fmriprep-cleanup = fmriprep_cleanup.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
