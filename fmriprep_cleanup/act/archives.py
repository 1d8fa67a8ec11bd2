"""Archives over time: list what an archive folder holds, verify every member against its manifest again, and
prune runs past their retention. An archive written by ``clean --mode archive`` was verified once; disks rot,
people copy folders around, and storage kept for years must be checked and eventually let go.

Layout (see act/manifest.py): ``DIR/<run id>/run.json`` and, per subject, an archive (tar or tree) with its
``.manifest.tsv``. An archive folder is shared storage too: a run is pruned only when the tool can prove it
wrote it - a run folder directly below DIR, named as the tool names runs, whose run.json is sealed with this
user's key for that run, holding nothing but the names the tool writes there - and never the folder given.
Pruning locks DIR, renames the run folder to ``<run id>.pruning`` (so a run is either whole or plainly being
removed; the next prune finishes a leftover one, on the same proof), removes the archives, their manifests and
run.json last, and writes each step to ``DIR/prune-journal.jsonl`` first. Every write (the prune journal,
``verify.json``) goes through folder handles, never through a symlink.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..basics.errors import CleanupError
from ..basics.formats import strict_json
from ..basics.handles import FOLDER_FLAGS, open_folder_nofollow, remove_at
from ..basics.results import FAILED, OK, SKIPPED, Result, results_json
from ..basics.seal import Verdict, check_json, seal_json
from .lock import FolderLock
from .manifest import (
    MANIFEST_SUFFIX,
    RUN_ID,
    RUN_INFO,
    VERIFY_RECORD,
    RunInfo,
    load_manifest,
    load_run_info,
    run_contents,
)
from .members import check_archive

PRUNING_SUFFIX = ".pruning"
PRUNE_JOURNAL = "prune-journal.jsonl"
NAME_MAX = 255  # bytes in one component of a path: a member longer than this could never be restored


def run_time(run_id: str, folder: str) -> float:
    """When a run archived: the time in its id (YYYYMMDD-HHMMSS_...), else its run.json's modification time."""
    try:
        return time.mktime(time.strptime(run_id[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        try:
            return os.lstat(os.path.join(folder, RUN_INFO)).st_mtime
        except OSError:
            return 0.0


def _size_on_disk(path: str) -> int:
    if os.path.isdir(path) and not os.path.islink(path):
        return sum(os.lstat(os.path.join(folder, name)).st_size for folder, _, names in os.walk(path) for name in names)
    return os.lstat(path).st_size


def archive_runs(directory: str) -> list[str]:
    """The run folders below ``directory`` (each holds a run.json; links are not followed), sorted; the folder
    itself when it is one (someone pointed at a run)."""
    if not os.path.isdir(directory):
        raise CleanupError(f"{directory}: no such directory (expected an --archive-dir)")
    with os.scandir(directory) as entries:
        runs = [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)
                and not entry.name.endswith(PRUNING_SUFFIX) and os.path.isfile(os.path.join(entry.path, RUN_INFO))
                and not os.path.islink(os.path.join(entry.path, RUN_INFO))]
    if os.path.isfile(os.path.join(directory, RUN_INFO)):
        runs.append(os.path.abspath(directory))
    return sorted(runs)


def _run_info(run: str) -> RunInfo | None:
    try:
        return load_run_info(run)
    except CleanupError:
        return None


def list_archives(directory: str, now: float | None = None) -> dict[str, Any]:
    """Every run and archive below ``directory``: subject, files, bytes (as archived and on disk), age, the
    last verification, whether it is sealed with this user's key, leftovers of interrupted runs (never
    archives), and ``problems``: what cannot be read or restored (a manifest without its archive or the other
    way round, a manifest that is not one), each said once, the rest listed all the same."""
    now = time.time() if now is None else now
    runs, problems = [], []
    for run in archive_runs(directory):
        run_id = os.path.basename(run)
        verified = _read_verify_record(run)
        contents = run_contents(run)
        problems += contents.problems
        archives = []
        for manifest, archive in contents.pairs:
            try:
                entries = load_manifest(manifest).entries
            except CleanupError as exc:
                problems.append(str(exc))
                continue
            archives.append({"subject": os.path.basename(manifest)[: -len(MANIFEST_SUFFIX)], "archive": archive,
                             "manifest": manifest, "files": len(entries),
                             "bytes": sum(entry.size for entry in entries), "bytes_on_disk": _size_on_disk(archive)})
        info = _run_info(run)
        started = run_time(run_id, run)
        runs.append({"run": run_id, "path": run, "time": started, "age_days": round((now - started) / 86400, 1),
                     "sealed": bool(info and info.verdict.trusted), "archives": archives,
                     "leftovers": contents.leftovers, "unknown": contents.unknown,
                     "last_verified": verified.get("time") if verified else None,
                     "last_verify_ok": verified.get("ok") if verified else None})
    return {"directory": os.path.abspath(directory), "runs": runs, "problems": problems}


@dataclass
class VerifyResult:
    members: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    unsealed: list[str] = field(default_factory=list)  # manifests checked, but not sealed with this user's key

    def results(self, directory: str) -> list[Result]:
        """The verification as result records: the members that match, then each problem."""
        return [Result(directory, "verify", OK, "", self.members, self.bytes),
                *(Result(directory, "verify", FAILED, problem, 1) for problem in self.problems)]

    def as_dict(self) -> dict[str, Any]:
        return {"members": self.members, "bytes": self.bytes, "ok": not self.problems, "problems": self.problems,
                "unsealed": self.unsealed}


def verify_archives(directory: str) -> dict[str, Any]:
    """Re-hash every member of every archive below ``directory`` against its manifest, and compare the type,
    mode, size and time a tar records with the manifest's: a changed byte, a missing or an extra member, an
    archive without its manifest, a manifest whose seal was broken is a problem. A manifest sealed with another
    key (or none) is checked all the same and listed in ``unsealed``. Each run folder records when it was last
    verified (verify.json, sealed)."""
    result = VerifyResult()
    for run in archive_runs(directory):
        run_result = VerifyResult()
        contents = run_contents(run)
        run_result.problems += contents.problems
        for manifest, archive in contents.pairs:
            _verify_one(archive, manifest, run_result)
        record = {"time": time.time(), "ok": not run_result.problems, "members": run_result.members,
                  "problems": run_result.problems[:100]}
        try:
            _write_verify_record(run, record)
        except OSError as exc:
            run_result.problems.append(f"{run}: cannot record the verification ({exc.strerror or exc})")
        result.members += run_result.members
        result.bytes += run_result.bytes
        result.problems += run_result.problems
        result.unsealed += run_result.unsealed
    return {"directory": os.path.abspath(directory), **result.as_dict(),
            "results": results_json(result.results(os.path.abspath(directory)))}


def _verify_one(archive: str, manifest: str, result: VerifyResult) -> None:
    try:
        loaded = load_manifest(manifest)
    except CleanupError as exc:
        result.problems.append(str(exc))
        return
    if loaded.verdict is Verdict.BROKEN:
        result.problems.append(f"{manifest}: {loaded.verdict.value}")
    elif not loaded.verdict.trusted:
        result.unsealed.append(f"{manifest}: {loaded.verdict.value}")
    for entry in loaded.entries:
        if any(len(os.fsencode(part)) > NAME_MAX for part in entry.member.split("/")):
            result.problems.append(f"{archive}: {entry.member} has a name longer than {NAME_MAX} bytes")
    checked = check_archive(archive, loaded.entries)
    result.members += checked.members
    result.bytes += checked.bytes
    result.problems += checked.problems or []


def _write_verify_record(run: str, record: dict[str, Any]) -> None:
    """verify.json, sealed for its run, written under a temporary name and renamed into place inside the run
    folder's handle: a verify.json planted as a symlink is replaced, never written through."""
    text = seal_json(strict_json(record), f"verify:{os.path.basename(run)}") + "\n"
    folder = open_folder_nofollow(os.path.abspath(run))
    temporary = f".{VERIFY_RECORD}.{os.getpid()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.rename(temporary, VERIFY_RECORD, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)


def _read_verify_record(run: str) -> dict[str, Any] | None:
    """The last verification of a run, if its verify.json is sealed for it (a planted one says nothing)."""
    import json

    from ..basics.guarded import read_bytes

    path = os.path.join(run, VERIFY_RECORD)
    if not os.path.lexists(path):
        return None
    try:
        text = read_bytes(path, "archive record", follow_links=False).decode("utf-8").strip()
        data = json.loads(text)
    except (CleanupError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not check_json(text, f"verify:{os.path.basename(run)}").trusted:
        return None
    return data


# --- pruning ---------------------------------------------------------------------------------------------------

def _why_not_ours(run: str, run_id: str) -> str | None:
    """None when ``run`` is provably a run this user's tool wrote (see the module's docstring), else why not."""
    if not RUN_ID.match(run_id):
        return "not named as fmriprep-cleanup names runs"
    try:
        info = load_run_info(run, run_id)
    except CleanupError as exc:
        return str(exc)
    if not info.verdict.trusted:
        return f"its run.json is {info.verdict.value}"
    unknown = run_contents(run).unknown
    if unknown:
        return f"it holds {os.path.basename(unknown[0])}, which fmriprep-cleanup never writes there"
    return None


class PruneJournal:
    """DIR/prune-journal.jsonl, opened for appending inside the archive folder's handle (never through a
    symlink), and that handle, through which runs are renamed and removed."""

    def __init__(self, directory: str) -> None:
        try:
            self.folder = open_folder_nofollow(directory)
        except OSError as exc:
            raise CleanupError(f"cannot open {directory}: {exc.strerror or exc}") from None
        try:
            self.fd = os.open(PRUNE_JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o644, dir_fd=self.folder)
        except OSError as exc:
            os.close(self.folder)
            why = "it is a symlink (not followed)" if exc.errno == errno.ELOOP else exc.strerror or exc
            raise CleanupError(f"cannot write {os.path.join(directory, PRUNE_JOURNAL)}: {why}; "
                               "nothing was pruned") from None

    def write(self, record: dict[str, Any]) -> None:
        os.write(self.fd, (strict_json({"time": round(time.time(), 3), **record}) + "\n").encode())
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.folder)


def prune_archives(directory: str, older_than: float, yes: bool = False, now: float | None = None) -> dict[str, Any]:
    """Remove the runs archived more than ``older_than`` seconds ago (``yes``: for real; else what would go) that
    the tool can prove it wrote; the others are listed in ``refused`` with the reason. Each run goes whole:
    renamed to <run>.pruning, then emptied and removed; every step journaled first."""
    now = time.time() if now is None else now
    directory = os.path.abspath(directory)
    archive_runs(directory)  # a folder that is not there is said as such, before locking it
    with FolderLock(directory, shared=not yes, what="this archive folder"):
        return _prune(directory, older_than, now, yes)


def _prune(directory: str, older_than: float, now: float, yes: bool) -> dict[str, Any]:
    listing = list_archives(directory, now)
    due, refused = [], []
    for run in listing["runs"]:
        if now - run["time"] <= older_than:
            continue
        why = "it is the folder given, not a run inside it" if run["path"] == directory else \
            _why_not_ours(run["path"], run["run"])
        (refused.append({"run": run["run"], "path": run["path"], "reason": why}) if why else due.append(run))
    unfinished = []
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda item: item.name):
            if entry.name.endswith(PRUNING_SUFFIX) and entry.is_dir(follow_symlinks=False):
                run_id = entry.name[: -len(PRUNING_SUFFIX)]
                why = _why_not_ours(entry.path, run_id) if os.path.lexists(os.path.join(entry.path, RUN_INFO)) \
                    else (None if not os.listdir(entry.path) else "its run.json is gone but it is not empty")
                (unfinished.append(entry.path) if why is None else
                 refused.append({"run": entry.name, "path": entry.path, "reason": why}))
    if yes and (unfinished or due):
        journal = PruneJournal(directory)  # opened (never through a symlink) before anything is removed
        try:
            for path in unfinished:  # an interrupted prune of a run we wrote: finish it
                journal.write({"event": "finish", "path": path})
                _remove_run(journal.folder, os.path.basename(path))
            for run in due:
                journal.write({"event": "prune", "run": run["run"], "path": run["path"]})
                pruning = run["run"] + PRUNING_SUFFIX
                os.rename(run["run"], pruning, src_dir_fd=journal.folder, dst_dir_fd=journal.folder)
                _remove_run(journal.folder, pruning)
                journal.write({"event": "pruned", "run": run["run"]})
        finally:
            journal.close()
    return {"directory": listing["directory"], "dry_run": not yes,
            "older_than_days": round(older_than / 86400, 2),
            "runs": [{"run": run["run"], "age_days": run["age_days"],
                      "archives": len(run["archives"]), "leftovers": len(run["leftovers"]),
                      "bytes_on_disk": sum(archive["bytes_on_disk"] for archive in run["archives"])} for run in due],
            "bytes": sum(archive["bytes_on_disk"] for run in due for archive in run["archives"]),
            "unfinished_prunes": unfinished, "refused": refused, "problems": listing["problems"],
            "results": results_json([Result(run["path"], "prune" if yes else "dry-run", OK, "", sum(
                archive["files"] for archive in run["archives"]), sum(archive["bytes_on_disk"] for archive in
                                                                     run["archives"])) for run in due]
                                    + [Result(row["path"], "prune", SKIPPED, row["reason"]) for row in refused])}


def _remove_run(parent: int, name: str) -> None:
    """Empty and remove a run folder being pruned, inside handles: its archives and manifests, leftovers, the
    verification record, and run.json last (the proof a leftover is ours, should this be cut short)."""
    folder = os.open(name, FOLDER_FLAGS, dir_fd=parent)
    try:
        names = sorted(os.listdir(folder), key=lambda item: (item == RUN_INFO, item.endswith(MANIFEST_SUFFIX), item))
        for inner in names:
            remove_at(folder, inner)
    finally:
        os.close(folder)
    os.rmdir(name, dir_fd=parent)
