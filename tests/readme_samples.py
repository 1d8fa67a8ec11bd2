"""The README's sample outputs come from the code: each ```console block that starts with
``$ fmriprep-cleanup ...`` is that command's real output on the demo project (built in /tmp/demo by the first
sample). test_readme.py checks every sample; after changing an output, regenerate them with

    python tests/readme_samples.py README.md
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DEMO = "/tmp/demo"  # where the README says the demo project is
BLOCK = re.compile(r"```console\n\$ (fmriprep-cleanup [^\n]*)\n(.*?)```", re.DOTALL)


def samples(readme: str) -> list[tuple[str, str]]:
    """(command line, output shown) of every sample, in README order."""
    return [(match.group(1), match.group(2)) for match in BLOCK.finditer(readme)]


def run_sample(command: str, sandbox: str) -> str:
    """The command's stdout with the demo built under ``sandbox`` instead of /tmp/demo (paths written back)."""
    args = [arg.replace(DEMO, f"{sandbox}/demo") for arg in shlex.split(command)[1:]]
    done = subprocess.run([sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", *args],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    return done.stdout.replace(f"{sandbox}/demo", DEMO)


def same(shown: str, real: str) -> bool:
    """Equal line by line; where a line names the demo's folder, up to the spaces that align it (the sandbox's
    path has another length than /tmp/demo)."""
    shown_lines, real_lines = shown.splitlines(), real.splitlines()
    if len(shown_lines) != len(real_lines):
        return False
    for expected, got in zip(shown_lines, real_lines, strict=True):
        if DEMO in expected:
            expected, got = " ".join(expected.split()), " ".join(got.split())
        if expected != got:
            return False
    return True


def regenerate(path: Path) -> None:
    """Rewrite the samples of the README at ``path``, building the demo in /tmp/demo itself (so the columns
    that hold its paths are aligned as a reader's will be); /tmp/demo must not exist, and is removed after."""
    if os.path.lexists(DEMO):
        sys.exit(f"{DEMO} exists; move it away first")
    text = path.read_text()
    try:
        outputs = {command: run_sample(command, os.path.dirname(DEMO)) for command, _ in samples(text)}
    finally:
        shutil.rmtree(DEMO, ignore_errors=True)
    path.write_text(BLOCK.sub(lambda m: f"```console\n$ {m.group(1)}\n{outputs[m.group(1)]}```", text))


if __name__ == "__main__":
    regenerate(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
