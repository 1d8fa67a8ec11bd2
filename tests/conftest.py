"""Shared fixtures: fake filesystems for unit tests, real sparse trees for everything else."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pyfakefs import helpers
from pyfakefs.fake_filesystem_unittest import Patcher

import fmriprep_cleanup.fmriprep.demo as demo
from fmriprep_cleanup.fmriprep.entities import entity_definitions, pybids_config_dir
from fmriprep_cleanup.fmriprep.pipelines import pipelines, shipped_pipelines_dir
from fmriprep_cleanup.rules.rulesets import shipped_rules_dir

DATA = Path(__file__).parent / "data"
DS003752 = DATA / "ds003752-fmriprep-23.2.0.tsv"
CI_LISTS = sorted(DATA.glob("ds*_outputs.txt"))


def _sandbox(home: Path, patch: pytest.MonkeyPatch) -> None:
    patch.setenv("HOME", str(home))
    for variable in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        patch.setenv(variable, str(home / variable.lower()))


@pytest.fixture(scope="session", autouse=True)
def sandboxed_session(tmp_path_factory):
    """The same sandbox for what is built once per test run (shared trees, a DataLad dataset)."""
    with pytest.MonkeyPatch.context() as patch:
        _sandbox(tmp_path_factory.mktemp("session-home"), patch)
        yield


@pytest.fixture(autouse=True)
def sandboxed_state(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real state: the history database, XDG folders and the home folder
    all point into a temporary folder (subprocesses inherit the environment)."""
    home = tmp_path_factory.mktemp("home")
    _sandbox(home, monkeypatch)
    return home


@pytest.fixture
def fakefs():
    """pyfakefs with the shipped rules and pipelines and pybids' entity config mapped in from the real disk."""
    entity_definitions()  # read pybids' config and the shipped pipelines once from the real disk
    pipelines()
    real_dirs = (str(shipped_rules_dir()), str(shipped_pipelines_dir()), pybids_config_dir())  # on the real disk
    with Patcher() as patcher:
        for real in real_dirs:
            patcher.fs.add_real_directory(real)
            for name in os.listdir(real):  # load lazily-mapped entries now, while we are root
                os.stat(os.path.join(real, name))
        try:
            yield patcher.fs
        finally:
            helpers.reset_ids()


@pytest.fixture
def normal_user(fakefs):
    """Act as an ordinary user inside pyfakefs, so permissions apply (the tests run as root)."""
    helpers.set_uid(1000)
    helpers.set_gid(1000)
    return fakefs


def make_files(root: str | Path, paths: dict[str, int] | list[str], size: int = 10) -> None:
    """Create files (sparse, of the given sizes) under root; works on pyfakefs and real disks."""
    items = paths.items() if isinstance(paths, dict) else ((p, size) for p in paths)
    for relpath, nbytes in items:
        path = os.path.join(str(root), relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(nbytes)


def write_description(folder: str | Path, version: str = "23.2.0", legacy: bool = False, name: str = "fMRIPrep") -> None:
    os.makedirs(str(folder), exist_ok=True)
    text = demo.dataset_description(version, legacy=legacy).decode()
    if name != "fMRIPrep":
        text = text.replace('"fMRIPrep"', f'"{name}"')
    Path(folder, "dataset_description.json").write_text(text)


def ci_listing(path: Path) -> list[str]:
    """Files (not folders) of one of fMRIPrep's CI output lists."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if not any(other.startswith(line + "/") for other in lines)]


@pytest.fixture(scope="session")
def ds003752_listing():
    return demo.load_listing(DS003752)


def build_ds003752(root: Path, listing) -> tuple[Path, Path]:
    output = root / "ds003752"
    demo.build_tree(str(output), listing, demo.real_contents(listing))
    workdir = root / "scratch" / "work"  # not beside the output: tests choose to include it or not
    demo.build_tree(str(workdir), demo.synthetic_workdir(listing))
    return output, workdir


@pytest.fixture
def ds003752(tmp_path, ds003752_listing):
    """The real ds003752 fMRIPrep 23.2.0 output as sparse files, with a working directory beside it: a fresh
    copy for a test that changes it."""
    return build_ds003752(tmp_path, ds003752_listing)


@pytest.fixture(scope="session")
def ds003752_read_only(tmp_path_factory, ds003752_listing):
    """The same tree, built once per test run, for tests that only read it (report, plan, status)."""
    return build_ds003752(tmp_path_factory.mktemp("shared"), ds003752_listing)


STOP_AFTER_EVENT = """\
import os, signal, threading
import fmriprep_cleanup.basics.journal_writer as _journal
_write, _lock, _seen = _journal.Journal._write, threading.Lock(), [0]
def _write_then_stop(self, event, **fields):
    _write(self, event, **fields)
    with _lock:
        _seen[0] += event == {event!r}
        stop = event == {event!r} and _seen[0] == {count}
    if stop:
        os.kill(os.getpid(), signal.SIGSTOP)
_journal.Journal._write = _write_then_stop
"""
STOP_AFTER_LISTING = """\
import os, signal, threading
import fmriprep_cleanup.basics.folders as _folders
_list, _lock, _seen = _folders.list_directory, threading.Lock(), [0]
def _list_then_stop(path, *more, **options):
    listed = _list(path, *more, **options)
    with _lock:
        _seen[0] += 1
        stop = _seen[0] == {count}
    if stop:
        os.kill(os.getpid(), signal.SIGSTOP)
    return listed
_folders.list_directory = _list_then_stop
"""


def stopped_at(command: list[str], marker: str, count: int, **popen) -> subprocess.Popen:
    """Run ``command`` (``python -c CODE ARGS...``) until it stops itself (SIGSTOP) right after its journal has
    recorded the event ``marker`` (quoted, as in the file) for the ``count``-th time - or, for the marker
    ``listing``, right after the scan listed its ``count``-th folder. Where it stops does not depend on how fast
    the machine is. The stopped process is returned: the caller kills it, or signals and continues it."""
    assert command[1] == "-c", "stopped_at runs python -c CODE ARGS"
    stopper = (STOP_AFTER_LISTING.format(count=count) if marker == "listing"
               else STOP_AFTER_EVENT.format(event=marker.strip('"'), count=count))
    process = subprocess.Popen([command[0], "-c", stopper + command[2], *command[3:]],
                               **({"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} | popen))
    deadline = time.time() + 300  # a hang is a failure, not a stuck test run
    status = 0
    while time.time() < deadline:
        pid, status = os.waitpid(process.pid, os.WUNTRACED | os.WNOHANG)
        if pid:
            break
        time.sleep(0.005)
    else:
        process.kill()
        process.wait()
        raise AssertionError(f"the run neither stopped at {marker} x{count} nor ended within 300 s")
    if not os.WIFSTOPPED(status):
        raise AssertionError(f"the run ended before {marker} x{count}")
    return process


def kill_when_journal_says(command: list[str], marker: str, count: int) -> None:
    """Run ``command`` and SIGKILL it right after its journal has recorded ``marker`` the ``count``-th time (or the
    scan listed its ``count``-th folder, for ``listing``): see stopped_at."""
    process = stopped_at(command, marker, count)
    process.send_signal(signal.SIGKILL)
    process.wait()


FINISHED_RUN = "20240101-000000_00000000-0000-4000-8000-000000000000"
LONG_AGO = 1_600_000_000


def age_run(root: str | Path, mtime: float = LONG_AGO) -> None:
    """Give every file and folder below root an old modification time: a run that ended long ago (a run's
    activity is read from its files' times)."""
    for dirpath, _, filenames in os.walk(str(root), topdown=False):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
        os.utime(dirpath, (mtime, mtime))


def finish_subjects(output: str | Path, labels, version: str = "23.2.0", mtime: float = LONG_AGO) -> None:
    """Leave the evidence of a finished fMRIPrep run for each subject: its report and a run folder with its
    fmriprep.toml (both kept by every shipped rule set), all long ago."""
    output = Path(output)
    for label in labels:
        report = output / f"sub-{label}.html"
        if not report.exists():
            report.write_bytes(b"<html></html>")
        log = output / f"sub-{label}" / "log" / FINISHED_RUN
        log.mkdir(parents=True, exist_ok=True)
        (log / "fmriprep.toml").write_bytes(demo.run_config(version, FINISHED_RUN, label))
        for path in (report, log / "fmriprep.toml"):
            os.utime(path, (mtime, mtime))
    age_run(output, mtime)


OLD = LONG_AGO
TOOL = [sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()"]


def cli(*args, **kwargs):
    """Run the command line in this process (click's runner, --participant-label's several values spread as
    main() does); never a traceback, whatever the exit code."""
    from fmriprep_cleanup.cli import cli as command_line
    from fmriprep_cleanup.cli import expand_participant_labels

    result = CliRunner().invoke(command_line, expand_participant_labels([str(a) for a in args]), **kwargs)
    assert "Traceback" not in result.output, result.output
    return result


def write(path, data, mtime=OLD):
    """A file with these bytes and an old modification time (its folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def contents(root):
    """path -> sha256 (or link target) of every file below root, the tool's own state left out."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".fmriprep-cleanup"]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                found[path] = "link:" + os.readlink(path)
            elif name in filenames:
                with open(path, "rb") as handle:
                    found[path] = hashlib.sha256(handle.read()).hexdigest()
    return found


def project(root, subjects=("01", "02"), files=6, size=5000, seed=0):
    """An fMRIPrep 23.2 output with its working directory inside; every subject finished long ago."""
    rng = random.Random(seed)
    out = Path(root) / "out"
    write_description(out)
    write(out / "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz", b"kept" * 100)
    write(out / "sourcedata/freesurfer/fsaverage/surf/lh.white", rng.randbytes(3000))
    for subject in subjects:
        for n in range(files):
            write(out / f"work/fmriprep_23_2_wf/sub_{subject}_wf/node{n}/out.nii.gz", rng.randbytes(size + n))
    finish_subjects(out, list(subjects))
    return out


def on_a_sized_terminal(columns: int, *args) -> str:
    """What the tool prints on a real pseudo-terminal this many columns wide (24 rows), stderr left out."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environment = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()",
                                *map(str, args)], stdout=follower, stderr=subprocess.DEVNULL, stdin=follower,
                               env=environment)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait()
    return b"".join(chunks).decode().replace("\r\n", "\n")


def on_a_pseudo_terminal(args: list[str], env: dict[str, str], answer: bytes | None = None,
                         cwd: str | Path | None = None, stderr_too: bool = False) -> tuple[int, str]:
    """Run the tool on a real pseudo-terminal, as a person sees it (optionally typing ``answer``): its exit
    status and what it printed there."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", *args],
                               stdout=follower, stdin=follower if answer is not None else subprocess.DEVNULL,
                               stderr=follower if stderr_too else subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(follower)
    if answer is not None:
        os.write(leader, answer)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    status = process.wait()
    os.close(leader)
    return status, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
