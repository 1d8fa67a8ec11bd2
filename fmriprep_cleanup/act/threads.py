"""A few worker threads for work that mostly waits on the file system (unlink, rmdir), and one way to stop.

The first failure, Ctrl-C or SIGTERM sets the ``Stop``: work items check it before each file, so no new work
starts; those under way finish the file they are on, and the error is raised once they are done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

ACT_THREADS = 4  # unlink and rmdir mostly wait on the file system: a few at once overlap those waits

Item = TypeVar("Item")
Result = TypeVar("Result")


class RunStopped(Exception):
    """The run is stopping (Ctrl-C, SIGTERM, or an error in another of its threads): start nothing new."""


class Stop:
    """Set once the run must stop; every executor asks it before touching the next file."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self.signal: int | None = None  # the signal that asked for it (SIGINT, SIGTERM), if one did

    def set(self, reason: str = "stopped") -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise RunStopped if the run is stopping."""
        if self._event.is_set():
            raise RunStopped(self.reason or "stopped")


def in_threads(work: Callable[[Item], Result], items: list[Item], stop: Stop) -> list[Result]:
    """``work(item)`` for every item, ACT_THREADS at a time; the results in the items' order.

    The first to fail (or Ctrl-C) sets ``stop``, so no item starts after it: the running ones finish the file
    they are on, the queued ones never start, and the error is raised once the running ones are done.
    """

    def guarded(item: Item) -> Result:
        stop.check()
        try:
            return work(item)
        except BaseException as exc:
            stop.set(f"{type(exc).__name__}: {exc}")
            raise

    if len(items) <= 1 or ACT_THREADS <= 1:
        return [guarded(item) for item in items]
    with ThreadPoolExecutor(max_workers=ACT_THREADS) as pool:
        futures = [pool.submit(guarded, item) for item in items]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C while waiting
            stop.set("interrupted")
            raise
        finally:
            for future in futures:
                future.cancel()  # only those not yet started
            wait(futures)
        errors = [error for future in futures if not future.cancelled() and (error := future.exception()) is not None]
        if errors:
            raise next((error for error in errors if not isinstance(error, RunStopped)), errors[0])
        return [future.result() for future in futures]
