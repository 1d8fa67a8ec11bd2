"""What an archive holds: its manifest (one line per member) and its run's roots (``run.json``).

Layout under ``--archive-dir DIR``, one folder per run::

    DIR/<run id>/run.json               the roots the run archived from (label -> real path), dataset, tool
    DIR/<run id>/sub-01.tar             (or .tar.gz / .tar.xz; or a folder sub-01/ with --archive-format tree)
    DIR/<run id>/sub-01.manifest.tsv    member, original path, subject, type, size, mtime_ns, mode, sha256,
                                        annex_key (of annexed content: restore gives it back to git-annex)

Members are named ``<root label>/<path inside that root>``; a manifest line is trusted only if its original
path is exactly the recorded root of its label joined with the rest of the member name, with no empty, ``.``
or ``..`` component: a manifest edited to point elsewhere is refused, not followed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from ..basics.annex import key_size
from ..basics.errors import CleanupError
from ..basics.guarded import load_json, read_bytes
from ..basics.paths import below
from ..fmriprep.layout import Dataset

MANIFEST_SUFFIX = ".manifest.tsv"
MANIFEST_COLUMNS = ("member", "path", "subject", "type", "size", "mtime_ns", "mode", "sha256", "annex_key")
EIGHT_COLUMNS = MANIFEST_COLUMNS[:8]  # manifests written before annexed content could be archived
KINDS = ("file", "symlink", "annexed")  # annexed: the content of a git-annex link, archived as a file
RUN_INFO = "run.json"
TAR_SUFFIXES = {None: ".tar", "gz": ".tar.gz", "xz": ".tar.xz"}
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


@dataclass(frozen=True)
class ManifestEntry:
    member: str
    path: str  # where the original was
    subject: str | None
    kind: str  # "file" | "symlink" | "annexed"
    size: int
    mtime_ns: int
    mode: int
    sha256: str  # of the content; of the link target for a symlink
    annex_key: str = ""  # the git-annex key of "annexed" content


def group_key(subject: str | None) -> str:
    return f"sub-{subject}" if subject is not None else "no-subject"


def root_labels(dataset: Dataset) -> dict[str, str]:
    """A short, stable label per scan root: the archive member prefix (root path -> label)."""
    labels = {}
    workdirs = 0
    for root in dataset.scan_roots:
        if root.scope == "workdir":
            workdirs += 1
            labels[root.path] = "workdir" if workdirs == 1 else f"workdir{workdirs}"
        else:
            labels[root.path] = root.scope
    return labels


def member_name(path: str, labels: dict[str, str]) -> str:
    root = max((r for r in labels if below(path, r)), key=len)
    return f"{labels[root]}/{path[len(root) + 1:]}"


def safe_member(member: str) -> bool:
    """``<label>/<relative path>`` with no absolute part, no empty, ``.`` or ``..`` component."""
    parts = member.split("/")
    return len(parts) >= 2 and not member.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        pair = text[i:i + 2]
        if pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def write_manifest(path: str, entries: Iterable[ManifestEntry]) -> None:
    """Write a manifest (never over an existing file) and fsync it."""
    with open(path, "x", encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
        handle.write("\t".join(MANIFEST_COLUMNS) + "\n")
        for e in entries:
            handle.write("\t".join([
                e.member.translate(_ESCAPES), e.path.translate(_ESCAPES), e.subject or "", e.kind,
                str(e.size), str(e.mtime_ns), f"{e.mode:o}", e.sha256, e.annex_key]) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(path: str) -> list[ManifestEntry]:
    """Every line of a manifest; CleanupError naming file and line for anything malformed or unsafe."""
    lines = read_bytes(path, "manifest", follow_links=False).decode("utf-8", "surrogateescape").splitlines()
    header = tuple(lines[0].split("\t")) if lines else ()
    if header not in (MANIFEST_COLUMNS, EIGHT_COLUMNS):
        raise CleanupError(f"{path} is not an fmriprep-cleanup manifest (bad header)")
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(header) == len(EIGHT_COLUMNS):
            fields.append("")
        try:
            member, original, subject, kind, size, mtime_ns, mode, sha, key = fields
            entry = ManifestEntry(_unescape(member), _unescape(original), subject or None, kind,
                                  int(size), int(mtime_ns), int(mode, 8), sha, key)
        except ValueError:
            raise CleanupError(f"{path}:{number}: malformed manifest line") from None
        if kind not in KINDS or not safe_member(entry.member) or (kind == "annexed") != bool(key_size(key) is not None):
            raise CleanupError(f"{path}:{number}: unsafe or unknown entry {entry.member!r}")
        entries.append(entry)
    return entries


def write_run_info(run_dir: str, labels: dict[str, str], dataset: str, run_id: str, tool_version: str) -> None:
    """Record the roots of a run's archives (label -> real path), fsynced, before any archive is written."""
    info = {"run": run_id, "dataset": dataset, "tool_version": tool_version,
            "roots": {label: path for path, label in labels.items()}}
    path = os.path.join(run_dir, RUN_INFO)
    with open(path, "x", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())


def recorded_roots(manifest: str, entries: list[ManifestEntry]) -> dict[str, str]:
    """The roots (label -> path) the archive was made from: from its run's run.json; for archives made before
    run.json existed, worked out from the manifest itself, and then every line must agree on them."""
    info_path = os.path.join(os.path.dirname(manifest), RUN_INFO)
    if os.path.lexists(info_path):
        info = load_json(info_path, "archive record", follow_links=False)
        roots = info.get("roots") if isinstance(info, dict) else None
        if not isinstance(roots, dict) or not all(isinstance(k, str) and isinstance(v, str) and os.path.isabs(v)
                                                  for k, v in roots.items()):
            raise CleanupError(f"{info_path}: its roots are not a mapping of labels to absolute paths")
        return roots
    derived: dict[str, str] = {}
    for entry in entries:
        label, rest = entry.member.split("/", 1)
        if entry.path.endswith("/" + rest):
            derived.setdefault(label, entry.path[: -len(rest) - 1])
    return derived


def check_paths(manifest: str, entries: list[ManifestEntry], roots: dict[str, str]) -> None:
    """Every original path must be its root joined with the rest of its member name; CleanupError otherwise."""
    for entry in entries:
        label, rest = entry.member.split("/", 1)
        root = roots.get(label)
        if root is None or not os.path.isabs(root) or entry.path != f"{root.rstrip('/')}/{rest}":
            raise CleanupError(f"{manifest}: {entry.member!r} points at {entry.path!r}, outside the roots the archive "
                               "recorded; refusing to restore it (has the manifest been edited?)")


def manifest_of(archive: str) -> str:
    base = archive
    for suffix in (".tar.gz", ".tar.xz", ".tar"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base + MANIFEST_SUFFIX


def archive_of(manifest: str) -> str | None:
    """The archive a manifest describes (a tar file or a tree folder), or None if there is none."""
    base = manifest[: -len(MANIFEST_SUFFIX)]
    found = [base + suffix for suffix in (".tar", ".tar.gz", ".tar.xz") if os.path.isfile(base + suffix)]
    if os.path.isdir(base) and not os.path.islink(base):
        found.append(base)
    return found[0] if len(found) == 1 else None
