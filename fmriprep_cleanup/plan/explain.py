"""Explain one file: where it sits, what its name says, and the decision iterating the plan would give it -
made by the same steps, file by file (report/explain.py says it in words)."""

from __future__ import annotations

import os
from typing import Any

from ..basics.annex import ELSEWHERE, GIT_CHANGED, GIT_STORED, PRESENT
from ..basics.archivetree import ArchiveTree
from ..basics.errors import CleanupError
from ..basics.folders import Directory, Entry, lstat_entry
from ..fmriprep.layout import ScanRoot
from ..rules.classify import Decision, FileFacts, subject_of_folder, subject_of_root_file
from .plan import Plan

CONTENT = {PRESENT: "here", ELSEWHERE: "elsewhere only", GIT_STORED: "stored in git", GIT_CHANGED: "stored in git"}


def decide_one(plan: Plan, root: ScanRoot, relpath: str, entry: Entry, subject: str | None) -> Decision:
    """One file's decision, by the plan's own decision function (Plan.decide_folder) on a folder holding only
    that file: what iterating the plan gives it, whatever is selected."""
    folder_path = relpath.rpartition("/")[0]
    folder = Directory(root, folder_path, os.path.join(root.path, folder_path) if folder_path else root.path, [entry])
    classified = plan.decide_folder(folder, subject)
    assert classified is not None  # everything is selected
    return next(decision for _, _, decision in classified.rows())


def _locate(plan: Plan, file: str) -> str:
    """An absolute path for FILE: as given, else relative to the dataset; the file itself is not resolved."""
    candidates = [file] if os.path.isabs(file) else [file, os.path.join(plan.dataset.path, file), os.path.join(plan.dataset.top, file)]
    for candidate in candidates:
        if os.path.lexists(candidate):
            absolute = os.path.abspath(candidate)
            return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
    raise CleanupError(f"{file}: no such file (looked in the current folder and in {plan.dataset.path})")


def _in_archive(members: ArchiveTree, file: str) -> str:
    path = members.locate(file)
    if path is None:
        raise CleanupError(f"{file}: no such member in {members.archive.path}")
    if members.is_folder(path):
        raise CleanupError(f"{file} is a directory; explain takes files")
    return path


def explain_file(plan: Plan, file: str) -> dict[str, Any]:
    members = plan.scan_list if isinstance(plan.scan_list, ArchiveTree) else None
    path = _in_archive(members, file) if members is not None else _locate(plan, file)
    if members is None and os.path.isdir(path) and not os.path.islink(path):
        raise CleanupError(f"{file} is a directory; explain takes files")
    state_dir = plan.dataset.state_dir
    if path.startswith(state_dir + os.sep):
        raise CleanupError(f"{file} is in fmriprep-cleanup's own state directory, which is never classified")
    containing = [root for root in plan.dataset.scan_roots if path.startswith(root.path + os.sep)]
    if not containing:
        roots = ", ".join(root.path for root in plan.dataset.scan_roots)
        raise CleanupError(f"{file} is outside the dataset's roots ({roots})")
    root = max(containing, key=lambda candidate: len(candidate.path))
    relpath = path[len(root.path) + 1:]
    folder = os.path.dirname(relpath)
    try:
        entry = members.entry(path) if members is not None else plan.as_scanned(lstat_entry(path), path)
    except OSError as exc:
        raise CleanupError(f"cannot stat {file}: {exc.strerror or exc}") from None
    assert entry is not None  # located above
    at_root = not folder and root.scope in ("derivatives", "other")
    if not root.owns(relpath):
        subject = None
    else:
        subject = subject_of_root_file(entry.name) if at_root else subject_of_folder(root.scope, folder)
    decision = decide_one(plan, root, relpath, entry, subject)  # judges only the subjects it asks about
    status = plan.status_book().status(subject) if subject is not None else None
    return {
        "path": path,
        "scope": root.scope,
        "root": root.path,
        "relative_path": relpath,
        "subject": subject,
        "subject_status": status.status if status else "none",
        "stale": status.stale if status else False,
        "stale_after_days": plan.status_book().stale_after / 86400,  # what "stale" means: idle longer than this
        "selected": plan.selection.wants(subject),
        "entities": FileFacts(root.scope, folder, entry.name, entry.size, entry.mtime, subject).entities,
        "symlink": entry.is_link,
        "content": CONTENT.get(entry.annex),
        "size": entry.size,
        "allocated_bytes": entry.allocated,
        "action": decision.action,
        "category": decision.category,
        "rule_id": decision.rule_id,
        "rule_set": decision.source,
        "why": decision.why,
    }
