"""sha256, one way: of an open file, of a stream as it passes, of a symlink's target text."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import IO

CHUNK = 1 << 20


class HashingReader:
    """Reads a file object, hashing and counting what passes through (an archive is hashed as it is written,
    a restored file as it is read out of the archive)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.count += len(data)
        return data

    def chunks(self) -> Iterator[bytes]:
        """Everything left, CHUNK bytes at a time."""
        return iter(lambda: self.read(CHUNK), b"")


def sha256_of_fd(fd: int) -> str:
    """sha256 of an opened file's content, read from its start (the handle stays open)."""
    digest = hashlib.sha256()
    offset = 0
    while True:
        chunk = os.pread(fd, CHUNK, offset)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)
        offset += len(chunk)


def sha256_of_stream(handle: IO[bytes]) -> tuple[int, str]:
    """(length, sha256) of everything a stream yields (a decompressed archive read back, say)."""
    reader = HashingReader(handle)
    for _ in reader.chunks():
        pass
    return reader.count, reader.digest.hexdigest()


def sha256_of_link(target: str) -> str:
    """What a manifest records for a symlink: the sha256 of its target's text."""
    return hashlib.sha256(os.fsencode(target)).hexdigest()
