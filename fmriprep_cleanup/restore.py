"""Restore: put archived files back, byte-identical, with their mode and mtime.

Each file is written under a temporary name, checked against the manifest's
sha256, and then linked into place with ``os.link``, which fails rather than
overwrite a file that appeared meanwhile. An existing file is never
overwritten: if it is the same it counts as already restored, otherwise it is
reported as a conflict.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from typing import IO

from .archive import CHUNK, MANIFEST_SUFFIX, ManifestEntry, _link_digest, _manifest_of, read_manifest
from .errors import CleanupError


@dataclass
class RestoreOutcome:
    restored_files: int = 0
    restored_bytes: int = 0
    already_present: int = 0
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.conflicts and not self.errors

    def as_dict(self) -> dict:
        return {"restored_files": self.restored_files, "restored_bytes": self.restored_bytes,
                "already_present": self.already_present, "conflicts": self.conflicts, "errors": self.errors}


def find_manifests(source: str) -> list[tuple[str, str]]:
    """(manifest, archive) pairs for an archive, a manifest, or a folder holding them."""
    source = os.path.abspath(source)
    if os.path.isdir(source) and not source.endswith(".tmp") and not os.path.exists(source + MANIFEST_SUFFIX):
        manifests = sorted(
            os.path.join(dirpath, name)
            for dirpath, _, names in os.walk(source) for name in names if name.endswith(MANIFEST_SUFFIX)
        )
        if not manifests:
            raise CleanupError(f"{source} holds no fmriprep-cleanup manifest (*{MANIFEST_SUFFIX})")
    elif source.endswith(MANIFEST_SUFFIX):
        manifests = [source]
    else:
        manifests = [_manifest_of(source)]
    pairs = []
    for manifest in manifests:
        if not os.path.isfile(manifest):
            raise CleanupError(f"no manifest at {manifest}; give an archive made by fmriprep-cleanup or its manifest")
        base = manifest[: -len(MANIFEST_SUFFIX)]
        archives = [base + suffix for suffix in (".tar", ".tar.gz", ".tar.xz", "") if os.path.lexists(base + suffix)
                    and (suffix or os.path.isdir(base))]
        if len(archives) != 1:
            raise CleanupError(f"cannot find the archive that {manifest} describes (looked for {base}.tar*, {base}/)")
        pairs.append((manifest, archives[0]))
    return pairs


def _digest_of_existing(path: str) -> str | None:
    if os.path.islink(path):
        return _link_digest(os.readlink(path))
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _put_back(entry: ManifestEntry, destination: str, content: IO[bytes] | None, link_target: str | None,
              outcome: RestoreOutcome) -> None:
    if os.path.lexists(destination):
        if _digest_of_existing(destination) == entry.sha256:
            outcome.already_present += 1
        else:
            outcome.conflicts.append(f"{destination} exists and differs from the archived file; not overwritten")
        return
    try:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        if entry.kind == "symlink":
            if _link_digest(link_target or "") != entry.sha256:
                outcome.errors.append(f"{destination}: archived link does not match its manifest; not restored")
                return
            os.symlink(link_target, destination)
            os.utime(destination, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        else:
            temporary = f"{destination}.restore-{os.getpid()}.tmp"
            digest = hashlib.sha256()
            try:
                with open(temporary, "xb") as out:
                    for chunk in iter(lambda: content.read(CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != entry.sha256:
                    outcome.errors.append(f"{destination}: archived copy does not match its sha256; not restored")
                    return
                os.chmod(temporary, entry.mode)
                os.utime(temporary, ns=(entry.mtime_ns, entry.mtime_ns))
                os.link(temporary, destination)  # never replaces a file that appeared meanwhile
            finally:
                if os.path.lexists(temporary):
                    os.unlink(temporary)
    except FileExistsError:
        outcome.conflicts.append(f"{destination} appeared while restoring; not overwritten")
        return
    except OSError as exc:
        outcome.errors.append(f"{destination}: {exc.strerror or exc}")
        return
    outcome.restored_files += 1
    outcome.restored_bytes += entry.size


def restore(source: str, to: str | None = None, participant_labels: frozenset[str] | None = None) -> RestoreOutcome:
    """Restore the files of an archive (or every archive below a folder) to where they were, or under ``to``."""
    outcome = RestoreOutcome()
    for manifest, archive in find_manifests(source):
        wanted = {entry.member: entry for entry in read_manifest(manifest)
                  if participant_labels is None or entry.subject in participant_labels}
        if not wanted:
            continue

        def destination(entry: ManifestEntry) -> str:
            return os.path.join(os.path.abspath(to), entry.member) if to else entry.path

        if os.path.isdir(archive):
            for member, entry in wanted.items():
                path = os.path.join(archive, member)
                if entry.kind == "symlink":
                    _put_back(entry, destination(entry), None, os.readlink(path), outcome)
                else:
                    with open(path, "rb") as content:
                        _put_back(entry, destination(entry), content, None, outcome)
            continue
        found = set()
        try:
            with tarfile.open(archive, "r:*") as tar:
                for info in tar:
                    entry = wanted.get(info.name)
                    if entry is None:
                        continue
                    found.add(info.name)
                    if info.issym():
                        _put_back(entry, destination(entry), None, info.linkname, outcome)
                    else:
                        _put_back(entry, destination(entry), tar.extractfile(info), None, outcome)
        except (OSError, tarfile.TarError) as exc:
            raise CleanupError(f"cannot read {archive}: {exc}") from None
        for member in set(wanted) - found:
            outcome.errors.append(f"{member}: listed in {manifest} but missing from {archive}")
    return outcome
