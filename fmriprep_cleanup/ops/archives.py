"""Archives over time: list what an archive folder holds, verify every member against its manifest again, and
prune runs past their retention. An archive written by ``clean --mode archive`` was verified once; disks rot,
people copy folders around, and storage kept for years must be checked and eventually let go.

Layout (see act/manifest.py): ``DIR/<run id>/run.json`` and, per subject, an archive (tar or tree) with its
``.manifest.tsv``. Pruning renames a run folder to ``<run id>.pruning`` before removing it, so a run is
either whole or plainly being removed (a leftover ``.pruning`` folder is finished by the next prune), and
writes each step to ``DIR/prune-journal.jsonl`` first.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

from ..act.manifest import MANIFEST_SUFFIX, RUN_INFO, archive_of, read_manifest
from ..basics.errors import CleanupError
from ..basics.guarded import load_json
from ..basics.hashing import sha256_of_fd, sha256_of_link, sha256_of_stream

PRUNING_SUFFIX = ".pruning"
PRUNE_JOURNAL = "prune-journal.jsonl"
VERIFY_RECORD = "verify.json"


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
    """The run folders below ``directory`` (each holds a run.json), sorted."""
    if not os.path.isdir(directory):
        raise CleanupError(f"{directory}: no such directory (expected an --archive-dir)")
    runs = [entry.path for entry in os.scandir(directory)
            if entry.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(entry.path, RUN_INFO))]
    if os.path.isfile(os.path.join(directory, RUN_INFO)):
        runs.append(directory)
    return sorted(runs)


def list_archives(directory: str, now: float | None = None) -> dict[str, Any]:
    """Every run and archive below ``directory``: subject, files, bytes (as archived and on disk), age, the
    last verification, and leftovers of interrupted runs (never archives)."""
    now = time.time() if now is None else now
    runs = []
    for run in archive_runs(directory):
        run_id = os.path.basename(run)
        verified = _read_json(os.path.join(run, VERIFY_RECORD))
        archives, leftovers = [], []
        for name in sorted(os.listdir(run)):
            path = os.path.join(run, name)
            if name.endswith(".tmp"):
                leftovers.append(path)
            elif name.endswith(MANIFEST_SUFFIX):
                entries = read_manifest(path)
                archive = archive_of(path)
                archives.append({"subject": name[: -len(MANIFEST_SUFFIX)], "archive": archive, "manifest": path,
                                 "files": len(entries), "bytes": sum(entry.size for entry in entries),
                                 "bytes_on_disk": _size_on_disk(archive) if archive else 0})
        started = run_time(run_id, run)
        runs.append({"run": run_id, "path": run, "time": started, "age_days": round((now - started) / 86400, 1),
                     "archives": archives, "leftovers": leftovers,
                     "last_verified": verified.get("time") if verified else None,
                     "last_verify_ok": verified.get("ok") if verified else None})
    return {"directory": os.path.abspath(directory), "runs": runs}


@dataclass
class VerifyResult:
    members: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"members": self.members, "bytes": self.bytes, "ok": not self.problems, "problems": self.problems}


def verify_archives(directory: str) -> dict[str, Any]:
    """Re-hash every member of every archive below ``directory`` against its manifest: a changed byte, a
    missing or an extra member is a problem. Each run folder records when it was last verified."""
    result = VerifyResult()
    for run in archive_runs(directory):
        run_result = VerifyResult()
        for name in sorted(os.listdir(run)):
            if not name.endswith(MANIFEST_SUFFIX):
                continue
            manifest = os.path.join(run, name)
            archive = archive_of(manifest)
            if archive is None:
                run_result.problems.append(f"{manifest}: its archive is missing")
                continue
            _verify_one(archive, manifest, run_result)
        record = {"time": time.time(), "ok": not run_result.problems, "members": run_result.members,
                  "problems": run_result.problems[:100]}
        try:
            with open(os.path.join(run, VERIFY_RECORD), "w", encoding="utf-8") as handle:
                json.dump(record, handle)
        except OSError as exc:
            run_result.problems.append(f"{run}: cannot record the verification ({exc.strerror or exc})")
        result.members += run_result.members
        result.bytes += run_result.bytes
        result.problems += run_result.problems
    return {"directory": os.path.abspath(directory), **result.as_dict()}


def _verify_one(archive: str, manifest: str, result: VerifyResult) -> None:
    try:
        expected = {entry.member: entry for entry in read_manifest(manifest)}
    except CleanupError as exc:
        result.problems.append(str(exc))
        return
    seen: set[str] = set()
    try:
        if os.path.isdir(archive):
            for member, entry in expected.items():
                path = os.path.join(archive, member)
                if not os.path.lexists(path):
                    continue
                seen.add(member)
                if entry.kind == "symlink":
                    digest = sha256_of_link(os.readlink(path))
                else:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    try:
                        digest = sha256_of_fd(fd)
                    finally:
                        os.close(fd)
                _compare(archive, member, entry.sha256, digest, result, entry.size)
        else:
            with tarfile.open(archive, "r:*") as tar:
                for info in tar:
                    listed = expected.get(info.name)
                    if listed is None:
                        result.problems.append(f"{archive}: {info.name} is not in its manifest")
                        continue
                    seen.add(info.name)
                    if info.issym():
                        digest = sha256_of_link(info.linkname)
                    else:
                        stream = tar.extractfile(info)
                        digest = sha256_of_stream(stream)[1] if stream is not None else ""
                    _compare(archive, info.name, listed.sha256, digest, result, listed.size)
    except (OSError, EOFError, tarfile.TarError) as exc:
        result.problems.append(f"{archive} cannot be read to the end ({exc})")
    for member in sorted(set(expected) - seen):
        result.problems.append(f"{archive}: {member} is missing")


def _compare(archive: str, member: str, expected: str, digest: str, result: VerifyResult, size: int) -> None:
    result.members += 1
    result.bytes += size
    if digest != expected:
        result.problems.append(f"{archive}: {member} differs from its manifest (sha256)")


def prune_archives(directory: str, older_than: float, yes: bool = False, now: float | None = None) -> dict[str, Any]:
    """Remove the runs archived more than ``older_than`` seconds ago (``yes``: for real; else what would go).
    Each run goes whole: renamed to <run>.pruning, then removed; every step journaled first."""
    now = time.time() if now is None else now
    listing = list_archives(directory, now)
    due = [run for run in listing["runs"] if now - run["time"] > older_than]
    leftovers = sorted(entry.path for entry in os.scandir(directory)
                       if entry.is_dir(follow_symlinks=False) and entry.name.endswith(PRUNING_SUFFIX))
    removed_bytes = sum(archive["bytes_on_disk"] for run in due for archive in run["archives"])
    if yes:
        journal = os.path.join(directory, PRUNE_JOURNAL)
        for path in leftovers:  # an interrupted prune: finish it
            _journal(journal, {"event": "finish", "path": path})
            shutil.rmtree(path)
        for run in due:
            pruning = run["path"] + PRUNING_SUFFIX
            _journal(journal, {"event": "prune", "run": run["run"], "path": run["path"]})
            os.rename(run["path"], pruning)  # from here the run is no longer an archive anyone restores from
            shutil.rmtree(pruning)
            _journal(journal, {"event": "pruned", "run": run["run"]})
    return {"directory": listing["directory"], "dry_run": not yes, "older_than_days": round(older_than / 86400, 2),
            "runs": [{"run": run["run"], "age_days": run["age_days"],
                      "archives": len(run["archives"]), "leftovers": len(run["leftovers"]),
                      "bytes_on_disk": sum(archive["bytes_on_disk"] for archive in run["archives"])} for run in due],
            "bytes": removed_bytes, "unfinished_prunes": leftovers}


def _journal(path: str, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _read_json(path: str) -> dict[str, Any] | None:
    """A verification record, read as any file the tool did not write this run (it may have been planted)."""
    if not os.path.lexists(path):
        return None
    try:
        data = load_json(path, "archive record", follow_links=False)
    except CleanupError:
        return None
    return data if isinstance(data, dict) else None
