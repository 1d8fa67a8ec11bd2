"""What an archive holds: its manifest (one line per member) and its run's roots (``run.json``).

Layout under ``--archive-dir DIR``, one folder per run::

    DIR/<run id>/run.json               the roots the run archived from (label -> real path), dataset, tool
    DIR/<run id>/sub-01.tar             (or .tar.gz / .tar.xz; or a folder sub-01/ with --archive-format tree)
    DIR/<run id>/sub-01.manifest.tsv    member, original path, subject, type, size, mtime_ns, mode, sha256,
                                        annex_key (of annexed content: restore gives it back to git-annex),
                                        uid, gid, link (an earlier member that is the same file: a hard link)

Both are sealed with the archiving user's key (basics/seal.py): run.json as a JSON line ending with its seal,
a manifest by a last line ``#seal<TAB><seal>``, bound to its run and name. An archive whose seals do not verify
(another user's, an earlier version's, or edited) is listed and verified, but restored only under ``--to`` and
never pruned. Members are named ``<root label>/<path inside that root>``; a manifest line is trusted only if
its original path is exactly the recorded root of its label joined with the rest of the member name, with no
empty, ``.`` or ``..`` component: a manifest edited to point elsewhere is refused, not followed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..basics import numbers
from ..basics.annex import is_key
from ..basics.errors import CleanupError
from ..basics.formats import strict_json
from ..basics.guarded import read_bytes
from ..basics.paths import below
from ..basics.seal import Sealer, Verdict, check, check_json, seal_json
from ..fmriprep.layout import Dataset

MANIFEST_SUFFIX = ".manifest.tsv"
MANIFEST_COLUMNS = ("member", "path", "subject", "type", "size", "mtime_ns", "mode", "sha256", "annex_key",
                    "uid", "gid", "link")
EIGHT_COLUMNS = MANIFEST_COLUMNS[:8]  # manifests written before annexed content could be archived
NINE_COLUMNS = MANIFEST_COLUMNS[:9]  # and before owners and hard links were recorded
SEAL_LINE = "#seal\t"
RUN_ID = re.compile(r"^\d{8}-\d{6}_[0-9a-f]{8}$")  # a run folder's name, as Journal names runs
GROUP = re.compile(r"^(?:sub-[A-Za-z0-9]+|no-subject)$")  # an archive's name without its suffix
KINDS = ("file", "symlink", "annexed")  # annexed: the content of a git-annex link, archived as a file
RUN_INFO = "run.json"
VERIFY_RECORD = "verify.json"  # when `archives verify` last read the run's archives back
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
    uid: int | None = None  # the owner when archived (None in manifests of earlier versions)
    gid: int | None = None
    link: str = ""  # an earlier member of the same archive that is this very file (hard links)


@dataclass(frozen=True)
class Manifest:
    """A manifest read back from disk, with whether its seal is this user's for its run and name."""

    path: str
    entries: list[ManifestEntry]
    verdict: Verdict


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


def manifest_context(path: str) -> str:
    """What a manifest's seal binds it to: its run folder's name and its own (final) name."""
    return f"manifest:{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}"


def write_manifest(path: str, entries: Iterable[ManifestEntry], final: str) -> None:
    """Write a manifest (never over an existing file, nor through a symlink), sealed for its ``final`` name, and
    fsync it."""
    sealer = Sealer(manifest_context(final))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as handle:
        def put(text: str) -> None:
            data = text.encode("utf-8", "surrogateescape")
            sealer.update(data)
            handle.write(data)

        put("\t".join(MANIFEST_COLUMNS) + "\n")
        for e in entries:
            put("\t".join([
                e.member.translate(_ESCAPES), e.path.translate(_ESCAPES), e.subject or "", e.kind,
                str(e.size), str(e.mtime_ns), f"{e.mode:o}", e.sha256, e.annex_key,
                "" if e.uid is None else str(e.uid), "" if e.gid is None else str(e.gid),
                e.link.translate(_ESCAPES)]) + "\n")
        handle.write(f"{SEAL_LINE}{sealer.seal()}\n".encode())
        handle.flush()
        os.fsync(handle.fileno())


def load_manifest(path: str) -> Manifest:
    """A manifest and its seal's verdict; CleanupError naming file and line for anything malformed or unsafe."""
    data = read_bytes(path, "manifest", follow_links=False)
    body, found = data, None
    if data.endswith(b"\n"):
        last = data.rfind(b"\n", 0, len(data) - 1) + 1
        if data[last:].startswith(SEAL_LINE.encode()):
            body, found = data[:last], data[last + len(SEAL_LINE):].strip().decode("ascii", "replace")
    verdict = check(body, manifest_context(path), found)
    lines = body.decode("utf-8", "surrogateescape").splitlines()
    header = tuple(lines[0].split("\t")) if lines else ()
    if header not in (MANIFEST_COLUMNS, NINE_COLUMNS, EIGHT_COLUMNS):
        raise CleanupError(f"{path} is not an fmriprep-cleanup manifest (bad header)")
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t") + [""] * (len(MANIFEST_COLUMNS) - len(header))
        try:
            member, original, subject, kind, size, mtime_ns, mode, sha, key, uid, gid, link = fields
            entry = ManifestEntry(_unescape(member), _unescape(original), subject or None, kind,
                                  numbers.count(_number(size), "size"),
                                  numbers.count(_number(mtime_ns, signed=True), "mtime_ns", MAX_NS, -MAX_NS),
                                  numbers.count(int(mode[:8], 8), "mode", numbers.MAX_MODE) & 0o7777,
                                  sha, key, _owner(uid, "uid"), _owner(gid, "gid"), _unescape(link))
        except ValueError as exc:
            raise CleanupError(f"{path}:{number}: malformed manifest line ({exc})") from None
        if kind not in KINDS or not safe_member(entry.member) or (kind == "annexed") != is_key(key) \
                or (entry.link and not safe_member(entry.link)):
            raise CleanupError(f"{path}:{number}: unsafe or unknown entry {entry.member!r}")
        entries.append(entry)
    return Manifest(path, entries, verdict)


MAX_NS = int(numbers.LATEST) * 10**9  # a modification time in nanoseconds, before the year 10000
MAX_OWNER = 2**32 - 1


def _number(text: str, signed: bool = False) -> int:
    """A decimal field of a manifest line: at most 20 digits (a 400-digit number is no size or time)."""
    body = text[1:] if signed and text.startswith("-") else text
    if not body.isdigit() or not body.isascii() or len(body) > numbers.MAX_DIGITS:
        raise ValueError(f"not a number of at most {numbers.MAX_DIGITS} digits: {text[:24]!r}")
    return int(text)


def _owner(text: str, what: str) -> int | None:
    return numbers.count(_number(text), what, MAX_OWNER) if text else None


@dataclass(frozen=True)
class RunInfo:
    """A run folder's run.json: the run, its dataset, the roots it archived from; and whether it is sealed."""

    run: str
    dataset: str
    identity: str | None  # the dataset's identity folder, whose lock a restore takes
    roots: dict[str, str]
    verdict: Verdict


def run_context(run_id: str) -> str:
    return f"run:{run_id}"


def write_run_info(run_dir: str, labels: dict[str, str], dataset: Dataset, run_id: str, tool_version: str) -> None:
    """Record the roots of a run's archives (label -> real path), sealed and fsynced, before any archive."""
    info = {"run": run_id, "dataset": dataset.path, "identity": dataset.identity, "tool_version": tool_version,
            "roots": {label: path for path, label in labels.items()}}
    text = seal_json(strict_json(info), run_context(run_id)) + "\n"
    fd = os.open(os.path.join(run_dir, RUN_INFO), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def load_run_info(run_dir: str, run_id: str | None = None) -> RunInfo:
    """A run folder's run.json with its seal's verdict (sealed means: this user's, for this very folder's run,
    or for ``run_id`` when the folder was renamed to be pruned); CleanupError if it is missing, not a regular
    file or not the shape the tool writes."""
    path = os.path.join(run_dir, RUN_INFO)
    text = read_bytes(path, "archive record", follow_links=False).decode("utf-8", "surrogateescape").strip()
    try:
        info = json.loads(text)
    except (ValueError, RecursionError):
        raise CleanupError(f"{path} is not JSON") from None
    roots = info.get("roots") if isinstance(info, dict) else None
    if not isinstance(roots, dict) or not all(isinstance(k, str) and isinstance(v, str) and os.path.isabs(v)
                                              for k, v in roots.items()):
        raise CleanupError(f"{path}: its roots are not a mapping of labels to absolute paths")
    run = info.get("run")
    folder = run_id or os.path.basename(os.path.abspath(run_dir))
    if "seal" not in info:
        verdict = Verdict.UNSEALED
    elif run != folder or not RUN_ID.match(folder):
        verdict = Verdict.BROKEN  # a genuine run.json moved to another folder is not that folder's
    else:
        verdict = check_json(text, run_context(folder))
    identity = info.get("identity")
    return RunInfo(folder, str(info.get("dataset", "")), identity if isinstance(identity, str) else None, roots,
                   verdict)


def check_paths(manifest: str, entries: list[ManifestEntry], roots: dict[str, str]) -> None:
    """Every original path must be its root joined with the rest of its member name; CleanupError otherwise."""
    for entry in entries:
        label, rest = entry.member.split("/", 1)
        root = roots.get(label)
        if root is None or not os.path.isabs(root) or entry.path != f"{root.rstrip('/')}/{rest}":
            raise CleanupError(f"{manifest}: {entry.member!r} points at {entry.path!r}, outside the roots the archive "
                               "recorded; refusing to restore it (has the manifest been edited?)")


def our_archive_name(name: str) -> bool:
    """Whether ``name`` (in a run folder) is one the tool gives an archive: sub-<label> or no-subject, as a tar
    (.tar, .tar.gz, .tar.xz) or a tree folder."""
    for suffix in (".tar.gz", ".tar.xz", ".tar", ""):
        if name.endswith(suffix) and GROUP.match(name[: len(name) - len(suffix)] if suffix else name):
            return True
    return False


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


@dataclass
class RunContents:
    """What a run folder holds, sorted by kind: each archive with its manifest, and everything else said."""

    pairs: list[tuple[str, str]] = field(default_factory=list)  # (manifest, archive)
    problems: list[str] = field(default_factory=list)  # a manifest without its archive, or an archive without its manifest
    leftovers: list[str] = field(default_factory=list)  # *.tmp of an interrupted run
    unknown: list[str] = field(default_factory=list)  # names the tool never writes in a run folder


def run_contents(run_dir: str) -> RunContents:
    """Every entry of a run folder (read with lstat: nothing followed), sorted by kind."""
    contents = RunContents()
    with os.scandir(run_dir) as entries:
        found = {entry.name: entry for entry in entries}
    claimed: set[str] = set()
    for name in sorted(found):
        path = os.path.join(run_dir, name)
        if name in (RUN_INFO, VERIFY_RECORD) and found[name].is_file(follow_symlinks=False):
            continue
        if name.endswith(".tmp"):
            contents.leftovers.append(path)
        elif name.endswith(MANIFEST_SUFFIX) and found[name].is_file(follow_symlinks=False):
            group = name[: -len(MANIFEST_SUFFIX)]
            archives = [candidate for candidate in (group + ".tar", group + ".tar.gz", group + ".tar.xz")
                        if candidate in found and found[candidate].is_file(follow_symlinks=False)]
            if group in found and found[group].is_dir(follow_symlinks=False):
                archives.append(group)
            claimed.update(archives)
            if len(archives) == 1:
                contents.pairs.append((path, os.path.join(run_dir, archives[0])))
            else:
                contents.problems.append(f"{path}: {'no archive' if not archives else 'several archives'} beside it "
                                         "(left by an interrupted run?); nothing restored from it")
    for name in sorted(set(found) - claimed):
        path = os.path.join(run_dir, name)
        if name in (RUN_INFO, VERIFY_RECORD) or name.endswith((".tmp", MANIFEST_SUFFIX)):
            if not found[name].is_file(follow_symlinks=False) and not name.endswith(".tmp"):
                contents.unknown.append(path)
        elif our_archive_name(name) and not found[name].is_symlink():
            contents.problems.append(f"{path}: an archive without its manifest (deleted?): it cannot be checked or "
                                     "restored")
        else:
            contents.unknown.append(path)
    return contents
