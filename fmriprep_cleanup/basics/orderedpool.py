"""Worker threads that take the waiting task with the smallest key first: a threaded walk keys each folder by
its place in the walk's order, so the workers list the folders the walk reaches next, not the oldest asked.

Measured on an sshfs mount (benchmarks/RESULTS.md, issue 47): with first-in-first-out workers the folders
listed ahead were those asked first - a breadth-first spread over every subject - and they held the walk's
budget of folders listed ahead until the walk reached them, so most of the time nothing was in flight."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class OrderedPool:
    """``workers`` threads running submitted calls, the smallest key first (ties: first submitted first)."""

    def __init__(self, workers: int) -> None:
        self.waiting: list[tuple[Any, int, Future[Any], Callable[[], Any]]] = []
        self.condition = threading.Condition()
        self.counter = itertools.count()
        self.stopping = False
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self.threads:
            thread.start()

    def submit(self, key: Any, call: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self.condition:
            if self.stopping:
                raise RuntimeError("the pool is shut down")
            heapq.heappush(self.waiting, (key, next(self.counter), future, call))
            self.condition.notify()
        return future

    def shutdown(self) -> None:
        """Cancel what has not started, wait for what has."""
        with self.condition:
            self.stopping = True
            for _, _, future, _ in self.waiting:
                future.cancel()
            self.waiting.clear()
            self.condition.notify_all()
        for thread in self.threads:
            thread.join()

    def _work(self) -> None:
        while True:
            with self.condition:
                while not self.waiting and not self.stopping:
                    self.condition.wait()
                if not self.waiting:
                    return
                _, _, future, call = heapq.heappop(self.waiting)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to whoever waits on it, as concurrent.futures does
                future.set_exception(exc)
