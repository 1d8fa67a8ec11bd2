"""Run history: every clean and run that archives or deletes (and, with --record, a dry run) adds a row
to a small SQLite database, so that months later one can say how much was reclaimed and avoided.

The database lives in the XDG state directory (``$XDG_STATE_HOME/fmriprep-cleanup/history.sqlite``,
by default ``~/.local/state/...``) unless ``--history FILE`` says otherwise. Writers take SQLite's
write lock with ``BEGIN IMMEDIATE`` and wait for it (busy timeout), so two scheduled runs finishing
together both get their row. The schema carries a version and migrates forward on open.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..basics.errors import CleanupError
from ..basics.ownstate import user_state_dir

SCHEMA_VERSION = 2
BUSY_TIMEOUT_SECONDS = 60
COLUMNS = ("started", "finished", "host", "user", "dataset", "tool_version", "rules", "mode", "files", "bytes",
           "skipped_files", "failed_files", "kwh_per_year", "kgco2e_per_year", "duration", "exit_status", "note")

# Each migration takes the database from version N-1 to N; add new ones at the end, never edit old ones.
MIGRATIONS = {
    1: """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started REAL NOT NULL,
            finished REAL NOT NULL,
            host TEXT NOT NULL,
            user TEXT NOT NULL,
            dataset TEXT NOT NULL,
            tool_version TEXT NOT NULL,
            rules TEXT NOT NULL,
            mode TEXT NOT NULL,
            files INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            skipped_files INTEGER NOT NULL,
            failed_files INTEGER NOT NULL,
            kwh_per_year REAL NOT NULL,
            kgco2e_per_year REAL NOT NULL,
            duration REAL NOT NULL,
            exit_status INTEGER NOT NULL
        );
        CREATE INDEX runs_by_dataset ON runs (dataset, started);
    """,
    2: """
        ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''
    """,
}


def default_history_path() -> str:
    return os.path.join(user_state_dir(), "history.sqlite")


@dataclass(frozen=True)
class RunRecord:
    started: float
    finished: float
    dataset: str
    rules: str
    mode: str
    files: int
    bytes: int
    skipped_files: int
    failed_files: int
    kwh_per_year: float
    kgco2e_per_year: float
    exit_status: int
    host: str = ""
    user: str = ""
    tool_version: str = __version__
    note: str = ""  # why a scheduled run acted or did nothing ("not triggered: quota ... 62% full ...")

    def values(self) -> tuple:
        import socket  # a record is being written: only then is the host asked for

        host = self.host or socket.gethostname()
        user = self.user or _user()
        return (self.started, self.finished, host, user, self.dataset, self.tool_version, self.rules, self.mode,
                self.files, self.bytes, self.skipped_files, self.failed_files, self.kwh_per_year,
                self.kgco2e_per_year, self.finished - self.started, self.exit_status, self.note)


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class History:
    """The history database; opening it creates or migrates it."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or default_history_path()
        folder = os.path.dirname(os.path.abspath(self.path))
        if path and not os.path.isdir(folder):  # a typo must not create folders; only the default one is made
            raise CleanupError(f"cannot open the run history {self.path}: the folder {folder} does not exist")
        if os.path.islink(self.path):  # SQLite would write (or create) wherever the link points
            raise CleanupError(f"cannot open the run history {self.path}: it is a symlink (not followed)")
        try:
            os.makedirs(folder, exist_ok=True)
            self.connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise CleanupError(f"cannot open the run history {self.path}: {exc}") from None

    def _migrate(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
        try:
            version = self.connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CleanupError(f"{self.path} was written by a newer fmriprep-cleanup (schema {version}); upgrade")
            for next_version in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[next_version].split(";"):
                    if statement.strip():
                        self.connection.execute(statement)
                self.connection.execute(f"PRAGMA user_version = {next_version}")
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise

    def add(self, record: RunRecord) -> None:
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                                    record.values())
            self.connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise CleanupError(f"cannot record the run in {self.path}: {exc}") from None

    def note_last(self, dataset: str, note: str) -> None:
        """Say why on the newest row of ``dataset`` (the run a policy's trigger started)."""
        try:
            self.connection.execute("UPDATE runs SET note = ? WHERE id = (SELECT max(id) FROM runs WHERE dataset = ?)",
                                    (note, dataset))
        except sqlite3.Error as exc:
            raise CleanupError(f"cannot record the run in {self.path}: {exc}") from None

    def runs(self, since: float | None = None) -> list[dict[str, Any]]:
        query = f"SELECT id, {', '.join(COLUMNS)} FROM runs"
        arguments: tuple = ()
        if since is not None:
            query += " WHERE started >= ?"
            arguments = (since,)
        cursor = self.connection.execute(query + " ORDER BY started, id", arguments)
        names = [description[0] for description in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def close(self) -> None:
        self.connection.close()


EXIT_CUT_SHORT = 137  # a run killed before it could end (128 + SIGKILL, as shells report it), recorded by the next


def record_run(history: History, result: Any, rules: list[str]) -> None:
    """Add a clean run (clean.CleanResult) to the history, after the runs it found cut short (killed by SIGKILL,
    a crash, a power cut): each is recorded with what its journal shows it removed and exit status 137, so the
    history adds up to what is gone from the disk."""
    for run in result.cut_short:
        history.add(RunRecord(
            started=run["started"], finished=run["ended"], dataset=run["dataset"] or result.dataset,
            rules=",".join(run["rules"]), mode=run["mode"], files=run["files"], bytes=run["bytes"],
            skipped_files=0, failed_files=0, kwh_per_year=run["kwh_per_year"], kgco2e_per_year=run["kgco2e_per_year"],
            exit_status=EXIT_CUT_SHORT))
    outcome = result.outcome
    history.add(RunRecord(
        started=result.started, finished=result.finished, dataset=result.dataset, rules=",".join(rules),
        mode=result.mode, files=outcome["files"], bytes=outcome["bytes"],
        skipped_files=sum(row["files"] for row in outcome["skipped"]),
        failed_files=sum(row["files"] for row in outcome["failed"]),
        kwh_per_year=result.kwh_per_year, kgco2e_per_year=result.kgco2e_per_year, exit_status=result.exit_status,
    ))


def totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Cumulative figures: overall and per dataset, for runs that acted (not dry runs)."""
    def empty() -> dict[str, Any]:
        return {"runs": 0, "files": 0, "bytes": 0, "kwh_per_year": 0.0, "kgco2e_per_year": 0.0}

    overall = empty()
    per_dataset: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run["mode"] in ("dry-run", "verify"):  # nothing was freed
            continue
        for bucket in (overall, per_dataset.setdefault(run["dataset"], empty())):
            bucket["runs"] += 1
            for key in ("files", "bytes", "kwh_per_year", "kgco2e_per_year"):
                bucket[key] += run[key]
    return {"overall": overall, "by_dataset": [{"dataset": name, **values} for name, values in sorted(per_dataset.items())]}
