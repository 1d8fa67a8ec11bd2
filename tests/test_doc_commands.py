"""Every `fmriprep-cleanup` command in the docs' ```bash blocks runs as written, in page order, on a sandbox
that stands in for the paths the docs use (/data/..., OUT, /archive/..., /project, /scratch): no stale option,
no deprecated spelling, no example that fails. Commands that ask before acting are answered "y" on a real
pseudo-terminal, as a person would. Other commands in those blocks (pip, python, Slurm's own tools) are not
this tool's and are run by the tests that need them (test_packaging.py, test_slurm.py)."""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, on_a_pseudo_terminal
from readme_samples import PAGES
from test_regeneration import build as build_regenerable_tree

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = [sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()"]
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def documented_commands(page: str) -> list[str]:
    """The page's `fmriprep-cleanup ...` lines of ```bash blocks, each command of a `&&` chain on its own."""
    commands = []
    for block in BASH_BLOCK.findall((ROOT / page).read_text()):
        for line in block.splitlines():
            for command in line.split("&&"):
                if command.strip().startswith("fmriprep-cleanup "):
                    commands.extend(every_shard(command.strip()))
    return commands


def every_shard(command: str) -> list[str]:
    """A shard's command the page says to repeat ("--shard 1/4 ... # ... and 2/4, 3/4, 4/4"), once per shard."""
    shard = re.search(r"--shard 1/(\d+) .*# \.\.\. and", command)
    if not shard:
        return [command]
    count = int(shard.group(1))
    return [re.sub(r"-1\.(json|jsonl)\b", rf"-{number}.\1", command.replace("--shard 1/", f"--shard {number}/"))
            for number in range(1, count + 1)]


class Sandbox:
    """The folders the docs' paths stand for: the demo project (or, for regeneration.md, a tree whose runs can
    be rebuilt), an archive folder, a site's /project and /scratch, a policy file and a scan list."""

    def __init__(self, root: Path, page: str, template: Path):
        self.root = root
        demo = root / "demo"
        subprocess.run(["cp", "-a", str(template), str(demo)], check=True)  # a fresh copy: pages change it
        self.out, self.work = demo / "ds003752", demo / "work"
        if page == "docs/nipoppy.md":
            from test_nipoppy import written_study

            written_study(root)
        if page == "docs/regeneration.md":
            self.out, _ = build_regenerable_tree(root / "regenerable")
            shrink(root / "regenerable")
        for folder in ("archive", "scratch", "log", "state", "home"):
            (root / folder).mkdir()
        (root / "hygiene.yaml").write_text(f"version: 1\ndatasets:\n  - paths: ['{self.out}']\n    mode: dry-run\n")
        with open(root / "scan.list", "wb") as handle:  # the find -printf list docs/storage-hygiene.md documents
            subprocess.run(["find", str(demo), "-printf", r"%y %s %b %T@ %D %i %n %p\0"], stdout=handle, check=True)
        self.prefixes = [  # the first that starts an argument is replaced
            ("/data/ds003752/derivatives/fmriprep", str(self.out)),
            ("/data/study", str(root / "study")),
            ("/project/ds003752/derivatives/fmriprep", str(self.out)),
            ("/project/ds001/derivatives/fmriprep", str(self.out)),
            ("/scratch/scan.list.fmriprep-cleanup", str(root / "scan.list")),
            ("/scratch/look-here", str(root / "look-here")),
            ("/archive/", str(root / "archive") + "/"),
            ("ARCHIVE_DIR", str(root / "archive" / "ds003752")),
            ("/project", str(demo)),
            ("/scratch", str(root / "scratch")),
            ("/var/log/", str(root / "log") + "/"),
            ("/tmp/run", str(root / "run")),
            ("OUT", str(self.out)),
            ("hygiene.yaml", str(root / "hygiene.yaml")),
        ]
        self.words = {"W": str(self.work), "FILE": str(self.out / "sub-01.html")}
        self.env = {**os.environ, "HOME": str(root / "home"), "XDG_STATE_HOME": str(root / "state"),
                    "XDG_CONFIG_HOME": str(root / "home"), "COLUMNS": "120"}

    def fill(self, argument: str) -> str:
        if argument in self.words:
            return self.words[argument]
        for prefix, there in self.prefixes:
            if argument.startswith(prefix):
                argument = there + argument[len(prefix):]
                break
        if "<run-id>" in argument:  # the newest run in the archive folder named before it
            folder = Path(argument.split("<run-id>")[0])
            runs = sorted(path.name for path in folder.iterdir() if path.is_dir())
            assert runs, f"no archive run in {folder} yet"
            argument = argument.replace("<run-id>", runs[-1])
        return argument

    def run(self, command: str) -> tuple[int, str]:
        """Exit status and everything printed; stdout to the file a `> FILE` names."""
        words = shlex.split(command.replace("<run id>", "<run-id>"), comments=True)
        target = None
        if ">" in words:
            target = self.root / words[words.index(">") + 1]
            words = words[:words.index(">")]
        args = [self.fill(word) for word in words[1:]]
        args = [match for arg in args  # a pattern that matches nothing stays as it is, as in bash
                for match in ((sorted(glob.glob(arg, root_dir=self.root)) or [arg]) if "*" in arg else [arg])]
        if asks_first(args):
            return on_a_pseudo_terminal(args, self.env, answer=b"y\n", cwd=self.root, stderr_too=True)
        done = subprocess.run([*PROGRAM, *args], capture_output=True, text=True, env=self.env, cwd=self.root)
        if target is not None:
            target.write_text(done.stdout)
        return done.returncode, done.stdout + done.stderr


def shrink(folder: Path) -> None:
    """The demo's images are sparse files of real sizes (48 GB): cut each to 1 KiB, mtime kept, so archiving
    them writes megabytes, not gigabytes; the text files the judgement reads are far smaller and stay whole.
    (The same for the regenerable tree's outputs and raw inputs.)"""
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            stat = os.lstat(path)
            if stat.st_size > 1 << 20:
                os.truncate(path, 1024)
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def thin(folder: Path) -> None:
    """Keep one file in ten of the demo's working directory (sorted, so always the same ones): its thousands of
    small files make archiving and restoring slow, and the commands read the same either way."""
    for number, path in enumerate(sorted(path for path in folder.rglob("*") if path.is_file())):
        if number % 10:
            path.unlink()


def asks_first(args: list[str]) -> bool:
    """Does the command ask "go ahead?" before acting (archive or delete without --yes)?"""
    acts = any(mode in args for mode in ("archive", "delete")) and "--mode" in args
    return acts and "--yes" not in args and "-y" not in args


PAGES_WITH_COMMANDS = [page for page in PAGES if documented_commands(page)]


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """The demo project, shrunk and thinned, built once per run; each page's sandbox gets its own copy."""
    demo = tmp_path_factory.mktemp("doc-demo") / "demo"
    assert cli("demo", "--dir", demo, "--format", "json").exit_code == 0
    shrink(demo)
    thin(demo / "work")
    return demo


def test_the_docs_have_commands_to_run():
    assert len(PAGES_WITH_COMMANDS) >= 5
    assert sum(len(documented_commands(page)) for page in PAGES) >= 25


@pytest.mark.parametrize("page", PAGES_WITH_COMMANDS)
def test_every_documented_command_runs_as_written(page, tmp_path, demo_template):
    sandbox = Sandbox(tmp_path, page, demo_template)
    for command in documented_commands(page):
        status, printed = sandbox.run(command)
        assert status == 0, f"{page}: `{command}` exited {status}:\n{printed[-2000:]}"
        assert "deprecated" not in printed, f"{page}: `{command}` uses an old spelling:\n{printed}"
    if page in ("README.md", "docs/cleaning.md"):  # the archive commands did archive
        assert list((tmp_path / "archive" / "ds003752").glob("*/run.json"))


def test_an_old_spelling_in_a_page_would_be_caught(tmp_path, demo_template):
    sandbox = Sandbox(tmp_path, "docs/cleaning.md", demo_template)
    status, printed = sandbox.run("fmriprep-cleanup plan OUT --only junk")
    assert status == 0 and "deprecated" in printed
    status, printed = sandbox.run("fmriprep-cleanup plan OUT --no-such-option")
    assert status == 2
