"""Junk members of a zip or tar file kept aside (``clean --mode archive``) and put back (``restore``).

Archive mode writes the junk members, streamed and unchanged, into ``ARCHIVE_DIR/RUN/NAME.removed.zip`` (or
``.tar``: the source's kind), reads them back against the SHA-256 of each as it was read from the source, gives
the file its final name, and writes a manifest beside it (``NAME.removed.json``, sealed with your key: which
archive they came from, each member's SHA-256); only then is the source rewritten without them (act/rewrite.py).
``restore`` of that file or its manifest writes the source anew with the members added back, checks every
member of the result (the source's as they were, the restored ones against the manifest) and swaps it in with
one rename: the members come back byte for byte."""

from __future__ import annotations

import json
import os
import uuid

from ..basics.archivefile import read_archive
from ..basics.errors import CleanupError
from ..basics.guarded import BrokenFileError, read_bytes
from ..basics.seal import Verdict, check_json, seal_json
from .rewrite import copy_members, digests_of, new_file, no_follow, remove_file, swap_in, temporary_name

REMOVED = ".removed"  # NAME.removed.zip|tar and NAME.removed.json, in the run's folder of the archive folder
MANIFEST_CAP = 64 << 20


def removed_names(archive_dir: str, run_id: str, source: str, kind: str) -> tuple[str, str]:
    """Where the junk members of ``source`` go (their archive, its manifest) in a run's folder."""
    folder = os.path.join(archive_dir, run_id)
    name = os.path.basename(source)
    return os.path.join(folder, f"{name}{REMOVED}.{kind}"), os.path.join(folder, f"{name}{REMOVED}.json")


def is_removed_members(path: str) -> bool:
    return any(path.endswith(f"{REMOVED}{suffix}") for suffix in (".zip", ".tar", ".json"))


def keep_aside(archive_path: str, kind: str, data: str, junk: set[str], archive_dir: str, run_id: str) -> str:
    """The junk members of the archive (``data``: where its bytes are) written and verified in the archive
    folder, with their sealed manifest; the path of the file holding them. CleanupError, nothing kept, if any
    check fails."""
    aside, manifest = removed_names(archive_dir, run_id, archive_path, kind)
    os.makedirs(os.path.dirname(aside), exist_ok=True)
    temporary = aside + ".tmp"
    try:
        with open(data, "rb", opener=no_follow) as source, new_file(temporary, archive_path) as target:
            digests = copy_members(kind, source, target, lambda name: name in junk)
            target.flush()
            os.fsync(target.fileno())
        if set(digests) != junk or digests_of(temporary, kind) != digests:
            raise CleanupError(f"{aside}: the junk members did not read back as they were; nothing removed")
        os.rename(temporary, aside)
    except BaseException:
        remove_file(temporary)
        raise
    text = json.dumps({"source": archive_path, "kind": kind, "aside": os.path.basename(aside),
                       "members": dict(sorted(digests.items()))}, separators=(",", ": "))
    fd = os.open(manifest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(seal_json(text, _context(manifest)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return aside


def _context(manifest: str) -> str:
    """What a manifest's seal binds it to: its run folder's name and its own name."""
    return f"members:{os.path.basename(os.path.dirname(manifest))}/{os.path.basename(manifest)}"


def read_manifest(path: str) -> tuple[str, str, dict[str, str]]:
    """(source archive, file of the members, member -> SHA-256) from a sealed manifest (or the file beside it);
    CleanupError for one not sealed with your key or not as this tool writes it."""
    manifest = path if path.endswith(".json") else path.rsplit(".", 1)[0] + ".json"
    try:
        text = read_bytes(manifest, "manifest", follow_links=False, cap=MANIFEST_CAP).decode("utf-8").strip()
    except (BrokenFileError, UnicodeDecodeError) as exc:
        raise CleanupError(f"cannot read {manifest}: {exc}") from None
    if check_json(text, _context(manifest)) != Verdict.SEALED:
        raise CleanupError(f"{manifest}: not sealed with your key (written by someone else, or changed): not restored")
    record = json.loads(text)
    aside = os.path.join(os.path.dirname(manifest), str(record.get("aside", "")))
    members = record.get("members")
    if not isinstance(record.get("source"), str) or not isinstance(members, dict) or not is_removed_members(aside):
        raise CleanupError(f"{manifest}: not a manifest of removed members: not restored")
    return record["source"], aside, {str(name): str(digest) for name, digest in members.items()}


def put_back(path: str) -> tuple[int, int]:
    """Write the source archive anew with the members kept aside added back, checked, swapped in; (members,
    bytes) restored. CleanupError, the archive unchanged, if anything does not match."""
    source, aside, recorded = read_manifest(path)
    removed, current = read_archive(aside), read_archive(source)
    if current.key:
        raise CleanupError(f"{source}: annexed (git-annex): restoring into it is not built yet; nothing restored")
    if {member.name for member in removed.members} != set(recorded) or digests_of(aside, removed.kind) != recorded:
        raise CleanupError(f"{aside}: its members are not those its manifest records: not restored")
    clash = sorted(set(recorded) & {member.name for member in current.members})
    if clash:
        raise CleanupError(f"{source} already holds {clash[0]}{' and others' if len(clash) > 1 else ''}: not restored")
    temporary = temporary_name(source, f"restore-{uuid.uuid4().hex[:8]}")
    try:
        with open(current.data, "rb", opener=no_follow) as kept, open(aside, "rb", opener=no_follow) as more, \
                new_file(temporary, source) as target:
            digests = copy_members(current.kind, kept, target, lambda _name: True, more)
            target.flush()
            os.fsync(target.fileno())
        written = digests_of(temporary, current.kind)
        if written != digests or any(written.get(name) != digest for name, digest in recorded.items()):
            raise CleanupError(f"{source}: the restored archive did not read back as it should; left as it was")
        if read_archive(source) != current:
            raise CleanupError(f"{source} changed while it was restored; left as it is")
        swap_in(temporary, source)
    except BaseException:
        remove_file(temporary)
        raise
    return len(removed.members), sum(member.size for member in removed.members)
