"""The invoking user's own state, outside every dataset: ``$XDG_STATE_HOME/fmriprep-cleanup/`` (by default
``~/.local/state/fmriprep-cleanup``), the one place no group member can write. It holds the sealing key
(seal.py), the run history (ops/history.py) and the record of runs started and ended (here).

A run that changes a dataset records its start here before its journal exists, and its end once the journal is
finished. Recovery acts only on a journal whose run this record shows as started and not ended, in the very
state folder the journal sits in: lines copied from a finished run's journal, or a journal planted or restored
from a copy, cannot pass for a crash, however genuine their seals.

Layout::

    runs/<run id>.started    a JSON object: the state folder, the journal's name, when it started
    runs/<run id>.ended      the same, renamed when the run ended (or was recovered, or discarded)
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from dataclasses import dataclass

from . import numbers
from .errors import CleanupError
from .handles import open_child, open_folder_nofollow

RUNS = "runs"
STARTED, ENDED = ".started", ".ended"
KEEP_ENDED_SECONDS = 400 * 86400  # ended records older than this are removed when a run ends
MAX_RECORD = 64 * 1024


def user_state_dir() -> str:
    """``$XDG_STATE_HOME/fmriprep-cleanup`` (``~/.local/state/fmriprep-cleanup`` when it is not set)."""
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(os.path.abspath(state_home), "fmriprep-cleanup")


def _runs_folder(create: bool) -> int | None:
    """A handle on the record's folder (made private when missing); None when there is none yet. A folder of
    someone else, or one others can write, is refused: it would not be the user's own record."""
    try:
        top = open_folder_nofollow(user_state_dir(), create=create, mode=0o700)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CleanupError(f"cannot open your own state folder {user_state_dir()}: {_why(exc)}") from None
    try:
        folder = open_child(top, RUNS, create=create, mode=0o700)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CleanupError(f"cannot open {os.path.join(user_state_dir(), RUNS)}: {_why(exc)}") from None
    finally:
        os.close(top)
    st = os.fstat(folder)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(folder)
        raise CleanupError(f"{os.path.join(user_state_dir(), RUNS)} must be a folder of yours that only you can "
                           "write (chmod 700); refusing to trust the record of your runs in it")
    return folder


def _why(exc: OSError) -> str:
    return "a symlink (not followed)" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror or str(exc)


@dataclass(frozen=True)
class StartedRun:
    """One run this user started, as recorded in their own state."""

    run: str
    state_dir: str
    journal: str  # the journal's file name in <state_dir>/journal/
    started: float
    ended: bool


def record_start(run: str, state_dir: str, journal: str) -> None:
    """Record that ``run`` starts, in ``state_dir``, journaling to ``journal``: on disk before the journal is."""
    folder = _runs_folder(create=True)
    assert folder is not None
    text = json.dumps({"run": run, "state_dir": os.path.abspath(state_dir), "journal": journal,
                       "started": round(time.time(), 3)})
    try:
        fd = os.open(run + STARTED, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=folder)
        try:
            os.write(fd, text.encode("utf-8", "surrogateescape"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.fsync(folder)
    except OSError as exc:
        raise CleanupError(f"cannot record the run's start in {os.path.join(user_state_dir(), RUNS)}: "
                           f"{_why(exc)}; nothing was changed") from None
    finally:
        os.close(folder)


def record_end(run: str) -> None:
    """Record that ``run`` ended (finished, recovered or discarded): its journal is never acted on again."""
    folder = _runs_folder(create=False)
    if folder is None:
        return
    try:
        os.rename(run + STARTED, run + ENDED, src_dir_fd=folder, dst_dir_fd=folder)
        os.fsync(folder)
    except OSError:
        pass  # already ended, or never recorded
    finally:
        _forget_old(folder)
        os.close(folder)


def _forget_old(folder: int) -> None:
    oldest = time.time() - KEEP_ENDED_SECONDS
    try:
        for name in os.listdir(folder):
            if name.endswith(ENDED) and os.stat(name, dir_fd=folder, follow_symlinks=False).st_mtime < oldest:
                os.unlink(name, dir_fd=folder)
    except OSError:
        pass


def _read(folder: int, name: str) -> StartedRun | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, MAX_RECORD)
    finally:
        os.close(fd)
    try:
        record = json.loads(data.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return None
    fields = ("run", "state_dir", "journal")
    if not isinstance(record, dict) or not all(isinstance(record.get(key), str) for key in fields):
        return None
    try:
        started = numbers.moment(record.get("started"), "started")
    except ValueError:
        started = 0.0
    return StartedRun(record["run"], record["state_dir"], record["journal"], started, name.endswith(ENDED))


def recorded_run(run: str) -> StartedRun | None:
    """What this user's own record says of ``run``: started (and whether it ended), or None if it never
    recorded it (another user's run, an earlier version's, or none at all)."""
    if "/" in run or run.startswith("."):
        return None
    folder = _runs_folder(create=False)
    if folder is None:
        return None
    try:
        return _read(folder, run + STARTED) or _read(folder, run + ENDED)
    finally:
        os.close(folder)


def unended_runs(state_dir: str) -> list[StartedRun]:
    """The runs this user started in ``state_dir`` that have not ended (killed, crashed, or still running
    elsewhere), oldest first."""
    folder = _runs_folder(create=False)
    if folder is None:
        return []
    try:
        names = [name for name in os.listdir(folder) if name.endswith(STARTED)]
        found = [_read(folder, name) for name in sorted(names)]
    finally:
        os.close(folder)
    wanted = os.path.abspath(state_dir)
    return [run for run in found if run is not None and run.state_dir == wanted]
