"""Programs the tool runs for what they print (an admin's quota command): never reading more than it can use.
A command that prints gigabytes (by mistake or on purpose) is stopped at a cap, not read whole into memory."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Sequence

OUTPUT_CAP = 16 * 1024 * 1024  # bytes of standard output (and as many of standard error) read at most
CHUNK = 65536


class TooMuchOutput(Exception):
    """The command printed more than the cap: it was stopped."""


def run_capped(args: Sequence[str], timeout: float, cap: int = OUTPUT_CAP,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``args`` (no shell, no input) and return what it printed, each stream read to at most ``cap`` bytes.
    TooMuchOutput (the process killed) past the cap; subprocess.TimeoutExpired (killed) past ``timeout``
    seconds; OSError if it cannot start."""
    process = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env)
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.fileno(), process.stderr.fileno()
    output: dict[int, list[bytes]] = {out: [], err: []}
    sizes = dict.fromkeys(output, 0)
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector, process:
        for stream in (process.stdout, process.stderr):
            selector.register(stream, selectors.EVENT_READ)
        try:
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(list(args), timeout)
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    sizes[key.fd] += len(chunk)
                    if sizes[key.fd] > cap:
                        raise TooMuchOutput(f"printed more than {cap:,} bytes")
                    output[key.fd].append(chunk)
            process.wait(max(0.0, deadline - time.monotonic()))
        except BaseException:
            process.kill()
            process.wait()
            raise
    return subprocess.CompletedProcess(list(args), process.returncode, b"".join(output[out]), b"".join(output[err]))
