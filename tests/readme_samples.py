"""The documentation's sample outputs come from the code: each ```console block that starts with
``$ fmriprep-cleanup ...`` is that command's real output on the demo project (built in /tmp/demo by the first
sample, in docs/getting-started.md). test_readme.py checks every sample and the CLI reference; after changing
an output or an option, regenerate them with

    python tests/readme_samples.py            # the samples of every page in PAGES
    python tests/readme_samples.py --cli-reference
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DEMO = "/tmp/demo"  # where the docs say the demo project is
ROOT = Path(__file__).resolve().parent.parent
# the pages with samples, in the order they are run (the first builds the demo)
PAGES = ["docs/getting-started.md", "docs/commands.md", "docs/status.md", "docs/cleaning.md", "docs/rules.md",
         "docs/regeneration.md", "docs/datalad.md", "docs/storage-hygiene.md", "docs/energy.md",
         "docs/output-formats.md", "docs/nipreps.md", "docs/nipoppy.md", "docs/scaling.md", "docs/python-api.md", "docs/development.md",
         "README.md"]
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


def regenerate(paths: list[Path]) -> None:
    """Rewrite the samples of the pages at ``paths`` (in order), building the demo in /tmp/demo itself (so the
    columns that hold its paths are aligned as a reader's will be); /tmp/demo must not exist, and is removed
    after."""
    if os.path.lexists(DEMO):
        sys.exit(f"{DEMO} exists; move it away first")
    texts = {path: path.read_text() for path in paths}
    try:
        outputs = {command: run_sample(command, os.path.dirname(DEMO))
                   for text in texts.values() for command, _ in samples(text)}
    finally:
        shutil.rmtree(DEMO, ignore_errors=True)
    for path, text in texts.items():
        path.write_text(BLOCK.sub(lambda m: f"```console\n$ {m.group(1)}\n{outputs[m.group(1)]}```", text))


def cli_reference() -> str:
    """docs/cli-reference.md: every command's --help, as the command line prints it 100 columns wide."""
    import click

    from fmriprep_cleanup.cli import cli

    parts = ["# Command-line reference\n\nEvery command's `--help`, generated from the code by "
             "`python tests/readme_samples.py --cli-reference` (a test checks it is current).\n"]

    def visit(command: click.Command, names: list[str], parent: click.Context | None) -> None:
        settings = {**command.context_settings, "terminal_width": 100, "max_content_width": 100}
        context = click.Context(command, info_name=names[-1], parent=parent, **settings)
        if not getattr(command, "hidden", False):
            parts.append(f"\n## {' '.join(names)}\n\n```text\n{command.get_help(context)}\n```\n")
        if isinstance(command, click.Group):
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                if sub is not None:
                    visit(sub, [*names, name], context)

    visit(cli, ["fmriprep-cleanup"], None)
    return "".join(parts)


if __name__ == "__main__":
    if sys.argv[1:] == ["--cli-reference"]:
        (ROOT / "docs" / "cli-reference.md").write_text(cli_reference())
    else:
        regenerate([ROOT / page for page in (sys.argv[1:] or PAGES)])
