"""Seals on the tool's own state files: an HMAC-SHA256 keyed by a secret only this user can read.

On shared project storage every file inside a dataset (journals, manifests, ``run.json``) can be written by any
member of the group. Before acting on what such a file says (removing a half-written archive, restoring to a
recorded place, pruning a run) the tool checks the file's seal, as borg authenticates its manifest: a file
without a valid seal - planted, edited, copied from elsewhere, written by another user or an earlier version -
is reported and never acted on.

The key is 32 random bytes in ``$XDG_STATE_HOME/fmriprep-cleanup/key`` (mode 0600, created on first write).
Each seal also binds the file to where it belongs (its ``context``: the state folder, the archive run), so a
genuine file copied to another place does not verify there. A seal reads ``v1:<key id>:<hex digest>``; the key
id (the first 16 hex digits of the key's sha256) tells "another user's key" from "edited".
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from enum import Enum

from .errors import CleanupError
from .ownstate import user_state_dir

VERSION = "v1"
# A sealed JSON object ends with its seal, the last key: the seal covers the text before it (closed with "}").
SEALED_TAIL = re.compile(r', "seal": "(v1:[0-9a-f]{16}:[0-9a-f]{64})"\}$')
KEY_BYTES = 32
_cache: dict[str, bytes | None] = {}


class Verdict(Enum):
    SEALED = "sealed with your key"
    UNSEALED = "not sealed (written by hand, or by a version before seals)"
    OTHER_KEY = "sealed with another user's key"
    BROKEN = "its seal does not match: edited or copied from elsewhere"

    @property
    def trusted(self) -> bool:
        return self is Verdict.SEALED


def key_path() -> str:
    return os.path.join(user_state_dir(), "key")


def _read_key(path: str) -> bytes | None:
    """The key at ``path``, or None if there is none; CleanupError if it is not a private file of this user."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO cannot hang it
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CleanupError(f"cannot read the sealing key {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise CleanupError(f"the sealing key {path} must be a file of yours that only you can read "
                               "(chmod 600); refusing to trust seals made with it")
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise CleanupError(f"the sealing key {path} is damaged ({len(key)} bytes, not {KEY_BYTES}); remove it to "
                           "make a new one (seals made with it will no longer verify)")
    return key


def _create_key(path: str) -> bytes:
    """Write a new key, whole, under its final name (a concurrent creator's key wins if it got there first)."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    except OSError as exc:
        raise CleanupError(f"cannot create the sealing key {path}: {exc.strerror or exc} "
                           "(set XDG_STATE_HOME to a folder of yours that can be written)") from None
    key = _read_key(path)
    assert key is not None
    return key


def user_key(create: bool = False) -> bytes | None:
    """This user's key (made on first use when ``create``); None when there is none yet and none is made."""
    path = key_path()
    key = _cache.get(path)
    if key is None:
        key = _read_key(path)
        if key is None and create:
            key = _create_key(path)
        _cache[path] = key
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _digest(key: bytes, context: str, data: bytes) -> str:
    return hmac.new(key, context.encode("utf-8", "surrogateescape") + b"\0" + data, hashlib.sha256).hexdigest()


class Sealer:
    """A seal made a piece at a time (a manifest of many lines is sealed while it is written)."""

    def __init__(self, context: str) -> None:
        key = user_key(create=True)
        assert key is not None
        self._id = key_id(key)
        self._mac = hmac.new(key, context.encode("utf-8", "surrogateescape") + b"\0", hashlib.sha256)

    def update(self, data: bytes) -> None:
        self._mac.update(data)

    def seal(self) -> str:
        return f"{VERSION}:{self._id}:{self._mac.hexdigest()}"


def seal(data: bytes, context: str) -> str:
    """The seal of ``data`` belonging at ``context`` (made with this user's key, created if needed)."""
    sealer = Sealer(context)
    sealer.update(data)
    return sealer.seal()


def check(data: bytes, context: str, found: object) -> Verdict:
    """Whether ``found`` (a seal read from disk, or None) seals ``data`` at ``context`` with this user's key."""
    if not isinstance(found, str) or not found:
        return Verdict.UNSEALED
    version, _, rest = found.partition(":")
    identity, _, digest = rest.partition(":")
    key = user_key()
    if version != VERSION or key is None or identity != key_id(key):
        return Verdict.OTHER_KEY if version == VERSION and identity else Verdict.BROKEN
    return Verdict.SEALED if hmac.compare_digest(digest, _digest(key, context, data)) else Verdict.BROKEN


def seal_json(text: str, context: str) -> str:
    """A JSON object's text (``{...}``, one line) with its seal added as the last key."""
    assert text.startswith("{") and text.endswith("}") and text != "{}"
    return f'{text[:-1]}, "seal": "{seal(text.encode("utf-8", "surrogateescape"), context)}"}}'


def check_json(text: str, context: str) -> Verdict:
    """Whether a JSON object's text (as seal_json wrote it, without its line end) carries a valid seal."""
    found = SEALED_TAIL.search(text)
    if found is None:
        return Verdict.UNSEALED
    body = text[:found.start()] + "}"
    return check(body.encode("utf-8", "surrogateescape"), context, found.group(1))
