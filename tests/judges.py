"""Released versions of the programs fmriprep-cleanup speaks for, installed from the package index into
environments of their own, so that tests can ask the real program instead of our idea of it (fMRIPrep's own
argument parser, its --derivatives lookup, its config and its workflow code).

An environment is made once and kept in ``$FMRIPREP_CLEANUP_JUDGES`` (default: .judges/ at the top of the
repository, ignored by git), one folder per pinned set of requirements; parallel test workers wait for each
other on a lock. Tests that use one carry the ``integration`` mark. Installing needs the package index (or
PIP_FIND_LINKS); where it fails the test fails, saying why: it is never skipped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The fMRIPrep releases the regeneration gate names, each with the sMRIPrep release it shipped with.
FMRIPREP = {
    "25.0.0": ["fmriprep==25.0.0", "smriprep==0.17.0"],
    "25.1.4": ["fmriprep==25.1.4", "smriprep==0.18.0"],
    "25.2.7": ["fmriprep==25.2.7", "smriprep==0.19.5"],
}


def cache_folder() -> Path:
    return Path(os.environ.get("FMRIPREP_CLEANUP_JUDGES") or HERE.parent / ".judges")


def environment(requirements: list[str]) -> Path:
    """The python of an environment with ``requirements`` installed (made once, then reused)."""
    name = "-".join(requirement.replace("==", "-") for requirement in requirements[:1]) + "-" + \
        hashlib.sha256(json.dumps(requirements).encode()).hexdigest()[:8]
    folder = cache_folder() / name
    python = folder / "bin" / "python"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "ready").exists():
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], capture_output=True,
                              text=True)
        if done.returncode:
            pytest.fail(f"cannot install {' '.join(requirements)}: {done.stderr.strip()[-2000:]}")
        (folder / "ready").write_text(" ".join(requirements) + "\n")
    return python


def ask(python: Path, script: str, *args: str, cwd: Path | None = None, timeout: float = 600) -> dict:
    """Run ``script`` (a file of tests/) with ``python``; its JSON answer."""
    done = subprocess.run([str(python), str(HERE / script), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode:
        raise AssertionError(f"{script} {' '.join(args[:3])}... failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
